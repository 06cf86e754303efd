//! The serve loop: accepts TCP connections and serves each with hyper
//! (HTTP/1.1; HTTPS with [`tls`] when given a certificate; HTTP/2 belongs to
//! a proxy in front), calling the routes.
//! It exists so that hostile clients cannot exhaust the server:
//!
//! - **timeouts**: with TLS, the handshake must finish within
//!   [`HEADER_TIMEOUT`] (in the connection's own task, so it holds up no
//!   other client); a request head must arrive within [`HEADER_TIMEOUT`] (which
//!   also closes a keep-alive connection idle that long), a body within
//!   [`crate::request::BODY_TIMEOUT`] (else 408), and an answer that the client
//!   stops reading fails after [`WRITE_TIMEOUT`] without progress;
//! - **a connection cap** below the open-file limit ([`files`]): at the cap, a
//!   new client takes the place of the connection idle the longest (waiting
//!   for, or trickling, its next request or its body, or not reading its
//!   answer for [`STALL_GRACE`]), or if every connection has a request in
//!   flight, is answered 503 at once;
//! - **accept errors** (out of descriptors or memory) back off
//!   [`ACCEPT_BACKOFF`] instead of spinning, logged once per burst;
//! - **problems from the HTTP layer**: limits on the request head checked
//!   before the routes ([`limits`]), and hyper's own bare answers (a head it
//!   cannot parse, a URI over 65,534 bytes, a head over its buffer) replaced
//!   by the same problems.
//!
//! On shutdown it stops accepting, lets in-flight requests finish (at most
//! [`SHUTDOWN_GRACE`]) and closes idle connections.

pub mod answers;
mod connection;
pub mod files;
mod frames;
mod io;
pub mod limits;
mod table;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use poem::Endpoint;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use self::connection::{Served, raw, stopped};
use self::table::Table;
use self::tls::Tls;
use crate::clock::Clock;

/// How long a client may take to send a request head. A browser sends its
/// whole head in one packet, so 10 s is generous even on a poor mobile
/// link; a keep-alive connection waiting for its next request is closed
/// after as long (browsers reopen one when they need it).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long writing an answer may make no progress (a client that stopped
/// reading). Measured between bytes, not for the whole answer, so a slow
/// but live client still gets a large answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long writing an answer may make no progress before its connection
/// may be evicted at the cap (as one idle since the write began to wait): a
/// client reading slowly is not one that stopped.
pub const STALL_GRACE: Duration = Duration::from_secs(1);

/// How long, after answering on a connection it then closes, the server
/// reads and drops what the client still sends, so the client reads the
/// answer rather than a reset (e.g. after refusing a head too large while
/// the client still sends it).
pub const LINGER: Duration = Duration::from_secs(2);

/// How long shutdown waits for in-flight requests before closing their
/// connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// On shutdown, the grace after which a connection that is idle (waiting
/// for a head or receiving one, receiving a body, or not reading its
/// answer) is closed: no request on it is being worked on, and one client
/// sending slowly would otherwise hold every restart for up to its
/// timeouts (10 s for a head, 30 s for a body), the port closed all along.
pub const STOP_IDLE_GRACE: Duration = Duration::from_secs(3);

/// The pause after an accept failed for want of descriptors or memory: the
/// condition lasts until a connection closes, and retrying at once would
/// spin a core.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The most clients refused at the cap being answered at once; beyond, a
/// refused client's connection is closed without an answer (each holds a
/// descriptor, out of [`files::RESERVED_FILES`]).
const MAX_REFUSING: usize = 32;

/// How long the 503 to a refused client may take, with its linger.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// How often, at most, evictions and refusals at the cap are logged.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// How connections are served.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The most connections open at once (see [`files::connection_cap`]).
    pub max_connections: usize,
    /// See [`HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`crate::request::BODY_TIMEOUT`].
    pub body_timeout: Duration,
    /// What the bodies being read hold together (one for the server).
    pub body_budget: crate::request::BodyBudget,
    /// What the large answers being written hold together (one for the
    /// server).
    pub answer_budget: answers::AnswerBudget,
    /// See [`WRITE_TIMEOUT`].
    pub write_timeout: Duration,
    /// See [`STALL_GRACE`].
    pub stall_grace: Duration,
    /// HTTPS with this certificate; `None`: plain HTTP.
    pub tls: Option<Tls>,
    /// Counts open and refused connections.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_connections: files::connection_cap(None, None, 0),
            header_timeout: HEADER_TIMEOUT,
            body_timeout: crate::request::BODY_TIMEOUT,
            body_budget: crate::request::BodyBudget::default(),
            answer_budget: answers::AnswerBudget::default(),
            write_timeout: WRITE_TIMEOUT,
            stall_grace: STALL_GRACE,
            tls: None,
            metrics: Arc::default(),
        }
    }
}

/// Serves `endpoint` on `listener` until `shutdown` resolves, then stops
/// accepting and returns once in-flight requests are answered (or after
/// [`SHUTDOWN_GRACE`]).
pub async fn serve<E: Endpoint + 'static>(
    listener: TcpListener,
    endpoint: E,
    settings: Settings,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let served = Arc::new(Served {
        endpoint,
        settings,
        clock,
        local: listener.local_addr()?,
    });
    let table = Table::new(served.settings.metrics.open_connections.clone());
    let refusing = Arc::new(AtomicUsize::new(0));
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut failures: Option<u64> = None;
    let (mut evictions, mut refusals) = (Throttled::default(), Throttled::default());
    // A burst of accept failures is logged (its start, then its end with
    // how many accepts failed); at a file limit bursts can follow each
    // other every few ms, so at most one burst per LOG_EVERY is, the line
    // saying how many began since the last one logged.
    let (mut bursts, mut burst_logged) = (Throttled::default(), false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(ended) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(error) = ended {
                    tracing::error!(%error, "a connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Some(failed) = failures.take()
                        && std::mem::take(&mut burst_logged)
                    {
                        tracing::info!(failed, "accepting connections again");
                    }
                    let max = served.settings.max_connections;
                    if table.len() >= max {
                        if table.evict_longest_idle() {
                            if let Some(evicted) = evictions.one() {
                                tracing::warn!(
                                    max,
                                    evicted,
                                    "at the connection limit: closing the connections \
                                     idle the longest for new clients"
                                );
                            }
                        } else {
                            if let Some(refused) = refusals.one() {
                                tracing::warn!(
                                    max,
                                    refused,
                                    "at the connection limit with every connection busy: \
                                     answering new clients 503"
                                );
                            }
                            refuse(stream, &served, &refusing, &stopping, &mut tasks);
                            continue;
                        }
                    }
                    let entry = table.open();
                    let (served, stopping) = (served.clone(), stopping.clone());
                    tasks.spawn(connection::serve(stream, peer, served, entry, stopping));
                }
                Err(error) if out_of_resources(&error) => {
                    if failures.is_none()
                        && let Some(bursts) = bursts.one()
                    {
                        burst_logged = true;
                        tracing::warn!(
                            %error,
                            bursts,
                            "cannot accept connections; retrying every {} ms",
                            ACCEPT_BACKOFF.as_millis()
                        );
                    }
                    *failures.get_or_insert(0) += 1;
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
                // A connection gone before it was accepted: nothing to wait for.
                Err(error) => tracing::debug!(%error, "accept failed"),
            },
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let open = tasks.len();
    if open > 0 {
        tracing::info!(open, "waiting for open connections to finish");
    }
    let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "closing the connections still open after {} s",
            SHUTDOWN_GRACE.as_secs()
        );
        tasks.shutdown().await;
    }
    Ok(())
}

/// Answers 503 to a client there is no room for (every connection has a
/// request in flight), without hyper (with TLS, after the handshake, all
/// within [`REFUSAL_TIME`]).
fn refuse<E: Endpoint + 'static>(
    stream: TcpStream,
    served: &Arc<Served<E>>,
    refusing: &Arc<AtomicUsize>,
    stopping: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) {
    served.settings.metrics.connections_refused.inc();
    if refusing.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let answer = served.problem(&limits::too_many_connections());
    let (refusing, mut stopping) = (refusing.clone(), stopping.clone());
    let tls = served.settings.tls.clone();
    tasks.spawn(async move {
        let refused = async {
            let bytes = raw(answer).await;
            match tls {
                None => refuse_on(stream, &bytes).await,
                Some(tls) => {
                    if let Ok(stream) = connection::handshake(&tls, stream, REFUSAL_TIME).await {
                        refuse_on(stream, &bytes).await;
                    }
                }
            }
        };
        tokio::select! {
            _ = tokio::time::timeout(REFUSAL_TIME, refused) => {}
            () = stopped(&mut stopping) => {}
        }
        refusing.fetch_sub(1, Ordering::AcqRel);
    });
}

/// Writes a refusal, closes, and drops what the client still sends.
pub(crate) async fn refuse_on<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: &[u8]) {
    if stream.write_all(bytes).await.is_ok() {
        let _ = stream.shutdown().await;
        let mut sink = [0; 4096];
        while let Ok(1..) = stream.read(&mut sink).await {}
    }
}

/// Whether an accept failed for want of descriptors or memory (which lasts
/// until something is closed), not because of that one connection.
fn out_of_resources(error: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        use nix::errno::Errno;
        if let Some(code) = error.raw_os_error() {
            return matches!(
                Errno::from_raw(code),
                Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM
            );
        }
    }
    error.kind() == std::io::ErrorKind::OutOfMemory
}

/// Events logged at most once per [`LOG_EVERY`], with how many there were:
/// a flood of hostile clients must not flood the log too.
#[derive(Debug, Default)]
struct Throttled {
    since_log: u64,
    logged: Option<Instant>,
}

impl Throttled {
    /// One more; how many since the last log line, when one is due.
    fn one(&mut self) -> Option<u64> {
        self.since_log += 1;
        if self.logged.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return None;
        }
        self.logged = Some(Instant::now());
        Some(std::mem::take(&mut self.since_log))
    }
}
