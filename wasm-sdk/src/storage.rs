//! The names of what the SDK keeps in localStorage.
//!
//! Everything lives under one namespace (the `storageKey` option, default
//! `myna`): `<ns>:q:<tab>` is a tab's queue, `<ns>:s:<experiment>` the
//! visitor's sticky state for an experiment, `<ns>:lease` the flush lease
//! where Web Locks are missing. When localStorage is unavailable (blocked,
//! sandboxed, or its methods throw) the SDK keeps the same keys in memory
//! for the page's lifetime. When it is full, the visitor's sticky state goes
//! to a cookie of the same name (a few hundred bytes) rather than being
//! lost at the next page load. What each value holds is
//! [`crate::stored`]'s; the page's storage is [`crate::host::Host`]'s.

use alloc::string::String;

/// How long a sticky state kept in a cookie lasts (days).
pub(crate) const COOKIE_DAYS: f64 = 365.0;

/// `<ns>:q:<tab>`.
pub(crate) fn queue(ns: &str, tab: &str) -> String {
    [ns, ":q:", tab].concat()
}

/// The prefix of every queue key.
pub(crate) fn queue_prefix(ns: &str) -> String {
    [ns, ":q:"].concat()
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
