//! Request ids and the access log: every answer carries `X-Request-Id` (the
//! client's, when it sent a safe one, else made here), and every request
//! runs in one tracing span `request` with that id, its method and route
//! (so whatever a handler logs names its request: at `info` with the access
//! log, else at `debug`); when the access log is on (`--access-log`), one
//! line per request inside that span adds its status and duration.
//!
//! Nothing a client sends is logged as it came: the method is a standard
//! one or `other`, the route
//! is the path with every uuid-like segment (experiment, API key, token)
//! replaced by `{uuid}` and other long segments cut, the query string (which
//! may hold `apikey=`) is never logged, and neither are headers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use myna_core::wire;
use poem::http::{HeaderName, HeaderValue, Method};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::Instrument;

use crate::metrics::Metrics;

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The tracing target of the access lines (`RUST_LOG=access=info` also
/// turns them on).
pub const TARGET: &str = "access";

/// Whether a `RUST_LOG` filter has a directive for the access lines'
/// target (`access`, `access=debug`, `access[…]=…`): then it, not
/// `--access-log`, switches them.
pub fn names_target(filter: &str) -> bool {
    filter.split(',').any(|directive| {
        let target = directive.trim().split(['=', '[']).next().unwrap_or("");
        target == TARGET
    })
}

/// Longest request id taken from a client.
const MAX_ID_LEN: usize = 64;

/// Longest route logged, in bytes.
const MAX_ROUTE_LEN: usize = 160;

/// Makes request ids unique within this process and, by a random prefix,
/// across instances: `<prefix>-<counter>`, no randomness per request.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            prefix: uuid::Uuid::new_v4().as_u128() as u32,
            next: AtomicU64::new(1),
        }
    }
}

impl RequestIds {
    /// The process's ids: the routes' and the HTTP layer's answers alike.
    pub fn shared() -> Arc<RequestIds> {
        static SHARED: std::sync::OnceLock<Arc<RequestIds>> = std::sync::OnceLock::new();
        SHARED.get_or_init(Arc::default).clone()
    }

    /// The id of `request`: its own `X-Request-Id` if that is safe to log
    /// and echo (1 to 64 of `A-Z a-z 0-9 - _ . :`), else a new one.
    pub fn of(&self, request: &Request) -> String {
        self.of_headers(request.headers())
    }

    /// The id of a request with `headers` (as [`RequestIds::of`]).
    pub fn of_headers(&self, headers: &poem::http::HeaderMap) -> String {
        let given = headers
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|id| safe_id(id));
        match given {
            Some(id) => id.to_owned(),
            None => self.new_id(),
        }
    }

    /// A new id.
    pub fn new_id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // As `format!("{prefix:08x}-{n:x}")`, without the formatting
        // machinery (every request takes one).
        let mut id = String::with_capacity(25);
        wire::push_hex(&mut id, u64::from(self.prefix), 8);
        id.push('-');
        wire::push_hex(&mut id, n, 1);
        id
    }
}

/// Marks an answer the HTTP layer made itself (a request head it refused,
/// a connection over the limit): its `X-Request-Id` (the client's when
/// `headers` hold a safe one), and its access line (no route: the request
/// never reached one).
pub fn answered_before_routes(
    response: &mut Response,
    headers: Option<&poem::http::HeaderMap>,
    code: &str,
) {
    let ids = RequestIds::shared();
    let id = headers.map_or_else(|| ids.new_id(), |h| ids.of_headers(h));
    let status = response.status().as_u16();
    tracing::info!(target: TARGET, id = %id, status, code, "answered by the HTTP layer");
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
}

/// Whether a client's request id may be logged and echoed.
pub fn safe_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The route of a path, for the log: uuid-like segments become `{uuid}`,
/// segments of other than `A-Z a-z 0-9 - _ .` become `{…}`, and the whole is
/// cut at [`MAX_ROUTE_LEN`].
pub fn route_of(path: &str) -> String {
    let mut route = String::with_capacity(path.len().min(MAX_ROUTE_LEN));
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            route.push('/');
        }
        if uuid::Uuid::try_parse(segment).is_ok() {
            route.push_str("{uuid}");
        } else if segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && segment.len() <= 40
        {
            route.push_str(segment);
        } else {
            route.push_str("{…}");
        }
        if route.len() > MAX_ROUTE_LEN {
            route.truncate(MAX_ROUTE_LEN);
            route.push('…');
            break;
        }
    }
    route
}

/// The span a request runs in, its method a standard one or `other` (as
/// the metrics' label: a made-up method of 60 KB is not logged whole). At
/// `info`, as the access line is, when the access log is on
/// (`--access-log`, or `RUST_LOG` naming the `access` target); else at
/// `debug`, so that by default (`info`, no access log) it
/// is never made: the log layer's work for a span (its fields formatted,
/// entered and left at every poll, closed) cost about 6 % more instructions
/// per record request (`scripts/bench-instructions`), for log lines a
/// request rarely writes. Only what is known as
/// the request opens is in it: the access line has the status and duration
/// as its own fields.
fn request_span(id: &str, method: &Method, route: &str) -> tracing::Span {
    let method = crate::metrics::method_label(method);
    if tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        // Its target the access lines': on with them whatever the level
        // of the rest (`RUST_LOG=warn --access-log`).
        tracing::info_span!(target: TARGET, "request", id = %id, method = %method, route = %route)
    } else {
        tracing::debug_span!("request", id = %id, method = %method, route = %route)
    }
}

/// The middleware: runs each request inside its `request` span, answers
/// with its `X-Request-Id`, and logs the access line (target [`TARGET`],
/// off unless the log filter turns it on: `--access-log`), and counts the
/// request in the metrics (route, method, status, duration).
#[derive(Debug, Default)]
pub struct AccessLog {
    ids: Arc<RequestIds>,
    metrics: Arc<Metrics>,
}

impl AccessLog {
    /// The middleware, counting requests in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> AccessLog {
        AccessLog {
            ids: RequestIds::shared(),
            metrics,
        }
    }
}

impl<E: Endpoint> Middleware<E> for AccessLog {
    type Output = AccessLogEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AccessLogEndpoint {
            inner,
            ids: self.ids.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// An endpoint wrapped by [`AccessLog`].
#[derive(Debug)]
pub struct AccessLogEndpoint<E> {
    inner: E,
    ids: Arc<RequestIds>,
    metrics: Arc<Metrics>,
}

impl<E: Endpoint> Endpoint for AccessLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        // First of all: the route logged and counted is the one answering.
        crate::request::normalize_path(&mut request);
        let id = self.ids.of(&request);
        let method = request.method().clone();
        let route = route_of(request.uri().path());
        let span = request_span(&id, &method, &route);
        let started = Instant::now();
        let mut response = self
            .inner
            .call(request)
            .instrument(span.clone())
            .await
            .map_or_else(poem::Error::into_response, IntoResponse::into_response);
        let status = response.status().as_u16();
        let took = started.elapsed();
        self.metrics.request(&route, &method, status, took);
        let duration_us = took.as_micros() as u64;
        span.in_scope(|| tracing::info!(target: TARGET, status, duration_us, "answered"));
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_the_prefix_and_the_counter_in_hexadecimal() {
        let ids = RequestIds::default();
        let request = Request::builder().finish();
        let (first, second) = (ids.of(&request), ids.of(&request));
        assert_eq!(first, format!("{:08x}-1", ids.prefix));
        assert_eq!(second, format!("{:08x}-2", ids.prefix));
    }

    #[test]
    fn a_filter_names_the_access_target_only_as_a_directive_of_its_own() {
        for named in [
            "access",
            "access=off",
            "warn, access=info",
            "access[request]=debug",
        ] {
            assert!(names_target(named), "{named}");
        }
        for unnamed in [
            "info",
            "warn,myna_server=info",
            "myna_server::access=debug",
            "accesses",
        ] {
            assert!(!names_target(unnamed), "{unnamed}");
        }
    }
}
