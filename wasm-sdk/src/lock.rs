//! One tab at a time flushes: an exclusive Web Lock where the browser has
//! them, else a lease in localStorage. Correctness never rests on the lock
//! (batch ids make a double send harmless); it keeps tabs from sending and
//! adopting the same batches at once.

use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::storage::{Store, keys};

/// How long a lease lasts without renewal (ms).
pub const LEASE_MS: f64 = 60_000.0;

#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    /// A Promise of the release function of Web Lock `name`, or `null`.
    fn lock(name: &str) -> JsValue;
}

/// Held while flushing; releases on drop.
pub struct Guard {
    release: Option<Function>,
    lease: Option<(Rc<Store>, String)>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.call0(&JsValue::UNDEFINED);
        }
        if let Some((store, tab)) = self.lease.take() {
            let key = keys::lease(&store.ns);
            if store
                .get(&key)
                .as_deref()
                .and_then(parse)
                .map(|(owner, _)| owner == tab)
                == Some(true)
            {
                store.remove(&key);
            }
        }
    }
}

/// Waits for the flush lock of the store's namespace.
pub async fn acquire(store: Rc<Store>, tab: &str) -> Guard {
    let pending = lock(&keys::flush_lock(&store.ns));
    if let Ok(pending) = pending.dyn_into::<Promise>()
        && let Ok(release) = JsFuture::from(pending).await
        && let Ok(release) = release.dyn_into::<Function>()
    {
        return Guard {
            release: Some(release),
            lease: None,
        };
    }
    let key = keys::lease(&store.ns);
    loop {
        let now = js_sys::Date::now();
        let current = store.get(&key);
        if may_take(current.as_deref().and_then(parse), tab, now) {
            let _ = store.set(&key, &encode(tab, now + LEASE_MS));
            // Another tab may have written at the same moment: the last
            // write wins, and each checks after a short random pause.
            sleep(10.0 + 20.0 * js_sys::Math::random()).await;
            if store
                .get(&key)
                .as_deref()
                .and_then(parse)
                .map(|(o, _)| o == tab)
                == Some(true)
            {
                return Guard {
                    release: None,
                    lease: Some((store, tab.to_owned())),
                };
            }
        }
        sleep(100.0).await;
    }
}

/// A lease as stored: `<tab> <until ms>`.
pub fn encode(tab: &str, until_ms: f64) -> String {
    [tab, " ", &(until_ms.max(0.0) as u64).to_string()].concat()
}

/// Reads a stored lease.
pub fn parse(text: &str) -> Option<(&str, f64)> {
    let (owner, until) = text.split_once(' ')?;
    Some((owner, until.parse::<u64>().ok()? as f64))
}

/// Whether `tab` may take the lease at `now_ms`: free, expired, or its own.
pub fn may_take(current: Option<(&str, f64)>, tab: &str, now_ms: f64) -> bool {
    match current {
        None => true,
        Some((owner, until)) => owner == tab || until < now_ms,
    }
}

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: f64) {
    let promise = Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ =
                window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms as i32);
        }
    });
    let _ = JsFuture::from(promise).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_taken_when_free_expired_or_own() {
        assert!(may_take(None, "a", 0.0));
        let held = encode("b", 1000.0);
        assert_eq!(parse(&held), Some(("b", 1000.0)));
        assert!(!may_take(parse(&held), "a", 999.0));
        assert!(may_take(parse(&held), "a", 1001.0));
        assert!(may_take(parse(&held), "b", 0.0));
        assert_eq!(parse("garbage"), None);
    }
}
