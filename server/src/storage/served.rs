//! Served weights: the weights the server answered with, per experiment,
//! variant and hour (`served_weights`), written once for both backends.
//! Rows are added to, never replaced: several instances on one database
//! each add what they served.

use std::collections::HashMap;

use uuid::Uuid;

use super::rows::{SERVED_COLUMNS, served_row, to_i64};
use super::sql::{Run, Statement};
use super::{Served, StorageError};

/// Rows per statement: 5 parameters each, well under both databases'
/// limits on parameters.
const CHUNK: usize = 1_000;

/// Adds `rows` to the stored sums (one row per experiment, variant and hour
/// after summing duplicates); rows of experiments or variants that no longer
/// exist are dropped.
pub async fn add<R: Run>(db: &R, rows: &[Served]) -> Result<(), StorageError> {
    // One row per key in a statement (PostgreSQL refuses to upsert a row
    // twice in one statement).
    let mut at: HashMap<(Uuid, &str, i64), usize> = HashMap::new();
    let mut summed: Vec<Served> = Vec::new();
    for row in rows.iter().filter(|r| r.answers > 0) {
        match at.get(&(row.experiment, row.variant.as_str(), row.hour_ms)) {
            Some(&i) => {
                summed[i].weight_sum += row.weight_sum;
                summed[i].answers = summed[i].answers.saturating_add(row.answers);
            }
            None => {
                at.insert(
                    (row.experiment, row.variant.as_str(), row.hour_ms),
                    summed.len(),
                );
                summed.push(row.clone());
            }
        }
    }
    // In key order, so two instances' upserts lock rows in the same order.
    summed.sort_by(|a, b| {
        (a.experiment, &a.variant, a.hour_ms).cmp(&(b.experiment, &b.variant, b.hour_ms))
    });
    for chunk in summed.chunks(CHUNK) {
        db.execute(upsert(chunk)).await?;
    }
    Ok(())
}

/// One additive upsert of `rows` (distinct keys), only for variants that
/// exist. The `VALUES` columns are `column1`… in both databases; the
/// `WHERE true` tells SQLite the `ON CONFLICT` belongs to the insert.
fn upsert(rows: &[Served]) -> Statement<'_> {
    let values: Vec<String> = (0..rows.len())
        .map(|i| {
            let p = 5 * i;
            format!(
                "(${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO served_weights (experiment, variant, hour_ms, weight_sum, answers) \
         SELECT v.experiment, v.id, t.column3, t.column4, t.column5 \
         FROM (VALUES {}) AS t \
         JOIN variants v ON v.experiment = t.column1 AND v.id = t.column2 \
         WHERE true \
         ON CONFLICT (experiment, variant, hour_ms) DO UPDATE SET \
           weight_sum = served_weights.weight_sum + excluded.weight_sum, \
           answers = served_weights.answers + excluded.answers",
        values.join(", ")
    );
    let mut statement = Statement::new(sql);
    for row in rows {
        statement = statement
            .uuid(row.experiment)
            .text(row.variant.as_str())
            .integer(row.hour_ms)
            .real(row.weight_sum)
            .integer(to_i64(row.answers));
    }
    statement
}

/// An experiment's served weights, by variant (creation order) then hour.
pub async fn of<R: Run>(db: &R, experiment: Uuid) -> Result<Vec<Served>, StorageError> {
    let columns = SERVED_COLUMNS
        .split(", ")
        .map(|c| format!("s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {columns} FROM served_weights s \
         JOIN variants v ON v.experiment = s.experiment AND v.id = s.variant \
         WHERE s.experiment = $1 ORDER BY v.position, s.hour_ms"
    );
    db.fetch_map(Statement::new(sql).uuid(experiment), served_row)
        .await
}

/// Forgets an experiment's served weights (reset, delete).
pub fn delete(uuid: Uuid) -> Statement<'static> {
    Statement::new("DELETE FROM served_weights WHERE experiment = $1").uuid(uuid)
}

/// Forgets the served weights of one variant (removed by an update).
pub fn delete_variant(uuid: Uuid, variant: &str) -> Statement<'_> {
    Statement::new("DELETE FROM served_weights WHERE experiment = $1 AND variant = $2")
        .uuid(uuid)
        .text(variant)
}
