//! The SQLite backend's experiment reads (every experiment, or one, with
//! its variants in order) and variant writes, in the caller's transaction.

use myna_core::Experiment;
use sqlx::Sqlite;
use sqlx::sqlite::SqliteConnection;
use uuid::Uuid;

use super::SqliteStorage;
use super::run::map_err;
use crate::storage::rows::{
    Columns, VARIANT_COLUMNS, experiment_record, experiments_from_records, to_i64, variant_record,
};
use crate::storage::sql::{Run, Statement};
use crate::storage::{Experiments, StorageError, experiments};

impl SqliteStorage {
    pub(super) async fn load_experiments(
        &self,
        uuid: Option<Uuid>,
    ) -> Result<Experiments, StorageError> {
        // Row by row into records (a start reads every experiment: the
        // driver's rows of 100,000 would otherwise sit in memory at once).
        let experiments = self
            .fetch_map(experiments::select(uuid), experiment_record)
            .await?;
        let variants = match uuid {
            Some(uuid) => Statement::new(format!(
                "SELECT {VARIANT_COLUMNS} FROM variants WHERE experiment = $1 ORDER BY position"
            ))
            .uuid(uuid),
            None => Statement::new(format!(
                "SELECT {VARIANT_COLUMNS} FROM variants ORDER BY experiment, position"
            )),
        };
        let variants = self.fetch_map(variants, variant_record).await?;
        // sqlx ends a read early, as if complete, when its connection's
        // thread panics mid-way (SQLite out of memory): an outside probe
        // saw a start under a memory limit serve 179 of 201 experiments
        // without variants, and an owner's edit of one then deleted its
        // variants and counts. Every read of experiments is counted: a
        // partial one fails (no write reads or races it here: the commit
        // writer makes the one-experiment reads, and the start the rest).
        let counts = match uuid {
            Some(uuid) => Statement::new(
                "SELECT (SELECT COUNT(*) FROM experiments WHERE uuid = $1) AS experiments, \
                 (SELECT COUNT(*) FROM variants WHERE experiment = $1) AS variants",
            )
            .uuid(uuid),
            None => Statement::new(
                "SELECT (SELECT COUNT(*) FROM experiments) AS experiments, \
                 (SELECT COUNT(*) FROM variants) AS variants",
            ),
        };
        let counts = self.fetch(counts).await?;
        let counted = counts
            .first()
            .map(|row| {
                Ok::<_, StorageError>((row.integer("experiments")?, row.integer("variants")?))
            })
            .transpose()?;
        whole_read(counted, experiments.len(), variants.len())?;
        Ok(experiments_from_records(experiments, variants))
    }

    /// Writes an experiment's variants one statement each: new ones with
    /// the counts given (`with_counts`), or, on an update, the definitions
    /// of kept ones (their counts untouched) and new ones at zero.
    pub(super) async fn write_variants(
        tx: &mut SqliteConnection,
        experiment: &Experiment,
        with_counts: bool,
    ) -> Result<(), StorageError> {
        for (position, v) in experiment.variants.iter().enumerate() {
            let position = i64::try_from(position).unwrap_or(i64::MAX);
            let statement = if with_counts {
                Statement::new(
                    "INSERT INTO variants \
                     (experiment, id, position, name, settings, views, total_reward) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
            } else {
                Statement::new(
                    "INSERT INTO variants (experiment, id, position, name, settings) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (experiment, id) DO UPDATE SET \
                     position = excluded.position, name = excluded.name, \
                     settings = excluded.settings",
                )
            };
            let statement = statement
                .uuid(experiment.uuid)
                .text(v.id.as_str())
                .integer(position)
                .text(v.name.as_str())
                .text(v.settings.to_string());
            let mut query = statement.query::<Sqlite>();
            if with_counts {
                query = query.bind(to_i64(v.views)).bind(v.total_reward);
            }
            query.execute(&mut *tx).await.map_err(map_err)?;
        }
        Ok(())
    }
}

/// Fails unless the rows read are as many as the database counts
/// (`counted`: experiments, variants), saying so.
fn whole_read(
    counted: Option<(i64, i64)>,
    experiments: usize,
    variants: usize,
) -> Result<(), StorageError> {
    let read = (to_i64(experiments as u64), to_i64(variants as u64));
    if counted == Some(read) {
        return Ok(());
    }
    Err(StorageError::Unavailable(format!(
        "the database gave only part of its experiments ({experiments} experiments and \
         {variants} variants read, {} counted): a reading connection failed mid-way \
         (SQLite out of memory?); nothing is served from a partial read",
        counted.map_or_else(|| "none".to_owned(), |(e, v)| format!("{e} and {v}"))
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_whole_only_when_every_counted_row_came() {
        assert!(whole_read(Some((2, 5)), 2, 5).is_ok());
        assert!(whole_read(Some((0, 0)), 0, 0).is_ok());
        for (counted, experiments, variants) in [
            (Some((201, 603)), 201, 63),
            (Some((201, 603)), 91, 273),
            (Some((1, 3)), 0, 0),
            (None, 0, 0),
        ] {
            let Err(StorageError::Unavailable(message)) =
                whole_read(counted, experiments, variants)
            else {
                panic!("{counted:?} read as whole from {experiments} and {variants}");
            };
            assert!(message.contains("only part"), "{message}");
        }
    }
}
