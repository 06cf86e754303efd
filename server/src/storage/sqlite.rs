//! The SQLite backend: one embedded file in WAL mode with fully synchronous
//! commits, so an answered write survives `kill -9` and power loss alike.
//!
//! Writes go through a pool of ONE connection (SQLite has one writer; queueing
//! in the pool is fairer than SQLite's busy-wait), reads through a small pool;
//! record batches through a connection of their own (`record.rs`), which the
//! commit writer drives from its thread (other writes wait for it, up to the
//! busy timeout, as it waits for them).
//! What SQLite does like PostgreSQL is written once (`credentials.rs`,
//! `experiments.rs`, run through [`Run`], `run.rs`); its group commit is in
//! `record.rs`; its experiment reads and variant writes in `definitions.rs`;
//! backups and private files in `files.rs`.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use myna_core::Experiment;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use uuid::Uuid;

use super::rows::{HOUR_COLUMNS, hour_row, only};
use super::sql::{Run, Statement, UuidParam};
use super::{
    Account, AccountListing, ApiKey, Attempt, AttemptLog, BlockingRecorder, Delivery, Experiments,
    Fut, HEALTH_PROBE, HourTotals, Notice, Observed, Recording, Served, Storage, StorageError,
    Token, TokenHash, Unreadable, Webhook, credentials, experiments, served, webhooks,
};

mod definitions;
mod files;
mod record;
mod run;

pub use files::{backup, open_private};
use run::{map_err, transient};

use record::{DatabaseFile, Recorder};

/// Batch ids pruned by one statement.
const PRUNE_SLICE: i64 = 10_000;

/// The size the write-ahead log is cut back to once a checkpoint has copied
/// it all (SQLite's `journal_size_limit`): a reader held for long (a backup
/// of a large database) lets the log grow while it reads, and SQLite would
/// keep the file at its largest until the server stops. In steady use the
/// log stays near 4 MiB (SQLite checkpoints at 1,000 pages).
pub const WAL_SIZE_LIMIT: u64 = 16 * 1024 * 1024;

/// The SQLite storage.
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    write: SqlitePool,
    read: SqlitePool,
    recorder: Arc<Mutex<Recorder>>,
    /// The file the recorder opened ([`DatabaseFile::check`]).
    file: DatabaseFile,
}

impl SqliteStorage {
    /// Opens (creating if missing) the database file at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<SqliteStorage, StorageError> {
        open_private(path).map_err(|e| {
            StorageError::Unavailable(format!("cannot open {}: {e}", path.display()))
        })?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string());
        Self::open_with(options).await
    }

    /// Opens a database from an `sqlite:` URL (`sqlite://myna.db`), with the
    /// same durability settings as [`SqliteStorage::open`].
    pub async fn open_url(url: &str) -> Result<SqliteStorage, StorageError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StorageError::Unavailable(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string());
        Self::open_with(options).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<SqliteStorage, StorageError> {
        let file = options.get_filename().to_owned();
        if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" {
            return Err(StorageError::Unavailable(
                "an in-memory SQLite database would lose every event at exit: give a file".into(),
            ));
        }
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        let mut connection = write.acquire().await.map_err(map_err)?;
        migrate(&mut connection).await?;
        drop(connection);
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        let recorder = Recorder::open(&file)?;
        Ok(SqliteStorage {
            write,
            read,
            file: recorder.file().clone(),
            recorder: Arc::new(Mutex::new(recorder)),
        })
    }
}

/// Brings the database on `connection` up to date (the SQL migrations not
/// applied yet, in order).
pub async fn migrate(connection: &mut sqlx::SqliteConnection) -> Result<(), StorageError> {
    sqlx::migrate!("./migrations/sqlite")
        .run(connection)
        .await
        .map_err(|e| StorageError::Internal(format!("migration failed: {e}")))
}

impl SqliteStorage {
    /// The writing pool, while the path names the file opened (else
    /// unavailable: [`DatabaseFile::check`]).
    fn writer(&self) -> Result<&SqlitePool, StorageError> {
        self.file.check()?;
        Ok(&self.write)
    }
}

/// Runs a group commit on the recorder (its lock is the writer's alone,
/// but for tests calling `record`).
fn record_with(
    recorder: &Mutex<Recorder>,
    batches: &[Recording],
    now_ms: i64,
) -> Result<Vec<bool>, StorageError> {
    let mut recorder = recorder.lock().unwrap_or_else(PoisonError::into_inner);
    recorder.record(batches, now_ms)
}

impl SqliteStorage {
    /// The group commit from async code (the commit writer calls the
    /// recorder directly, from its thread): on a blocking thread.
    async fn record_batches(
        &self,
        batches: &[Recording],
        now_ms: i64,
    ) -> Result<Vec<bool>, StorageError> {
        let recorder = self.recorder.clone();
        let batches = batches.to_vec();
        tokio::task::spawn_blocking(move || record_with(&recorder, &batches, now_ms))
            .await
            .map_err(|e| StorageError::Internal(format!("the group commit failed: {e}")))?
    }
}

impl Storage for SqliteStorage {
    fn ping(&self) -> Fut<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.read)
                .await
                .map_err(map_err)?;
            // A real write, committed (and synced) like a group commit, to
            // the table commits write: one sentinel row, rewritten.
            // (SQLite stores batch ids as 16 bytes.)
            sqlx::query(
                "INSERT INTO batches (experiment, batch, created_ms) VALUES (?, ?, 0) \
                 ON CONFLICT (experiment, batch) DO UPDATE SET created_ms = 0",
            )
            .bind(UuidParam(HEALTH_PROBE))
            .bind(HEALTH_PROBE.as_bytes().as_slice())
            .execute(self.writer()?)
            .await
            .map_err(map_err)?;
            Ok(())
        })
    }

    fn close(&self) -> Fut<'_, ()> {
        Box::pin(async move {
            self.read.close().await;
            self.write.close().await;
            for moved in self.file.set_aside_stale_log() {
                tracing::warn!(
                    file = %moved.display(),
                    "the database file was replaced while this server ran: its log set aside"
                );
            }
            Ok(())
        })
    }

    fn account_count(&self) -> Fut<'_, u64> {
        Box::pin(credentials::account_count(self))
    }

    fn create_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()> {
        Box::pin(credentials::create_account(self, account))
    }

    fn account_by_email<'a>(&'a self, email: &'a str) -> Fut<'a, Option<Account>> {
        Box::pin(credentials::account_by_email(self, email))
    }

    fn accounts(&self) -> Fut<'_, Vec<AccountListing>> {
        Box::pin(credentials::accounts(self))
    }

    fn account_experiments(&self, account_id: Uuid) -> Fut<'_, Vec<Uuid>> {
        Box::pin(credentials::account_experiments(self, account_id))
    }

    fn delete_account(&self, account_id: Uuid) -> Fut<'_, bool> {
        Box::pin(credentials::delete_account(self, account_id))
    }

    fn set_password<'a>(&'a self, account_id: Uuid, password_hash: &'a str) -> Fut<'a, bool> {
        Box::pin(credentials::set_password(self, account_id, password_hash))
    }

    fn create_token(&self, token: Token, max: usize) -> Fut<'_, ()> {
        Box::pin(credentials::create_token(self, token, max))
    }

    fn token(&self, hash: TokenHash) -> Fut<'_, Option<Token>> {
        Box::pin(credentials::token(self, hash))
    }

    fn extend_token(&self, hash: TokenHash, expires_ms: i64) -> Fut<'_, ()> {
        Box::pin(credentials::extend_token(self, hash, expires_ms))
    }

    fn delete_token(&self, hash: TokenHash) -> Fut<'_, bool> {
        Box::pin(credentials::delete_token(self, hash))
    }

    fn delete_account_tokens(&self, account_id: Uuid) -> Fut<'_, u64> {
        Box::pin(credentials::delete_account_tokens(self, account_id))
    }

    fn prune_tokens(&self, now_ms: i64) -> Fut<'_, u64> {
        Box::pin(credentials::prune_tokens(self, now_ms))
    }

    fn secret<'a>(&'a self, name: &'a str, fresh: &'a str) -> Fut<'a, String> {
        Box::pin(credentials::secret(self, name, fresh))
    }

    fn create_api_key<'a>(&'a self, key: &'a ApiKey, max: usize) -> Fut<'a, bool> {
        Box::pin(credentials::create_api_key(self, key, max))
    }

    fn api_key(&self, uuid: Uuid) -> Fut<'_, Option<ApiKey>> {
        Box::pin(credentials::api_key(self, uuid))
    }

    fn api_keys(&self, account_id: Uuid) -> Fut<'_, Vec<ApiKey>> {
        Box::pin(credentials::api_keys(self, account_id))
    }

    fn delete_api_key(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(credentials::delete_api_key(self, account_id, uuid))
    }

    fn experiments(&self) -> Fut<'_, Experiments> {
        Box::pin(self.load_experiments(None))
    }

    fn experiment(&self, uuid: Uuid) -> Fut<'_, Option<Result<Experiment, Unreadable>>> {
        Box::pin(async move { Ok(only(self.load_experiments(Some(uuid)).await?)) })
    }

    fn known_as(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, Option<Uuid>> {
        Box::pin(experiments::known_as(self, account_id, uuid))
    }

    fn create_experiment<'a>(&'a self, experiment: &'a Experiment, now_ms: i64) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut tx = self.writer()?.begin().await.map_err(map_err)?;
            experiments::insert(experiment, now_ms)
                .query::<Sqlite>()
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            Self::write_variants(&mut tx, experiment, true).await?;
            tx.commit().await.map_err(map_err)
        })
    }

    fn update_experiment<'a>(&'a self, experiment: &'a Experiment) -> Fut<'a, bool> {
        Box::pin(async move {
            let mut tx = self.writer()?.begin().await.map_err(map_err)?;
            let done = experiments::update(experiment)
                .query::<Sqlite>()
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            let rows = Statement::new("SELECT id FROM variants WHERE experiment = $1")
                .uuid(experiment.uuid)
                .query::<Sqlite>()
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
            for row in rows {
                let id: String = row.try_get("id").map_err(map_err)?;
                if !experiment.has_variant(&id) {
                    let variant =
                        Statement::new("DELETE FROM variants WHERE experiment = $1 AND id = $2")
                            .uuid(experiment.uuid)
                            .text(id.as_str());
                    for statement in [variant, served::delete_variant(experiment.uuid, &id)] {
                        statement
                            .query::<Sqlite>()
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                    }
                }
            }
            Self::write_variants(&mut tx, experiment, false).await?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }

    fn delete_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(async move {
            let mut tx = self.writer()?.begin().await.map_err(map_err)?;
            let done = experiments::delete(uuid)
                .query::<Sqlite>()
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let batches = Statement::new("DELETE FROM batches WHERE experiment = $1").uuid(uuid);
            for statement in [batches, served::delete(uuid)] {
                statement
                    .query::<Sqlite>()
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn reset_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(async move {
            let mut tx = self.writer()?.begin().await.map_err(map_err)?;
            let found = Statement::new("SELECT 1 FROM experiments WHERE uuid = $1")
                .uuid(uuid)
                .query::<Sqlite>()
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            if found.is_none() {
                return Ok(false);
            }
            for statement in [
                experiments::zero_counts(uuid),
                experiments::delete_hours(uuid),
                served::delete(uuid),
            ] {
                statement
                    .query::<Sqlite>()
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }

    fn record<'a>(&'a self, batches: &'a [Recording], now_ms: i64) -> Fut<'a, Vec<bool>> {
        Box::pin(self.record_batches(batches, now_ms))
    }

    fn blocking_recorder(&self) -> Option<BlockingRecorder> {
        let recorder = self.recorder.clone();
        Some(Box::new(move |batches, now_ms| {
            record_with(&recorder, batches, now_ms)
        }))
    }

    fn prune_batches(&self, before_ms: i64) -> Fut<'_, u64> {
        Box::pin(async move {
            // In slices, so group commits never wait long behind the pruning.
            let mut pruned = 0;
            loop {
                let done = sqlx::query(
                    "DELETE FROM batches WHERE (experiment, batch) IN \
                     (SELECT experiment, batch FROM batches WHERE created_ms < ? LIMIT ?)",
                )
                .bind(before_ms)
                .bind(PRUNE_SLICE)
                .execute(self.writer()?)
                .await
                .map_err(map_err)?;
                pruned += done.rows_affected();
                if done.rows_affected() < PRUNE_SLICE.unsigned_abs() {
                    return Ok(pruned);
                }
            }
        })
    }

    fn hourly(&self, experiment: Uuid) -> Fut<'_, Vec<HourTotals>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {HOUR_COLUMNS} FROM variant_hours h \
                 JOIN (SELECT id, position FROM variants WHERE experiment = $1) v \
                   ON v.id = h.variant \
                 WHERE h.experiment = $1 ORDER BY v.position, h.hour_ms"
            );
            self.fetch_map(Statement::new(sql).uuid(experiment), hour_row)
                .await
        })
    }

    fn add_served<'a>(&'a self, rows: &'a [Served]) -> Fut<'a, ()> {
        Box::pin(served::add(self, rows))
    }

    fn served(&self, experiment: Uuid) -> Fut<'_, Vec<Served>> {
        Box::pin(served::of(self, experiment))
    }

    fn create_webhook<'a>(&'a self, webhook: &'a Webhook, max: usize) -> Fut<'a, bool> {
        Box::pin(webhooks::create_webhook(self, webhook, max))
    }

    fn webhooks(&self, account_id: Uuid) -> Fut<'_, Vec<Webhook>> {
        Box::pin(webhooks::webhooks(self, account_id))
    }

    fn delete_webhook(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(webhooks::delete_webhook(self, account_id, uuid))
    }

    fn webhook_accounts(&self) -> Fut<'_, Vec<Uuid>> {
        Box::pin(webhooks::webhook_accounts(self))
    }

    fn observations(&self) -> Fut<'_, Vec<Observed>> {
        Box::pin(webhooks::observations(self))
    }

    fn observe<'a>(&'a self, notice: &'a Notice<'a>) -> Fut<'a, bool> {
        Box::pin(webhooks::observe(self, notice))
    }

    fn due_deliveries(
        &self,
        now_ms: i64,
        per_webhook: usize,
        limit: usize,
    ) -> Fut<'_, Vec<Delivery>> {
        Box::pin(webhooks::due_deliveries(self, now_ms, per_webhook, limit))
    }

    fn claim_delivery(&self, id: i64, due_ms: i64, until_ms: i64, now_ms: i64) -> Fut<'_, bool> {
        Box::pin(webhooks::claim_delivery(self, id, due_ms, until_ms, now_ms))
    }

    fn finish_attempt<'a>(&'a self, attempt: &'a Attempt) -> Fut<'a, ()> {
        Box::pin(webhooks::finish_attempt(self, attempt))
    }

    fn deliveries(&self, account_id: Uuid, limit: usize) -> Fut<'_, Vec<Delivery>> {
        Box::pin(webhooks::deliveries(self, account_id, limit))
    }

    fn prune_deliveries(&self, keep: usize) -> Fut<'_, u64> {
        Box::pin(webhooks::prune_deliveries(self, keep))
    }

    fn drop_pending(&self, max: usize) -> Fut<'_, Vec<(Uuid, u64)>> {
        Box::pin(webhooks::drop_pending(self, max))
    }

    fn attempts(&self, account_id: Uuid, limit: usize) -> Fut<'_, Vec<AttemptLog>> {
        Box::pin(webhooks::attempts(self, account_id, limit))
    }
}
