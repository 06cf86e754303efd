//! Webhooks: `/v2/webhook` and its access rules, and deliveries to a real
//! receiver on a local port (a raw HTTP/1.1 listener in the test): the
//! signature checked with the secret the create answered, one delivery per
//! change however often the watcher runs, failures retried after the
//! back-off (the manual clock moved), and a receiver that never answers
//! while records go on. The watcher and the sender are driven by hand
//! (`check_now`, `deliver_now`): the test app starts no background round.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use myna_server::service::webhooks::{
    HOLD_MS, MAX_ATTEMPTS, SEND_EVERY, check_now, deliver_now, retry_after_ms, send,
};
use myna_server::state::WebhookWatch;
use myna_server::storage::Delivery;
use poem::http::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::harness::{Harness, START_MS, Who};

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// 500 to the first `n` requests, then 200.
    FailFirst(usize),
    /// Reads the request and never answers (the connection stays open).
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    head: String,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A webhook receiver on 127.0.0.1, one request per connection.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = got.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let Some(request) = read_request(&mut stream).await else {
                    continue;
                };
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(request);
                    seen.len()
                };
                match mode {
                    Mode::Hang => held.push(stream),
                    Mode::FailFirst(failing) => {
                        let status = if n <= failing {
                            "500 Internal Server Error"
                        } else {
                            "200 OK"
                        };
                        let answer = format!(
                            "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        let _ = stream.write_all(answer.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    }
                }
            }
        });
        Receiver { url, got, task }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// Reads one request: the head, then `Content-Length` bytes of body.
async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    let end = loop {
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buffer[..n]);
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut request = Received {
        head,
        body: bytes[end + 4..].to_vec(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    while request.body.len() < length {
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        request.body.extend_from_slice(&buffer[..n]);
    }
    Some(request)
}

/// Registers a webhook for the owner: its uuid and secret.
async fn register(h: &Harness, url: &str) -> (Uuid, String) {
    let answer = h
        .post("/v2/webhook", Who::Owner, json!({ "url": url }))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let json = answer.json();
    let uuid = Uuid::parse_str(json["uuid"].as_str().unwrap()).unwrap();
    (uuid, json["secret"].as_str().unwrap().to_owned())
}

/// An experiment of the owner whose verdict needs only 10 views a variant.
async fn quick_experiment(h: &Harness) -> Uuid {
    quick_experiment_of(h, Who::Owner).await
}

/// An experiment of `who`'s account whose verdict needs only 10 views a
/// variant.
async fn quick_experiment_of(h: &Harness, who: Who) -> Uuid {
    let answer = h
        .post(
            "/v2/experiment",
            who,
            json!({"name": "hooked", "visibility": "published",
                   "settings": {"myna.decision.minViews": 10},
                   "variants": {"a": {}, "b": {}}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    Uuid::parse_str(answer.json()["uuid"].as_str().unwrap()).unwrap()
}

/// Records `views` views and `rewards` rewards of 1 for each `(variant,
/// views, rewards)`, as the owner's API key.
async fn record(h: &Harness, uuid: Uuid, counts: &[(&str, usize, usize)]) {
    record_as(h, Who::Key, uuid, counts).await;
}

/// [`record`] as `who` (an API key).
async fn record_as(h: &Harness, who: Who, uuid: Uuid, counts: &[(&str, usize, usize)]) {
    let mut events = Vec::new();
    for &(variant, views, rewards) in counts {
        for _ in 0..views {
            events.push(json!({"typename": "view", "variant": variant, "timestamp": START_MS}));
        }
        for _ in 0..rewards {
            events.push(
                json!({"typename": "reward", "variant": variant, "amount": 1.0,
                               "timestamp": START_MS}),
            );
        }
    }
    let answer = h
        .post(
            &format!("/v2/experiment/{uuid}/record"),
            who,
            json!({ "events": events }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

async fn deliveries(h: &Harness) -> Vec<Delivery> {
    let mut listed = h.storage.deliveries(h.owner.account, 1000).await.unwrap();
    listed.reverse();
    listed
}

fn events(listed: &[Delivery]) -> Vec<&str> {
    listed.iter().map(|d| d.event.as_str()).collect()
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[tokio::test]
async fn webhooks_are_the_owners_alone_and_listed_without_secrets() {
    let h = Harness::new().await;
    let (uuid, secret) = register(&h, "https://example.com/hook").await;
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));

    let listed = h.get("/v2/webhook", Who::Owner).await;
    assert_eq!(listed.status, StatusCode::OK);
    let results = listed.json()["results"].clone();
    assert_eq!(results.as_array().map(Vec::len), Some(1));
    assert_eq!(results[0]["typename"], "webhook");
    assert_eq!(results[0]["uuid"], uuid.to_string());
    assert_eq!(results[0]["url"], "https://example.com/hook");
    assert!(!listed.text.contains(&secret), "a listed secret");
    assert!(results[0].get("secret").is_none());

    // API keys and strangers get nothing; another account sees none.
    let body = json!({ "url": "https://example.com/other" });
    for (who, status) in [(Who::Nobody, 401), (Who::Key, 403)] {
        assert_eq!(h.get("/v2/webhook", who).await.status.as_u16(), status);
        let create = h.post("/v2/webhook", who, body.clone()).await;
        assert_eq!(create.status.as_u16(), status);
        let delete = h
            .send(Method::DELETE, &format!("/v2/webhook/{uuid}"), who, None)
            .await;
        assert_eq!(delete.status.as_u16(), status);
    }
    let theirs = h.get("/v2/webhook", Who::Other).await;
    assert_eq!(theirs.json()["results"], json!([]));
    let delete = h
        .send(
            Method::DELETE,
            &format!("/v2/webhook/{uuid}"),
            Who::Other,
            None,
        )
        .await;
    assert_eq!(delete.status, StatusCode::NOT_FOUND);
    assert_eq!(delete.code().as_deref(), Some("not-found"));

    let delete = h
        .send(
            Method::DELETE,
            &format!("/v2/webhook/{uuid}"),
            Who::Owner,
            None,
        )
        .await;
    assert_eq!(delete.status, StatusCode::OK);
    assert_eq!(delete.json()["typename"], "ok");
    let listed = h.get("/v2/webhook", Who::Owner).await;
    assert_eq!(listed.json()["results"], json!([]));
}

#[tokio::test]
async fn bad_urls_and_an_eleventh_webhook_are_problems() {
    let h = Harness::new().await;
    for url in [
        json!("ftp://example.com/"),
        json!("https://user:secret@example.com/"),
        json!("not a url"),
        json!(format!("https://example.com/{}", "a".repeat(2048))),
        json!(42),
    ] {
        let answer = h
            .post("/v2/webhook", Who::Owner, json!({ "url": url }))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(answer.json()["messages"][0]["path"], "url", "{url}");
    }
    let missing = h.post("/v2/webhook", Who::Owner, json!({})).await;
    assert_eq!(missing.code().as_deref(), Some("missing-field"));
    // A URL registered already (a form posted twice): every event would go
    // to it twice.
    register(&h, "https://example.com/0").await;
    let again = h
        .post(
            "/v2/webhook",
            Who::Owner,
            json!({ "url": "https://example.com/0" }),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert!(again.text.contains("already"), "{}", again.text);
    for i in 1..10 {
        register(&h, &format!("https://example.com/{i}")).await;
    }
    let answer = h
        .post(
            "/v2/webhook",
            Who::Owner,
            json!({ "url": "https://example.com/11" }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.code().as_deref(), Some("conflict"));
    assert!(answer.text.contains("at most 10"), "{}", answer.text);
    let listed = h.get("/v2/webhook", Who::Owner).await;
    assert_eq!(listed.json()["results"].as_array().map(Vec::len), Some(10));
}

#[tokio::test]
async fn a_verdict_change_is_delivered_once_and_signed() {
    let h = Harness::new().await;
    let receiver = Receiver::start(Mode::FailFirst(0)).await;
    let (_, secret) = register(&h, &receiver.url).await;
    let uuid = quick_experiment(&h).await;

    // The first look stores the verdict (collecting) without telling.
    assert_eq!(check_now(&h.state).await.unwrap(), 0);
    record(&h, uuid, &[("a", 200, 150), ("b", 200, 10)]).await;
    // However often the watcher looks, the change is one event.
    for _ in 0..3 {
        check_now(&h.state).await.unwrap();
    }
    let listed = deliveries(&h).await;
    assert_eq!(events(&listed), ["verdict-changed"]);

    assert_eq!(deliver_now(&h.state).await.unwrap(), 1);
    assert_eq!(deliver_now(&h.state).await.unwrap(), 0);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let request = &got[0];
    assert!(
        request.head.starts_with("POST /hook HTTP/1.1"),
        "{}",
        request.head
    );
    assert_eq!(
        request.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        request.header("myna-signature"),
        Some(signature(&secret, &request.body))
    );
    let event = request.json();
    assert_eq!(event["typename"], "event");
    assert_eq!(event["event"], "verdict-changed");
    assert_eq!(event["experiment"], uuid.to_string());
    assert!(event["at"].as_str().is_some_and(|at| at.ends_with('Z')));
    assert_eq!(event["decision"]["typename"], "decision");
    assert_eq!(event["decision"]["leader"], "a");
    assert_ne!(event["decision"]["verdict"], "collecting");

    let listed = deliveries(&h).await;
    assert_eq!(listed[0].attempts, 1);
    assert_eq!(listed[0].last_status, Some(200));
    assert!(listed[0].delivered_ms.is_some());
    assert_eq!(listed[0].next_ms, None);
}

#[tokio::test]
async fn checks_that_start_and_stop_failing_are_told() {
    let h = Harness::new().await;
    let receiver = Receiver::start(Mode::FailFirst(0)).await;
    register(&h, &receiver.url).await;
    let uuid = quick_experiment(&h).await;
    // Rewards without views: failing from the first look on, which tells.
    record(&h, uuid, &[("b", 0, 3)]).await;
    assert_eq!(check_now(&h.state).await.unwrap(), 1);
    assert_eq!(check_now(&h.state).await.unwrap(), 0);
    record(&h, uuid, &[("b", 5, 0)]).await;
    // Told at the end of the hold that follows a change told.
    assert_eq!(check_now(&h.state).await.unwrap(), 0);
    h.clock.advance(HOLD_MS);
    assert_eq!(check_now(&h.state).await.unwrap(), 1);
    assert_eq!(
        events(&deliveries(&h).await),
        ["health-failing", "health-recovered"]
    );
    assert_eq!(deliver_now(&h.state).await.unwrap(), 2);
    let got = receiver.received();
    let mut told: Vec<String> = got
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    told.sort();
    assert_eq!(told, ["health-failing", "health-recovered"]);
    let failing = got
        .iter()
        .map(Received::json)
        .find(|e| e["event"] == "health-failing")
        .unwrap();
    let checks = failing["decision"]["health"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["typename"] == "rewards-exceed-views" && c["status"] == "failing")
    );
}

/// Whoever holds the public key can move the counts, so flip a health
/// check at will (a reward without a view, then a view): an experiment's
/// changes are told at most once per hold, each against what was told, so
/// a change undone within it is not told at all (an outside probe's flips
/// queued 4,000 events in 22 s and pushed the owner's real one out).
#[tokio::test]
async fn a_health_check_flipped_again_and_again_is_told_once_per_hold() {
    let h = Harness::new().await;
    let receiver = Receiver::start(Mode::FailFirst(0)).await;
    register(&h, &receiver.url).await;
    let uuid = quick_experiment(&h).await;
    record(&h, uuid, &[("b", 0, 1)]).await;
    assert_eq!(check_now(&h.state).await.unwrap(), 1, "failing, told");
    for _ in 0..5 {
        record(&h, uuid, &[("b", 1, 0)]).await; // recovered
        assert_eq!(check_now(&h.state).await.unwrap(), 0);
        record(&h, uuid, &[("b", 0, 1)]).await; // failing again
        assert_eq!(check_now(&h.state).await.unwrap(), 0);
        h.clock.advance(HOLD_MS / 10);
    }
    // The hold over, failing as told: nothing to tell.
    h.clock.advance(HOLD_MS / 2);
    assert_eq!(check_now(&h.state).await.unwrap(), 0);
    // A change after it is told at once.
    record(&h, uuid, &[("b", 10, 0)]).await;
    assert_eq!(check_now(&h.state).await.unwrap(), 1);
    assert_eq!(
        events(&deliveries(&h).await),
        ["health-failing", "health-recovered"]
    );
}

/// More changes in one check than the deliveries kept per webhook: every
/// event is still sent (an outside probe flipped 130 experiments at once
/// with the public key; pruning deleted 21 deliveries never sent).
#[tokio::test]
async fn more_changes_at_once_than_deliveries_kept_are_all_sent() {
    let h = Harness::new().await;
    let receiver = Receiver::start(Mode::FailFirst(0)).await;
    register(&h, &receiver.url).await;
    let mut flipped = Vec::new();
    for _ in 0..130 {
        let uuid = quick_experiment(&h).await;
        record(&h, uuid, &[("b", 0, 1)]).await;
        flipped.push(uuid.to_string());
    }
    assert_eq!(check_now(&h.state).await.unwrap(), 130);
    for _ in 0..200 {
        if deliver_now(&h.state).await.unwrap() == 0 {
            break;
        }
    }
    let mut told: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| {
            r.json()["experiment"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    told.sort();
    flipped.sort();
    assert_eq!(told.len(), 130, "every event sent");
    assert_eq!(told, flipped);
    // Once finished, the latest 100 are kept.
    record(&h, Uuid::parse_str(&flipped[0]).unwrap(), &[("b", 10, 0)]).await;
    h.clock.advance(HOLD_MS);
    assert_eq!(check_now(&h.state).await.unwrap(), 1);
    assert_eq!(deliveries(&h).await.len(), 100);
}

/// The hold after a change told is kept in the database: after a restart
/// (the watcher's memory gone) the next change is held all the same (an
/// outside probe: a change told 32 s after the previous event, after a
/// restart).
#[tokio::test]
async fn the_hold_survives_a_restart() {
    let h = Harness::new().await;
    register(&h, "https://example.com/hook").await;
    let uuid = quick_experiment(&h).await;
    record(&h, uuid, &[("b", 0, 1)]).await;
    assert_eq!(check_now(&h.state).await.unwrap(), 1, "failing, told");
    record(&h, uuid, &[("b", 1, 0)]).await; // recovered
    h.clock.advance(32_000);
    // A restart: the watcher's memory starts empty.
    *h.state.webhook_watch.lock().unwrap() = WebhookWatch::default();
    assert_eq!(
        check_now(&h.state).await.unwrap(),
        0,
        "held after a restart"
    );
    h.clock.advance(HOLD_MS - 32_000);
    assert_eq!(check_now(&h.state).await.unwrap(), 1, "told at its end");
    assert_eq!(
        events(&deliveries(&h).await),
        ["health-failing", "health-recovered"]
    );
}

#[tokio::test]
async fn failed_deliveries_are_retried_after_the_back_off() {
    let h = Harness::new().await;
    let receiver = Receiver::start(Mode::FailFirst(2)).await;
    let (_, secret) = register(&h, &receiver.url).await;
    let uuid = quick_experiment(&h).await;
    record(&h, uuid, &[("b", 0, 1)]).await;
    assert_eq!(check_now(&h.state).await.unwrap(), 1);

    assert_eq!(deliver_now(&h.state).await.unwrap(), 1);
    let listed = deliveries(&h).await;
    assert_eq!(listed[0].last_status, Some(500));
    assert_eq!(listed[0].last_error.as_deref(), Some("answered HTTP 500"));
    // Not due again before its pause is over.
    assert_eq!(deliver_now(&h.state).await.unwrap(), 0);
    h.clock.advance(retry_after_ms(1) - 1);
    assert_eq!(deliver_now(&h.state).await.unwrap(), 0);
    h.clock.advance(1);
    assert_eq!(deliver_now(&h.state).await.unwrap(), 1);
    h.clock.advance(retry_after_ms(2));
    assert_eq!(deliver_now(&h.state).await.unwrap(), 1);

    let listed = deliveries(&h).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].attempts, 3);
    let log: Vec<(i64, Option<u16>)> = h
        .storage
        .attempts(h.owner.account, 10)
        .await
        .unwrap()
        .iter()
        .map(|a| (a.at_ms - START_MS, a.status))
        .collect();
    let second = retry_after_ms(1);
    assert_eq!(
        log,
        [
            (0, Some(500)),
            (second, Some(500)),
            (second + retry_after_ms(2), Some(200))
        ],
        "each attempt, when and how"
    );
    assert_eq!(listed[0].last_status, Some(200));
    assert!(listed[0].delivered_ms.is_some());
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    // Every attempt posts the same signed body.
    for request in &got {
        assert_eq!(request.body, got[0].body);
        assert_eq!(
            request.header("myna-signature"),
            Some(signature(&secret, &request.body))
        );
    }
}

#[tokio::test]
async fn a_receiver_that_is_down_is_given_up_after_six_attempts() {
    let h = Harness::new().await;
    // A port nothing listens on any more.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    register(&h, &url).await;
    let uuid = quick_experiment(&h).await;
    record(&h, uuid, &[("b", 0, 1)]).await;
    check_now(&h.state).await.unwrap();
    for attempt in 1..=MAX_ATTEMPTS {
        assert_eq!(deliver_now(&h.state).await.unwrap(), 1, "attempt {attempt}");
        h.clock.advance(retry_after_ms(attempt));
    }
    h.clock.advance(24 * 3_600_000);
    assert_eq!(deliver_now(&h.state).await.unwrap(), 0);
    let listed = deliveries(&h).await;
    assert_eq!(listed[0].attempts, MAX_ATTEMPTS);
    assert_eq!(listed[0].next_ms, None);
    assert_eq!(listed[0].delivered_ms, None);
    assert_eq!(
        listed[0].last_error.as_deref(),
        Some("could not connect: connection refused")
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_does_not_hold_up_recording() {
    let h = Harness::new().await;
    let receiver = Receiver::start(Mode::Hang).await;
    register(&h, &receiver.url).await;
    let uuid = quick_experiment(&h).await;
    record(&h, uuid, &[("b", 0, 1)]).await;
    check_now(&h.state).await.unwrap();
    let state = h.state.clone();
    let sending = tokio::spawn(async move { deliver_now(&state).await });
    // Wait until the receiver holds the request (it will never answer).
    for _ in 0..500 {
        if !receiver.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.received().len(), 1, "the delivery never arrived");

    // Meanwhile records are answered and counted, and the watcher goes on.
    for _ in 0..20 {
        record(&h, uuid, &[("a", 5, 1)]).await;
    }
    let form = h.complete(uuid).await;
    assert_eq!(form["variants"]["a"]["views"], 100);
    assert_eq!(form["variants"]["a"]["totalReward"], 20.0);
    check_now(&h.state).await.unwrap();
    // The hanging delivery is claimed: no other round sends it meanwhile.
    assert_eq!(deliver_now(&h.state).await.unwrap(), 0);
    assert_eq!(receiver.received().len(), 1);
    sending.abort();
}

/// Waits (up to `seconds`) until `receiver` got `n` requests; whether it did.
async fn arrives(receiver: &Receiver, n: usize, seconds: u64) -> bool {
    for _ in 0..seconds * 50 {
        if receiver.received().len() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A receiver that never answers costs only its own deliveries time: the
/// sender (the background task) starts another account's delivery while
/// that attempt still hangs, not after its 10 s timeout (an outside probe:
/// hanging webhooks of one account delayed another's event by 30 s and
/// more, the sender's batch waiting for its slowest attempt).
#[tokio::test]
async fn a_hanging_receiver_does_not_delay_another_accounts_delivery() {
    let h = Harness::new().await;
    let hanging = Receiver::start(Mode::Hang).await;
    let fast = Receiver::start(Mode::FailFirst(0)).await;
    // The worst one account can do: every webhook it may have hangs, each
    // with two deliveries due (as many attempts as it may have in flight).
    for n in 0..10 {
        register(&h, &format!("{}?n={n}", hanging.url)).await;
    }
    let theirs = h
        .post("/v2/webhook", Who::Other, json!({ "url": fast.url }))
        .await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.text);
    let other = quick_experiment_of(&h, Who::Other).await;
    for _ in 0..2 {
        let mine = quick_experiment(&h).await;
        record(&h, mine, &[("b", 0, 1)]).await;
    }
    assert_eq!(check_now(&h.state).await.unwrap(), 2);
    // Kept until the end: its drop would stop the sender, as a stop does.
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let sender = tokio::spawn(send(h.state.downgrade(), stopping));
    arrives(&hanging, 20, 30).await;
    assert_eq!(hanging.received().len(), 20, "every hanging attempt began");

    record_as(&h, Who::OtherKey, other, &[("b", 0, 1)]).await;
    assert_eq!(check_now(&h.state).await.unwrap(), 1);
    let arrived = arrives(&fast, 1, 30).await;
    // No hanging attempt has an outcome yet: they end at their timeout.
    let hanging_outcome = h.storage.attempts(h.owner.account, 10).await.unwrap();
    sender.abort();
    assert!(arrived, "the other account's delivery never arrived");
    assert!(
        hanging_outcome.is_empty(),
        "the other account's delivery waited for the hanging attempt's end"
    );
}

/// Hanging receivers cannot take every slot of the sender: one webhook
/// has at most two attempts in flight, its other due deliveries wait.
#[tokio::test]
async fn a_webhook_has_at_most_two_attempts_in_flight() {
    let h = Harness::new().await;
    let hanging = Receiver::start(Mode::Hang).await;
    register(&h, &hanging.url).await;
    for _ in 0..3 {
        let uuid = quick_experiment(&h).await;
        record(&h, uuid, &[("b", 0, 1)]).await;
    }
    assert_eq!(check_now(&h.state).await.unwrap(), 3);
    // Kept until the end: its drop would stop the sender, as a stop does.
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let sender = tokio::spawn(send(h.state.downgrade(), stopping));
    arrives(&hanging, 2, 30).await;
    // Several of the sender's rounds later, still two.
    tokio::time::sleep(SEND_EVERY * 3).await;
    let claimed = deliveries(&h)
        .await
        .iter()
        .filter(|d| d.attempts > 0)
        .count();
    let received = hanging.received().len();
    sender.abort();
    assert_eq!((claimed, received), (2, 2));
}

#[tokio::test]
async fn an_unknown_field_of_a_webhook_body_is_a_400_at_its_path_and_creates_nothing() {
    let h = Harness::new().await;
    let misspelt = h
        .post(
            "/v2/webhook",
            Who::Owner,
            json!({"url": "https://example.com/hook", "evnets": ["x"]}),
        )
        .await;
    assert_eq!(
        misspelt.status,
        StatusCode::BAD_REQUEST,
        "{}",
        misspelt.text
    );
    let problem = misspelt.json();
    assert_eq!(problem["messages"][0]["typename"], "invalid-value");
    assert_eq!(problem["messages"][0]["path"], "evnets");
    assert_eq!(
        h.get("/v2/webhook", Who::Owner).await.json()["results"],
        json!([])
    );
    let typed = h
        .post(
            "/v2/webhook",
            Who::Owner,
            json!({"typename": "webhook", "url": "https://example.com/hook"}),
        )
        .await;
    assert_eq!(typed.status, StatusCode::OK, "{}", typed.text);
}
