//! Writing a tab's queue when storage may be full (pure over [`Host`],
//! tested natively): the oldest batches go, one at a time, until it fits;
//! when even the newest does not, it stays in memory (and is sent from
//! there) rather than being lost.

use crate::host::Host;
use crate::queue::Queue;
use crate::stored;

/// What writing the queue cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    /// Events dropped (whole batches, oldest first) to make it fit.
    pub(crate) dropped: usize,
    /// Even the newest batch did not fit: the queue is in memory only.
    pub(crate) memory_only: bool,
}

/// Writes `queue` at `key` ([`stored::write_queue`], stamped `heartbeat`
/// and `released`), or removes the key when the queue is empty.
pub(crate) fn write_queue<H: Host>(
    host: &H,
    key: &str,
    queue: &mut Queue<H::Number>,
    heartbeat: f64,
    released: bool,
) -> Written {
    let mut dropped = 0;
    loop {
        if queue.is_empty() {
            host.remove(key);
            break;
        }
        if host.set(key, &stored::write_queue(queue, heartbeat, released)) {
            break;
        }
        if queue.batches().len() > 1 {
            dropped += queue.drop_oldest_batch();
        } else {
            return Written {
                dropped,
                memory_only: true,
            };
        }
    }
    Written {
        dropped,
        memory_only: false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::{TestHost, TestNumber};
    use myna_core::{Event, EventType};
    use uuid::Uuid;

    fn queue(batches: u128) -> Queue<TestNumber> {
        let mut q = Queue::new(1, TestNumber);
        for id in 1..=batches {
            let event = Event {
                typename: EventType::View,
                variant: "a".into(),
                amount: None,
                timestamp: id as i64,
            };
            q.push("e", event, Default::default(), || Uuid::from_u128(id));
        }
        q
    }

    #[test]
    fn a_full_storage_costs_the_oldest_batches_then_keeps_the_newest_in_memory() {
        let host = TestHost::new();
        let mut q = queue(3);
        let two = stored::write_queue(&queue(2), 1.0, false).len();
        host.set_quota(Some(two + 20));
        let written = write_queue(&host, "k", &mut q, 1.0, false);
        assert_eq!(
            written,
            Written {
                dropped: 1,
                memory_only: false
            }
        );
        assert_eq!(q.len(), 2);
        assert_eq!(host.get("k"), Some(stored::write_queue(&q, 1.0, false)));
        host.set_quota(Some(10));
        let written = write_queue(&host, "k", &mut q, 1.0, false);
        assert_eq!(
            written,
            Written {
                dropped: 1,
                memory_only: true
            }
        );
        assert_eq!(q.len(), 1, "the newest stays, in memory");
    }

    #[test]
    fn an_empty_queue_leaves_no_key() {
        let host = TestHost::new();
        let mut q = queue(1);
        write_queue(&host, "k", &mut q, 1.0, true);
        assert!(host.get("k").is_some());
        q.remove(Uuid::from_u128(1));
        write_queue(&host, "k", &mut q, 1.0, true);
        assert_eq!(host.get("k"), None);
    }
}
