//! Reading requests: query parameters, bodies (at most 1 MiB, refused before
//! reading more, and within [`BODY_TIMEOUT`]), and uuids in paths.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Bytes;
use myna_core::event::{MAX_BODY_BYTES, body_too_large};

use crate::auth::throttle::ClientKey;
use myna_core::wire::{url_decode, url_decode_exact};
use myna_core::{Code, Message, Problem};
use poem::http::header;
use poem::{Body, Request};
use uuid::Uuid;

/// Reads the request's path as a proxy such as nginx would pass it on:
/// repeated slashes are one (`//v2/experiment` is `/v2/experiment`, what a
/// page whose API root ends in `/` asks for) and a trailing slash is none
/// (`/keys/` is `/keys`). A path that needs neither is left untouched.
pub fn normalize_path(request: &mut Request) {
    let path = request.uri().path();
    let needs = path.contains("//") || (path.len() > 1 && path.ends_with('/'));
    if !needs {
        return;
    }
    let mut normal = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        normal.push('/');
        normal.push_str(segment);
    }
    if normal.is_empty() {
        normal.push('/');
    }
    if let Some(query) = request.uri().query() {
        normal.push('?');
        normal.push_str(query);
    }
    let mut parts = request.uri().clone().into_parts();
    let Ok(path_and_query) = normal.parse() else {
        return;
    };
    parts.path_and_query = Some(path_and_query);
    if let Ok(uri) = poem::http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

/// The query parameters of a request (the first value of each name counts).
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The request's query parameters (percent-decoded; invalid UTF-8 is
    /// replaced): those [`Params::keep`] parsed, else parsed now.
    pub fn of(request: &Request) -> Arc<Params> {
        request
            .extensions()
            .get::<Arc<Params>>()
            .map_or_else(|| Params::of_query(request), Arc::clone)
    }

    /// Parses the request's query once, for every later [`Params::of`] (the
    /// CORS layer, the extractors and the handler each read it).
    pub fn keep(request: &mut Request) {
        let params = Params::of_query(request);
        request.extensions_mut().insert(params);
    }

    fn of_query(request: &Request) -> Arc<Params> {
        Arc::new(Params::parse(request.uri().query().unwrap_or_default()))
    }

    /// Parses a form body as [`Params::parse`] does, or `None` when a name
    /// or value is not UTF-8 once decoded (`%FF`): a form's text is stored,
    /// so nothing in it is replaced.
    pub fn parse_exact(form: &str) -> Option<Params> {
        pairs(form)
            .map(|(name, value)| Some((url_decode_exact(name)?, url_decode_exact(value)?)))
            .collect::<Option<Vec<_>>>()
            .map(Params)
    }

    /// Parses `application/x-www-form-urlencoded` text (a query string or a
    /// form body).
    pub fn parse(query: &str) -> Params {
        Params(
            pairs(query)
                .map(|(name, value)| (url_decode(name), url_decode(value)))
                .collect(),
        )
    }

    /// Every value of parameter `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every parameter's name, in order (repeated ones as often as given).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    /// The value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The `name=value` pairs of form-encoded text, not decoded (a pair
/// without `=` is a name with an empty value; empty pairs are skipped).
fn pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Whether any coding listed in the `name` headers (every one of them,
/// comma-separated) is other than `allowed`, case aside.
fn any_coding_but(request: &Request, name: header::HeaderName, allowed: &[u8]) -> bool {
    request
        .headers()
        .get_all(name)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .any(|coding| !coding.trim_ascii().eq_ignore_ascii_case(allowed))
}

/// A body refused for how it is sent: `status`, at header `path`.
fn refused(status: u16, path: &str, message: &str) -> Problem {
    Problem {
        status,
        messages: vec![Message::at(Code::InvalidValue, path, message)],
    }
}

/// Every `charset` parameter of a `Content-Type` value, unquoted (a `;` or
/// `charset=` inside a quoted value is part of that value).
fn charsets_of(content_type: &str) -> Vec<String> {
    let mut parameters = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in content_type.chars() {
        let Some(current) = parameters.last_mut() else {
            break;
        };
        match c {
            _ if escaped => {
                escaped = false;
                current.push(c);
            }
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => parameters.push(String::new()),
            _ => current.push(c),
        }
    }
    parameters
        .iter()
        .skip(1)
        .filter_map(|parameter| {
            let (name, value) = parameter.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("charset")
                .then(|| value.trim().to_owned())
        })
        .collect()
}

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
pub struct BodyBudget(Arc<tokio::sync::Semaphore>);

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
    bytes: Vec<u8>,
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
fn body_too_slow(timeout: Duration) -> Problem {
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

/// A uuid in a path, in any RFC 4122 text form (hyphens or not, braces,
/// either case, and the `urn:uuid:` prefix in either case).
pub fn path_uuid(text: &str) -> Option<Uuid> {
    let urn = text
        .get(..9)
        .filter(|prefix| prefix.eq_ignore_ascii_case("urn:uuid:"));
    let bare = if urn.is_some() { &text[9..] } else { text };
    // One prefix: the parser takes a lower-case one itself.
    Uuid::try_parse(bare)
        .ok()
        .filter(|_| urn.is_none() || bare.len() <= 38)
}

/// The experiment uuid in a path; anything that is not a uuid names no
/// experiment (404, like a missing one).
pub fn experiment_uuid(text: &str) -> Result<Uuid, Problem> {
    path_uuid(text).ok_or_else(|| Problem::unknown_experiment(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_uuids_are_read_in_every_rfc_4122_spelling() {
        let uuid = Uuid::from_u128(0x6f1c1a52_3b0e_4d8e_9f39_0c6f5c1d2a11);
        for text in [
            "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11",
            "6F1C1A52-3B0E-4D8E-9F39-0C6F5C1D2A11",
            "6f1c1a523b0e4d8e9f390c6f5c1d2a11",
            "{6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11}",
            "urn:uuid:6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11",
            "URN:UUID:6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11",
            "Urn:Uuid:6F1C1A52-3B0E-4D8E-9F39-0C6F5C1D2A11",
        ] {
            assert_eq!(path_uuid(text), Some(uuid), "{text}");
        }
        for text in [
            "",
            "urn:uuid:",
            "not-a-uuid",
            "urn:uuid:{x}",
            "ürn:uuid:0",
            "urn:uuid:urn:uuid:6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11",
        ] {
            assert_eq!(path_uuid(text), None, "{text}");
        }
    }

    #[test]
    fn decodes_query_parameters() {
        let uri = "/x?callback=cb&amount=0.5&variant=a%20b+c&bad=%zz&x=%e2%82%ac&end=%4&y=%ff";
        let request = Request::builder().uri_str(uri).finish();
        let mut kept = Request::builder().uri_str(uri).finish();
        Params::keep(&mut kept);
        let params = Params::of(&request);
        // Kept: every reader gets the one parse, equal to a fresh one.
        assert!(Arc::ptr_eq(&Params::of(&kept), &Params::of(&kept)));
        assert!(
            !Arc::ptr_eq(&Params::of(&request), &params),
            "not kept: parsed"
        );
        assert_eq!(Params::of(&kept).0, params.0);
        assert_eq!(params.get("callback"), Some("cb"));
        assert_eq!(params.get("variant"), Some("a b c"));
        assert_eq!(params.get("bad"), Some("%zz"));
        assert_eq!(params.get("x"), Some("€"));
        assert_eq!(params.get("end"), Some("%4"));
        assert_eq!(params.get("y"), Some("\u{fffd}"), "invalid UTF-8 replaced");
        assert_eq!(params.get("missing"), None);
        // Exactly: the same pairs, or none at all when one is not UTF-8.
        let exact = Params::parse_exact("a=1+2&&b&x=%E2%82%AC").expect("UTF-8");
        assert_eq!(exact.0, Params::parse("a=1+2&&b&x=%E2%82%AC").0);
        assert_eq!(exact.get("b"), Some(""));
        assert!(Params::parse_exact("a=1&y=%FF").is_none());
        assert!(Params::parse_exact("%FF=1").is_none(), "names too");
    }

    #[tokio::test]
    async fn bodies_read_or_held_share_one_budget_past_their_first_16_kib() {
        use tokio::io::AsyncWriteExt;
        let budget = BodyBudget::new(64 * 1024);
        let posted = |budget: &BodyBudget| {
            let mut request = Request::builder().method(poem::http::Method::POST).finish();
            request.extensions_mut().insert(budget.clone());
            request
        };
        // What a body holds past its first 16 KiB, in KiB of the budget.
        let share = |b: &ReadBody| (b.bytes.capacity() - UNBUDGETED_BYTES).div_ceil(1024);
        // A client sends 48 KiB and holds its body open: at least 32 KiB of
        // the budget.
        let (mut slow, receiver) = tokio::io::duplex(1 << 20);
        slow.write_all(&[b' '; 48 * 1024]).await.expect("written");
        let held = tokio::spawn({
            let request = posted(&budget);
            async move { read_body(&request, Body::from_async_read(receiver)).await }
        });
        while budget.0.available_permits() > 32 {
            tokio::task::yield_now().await;
        }
        // Another's 60 KiB would need 44 more: refused at once, a 503.
        let big = Body::from(vec![b' '; 60 * 1024]);
        let refused = read_body(&posted(&budget), big).await.expect_err("no room");
        assert_eq!((refused.status, refused.code()), (503, Code::Unavailable));
        // Small bodies never draw on it.
        let small = Body::from(vec![b' '; UNBUDGETED_BYTES]);
        assert_eq!(
            read_body(&posted(&budget), small).await.map(|b| b.len()),
            Ok(UNBUDGETED_BYTES)
        );
        // Read, but still held (a handler parsing it, or waiting for its
        // commit): its share still counts.
        drop(slow);
        let first = held.await.expect("joined").expect("read");
        assert_eq!(first.len(), 48 * 1024);
        assert!(share(&first) >= 32);
        assert_eq!(budget.0.available_permits(), 64 - share(&first));
        let big = Body::from(vec![b' '; 60 * 1024]);
        let refused = read_body(&posted(&budget), big)
            .await
            .expect_err("no room yet");
        assert_eq!(refused.status, 503);
        // Once dropped, its share is back: 60 KiB fits.
        drop(first);
        assert_eq!(budget.0.available_permits(), 64);
        let big = Body::from(vec![b' '; 60 * 1024]);
        assert_eq!(
            read_body(&posted(&budget), big).await.map(|b| b.len()),
            Ok(60 * 1024)
        );
    }

    #[tokio::test]
    async fn a_body_holds_memory_for_the_bytes_that_arrived_not_for_its_declared_length() {
        let budget = BodyBudget::new(64 * 1024);
        let mut request = Request::builder()
            .method(poem::http::Method::POST)
            .header(header::CONTENT_LENGTH, MAX_BODY_BYTES.to_string())
            .finish();
        request.extensions_mut().insert(budget.clone());
        // A megabyte declared, 20 KiB sent.
        let read = read_body(&request, Body::from(vec![b' '; 20 * 1024]))
            .await
            .expect("read");
        assert_eq!(read.len(), 20 * 1024);
        assert!(
            read.bytes.capacity() < 32 * 1024,
            "holds {} bytes",
            read.bytes.capacity()
        );
        // And what it holds past 16 KiB is what the budget counts.
        let share = (read.bytes.capacity() - UNBUDGETED_BYTES).div_ceil(1024);
        assert_eq!(budget.0.available_permits(), 64 - share);
    }

    #[tokio::test]
    async fn a_compressed_body_is_a_415_not_invalid_json() {
        let post = |encoding: &str| {
            Request::builder()
                .method(poem::http::Method::POST)
                .header(header::CONTENT_ENCODING, encoding)
                .finish()
        };
        let refused = read_body(&post("gzip"), Body::from(vec![0x1f, 0x8b]))
            .await
            .map(ReadBody::into_bytes);
        let refused = refused.expect_err("refused");
        assert_eq!(refused.status, 415);
        assert_eq!(
            refused.messages[0].path.as_deref(),
            Some("Content-Encoding")
        );
        let plain = read_body(&post("Identity"), Body::from("{}"))
            .await
            .map(ReadBody::into_bytes);
        assert_eq!(plain, Ok(b"{}".to_vec()));
    }

    #[tokio::test]
    async fn a_body_in_another_charset_or_transfer_coding_is_refused_at_its_header() {
        let post = |name: header::HeaderName, value: &str| {
            Request::builder()
                .method(poem::http::Method::POST)
                .header(name, value)
                .finish()
        };
        for (name, value, status) in [
            (
                header::CONTENT_TYPE,
                "application/json; charset=utf-16",
                415,
            ),
            (
                header::CONTENT_TYPE,
                "text/plain;charset=\"ISO-8859-1\"",
                415,
            ),
            (header::TRANSFER_ENCODING, "gzip, chunked", 501),
            (header::TRANSFER_ENCODING, "chunked, chunked, x", 501),
            (
                header::CONTENT_TYPE,
                "application/json; charset=utf-8; charset=utf-16",
                415,
            ),
            (
                header::CONTENT_TYPE,
                r#"application/json; foo="x;charset=utf-8"; charset=utf-16"#,
                415,
            ),
            (header::CONTENT_ENCODING, "identity, gzip", 415),
        ] {
            let refused = read_body(&post(name.clone(), value), Body::from("{}"))
                .await
                .map(ReadBody::into_bytes);
            let refused = refused.expect_err(value);
            assert_eq!(refused.status, status, "{value}");
            let path = refused.messages[0].path.clone().unwrap_or_default();
            assert!(path.eq_ignore_ascii_case(name.as_str()), "{path}");
        }
        for (name, value) in [
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_TYPE, "text/plain;charset=UTF-8"),
            (
                header::CONTENT_TYPE,
                "application/json; charset=\"utf-8\"; x=y",
            ),
            (header::TRANSFER_ENCODING, "Chunked"),
            (
                header::CONTENT_TYPE,
                r#"application/json; foo="a;charset=utf-16""#,
            ),
        ] {
            let read = read_body(&post(name, value), Body::from("{}"))
                .await
                .map(ReadBody::into_bytes);
            assert_eq!(read, Ok(b"{}".to_vec()), "{value}");
        }
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_a_408() {
        let (_sender, receiver) = tokio::io::duplex(64);
        let mut request = Request::builder().method(poem::http::Method::POST).finish();
        let timeout = Duration::from_millis(50);
        request.extensions_mut().insert(BodyTimeout(timeout));
        let problem = read_body(&request, Body::from_async_read(receiver))
            .await
            .map(ReadBody::into_bytes);
        assert_eq!(problem, Err(body_too_slow(timeout)));
        assert_eq!(body_too_slow(timeout).status, 408);
        assert_eq!(body_too_slow(timeout).code(), Code::Timeout);
    }

    #[tokio::test]
    async fn a_body_in_many_frames_is_read_whole_up_to_the_limit() {
        let post = || Request::builder().method(poem::http::Method::POST).finish();
        // No Content-Length: read as it streams, in frames of a few KiB.
        let body = |len: usize| Body::from_async_read(std::io::Cursor::new(vec![b'x'; len]));
        let whole = read_body(&post(), body(MAX_BODY_BYTES))
            .await
            .map(ReadBody::into_bytes);
        assert_eq!(whole.map(|b| b.len()), Ok(MAX_BODY_BYTES));
        let over = read_body(&post(), body(MAX_BODY_BYTES + 1))
            .await
            .map(ReadBody::into_bytes);
        assert_eq!(over, Err(body_too_large(MAX_BODY_BYTES + 1)));
    }

    #[test]
    fn non_uuids_name_no_experiment() {
        let problem = experiment_uuid("nope").err().map(|p| p.status);
        assert_eq!(problem, Some(404));
        assert!(experiment_uuid("6F9619FF-8B86-D011-B42D-00C04FC964FF").is_ok());
    }
}
