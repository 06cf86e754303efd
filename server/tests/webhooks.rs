//! Webhooks in the real binary: its own background rounds find a change of
//! decision and post it, signed, to a receiver on a local port; another
//! receiver that never answers holds no record call up, and SIGTERM still
//! stops the server cleanly with that delivery in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

mod common;
use common::{PATIENCE, Server, basic, json_call};

/// One request a receiver got: its head and body.
struct Received {
    head: String,
    body: Vec<u8>,
}

/// A receiver on 127.0.0.1: each request sent on `requests`; answered 200,
/// or (`hang`) never answered, its connection held open.
fn receiver(hang: bool) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let (requests, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let Some(request) = read_request(&mut stream) else {
                continue;
            };
            if requests.send(request).is_err() {
                return;
            }
            if hang {
                held.push(stream);
            } else {
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            }
        }
    });
    (url, received)
}

fn read_request(stream: &mut TcpStream) -> Option<Received> {
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    let end = loop {
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buffer[..n]);
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let mut body = bytes[end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&buffer[..n]);
    }
    Some(Received { head, body })
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[test]
fn the_binary_posts_changes_by_itself_and_a_hanging_receiver_holds_nothing_up() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MYNA_ADMIN_EMAIL", "me@example.com"),
        ("MYNA_ADMIN_PASSWORD", "change-me"),
    ];
    let mut server = Server::start(&dir.path().join("myna.db"), &env);
    let addr = server.addr;
    let me = basic("me@example.com", "change-me");

    let (ok_url, delivered) = receiver(false);
    let (hang_url, held) = receiver(true);
    let hook = json_call(
        addr,
        "POST",
        "/v2/webhook",
        &me,
        &json!({ "url": ok_url }).to_string(),
    );
    let secret = hook["secret"].as_str().unwrap().to_owned();
    json_call(
        addr,
        "POST",
        "/v2/webhook",
        &me,
        &json!({ "url": hang_url }).to_string(),
    );

    let experiment = json_call(
        addr,
        "POST",
        "/v2/experiment",
        &me,
        &json!({"name": "hooked", "visibility": "published",
                "variants": {"a": {}, "b": {}}})
        .to_string(),
    );
    let uuid = experiment["uuid"].as_str().unwrap().to_owned();
    let record = format!("/v2/experiment/{uuid}/record");
    // Rewards without views: a failing check, told on the next round.
    let rewards = json!({"events": [{"typename": "reward", "variant": "b", "amount": 1.0}]});
    json_call(addr, "POST", &record, &me, &rewards.to_string());

    let got = delivered.recv_timeout(PATIENCE).expect("a delivery");
    assert!(
        got.head.starts_with("post /events http/1.1"),
        "{}",
        got.head
    );
    assert!(got.head.contains("content-type: application/json"));
    let header = format!("myna-signature: {}", signature(&secret, &got.body));
    assert!(got.head.contains(&header), "{}", got.head);
    let event: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(event["event"], "health-failing");
    assert_eq!(event["experiment"], uuid.as_str());

    // The other receiver holds its delivery; records are answered meanwhile.
    held.recv_timeout(PATIENCE)
        .expect("the hanging receiver's delivery");
    let views = json!({"events": [{"typename": "view", "variant": "a"}]});
    for _ in 0..20 {
        json_call(addr, "POST", &record, &me, &views.to_string());
    }
    let form = json_call(addr, "GET", &format!("/v2/experiment/{uuid}"), &me, "");
    assert_eq!(form["variants"]["a"]["views"], 20);
    // One change, one delivery each.
    assert!(delivered.recv_timeout(Duration::from_millis(200)).is_err());

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(server.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    server.assert_stops_cleanly();
}

/// A graceful stop waits for a delivery under way: the receiver's answer is
/// stored, so the restarted server does not send the event again (a
/// delivery cut short is claimed but not stored, and sent again a minute
/// later).
#[test]
fn sigterm_lets_a_delivery_under_way_end_and_stores_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let env = [
        ("MYNA_ADMIN_EMAIL", "me@example.com"),
        ("MYNA_ADMIN_PASSWORD", "change-me"),
    ];
    let mut server = Server::start(&db, &env);
    let addr = server.addr;
    let me = basic("me@example.com", "change-me");
    // A receiver that answers 204 two seconds after a request arrives.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let (arrived, arrivals) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            if read_request(&mut stream).is_none() || arrived.send(()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(2));
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    json_call(
        addr,
        "POST",
        "/v2/webhook",
        &me,
        &json!({ "url": url }).to_string(),
    );
    let experiment = json_call(
        addr,
        "POST",
        "/v2/experiment",
        &me,
        &json!({"name": "hooked", "visibility": "published", "variants": {"a": {}}}).to_string(),
    );
    let record = format!(
        "/v2/experiment/{}/record",
        experiment["uuid"].as_str().unwrap()
    );
    // A reward without a view: a failing check, told on the next round.
    let rewards = json!({"events": [{"typename": "reward", "variant": "a", "amount": 1.0}]});
    json_call(addr, "POST", &record, &me, &rewards.to_string());

    arrivals.recv_timeout(PATIENCE).expect("a delivery");
    server.terminate();
    let stored: (i64, Option<i64>, Option<i64>) = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT attempts, last_status, delivered_ms FROM webhook_deliveries",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(stored.0, 1, "one attempt");
    assert_eq!(stored.1, Some(204), "its answer stored");
    assert!(stored.2.is_some(), "delivered: not to be sent again");
}
