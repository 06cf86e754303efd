//! `/healthz` with a database that cannot be written: the real binary on an
//! SQLite file whose size is capped (`RLIMIT_FSIZE`, as a full disk does:
//! writes past the cap fail), so a load balancer stops sending it traffic
//! until writes work again.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{Server, basic, http, json_call};
use serde_json::json;
use uuid::Uuid;

const EMAIL: &str = "me@example.com";
const PASSWORD: &str = "change-me";
/// Bytes any one file of the server may grow to while the cap holds.
const FILE_CAP: u64 = 1_500_000;

/// A batch of `n` views of `a`, with its own id.
fn views(n: usize) -> String {
    json!({"batch": Uuid::new_v4(),
           "events": vec![json!({"typename": "view", "variant": "a"}); n]})
    .to_string()
}

#[test]
fn healthz_fails_while_writes_fail_and_recovers_when_they_work() {
    let dir = tempfile::tempdir().unwrap();
    // SIGXFSZ ignored (inherited through exec), so a write past the cap
    // fails with EFBIG instead of killing the server: like a full disk.
    let wrapper = [
        "sh",
        "-c",
        "trap '' XFSZ; exec prlimit --fsize=1500000:unlimited -- \"$0\" \"$@\"",
    ];
    let server = Server::start_wrapped(
        &wrapper,
        &dir.path().join("capped.db"),
        &[
            ("MYNA_ADMIN_EMAIL", EMAIL),
            ("MYNA_ADMIN_PASSWORD", PASSWORD),
        ],
    );
    let owner = basic(EMAIL, PASSWORD);
    let addr = server.addr;
    let form = json_call(
        addr,
        "POST",
        "/v2/experiment",
        &owner,
        r#"{"name": "capped", "visibility": "published", "variants": {"a": {}, "b": {}}}"#,
    );
    let uuid = form["uuid"].as_str().unwrap().to_owned();
    let record = format!("/v2/experiment/{uuid}/record");
    assert_eq!(http(addr, "GET", "/healthz", "", "").unwrap().0, 200);

    // Record until the file cap makes a commit fail; every 200 is counted.
    let mut acknowledged = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    let refused = loop {
        assert!(
            Instant::now() < deadline,
            "{acknowledged} views recorded and no write failed under a {FILE_CAP}-byte cap"
        );
        let (status, body) = http(addr, "POST", &record, &owner, &views(1000)).unwrap();
        match status {
            200 => acknowledged += 1000,
            _ => break (status, body),
        }
    };
    assert_eq!(refused.0, 503, "{}", refused.1);
    assert!(refused.1.contains("unavailable"), "{}", refused.1);

    // While writes fail, the health check says so (it said 200 before).
    let (status, body) = http(addr, "GET", "/healthz", "", "").unwrap();
    assert_eq!(status, 503, "healthz while writes fail: {body}");
    assert!(body.contains("unavailable"), "{body}");

    // Space again: the next record is counted and health is back at once.
    let pid = server.child.id().to_string();
    let lifted = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=unlimited:unlimited"])
        .status()
        .unwrap();
    assert!(lifted.success());
    let (status, body) = http(addr, "POST", &record, &owner, &views(1)).unwrap();
    assert_eq!(status, 200, "{body}");
    acknowledged += 1;
    assert_eq!(http(addr, "GET", "/healthz", "", "").unwrap().0, 200);
    let form = json_call(addr, "GET", &format!("/v2/experiment/{uuid}"), &owner, "");
    assert_eq!(form["variants"]["a"]["views"], acknowledged);
}
