//! `myna-server backup FILE` on the real binary: a copy taken while clients
//! record is consistent (its counts are exactly those of the batches it
//! holds) and holds at least everything acknowledged before it began; a
//! server starts on it. Refusals: an existing file, a missing database,
//! PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{BIN, Batch, PATIENCE, Server, basic, batch, counts, http, json_call, totals};

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "s3cret-admin";

fn backup(db: &std::path::Path, file: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .arg("backup")
        .arg(file)
        .arg("--database")
        .arg(db)
        .env_remove("MYNA_DATABASE")
        .output()
        .expect("run myna-server backup")
}

#[test]
fn a_backup_under_load_is_consistent_and_a_server_starts_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let copy = dir.path().join("copy.db");
    let env = [
        ("MYNA_ADMIN_EMAIL", EMAIL),
        ("MYNA_ADMIN_PASSWORD", PASSWORD),
    ];
    let mut server = Server::start(&db, &env);
    let owner = basic(EMAIL, PASSWORD);
    let created = json_call(
        server.addr,
        "POST",
        "/v2/experiment",
        &owner,
        r#"{"name": "load", "visibility": "published", "variants": {"a": {}, "b": {}}}"#,
    );
    let experiment = created["uuid"].as_str().unwrap().to_owned();
    let path = format!("/v2/experiment/{experiment}/record");

    // Clients record, each batch with its own id, during the whole backup.
    let acked: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4u64)
        .map(|client| {
            let (acked, stop) = (acked.clone(), stop.clone());
            let (addr, path, owner) = (server.addr, path.clone(), owner.clone());
            std::thread::spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let batch = batch(client * 1_000_000 + n);
                    let (status, body) = http(addr, "POST", &path, &owner, &batch.body).unwrap();
                    assert_eq!(status, 200, "{body}");
                    acked.lock().unwrap().push(batch);
                }
            })
        })
        .collect();
    let started = Instant::now();
    while acked.lock().unwrap().len() < 200 {
        assert!(started.elapsed() < PATIENCE, "the load never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = totals(acked.lock().unwrap().iter());
    let output = backup(&db, &copy);
    let after = totals(acked.lock().unwrap().iter());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("Backed up"));
    // It holds the server secret: for its owner's eyes only.
    let mode = std::os::unix::fs::PermissionsExt::mode(&copy.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // Still recording after the backup: it never stopped the server.
    let recorded = acked.lock().unwrap().len();
    while acked.lock().unwrap().len() < recorded + 50 {
        assert!(
            started.elapsed() < PATIENCE,
            "recording stopped after the backup"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let everything = acked.lock().unwrap().clone();
    server.terminate();

    // A server on the copy: at least what was acknowledged before the
    // backup began, at most what was acknowledged when it ended.
    let restored = Server::start(&copy, &[]);
    let (views, rewards) = counts(restored.addr, &owner, &experiment);
    assert!(
        (before.0..=after.0).contains(&views),
        "views {views} not in {}..={}",
        before.0,
        after.0
    );
    assert!((before.1..=after.1).contains(&rewards));

    // Consistent: its counts are exactly its batch ids. Every batch sent
    // again: those the copy holds are not counted twice, the others are,
    // so the totals come out exact.
    for batch in &everything {
        let (status, body) = http(restored.addr, "POST", &path, &owner, &batch.body).unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        counts(restored.addr, &owner, &experiment),
        totals(&everything),
        "the copy's counts match the batch ids it holds"
    );
}

#[test]
fn backup_refuses_an_existing_file_a_missing_database_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let existing = dir.path().join("existing.db");
    std::fs::write(&existing, b"keep me").unwrap();
    let env = [
        ("MYNA_ADMIN_EMAIL", EMAIL),
        ("MYNA_ADMIN_PASSWORD", PASSWORD),
    ];
    let mut server = Server::start(&db, &env);
    server.terminate();

    let output = backup(&db, &existing);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("exists"));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");

    let missing = dir.path().join("missing.db");
    let output = backup(&missing, &dir.path().join("copy.db"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("there is no database"));
    assert!(!missing.exists(), "a backup never creates the database");
    // Named by an `sqlite:` URL, the same.
    let url = format!("sqlite:{}", missing.display());
    let output = backup(std::path::Path::new(&url), &dir.path().join("copy.db"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("there is no database"));
    assert!(!missing.exists(), "a backup never creates the database");
    assert!(!dir.path().join("copy.db").exists());

    // Nor does a command that reads an account from it.
    for args in [
        ["apikey", "list", "--email", EMAIL],
        ["apikey", "create", "--email", EMAIL],
    ] {
        let output = Command::new(BIN)
            .args(args)
            .arg("--database")
            .arg(&missing)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("there is no database"),
            "{args:?}: {stderr}"
        );
        assert!(!missing.exists(), "{args:?} created the database");
    }

    let output = Command::new(BIN)
        .args([
            "backup",
            "x.db",
            "--database",
            "postgres://nobody@127.0.0.1:1/x",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("pg_dump"));
    let partial = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("partial"))
        .collect::<Vec<_>>();
    assert!(partial.is_empty(), "partial copies left: {partial:?}");
}

/// A backup opens the database only to copy it: a file an older server
/// wrote (its migrations behind this binary's) is copied as it is, byte for
/// byte unchanged, and that server goes on (an outside probe's backup
/// before an upgrade migrated the older server's file under it: its logins
/// failed, and the old binary refused the file and the copy). Simulated
/// with this binary's file whose newest migration is marked not applied.
#[test]
fn a_backup_leaves_an_older_servers_file_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let env = [
        ("MYNA_ADMIN_EMAIL", EMAIL),
        ("MYNA_ADMIN_PASSWORD", PASSWORD),
    ];
    let mut server = Server::start(&db, &env);
    server.terminate();
    let older = rusqlite::Connection::open(&db).unwrap();
    let newest: i64 = older
        .query_row("SELECT max(version) FROM _sqlx_migrations", [], |r| {
            r.get(0)
        })
        .unwrap();
    older
        .execute("DELETE FROM _sqlx_migrations WHERE version = ?1", [newest])
        .unwrap();
    older
        .pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    drop(older);
    let before = std::fs::read(&db).unwrap();
    let copy = dir.path().join("copy.db");
    let output = backup(&db, &copy);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file is unchanged");
    let copied = rusqlite::Connection::open(&copy).unwrap();
    let versions: i64 = copied
        .query_row(
            "SELECT count(*) FROM _sqlx_migrations WHERE version = ?1",
            [newest],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(versions, 0, "the copy is the file as it was, not migrated");
}

/// A reader held for long (a backup of a large database, which reads in one
/// transaction) lets the write-ahead log grow while it reads. Once it is
/// done, the log is cut back at the next checkpoint, not kept at its
/// largest until the server stops. The database and its log are the
/// owner's alone, as backups are.
#[test]
fn the_log_a_long_reader_grew_is_cut_back_after_it_and_the_files_are_private() {
    use myna_server::storage::sqlite::WAL_SIZE_LIMIT;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let env = [
        ("MYNA_ADMIN_EMAIL", EMAIL),
        ("MYNA_ADMIN_PASSWORD", PASSWORD),
    ];
    let server = Server::start(&db, &env);
    let owner = basic(EMAIL, PASSWORD);
    let file = |suffix: &str| dir.path().join(format!("myna.db{suffix}"));
    let log_size = || std::fs::metadata(file("-wal")).map_or(0, |m| m.len());
    // An experiment of 14 variants whose settings each hold `text`.
    let create = |text: &str| {
        let variants: Vec<String> = (0..14)
            .map(|i| format!(r#""v{i}": {{"settings": {{"text": "{text}"}}}}"#))
            .collect();
        let body = format!(r#"{{"name": "n", "variants": {{{}}}}}"#, variants.join(","));
        json_call(server.addr, "POST", "/v2/experiment", &owner, &body);
    };

    // A long reader, as `backup` holds, while large definitions are written.
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM experiments", [], |row| row.get(0))
        .unwrap();
    let big = "x".repeat(60_000);
    for _ in 0..60 {
        if log_size() > 2 * WAL_SIZE_LIMIT {
            break;
        }
        create(&big);
    }
    let grown = log_size();
    assert!(grown > 2 * WAL_SIZE_LIMIT, "the log grew to {grown} B only");
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);

    // Writes go on: the next checkpoints cut the log back.
    let started = Instant::now();
    while log_size() > WAL_SIZE_LIMIT {
        assert!(
            started.elapsed() < PATIENCE,
            "the log stays at {} B (it grew to {grown} B)",
            log_size()
        );
        create("small");
    }
    for suffix in ["", "-wal", "-shm"] {
        let mode = file(suffix).metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "myna.db{suffix}: {mode:o}");
    }
}

/// A backup killed mid-copy leaves its temporary files (`FILE.partial-PID`
/// and SQLite's `-journal` of it; earlier versions named them without the
/// extension); the next backup to that name removes those no backup holds
/// the lock of, and leaves a running one's alone, whatever its PID says
/// (a backup in another PID namespace, as `docker exec` runs it, sees
/// other PIDs).
#[test]
fn a_backup_removes_what_killed_backups_left() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let mut server = Server::start(&db, &[]);
    server.terminate();
    let left = [
        "copy.db.partial-999999999",
        "copy.db.partial-999999999-journal",
        "copy.partial-999999998",
        "copy.db.partial-999999997-journal",
    ];
    for name in left {
        std::fs::write(dir.path().join(name), b"left").unwrap();
    }
    // A running backup's copy: locked, and named after no process here.
    let running = "copy.db.partial-999999996";
    std::fs::write(dir.path().join(running), b"running").unwrap();
    let held = std::fs::File::open(dir.path().join(running)).unwrap();
    held.lock().unwrap();
    let unrelated = ["copy.db.partial-notapid", "other.db.partial-999999995"];
    for name in unrelated {
        std::fs::write(dir.path().join(name), b"not ours").unwrap();
    }
    let output = backup(&db, &dir.path().join("copy.db"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut kept: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("copy") || name.starts_with("other"))
        .collect();
    kept.sort();
    let mut expected = vec!["copy.db", running];
    expected.extend(unrelated);
    expected.sort_unstable();
    assert_eq!(kept, expected);
    drop(held);
}
