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
use common::postgres::{HeldTransaction, TestDatabase, admin_url, execute, query_i64};
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

/// Creates a published experiment (variants a, b) and an API key: the
/// experiment's uuid and the key's `Authorization` value.
fn setup(addr: SocketAddr, owner: &str) -> (String, String) {
    let (experiment, key) = common::published_with_key(addr, owner);
    (experiment, format!("ApiKey {key}"))
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
        self.start_with("");
    }

    /// Starts it with `extra` server options (`-c name=value …`).
    fn start_with(&self, extra: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB -c max_connections=50 {extra}",
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

    /// Writes a server certificate for 127.0.0.1 signed by `ca`, and its
    /// key (the server's own, 0600, as PostgreSQL requires); the options
    /// that serve TLS with them.
    fn certificate_from(&self, ca: &rcgen::CertifiedIssuer<'_, rcgen::KeyPair>) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, ca).unwrap();
        let (cert_file, key_file) = (self.path("server.pem"), self.path("server.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        for file in [&cert_file, &key_file] {
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o600);
            std::fs::set_permissions(file, mode).unwrap();
            if self.as_postgres {
                let chown = Command::new("chown").args(["postgres:", file]).status();
                assert!(chown.unwrap().success());
            }
        }
        format!("-c ssl=on -c ssl_cert_file={cert_file} -c ssl_key_file={key_file}")
    }
}

/// Signs in at `addr`, sets up an experiment and an API key, and records
/// one view with them: the record path, the key and that view's body.
fn recording_one_view(addr: SocketAddr) -> (String, String, String) {
    let owner = login(addr);
    let (experiment, key) = setup(addr, &owner);
    let path = format!("/v2/experiment/{experiment}/record");
    let body = json!({"events": [{"typename": "view", "variant": "a"}]}).to_string();
    json_call(addr, "POST", &path, &key, &body);
    (path, key, body)
}

/// A certificate authority of the test's own.
fn certificate_authority() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
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

/// An instance started on a database that takes no writes (pointed at a
/// standby before its promotion): with the schema current it serves reads
/// and answers writes 503, as a running one does; with the schema behind
/// it waits for writes (`--database-wait`), then says why.
#[test]
fn an_instance_started_on_a_read_only_database() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let Some(fresh) = TestDatabase::create() else {
        return;
    };
    let (experiment, key) = {
        let first = Server::start(&database.url, &ENV);
        setup(first.addr, &login(first.addr))
    };
    let admin = admin_url().unwrap();
    for name in [&database.name, &fresh.name] {
        let sql = format!("ALTER DATABASE {name} SET default_transaction_read_only = on");
        execute(&admin, sql).unwrap();
    }
    let server = Server::start(&database.url, &ENV);
    let read = http(
        server.addr,
        "GET",
        &format!("/v2/experiment/{experiment}"),
        &key,
        "",
    );
    assert_eq!(read.unwrap().0, 200);
    let body =
        json!({"batch": uuid::Uuid::new_v4(), "events": [{"typename": "view", "variant": "a"}]});
    let path = format!("/v2/experiment/{experiment}/record");
    let (status, answer) = http(server.addr, "POST", &path, &key, &body.to_string()).unwrap();
    assert_eq!(status, 503, "{answer}");
    // Folds fail every second while reads work: said once, not as a pool
    // failing and working again at each fold.
    std::thread::sleep(Duration::from_secs(3));
    let log = server.log.lock().unwrap().clone();
    let said = |text: &str| log.iter().filter(|l| l.contains(text)).count();
    assert_eq!(said("takes no writes (a standby, or"), 1, "{log:#?}");
    assert_eq!(said("calls work again"), 0, "{log:#?}");
    let started = Instant::now();
    let output = Command::new(common::BIN)
        .args(["--listen", "127.0.0.1:0", "--database", &fresh.url])
        .args(["--database-wait", "3"])
        .envs(ENV)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("takes no writes") && stderr.contains("schema is older"),
        "{stderr}"
    );
    assert!(started.elapsed() >= Duration::from_secs(3), "it waited");
}

// ---- Several instances under load, faults: no deadlock, no hang, no starving.

/// A small deterministic generator (xorshift), one per client thread.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A batch with a unique id: a view of each of `variants` (in the order
/// given) at each of `times` (epoch milliseconds; none: now), and maybe a
/// reward; what it adds per variant.
fn variant_batch(
    variants: &[&str],
    times: &[u64],
    rewarded: Option<&str>,
) -> (String, Vec<(String, u64, u64)>) {
    let mut events: Vec<Value> = Vec::new();
    for v in variants {
        if times.is_empty() {
            events.push(json!({"typename": "view", "variant": v}));
        }
        for t in times {
            events.push(json!({"typename": "view", "variant": v, "timestamp": t}));
        }
    }
    if let Some(v) = rewarded {
        events.push(json!({"typename": "reward", "variant": v}));
    }
    let views = times.len().max(1) as u64;
    let adds = variants
        .iter()
        .map(|v| (v.to_string(), views, u64::from(rewarded == Some(v))))
        .collect();
    let body = json!({"batch": uuid::Uuid::new_v4(), "events": events}).to_string();
    (body, adds)
}

/// Views and rewards per variant as the instance at `addr` reads them.
fn variant_counts(addr: SocketAddr, owner: &str, experiment: &str) -> Vec<(String, u64, u64)> {
    let form = json_call(
        addr,
        "GET",
        &format!("/v2/experiment/{experiment}"),
        owner,
        "",
    );
    let mut counts: Vec<(String, u64, u64)> = form["variants"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, v)| {
            let reward = v["totalReward"].as_f64().unwrap();
            (id.clone(), v["views"].as_u64().unwrap(), reward as u64)
        })
        .collect();
    counts.sort();
    counts
}

/// The deadlocks PostgreSQL detected in `database` once every connection
/// to it has ended (a backend reports its statistics when it exits).
fn deadlocks(database: &TestDatabase) -> i64 {
    let admin = admin_url().unwrap();
    let gone = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'",
        database.name
    );
    within(PATIENCE, "the instances' connections end", || {
        query_i64(&admin, gone.clone()).unwrap() == 0
    });
    let sql = format!(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = '{}'",
        database.name
    );
    query_i64(&admin, sql).unwrap()
}

#[test]
fn three_instances_record_page_and_all_variant_batches_without_a_deadlock() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let servers: Vec<Server> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| Server::start(&database.url, &ENV)))
            .collect();
        starts.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let owner = login(addrs[0]);
    const VARIANTS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let definition = json!({
        "name": "fleet", "visibility": "published",
        // Settings of a couple of kilobytes (a page's copy, say): a few
        // variant rows fill a table page.
        "variants": VARIANTS.iter().map(|v| {
            (v.to_string(), json!({"settings": {"copy": v.repeat(1800)}}))
        }).collect::<serde_json::Map<_, _>>(),
    });
    let created = json_call(
        addrs[0],
        "POST",
        "/v2/experiment",
        &owner,
        &definition.to_string(),
    );
    let experiment = created["uuid"].as_str().unwrap().to_owned();
    let key = json_call(addrs[0], "POST", "/v2/apikey", &owner, "");
    let key = format!("ApiKey {}", key["uuid"].as_str().unwrap());
    let path = format!("/v2/experiment/{experiment}/record");
    for &addr in &addrs[1..] {
        within(CONSISTENT, "the others see the new experiment", || {
            http(addr, "GET", &path.replace("/record", ""), &key, "")
                .is_ok_and(|(status, _)| status == 200)
        });
    }

    // Page-like batches (one or two variants, as a page view and its
    // reward) and batches touching every variant in a shuffled order, from
    // clients spread over the three instances; every third batch is also
    // sent to the next instance at the same moment (a retry elsewhere).
    const CLIENTS: u64 = 24;
    const BATCHES: usize = 200;
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (addrs, path, key, tally) =
                (addrs.clone(), path.clone(), key.clone(), tally.clone());
            std::thread::spawn(move || {
                let mut dice = Dice(0x9e37_79b9_7f4a_7c15 ^ (client + 1));
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                let mut added: Vec<(String, u64, u64)> = Vec::new();
                let home = client as usize % addrs.len();
                for n in 0..BATCHES {
                    let mut variants: Vec<&str> = VARIANTS.to_vec();
                    for i in (1..variants.len()).rev() {
                        variants.swap(i, dice.below(i + 1));
                    }
                    // A page: one or two variants, now. Else every
                    // variant, in several of the last twelve hours.
                    let mut times = Vec::new();
                    if client % 3 == 0 {
                        variants.truncate(1 + dice.below(2));
                    } else {
                        for _ in 0..1 + dice.below(4) {
                            times.push(now_ms - 3_600_000 * dice.below(12) as u64);
                        }
                    }
                    let rewarded = (dice.below(3) == 0).then(|| variants[0]);
                    let (body, adds) = variant_batch(&variants, &times, rewarded);
                    let second = (n % 3 == 0).then(|| {
                        let (addrs, path, key, body, tally) = (
                            addrs.clone(),
                            path.clone(),
                            key.clone(),
                            body.clone(),
                            tally.clone(),
                        );
                        std::thread::spawn(move || {
                            deliver(&addrs, (home + 1) % addrs.len(), &path, &key, &body, &tally)
                        })
                    });
                    deliver(&addrs, home, &path, &key, &body, &tally);
                    if let Some(second) = second {
                        second.join().unwrap();
                    }
                    added.extend(adds);
                }
                added
            })
        })
        .collect();
    let mut expected: std::collections::BTreeMap<String, (u64, u64)> =
        VARIANTS.iter().map(|v| (v.to_string(), (0, 0))).collect();
    for client in clients {
        for (variant, views, rewards) in client.join().unwrap() {
            let entry = expected.get_mut(&variant).unwrap();
            entry.0 += views;
            entry.1 += rewards;
        }
    }
    let expected: Vec<(String, u64, u64)> = expected
        .into_iter()
        .map(|(v, (views, rewards))| (v, views, rewards))
        .collect();

    // Exact counts on every instance, each batch counted once.
    for &addr in &addrs {
        let mut seen = Vec::new();
        within(CONSISTENT + Duration::from_secs(2), "exact counts", || {
            seen = variant_counts(addr, &owner, &experiment);
            seen == expected
        });
        assert_eq!(seen, expected);
    }
    eprintln!(
        "{} batches acknowledged by three instances ({} answers were 503)",
        CLIENTS as usize * BATCHES,
        tally.unavailable.load(Ordering::Relaxed)
    );
    drop(servers);
    let deadlocks = deadlocks(&database);
    assert_eq!(deadlocks, 0, "PostgreSQL detected deadlocks");
}

/// Sends one request on another thread; its answer and how long it took,
/// or `None` if none came within `bound`.
fn timed_http(
    addr: SocketAddr,
    method: &'static str,
    path: &str,
    auth: &str,
    body: &str,
    bound: Duration,
) -> Option<(u16, Duration)> {
    let (path, auth, body) = (path.to_owned(), auth.to_owned(), body.to_owned());
    let (answer, answered) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let result = http(addr, method, &path, &auth, &body);
        let _ = answer.send(result.map(|(status, _)| status));
    });
    answered
        .recv_timeout(bound)
        .ok()
        .map(|status| (status.unwrap(), started.elapsed()))
}

/// A private cluster's processes stopped (SIGSTOP): the postmaster, then
/// every process it started. PostgreSQL does not answer, nor fail, nor
/// close a connection. Resumed (SIGCONT) when this drops.
struct Frozen {
    pids: Vec<i32>,
}

impl Frozen {
    fn of(cluster: &Cluster) -> Frozen {
        let pidfile =
            std::fs::read_to_string(cluster.dir.path().join("data/postmaster.pid")).unwrap();
        let postmaster: i32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
        let signal = |pid: i32, signal| {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        };
        signal(postmaster, nix::sys::signal::Signal::SIGSTOP);
        let children: Vec<i32> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    // pid (comm) state ppid …: the comm may hold spaces.
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                        == Some(postmaster)
                })
            })
            .collect();
        for &child in &children {
            signal(child, nix::sys::signal::Signal::SIGSTOP);
        }
        let mut pids = children;
        pids.push(postmaster);
        Frozen { pids }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for &pid in &self.pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
    }
}

/// How soon a record call must be answered while PostgreSQL does not
/// answer (its deadline is 5 s; a call may first wait for the one before).
const FROZEN_BOUND: Duration = Duration::from_secs(15);

#[test]
fn a_frozen_postgres_gets_record_calls_503_within_seconds_then_exact_counts() {
    if admin_url().is_none() {
        return;
    }
    let cluster = Cluster::init();
    cluster.start();
    let server = Server::start(&cluster.url(), &ENV);
    let addr = server.addr;
    let owner = login(addr);
    let (experiment, key) = setup(addr, &owner);
    let path = format!("/v2/experiment/{experiment}/record");
    let load = Load::start(vec![addr], 4, path.clone(), key.clone());
    load.wait_for(100);

    let frozen = Frozen::of(&cluster);
    let body = json!({"events": [{"typename": "view", "variant": "a"}]}).to_string();
    let mut took = Vec::new();
    for _ in 0..4 {
        let Some((status, elapsed)) = timed_http(addr, "POST", &path, &key, &body, FROZEN_BOUND)
        else {
            panic!("a record call hung for {FROZEN_BOUND:?} while PostgreSQL was frozen");
        };
        assert_eq!(status, 503, "the database is frozen");
        took.push(elapsed);
    }
    within(PATIENCE, "the clients see 503s", || {
        load.tally.unavailable.load(Ordering::Relaxed) >= 4
    });
    eprintln!("record calls while PostgreSQL was frozen answered 503 after {took:?}");
    assert!(
        took.last().unwrap() < &Duration::from_secs(1),
        "once PostgreSQL is known not to answer, calls are refused at once: {took:?}"
    );

    drop(frozen);
    load.wait_for(100);
    let (sent, _) = load.finish();
    let expected = totals(&sent);
    let mut seen = (0, 0);
    within(CONSISTENT + Duration::from_secs(2), "exact counts", || {
        seen = counts(addr, &owner, &experiment);
        seen == expected
    });
    assert_eq!(seen, expected);
}

#[test]
fn a_locked_tokens_table_leaves_api_key_records_answering() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let server = Server::start(&database.url, &ENV);
    let addr = server.addr;
    let owner = login(addr);
    let (experiment, key) = setup(addr, &owner);
    let read = format!("/v2/experiment/{experiment}");
    let path = format!("{read}/record");

    let lock = HeldTransaction::hold(&database.url, "LOCK TABLE tokens IN ACCESS EXCLUSIVE MODE");
    // Owner calls with a Bearer token pile up behind the lock.
    let stop = Arc::new(AtomicBool::new(false));
    let bearer_503 = Arc::new(AtomicUsize::new(0));
    let owners: Vec<_> = (0..24)
        .map(|_| {
            let (stop, bearer_503, read, owner) = (
                stop.clone(),
                bearer_503.clone(),
                read.clone(),
                owner.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match http(addr, "GET", &read, &owner, "") {
                        Ok((503, _)) => {
                            bearer_503.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((200, _)) => panic!("a Bearer call passed a locked tokens table"),
                        other => panic!("{other:?}"),
                    }
                }
            })
        })
        .collect();
    // Meanwhile, page loads with the API key record (longer than any
    // pool's wait, lock wait and deadline together): every one answers 200.
    let started = Instant::now();
    let mut recorded = Vec::new();
    while started.elapsed() < Duration::from_secs(12) || recorded.len() < 20 {
        let batch = batch(recorded.len() as u64);
        let (status, answer) = http(addr, "POST", &path, &key, &batch.body).unwrap();
        assert_eq!(
            status, 200,
            "an API key record call while tokens are locked: {answer}"
        );
        recorded.push(batch);
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for owner in owners {
        owner.join().unwrap();
    }
    assert!(
        bearer_503.load(Ordering::Relaxed) > 0,
        "Bearer calls answered 503 within their deadline, not hanging"
    );
    drop(lock);
    eprintln!(
        "{} API key record calls answered 200 while {} Bearer calls answered 503",
        recorded.len(),
        bearer_503.load(Ordering::Relaxed)
    );
    // The lock gone, Bearer calls work again; the counts are exact.
    within(PATIENCE, "Bearer calls work again", || {
        http(addr, "GET", &read, &owner, "").is_ok_and(|(status, _)| status == 200)
    });
    assert_eq!(counts(addr, &owner, &experiment), totals(&recorded));
}

#[test]
fn deleting_a_big_experiment_purges_its_batch_ids_while_records_keep_flowing() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let one = Server::start(&database.url, &ENV);
    let two = Server::start(&database.url, &ENV);
    let (a, b) = (one.addr, two.addr);
    let owner = login(a);
    let (big, key) = setup(a, &owner);
    let (other, _) = setup(a, &owner);
    within(CONSISTENT, "the other instance sees it", || {
        http(b, "GET", &format!("/v2/experiment/{big}"), &key, "")
            .is_ok_and(|(status, _)| status == 200)
    });
    // A million batch ids recorded for the big one (as weeks of traffic would).
    const IDS: i64 = 1_000_000;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    execute(
        &database.url,
        format!(
            "INSERT INTO batches (experiment, batch, created_ms) \
             SELECT '{big}'::uuid, gen_random_uuid(), {now_ms} FROM generate_series(1, {IDS})"
        ),
    )
    .unwrap();
    let remaining = format!("SELECT count(*) FROM batches WHERE experiment = '{big}'::uuid");
    assert_eq!(query_i64(&database.url, remaining.clone()).unwrap(), IDS);

    // Records to the other experiment through the first instance (when
    // each was sent and acknowledged), and to the big one through the
    // second (until it learns of the delete).
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let others = {
        let (stop, acknowledged, key) = (stop.clone(), acknowledged.clone(), key.clone());
        let path = format!("/v2/experiment/{other}/record");
        std::thread::spawn(move || {
            let mut sent = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let batch = batch(sent.len() as u64);
                let at = Instant::now();
                let (status, answer) = http(a, "POST", &path, &key, &batch.body).unwrap();
                assert_eq!(status, 200, "{answer}");
                acknowledged.lock().unwrap().push((at, Instant::now()));
                sent.push(batch);
            }
            sent
        })
    };
    let late = {
        let (key, path) = (key.clone(), format!("/v2/experiment/{big}/record"));
        std::thread::spawn(move || {
            for n in 0.. {
                match http(b, "POST", &path, &key, &batch(n).body).unwrap() {
                    (200, _) => {}
                    (404, _) => return n,
                    other => panic!("{other:?}"),
                }
            }
            unreachable!()
        })
    };
    // Watch the big one's batch ids go: (when, how many were left).
    let polls: Arc<Mutex<Vec<(Instant, i64)>>> = Arc::default();
    let watcher = {
        let (polls, url, remaining) = (polls.clone(), database.url.clone(), remaining.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            loop {
                let at = Instant::now();
                let left = query_i64(&url, remaining.clone()).unwrap();
                polls.lock().unwrap().push((at, left));
                if left == 0 || started.elapsed() > Duration::from_secs(120) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200)); // records flowing
    let asked = Instant::now();
    json_call(a, "DELETE", &format!("/v2/experiment/{big}"), &owner, "");
    let answered = Instant::now();
    let late_records = late.join().unwrap();
    watcher.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let sent = others.join().unwrap();

    // Records to the other experiment, sent once the delete was answered,
    // were acknowledged while most of the big one's batch ids were still
    // being deleted: a poll made after such an acknowledgement still found
    // more than half of them.
    let acknowledged = acknowledged.lock().unwrap().clone();
    let polls = polls.lock().unwrap().clone();
    let (last_poll, left) = *polls.last().unwrap();
    let during = acknowledged
        .iter()
        .filter(|&&(at, ack)| {
            at > answered && polls.iter().any(|&(poll, n)| poll > ack && n > IDS / 2)
        })
        .count();
    eprintln!(
        "DELETE answered in {:?}; {} of its {IDS} batch ids left {:?} after it was asked; \
         {during} records to another experiment were acknowledged while more than half \
         were left; the other instance recorded {late_records} more for it before it saw \
         the delete",
        answered - asked,
        left,
        last_poll - asked,
    );
    assert!(
        during > 0,
        "records to another experiment waited for the delete of the big one's batch ids"
    );
    // Gone, all of them, including any the other instance's commits
    // inserted as the experiment was deleted (it no longer records for
    // it); and so they stay.
    within(
        Duration::from_secs(90),
        "every batch id of the big one purged",
        || query_i64(&database.url, remaining.clone()).unwrap() == 0,
    );
    std::thread::sleep(Duration::from_secs(8)); // the purge's second pass
    assert_eq!(query_i64(&database.url, remaining).unwrap(), 0);
    assert_eq!(counts(a, &owner, &other), totals(&sent));
}

#[test]
fn an_outage_is_logged_when_it_begins_and_ends_not_once_a_call() {
    if admin_url().is_none() {
        return;
    }
    let cluster = Cluster::init();
    cluster.start();
    let server = Server::start(&cluster.url(), &ENV);
    let addr = server.addr;
    let (path, key, body) = recording_one_view(addr);
    let before = server.log.lock().unwrap().len();

    cluster.stop_immediately();
    const CALLS: usize = 60;
    for _ in 0..CALLS {
        let (status, _) = http(addr, "POST", &path, &key, &body).unwrap();
        assert_eq!(status, 503);
    }
    cluster.start();
    within(PATIENCE, "records work again", || {
        http(addr, "POST", &path, &key, &body).is_ok_and(|(status, _)| status == 200)
    });
    // The "back" lines come with the next successful call of each kind:
    // PostgreSQL's, and the commit writer's when commits failed meanwhile
    // (they may not have: while the API key cache is refreshed, every call
    // can fail at the key lookup, before a commit is tried).
    let ended = |log: &[String]| {
        let commits_failed = log.iter().any(|l| l.contains("commits fail"));
        log.iter().any(|l| l.contains("answers again"))
            && (!commits_failed || log.iter().any(|l| l.contains("commits succeed again")))
    };
    let waiting = Instant::now();
    while waiting.elapsed() < Duration::from_secs(10)
        && !ended(&server.log.lock().unwrap()[before..])
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log.lock().unwrap()[before..].to_vec();
    // The server's own warnings (PostgreSQL's notices, one a connection
    // as it shuts down, are not).
    let loud: Vec<&String> = log
        .iter()
        .filter(|line| line.contains(" WARN myna_server") || line.contains(" ERROR myna_server"))
        .collect();
    eprintln!("{CALLS} calls answered 503; logged:\n{}", log.join("\n"));
    assert!(
        loud.len() <= 6,
        "{} warnings for one outage of {CALLS} refused calls:\n{}",
        loud.len(),
        log.join("\n")
    );
    assert!(ended(&log), "{log:?}");
    assert!(log.iter().any(|l| l.contains("does not answer")), "{log:?}");
    let back = log.iter().find(|l| l.contains("answers again")).unwrap();
    let refused: usize = back
        .split("refused=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(
        refused >= CALLS / 2,
        "the calls refused meanwhile are counted: {back}"
    );
}

/// An outage that ends with PostgreSQL back under a certificate the
/// instance refuses (`verify-ca` against its own CA): the log tells that
/// new reason (the outage's first line said only that it stopped), the
/// instance answers 503 meanwhile, and once the certificate is right again
/// it records again.
#[test]
fn a_postgresql_back_with_a_certificate_the_instance_refuses_is_logged_with_that_reason() {
    if admin_url().is_none() {
        return;
    }
    let cluster = Cluster::init();
    let (ours, other) = (certificate_authority(), certificate_authority());
    cluster.start_with(&cluster.certificate_from(&ours));
    let ca_file = cluster.path("ca.pem");
    std::fs::write(&ca_file, ours.pem()).unwrap();
    let url = format!("{}?sslmode=verify-ca&sslrootcert={ca_file}", cluster.url());
    let server = Server::start(&url, &ENV);
    let addr = server.addr;
    let (path, key, body) = recording_one_view(addr);

    cluster.stop_immediately();
    let (status, _) = http(addr, "POST", &path, &key, &body).unwrap();
    assert_eq!(status, 503);
    cluster.start_with(&cluster.certificate_from(&other));
    within(
        Duration::from_secs(60),
        "the refused certificate logged",
        || {
            let log = server.log.lock().unwrap();
            log.iter().any(|l| {
                l.contains("for another reason now") && l.contains("invalid peer certificate")
            })
        },
    );
    let (status, _) = http(addr, "POST", &path, &key, &body).unwrap();
    assert_eq!(status, 503, "refused while the certificate is");

    cluster.stop_immediately();
    cluster.start_with(&cluster.certificate_from(&ours));
    within(PATIENCE, "records work again", || {
        http(addr, "POST", &path, &key, &body).is_ok_and(|(status, _)| status == 200)
    });
}

/// Two instances each count the weights they served; at SIGTERM each adds
/// its sums to the same rows: the decision's served weights are the sum.
#[test]
fn two_instances_add_up_the_weights_they_served() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let mut one = Server::start(&database.url, &ENV);
    let mut two = Server::start(&database.url, &ENV);
    let owner = login(one.addr);
    let (experiment, key) = setup(one.addr, &owner);
    let read = format!("/v2/experiment/{experiment}");
    // (The decision serves no weights.)
    let decision = format!("{read}/decision");
    within(CONSISTENT, "the experiment on the second instance", || {
        http(two.addr, "GET", &decision, &owner, "").is_ok_and(|(status, _)| status == 200)
    });
    for (server, reads) in [(&one, 10), (&two, 15)] {
        for _ in 0..reads {
            json_call(server.addr, "GET", &read, &key, "");
        }
    }
    for server in [&mut one, &mut two] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(server.child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        server.assert_stops_cleanly();
    }
    let answers = query_i64(
        &database.url,
        format!("SELECT MIN(answers) FROM served_weights WHERE experiment = '{experiment}'"),
    )
    .unwrap();
    let rows = query_i64(
        &database.url,
        format!("SELECT COUNT(*) FROM served_weights WHERE experiment = '{experiment}'"),
    )
    .unwrap();
    assert_eq!(
        (rows, answers),
        (2, 25),
        "one row per variant, both instances' answers"
    );
}

#[test]
fn concurrent_definition_changes_on_two_instances_lose_nothing_and_keep_ids_unique() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let one = Server::start(&database.url, &ENV);
    let two = Server::start(&database.url, &ENV);
    let (a, b) = (one.addr, two.addr);
    let owner = login(a);
    // Both at once, one through each instance; the two answers.
    let both = |first: (SocketAddr, &str, &str, String),
                second: (SocketAddr, &str, &str, String)| {
        let call = |(addr, method, path, body): (SocketAddr, &str, &str, String)| {
            let owner = owner.clone();
            let (method, path) = (method.to_owned(), path.to_owned());
            std::thread::spawn(move || http(addr, &method, &path, &owner, &body).unwrap())
        };
        let (x, y) = (call(first), call(second));
        (x.join().unwrap(), y.join().unwrap())
    };

    // A new experiment created through `a`, once `b` knows it: its path.
    let known_to_both = || {
        let (experiment, _) = setup(a, &owner);
        let path = format!("/v2/experiment/{experiment}");
        within(CONSISTENT, "the other instance knows it", || {
            http(b, "GET", &path, &owner, "").unwrap().0 == 200
        });
        path
    };

    // Two updates of one experiment, each through its own instance, at the
    // same moment: both are kept (each applied to the other's result).
    for round in 0..5 {
        let path = known_to_both();
        let ((s1, b1), (s2, b2)) = both(
            (
                a,
                "PUT",
                &path,
                json!({"settingsUpdates": {"x": round}, "variantUpdates": {"c": {}}}).to_string(),
            ),
            (
                b,
                "PUT",
                &path,
                json!({"settingsUpdates": {"y": round}, "variantUpdates": {"d": {}}}).to_string(),
            ),
        );
        assert_eq!((s1, s2), (200, 200), "{b1}\n{b2}");
        // Both instances come to hold both changes (within the refresh).
        for addr in [a, b] {
            let both_kept = || {
                let stored = json_call(addr, "GET", &path, &owner, "");
                let mut variants: Vec<String> = stored["variants"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect();
                variants.sort();
                stored["settings"] == json!({"x": round, "y": round})
                    && variants == ["a", "b", "c", "d"]
            };
            within(
                CONSISTENT * 2,
                &format!("round {round}: both changes kept"),
                both_kept,
            );
        }
    }

    // Many at once through both instances: every one applies (none is
    // refused for the others' sake) and the instances stay healthy.
    let path = known_to_both();
    let calls: Vec<_> = (0..12)
        .map(|k| {
            let (addr, owner, path) = (if k % 2 == 0 { a } else { b }, owner.clone(), path.clone());
            let body = json!({"settingsUpdates": {format!("k{k}"): k}}).to_string();
            std::thread::spawn(move || http(addr, "PUT", &path, &owner, &body).unwrap())
        })
        .collect();
    for call in calls {
        let (status, body) = call.join().unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let all: Value = (0..12)
        .map(|k| (format!("k{k}"), json!(k)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    for addr in [a, b] {
        within(CONSISTENT * 2, "every change kept", || {
            json_call(addr, "GET", &path, &owner, "")["settings"] == all
        });
        assert_eq!(http(addr, "GET", "/healthz", "", "").unwrap().0, 200);
    }

    // Two creates of published experiments with one chosen id, at once:
    // one is refused, so pages never see two experiments with one id.
    for round in 0..5 {
        let body = json!({"name": "twin", "id": format!("twin-{round}"), "visibility": "published",
                          "variants": {"a": {}}})
        .to_string();
        let ((s1, b1), (s2, b2)) = both(
            (a, "POST", "/v2/experiment", body.clone()),
            (b, "POST", "/v2/experiment", body),
        );
        let mut statuses = [s1, s2];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}:\n{b1}\n{b2}");
    }
    // Default ids (from the same name) come out distinct.
    for round in 0..5 {
        let body = json!({"name": format!("Same name {round}"), "visibility": "published",
                          "variants": {"a": {}}})
        .to_string();
        let ((s1, b1), (s2, b2)) = both(
            (a, "POST", "/v2/experiment", body.clone()),
            (b, "POST", "/v2/experiment", body),
        );
        assert_eq!((s1, s2), (200, 200), "{b1}\n{b2}");
        let id = |body: &str| {
            serde_json::from_str::<Value>(body).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_ne!(id(&b1), id(&b2), "round {round}");
    }
    // An update publishing an id another instance just published is refused too.
    let draft = json!({"name": "late", "id": "late", "visibility": "draft", "variants": {"a": {}}})
        .to_string();
    let first = json_call(a, "POST", "/v2/experiment", &owner, &draft);
    let second = json_call(b, "POST", "/v2/experiment", &owner, &draft);
    let publish = json!({"visibility": "published"}).to_string();
    let ((s1, b1), (s2, b2)) = both(
        (
            a,
            "PUT",
            &format!("/v2/experiment/{}", first["uuid"].as_str().unwrap()),
            publish.clone(),
        ),
        (
            b,
            "PUT",
            &format!("/v2/experiment/{}", second["uuid"].as_str().unwrap()),
            publish,
        ),
    );
    let mut statuses = [s1, s2];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{b1}\n{b2}");
}

#[test]
fn an_experiment_deleted_then_created_again_with_its_uuid_stays() {
    // The refresh sees the deletion and the new row together: the row wins.
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let one = Server::start(&database.url, &ENV);
    let two = Server::start(&database.url, &ENV);
    let owner = login(one.addr);
    let uuid = "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a99";
    let body = json!({"uuid": uuid, "name": "Hero", "visibility": "published",
                      "variants": {"a": {}}})
    .to_string();
    let path = format!("/v2/experiment/{uuid}");
    json_call(one.addr, "POST", "/v2/experiment", &owner, &body);
    within(CONSISTENT, "the other instance knows it", || {
        http(two.addr, "GET", &path, &owner, "").unwrap().0 == 200
    });
    let (status, answer) = http(one.addr, "DELETE", &path, &owner, "").unwrap();
    assert!((200..300).contains(&status), "{answer}");
    json_call(one.addr, "POST", "/v2/experiment", &owner, &body);
    // Past a few refreshes, both instances still have it.
    std::thread::sleep(CONSISTENT * 2);
    for addr in [one.addr, two.addr] {
        let (status, answer) = http(addr, "GET", &path, &owner, "").unwrap();
        assert_eq!(status, 200, "{answer}");
    }
}

/// An owner whose calls a load balancer spreads over the instances reads,
/// updates, decides and exports an experiment created through another
/// instance at once, not a refresh later (an instance that has not heard of
/// it asks the database before answering 404). A key's read still waits
/// for the refresh: a stranger's miss costs no query.
#[test]
fn an_owner_uses_an_experiment_created_through_another_instance_at_once() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let one = Server::start(&database.url, &ENV);
    let two = Server::start(&database.url, &ENV);
    let owner = login(one.addr);
    for n in 0..5 {
        let body = json!({"name": format!("made on one {n}"), "variants": {"a": {}, "b": {}}});
        let created = json_call(
            one.addr,
            "POST",
            "/v2/experiment",
            &owner,
            &body.to_string(),
        );
        let path = format!("/v2/experiment/{}", created["uuid"].as_str().unwrap());
        let update = r#"{"settingsUpdates": {"x": 1}}"#;
        for (method, path, body) in [
            ("PUT", path.clone(), update),
            ("GET", path.clone(), ""),
            ("GET", format!("{path}/decision"), ""),
            ("GET", format!("{path}/export"), ""),
        ] {
            let (status, answer) = http(two.addr, method, &path, &owner, body).unwrap();
            assert_eq!(status, 200, "{method} {path} on two: {answer}");
        }
        let read = json_call(two.addr, "GET", &path, &owner, "");
        assert_eq!(read["settings"]["x"], 1, "{read}");
    }
}

/// The same for an experiment whose uuid another account's experiment has
/// (kept as its alias): an instance that knows the uuid as the other
/// account's looks the alias up too before answering 404 (an outside probe
/// got 404 from the other instance for about a second).
#[test]
fn an_owner_uses_an_aliased_experiment_created_through_another_instance_at_once() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let one = Server::start(&database.url, &ENV);
    let two = Server::start(&database.url, &ENV);
    let owner = login(one.addr);
    let (other, other_password) = ("other@example.com", "another s3cret password");
    let created = Command::new(common::BIN)
        .args([
            "account",
            "create",
            "--email",
            other,
            "--password",
            other_password,
        ])
        .arg("--database")
        .arg(&database.url)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let other = format!(
        "Basic {}",
        STANDARD.encode(format!("{other}:{other_password}"))
    );
    let uuid = "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a77";
    let body = |name: &str| {
        json!({"uuid": uuid, "name": name, "variants": {"a": {}, "b": {}}}).to_string()
    };
    json_call(two.addr, "POST", "/v2/experiment", &other, &body("theirs"));
    let path = format!("/v2/experiment/{uuid}");
    within(CONSISTENT * 5, "one knows the other account's", || {
        http(one.addr, "GET", &path, &other, "").unwrap().0 == 200
    });
    json_call(two.addr, "POST", "/v2/experiment", &owner, &body("mine"));
    let (status, answer) = http(
        one.addr,
        "PUT",
        &path,
        &owner,
        r#"{"settingsUpdates": {"x": 1}}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "PUT on one at once: {answer}");
    let read = json_call(one.addr, "GET", &path, &owner, "");
    assert_eq!(
        (read["name"].as_str(), &read["settings"]["x"]),
        (Some("mine"), &json!(1)),
        "{read}"
    );
    let theirs = json_call(one.addr, "GET", &path, &other, "");
    assert_eq!(theirs["name"], "theirs", "{theirs}");
}

/// Experiments an older server stored (`id` NULL, read as the slug of the
/// name) hold that id: a new published experiment cannot take it, by
/// choice (409) or by name (a suffix), as on SQLite (an outside probe's
/// upgraded database listed two `pg-buy` in one deployment).
#[test]
fn experiments_stored_before_ids_hold_the_id_they_are_read_with() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let one = Server::start(&database.url, &ENV);
    let owner = login(one.addr);
    let body = json!({"name": "PG Buy", "visibility": "published", "variants": {"a": {}}});
    let older = json_call(
        one.addr,
        "POST",
        "/v2/experiment",
        &owner,
        &body.to_string(),
    );
    assert_eq!(older["id"], "pg-buy", "{older}");
    execute(&database.url, "UPDATE experiments SET id = NULL".to_owned()).unwrap();
    let chosen =
        json!({"name": "Other", "id": "pg-buy", "visibility": "published", "variants": {"a": {}}});
    let (status, answer) = http(
        one.addr,
        "POST",
        "/v2/experiment",
        &owner,
        &chosen.to_string(),
    )
    .unwrap();
    assert_eq!(status, 409, "{answer}");
    let named = json_call(
        one.addr,
        "POST",
        "/v2/experiment",
        &owner,
        &body.to_string(),
    );
    assert_eq!(named["id"], "pg-buy-2", "{named}");
}

/// A database that turns read-only (a failover onto a standby, or set so by
/// an operator) refuses record calls with 503 `unavailable`, as every
/// storage outage does (the SDK retries), not 500; once writable again
/// they count.
#[test]
fn a_read_only_database_answers_503_then_records_again() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let server = Server::start(&database.url, &ENV);
    let addr = server.addr;
    let owner = login(addr);
    let (experiment, key) = setup(addr, &owner);
    let path = format!("/v2/experiment/{experiment}/record");
    let admin = admin_url().unwrap();
    let read_only = |on: &str| {
        execute(
            &admin,
            format!(
                "ALTER DATABASE {} SET default_transaction_read_only = {on}",
                database.name
            ),
        )
        .unwrap();
        // Sessions read the setting when they start: end the server's.
        execute(
            &admin,
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND pid <> pg_backend_pid()",
                database.name
            ),
        )
        .unwrap();
    };
    read_only("on");
    let body = |n: u32| {
        json!({"batch": uuid::Uuid::new_v4(), "events": [{"typename": "view", "variant": "a", "n": n}]})
            .to_string()
    };
    let mut statuses = Vec::new();
    for n in 0..5 {
        let (status, answer) = http(addr, "POST", &path, &key, &body(n)).unwrap();
        if status != 503 || !answer.contains("\"unavailable\"") {
            statuses.push((status, answer));
        }
    }
    // A first call may meet a connection ended under it: still a 503.
    assert!(statuses.is_empty(), "{statuses:?}");
    read_only("off");
    within(PATIENCE, "records count again", || {
        http(addr, "POST", &path, &key, &body(9)).unwrap().0 == 200
    });
}

/// A stand-in for PgBouncer's session mode at its defaults, in front of the
/// server `upstream` (`host:port`): it refuses a connection whose startup
/// message carries an `options` parameter, as PgBouncer does
/// (`unsupported startup parameter: options`), and relays the others.
fn strict_pooler(upstream: String) -> SocketAddr {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let read_message = |client: &mut TcpStream| -> Option<Vec<u8>> {
                    let mut length = [0u8; 4];
                    client.read_exact(&mut length).ok()?;
                    let mut message = vec![0u8; u32::from_be_bytes(length) as usize - 4];
                    client.read_exact(&mut message).ok()?;
                    Some([length.to_vec(), message].concat())
                };
                let mut startup = read_message(&mut client)?;
                if startup[4..8] == [4, 210, 22, 47] {
                    // SSLRequest: no TLS here; the startup message follows.
                    client.write_all(b"N").ok()?;
                    startup = read_message(&mut client)?;
                }
                if startup.windows(8).any(|w| w == b"options\0") {
                    let mut fields = Vec::new();
                    for (code, text) in [
                        (b'S', "FATAL"),
                        (b'C', "08P01"),
                        (b'M', "unsupported startup parameter: options"),
                    ] {
                        fields.push(code);
                        fields.extend_from_slice(text.as_bytes());
                        fields.push(0);
                    }
                    fields.push(0);
                    let mut error = vec![b'E'];
                    error.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                    error.extend_from_slice(&fields);
                    client.write_all(&error).ok()?;
                    return Some(());
                }
                let mut server = TcpStream::connect(&upstream).ok()?;
                server.write_all(&startup).ok()?;
                let (mut from_client, mut to_server) =
                    (client.try_clone().ok()?, server.try_clone().ok()?);
                std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_server));
                let _ = std::io::copy(&mut server, &mut client);
                Some(())
            });
        }
    });
    addr
}

#[test]
fn through_a_pooler_that_refuses_startup_options_the_servers_timeouts_still_hold() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    // postgres://user@host:port/name: the pooler sits at host:port's place.
    let (scheme_user, rest) = database.url.split_once('@').unwrap();
    let (upstream, name) = rest.split_once('/').unwrap();
    let pooler = strict_pooler(upstream.to_owned());
    let url = format!("{scheme_user}@{pooler}/{name}");
    // It starts (the timeouts were startup options, which the pooler refused).
    let server = Server::start(&url, &ENV);
    let owner = login(server.addr);
    // A Bearer call behind a locked tokens table answers 503 within its
    // deadline, and PostgreSQL itself gives up the waits soon after (its
    // lock_timeout set on each connection): no backend is left waiting.
    let lock = HeldTransaction::hold(&database.url, "LOCK TABLE tokens IN ACCESS EXCLUSIVE MODE");
    let read = "/v2/experiment".to_owned();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (addr, owner, read) = (server.addr, owner.clone(), read.clone());
            std::thread::spawn(move || http(addr, "GET", &read, &owner, "").unwrap().0)
        })
        .collect();
    for call in calls {
        assert_eq!(call.join().unwrap(), 503);
    }
    let admin = admin_url().unwrap();
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
         AND application_name = 'myna-server' AND wait_event_type = 'Lock'",
        database.name
    );
    within(
        Duration::from_secs(10),
        "no myna-server backend waits on the lock",
        || query_i64(&admin, waiting.clone()).unwrap() == 0,
    );
    drop(lock);
    assert_eq!(http(server.addr, "GET", &read, &owner, "").unwrap().0, 200);
}

/// The dashboard's edit form saves only over the definition it was loaded
/// with, checked on the definition as stored: another instance's change
/// this instance's cache has not heard of yet is not undone (409).
#[tokio::test]
async fn an_update_made_unless_changed_checks_the_definition_as_stored() {
    use myna_core::{Code, Experiment, Problem, Variant, Visibility};
    use myna_server::auth::Passwords;
    use myna_server::commit::Change;
    use myna_server::service::experiments::{Precondition, update_experiment_unless};
    use myna_server::storage::postgres::PostgresStorage;
    use myna_server::storage::{Account, Storage};
    use myna_server::{AppState, Options};

    let Some(database) = TestDatabase::create() else {
        return;
    };
    let storage: Arc<dyn Storage> = Arc::new(PostgresStorage::open(&database.url).await.unwrap());
    let account = Account {
        id: uuid::Uuid::new_v4(),
        email: "me@example.com".into(),
        password_hash: "$argon2id$stub".into(),
        created_ms: 0,
    };
    storage.create_account(&account).await.unwrap();
    let options = Options {
        passwords: Passwords::fast_for_tests(),
        ..Options::default()
    };
    let (state, _background) = AppState::start(storage.clone(), options).await.unwrap();
    let experiment = Experiment {
        uuid: uuid::Uuid::new_v4(),
        alias: None,
        id: "stale".into(),
        account_id: account.id,
        name: "Loaded".into(),
        visibility: Visibility::Published,
        settings: json!({}),
        variants: vec![Variant::new("a"), Variant::new("b")],
    };
    let uuid = experiment.uuid;
    let create = Change::Create {
        experiment,
        id_chosen: true,
    };
    state.committer.change(create).await.unwrap();
    // The form was loaded with this definition...
    let loaded = (*state.cache.experiment(uuid).unwrap()).clone();
    let unchanged_since = |loaded: Experiment| {
        Precondition(Arc::new(move |stored: &Experiment| {
            if stored.same_definition(&loaded) {
                Ok(())
            } else {
                Err(Problem::new(Code::Conflict, "changed since loaded"))
            }
        }))
    };
    // ...then another instance renamed it (straight in the database: this
    // instance's cache has not heard of it).
    let sql = format!("UPDATE experiments SET name = 'Renamed elsewhere' WHERE uuid = '{uuid}'");
    execute(&database.url, sql).unwrap();
    let body = br#"{"name": "From the stale form"}"#.to_vec();
    let unless = Some(unchanged_since(loaded));
    let refused = update_experiment_unless(&state, account.id, uuid, body.clone(), unless)
        .await
        .unwrap_err();
    assert_eq!(refused.status, 409, "{refused:?}");
    let stored = storage.experiment(uuid).await.unwrap().unwrap().unwrap();
    assert_eq!(stored.name, "Renamed elsewhere", "not undone");
    // A form loaded from the definition as stored saves.
    let fresh = Some(unchanged_since(stored));
    update_experiment_unless(&state, account.id, uuid, body, fresh)
        .await
        .unwrap();
    let stored = storage.experiment(uuid).await.unwrap().unwrap().unwrap();
    assert_eq!(stored.name, "From the stale form");
}

/// A database that refuses connections (`ALLOW_CONNECTIONS false`, its
/// backends ended) and then one dropped under the server: record calls
/// answer 503 `unavailable` (retry later), not 500, and the outage is
/// logged once, not an error a call.
#[test]
fn a_database_refusing_connections_or_dropped_answers_503_not_500() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let server = Server::start(&database.url, &ENV);
    let (experiment, key) = setup(server.addr, &login(server.addr));
    let admin = admin_url().unwrap();
    let path = format!("/v2/experiment/{experiment}/record");
    let record = || {
        let body = json!({"batch": uuid::Uuid::new_v4(),
                          "events": [{"typename": "view", "variant": "a"}]});
        http(server.addr, "POST", &path, &key, &body.to_string()).unwrap()
    };
    assert_eq!(record().0, 200);
    let name = &database.name;
    execute(
        &admin,
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
    )
    .unwrap();
    let end =
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'");
    execute(&admin, end.clone()).unwrap();
    for _ in 0..10 {
        let (status, answer) = record();
        assert_eq!(status, 503, "{answer}");
    }
    execute(
        &admin,
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
    )
    .unwrap();
    execute(&admin, format!("DROP DATABASE {name} WITH (FORCE)")).unwrap();
    for _ in 0..10 {
        let (status, answer) = record();
        assert_eq!(status, 503, "{answer}");
    }
    let log = server.log.lock().unwrap().clone();
    let errors = log.iter().filter(|l| l.contains("ERROR")).count();
    assert!(
        errors <= 2,
        "logged once or so, not a line a call: {log:#?}"
    );
}

/// `account delete` on PostgreSQL runs beside the instances: within a
/// second each stops answering the account's experiment, key and token.
#[test]
fn an_account_deleted_from_the_command_line_is_gone_from_every_instance() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let one = Server::start(&database.url, &ENV);
    let two = Server::start(&database.url, &ENV);
    let cli = |args: &[&str]| {
        let output = Command::new(common::BIN)
            .args(args)
            .args(["--database", &database.url])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stdout).into_owned();
        (
            output.status.success(),
            said + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let email = "leaving@example.com";
    let (ok, said) = cli(&[
        "account",
        "create",
        "--email",
        email,
        "--password",
        "leaving-soon-9",
    ]);
    assert!(ok, "{said}");
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{email}:leaving-soon-9"))
    );
    let token = json_call(one.addr, "POST", "/v2/user/login", &basic, "");
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let (experiment, key) = setup(one.addr, &bearer);
    let read = format!("/v2/experiment/{experiment}");
    let status = |addr: SocketAddr, auth: &str| http(addr, "GET", &read, auth, "").unwrap().0;
    within(CONSISTENT, "created", || status(two.addr, &key) == 200);

    let (ok, said) = cli(&["account", "delete", "--email", email, "--yes"]);
    assert!(ok, "{said}");
    assert!(said.contains("with 1 experiments"), "{said}");
    for addr in [one.addr, two.addr] {
        within(CONSISTENT * 2, "key gone", || status(addr, &key) == 401);
        assert_eq!(status(addr, &bearer), 401, "its token is gone");
    }
    // Its password, checked a moment ago, may be remembered for a minute:
    // nothing is made for an account that is gone.
    let body = r#"{"name": "late", "variants": {"a": {}}}"#;
    let (status, said) = http(one.addr, "POST", "/v2/experiment", &basic, body).unwrap();
    assert_eq!(status, 401, "{said}");
    let (_, listed) = cli(&["account", "list"]);
    assert!(!listed.contains(email), "{listed}");
}
