//! The real binary, for the process-level tests: start it on a database and
//! port 0, read the address it logs (`http://` or `https://`), talk HTTP/1.1
//! to it.
#![allow(dead_code)]

pub mod app;
pub mod postgres;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use uuid::Uuid;

pub const BIN: &str = env!("CARGO_BIN_EXE_myna-server");
/// Generous: only there so a broken build fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(180);

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout: mpsc::Receiver<String>,
    /// Every line logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
    /// While set, nothing reads the server's standard error (a stalled
    /// log pipe).
    pub log_paused: Arc<std::sync::atomic::AtomicBool>,
}

impl Server {
    /// Starts the binary on `db` (an SQLite path or a `postgres://` URL).
    pub fn start(db: &(impl AsRef<std::ffi::OsStr> + ?Sized), env: &[(&str, &str)]) -> Server {
        Server::start_wrapped(&[], db, env)
    }

    /// Starts the binary through `wrapper` (a command that gets the binary
    /// and its arguments after its own, e.g. `["sh", "-c", "… exec \"$0\" \"$@\""]`).
    pub fn start_wrapped(
        wrapper: &[&str],
        db: &(impl AsRef<std::ffi::OsStr> + ?Sized),
        env: &[(&str, &str)],
    ) -> Server {
        Server::launch(wrapper, db, env, &[])
    }

    /// Starts the binary through `wrapper` (none: directly) on `db`, with
    /// `env` and extra `serve` arguments; waits for the address it logs.
    fn launch(
        wrapper: &[&str],
        db: &(impl AsRef<std::ffi::OsStr> + ?Sized),
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Server {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database"])
            .arg(db.as_ref())
            .args(args)
            .env_remove("MYNA_ADMIN_EMAIL")
            .env_remove("MYNA_ADMIN_PASSWORD")
            .env_remove("MYNA_LISTEN")
            .env_remove("MYNA_DATABASE")
            .env_remove("MYNA_MAX_CONNECTIONS")
            .env_remove("MYNA_MAX_BODY_MEMORY")
            .env_remove("MYNA_MAX_ANSWER_MEMORY")
            .env_remove("MYNA_TLS_CERT")
            .env_remove("MYNA_TLS_KEY")
            .env_remove("MYNA_METRICS_LISTEN")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn myna-server");
        let (lines, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let (found, address) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let lines = log.clone();
        let log_paused: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let paused = log_paused.clone();
        std::thread::spawn(move || {
            // A small buffer, so that a pause stops the reading at once.
            let reader = BufReader::with_capacity(256, err);
            for line in reader.lines().map_while(Result::ok) {
                while paused.load(std::sync::atomic::Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let after = line.split("listening on ").nth(1);
                let rest = after.and_then(|rest| {
                    rest.strip_prefix("http://")
                        .or_else(|| rest.strip_prefix("https://"))
                });
                if let Some(rest) = rest {
                    // The address ends where a text line or a JSON string does.
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || ".:[]".contains(c)))
                        .unwrap_or(rest.len());
                    let _ = found.send(rest[..end].to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = address
            .recv_timeout(PATIENCE)
            .expect("the server logs the address it listens on")
            .parse()
            .expect("a socket address");
        Server {
            child,
            addr,
            stdout,
            log,
            log_paused,
        }
    }

    /// Waits (up to [`PATIENCE`]) for the server to exit after SIGTERM and
    /// asserts that it exited cleanly.
    pub fn assert_stops_cleanly(&mut self) {
        let status = exit_of(&mut self.child, "SIGTERM did not stop the server");
        assert!(status.success(), "exit status {status}");
    }

    /// Sends SIGTERM, then [`Server::assert_stops_cleanly`].
    pub fn terminate(&mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.assert_stops_cleanly();
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

/// The exit status of `child`, waited for up to [`PATIENCE`] (else panics
/// saying `what`).
pub fn exit_of(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < PATIENCE, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; the status and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(PATIENCE))?;
    let auth = if auth.is_empty() {
        String::new()
    } else {
        format!("Authorization: {auth}\r\n")
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: myna\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {answer:?}")))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

// ---- Load: record batches with known totals, and what an instance counted.

/// A call that must answer 200; its JSON.
pub fn json_call(addr: SocketAddr, method: &str, path: &str, auth: &str, body: &str) -> Value {
    let (status, body) = http(addr, method, path, auth, body).unwrap();
    assert_eq!(status, 200, "{method} {path} at {addr}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Creates a published experiment (variants a, b) and an API key as
/// `owner`: their uuids.
pub fn published_with_key(addr: SocketAddr, owner: &str) -> (String, String) {
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
        key["uuid"].as_str().unwrap().to_owned(),
    )
}

/// The `Authorization` value of Basic credentials.
pub fn basic(email: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{email}:{password}")))
}

/// A batch with a unique id: `views` views of `a` and `rewards` rewards of `b`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub body: String,
    pub views: u64,
    pub rewards: u64,
}

/// The `n`-th batch of a load: 1 to 3 views, 0 or 1 reward.
pub fn batch(n: u64) -> Batch {
    let views = 1 + n % 3;
    let rewards = n % 2;
    let mut events = vec![json!({"typename": "view", "variant": "a"}); views as usize];
    events.extend(vec![
        json!({"typename": "reward", "variant": "b"});
        rewards as usize
    ]);
    Batch {
        body: json!({"batch": Uuid::new_v4(), "events": events}).to_string(),
        views,
        rewards,
    }
}

/// Views and rewards of `batches`, summed.
pub fn totals<'a>(batches: impl IntoIterator<Item = &'a Batch>) -> (u64, u64) {
    batches
        .into_iter()
        .fold((0, 0), |(v, r), b| (v + b.views, r + b.rewards))
}

/// Views of `a` and reward of `b` as the instance at `addr` reads them.
pub fn counts(addr: SocketAddr, auth: &str, experiment: &str) -> (u64, u64) {
    let form = json_call(
        addr,
        "GET",
        &format!("/v2/experiment/{experiment}"),
        auth,
        "",
    );
    let views = form["variants"]["a"]["views"].as_u64().unwrap();
    let reward = form["variants"]["b"]["totalReward"].as_f64().unwrap();
    (views, reward as u64)
}

// ---- Servers with more options, for the connection tests.

impl Server {
    /// Starts the binary on `db` with extra `args`, and with its open-file
    /// limit (soft and hard) set to `open_files` if given (`ulimit -n`).
    pub fn start_with(
        db: &(impl AsRef<std::ffi::OsStr> + ?Sized),
        env: &[(&str, &str)],
        args: &[&str],
        open_files: Option<u32>,
    ) -> Server {
        match open_files {
            Some(limit) => {
                let script = format!("ulimit -n {limit} && exec \"$0\" \"$@\"");
                Server::launch(&["sh", "-c", &script], db, env, args)
            }
            None => Server::launch(&[], db, env, args),
        }
    }

    /// Waits (up to [`PATIENCE`]) until a logged line contains `text`; the
    /// lines logged so far that contain it.
    pub fn wait_for_log(&self, text: &str) -> Vec<String> {
        let started = std::time::Instant::now();
        loop {
            let found: Vec<String> = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|line| line.contains(text))
                .cloned()
                .collect();
            if !found.is_empty() {
                return found;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the server never logged {text:?}: {:#?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts the binary on a new database in `dir` with the first account's
/// `email` and `password`, which it must refuse: its exit status (not a
/// success) and what it printed on stderr.
pub fn first_start_refused(dir: &std::path::Path, email: &str, password: &str) -> String {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(dir.join("myna.db"))
        .env("MYNA_ADMIN_EMAIL", email)
        .env("MYNA_ADMIN_PASSWORD", password)
        .env_remove("MYNA_CLIENT_IP_HEADER")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn myna-server");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("its status") {
            break status;
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started with {email:?} and {password:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    assert!(!status.success(), "{email:?}, {password:?}: {stderr}");
    stderr
}
