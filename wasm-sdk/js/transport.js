// Requests (fetch or a JSONP script tag) and flushes under the flush lock,
// for the Rust side (a wasm-bindgen snippet; every import Rust makes of it is
// declared in src/glue.rs). Every decision is a synchronous call back into
// Rust, `d.step(op, …)`, with js/glue.js's step table.

import { DELIVER, DONE, LEASE_GIVE, LEASE_HELD, LEASE_TAKE, LOADED, START } from "./glue.js";

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
// (a CORS "simple" request: no preflight), aborted at the timeout, which
// answers then whatever the fetch does (another script's wrapper of `fetch`
// may ignore the signal and never settle; a later answer is ignored).
function http(url, auth, body, end, timeout) {
  const abort = new AbortController();
  let late = false;
  timeout(() => {
    late = true;
    abort.abort();
    end("timeout");
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

// The `{ sent, dropped, requeued }` object of a flush and of a `sync` event.
export const counts = (sent, dropped, requeued) => ({ sent, dropped, requeued });
