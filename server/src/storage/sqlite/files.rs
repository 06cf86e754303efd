//! SQLite's files outside the server's connections: `myna-server backup`
//! (a consistent copy while a server records, written under a temporary
//! name, then linked into place) and the private (0600) files a database
//! and its copies are created as.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::map_err;
use crate::storage::StorageError;

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
