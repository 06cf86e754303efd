//! The Myna browser SDK: wasm-bindgen bindings around `myna-core`, built by
//! wasm-pack into the npm package `myna-sdk` (see `SDK.md` for the surface).
//!
//! Modules by concept: [`client`] (decisions, queue, delivery), [`queue`],
//! [`sticky`], [`retry`] and [`lock`] (pure rules, tested natively),
//! [`experiment`] (read forms), [`options`], [`storage`], [`transport`]
//! (requests and what their answers mean), [`driver`] (the one entry point
//! `js/glue.js` calls: the asynchronous half and the page's calls), and
//! [`error`] (the one place a problem becomes a JS `MynaError`). This file
//! is the binding: `connect`, and the declarations of the page's `Myna` and
//! `Experiment`, thin classes in `js/glue.js` (each method one
//! [`driver::Driver::step`]: JS walks objects and holds the page's
//! listeners; Rust decides), with their Rust bindings for the browser tests.
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

use alloc::string::String;

use js_sys::futures::JsFuture;
use js_sys::{Array, Function, Promise};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::client::Client;
use crate::driver::Driver;

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

#[wasm_bindgen(typescript_custom_section)]
const CLASSES_TS: &str = r#"
/** A connected client: the page's handle on experiments, events and delivery. */
export class Myna {
  private constructor();
  /**
   * Connects: loads every published experiment the key can see (search
   * endpoint), or takes the `experiments` snapshots without any network,
   * then starts sending queued events. Bad options reject the Promise.
   */
  static connect(options: ConnectOptions): Promise<Myna>;
  /** The experiment with this uuid; throws a `MynaError` (`unknown-experiment`) if it is not loaded. */
  experiment(uuid: string): Experiment;
  /** Loads one experiment afresh (read endpoint) and resolves to it. */
  load(uuid: string): Promise<Experiment>;
  /**
   * Sends what is queued; resolves once the server confirmed (or refused)
   * it, rejects with a `MynaError` when an attempt failed (kept for retry).
   */
  flush(): Promise<SyncEvent>;
  /** Listens to `sync` (`{ sent, dropped, requeued }`) or `error` (a `MynaError`). */
  on(event: "sync" | "error", listener: MynaListener): void;
  /** Stops calling a listener added with `on`. */
  off(event: "sync" | "error", listener: MynaListener): void;
  /** How many events this page has queued (not yet confirmed by the server). */
  readonly queued: number;
  /** Stops timers and listeners; what is queued stays stored for the next page. */
  close(): void;
  /** Releases this handle (the client goes once it and its experiments are released or collected). */
  free(): void;
  [Symbol.dispose](): void;
}

/** One experiment: decides variants for this visitor and queues its events. */
export class Experiment {
  private constructor();
  /** The experiment's uuid. */
  readonly uuid: string;
  /** The experiment's name. */
  readonly name: string;
  /** The experiment's settings object. */
  readonly settings: Record<string, unknown>;
  /** Every variant, in creation order. */
  readonly variants: Variant[];
  /**
   * The visitor's variant: the sticky one, or one drawn by weight (queueing
   * one view). Repeated calls return the same variant and queue nothing.
   */
  suggest(): Variant;
  /** Shows a given variant: queues a view and makes it the visitor's variant. */
  view(variantId: string): Variant;
  /**
   * Rewards the last viewed variant once (`amount` in [0, 1], default 1);
   * whether a reward was queued (false when this view was rewarded already).
   */
  reward(amount?: number | null): boolean;
  /** Forgets this visitor's variant: the next `suggest` draws afresh. */
  unstick(): void;
  /** Releases this handle (see `Myna.free`). */
  free(): void;
  [Symbol.dispose](): void;
}
"#;

#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    /// The page's `Myna` (a thin class in `js/glue.js` that calls
    /// [`Driver::step`] of its own strong [`Driver`]).
    pub type Myna;

    /// A new `Myna` around a client's strong driver and its listeners.
    #[wasm_bindgen(constructor)]
    fn new(driver: JsValue, listeners: &Array) -> Myna;

    /// The page's `Experiment` (a thin class in `js/glue.js`).
    pub type Experiment;

    /// Re-exports the classes from the package (function imports, so that
    /// the TypeScript declarations are the ones above).
    #[wasm_bindgen(reexport, skip_typescript, js_name = Myna)]
    fn myna_class();
    #[wasm_bindgen(reexport, skip_typescript, js_name = Experiment)]
    fn experiment_class();

    /// `myna.experiment(uuid)`.
    #[wasm_bindgen(method, catch)]
    pub fn experiment(this: &Myna, uuid: &str) -> Result<Experiment, JsValue>;
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
}

impl Myna {
    /// `Myna.connect` for Rust callers (the browser tests): the same
    /// connection, awaited.
    pub async fn connect(options: JsValue) -> Result<Myna, JsValue> {
        Ok(JsFuture::from(connect(options)?).await?.unchecked_into())
    }
}

/// Connects (what the package entry's `Myna.connect` calls once the wasm is
/// loaded): reads the options, then loads every published experiment the
/// key can see (search endpoint), or takes the `experiments` snapshots
/// without any network, then starts sending queued events; resolves with
/// the page's `Myna`.
#[wasm_bindgen(skip_typescript)]
pub fn connect(options: JsValue) -> Result<Promise, JsValue> {
    let client = Client::new(&options)?;
    let myna = Myna::new(Driver::strong(client.clone()).into(), &client.listeners);
    Ok(client.start(myna.into()))
}
