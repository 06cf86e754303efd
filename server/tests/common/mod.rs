//! The real binary, for the process-level tests: start it on a database and
//! port 0, read the address it logs, talk HTTP/1.1 to it.
#![allow(dead_code)]

pub mod postgres;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_myna-server");
/// Generous: only there so a broken build fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(180);

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout: mpsc::Receiver<String>,
    /// Every line logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary on `db` (an SQLite path or a `postgres://` URL).
    pub fn start(db: &(impl AsRef<std::ffi::OsStr> + ?Sized), env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database"])
            .arg(db.as_ref())
            .env_remove("MYNA_ADMIN_EMAIL")
            .env_remove("MYNA_ADMIN_PASSWORD")
            .env_remove("MYNA_LISTEN")
            .env_remove("MYNA_DATABASE")
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
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = found.send(rest.trim().to_owned());
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
        }
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
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
