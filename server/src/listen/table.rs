//! The open connections: how many there are, which are idle and since when,
//! and the eviction of the one idle the longest when a new client needs its
//! place. A connection is idle when no request is in flight on it: it waits
//! for its next request's head, or receives it (a head trickled byte by byte
//! is idle too); it is busy from the moment hyper hands a request to the
//! service until the last byte of its answer is written, save while the
//! request's body is being received, or while writing its answer makes no
//! progress (counted as idle then: a body trickled byte by byte, or an
//! answer its client does not read, holds no place either).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use poem::http::Method;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

use super::frames::{Ahead, Frames};

/// [`Conn::state`] of a connection with a request in flight.
const BUSY: u64 = 0;
/// [`Conn::state`] of a connection chosen for eviction.
const EVICTED: u64 = u64::MAX;

/// One open connection, shared by its task, its I/O and the table.
#[derive(Debug)]
pub(crate) struct Conn {
    epoch: Instant,
    /// [`BUSY`], [`EVICTED`], or idle since this millisecond (after `epoch`) + 1.
    state: AtomicU64,
    /// Where its answers start and end (see [`Frames`]).
    frames: Mutex<Frames>,
    evict: Notify,
}

impl Conn {
    fn new(epoch: Instant) -> Conn {
        let conn = Conn {
            epoch,
            state: AtomicU64::new(BUSY),
            frames: Mutex::default(),
            evict: Notify::new(),
        };
        conn.state.store(conn.now(), Ordering::Release);
        conn
    }

    /// A value of `state` for "idle since now".
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX - 2)
            .saturating_add(1)
            .min(u64::MAX - 1)
    }

    /// The framing of its answers.
    pub(crate) fn frames(&self) -> MutexGuard<'_, Frames> {
        self.frames.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hyper hands a request to the service: the connection is busy.
    pub(crate) fn dispatch(&self, method: &Method) {
        self.frames().dispatch(method);
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state != EVICTED).then_some(BUSY)
            });
    }

    /// Bytes of answers were written: once every request is answered to the
    /// last byte, the connection is idle from now. `ahead` is the framing
    /// after all the bytes that were to be written ([`Frames::ahead`]): taken
    /// as is when all of them were, and no request was dispatched since.
    pub(crate) fn wrote(&self, bytes: &[u8], (ours, ahead): (usize, Ahead)) {
        let mut frames = self.frames();
        if bytes.len() == ours && frames.is_current(&ahead) {
            frames.take(ahead);
        } else {
            frames.advance(bytes);
        }
        if frames.idle() {
            let _ =
                self.state
                    .compare_exchange(BUSY, self.now(), Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// The request in flight is receiving its body
    /// ([`crate::request::BodyArrival`]): until the returned guard is dropped
    /// the connection counts as idle from now, so at the cap a client that
    /// trickles a body gives its place to a new one as a client trickling
    /// a head does (and as it, it is closed, the request unanswered).
    pub(crate) fn receiving(self: &Arc<Self>) -> Receiving {
        let since = self.now();
        let _ = self
            .state
            .compare_exchange(BUSY, since, Ordering::AcqRel, Ordering::Acquire);
        Receiving(self.clone())
    }

    /// Writing its answer makes no progress (the client does not read it):
    /// until it does ([`Conn::write_resumed`]) the connection counts as idle
    /// from now, so at the cap a client that stops reading gives its place
    /// to a new one (and is closed, its answer unread) rather than holding
    /// it until the write timeout.
    pub(crate) fn write_stalled(&self) {
        let since = self.now();
        let _ = self
            .state
            .compare_exchange(BUSY, since, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Writing progresses again after [`Conn::write_stalled`]: busy, unless
    /// evicted meanwhile.
    pub(crate) fn write_resumed(&self) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state != EVICTED).then_some(BUSY)
            });
    }

    /// Resolves once the connection was evicted (at once if it already was).
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Since when it is idle (a sortable value), if it is.
    fn idle_since(&self) -> Option<u64> {
        Some(self.state.load(Ordering::Acquire)).filter(|s| *s != BUSY && *s != EVICTED)
    }

    /// Evicts it if it is still idle since `since`: whether it was.
    fn evict_if_idle_since(&self, since: u64) -> bool {
        let evicted = self
            .state
            .compare_exchange(since, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if evicted {
            self.evict.notify_one();
        }
        evicted
    }

    /// Evicts it if it has been idle (one whose answer's write stalled is)
    /// for at least `patience`: whether it was.
    pub(crate) fn evict_if_idle_for(&self, patience: Duration) -> bool {
        let patience = u64::try_from(patience.as_millis()).unwrap_or(u64::MAX);
        self.idle_since().is_some_and(|since| {
            self.now().saturating_sub(since) >= patience && self.evict_if_idle_since(since)
        })
    }
}

/// A body being received ([`Conn::receiving`]): the request is in flight
/// again once it is dropped, unless the connection was evicted meanwhile.
#[derive(Debug)]
pub(crate) struct Receiving(Arc<Conn>);

impl Drop for Receiving {
    fn drop(&mut self) {
        let _ = self
            .0
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state != EVICTED).then_some(BUSY)
            });
    }
}

/// The open connections.
#[derive(Debug)]
pub(crate) struct Table {
    epoch: Instant,
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// How many are open, for the metrics.
    open: Gauge,
}

/// A connection's place in the table, given up when dropped (its task ended).
#[derive(Debug)]
pub(crate) struct Entry {
    table: Arc<Table>,
    id: u64,
    /// The connection.
    pub(crate) conn: Arc<Conn>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.table.lock().remove(&self.id);
        self.table.open.dec();
    }
}

impl Table {
    /// An empty table, counting the connections open in `open`.
    pub(crate) fn new(open: Gauge) -> Arc<Table> {
        Arc::new(Table {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            conns: Mutex::default(),
            open,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection, idle from now.
    pub(crate) fn open(self: &Arc<Self>) -> Entry {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(self.epoch));
        self.lock().insert(id, conn.clone());
        self.open.inc();
        Entry {
            table: self.clone(),
            id,
            conn,
        }
    }

    /// How many connections are open (evicted ones until they are closed).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Evicts the connection idle the longest; false if none is idle.
    pub(crate) fn evict_longest_idle(&self) -> bool {
        let conns = self.lock();
        // A connection may turn busy between the look and the eviction; then
        // look again (at most once per connection, so this ends).
        for _ in 0..=conns.len() {
            let oldest = conns
                .values()
                .filter_map(|conn| Some((conn.idle_since()?, conn)))
                .min_by_key(|(since, _)| *since);
            let Some((since, conn)) = oldest else {
                return false;
            };
            if conn.evict_if_idle_since(since) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_goes_first_and_busy_ones_never() {
        let open = Gauge::default();
        let table = Table::new(open.clone());
        let first = table.open();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let second = table.open();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let third = table.open();
        assert_eq!(table.len(), 3);
        assert_eq!(open.get(), 3);
        // The oldest is busy: the next oldest idle one goes.
        first.conn.dispatch(&Method::GET);
        assert!(table.evict_longest_idle());
        assert_eq!(second.conn.state.load(Ordering::Acquire), EVICTED);
        // An evicted connection stays evicted, even if a request comes.
        second.conn.dispatch(&Method::GET);
        assert_eq!(second.conn.state.load(Ordering::Acquire), EVICTED);
        assert!(table.evict_longest_idle());
        assert_eq!(third.conn.state.load(Ordering::Acquire), EVICTED);
        assert!(!table.evict_longest_idle(), "the busy one stays");
        // Part of its answer written (a short write: the framing ahead of the
        // whole is not taken), it is still busy; all of it, idle again.
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        let ahead = first.conn.frames().ahead(answer);
        first.conn.wrote(&answer[..10], ahead);
        assert!(
            !table.evict_longest_idle(),
            "a part of the answer is not all"
        );
        let ahead = first.conn.frames().ahead(&answer[10..]);
        first.conn.wrote(&answer[10..], ahead);
        assert!(table.evict_longest_idle());
        drop((first, second, third));
        assert_eq!(table.len(), 0);
        assert_eq!(open.get(), 0);
    }

    #[test]
    fn a_request_receiving_its_body_may_be_evicted_then_is_busy_again() {
        let table = Table::new(Gauge::default());
        let slow = table.open();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let fast = table.open();
        slow.conn.dispatch(&Method::POST);
        fast.conn.dispatch(&Method::POST);
        assert!(!table.evict_longest_idle(), "both in flight");
        // Both receive their bodies; the one that started first goes first.
        let slow_body = slow.conn.receiving();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let fast_body = fast.conn.receiving();
        drop(fast_body);
        assert!(table.evict_longest_idle());
        assert_eq!(slow.conn.state.load(Ordering::Acquire), EVICTED);
        drop(slow_body);
        assert_eq!(
            slow.conn.state.load(Ordering::Acquire),
            EVICTED,
            "stays evicted"
        );
        // The other has its body: in flight, not evicted.
        assert!(!table.evict_longest_idle());
        assert_eq!(fast.conn.state.load(Ordering::Acquire), BUSY);
    }

    #[test]
    fn an_answer_its_client_does_not_read_may_be_evicted_until_it_is_read() {
        let table = Table::new(Gauge::default());
        let reader = table.open();
        let stuck = table.open();
        reader.conn.dispatch(&Method::GET);
        stuck.conn.dispatch(&Method::GET);
        reader.conn.write_stalled();
        reader.conn.write_resumed();
        stuck.conn.write_stalled();
        assert!(table.evict_longest_idle(), "the stalled one goes");
        assert_eq!(stuck.conn.state.load(Ordering::Acquire), EVICTED);
        stuck.conn.write_resumed();
        assert_eq!(stuck.conn.state.load(Ordering::Acquire), EVICTED);
        assert!(!table.evict_longest_idle(), "the one being read stays");
        assert_eq!(reader.conn.state.load(Ordering::Acquire), BUSY);
    }
}
