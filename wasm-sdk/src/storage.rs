//! The names of what the SDK keeps in localStorage.
//!
//! Everything lives under one namespace (the `storageKey` option, default
//! `myna`): `<ns>:t:<tab>` is a tab's queue as last written whole (its
//! base; `<tab>` is `<sender>.<uuid>`, the sender a hash of the API key,
//! so only pages of the same key adopt it) and `<ns>:t:<tab>:<n>` the records of the events it queued since
//! (numbered from 1, see [`crate::persist`]); `<ns>:q:<tab>` a queue
//! written by an SDK version before records (read and adopted, never
//! written); `<ns>:s:<experiment>` the visitor's sticky state for an
//! experiment, `<ns>:lease` the flush lease where Web Locks are missing. When localStorage is unavailable (blocked,
//! sandboxed, or its methods throw) the SDK keeps the same keys in memory
//! for the page's lifetime. When it is full, the visitor's sticky state goes
//! to a cookie of the same name (a few hundred bytes) rather than being
//! lost at the next page load. What each value holds is
//! [`crate::stored`]'s; the page's storage is [`crate::host::Host`]'s.

use alloc::string::String;

/// How long a sticky state kept in a cookie lasts (days).
pub(crate) const COOKIE_DAYS: f64 = 365.0;

/// `<ns>:t:<tab>`: a tab's base.
pub(crate) fn base(ns: &str, tab: &str) -> String {
    [ns, ":t:", tab].concat()
}

/// `<ns>:t:<tab>:<n>`: record `n` of the tab whose base is `base`.
pub(crate) fn record(base: &str, n: u32) -> String {
    let mut key = records(base);
    myna_core::wire::push_decimal(&mut key, n.into());
    key
}

/// What the keys of the records of the tab whose base is `base` start with.
pub(crate) fn records(base: &str) -> String {
    [base, ":"].concat()
}

/// What every key of the tabs' queues starts with: `<ns>:`, then `t:`
/// (bases and records) or `q:` (the queues of SDK versions before records).
pub(crate) fn queues(ns: &str) -> String {
    [ns, ":"].concat()
}

/// `<ns>:s:<experiment>`.
pub(crate) fn sticky(ns: &str, experiment: &str) -> String {
    [ns, ":s:", experiment].concat()
}

/// `<ns>:lease`.
pub(crate) fn lease(ns: &str) -> String {
    [ns, ":lease"].concat()
}

/// The Web Locks name of the flush lock.
pub(crate) fn flush_lock(ns: &str) -> String {
    [ns, ":flush"].concat()
}
