//! Limits on stored inputs and start-up past a bad row, through the real API
//! (poem's `TestClient` over `routes::app`) on a database file that is
//! "restarted" (state dropped, storage closed, the same database opened
//! again, `AppState::start`):
//!
//! - a settings path deeper than the limit is refused, on create and update,
//!   and the server starts again (it used to refuse to start, or abort);
//! - U+0000 is refused alike on SQLite and PostgreSQL (a 400 with the path);
//! - whatever the API accepts loads back equal (a property test);
//! - an experiment that cannot be read is logged, answers 500 to whoever
//!   would see it, can be deleted by its owner, and never stops a start or
//!   the refresh of an instance on a shared PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use myna_core::experiment::{apply_update, parse_create};
use myna_core::limits::MAX_SETTINGS_DEPTH;
use myna_core::model::empty_object;
use myna_core::{Experiment, Variant, Visibility};
use myna_server::auth::{Passwords, issue_token};
use myna_server::clock::Clock;
use myna_server::storage::postgres::PostgresStorage;
use myna_server::storage::sqlite::SqliteStorage;
use myna_server::storage::{ApiKey, Storage};
use myna_server::{AppState, Background, Options, accounts, app};
use poem::endpoint::BoxEndpoint;
use poem::http::{Method, StatusCode};
use poem::test::TestClient;
use poem::{EndpointExt, Response};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

#[path = "../../core/tests/bodies.rs"]
mod bodies;
mod common;
use common::postgres::{TestDatabase, execute};

/// Generous: conditions are waited for, never timed.
const PATIENCE: Duration = Duration::from_secs(60);

/// Settings JSON nested 200 levels: valid JSON, deeper than serde_json reads
/// back (what the unlimited settings paths used to store).
fn too_deep_json() -> String {
    format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200))
}

#[derive(Debug, Clone)]
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

async fn open(db: &Db) -> Arc<dyn Storage> {
    match db {
        Db::Sqlite(path) => Arc::new(SqliteStorage::open(path).await.unwrap()),
        Db::Postgres(url) => Arc::new(PostgresStorage::open(url).await.unwrap()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Owner,
    Other,
    /// The owner's API key.
    Key,
}

#[derive(Debug, Clone, Copy)]
struct Party {
    token: Uuid,
    key: Uuid,
}

async fn party(storage: &dyn Storage, email: &str, now: i64) -> Party {
    let passwords = Passwords::fast_for_tests();
    let account = accounts::create_account(storage, &passwords, email, "pw-long-enough", now)
        .await
        .unwrap();
    let token = issue_token(storage, account.id, now).await.unwrap();
    let key = ApiKey {
        uuid: Uuid::new_v4(),
        account_id: account.id,
        name: None,
        created_ms: now,
    };
    storage
        .create_api_key(&key, myna_core::limits::MAX_API_KEYS)
        .await
        .unwrap();
    Party {
        token: token.token,
        key: key.uuid,
    }
}

/// An answer: status and body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// `(typename, path, data)` of every problem message.
    fn messages(&self) -> Vec<(String, String, Value)> {
        let json = self.json();
        json["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                (
                    m["typename"].as_str().unwrap_or_default().to_owned(),
                    m["path"].as_str().unwrap_or_default().to_owned(),
                    m["data"].clone(),
                )
            })
            .collect()
    }
}

/// A server on a database, driven through `TestClient`, restartable.
struct Server {
    db: Db,
    storage: Arc<dyn Storage>,
    running: Option<(
        TestClient<BoxEndpoint<'static, Response>>,
        AppState,
        Background,
    )>,
    owner: Party,
    other: Party,
    /// Most experiments an account may have (the next start's).
    max_experiments: usize,
}

impl Server {
    async fn sqlite(dir: &tempfile::TempDir) -> Server {
        Server::new(Db::Sqlite(dir.path().join("myna.db"))).await
    }

    async fn new(db: Db) -> Server {
        let storage = open(&db).await;
        let now = Clock::system().now_ms();
        let owner = party(storage.as_ref(), "owner@example.com", now).await;
        let other = party(storage.as_ref(), "other@example.com", now).await;
        let mut server = Server {
            db,
            storage,
            running: None,
            owner,
            other,
            max_experiments: myna_core::limits::MAX_EXPERIMENTS,
        };
        server.start().await;
        server
    }

    async fn start(&mut self) {
        let options = Options {
            passwords: Passwords::fast_for_tests(),
            max_experiments: self.max_experiments,
            ..Options::default()
        };
        let (state, background) = AppState::start(self.storage.clone(), options)
            .await
            .expect("the server starts");
        let client = TestClient::new(app(state.clone()).map_to_response().boxed());
        self.running = Some((client, state, background));
    }

    /// Stops (every commit finished, the database closed).
    async fn stop(&mut self) {
        if let Some((client, state, background)) = self.running.take() {
            drop(client);
            drop(state);
            background.finish().await;
        }
        self.storage.close().await.unwrap();
    }

    /// Stops, opens the same database again and starts.
    async fn restart(&mut self) {
        self.stop().await;
        self.storage = open(&self.db).await;
        self.start().await;
    }

    fn authorization(&self, who: Who) -> String {
        match who {
            Who::Owner => format!("Bearer {}", self.owner.token),
            Who::Other => format!("Bearer {}", self.other.token),
            Who::Key => format!("ApiKey {}", self.owner.key),
        }
    }

    async fn send(&self, method: Method, uri: &str, who: Who, body: Option<&Value>) -> Answer {
        let (client, _, _) = self.running.as_ref().expect("running");
        let mut request = client
            .request(method, uri.to_owned())
            .header("Authorization", self.authorization(who));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.0;
        let status = response.status();
        let text = response.into_body().into_string().await.unwrap_or_default();
        Answer { status, text }
    }

    async fn get(&self, uuid: Uuid, who: Who) -> Answer {
        self.send(Method::GET, &format!("/v2/experiment/{uuid}"), who, None)
            .await
    }

    async fn post(&self, body: &Value) -> Answer {
        self.send(Method::POST, "/v2/experiment", Who::Owner, Some(body))
            .await
    }

    async fn put(&self, uuid: Uuid, body: &Value) -> Answer {
        let uri = format!("/v2/experiment/{uuid}");
        self.send(Method::PUT, &uri, Who::Owner, Some(body)).await
    }

    /// Creates an experiment; its uuid.
    async fn create(&self, body: Value) -> Uuid {
        let answer = self.post(&body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        Uuid::parse_str(answer.json()["uuid"].as_str().unwrap()).unwrap()
    }

    /// The owner's read form, as text.
    async fn read(&self, uuid: Uuid) -> String {
        let answer = self.get(uuid, Who::Owner).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.text
    }

    /// The uuids the owner's search lists (every visibility).
    async fn search(&self) -> Vec<String> {
        let uri = "/v2/experiment?visibility=draft,published,archived&limit=1000";
        let answer = self.send(Method::GET, uri, Who::Owner, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let results = answer.json()["results"].as_array().cloned().unwrap();
        results
            .iter()
            .map(|r| r["uuid"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Waits (generously) until `check` holds.
async fn eventually<F: AsyncFn() -> bool>(what: &str, check: F) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- Finding 1: settings paths deeper than the limit.

#[tokio::test]
async fn deep_settings_paths_are_refused_and_the_server_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::sqlite(&dir).await;
    let uuid = server
        .create(json!({"name": "e", "variants": {"a": {}}}))
        .await;
    let limit = json!({ "limit": MAX_SETTINGS_DEPTH });
    // The review's bodies: 129 segments (stored, then the start failed) and
    // 10,000 (a 20 KB body that aborted the process).
    for segments in [129, 10_000] {
        let path = vec!["a"; segments].join(".");
        let answer = server
            .put(uuid, &json!({"settingsUpdates": { path.clone(): 1 }}))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
        let messages = answer.messages();
        assert_eq!(messages[0].0, "invalid-settings-path");
        assert_eq!(messages[0].1, format!(r#"settingsUpdates["{path}"]"#));
        let body = json!({"variantUpdates": {"a": {"settingsUpdates": { path.clone(): 1 }}}});
        let answer = server.put(uuid, &body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
        let body =
            json!({"name": "e", "variants": {"v": {"settingsUpdates": { path.clone(): 1 }}}});
        let answer = server.post(&body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
        let messages = answer.messages();
        assert_eq!(
            messages[0].1,
            format!(r#"variants.v.settingsUpdates["{path}"]"#)
        );
        if segments == 129 {
            assert_eq!(messages[0].2, limit);
        }
    }
    // Deep settings given whole: refused where the depth passes the limit.
    let mut deep = json!(1);
    for _ in 0..=MAX_SETTINGS_DEPTH {
        deep = json!({ "d": deep });
    }
    let answer = server.put(uuid, &json!({ "settings": deep })).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(
        answer.messages(),
        vec![(
            "invalid-value".to_owned(),
            format!("settings{}", ".d".repeat(MAX_SETTINGS_DEPTH)),
            limit
        )]
    );
    // The deepest allowed is stored, and loads back after a restart.
    let deepest = vec!["a"; MAX_SETTINGS_DEPTH].join(".");
    let answer = server
        .put(uuid, &json!({"settingsUpdates": { deepest: "bottom" }}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let before = server.read(uuid).await;
    server.restart().await;
    assert_eq!(server.read(uuid).await, before);
}

// ---- Finding 2: U+0000 refused alike by both backends.

/// Every place stored text goes, with U+0000: a 400 with the path; other
/// odd text: accepted, and equal after a restart.
async fn nul_is_refused_and_odd_text_accepted(mut server: Server) {
    let uuid = server
        .create(json!({"name": "e", "variants": {"a": {}}}))
        .await;
    let refused_on_create = [
        (json!({"name": "a\u{0}"}), "name"),
        (
            json!({"name": "e", "variants": {"v\u{0}": {}}}),
            r#"variants["v\u0000"]"#,
        ),
        (
            json!({"name": "e", "variants": {"v": {"name": "\u{0}"}}}),
            "variants.v.name",
        ),
        (
            json!({"name": "e", "settings": {"k\u{0}": 1}}),
            r#"settings["k\u0000"]"#,
        ),
        (
            json!({"name": "e", "settings": {"k": ["\u{0}"]}}),
            "settings.k[0]",
        ),
        (
            json!({"name": "e", "variants": {"v": {"settings": {"s": "x\u{0}"}}}}),
            "variants.v.settings.s",
        ),
        (
            json!({"name": "e", "variants": {"v": {"settingsUpdates": {"a.b\u{0}": 1}}}}),
            r#"variants.v.settingsUpdates["a.b\u0000"]"#,
        ),
    ];
    for (body, path) in refused_on_create {
        let answer = server.post(&body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            answer.text
        );
        let first = answer.messages().into_iter().next().unwrap_or_default();
        assert_eq!(
            (first.0.as_str(), first.1.as_str()),
            ("invalid-value", path)
        );
    }
    let refused_on_update = [
        (json!({"name": "\u{0}"}), "name"),
        (json!({"settings": {"\u{0}": 1}}), r#"settings["\u0000"]"#),
        (
            json!({"settingsUpdates": {"k": "\u{0}"}}),
            "settingsUpdates.k",
        ),
        (
            json!({"variantUpdates": {"n\u{0}": {}}}),
            r#"variantUpdates["n\u0000"]"#,
        ),
        (
            json!({"variantUpdates": {"a": {"name": "\u{0}"}}}),
            "variantUpdates.a.name",
        ),
        (
            json!({"variantUpdates": {"a": {"settingsUpdates": {"x": {"y\u{0}": 1}}}}}),
            r#"variantUpdates.a.settingsUpdates.x["y\u0000"]"#,
        ),
    ];
    for (body, path) in refused_on_update {
        let answer = server.put(uuid, &body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            answer.text
        );
        let first = answer.messages().into_iter().next().unwrap_or_default();
        assert_eq!(
            (first.0.as_str(), first.1.as_str()),
            ("invalid-value", path)
        );
    }
    // Any other character is text like any other, on every backend.
    let odd = "\u{1}\t\n\u{7f}\u{2028}\\u0000 é 😀 \"'";
    let body = json!({
        "name": odd, "settings": { odd: [odd, 1.5e300, u64::MAX, i64::MIN, -0.0] },
        "variants": { odd: {"name": odd, "settingsUpdates": { format!("[\"{}\"].b", odd.replace('\\', "\\\\").replace('"', "\\\"")): odd }}}
    });
    let odd_uuid = server.create(body).await;
    let answer = server
        .put(uuid, &json!({"name": odd, "settingsUpdates": {"x": odd}}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let before = (server.read(uuid).await, server.read(odd_uuid).await);
    assert!(before.1.contains(r#""\u0001\t\n"#), "{}", before.1);
    server.restart().await;
    let after = (server.read(uuid).await, server.read(odd_uuid).await);
    assert_eq!(after, before);
    server.stop().await;
}

#[tokio::test]
async fn nul_is_refused_and_odd_text_accepted_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    nul_is_refused_and_odd_text_accepted(Server::sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_is_refused_and_odd_text_accepted_on_postgres() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let server = Server::new(Db::Postgres(database.url.clone())).await;
    nul_is_refused_and_odd_text_accepted(server).await;
}

// ---- Experiments per account.

/// An account holds at most `max_experiments`: the next create is a 409
/// `conflict` with the limit, creates nothing, and another account is not
/// held back; once one is deleted a create works again, and after a
/// restart the account still has exactly the limit.
async fn experiments_per_account_are_limited(mut server: Server) {
    server.max_experiments = 3;
    server.restart().await;
    for n in 0..3 {
        server.create(json!({ "name": format!("e{n}") })).await;
    }
    let refused = server.post(&json!({ "name": "one more" })).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    let messages = refused.messages();
    assert_eq!(messages.len(), 1, "{}", refused.text);
    assert_eq!(messages[0].0, "conflict");
    assert_eq!(messages[0].2, json!({ "limit": 3 }));
    assert_eq!(server.search().await.len(), 3);
    let theirs = server
        .send(
            Method::POST,
            "/v2/experiment",
            Who::Other,
            Some(&json!({ "name": "theirs" })),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.text);

    let first = server.search().await[0].clone();
    let uri = format!("/v2/experiment/{first}");
    let deleted = server.send(Method::DELETE, &uri, Who::Owner, None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    server.create(json!({ "name": "in its place" })).await;
    server.restart().await;
    assert_eq!(server.search().await.len(), 3);
    let refused = server.post(&json!({ "name": "after a restart" })).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    server.stop().await;
}

#[tokio::test]
async fn experiments_per_account_are_limited_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    experiments_per_account_are_limited(Server::sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_per_account_are_limited_on_postgres() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let server = Server::new(Db::Postgres(database.url.clone())).await;
    experiments_per_account_are_limited(server).await;
}

// ---- Whatever the API accepts loads back.

proptest! {
    // Each case is a fresh database, a few calls and a restart (about a
    // third of a second here): bounded to stay well under a minute.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn whatever_the_api_accepts_loads_back_after_a_restart(
        creates in prop::collection::vec(bodies::create_body(), 1..4),
        updates in prop::collection::vec((any::<prop::sample::Index>(), bodies::update_body()), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(loads_back(creates, updates));
    }
}

/// Whether `answer` refuses an id another published experiment of the
/// account has (409 `conflict` at `id`): core accepts such a body, the
/// server's uniqueness rule does not.
fn id_taken(answer: &Answer) -> bool {
    answer.status == StatusCode::CONFLICT
        && answer
            .messages()
            .first()
            .is_some_and(|(code, path, _)| code == "conflict" && path == "id")
}

async fn loads_back(creates: Vec<Value>, updates: Vec<(prop::sample::Index, Value)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::sqlite(&dir).await;
    let mut uuids = Vec::new();
    for body in creates {
        let accepted = parse_create(body.to_string().as_bytes()).is_ok();
        let answer = server.post(&body).await;
        if accepted && id_taken(&answer) {
            // A valid id another published experiment has: refused whole.
        } else if accepted {
            assert_eq!(answer.status, StatusCode::OK, "{body}: {}", answer.text);
            let uuid = answer.json()["uuid"].as_str().map(Uuid::parse_str);
            let uuid = uuid.expect("a read form JSON parsers read (under 128 levels)");
            uuids.push(uuid.unwrap());
        } else {
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{body}: {}",
                answer.text
            );
        }
    }
    if uuids.is_empty() {
        server.stop().await;
        return;
    }
    for (which, body) in updates {
        let uuid = *which.get(&uuids);
        let current = server.storage.experiment(uuid).await.unwrap();
        let current = current.expect("stored").expect("readable");
        let accepted = apply_update(&current, body.to_string().as_bytes()).is_ok();
        let answer = server.put(uuid, &body).await;
        let expected = if accepted {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        if !(accepted && id_taken(&answer)) {
            assert_eq!(answer.status, expected, "{body}: {}", answer.text);
        }
    }
    let mut before = Vec::new();
    for uuid in &uuids {
        before.push(server.read(*uuid).await);
    }
    server.restart().await;
    for (uuid, before) in uuids.iter().zip(before) {
        assert_eq!(server.read(*uuid).await, before);
    }
    server.stop().await;
}

// ---- Finding 3: one unreadable experiment never stops a start.

/// Writes `settings` straight into an SQLite file's row of `uuid`.
async fn corrupt_sqlite(path: &std::path::Path, table: &str, uuid: Uuid, settings: &str) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", path.display());
    let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let column = if table == "experiments" {
        "uuid"
    } else {
        "experiment"
    };
    let sql = format!("UPDATE {table} SET settings = ? WHERE {column} = ?");
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(settings)
        .bind(uuid.to_string())
        .execute(&mut connection)
        .await
        .unwrap();
    assert!(done.rows_affected() > 0);
    connection.close().await.unwrap();
}

/// An experiment stored before ids existed (its `id` NULL, as the
/// migration leaves it) is read with the default id of its name, and
/// stores it at its next update.
#[tokio::test]
async fn an_experiment_stored_before_ids_gets_the_default_of_its_name() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("myna.db");
    let mut server = Server::sqlite(&dir).await;
    let uuid = server
        .create(json!({"name": "Big Sale 2026!", "id": "chosen", "variants": {"a": {}}}))
        .await;
    server.stop().await;
    let url = format!("sqlite://{}", path.display());
    let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE experiments SET id = NULL WHERE uuid = ?")
        .bind(uuid.to_string())
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    server.storage = SqliteStorage::open(&path).await.map(Arc::new).unwrap();
    server.start().await;
    let form: Value = serde_json::from_str(&server.read(uuid).await).unwrap();
    assert_eq!(form["id"], "big-sale-2026");
    let answer = server.put(uuid, &json!({"name": "Renamed"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let stored = server.storage.experiment(uuid).await.unwrap();
    assert_eq!(stored.unwrap().unwrap().id, "big-sale-2026");
    server.stop().await;
}

#[tokio::test]
async fn an_unreadable_experiment_is_served_as_500_and_can_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("myna.db");
    let mut server = Server::sqlite(&dir).await;
    let published = json!({"name": "p", "visibility": "published", "variants": {"a": {}}});
    let good = server.create(published.clone()).await;
    let bad = server.create(published).await;
    let draft = json!({"name": "d", "variants": {"a": {}, "b": {}}});
    let bad_variant = server.create(draft).await;
    let good_form = server.read(good).await;
    server.stop().await;
    corrupt_sqlite(&path, "experiments", bad, &too_deep_json()).await;
    corrupt_sqlite(&path, "variants", bad_variant, "not json").await;

    // The real binary starts, and logs each with its uuid and the reason.
    let mut process = common::Server::start(&path, &[]);
    let log = process.log.lock().unwrap().join("\n");
    for (uuid, reason) in [(bad, "recursion limit"), (bad_variant, "expected ident")] {
        let line = log
            .lines()
            .find(|l| l.contains(&uuid.to_string()))
            .unwrap_or_else(|| panic!("{uuid} is not logged:\n{log}"));
        assert!(line.contains("ERROR") && line.contains(reason), "{line}");
    }
    process.kill9();

    server.storage = SqliteStorage::open(&path).await.map(Arc::new).unwrap();
    server.start().await;
    // The others serve as before.
    assert_eq!(server.read(good).await, good_form);
    // The unreadable ones: a 500 with a generic message to whoever would
    // see them (the owner; the API key for the published one), 404 to others.
    for (uuid, who) in [
        (bad, Who::Owner),
        (bad, Who::Key),
        (bad_variant, Who::Owner),
    ] {
        let answer = server.get(uuid, who).await;
        assert_eq!(
            answer.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{}",
            answer.text
        );
        assert_eq!(answer.messages()[0].0, "internal");
        for detail in ["JSON", "json", "recursion", "settings", "SELECT"] {
            assert!(!answer.text.contains(detail), "{}", answer.text);
        }
    }
    assert_eq!(
        server.get(bad, Who::Other).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.get(bad_variant, Who::Key).await.status,
        StatusCode::NOT_FOUND
    );
    // Not listed by search; nothing else can be done with them but deleting.
    assert_eq!(server.search().await, vec![good.to_string()]);
    let answer = server.put(bad, &json!({"name": "x"})).await;
    assert_eq!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        answer.text
    );
    let reset = format!("/v2/experiment/{bad}/reset");
    let answer = server.send(Method::POST, &reset, Who::Owner, None).await;
    assert_eq!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        answer.text
    );
    let record = format!("/v2/experiment/{bad}/record");
    let events = json!({"events": [{"typename": "view", "variant": "a"}]});
    let answer = server
        .send(Method::POST, &record, Who::Key, Some(&events))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        answer.text
    );
    // Deleting: not by another account; by the owner, yes.
    for uuid in [bad, bad_variant] {
        let uri = format!("/v2/experiment/{uuid}");
        let answer = server.send(Method::DELETE, &uri, Who::Other, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text);
        let answer = server.send(Method::DELETE, &uri, Who::Owner, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(
            server.get(uuid, Who::Owner).await.status,
            StatusCode::NOT_FOUND
        );
    }
    // Gone from the database too.
    server.restart().await;
    let stored = server.storage.experiments().await.unwrap();
    assert!(stored.unreadable.is_empty(), "{:?}", stored.unreadable);
    assert_eq!(stored.readable.len(), 1);
    assert_eq!(server.read(good).await, good_form);
    server.stop().await;
}

/// An experiment for `account`, written straight to storage (as another
/// instance would).
fn experiment_of(account: Uuid) -> Experiment {
    Experiment {
        uuid: Uuid::new_v4(),
        alias: None,
        id: "elsewhere".into(),
        account_id: account,
        name: "elsewhere".into(),
        visibility: Visibility::Published,
        settings: empty_object(),
        variants: vec![Variant::new("a")],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_follows_the_database_past_an_unreadable_experiment() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let mut server = Server::new(Db::Postgres(database.url.clone())).await;
    let published = json!({"name": "p", "visibility": "published", "variants": {"a": {}}});
    let good = server.create(published.clone()).await;
    let bad = server.create(published).await;
    let account = server
        .storage
        .experiment(good)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .account_id;
    let corrupt = |settings: String| {
        let sql = format!("UPDATE experiments SET settings = '{settings}' WHERE uuid = '{bad}'");
        execute(&database.url, sql).unwrap();
    };
    corrupt(too_deep_json());
    // Another instance writes a new experiment: this one still follows.
    let elsewhere = PostgresStorage::open(&database.url).await.unwrap();
    let new = experiment_of(account);
    elsewhere.create_experiment(&new, 0).await.unwrap();
    eventually("the new experiment is served", async || {
        server.get(new.uuid, Who::Owner).await.status == StatusCode::OK
    })
    .await;
    eventually("the unreadable one answers 500", async || {
        server.get(bad, Who::Key).await.status == StatusCode::INTERNAL_SERVER_ERROR
    })
    .await;
    let good_form = server.read(good).await;
    // Another instance starts with the bad row there.
    let mut second = Server {
        db: server.db.clone(),
        storage: open(&server.db).await,
        running: None,
        owner: server.owner,
        other: server.other,
        max_experiments: server.max_experiments,
    };
    second.start().await;
    assert_eq!(second.read(good).await, good_form);
    assert_eq!(
        second.get(bad, Who::Owner).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    // Repaired in the database: served again.
    corrupt(r#"{"repaired": true}"#.to_owned());
    eventually("the repaired one is served", async || {
        let answer = server.get(bad, Who::Owner).await;
        answer.status == StatusCode::OK && answer.json()["settings"]["repaired"] == true
    })
    .await;
    // Broken again, and deleted by its owner through the API.
    corrupt("{".to_owned());
    eventually("broken again", async || {
        second.get(bad, Who::Owner).await.status == StatusCode::INTERNAL_SERVER_ERROR
    })
    .await;
    let uri = format!("/v2/experiment/{bad}");
    let answer = second.send(Method::DELETE, &uri, Who::Owner, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(elsewhere.experiment(bad).await.unwrap(), None);
    eventually("deleted everywhere", async || {
        server.get(bad, Who::Owner).await.status == StatusCode::NOT_FOUND
    })
    .await;
    elsewhere.close().await.unwrap();
    server.stop().await;
    second.stop().await;
}
