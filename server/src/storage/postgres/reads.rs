//! Experiments read from PostgreSQL: all, one or those changed since a
//! mark, in one repeatable-read snapshot with the counts still pending
//! added; and the hourly totals likewise.

use std::collections::HashSet;

use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres};
use uuid::Uuid;

use super::{PostgresStorage, map_err};
use crate::storage::rows::{
    EXPERIMENT_COLUMNS, HOUR_COLUMNS, VARIANT_COLUMNS, experiments_from_rows, hour_row,
};
use crate::storage::sql::{Run, Statement, UuidParam};
use crate::storage::{ChangeMark, Changes, Experiments, HourTotals, StorageError, experiments};

/// Which experiments a read takes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Which<'a> {
    All,
    One(Uuid),
    These(&'a [Uuid]),
}

/// Every experiment, or only the one with `uuid`, with its variants and
/// their counts, pending ones added.
pub async fn load(db: &PostgresStorage, uuid: Option<Uuid>) -> Result<Experiments, StorageError> {
    let mut conn = db.conn().await?;
    let mut tx = begin_snapshot(&mut conn).await?;
    let which = uuid.map_or(Which::All, Which::One);
    let experiments = load_in(&mut tx, which).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(experiments)
}

/// What changed since `since` (see the migration `change_marks`): in one
/// snapshot, the experiments marked changed by a transaction that the
/// previous refresh's snapshot could not see, those with counts pending,
/// and the deletions; all of it when `since` is `None`.
pub async fn changes(
    db: &PostgresStorage,
    since: Option<ChangeMark>,
) -> Result<Changes, StorageError> {
    let mut conn = db.conn().await?;
    let mut tx = begin_snapshot(&mut conn).await?;
    // Every transaction this snapshot does not see has an id at least this.
    let mark: i64 =
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::int8")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
    let mark = Some(ChangeMark(mark));
    let Some(ChangeMark(since)) = since else {
        let experiments = load_in(&mut tx, Which::All).await?;
        tx.commit().await.map_err(map_err)?;
        return Ok(Changes {
            mark,
            complete: true,
            experiments,
            ..Changes::default()
        });
    };
    let changed: Vec<Uuid> = sqlx::query_scalar(
        "SELECT uuid FROM experiments WHERE changed_xid >= $1 \
         UNION SELECT experiment FROM pending_counts",
    )
    .bind(since)
    .fetch_all(&mut *tx)
    .await
    .map_err(map_err)?;
    let deleted: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT kind, uuid FROM deletions WHERE changed_xid >= $1")
            .bind(since)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
    let experiments = if changed.is_empty() {
        Experiments::default()
    } else {
        load_in(&mut tx, Which::These(&changed)).await?
    };
    tx.commit().await.map_err(map_err)?;
    let found: HashSet<String> = experiments
        .readable
        .iter()
        .map(|e| e.uuid.to_string())
        .chain(experiments.unreadable.iter().map(|u| u.uuid.clone()))
        .collect();
    // Pending counts of an experiment deleted meanwhile: gone too.
    let mut deleted_experiments: Vec<Uuid> = changed
        .into_iter()
        .filter(|uuid| !found.contains(&uuid.to_string()))
        .collect();
    let (mut deleted_keys, mut deleted_accounts) = (Vec::new(), Vec::new());
    for (kind, uuid) in deleted {
        match kind.as_str() {
            "api_key" => deleted_keys.push(uuid),
            "account" => deleted_accounts.push(uuid),
            // Deleted, then created again with its uuid: it is there.
            _ if found.contains(&uuid.to_string()) => {}
            _ => deleted_experiments.push(uuid),
        }
    }
    Ok(Changes {
        mark,
        complete: false,
        experiments,
        deleted_experiments,
        deleted_keys,
        deleted_accounts,
    })
}

/// A read-only transaction in which every query sees one snapshot: never
/// an experiment without the variants it had, nor a count both pending and
/// folded.
pub(super) async fn begin_snapshot(
    conn: &mut PgConnection,
) -> Result<sqlx::Transaction<'_, Postgres>, StorageError> {
    conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(map_err)
}

/// The experiments `which` names, with their variants and their counts,
/// pending ones added, read in `tx`.
pub(super) async fn load_in(
    tx: &mut PgConnection,
    which: Which<'_>,
) -> Result<Experiments, StorageError> {
    let experiments = match which {
        Which::All => experiments::select(None).query::<Postgres>(),
        Which::One(uuid) => experiments::select(Some(uuid)).query::<Postgres>(),
        Which::These(uuids) => sqlx::query(AssertSqlSafe(format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE uuid = ANY($1) ORDER BY uuid"
        )))
        .bind(uuids.to_vec()),
    }
    .fetch_all(&mut *tx)
    .await
    .map_err(map_err)?;
    if experiments.is_empty() {
        return Ok(Experiments::default());
    }
    let (filter, pending_filter) = match which {
        Which::All => ("", ""),
        Which::One(_) => (" WHERE v.experiment = $1", " WHERE experiment = $1"),
        Which::These(_) => (
            " WHERE v.experiment = ANY($1)",
            " WHERE experiment = ANY($1)",
        ),
    };
    // The variants' columns, their counts with what is pending added (`p`:
    // the pending counts summed per variant).
    let sql = format!(
        "SELECT {VARIANT_COLUMNS} FROM \
           (SELECT v.experiment, v.id, v.position, v.name, v.settings, \
                   v.views + COALESCE(p.views, 0) AS views, \
                   v.total_reward + COALESCE(p.total_reward, 0) AS total_reward \
            FROM variants v LEFT JOIN \
              (SELECT experiment, variant, SUM(views)::int8 AS views, \
                      SUM(total_reward) AS total_reward \
               FROM pending_counts{pending_filter} GROUP BY experiment, variant) p \
              ON p.experiment = v.experiment AND p.variant = v.id\
            {filter}) AS variants \
         ORDER BY experiment, position"
    );
    let query = sqlx::query(AssertSqlSafe(sql));
    let query = match which {
        Which::All => query,
        Which::One(uuid) => query.bind(UuidParam(uuid)),
        Which::These(uuids) => query.bind(uuids.to_vec()),
    };
    let variants = query.fetch_all(&mut *tx).await.map_err(map_err)?;
    Ok(experiments_from_rows(&experiments, &variants))
}

/// See [`Storage::hourly`](crate::storage::Storage::hourly): the folded
/// totals and what is pending, summed per hour.
pub async fn hourly(
    db: &PostgresStorage,
    experiment: Uuid,
) -> Result<Vec<HourTotals>, StorageError> {
    let sql = format!(
        "SELECT {HOUR_COLUMNS} FROM \
           (SELECT variant, hour_ms, SUM(views)::int8 AS views, \
                   SUM(total_reward) AS total_reward \
            FROM (SELECT variant, hour_ms, views, total_reward FROM variant_hours \
                  WHERE experiment = $1 \
                  UNION ALL \
                  SELECT variant, hour_ms, views, total_reward FROM pending_counts \
                  WHERE experiment = $1) u \
            GROUP BY variant, hour_ms) h \
         JOIN (SELECT id, position FROM variants WHERE experiment = $1) v \
           ON v.id = h.variant \
         ORDER BY v.position, h.hour_ms"
    );
    db.fetch_map(Statement::new(sql).uuid(experiment), hour_row)
        .await
}
