// The only hand-written JavaScript the Rust side imports (a wasm-bindgen
// snippet): the browser plumbing that waits. Requests (fetch or a JSONP script
// tag), timers, page events, the flush lock and localStorage are here; every
// decision is a synchronous call back into Rust, `d.step(op, …)` on `d`, the
// client's `Driver` (src/driver.rs): what to request next, what an answer
// means, when to retry, what to keep. Declarations for TypeScript come from
// the Rust side (src/lib.rs, src/error.rs…); every import Rust makes of this
// file is declared in src/glue.rs.

// The steps of `d.step`: src/driver.rs's `Op`, numbered alike (a test there
// holds this table equal to it; keep it before the first export).
const LOADED = 0, START = 1, DELIVER = 2, DONE = 3, LEASE_TAKE = 4, LEASE_HELD = 5;
const LEASE_GIVE = 6, PERSIST = 7, EVENT = 8, EXPERIMENT = 9, FORM = 10, SUGGEST = 11;
const VIEW = 12, REWARD = 13, UNSTICK = 14, LOAD = 15, FLUSH = 16, QUEUED = 17, CLOSE = 18;
const SHARE = 19, LIST = 20;

// ---- The page's classes (declared in src/lib.rs): each call is one step of
// a strong driver of the client `#d` (each object has its own, which `free`
// releases: the client goes with the last), which decides and throws the
// MynaErrors.

export class Myna {
  #d;
  #l;
  // The experiments (uuids) whose preview link this client has viewed: a
  // link counts one view a page load, however often the page is bound.
  #p = new Set();
  constructor(d, listeners) {
    this.#d = d;
    this.#l = listeners;
  }
  experiment(key) {
    return new Experiment(this.#d.step(SHARE), this.#d.step(EXPERIMENT, key));
  }
  get experiments() {
    const all = {};
    for (const uuid of this.#d.step(LIST)) {
      const x = new Experiment(this.#d.step(SHARE), uuid);
      all[x.id ?? uuid] = x;
    }
    return all;
  }
  // The declarative binding (myna-html's markup, see the declarations in
  // src/lib.rs): markup to the calls above; the rules (sticky variants, one
  // view per visitor, one reward per view) are the Rust side's.
  bind(root = document, { navigate = (url) => location.replace(url) } = {}) {
    const shown = {};
    const want = asked();
    // `#preview` (myna-html's preview mode): shown, nothing counted or stuck.
    const preview = want.preview === "";
    for (const uuid of this.#d.step(LIST)) {
      const x = new Experiment(this.#d.step(SHARE), uuid);
      try {
        const name = cssClass(x.settings, x.id);
        // The root itself too, when it is one of the elements.
        const sel = "." + CSS.escape(name);
        const all = name ? [...(root.matches?.(sel) ? [root] : []), ...root.querySelectorAll(sel)] : [];
        const l = this.#l;
        const kind = (e) => e.dataset.goal;
        if (!preview) {
          // A load goal rewards the view of an earlier page (none: no-view).
          if (all.some((e) => kind(e) == "load")) goal(x, l);
          for (const e of all) {
            let on = clicks.get(e);
            if (kind(e) == "click" && !on?.has(uuid)) {
              clicks.set(e, (on ||= new Set()).add(uuid));
              e.addEventListener("click", () => goal(x, l));
            }
          }
        }
        // Shown unless every element is only a goal.
        const only = (e) => kind(e) && !["show", "hide", "bind", "redirect"].some((k) => k in e.dataset);
        if (all.some((e) => !only(e))) {
          // Every variant is shown first on inert copies of the elements:
          // what would fail (a Trusted Types policy refusing `html=`, an
          // attribute name no element takes) fails here, before a view
          // is counted or the page changed.
          inert ||= document.implementation.createHTMLDocument("");
          for (const v of x.variants) for (const e of all) show(inert.importNode(e, false), v, () => {});
          // A variant the URL asks for is viewed (and sticks; once a
          // page load), else one is suggested.
          const w = x.id != null && own(want, x.id) ? want[x.id] : null;
          const named = x.variants.find((v) => v.id === w);
          const link = named && !preview && !this.#p.has(uuid);
          const v = (shown[x.id ?? uuid] = preview ? (named ?? x.variants[0]) : link ? x.view(w) : x.suggest());
          if (link) this.#p.add(uuid);
          if (v) for (const e of all) show(e, v, navigate);
        }
      } catch (e) {
        emit(this.#l, "error", bindError(e, x.id ?? uuid));
      }
    }
    return shown;
  }
  load(uuid) {
    return this.#d.step(LOAD, uuid).then((u) => new Experiment(this.#d.step(SHARE), u));
  }
  flush() {
    return this.#d.step(FLUSH);
  }
  // The listeners of "sync" and "error": [name, function] pairs.
  on(name, f) {
    this.#l.push([name, f]);
  }
  off(name, f) {
    const list = this.#l;
    for (let i = list.length; i--; ) if (list[i][0] === name && list[i][1] === f) list.splice(i, 1);
  }
  get queued() {
    return this.#d.step(QUEUED);
  }
  close() {
    this.#d.step(CLOSE);
  }
  free() {
    this.#d.free();
    this.#d = FREED;
  }
}

const object = (v) => (v && typeof v == "object" ? v : {});

// The `Variant` objects of a read form, made once per form (every `suggest`
// or `view` of it hands out the same object).
const made = new WeakMap();
function variants(form) {
  let list = made.get(form);
  if (!list) {
    const all = form.variants;
    // A read form's variants are keyed by id; a deployment's, an array.
    const pairs = Array.isArray(all) ? all.map((v) => [v.id, v]) : Object.entries(all);
    list = pairs.map(([id, { name, settings }]) => ({
      id,
      name: typeof name == "string" ? name : id,
      settings: object(settings),
    }));
    made.set(form, list);
  }
  return list;
}

// ---- The declarative binding's markup (Myna.bind).

// Whether `key` is `o`'s own (Object.hasOwn, which Safari has only from 15.4).
const own = (o, key) => Object.prototype.hasOwnProperty.call(o, key);

// A settings path `a.b.c` read in `value`, stored flat, nested or anything
// between (as core's `decision::rule::setting` reads it; core's reader
// needs std, so not in the wasm): the value, or undefined. Own keys only.
function setting(value, names) {
  if (value && typeof value == "object") {
    for (let i = 1; i <= names.length; i++) {
      const key = names.slice(0, i).join(".");
      if (own(value, key)) {
        const found = i < names.length ? setting(value[key], names.slice(i)) : value[key];
        if (found !== undefined) return found;
      }
    }
  }
}
const path = (value, p) => setting(value, p.split("."));

// The class of an experiment's elements: its setting `myna.html.cssClass`,
// else `myna-{id}` (js/boot.js applies the same rule to the deployment).
function cssClass(settings, id) {
  const name = path(settings, "myna.html.cssClass");
  return typeof name == "string" && name ? name : id && "myna-" + id;
}

// A goal's reward: a visitor who saw nothing has nothing to reward
// (`no-view`, not an error); any other failure goes to `error` listeners.
const goal = (x, listeners) => {
  try {
    x.reward();
  } catch (e) {
    if (e?.code != "no-view") emit(listeners, "error", e);
  }
};

// The document the binding tries its changes in first (no loads, no scripts).
let inert;

// A failed binding as the `error` listeners get it: a MynaError.
function bindError(e, experiment) {
  if (e instanceof MynaError) return e;
  const m = `The markup of experiment ${experiment} could not be bound, so it is shown as written: ${e?.message ?? e}`;
  return new MynaError(m, "invalid-value", undefined, undefined, ["invalid-value", m, undefined]);
}

// Elements with a click goal's listener, by the experiments they reward.
const clicks = new WeakMap();
// Elements the binding hid, with the inline `display` they had (put back
// when shown again, and only then).
const hid = new WeakMap();

// A variant's value named `p`: its id, its name, or a settings path.
const value = (v, p) => (p == "id" ? v.id : p == "name" ? v.name : path(v.settings, p));

// The variants the page's URL fragment asks for by experiment id
// (`#hero=b&cta=a`: myna-html's preview links); a bare word (`preview`)
// is there with the value "".
function asked() {
  const out = {};
  for (const part of location.hash.slice(1).split("&")) {
    const at = part.indexOf("=");
    try {
      if (at > 0) out[decodeURIComponent(part.slice(0, at))] = decodeURIComponent(part.slice(at + 1));
      else if (at < 0 && part) out[decodeURIComponent(part)] = "";
    } catch {
      // not percent-encoded text: asks for nothing
    }
  }
  return out;
}

// The attributes that take a URL a browser may follow or load.
const URLS = /^@(href|src|action|formaction|xlink:href|data|poster|cite|ping|background)$/i;

// `x` resolved against the page when it is a URL of a scheme `schemes`
// names (a relative one included), else undefined (`javascript:`…).
function resolved(x, schemes) {
  try {
    const u = new URL(x, location.href);
    if (schemes.test(u.protocol)) return u.href;
  } catch {
    // not a URL
  }
}

// One element of a shown experiment, variant `v`.
function show(e, v, navigate) {
  const { show: s, hide: h, bind: b, redirect: r } = e.dataset;
  const is = (x) => x === v.id || !!path(v.settings, x);
  const style = e.style;
  if ((s != null && !is(s)) || (h != null && is(h))) {
    if (!hid.has(e)) hid.set(e, [style.getPropertyValue("display"), style.getPropertyPriority("display")]);
    // Inline and important (myna-html hid with jQuery's inline `display:
    // none`): the page's own `display` rules for the element never show it.
    style.setProperty("display", "none", "important");
  } else {
    if (hid.has(e)) {
      const [was, priority] = hid.get(e);
      hid.delete(e);
      was ? style.setProperty("display", was, priority) : style.removeProperty("display");
    }
    // A variant's element the page wrote hidden (for visitors without
    // JavaScript: `hidden`, inline `display: none`, `aria-hidden`) is
    // shown when its variant is, to screen readers too (as myna-html's
    // jQuery `show()` did).
    if (s != null || h != null) {
      e.hidden = false;
      if (style.getPropertyValue("display") == "none") style.removeProperty("display");
      if (e.getAttribute("aria-hidden") == "true") e.removeAttribute("aria-hidden");
    }
  }
  for (const one of b ? b.split(/[\s,]+/) : []) {
    // `text=path`; a bare `text` (or `text=`) is the variant's name, as in myna-html.
    const at = one.indexOf("=");
    const k = at < 0 ? one : one.slice(0, at);
    const x = at < 0 || at == one.length - 1 ? v.name : value(v, one.slice(at + 1));
    if (!k || x == null || typeof x == "object") continue;
    if (k == "text") e.textContent = x;
    else if (k == "html") e.innerHTML = x;
    else if (k == "class") e.classList.add(...("" + x).split(/\s+/).filter(Boolean));
    // Never an event handler attribute (code from settings, which a CSP
    // blocks anyway) nor `srcdoc`; a URL attribute only to a URL that is
    // no script (`javascript:`), as `data-redirect`.
    else if (k[0] == "@" && !/^@(on|srcdoc$)/i.test(k) && (!URLS.test(k) || resolved(x, /^(https?|mailto|tel):$/))) e.setAttribute(k.slice(1), x);
  }
  const to = r && value(v, r);
  const url = typeof to == "string" && to && resolved(to, /^https?:$/);
  if (url && url != location.href) navigate(url);
}

export class Experiment {
  #d;
  constructor(d, uuid) {
    this.#d = d;
    this.uuid = uuid;
  }
  #form() {
    return this.#d.step(FORM, this.uuid);
  }
  #variant(id) {
    return variants(this.#form()).find((v) => v.id === id);
  }
  get id() {
    return this.#form().id ?? null;
  }
  get name() {
    const { name } = this.#form();
    return typeof name == "string" ? name : "";
  }
  get settings() {
    return object(this.#form().settings);
  }
  get variants() {
    return [...variants(this.#form())];
  }
  suggest() {
    return this.#variant(this.#d.step(SUGGEST, this.uuid));
  }
  view(id) {
    this.#d.step(VIEW, this.uuid, (id = "" + id));
    return this.#variant(id);
  }
  reward(amount) {
    // Only a number is an amount: anything else (`"0.5"`, `[]`, `true`) is
    // refused by core as NaN is, not converted.
    return this.#d.step(REWARD, this.uuid, amount == null || typeof amount == "number" ? amount : NaN);
  }
  unstick() {
    this.#d.step(UNSTICK, this.uuid);
  }
  free() {
    this.#d.free();
    this.#d = FREED;
  }
}

// What a released handle answers: a MynaError (wasm-bindgen's own would be
// "null pointer passed to rust"); releasing it again does nothing.
const FREED = {
  step() {
    throw new MynaError("This handle was released (free): connect again, or use another.", "invalid-value", undefined, undefined, []);
  },
  free() {},
};

if (Symbol.dispose) {
  Myna.prototype[Symbol.dispose] = Myna.prototype.free;
  Experiment.prototype[Symbol.dispose] = Experiment.prototype.free;
}

// An error thrown or emitted by the SDK: a real `Error` (with a stack) that
// carries the problem's `code`, and `path` / `status` where they apply.
// `list` is every message as [code, message, path, code, message, path, …].
export class MynaError extends Error {
  constructor(message, code, path, status, list) {
    super(message);
    this.name = "MynaError";
    this.code = code;
    if (path !== undefined) this.path = path;
    if (status !== undefined) this.status = status;
    this.messages = [];
    for (let i = 0; i < list.length; i += 3) {
      const m = { code: list[i], message: list[i + 1] };
      if (list[i + 2] !== undefined) m.path = list[i + 2];
      this.messages.push(m);
    }
  }
}

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

// ---- Requests.

// A request as Rust describes it: [url, auth header, POST body, timeout ms,
// by JSONP, and what Rust wants back with the answer].
export const request = (...parts) => parts;

// JSONP callbacks live in window.__mynaJsonp; names carry a random part per
// copy of this module, so two copies of the SDK on one page never collide.
const instance = (Math.random() * 1e9) >>> 0;
let calls = 0;

// Sends a request; resolves (never rejects) with [status, parsed body or
// null, Retry-After or null, Retry-After as a date (Date.parse), the
// answer's Date (Date.parse)], or "network" / "timeout".
function send([url, auth, body, ms, jsonp]) {
  return new Promise((done) => {
    let timer;
    const end = (answer) => {
      clearTimeout(timer);
      done(answer);
    };
    const timeout = (f) => (timer = setTimeout(f, ms));
    try {
      if (jsonp) script(url, end, timeout);
      else http(url, auth, body, end, timeout);
    } catch {
      end("network"); // no DOM, or no fetch
    }
  });
}

// A JSONP GET: the script is removed whatever happens; after a timeout its
// callback stays registered as a no-op, so a late answer finds it. A script
// that ran without calling back (a broken or foreign answer) answers with no
// body; the exceptions it throws while it runs (a truncated answer's
// SyntaxError) are kept from the page's error handlers.
function script(url, end, timeout) {
  const registry = (globalThis.__mynaJsonp ||= {});
  const name = `c${instance}_${++calls}`;
  const element = document.createElement("script");
  const guard = (e) => {
    if (document.currentScript === element) {
      e.preventDefault();
      e.stopImmediatePropagation();
    }
  };
  const finish = (answer) => {
    element.onerror = element.onload = null;
    removeEventListener("error", guard, true);
    element.remove();
    end(answer);
  };
  registry[name] = (value) => {
    delete registry[name];
    finish([200, value, null]);
  };
  element.onerror = () => {
    delete registry[name];
    finish("network");
  };
  element.onload = () => {
    registry[name] = () => {};
    finish([200, null, null]);
  };
  timeout(() => {
    registry[name] = () => {};
    finish("timeout");
  });
  addEventListener("error", guard, true);
  element.src = `${url}${url.includes("?") ? "&" : "?"}callback=__mynaJsonp.${name}`;
  (document.head || document.documentElement).appendChild(element);
}

// A fetch: no cookies, `auth` as the Authorization header, a text/plain body
// (a CORS "simple" request: no preflight), aborted at the timeout.
function http(url, auth, body, end, timeout) {
  const abort = new AbortController();
  let late = false;
  timeout(() => {
    late = true;
    abort.abort();
  });
  const headers = {};
  if (auth) headers.Authorization = auth;
  if (body != null) headers["Content-Type"] = "text/plain";
  fetch(url, {
    method: body == null ? "GET" : "POST",
    body,
    headers,
    credentials: "omit",
    signal: abort.signal,
  }).then(
    async (r) => {
      const after = r.headers.get("Retry-After");
      const date = Date.parse(r.headers.get("Date"));
      end([r.status, await r.json().catch(() => null), after, Date.parse(after), date]);
    },
    () => end(late ? "timeout" : "network"),
  );
}

// Loads (Myna.connect, myna.load): each answer goes to Rust, which gives the
// next request (a next search page) or nothing; a MynaError it throws
// rejects. Resolves with `value`.
export async function load(d, req, value) {
  while (req) req = d.step(LOADED, await send(req), req);
  return value;
}

// ---- Flushes: one after another in a page, under a lock across tabs.

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// The flush lock: an exclusive Web Lock, else Rust's lease in localStorage
// (take it, check after a short random pause that no other tab took it too,
// then renew it every `renewMs` while it is held). Resolves with the
// function that releases it.
async function acquire(d, name, renewMs) {
  const locks = globalThis.navigator && navigator.locks;
  // Web Locks denied (a sandboxed frame): the lease instead.
  const release =
    locks &&
    (await new Promise((held) => {
      try {
        const granted = () => new Promise((release) => held(release));
        locks.request(name, granted).catch(() => held());
      } catch {
        held();
      }
    }));
  if (release) return release;
  for (;;) {
    if (d.step(LEASE_TAKE)) {
      await sleep(10 + 20 * Math.random());
      if (d.step(LEASE_HELD)) {
        const timer = setInterval(() => d.step(LEASE_HELD), renewMs);
        return () => {
          clearInterval(timer);
          d.step(LEASE_GIVE);
        };
      }
    }
    await sleep(100);
  }
}

// Myna.flush: after the previous flush, holding the lock, Rust's requests
// one at a time until it has none left; resolves with Rust's counts, or
// rejects with the MynaError of the attempt that failed. `eager` (the
// page's own flush) goes to Rust with the first step.
export function flush(d, lockName, eager, renewMs) {
  // What the runs before this one confirm while it waits counts as its own
  // for the page's flush (`eager`): a run in flight when the page asked
  // sent the events it holds.
  const total = (d.total ||= counts(0, 0, 0));
  const from = { ...total };
  const run = (d.last || Promise.resolve()).then(async () => {
    const release = await acquire(d, lockName, renewMs);
    try {
      let req = d.step(START, eager);
      while (req) req = d.step(DELIVER, await send(req));
    } finally {
      release();
    }
    const done = d.step(DONE);
    for (const k in total) total[k] += done[k];
    return eager ? counts(...Object.keys(total).map((k) => total[k] - from[k])) : done;
  });
  d.last = run.catch(() => {});
  return run;
}

// ---- Events to the page's listeners ([name, function] pairs), and their
// payloads.

export const counts = (sent, dropped, requeued) => ({ sent, dropped, requeued });
export const setDropped = (error, dropped) => (error.dropped = dropped);

export function emit(list, name, payload) {
  for (const [n, f] of [...list]) {
    if (n === name) {
      try {
        f(payload);
      } catch {
        // A throwing listener must not break the SDK.
      }
    }
  }
}

// ---- Page life.

// The queue is written in a microtask: a burst of events costs one write.
export const later = (d) => queueMicrotask(() => d.step(PERSIST));

// A tick every `ms`, and the page events Rust reacts to, from the next task
// (the page's first decisions come first), then "start"; `ms` 0 stops them
// all.
export function listen(d, ms) {
  if (!ms) return d.stop();
  const doc = globalThis.document;
  const on = (e) =>
    d.step(EVENT, e.type != "visibilitychange" ? e.type : doc.visibilityState == "hidden" ? "hidden" : "visible");
  const hooks = [
    [globalThis, "pagehide"],
    [globalThis, "pageshow"],
    [globalThis, "storage"],
    [globalThis, "online"],
  ];
  if (doc) hooks.push([doc, "visibilitychange"], [doc, "freeze"]);
  let timer;
  const wait = setTimeout(() => {
    // Outside a page (Node) there may be no events to hear, and the timer
    // must not keep the process alive.
    for (const [target, type] of hooks) target.addEventListener?.(type, on);
    timer = setInterval(() => d.step(EVENT, "tick"), ms);
    timer.unref?.();
    d.step(EVENT, "start");
  });
  d.stop = () => {
    clearTimeout(wait);
    clearInterval(timer);
    for (const [target, type] of hooks) target.removeEventListener?.(type, on);
  };
}
