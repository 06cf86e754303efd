//! Request bodies: read up to a limit (refused before reading more), within
//! [`BODY_TIMEOUT`], and beyond their first [`UNBUDGETED_BYTES`] from a
//! budget every connection shares ([`BodyBudget`]); and the budget of
//! answers held while they are written ([`AnswerRoom`]).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Bytes;
use myna_core::event::{MAX_BODY_BYTES, body_too_large};
use myna_core::{Code, Message, Problem};
use poem::http::header;
use poem::{Body, Request};

use super::{any_coding_but, charsets_of, refused};
use crate::auth::throttle::ClientKey;

/// How long a client may take to send a whole body. The SDK's batches are a
/// few KiB; even the largest body (1 MiB) arrives well within it at
/// 35 KiB/s, and a client trickling bytes cannot hold a request open longer.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The body timeout of a request, set by the serve loop
/// ([`crate::listen`]); [`BODY_TIMEOUT`] where it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout(pub Duration);

/// Bytes of each body read before it draws on the [`BodyBudget`]: every
/// SDK batch, login and form fits, so they never wait on it or are refused
/// by it (the connection cap bounds what these cost together).
pub const UNBUDGETED_BYTES: usize = 16 * 1024;

/// Bytes of request bodies beyond their first [`UNBUDGETED_BYTES`] that
/// the server holds at once while they arrive.
pub const BODY_MEMORY: usize = 64 * 1024 * 1024;

/// What the bodies being read may hold together beyond their first
/// [`UNBUDGETED_BYTES`] (in KiB), shared by every connection (the serve
/// loop sets it on each request): clients that send large bodies slowly,
/// with no credentials needed (a login, a record with a public API key),
/// cannot make the server hold a megabyte per connection. A body that
/// would pass it is refused with a 503 (retry after a second).
#[derive(Debug, Clone)]
pub struct BodyBudget(pub(super) Arc<tokio::sync::Semaphore>);

impl BodyBudget {
    /// A budget of `bytes` (rounded down to KiB).
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget(Arc::new(tokio::sync::Semaphore::new(bytes / 1024)))
    }
}

impl Default for BodyBudget {
    fn default() -> Self {
        BodyBudget::new(BODY_MEMORY)
    }
}

/// Answers up to this size take no share of the answer budget.
pub const UNBUDGETED_ANSWER_BYTES: usize = 256 * 1024;

/// An answer's share of the server's answer budget (`listen::answers`),
/// held until dropped: in the answer's extensions until the connection
/// writing it takes it.
#[derive(Clone)]
pub struct AnswerShare(pub Arc<dyn std::any::Any + Send + Sync>);

/// Reserves a share of `bytes` (see [`AnswerRoom`]).
type Reserve = dyn Fn(
        usize,
        ClientKey,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<AnswerShare>> + Send>>
    + Send
    + Sync;

/// What a request's large answers may hold (the serve loop sets it on each
/// request: the server's answer budget and the request's connection).
#[derive(Clone)]
pub struct AnswerRoom(pub Arc<Reserve>);

impl AnswerRoom {
    /// Gives `response`, for `client`, its share of the budget when it is
    /// larger than [`UNBUDGETED_ANSWER_BYTES`] (in its extensions); `false`
    /// when there is no room for it (the caller answers a 503 instead).
    pub async fn make_room(&self, response: &mut poem::Response, client: ClientKey) -> bool {
        use hyper::body::Body as _;
        let body = BoxBody::from(response.take_body());
        let size = body.size_hint().exact();
        response.set_body(Body::from(body));
        let Some(size) = size.and_then(|s| usize::try_from(s).ok()) else {
            return true;
        };
        if size <= UNBUDGETED_ANSWER_BYTES {
            return true;
        }
        match (self.0)(size, client).await {
            Some(share) => {
                response.extensions_mut().insert(share);
                true
            }
            None => false,
        }
    }
}

/// Tells a request's connection that the request's body is arriving (the
/// serve loop sets it on each request): until what it returns is dropped,
/// the connection counts as idle, so at the connection cap a client that
/// trickles a body gives its place to a new client as an idle one does.
#[derive(Clone)]
pub struct BodyArrival(pub Arc<dyn Fn() -> Box<dyn Send> + Send + Sync>);

/// Set once a request's body was read to its end ([`read_body`]; the serve
/// loop sets one on each request): the answer to a request whose body was
/// not (a refusal before reading it, a body too large or too slow) says
/// `Connection: close`, as the connection then closes (the rest of the body
/// would be read as the next request), so a client or proxy never sends
/// another request on it.
#[derive(Clone, Default)]
pub struct BodyRead(pub Arc<std::sync::atomic::AtomicBool>);

/// Reads a body of at most [`MAX_BODY_BYTES`]: a larger `Content-Length` is
/// refused without reading, a longer stream as soon as it passes the limit,
/// a body not all there within its [`BodyTimeout`] gets a 408 problem, one
/// the [`BodyBudget`] has no room for a 503, a compressed one (any
/// `Content-Encoding` but `identity`) or one in another charset than UTF-8
/// a 415, and one with a transfer coding but `chunked` a 501.
pub async fn read_body(request: &Request, body: Body) -> Result<ReadBody, Problem> {
    read_body_up_to(request, body, MAX_BODY_BYTES).await
}

/// A body as read: its bytes, and its share of the [`BodyBudget`] (what it
/// holds past [`UNBUDGETED_BYTES`]), given back only when it is dropped, so
/// the budget bounds the bodies a handler still holds (parsing, waiting for
/// its commit), not only those arriving.
#[derive(Debug, Default)]
pub struct ReadBody {
    pub(super) bytes: Vec<u8>,
    _budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl ReadBody {
    /// The bytes, the budget given back.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl std::ops::Deref for ReadBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// [`read_body`] with a limit of `limit` bytes instead (the dashboard's
/// forms, which only a signed-in owner can post).
pub async fn read_body_up_to(
    request: &Request,
    body: Body,
    limit: usize,
) -> Result<ReadBody, Problem> {
    if any_coding_but(request, header::CONTENT_ENCODING, b"identity") {
        // Compressed bodies are not inflated (a small gzip can unpack to
        // gigabytes): refused as such, not misread as invalid JSON.
        return Err(refused(
            415,
            "Content-Encoding",
            "Send the body without Content-Encoding: it is read as sent.",
        ));
    }
    if any_coding_but(request, header::TRANSFER_ENCODING, b"chunked") {
        // RFC 9112 6.1: a transfer coding the server does not know is a 501,
        // not a body read as if it were not there (`gzip, chunked`).
        return Err(refused(
            501,
            "Transfer-Encoding",
            "Send the body with no transfer coding but `chunked`: it is read as sent.",
        ));
    }
    let content_types = request.headers().get_all(header::CONTENT_TYPE);
    let charsets: Vec<String> = content_types
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(charsets_of)
        .collect();
    if content_types.iter().count() > 1
        || charsets.iter().any(|charset| {
            !["utf-8", "utf8", "us-ascii"]
                .iter()
                .any(|ok| charset.eq_ignore_ascii_case(ok))
        })
    {
        return Err(refused(
            415,
            "Content-Type",
            "Send the body as UTF-8, with one Content-Type (charset=utf-8, or no charset): it is read as UTF-8.",
        ));
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(size) = declared.filter(|size| *size > limit) {
        return Err(too_large(size, limit));
    }
    let timeout = request
        .extensions()
        .get::<BodyTimeout>()
        .map_or(BODY_TIMEOUT, |timeout| timeout.0);
    let budget = request.extensions().get::<BodyBudget>();
    // Until the body is all there, the connection may give its place to a
    // new client.
    let _arriving = request
        .extensions()
        .get::<BodyArrival>()
        .map(|BodyArrival(arriving)| arriving());
    let read = tokio::time::timeout(
        timeout,
        read_limited(body, declared.unwrap_or(0), limit, budget),
    );
    match read.await {
        Ok(Ok(bytes)) => {
            if let Some(BodyRead(read)) = request.extensions().get::<BodyRead>() {
                read.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(bytes)
        }
        Ok(Err(BodyError::TooLarge)) => Err(too_large(limit + 1, limit)),
        Ok(Err(BodyError::Busy)) => Err(Problem::new(
            Code::Unavailable,
            "The server holds too many large request bodies at once: retry shortly.",
        )),
        // Broken framing (a bad chunk size) or a connection that failed:
        // the bytes never made a body, so no JSON was read.
        Ok(Err(BodyError::Io(error))) => {
            // Its framing is what broke: the chunks, else the length.
            let framing = if request.headers().contains_key(header::TRANSFER_ENCODING) {
                "Transfer-Encoding"
            } else {
                "Content-Length"
            };
            Err(Problem::at(
                Code::InvalidValue,
                framing,
                format!(
                    "The body could not be read as its {framing} says ({error}): \
                     send it whole, as declared."
                ),
            ))
        }
        Err(_) => Err(body_too_slow(timeout)),
    }
}

/// 413: a body of `size` bytes, over `limit` (core's problem for the API's
/// limit).
fn too_large(size: usize, limit: usize) -> Problem {
    if limit == MAX_BODY_BYTES {
        return body_too_large(size);
    }
    Problem::one(
        Message::at(
            Code::BodyTooLarge,
            myna_core::BODY_PATH,
            format!("The form may be at most {limit} bytes as sent."),
        )
        .with_data(serde_json::json!({ "limit": limit, "size": size })),
    )
}

/// Why a body could not be read.
enum BodyError {
    /// More than the limit arrived.
    TooLarge,
    /// The [`BodyBudget`] had no room for what arrived.
    Busy,
    /// The connection failed.
    Io(std::io::Error),
}

/// The most [`read_limited`] allocates for a body before its bytes arrive
/// (the SDK's batches fit): a client that declares a megabyte and sends
/// nothing costs no more than this, as much as the 4 KiB read buffer it
/// replaced.
const PREALLOCATED: usize = 4 * 1024;

/// The body's bytes, frame by frame into one buffer: no intermediate
/// buffer to zero or copy through, and refused as soon as more than the
/// limit arrived. The buffer follows the bytes that arrived, never the
/// declared length past [`UNBUDGETED_BYTES`] (a client declaring a
/// megabyte and sending 17 KiB holds no megabyte): it starts at the
/// declared length up to [`PREALLOCATED`], grows to it up to
/// [`UNBUDGETED_BYTES`], then by half its size; whatever it holds past
/// [`UNBUDGETED_BYTES`] is drawn from `budget` before it is allocated, and
/// held until the body is dropped (none left: refused).
async fn read_limited(
    body: Body,
    declared: usize,
    limit: usize,
    budget: Option<&BodyBudget>,
) -> Result<ReadBody, BodyError> {
    let mut body: BoxBody<Bytes, std::io::Error> = body.into();
    let mut data = Vec::with_capacity(declared.min(PREALLOCATED));
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame.map_err(BodyError::Io)?.into_data() else {
            continue;
        };
        let len = data.len() + chunk.len();
        if len > limit {
            return Err(BodyError::TooLarge);
        }
        if len > data.capacity() {
            let capacity = if len <= UNBUDGETED_BYTES {
                len.max(declared.min(UNBUDGETED_BYTES))
            } else {
                len.max(data.capacity() + data.capacity() / 2).min(limit)
            };
            if let Some(budget) = budget
                && capacity > UNBUDGETED_BYTES
            {
                let wanted = (capacity - UNBUDGETED_BYTES).div_ceil(1024);
                let more = wanted.saturating_sub(held.as_ref().map_or(0, |p| p.num_permits()));
                if more > 0 {
                    let permit = u32::try_from(more)
                        .ok()
                        .and_then(|more| Arc::clone(&budget.0).try_acquire_many_owned(more).ok())
                        .ok_or(BodyError::Busy)?;
                    match held.as_mut() {
                        Some(held) => held.merge(permit),
                        None => held = Some(permit),
                    }
                }
            }
            data.reserve_exact(capacity - data.len());
        }
        data.extend_from_slice(&chunk);
    }
    Ok(ReadBody {
        bytes: data,
        _budget: held,
    })
}

/// 408: the body did not all arrive within `timeout`.
pub(super) fn body_too_slow(timeout: Duration) -> Problem {
    Problem {
        status: 408,
        messages: vec![Message::at(
            Code::Timeout,
            myna_core::BODY_PATH,
            format!(
                "The request body did not all arrive within {}.",
                if timeout.subsec_millis() == 0 {
                    format!("{} s", timeout.as_secs())
                } else {
                    format!("{} ms", timeout.as_millis())
                }
            ),
        )],
    }
}
