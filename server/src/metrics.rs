//! Prometheus metrics: what the server counts as it works, and the second
//! listener (`--metrics-listen`) that serves them at `GET /metrics` in the
//! Prometheus text format (0.0.4), away from the public port.
//!
//! Recording is cheap and bounded: counters and gauges are atomics, the
//! histograms here ([`Timer`]) are fixed arrays of atomic buckets (no lock),
//! and labels come from small fixed sets (route templates with `other` for
//! the rest, a handful of methods, the status codes the server answers), so
//! no client can grow the label space. One [`Metrics`] per server, shared by
//! an `Arc`; nothing global.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::listener::TcpAcceptor;
use poem::{EndpointExt, Response, Route, get, handler};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use crate::answer::{error_response, nosniff};
use crate::clock::Clock;

/// The routes requests are counted by (what [`crate::access::route_of`]
/// makes of their paths); any other path counts as [`OTHER`].
const ROUTES: &[&str] = &[
    "/v2/experiment",
    "/v2/experiment/{uuid}",
    "/v2/experiment/{uuid}/reset",
    "/v2/experiment/{uuid}/decision",
    "/v2/experiment/{uuid}/export",
    "/v2/experiment/{uuid}/record",
    "/v2/user/login",
    "/v2/user/logout",
    "/v2/apikey",
    "/v2/apikey/{uuid}",
    "/v2/webhook",
    "/v2/webhook/{uuid}",
    "/v2/openapi.json",
    "/v2/deployment/{uuid}/myna.json",
    "/v2/deployment/{uuid}/myna.js",
    SDK_ROUTE,
    "/healthz",
    "/",
    "/signin",
    "/signout",
    "/experiments/new",
    "/experiments/{uuid}",
    "/experiments/{uuid}/export.csv",
    "/experiments/{uuid}/reset",
    "/experiments/{uuid}/delete",
    "/keys",
    "/keys/{uuid}/revoke",
    "/webhooks",
    "/webhooks/{uuid}/delete",
    "/assets/dashboard.css",
    "/assets/icon.svg",
];

/// The route label of every file of the SDK the server hosts (its version
/// and name are not labels: a client could make up any number of them).
const SDK_ROUTE: &str = "/v2/sdk/{version}/{file}";

/// The route label of every path that is none of [`ROUTES`].
pub const OTHER: &str = "other";

/// The route label of a route (from [`crate::access::route_of`]).
pub fn route_label(route: &str) -> &'static str {
    if route.starts_with("/v2/sdk/") {
        return SDK_ROUTE;
    }
    ROUTES
        .iter()
        .find(|known| **known == route)
        .copied()
        .unwrap_or(OTHER)
}

/// The method label (and the method logged): the standard methods, else
/// `other` (a client may send any token, of any length, as a method).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => OTHER,
    }
}

/// Labels of a request counted.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

/// Labels of a request's duration.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

/// Why a credential check was refused.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials where they are needed (401).
    Missing,
    /// Wrong, unknown, expired or malformed credentials (401).
    Invalid,
    /// Too many failed attempts lately, or too many checks at once (429).
    Limited,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
}

/// Upper bounds of request durations, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of group commit durations, in seconds.
const COMMIT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Upper bounds of group commit sizes (batches, events).
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0, 65536.0,
    200_000.0,
];

/// Upper bounds of the weights' recomputation lag, in seconds.
const LAG_BUCKETS: &[f64] = &[
    0.25, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// A histogram of fixed buckets, each an atomic: observing is a few atomic
/// operations, never a lock. Clones share their values.
#[derive(Debug, Clone)]
pub struct Timer {
    bounds: &'static [f64],
    /// One count per bound, then the one above every bound (not cumulative).
    counts: Arc<[AtomicU64]>,
    /// The sum of the values observed, as `f64` bits.
    sum: Arc<AtomicU64>,
}

impl Timer {
    fn new(bounds: &'static [f64]) -> Timer {
        Timer {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: Arc::default(),
        }
    }

    /// Counts one value.
    pub fn observe(&self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// Counts one duration, in seconds.
    pub fn observe_duration(&self, duration: Duration) {
        self.observe(duration.as_secs_f64());
    }

    /// How many values were observed.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl Default for Timer {
    /// A request latency histogram.
    fn default() -> Timer {
        Timer::new(LATENCY_BUCKETS)
    }
}

impl TypedMetric for Timer {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Timer {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Everything the server counts; see the README's "Metrics" for each.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Timer>,
    /// Events of batches counted (first seen).
    pub events_recorded: Counter,
    /// Batches counted.
    pub batches_recorded: Counter,
    /// Batches acknowledged again without counting (their id was recorded).
    pub batches_deduplicated: Counter,
    /// Batches refused by `--record-limit` (429 `rate-limited`, JSONP's
    /// included).
    pub batches_limited: Counter,
    /// Batches per group commit.
    pub commit_batches: Timer,
    /// Events per group commit.
    pub commit_events: Timer,
    /// Duration of group commits, seconds.
    pub commit_duration: Timer,
    /// Jobs waiting for the commit writer.
    pub queue_depth: Gauge,
    /// Commits that failed for the database's sake.
    pub storage_errors: Counter,
    refusals: Family<RefusalLabels, Counter>,
    /// Open client connections (on the main port).
    pub open_connections: Gauge,
    /// Clients answered 503 at the connection cap with every connection busy.
    pub connections_refused: Counter,
    /// Time from an experiment's counts changing to its weights recomputed.
    pub weights_lag: Timer,
    /// Duration of refreshes from a shared database, seconds.
    pub refresh_duration: Timer,
    /// Experiments read by refreshes from a shared database.
    pub refresh_experiments: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under its name.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("myna");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let durations = Family::<RouteLabels, Timer>::default();
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (to the answer's head), by route template",
            Unit::Seconds,
            durations.clone(),
        );
        let events_recorded = Counter::default();
        registry.register(
            "events_recorded",
            "Events of record batches counted (durably stored)",
            events_recorded.clone(),
        );
        let batches_recorded = Counter::default();
        registry.register(
            "record_batches",
            "Record batches counted (first seen)",
            batches_recorded.clone(),
        );
        let batches_deduplicated = Counter::default();
        registry.register(
            "record_batches_deduplicated",
            "Record batches acknowledged again without counting (batch id already recorded)",
            batches_deduplicated.clone(),
        );
        let batches_limited = Counter::default();
        registry.register(
            "record_batches_limited",
            "Record batches refused by --record-limit (429 rate-limited; JSONP's, answered 200, included)",
            batches_limited.clone(),
        );
        let commit_batches = Timer::new(SIZE_BUCKETS);
        registry.register(
            "commit_batches",
            "Record batches per group commit",
            commit_batches.clone(),
        );
        let commit_events = Timer::new(SIZE_BUCKETS);
        registry.register(
            "commit_events",
            "Events per group commit",
            commit_events.clone(),
        );
        let commit_duration = Timer::new(COMMIT_BUCKETS);
        registry.register_with_unit(
            "commit_duration",
            "Time of a group commit (one transaction)",
            Unit::Seconds,
            commit_duration.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "commit_queue_depth",
            "Jobs (record batches, changes) waiting for the commit writer",
            queue_depth.clone(),
        );
        let storage_errors = Counter::default();
        registry.register(
            "storage_errors",
            "Commits that failed for the database's sake (answered 503)",
            storage_errors.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "credentials_refused",
            "Credential checks refused: reason missing or invalid (401), limited (429)",
            refusals.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open on the main port",
            open_connections.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Clients answered 503 at the connection cap, every connection busy",
            connections_refused.clone(),
        );
        let weights_lag = Timer::new(LAG_BUCKETS);
        registry.register_with_unit(
            "weights_recompute_lag",
            "Time from an experiment's counts changing to its weights recomputed \
             (at the next read, at most every 250 ms)",
            Unit::Seconds,
            weights_lag.clone(),
        );
        let refresh_duration = Timer::new(COMMIT_BUCKETS);
        registry.register_with_unit(
            "refresh_duration",
            "Time of a refresh from a shared database (PostgreSQL): what changed \
             since the previous one read and taken into the cache",
            Unit::Seconds,
            refresh_duration.clone(),
        );
        let refresh_experiments = Counter::default();
        registry.register(
            "refresh_experiments",
            "Experiments read by refreshes from a shared database (all of them at \
             start, then those that changed)",
            refresh_experiments.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            events_recorded,
            batches_recorded,
            batches_deduplicated,
            batches_limited,
            commit_batches,
            commit_events,
            commit_duration,
            queue_depth,
            storage_errors,
            refusals,
            open_connections,
            connections_refused,
            weights_lag,
            refresh_duration,
            refresh_experiments,
        }
    }

    /// Counts one answered request of `route` (see
    /// [`crate::access::route_of`]).
    pub fn request(&self, route: &str, method: &Method, status: u16, took: Duration) {
        let route = route_label(route);
        let labels = RequestLabels {
            route,
            method: method_label(method),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&RouteLabels { route })
            .observe_duration(took);
    }

    /// Counts a refused credential check.
    pub fn refused(&self, why: Refusal) {
        let reason = match why {
            Refusal::Missing => "missing",
            Refusal::Invalid => "invalid",
            Refusal::Limited => "limited",
        };
        self.refusals.get_or_create(&RefusalLabels { reason }).inc();
    }

    /// Counts the outcome of a credential check: a 401 or 429 problem is a
    /// refusal; other failures (503) are not the credentials' fault.
    pub fn checked<T>(&self, result: &Result<T, myna_core::Problem>, missing: bool) {
        if let Err(problem) = result {
            match problem.status {
                401 if missing => self.refused(Refusal::Missing),
                401 => self.refused(Refusal::Invalid),
                429 => self.refused(Refusal::Limited),
                _ => {}
            }
        }
    }

    /// The exposition, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// The `Content-Type` of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[handler]
fn scrape(metrics: poem::web::Data<&Arc<Metrics>>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, CONTENT_TYPE)
        .body(metrics.encode())
}

/// The metrics listener, bound: serve it with [`MetricsServer::serve`].
#[derive(Debug)]
pub struct MetricsServer {
    listener: tokio::net::TcpListener,
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` (port 0: a free port).
    pub async fn bind(addr: &str) -> std::io::Result<MetricsServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Ok(MetricsServer { listener, addr })
    }

    /// Serves `GET /metrics` (`HEAD` its headers; another method a 405
    /// problem with `Allow`, another path a 404 problem), each answer
    /// `nosniff` as the API's are, until `shutdown` resolves.
    pub async fn serve(
        self,
        metrics: Arc<Metrics>,
        clock: Clock,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let app = Route::new()
            .at("/metrics", get(scrape))
            .data(metrics)
            .catch_all_error(move |error| {
                let now = clock.now_ms();
                async move { error_response(&error, now) }
            })
            .map_to_response()
            .map(|mut response: Response| async move {
                if response.status() == StatusCode::METHOD_NOT_ALLOWED {
                    // What a client may do here instead (RFC 9110: a 405 says).
                    response
                        .headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                }
                nosniff(response)
            });
        poem::Server::new_with_acceptor(TcpAcceptor::from_tokio(self.listener)?)
            .idle_timeout(Duration::from_secs(60))
            .run_with_graceful_shutdown(app, shutdown, Some(Duration::from_secs(5)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates_and_the_rest_is_other() {
        assert_eq!(
            route_label("/v2/experiment/{uuid}/record"),
            "/v2/experiment/{uuid}/record"
        );
        assert_eq!(route_label("/v2/experiment/abc/record"), OTHER);
        assert_eq!(route_label("/wp-admin/{…}"), OTHER);
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").unwrap_or_default()),
            OTHER
        );
    }

    /// Every path `.at(…)` mounts in `source`, as `route_of` writes it
    /// (`:uuid` as `{uuid}`: every path parameter is a uuid, an API key
    /// `:key` too).
    fn mounted(source: &str) -> Vec<String> {
        source
            .split(".at(")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next())
            .map(|path| path.replace(":uuid", "{uuid}").replace(":key", "{uuid}"))
            .collect()
    }

    #[test]
    fn every_mounted_route_has_its_own_label() {
        let api = mounted(include_str!("routes/mod.rs"));
        let pages = mounted(include_str!("dashboard/mod.rs"));
        assert!(api.len() >= 10 && pages.len() >= 10, "{api:?} {pages:?}");
        let unlabelled: Vec<&String> = api
            .iter()
            .chain(&pages)
            .filter(|route| route_label(route) == OTHER)
            .collect();
        assert!(unlabelled.is_empty(), "counted as `other`: {unlabelled:?}");
    }

    #[test]
    fn the_exposition_has_help_type_and_cumulative_buckets() {
        let metrics = Metrics::new();
        let route = "/v2/experiment/{uuid}/record";
        metrics.request(route, &Method::POST, 200, Duration::from_micros(700));
        metrics.request(route, &Method::POST, 200, Duration::from_millis(30));
        metrics.request("/secret/path", &Method::GET, 404, Duration::from_millis(1));
        metrics.refused(Refusal::Invalid);
        metrics.events_recorded.inc_by(3);
        let text = metrics.encode();
        for line in [
            "# HELP myna_http_requests_total HTTP requests answered, by route template, method and status.",
            "# TYPE myna_http_requests_total counter",
            "myna_http_requests_total{route=\"/v2/experiment/{uuid}/record\",method=\"POST\",status=\"200\"} 2",
            "myna_http_requests_total{route=\"other\",method=\"GET\",status=\"404\"} 1",
            "# TYPE myna_http_request_duration_seconds histogram",
            "myna_http_request_duration_seconds_bucket{route=\"/v2/experiment/{uuid}/record\",le=\"0.0005\"} 0",
            "myna_http_request_duration_seconds_bucket{route=\"/v2/experiment/{uuid}/record\",le=\"0.001\"} 1",
            "myna_http_request_duration_seconds_bucket{route=\"/v2/experiment/{uuid}/record\",le=\"0.05\"} 2",
            "myna_http_request_duration_seconds_bucket{route=\"/v2/experiment/{uuid}/record\",le=\"+Inf\"} 2",
            "myna_http_request_duration_seconds_count{route=\"/v2/experiment/{uuid}/record\"} 2",
            "myna_credentials_refused_total{reason=\"invalid\"} 1",
            "myna_events_recorded_total 3",
            "# TYPE myna_commit_queue_depth gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(!text.contains("/secret/path"));
    }

    /// What counting one request costs (route lookup, counter, histogram),
    /// printed, not asserted: `cargo test --release -p myna-server --lib
    /// recording_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a test"]
    fn recording_cost() {
        let metrics = Metrics::new();
        let routes = [
            "/v2/experiment/{uuid}/record",
            "/v2/experiment/{uuid}",
            "/x/{…}",
        ];
        let n = 3_000_000u32;
        let started = std::time::Instant::now();
        for i in 0..n {
            let route = routes[(i % 3) as usize];
            metrics.request(
                route,
                &Method::POST,
                200,
                Duration::from_micros(u64::from(i % 5000)),
            );
        }
        let per = started.elapsed() / n;
        println!("counting one request: {per:?}");
    }
}
