//! The SQLite backend: one embedded file in WAL mode with fully synchronous
//! commits, so an answered write survives `kill -9` and power loss alike.
//!
//! Writes go through a pool of ONE connection (SQLite has one writer; queueing
//! in the pool is fairer than SQLite's busy-wait), reads through a small pool;
//! record batches through a connection of their own (`record.rs`), which the
//! commit writer drives from its thread (other writes wait for it, up to the
//! busy timeout, as it waits for them).
//! What SQLite does like PostgreSQL is written once (`credentials.rs`,
//! `experiments.rs`, run through [`Run`]); its group commit is in
//! `record.rs`.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use myna_core::Experiment;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use uuid::Uuid;

use super::rows::{HOUR_COLUMNS, VARIANT_COLUMNS, experiments_from_rows, hour_row, only, to_i64};
use super::sql::{Run, Statement, UuidParam};
use super::{
    Account, ApiKey, Attempt, AttemptLog, BlockingRecorder, Delivery, Experiments, Fut,
    HEALTH_PROBE, HourTotals, Notice, Observed, Recording, Served, Storage, StorageError, Token,
    TokenHash, Unreadable, Webhook, credentials, experiments, served, webhooks,
};

mod record;

use record::{DatabaseFile, Recorder};

/// Batch ids pruned by one statement.
const PRUNE_SLICE: i64 = 10_000;

/// The size the write-ahead log is cut back to once a checkpoint has copied
/// it all (SQLite's `journal_size_limit`): a reader held for long (a backup
/// of a large database) lets the log grow while it reads, and SQLite would
/// keep the file at its largest until the server stops. In steady use the
/// log stays near 4 MiB (SQLite checkpoints at 1,000 pages).
pub const WAL_SIZE_LIMIT: u64 = 16 * 1024 * 1024;

/// The SQLite storage.
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    write: SqlitePool,
    read: SqlitePool,
    recorder: Arc<Mutex<Recorder>>,
    /// The file the recorder opened ([`DatabaseFile::check`]).
    file: DatabaseFile,
}

impl SqliteStorage {
    /// Opens (creating if missing) the database file at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<SqliteStorage, StorageError> {
        open_private(path).map_err(|e| {
            StorageError::Unavailable(format!("cannot open {}: {e}", path.display()))
        })?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string());
        Self::open_with(options).await
    }

    /// Opens a database from an `sqlite:` URL (`sqlite://myna.db`), with the
    /// same durability settings as [`SqliteStorage::open`].
    pub async fn open_url(url: &str) -> Result<SqliteStorage, StorageError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StorageError::Unavailable(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string());
        Self::open_with(options).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<SqliteStorage, StorageError> {
        let file = options.get_filename().to_owned();
        if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" {
            return Err(StorageError::Unavailable(
                "an in-memory SQLite database would lose every event at exit: give a file".into(),
            ));
        }
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&write)
            .await
            .map_err(|e| StorageError::Internal(format!("migration failed: {e}")))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        let recorder = Recorder::open(&file)?;
        Ok(SqliteStorage {
            write,
            read,
            file: recorder.file().clone(),
            recorder: Arc::new(Mutex::new(recorder)),
        })
    }
}

impl SqliteStorage {
    /// The writing pool, while the path names the file opened (else
    /// unavailable: [`DatabaseFile::check`]).
    fn writer(&self) -> Result<&SqlitePool, StorageError> {
        self.file.check()?;
        Ok(&self.write)
    }
}

/// Writes a consistent copy of the existing database `source` names to
/// `path` while a server keeps recording: `VACUUM INTO` reads inside one
/// read transaction, so the copy is the database as of one commit (in WAL
/// mode writers go on meanwhile). The database is opened for this alone:
/// no migration runs and nothing is written to it, so a copy taken before
/// an upgrade is the file as the older server wrote it, and that server
/// goes on. The copy is written beside `path` under a temporary name,
/// synced, then renamed, so `path` never holds a partial copy; an existing
/// `path` is refused.
pub async fn backup(source: SqliteConnectOptions, path: &Path) -> Result<(), StorageError> {
    let source = source
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(source)
        .await
        .map_err(map_err)?;
    let copied = copy_into(&pool, path).await;
    pool.close().await;
    copied
}

/// `VACUUM INTO` a temporary name beside `path` (`FILE.partial-PID`, locked
/// while it is written), synced, then linked to `path`, which must still
/// not exist.
async fn copy_into(source: &SqlitePool, path: &Path) -> Result<(), StorageError> {
    if path.exists() {
        return Err(exists(path));
    }
    remove_stale_partials(path);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".partial-{}", std::process::id()));
    let partial = std::path::PathBuf::from(name);
    let journal = journal_of(&partial);
    let _ = std::fs::remove_file(&partial);
    let _ = std::fs::remove_file(&journal);
    // The copy holds the server secret: readable by its owner only,
    // from its first byte (VACUUM INTO writes into an empty file). Locked
    // while this backup writes it, so another backup to the same name (in
    // any process namespace) knows it is not left over.
    let held = private_file(&partial).map_err(|e| StorageError::Unavailable(e.to_string()))?;
    let _ = held.try_lock();
    let text = partial.to_str().ok_or_else(|| {
        StorageError::Internal(format!("{} is not a UTF-8 path", partial.display()))
    })?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(text)
        .execute(source)
        .await
        .map_err(map_err);
    let synced = copied.and_then(|_| sync_and_link(&partial, path));
    let _ = std::fs::remove_file(&partial);
    // SQLite's rollback journal of the copy, left by a failed one.
    let _ = std::fs::remove_file(&journal);
    drop(held);
    synced
}

/// The refusal of an existing backup file.
fn exists(path: &Path) -> StorageError {
    StorageError::Internal(format!("{} exists: choose a new file", path.display()))
}

/// The rollback journal SQLite keeps beside `file` while writing it.
fn journal_of(file: &Path) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push("-journal");
    name.into()
}

/// Removes the temporary files of earlier backups to `path` that no backup
/// is writing any more (killed, or the machine stopped, mid-copy):
/// `FILE.partial-PID` (or, from earlier versions, the name without its
/// extension, `NAME.partial-PID`) when no process holds its lock, and a
/// `-journal` left without its copy. Nothing else would ever remove them.
fn remove_stale_partials(path: &Path) {
    let (Some(dir), Some(file), Some(stem)) = (path.parent(), path.file_name(), path.file_stem())
    else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefixes = [
        format!("{}.partial-", file.to_string_lossy()),
        format!("{}.partial-", stem.to_string_lossy()),
    ];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| prefixes.iter().find_map(|p| n.strip_prefix(p.as_str())))
        else {
            continue;
        };
        let (pid, journal) = match rest.strip_suffix("-journal") {
            Some(pid) => (pid, true),
            None => (rest, false),
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let copy = if journal {
            dir.join(name.to_string_lossy().trim_end_matches("-journal"))
        } else {
            entry.path()
        };
        // Not a regular file (a directory, a link): not ours.
        if !std::fs::symlink_metadata(&copy).map_or(journal, |m| m.is_file()) {
            continue;
        }
        let in_use = std::fs::File::open(&copy).is_ok_and(|f| f.try_lock().is_err());
        if !in_use {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Runs a group commit on the recorder (its lock is the writer's alone,
/// but for tests calling `record`).
fn record_with(
    recorder: &Mutex<Recorder>,
    batches: &[Recording],
    now_ms: i64,
) -> Result<Vec<bool>, StorageError> {
    let mut recorder = recorder.lock().unwrap_or_else(PoisonError::into_inner);
    recorder.record(batches, now_ms)
}

/// Options that create a file with permissions for its owner alone (0600):
/// a database, or a copy of one, holds the server secret and the
/// credentials' hashes (SQLite gives a database's `-wal` and `-shm` files
/// its permissions).
fn private() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Opens the database file at `path` for reading and writing, created
/// empty (a new database to SQLite) and private if missing, never cut.
pub fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    private()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
}

/// Creates `path` empty and private; an existing file is an error.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    private().write(true).create_new(true).open(path)
}

/// Syncs the file `from` to disk, links it as `to` (refused if `to` exists
/// by then: another backup to the same name finished first), and syncs the
/// directory so the link survives a crash. `from` is left to be removed.
fn sync_and_link(from: &Path, to: &Path) -> Result<(), StorageError> {
    let io = |e: std::io::Error| StorageError::Unavailable(e.to_string());
    std::fs::File::open(from)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    match std::fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists(to)),
        // A file system without hard links: renamed, after one more look.
        Err(_) if to.exists() => return Err(exists(to)),
        Err(_) => std::fs::rename(from, to).map_err(io)?,
    }
    let directory = to.parent().filter(|d| !d.as_os_str().is_empty());
    std::fs::File::open(directory.unwrap_or(Path::new(".")))
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// Maps a driver error: I/O, busy, full disk and pool problems are
/// `Unavailable` (retry later); a unique violation is `Conflict`.
/// SQLite's `SQLITE_READONLY_DIRECTORY`: the file may be writable, its
/// directory is not, so the write-ahead log cannot be created.
const READONLY_DIRECTORY: i64 = 1544;

fn map_err(error: sqlx::Error) -> StorageError {
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
fn transient(code: i64) -> bool {
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

impl SqliteStorage {
    async fn load_experiments(&self, uuid: Option<Uuid>) -> Result<Experiments, StorageError> {
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

    /// The group commit from async code (the commit writer calls the
    /// recorder directly, from its thread): on a blocking thread.
    async fn record_batches(
        &self,
        batches: &[Recording],
        now_ms: i64,
    ) -> Result<Vec<bool>, StorageError> {
        let recorder = self.recorder.clone();
        let batches = batches.to_vec();
        tokio::task::spawn_blocking(move || record_with(&recorder, &batches, now_ms))
            .await
            .map_err(|e| StorageError::Internal(format!("the group commit failed: {e}")))?
    }

    /// Writes an experiment's variants one statement each: new ones with
    /// the counts given (`with_counts`), or, on an update, the definitions
    /// of kept ones (their counts untouched) and new ones at zero.
    async fn write_variants(
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

impl Storage for SqliteStorage {
    fn ping(&self) -> Fut<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.read)
                .await
                .map_err(map_err)?;
            // A real write, committed (and synced) like a group commit, to
            // the table commits write: one sentinel row, rewritten.
            // (SQLite stores batch ids as 16 bytes.)
            sqlx::query(
                "INSERT INTO batches (experiment, batch, created_ms) VALUES (?, ?, 0) \
                 ON CONFLICT (experiment, batch) DO UPDATE SET created_ms = 0",
            )
            .bind(UuidParam(HEALTH_PROBE))
            .bind(HEALTH_PROBE.as_bytes().as_slice())
            .execute(self.writer()?)
            .await
            .map_err(map_err)?;
            Ok(())
        })
    }

    fn close(&self) -> Fut<'_, ()> {
        Box::pin(async move {
            self.read.close().await;
            self.write.close().await;
            for moved in self.file.set_aside_stale_log() {
                tracing::warn!(
                    file = %moved.display(),
                    "the database file was replaced while this server ran: its log set aside"
                );
            }
            Ok(())
        })
    }

    fn account_count(&self) -> Fut<'_, u64> {
        Box::pin(credentials::account_count(self))
    }

    fn create_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()> {
        Box::pin(credentials::create_account(self, account))
    }

    fn account_by_email<'a>(&'a self, email: &'a str) -> Fut<'a, Option<Account>> {
        Box::pin(credentials::account_by_email(self, email))
    }

    fn set_password<'a>(&'a self, account_id: Uuid, password_hash: &'a str) -> Fut<'a, bool> {
        Box::pin(credentials::set_password(self, account_id, password_hash))
    }

    fn create_token(&self, token: Token) -> Fut<'_, ()> {
        Box::pin(credentials::create_token(self, token))
    }

    fn token(&self, hash: TokenHash) -> Fut<'_, Option<Token>> {
        Box::pin(credentials::token(self, hash))
    }

    fn extend_token(&self, hash: TokenHash, expires_ms: i64) -> Fut<'_, ()> {
        Box::pin(credentials::extend_token(self, hash, expires_ms))
    }

    fn delete_token(&self, hash: TokenHash) -> Fut<'_, bool> {
        Box::pin(credentials::delete_token(self, hash))
    }

    fn delete_account_tokens(&self, account_id: Uuid) -> Fut<'_, u64> {
        Box::pin(credentials::delete_account_tokens(self, account_id))
    }

    fn prune_tokens(&self, now_ms: i64) -> Fut<'_, u64> {
        Box::pin(credentials::prune_tokens(self, now_ms))
    }

    fn secret<'a>(&'a self, name: &'a str, fresh: &'a str) -> Fut<'a, String> {
        Box::pin(credentials::secret(self, name, fresh))
    }

    fn create_api_key<'a>(&'a self, key: &'a ApiKey, max: usize) -> Fut<'a, bool> {
        Box::pin(credentials::create_api_key(self, key, max))
    }

    fn api_key(&self, uuid: Uuid) -> Fut<'_, Option<ApiKey>> {
        Box::pin(credentials::api_key(self, uuid))
    }

    fn api_keys(&self, account_id: Uuid) -> Fut<'_, Vec<ApiKey>> {
        Box::pin(credentials::api_keys(self, account_id))
    }

    fn delete_api_key(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(credentials::delete_api_key(self, account_id, uuid))
    }

    fn experiments(&self) -> Fut<'_, Experiments> {
        Box::pin(self.load_experiments(None))
    }

    fn experiment(&self, uuid: Uuid) -> Fut<'_, Option<Result<Experiment, Unreadable>>> {
        Box::pin(async move { Ok(only(self.load_experiments(Some(uuid)).await?)) })
    }

    fn aliased(&self, account_id: Uuid, alias: Uuid) -> Fut<'_, Option<Uuid>> {
        Box::pin(experiments::aliased(self, account_id, alias))
    }

    fn create_experiment<'a>(&'a self, experiment: &'a Experiment, now_ms: i64) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut tx = self.writer()?.begin().await.map_err(map_err)?;
            experiments::insert(experiment, now_ms)
                .query::<Sqlite>()
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            Self::write_variants(&mut tx, experiment, true).await?;
            tx.commit().await.map_err(map_err)
        })
    }

    fn update_experiment<'a>(&'a self, experiment: &'a Experiment) -> Fut<'a, bool> {
        Box::pin(async move {
            let mut tx = self.writer()?.begin().await.map_err(map_err)?;
            let done = experiments::update(experiment)
                .query::<Sqlite>()
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            let rows = Statement::new("SELECT id FROM variants WHERE experiment = $1")
                .uuid(experiment.uuid)
                .query::<Sqlite>()
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
            for row in rows {
                let id: String = row.try_get("id").map_err(map_err)?;
                if !experiment.has_variant(&id) {
                    let variant =
                        Statement::new("DELETE FROM variants WHERE experiment = $1 AND id = $2")
                            .uuid(experiment.uuid)
                            .text(id.as_str());
                    for statement in [variant, served::delete_variant(experiment.uuid, &id)] {
                        statement
                            .query::<Sqlite>()
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                    }
                }
            }
            Self::write_variants(&mut tx, experiment, false).await?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }

    fn delete_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(async move {
            let mut tx = self.writer()?.begin().await.map_err(map_err)?;
            let done = experiments::delete(uuid)
                .query::<Sqlite>()
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let batches = Statement::new("DELETE FROM batches WHERE experiment = $1").uuid(uuid);
            for statement in [batches, served::delete(uuid)] {
                statement
                    .query::<Sqlite>()
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn reset_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(async move {
            let mut tx = self.writer()?.begin().await.map_err(map_err)?;
            let found = Statement::new("SELECT 1 FROM experiments WHERE uuid = $1")
                .uuid(uuid)
                .query::<Sqlite>()
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            if found.is_none() {
                return Ok(false);
            }
            for statement in [
                experiments::zero_counts(uuid),
                experiments::delete_hours(uuid),
                served::delete(uuid),
            ] {
                statement
                    .query::<Sqlite>()
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }

    fn record<'a>(&'a self, batches: &'a [Recording], now_ms: i64) -> Fut<'a, Vec<bool>> {
        Box::pin(self.record_batches(batches, now_ms))
    }

    fn blocking_recorder(&self) -> Option<BlockingRecorder> {
        let recorder = self.recorder.clone();
        Some(Box::new(move |batches, now_ms| {
            record_with(&recorder, batches, now_ms)
        }))
    }

    fn prune_batches(&self, before_ms: i64) -> Fut<'_, u64> {
        Box::pin(async move {
            // In slices, so group commits never wait long behind the pruning.
            let mut pruned = 0;
            loop {
                let done = sqlx::query(
                    "DELETE FROM batches WHERE (experiment, batch) IN \
                     (SELECT experiment, batch FROM batches WHERE created_ms < ? LIMIT ?)",
                )
                .bind(before_ms)
                .bind(PRUNE_SLICE)
                .execute(self.writer()?)
                .await
                .map_err(map_err)?;
                pruned += done.rows_affected();
                if done.rows_affected() < PRUNE_SLICE.unsigned_abs() {
                    return Ok(pruned);
                }
            }
        })
    }

    fn hourly(&self, experiment: Uuid) -> Fut<'_, Vec<HourTotals>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {HOUR_COLUMNS} FROM variant_hours h \
                 JOIN (SELECT id, position FROM variants WHERE experiment = $1) v \
                   ON v.id = h.variant \
                 WHERE h.experiment = $1 ORDER BY v.position, h.hour_ms"
            );
            let rows = self.fetch(Statement::new(sql).uuid(experiment)).await?;
            rows.iter().map(hour_row).collect()
        })
    }

    fn add_served<'a>(&'a self, rows: &'a [Served]) -> Fut<'a, ()> {
        Box::pin(served::add(self, rows))
    }

    fn served(&self, experiment: Uuid) -> Fut<'_, Vec<Served>> {
        Box::pin(served::of(self, experiment))
    }

    fn create_webhook<'a>(&'a self, webhook: &'a Webhook, max: usize) -> Fut<'a, bool> {
        Box::pin(webhooks::create_webhook(self, webhook, max))
    }

    fn webhooks(&self, account_id: Uuid) -> Fut<'_, Vec<Webhook>> {
        Box::pin(webhooks::webhooks(self, account_id))
    }

    fn delete_webhook(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, bool> {
        Box::pin(webhooks::delete_webhook(self, account_id, uuid))
    }

    fn webhook_accounts(&self) -> Fut<'_, Vec<Uuid>> {
        Box::pin(webhooks::webhook_accounts(self))
    }

    fn observations(&self) -> Fut<'_, Vec<Observed>> {
        Box::pin(webhooks::observations(self))
    }

    fn observe<'a>(&'a self, notice: &'a Notice<'a>) -> Fut<'a, bool> {
        Box::pin(webhooks::observe(self, notice))
    }

    fn due_deliveries(
        &self,
        now_ms: i64,
        per_webhook: usize,
        limit: usize,
    ) -> Fut<'_, Vec<Delivery>> {
        Box::pin(webhooks::due_deliveries(self, now_ms, per_webhook, limit))
    }

    fn claim_delivery(&self, id: i64, due_ms: i64, until_ms: i64, now_ms: i64) -> Fut<'_, bool> {
        Box::pin(webhooks::claim_delivery(self, id, due_ms, until_ms, now_ms))
    }

    fn finish_attempt<'a>(&'a self, attempt: &'a Attempt) -> Fut<'a, ()> {
        Box::pin(webhooks::finish_attempt(self, attempt))
    }

    fn deliveries(&self, account_id: Uuid, limit: usize) -> Fut<'_, Vec<Delivery>> {
        Box::pin(webhooks::deliveries(self, account_id, limit))
    }

    fn prune_deliveries(&self, keep: usize) -> Fut<'_, u64> {
        Box::pin(webhooks::prune_deliveries(self, keep))
    }

    fn drop_pending(&self, max: usize) -> Fut<'_, Vec<(Uuid, u64)>> {
        Box::pin(webhooks::drop_pending(self, max))
    }

    fn attempts(&self, account_id: Uuid, limit: usize) -> Fut<'_, Vec<AttemptLog>> {
        Box::pin(webhooks::attempts(self, account_id, limit))
    }
}
