//! Storage whose reads throw `QuotaExceededError` (an outside probe's
//! browser: the first `suggest` broke the wasm for good, and each tick then
//! threw): the SDK goes on from memory, as for any storage that throws. A
//! file of its own, a page of its own: once storage throws, the page's SDK
//! keeps to memory for its life, which the other browser tests must not
//! share. Run by `wasm-pack test --headless --chrome` (scripts/test).
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = "export function throw_on_reads() {
  const p = Storage.prototype, read = p.getItem;
  p.getItem = () => { throw new DOMException('full', 'QuotaExceededError'); };
  return () => { p.getItem = read; };
}")]
extern "C" {
    /// Makes every `localStorage.getItem` throw `QuotaExceededError`; the
    /// function that undoes it.
    fn throw_on_reads() -> Function;
}

#[wasm_bindgen_test]
async fn reads_that_throw_quota_exceeded_leave_the_sdk_working_from_memory() {
    let restore = throw_on_reads();
    let ns = ns("read-quota");
    let mut fields = quiet(&ns, DEAD, &[snapshot(U1, &[("a", 0.5), ("b", 0.5)])]);
    fields.retain(|(k, _)| *k != "flushIntervalMs");
    fields.push(("flushIntervalMs", 20.into()));
    let myna = connect(&fields).await;
    let expt = myna.experiment(U1).unwrap();
    let shown = id_of(&expt.suggest().unwrap());
    assert!(expt.reward(Some(1.0)).unwrap(), "the view is rewarded");
    sleep(100).await; // ticks, each reading storage
    assert_eq!(id_of(&expt.suggest().unwrap()), shown, "still sticky");
    assert_eq!(myna.queued(), 2, "a view and its reward, in memory");
    myna.close();
    restore.call0(&JsValue::NULL).unwrap();
    clear(&ns);
}
