//! localStorage, and the names of what the SDK keeps there.
//!
//! Everything lives under one namespace (the `storageKey` option, default
//! `myna`): `<ns>:q:<tab>` is a tab's queue, `<ns>:s:<experiment>` the
//! visitor's sticky state for an experiment, `<ns>:lease` the flush lease
//! where Web Locks are missing. When localStorage is unavailable (blocked,
//! sandboxed, or its methods throw) the SDK keeps the same keys in memory
//! for the page's lifetime. When it is full, the visitor's sticky state goes
//! to a cookie of the same name (a few hundred bytes) rather than being
//! lost at the next page load.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use js_sys::Array;
use myna_core::Event;
use wasm_bindgen::prelude::*;

use crate::experiment::get;
use crate::queue::{Stored, StoredBatch, event_type, parse_uuid};
use crate::sticky::{Entry, Sticky};

#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = getItem)]
    fn get_item(key: &str) -> Option<String>;
    #[wasm_bindgen(js_name = setItem)]
    fn set_item(key: &str, value: &str) -> bool;
    #[wasm_bindgen(js_name = removeItem)]
    fn remove_item(key: &str);
    #[wasm_bindgen(js_name = storedKeys)]
    fn stored_keys(prefix: &str) -> Array;
    #[wasm_bindgen(js_name = getCookie)]
    fn get_cookie(name: &str) -> Option<String>;
    #[wasm_bindgen(js_name = setCookie)]
    fn set_cookie(name: &str, value: Option<&str>, days: f64);
}

/// How long a sticky state kept in a cookie lasts (days).
const COOKIE_DAYS: f64 = 365.0;

/// localStorage (or, where it is blocked, a map for the page's lifetime,
/// shared by the page's clients as localStorage would be), under one namespace.
pub struct Store {
    /// The namespace every key starts with.
    pub ns: String,
}

impl Store {
    /// The store of this page under namespace `ns`.
    pub fn new(ns: &str) -> Store {
        Store { ns: ns.to_owned() }
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        get_item(key)
    }

    /// Writes `value` at `key`; false when storage is full (its quota used up).
    pub fn set(&self, key: &str, value: &str) -> bool {
        set_item(key, value)
    }

    /// Removes `key`.
    pub fn remove(&self, key: &str) {
        remove_item(key);
    }

    /// Every key starting with `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for key in stored_keys(prefix).iter() {
            keys.extend(key.as_string());
        }
        keys
    }

    /// The key of a tab's queue.
    pub fn queue_key(&self, tab: &str) -> String {
        keys::queue(&self.ns, tab)
    }

    /// The key of the visitor's sticky state for an experiment.
    pub fn sticky_key(&self, experiment: &str) -> String {
        keys::sticky(&self.ns, experiment)
    }

    /// The visitor's state at `key`: from localStorage, else from the
    /// cookie a full storage left it in.
    pub fn get_kept(&self, key: &str) -> Option<String> {
        self.get(key).or_else(|| get_cookie(key))
    }

    /// Writes the visitor's state at `key`: to localStorage, or when it is
    /// full to a cookie (the stale storage value removed, so the cookie is
    /// what is read back). `cookie` says a cookie may hold an older value,
    /// removed once storage takes the state again.
    pub fn set_kept(&self, key: &str, value: &str, cookie: bool) {
        if self.set(key, value) {
            if cookie {
                set_cookie(key, None, 0.0);
            }
        } else {
            self.remove(key);
            set_cookie(key, Some(value), COOKIE_DAYS);
        }
    }
}

/// Key names (pure).
pub mod keys {
    use alloc::string::String;

    /// `<ns>:q:<tab>`.
    pub fn queue(ns: &str, tab: &str) -> String {
        [ns, ":q:", tab].concat()
    }

    /// The prefix of every queue key.
    pub fn queue_prefix(ns: &str) -> String {
        [ns, ":q:"].concat()
    }

    /// `<ns>:s:<experiment>`.
    pub fn sticky(ns: &str, experiment: &str) -> String {
        [ns, ":s:", experiment].concat()
    }

    /// `<ns>:lease`.
    pub fn lease(ns: &str) -> String {
        [ns, ":lease"].concat()
    }

    /// The Web Locks name of the flush lock.
    pub fn flush_lock(ns: &str) -> String {
        [ns, ":flush"].concat()
    }
}

/// Reads a tab's stored queue ([`crate::queue::Queue::to_stored`]), parsed
/// by the browser; `None` if it is not one. Malformed events are skipped.
pub fn read_stored(text: &str) -> Option<Stored> {
    let value = js_sys::JSON::parse(text).ok()?;
    let heartbeat = get(&value, "t").as_f64()?;
    let mut batches = Vec::new();
    for entry in array(&get(&value, "q"))?.iter() {
        let body = get(&entry, "b");
        let mut events = Vec::new();
        if let Some(listed) = array(&get(&body, "events")) {
            for e in listed.iter() {
                events.extend(read_event(&e));
            }
        }
        if let Some(experiment) = get(&entry, "e").as_string() {
            batches.push(StoredBatch {
                experiment,
                sealed: get(&entry, "s").as_bool().unwrap_or(false),
                id: get(&body, "batch").as_string().and_then(|t| parse_uuid(&t)),
                events,
                claims: entries(&get(&entry, "k")),
            });
        }
    }
    Some(Stored {
        heartbeat,
        released: get(&value, "r").as_bool().unwrap_or(false),
        batches,
    })
}

/// Reads the visitor's stored state ([`Sticky::to_json`]); the default when
/// there is none or it is not one.
pub fn read_sticky(text: Option<&str>) -> Sticky {
    let value = text
        .and_then(|t| js_sys::JSON::parse(t).ok())
        .unwrap_or(JsValue::UNDEFINED);
    Sticky {
        variant: get(&value, "v").as_string(),
        rewarded: get(&value, "r").as_bool().unwrap_or(false),
        views: entries(&get(&value, "c")),
    }
}

/// `[[seq, token, reward], …]` as claims (a malformed one reads as no claim).
fn entries(value: &JsValue) -> Vec<Entry> {
    let Some(list) = array(value) else {
        return Vec::new();
    };
    let number = |e: &JsValue, i| array(e).and_then(|a| a.get(i).as_f64()).unwrap_or(0.0);
    list.iter()
        .map(|e| Entry {
            seq: number(&e, 0) as u32,
            token: number(&e, 1) as u64,
            reward: number(&e, 2) as u64,
        })
        .collect()
}

/// `value` as an array, if it is one (`Array.isArray`: arrays of any realm).
pub fn array(value: &JsValue) -> Option<&Array> {
    Array::is_array(value).then(|| value.unchecked_ref())
}

fn read_event(e: &JsValue) -> Option<Event> {
    Some(Event {
        typename: event_type(&get(e, "typename").as_string()?)?,
        variant: get(e, "variant").as_string()?,
        amount: get(e, "amount").as_f64(),
        timestamp: get(e, "timestamp").as_f64()? as i64,
    })
}
