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
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Postgres};

use super::{READ_ONLY, map_err};
use crate::storage::{Fut, StorageError};

/// How long a call waits for a connection of its pool (or for PostgreSQL to
/// accept a new one) before failing as unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// The server-side `statement_timeout` of the interactive purposes.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(4);
/// The server-side `lock_timeout` of the interactive purposes: a statement
/// waiting this long for a lock gives up (a table locked by hand, a stuck
/// transaction), answering an error on a connection that stays usable.
const LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// The deadline of an interactive call, its connection included: past it
/// the call answers `Unavailable` whatever PostgreSQL does.
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// `statement_timeout` and `lock_timeout` of upkeep (folding counts,
/// pruning and purging batch ids in slices, migrations).
const UPKEEP_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The deadline of an upkeep call.
const UPKEEP_DEADLINE: Duration = Duration::from_secs(65);
/// How long the probe that tells an outage from a busy pool may take to
/// connect and get an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// While PostgreSQL is down, the pause between two probes.
const PROBE_PAUSE: Duration = Duration::from_millis(250);

/// What a call is for. Each purpose has its own pool of connections, so a
/// slow or blocked kind of query never starves the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The commit writer: group commits, definition changes, refreshes.
    Commits,
    /// API key lookups (on the record path of every page).
    Keys,
    /// Accounts and tokens: logins, Basic and Bearer credentials, sessions.
    Logins,
    /// The dashboard's reads and API key management.
    Pages,
    /// The health check's write.
    Health,
    /// Background upkeep: folding counts, pruning, purging, migrations.
    Upkeep,
}

impl Purpose {
    /// Every purpose, in the order of [`Purpose::index`].
    pub const ALL: [Purpose; 6] = [
        Purpose::Commits,
        Purpose::Keys,
        Purpose::Logins,
        Purpose::Pages,
        Purpose::Health,
        Purpose::Upkeep,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Most connections its pool opens. Together: [`MAX_CONNECTIONS`].
    const fn connections(self) -> u32 {
        match self {
            // One writer, one call at a time; spares replace abandoned ones.
            Purpose::Commits => 3,
            Purpose::Keys => 3,
            Purpose::Logins => 4,
            Purpose::Pages => 3,
            Purpose::Health => 1,
            Purpose::Upkeep => 2,
        }
    }

    fn statement_timeout(self) -> Duration {
        match self {
            Purpose::Upkeep => UPKEEP_STATEMENT_TIMEOUT,
            _ => STATEMENT_TIMEOUT,
        }
    }

    fn lock_timeout(self) -> Duration {
        match self {
            Purpose::Upkeep => UPKEEP_STATEMENT_TIMEOUT,
            _ => LOCK_TIMEOUT,
        }
    }

    /// How long one call of this purpose may take, all told.
    pub fn deadline(self) -> Duration {
        match self {
            Purpose::Upkeep => UPKEEP_DEADLINE,
            _ => CALL_DEADLINE,
        }
    }

    /// Its name in the log.
    fn name(self) -> &'static str {
        match self {
            Purpose::Commits => "commit",
            Purpose::Keys => "API key",
            Purpose::Logins => "login and token",
            Purpose::Pages => "dashboard",
            Purpose::Health => "health check",
            Purpose::Upkeep => "upkeep",
        }
    }
}

/// Most connections one instance opens, all pools together (N instances
/// open at most N times this, plus a probe each during an outage: keep it
/// below the server's `max_connections`).
pub const MAX_CONNECTIONS: u32 = {
    let mut total = 0;
    let mut i = 0;
    while i < Purpose::ALL.len() {
        total += Purpose::ALL[i].connections();
        i += 1;
    }
    total
};

/// The connect options of every connection (its name in
/// `pg_stat_activity`). Its settings are set once connected
/// ([`session_settings`]), not sent as startup options, which PgBouncer
/// refuses (`unsupported startup parameter: options`) unless told to drop
/// them, and then nothing would say that the timeouts were gone.
pub fn base_options(options: PgConnectOptions) -> PgConnectOptions {
    options.application_name("myna-server")
}

/// What every connection of a purpose sets first: the server ends what a
/// lost or hung client leaves behind (an open transaction, a dead socket),
/// and cancels a statement or a wait for a lock a little before the call's
/// own deadline ([`Purpose::statement_timeout`], [`Purpose::lock_timeout`]).
/// Through a pooler in session mode these hold for the client's session.
fn session_settings(purpose: Purpose) -> String {
    format!(
        "SET idle_in_transaction_session_timeout = '10s'; \
         SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; \
         SET tcp_keepalives_count = 3; \
         SET statement_timeout = '{}ms'; SET lock_timeout = '{}ms'",
        purpose.statement_timeout().as_millis(),
        purpose.lock_timeout().as_millis()
    )
}

/// The pool settings of one purpose.
fn pool_options(purpose: Purpose) -> PgPoolOptions {
    let settings = session_settings(purpose);
    PgPoolOptions::new()
        .after_connect(move |conn, _| {
            let settings = settings.clone();
            Box::pin(async move {
                sqlx::raw_sql(AssertSqlSafe(settings)).execute(conn).await?;
                Ok(())
            })
        })
        .max_connections(purpose.connections())
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(Duration::from_secs(60))
        // An idle connection is checked before use, so connections left
        // over from before a database restart are replaced, not failed on.
        .test_before_acquire(true)
}

/// Opens the commit writer's pool, connecting once (so a bad URL, host,
/// database or login fails here).
pub async fn first_pool(base: &PgConnectOptions) -> Result<PgPool, sqlx::Error> {
    pool_options(Purpose::Commits)
        .connect_with(base.clone())
        .await
}

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

/// Probes PostgreSQL after a failed call: if it answers, the purposes that
/// failed are busy; if not, it is down until a probe (every
/// [`PROBE_PAUSE`]) succeeds.
async fn watch(calls: Weak<Calls>, cause: String) {
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
