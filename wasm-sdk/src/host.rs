//! What the SDK's pure modules need of the page, as a trait: localStorage
//! and the cookie, JSON parsing, beacons, the clock and randomness. The
//! page implements it (`js::Page`, through `js/glue.js`); native tests
//! implement it in memory (a shared storage with a quota, a clock they
//! move), so the client's rules ([`crate::tab`]) run without a browser.
//! No method calls back into the SDK: a pure module may call them while
//! it holds its state.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use myna_core::wire::{Json, Number};
use uuid::Uuid;

/// The page, as the pure modules see it.
pub(crate) trait Host: Clone {
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

    /// What the clients of this page share (other tabs are other pages:
    /// their writes come as a storage event).
    fn page(&self) -> &PageShare;

    /// Parses JSON text; `None` if it is not JSON.
    fn parse(&self, text: &str) -> Option<Self::Json>;
    /// Queues `body` for delivery by `navigator.sendBeacon` (a `text/plain`
    /// POST that outlives the page); whether the browser accepted it.
    fn beacon(&self, url: &str, body: &str) -> bool;
}

/// What the clients of one page share: each `connect` makes one, and they
/// share the page's one wasm instance.
#[derive(Debug, Default)]
pub(crate) struct PageShare {
    /// How many times they wrote visitor states: a client whose count is
    /// behind reads its kept states afresh ([`crate::claims`]).
    pub(crate) writes: AtomicU32,
    /// How many are open: with more than one, a visitor's state is written
    /// as soon as it changes, so the others read it (with one, at the end
    /// of the task: one write a burst).
    pub(crate) clients: AtomicU32,
}

impl PageShare {
    /// No client yet.
    pub(crate) const fn new() -> PageShare {
        PageShare {
            writes: AtomicU32::new(0),
            clients: AtomicU32::new(0),
        }
    }

    /// Whether more than one client is open: a visitor's state is then
    /// written as soon as it changes, so the others read it.
    pub(crate) fn crowded(&self) -> bool {
        self.clients.load(Ordering::Relaxed) > 1
    }
}

/// One open client of its page, counted in [`PageShare::clients`] until
/// closed or dropped.
pub(crate) struct OpenClient<H: Host> {
    host: Option<H>,
}

impl<H: Host> OpenClient<H> {
    /// Counts a client of `host`'s page.
    pub(crate) fn new(host: &H) -> OpenClient<H> {
        host.page().clients.fetch_add(1, Ordering::Relaxed);
        OpenClient {
            host: Some(host.clone()),
        }
    }

    /// No longer counted (once).
    pub(crate) fn close(&mut self) {
        if let Some(host) = self.host.take() {
            host.page().clients.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<H: Host> Drop for OpenClient<H> {
    fn drop(&mut self) {
        self.close();
    }
}
