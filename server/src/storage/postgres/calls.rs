//! How every PostgreSQL call is bounded, kept apart from calls of other
//! purposes, and told apart from an outage.
//!
//! - **Bounded**: each call ([`Calls::bounded`]) has a deadline, acquiring
//!   its connection included; the server cancels a statement a little
//!   earlier (`statement_timeout`, `lock_timeout`), so a slow query or a lock
//!   held elsewhere ends as an error on a connection that stays usable, and
//!   a database that does not answer at all (stopped, frozen, cut off) ends
//!   the call at its deadline. A connection abandoned mid-call is closed,
//!   never handed to the next call.
//! - **Apart**: each [`Purpose`] has its own pool, so logins waiting on a
//!   locked `tokens` table cannot take the connections group commits or
//!   API key lookups need.
//! - **Down only when it is**: a failed call makes one probe connect afresh
//!   (outside the pools). If that fails too, PostgreSQL is down: every call
//!   answers `Unavailable` at once while a background task probes every
//!   [`PROBE_PAUSE`]. If it succeeds, only that purpose is busy. Both are
//!   logged when they begin and when they end (with the calls refused
//!   meanwhile), never once a call.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::{Connection, Postgres};

use super::purposes::{Purpose, pool_options};
use super::{READ_ONLY, map_err};
use crate::storage::{Fut, StorageError};

/// How long the probe that tells an outage from a busy pool may take to
/// connect and get an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// While PostgreSQL is down, the pause between two probes.
const PROBE_PAUSE: Duration = Duration::from_millis(250);

tokio::task_local! {
    /// The call a connection is taken for (set by [`Calls::bounded`]).
    static CALL: Call;
}

#[derive(Debug, Clone)]
struct Call {
    purpose: Purpose,
    /// Set when the call passed its deadline and was dropped mid-way.
    abandoned: Arc<AtomicBool>,
}

/// A pooled connection for one call. Dropped normally it goes back to its
/// pool; dropped because its call was abandoned (it may be waiting for an
/// answer that never comes) it is closed instead, within a few seconds.
#[derive(Debug)]
pub struct Conn {
    conn: PoolConnection<Postgres>,
    abandoned: Arc<AtomicBool>,
}

impl Deref for Conn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.abandoned.load(Ordering::SeqCst) {
            self.conn.close_on_drop();
        }
    }
}

/// Whether PostgreSQL answers, and which purposes' pools are busy.
#[derive(Debug, Default)]
struct Health {
    /// PostgreSQL does not answer: calls are refused at once.
    down: AtomicBool,
    /// When it went down.
    down_since: Mutex<Option<Instant>>,
    /// Calls refused or failed since it went down.
    refused: AtomicU64,
    /// A probe is running.
    probing: AtomicBool,
    /// Purposes whose calls failed while PostgreSQL answered (bit per
    /// [`Purpose::index`]), and how many failed since.
    busy: [AtomicBool; Purpose::ALL.len()],
    busy_refused: [AtomicU64; Purpose::ALL.len()],
    /// Purposes that failed while a probe ran: busy if it succeeds.
    suspects: Mutex<Vec<Purpose>>,
    /// Calls that failed while a probe ran.
    unexplained: AtomicU64,
    /// When a refused write (the database takes none) was last logged.
    read_only_said: Mutex<Option<Instant>>,
}

/// The pools of one instance and what it knows of PostgreSQL's health.
#[derive(Debug)]
pub struct Calls {
    pools: Vec<PgPool>,
    /// Connect options of the probe (outside the pools).
    probe_options: PgConnectOptions,
    /// `host:port`, for the log.
    server: String,
    health: Health,
}

impl Calls {
    /// The pools: `commits` (already connected, see [`first_pool`]) and the
    /// others, which connect on first use.
    pub fn new(commits: PgPool, base: &PgConnectOptions) -> Arc<Calls> {
        let pools = Purpose::ALL
            .iter()
            .map(|&purpose| match purpose {
                Purpose::Commits => commits.clone(),
                _ => pool_options(purpose).connect_lazy_with(base.clone()),
            })
            .collect();
        Arc::new(Calls {
            pools,
            probe_options: base.clone(),
            server: format!("{}:{}", base.get_host(), base.get_port()),
            health: Health::default(),
        })
    }

    /// The pool of a purpose.
    pub fn pool(&self, purpose: Purpose) -> &PgPool {
        &self.pools[purpose.index()]
    }

    /// Closes every pool (calls made after fail as unavailable).
    pub async fn close(&self) {
        for pool in &self.pools {
            pool.close().await;
        }
    }

    fn closed(&self) -> bool {
        self.pools.iter().any(PgPool::is_closed)
    }

    /// Runs one call of `purpose` (its connections taken with
    /// [`conn`](Self::conn)) within the purpose's deadline; refused at once
    /// while PostgreSQL is known to be down. A failure to reach PostgreSQL
    /// or a deadline passed makes it find out whether PostgreSQL answers.
    pub fn bounded<'a, T: Send + 'a>(
        self: &'a Arc<Self>,
        purpose: Purpose,
        body: impl Future<Output = Result<T, StorageError>> + Send + 'a,
    ) -> Fut<'a, T> {
        Box::pin(async move {
            if self.health.down.load(Ordering::Relaxed) {
                self.health.refused.fetch_add(1, Ordering::Relaxed);
                return Err(StorageError::Unavailable(format!(
                    "PostgreSQL at {} does not answer",
                    self.server
                )));
            }
            let abandoned = Arc::new(AtomicBool::new(false));
            let call = Call {
                purpose,
                abandoned: abandoned.clone(),
            };
            let mut body = Box::pin(CALL.scope(call, body));
            let result = match tokio::time::timeout(purpose.deadline(), &mut body).await {
                Ok(result) => result,
                Err(_) => {
                    // Its connection (if it had one) is closed, not reused.
                    abandoned.store(true, Ordering::SeqCst);
                    drop(body);
                    Err(StorageError::Unavailable(format!(
                        "no answer from PostgreSQL at {} within {}s",
                        self.server,
                        purpose.deadline().as_secs()
                    )))
                }
            };
            match &result {
                // PostgreSQL answers and reads work: no pool is failing.
                Err(StorageError::Unavailable(cause)) if cause.starts_with(READ_ONLY) => {
                    self.refused_writes(cause);
                }
                Err(StorageError::Unavailable(cause)) => self.failed(purpose, cause),
                _ => self.worked(purpose),
            }
            result
        })
    }

    /// A connection for the current call (from its purpose's pool).
    pub async fn conn(&self) -> Result<Conn, StorageError> {
        // Outside `bounded` (never in this module's own calls): an upkeep
        // connection, returned to its pool as usual.
        let call = CALL.try_with(Call::clone).unwrap_or_else(|_| Call {
            purpose: Purpose::Upkeep,
            abandoned: Arc::default(),
        });
        let conn = self.pool(call.purpose).acquire().await.map_err(map_err)?;
        Ok(Conn {
            conn,
            abandoned: call.abandoned,
        })
    }

    /// A call of `purpose` succeeded (or failed for a reason of its own):
    /// if its purpose was busy, it works again.
    fn worked(&self, purpose: Purpose) {
        let i = purpose.index();
        if self.health.busy[i].load(Ordering::Relaxed)
            && self.health.busy[i].swap(false, Ordering::Relaxed)
        {
            let refused = self.health.busy_refused[i].swap(0, Ordering::Relaxed);
            tracing::info!(
                refused,
                "PostgreSQL {} calls work again ({refused} failed meanwhile)",
                purpose.name()
            );
        }
    }

    /// A write refused because the database takes none (a standby, or
    /// `default_transaction_read_only`): said once a minute while it lasts
    /// (the commits' own log says when they succeed again).
    fn refused_writes(&self, cause: &str) {
        let mut said = self
            .health
            .read_only_said
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if said.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *said = Some(Instant::now());
            tracing::warn!(
                %cause,
                "PostgreSQL at {} takes no writes (a standby, or default_transaction_read_only): \
                 writes answer 503 until it takes them (said once a minute while it lasts)",
                self.server
            );
        }
    }

    /// A call of `purpose` could not reach PostgreSQL or passed its deadline.
    fn failed(self: &Arc<Self>, purpose: Purpose, cause: &str) {
        let health = &self.health;
        if health.down.load(Ordering::Relaxed) {
            health.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let i = purpose.index();
        if health.busy[i].load(Ordering::Relaxed) {
            health.busy_refused[i].fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.closed() {
            return;
        }
        health.unexplained.fetch_add(1, Ordering::Relaxed);
        let mut suspects = health
            .suspects
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !suspects.contains(&purpose) {
            suspects.push(purpose);
        }
        drop(suspects);
        if !health.probing.swap(true, Ordering::SeqCst) {
            tokio::spawn(watch(Arc::downgrade(self), cause.to_owned()));
        }
    }

    /// Whether PostgreSQL accepts a new connection and answers on it. A
    /// server refusing more connections (`too_many_connections`) answers.
    async fn probe(&self) -> Result<(), String> {
        let attempt = async {
            let mut conn = PgConnection::connect_with(&self.probe_options).await?;
            conn.ping().await?;
            conn.close().await
        };
        match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(sqlx::Error::Database(db))) if db.code().as_deref() == Some("53300") => Ok(()),
            Ok(Err(error)) => Err(super::describe(&error)),
            Err(_) => Err(format!("no connection within {}s", PROBE_TIMEOUT.as_secs())),
        }
    }
}

/// While PostgreSQL is down, the least time between two log lines saying
/// that the probe fails for another reason.
const RETOLD_AFTER: Duration = Duration::from_secs(10);

/// `text` without its digits: a probe's failure told apart from the last
/// one logged by its words, not by a port or a count of seconds in them.
fn without_digits(text: &str) -> String {
    text.chars().filter(|c| !c.is_ascii_digit()).collect()
}

/// Probes PostgreSQL after a failed call: if it answers, the purposes that
/// failed are busy; if not, it is down until a probe (every
/// [`PROBE_PAUSE`]) succeeds.
async fn watch(calls: Weak<Calls>, cause: String) {
    // While down: the probe's failure last logged, and when (a new one,
    // a certificate refused once PostgreSQL is back, is logged too).
    let mut told: Option<(String, Instant)> = None;
    loop {
        let Some(calls) = calls.upgrade() else { return };
        let health = &calls.health;
        match calls.probe().await {
            Ok(()) => {
                let suspects = std::mem::take(
                    &mut *health
                        .suspects
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner),
                );
                let unexplained = health.unexplained.swap(0, Ordering::Relaxed);
                if health.down.swap(false, Ordering::SeqCst) {
                    let since = health
                        .down_since
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take();
                    let refused = health.refused.swap(0, Ordering::Relaxed);
                    let seconds = since.map_or(0, |s| s.elapsed().as_secs());
                    tracing::info!(
                        refused,
                        seconds,
                        "PostgreSQL at {} answers again after {seconds}s; \
                         {refused} calls answered 503 meanwhile",
                        calls.server
                    );
                } else {
                    for purpose in suspects {
                        let i = purpose.index();
                        if !health.busy[i].swap(true, Ordering::Relaxed) {
                            health.busy_refused[i].store(unexplained.max(1), Ordering::Relaxed);
                            tracing::warn!(
                                %cause,
                                "PostgreSQL answers, but {} calls fail: they answer 503 \
                                 until one succeeds (other calls are not affected)",
                                purpose.name()
                            );
                        }
                    }
                }
                health.probing.store(false, Ordering::SeqCst);
                return;
            }
            Err(error) => {
                if !health.down.swap(true, Ordering::SeqCst) {
                    *health
                        .down_since
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                    let failed = health.unexplained.swap(0, Ordering::Relaxed);
                    health.refused.store(failed, Ordering::Relaxed);
                    tracing::warn!(
                        %cause,
                        probe = %error,
                        "PostgreSQL at {} does not answer: calls answer 503 at once \
                         until it does (probed every {}ms)",
                        calls.server,
                        PROBE_PAUSE.as_millis()
                    );
                    told = Some((without_digits(&error), Instant::now()));
                } else if told.as_ref().is_none_or(|(said, at)| {
                    *said != without_digits(&error) && at.elapsed() >= RETOLD_AFTER
                }) {
                    tracing::warn!(
                        probe = %error,
                        "PostgreSQL at {} still does not answer, for another reason now",
                        calls.server
                    );
                    told = Some((without_digits(&error), Instant::now()));
                }
                health
                    .suspects
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
                if calls.closed() {
                    health.probing.store(false, Ordering::SeqCst);
                    return;
                }
            }
        }
        drop(calls);
        tokio::time::sleep(PROBE_PAUSE).await;
    }
}
