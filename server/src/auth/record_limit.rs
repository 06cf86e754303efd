//! `--record-limit`: how many events a client address may record with API
//! keys (which are public: anyone can read one from a page and forge
//! rewards that steer the weights) per minute. Off by default.
//!
//! Each address has an allowance of `per_minute` events, spent by the
//! events it records and refilled at `per_minute` a minute: a burst of a
//! minute's events, then that rate. A batch is taken whole once the
//! allowance holds its events; past it: 429 `rate-limited` with
//! `Retry-After`, nothing recorded (the SDK keeps the events and sends
//! them after the wait). A batch of more events than a minute's is taken
//! when the allowance is full and leaves it in debt, so the address waits
//! as long as those events take at the rate: no batch is refused for its
//! size (a client whose batches are larger than the limit loses nothing),
//! and the rate over time is the limit's. The batch is judged once parsed
//! (an invalid one costs nothing; the wait told is the whole batch's). An
//! address is an IPv4 address or an IPv6 /64 ([`ClientKey`]); owners' own
//! credentials are not limited. The map of addresses is bounded
//! ([`MAX_TRACKED`], the least recently limited first out: a forgotten
//! address starts with a full allowance). The limit is per process: N
//! instances on one database allow N times it.

use std::sync::{Mutex, PoisonError};

use myna_core::event::DEFAULT_BATCH_EVENTS;
use myna_core::{Code, Message, Problem};
use serde_json::json;

use super::throttle::{Bounded, ClientKey};

/// Addresses whose allowance is remembered, at most.
pub const MAX_TRACKED: usize = 100_000;

/// The lowest limit `--record-limit` takes: the SDK's default `batchSize`
/// (core's [`DEFAULT_BATCH_EVENTS`]), so that its batches fit in one
/// minute's allowance (a larger batch waits for a full one).
pub const MIN_PER_MINUTE: u32 = DEFAULT_BATCH_EVENTS as u32;

/// The limit and the allowance of each address that recorded lately.
#[derive(Debug)]
pub struct RecordLimit {
    per_minute: u32,
    allowances: Mutex<Bounded<ClientKey, Allowance>>,
}

/// An address's allowance as of `at_ms`: events it may record.
#[derive(Debug, Clone, Copy)]
struct Allowance {
    events: f64,
    at_ms: i64,
}

impl RecordLimit {
    /// A limit of `per_minute` events a minute per address (at least one).
    pub fn new(per_minute: u32) -> RecordLimit {
        RecordLimit::with_capacity(per_minute, MAX_TRACKED)
    }

    /// [`RecordLimit::new`] remembering at most `capacity` addresses.
    pub fn with_capacity(per_minute: u32, capacity: usize) -> RecordLimit {
        RecordLimit {
            per_minute: per_minute.max(1),
            allowances: Mutex::new(Bounded::new(capacity)),
        }
    }

    /// How many addresses have an allowance remembered (for tests: bounded).
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    /// Takes `events` from `client`'s allowance at `now_ms`, or refuses
    /// them all (taking nothing) with a 429 until it holds them; more than
    /// a minute's events wait for a full allowance and leave it in debt.
    pub fn take(&self, client: ClientKey, events: usize, now_ms: i64) -> Result<(), Problem> {
        let mut allowances = self.lock();
        let left = allowances
            .get(&client)
            .map_or(f64::from(self.per_minute), |a| {
                a.at(now_ms, self.per_minute)
            });
        let events = events as f64;
        self.check(left, events.min(f64::from(self.per_minute)))?;
        let events = left - events;
        allowances.insert(
            client,
            Allowance {
                events,
                at_ms: now_ms,
            },
        );
        Ok(())
    }

    /// Ok when `left` holds `needed` events, else the 429 saying how long
    /// until it does.
    fn check(&self, left: f64, needed: f64) -> Result<(), Problem> {
        if left >= needed {
            return Ok(());
        }
        let per_second = f64::from(self.per_minute) / 60.0;
        let seconds = ((needed - left) / per_second).ceil().max(1.0) as u64;
        let message = format!(
            "Too many events from your address: this server records at most {} a minute \
             from one address; try again in {seconds} s.",
            self.per_minute
        );
        Err(Problem::one(
            Message::new(Code::RateLimited, message).with_data(json!({ "retryAfter": seconds })),
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bounded<ClientKey, Allowance>> {
        self.allowances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Allowance {
    /// The allowance at `now_ms` (below zero while in debt): refilled at
    /// `per_minute` a minute since `at_ms`, never above `per_minute` (a
    /// clock stepped back refills nothing).
    fn at(self, now_ms: i64, per_minute: u32) -> f64 {
        let elapsed = (now_ms - self.at_ms).max(0) as f64;
        let per_minute = f64::from(per_minute);
        (self.events + elapsed * per_minute / 60_000.0).min(per_minute)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::Ipv4Addr;

    use super::*;

    fn address(n: u8) -> ClientKey {
        ClientKey::V4(Ipv4Addr::new(192, 0, 2, n))
    }

    fn retry_after(problem: &Problem) -> Option<u64> {
        problem.messages[0].data.as_ref()?["retryAfter"].as_u64()
    }

    #[test]
    fn a_minute_of_events_at_once_then_the_rate() {
        let limit = RecordLimit::new(60);
        let a = address(1);
        assert!(limit.take(a, 60, 0).is_ok(), "a burst of a minute's events");
        let refused = limit.take(a, 1, 0).unwrap_err();
        assert_eq!(
            (refused.status, refused.code(), retry_after(&refused)),
            (429, Code::RateLimited, Some(1))
        );
        assert!(limit.take(a, 1, 500).is_err(), "half an event refilled");
        assert!(limit.take(a, 1, 1_000).is_ok(), "one a second");
        assert!(limit.take(a, 1, 1_000).is_err());
        assert!(limit.take(address(2), 60, 1_000).is_ok(), "another address");
        // With nothing left, the wait is the whole batch's, not one event's.
        let refused = limit.take(a, 15, 1_000).unwrap_err();
        assert_eq!(retry_after(&refused), Some(15));
        assert!(
            limit.take(a, 0, 1_000).is_ok(),
            "an empty batch takes nothing"
        );
    }

    #[test]
    fn a_batch_is_taken_whole_or_not_at_all() {
        let limit = RecordLimit::new(60);
        let a = address(1);
        limit.take(a, 50, 0).unwrap();
        let refused = limit.take(a, 20, 0).unwrap_err();
        assert_eq!(retry_after(&refused), Some(10), "until 20 are there");
        assert!(limit.take(a, 10, 0).is_ok(), "the refusal took nothing");
    }

    #[test]
    fn a_batch_larger_than_a_minute_of_events_waits_for_a_full_allowance_then_leaves_a_debt() {
        let limit = RecordLimit::new(60);
        let a = address(1);
        limit.take(a, 10, 0).unwrap();
        // 50 left: a batch of 100 waits until the allowance is full again.
        let refused = limit.take(a, 100, 0).unwrap_err();
        assert_eq!(
            (refused.status, refused.code(), retry_after(&refused)),
            (429, Code::RateLimited, Some(10))
        );
        assert!(limit.take(a, 100, 10_000).is_ok(), "taken whole once full");
        // 40 in debt: one more event waits 41 s, and the rate over the
        // whole time is the limit's.
        let refused = limit.take(a, 1, 10_000).unwrap_err();
        assert_eq!(retry_after(&refused), Some(41));
        assert!(limit.take(a, 1, 50_000).is_err());
        assert!(limit.take(a, 1, 51_000).is_ok());
        assert!(limit.take(address(2), 1000, 0).is_ok(), "another address");
    }

    #[test]
    fn the_allowance_refills_to_a_minute_of_events_at_most() {
        let limit = RecordLimit::new(60);
        let a = address(1);
        limit.take(a, 60, 0).unwrap();
        // An hour later: 60 again, not 3,600.
        assert!(limit.take(a, 60, 3_600_000).is_ok());
        assert!(limit.take(a, 1, 3_600_000).is_err());
        // A clock stepped back refills nothing.
        assert!(limit.take(a, 1, 0).is_err());
    }

    #[test]
    fn the_addresses_remembered_are_bounded() {
        let limit = RecordLimit::with_capacity(10, 3);
        for n in 0..10 {
            limit.take(address(n), 10, 0).unwrap();
        }
        assert_eq!(limit.tracked(), 3);
        // The earliest went: it starts again with a full allowance.
        assert!(limit.take(address(0), 10, 0).is_ok());
        assert!(limit.take(address(9), 1, 0).is_err(), "the latest are kept");
    }
}
