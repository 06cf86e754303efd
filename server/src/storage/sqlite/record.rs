//! SQLite's group commit: the batch ids, the counters and the hourly totals
//! of many record batches in one transaction, in two round trips.

use std::collections::HashSet;

use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::map_err;
use crate::storage::rows::{to_i64, uuid_col};
use crate::storage::sql::UuidParam;
use crate::storage::{Deltas, Recording, StorageError};

/// Rows written by one statement (at most 5 parameters each: far below
/// SQLite's limit of 32766).
const ROWS_PER_STATEMENT: usize = 500;

/// `n` copies of a row placeholder, comma-separated.
fn rows(n: usize, row: &str) -> String {
    vec![row; n].join(", ")
}

/// One group commit in two round trips to the connection's thread, which is
/// what a commit mostly waits on: first `BEGIN` and the batch ids (answering
/// which are new), then the counters, the hourly totals and `COMMIT`, as
/// multi-statement texts whose parameters are consumed in order. The texts
/// depend only on row counts, so they stay prepared.
pub async fn record_on(
    connection: &mut SqliteConnection,
    batches: &[Recording],
    now_ms: i64,
) -> Result<Vec<bool>, StorageError> {
    let ids: Vec<(Uuid, Uuid)> = batches
        .iter()
        .filter_map(|r| r.batch.batch.map(|id| (r.experiment, id)))
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
                .bind(UuidParam(*experiment))
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
            .bind(UuidParam(*experiment))
            .bind(variant.as_str())
            .bind(to_i64(*views))
            .bind(*reward);
    }
    for (experiment, variant, hour, views, reward) in &deltas.hours {
        query = query
            .bind(UuidParam(*experiment))
            .bind(variant.as_str())
            .bind(*hour)
            .bind(to_i64(*views))
            .bind(*reward);
    }
    query.execute(&mut *connection).await.map_err(map_err)?;
    Ok(counted)
}
