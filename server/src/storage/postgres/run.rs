//! How the PostgreSQL backend runs a shared statement ([`Run`]: on a
//! connection of the current call's purpose) and what its driver's errors
//! mean ([`map_err`], [`describe`]).

use sqlx::postgres::PgRow;
use sqlx::{Connection, Postgres};

use super::PostgresStorage;
use crate::storage::StorageError;
use crate::storage::sql::{Run, Statement, collect_mapped};

/// The SQLSTATE of a database error.
pub(super) fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// A driver error as people read it: a database error's message without
/// the line of PostgreSQL's own source that sqlx appends (`… at line 948`).
pub(crate) fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => format!(
            "error returned from database: {}{}",
            db.message(),
            pooler_hint(db.message())
        ),
        other => other.to_string(),
    }
}

/// What an error about the driver's prepared statements (`sqlx_s_N`
/// exists already, or does not exist) means: a pooler in transaction mode
/// is in front, which this server does not support.
pub(super) fn pooler_hint(message: &str) -> &'static str {
    if message.contains("prepared statement \"sqlx_s_") {
        " (statements prepared on one connection were met on another: a pooler in \
         transaction mode, such as PgBouncer's pool_mode = transaction, is in front; use \
         session mode: README, Scaling out)"
    } else {
        ""
    }
}

/// How the cause of a write refused by a database that takes no writes
/// begins (SQLSTATE 25006): not a failing pool, said apart in the log.
pub(crate) const READ_ONLY: &str = "the database takes no writes";

/// Maps a driver error: a lost or refused connection, an overloaded or
/// restarting server, a timeout or a lock conflict are `Unavailable` (retry
/// later); a unique violation is `Conflict`.
pub(super) fn map_err(error: sqlx::Error) -> StorageError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
        sqlx::Error::Database(_) => {
            let code = sqlstate(&error).unwrap_or_default();
            // 08: connection exception; 53: insufficient resources; 57:
            // operator intervention (shutdown, statement timeout); 40:
            // transaction rollback (deadlock, serialization); 55P03: lock
            // not available; 58: system error (I/O); 25006: a read-only
            // transaction (a standby, or a database set read-only: writes
            // come back after a failover). Refused at connecting: 3D000,
            // the database does not exist (dropped, or being restored);
            // 55000, it accepts no connections now (`ALLOW_CONNECTIONS
            // false`); 28: the login refused (a password changed, a role
            // disabled): an operator's doing, over when they undo it.
            let class = code.get(..2).unwrap_or_default();
            if code == "25006" {
                StorageError::Unavailable(format!("{READ_ONLY}: {}", describe(&error)))
            } else if matches!(class, "08" | "53" | "57" | "40" | "58" | "28")
                || matches!(code.as_str(), "55P03" | "3D000" | "55000")
            {
                StorageError::Unavailable(describe(&error))
            } else {
                StorageError::Internal(describe(&error))
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

/// Statements run on a connection of the current call's purpose.
impl Run for PostgresStorage {
    type Row = PgRow;

    async fn execute<'a>(&'a self, statement: Statement<'a>) -> Result<u64, StorageError> {
        let done = statement
            .query::<Postgres>()
            .execute(&mut *self.conn().await?)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn fetch<'a>(&'a self, statement: Statement<'a>) -> Result<Vec<PgRow>, StorageError> {
        statement
            .query::<Postgres>()
            .fetch_all(&mut *self.conn().await?)
            .await
            .map_err(map_err)
    }

    async fn fetch_map<'a, T: Send + 'static>(
        &'a self,
        statement: Statement<'a>,
        map: fn(&PgRow) -> Result<T, StorageError>,
    ) -> Result<Vec<T>, StorageError> {
        let mut conn = self.conn().await?;
        let rows = statement.query::<Postgres>().fetch(&mut *conn);
        collect_mapped(rows, map_err, map).await
    }

    async fn guarded<'a>(
        &'a self,
        guard: Statement<'a>,
        then: Vec<Statement<'a>>,
    ) -> Result<Option<u64>, StorageError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(map_err)?;
        let done = guard
            .query::<Postgres>()
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            // Dropped: rolled back.
            return Ok(None);
        }
        let mut changed = 0;
        for statement in then {
            let done = statement
                .query::<Postgres>()
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            changed += done.rows_affected();
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Some(changed))
    }
}

#[cfg(test)]
mod tests {
    use super::pooler_hint;

    #[test]
    fn a_pooler_in_transaction_mode_is_named_as_the_cause() {
        for message in [
            "while executing migrations: prepared statement \"sqlx_s_1\" already exists",
            "prepared statement \"sqlx_s_12\" does not exist",
        ] {
            assert!(
                pooler_hint(message).contains("pool_mode = transaction"),
                "{message}"
            );
        }
        assert_eq!(pooler_hint("relation \"x\" does not exist"), "");
    }
}
