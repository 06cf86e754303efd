//! The Myna browser SDK: wasm-bindgen bindings around `myna-core`, built by
//! wasm-pack into the npm package `myna-sdk` (see `SDK.md` for the surface).
//!
//! Modules by concept: [`client`] (decisions, queue, delivery), [`queue`],
//! [`sticky`], [`retry`] and [`lock`] (pure rules, tested natively),
//! [`experiment`] (read forms), [`options`], [`storage`], [`transport`]
//! (requests and what their answers mean), [`driver`] (the asynchronous
//! half, which `js/glue.js` runs), and [`error`] (the one place a problem
//! becomes a JS `MynaError`). This file is the binding: each export converts
//! its input, calls the client, converts the result.
//!
//! The package's wasm is built without Rust's standard library (feature
//! `package`, set by `scripts/build-sdk`): a panic then aborts without
//! formatting a message, which keeps `core::fmt` out of the wasm. Every
//! other build (tests, clippy, a plain `cargo build`) links `std` as usual.

#![cfg_attr(not(test), no_std)]

extern crate alloc;
#[cfg(not(any(test, feature = "package")))]
extern crate std;

pub mod client;
pub mod driver;
pub mod error;
pub mod experiment;
pub mod lock;
pub mod options;
pub mod queue;
pub mod retry;
pub mod sticky;
pub mod storage;
pub mod transport;

use alloc::rc::Rc;
use alloc::string::String;

use js_sys::futures::JsFuture;
use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;

use crate::client::Client;
use crate::experiment::canonical_uuid;

/// A panic (a bug) aborts: the wasm traps, and the call that panicked throws
/// a `RuntimeError` in JavaScript.
#[cfg(all(feature = "package", target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// The allocator: TLSF (rlsf), sized for code (dlmalloc, what `std` brings,
/// is three times its code).
#[cfg(all(feature = "package", target_arch = "wasm32"))]
#[global_allocator]
static ALLOCATOR: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();

/// A connected client: the page's handle on experiments, events and delivery.
#[wasm_bindgen]
pub struct Myna {
    client: Rc<Client>,
}

impl Myna {
    /// [`Myna::open`] for Rust callers (the browser tests): the same
    /// connection, awaited.
    pub async fn connect(options: JsValue) -> Result<Myna, JsValue> {
        let client = Client::new(&options)?;
        JsFuture::from(client.start(JsValue::UNDEFINED)).await?;
        Ok(Myna { client })
    }
}

#[wasm_bindgen]
impl Myna {
    /// Connects: loads every published experiment the key can see (search
    /// endpoint), or takes the `experiments` snapshots without any network,
    /// then starts sending queued events. The package entry loads the wasm
    /// first; it is an async function, so bad options (thrown here) reject
    /// its Promise.
    #[wasm_bindgen(js_name = connect, unchecked_return_type = "Promise<Myna>")]
    pub fn open(
        #[wasm_bindgen(unchecked_param_type = "ConnectOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        let client = Client::new(&options)?;
        Ok(client.start(
            Myna {
                client: client.clone(),
            }
            .into(),
        ))
    }

    /// The experiment with this uuid; throws a `MynaError` (`unknown-experiment`) if it is not loaded.
    pub fn experiment(&self, uuid: &str) -> Result<Experiment, JsValue> {
        let uuid = canonical_uuid(uuid);
        self.client.with(&uuid, |_| ())?;
        Ok(Experiment {
            client: self.client.clone(),
            uuid,
        })
    }

    /// Loads one experiment afresh (read endpoint) and resolves to it.
    #[wasm_bindgen(unchecked_return_type = "Promise<Experiment>")]
    pub fn load(&self, uuid: &str) -> Promise {
        let uuid = canonical_uuid(uuid);
        let request = self.client.load_request(&uuid);
        let experiment = Experiment {
            client: self.client.clone(),
            uuid,
        };
        self.client.load(request, experiment.into())
    }

    /// Sends what is queued; resolves once the server confirmed (or refused)
    /// it, rejects with a `MynaError` when an attempt failed (kept for retry).
    #[wasm_bindgen(unchecked_return_type = "Promise<SyncEvent>")]
    pub fn flush(&self) -> Promise {
        self.client.flush()
    }

    /// Listens to `sync` (`{ sent, dropped, requeued }`) or `error` (a `MynaError`).
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "\"sync\" | \"error\"")] event: JsValue,
        #[wasm_bindgen(unchecked_param_type = "MynaListener")] listener: Function,
    ) {
        self.client.on(&event, &listener);
    }

    /// Stops calling a listener added with `on`.
    pub fn off(
        &self,
        #[wasm_bindgen(unchecked_param_type = "\"sync\" | \"error\"")] event: JsValue,
        #[wasm_bindgen(unchecked_param_type = "MynaListener")] listener: Function,
    ) {
        self.client.off(&event, &listener);
    }

    /// How many events this page has queued (not yet confirmed by the server).
    #[wasm_bindgen(getter)]
    pub fn queued(&self) -> usize {
        self.client.queued()
    }

    /// Stops timers and listeners; what is queued stays stored for the next page.
    pub fn close(&self) {
        self.client.close();
    }
}

/// One experiment: decides variants for this visitor and queues its events.
#[wasm_bindgen]
pub struct Experiment {
    client: Rc<Client>,
    uuid: String,
}

#[wasm_bindgen]
impl Experiment {
    /// The experiment's uuid.
    #[wasm_bindgen(getter, unchecked_return_type = "string")]
    pub fn uuid(&self) -> JsValue {
        self.uuid.as_str().into()
    }

    /// The experiment's name.
    #[wasm_bindgen(getter, unchecked_return_type = "string")]
    pub fn name(&self) -> Result<JsValue, JsValue> {
        self.client.with(&self.uuid, |e| e.name.as_str().into())
    }

    /// The experiment's settings object.
    #[wasm_bindgen(getter, unchecked_return_type = "Record<string, unknown>")]
    pub fn settings(&self) -> Result<JsValue, JsValue> {
        self.client.with(&self.uuid, |e| e.settings_js())
    }

    /// Every variant, in creation order.
    #[wasm_bindgen(getter, unchecked_return_type = "Variant[]")]
    pub fn variants(&self) -> Result<Array, JsValue> {
        self.client
            .with(&self.uuid, |e| e.variants_js.iter().collect())
    }

    /// The visitor's variant: the sticky one, or one drawn by weight (queueing
    /// one view). Repeated calls return the same variant and queue nothing.
    #[wasm_bindgen(unchecked_return_type = "Variant")]
    pub fn suggest(&self) -> Result<JsValue, JsValue> {
        self.client.suggest(&self.uuid)
    }

    /// Shows a given variant: queues a view and makes it the visitor's variant.
    #[wasm_bindgen(unchecked_return_type = "Variant")]
    pub fn view(
        &self,
        #[wasm_bindgen(js_name = "variantId")] variant_id: &str,
    ) -> Result<JsValue, JsValue> {
        self.client.view(&self.uuid, variant_id)
    }

    /// Rewards the last viewed variant once (`amount` in [0, 1], default 1);
    /// whether a reward was queued (false when this view was rewarded already).
    pub fn reward(&self, amount: Option<f64>) -> Result<bool, JsValue> {
        self.client.reward(&self.uuid, amount)
    }

    /// Forgets this visitor's variant: the next `suggest` draws afresh.
    pub fn unstick(&self) {
        self.client.unstick(&self.uuid);
    }
}
