// localStorage and the cookie, for the Rust side (a wasm-bindgen snippet;
// every import Rust makes of it is declared in src/glue.rs).

// ---- localStorage, or a map for the page's lifetime where it is blocked.
// Every value read or written is mirrored in the map, so storage that starts
// throwing (blocked, a SecurityError) goes on from the map for the page's
// life: nothing the SDK does throws because of storage. A full storage is
// not blocked: `setItem` says so (false), and Rust decides what to drop.
let local;
try {
  local = globalThis.localStorage;
  local.length;
} catch {
  local = undefined;
}
const memory = new Map();
const quota = (e) => e && (e.name == "QuotaExceededError" || e.name == "NS_ERROR_DOM_QUOTA_REACHED");
// `full`: what a write answers when the quota is used up (a read that
// throws so, as any other error, leaves the map to answer from then on).
function use(f, fallback, full) {
  if (local) {
    try {
      return f(local);
    } catch (e) {
      if (full === false && quota(e)) return full;
      local = undefined;
    }
  }
  return fallback();
}
export const getItem = (key) =>
  use(
    (s) => {
      const v = s.getItem(key);
      v == null ? memory.delete(key) : memory.set(key, v);
      return v;
    },
    () => memory.get(key),
  );
export const removeItem = (key) => {
  memory.delete(key);
  use((s) => s.removeItem(key), () => {});
};
export const storedKeys = (prefix) =>
  use((s) => Object.keys(s), () => [...memory.keys()]).filter((k) => k.startsWith(prefix));
// Whether it was written (false when the quota is used up).
export const setItem = (key, value) =>
  use(
    (s) => {
      s.setItem(key, value);
      memory.set(key, value);
      return true;
    },
    () => (memory.set(key, value), true),
    false,
  );

// A cookie of this site (where a full localStorage cannot keep the visitor's
// variant): its value, or null; setCookie with null removes it.
// Whether a script's URL cannot be set as a string here (the element is
// never added: nothing loads).
export function scriptsBlocked() {
  try {
    document.createElement("script").src = "data:,";
    return false;
  } catch {
    return true;
  }
}

export function getCookie(name) {
  try {
    const prefix = encodeURIComponent(name) + "=";
    for (const part of document.cookie.split("; ")) {
      if (part.startsWith(prefix)) return decodeURIComponent(part.slice(prefix.length));
    }
  } catch {
    // no document, or cookies blocked
  }
  return null;
}
export function setCookie(name, value, days) {
  try {
    document.cookie = `${encodeURIComponent(name)}=${value == null ? "" : encodeURIComponent(value)}; path=/; max-age=${value == null ? 0 : days * 86400}; SameSite=Lax`;
  } catch {
    // no document, or cookies blocked
  }
}
