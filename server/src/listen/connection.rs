//! One connection: with TLS, its handshake first, within the header timeout;
//! then hyper (HTTP/1.1) reads its requests, within the header timeout, and
//! the routes answer them; the problems of the HTTP layer are
//! answered here; at the end, a connection that may still be sending gets a
//! moment to finish before it is closed, so it reads its answer.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use myna_core::{Code, Problem};
use poem::http::uri::Scheme;
use poem::http::{HeaderValue, Request, header};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::answers::{SLICE_BYTES, Sliced};
use super::io::Watched;
use super::limits::{self, HEAD_BUFFER_BYTES};
use super::table::{Conn, Entry};
use super::tls::Tls;
use super::{LINGER, STOP_IDLE_GRACE, Settings};
use crate::answer::nosniff;
use crate::answer::{Format, problem_response};
use crate::clock::Clock;
use crate::request::{AnswerShare, BodyArrival, BodyRead, BodyTimeout};

/// The most bytes hyper buffers on a connection, read or written: a head
/// ([`HEAD_BUFFER_BYTES`]) and some, so a connection costs little memory
/// (hyper's default is 400 KiB).
const BUFFER_BYTES: usize = 128 * 1024;

/// What every connection is served with.
pub(crate) struct Served<E> {
    /// The routes.
    pub(crate) endpoint: E,
    /// Timeouts and limits.
    pub(crate) settings: Settings,
    /// Timestamps of problems.
    pub(crate) clock: Clock,
    /// The address listened on.
    pub(crate) local: SocketAddr,
}

impl<E: Endpoint> Served<E> {
    /// The answer to a request: the routes', or the HTTP layer's problem.
    async fn answer(
        &self,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        conn: Arc<Conn>,
    ) -> Response {
        if let Err(problem) =
            limits::check_head(request.version(), request.uri(), request.headers())
        {
            return self.problem_to(&problem, Some(request.headers()));
        }
        let extensions = request.extensions_mut();
        extensions.insert(BodyTimeout(self.settings.body_timeout));
        extensions.insert(self.settings.body_budget.clone());
        extensions.insert(self.settings.answer_budget.room(conn.clone()));
        extensions.insert(BodyArrival(Arc::new(move || Box::new(conn.receiving()))));
        let headers = request.headers();
        let has_body = headers.contains_key(header::TRANSFER_ENCODING)
            || headers
                .get(header::CONTENT_LENGTH)
                .is_some_and(|length| length.as_bytes() != b"0");
        // Only a request with a body is watched (a GET costs nothing more).
        let body_read = has_body.then(|| {
            let read = BodyRead::default();
            request.extensions_mut().insert(read.clone());
            read
        });
        let request = poem::Request::from((
            request,
            LocalAddr(self.local.into()),
            RemoteAddr(peer.into()),
            if self.settings.tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
        ));
        let mut response = self.endpoint.get_response(request).await;
        if body_read.is_some_and(|read| !read.0.load(Ordering::Relaxed)) {
            // hyper closes a connection whose request body was not read:
            // say so, so the client sends no request on it.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    /// `response` as hyper writes it: a body larger than a slice handed out
    /// in slices ([`Sliced`]), with the share of the answer budget the
    /// routes gave it ([`crate::request::AnswerRoom::make_room`]).
    async fn sliced(&self, response: Response) -> Answered {
        let mut response = Answered::from(response);
        let size = response.body().size_hint().exact();
        if size.is_none_or(|size| size <= SLICE_BYTES as u64) {
            return response;
        }
        let held = response.extensions_mut().remove::<AnswerShare>();
        let (parts, body) = response.into_parts();
        match body.collect().await {
            Ok(body) => {
                hyper::Response::from_parts(parts, BoxBody::new(Sliced::new(body.to_bytes(), held)))
            }
            Err(error) => {
                tracing::warn!(%error, "an answer's body could not be read");
                Answered::from(self.problem(&Problem::new(
                    Code::Internal,
                    "The answer could not be made.",
                )))
            }
        }
    }

    /// A problem, as every answer of the routes is made.
    pub(crate) fn problem(&self, problem: &Problem) -> Response {
        self.problem_to(problem, None)
    }

    /// [`Served::problem`] to a request with `headers` (its own
    /// `X-Request-Id` echoed, when safe): the answer carries an id and has
    /// its access line, as the routes' answers do.
    fn problem_to(&self, problem: &Problem, headers: Option<&poem::http::HeaderMap>) -> Response {
        let mut response = nosniff(problem_response(
            &Format::Json,
            problem,
            self.clock.now_ms(),
        ));
        crate::access::answered_before_routes(&mut response, headers, problem.code().typename());
        response
    }
}

/// An answer as hyper takes it.
type Answered = hyper::Response<BoxBody<Bytes, io::Error>>;

/// Serves one connection until it ends, is evicted, or the server stops.
pub(crate) async fn serve<E: Endpoint + 'static>(
    stream: TcpStream,
    peer: SocketAddr,
    served: Arc<Served<E>>,
    entry: Entry,
    mut stop: watch::Receiver<bool>,
) {
    // An answer written in parts (a streamed export: its head, then its
    // rows) goes out at once, not after the client's delayed ACK (40 ms).
    let _ = stream.set_nodelay(true);
    let Some(tls) = served.settings.tls.clone() else {
        return serve_stream(stream, peer, served, entry, stop).await;
    };
    let timeout = served.settings.header_timeout;
    let shaken = async {
        if speaks_plain_http(&stream).await {
            let answer = raw(served.problem(&limits::plain_http_on_https())).await;
            super::refuse_on(stream, &answer).await;
            return Err(io::Error::other(
                "plain HTTP on the HTTPS port (answered 400)",
            ));
        }
        handshake(&tls, stream, timeout).await
    };
    let stream = tokio::select! {
        shaken = tokio::time::timeout(timeout, shaken) => match shaken {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "closed a connection: no TLS handshake");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "closed a connection: no TLS handshake within the header timeout");
                return;
            }
        },
        () = entry.conn.evicted() => return,
        () = stopped(&mut stop) => return,
    };
    serve_stream(stream, peer, served, entry, stop).await;
}

/// Whether a client on the HTTPS port began in plain HTTP: its first byte
/// a capital letter, as a request line's method is (a TLS handshake begins
/// with 0x16). It is answered a 400 that says so, in plain HTTP, as nginx
/// does, rather than a TLS alert a person cannot read.
async fn speaks_plain_http(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_uppercase())
}

/// The TLS handshake, which must finish within `timeout` (the header
/// timeout: a client that never finishes one cannot hold a connection).
pub(crate) async fn handshake(
    tls: &Tls,
    stream: TcpStream,
    timeout: std::time::Duration,
) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    tokio::time::timeout(timeout, tls.accept(stream))
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the handshake took longer than the header timeout",
            ))
        })
}

/// Serves one connection's HTTP over `stream` (TCP, or TLS over TCP).
async fn serve_stream<E, S>(
    stream: S,
    peer: SocketAddr,
    served: Arc<Served<E>>,
    entry: Entry,
    mut stop: watch::Receiver<bool>,
) where
    E: Endpoint + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = entry.conn.clone();
    let settings = &served.settings;
    let mut io = Watched::new(
        stream,
        conn.clone(),
        settings.write_timeout,
        settings.stall_grace,
    );
    let service = {
        let (served, conn) = (served.clone(), conn.clone());
        service_fn(move |request: Request<Incoming>| {
            conn.dispatch(request.method());
            let (served, conn) = (served.clone(), conn.clone());
            async move {
                let response = served.answer(request, peer, conn).await;
                Ok::<_, Infallible>(served.sliced(response).await)
            }
        })
    };
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // Also bounds an idle keep-alive connection: the timer runs from the
        // moment hyper waits for the next request's first byte.
        .header_read_timeout(served.settings.header_timeout)
        .max_header_size(HEAD_BUFFER_BYTES)
        .max_buf_size(BUFFER_BYTES)
        // A client that shuts its write side after the request (as some
        // scripts and proxies do) still gets its answer: the events it
        // sent are recorded, so it must hear so.
        .half_close(true)
        // One buffer per write, which `Watched` follows byte by byte.
        .writev(false);
    let result = {
        let connection = http.serve_connection(TokioIo::new(&mut io), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => result,
            () = conn.evicted() => return,
            () = stopped(&mut stop) => {
                connection.as_mut().graceful_shutdown();
                // Stopping: past a moment's grace, one that is idle (a head
                // or body still arriving, an answer not read) is closed,
                // not waited for; one whose request is being worked on is.
                let idle = async {
                    tokio::time::sleep(STOP_IDLE_GRACE).await;
                    while !conn.evict_if_idle_for(std::time::Duration::ZERO) {
                        tokio::time::sleep(STOP_IDLE_GRACE / 8).await;
                    }
                };
                tokio::select! {
                    result = connection => result,
                    () = idle => return,
                }
            }
        }
    };
    if let Some(status) = io.own_answer() {
        let error = result.as_ref().err().map(ToString::to_string);
        let problem = limits::hyper_problem(status, io.first_line_unfinished(), error.as_deref());
        tracing::debug!(%peer, status, "a request head hyper could not read");
        let bytes = raw(served.problem(&problem)).await;
        let stream = io.stream();
        let written = tokio::time::timeout(served.settings.write_timeout, async {
            stream.write_all(&bytes).await?;
            // TLS holds written bytes until flushed.
            stream.flush().await
        })
        .await;
        if matches!(written, Ok(Ok(()))) {
            linger(io.stream(), &entry, &mut stop).await;
        }
    } else if io.write_timed_out() {
        tracing::debug!(%peer, "closed a connection: the client stopped reading its answer");
    } else {
        match result {
            Ok(()) => linger(io.stream(), &entry, &mut stop).await,
            Err(error) if error.is_parse_version_h2() => {
                tracing::debug!(%peer, "an HTTP/2 preface: answered HTTP_1_1_REQUIRED");
                let stream = io.stream();
                let written = tokio::time::timeout(served.settings.write_timeout, async {
                    stream.write_all(&HTTP_1_1_REQUIRED).await?;
                    stream.flush().await
                })
                .await;
                if matches!(written, Ok(Ok(()))) {
                    linger(io.stream(), &entry, &mut stop).await;
                }
            }
            Err(error) => tracing::debug!(%peer, %error, "closed a connection"),
        }
    }
}

/// The answer to a client that opens with HTTP/2's preface (prior
/// knowledge: `curl --http2-prior-knowledge`): HTTP/2 frames it can read, an
/// empty `SETTINGS` (the server's preface) then a `GOAWAY` with the error
/// `HTTP_1_1_REQUIRED` (RFC 9113, 7), on which clients such as curl retry
/// over HTTP/1.1; without it they only see the connection close.
const HTTP_1_1_REQUIRED: [u8; 9 + 9 + 8 + GOAWAY_DEBUG.len()] = {
    let mut frames = [0u8; 9 + 9 + 8 + GOAWAY_DEBUG.len()];
    // SETTINGS: length 0, type 0x4, no flags, stream 0.
    frames[3] = 0x4;
    // GOAWAY: its length, type 0x7, no flags, stream 0; then the last
    // stream (0), the error code (0xd) and the debug data.
    frames[9 + 2] = (8 + GOAWAY_DEBUG.len()) as u8;
    frames[9 + 3] = 0x7;
    frames[18 + 7] = 0xd;
    let mut i = 0;
    while i < GOAWAY_DEBUG.len() {
        frames[26 + i] = GOAWAY_DEBUG[i];
        i += 1;
    }
    frames
};

/// The reason the `GOAWAY` carries, for a person reading the frames.
const GOAWAY_DEBUG: &[u8] = b"this server speaks HTTP/1.1 only";

/// Resolves once the server stops.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Closes the sending side, then reads and drops what the client still
/// sends, for up to [`LINGER`], so that it reads its answer: closing a socket
/// with unread bytes resets the connection, and the client may lose the
/// answer. An evicted connection, or a stopping server, closes at once.
pub(crate) async fn linger<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    entry: &Entry,
    stop: &mut watch::Receiver<bool>,
) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut sink = [0; 4096];
        while let Ok(1..) = stream.read(&mut sink).await {}
    };
    tokio::select! {
        _ = tokio::time::timeout(LINGER, drain) => {}
        () = entry.conn.evicted() => {}
        () = stopped(stop) => {}
    }
}

/// A response as bytes on the wire (HTTP/1.1, then the connection closes),
/// for the answers written without hyper.
pub(crate) async fn raw(response: Response) -> Vec<u8> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().into_vec().await.unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
    .into_bytes();
    for (name, value) in &headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    out
}
