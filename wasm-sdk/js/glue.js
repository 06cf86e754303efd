// The only hand-written JavaScript the Rust side imports (a wasm-bindgen
// snippet): what Rust cannot express. Declarations for TypeScript come from the
// Rust side (src/error.rs).

// An error thrown or emitted by the SDK: a real `Error` (with a stack) that
// carries the problem's `code`, and `path` / `status` where they apply.
export class MynaError extends Error {
  constructor(message, code, path, status, messages) {
    super(message);
    this.name = "MynaError";
    this.code = code;
    if (path !== undefined) this.path = path;
    if (status !== undefined) this.status = status;
    this.messages = messages;
  }
}

// Web Locks: a Promise of the function that releases the exclusive lock
// `name`, or null where the browser has no Web Locks (the caller then uses a
// lease in localStorage).
export function lock(name) {
  const locks = globalThis.navigator && navigator.locks;
  if (!locks) return null;
  return new Promise((acquired) =>
    locks.request(name, () => new Promise((release) => acquired(release))),
  );
}
