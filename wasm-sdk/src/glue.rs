//! Every import of the SDK: the `#[wasm_bindgen] extern` blocks of
//! `js/glue.js` (the page's classes, `MynaError`, the page's life and its
//! listeners), `js/transport.js` (requests and flushes), `js/storage.js`
//! (localStorage and the cookie) and of the few browser globals called
//! directly. Nothing else in the crate declares an import, so this file
//! is the whole of what the Rust side asks of JavaScript.

use alloc::string::String;

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    // ---- The page's classes (declared for TypeScript in `lib.rs`).

    /// The page's `Myna` (a thin class in `js/glue.js` that calls
    /// `Driver::step` of its own strong `Driver`).
    pub type Myna;

    /// A new `Myna` around a client's strong driver and its listeners.
    #[wasm_bindgen(constructor)]
    pub(crate) fn new(driver: JsValue, listeners: &Array) -> Myna;

    /// The page's `Experiment` (a thin class in `js/glue.js`).
    pub type Experiment;

    /// Re-exports the classes from the package (function imports, so that
    /// the TypeScript declarations are the ones of `lib.rs`).
    #[wasm_bindgen(reexport, skip_typescript, js_name = Myna)]
    fn myna_class();
    #[wasm_bindgen(reexport, skip_typescript, js_name = Experiment)]
    fn experiment_class();

    /// `myna.experiment(uuidOrId)`.
    #[wasm_bindgen(method, catch)]
    pub fn experiment(this: &Myna, key: &str) -> Result<Experiment, JsValue>;
    /// `myna.experiments` (by id, or uuid).
    #[wasm_bindgen(method, getter)]
    pub fn experiments(this: &Myna) -> JsValue;
    /// `myna.bind(root, options)`: the variants shown, by experiment id.
    #[wasm_bindgen(method)]
    pub fn bind(this: &Myna, root: &JsValue, options: &JsValue) -> JsValue;
    /// `myna.load(uuid)`.
    #[wasm_bindgen(method)]
    pub fn load(this: &Myna, uuid: &str) -> Promise;
    /// `myna.flush()`.
    #[wasm_bindgen(method)]
    pub fn flush(this: &Myna) -> Promise;
    /// `myna.on(event, listener)`.
    #[wasm_bindgen(method)]
    pub fn on(this: &Myna, event: JsValue, listener: Function);
    /// `myna.off(event, listener)`.
    #[wasm_bindgen(method)]
    pub fn off(this: &Myna, event: JsValue, listener: Function);
    /// `myna.queued`.
    #[wasm_bindgen(method, getter)]
    pub fn queued(this: &Myna) -> usize;
    /// `myna.close()`.
    #[wasm_bindgen(method)]
    pub fn close(this: &Myna);

    /// `expt.uuid`.
    #[wasm_bindgen(method, getter)]
    pub fn uuid(this: &Experiment) -> String;
    /// `expt.id`.
    #[wasm_bindgen(method, getter)]
    pub fn id(this: &Experiment) -> Option<String>;
    /// `expt.name`.
    #[wasm_bindgen(method, getter, catch)]
    pub fn name(this: &Experiment) -> Result<JsValue, JsValue>;
    /// `expt.settings`.
    #[wasm_bindgen(method, getter, catch)]
    pub fn settings(this: &Experiment) -> Result<JsValue, JsValue>;
    /// `expt.variants`.
    #[wasm_bindgen(method, getter, catch)]
    pub fn variants(this: &Experiment) -> Result<Array, JsValue>;
    /// `expt.suggest()`.
    #[wasm_bindgen(method, catch)]
    pub fn suggest(this: &Experiment) -> Result<JsValue, JsValue>;
    /// `expt.view(variantId)`.
    #[wasm_bindgen(method, catch)]
    pub fn view(this: &Experiment, variant_id: &str) -> Result<JsValue, JsValue>;
    /// `expt.reward(amount)`.
    #[wasm_bindgen(method, catch)]
    pub fn reward(this: &Experiment, amount: Option<f64>) -> Result<bool, JsValue>;
    /// `expt.unstick()`.
    #[wasm_bindgen(method)]
    pub fn unstick(this: &Experiment);

    // ---- Errors (declared for TypeScript in `error.rs`).

    /// The SDK's `MynaError` (a real `Error`).
    pub(crate) type MynaError;

    /// `list`: every message as `code, message, path` (path `undefined`
    /// when there is none), flat.
    #[wasm_bindgen(constructor, js_class = "MynaError")]
    pub(crate) fn new(
        message: &str,
        code: &str,
        path: Option<&str>,
        status: Option<u16>,
        list: Array,
    ) -> MynaError;

    /// Re-exports the class itself from the package (as a function import so
    /// that the TypeScript declaration is `error.rs`'s, not `unknown`).
    #[wasm_bindgen(reexport, skip_typescript, js_name = MynaError)]
    fn myna_error_class();

    /// Sets the `dropped` count of a `queue-full` `MynaError`.
    #[wasm_bindgen(js_name = setDropped)]
    pub(crate) fn set_dropped(error: &JsValue, dropped: f64);

    // ---- The page's life and its listeners: each waits, then calls
    // `Driver::step` (`driver.rs`'s `Op`s, named alike in `js/glue.js`).

    /// Calls `PERSIST` in a microtask.
    pub(crate) fn later(driver: &JsValue);

    /// Calls `EVENT` every `ms` (`"tick"`) and at page events; with `ms`
    /// 0, stops them.
    pub(crate) fn listen(driver: &JsValue, ms: f64);

    /// Calls each listener of `name` with `payload`, in order; one that
    /// throws does not stop the others.
    pub(crate) fn emit(listeners: &Array, name: &str, payload: &JsValue);
}

/// Requests and flushes (`js/transport.js`): each waits, then calls
/// `Driver::step`.
#[wasm_bindgen(module = "/js/transport.js")]
extern "C" {
    /// Runs `request`, then each next request `LOADED` gives; resolves
    /// with `value` (rejects with the `MynaError` it throws).
    pub(crate) fn load(driver: &JsValue, request: &JsValue, value: JsValue) -> Promise;

    /// After the previous flush of this driver and holding the flush lock
    /// `lock` (a lease renewed every `renew_ms` where Web Locks are
    /// missing): `START` (told whether the flush is `eager`: the page's
    /// own), a `DELIVER` for the answer to each request it gives, then
    /// `DONE`.
    pub(crate) fn flush(driver: &JsValue, lock: &str, eager: bool, renew_ms: f64) -> Promise;

    /// The `{ sent, dropped, requeued }` object of a `sync` event.
    pub(crate) fn counts(sent: f64, dropped: f64, requeued: f64) -> JsValue;

    /// The request `[url, auth, body, timeoutMs, jsonp, tag]` as
    /// transport.js sends it: a GET (a POST when there is a body) by fetch with `auth` as the
    /// `Authorization` header, or a JSONP script tag; `tag` comes back with
    /// the answer.
    pub(crate) fn request(
        url: &str,
        auth: Option<&str>,
        body: Option<&str>,
        timeout_ms: f64,
        jsonp: bool,
        tag: &JsValue,
    ) -> JsValue;
}

/// localStorage (a map for the page's life where it is blocked) and the
/// cookie a full storage leaves the visitor's state in (`js/storage.js`).
#[wasm_bindgen(module = "/js/storage.js")]
extern "C" {
    #[wasm_bindgen(js_name = getItem)]
    pub(crate) fn get_item(key: &str) -> Option<String>;
    #[wasm_bindgen(js_name = setItem)]
    pub(crate) fn set_item(key: &str, value: &str) -> bool;
    #[wasm_bindgen(js_name = removeItem)]
    pub(crate) fn remove_item(key: &str);
    #[wasm_bindgen(js_name = storedKeys)]
    pub(crate) fn stored_keys(prefix: &str) -> Array;
    #[wasm_bindgen(js_name = getCookie)]
    pub(crate) fn get_cookie(name: &str) -> Option<String>;
    #[wasm_bindgen(js_name = setCookie)]
    pub(crate) fn set_cookie(name: &str, value: Option<&str>, days: f64);

    /// Whether the page cannot add a script by URL (no document, or Trusted
    /// Types refuse a string as its `src`): the JSONP transport could not send.
    #[wasm_bindgen(js_name = scriptsBlocked)]
    pub(crate) fn scripts_blocked() -> bool;
}

#[wasm_bindgen]
extern "C" {
    /// `String(x)`: the browser's own number formatting.
    #[wasm_bindgen(js_name = String)]
    pub(crate) fn number_text(x: f64) -> String;

    /// `crypto.getRandomValues`.
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues, catch)]
    pub(crate) fn random_values(bytes: &mut [u8]) -> Result<JsValue, JsValue>;

    /// `Reflect.get` with a string key (the caller checks `target` is an object).
    #[wasm_bindgen(js_namespace = Reflect, js_name = get)]
    pub(crate) fn reflect_get(target: &JsValue, key: &str) -> JsValue;

    /// `navigator.sendBeacon` (throws where there is no navigator).
    #[wasm_bindgen(js_namespace = navigator, js_name = sendBeacon, catch)]
    pub(crate) fn send_beacon(url: &str, body: &str) -> Result<bool, JsValue>;
}
