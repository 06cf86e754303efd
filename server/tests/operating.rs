//! The README's "Operating Myna" session runs as written against the real
//! binary (started with metrics, the access log and JSON logs, in the
//! directory of its database), and gives what it promises: the metrics
//! count the events, the export has them, the request id comes back and is
//! in the log, the description is OpenAPI 3.1, and a server started on the
//! backup has the same counts.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;

mod common;
use common::{BIN, Server, basic, json_call};

const README: &str = include_str!("../../README.md");

/// The fenced block after `marker`.
fn block_after(marker: &str) -> &'static str {
    let rest = &README[README.find(marker).expect("the marker")..];
    let start = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = rest[start..].find("```").expect("the block's end");
    &rest[start..start + end]
}

#[test]
fn readme_operating_session() {
    let session = block_after("<!-- operating-session -->");
    let (myna, metrics) = (
        "MYNA=http://127.0.0.1:8080\n",
        "METRICS=http://127.0.0.1:9090\n",
    );
    assert!(session.contains(myna) && session.contains(metrics));

    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MYNA_ADMIN_EMAIL", "me@example.com"),
        ("MYNA_ADMIN_PASSWORD", "change-me"),
    ];
    let args = [
        "--metrics-listen",
        "127.0.0.1:0",
        "--access-log",
        "--log-format",
        "json",
    ];
    let mut server = Server::start_with(&dir.path().join("myna.db"), &env, &args, None);
    let metrics_line = server.wait_for_log("metrics listening on http://");
    let metrics_addr = metrics_line[0]
        .split("metrics listening on http://")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .next()
        })
        .unwrap()
        .to_owned();
    let script = session
        .replace(myna, &format!("MYNA=http://{}\n", server.addr))
        .replace(metrics, &format!("METRICS=http://{metrics_addr}\n"));
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("MYNA_DATABASE")
        .output()
        .expect("bash and curl");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the session failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "myna_events_recorded_total 2", "{stdout}");
    assert_eq!(lines[1], "hour,variant,views,totalReward", "{stdout}");
    assert!(lines[2].ends_with(",a,1,0.5"), "{stdout}");
    assert_eq!(
        lines[3].to_ascii_lowercase(),
        "x-request-id: checkout-42",
        "{stdout}"
    );
    assert_eq!(lines[4], r#"{"openapi":"3.1.0","#, "{stdout}");
    assert!(
        lines[5].starts_with("Backed up myna.db into myna-backup.db"),
        "{stdout}"
    );
    server.terminate();
    let log = server.log.lock().unwrap().join("\n");
    assert!(
        log.contains(r#""id":"checkout-42""#),
        "the request id is in the log"
    );

    // Restore: a server on the copy has the counts.
    let restored = Server::start(&dir.path().join("myna-backup.db"), &[]);
    let owner = basic("me@example.com", "change-me");
    let search = json_call(restored.addr, "GET", "/v2/experiment", &owner, "");
    let experiment = &search["results"][0];
    assert_eq!(experiment["name"], "Hero", "{search}");
    assert_eq!(experiment["variants"]["a"]["views"], 1);
    assert_eq!(experiment["variants"]["a"]["totalReward"], 0.5);
}
