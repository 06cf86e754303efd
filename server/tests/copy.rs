//! `myna-server copy --to postgres://…` on the real binary: a site that
//! started on SQLite moves to PostgreSQL with everything (accounts and
//! passwords, API keys, experiments with their counts and hourly history,
//! the batch ids, webhooks and their deliveries), so a server started on
//! PostgreSQL answers as the SQLite one did and a batch retried across the
//! move still counts once. Refusals: a server running on the file, a
//! database that is not empty, a missing file, a `--to` that is no
//! PostgreSQL URL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Command, Output};

use sqlx::{Connection, SqliteConnection};

mod common;
use common::postgres::{TestDatabase, query_i64};
use common::{BIN, Batch, Server, basic, batch, counts, http, published_with_key};

const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "moving-day-1";
/// A first start's account, on an empty file.
const ADMIN: [(&str, &str); 2] = [
    ("MYNA_ADMIN_EMAIL", EMAIL),
    ("MYNA_ADMIN_PASSWORD", PASSWORD),
];

fn copy(db: &std::path::Path, to: &str) -> Output {
    Command::new(BIN)
        .arg("copy")
        .arg("--database")
        .arg(db)
        .arg("--to")
        .arg(to)
        .env_remove("MYNA_DATABASE")
        .output()
        .expect("run myna-server copy")
}

/// `url` asking for TLS (`sslmode=require`) when the PostgreSQL server
/// serves it (Debian's does, with its own certificate), as managed
/// PostgreSQL services require; else `url` as it is, said loudly.
fn over_tls(url: &str) -> String {
    let ssl = query_i64(
        url,
        "SELECT (current_setting('ssl') = 'on')::int::bigint".into(),
    );
    if ssl.unwrap() == 1 {
        format!("{url}?sslmode=require")
    } else {
        eprintln!("!!! this PostgreSQL serves no TLS: the copy test runs without it");
        url.to_owned()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A webhook with one pending delivery, one failed attempt and one
/// observation, written into the stopped server's file as the server
/// writes them (a real delivery would need a receiver).
async fn webhook_rows(db: &std::path::Path, experiment: &str) {
    let url = format!("sqlite://{}", db.display());
    let mut file = SqliteConnection::connect(&url).await.unwrap();
    let account: String = sqlx::query_scalar("SELECT id FROM accounts")
        .fetch_one(&mut file)
        .await
        .unwrap();
    let webhook = uuid::Uuid::new_v4().to_string();
    sqlx::query("INSERT INTO webhooks VALUES (?, ?, 'https://hooks.example.com/myna', 1)")
        .bind(&webhook)
        .bind(&account)
        .execute(&mut file)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO webhook_deliveries (webhook, experiment, event, body, created_ms, \
         attempts, next_ms, last_attempt_ms, last_status) \
         VALUES (?, ?, 'decided', '{}', 2, 1, 4, 3, 500)",
    )
    .bind(&webhook)
    .bind(experiment)
    .execute(&mut file)
    .await
    .unwrap();
    sqlx::query("INSERT INTO webhook_attempts VALUES (1, 3, 500, NULL)")
        .execute(&mut file)
        .await
        .unwrap();
    sqlx::query("INSERT INTO webhook_observations VALUES (?, 'decided', '', 2, NULL)")
        .bind(experiment)
        .execute(&mut file)
        .await
        .unwrap();
    file.close().await.unwrap();
}

/// The owner's export of the experiment (hourly views and rewards per
/// variant), its chunked body put together.
fn history(server: &Server, owner: &str, experiment: &str) -> serde_json::Value {
    let path = format!("/v2/experiment/{experiment}/export?format=json");
    let (status, mut chunked) = http(server.addr, "GET", &path, owner, "").unwrap();
    assert_eq!(status, 200, "{chunked}");
    let mut body = String::new();
    while let Some((size, rest)) = chunked.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        body.push_str(&rest[..size]);
        chunked = rest[size..].trim_start_matches("\r\n").to_owned();
    }
    serde_json::from_str(&body).unwrap()
}

fn record(server: &Server, path: &str, auth: &str, batch: &Batch) {
    let (status, body) = http(server.addr, "POST", path, auth, &batch.body).unwrap();
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_into_postgres_carries_everything_over_and_a_retry_still_counts_once() {
    let Some(target) = TestDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("myna.db");
    let owner = basic(EMAIL, PASSWORD);
    let url = over_tls(&target.url);
    let mut server = Server::start(&db, &ADMIN);
    let (experiment, key) = published_with_key(server.addr, &owner);
    let path = format!("/v2/experiment/{experiment}/record");
    let batches: Vec<Batch> = (0..30).map(batch).collect();
    for batch in &batches {
        record(&server, &path, &owner, batch);
    }
    let before = counts(server.addr, &owner, &experiment);
    let hours = history(&server, &owner, &experiment);
    let views_of_a: u64 = hours["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["variant"] == "a")
        .map(|row| row["views"].as_u64().unwrap())
        .sum();
    assert_eq!(views_of_a, before.0, "{hours}");

    // Refused while a server runs on the file: PostgreSQL is not touched.
    let refused = copy(&db, &url);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("a myna-server is serving"),
        "{}",
        stderr(&refused)
    );
    let tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'";
    assert_eq!(query_i64(&target.url, tables.into()).unwrap(), 0);

    server.terminate();
    webhook_rows(&db, &experiment).await;
    let copied = copy(&db, &url);
    assert!(copied.status.success(), "{}", stderr(&copied));
    let said = String::from_utf8_lossy(&copied.stdout);
    assert!(
        said.contains("Copied") && said.contains("experiments 1") && said.contains("batches 30"),
        "{said}"
    );

    // The webhook's delivery, attempt and observation came along, and the
    // next delivery numbers on after the copied one.
    for (table, rows) in [
        ("webhooks", 1),
        ("webhook_deliveries", 1),
        ("webhook_attempts", 1),
        ("webhook_observations", 1),
    ] {
        let sql = format!("SELECT count(*) FROM {table}");
        assert_eq!(query_i64(&target.url, sql).unwrap(), rows, "{table}");
    }
    let next = "SELECT nextval(pg_get_serial_sequence('webhook_deliveries', 'id'))";
    assert_eq!(query_i64(&target.url, next.into()).unwrap(), 2);
    // A server on PostgreSQL (over TLS, as the copy was), with no first
    // account to create: the same password, counts and history; the API
    // key records.
    let moved = Server::start(url.as_str(), &[]);
    assert_eq!(counts(moved.addr, &owner, &experiment), before);
    assert_eq!(history(&moved, &owner, &experiment), hours);
    // Every batch retried after the move (lost answers): none counts twice.
    for batch in &batches {
        record(&moved, &path, &owner, batch);
    }
    assert_eq!(counts(moved.addr, &owner, &experiment), before);
    let with_key = format!("{path}?apikey={key}");
    let one_more = batch(1);
    record(&moved, &with_key, "", &one_more);
    assert_eq!(
        counts(moved.addr, &owner, &experiment),
        (before.0 + one_more.views, before.1 + one_more.rewards)
    );
    drop(moved);

    // Into a database that holds data: refused, nothing changed.
    let again = copy(&db, &url);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    let rows = "SELECT count(*) FROM batches WHERE created_ms > 0";
    assert_eq!(query_i64(&target.url, rows.into()).unwrap(), 31);

    // A missing file, and a --to that is no PostgreSQL URL.
    let missing = copy(&dir.path().join("nowhere.db"), &url);
    assert!(stderr(&missing).contains("there is no database"));
    assert!(!dir.path().join("nowhere.db").exists());
    let to_file = copy(&db, "other.db");
    assert!(
        stderr(&to_file).contains("postgres:// URL"),
        "{}",
        stderr(&to_file)
    );
}

/// What is not a Myna site to move, or no place to move it to: refused
/// before anything is written on either side.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_refuses_a_source_that_is_no_site_and_a_target_that_is_not_myna_s_own() {
    let Some(target) = TestDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A 0-byte file (a failed download, a `touch`): refused, left as it was.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let refused = copy(&empty, &target.url);
    assert!(
        stderr(&refused).contains("not a Myna database"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    // A Myna file with no account (a copy of myna.db without its -wal).
    let db = dir.path().join("myna.db");
    Server::start(&db, &ADMIN).terminate();
    let url = format!("sqlite://{}", db.display());
    let mut file = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM accounts")
        .execute(&mut file)
        .await
        .unwrap();
    file.close().await.unwrap();
    let refused = copy(&db, &target.url);
    assert!(
        stderr(&refused).contains("holds no account"),
        "{}",
        stderr(&refused)
    );
    // A database with another application's table, and a URL naming no
    // database (it would be the maintenance database `postgres`): refused,
    // and no table of Myna's made there.
    common::postgres::execute(&target.url, "CREATE TABLE app (x int)".into()).unwrap();
    Server::start(&db, &ADMIN).terminate();
    let refused = copy(&db, &target.url);
    assert!(
        stderr(&refused).contains("not Myna's (public.app)"),
        "{}",
        stderr(&refused)
    );
    let tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'";
    assert_eq!(query_i64(&target.url, tables.into()).unwrap(), 1);
    // `require` with a CA named checks the server against it, as libpq
    // does (here a CA that signed nothing of this server's), and the
    // refusal says what to fix.
    if over_tls(&target.url) != target.url {
        let mut params = rcgen::CertificateParams::new(vec!["ca.example.com".to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let ca_file = dir.path().join("other-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let url = format!(
            "{}?sslmode=require&sslrootcert={}",
            target.url,
            ca_file.display()
        );
        let refused = copy(&db, &url);
        assert!(
            stderr(&refused).contains("UnknownIssuer")
                && stderr(&refused).contains("sslrootcert=/path/ca.pem"),
            "{}",
            stderr(&refused)
        );
    }
    let no_name = target.url[..target.url.rfind('/').unwrap()].to_owned();
    let refused = copy(&db, &no_name);
    assert!(
        stderr(&refused).contains("name the PostgreSQL database"),
        "{}",
        stderr(&refused)
    );
}
