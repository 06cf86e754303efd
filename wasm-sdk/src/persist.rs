//! How a tab's queue goes to storage (pure over [`Host`], tested
//! natively), so that queueing an event costs a write the size of the
//! event, not of the queue.
//!
//! A tab keeps its queue in two parts: its *base* (`<ns>:t:<tab>`, the
//! whole queue as last written, stamped with the number of the last record
//! it holds) and *records* (`<ns>:t:<tab>:<n>`, numbered from 1): each
//! write that only appended events (the end of a task that queued some)
//! writes one record holding just those events, under their batches' ids.
//! Any other change (a batch sent, sealed with events dropped, adopted; the
//! queue released or taken back) and the heartbeat rewrite the base, and
//! so do the records once they weigh as much as the base (at least
//! [`RECORDS_BYTES`]). A reader ([`read_tab`]) takes the base and the
//! records numbered after it, so a crash between any two writes loses
//! nothing and counts nothing twice (a record the base holds is never
//! read again). The records a base holds are removed later, off the
//! event's path ([`Journal::sweep`], at the next tick), or at once, before
//! the base, when the queue is empty.
//!
//! When storage is full the oldest batches go, one at a time, until the
//! base fits; when even the newest does not, the whole queue stays in
//! memory (and is sent from there), none of it dropped.

use alloc::string::String;

use crate::host::Host;
use crate::queue::Queue;
use crate::storage;
use crate::stored::{self, Stored};

/// The records are folded into the base once they weigh this many bytes,
/// or the base's weight if more (so a queued event costs, amortized, a few
/// times its own size however long the queue).
pub(crate) const RECORDS_BYTES: usize = 4096;

/// A tab holding events rewrites its base this often (ms) as a heartbeat
/// (a record written is one too), and at its first write after a silence
/// this long (another tab may have adopted its queue meanwhile).
pub(crate) const HEARTBEAT_MS: f64 = 60_000.0;

/// What writing the queue cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Written {
    /// Events dropped (whole batches, oldest first) to make it fit.
    pub(crate) dropped: usize,
    /// Even the newest batch did not fit: the queue is in memory only.
    pub(crate) memory_only: bool,
}

/// What the `queue-full` error says when storage refused the queue and
/// `dropped` events went to make it fit (none: it is all in memory).
pub(crate) fn full_storage(dropped: usize) -> &'static str {
    if dropped > 0 {
        "Storage is full: the oldest events were dropped, the newest are kept in memory."
    } else {
        "Storage is full: the queue is kept in memory and sent from there (nothing was dropped; \
         what is not sent before the page closes is lost)."
    }
}

/// What a tab has in storage.
#[derive(Debug)]
pub(crate) struct Journal {
    /// The base's key (`<ns>:t:<tab>`).
    base: String,
    /// The number of the last record the base holds (0: none).
    folded: u32,
    /// Records up to this number are removed.
    swept: u32,
    /// The next record's number.
    next: u32,
    /// Bytes of the records after the base, and of the base.
    records: usize,
    base_bytes: usize,
    /// The `released` flag in storage.
    released: bool,
    /// Whether the base is in storage (records are written only after it,
    /// so other tabs find a queue by its base).
    based: bool,
    /// When storage last heard of the queue (epoch ms): the heartbeat other
    /// tabs judge it by.
    pub(crate) beat: f64,
}

impl Journal {
    /// Nothing stored yet for tab `tab` of namespace `ns`, at `now`.
    pub(crate) fn new(ns: &str, tab: &str, now: f64) -> Journal {
        Journal {
            base: storage::base(ns, tab),
            folded: 0,
            swept: 0,
            next: 1,
            records: 0,
            base_bytes: 0,
            released: false,
            based: false,
            beat: now,
        }
    }

    /// Stores `queue` at `now` (stamped `released`): one record of the
    /// events appended since the last write when that is all that changed,
    /// else (or when the heartbeat is due, or the record does not fit) the
    /// base; removes every key when the queue is empty.
    pub(crate) fn write<H: Host>(
        &mut self,
        host: &H,
        queue: &mut Queue<H::Number>,
        now: f64,
        released: bool,
    ) -> Written {
        if queue.is_empty() {
            // Every record before the base: without it they would read as new.
            self.folded = self.next - 1;
            self.sweep(host);
            host.remove(&self.base);
            self.based = false;
            self.records = 0;
            self.released = released;
            self.beat = now;
            queue.mark_stored();
            return Written::default();
        }
        let small = self.records < self.base_bytes.max(RECORDS_BYTES);
        let beating = now - self.beat < HEARTBEAT_MS;
        // A released queue is written whole: another tab may have taken
        // (and removed) the base meanwhile.
        let mut record = self.based && small && beating && !released && !self.released;
        if record && !queue.reshaped() && !queue.appended() {
            return Written::default();
        }
        record &= !queue.reshaped();
        let mut dropped = 0;
        // How many of the oldest batches storage is tried without: they go
        // from the queue only once the rest is stored.
        let mut skip = 0;
        loop {
            let folded = (!record).then_some(self.next - 1);
            let text = stored::write_queue_from(queue, skip, now, released, folded);
            let key = match folded {
                None => storage::record(&self.base, self.next),
                Some(_) => self.base.clone(),
            };
            if host.set(&key, &text) {
                for _ in 0..skip {
                    dropped += queue.drop_oldest_batch();
                }
                self.beat = now;
                queue.mark_stored();
                if record {
                    self.next += 1;
                    self.records += text.len();
                    return Written::default();
                }
                self.base_bytes = text.len();
                break;
            }
            if record {
                record = false; // the record did not fit: the base, smaller
            } else if queue.batches().len() > skip + 1 {
                skip += 1;
            } else {
                // Not even the newest batch fits: dropping the others
                // would not make room, so nothing goes; all of it is sent
                // from memory.
                return Written {
                    dropped: 0,
                    memory_only: true,
                };
            }
        }
        self.folded = self.next - 1;
        self.records = 0;
        self.based = true;
        self.released = released;
        Written {
            dropped,
            memory_only: false,
        }
    }

    /// Removes the records the base holds (read no more).
    pub(crate) fn sweep(&mut self, host: &impl Host) {
        for n in self.swept + 1..=self.folded {
            host.remove(&storage::record(&self.base, n));
        }
        self.swept = self.folded;
    }
}

/// A tab's queue as stored under the base key `base`: its base, then its
/// records numbered after it, in order (they follow each other: a tab
/// rewrites its base, not a record, after anything another tab may have
/// removed), merged; `None` without a base (one that does not read as a
/// queue reads as an empty one). Adopting it removes `base` and every
/// `<base>:<n>` (an orphan's owner writes no record after it).
pub(crate) fn read_tab<H: Host>(host: &H, base: &str) -> Option<Stored> {
    let mut queue: Option<Stored> = None;
    let mut key = String::from(base);
    let mut n = 0;
    while let Some(text) = host.get(&key) {
        let read = host.parse(&text).and_then(|v| stored::read_queue(&v));
        let read = read.unwrap_or_else(Stored::empty);
        match &mut queue {
            Some(q) => q.merge(read),
            None => {
                n = read.folded;
                queue = Some(read);
            }
        }
        n += 1;
        key = storage::record(base, n);
    }
    queue
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::{TestHost, TestNumber};
    use myna_core::{Event, EventType};
    use uuid::Uuid;

    fn event(t: i64) -> Event {
        Event {
            typename: EventType::View,
            variant: "a".into(),
            amount: None,
            timestamp: t,
        }
    }

    fn queue(batches: u128) -> Queue<TestNumber> {
        let mut q = Queue::new(1, TestNumber);
        for id in 1..=batches {
            q.push("e", event(id as i64), Default::default(), || {
                Uuid::from_u128(id)
            });
        }
        q
    }

    /// The queue tab `t` has in storage, as another tab reads it: its
    /// batches' (id, timestamps).
    fn read_back(host: &TestHost, tab: &str) -> Vec<(Uuid, Vec<i64>)> {
        let Some(stored) = read_tab(host, &storage::base("myna", tab)) else {
            return Vec::new();
        };
        stored
            .batches
            .into_iter()
            .map(|b| {
                (
                    b.id.unwrap(),
                    b.events.iter().map(|e| e.timestamp).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn appended_events_cost_a_record_of_their_own_then_fold_into_the_base() {
        let host = TestHost::new();
        let mut j = Journal::new("myna", "t", 0.0);
        let mut q = Queue::new(1000, TestNumber);
        let id = || Uuid::from_u128(7);
        q.push("e", event(1), Default::default(), id);
        j.write(&host, &mut q, 1.0, false);
        assert_eq!(host.keys("myna:t:"), ["myna:t:t"], "the base first");
        let mut sizes = Vec::new();
        let mut t = 1;
        // One event per write: each write is one new record, the same size
        // however long the queue is, until the records are folded.
        loop {
            t += 1;
            q.push("e", event(t), Default::default(), id);
            let before = host.items();
            j.write(&host, &mut q, 1.0, false);
            let after = host.items();
            if after["myna:t:t"] != before["myna:t:t"] {
                break;
            }
            let new: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
            let key = alloc::format!("myna:t:t:{}", t - 1);
            assert_eq!(new, [&key], "one new key a write, nothing rewritten");
            sizes.push(after[&key].len());
        }
        assert!(t > 10, "{t} writes before the base");
        assert!(sizes.iter().all(|&s| s <= sizes[0] + 2), "{sizes:?}");
        assert_eq!(read_back(&host, "t"), [(id(), (1..=t).collect())]);
        assert_eq!(host.keys("myna:t:").len(), t as usize - 1, "swept later");
        j.sweep(&host);
        assert_eq!(
            host.keys("myna:t:"),
            ["myna:t:t"],
            "the records the base holds are gone"
        );
        // Records after the base read after it, into the same batch.
        for _ in 0..2 {
            t += 1;
            q.push("e", event(t), Default::default(), id);
            j.write(&host, &mut q, 1.0, false);
        }
        assert_eq!(host.keys("myna:t:").len(), 3);
        assert_eq!(read_back(&host, "t"), [(id(), (1..=t).collect())]);
        // Nothing new: nothing written.
        let before = host.items();
        j.write(&host, &mut q, 1.0, false);
        assert_eq!(host.items(), before);
        // A minute on, the heartbeat: the base, holding the records.
        j.write(&host, &mut q, 1.0 + HEARTBEAT_MS, false);
        j.sweep(&host);
        assert_eq!(host.keys("myna:t:"), ["myna:t:t"]);
        assert_eq!(read_back(&host, "t"), [(id(), (1..=t).collect())]);
    }

    #[test]
    fn a_crash_between_any_two_writes_leaves_each_event_once() {
        // A crash after the base was written but before the records it
        // holds were removed: they are not read again.
        let host = TestHost::new();
        let mut j = Journal::new("myna", "t", 0.0);
        let mut q = Queue::new(1000, TestNumber);
        for t in 1..=3 {
            q.push("e", event(t), Default::default(), || Uuid::from_u128(7));
            j.write(&host, &mut q, 1.0, false);
        }
        let records: Vec<(String, String)> = host
            .items()
            .into_iter()
            .filter(|(k, _)| k.starts_with("myna:t:t:"))
            .collect();
        assert_eq!(records.len(), 2);
        j.write(&host, &mut q, 1.0 + HEARTBEAT_MS, false); // the base
        assert_eq!(host.keys("myna:t:").len(), 3, "records not swept yet");
        assert_eq!(read_back(&host, "t"), [(Uuid::from_u128(7), vec![1, 2, 3])]);
        j.sweep(&host);
        for (k, v) in &records {
            host.set(k, v); // as if the crash came before their removal
        }
        assert_eq!(read_back(&host, "t"), [(Uuid::from_u128(7), vec![1, 2, 3])]);
    }

    #[test]
    fn a_batch_sent_or_dropped_rewrites_the_base_and_an_empty_queue_leaves_no_key() {
        let host = TestHost::new();
        let mut j = Journal::new("myna", "t", 0.0);
        let mut q = queue(3);
        j.write(&host, &mut q, 1.0, false);
        assert_eq!(host.keys("myna:t:"), ["myna:t:t"]);
        q.remove(Uuid::from_u128(1));
        j.write(&host, &mut q, 1.0, false);
        j.sweep(&host);
        assert_eq!(host.keys("myna:t:"), ["myna:t:t"]);
        assert_eq!(read_back(&host, "t").len(), 2);
        // Released: the base says so.
        j.write(&host, &mut q, 2.0, true);
        let stored = read_tab(&host, "myna:t:t").unwrap();
        assert!(stored.released);
        q.remove(Uuid::from_u128(2));
        q.remove(Uuid::from_u128(3));
        j.write(&host, &mut q, 1.0, true);
        assert!(host.keys("myna:").is_empty());
    }

    #[test]
    fn a_full_storage_costs_the_oldest_batches_then_keeps_the_queue_in_memory() {
        let host = TestHost::new();
        let mut j = Journal::new("myna", "t", 0.0);
        let mut q = queue(3);
        let two = stored::write_queue(&queue(2), 1.0, false, Some(0)).len();
        host.set_quota(Some(two + 20));
        let written = j.write(&host, &mut q, 1.0, false);
        assert_eq!(
            written,
            Written {
                dropped: 1,
                memory_only: false
            }
        );
        assert_eq!(q.len(), 2);
        assert_eq!(read_back(&host, "t").len(), 2);
        host.set_quota(Some(10));
        q.push("e", event(9), Default::default(), || Uuid::from_u128(9));
        let written = j.write(&host, &mut q, 1.0, false);
        // Not even the newest batch fits: dropping the older ones would
        // make no room, so all of them stay, in memory (two experiments'
        // batches on a page whose storage is full: neither is lost).
        assert_eq!(
            written,
            Written {
                dropped: 0,
                memory_only: true
            }
        );
        assert_eq!(q.len(), 3, "all of it stays, in memory");
        // Room again: what memory kept is written.
        host.set_quota(None);
        j.write(&host, &mut q, 1.0, false);
        let ids: Vec<Uuid> = read_back(&host, "t")
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            ids,
            [Uuid::from_u128(2), Uuid::from_u128(3), Uuid::from_u128(9)]
        );
    }
}
