//! One tab at a time flushes: an exclusive Web Lock where the browser has
//! them, else a lease in localStorage (`js/glue.js` waits for either; the
//! lease's rules are here). Correctness never rests on the lock (batch ids
//! make a double send harmless); it keeps tabs from sending and adopting the
//! same batches at once.

use alloc::string::String;

use myna_core::wire::{parse_decimal, push_decimal};

use crate::host::Host;
use crate::storage;

/// How long a lease lasts without renewal (ms): a tab that died holding it
/// (closed without `pagehide`, crashed) holds up the others this long at
/// most. A page gives it back when it is hidden or closed.
pub(crate) const LEASE_MS: f64 = 5_000.0;
/// How often the holder renews it (ms): often enough that a flush waiting
/// on a slow answer keeps it, even with a background tab's timers throttled
/// to once a second.
pub(crate) const RENEW_MS: f64 = 1_000.0;

// A dead tab holds the others up seconds, not a minute; a live holder
// renews well before its lease runs out.
const _: () = assert!(LEASE_MS <= 10_000.0 && RENEW_MS * 3.0 <= LEASE_MS);

/// A step of the lease, as `js/glue.js` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lease {
    /// Take it if it is free, expired or already ours; whether it did
    /// (another tab may have written at the same moment, so the caller
    /// checks again after a short random pause).
    Take,
    /// Whether it is (still) ours, renewing it if so; a lease gone from
    /// storage (cleared, or storage refuses this page: a sandboxed frame)
    /// is free, so ours again.
    Held,
    /// Give it back if it is ours; whether it was.
    Give,
}

/// One step of the lease of namespace `ns` for `tab` at `now_ms` (see
/// [`Lease`]).
pub(crate) fn lease(host: &impl Host, ns: &str, tab: &str, step: Lease, now_ms: f64) -> bool {
    let key = storage::lease(ns);
    let current = host.get(&key);
    let current = current.as_deref().and_then(parse);
    let ours = current.is_some_and(|(owner, _)| owner == tab);
    let write = match step {
        Lease::Take => may_take(current, tab, now_ms),
        Lease::Held => ours || current.is_none(),
        Lease::Give => false,
    };
    let give = step == Lease::Give && ours;
    if write {
        host.set(&key, &encode(tab, now_ms + LEASE_MS));
    } else if give {
        host.remove(&key);
    }
    write || give
}

/// A lease as stored: `<tab> <until ms>`.
pub(crate) fn encode(tab: &str, until_ms: f64) -> String {
    let mut out = [tab, " "].concat();
    push_decimal(&mut out, until_ms.max(0.0) as u64);
    out
}

/// Reads a stored lease.
pub(crate) fn parse(text: &str) -> Option<(&str, f64)> {
    let at = text.bytes().position(|b| b == b' ')?;
    let (owner, until) = text.split_at_checked(at)?;
    Some((owner, parse_decimal(until.get(1..)?)? as f64))
}

/// Whether `tab` may take the lease at `now_ms`: free, expired, or its own.
pub(crate) fn may_take(current: Option<(&str, f64)>, tab: &str, now_ms: f64) -> bool {
    match current {
        None => true,
        Some((owner, until)) => owner == tab || until < now_ms,
    }
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

    #[test]
    fn a_dead_tabs_lease_holds_others_up_seconds_not_a_minute() {
        let held = encode("dead", 1_000.0 + LEASE_MS);
        assert!(!may_take(parse(&held), "a", 1_000.0 + LEASE_MS - 1.0));
        assert!(may_take(parse(&held), "a", 1_000.0 + LEASE_MS + 1.0));
    }
}
