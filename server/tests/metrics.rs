//! Prometheus metrics on their own address (`--metrics-listen`,
//! `MYNA_METRICS_LISTEN`): the real binary under a known load, scraped, its
//! counters moved exactly as the requests did; `/metrics` is not on the
//! API's port, and without the option nothing serves it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{PATIENCE, Server, basic, batch, http, json_call};

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "s3cret-admin-password";
const ENV: [(&str, &str); 2] = [
    ("MYNA_ADMIN_EMAIL", EMAIL),
    ("MYNA_ADMIN_PASSWORD", PASSWORD),
];
const RECORD: &str = "/v2/experiment/{uuid}/record";

/// The metrics address the server logged.
fn metrics_addr(server: &Server) -> SocketAddr {
    let lines = server.wait_for_log("metrics listening on http://");
    let rest = lines[0]
        .split("metrics listening on http://")
        .nth(1)
        .unwrap();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || ".:[]".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].parse().expect("a socket address")
}

/// One scrape: every sample line, by its name and labels as written.
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    fn of(addr: SocketAddr) -> Scrape {
        let (status, text) = http(addr, "GET", "/metrics", "", "").unwrap();
        assert_eq!(status, 200, "{text}");
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    value => value.parse().unwrap_or_else(|_| panic!("a number: {line}")),
                };
                (series.to_owned(), value)
            })
            .collect();
        Scrape { text, samples }
    }

    /// A sample's value (0 when the series was never touched).
    fn value(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }

    fn requests(&self, route: &str, method: &str, status: u16) -> f64 {
        self.value(&format!(
            "myna_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
        ))
    }

    fn has_line(&self, line: &str) -> bool {
        self.text.lines().any(|l| l == line)
    }
}

#[test]
fn counters_move_exactly_as_the_requests_did() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let mut server = Server::start_with(&db, &ENV, &["--metrics-listen", "127.0.0.1:0"], None);
    let metrics = metrics_addr(&server);
    assert_ne!(metrics, server.addr);
    let owner = basic(EMAIL, PASSWORD);

    let before = Scrape::of(metrics);
    assert_eq!(before.value("myna_events_recorded_total"), 0.0);

    let created = json_call(
        server.addr,
        "POST",
        "/v2/experiment",
        &owner,
        r#"{"name": "measured", "visibility": "published", "variants": {"a": {}, "b": {}}}"#,
    );
    let experiment = created["uuid"].as_str().unwrap().to_owned();
    let key = json_call(server.addr, "POST", "/v2/apikey", &owner, "");
    let key = format!("ApiKey {}", key["uuid"].as_str().unwrap());
    let path = format!("/v2/experiment/{experiment}/record");

    // 10 batches with ids, 3 of them sent again (by a path with doubled and
    // trailing slashes, as a page whose API root ends in `/` asks: counted
    // under the route that answered), 4 calls with a wrong key.
    let batches: Vec<_> = (0..10).map(batch).collect();
    let slashed = format!("/{path}/");
    for (n, batch) in batches.iter().chain(&batches[..3]).enumerate() {
        let at = if n < 10 { &path } else { &slashed };
        let (status, body) = http(server.addr, "POST", at, &key, &batch.body).unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let wrong = format!("ApiKey {}", uuid::Uuid::new_v4());
    for batch in &batches[..4] {
        let (status, _) = http(server.addr, "POST", &path, &wrong, &batch.body).unwrap();
        assert_eq!(status, 401);
    }
    // A path of no route: counted as `other`, its text never a label.
    let (status, _) = http(server.addr, "GET", "/v2/experiment/not-an-id", &owner, "").unwrap();
    assert_eq!(status, 404);
    let (status, _) = http(server.addr, "GET", "/wp-login.php", "", "").unwrap();
    assert_eq!(status, 404);

    let events: usize = batches
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(&b.body).unwrap()["events"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    let again: usize = batches[..3]
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(&b.body).unwrap()["events"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();

    let after = Scrape::of(metrics);
    // Every metric is there with its HELP and TYPE (a labelled one once it
    // has a sample).
    for name in [
        "myna_http_requests_total",
        "myna_http_request_duration_seconds",
        "myna_events_recorded_total",
        "myna_record_batches_total",
        "myna_record_batches_deduplicated_total",
        "myna_record_batches_limited_total",
        "myna_commit_batches",
        "myna_commit_events",
        "myna_commit_duration_seconds",
        "myna_commit_queue_depth",
        "myna_storage_errors_total",
        "myna_credentials_refused_total",
        "myna_open_connections",
        "myna_connections_refused_total",
        "myna_weights_recompute_lag_seconds",
    ] {
        assert!(
            after.text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}:\n{}",
            after.text
        );
        assert!(
            after.text.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}"
        );
    }
    assert_eq!(after.requests(RECORD, "POST", 200), 13.0);
    assert_eq!(after.requests(RECORD, "POST", 401), 4.0);
    assert_eq!(after.requests("/v2/experiment", "POST", 200), 1.0);
    assert_eq!(after.requests("/v2/apikey", "POST", 200), 1.0);
    assert_eq!(after.requests("other", "GET", 404), 2.0);
    assert!(!after.text.contains("not-an-id") && !after.text.contains("wp-login"));
    assert!(!after.text.contains(&experiment), "no uuid in a label");

    assert_eq!(after.value("myna_events_recorded_total"), events as f64);
    assert_eq!(after.value("myna_record_batches_total"), 10.0);
    assert_eq!(after.value("myna_record_batches_deduplicated_total"), 3.0);
    assert_eq!(
        after.value("myna_credentials_refused_total{reason=\"invalid\"}"),
        4.0
    );
    assert_eq!(after.value("myna_storage_errors_total"), 0.0);

    // Every batch went through a group commit, counted or not.
    assert_eq!(after.value("myna_commit_batches_sum"), 13.0);
    assert_eq!(
        after.value("myna_commit_events_sum"),
        (events + again) as f64
    );
    let commits = after.value("myna_commit_batches_count");
    assert!((1.0..=13.0).contains(&commits), "{commits} commits");
    assert_eq!(after.value("myna_commit_duration_seconds_count"), commits);
    assert_eq!(after.value("myna_commit_queue_depth"), 0.0);

    // The latency histogram: buckets up to +Inf, cumulative, and a count.
    assert!(after.has_line("# TYPE myna_http_request_duration_seconds histogram"));
    let bucket = |le: &str| {
        after.value(&format!(
            "myna_http_request_duration_seconds_bucket{{route=\"{RECORD}\",le=\"{le}\"}}"
        ))
    };
    assert_eq!(bucket("+Inf"), 17.0);
    assert!(bucket("0.001") <= bucket("0.1") && bucket("0.1") <= bucket("+Inf"));
    assert_eq!(
        after.value(&format!(
            "myna_http_request_duration_seconds_count{{route=\"{RECORD}\"}}"
        )),
        17.0
    );
    let buckets = after
        .text
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                "myna_http_request_duration_seconds_bucket{{route=\"{RECORD}\""
            ))
        })
        .count();
    assert!(buckets > 5, "{buckets} buckets");

    // Reading the experiment recomputes its weights (at most every 250 ms):
    // the lag from the counts' change is observed.
    let started = std::time::Instant::now();
    let read = format!("/v2/experiment/{experiment}");
    loop {
        json_call(server.addr, "GET", &read, &key, "");
        if Scrape::of(metrics).value("myna_weights_recompute_lag_seconds_count") >= 1.0 {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the weights were never recomputed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // An open connection shows (waiting, not timing: it shows at once).
    let held = TcpStream::connect(server.addr).unwrap();
    let started = std::time::Instant::now();
    while Scrape::of(metrics).value("myna_open_connections") < 1.0 {
        assert!(
            started.elapsed() < PATIENCE,
            "the open connection never showed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(held);

    // The scrapes themselves are not counted as API requests.
    assert_eq!(Scrape::of(metrics).requests("other", "GET", 200), 0.0);

    // Stopped at shutdown with the server.
    server.terminate();
    assert!(TcpStream::connect(metrics).is_err(), "metrics stopped too");
}

/// The whole answer to `request_line` (e.g. `DELETE /metrics`).
fn raw_of(addr: SocketAddr, request_line: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{request_line} HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// The head of a GET answer (status line and header fields).
fn head_of(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split_once("\r\n\r\n")
        .map_or(answer.clone(), |(head, _)| format!("{head}\r\n"))
}

#[test]
fn metrics_are_only_on_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let env = [ENV[0], ENV[1], ("MYNA_METRICS_LISTEN", "127.0.0.1:0")];
    let mut server = Server::start_with(&db, &env, &[], None);
    let metrics = metrics_addr(&server);

    // Not on the API's port: the usual 404 problem.
    let (status, body) = http(server.addr, "GET", "/metrics", "", "").unwrap();
    assert_eq!(status, 404);
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert!(problem["messages"].is_array(), "a Myna problem: {body}");
    // The metrics port serves nothing else.
    let (status, _) = http(metrics, "GET", "/v2/experiment", "", "").unwrap();
    assert_eq!(status, 404);
    let (status, _) = http(metrics, "GET", "/", "", "").unwrap();
    assert_eq!(status, 404);
    let (status, _) = http(metrics, "POST", "/metrics", "", "").unwrap();
    assert_eq!(status, 405);
    // A 405 says what is allowed (RFC 9110).
    let answer = raw_of(metrics, "DELETE /metrics");
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nallow: get, head\r\n"),
        "{answer}"
    );
    // Its answers, problems included, are never sniffed, as the API's.
    for path in ["/metrics", "/nothing"] {
        let head = head_of(metrics, path);
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\nx-content-type-options: nosniff\r\n"),
            "{path}: {head}"
        );
    }
    server.terminate();
}

#[test]
fn without_the_option_nothing_serves_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let mut server = Server::start(&db, &ENV);
    let (status, _) = http(server.addr, "GET", "/healthz", "", "").unwrap();
    assert_eq!(status, 200);
    server.terminate();
    let log = server.log.lock().unwrap();
    assert!(!log.iter().any(|line| line.contains("metrics")), "{log:#?}");
}
