//! The SQLite backend's experiment reads (every experiment, or one, with
//! its variants in order) and variant writes, in the caller's transaction.

use myna_core::Experiment;
use sqlx::Sqlite;
use sqlx::sqlite::SqliteConnection;
use uuid::Uuid;

use super::SqliteStorage;
use super::run::map_err;
use crate::storage::rows::{VARIANT_COLUMNS, experiments_from_rows, to_i64};
use crate::storage::sql::{Run, Statement};
use crate::storage::{Experiments, StorageError, experiments};

impl SqliteStorage {
    pub(super) async fn load_experiments(
        &self,
        uuid: Option<Uuid>,
    ) -> Result<Experiments, StorageError> {
        let experiments = self.fetch(experiments::select(uuid)).await?;
        let variants = match uuid {
            Some(uuid) => Statement::new(format!(
                "SELECT {VARIANT_COLUMNS} FROM variants WHERE experiment = $1 ORDER BY position"
            ))
            .uuid(uuid),
            None => Statement::new(format!(
                "SELECT {VARIANT_COLUMNS} FROM variants ORDER BY experiment, position"
            )),
        };
        let variants = self.fetch(variants).await?;
        Ok(experiments_from_rows(&experiments, &variants))
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
