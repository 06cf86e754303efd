//! Reading requests: query parameters, bodies (`body`: at most 1 MiB,
//! refused before reading more, and within [`BODY_TIMEOUT`]), and uuids in
//! paths.

mod body;

pub use body::*;

use std::sync::Arc;

use myna_core::wire::{url_decode, url_decode_exact};
use myna_core::{Code, Message, Problem};
use poem::Request;
use poem::http::header;
use uuid::Uuid;

/// Whether `request` asks for a page: a browser's navigation says
/// `Accept: text/html` (scripts and `fetch` say `*/*` or JSON).
pub fn accepts_html(request: &Request) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .is_some_and(|accept| accept.as_bytes().windows(9).any(|w| w == b"text/html"))
}

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
    if !content_type.contains(';') {
        // No parameters (`application/json`): nothing to copy.
        return Vec::new();
    }
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
    use std::time::Duration;

    use myna_core::event::{MAX_BODY_BYTES, body_too_large};
    use poem::Body;

    use super::body::body_too_slow;
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
