//! Answers' bodies as connections write them. A large body is handed to
//! hyper in slices of [`SLICE_BYTES`], so a connection's write buffer holds
//! one slice, not a copy of the whole answer (hyper copies each piece it is
//! given into its buffer). And while they are written, large bodies hold
//! their size of one [`AnswerBudget`] for the whole server: a client that
//! asks for a large answer (a deployment, a search, both public with an
//! API key) and never reads it cannot make the server keep a copy per
//! connection. With no room, the connections whose writes stalled (clients
//! not reading, see [`super::STALL_GRACE`]) make room, else the answer is
//! a 503 problem. An answer larger than the whole budget waits for all of
//! it (written alone). The share is taken inside the routes' outermost
//! layer ([`AnswerRoom::make_room`], so the 503 is logged, counted and
//! stamped as every answer is) and travels in the answer's extensions to
//! the connection ([`AnswerShare`], [`Sliced`]).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::table::Conn;
use crate::auth::throttle::ClientKey;
use crate::request::{AnswerRoom, AnswerShare};

/// The most bytes of one answer handed to hyper at once.
pub(crate) const SLICE_BYTES: usize = 64 * 1024;

/// What large answers may hold at once by default (`--max-answer-memory`).
pub const ANSWER_MEMORY: usize = 256 << 20;

/// The smallest budget (a smaller `--max-answer-memory` is raised to it).
pub const MIN_ANSWER_MEMORY: usize = 1 << 20;

/// How long an answer waits for the room the stalled connections it closed
/// give back.
const MAKE_ROOM_WAIT: Duration = Duration::from_millis(500);

/// The most of the budget one client (address, see
/// [`crate::auth::throttle::ClientKey`]) holds beyond its first
/// answer: a quarter, so a client that asks more often than others cannot
/// take all the room that closing stalled connections frees.
const CLIENT_SHARE: usize = 4;

/// The memory the large answers being written hold together, one per
/// server (in KiB).
#[derive(Debug, Clone)]
pub struct AnswerBudget(Arc<Budget>);

#[derive(Debug)]
struct Budget {
    kib: Arc<Semaphore>,
    total_kib: usize,
    /// How long a holder's write must have been stalled, past the stall
    /// grace, before it is closed to make room (a reader on a slow link
    /// frees the kernel's buffer in bursts).
    patience: Duration,
    /// The connections holding some of it, each with a token that lives as
    /// long as its answer's share.
    holders: Mutex<Vec<(Weak<Conn>, Weak<()>)>>,
    /// KiB held by each client (clients holding none are not kept).
    by_client: Mutex<HashMap<ClientKey, usize>>,
}

/// An answer's share of the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    _permit: OwnedSemaphorePermit,
    _token: Arc<()>,
    budget: Arc<Budget>,
    client: ClientKey,
    kib: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut by_client = self.budget.by_client();
        if let Some(held) = by_client.get_mut(&self.client) {
            *held = held.saturating_sub(self.kib);
            if *held == 0 {
                by_client.remove(&self.client);
            }
        }
    }
}

impl AnswerBudget {
    /// A budget of `bytes` (rounded down to KiB; at least
    /// [`MIN_ANSWER_MEMORY`]), whose holders are closed to make room once
    /// their writes stalled `patience` past the stall grace.
    pub fn new(bytes: usize, patience: Duration) -> AnswerBudget {
        let total_kib = (bytes.max(MIN_ANSWER_MEMORY) / 1024).min(Semaphore::MAX_PERMITS);
        AnswerBudget(Arc::new(Budget {
            kib: Arc::new(Semaphore::new(total_kib)),
            total_kib,
            patience,
            holders: Mutex::default(),
            by_client: Mutex::default(),
        }))
    }

    /// Room for an answer of `bytes` (all of the budget for a larger one)
    /// written on `conn` for `client`: at once if there is some, else once
    /// connections whose writes stalled were closed; `None` if none had, or
    /// the client already holds its share.
    pub(crate) async fn reserve(
        &self,
        conn: &Arc<Conn>,
        bytes: usize,
        client: ClientKey,
    ) -> Option<Held> {
        let budget = &self.0;
        let kib = bytes.div_ceil(1024).min(budget.total_kib);
        let mut evicted = false;
        if budget.over_share(client, kib) {
            // What it holds may be its own stalled answers: closed, they
            // give their shares back as their connections end.
            if budget.evict_stalled() == 0 {
                return None;
            }
            evicted = true;
            let deadline = tokio::time::Instant::now() + MAKE_ROOM_WAIT;
            while budget.over_share(client, kib) {
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let permits = u32::try_from(kib).ok()?;
        let permit = match budget.kib.clone().try_acquire_many_owned(permits) {
            Ok(permit) => permit,
            Err(_) => {
                if !evicted && budget.evict_stalled() == 0 {
                    return None;
                }
                let wait = budget.kib.clone().acquire_many_owned(permits);
                tokio::time::timeout(MAKE_ROOM_WAIT, wait)
                    .await
                    .ok()?
                    .ok()?
            }
        };
        *budget.by_client().entry(client).or_default() += kib;
        let token = Arc::new(());
        let mut holders = budget.holders();
        holders.retain(|(_, token)| token.strong_count() > 0);
        holders.push((Arc::downgrade(conn), Arc::downgrade(&token)));
        Some(Held {
            _permit: permit,
            _token: token,
            budget: budget.clone(),
            client,
            kib,
        })
    }

    /// What the answers of a request on `conn` may hold (set on each request
    /// by the connection: [`AnswerRoom::make_room`] takes it).
    pub(crate) fn room(&self, conn: Arc<Conn>) -> AnswerRoom {
        let budget = self.clone();
        AnswerRoom(Arc::new(move |bytes, client| {
            let (budget, conn) = (budget.clone(), conn.clone());
            Box::pin(async move {
                let held = budget.reserve(&conn, bytes, client).await?;
                Some(AnswerShare(Arc::new(held)))
            })
        }))
    }
}

impl Budget {
    fn holders(&self) -> MutexGuard<'_, Vec<(Weak<Conn>, Weak<()>)>> {
        self.holders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn by_client(&self) -> MutexGuard<'_, HashMap<ClientKey, usize>> {
        self.by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `client` holds some and `kib` more would pass its share.
    fn over_share(&self, client: ClientKey, kib: usize) -> bool {
        let held = self.by_client().get(&client).copied().unwrap_or(0);
        held > 0 && held + kib > self.total_kib / CLIENT_SHARE
    }

    /// Closes the connections holding a share whose writes stalled for
    /// its patience; how many.
    fn evict_stalled(&self) -> usize {
        self.holders()
            .iter()
            .filter(|(_, token)| token.strong_count() > 0)
            .filter_map(|(conn, _)| conn.upgrade())
            .filter(|conn| conn.evict_if_idle_for(self.patience))
            .count()
    }
}

impl Default for AnswerBudget {
    fn default() -> Self {
        AnswerBudget::new(ANSWER_MEMORY, super::STALL_GRACE * 4)
    }
}

/// A whole body handed out in slices of [`SLICE_BYTES`] (each a view of the
/// same bytes, no copy), holding its share of the budget until dropped.
pub(crate) struct Sliced {
    rest: Bytes,
    _held: Option<AnswerShare>,
}

impl Sliced {
    pub(crate) fn new(bytes: Bytes, held: Option<AnswerShare>) -> Sliced {
        Sliced {
            rest: bytes,
            _held: held,
        }
    }
}

impl Body for Sliced {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let slice = self.rest.len().min(SLICE_BYTES);
        Poll::Ready(Some(Ok(Frame::data(self.rest.split_to(slice)))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_body_is_handed_out_in_slices_of_the_same_bytes() {
        let bytes = Bytes::from(vec![7u8; SLICE_BYTES * 2 + 5]);
        let mut body = Sliced::new(bytes.clone(), None);
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.expect("a frame").into_data().expect("data");
            sizes.push(data.len());
            all.extend_from_slice(&data);
        }
        assert_eq!(sizes, [SLICE_BYTES, SLICE_BYTES, 5]);
        assert_eq!(all, bytes);
    }

    const A: ClientKey = ClientKey::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: ClientKey = ClientKey::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn budget(bytes: usize) -> AnswerBudget {
        AnswerBudget::new(bytes, Duration::ZERO)
    }

    #[tokio::test]
    async fn the_budget_bounds_answers_held_and_gives_back_what_they_held() {
        let table = super::super::table::Table::new(Default::default());
        let conn = table.open().conn.clone();
        let budget = budget(1 << 20);
        let first = budget.reserve(&conn, 600 << 10, A).await.expect("room");
        // No room, and the holder's writes did not stall: refused.
        assert!(budget.reserve(&conn, 600 << 10, B).await.is_none());
        // Larger than the whole budget: only when all of it is free.
        assert!(budget.reserve(&conn, 2 << 20, B).await.is_none());
        drop(first);
        let alone = budget.reserve(&conn, 2 << 20, B).await.expect("all of it");
        assert!(budget.reserve(&conn, 10 << 10, A).await.is_none());
        drop(alone);
        assert!(budget.reserve(&conn, 600 << 10, B).await.is_some());
        // A budget of 0 is the smallest one.
        let least = AnswerBudget::new(0, Duration::ZERO);
        assert!(least.reserve(&conn, 900 << 10, A).await.is_some());
    }

    #[tokio::test]
    async fn a_client_holds_at_most_a_quarter_beyond_its_first_answer() {
        let table = super::super::table::Table::new(Default::default());
        let conn = table.open().conn.clone();
        let budget = budget(8 << 20);
        // A first answer larger than a quarter is written.
        let first = budget.reserve(&conn, 3 << 20, A).await.expect("room");
        // The same client's next one is not, though there is room for it;
        // another client's is.
        assert!(budget.reserve(&conn, 300 << 10, A).await.is_none());
        let other = budget.reserve(&conn, 1 << 20, B).await.expect("room");
        let more = budget.reserve(&conn, 1 << 20, B).await.expect("a quarter");
        assert!(budget.reserve(&conn, 300 << 10, B).await.is_none());
        drop((first, other, more));
        assert!(budget.0.by_client().is_empty(), "nothing kept for no share");
        assert!(budget.reserve(&conn, 300 << 10, A).await.is_some());
    }

    #[tokio::test]
    async fn a_connection_whose_write_stalled_makes_room() {
        let table = super::super::table::Table::new(Default::default());
        let stalled = table.open();
        let budget = budget(1 << 20);
        let held = budget.reserve(&stalled.conn, 600 << 10, A).await;
        stalled.conn.dispatch(&poem::http::Method::GET);
        stalled.conn.write_stalled();
        let other = table.open().conn.clone();
        // The stalled connection is closed: its task drops its answer.
        let evicted = stalled.conn.clone();
        let closing = tokio::spawn(async move {
            evicted.evicted().await;
            drop(held);
        });
        assert!(budget.reserve(&other, 600 << 10, B).await.is_some());
        closing.await.expect("closed");
    }

    #[tokio::test]
    async fn a_write_stalled_for_less_than_the_patience_keeps_its_room() {
        let table = super::super::table::Table::new(Default::default());
        let slow = table.open();
        let budget = AnswerBudget::new(1 << 20, Duration::from_secs(600));
        let _held = budget.reserve(&slow.conn, 600 << 10, A).await;
        slow.conn.dispatch(&poem::http::Method::GET);
        slow.conn.write_stalled();
        let other = table.open().conn.clone();
        assert!(budget.reserve(&other, 600 << 10, B).await.is_none());
    }
}
