//! The asynchronous half of the client. `js/glue.js` does the waiting
//! (requests, the flush lock, timers, page events, the queue's microtask
//! write) and, at each step, calls back [`Driver::step`]: one synchronous
//! call per decision, made by the [`Client`]. No Rust future runs in the
//! package: an async executor and its promise plumbing would weigh more
//! than the client itself.

use alloc::rc::{Rc, Weak};

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;

use crate::client::Client;
use crate::experiment::canonical_uuid;

#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    /// Runs `request`, then each next request [`op::LOADED`] gives;
    /// resolves with `value` (rejects with the `MynaError` it throws).
    pub fn load(driver: &JsValue, request: &JsValue, value: JsValue) -> Promise;

    /// After the previous flush of this driver and holding the flush lock
    /// `lock` (a lease renewed every `renew_ms` where Web Locks are
    /// missing): the requests of [`op::DELIVER`] (the first one told
    /// whether the flush is `eager`: the page's own), then [`op::DONE`].
    pub fn flush(driver: &JsValue, lock: &str, eager: bool, renew_ms: f64) -> Promise;

    /// Calls [`op::PERSIST`] in a microtask.
    pub fn later(driver: &JsValue);

    /// Calls [`op::EVENT`] every `ms` (`"tick"`) and at page events; with
    /// `ms` 0, stops them.
    pub fn listen(driver: &JsValue, ms: f64);

    /// Calls each listener of `name` with `payload`, in order; one that
    /// throws does not stop the others.
    pub fn emit(listeners: &Array, name: &str, payload: &JsValue);

    /// The `{ sent, dropped, requeued }` object of a `sync` event.
    pub fn counts(sent: f64, dropped: f64, requeued: f64) -> JsValue;

    /// Sets the `dropped` count of a `queue-full` `MynaError`.
    #[wasm_bindgen(js_name = setDropped)]
    pub fn set_dropped(error: &JsValue, dropped: f64);
}

/// The client as `js/glue.js` sees it. The one the client keeps (for its
/// timers, answers and listeners) holds it weakly: a page that drops its
/// `Myna` (which holds the one strong driver) drops the client, and a late
/// timer or answer then finds nothing to do.
#[wasm_bindgen(skip_typescript)]
pub struct Driver {
    client: Weak<Client>,
    _strong: Option<Rc<Client>>,
}

impl Driver {
    /// The weak driver of a client.
    pub fn new(client: Weak<Client>) -> Driver {
        Driver {
            client,
            _strong: None,
        }
    }

    /// The driver the page's `Myna` holds: it keeps the client alive.
    pub fn strong(client: Rc<Client>) -> Driver {
        Driver {
            client: Rc::downgrade(&client),
            _strong: Some(client),
        }
    }

    fn client(&self) -> Option<Rc<Client>> {
        self.client.upgrade()
    }
}

/// What [`Driver::step`] is asked to do (`js/glue.js` names them alike).
pub mod op {
    /// `arg`: the answer to a load request, `request`: that request. The
    /// next request (a next search page), or `undefined`; throws the
    /// `MynaError` of a failed load.
    pub const LOADED: u32 = 0;
    /// `arg`: the answer to the last request of a flush (`undefined` at its
    /// start, when `request` says whether the flush is the page's own). The
    /// next request, or `undefined` when the run is over.
    pub const DELIVER: u32 = 1;
    /// The end of a flush: its counts; throws the error of the attempt that
    /// failed.
    pub const DONE: u32 = 2;
    /// The flush lease where Web Locks are missing: take it if free (whether
    /// it did)…
    pub const LEASE_TAKE: u32 = 3;
    /// …whether it is still ours (renewing it if so)…
    pub const LEASE_HELD: u32 = 4;
    /// …give it back.
    pub const LEASE_GIVE: u32 = 5;
    /// Write the queue (the microtask after events were queued).
    pub const PERSIST: u32 = 6;
    /// `arg`: a tick (`"tick"`) or a page event: `pagehide`, `freeze`,
    /// `hidden` and `visible` (visibility changes), `pageshow`, `storage`,
    /// `online`.
    pub const EVENT: u32 = 7;
    /// The page's calls (the classes of `js/glue.js`), `arg` an experiment
    /// uuid: `myna.experiment`, its canonical uuid (throws
    /// `unknown-experiment`)…
    pub const EXPERIMENT: u32 = 8;
    /// …the read form of a loaded experiment (throws `unknown-experiment`)…
    pub const FORM: u32 = 9;
    /// …`suggest`: the variant id…
    pub const SUGGEST: u32 = 10;
    /// …`view` of variant `request`…
    pub const VIEW: u32 = 11;
    /// …`reward` of amount `request` (a number or `undefined`): whether one was queued…
    pub const REWARD: u32 = 12;
    /// …`unstick`…
    pub const UNSTICK: u32 = 13;
    /// …`myna.load`: a Promise of the canonical uuid…
    pub const LOAD: u32 = 14;
    /// …`myna.flush` (no `arg`)…
    pub const FLUSH: u32 = 15;
    /// …`myna.queued`…
    pub const QUEUED: u32 = 16;
    /// …`myna.close`…
    pub const CLOSE: u32 = 17;
    /// …a new strong driver (each of the page's objects holds its own).
    pub const SHARE: u32 = 18;
}

#[wasm_bindgen]
impl Driver {
    /// One step: the operation [`op`]`::…` with its arguments; what it
    /// gives (`undefined` for steps that give nothing, booleans for the
    /// lease), or the `MynaError` it throws.
    #[wasm_bindgen(skip_typescript)]
    pub fn step(&self, op: u32, arg: JsValue, request: JsValue) -> Result<JsValue, JsValue> {
        let Some(c) = self.client() else {
            // A client the page dropped: its lease counts as taken, so a
            // waiting flush ends instead of polling forever.
            let lease = (op::LEASE_TAKE..=op::LEASE_GIVE).contains(&op);
            return Ok(if lease {
                JsValue::TRUE
            } else {
                JsValue::UNDEFINED
            });
        };
        let uuid = || arg.as_string().unwrap_or_default();
        Ok(match op {
            op::LOADED => return c.loaded(&arg, &request),
            op::EXPERIMENT => {
                let uuid = canonical_uuid(&uuid());
                c.with(&uuid, |_| ())?;
                uuid.into()
            }
            op::FORM => c.with(&uuid(), |e| e.form.clone())?,
            op::SUGGEST => c.suggest(&uuid())?.into(),
            op::VIEW => {
                c.view(&uuid(), &request.as_string().unwrap_or_default())?;
                JsValue::UNDEFINED
            }
            op::REWARD => c.reward(&uuid(), request.as_f64())?.into(),
            op::UNSTICK => {
                c.unstick(&uuid());
                JsValue::UNDEFINED
            }
            op::LOAD => {
                let uuid = canonical_uuid(&uuid());
                c.load(c.load_request(&uuid), uuid.into()).into()
            }
            op::FLUSH => c.flush(true).into(),
            op::QUEUED => (c.queued() as f64).into(),
            op::CLOSE => {
                c.close();
                JsValue::UNDEFINED
            }
            op::SHARE => Driver::strong(c).into(),
            op::DELIVER => c.deliver(&arg, request.is_truthy()),
            op::DONE => return c.done(),
            op::LEASE_TAKE..=op::LEASE_GIVE => c.lease(op - op::LEASE_TAKE).into(),
            op::PERSIST => {
                c.persist();
                JsValue::UNDEFINED
            }
            op::EVENT => {
                c.page_event(&arg.as_string().unwrap_or_default());
                JsValue::UNDEFINED
            }
            _ => JsValue::UNDEFINED,
        })
    }
}
