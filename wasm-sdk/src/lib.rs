//! The Myna browser SDK: wasm-bindgen bindings around `myna-core`, built by
//! wasm-pack into the npm package `myna-sdk` (see `SDK.md` for the surface).
//!
//! Modules by concept: [`client`] (decisions, queue, delivery), [`queue`],
//! [`sticky`] and [`retry`] (pure rules, tested natively), [`experiment`]
//! (read forms), [`options`], [`storage`], [`transport`], [`lock`], and
//! [`error`] (the one place a problem becomes a JS `MynaError`). This file is
//! the binding: each export converts its input, calls the client, converts
//! the result.

pub mod client;
pub mod error;
pub mod experiment;
pub mod lock;
pub mod options;
pub mod queue;
pub mod retry;
pub mod sticky;
pub mod storage;
pub mod transport;

use std::rc::Rc;

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::client::Client;
use crate::experiment::canonical_uuid;

/// A connected client: the page's handle on experiments, events and delivery.
#[wasm_bindgen]
pub struct Myna {
    client: Rc<Client>,
}

#[wasm_bindgen]
impl Myna {
    /// Connects: loads every published experiment the key can see (search
    /// endpoint), or takes the `experiments` snapshots without any network,
    /// then starts sending queued events. The package entry loads the wasm first.
    pub async fn connect(
        #[wasm_bindgen(unchecked_param_type = "ConnectOptions")] options: JsValue,
    ) -> Result<Myna, JsValue> {
        let options = options::read(&options).map_err(|p| error::to_js(&p, false))?;
        let client = Client::new(options);
        client.start().await?;
        Ok(Myna { client })
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
        let client = self.client.clone();
        let uuid = canonical_uuid(uuid);
        future_to_promise(async move {
            client.load(&uuid).await?;
            Ok(Experiment { client, uuid }.into())
        })
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
        #[wasm_bindgen(unchecked_param_type = "\"sync\" | \"error\"")] event: &str,
        #[wasm_bindgen(unchecked_param_type = "MynaListener")] listener: Function,
    ) {
        self.client.on(event, listener);
    }

    /// Stops calling a listener added with `on`.
    pub fn off(
        &self,
        #[wasm_bindgen(unchecked_param_type = "\"sync\" | \"error\"")] event: &str,
        #[wasm_bindgen(unchecked_param_type = "MynaListener")] listener: Function,
    ) {
        self.client.off(event, &listener);
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
    #[wasm_bindgen(getter)]
    pub fn uuid(&self) -> String {
        self.uuid.clone()
    }

    /// The experiment's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> Result<String, JsValue> {
        self.client.with(&self.uuid, |e| e.model.name.clone())
    }

    /// The experiment's settings object.
    #[wasm_bindgen(getter, unchecked_return_type = "Record<string, unknown>")]
    pub fn settings(&self) -> Result<JsValue, JsValue> {
        self.client.with(&self.uuid, |e| e.settings_js())
    }

    /// Every variant, in creation order.
    #[wasm_bindgen(getter, unchecked_return_type = "Variant[]")]
    pub fn variants(&self) -> Result<Array, JsValue> {
        self.client.with(&self.uuid, |e| {
            e.ids().into_iter().map(|id| e.variant_js(id)).collect()
        })
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
