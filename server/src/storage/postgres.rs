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
//! reconnect by themselves when it returns. Uuids travel as text and are
//! cast in SQL (no driver uuid feature needed).

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use myna_core::Experiment;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, Row};
use uuid::Uuid;

use super::rows::{
    Columns, account_row, api_key_row, count_col, experiments_from_rows, only, to_i64, token_row,
};
use super::{
    Account, ApiKey, Experiments, Fut, HEALTH_PROBE, HourTotals, Recording, Storage, StorageError,
    Token, TokenHash, Unreadable,
};

mod calls;
mod counts;

pub use calls::{ACQUIRE_TIMEOUT, CALL_DEADLINE, MAX_CONNECTIONS};
use calls::{Calls, Conn, Purpose};
pub use counts::FOLD_EVERY;

/// The pause between two attempts to reach a PostgreSQL that is not up yet
/// at start (each attempt itself lasts [`ACQUIRE_TIMEOUT`]).
const OPEN_PAUSE: Duration = Duration::from_millis(500);

/// The PostgreSQL storage.
#[derive(Debug, Clone)]
pub struct PostgresStorage {
    calls: Arc<Calls>,
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
            .map_err(|e| StorageError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        let options = calls::base_options(options);
        let server = format!("{}:{}", options.get_host(), options.get_port());
        let started = Instant::now();
        let pool = loop {
            match calls::first_pool(&options).await {
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
        let calls = Calls::new(pool, &options);
        sqlx::migrate!("./migrations/postgres")
            .run(calls.pool(Purpose::Upkeep))
            .await
            .map_err(|e| StorageError::Internal(format!("migration failed: {e}")))?;
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

const EXPERIMENT_COLUMNS: &str = "uuid::text AS uuid, alias::text AS alias, \
     account_id::text AS account_id, name, visibility, settings";
/// A variant's columns, its counts with what is pending added (`p`: the
/// pending counts summed per variant).
const VARIANT_COLUMNS: &str = "v.experiment::text AS experiment, v.id, v.name, v.settings, \
     v.views + COALESCE(p.views, 0) AS views, \
     v.total_reward + COALESCE(p.total_reward, 0) AS total_reward";
const API_KEY_COLUMNS: &str =
    "uuid::text AS uuid, account_id::text AS account_id, name, created_ms";

impl PostgresStorage {
    async fn load_experiments(&self, uuid: Option<Uuid>) -> Result<Experiments, StorageError> {
        // One snapshot for every query: never an experiment without the
        // variants it had, nor a count both pending and folded.
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
        let (filter, pending_filter) = if uuid.is_some() {
            (
                " WHERE v.experiment = $1::uuid",
                " WHERE experiment = $1::uuid",
            )
        } else {
            ("", "")
        };
        let sql = format!(
            "SELECT {VARIANT_COLUMNS} FROM variants v LEFT JOIN \
               (SELECT experiment, variant, SUM(views)::int8 AS views, \
                       SUM(total_reward) AS total_reward \
                FROM pending_counts{pending_filter} GROUP BY experiment, variant) p \
               ON p.experiment = v.experiment AND p.variant = v.id\
             {filter} ORDER BY v.experiment, v.position"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(uuid) = uuid {
            query = query.bind(uuid.to_string());
        }
        let variants = query.fetch_all(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(experiments_from_rows(&experiments, &variants))
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
        self.bounded(Purpose::Health, async move {
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
            self.calls.close().await;
            Ok(())
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn account_count(&self) -> Fut<'_, u64> {
        self.bounded(Purpose::Logins, async move {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM accounts")
                .fetch_one(&mut *self.conn().await?)
                .await
                .map_err(map_err)?;
            count_col(&row, "n")
        })
    }

    fn create_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()> {
        self.bounded(Purpose::Logins, async move {
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
        self.bounded(Purpose::Logins, async move {
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
        self.bounded(Purpose::Logins, async move {
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
        self.bounded(Purpose::Logins, async move {
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
        self.bounded(Purpose::Logins, async move {
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
        self.bounded(Purpose::Logins, async move {
            let done = sqlx::query("DELETE FROM tokens WHERE hash = $1")
                .bind(hash.hex())
                .execute(&mut *self.conn().await?)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn delete_account_tokens(&self, account_id: Uuid) -> Fut<'_, u64> {
        self.bounded(Purpose::Logins, async move {
            let done = sqlx::query("DELETE FROM tokens WHERE account_id = $1::uuid")
                .bind(account_id.to_string())
                .execute(&mut *self.conn().await?)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected())
        })
    }

    fn prune_tokens(&self, now_ms: i64) -> Fut<'_, u64> {
        self.bounded(Purpose::Upkeep, async move {
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
        self.bounded(Purpose::Pages, async move {
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
        self.bounded(Purpose::Keys, async move {
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
        self.bounded(Purpose::Pages, async move {
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
        self.bounded(Purpose::Pages, async move {
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
        self.bounded(Purpose::Commits, self.load_experiments(None))
    }

    fn experiment(&self, uuid: Uuid) -> Fut<'_, Option<Result<Experiment, Unreadable>>> {
        self.bounded(Purpose::Commits, async move {
            Ok(only(self.load_experiments(Some(uuid)).await?))
        })
    }

    fn create_experiment<'a>(&'a self, experiment: &'a Experiment, now_ms: i64) -> Fut<'a, ()> {
        self.bounded(Purpose::Commits, async move {
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
        self.bounded(Purpose::Commits, async move {
            let uuid = experiment.uuid.to_string();
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(map_err)?;
            counts::lock_definitions(&mut tx).await?;
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
            // Removed variants lose their counts, folded or not.
            let keep: Vec<&str> = experiment.variants.iter().map(|v| v.id.as_str()).collect();
            for table in ["variants", "pending_counts"] {
                let column = if table == "variants" { "id" } else { "variant" };
                let sql = format!(
                    "DELETE FROM {table} WHERE experiment = $1::uuid AND {column} <> ALL($2::text[])"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(uuid.as_str())
                    .bind(&keep)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            Self::write_variants(&mut tx, experiment, false).await?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }

    fn delete_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        self.bounded(Purpose::Commits, async move {
            let text = uuid.to_string();
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(map_err)?;
            counts::lock_definitions(&mut tx).await?;
            // Its variants and hourly totals go with it (foreign keys).
            let done = sqlx::query("DELETE FROM experiments WHERE uuid = $1::uuid")
                .bind(text.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            sqlx::query("DELETE FROM pending_counts WHERE experiment = $1::uuid")
                .bind(text.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            // Its batch ids (maybe millions) in slices, off the writer's path.
            tokio::spawn(counts::purge_batches(Arc::downgrade(&self.calls), uuid));
            Ok(done.rows_affected() > 0)
        })
    }

    fn reset_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        self.bounded(Purpose::Commits, async move {
            let uuid = uuid.to_string();
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await.map_err(map_err)?;
            counts::lock_definitions(&mut tx).await?;
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
            for table in ["variant_hours", "pending_counts"] {
                let sql = format!("DELETE FROM {table} WHERE experiment = $1::uuid");
                sqlx::query(AssertSqlSafe(sql))
                    .bind(uuid.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
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
                let done = self
                    .bounded(Purpose::Upkeep, async move {
                        sqlx::query(
                            "DELETE FROM batches WHERE ctid = ANY(ARRAY( \
                               SELECT ctid FROM batches WHERE created_ms < $1 LIMIT $2))",
                        )
                        .bind(before_ms)
                        .bind(counts::SLICE)
                        .execute(&mut *self.conn().await?)
                        .await
                        .map_err(map_err)
                    })
                    .await?;
                pruned += done.rows_affected();
                if done.rows_affected() < counts::SLICE.unsigned_abs() {
                    return Ok(pruned);
                }
            }
        })
    }

    fn hourly(&self, experiment: Uuid) -> Fut<'_, Vec<HourTotals>> {
        self.bounded(Purpose::Pages, async move {
            // The folded totals and what is pending, summed per hour.
            let rows = sqlx::query(
                "SELECT h.variant, h.hour_ms, SUM(h.views)::int8 AS views, \
                   SUM(h.total_reward) AS total_reward \
                 FROM (SELECT variant, hour_ms, views, total_reward FROM variant_hours \
                       WHERE experiment = $1::uuid \
                       UNION ALL \
                       SELECT variant, hour_ms, views, total_reward FROM pending_counts \
                       WHERE experiment = $1::uuid) h \
                 JOIN variants v ON v.experiment = $1::uuid AND v.id = h.variant \
                 GROUP BY v.position, h.variant, h.hour_ms ORDER BY v.position, h.hour_ms",
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
