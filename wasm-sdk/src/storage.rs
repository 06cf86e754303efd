//! localStorage, and the names of what the SDK keeps there.
//!
//! Everything lives under one namespace (the `storageKey` option, default
//! `myna`): `<ns>:q:<tab>` is a tab's queue, `<ns>:s:<experiment>` the
//! visitor's sticky state for an experiment, `<ns>:lease` the flush lease
//! where Web Locks are missing. When localStorage is unavailable (blocked,
//! sandboxed) the SDK keeps the same keys in memory for the page's lifetime.

use std::cell::RefCell;

use js_sys::Array;
use myna_core::Event;
use web_sys::Storage;

use crate::experiment::get;
use crate::queue::{Stored, StoredBatch, event_type, parse_uuid};

/// Why a write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The origin's storage quota is used up (`QuotaExceededError`).
    Full,
}

/// localStorage, or a page-lifetime map where it is unavailable.
pub struct Store {
    local: Option<Storage>,
    memory: RefCell<Vec<(String, String)>>,
    /// The namespace every key starts with.
    pub ns: String,
}

impl Store {
    /// The store of this page under namespace `ns`.
    pub fn new(ns: &str) -> Store {
        let local = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
        Store {
            local,
            memory: RefCell::new(Vec::new()),
            ns: ns.to_owned(),
        }
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        match &self.local {
            Some(s) => s.get_item(key).ok().flatten(),
            None => self
                .memory
                .borrow()
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone()),
        }
    }

    /// Writes `value` at `key`.
    pub fn set(&self, key: &str, value: &str) -> Result<(), WriteError> {
        match &self.local {
            Some(s) => s.set_item(key, value).map_err(|_| WriteError::Full),
            None => {
                let mut memory = self.memory.borrow_mut();
                match memory.iter_mut().find(|(k, _)| k == key) {
                    Some(entry) => entry.1 = value.to_owned(),
                    None => memory.push((key.to_owned(), value.to_owned())),
                }
                Ok(())
            }
        }
    }

    /// Removes `key`.
    pub fn remove(&self, key: &str) {
        match &self.local {
            Some(s) => {
                let _ = s.remove_item(key);
            }
            None => self.memory.borrow_mut().retain(|(k, _)| k != key),
        }
    }

    /// Every key starting with `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        match &self.local {
            Some(s) => {
                let n = s.length().unwrap_or(0);
                (0..n)
                    .filter_map(|i| s.key(i).ok().flatten())
                    .filter(|k| k.starts_with(prefix))
                    .collect()
            }
            None => self
                .memory
                .borrow()
                .iter()
                .map(|(k, _)| k.clone())
                .filter(|k| k.starts_with(prefix))
                .collect(),
        }
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
    let listed = get(&value, "q");
    if !Array::is_array(&listed) {
        return None;
    }
    let batches = Array::from(&listed)
        .iter()
        .filter_map(|entry| {
            let body = get(&entry, "b");
            let events = get(&body, "events");
            let events = if Array::is_array(&events) {
                Array::from(&events)
                    .iter()
                    .filter_map(|e| read_event(&e))
                    .collect()
            } else {
                Vec::new()
            };
            Some(StoredBatch {
                experiment: get(&entry, "e").as_string()?,
                sealed: get(&entry, "s").as_bool().unwrap_or(false),
                id: get(&body, "batch").as_string().and_then(|t| parse_uuid(&t)),
                events,
            })
        })
        .collect();
    Some(Stored {
        heartbeat,
        released: get(&value, "r").as_bool().unwrap_or(false),
        batches,
    })
}

fn read_event(e: &wasm_bindgen::JsValue) -> Option<Event> {
    Some(Event {
        typename: event_type(&get(e, "typename").as_string()?)?,
        variant: get(e, "variant").as_string()?,
        amount: get(e, "amount").as_f64(),
        timestamp: get(e, "timestamp").as_f64()? as i64,
    })
}
