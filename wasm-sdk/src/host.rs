//! What the SDK's pure modules need of the page, as a trait: localStorage
//! and the cookie, JSON parsing, beacons, the clock and randomness. The
//! page implements it (`js::Page`, through `js/glue.js`); native tests
//! implement it in memory (a shared storage with a quota, a clock they
//! move), so the client's rules ([`crate::tab`]) run without a browser.
//! No method calls back into the SDK: a pure module may call them while
//! it holds its state.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU32;

use myna_core::wire::{Json, Number};
use uuid::Uuid;

/// The page, as the pure modules see it.
pub(crate) trait Host {
    /// A value the browser parsed (`JSON.parse`).
    type Json: Json;
    /// The browser's number text (`String(x)`).
    type Number: Number + Default;

    /// The clock: epoch milliseconds.
    fn now(&self) -> f64;
    /// A uniform number in `[0, 1)` (`Math.random`: nothing here is secret).
    fn random(&self) -> f64;
    /// A fresh random (v4) uuid.
    fn uuid(&self) -> Uuid;

    /// The value at `key` in localStorage.
    fn get(&self, key: &str) -> Option<String>;
    /// Writes `value` at `key`; false when storage is full (its quota used
    /// up). Storage that is blocked or throws is never full: it goes on in
    /// memory for the page's life.
    fn set(&self, key: &str, value: &str) -> bool;
    /// Removes `key`.
    fn remove(&self, key: &str);
    /// Every key starting with `prefix`.
    fn keys(&self, prefix: &str) -> Vec<String>;
    /// The site's cookie `name`.
    fn cookie(&self, name: &str) -> Option<String>;
    /// Sets the cookie `name` for [`crate::storage::COOKIE_DAYS`], or
    /// removes it (`None`).
    fn set_cookie(&self, name: &str, value: Option<&str>);

    /// How many times the clients of this page (each `connect` makes one)
    /// wrote visitor states: a client whose count is behind reads them
    /// afresh ([`crate::claims`]). Other tabs are other pages: their writes
    /// come as a storage event.
    fn state_writes(&self) -> &AtomicU32;

    /// Parses JSON text; `None` if it is not JSON.
    fn parse(&self, text: &str) -> Option<Self::Json>;
    /// Queues `body` for delivery by `navigator.sendBeacon` (a `text/plain`
    /// POST that outlives the page); whether the browser accepted it.
    fn beacon(&self, url: &str, body: &str) -> bool;
}
