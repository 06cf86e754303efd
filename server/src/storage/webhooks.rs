//! Webhooks, the observations notified and the deliveries: every call
//! written once for both backends, each run by [`Run`] (the backend picks
//! the connection; on PostgreSQL the caller bounds the call). A change is
//! stored with its deliveries in one guarded transaction ([`Run::guarded`]),
//! and an attempt claims its delivery by a compare-and-set on `next_ms`, so
//! several instances on one database notify a change once and send a
//! delivery once per attempt.

use myna_core::webhook::Observation;
use uuid::Uuid;

use super::rows::{
    Columns, DELIVERY_COLUMNS, WEBHOOK_COLUMNS, delivery_row, uuid_col, webhook_row,
};
use super::sql::{Run, Statement, insert_for_account};
use super::{Attempt, AttemptLog, Delivery, Notice, Observed, StorageError, Webhook};

/// Deliveries with their webhook's URL and account, as one relation.
const DELIVERIES: &str = "(SELECT d.id, d.webhook, w.url, w.account_id, d.experiment, d.event, \
     d.body, d.created_ms, d.attempts, d.next_ms, d.last_attempt_ms, d.last_status, \
     d.last_error, d.delivered_ms \
     FROM webhook_deliveries d JOIN webhooks w ON w.uuid = d.webhook) AS j";

/// The stored form of failing checks: typenames joined by commas.
fn failing_text(observation: &Observation) -> String {
    observation.failing.join(",")
}

/// See [`Storage::create_webhook`](super::Storage::create_webhook).
pub async fn create_webhook(
    db: &impl Run,
    webhook: &Webhook,
    max: usize,
) -> Result<bool, StorageError> {
    let sql = format!(
        "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) SELECT $1, $2, $3, $4 \
         WHERE (SELECT COUNT(*) FROM webhooks WHERE account_id = $2) < $5 \
         AND NOT EXISTS (SELECT 1 FROM webhooks WHERE account_id = $2 AND url = $3)"
    );
    let insert = Statement::new(sql)
        .uuid(webhook.uuid)
        .uuid(webhook.account_id)
        .text(webhook.url.as_str())
        .integer(webhook.created_ms)
        .count(max);
    insert_for_account(db, webhook.account_id, insert).await
}

/// See [`Storage::webhooks`](super::Storage::webhooks).
pub async fn webhooks(db: &impl Run, account_id: Uuid) -> Result<Vec<Webhook>, StorageError> {
    let sql = format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE account_id = $1 ORDER BY created_ms, uuid"
    );
    let rows = db.fetch(Statement::new(sql).uuid(account_id)).await?;
    rows.iter().map(webhook_row).collect()
}

/// See [`Storage::delete_webhook`](super::Storage::delete_webhook).
pub async fn delete_webhook(
    db: &impl Run,
    account_id: Uuid,
    uuid: Uuid,
) -> Result<bool, StorageError> {
    let deleted = db
        .execute(
            Statement::new("DELETE FROM webhooks WHERE uuid = $1 AND account_id = $2")
                .uuid(uuid)
                .uuid(account_id),
        )
        .await?;
    Ok(deleted > 0)
}

/// See [`Storage::webhook_accounts`](super::Storage::webhook_accounts).
pub async fn webhook_accounts(db: &impl Run) -> Result<Vec<Uuid>, StorageError> {
    let rows = db
        .fetch(Statement::new(
            "SELECT DISTINCT account_id FROM webhooks ORDER BY account_id",
        ))
        .await?;
    rows.iter().map(|row| uuid_col(row, "account_id")).collect()
}

/// See [`Storage::observations`](super::Storage::observations).
pub async fn observations(db: &impl Run) -> Result<Vec<Observed>, StorageError> {
    let rows = db
        .fetch(Statement::new(
            "SELECT experiment, verdict, failing, told_ms FROM webhook_observations",
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let failing = row.text("failing")?;
            let observation = Observation {
                verdict: row.text("verdict")?,
                failing: failing
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            };
            Ok(Observed {
                experiment: uuid_col(row, "experiment")?,
                observation,
                told_ms: row.optional_integer("told_ms")?,
            })
        })
        .collect()
}

/// See [`Storage::observe`](super::Storage::observe): the guard is the
/// insert of a first observation (nothing if one exists, or if the
/// experiment is gone) or the update of the one read (nothing if it changed
/// since).
pub async fn observe(db: &impl Run, notice: &Notice<'_>) -> Result<bool, StorageError> {
    let observation = notice.observation;
    let told_ms = (!notice.events.is_empty()).then_some(notice.now_ms);
    let guard = match notice.previous {
        // Nothing for an experiment deleted since it was looked at (another
        // instance's delete): no row to refer to.
        None => Statement::new(
            "INSERT INTO webhook_observations \
             (experiment, verdict, failing, changed_ms, told_ms) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM experiments WHERE uuid = $1) \
             ON CONFLICT (experiment) DO NOTHING",
        )
        .uuid(notice.experiment)
        .text(observation.verdict.as_str())
        .text(failing_text(observation))
        .integer(notice.now_ms)
        .optional_integer(told_ms),
        Some(previous) => Statement::new(
            "UPDATE webhook_observations SET verdict = $1, failing = $2, changed_ms = $3, \
             told_ms = COALESCE($7, told_ms) \
             WHERE experiment = $4 AND verdict = $5 AND failing = $6",
        )
        .text(observation.verdict.as_str())
        .text(failing_text(observation))
        .integer(notice.now_ms)
        .uuid(notice.experiment)
        .text(previous.verdict.as_str())
        .text(failing_text(previous))
        .optional_integer(told_ms),
    };
    let deliveries = notice
        .events
        .iter()
        .map(|(event, body)| {
            Statement::new(
                "INSERT INTO webhook_deliveries \
                 (webhook, experiment, event, body, created_ms, next_ms) \
                 SELECT uuid, $1, $2, $3, $4, $4 FROM webhooks WHERE account_id = $5",
            )
            .uuid(notice.experiment)
            .text(event.as_str())
            .text(body.as_str())
            .integer(notice.now_ms)
            .uuid(notice.account_id)
        })
        .collect();
    Ok(db.guarded(guard, deliveries).await?.is_some())
}

/// See [`Storage::due_deliveries`](super::Storage::due_deliveries).
pub async fn due_deliveries(
    db: &impl Run,
    now_ms: i64,
    per_webhook: usize,
    n: usize,
) -> Result<Vec<Delivery>, StorageError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM ( \
           SELECT *, ROW_NUMBER() OVER (PARTITION BY webhook ORDER BY next_ms, id) AS place \
           FROM {DELIVERIES} WHERE next_ms <= $1) AS due \
         WHERE place <= $2 ORDER BY next_ms, id LIMIT $3"
    );
    let statement = Statement::new(sql)
        .integer(now_ms)
        .count(per_webhook)
        .count(n);
    let rows = db.fetch(statement).await?;
    rows.iter().map(delivery_row).collect()
}

/// See [`Storage::claim_delivery`](super::Storage::claim_delivery).
pub async fn claim_delivery(
    db: &impl Run,
    id: i64,
    due_ms: i64,
    until_ms: i64,
    now_ms: i64,
) -> Result<bool, StorageError> {
    let claimed = db
        .execute(
            Statement::new(
                "UPDATE webhook_deliveries \
                 SET next_ms = $1, attempts = attempts + 1, last_attempt_ms = $2 \
                 WHERE id = $3 AND next_ms = $4",
            )
            .integer(until_ms)
            .integer(now_ms)
            .integer(id)
            .integer(due_ms),
        )
        .await?;
    Ok(claimed > 0)
}

/// See [`Storage::finish_attempt`](super::Storage::finish_attempt): the
/// log's row only if the delivery is still there.
pub async fn finish_attempt(db: &impl Run, attempt: &Attempt) -> Result<(), StorageError> {
    let update = Statement::new(
        "UPDATE webhook_deliveries \
         SET next_ms = $1, last_status = $2, last_error = $3, delivered_ms = $4 \
         WHERE id = $5",
    )
    .optional_integer(attempt.next_ms)
    .optional_integer(attempt.status.map(i64::from))
    .optional_text(attempt.error.as_deref())
    .optional_integer(attempt.delivered_ms)
    .integer(attempt.id);
    let log = Statement::new(
        "INSERT INTO webhook_attempts (delivery, at_ms, status, error) VALUES ($1, $2, $3, $4)",
    )
    .integer(attempt.id)
    .integer(attempt.at_ms)
    .optional_integer(attempt.status.map(i64::from))
    .optional_text(attempt.error.as_deref());
    db.guarded(update, vec![log]).await?;
    Ok(())
}

/// See [`Storage::attempts`](super::Storage::attempts).
pub async fn attempts(
    db: &impl Run,
    account_id: Uuid,
    n: usize,
) -> Result<Vec<AttemptLog>, StorageError> {
    let sql = format!(
        "SELECT delivery, at_ms, status, error FROM webhook_attempts \
         WHERE delivery IN (SELECT id FROM {DELIVERIES} \
                            WHERE account_id = $1 ORDER BY id DESC LIMIT $2) \
         ORDER BY delivery, at_ms"
    );
    let rows = db
        .fetch(Statement::new(sql).uuid(account_id).count(n))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(AttemptLog {
                delivery: row.integer("delivery")?,
                at_ms: row.integer("at_ms")?,
                status: row
                    .optional_integer("status")?
                    .and_then(|s| u16::try_from(s).ok()),
                error: row.optional_text("error")?,
            })
        })
        .collect()
}

/// See [`Storage::deliveries`](super::Storage::deliveries).
pub async fn deliveries(
    db: &impl Run,
    account_id: Uuid,
    n: usize,
) -> Result<Vec<Delivery>, StorageError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM {DELIVERIES} \
         WHERE account_id = $1 ORDER BY id DESC LIMIT $2"
    );
    let rows = db
        .fetch(Statement::new(sql).uuid(account_id).count(n))
        .await?;
    rows.iter().map(delivery_row).collect()
}

/// See [`Storage::prune_deliveries`](super::Storage::prune_deliveries):
/// a delivery still pending (`next_ms` set) is never removed here.
pub async fn prune_deliveries(db: &impl Run, keep: usize) -> Result<u64, StorageError> {
    db.execute(
        Statement::new(
            "DELETE FROM webhook_deliveries WHERE id IN ( \
               SELECT id FROM ( \
                 SELECT id, next_ms, \
                   ROW_NUMBER() OVER (PARTITION BY webhook ORDER BY id DESC) AS n \
                 FROM webhook_deliveries) AS ranked \
               WHERE n > $1 AND next_ms IS NULL)",
        )
        .count(keep),
    )
    .await
}

/// See [`Storage::drop_pending`](super::Storage::drop_pending).
pub async fn drop_pending(db: &impl Run, max: usize) -> Result<Vec<(Uuid, u64)>, StorageError> {
    let over = db
        .fetch(
            Statement::new(
                "SELECT webhook FROM webhook_deliveries WHERE next_ms IS NOT NULL \
                 GROUP BY webhook HAVING COUNT(*) > $1 ORDER BY webhook",
            )
            .count(max),
        )
        .await?;
    let mut dropped = Vec::with_capacity(over.len());
    for row in &over {
        let webhook = uuid_col(row, "webhook")?;
        let deleted = db
            .execute(
                Statement::new(
                    "DELETE FROM webhook_deliveries WHERE id IN ( \
                       SELECT id FROM ( \
                         SELECT id, ROW_NUMBER() OVER (ORDER BY id DESC) AS n \
                         FROM webhook_deliveries \
                         WHERE webhook = $1 AND next_ms IS NOT NULL) AS ranked \
                       WHERE n > $2)",
                )
                .uuid(webhook)
                .count(max),
            )
            .await?;
        if deleted > 0 {
            dropped.push((webhook, deleted));
        }
    }
    Ok(dropped)
}
