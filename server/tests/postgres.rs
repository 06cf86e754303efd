//! Several real `myna-server` processes on one PostgreSQL database, as a site
//! that outgrew one machine runs them: counts stay exact through concurrent
//! load, batch ids sent to two instances and a `kill -9`; changes made through
//! one instance reach the others within a second; and PostgreSQL stopping and
//! restarting under load gives 503s, then full service, losing nothing; an
//! instance started before PostgreSQL waits for it.
//!
//! Each test gets a fresh database on the server `MYNA_TEST_POSTGRES` names
//! (default this machine's), or, for the restart test, a private cluster
//! (initdb, pg_ctl) so the shared one is never stopped.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

mod common;
use common::postgres::{TestDatabase, admin_url};
use common::{Batch, PATIENCE, Server, batch, counts, http, json_call, totals};

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "s3cret-admin";
const ENV: [(&str, &str); 2] = [
    ("MYNA_ADMIN_EMAIL", EMAIL),
    ("MYNA_ADMIN_PASSWORD", PASSWORD),
];
/// How soon a change made through one instance must be seen by the others.
const CONSISTENT: Duration = Duration::from_secs(1);

/// A Bearer token for the admin (tokens live in the database: one login
/// works on every instance, and costs one password hash, not one a call).
fn login(addr: SocketAddr) -> String {
    let basic = format!("Basic {}", STANDARD.encode(format!("{EMAIL}:{PASSWORD}")));
    let token = json_call(addr, "POST", "/v2/user/login", &basic, "");
    format!("Bearer {}", token["token"].as_str().unwrap())
}

/// Creates a published experiment (variants a, b) and an API key.
fn setup(addr: SocketAddr, owner: &str) -> (String, String) {
    let created = json_call(
        addr,
        "POST",
        "/v2/experiment",
        owner,
        r#"{"name": "load", "visibility": "published", "variants": {"a": {}, "b": {}}}"#,
    );
    let key = json_call(addr, "POST", "/v2/apikey", owner, "");
    (
        created["uuid"].as_str().unwrap().to_owned(),
        format!("ApiKey {}", key["uuid"].as_str().unwrap()),
    )
}

/// Polls `check` until it holds; panics after `limit`; how long it took.
fn within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check() {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How deliveries went.
#[derive(Debug, Default)]
struct Tally {
    /// Requests answered 503 (retried).
    unavailable: AtomicUsize,
    /// Requests that got no answer (the instance died): sent elsewhere.
    failed_over: AtomicUsize,
    /// One 503 body, to check its form.
    problem: Mutex<Option<String>>,
}

/// Sends a batch as the SDK does until one instance acknowledges it: the
/// same body (batch id) again after a 503, or to the next instance when
/// this one does not answer.
fn deliver(addrs: &[SocketAddr], mut at: usize, path: &str, key: &str, body: &str, tally: &Tally) {
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < PATIENCE, "never acknowledged: {body}");
        match http(addrs[at], "POST", path, key, body) {
            Ok((200, _)) => return,
            Ok((503, problem)) => {
                tally.unavailable.fetch_add(1, Ordering::Relaxed);
                tally.problem.lock().unwrap().get_or_insert(problem);
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok((status, answer)) => panic!("{status} from {}: {answer}", addrs[at]),
            Err(_) => {
                tally.failed_over.fetch_add(1, Ordering::Relaxed);
                at = (at + 1) % addrs.len();
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Load: `clients` threads, client `i` at instance `i % addrs.len()`; every
/// fourth batch also goes to the next instance at the same moment. Every
/// batch is delivered until acknowledged; all of them are returned.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<Batch>>>,
    tally: Arc<Tally>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addrs: Vec<SocketAddr>, clients: u64, path: String, key: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent: Arc<Mutex<Vec<Batch>>> = Arc::default();
        let tally: Arc<Tally> = Arc::default();
        let clients = (0..clients)
            .map(|client| {
                let (stop, sent, tally) = (stop.clone(), sent.clone(), tally.clone());
                let (addrs, path, key) = (addrs.clone(), path.clone(), key.clone());
                std::thread::spawn(move || {
                    let home = client as usize % addrs.len();
                    for n in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let batch = batch(client * 1_000_000 + n);
                        let twice = addrs.len() > 1 && n % 4 == 0;
                        let second = twice.then(|| {
                            let (addrs, path, key) = (addrs.clone(), path.clone(), key.clone());
                            let (body, tally) = (batch.body.clone(), tally.clone());
                            let other = (home + 1) % addrs.len();
                            std::thread::spawn(move || {
                                deliver(&addrs, other, &path, &key, &body, &tally)
                            })
                        });
                        deliver(&addrs, home, &path, &key, &batch.body, &tally);
                        if let Some(second) = second {
                            second.join().unwrap();
                        }
                        sent.lock().unwrap().push(batch);
                    }
                })
            })
            .collect();
        Load {
            stop,
            sent,
            tally,
            clients,
        }
    }

    fn acknowledged(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    /// Waits until `n` more batches are acknowledged.
    fn wait_for(&self, n: usize) {
        let target = self.acknowledged() + n;
        within(PATIENCE, "the load goes on", || {
            self.acknowledged() >= target
        });
    }

    fn finish(self) -> (Vec<Batch>, Arc<Tally>) {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.join().unwrap();
        }
        let sent = self.sent.lock().unwrap().clone();
        (sent, self.tally)
    }
}

#[test]
fn three_instances_count_exactly_through_duplicates_and_a_kill_9() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    // Started at once on the empty database: one of them creates the admin.
    let mut servers: Vec<Server> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| Server::start(&database.url, &ENV)))
            .collect();
        starts.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let owner = login(addrs[0]);
    let (experiment, key) = setup(addrs[0], &owner);
    let read = format!("/v2/experiment/{experiment}");
    for &addr in &addrs[1..] {
        within(CONSISTENT, "the others see the new experiment", || {
            http(addr, "GET", &read, &key, "").is_ok_and(|(status, _)| status == 200)
        });
    }

    let path = format!("/v2/experiment/{experiment}/record");
    let load = Load::start(addrs.clone(), 9, path, key);
    load.wait_for(300);
    servers[2].kill9();
    load.wait_for(300);
    let (sent, tally) = load.finish();
    let failed_over = tally.failed_over.load(Ordering::Relaxed);
    eprintln!(
        "{} batches acknowledged, a quarter of them sent to two instances; \
         {failed_over} sends moved on from the killed instance",
        sent.len()
    );
    assert!(failed_over > 0, "the kill happened under load");

    // Every batch was acknowledged (some twice): each counts exactly once,
    // and both survivors say so within a second.
    let expected = totals(&sent);
    for &addr in &addrs[..2] {
        let mut seen = (0, 0);
        let waited = within(CONSISTENT + Duration::from_secs(2), "exact counts", || {
            seen = counts(addr, &owner, &experiment);
            seen == expected
        });
        assert_eq!(seen, expected);
        eprintln!("{addr}: exact counts after {waited:?}");
    }
}

#[test]
fn changes_through_one_instance_reach_the_other_within_a_second() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let one = Server::start(&database.url, &ENV);
    let two = Server::start(&database.url, &ENV);
    let (a, b) = (one.addr, two.addr);
    let owner = login(a);
    let (experiment, key) = setup(a, &owner);
    let read = format!("/v2/experiment/{experiment}");
    let form = |addr: SocketAddr| -> Option<Value> {
        let (status, body) = http(addr, "GET", &read, &owner, "").unwrap();
        (status == 200).then(|| serde_json::from_str(&body).unwrap())
    };
    let mut report = Vec::new();

    // Created through one: the other reads it.
    report.push(("create", within(CONSISTENT, "create", || form(b).is_some())));
    // Counts recorded through one: the other's read form has them.
    let body = json!({"events": [
        {"typename": "view", "variant": "a"}, {"typename": "view", "variant": "a"},
        {"typename": "reward", "variant": "a"}, {"typename": "reward", "variant": "a"}]});
    json_call(
        a,
        "POST",
        &format!("{read}/record"),
        &key,
        &body.to_string(),
    );
    report.push((
        "counts",
        within(CONSISTENT, "counts", || {
            form(b).is_some_and(|f| f["variants"]["a"]["views"] == 2)
        }),
    ));
    // The weights there come from those counts: the rewarded variant leads.
    let leads = || {
        let (_, body) = http(b, "GET", &read, &key, "").unwrap();
        let summary: Value = serde_json::from_str(&body).unwrap();
        summary["variants"]["a"]["weight"].as_f64().unwrap_or(0.0) > 0.5
    };
    report.push(("weights", within(CONSISTENT, "weights", leads)));
    // Updated through the other: the first has the new definition.
    json_call(
        b,
        "PUT",
        &read,
        &owner,
        r#"{"name": "renamed", "variantUpdates": {"c": {}}}"#,
    );
    report.push((
        "update",
        within(CONSISTENT, "update", || {
            form(a).is_some_and(|f| f["name"] == "renamed" && f["variants"]["c"].is_object())
        }),
    ));
    // Reset through the first: the other reads zeros.
    json_call(a, "POST", &format!("{read}/reset"), &owner, "");
    report.push((
        "reset",
        within(CONSISTENT, "reset", || {
            form(b).is_some_and(|f| f["variants"]["a"]["views"] == 0)
        }),
    ));
    // An API key deleted through the other stops working on the first.
    let uuid = key.trim_start_matches("ApiKey ");
    let (status, _) = http(a, "GET", &read, &key, "").unwrap();
    assert_eq!(
        status, 200,
        "the first knows the key (and keeps it in memory)"
    );
    json_call(b, "DELETE", &format!("/v2/apikey/{uuid}"), &owner, "");
    report.push((
        "API key deleted",
        within(CONSISTENT, "API key deleted", || {
            http(a, "GET", &read, &key, "").is_ok_and(|(status, _)| status == 401)
        }),
    ));
    // Deleted through the other: gone from the first.
    json_call(b, "DELETE", &read, &owner, "");
    report.push(("delete", within(CONSISTENT, "delete", || form(a).is_none())));
    eprintln!("seen by the other instance after: {report:?}");
}

/// A private PostgreSQL cluster in a temporary directory, on a free port:
/// stopped and started by the test, never the machine's shared one.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Run the binaries as `postgres` (they refuse to run as root).
    as_postgres: bool,
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self.command(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// initdb in a fresh directory; fails loudly saying why it cannot.
    fn init() -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(Result::ok)
                    .map(|v| v.path().join("bin"))
                    .filter(|bin| bin.join("initdb").exists())
                    .max()
            })
            .unwrap_or_else(|| {
                panic!(
                    "\n*** The PostgreSQL restart test needs the server binaries \
                     (/usr/lib/postgresql/<version>/bin/initdb, Debian package postgresql); \
                     none found. Install them, or set MYNA_TEST_POSTGRES=skip (never in CI).\n"
                )
            });
        let uid = Command::new("id").arg("-u").output().unwrap();
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            let chown = Command::new("chown")
                .args(["postgres:", &dir.path().to_string_lossy()])
                .status()
                .unwrap();
            assert!(
                chown.success(),
                "cannot give the cluster directory to postgres"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster {
            bin,
            dir,
            port,
            as_postgres,
        };
        let data = cluster.path("data");
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB -c max_connections=50",
            self.port,
            self.dir.path().display()
        );
        let (data, log) = (self.path("data"), self.path("postgres.log"));
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "120", "start",
            ],
        );
    }

    /// Stops at once, as a crash would (no checkpoint; recovery at start).
    fn stop_immediately(&self) {
        let data = self.path("data");
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.path("data");
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

#[test]
fn postgres_stopping_under_load_answers_503_then_recovers_losing_nothing() {
    if admin_url().is_none() {
        return;
    }
    let cluster = Cluster::init();
    cluster.start();
    let mut server = Server::start(&cluster.url(), &ENV);
    let addr = server.addr;
    let owner = login(addr);
    let (experiment, key) = setup(addr, &owner);
    let path = format!("/v2/experiment/{experiment}/record");
    let load = Load::start(vec![addr], 4, path.clone(), key.clone());
    load.wait_for(200);

    cluster.stop_immediately();
    // Down: the health check and record calls answer 503 `unavailable`;
    // the server stays up.
    within(PATIENCE, "the health check says unavailable", || {
        http(addr, "GET", "/healthz", "", "").is_ok_and(|(status, _)| status == 503)
    });
    let body = json!({"events": [{"typename": "view", "variant": "a"}]}).to_string();
    let (status, answer) = http(addr, "POST", &path, &key, &body).unwrap();
    assert_eq!(status, 503, "{answer}");
    let problem: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(problem["typename"], "problem");
    assert_eq!(
        problem["messages"][0]["typename"], "unavailable",
        "{problem}"
    );
    assert!(
        !answer.contains("postgres") && !answer.contains("127.0.0.1"),
        "{answer}"
    );
    within(PATIENCE, "the clients see 503s", || {
        load.tally.unavailable.load(Ordering::Relaxed) >= 4
    });
    // Once the pool has seen the database refuse connections, calls are
    // answered at once, not each after the pool's 3 s wait for a connection.
    let quick_503 = || {
        let asked = Instant::now();
        let (status, _) = http(addr, "POST", &path, &key, &body).unwrap();
        status == 503 && asked.elapsed() < Duration::from_secs(1)
    };
    within(PATIENCE, "a quick 503", quick_503);
    assert!((0..5).all(|_| quick_503()), "every call answered at once");
    assert!(server.child.try_wait().unwrap().is_none(), "still running");

    // Back: full service by itself, and the load goes on.
    cluster.start();
    let down_for = within(PATIENCE, "the health check recovers", || {
        http(addr, "GET", "/healthz", "", "").is_ok_and(|(status, _)| status == 200)
    });
    load.wait_for(200);
    let (sent, tally) = load.finish();
    eprintln!(
        "{} batches acknowledged; {} answers were 503 while PostgreSQL was down; \
         healthy again {down_for:?} after its restart",
        sent.len(),
        tally.unavailable.load(Ordering::Relaxed)
    );
    let problem = tally.problem.lock().unwrap().clone().unwrap_or_default();
    assert!(problem.contains(r#""typename":"unavailable""#), "{problem}");

    // Every batch was finally acknowledged: each counted exactly once,
    // including those acknowledged just before the crash. Within a second:
    // a commit made durable as the database died, whose answer was lost,
    // was retried and answered "already counted", so this instance's cache
    // has its counts from the next refresh.
    let expected = totals(&sent);
    let mut seen = (0, 0);
    within(CONSISTENT, "exact counts", || {
        seen = counts(addr, &owner, &experiment);
        seen == expected
    });
    assert_eq!(seen, expected);
    // And so they stay after a restart of the server itself.
    server.kill9();
    let server = Server::start(&cluster.url(), &[]);
    assert_eq!(counts(server.addr, &owner, &experiment), totals(&sent));
}

#[test]
fn an_instance_started_before_postgres_waits_for_it_then_serves() {
    if admin_url().is_none() {
        return;
    }
    let cluster = Cluster::init();
    let server = std::thread::scope(|scope| {
        let starting = scope.spawn(|| Server::start(&cluster.url(), &ENV));
        // Long enough for a few refused attempts, logged as such.
        std::thread::sleep(Duration::from_secs(5));
        assert!(!starting.is_finished(), "it waits for the database");
        cluster.start();
        starting.join().unwrap()
    });
    let log = server.log.lock().unwrap().join("\n");
    assert!(
        log.contains(&format!(
            "PostgreSQL at 127.0.0.1:{} does not accept connections yet; waiting for it",
            cluster.port
        )),
        "{log}"
    );
    // Then full service: the first account, an experiment, counts.
    let owner = login(server.addr);
    let (experiment, key) = setup(server.addr, &owner);
    let body = json!({"events": [{"typename": "view", "variant": "a"}]}).to_string();
    json_call(
        server.addr,
        "POST",
        &format!("/v2/experiment/{experiment}/record"),
        &key,
        &body,
    );
    assert_eq!(counts(server.addr, &owner, &experiment), (1, 0));
    let (status, _) = http(server.addr, "GET", "/healthz", "", "").unwrap();
    assert_eq!(status, 200);
}

#[test]
fn a_database_that_does_not_exist_fails_at_once() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    // The server answers, so there is nothing to wait for (no
    // --database-wait: it would wait forever for a server that is down).
    let missing = database.url.replace("myna_t_", "myna_missing_");
    let started = Instant::now();
    let output = Command::new(common::BIN)
        .args(["--listen", "127.0.0.1:0", "--database", &missing])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open the PostgreSQL database") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
}
