//! How the SQLite backend runs a statement ([`Run`]: writes on the writing
//! connection, reads on a reader) and what its driver's errors mean.

use sqlx::Sqlite;
use sqlx::sqlite::SqliteRow;

use super::SqliteStorage;
use crate::storage::StorageError;
use crate::storage::sql::{Run, Statement, collect_mapped};

/// SQLite's `SQLITE_READONLY_DIRECTORY`: the file may be writable, its
/// directory is not, so the write-ahead log cannot be created.
const READONLY_DIRECTORY: i64 = 1544;

/// Maps a driver error: I/O, busy, full disk and pool problems are
/// `Unavailable` (retry later); a unique violation is `Conflict`.
pub(super) fn map_err(error: sqlx::Error) -> StorageError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
        sqlx::Error::Database(db) => {
            let code = db.code().and_then(|c| c.parse::<i64>().ok());
            if code == Some(READONLY_DIRECTORY) {
                StorageError::Unavailable(format!(
                    "{error}: the database's directory is not writable by this user \
                     (SQLite keeps the -wal and -shm files beside the database): let \
                     the server's user write in that directory"
                ))
            } else if code.is_some_and(transient) {
                StorageError::Unavailable(error.to_string())
            } else {
                StorageError::Internal(error.to_string())
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StorageError::Unavailable(error.to_string()),
        _ => StorageError::Internal(error.to_string()),
    }
}

/// Whether an SQLite (extended) result code means "retry later": BUSY,
/// LOCKED, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL (the primary
/// code is the low byte). CORRUPT is there because a file that reads as
/// damaged is most often a failing disk or filesystem under it (an outside
/// probe shut one down: IOERR, then CORRUPT, the file intact once mounted
/// again): the database is unavailable, not the server broken. Both
/// connections' errors are read by it.
pub(super) fn transient(code: i64) -> bool {
    matches!(code & 0xff, 5 | 6 | 8 | 10 | 11 | 13 | 14 | 15)
}

/// Statements that write run on the writing connection (while the path
/// names the file opened: [`SqliteStorage::writer`]), reads on a reader.
impl Run for SqliteStorage {
    type Row = SqliteRow;

    async fn execute<'a>(&'a self, statement: Statement<'a>) -> Result<u64, StorageError> {
        let done = statement
            .query::<Sqlite>()
            .execute(self.writer()?)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn fetch<'a>(&'a self, statement: Statement<'a>) -> Result<Vec<SqliteRow>, StorageError> {
        statement
            .query::<Sqlite>()
            .fetch_all(&self.read)
            .await
            .map_err(map_err)
    }

    async fn fetch_map<'a, T: Send + 'static>(
        &'a self,
        statement: Statement<'a>,
        map: fn(&SqliteRow) -> Result<T, StorageError>,
    ) -> Result<Vec<T>, StorageError> {
        let rows = statement.query::<Sqlite>().fetch(&self.read);
        collect_mapped(rows, map_err, map).await
    }

    async fn guarded<'a>(
        &'a self,
        guard: Statement<'a>,
        then: Vec<Statement<'a>>,
    ) -> Result<Option<u64>, StorageError> {
        let mut tx = self.writer()?.begin().await.map_err(map_err)?;
        let done = guard
            .query::<Sqlite>()
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
                .query::<Sqlite>()
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            changed += done.rows_affected();
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Some(changed))
    }
}
