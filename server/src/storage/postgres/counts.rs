//! Counting without contention: a group commit inserts its batch ids and its
//! counts (`pending_counts`, one row per variant-hour) and updates nothing,
//! so the commits of several instances never lock a row another one needs
//! (a batch id sent to two instances at once is the one wait, in one sorted
//! order: no deadlock). Every [`FOLD_EVERY`] each instance tries to fold
//! the pending rows into `variants` and `variant_hours`; one at a time
//! does it (an advisory lock, [`DEFINITIONS_LOCK`], which definition
//! changes take too, so they never lock rows in another order than a
//! fold). Reads add what is still pending, so counts are exact at all
//! times.
//!
//! Batch ids of a deleted experiment are purged after the delete, in
//! slices, off the commit writer's path ([`purge_batches`]).

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

use super::calls::Calls;
use super::map_err;
use super::purposes::{CALL_DEADLINE, Purpose};
use crate::storage::rows::to_i64;
use crate::storage::sql::UuidParam;
use crate::storage::{Deltas, Recording, StorageError};

/// The advisory lock (`pg_advisory_xact_lock`) a fold and every definition
/// change (update, reset, delete) take first: they touch the same counter
/// rows, so they take turns rather than risk a deadlock.
pub const DEFINITIONS_LOCK: i64 = 0x6d79_6e61_6465_6673; // "mynadefs"
/// How often each instance tries to fold the pending counts.
pub const FOLD_EVERY: Duration = Duration::from_secs(1);
/// How many times a group commit is retried after a deadlock or a
/// serialization failure (neither is expected: defence in depth).
const RECORD_ATTEMPTS: u32 = 5;
/// Batch ids deleted by one statement (pruning, purging).
pub const SLICE: i64 = 10_000;
/// How long after a delete a second purge looks for batch ids that group
/// commits begun before the delete inserted (such a statement has ended
/// by then: every commit ends within [`CALL_DEADLINE`]).
const STRAGGLER_GRACE: Duration = CALL_DEADLINE.saturating_add(Duration::from_secs(1));
/// How long a purge keeps trying while PostgreSQL fails; what it could not
/// delete is pruned with the other old ids after 8 days.
const PURGE_PATIENCE: Duration = Duration::from_secs(600);
/// The pause after a failed purge slice.
const PURGE_RETRY: Duration = Duration::from_secs(2);

/// The batch ids of a group: first occurrences only, sorted (every instance
/// takes the ids' locks in the same order, so two commits never deadlock on them).
fn batch_ids(batches: &[Recording]) -> (Vec<Uuid>, Vec<Uuid>) {
    let mut seen = HashSet::new();
    let mut ids: Vec<(Uuid, Uuid)> = batches
        .iter()
        .filter_map(|r| r.batch.batch.map(|id| (r.experiment, id)))
        .filter(|pair| seen.insert(*pair))
        .collect();
    ids.sort_unstable();
    ids.into_iter().unzip()
}

/// A group commit as one statement (one round trip, atomic on its own).
/// `ids` inserts the batch ids of experiments that exist ($1, $2, in sorted
/// order, so two commits sharing ids wait for each other in one order); `d`
/// keeps the delta rows ($4..$9, one per batch and variant-hour) of the
/// batches just inserted or without an id; `pending` inserts them, summed
/// per variant-hour, for the variants that exist. Nothing is updated, so
/// nothing another instance's commit holds is needed. A counter the commit
/// would carry past the bigint range fails it (as the UPDATE it replaces
/// did), rather than the fold later. Answers the batch ids inserted.
const RECORD_SQL: &str = "\
WITH ids AS ( \
  INSERT INTO batches (experiment, batch, created_ms) \
  SELECT t.e, t.b, $3 FROM UNNEST($1::uuid[], $2::uuid[]) AS t (e, b) \
  WHERE EXISTS (SELECT 1 FROM experiments x WHERE x.uuid = t.e) \
  ORDER BY t.e, t.b \
  ON CONFLICT DO NOTHING RETURNING experiment, batch), \
d AS ( \
  SELECT d.experiment, d.variant, d.hour_ms, d.views, d.reward \
  FROM UNNEST($4::uuid[], $5::uuid[], $6::text[], $7::int8[], $8::int8[], $9::float8[]) \
    AS d (experiment, batch, variant, hour_ms, views, reward) \
  WHERE d.batch IS NULL \
     OR (d.experiment, d.batch) IN (SELECT experiment, batch FROM ids)), \
pending AS ( \
  INSERT INTO pending_counts (experiment, variant, hour_ms, views, total_reward) \
  SELECT d.experiment, d.variant, d.hour_ms, SUM(d.views), SUM(d.reward) \
  FROM d JOIN variants v ON v.experiment = d.experiment AND v.id = d.variant \
  GROUP BY d.experiment, d.variant, d.hour_ms \
  HAVING MAX(v.views) + SUM(d.views)::int8 >= 0) \
SELECT experiment, batch FROM ids";

/// Moves every pending row (committed and visible now) into the counters
/// and hourly totals of the variants that still exist; rows of removed
/// variants are dropped. Run after taking [`DEFINITIONS_LOCK`], in the
/// same transaction. Answers how many rows it moved.
const FOLD_SQL: &str = "\
WITH moved AS ( \
  DELETE FROM pending_counts RETURNING experiment, variant, hour_ms, views, total_reward), \
counted AS ( \
  UPDATE variants SET views = variants.views + m.views, \
    total_reward = variants.total_reward + m.reward \
  FROM (SELECT experiment, variant, SUM(views)::int8 AS views, SUM(total_reward) AS reward \
        FROM moved GROUP BY experiment, variant) AS m \
  WHERE variants.experiment = m.experiment AND variants.id = m.variant \
  RETURNING variants.experiment, variants.id), \
hours AS ( \
  INSERT INTO variant_hours (experiment, variant, hour_ms, views, total_reward) \
  SELECT m.experiment, m.variant, m.hour_ms, SUM(m.views)::int8, SUM(m.total_reward) \
  FROM moved m JOIN counted c ON c.experiment = m.experiment AND c.id = m.variant \
  GROUP BY m.experiment, m.variant, m.hour_ms \
  ON CONFLICT (experiment, variant, hour_ms) DO UPDATE SET \
    views = variant_hours.views + excluded.views, \
    total_reward = variant_hours.total_reward + excluded.total_reward) \
SELECT COUNT(*) AS moved FROM moved";

/// The delta rows of a group commit ([`RECORD_SQL`]'s $4..$9): each batch
/// with an id summed per variant-hour and tagged with that id (the first
/// occurrence only: a repeat in the same group never counts), the batches
/// without an id summed together, untagged.
#[derive(Debug, Default)]
struct DeltaRows {
    experiments: Vec<Uuid>,
    batches: Vec<Option<Uuid>>,
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
                    rows.push(Deltas::of([recording], now_ms).hours, Some(id));
                }
                Some(_) => {}
            }
        }
        if !untagged.is_empty() {
            rows.push(Deltas::of(untagged, now_ms).hours, None);
        }
        rows
    }

    fn push(&mut self, hours: Vec<(Uuid, String, i64, u64, f64)>, batch: Option<Uuid>) {
        for (experiment, variant, hour, views, reward) in hours {
            self.experiments.push(experiment);
            self.batches.push(batch);
            self.variants.push(variant);
            self.hours.push(hour);
            self.views.push(to_i64(views));
            self.rewards.push(reward);
        }
    }
}

/// Whether a group commit that failed this way is simply tried again: the
/// statement was rolled back and another attempt will likely succeed.
fn retry_record(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("40P01" | "40001")),
        _ => false,
    }
}

/// Commits a group of batches (see [`RECORD_SQL`]); for each, whether it
/// was counted.
pub async fn record(
    calls: &Arc<Calls>,
    batches: &[Recording],
    now_ms: i64,
) -> Result<Vec<bool>, StorageError> {
    let mut attempt = 1;
    loop {
        let mut conn = calls.conn().await?;
        match record_once(&mut conn, batches, now_ms).await {
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

async fn record_once(
    conn: &mut PgConnection,
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
        .fetch_all(&mut *conn)
        .await?;
    let mut new: HashSet<(Uuid, Uuid)> = HashSet::with_capacity(inserted.len());
    for row in inserted {
        new.insert((row.try_get("experiment")?, row.try_get("batch")?));
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

/// Takes [`DEFINITIONS_LOCK`] in the transaction on `conn`, waiting for a
/// fold or another definition change to end.
pub async fn lock_definitions(conn: &mut PgConnection) -> Result<(), StorageError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(DEFINITIONS_LOCK)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Folds the pending counts into the counters, unless another instance is
/// folding or a definition is changing; how many rows were moved.
pub async fn fold(calls: &Arc<Calls>) -> Result<u64, StorageError> {
    calls
        .bounded(Purpose::Upkeep, async {
            let mut conn = calls.conn().await?;
            let mut tx = conn.begin().await.map_err(map_err)?;
            let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(DEFINITIONS_LOCK)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
            if !ours {
                tx.rollback().await.map_err(map_err)?;
                return Ok(0);
            }
            // A statement of its own, so its snapshot is taken under the
            // lock: it sees every definition change made before.
            let moved: i64 = sqlx::query_scalar(FOLD_SQL)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(moved.unsigned_abs())
        })
        .await
}

/// Folds every [`FOLD_EVERY`] until the storage is dropped or closed. A
/// failure is logged once until a fold works again (an outage is logged
/// by the pools).
pub async fn fold_every_second(calls: Weak<Calls>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(FOLD_EVERY).await;
        let Some(calls) = calls.upgrade() else { return };
        if calls.pool(Purpose::Upkeep).is_closed() {
            return;
        }
        match fold(&calls).await {
            Ok(moved) => {
                tracing::trace!(moved, "pending counts folded");
                if failing {
                    tracing::info!("folding pending counts works again");
                    failing = false;
                }
            }
            Err(StorageError::Unavailable(error)) => {
                tracing::debug!(%error, "folding pending counts failed");
            }
            Err(error) if !failing => {
                tracing::warn!(
                    %error,
                    "folding pending counts failed (reads still add them); retrying every second"
                );
                failing = true;
            }
            Err(error) => tracing::debug!(%error, "folding pending counts failed"),
        }
    }
}

/// Deletes up to [`SLICE`] of the batch ids of an experiment; how many.
/// By row address (a TID scan): joining on the key would scan the whole
/// table for every slice.
async fn purge_slice(calls: &Arc<Calls>, experiment: Uuid) -> Result<u64, StorageError> {
    calls
        .bounded(Purpose::Upkeep, async {
            let done = sqlx::query(
                "DELETE FROM batches WHERE ctid = ANY(ARRAY( \
                   SELECT ctid FROM batches WHERE experiment = $1 LIMIT $2))",
            )
            .bind(UuidParam(experiment))
            .bind(SLICE)
            .execute(&mut *calls.conn().await?)
            .await
            .map_err(map_err)?;
            Ok(done.rows_affected())
        })
        .await
}

/// Deletes the batch ids of a deleted experiment in slices (each its own
/// short transaction, so group commits never wait behind it), then once
/// more after [`STRAGGLER_GRACE`] for ids that commits begun before the
/// delete inserted after it.
pub async fn purge_batches(calls: Weak<Calls>, experiment: Uuid) {
    let started = Instant::now();
    let mut purged = 0;
    for pause in [Duration::ZERO, STRAGGLER_GRACE] {
        tokio::time::sleep(pause).await;
        loop {
            let Some(strong) = calls.upgrade() else {
                return;
            };
            match purge_slice(&strong, experiment).await {
                Ok(n) => {
                    purged += n;
                    if n < SLICE.unsigned_abs() {
                        break;
                    }
                }
                Err(error) if started.elapsed() < PURGE_PATIENCE => {
                    tracing::debug!(%error, %experiment, "purging batch ids failed; retrying");
                    drop(strong);
                    tokio::time::sleep(PURGE_RETRY).await;
                }
                Err(error) => {
                    tracing::warn!(
                        %error,
                        %experiment,
                        purged,
                        "gave up purging a deleted experiment's batch ids; \
                         the rest are pruned with the other ids after 8 days"
                    );
                    return;
                }
            }
        }
    }
    tracing::debug!(%experiment, purged, "a deleted experiment's batch ids purged");
}
