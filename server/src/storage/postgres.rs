//! The PostgreSQL backend, for running several server instances on one
//! database (scale-out). Batch ids are decided by a primary key and counts
//! are committed with them, so counts stay exact whichever instance takes a
//! call; group commits only insert (`counts.rs`), so instances never wait
//! for one another.
//!
//! Every call is bounded in time and runs on the pool of its purpose
//! (`calls.rs`): a database that does not answer, or answers slowly for one
//! kind of query, makes those calls fail with [`StorageError::Unavailable`]
//! (503, retried by the SDK) within seconds, never hang, and the pools
//! reconnect by themselves when it returns. What PostgreSQL does like
//! SQLite is written once (`credentials.rs`, `experiments.rs`, run through
//! [`Run`]); what it does its own way is here and in `definitions.rs`
//! (experiments with pending counts added, definition changes under a lock).

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use myna_core::Experiment;
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

use super::rows::only;
use super::sql::{Run, Statement};
use super::{
    Account, AccountListing, ApiKey, Apply, Attempt, AttemptLog, ChangeMark, Changes, Created,
    DELETIONS_KEPT, Delivery, Experiments, Fut, HEALTH_PROBE, HourTotals, Notice, Observed,
    Recording, Served, Storage, StorageError, Token, TokenHash, Unreadable, Updated, Webhook,
    credentials, experiments, served, webhooks,
};

mod calls;
mod counts;
mod definitions;
mod purposes;
mod reads;
mod run;

use calls::{Calls, Conn};
pub use counts::FOLD_EVERY;
use purposes::Purpose;
pub use purposes::{ACQUIRE_TIMEOUT, CALL_DEADLINE, MAX_CONNECTIONS, base_options, connect_hint};
use run::{READ_ONLY, describe, map_err, pooler_hint};

/// The pause between two attempts to reach a PostgreSQL that is not up yet
/// at start (each attempt itself lasts [`ACQUIRE_TIMEOUT`]).
const OPEN_PAUSE: Duration = Duration::from_millis(500);

/// The PostgreSQL storage.
#[derive(Debug, Clone)]
pub struct PostgresStorage {
    calls: Arc<Calls>,
}

/// Brings the schema up to date. A database that takes no writes (a
/// standby, `default_transaction_read_only`) is not migrated: with its
/// schema current the server starts on it (reads answered, writes 503
/// until it takes them, as when it turns read-only under a running
/// server); with its schema behind, the start waits for it to take writes,
/// logging, for at most `patience`.
async fn migrate(
    calls: &Calls,
    server: &str,
    started: Instant,
    patience: Option<Duration>,
) -> Result<(), StorageError> {
    let migrator = sqlx::migrate!("./migrations/postgres");
    let pool = calls.pool(Purpose::Upkeep);
    loop {
        let read_only: bool =
            sqlx::query_scalar("SELECT current_setting('transaction_read_only') = 'on'")
                .fetch_one(pool)
                .await
                .map_err(map_err)?;
        if !read_only {
            return migrator.run(pool).await.map_err(|e| {
                let e = e.to_string();
                StorageError::Internal(format!("migration failed: {e}{}", pooler_hint(&e)))
            });
        }
        // No table yet (a standby of a database never migrated): behind.
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(pool)
                .await
                .unwrap_or_default();
        if migrator.iter().all(|m| applied.contains(&m.version)) {
            tracing::warn!(
                "PostgreSQL at {server} takes no writes (a standby?); its schema is current: \
                 serving, writes answer 503 until it takes them"
            );
            return Ok(());
        }
        if patience.is_some_and(|p| started.elapsed() >= p.max(ACQUIRE_TIMEOUT)) {
            return Err(StorageError::Unavailable(format!(
                "PostgreSQL at {server} takes no writes (a standby, or \
                 default_transaction_read_only) and its schema is older than this server's: \
                 point the server at the primary, or promote the standby"
            )));
        }
        tracing::warn!(
            "PostgreSQL at {server} takes no writes (a standby?) and its schema needs \
             migrating; waiting for it to take writes (for {}s so far)",
            started.elapsed().as_secs()
        );
        // Every few seconds, as the wait for a server that is not up.
        tokio::time::sleep(ACQUIRE_TIMEOUT + OPEN_PAUSE).await;
    }
}

impl PostgresStorage {
    /// Connects to a `postgres://` URL and migrates the database (several
    /// instances starting at once take turns: the migrator holds a lock).
    /// Fails at once if PostgreSQL does not accept a connection.
    pub async fn open(url: &str) -> Result<PostgresStorage, StorageError> {
        PostgresStorage::open_waiting(url, Some(Duration::ZERO)).await
    }

    /// Like [`open`](Self::open), but while PostgreSQL refuses or does not
    /// answer connections (not started yet, starting up, restarting), logs
    /// so every few seconds and tries again, for at most `patience` (`None`:
    /// until it answers). A bad URL, an unknown host or database, or a
    /// refused login still fail at once.
    pub async fn open_waiting(
        url: &str,
        patience: Option<Duration>,
    ) -> Result<PostgresStorage, StorageError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            // `postgres://a:5432,b:5432/db`: libpq's list of hosts.
            let hosts = url.split('/').nth(2).is_some_and(|h| h.contains(','));
            let hint = if hosts {
                " (one host only: to fail over, restart with the new primary's URL, \
                 or put an address or a pooler in front; README, Scaling out)"
            } else {
                connect_hint(&e.to_string(), url)
            };
            StorageError::Unavailable(format!("bad PostgreSQL URL: {e}{hint}"))
        })?;
        let options = purposes::base_options(options, url);
        let server = format!("{}:{}", options.get_host(), options.get_port());
        let started = Instant::now();
        let waiting = async {
            loop {
                match purposes::first_pool(&options).await {
                    Ok(pool) => return Ok(pool),
                    // The pool itself retried refused connections and
                    // "starting up" answers for ACQUIRE_TIMEOUT: tell the
                    // operator, go on.
                    Err(sqlx::Error::PoolTimedOut) => {
                        tracing::warn!(
                            "PostgreSQL at {server} does not accept connections yet; \
                             waiting for it (for {}s so far)",
                            started.elapsed().as_secs()
                        );
                        tokio::time::sleep(OPEN_PAUSE).await;
                    }
                    Err(error) => {
                        let hint = connect_hint(&error.to_string(), url);
                        return Err(match map_err(error) {
                            StorageError::Unavailable(why) => {
                                StorageError::Unavailable(format!("{why}{hint}"))
                            }
                            other => other,
                        });
                    }
                }
            }
        };
        // `--database-wait`: that long in all (at least one whole attempt).
        let pool = match patience {
            None => waiting.await?,
            Some(patience) => {
                match tokio::time::timeout(patience.max(ACQUIRE_TIMEOUT), waiting).await {
                    Ok(pool) => pool?,
                    Err(_) => {
                        return Err(StorageError::Unavailable(format!(
                            "PostgreSQL at {server} did not accept a connection within {}s \
                         (is it running, and listening there?)",
                            started.elapsed().as_secs()
                        )));
                    }
                }
            }
        };
        if started.elapsed() > ACQUIRE_TIMEOUT {
            tracing::info!("PostgreSQL at {server} accepts connections now");
        }
        let calls = Calls::new(pool, &options);
        migrate(&calls, &server, started, patience).await?;
        tokio::spawn(counts::fold_every_second(Arc::downgrade(&calls)));
        Ok(PostgresStorage { calls })
    }

    /// Folds the counts committed so far into the counters now (each
    /// instance does so every [`FOLD_EVERY`] by itself); how many pending
    /// rows it moved (0 if another instance was folding).
    pub async fn fold_pending(&self) -> Result<u64, StorageError> {
        counts::fold(&self.calls).await
    }

    /// Runs one call of `purpose`, bounded in time (see `calls.rs`).
    fn bounded<'a, T: Send + 'a>(
        &'a self,
        purpose: Purpose,
        body: impl Future<Output = Result<T, StorageError>> + Send + 'a,
    ) -> Fut<'a, T> {
        self.calls.bounded(purpose, body)
    }

    /// A connection for the current call, from its purpose's pool.
    async fn conn(&self) -> Result<Conn, StorageError> {
        self.calls.conn().await
    }
}

impl Storage for PostgresStorage {
    fn ping(&self) -> Fut<'_, ()> {
        self.bounded(Purpose::Health, async move {
            // A real write, committed like a group commit, to the table
            // commits write: one sentinel row, rewritten.
            let statement = Statement::new(
                "INSERT INTO batches (experiment, batch, created_ms) VALUES ($1, $1, 0) \
                 ON CONFLICT (experiment, batch) DO UPDATE SET created_ms = 0",
            );
            self.execute(statement.uuid(HEALTH_PROBE)).await?;
            Ok(())
        })
    }

    fn close(&self) -> Fut<'_, ()> {
        Box::pin(async move {
            self.calls.close().await;
            Ok(())
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn account_count(&self) -> Fut<'_, u64> {
        self.bounded(Purpose::Logins, credentials::account_count(self))
    }

    fn create_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()> {
        self.bounded(Purpose::Logins, credentials::create_account(self, account))
    }

    fn account_by_email<'a>(&'a self, email: &'a str) -> Fut<'a, Option<Account>> {
        self.bounded(Purpose::Logins, credentials::account_by_email(self, email))
    }

    fn accounts(&self) -> Fut<'_, Vec<AccountListing>> {
        self.bounded(Purpose::Pages, credentials::accounts(self))
    }

    fn account_experiments(&self, account_id: Uuid) -> Fut<'_, Vec<Uuid>> {
        self.bounded(
            Purpose::Pages,
            credentials::account_experiments(self, account_id),
        )
    }

    fn delete_account(&self, account_id: Uuid) -> Fut<'_, bool> {
        self.bounded(
            Purpose::Logins,
            credentials::delete_account(self, account_id),
        )
    }

    fn set_password<'a>(&'a self, account_id: Uuid, password_hash: &'a str) -> Fut<'a, bool> {
        self.bounded(
            Purpose::Logins,
            credentials::set_password(self, account_id, password_hash),
        )
    }

    fn create_token(&self, token: Token, max: usize) -> Fut<'_, ()> {
        self.bounded(Purpose::Logins, credentials::create_token(self, token, max))
    }

    fn token(&self, hash: TokenHash) -> Fut<'_, Option<Token>> {
        self.bounded(Purpose::Logins, credentials::token(self, hash))
    }

    fn extend_token(&self, hash: TokenHash, expires_ms: i64) -> Fut<'_, ()> {
        self.bounded(
            Purpose::Logins,
            credentials::extend_token(self, hash, expires_ms),
        )
    }

    fn delete_token(&self, hash: TokenHash) -> Fut<'_, bool> {
        self.bounded(Purpose::Logins, credentials::delete_token(self, hash))
    }

    fn delete_account_tokens(&self, account_id: Uuid) -> Fut<'_, u64> {
        self.bounded(
            Purpose::Logins,
            credentials::delete_account_tokens(self, account_id),
        )
    }

    fn prune_tokens(&self, now_ms: i64) -> Fut<'_, u64> {
        self.bounded(Purpose::Upkeep, credentials::prune_tokens(self, now_ms))
    }

    fn secret<'a>(&'a self, name: &'a str, fresh: &'a str) -> Fut<'a, String> {
        // Not bounded: upkeep connections, at start.
        Box::pin(credentials::secret(self, name, fresh))
    }

    fn create_api_key<'a>(&'a self, key: &'a ApiKey, max: usize) -> Fut<'a, bool> {
        self.bounded(Purpose::Pages, credentials::create_api_key(self, key, max))
    }

    fn api_key(&self, uuid: Uuid) -> Fut<'_, Option<ApiKey>> {
        self.bounded(Purpose::Keys, credentials::api_key(self, uuid))
    }

    fn api_keys(&self, account_id: Uuid) -> Fut<'_, Vec<ApiKey>> {
        self.bounded(Purpose::Pages, credentials::api_keys(self, account_id))
    }

    fn delete_api_key(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, bool> {
        self.bounded(
            Purpose::Pages,
            credentials::delete_api_key(self, account_id, uuid),
        )
    }

    fn experiments(&self) -> Fut<'_, Experiments> {
        self.bounded(Purpose::Commits, reads::load(self, None))
    }

    fn changes(&self, since: Option<ChangeMark>) -> Fut<'_, Changes> {
        self.bounded(Purpose::Commits, reads::changes(self, since))
    }

    fn prune_deletions(&self) -> Fut<'_, u64> {
        let statement = Statement::new(
            "DELETE FROM deletions WHERE deleted_at < clock_timestamp() - make_interval(secs => $1)",
        )
        .integer(i64::try_from(DELETIONS_KEPT.as_secs()).unwrap_or(i64::MAX));
        self.bounded(Purpose::Upkeep, self.execute(statement))
    }

    fn experiment(&self, uuid: Uuid) -> Fut<'_, Option<Result<Experiment, Unreadable>>> {
        self.bounded(Purpose::Commits, async move {
            Ok(only(reads::load(self, Some(uuid)).await?))
        })
    }

    fn known_as(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, Option<Uuid>> {
        self.bounded(
            Purpose::Commits,
            experiments::known_as(self, account_id, uuid),
        )
    }

    fn create_experiment<'a>(&'a self, experiment: &'a Experiment, now_ms: i64) -> Fut<'a, ()> {
        self.bounded(
            Purpose::Commits,
            definitions::create(self, experiment, now_ms),
        )
    }

    fn update_experiment<'a>(&'a self, experiment: &'a Experiment) -> Fut<'a, bool> {
        self.bounded(Purpose::Commits, definitions::update(self, experiment))
    }

    fn create_experiment_checked(
        &self,
        experiment: Experiment,
        now_ms: i64,
        id_chosen: bool,
        max: usize,
    ) -> Fut<'_, Created> {
        self.bounded(
            Purpose::Commits,
            definitions::create_checked(self, experiment, now_ms, id_chosen, max),
        )
    }

    fn update_experiment_with<'a>(&'a self, uuid: Uuid, apply: Apply<'a>) -> Fut<'a, Updated> {
        self.bounded(
            Purpose::Commits,
            definitions::update_with(self, uuid, apply),
        )
    }

    fn delete_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        self.bounded(Purpose::Commits, definitions::delete(self, uuid))
    }

    fn reset_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        self.bounded(Purpose::Commits, definitions::reset(self, uuid))
    }

    fn record<'a>(&'a self, batches: &'a [Recording], now_ms: i64) -> Fut<'a, Vec<bool>> {
        self.bounded(
            Purpose::Commits,
            counts::record(&self.calls, batches, now_ms),
        )
    }

    fn prune_batches(&self, before_ms: i64) -> Fut<'_, u64> {
        Box::pin(async move {
            // In slices, each a call of its own, so group commits never
            // wait long behind the pruning; by row address (a TID scan),
            // as a key join would scan the whole table for every slice.
            let mut pruned = 0;
            loop {
                let statement = Statement::new(
                    "DELETE FROM batches WHERE ctid = ANY(ARRAY( \
                       SELECT ctid FROM batches WHERE created_ms < $1 LIMIT $2))",
                )
                .integer(before_ms)
                .integer(counts::SLICE);
                let deleted = self
                    .bounded(Purpose::Upkeep, self.execute(statement))
                    .await?;
                pruned += deleted;
                if deleted < counts::SLICE.unsigned_abs() {
                    return Ok(pruned);
                }
            }
        })
    }

    fn hourly(&self, experiment: Uuid) -> Fut<'_, Vec<HourTotals>> {
        self.bounded(Purpose::Pages, reads::hourly(self, experiment))
    }

    fn add_served<'a>(&'a self, rows: &'a [Served]) -> Fut<'a, ()> {
        self.bounded(Purpose::Upkeep, served::add(self, rows))
    }

    fn served(&self, experiment: Uuid) -> Fut<'_, Vec<Served>> {
        self.bounded(Purpose::Pages, served::of(self, experiment))
    }

    fn create_webhook<'a>(&'a self, webhook: &'a Webhook, max: usize) -> Fut<'a, bool> {
        self.bounded(Purpose::Pages, webhooks::create_webhook(self, webhook, max))
    }

    fn webhooks(&self, account_id: Uuid) -> Fut<'_, Vec<Webhook>> {
        self.bounded(Purpose::Pages, webhooks::webhooks(self, account_id))
    }

    fn delete_webhook(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, bool> {
        self.bounded(
            Purpose::Pages,
            webhooks::delete_webhook(self, account_id, uuid),
        )
    }

    fn webhook_accounts(&self) -> Fut<'_, Vec<Uuid>> {
        self.bounded(Purpose::Upkeep, webhooks::webhook_accounts(self))
    }

    fn observations(&self) -> Fut<'_, Vec<Observed>> {
        self.bounded(Purpose::Upkeep, webhooks::observations(self))
    }

    fn observe<'a>(&'a self, notice: &'a Notice<'a>) -> Fut<'a, bool> {
        self.bounded(Purpose::Upkeep, webhooks::observe(self, notice))
    }

    fn due_deliveries(
        &self,
        now_ms: i64,
        per_webhook: usize,
        limit: usize,
    ) -> Fut<'_, Vec<Delivery>> {
        self.bounded(
            Purpose::Upkeep,
            webhooks::due_deliveries(self, now_ms, per_webhook, limit),
        )
    }

    fn claim_delivery(&self, id: i64, due_ms: i64, until_ms: i64, now_ms: i64) -> Fut<'_, bool> {
        self.bounded(
            Purpose::Upkeep,
            webhooks::claim_delivery(self, id, due_ms, until_ms, now_ms),
        )
    }

    fn finish_attempt<'a>(&'a self, attempt: &'a Attempt) -> Fut<'a, ()> {
        self.bounded(Purpose::Upkeep, webhooks::finish_attempt(self, attempt))
    }

    fn deliveries(&self, account_id: Uuid, limit: usize) -> Fut<'_, Vec<Delivery>> {
        self.bounded(
            Purpose::Pages,
            webhooks::deliveries(self, account_id, limit),
        )
    }

    fn prune_deliveries(&self, keep: usize) -> Fut<'_, u64> {
        self.bounded(Purpose::Upkeep, webhooks::prune_deliveries(self, keep))
    }

    fn drop_pending(&self, max: usize) -> Fut<'_, Vec<(Uuid, u64)>> {
        self.bounded(Purpose::Upkeep, webhooks::drop_pending(self, max))
    }

    fn attempts(&self, account_id: Uuid, limit: usize) -> Fut<'_, Vec<AttemptLog>> {
        self.bounded(Purpose::Pages, webhooks::attempts(self, account_id, limit))
    }
}
