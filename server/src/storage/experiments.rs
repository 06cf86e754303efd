//! Experiments: the statements both backends run alike. Each backend runs
//! them in transactions of its own, next to what only it does (its variant
//! writes, PostgreSQL's pending counts and locks).

use myna_core::Experiment;
use uuid::Uuid;

use super::StorageError;
use super::rows::{EXPERIMENT_COLUMNS, uuid_col};
use super::sql::{Run, Statement};

/// See [`Storage::known_as`](super::Storage::known_as).
pub async fn known_as(
    db: &impl Run,
    account_id: Uuid,
    uuid: Uuid,
) -> Result<Option<Uuid>, StorageError> {
    let rows = db
        .fetch(
            Statement::new(
                "SELECT uuid FROM experiments WHERE account_id = $1 AND (uuid = $2 OR alias = $2) \
                 LIMIT 1",
            )
            .uuid(account_id)
            .uuid(uuid),
        )
        .await?;
    rows.first().map(|row| uuid_col(row, "uuid")).transpose()
}

/// Every experiment, or only the one with `uuid`, in uuid order.
pub fn select(uuid: Option<Uuid>) -> Statement<'static> {
    match uuid {
        Some(uuid) => Statement::new(format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE uuid = $1 ORDER BY uuid"
        ))
        .uuid(uuid),
        None => Statement::new(format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY uuid"
        )),
    }
}

/// Stores a new experiment, without its variants.
pub fn insert(experiment: &Experiment, now_ms: i64) -> Statement<'_> {
    Statement::new(
        "INSERT INTO experiments \
         (uuid, alias, account_id, name, visibility, settings, created_ms, id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .uuid(experiment.uuid)
    .optional_uuid(experiment.alias)
    .uuid(experiment.account_id)
    .text(experiment.name.as_str())
    .text(experiment.visibility.as_str())
    .text(experiment.settings.to_string())
    .integer(now_ms)
    .text(experiment.id.as_str())
}

/// Replaces an experiment's id, name, visibility and settings (changes no
/// row if it does not exist).
pub fn update(experiment: &Experiment) -> Statement<'_> {
    Statement::new(
        "UPDATE experiments SET name = $1, visibility = $2, settings = $3, id = $4 \
         WHERE uuid = $5",
    )
    .text(experiment.name.as_str())
    .text(experiment.visibility.as_str())
    .text(experiment.settings.to_string())
    .text(experiment.id.as_str())
    .uuid(experiment.uuid)
}

/// Deletes an experiment; its variants and hourly totals go with it
/// (foreign keys).
pub fn delete(uuid: Uuid) -> Statement<'static> {
    Statement::new("DELETE FROM experiments WHERE uuid = $1").uuid(uuid)
}

/// Sets every variant's counts of an experiment to zero.
pub fn zero_counts(uuid: Uuid) -> Statement<'static> {
    Statement::new("UPDATE variants SET views = 0, total_reward = 0 WHERE experiment = $1")
        .uuid(uuid)
}

/// Forgets an experiment's hourly totals.
pub fn delete_hours(uuid: Uuid) -> Statement<'static> {
    Statement::new("DELETE FROM variant_hours WHERE experiment = $1").uuid(uuid)
}
