//! Experiments changed on PostgreSQL (their reads are `reads`): definition
//! changes take [`counts::lock_definitions`] first and drop the pending
//! counts of what they remove. Each runs inside a call bounded by the
//! caller (`PostgresStorage::bounded`).

use std::sync::Arc;

use myna_core::experiment::{legacy_id, unique_id};
use myna_core::{Experiment, Visibility};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres};
use uuid::Uuid;

use super::reads::{Which, load_in};
use super::{PostgresStorage, counts, map_err};
use crate::storage::rows::to_i64;
use crate::storage::sql::{Statement, UuidParam};
use crate::storage::{Apply, Created, StorageError, Updated, experiments, served};

/// Writes an experiment's variants in one statement: new ones with the
/// counts given (`with_counts`), or, on an update, the definitions of kept
/// ones (their counts untouched) and new ones at zero.
async fn write_variants(
    tx: &mut PgConnection,
    experiment: &Experiment,
    with_counts: bool,
) -> Result<(), StorageError> {
    if experiment.variants.is_empty() {
        return Ok(());
    }
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
         SELECT $1, id, position, name, settings, views, reward \
         FROM UNNEST($2::text[], $3::int4[], $4::text[], $5::text[], $6::int8[], $7::float8[]) \
           AS t (id, position, name, settings, views, reward)"
    } else {
        "INSERT INTO variants (experiment, id, position, name, settings) \
         SELECT $1, id, position, name, settings \
         FROM UNNEST($2::text[], $3::int4[], $4::text[], $5::text[]) \
           AS t (id, position, name, settings) \
         ON CONFLICT (experiment, id) DO UPDATE SET \
           position = excluded.position, name = excluded.name, settings = excluded.settings"
    };
    let mut query = sqlx::query(sql)
        .bind(UuidParam(experiment.uuid))
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

/// See [`Storage::create_experiment`](crate::storage::Storage::create_experiment).
pub async fn create(
    db: &PostgresStorage,
    experiment: &Experiment,
    now_ms: i64,
) -> Result<(), StorageError> {
    let mut conn = db.conn().await?;
    let mut tx = conn.begin().await.map_err(map_err)?;
    insert_in(&mut tx, experiment, now_ms).await?;
    tx.commit().await.map_err(map_err)
}

/// The create's statements in `tx`: the experiment and its variants.
async fn insert_in(
    tx: &mut PgConnection,
    experiment: &Experiment,
    now_ms: i64,
) -> Result<(), StorageError> {
    experiments::insert(experiment, now_ms)
        .query::<Postgres>()
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    write_variants(tx, experiment, true).await
}

/// See [`Storage::create_experiment_checked`](crate::storage::Storage::create_experiment_checked).
pub async fn create_checked(
    db: &PostgresStorage,
    mut experiment: Experiment,
    now_ms: i64,
    id_chosen: bool,
    max: usize,
) -> Result<Created, StorageError> {
    let mut conn = db.conn().await?;
    let mut tx = conn.begin().await.map_err(map_err)?;
    counts::lock_definitions(&mut tx).await?;
    store_legacy_ids(&mut tx, experiment.account_id).await?;
    let had: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM experiments WHERE account_id = $1")
        .bind(UuidParam(experiment.account_id))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
    if usize::try_from(had).unwrap_or(usize::MAX) >= max {
        return Ok(Created::Full);
    }
    // The uuid: the account's own (experiment or alias) is a conflict;
    // another account's becomes the alias of a uuid of the server's.
    let chosen = experiment.uuid;
    let holders: Vec<Uuid> = sqlx::query_scalar(
        "SELECT account_id FROM experiments \
         WHERE uuid = $1 OR (account_id = $2 AND alias = $1)",
    )
    .bind(UuidParam(chosen))
    .bind(UuidParam(experiment.account_id))
    .fetch_all(&mut *tx)
    .await
    .map_err(map_err)?;
    if holders.contains(&experiment.account_id) {
        return Ok(Created::UuidTaken);
    }
    if !holders.is_empty() {
        experiment.alias = Some(chosen);
        experiment.uuid = Uuid::new_v4();
    }
    if id_chosen {
        if published_elsewhere(&mut tx, &experiment).await? {
            return Ok(Created::IdTaken(experiment.id));
        }
    } else {
        // The account's ids that are the slug or it with a suffix (`_` is
        // a LIKE wildcard too: a superset, compared exactly below).
        let alike: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT id FROM experiments WHERE account_id = $1 AND (id = $2 OR id LIKE $2 || '-%')",
        )
        .bind(UuidParam(experiment.account_id))
        .bind(experiment.id.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let alike: Vec<String> = alike.into_iter().flatten().collect();
        experiment.id = unique_id(&experiment.id, |id| alike.iter().any(|a| a == id));
    }
    insert_in(&mut tx, &experiment, now_ms).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(Created::Done(experiment))
}

/// Stores the id each experiment of the account stored before ids existed
/// (`id` NULL: written by an older server, even one still running beside
/// this) is read with, [`legacy_id`] of its name, so the checks below,
/// which compare stored ids under the definitions lock, see it (an outside
/// probe's upgraded database let a new experiment take an older one's id).
async fn store_legacy_ids(tx: &mut PgConnection, account: Uuid) -> Result<(), StorageError> {
    let unnamed: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT uuid, name FROM experiments WHERE account_id = $1 AND id IS NULL")
            .bind(UuidParam(account))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
    for (uuid, name) in unnamed {
        sqlx::query("UPDATE experiments SET id = $1 WHERE uuid = $2 AND id IS NULL")
            .bind(legacy_id(&name))
            .bind(UuidParam(uuid))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// Whether `experiment` is published with an id another published
/// experiment of its account has, as stored (under the definitions lock).
async fn published_elsewhere(
    tx: &mut PgConnection,
    experiment: &Experiment,
) -> Result<bool, StorageError> {
    if experiment.visibility != Visibility::Published {
        return Ok(false);
    }
    let clash: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM experiments WHERE account_id = $1 AND visibility = 'published' \
         AND id = $2 AND uuid <> $3 LIMIT 1",
    )
    .bind(UuidParam(experiment.account_id))
    .bind(experiment.id.as_str())
    .bind(UuidParam(experiment.uuid))
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(clash.is_some())
}

/// See [`Storage::update_experiment_with`](crate::storage::Storage::update_experiment_with).
pub async fn update_with(
    db: &PostgresStorage,
    uuid: Uuid,
    apply: Apply<'_>,
) -> Result<Updated, StorageError> {
    let mut conn = db.conn().await?;
    let mut tx = conn.begin().await.map_err(map_err)?;
    counts::lock_definitions(&mut tx).await?;
    let stored = load_in(&mut tx, Which::One(uuid)).await?;
    let Some(current) = stored.readable.first() else {
        return Ok(if stored.unreadable.is_empty() {
            Updated::Missing
        } else {
            Updated::Unreadable
        });
    };
    store_legacy_ids(&mut tx, current.account_id).await?;
    let next = match apply(current) {
        Ok(next) => next,
        Err(problem) => return Ok(Updated::Refused(problem)),
    };
    // Only a change that makes the duplicate is refused (a new id, or
    // publishing), so an update of something else goes through.
    let publishes = next.id != current.id || next.visibility != current.visibility;
    if publishes && published_elsewhere(&mut tx, &next).await? {
        return Ok(Updated::IdTaken(next.id));
    }
    if !update_in(&mut tx, &next).await? {
        return Ok(Updated::Missing);
    }
    tx.commit().await.map_err(map_err)?;
    Ok(Updated::Done(next))
}

/// See [`Storage::update_experiment`](crate::storage::Storage::update_experiment).
pub async fn update(db: &PostgresStorage, experiment: &Experiment) -> Result<bool, StorageError> {
    let mut conn = db.conn().await?;
    let mut tx = conn.begin().await.map_err(map_err)?;
    counts::lock_definitions(&mut tx).await?;
    if !update_in(&mut tx, experiment).await? {
        return Ok(false);
    }
    tx.commit().await.map_err(map_err)?;
    Ok(true)
}

/// The update's statements in `tx` (the definitions lock taken); false if
/// the experiment is not stored.
async fn update_in(tx: &mut PgConnection, experiment: &Experiment) -> Result<bool, StorageError> {
    let done = experiments::update(experiment)
        .query::<Postgres>()
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    // Removed variants lose their counts, folded or not.
    let keep: Vec<&str> = experiment.variants.iter().map(|v| v.id.as_str()).collect();
    for (table, column) in [
        ("variants", "id"),
        ("pending_counts", "variant"),
        ("served_weights", "variant"),
    ] {
        let sql =
            format!("DELETE FROM {table} WHERE experiment = $1 AND {column} <> ALL($2::text[])");
        sqlx::query(AssertSqlSafe(sql))
            .bind(UuidParam(experiment.uuid))
            .bind(&keep)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    write_variants(tx, experiment, false).await?;
    Ok(true)
}

/// See [`Storage::delete_experiment`](crate::storage::Storage::delete_experiment).
pub async fn delete(db: &PostgresStorage, uuid: Uuid) -> Result<bool, StorageError> {
    let mut conn = db.conn().await?;
    let mut tx = conn.begin().await.map_err(map_err)?;
    counts::lock_definitions(&mut tx).await?;
    let done = experiments::delete(uuid)
        .query::<Postgres>()
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    let pending = Statement::new("DELETE FROM pending_counts WHERE experiment = $1").uuid(uuid);
    for statement in [pending, served::delete(uuid)] {
        statement
            .query::<Postgres>()
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)?;
    // Its batch ids (maybe millions) in slices, off the writer's path.
    tokio::spawn(counts::purge_batches(Arc::downgrade(&db.calls), uuid));
    Ok(done.rows_affected() > 0)
}

/// See [`Storage::reset_experiment`](crate::storage::Storage::reset_experiment).
pub async fn reset(db: &PostgresStorage, uuid: Uuid) -> Result<bool, StorageError> {
    let mut conn = db.conn().await?;
    let mut tx = conn.begin().await.map_err(map_err)?;
    counts::lock_definitions(&mut tx).await?;
    // Locks the experiment: a concurrent delete waits, or was first.
    let found = Statement::new("SELECT 1 FROM experiments WHERE uuid = $1 FOR UPDATE")
        .uuid(uuid)
        .query::<Postgres>()
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
    if found.is_none() {
        return Ok(false);
    }
    let pending = Statement::new("DELETE FROM pending_counts WHERE experiment = $1").uuid(uuid);
    for statement in [
        experiments::zero_counts(uuid),
        experiments::delete_hours(uuid),
        pending,
        served::delete(uuid),
    ] {
        statement
            .query::<Postgres>()
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(true)
}
