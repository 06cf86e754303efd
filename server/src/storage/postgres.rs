//! The PostgreSQL backend, for running several server instances on one
//! database (scale-out). Counters are incremented in the database inside each
//! group commit's transaction and batch ids are decided by a primary key, so
//! counts stay exact whichever instance takes a call.
//!
//! One bounded pool ([`MAX_CONNECTIONS`], [`ACQUIRE_TIMEOUT`]); a lost
//! database makes calls fail with [`StorageError::Unavailable`] (503, retried
//! by the SDK) and the pool reconnects by itself when it returns. Uuids travel
//! as text and are cast in SQL (no driver uuid feature needed).

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use myna_core::Experiment;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};
use sqlx::{Connection, Postgres};
use uuid::Uuid;

use super::rows::{
    Columns, account_row, api_key_row, count_col, experiments_from_rows, only, to_i64, token_row,
};
use super::{
    Account, ApiKey, Deltas, Experiments, Fut, HEALTH_PROBE, HourTotals, Recording, Storage,
    StorageError, Token, TokenHash, Unreadable,
};

/// Most connections one instance opens (N instances open at most N times
/// this: keep it below the server's `max_connections`).
pub const MAX_CONNECTIONS: u32 = 16;
/// How long a call waits for a connection (or for the database to accept
/// one) before failing as unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How many times a group commit is retried after a deadlock, a
/// serialization failure or a variant deleted under it (each attempt rolled
/// back whole).
const RECORD_ATTEMPTS: u32 = 5;
/// The pause between two attempts to reach a PostgreSQL that is not up yet
/// at start (each attempt itself lasts [`ACQUIRE_TIMEOUT`]).
const OPEN_PAUSE: Duration = Duration::from_millis(500);
/// While the database is down, the pause between two attempts of the
/// background task that notices its return (see [`Health`]).
const PROBE_PAUSE: Duration = Duration::from_millis(250);
/// Batch ids pruned by one statement.
const PRUNE_SLICE: i64 = 10_000;

/// The PostgreSQL storage.
#[derive(Debug, Clone)]
pub struct PostgresStorage {
    pool: PgPool,
    health: Arc<Health>,
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
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StorageError::Unavailable(format!("bad PostgreSQL URL: {e}")))?
            .application_name("myna-server")
            // A statement or an open transaction never holds locks for long,
            // even if its instance hangs or the network drops.
            .options([
                ("statement_timeout", "30s"),
                ("idle_in_transaction_session_timeout", "30s"),
            ]);
        let server = format!("{}:{}", options.get_host(), options.get_port());
        let started = Instant::now();
        let pool = loop {
            let attempt = PgPoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .min_connections(0)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .idle_timeout(Duration::from_secs(60))
                // An idle connection is checked before use, so connections left
                // over from before a database restart are replaced, not failed on.
                .test_before_acquire(true)
                .connect_with(options.clone())
                .await;
            match attempt {
                Ok(pool) => break pool,
                // The pool itself retried refused connections and "starting
                // up" answers for ACQUIRE_TIMEOUT: tell the operator, go on.
                Err(sqlx::Error::PoolTimedOut)
                    if patience.is_none_or(|p| started.elapsed() < p) =>
                {
                    tracing::warn!(
                        "PostgreSQL at {server} does not accept connections yet; \
                         waiting for it (for {}s so far)",
                        started.elapsed().as_secs()
                    );
                    tokio::time::sleep(OPEN_PAUSE).await;
                }
                Err(sqlx::Error::PoolTimedOut) => {
                    return Err(StorageError::Unavailable(format!(
                        "PostgreSQL at {server} did not accept a connection within {}s \
                         (is it running, and listening there?)",
                        started.elapsed().as_secs()
                    )));
                }
                Err(error) => return Err(map_err(error)),
            }
        };
        if started.elapsed() > ACQUIRE_TIMEOUT {
            tracing::info!("PostgreSQL at {server} accepts connections now");
        }
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StorageError::Internal(format!("migration failed: {e}")))?;
        Ok(PostgresStorage {
            pool,
            health: Arc::default(),
        })
    }
}

/// Whether the database refused connections moments ago, shared by every
/// call of one instance: while it is set, calls answer `Unavailable` at once
/// instead of each waiting [`ACQUIRE_TIMEOUT`] for their 503, and one
/// background task tries to connect every [`PROBE_PAUSE`], clearing it
/// once a connection is obtained.
#[derive(Debug, Default)]
struct Health {
    down: AtomicBool,
}

/// The SQLSTATE of a database error.
fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Maps a driver error: a lost or refused connection, an overloaded or
/// restarting server, a timeout or a lock conflict are `Unavailable` (retry
/// later); a unique violation is `Conflict`.
fn map_err(error: sqlx::Error) -> StorageError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
        sqlx::Error::Database(_) => {
            let code = sqlstate(&error).unwrap_or_default();
            // 08: connection exception; 53: insufficient resources; 57:
            // operator intervention (shutdown, statement timeout); 40:
            // transaction rollback (deadlock, serialization); 55P03: lock
            // not available; 58: system error (I/O).
            let class = code.get(..2).unwrap_or_default();
            if matches!(class, "08" | "53" | "57" | "40" | "58") || code == "55P03" {
                StorageError::Unavailable(error.to_string())
            } else {
                StorageError::Internal(error.to_string())
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StorageError::Unavailable(error.to_string()),
        _ => StorageError::Internal(error.to_string()),
    }
}

/// Whether a group commit that failed this way is simply tried again: the
/// transaction was rolled back and another attempt will likely succeed.
fn retry_record(error: &sqlx::Error) -> bool {
    // Deadlock, serialization failure, and a foreign key violation (a
    // variant deleted by another instance while this commit counted it:
    // the next attempt no longer sees it).
    matches!(
        sqlstate(error).as_deref(),
        Some("40P01" | "40001" | "23503")
    )
}

const EXPERIMENT_COLUMNS: &str = "uuid::text AS uuid, alias::text AS alias, account_id::text AS account_id, name, visibility, \
     settings";
const VARIANT_COLUMNS: &str =
    "experiment::text AS experiment, id, name, settings, views, total_reward";
const API_KEY_COLUMNS: &str =
    "uuid::text AS uuid, account_id::text AS account_id, name, created_ms";

/// The batch ids of a group: first occurrences only, sorted (every instance
/// takes the ids' locks in the same order, so two commits never deadlock on them).
fn batch_ids(batches: &[Recording]) -> (Vec<String>, Vec<String>) {
    let mut seen = HashSet::new();
    let mut ids: Vec<(Uuid, Uuid)> = batches
        .iter()
        .filter_map(|r| r.batch.batch.map(|id| (r.experiment, id)))
        .filter(|pair| seen.insert(*pair))
        .collect();
    ids.sort_unstable();
    ids.into_iter()
        .map(|(experiment, id)| (experiment.to_string(), id.to_string()))
        .unzip()
}

/// A group commit as one statement. `ids` inserts the batch ids ($1, $2:
/// sorted, so concurrent commits take their locks in one order); `d` keeps
/// the delta rows ($4..$9, one per batch and variant-hour) of the batches
/// just inserted or without an id; `counted` adds them to the variants that
/// still exist (a variant deleted meanwhile is skipped by the UPDATE, and
/// locked by it otherwise, so the hourly rows below never miss their
/// variant: no foreign key failure); `hours` upserts the hourly totals of
/// exactly those variants. Answers the batch ids inserted.
const RECORD_SQL: &str = "\
WITH ids AS ( \
  INSERT INTO batches (experiment, batch, created_ms) \
  SELECT e, b, $3 FROM UNNEST($1::text[]::uuid[], $2::text[]::uuid[]) AS t (e, b) \
  ON CONFLICT DO NOTHING RETURNING experiment, batch), \
d AS ( \
  SELECT d.experiment, d.variant, d.hour_ms, d.views, d.reward \
  FROM UNNEST($4::text[]::uuid[], $5::text[]::uuid[], $6::text[], $7::int8[], $8::int8[], \
              $9::float8[]) AS d (experiment, batch, variant, hour_ms, views, reward) \
  WHERE d.batch IS NULL \
     OR (d.experiment, d.batch) IN (SELECT experiment, batch FROM ids)), \
counted AS ( \
  UPDATE variants SET views = variants.views + v.views, \
    total_reward = variants.total_reward + v.reward \
  FROM (SELECT experiment, variant, SUM(views) AS views, SUM(reward) AS reward \
        FROM d GROUP BY experiment, variant ORDER BY experiment, variant) AS v \
  WHERE variants.experiment = v.experiment AND variants.id = v.variant \
  RETURNING variants.experiment, variants.id), \
hours AS ( \
  INSERT INTO variant_hours (experiment, variant, hour_ms, views, total_reward) \
  SELECT d.experiment, d.variant, d.hour_ms, SUM(d.views), SUM(d.reward) \
  FROM d JOIN counted c ON c.experiment = d.experiment AND c.id = d.variant \
  GROUP BY d.experiment, d.variant, d.hour_ms ORDER BY d.experiment, d.variant, d.hour_ms \
  ON CONFLICT (experiment, variant, hour_ms) DO UPDATE SET \
    views = variant_hours.views + excluded.views, \
    total_reward = variant_hours.total_reward + excluded.total_reward) \
SELECT experiment::text AS experiment, batch::text AS batch FROM ids";

/// The delta rows of a group commit ([`RECORD_SQL`]'s $4..$9): each batch
/// with an id summed per variant-hour and tagged with that id (the first
/// occurrence only: a repeat in the same group never counts), the batches
/// without an id summed together, untagged.
#[derive(Debug, Default)]
struct DeltaRows {
    experiments: Vec<String>,
    batches: Vec<Option<String>>,
    variants: Vec<String>,
    hours: Vec<i64>,
    views: Vec<i64>,
    rewards: Vec<f64>,
}

impl DeltaRows {
    fn of(batches: &[Recording], now_ms: i64) -> DeltaRows {
        let mut rows = DeltaRows::default();
        let mut seen = HashSet::new();
        let mut untagged = Vec::new();
        for recording in batches {
            match recording.batch.batch {
                None => untagged.push(recording),
                Some(id) if seen.insert((recording.experiment, id)) => {
                    let id = id.to_string();
                    rows.push(Deltas::of([recording], now_ms).hours, Some(&id));
                }
                Some(_) => {}
            }
        }
        if !untagged.is_empty() {
            rows.push(Deltas::of(untagged, now_ms).hours, None);
        }
        rows
    }

    fn push(&mut self, hours: Vec<(Uuid, String, i64, u64, f64)>, batch: Option<&String>) {
        for (experiment, variant, hour, views, reward) in hours {
            self.experiments.push(experiment.to_string());
            self.batches.push(batch.cloned());
            self.variants.push(variant);
            self.hours.push(hour);
            self.views.push(to_i64(views));
            self.rewards.push(reward);
        }
    }
}

impl PostgresStorage {
    /// A connection from the pool, or `Unavailable` at once while the
    /// database is known to be down (see [`Health`]).
    async fn conn(&self) -> Result<PoolConnection<Postgres>, StorageError> {
        if self.health.down.load(Ordering::Relaxed) {
            return Err(StorageError::Unavailable(
                "PostgreSQL refused connections moments ago".into(),
            ));
        }
        self.pool.acquire().await.map_err(|error| {
            let lost = matches!(error, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_));
            if lost && !self.health.down.swap(true, Ordering::Relaxed) {
                self.watch_for_return(&error);
            }
            map_err(error)
        })
    }

    /// Tries to connect every [`PROBE_PAUSE`] until it can, then lets
    /// calls through again.
    fn watch_for_return(&self, error: &sqlx::Error) {
        tracing::warn!(
            %error,
            "PostgreSQL does not accept connections: calls answer 503 at once until it does"
        );
        let (pool, health) = (self.pool.clone(), self.health.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_PAUSE).await;
                match pool.acquire().await {
                    Ok(_) => {
                        tracing::info!("PostgreSQL accepts connections again");
                        health.down.store(false, Ordering::Relaxed);
                        return;
                    }
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(_) => {}
                }
            }
        });
    }

    async fn load_experiments(&self, uuid: Option<Uuid>) -> Result<Experiments, StorageError> {
        // One snapshot for both queries: never an experiment without the
        // variants it had (another instance may be changing it meanwhile).
        let mut conn = self.conn().await?;
        let mut tx = conn
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(map_err)?;
        let filter = if uuid.is_some() {
            " WHERE uuid = $1::uuid"
        } else {
            ""
        };
        let sql = format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments{filter} ORDER BY uuid");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(uuid) = uuid {
            query = query.bind(uuid.to_string());
        }
        let experiments = query.fetch_all(&mut *tx).await.map_err(map_err)?;
        if experiments.is_empty() {
            return Ok(Experiments::default());
        }
        let filter = if uuid.is_some() {
            " WHERE experiment = $1::uuid"
        } else {
            ""
        };
        let sql =
            format!("SELECT {VARIANT_COLUMNS} FROM variants{filter} ORDER BY experiment, position");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(uuid) = uuid {
            query = query.bind(uuid.to_string());
        }
        let variants = query.fetch_all(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(experiments_from_rows(&experiments, &variants))
    }

    async fn record_batches(
        &self,
        batches: &[Recording],
        now_ms: i64,
    ) -> Result<Vec<bool>, StorageError> {
        let mut attempt = 1;
        loop {
            let mut conn = self.conn().await?;
            match Self::record_once(&mut conn, batches, now_ms).await {
                Err(error) if attempt < RECORD_ATTEMPTS && retry_record(&error) => {
                    tracing::debug!(%error, attempt, "group commit retried");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                }
                Err(error) => return Err(map_err(error)),
                Ok(counted) => return Ok(counted),
            }
        }
    }

    /// One group commit in ONE statement, so one round trip (a statement
    /// is atomic on its own): [`RECORD_SQL`] inserts the batch ids (the
    /// primary key answers which are new, across every instance) and adds
    /// the events of the batches it inserted, or that have no id, to the
    /// counters and the hourly totals.
    async fn record_once(
        conn: &mut PoolConnection<Postgres>,
        batches: &[Recording],
        now_ms: i64,
    ) -> Result<Vec<bool>, sqlx::Error> {
        let (experiments, ids) = batch_ids(batches);
        let rows = DeltaRows::of(batches, now_ms);
        let inserted = sqlx::query(RECORD_SQL)
            .bind(experiments)
            .bind(ids)
            .bind(now_ms)
            .bind(rows.experiments)
            .bind(rows.batches)
            .bind(rows.variants)
            .bind(rows.hours)
            .bind(rows.views)
            .bind(rows.rewards)
            .fetch_all(&mut **conn)
            .await?;
        let mut new: HashSet<(Uuid, Uuid)> = HashSet::with_capacity(inserted.len());
        for row in inserted {
            let experiment: String = row.try_get("experiment")?;
            let id: String = row.try_get("batch")?;
            if let (Ok(experiment), Ok(id)) = (Uuid::parse_str(&experiment), Uuid::parse_str(&id)) {
                new.insert((experiment, id));
            }
        }
        // A batch id counts once: at its first occurrence, if it was new.
        Ok(batches
            .iter()
            .map(|r| match r.batch.batch {
                None => true,
                Some(id) => new.remove(&(r.experiment, id)),
            })
            .collect())
    }

    async fn write_variants(
        tx: &mut sqlx::PgConnection,
        experiment: &Experiment,
        with_counts: bool,
    ) -> Result<(), StorageError> {
        if experiment.variants.is_empty() {
            return Ok(());
        }
        let uuid = experiment.uuid.to_string();
        let variants = &experiment.variants;
        let ids: Vec<&str> = variants.iter().map(|v| v.id.as_str()).collect();
        let positions: Vec<i32> = (0..variants.len())
            .map(|p| i32::try_from(p).unwrap_or(i32::MAX))
            .collect();
        let names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
        let settings: Vec<String> = variants.iter().map(|v| v.settings.to_string()).collect();
        let views: Vec<i64> = variants.iter().map(|v| to_i64(v.views)).collect();
        let rewards: Vec<f64> = variants.iter().map(|v| v.total_reward).collect();
        let sql = if with_counts {
            "INSERT INTO variants (experiment, id, position, name, settings, views, total_reward) \
             SELECT $1::uuid, id, position, name, settings, views, reward \
             FROM UNNEST($2::text[], $3::int4[], $4::text[], $5::text[], $6::int8[], $7::float8[]) \
               AS t (id, position, name, settings, views, reward)"
        } else {
            "INSERT INTO variants (experiment, id, position, name, settings) \
             SELECT $1::uuid, id, position, name, settings \
             FROM UNNEST($2::text[], $3::int4[], $4::text[], $5::text[]) \
               AS t (id, position, name, settings) \
             ON CONFLICT (experiment, id) DO UPDATE SET \
               position = excluded.position, name = excluded.name, settings = excluded.settings"
        };
        let mut query = sqlx::query(sql)
            .bind(uuid)
            .bind(ids)
            .bind(positions)
            .bind(names)
            .bind(settings);
        if with_counts {
            query = query.bind(views).bind(rewards);
        }
        query.execute(&mut *tx).await.map_err(map_err)?;
        Ok(())
    }
}

impl Storage for PostgresStorage {
    fn ping(&self) -> Fut<'_, ()> {
        Box::pin(async move {
            // A real write, committed like a group commit, to the table
            // commits write: one sentinel row, rewritten.
            sqlx::query(
                "INSERT INTO batches (experiment, batch, created_ms) VALUES ($1::uuid, $1::uuid, 0) \
                 ON CONFLICT (experiment, batch) DO UPDATE SET created_ms = 0",
            )
            .bind(HEALTH_PROBE.to_string())
            .execute(&mut *self.conn().await?)
            .await
            .map_err(map_err)?;
            Ok(())
        })
    }

    fn close(&self) -> Fut<'_, ()> {
        Box::pin(async move {
            self.pool.close().await;
            Ok(())
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn account_count(&self) -> Fut<'_, u64> {
        Box::pin(async move {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM accounts")
                .fetch_one(&mut *self.conn().await?)
                .await
                .map_err(map_err)?;
            count_col(&row, "n")
        })
    }

    fn create_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO accounts (id, email, password_hash, created_ms) \
                 VALUES ($1::uuid, $2, $3, $4)",
            )
            .bind(account.id.to_string())
            .bind(account.email.as_str())
            .bind(account.password_hash.as_str())
            .bind(account.created_ms)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(map_err)?;
            Ok(())
        })
    }

    fn account_by_email<'a>(&'a self, email: &'a str) -> Fut<'a, Option<Account>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT id::text AS id, email, password_hash, created_ms \
                 FROM accounts WHERE email = $1",
            )
            .bind(email)
            .fetch_optional(&mut *self.conn().await?)
            .await
            .map_err(map_err)?;
            row.as_ref().map(account_row).transpose()
        })
    }

    fn create_token(&self, token: Token) -> Fut<'_, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO tokens (hash, kind, account_id, expires_ms) \
                 VALUES ($1, $2, $3::uuid, $4)",
            )
            .bind(token.hash.hex())
            .bind(token.kind.as_str())
            .bind(token.account_id.to_string())
            .bind(token.expires_ms)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(map_err)?;
            Ok(())
        })
    }

    fn token(&self, hash: TokenHash) -> Fut<'_, Option<Token>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT hash, kind, account_id::text AS account_id, expires_ms \
                 FROM tokens WHERE hash = $1",
            )
            .bind(hash.hex())
            .fetch_optional(&mut *self.conn().await?)
            .await
            .map_err(map_err)?;
            row.as_ref().map(token_row).transpose()
        })
    }

    fn extend_token(&self, hash: TokenHash, expires_ms: i64) -> Fut<'_, ()> {
        Box::pin(async move {
            sqlx::query("UPDATE tokens SET expires_ms = $1 WHERE hash = $2")
                .bind(expires_ms)
                .bind(hash.hex())
                .execute(&mut *self.conn().await?)
                .await
                .map_err(map_err)?;
            Ok(())
        })
    }

    fn delete_token(&self, hash: TokenHash) -> Fut<'_, bool> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM tokens WHERE hash = $1")
                .bind(hash.hex())
                .execute(&mut *self.conn().await?)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn delete_account_tokens(&self, account_id: Uuid) -> Fut<'_, u64> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM tokens WHERE account_id = $1::uuid")
                .bind(account_id.to_string())
                .execute(&mut *self.conn().await?)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected())
        })
    }

    fn prune_tokens(&self, now_ms: i64) -> Fut<'_, u64> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM tokens WHERE expires_ms <= $1")
                .bind(now_ms)
                .execute(&mut *self.conn().await?)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected())
        })
    }

    fn secret<'a>(&'a self, name: &'a str, fresh: &'a str) -> Fut<'a, String> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            // An instance inserting at the same moment makes this insert
            // wait for its commit, then do nothing; the next statement's
            // snapshot sees whichever row was stored first.
            sqlx::query(
                "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(fresh)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            let row = sqlx::query("SELECT value FROM secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
            row.text("value")
        })
    }

    fn create_api_key<'a>(&'a self, key: &'a ApiKey) -> Fut<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO api_keys (uuid, account_id, name, created_ms) \
                 VALUES ($1::uuid, $2::uuid, $3, $4)",
            )
            .bind(key.uuid.to_string())
            .bind(key.account_id.to_string())
            .bind(key.name.as_deref())
            .bind(key.created_ms)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(map_err)?;
            Ok(())
        })
    }

    fn api_key(&self, uuid: Uuid) -> Fut<'_, Option<ApiKey>> {
        Box::pin(async move {
            let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE uuid = $1::uuid");
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(uuid.to_string())
                .fetch_optional(&mut *self.conn().await?)
                .await
                .map_err(map_err)?;
            row.as_ref().map(api_key_row).transpose()
        })
    }

    fn api_keys(&self, account_id: Uuid) -> Fut<'_, Vec<ApiKey>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys \
                 WHERE account_id = $1::uuid ORDER BY created_ms, uuid::text"
            );
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(account_id.to_string())
                .fetch_all(&mut *self.conn().await?)
                .await
                .map_err(map_err)?;
            rows.iter().map(api_key_row).collect()
        })
    }

    fn delete_api_key(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(async move {
            let done =
                sqlx::query("DELETE FROM api_keys WHERE uuid = $1::uuid AND account_id = $2::uuid")
                    .bind(uuid.to_string())
                    .bind(account_id.to_string())
                    .execute(&mut *self.conn().await?)
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
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(map_err)?;
            sqlx::query(
                "INSERT INTO experiments \
                 (uuid, alias, account_id, name, visibility, settings, created_ms) \
                 VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5, $6, $7)",
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
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(map_err)?;
            let done = sqlx::query(
                "UPDATE experiments SET name = $1, visibility = $2, settings = $3 \
                 WHERE uuid = $4::uuid",
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
            let keep: Vec<&str> = experiment.variants.iter().map(|v| v.id.as_str()).collect();
            sqlx::query(
                "DELETE FROM variants WHERE experiment = $1::uuid AND id <> ALL($2::text[])",
            )
            .bind(uuid.as_str())
            .bind(keep)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            Self::write_variants(&mut tx, experiment, false).await?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }

    fn delete_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(async move {
            let uuid = uuid.to_string();
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(map_err)?;
            let done = sqlx::query("DELETE FROM experiments WHERE uuid = $1::uuid")
                .bind(uuid.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            sqlx::query("DELETE FROM batches WHERE experiment = $1::uuid")
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
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(map_err)?;
            // Locks the experiment: a concurrent delete waits, or was first.
            let found = sqlx::query("SELECT 1 FROM experiments WHERE uuid = $1::uuid FOR UPDATE")
                .bind(uuid.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            if found.is_none() {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE variants SET views = 0, total_reward = 0 WHERE experiment = $1::uuid",
            )
            .bind(uuid.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            sqlx::query("DELETE FROM variant_hours WHERE experiment = $1::uuid")
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
                     (SELECT experiment, batch FROM batches WHERE created_ms < $1 LIMIT $2)",
                )
                .bind(before_ms)
                .bind(PRUNE_SLICE)
                .execute(&mut *self.conn().await?)
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
                 WHERE h.experiment = $1::uuid ORDER BY v.position, h.hour_ms",
            )
            .bind(experiment.to_string())
            .fetch_all(&mut *self.conn().await?)
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
