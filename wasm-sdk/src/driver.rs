//! The asynchronous half of the client. `js/glue.js` does the waiting
//! (requests, the flush lock, timers, page events, the queue's microtask
//! write) and, at each step, calls back into a [`Driver`]: one synchronous
//! call per decision, made by the [`Client`]. No Rust future runs in the
//! package: an async executor and its promise plumbing would weigh more
//! than the client itself.

use alloc::rc::{Rc, Weak};

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use crate::client::Client;

#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    /// Runs `request`, then each next request [`Driver::loaded`] gives;
    /// resolves with `value` (rejects with the `MynaError` it throws).
    pub fn load(driver: &JsValue, request: &JsValue, value: JsValue) -> Promise;

    /// After the previous flush of this driver and holding the flush lock
    /// `lock`: the requests of [`Driver::deliver`], then [`Driver::done`].
    pub fn flush(driver: &JsValue, lock: &str) -> Promise;

    /// Calls [`Driver::persist`] in a microtask.
    pub fn later(driver: &JsValue);

    /// Calls [`Driver::on`] every `ms` (`"tick"`) and at page events; the
    /// function that stops them.
    pub fn listen(driver: &JsValue, ms: f64) -> Function;
}

/// The client as `js/glue.js` sees it. It holds the client weakly: a page
/// that drops its `Myna` drops the client, and a late timer or answer then
/// finds nothing to do.
#[wasm_bindgen(skip_typescript)]
pub struct Driver {
    client: Weak<Client>,
}

impl Driver {
    /// The driver of a client.
    pub fn new(client: Weak<Client>) -> Driver {
        Driver { client }
    }

    fn client(&self) -> Option<Rc<Client>> {
        self.client.upgrade()
    }
}

#[wasm_bindgen]
impl Driver {
    /// Takes the answer to a load request; the next request (a next search
    /// page), or `undefined` when the load is complete.
    #[wasm_bindgen(skip_typescript)]
    pub fn loaded(&self, answer: JsValue, request: JsValue) -> Result<JsValue, JsValue> {
        match self.client() {
            Some(c) => c.loaded(&answer, &request),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// One step of a flush: takes the answer to the last request (`undefined`
    /// at the start); the next request, or `undefined` when the run is over.
    #[wasm_bindgen(skip_typescript)]
    pub fn deliver(&self, answer: JsValue) -> JsValue {
        match self.client() {
            Some(c) => c.deliver(&answer),
            None => JsValue::UNDEFINED,
        }
    }

    /// The end of a flush: its counts, or the error of the attempt that failed.
    #[wasm_bindgen(skip_typescript)]
    pub fn done(&self) -> Result<JsValue, JsValue> {
        match self.client() {
            Some(c) => c.done(),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// The flush lease where Web Locks are missing: `0` takes it if free
    /// (whether it did), `1` whether it is still ours, `2` gives it back.
    #[wasm_bindgen(skip_typescript)]
    pub fn lease(&self, step: u32) -> bool {
        self.client().is_none_or(|c| c.lease(step))
    }

    /// Writes the queue (the microtask after events were queued).
    #[wasm_bindgen(skip_typescript)]
    pub fn persist(&self) {
        if let Some(c) = self.client() {
            c.persist();
        }
    }

    /// A tick (`"tick"`) or a page event: `pagehide`, `freeze`, `hidden` and
    /// `visible` (visibility changes), `pageshow`, `storage`, `online`.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: &str) {
        if let Some(c) = self.client() {
            c.page_event(event);
        }
    }
}
