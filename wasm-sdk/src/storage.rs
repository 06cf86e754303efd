//! localStorage, and the names of what the SDK keeps there.
//!
//! Everything lives under one namespace (the `storageKey` option, default
//! `myna`): `<ns>:q:<tab>` is a tab's queue, `<ns>:s:<experiment>` the
//! visitor's sticky state for an experiment, `<ns>:lease` the flush lease
//! where Web Locks are missing. When localStorage is unavailable (blocked,
//! sandboxed) the SDK keeps the same keys in memory for the page's lifetime.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use js_sys::Array;
use myna_core::Event;
use wasm_bindgen::prelude::*;

use crate::experiment::get;
use crate::queue::{Stored, StoredBatch, event_type, parse_uuid};

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
}

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
            });
        }
    }
    Some(Stored {
        heartbeat,
        released: get(&value, "r").as_bool().unwrap_or(false),
        batches,
    })
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
