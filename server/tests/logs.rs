//! The real binary's logs: `--log-format json` gives one JSON object a line;
//! `--access-log` one line per request with its id, method, route, status
//! and duration; every answer carries `X-Request-Id` (the client's when safe,
//! else a new one); passwords, tokens and API keys never appear in the log.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;

mod common;
use common::{Server, basic, json_call};

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "s3cret-admin-password";

/// Sends one request with extra header lines; the whole answer as text.
fn raw(addr: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(format!("{head}Host: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn request_id(answer: &str) -> Option<String> {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .map(|id| id.trim().to_owned())
}

#[test]
fn json_access_log_with_request_ids_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let env = [
        ("MYNA_ADMIN_EMAIL", EMAIL),
        ("MYNA_ADMIN_PASSWORD", PASSWORD),
    ];
    let args = ["--log-format", "json", "--access-log"];
    let mut server = Server::start_with(&db, &env, &args, None);
    let owner = basic(EMAIL, PASSWORD);

    let created = json_call(
        server.addr,
        "POST",
        "/v2/experiment",
        &owner,
        r#"{"name": "logged", "visibility": "published", "variants": {"a": {}, "b": {}}}"#,
    );
    let experiment = created["uuid"].as_str().unwrap().to_owned();
    let key = json_call(server.addr, "POST", "/v2/apikey", &owner, "");
    let api_key = key["uuid"].as_str().unwrap().to_owned();
    let token = json_call(server.addr, "POST", "/v2/user/login", &owner, "");
    let token = token["token"].as_str().unwrap().to_owned();

    // A safe id is echoed; an unsafe one is replaced, never echoed.
    let read = format!("GET /v2/experiment/{experiment}?apikey={api_key}&callback=cb HTTP/1.1\r\n");
    let answer = raw(
        server.addr,
        &format!("{read}X-Request-Id: trace-42.a:b_c\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(request_id(&answer).as_deref(), Some("trace-42.a:b_c"));
    let answer = raw(
        server.addr,
        &format!("{read}X-Request-Id: <script>alert(1)</script>\r\n"),
    );
    let made = request_id(&answer).expect("a request id is made");
    assert!(
        !made.contains('<') && !answer.contains("<script>"),
        "{answer}"
    );
    let other = request_id(&raw(server.addr, &read)).unwrap();
    assert_ne!(made, other, "ids made here are unique");

    // Credentials in every place a client puts them.
    let record = format!(
        "GET /v2/experiment/{experiment}/record?typename=view&variant=a&apikey={api_key} HTTP/1.1\r\n"
    );
    assert!(raw(server.addr, &record).starts_with("HTTP/1.1 200"));
    let bearer = format!("GET /v2/experiment HTTP/1.1\r\nAuthorization: Bearer {token}\r\n");
    assert!(raw(server.addr, &bearer).starts_with("HTTP/1.1 200"));
    let wrong = basic(EMAIL, "wrong-password-123");
    let refused = format!("GET /v2/experiment HTTP/1.1\r\nAuthorization: {wrong}\r\n");
    assert!(raw(server.addr, &refused).starts_with("HTTP/1.1 401"));
    server.terminate();

    let log = server.log.lock().unwrap().clone();
    let lines: Vec<Value> = log
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let access: Vec<&Value> = lines.iter().filter(|l| l["target"] == "access").collect();
    let traced = access
        .iter()
        .find(|l| l["span"]["id"] == "trace-42.a:b_c")
        .expect("the access line of the request with a given id");
    assert_eq!(traced["span"]["method"], "GET");
    assert_eq!(traced["span"]["route"], "/v2/experiment/{uuid}");
    assert_eq!(traced["fields"]["status"], 200);
    assert!(traced["fields"]["duration_us"].as_u64().is_some());
    let recorded = access
        .iter()
        .find(|l| l["span"]["route"] == "/v2/experiment/{uuid}/record")
        .expect("the record's access line");
    assert_eq!(recorded["fields"]["status"], 200);
    assert!(
        access.iter().any(|l| l["fields"]["status"] == 401),
        "refusals are logged too"
    );

    let text = log.join("\n");
    let encoded_password = owner.trim_start_matches("Basic ");
    let encoded_wrong = wrong.trim_start_matches("Basic ");
    for secret in [
        PASSWORD,
        encoded_password,
        encoded_wrong,
        "wrong-password-123",
        &token,
        &api_key,
    ] {
        assert!(!text.contains(secret), "the log holds a secret: {secret}");
    }
}

#[test]
fn a_proxy_without_the_client_address_header_set_is_warned_about_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let env = [
        ("MYNA_ADMIN_EMAIL", EMAIL),
        ("MYNA_ADMIN_PASSWORD", PASSWORD),
    ];
    let server = Server::start(&db, &env);
    let owner = basic(EMAIL, PASSWORD);
    let warnings = || {
        // (The server logs before it answers; the test's reader may lag.)
        std::thread::sleep(std::time::Duration::from_millis(200));
        let log = server.log.lock().unwrap();
        log.iter()
            .filter(|l| l.contains("--client-ip-header is not set"))
            .count()
    };
    // A direct sign-in says nothing; two through a proxy, one warning.
    let direct = raw(
        server.addr,
        &format!("POST /v2/user/login HTTP/1.1\r\nAuthorization: {owner}\r\nContent-Length: 0\r\n"),
    );
    assert!(direct.starts_with("HTTP/1.1 200"), "{direct}");
    assert_eq!(warnings(), 0, "no proxy, no warning");
    for client in ["203.0.113.7", "198.51.100.9"] {
        let answer = raw(
            server.addr,
            &format!(
                "POST /v2/user/login HTTP/1.1\r\nAuthorization: {owner}\r\n\
                 X-Forwarded-For: {client}\r\nContent-Length: 0\r\n"
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    server.wait_for_log("--client-ip-header is not set");
    assert_eq!(warnings(), 1, "warned once");
}

#[test]
fn a_public_url_with_a_path_is_warned_about_for_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let env = [
        ("MYNA_ADMIN_EMAIL", EMAIL),
        ("MYNA_ADMIN_PASSWORD", PASSWORD),
    ];
    let args = ["--public-url", "https://ab.example.com/ab/"];
    let server = Server::start_with(&db, &env, &args, None);
    let warned = server.wait_for_log("has a path");
    assert!(warned[0].contains("dashboard"), "{warned:?}");
    drop(server);
    let args = ["--public-url", "https://ab.example.com/"];
    let server = Server::start_with(&db, &env, &args, None);
    server.wait_for_log("listening on");
    let log = server.log.lock().unwrap().clone();
    assert!(!log.iter().any(|l| l.contains("has a path")), "{log:?}");
}

/// Sends one request on a connection of its own, waiting at most 10 s for
/// the whole answer; the answer, or `None` if it did not come.
fn within_10s(addr: SocketAddr, head: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    Some(String::from_utf8_lossy(&answer).into_owned())
}

#[test]
fn a_log_reader_that_stops_reading_never_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let server = Server::start_with(&db, &[], &["--access-log"], None);
    server.wait_for_log("listening on");
    // Nothing reads the log: its pipe (64 KiB) fills after a few hundred
    // access lines. 2,000 requests are all answered all the same.
    server
        .log_paused
        .store(true, std::sync::atomic::Ordering::Release);
    for i in 0..2_000 {
        let answer = within_10s(
            server.addr,
            &format!("GET /nothing-{i} HTTP/1.1\r\nHost: x\r\n"),
        );
        assert!(
            answer
                .as_deref()
                .is_some_and(|a| a.starts_with("HTTP/1.1 404")),
            "request {i} unanswered: {answer:?}"
        );
    }
    // Read again: the lines queued meanwhile come out.
    server
        .log_paused
        .store(false, std::sync::atomic::Ordering::Release);
    server.wait_for_log("nothing-1999");
}

#[test]
fn the_access_log_is_the_flags_whatever_rust_log_says_and_logs_no_made_up_method() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let count = |server: &Server, text: &str| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let log = server.log.lock().unwrap();
        log.iter().filter(|l| l.contains(text)).count()
    };
    // `RUST_LOG=info` (the default, written out) without the flag: none.
    let server = Server::start_with(&db, &[("RUST_LOG", "info")], &[], None);
    let answer = raw(server.addr, "GET /quiet HTTP/1.1\r\n");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert_eq!(
        count(&server, "/quiet"),
        0,
        "no access line without --access-log"
    );
    drop(server);
    // A filter that quiets the rest (the server's own lines at `info`, for
    // the address it listens on) with the flag: every request, with its id
    // and route.
    let server = Server::start_with(
        &db,
        &[("RUST_LOG", "warn,myna_server=info")],
        &["--access-log", "--log-format", "json"],
        None,
    );
    let answer = raw(
        server.addr,
        "GET /loud HTTP/1.1\r\nX-Request-Id: loud-1\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    server.wait_for_log("/loud");
    let line = server.wait_for_log("loud-1").remove(0);
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["span"]["route"], "/loud", "{line}");
    assert_eq!(line["fields"]["status"], 404, "{line}");
    // A made-up method of 20 KB is logged as `other`, not whole.
    let method = "X".repeat(20_000);
    let answer = raw(server.addr, &format!("{method} /made-up HTTP/1.1\r\n"));
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    let line = server.wait_for_log("/made-up").remove(0);
    assert!(line.len() < 1_000, "{} bytes", line.len());
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["span"]["method"], "other", "{line}");
}

#[test]
fn an_answer_of_the_http_layer_has_a_request_id_and_an_access_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let server = Server::start_with(&db, &[], &["--access-log", "--log-format", "json"], None);
    // A bad Host (the head is read, then refused before any route), the
    // client's id echoed.
    let answer = within_10s(
        server.addr,
        "GET / HTTP/1.1\r\nHost: bad host\r\nX-Request-Id: host-1\r\n",
    )
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(request_id(&answer).as_deref(), Some("host-1"), "{answer}");
    let line: Value = serde_json::from_str(&server.wait_for_log("host-1").remove(0)).unwrap();
    assert_eq!(line["fields"]["status"], 400, "{line}");
    // A head hyper cannot read (a NUL in a header): a new id.
    let answer = within_10s(server.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n").unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let id = request_id(&answer).expect("an id");
    let line: Value = serde_json::from_str(&server.wait_for_log(&id).remove(0)).unwrap();
    assert_eq!(line["fields"]["status"], 400, "{line}");
}
