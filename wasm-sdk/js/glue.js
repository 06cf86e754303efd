// The hand-written JavaScript the Rust side imports (wasm-bindgen snippets,
// with js/transport.js and js/storage.js): the page's classes, the
// declarative binding, events to the page's listeners and the page's life
// here; requests (fetch or a JSONP script tag) and the flush lock in
// transport.js; localStorage and the cookie in storage.js. Every
// decision is a synchronous call back into Rust, `d.step(op, …)` on `d`, the
// client's `Driver` (src/driver.rs): what to request next, what an answer
// means, when to retry, what to keep. Declarations for TypeScript come from
// the Rust side (src/lib.rs, src/error.rs…); every import Rust makes of this
// file is declared in src/glue.rs.

// The steps of `d.step`: src/driver.rs's `Op`, numbered alike (a test there
// holds this table equal to it; keep it first). js/transport.js takes the
// steps of requests and flushes from here.
export const LOADED = 0, START = 1, DELIVER = 2, DONE = 3, LEASE_TAKE = 4, LEASE_HELD = 5;
export const LEASE_GIVE = 6, PERSIST = 7, EVENT = 8, EXPERIMENT = 9, FORM = 10, SUGGEST = 11;
export const VIEW = 12, REWARD = 13, UNSTICK = 14, LOAD = 15, FLUSH = 16, QUEUED = 17, CLOSE = 18;
export const SHARE = 19, LIST = 20;

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

// SVG's animation elements, whose values set another attribute (an `href`
// to `javascript:`): settings set none of their attributes.
const ANIMATION = /^(animate|animateMotion|animateTransform|set)$/;

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
    // blocks anyway) nor `srcdoc`, nor any of an SVG animation's; a URL
    // attribute only to a URL that is no script (`javascript:`), as
    // `data-redirect`.
    else if (
      k[0] == "@" &&
      !/^@(on|srcdoc$)/i.test(k) &&
      !ANIMATION.test(e.localName) &&
      (!URLS.test(k) || resolved(x, /^(https?|mailto|tel):$/))
    )
      e.setAttribute(k.slice(1), x);
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

// ---- Events to the page's listeners ([name, function] pairs), and their
// payloads.

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

// The queue is written in a microtask: a burst of events costs one write
// (a resolved promise's, where queueMicrotask is missing: old browsers).
const microtask = globalThis.queueMicrotask?.bind(globalThis) || ((f) => Promise.resolve().then(f));
export const later = (d) => microtask(() => d.step(PERSIST));

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
