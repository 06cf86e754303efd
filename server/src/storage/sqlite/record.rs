//! SQLite's group commit: the batch ids, the counters and the hourly totals
//! of many record batches in one transaction, on a connection of its own
//! (rusqlite) that the commit writer drives from its own thread. A commit is
//! plain calls into SQLite with cached prepared statements: no hop to a
//! driver's thread and back inside it, which is what a group commit mostly
//! waited on when it went through sqlx (two round trips, four thread
//! wake-ups, each queued behind the request workers on a busy machine).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};

use super::transient;
use crate::storage::rows::to_i64;
use crate::storage::sql::UuidParam;
use crate::storage::{Deltas, Recording, StorageError};

/// The writing connection of record batches.
#[derive(Debug)]
pub struct Recorder {
    connection: Connection,
    file: DatabaseFile,
}

/// The database file's path, and which file it named when opened; its
/// write-ahead log's likewise (where there was one: the connections keep
/// it while they are open).
#[derive(Debug, Clone)]
pub struct DatabaseFile {
    path: PathBuf,
    identity: Option<FileIdentity>,
    wal: Option<FileIdentity>,
}

/// The write-ahead log of the database at `path`.
fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// A file's device and inode: another file at the same path differs.
type FileIdentity = (u64, u64);

impl DatabaseFile {
    /// The file at `path` now.
    pub fn at(path: &Path) -> DatabaseFile {
        DatabaseFile {
            path: path.to_owned(),
            identity: identity(path),
            wal: identity(&wal_path(path)),
        }
    }

    /// At close, when another file was moved over this one (a backup
    /// restored under the running server): this server's write-ahead log
    /// and shared memory, still beside it, belong to the file it had open,
    /// and the next start would read them into the new one (a "malformed"
    /// database). They are renamed `…-wal.of-replaced-file` and
    /// `…-shm.of-replaced-file`, never deleted; the names moved, if any.
    pub fn set_aside_stale_log(&self) -> Vec<PathBuf> {
        let replaced = identity(&self.path).is_some_and(|now| Some(now) != self.identity);
        let wal = wal_path(&self.path);
        if !replaced || self.wal.is_none() || identity(&wal) != self.wal {
            return Vec::new();
        }
        let mut shm = self.path.as_os_str().to_owned();
        shm.push("-shm");
        let mut moved = Vec::new();
        for from in [wal, PathBuf::from(shm)] {
            let mut to = from.as_os_str().to_owned();
            to.push(".of-replaced-file");
            if std::fs::rename(&from, &to).is_ok() {
                moved.push(PathBuf::from(to));
            }
        }
        moved
    }

    /// Fails while the path no longer names the file this server opened
    /// (deleted, or another moved over it, say a backup restored under a
    /// running server), or its write-ahead log's path the log: what it
    /// wrote would be lost at the next start, so nothing is acknowledged
    /// until a restart opens the files there now.
    pub fn check(&self) -> Result<(), StorageError> {
        let wal = wal_path(&self.path);
        let gone = if identity(&self.path) != self.identity {
            self.path.as_path()
        } else if self.wal.is_some() && identity(&wal) != self.wal {
            // Commits would go to a log no later start reads.
            wal.as_path()
        } else {
            return Ok(());
        };
        Err(StorageError::Unavailable(format!(
            "the database file {} was deleted or replaced while this server had it open: \
             restart the server (writes to the old file would be lost)",
            gone.display()
        )))
    }
}

/// The identity of the file at `path` now (none where it cannot be read).
fn identity(path: &Path) -> Option<FileIdentity> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|_| (0, 0))
    }
}

const INSERT_BATCH: &str = "INSERT INTO batches (experiment, batch, created_ms) \
     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";

const ADD_TO_VARIANT: &str = "UPDATE variants SET views = views + ?3, \
     total_reward = total_reward + ?4 WHERE experiment = ?1 AND id = ?2";

const ADD_TO_HOUR: &str = "INSERT INTO variant_hours \
     (experiment, variant, hour_ms, views, total_reward) \
     SELECT ?1, ?2, ?3, ?4, ?5 \
     WHERE EXISTS (SELECT 1 FROM variants v WHERE v.experiment = ?1 AND v.id = ?2) \
     ON CONFLICT (experiment, variant, hour_ms) DO UPDATE SET \
     views = views + excluded.views, total_reward = total_reward + excluded.total_reward";

impl Recorder {
    /// Opens the database at `path` (created and migrated already) with the
    /// durability of the other connections: WAL, every commit synced, foreign
    /// keys on, and waiting up to 10 s for another writer.
    pub fn open(path: &Path) -> Result<Recorder, StorageError> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(map_err)?;
        connection
            .busy_timeout(Duration::from_secs(10))
            .map_err(map_err)?;
        connection
            .execute_batch(&format!(
                "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                 PRAGMA journal_size_limit = {};",
                super::WAL_SIZE_LIMIT
            ))
            .map_err(map_err)?;
        let mode: String = connection
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .map_err(map_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Internal(format!(
                "the database's journal mode is {mode}, not WAL"
            )));
        }
        Ok(Recorder {
            connection,
            file: DatabaseFile::at(path),
        })
    }

    /// The file it writes, as it was when opened.
    pub fn file(&self) -> &DatabaseFile {
        &self.file
    }

    /// Commits `batches` in one transaction (one fsync); answers, per batch,
    /// whether it was counted (false: its batch id was already recorded for
    /// its experiment, by an earlier commit or earlier in this group). On an
    /// error nothing is written.
    pub fn record(
        &mut self,
        batches: &[Recording],
        now_ms: i64,
    ) -> Result<Vec<bool>, StorageError> {
        self.file.check()?;
        let result = self.commit(batches, now_ms);
        if result.is_err() && !self.connection.is_autocommit() {
            // Whatever failed, no transaction stays open.
            let _ = self.connection.execute_batch("ROLLBACK");
        }
        result
    }

    /// Runs one statement without parameters, prepared once (rusqlite's
    /// `Transaction` parses `BEGIN` and `COMMIT` anew each time: 5 % of a
    /// lone request's instructions).
    fn run_cached(&self, sql: &str) -> Result<(), StorageError> {
        self.connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(drop)
            .map_err(map_err)
    }

    /// The group commit's transaction: on an error it is left open, for
    /// [`Recorder::record`] to roll back.
    fn commit(&mut self, batches: &[Recording], now_ms: i64) -> Result<Vec<bool>, StorageError> {
        self.run_cached("BEGIN IMMEDIATE")?;
        let tx = &self.connection;
        let mut counted = Vec::with_capacity(batches.len());
        {
            let mut insert = tx.prepare_cached(INSERT_BATCH).map_err(map_err)?;
            for recording in batches {
                counted.push(match recording.batch.batch {
                    None => true,
                    Some(id) => {
                        let experiment = UuidParam(recording.experiment);
                        let inserted = insert
                            .execute(params![experiment, id.as_bytes().as_slice(), now_ms])
                            .map_err(map_err)?;
                        inserted == 1
                    }
                });
            }
        }
        let deltas = Deltas::of(
            batches
                .iter()
                .zip(&counted)
                .filter(|(_, counted)| **counted)
                .map(|(recording, _)| recording),
            now_ms,
        );
        {
            let mut add = tx.prepare_cached(ADD_TO_VARIANT).map_err(map_err)?;
            for (experiment, variant, views, reward) in &deltas.variants {
                add.execute(params![
                    UuidParam(*experiment),
                    variant,
                    to_i64(*views),
                    reward
                ])
                .map_err(map_err)?;
            }
            let mut add = tx.prepare_cached(ADD_TO_HOUR).map_err(map_err)?;
            for (experiment, variant, hour, views, reward) in &deltas.hours {
                add.execute(params![
                    UuidParam(*experiment),
                    variant,
                    hour,
                    to_i64(*views),
                    reward
                ])
                .map_err(map_err)?;
            }
        }
        self.run_cached("COMMIT")?;
        Ok(counted)
    }
}

/// Maps an SQLite error as the sqlx connections' are mapped: transient
/// codes are `Unavailable` (retry later), anything else is `Internal`.
fn map_err(error: rusqlite::Error) -> StorageError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if transient(i64::from(failure.extended_code)) =>
        {
            StorageError::Unavailable(error.to_string())
        }
        _ => StorageError::Internal(error.to_string()),
    }
}
