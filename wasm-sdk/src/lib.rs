//! The Myna browser SDK: wasm-bindgen bindings around `myna-core`, built by
//! wasm-pack into the npm package `myna-sdk` (see `SDK.md` for the surface).
//!
//! Modules by concept, in two layers (and a DAG: no module imports one
//! that imports it back, which `tests/modules.rs` checks).
//!
//! The rules, pure (no JS value; tested natively, the page played by
//! `testing`'s host): [`tab`] (one tab's client: decisions, queue,
//! persistence, each step of a flush, adopting other tabs' queues, page
//! life), built from [`delivery`] (a flush run and the backoff),
//! [`persist`] (a full storage), [`claims`] (the visitor's states across
//! tabs), [`queue`], [`sticky`], [`stored`] (what is kept in localStorage,
//! written and read), [`lock`] (the flush lease), [`retry`] (what an
//! answer means), [`api`] (the requests), [`storage`] (key names) and
//! [`host`] (what they need of the page).
//!
//! The shell, with JS values: [`driver`] (the one entry point `js/glue.js`
//! calls: the asynchronous half and the page's calls), [`client`] (runs a
//! [`tab`] for the page: converts, loads experiments, runs the effects),
//! [`experiment`] (read forms), [`options`], [`transport`] (requests and
//! answers), [`error`] (the one place a problem becomes a JS `MynaError`),
//! [`js`] (JS values, and the page as a [`host::Host`]) and [`glue`] (every
//! import). This file is the binding: `connect`, and the declarations of
//! the page's `Myna` and `Experiment`, thin classes in `js/glue.js` (each
//! method one [`driver::Driver::step`]: JS walks objects and holds the
//! page's listeners; Rust decides), with their Rust bindings for the
//! browser tests.
//!
//! The package's wasm is built without Rust's standard library (feature
//! `package`, set by `scripts/build-sdk`): a panic then aborts without
//! formatting a message, which keeps `core::fmt` out of the wasm. Every
//! other build (tests, clippy, a plain `cargo build`) links `std` as usual.

#![cfg_attr(not(test), no_std)]

extern crate alloc;
#[cfg(not(any(test, feature = "package")))]
extern crate std;

mod api;
mod claims;
mod client;
mod delivery;
mod driver;
mod error;
mod experiment;
mod glue;
mod host;
mod js;
mod lock;
mod options;
mod persist;
mod queue;
mod retry;
mod sticky;
mod storage;
mod stored;
mod tab;
#[cfg(test)]
mod testing;
mod transport;

use js_sys::Promise;
use js_sys::futures::JsFuture;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::driver::Driver;
pub use crate::glue::{Experiment, Myna};
pub use crate::js::js_number;

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
  /**
   * The experiment with this uuid, or else with this id (a deployment's
   * short name, e.g. `"hero"`); throws a `MynaError` (`unknown-experiment`)
   * if none is loaded.
   */
  experiment(uuidOrId: string): Experiment;
  /** Every loaded experiment, by its id (by its uuid when it has none). */
  readonly experiments: Record<string, Experiment>;
  /**
   * Runs the experiments from page markup (as `myna-html` did; what the
   * deployment's `myna.js` calls once the page is parsed). An experiment's
   * elements under `root` are those with the class `myna-{id}` (or its
   * setting `myna.html.cssClass`, flat or nested). Unless every one is
   * only a goal (`data-goal` and none of the attributes below), the
   * experiment is shown: `suggest()` (sticky: one view per visitor), or
   * `view(v)` when the page's URL fragment names a variant `v` of it by the
   * experiment's id (`#hero=b&cta=a`, myna-html's preview links); with
   * `#preview` in the fragment (myna-html's preview mode) the named variant,
   * else the first, is shown and nothing is counted, stuck or rewarded.
   * Then on each element:
   * - `data-show="X"`: shown when the variant's id is `X` or its setting `X`
   *   is truthy, else hidden (an inline `display: none !important`, so the
   *   page's own `display` rules never show it; showing puts back only
   *   what the binding changed); `data-hide="X"`: the reverse;
   * - `data-bind="text=P html=P class=P @attr=P"` (bindings separated by
   *   spaces or commas): sets `textContent`, `innerHTML`, adds the class(es),
   *   sets the attribute (never an `on…` one nor `srcdoc`; `href`, `src`,
   *   `action`, `formaction`, `xlink:href`, `data`, `poster`, `cite`,
   *   `ping`, `background` only to an http(s), `mailto:`, `tel:` or
   *   relative URL, never `javascript:`) to the variant's value `P`:
   *   `id`, `name` or a settings path (`a.b.c`, flat or nested), and a bare
   *   `text` (or `text=`) to its name, as in myna-html; a missing or object
   *   value changes nothing;
   * - `data-redirect="P"`: navigates to the URL in `P` when it is a
   *   non-empty http(s) or relative URL other than this page's (never
   *   `javascript:`).
   *
   * Goals: `data-goal="click"` rewards the visitor's view (amount 1, once
   * per view) when the element is clicked; `data-goal="load"` rewards, at
   * `bind`, the view of an earlier page (a visitor who never saw the
   * experiment gets neither a reward nor a view). Safe to call again (no
   * second listener nor view: a preview link counts one view per client).
   * Every variant's changes are tried first on inert copies of the
   * elements: an experiment whose binding would fail (e.g. `html=` under
   * Trusted Types) is skipped as written, no view counted, and a
   * `MynaError` (`invalid-value`) emitted as an `error` event. Returns the
   * variants shown, by experiment id (uuid when it has none).
   */
  bind(root?: ParentNode, options?: BindOptions): Record<string, Variant>;
  /** Loads one experiment afresh (read endpoint) and resolves to it. */
  load(uuid: string): Promise<Experiment>;
  /**
   * Sends what is queued; resolves once the server confirmed (or refused)
   * it, rejects with a `MynaError` when an attempt failed (kept for retry).
   */
  flush(): Promise<SyncEvent>;
  /** Listens to `sync` (`{ sent, dropped, requeued }`) or `error` (a `MynaError`). */
  on(event: "sync", listener: (sync: SyncEvent) => void): void;
  on(event: "error", listener: (error: MynaError) => void): void;
  /** Stops calling a listener added with `on`. */
  off(event: "sync", listener: (sync: SyncEvent) => void): void;
  off(event: "error", listener: (error: MynaError) => void): void;
  /** How many events this page has queued (not yet confirmed by the server). */
  readonly queued: number;
  /** Stops timers and listeners; what is queued stays stored for the next page. */
  close(): void;
  /**
   * Releases this handle. The client goes once it and its experiments are
   * released or collected, closing first as `close` does: what is queued is
   * stored for the next page or another tab to send.
   */
  free(): void;
  [Symbol.dispose](): void;
}

/** The options of `myna.bind`. */
export interface BindOptions {
  /** How `data-redirect` navigates (default `location.replace(url)`). */
  navigate?: (url: string) => void;
}

/** One experiment: decides variants for this visitor and queues its events. */
export class Experiment {
  private constructor();
  /** The experiment's uuid. */
  readonly uuid: string;
  /** Its short name (`myna-{id}` in markup), or null when its form has none. */
  readonly id: string | null;
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
   * whether a reward was queued (false when this view was rewarded already,
   * or when this page shows another variant than the visitor's counted one:
   * two tabs that drew at once). Tabs of one visitor rewarding the same view
   * at the same moment may each get true; one of their rewards is counted.
   * Throws a `MynaError` with code `no-view` when this visitor has viewed
   * no variant of the experiment (a page that only rewards, such as a
   * checkout, may catch it), or naming the rule a bad `amount` breaks.
   */
  reward(amount?: number | null): boolean;
  /** Forgets this visitor's variant: the next `suggest` draws afresh. */
  unstick(): void;
  /** Releases this handle (see `Myna.free`). */
  free(): void;
  [Symbol.dispose](): void;
}
"#;

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
    let client = driver::client(&options)?;
    let myna = Myna::new(Driver::strong(client.clone()).into(), &client.listeners);
    Ok(client.start(myna.into()))
}
