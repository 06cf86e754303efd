//! The README's server session runs as written (with the server's real
//! address), against the real binary, and gives what it promises.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

use serde_json::Value;

mod common;
use common::Server;

const README: &str = include_str!("../../README.md");

/// The fenced block after `marker`.
fn block_after(marker: &str) -> &'static str {
    let rest = &README[README.find(marker).expect("the marker")..];
    let start = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = rest[start..].find("```").expect("the block's end");
    &rest[start..start + end]
}

#[test]
fn readme_curl_session() {
    let run_line = "MYNA_ADMIN_EMAIL=me@example.com MYNA_ADMIN_PASSWORD=change-me cargo run --release -p myna-server";
    assert!(
        README.contains(run_line),
        "the README starts the server as this test does"
    );
    let session = block_after("<!-- server-curl-session -->");
    let default = "MYNA=http://127.0.0.1:8080\n";
    assert!(session.contains(default));

    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MYNA_ADMIN_EMAIL", "me@example.com"),
        ("MYNA_ADMIN_PASSWORD", "change-me"),
    ];
    let server = Server::start(&dir.path().join("myna.db"), &env);
    let script = session.replace(default, &format!("MYNA=http://{}\n", server.addr));
    let output = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", &script])
        .output()
        .expect("bash and curl (the README's session needs curl)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the session failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    let json = |line: &str| serde_json::from_str::<Value>(line).unwrap_or(Value::Null);
    assert_eq!(
        json(lines[0])["subtype"],
        "summary",
        "record POST answers the summary"
    );
    for line in &lines[1..3] {
        assert!(
            line.starts_with("/**/cb({\"typename\":\"experiment\""),
            "{line}"
        );
    }
    let summary = json(lines[3]);
    assert_eq!(summary["subtype"], "summary");
    assert!(summary["variants"]["green"].get("views").is_none());
    let complete = json(lines[4]);
    let variant = |id: &str| complete["variants"][id].clone();
    assert_eq!(
        (
            variant("green")["views"].clone(),
            variant("green")["totalReward"].clone()
        ),
        (1.into(), 1.0.into())
    );
    assert_eq!(
        (
            variant("blue")["views"].clone(),
            variant("blue")["totalReward"].clone()
        ),
        (1.into(), 0.5.into())
    );
    let weights: f64 = ["green", "blue"]
        .iter()
        .map(|v| variant(v)["weight"].as_f64().unwrap())
        .sum();
    assert!((weights - 1.0).abs() < 1e-9, "{complete}");
    assert_eq!(variant("green")["settings"]["color"], "green");
    let decision = json(lines[5]);
    assert_eq!(decision["typename"], "decision", "{decision}");
    assert_eq!(decision["verdict"], "collecting", "one view each");
}
