//! The real binary, as a site owner runs it: started on a temporary database
//! and port 0, killed with `kill -9` under load from concurrent clients,
//! restarted; every acknowledged event must be counted exactly once, and
//! retried batch ids must not count twice. Also: the first start's
//! credentials, graceful shutdown, and an unreachable PostgreSQL's message.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{
    BIN, Batch, PATIENCE, Server, basic, batch, counts, exit_of, first_start_refused, http,
    json_call, published_with_key, totals,
};

#[test]
fn kill_9_under_load_loses_no_acknowledged_event_and_retries_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let env = [
        ("MYNA_ADMIN_EMAIL", "admin@example.com"),
        ("MYNA_ADMIN_PASSWORD", "s3cret-admin"),
    ];
    let mut server = Server::start(&db, &env);
    let owner = basic("admin@example.com", "s3cret-admin");
    let (experiment, key) = published_with_key(server.addr, &owner);
    let api_key = format!("ApiKey {key}");
    let path = format!("/v2/experiment/{experiment}/record");

    // Concurrent clients record until the server dies under them.
    let acked: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let unknown: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8u64)
        .map(|client| {
            let (acked, unknown, stop) = (acked.clone(), unknown.clone(), stop.clone());
            let (addr, path, api_key) = (server.addr, path.clone(), api_key.clone());
            std::thread::spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let batch = batch(client * 1_000_000 + n);
                    match http(addr, "POST", &path, &api_key, &batch.body) {
                        Ok((200, _)) => acked.lock().unwrap().push(batch),
                        _ => {
                            // No answer: maybe committed, maybe not.
                            unknown.lock().unwrap().push(batch);
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while acked.lock().unwrap().len() < 300 {
        assert!(started.elapsed() < PATIENCE, "the load never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let unknown = unknown.lock().unwrap().clone();
    assert!(acked.len() >= 300);
    eprintln!(
        "killed with {} batches acknowledged, {} in flight",
        acked.len(),
        unknown.len()
    );

    // Restarted on the same file: every acknowledged event is there.
    let server = Server::start(&db, &[]);
    let (at_least_views, at_least_rewards) = totals(&acked);
    let (at_most_views, at_most_rewards) = totals(acked.iter().chain(&unknown));
    let (views, rewards) = counts(server.addr, &owner, &experiment);
    assert!(
        (at_least_views..=at_most_views).contains(&views),
        "views {views} not in {at_least_views}..={at_most_views}"
    );
    assert!((at_least_rewards..=at_most_rewards).contains(&rewards));

    // Clients retry everything they sent (same batch ids), concurrently.
    let everything: Vec<Batch> = acked.iter().chain(&unknown).cloned().collect();
    let retries: Vec<_> = everything
        .chunks(everything.len().div_ceil(4))
        .map(|chunk| {
            let chunk = chunk.to_vec();
            let (addr, path, api_key) = (server.addr, path.clone(), api_key.clone());
            std::thread::spawn(move || {
                for batch in chunk {
                    let (status, body) = http(addr, "POST", &path, &api_key, &batch.body).unwrap();
                    assert_eq!(status, 200, "{body}");
                }
            })
        })
        .collect();
    for retry in retries {
        retry.join().unwrap();
    }
    assert_eq!(
        counts(server.addr, &owner, &experiment),
        (at_most_views, at_most_rewards),
        "each batch counted exactly once"
    );
}

#[test]
fn first_start_prints_credentials_once_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let mut server = Server::start(&db, &[]);
    let line = server
        .stdout
        .recv_timeout(PATIENCE)
        .expect("credentials on stdout");
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |word: &str| {
        let i = words.iter().position(|w| *w == word).expect(word);
        words[i + 1].to_owned()
    };
    let (email, password) = (after("email"), after("password"));
    let (status, body) = http(
        server.addr,
        "POST",
        "/v2/user/login",
        &basic(&email, &password),
        "",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let (health, _) = http(server.addr, "GET", "/healthz", "", "").unwrap();
    assert_eq!(health, 200);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(server.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    server.assert_stops_cleanly();
    std::thread::sleep(Duration::from_millis(200)); // the log reader catches up
    let log = server.log.lock().unwrap().clone();
    let port = format!(":{}", server.addr.port());
    let naming: Vec<_> = log.iter().filter(|l| l.contains(&port)).collect();
    assert_eq!(naming.len(), 1, "one line names the address: {log:#?}");
    assert!(naming[0].contains("myna-server listening on http://127.0.0.1:"));
    assert!(
        log.iter().any(|l| l.contains("myna-server stopped")),
        "{log:#?}"
    );

    // The second start creates nothing and prints no password.
    let again = Server::start(&db, &[]);
    let (status, _) = http(
        again.addr,
        "POST",
        "/v2/user/login",
        &basic(&email, &password),
        "",
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(
        again
            .stdout
            .recv_timeout(Duration::from_millis(500))
            .is_err()
    );
}

#[test]
fn an_unreachable_postgres_gets_a_clear_message() {
    // Nothing listens there: waited for (up to --database-wait), then a
    // message naming the server, not a hang.
    let output = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--database-wait",
            "1",
            "--database",
            "postgres://postgres@127.0.0.1:1/myna",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open the PostgreSQL database")
            && stderr.contains("PostgreSQL at 127.0.0.1:1 did not accept a connection"),
        "{stderr}"
    );
}

#[test]
fn sigterm_keeps_the_weights_served_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    let env = [
        ("MYNA_ADMIN_EMAIL", "admin@example.com"),
        ("MYNA_ADMIN_PASSWORD", "s3cret-admin"),
    ];
    let mut server = Server::start(&db, &env);
    let owner = basic("admin@example.com", "s3cret-admin");
    let created = json_call(
        server.addr,
        "POST",
        "/v2/experiment",
        &owner,
        r#"{"name": "served", "visibility": "published", "variants": {"a": {}, "b": {}}}"#,
    );
    let experiment = created["uuid"].as_str().unwrap().to_owned();
    let key = json_call(server.addr, "POST", "/v2/apikey", &owner, "");
    let api_key = format!("ApiKey {}", key["uuid"].as_str().unwrap());
    // Pages read it (both variants served at 0.5), but only `a` is shown.
    for _ in 0..20 {
        json_call(
            server.addr,
            "GET",
            &format!("/v2/experiment/{experiment}"),
            &api_key,
            "",
        );
    }
    let views = vec![r#"{"typename": "view", "variant": "a"}"#; 20].join(",");
    json_call(
        server.addr,
        "POST",
        &format!("/v2/experiment/{experiment}/record"),
        &api_key,
        &format!(r#"{{"events": [{views}]}}"#),
    );
    // Well within the 60 s flush period: only the shutdown's flush keeps them.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(server.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    server.assert_stops_cleanly();

    let again = Server::start(&db, &env);
    let decision = json_call(
        again.addr,
        "GET",
        &format!("/v2/experiment/{experiment}/decision"),
        &owner,
        "",
    );
    let never = decision["health"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["typename"] == "variant-never-shown")
        .cloned()
        .unwrap_or_default();
    assert_eq!(never["status"], "failing", "{decision}");
    assert_eq!(never["data"]["variants"], serde_json::json!(["b"]));
}

#[test]
fn a_second_server_on_the_same_sqlite_file_is_refused() {
    // Each would answer counts from its own memory and never see the
    // other's: the second one must not start.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let env = [
        ("MYNA_ADMIN_EMAIL", "admin@example.com"),
        ("MYNA_ADMIN_PASSWORD", "s3cret-admin"),
    ];
    let mut first = Server::start(&db, &env);
    let second = |database: String| {
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--database", &database])
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > PATIENCE {
                child.kill().unwrap();
                panic!("a second server on {database} kept running");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // By its path, as a URL, and by other names: a symbolic and a hard link.
    let symlink = dir.path().join("symlink.db");
    let hardlink = dir.path().join("hardlink.db");
    std::os::unix::fs::symlink(&db, &symlink).unwrap();
    std::fs::hard_link(&db, &hardlink).unwrap();
    for database in [
        db.display().to_string(),
        format!("sqlite://{}", db.display()),
        symlink.display().to_string(),
        hardlink.display().to_string(),
    ] {
        let stderr = second(database);
        // Said once (logged, not also printed).
        assert_eq!(
            stderr.matches("another myna-server is serving").count(),
            1,
            "{stderr}"
        );
    }
    // The first one serves on; once it stops, the file is free again.
    let (status, _) = http(first.addr, "GET", "/healthz", "", "").unwrap();
    assert_eq!(status, 200);
    first.terminate();
    let mut again = Server::start(&db, &env);
    again.terminate();
}

/// A start on `database` that must be refused: its stderr, once checked
/// that it failed and left no file in the working directory.
fn refused_at_start(database: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--database", database])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success(), "{database}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{database}: {left:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A database file the server's user may write in a directory it may not
/// (so SQLite cannot create the log beside it) is refused with a message
/// naming the directory, not SQLite's "attempt to write a readonly
/// database". Needs root (to run the server as `nobody`) and `setpriv`.
#[test]
fn a_database_in_a_directory_the_user_cannot_write_is_named_as_such() {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() || !std::path::Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    // A database made elsewhere, then copied (one file, no -wal or -shm
    // beside it) into a directory nobody may read but not write, the copy
    // nobody's.
    let made = tempfile::tempdir().unwrap();
    let source = made.path().join("myna.db");
    let create = Command::new(BIN)
        .args([
            "account",
            "create",
            "--email",
            "a@example.com",
            "--password",
        ])
        .arg("a fine password")
        .arg("--database")
        .arg(&source)
        .output()
        .unwrap();
    assert!(create.status.success(), "{create:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.path().join("copy.db");
    let copy = Command::new(BIN)
        .arg("backup")
        .arg(&db)
        .arg("--database")
        .arg(&source)
        .output()
        .unwrap();
    assert!(copy.status.success(), "{copy:?}");
    let nobody = nix::unistd::Uid::from_raw(65534);
    nix::unistd::chown(&db, Some(nobody), None).unwrap();
    let mut server = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["--listen", "127.0.0.1:0", "--database"])
        .arg(&db)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Refused at once; a server that started anyway is stopped, not awaited.
    let started = Instant::now();
    while server.try_wait().unwrap().is_none() {
        if started.elapsed() > PATIENCE {
            let _ = server.kill();
            panic!("the server started in a directory it cannot write");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = server.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("directory is not writable"), "{stderr}");
    // A new database there: the directory is named too.
    let output = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["--listen", "127.0.0.1:0", "--database"])
        .arg(dir.path().join("new.db"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "may not create files in its directory {}",
            dir.path().display()
        )),
        "{stderr}"
    );
}

#[test]
fn an_in_memory_database_is_refused_clearly_leaving_no_file() {
    for database in [
        "sqlite::memory:",
        "file::memory:",
        ":memory:",
        "sqlite://x.db?mode=memory",
    ] {
        let stderr = refused_at_start(database);
        assert!(stderr.contains("is an in-memory database"), "{stderr}");
    }
}

/// PostgreSQL's keyword/value form is refused, not taken as the name of a
/// new SQLite file in the working directory; libpq's list of hosts is not
/// read either, and the message says how to fail over instead.
#[test]
fn a_postgresql_keyword_string_or_host_list_is_refused_not_made_a_file() {
    for database in [
        "host=127.0.0.1 port=5432 user=postgres dbname=myna",
        "dbname=myna",
    ] {
        let stderr = refused_at_start(database);
        assert!(stderr.contains("give a postgres:// URL"), "{stderr}");
    }
    let stderr = refused_at_start("postgres://u@127.0.0.1:5432,127.0.0.1:5433/myna");
    assert!(stderr.contains("one host only"), "{stderr}");
}

#[test]
fn account_create_refuses_an_email_basic_credentials_cannot_carry() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    for (email, says) in [
        ("c:d@example.com", "may not contain `:`"),
        ("bad email", "white space"),
        ("not-an-email", "one `@`"),
    ] {
        let output = Command::new(BIN)
            .args(["account", "create", "--email", email, "--password"])
            .arg("a fine password")
            .arg("--database")
            .arg(&db)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{email} was accepted");
        assert!(stderr.contains(says), "{email}: {stderr}");
    }
}

/// Runs `myna-server account password` on `db`; its success and output.
fn set_password(db: &std::path::Path, email: &str, password: Option<&str>) -> (bool, String) {
    let mut args = vec!["account", "password", "--email", email];
    if let Some(password) = password {
        args.extend(["--password", password]);
    }
    cli(db, &args)
}

#[test]
fn a_lost_password_is_set_anew_from_the_command_line_and_its_sessions_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    // No database there: refused, not created.
    let (ok, said) = set_password(&db, "admin@example.com", None);
    assert!(!ok && said.contains("there is no database"), "{said}");
    assert!(!db.exists());

    let env = [
        ("MYNA_ADMIN_EMAIL", "admin@example.com"),
        ("MYNA_ADMIN_PASSWORD", "the first password"),
    ];
    let server = Server::start(&db, &env);
    let old = basic("admin@example.com", "the first password");
    let (status, token) = http(server.addr, "POST", "/v2/user/login", &old, "").unwrap();
    assert_eq!(status, 200, "{token}");
    let token: serde_json::Value = serde_json::from_str(&token).unwrap();
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    assert_eq!(
        http(server.addr, "GET", "/v2/experiment", &bearer, "")
            .unwrap()
            .0,
        200
    );

    // While the server runs: an unknown account, a weak password, then a
    // generated one, printed (the email as typed, any case).
    let (ok, said) = set_password(&db, "nobody@example.com", Some("a fine password"));
    assert!(
        !ok && said.contains("no account nobody@example.com"),
        "{said}"
    );
    let (ok, said) = set_password(&db, "admin@example.com", Some("short"));
    assert!(!ok && said.contains("password"), "{said}");
    // A password to generate with standard output discarded would be lost:
    // refused, nothing changed.
    let discarded = Command::new(BIN)
        .args([
            "account",
            "password",
            "--email",
            "admin@example.com",
            "--database",
        ])
        .arg(&db)
        .env_remove("MYNA_PASSWORD")
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&discarded.stderr);
    assert!(!discarded.status.success(), "{said}");
    assert!(said.contains("standard output is discarded"), "{said}");
    assert_eq!(
        http(server.addr, "GET", "/v2/experiment", &bearer, "")
            .unwrap()
            .0,
        200
    );
    let (ok, said) = set_password(&db, "Admin@Example.com", None);
    assert!(ok, "{said}");
    let password = said
        .split_whitespace()
        .skip_while(|w| *w != "to")
        .nth(1)
        .unwrap()
        .trim_end_matches(';');
    assert_eq!(password.len(), 32, "{said}");
    // A line that cannot be printed is an error saying what was done, not
    // a panic.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let unprinted = Command::new(BIN)
        .args([
            "account",
            "password",
            "--email",
            "admin@example.com",
            "--password",
            password,
        ])
        .arg("--database")
        .arg(&db)
        .stdout(full)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&unprinted.stderr);
    assert_eq!(unprinted.status.code(), Some(1), "{said}");
    assert!(
        said.contains("ended its sessions, but this could not be printed"),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");

    // The new password works, the token issued before is refused at once
    // (the old password within a minute: README).
    let new = basic("admin@example.com", password);
    assert_eq!(
        http(server.addr, "POST", "/v2/user/login", &new, "")
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        http(server.addr, "GET", "/v2/experiment", &bearer, "")
            .unwrap()
            .0,
        401
    );
    drop(server);
    let server = Server::start(&db, &[]);
    assert_eq!(
        http(server.addr, "POST", "/v2/user/login", &old, "")
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        http(server.addr, "POST", "/v2/user/login", &new, "")
            .unwrap()
            .0,
        200
    );
}

#[test]
fn the_first_start_refuses_an_admin_email_that_is_no_email() {
    let dir = tempfile::tempdir().unwrap();
    for (email, says) in [
        ("not an email", "white space"),
        ("c:d@example.com", "may not contain `:`"),
    ] {
        let stderr = first_start_refused(dir.path(), email, "a fine password");
        assert!(
            stderr.contains("cannot create the first account") && stderr.contains(says),
            "{email}: {stderr}"
        );
    }
}

/// A log that can no longer be written (its pipe's reader gone, or a full
/// disk) loses lines, never the server: it keeps answering and a SIGTERM
/// still ends it cleanly.
#[test]
fn a_log_that_cannot_be_written_stops_nothing() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--access-log",
            "--database",
        ])
        .arg(dir.path().join("myna.db"))
        .env("MYNA_ADMIN_EMAIL", "admin@example.com")
        .env("MYNA_ADMIN_PASSWORD", "s3cret-admin")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn myna-server");
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(log.read_line(&mut line).unwrap() > 0, "no address logged");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || ".:".contains(c)))
                .unwrap_or(rest.len());
            break rest[..end].parse().unwrap();
        }
    };
    // The log's reader goes away: every line from now on fails (EPIPE).
    drop(log);
    for _ in 0..20 {
        let (status, _) = http(addr, "GET", "/healthz", "", "").unwrap();
        assert_eq!(status, 200);
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let exit = exit_of(&mut child, "no exit after SIGTERM");
    assert!(exit.success(), "{exit:?}");
}

/// A first start whose generated password cannot be read (standard output
/// full, /dev/null, or closed: the system gives the process /dev/null)
/// says so and how to get in, and stops: no panic.
#[test]
fn a_first_password_that_cannot_be_printed_is_a_clear_refusal() {
    for (device, says) in [
        ("/dev/full", "could not be printed"),
        ("/dev/null", "standard output is discarded"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::fs::OpenOptions::new()
            .write(true)
            .open(device)
            .unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--database"])
            .arg(dir.path().join("myna.db"))
            .env_remove("MYNA_ADMIN_EMAIL")
            .env_remove("MYNA_ADMIN_PASSWORD")
            .stdout(out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{device}: {stderr}");
        assert!(stderr.contains(says), "{device}: {stderr}");
        assert!(
            stderr.contains("myna-server account password --email admin@localhost"),
            "{device}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{device}: {stderr}");
    }
}

/// A port already taken is found before the database is touched: no
/// database made, no first account (its password printed) for nothing.
#[test]
fn a_taken_port_is_refused_before_the_database_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let db = dir.path().join("myna.db");
    let out = Command::new(BIN)
        .args(["serve", "--listen", &port, "--database"])
        .arg(&db)
        .env_remove("MYNA_ADMIN_EMAIL")
        .env_remove("MYNA_ADMIN_PASSWORD")
        .env_remove("MYNA_METRICS_LISTEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {port}")),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!db.exists(), "the database was made");
}

/// A second SIGINT while the first waits for a stalled request exits at once
/// (Ctrl-C twice), with 130, not after the request's 30 s.
#[test]
fn a_second_sigint_exits_at_once() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, owner) = admin_server(&dir.path().join("myna.db"));
    let (experiment, key) = published_with_key(server.addr, &owner);
    // A record whose body stalls half way: the first signal waits for it.
    let mut stalled = std::net::TcpStream::connect(server.addr).unwrap();
    let head = format!(
        "POST /v2/experiment/{experiment}/record?apikey={key} HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"events\":["
    );
    stalled.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    server.wait_for_log("shutting down");
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let exit = exit_of(&mut server.child, "no exit after two SIGINTs");
    assert_eq!(exit.code(), Some(130), "{exit:?}");
    drop(stalled);
}

/// The database file deleted or replaced under a running server: nothing is
/// acknowledged into the old file (lost at the next start) and `/healthz`
/// says so; the same file moved back serves again.
#[test]
fn a_database_file_deleted_or_replaced_under_the_server_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let (server, owner) = admin_server(&db);
    let (experiment, key) = published_with_key(server.addr, &owner);
    let path = format!("/v2/experiment/{experiment}/record");
    let auth = format!("ApiKey {key}");
    let record = || {
        let body = format!(
            r#"{{"batch":"{}","events":[{{"typename":"view","variant":"a"}}]}}"#,
            uuid::Uuid::new_v4()
        );
        http(server.addr, "POST", &path, &auth, &body).unwrap()
    };
    // `/healthz` reuses a probe that succeeded for a moment: asked until it
    // answers as expected.
    let health = |expected: u16| {
        let started = Instant::now();
        loop {
            let status = http(server.addr, "GET", "/healthz", "", "").unwrap().0;
            if status == expected || started.elapsed() > PATIENCE {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(record().0, 200);
    assert_eq!(health(200), 200);

    let aside = dir.path().join("aside.db");
    std::fs::rename(&db, &aside).unwrap();
    let (status, body) = record();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("unavailable"), "{body}");
    assert_eq!(health(503), 503);
    // Another file at the path (a copy, as a restore under it would be).
    std::fs::copy(&aside, &db).unwrap();
    assert_eq!(record().0, 503);
    assert_eq!(health(503), 503);
    let (status, _) = http(
        server.addr,
        "POST",
        "/v2/experiment",
        &owner,
        r#"{"name": "lost", "variants": {"a": {}}}"#,
    )
    .unwrap();
    assert_eq!(
        status, 503,
        "a definition is not written to the old file either"
    );
    // The file itself back: it is the one the server has open.
    std::fs::rename(&aside, &db).unwrap();
    assert_eq!(record().0, 200);
    assert_eq!(health(200), 200);
    // Its write-ahead log deleted: commits would go to a log no later
    // start reads (a kill -9 then lost everything acknowledged since).
    let wal = dir.path().join("myna.db-wal");
    assert!(wal.exists());
    std::fs::remove_file(&wal).unwrap();
    assert_eq!(record().0, 503);
    assert_eq!(health(503), 503);
}

/// A backup moved over the database of a running server (not the way to
/// restore, but done): at its stop the server sets its own write-ahead log
/// aside, so the next start opens the backup as it is, not "malformed".
#[test]
fn a_backup_moved_over_a_running_database_starts_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let (mut server, owner) = admin_server(&db);
    let kept = json_call(
        server.addr,
        "POST",
        "/v2/experiment",
        &owner,
        r#"{"name": "kept", "variants": {"a": {}, "b": {}}}"#,
    );
    let kept = kept["uuid"].as_str().unwrap().to_owned();
    let copy = dir.path().join("copy.db");
    let backup = Command::new(BIN)
        .arg("backup")
        .arg(&copy)
        .arg("--database")
        .arg(&db)
        .output()
        .unwrap();
    assert!(backup.status.success(), "{backup:?}");
    // Written after the backup: in the log beside the file, not in the copy.
    let mut later = String::new();
    for n in 0..50 {
        let body = format!(r#"{{"name": "later {n}", "variants": {{"a": {{}}}}}}"#);
        let made = json_call(server.addr, "POST", "/v2/experiment", &owner, &body);
        later = made["uuid"].as_str().unwrap().to_owned();
    }
    std::fs::rename(&copy, &db).unwrap();
    server.terminate();
    assert!(dir.path().join("myna.db-wal.of-replaced-file").exists());
    let again = Server::start(&db, &ADMIN);
    let read = |uuid: &str| {
        http(
            again.addr,
            "GET",
            &format!("/v2/experiment/{uuid}"),
            &owner,
            "",
        )
        .unwrap()
        .0
    };
    assert_eq!(read(&kept), 200);
    assert_eq!(read(&later), 404);
}

/// The first account of [`admin_server`]'s servers.
const ADMIN: [(&str, &str); 2] = [
    ("MYNA_ADMIN_EMAIL", "admin@example.com"),
    ("MYNA_ADMIN_PASSWORD", "s3cret-admin"),
];

/// A server on `db` whose first account is [`ADMIN`]; its Basic credentials.
fn admin_server(db: &std::path::Path) -> (Server, String) {
    let server = Server::start(db, &ADMIN);
    (server, basic("admin@example.com", "s3cret-admin"))
}

/// A SIGTERM the moment the port takes connections (the database still
/// opening) stops the server as at any other time: exit 0, not the signal's
/// default action.
#[test]
fn sigterm_while_starting_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database",
        ])
        .arg(dir.path().join("myna.db"))
        .env_remove("MYNA_DATABASE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < PATIENCE, "the port never opened");
        std::thread::sleep(Duration::from_millis(1));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = exit_of(&mut child, "no exit after SIGTERM");
    assert!(status.success(), "{status}");
}

/// A database an earlier version created readable by every local user
/// (644) still opens, with a warning saying how to make it private (new
/// ones are created 0600).
#[test]
fn a_database_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut server = Server::start(&db, &[]);
    server.wait_for_log("can be read by users other than its owner (mode 644)");
    server.terminate();
    let fresh = dir.path().join("fresh.db");
    let mut server = Server::start(&fresh, &[]);
    let mode = fresh.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    server.terminate();
}

/// `myna-server` with `args` on `db`; success and what it printed.
fn cli(db: &std::path::Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(BIN)
        .args(args)
        .arg("--database")
        .arg(db)
        .env_remove("MYNA_PASSWORD")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A provider offboards a customer: `account list` shows what each account
/// holds (a server running or not); `account delete` says what it would
/// delete without `--yes`, is refused while a server runs on the SQLite
/// file, then deletes the account with its experiments, keys and sessions,
/// leaving the other accounts as they were.
#[test]
fn an_account_is_listed_and_deleted_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let (server, admin) = admin_server(&db);
    let (ok, said) = cli(
        &db,
        &[
            "account",
            "create",
            "--email",
            "Gone@Example.com",
            "--password",
            "leaving-soon-9",
        ],
    );
    assert!(ok, "{said}");
    let gone = basic("gone@example.com", "leaving-soon-9");
    let (experiment, key) = published_with_key(server.addr, &gone);
    let (kept, kept_key) = published_with_key(server.addr, &admin);
    let read = |server: &Server, experiment: &str, key: &str| {
        let path = format!("/v2/experiment/{experiment}");
        http(server.addr, "GET", &path, &format!("ApiKey {key}"), "")
            .unwrap()
            .0
    };
    assert_eq!(read(&server, &experiment, &key), 200);

    let (ok, listed) = cli(&db, &["account", "list"]);
    assert!(ok, "{listed}");
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines[0], "email\tcreated\texperiments\tapi_keys\twebhooks");
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(lines[1].starts_with("admin@example.com\t20"), "{listed}");
    assert!(lines[1].ends_with("\t1\t1\t0"), "{listed}");
    assert!(lines[2].starts_with("gone@example.com\t"), "{listed}");
    assert!(lines[2].ends_with("\t1\t1\t0"), "{listed}");

    let delete = ["account", "delete", "--email", "gone@example.com"];
    let (ok, said) = cli(&db, &delete);
    assert!(
        !ok && said.contains("would delete account gone@example.com with 1 experiments"),
        "{said}"
    );
    assert!(said.contains("--yes"), "{said}");
    let (ok, said) = cli(&db, &[&delete[..], &["--yes"]].concat());
    assert!(!ok && said.contains("a myna-server is serving"), "{said}");
    assert_eq!(read(&server, &experiment, &key), 200, "nothing was deleted");
    drop(server);

    let (ok, said) = cli(
        &db,
        &[
            "account",
            "delete",
            "--email",
            "nobody@example.com",
            "--yes",
        ],
    );
    assert!(
        !ok && said.contains("no account nobody@example.com"),
        "{said}"
    );
    let (ok, said) = cli(&db, &[&delete[..], &["--yes"]].concat());
    assert!(ok, "{said}");
    assert!(
        said.starts_with("Deleted account gone@example.com with 1 experiments"),
        "{said}"
    );
    let (_, listed) = cli(&db, &["account", "list"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");

    let server = Server::start(&db, &[]);
    assert_eq!(
        http(server.addr, "POST", "/v2/user/login", &gone, "")
            .unwrap()
            .0,
        401
    );
    assert_eq!(read(&server, &experiment, &key), 401, "its key is gone");
    // The other account's experiment and key are as they were (that the
    // deleted one's rows are gone is the storage suite's to check).
    assert_eq!(read(&server, &kept, &kept_key), 200);
}

/// `MYNA_RECORD_LIMIT` (`--record-limit`) reaches the running server (and
/// its start says so): an address past its events a minute gets a 429
/// `rate-limited` with `Retry-After`, the owner's own record does not.
#[test]
fn the_record_limit_holds_back_an_address_with_a_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let env = [ADMIN.as_slice(), &[("MYNA_RECORD_LIMIT", "20")]].concat();
    // Below the SDK's default batch size: refused before anything starts.
    let (started, said) = cli(
        &dir.path().join("low.db"),
        &["serve", "--listen", "127.0.0.1:0", "--record-limit", "19"],
    );
    assert!(!started && said.contains("--record-limit"), "{said}");
    assert!(!dir.path().join("low.db").exists());
    let server = Server::start(&dir.path().join("myna.db"), &env);
    server.wait_for_log("record limit: 20 events a minute per client address");
    let owner = basic("admin@example.com", "s3cret-admin");
    let (experiment, key) = published_with_key(server.addr, &owner);
    let path = format!("/v2/experiment/{experiment}/record");
    let events =
        |n| json!({"events": vec![json!({"typename": "view", "variant": "a"}); n]}).to_string();
    let key = format!("ApiKey {key}");
    assert_eq!(
        http(server.addr, "POST", &path, &key, &events(20))
            .unwrap()
            .0,
        200
    );
    let (status, body) = http(server.addr, "POST", &path, &key, &events(1)).unwrap();
    assert_eq!(status, 429, "{body}");
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["messages"][0]["typename"], "rate-limited");
    assert_eq!(
        problem["messages"][0]["data"]["retryAfter"], 3,
        "one event at 20 a minute"
    );
    assert_eq!(
        http(server.addr, "POST", &path, &owner, &events(3))
            .unwrap()
            .0,
        200
    );
    assert_eq!(counts(server.addr, &owner, &experiment).0, 23);
}
