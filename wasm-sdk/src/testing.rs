//! A page in memory, for native tests of the pure modules: a localStorage
//! with a quota and a cookie jar shared by every tab made from it
//! ([`TestHost::tab`]), a clock the test moves, deterministic randomness,
//! and the beacons sent.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use myna_core::wire::{Json, Number};
use uuid::Uuid;

use crate::host::{Host, PageShare};

/// What the tabs of one browser share.
#[derive(Default)]
struct Shared {
    items: RefCell<BTreeMap<String, String>>,
    cookies: RefCell<BTreeMap<String, String>>,
    /// Most bytes (keys and values) storage holds; `None`: no limit.
    quota: Cell<Option<usize>>,
    now: Cell<f64>,
    /// The last uuid handed out (they count up, across tabs).
    uuids: Cell<u128>,
    /// The state of the random numbers.
    seed: Cell<u64>,
    /// Beacons sent, in order, and how many more the browser takes.
    beacons: RefCell<Vec<(String, String)>>,
    beacon_quota: Cell<usize>,
}

/// One tab's view of the shared browser.
#[derive(Clone)]
pub(crate) struct TestHost {
    shared: Rc<Shared>,
    /// What this page's clients share (another tab is another page).
    page: Rc<PageShare>,
}

impl TestHost {
    /// A fresh browser at time 1,000,000 (ms), storage empty and unlimited.
    pub(crate) fn new() -> TestHost {
        let shared = Shared::default();
        shared.now.set(1_000_000.0);
        shared.seed.set(0x9e37_79b9_7f4a_7c15);
        shared.beacon_quota.set(usize::MAX);
        TestHost {
            shared: Rc::new(shared),
            page: Rc::default(),
        }
    }

    /// Another tab of the same browser (another page).
    pub(crate) fn tab(&self) -> TestHost {
        TestHost {
            shared: self.shared.clone(),
            page: Rc::default(),
        }
    }

    /// Another client of this tab's page (a second `connect`).
    pub(crate) fn client(&self) -> TestHost {
        self.clone()
    }

    /// Limits storage to `bytes` (keys and values), or lifts the limit.
    pub(crate) fn set_quota(&self, bytes: Option<usize>) {
        self.shared.quota.set(bytes);
    }

    /// Moves the clock on.
    pub(crate) fn advance(&self, ms: f64) {
        self.shared.now.set(self.shared.now.get() + ms);
    }

    /// The beacons sent so far.
    pub(crate) fn beacons(&self) -> Vec<(String, String)> {
        self.shared.beacons.borrow().clone()
    }

    /// The browser takes only `n` more beacons.
    pub(crate) fn set_beacon_quota(&self, n: usize) {
        self.shared.beacon_quota.set(n);
    }

    /// Every stored key and value.
    pub(crate) fn items(&self) -> BTreeMap<String, String> {
        self.shared.items.borrow().clone()
    }
}

/// A parsed value (cloned as it is walked: tests only).
pub(crate) struct TestJson(serde_json::Value);

impl Json for TestJson {
    fn field(&self, key: &str) -> Self {
        TestJson(self.0.get(key).cloned().unwrap_or_default())
    }
    fn text(&self) -> Option<String> {
        self.0.as_str().map(String::from)
    }
    fn number(&self) -> Option<f64> {
        self.0.as_f64()
    }
    fn boolean(&self) -> Option<bool> {
        self.0.as_bool()
    }
    fn items(&self) -> Option<impl Iterator<Item = Self>> {
        self.0
            .as_array()
            .map(|list| list.iter().cloned().map(TestJson))
    }
}

/// Rust's own number text (the browser's differs, parsing back alike).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TestNumber;

impl Number for TestNumber {
    fn text(self, x: f64) -> String {
        x.to_string()
    }
}

impl Host for TestHost {
    type Json = TestJson;
    type Number = TestNumber;

    fn page(&self) -> &PageShare {
        &self.page
    }

    fn now(&self) -> f64 {
        self.shared.now.get()
    }

    fn random(&self) -> f64 {
        // xorshift64*: enough spread for tokens and jitter.
        let mut x = self.shared.seed.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.shared.seed.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uuid(&self) -> Uuid {
        let n = self.shared.uuids.get() + 1;
        self.shared.uuids.set(n);
        Uuid::from_u128(n)
    }

    fn get(&self, key: &str) -> Option<String> {
        self.shared.items.borrow().get(key).cloned()
    }

    fn set(&self, key: &str, value: &str) -> bool {
        let mut items = self.shared.items.borrow_mut();
        if let Some(quota) = self.shared.quota.get() {
            let others: usize = items
                .iter()
                .filter(|(k, _)| *k != key)
                .map(|(k, v)| k.len() + v.len())
                .sum();
            if others + key.len() + value.len() > quota {
                return false;
            }
        }
        items.insert(key.into(), value.into());
        true
    }

    fn remove(&self, key: &str) {
        self.shared.items.borrow_mut().remove(key);
    }

    fn keys(&self, prefix: &str) -> Vec<String> {
        let items = self.shared.items.borrow();
        items
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.shared.cookies.borrow().get(name).cloned()
    }

    fn set_cookie(&self, name: &str, value: Option<&str>) {
        let mut cookies = self.shared.cookies.borrow_mut();
        match value {
            Some(value) => cookies.insert(name.into(), value.into()),
            None => cookies.remove(name),
        };
    }

    fn parse(&self, text: &str) -> Option<TestJson> {
        serde_json::from_str(text).ok().map(TestJson)
    }

    fn beacon(&self, url: &str, body: &str) -> bool {
        let left = self.shared.beacon_quota.get();
        if left == 0 {
            return false;
        }
        self.shared.beacon_quota.set(left - 1);
        self.shared
            .beacons
            .borrow_mut()
            .push((url.into(), body.into()));
        true
    }
}
