//! The real binary, with its default (costly) argon2 parameters, under a
//! flood of wrong passwords: 600 concurrent clients behind one address
//! (as a proxy names it), guessing at several emails, while a site owner
//! elsewhere signs in with the right password. The flood is refused with
//! 429 and `Retry-After` before hashing, the owner gets in, and the
//! server's peak memory stays under 200 MB. Also: weak passwords are
//! refused by `account create` and for the first account.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{BIN, PATIENCE, Server, basic, first_start_refused};

/// Concurrent flooding clients.
const FLOOD: usize = 600;
/// The server's peak resident memory must stay under this.
const MAX_PEAK_BYTES: u64 = 200 * 1024 * 1024;

/// The status and `Retry-After` of each answer the flood got.
type Answers = Arc<Mutex<Vec<(u16, Option<u64>)>>>;

/// One request on a fresh connection from the client the proxy names
/// `address`: the status and the `Retry-After` header.
fn call(
    addr: SocketAddr,
    address: &str,
    authorization: &str,
) -> std::io::Result<(u16, Option<u64>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(30))?;
    stream.set_read_timeout(Some(PATIENCE))?;
    write!(
        stream,
        "GET /v2/experiment HTTP/1.1\r\nHost: myna\r\nConnection: close\r\n\
         X-Forwarded-For: {address}\r\nAuthorization: {authorization}\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {answer:?}")))?;
    let retry_after = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().parse().ok())?
    });
    Ok((status, retry_after))
}

/// The peak resident memory of process `pid` so far (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
fn a_flood_of_wrong_passwords_is_refused_in_bounded_memory_while_the_right_one_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    // A second account, created by the CLI before the server starts.
    let created = Command::new(BIN)
        .args([
            "account",
            "create",
            "--email",
            "site@example.com",
            "--password",
        ])
        .arg("site owner password")
        .arg("--database")
        .arg(&db)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let env = [
        ("MYNA_ADMIN_EMAIL", "admin@example.com"),
        ("MYNA_ADMIN_PASSWORD", "admin password"),
        ("MYNA_CLIENT_IP_HEADER", "X-Forwarded-For"),
    ];
    let server = Server::start(&db, &env);
    let (addr, pid) = (server.addr, server.child.id());
    let owner = basic("site@example.com", "site owner password");
    let before = peak_rss(pid);

    let statuses: Answers = Arc::default();
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(FLOOD + 1));
    let flood: Vec<_> = (0..FLOOD)
        .map(|n| {
            let (statuses, answered, stop, start) = (
                statuses.clone(),
                answered.clone(),
                stop.clone(),
                start.clone(),
            );
            std::thread::spawn(move || {
                // Several emails, known and not, from one address.
                let email = match n % 4 {
                    0 => "admin@example.com".to_owned(),
                    k => format!("nobody{k}@example.com"),
                };
                start.wait();
                let mut guess = 0;
                while !stop.load(Ordering::Relaxed) {
                    guess += 1;
                    let auth = basic(&email, &format!("guess {n} {guess}"));
                    // A connection the server could not take is no answer.
                    if let Ok(answer) = call(addr, "203.0.113.7", &auth) {
                        statuses.lock().unwrap().push(answer);
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    start.wait();
    // Once every flooding client had an answer, while they go on: the
    // owner, from another address, with the right password.
    let started = Instant::now();
    while answered.load(Ordering::Relaxed) < FLOOD {
        assert!(started.elapsed() < PATIENCE, "the flood got no answers");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut owner_status = None;
    while started.elapsed() < PATIENCE {
        if let Ok((status, _)) = call(addr, "198.51.100.1", &owner) {
            owner_status = Some(status);
            break;
        }
    }
    let during = answered.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for thread in flood {
        thread.join().unwrap();
    }
    let peak = peak_rss(pid);
    let statuses = statuses.lock().unwrap().clone();
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    let checked = statuses.iter().filter(|(s, _)| *s == 401).count();
    eprintln!(
        "peak RSS {} MB before, {} MB after; {} flood answers ({during} when the owner's came): \
         {} refused (429), {checked} checked (401)",
        before / 1_048_576,
        peak / 1_048_576,
        statuses.len(),
        refused.len()
    );
    assert_eq!(
        owner_status,
        Some(200),
        "the right password got in during the flood"
    );
    assert!(
        statuses.iter().all(|(s, _)| *s == 401 || *s == 429),
        "only refusals: {:?}",
        statuses
            .iter()
            .filter(|(s, _)| *s != 401 && *s != 429)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(refused.len() >= FLOOD / 2, "most were refused at once");
    assert!(
        refused
            .iter()
            .all(|(_, after)| after.is_some_and(|a| a >= 1))
    );
    assert!(checked < 40, "only a few guesses were hashed: {checked}");
    assert!(
        peak < MAX_PEAK_BYTES,
        "peak RSS {} MB (limit {} MB)",
        peak / 1_048_576,
        MAX_PEAK_BYTES / 1_048_576
    );
}

#[test]
fn account_create_refuses_a_weak_password() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    for (password, says) in [
        ("1", "at least 8 characters"),
        ("password123", "most common"),
        ("weak@example.com", "the email"),
    ] {
        let output = Command::new(BIN)
            .args([
                "account",
                "create",
                "--email",
                "weak@example.com",
                "--password",
                password,
            ])
            .arg("--database")
            .arg(&db)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{password} was accepted");
        assert!(stderr.contains(says), "{password}: {stderr}");
    }
}

#[test]
fn the_first_start_refuses_a_weak_admin_password() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = first_start_refused(dir.path(), "admin@example.com", "1");
    assert!(stderr.contains("at least 8 characters"), "{stderr}");
}
