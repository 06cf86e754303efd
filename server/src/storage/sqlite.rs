//! The SQLite backend: one embedded file in WAL mode with fully synchronous
//! commits, so an answered write survives `kill -9` and power loss alike.
//!
//! Writes go through a pool of ONE connection (SQLite has one writer; queueing
//! in the pool is fairer than SQLite's busy-wait), reads through a small pool.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use myna_core::Experiment;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::rows::{
    Columns, account_row, api_key_row, count_col, experiments_from_rows, only, to_i64, token_row,
    uuid_col,
};
use super::{
    Account, ApiKey, Deltas, Experiments, Fut, HEALTH_PROBE, HourTotals, Recording, Storage,
    StorageError, Token, TokenHash, Unreadable,
};

/// Rows written by one statement (at most 5 parameters each: far below
/// SQLite's limit of 32766).
const ROWS_PER_STATEMENT: usize = 500;
/// Batch ids pruned by one statement.
const PRUNE_SLICE: i64 = 10_000;

/// The SQLite storage.
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    write: SqlitePool,
    read: SqlitePool,
}

impl SqliteStorage {
    /// Opens (creating if missing) the database file at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<SqliteStorage, StorageError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
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
            .busy_timeout(Duration::from_secs(10));
        Self::open_with(options).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<SqliteStorage, StorageError> {
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&write)
            .await
            .map_err(|e| StorageError::Internal(format!("migration failed: {e}")))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(SqliteStorage { write, read })
    }
}

/// Maps a driver error: I/O, busy, full disk and pool problems are
/// `Unavailable` (retry later); a unique violation is `Conflict`.
fn map_err(error: sqlx::Error) -> StorageError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
        sqlx::Error::Database(db) => {
            // SQLite's primary result code is the low byte of the extended one.
            let primary = db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            // BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL.
            if matches!(primary, Some(5 | 6 | 8 | 10 | 13 | 14 | 15)) {
                StorageError::Unavailable(error.to_string())
            } else {
                StorageError::Internal(error.to_string())
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StorageError::Unavailable(error.to_string()),
        _ => StorageError::Internal(error.to_string()),
    }
}

/// `n` copies of a row placeholder, comma-separated.
fn rows(n: usize, row: &str) -> String {
    vec![row; n].join(", ")
}

const EXPERIMENT_COLUMNS: &str = "uuid, alias, account_id, name, visibility, settings";
const VARIANT_COLUMNS: &str = "experiment, id, name, settings, views, total_reward";

impl SqliteStorage {
    async fn load_experiments(&self, uuid: Option<Uuid>) -> Result<Experiments, StorageError> {
        let filter = if uuid.is_some() {
            " WHERE uuid = ?"
        } else {
            ""
        };
        let sql = format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments{filter} ORDER BY uuid");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(uuid) = uuid {
            query = query.bind(uuid.to_string());
        }
        let experiments = query.fetch_all(&self.read).await.map_err(map_err)?;
        let filter = if uuid.is_some() {
            " WHERE experiment = ?"
        } else {
            ""
        };
        let sql =
            format!("SELECT {VARIANT_COLUMNS} FROM variants{filter} ORDER BY experiment, position");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(uuid) = uuid {
            query = query.bind(uuid.to_string());
        }
        let variants = query.fetch_all(&self.read).await.map_err(map_err)?;
        Ok(experiments_from_rows(&experiments, &variants))
    }

    async fn record_batches(
        &self,
        batches: &[Recording],
        now_ms: i64,
    ) -> Result<Vec<bool>, StorageError> {
        let mut connection = self.write.acquire().await.map_err(map_err)?;
        let result = record_on(&mut connection, batches, now_ms).await;
        if result.is_err() {
            // Whatever failed, the connection goes back with no transaction open.
            let _ = sqlx::query("ROLLBACK").execute(&mut *connection).await;
        }
        result
    }

    async fn write_variants(
        tx: &mut sqlx::SqliteConnection,
        experiment: &Experiment,
        with_counts: bool,
    ) -> Result<(), StorageError> {
        let uuid = experiment.uuid.to_string();
        for (position, v) in experiment.variants.iter().enumerate() {
            let settings = v.settings.to_string();
            let position = i64::try_from(position).unwrap_or(i64::MAX);
            if with_counts {
                sqlx::query(
                    "INSERT INTO variants (experiment, id, position, name, settings, views, total_reward) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(uuid.as_str())
                .bind(v.id.as_str())
                .bind(position)
                .bind(v.name.as_str())
                .bind(settings)
                .bind(to_i64(v.views))
                .bind(v.total_reward)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            } else {
                sqlx::query(
                    "INSERT INTO variants (experiment, id, position, name, settings) \
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT (experiment, id) DO UPDATE SET \
                     position = excluded.position, name = excluded.name, settings = excluded.settings",
                )
                .bind(uuid.as_str())
                .bind(v.id.as_str())
                .bind(position)
                .bind(v.name.as_str())
                .bind(settings)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
        }
        Ok(())
    }
}

/// One group commit in two round trips to the connection's thread, which is
/// what a commit mostly waits on: first `BEGIN` and the batch ids (answering
/// which are new), then the counters, the hourly totals and `COMMIT`, as
/// multi-statement texts whose parameters are consumed in order. The texts
/// depend only on row counts, so they stay prepared.
async fn record_on(
    connection: &mut SqliteConnection,
    batches: &[Recording],
    now_ms: i64,
) -> Result<Vec<bool>, StorageError> {
    let ids: Vec<(String, Uuid)> = batches
        .iter()
        .filter_map(|r| r.batch.batch.map(|id| (r.experiment.to_string(), id)))
        .collect();
    let mut inserted: HashSet<(Uuid, Uuid)> = HashSet::with_capacity(ids.len());
    let mut begun = false;
    if !ids.is_empty() {
        let mut sql = String::from("BEGIN IMMEDIATE;");
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            sql.push_str(&format!(
                "INSERT INTO batches (experiment, batch, created_ms) VALUES {} \
                 ON CONFLICT DO NOTHING RETURNING experiment, batch;",
                rows(chunk.len(), "(?, ?, ?)")
            ));
        }
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (experiment, id) in &ids {
            query = query
                .bind(experiment.as_str())
                .bind(id.as_bytes().as_slice())
                .bind(now_ms);
        }
        for row in query.fetch_all(&mut *connection).await.map_err(map_err)? {
            let experiment = uuid_col(&row, "experiment")?;
            let id: &[u8] = row.try_get("batch").map_err(map_err)?;
            let id = Uuid::from_slice(id)
                .map_err(|e| StorageError::Internal(format!("bad batch id: {e}")))?;
            inserted.insert((experiment, id));
        }
        begun = true;
    }
    let counted: Vec<bool> = batches
        .iter()
        .map(|r| match r.batch.batch {
            None => true,
            Some(id) => inserted.remove(&(r.experiment, id)),
        })
        .collect();
    let deltas = Deltas::of(
        batches
            .iter()
            .zip(&counted)
            .filter(|(_, counted)| **counted)
            .map(|(r, _)| r),
        now_ms,
    );
    let mut sql = String::from(if begun { "" } else { "BEGIN IMMEDIATE;" });
    for chunk in deltas.variants.chunks(ROWS_PER_STATEMENT) {
        sql.push_str(&format!(
            "UPDATE variants SET views = views + d.column3, \
             total_reward = total_reward + d.column4 \
             FROM (VALUES {}) AS d \
             WHERE variants.experiment = d.column1 AND variants.id = d.column2;",
            rows(chunk.len(), "(?, ?, ?, ?)")
        ));
    }
    for chunk in deltas.hours.chunks(ROWS_PER_STATEMENT) {
        sql.push_str(&format!(
            "INSERT INTO variant_hours (experiment, variant, hour_ms, views, total_reward) \
             SELECT d.column1, d.column2, d.column3, d.column4, d.column5 \
             FROM (VALUES {}) AS d \
             WHERE EXISTS (SELECT 1 FROM variants v \
                           WHERE v.experiment = d.column1 AND v.id = d.column2) \
             ON CONFLICT (experiment, variant, hour_ms) DO UPDATE SET \
             views = views + excluded.views, total_reward = total_reward + excluded.total_reward;",
            rows(chunk.len(), "(?, ?, ?, ?, ?)")
        ));
    }
    sql.push_str("COMMIT;");
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (experiment, variant, views, reward) in &deltas.variants {
        query = query
            .bind(experiment.to_string())
            .bind(variant.as_str())
            .bind(to_i64(*views))
            .bind(*reward);
    }
    for (experiment, variant, hour, views, reward) in &deltas.hours {
        query = query
            .bind(experiment.to_string())
            .bind(variant.as_str())
            .bind(*hour)
            .bind(to_i64(*views))
            .bind(*reward);
    }
    query.execute(&mut *connection).await.map_err(map_err)?;
    Ok(counted)
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
            sqlx::query(
                "INSERT INTO batches (experiment, batch, created_ms) VALUES (?, ?, 0) \
                 ON CONFLICT (experiment, batch) DO UPDATE SET created_ms = 0",
            )
            .bind(HEALTH_PROBE.to_string())
            .bind(HEALTH_PROBE.as_bytes().as_slice())
            .execute(&self.write)
            .await
            .map_err(map_err)?;
            Ok(())
        })
    }

    fn close(&self) -> Fut<'_, ()> {
        Box::pin(async move {
            self.read.close().await;
            self.write.close().await;
            Ok(())
        })
    }

    fn account_count(&self) -> Fut<'_, u64> {
        Box::pin(async move {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM accounts")
                .fetch_one(&self.read)
                .await
                .map_err(map_err)?;
            count_col(&row, "n")
        })
    }

    fn create_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO accounts (id, email, password_hash, created_ms) VALUES (?, ?, ?, ?)",
            )
            .bind(account.id.to_string())
            .bind(account.email.as_str())
            .bind(account.password_hash.as_str())
            .bind(account.created_ms)
            .execute(&self.write)
            .await
            .map_err(map_err)?;
            Ok(())
        })
    }

    fn account_by_email<'a>(&'a self, email: &'a str) -> Fut<'a, Option<Account>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT id, email, password_hash, created_ms FROM accounts WHERE email = ?",
            )
            .bind(email)
            .fetch_optional(&self.read)
            .await
            .map_err(map_err)?;
            row.as_ref().map(account_row).transpose()
        })
    }

    fn create_token(&self, token: Token) -> Fut<'_, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO tokens (hash, kind, account_id, expires_ms) VALUES (?, ?, ?, ?)",
            )
            .bind(token.hash.hex())
            .bind(token.kind.as_str())
            .bind(token.account_id.to_string())
            .bind(token.expires_ms)
            .execute(&self.write)
            .await
            .map_err(map_err)?;
            Ok(())
        })
    }

    fn token(&self, hash: TokenHash) -> Fut<'_, Option<Token>> {
        Box::pin(async move {
            let row =
                sqlx::query("SELECT hash, kind, account_id, expires_ms FROM tokens WHERE hash = ?")
                    .bind(hash.hex())
                    .fetch_optional(&self.read)
                    .await
                    .map_err(map_err)?;
            row.as_ref().map(token_row).transpose()
        })
    }

    fn extend_token(&self, hash: TokenHash, expires_ms: i64) -> Fut<'_, ()> {
        Box::pin(async move {
            sqlx::query("UPDATE tokens SET expires_ms = ? WHERE hash = ?")
                .bind(expires_ms)
                .bind(hash.hex())
                .execute(&self.write)
                .await
                .map_err(map_err)?;
            Ok(())
        })
    }

    fn delete_token(&self, hash: TokenHash) -> Fut<'_, bool> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM tokens WHERE hash = ?")
                .bind(hash.hex())
                .execute(&self.write)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn delete_account_tokens(&self, account_id: Uuid) -> Fut<'_, u64> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM tokens WHERE account_id = ?")
                .bind(account_id.to_string())
                .execute(&self.write)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected())
        })
    }

    fn prune_tokens(&self, now_ms: i64) -> Fut<'_, u64> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM tokens WHERE expires_ms <= ?")
                .bind(now_ms)
                .execute(&self.write)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected())
        })
    }

    fn secret<'a>(&'a self, name: &'a str, fresh: &'a str) -> Fut<'a, String> {
        Box::pin(async move {
            // Both on the one writing connection: the read sees the insert.
            sqlx::query(
                "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(fresh)
            .execute(&self.write)
            .await
            .map_err(map_err)?;
            let row = sqlx::query("SELECT value FROM secrets WHERE name = ?")
                .bind(name)
                .fetch_one(&self.write)
                .await
                .map_err(map_err)?;
            row.text("value")
        })
    }

    fn create_api_key<'a>(&'a self, key: &'a ApiKey) -> Fut<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO api_keys (uuid, account_id, name, created_ms) VALUES (?, ?, ?, ?)",
            )
            .bind(key.uuid.to_string())
            .bind(key.account_id.to_string())
            .bind(key.name.as_deref())
            .bind(key.created_ms)
            .execute(&self.write)
            .await
            .map_err(map_err)?;
            Ok(())
        })
    }

    fn api_key(&self, uuid: Uuid) -> Fut<'_, Option<ApiKey>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT uuid, account_id, name, created_ms FROM api_keys WHERE uuid = ?",
            )
            .bind(uuid.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(map_err)?;
            row.as_ref().map(api_key_row).transpose()
        })
    }

    fn api_keys(&self, account_id: Uuid) -> Fut<'_, Vec<ApiKey>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT uuid, account_id, name, created_ms FROM api_keys \
                 WHERE account_id = ? ORDER BY created_ms, uuid",
            )
            .bind(account_id.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(map_err)?;
            rows.iter().map(api_key_row).collect()
        })
    }

    fn delete_api_key(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM api_keys WHERE uuid = ? AND account_id = ?")
                .bind(uuid.to_string())
                .bind(account_id.to_string())
                .execute(&self.write)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn experiments(&self) -> Fut<'_, Experiments> {
        Box::pin(self.load_experiments(None))
    }

    fn experiment(&self, uuid: Uuid) -> Fut<'_, Option<Result<Experiment, Unreadable>>> {
        Box::pin(async move { Ok(only(self.load_experiments(Some(uuid)).await?)) })
    }

    fn create_experiment<'a>(&'a self, experiment: &'a Experiment, now_ms: i64) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut tx = self.write.begin().await.map_err(map_err)?;
            sqlx::query(
                "INSERT INTO experiments \
                 (uuid, alias, account_id, name, visibility, settings, created_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(experiment.uuid.to_string())
            .bind(experiment.alias.map(|alias| alias.to_string()))
            .bind(experiment.account_id.to_string())
            .bind(experiment.name.as_str())
            .bind(experiment.visibility.as_str())
            .bind(experiment.settings.to_string())
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            Self::write_variants(&mut tx, experiment, true).await?;
            tx.commit().await.map_err(map_err)
        })
    }

    fn update_experiment<'a>(&'a self, experiment: &'a Experiment) -> Fut<'a, bool> {
        Box::pin(async move {
            let uuid = experiment.uuid.to_string();
            let mut tx = self.write.begin().await.map_err(map_err)?;
            let done = sqlx::query(
                "UPDATE experiments SET name = ?, visibility = ?, settings = ? WHERE uuid = ?",
            )
            .bind(experiment.name.as_str())
            .bind(experiment.visibility.as_str())
            .bind(experiment.settings.to_string())
            .bind(uuid.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            let rows = sqlx::query("SELECT id FROM variants WHERE experiment = ?")
                .bind(uuid.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
            for row in rows {
                let id: String = row.try_get("id").map_err(map_err)?;
                if !experiment.has_variant(&id) {
                    sqlx::query("DELETE FROM variants WHERE experiment = ? AND id = ?")
                        .bind(uuid.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
            }
            Self::write_variants(&mut tx, experiment, false).await?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }

    fn delete_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(async move {
            let uuid = uuid.to_string();
            let mut tx = self.write.begin().await.map_err(map_err)?;
            let done = sqlx::query("DELETE FROM experiments WHERE uuid = ?")
                .bind(uuid.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            sqlx::query("DELETE FROM batches WHERE experiment = ?")
                .bind(uuid.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn reset_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(async move {
            let uuid = uuid.to_string();
            let mut tx = self.write.begin().await.map_err(map_err)?;
            let found = sqlx::query("SELECT 1 FROM experiments WHERE uuid = ?")
                .bind(uuid.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            if found.is_none() {
                return Ok(false);
            }
            sqlx::query("UPDATE variants SET views = 0, total_reward = 0 WHERE experiment = ?")
                .bind(uuid.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            sqlx::query("DELETE FROM variant_hours WHERE experiment = ?")
                .bind(uuid.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }

    fn record<'a>(&'a self, batches: &'a [Recording], now_ms: i64) -> Fut<'a, Vec<bool>> {
        Box::pin(self.record_batches(batches, now_ms))
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
                .execute(&self.write)
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
            let rows = sqlx::query(
                "SELECT h.variant, h.hour_ms, h.views, h.total_reward FROM variant_hours h \
                 JOIN variants v ON v.experiment = h.experiment AND v.id = h.variant \
                 WHERE h.experiment = ? ORDER BY v.position, h.hour_ms",
            )
            .bind(experiment.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(map_err)?;
            rows.iter()
                .map(|row| {
                    Ok(HourTotals {
                        variant: row.try_get("variant").map_err(map_err)?,
                        hour_ms: row.try_get("hour_ms").map_err(map_err)?,
                        views: count_col(row, "views")?,
                        total_reward: row.try_get("total_reward").map_err(map_err)?,
                    })
                })
                .collect()
        })
    }
}
