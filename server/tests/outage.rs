//! The database failing under a running server, in process: an SQLite file
//! behind a storage wrapper that can make every call fail at once (the
//! database away), refuse only commits (a full disk that still takes the
//! health probe's small write), never answer (frozen) or wait (held).
//! `/healthz` after a short outage, a graceful shutdown while the database
//! never answers, and a batch queued behind a change that hides it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use myna_core::{Event, EventType, Experiment, RecordBatch, Variant, Visibility};
use myna_server::auth::Passwords;
use myna_server::clock::Clock;
use myna_server::commit::{Change, WRITE_FAILURE_HOLD_MS};
use myna_server::storage::sqlite::SqliteStorage;
use myna_server::storage::{
    Account, AccountListing, ApiKey, Apply, Attempt, AttemptLog, ChangeMark, Changes, Created,
    Delivery, Experiments, Fut, HourTotals, Notice, Observed, Recording, Served, Storage,
    StorageError, Token, TokenHash, Unreadable, Updated, Webhook,
};
use myna_server::{AppState, Background, Options, app};
use poem::EndpointExt;
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::json;
use uuid::Uuid;

const START_MS: i64 = 1_795_708_773_232;

/// What the wrapped database does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// Passes every call through.
    Normal,
    /// Every call fails at once, as on a refused connection.
    Away,
    /// Commits (`record`) fail; everything else, the probe's small write
    /// included, works: a full disk that takes a tiny write.
    RefusingCommits,
    /// No call ever answers, closing included.
    Frozen,
    /// Calls wait until the mode changes, then run as it says.
    Held,
}

/// SQLite behind a switch (see [`Mode`]); counts the probe's writes.
struct Faulty {
    inner: SqliteStorage,
    mode: AtomicU8,
    pings: AtomicUsize,
}

impl Faulty {
    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::SeqCst) {
            0 => Mode::Normal,
            1 => Mode::Away,
            2 => Mode::RefusingCommits,
            3 => Mode::Frozen,
            _ => Mode::Held,
        }
    }

    /// The call, as the mode has it when it runs.
    fn gate<'a, T: Send + 'a>(&'a self, call: Fut<'a, T>) -> Fut<'a, T> {
        Box::pin(async move {
            while self.mode() == Mode::Held {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            match self.mode() {
                Mode::Away => Err(StorageError::Unavailable("connection refused".into())),
                Mode::Frozen => std::future::pending().await,
                Mode::Normal | Mode::RefusingCommits | Mode::Held => call.await,
            }
        })
    }
}

impl Storage for Faulty {
    fn ping(&self) -> Fut<'_, ()> {
        Box::pin(async move {
            let written = self.gate(self.inner.ping()).await;
            self.pings.fetch_add(1, Ordering::SeqCst);
            written
        })
    }
    fn close(&self) -> Fut<'_, ()> {
        self.gate(self.inner.close())
    }
    fn changes(&self, since: Option<ChangeMark>) -> Fut<'_, Changes> {
        self.gate(self.inner.changes(since))
    }
    fn account_count(&self) -> Fut<'_, u64> {
        self.gate(self.inner.account_count())
    }
    fn create_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()> {
        self.gate(self.inner.create_account(account))
    }
    fn account_by_email<'a>(&'a self, email: &'a str) -> Fut<'a, Option<Account>> {
        self.gate(self.inner.account_by_email(email))
    }
    fn set_password<'a>(&'a self, account_id: Uuid, password_hash: &'a str) -> Fut<'a, bool> {
        self.gate(self.inner.set_password(account_id, password_hash))
    }
    fn accounts(&self) -> Fut<'_, Vec<AccountListing>> {
        self.gate(self.inner.accounts())
    }
    fn account_experiments(&self, account_id: Uuid) -> Fut<'_, Vec<Uuid>> {
        self.gate(self.inner.account_experiments(account_id))
    }
    fn delete_account(&self, account_id: Uuid) -> Fut<'_, bool> {
        self.gate(self.inner.delete_account(account_id))
    }
    fn create_token(&self, token: Token, max: usize) -> Fut<'_, ()> {
        self.gate(self.inner.create_token(token, max))
    }
    fn token(&self, hash: TokenHash) -> Fut<'_, Option<Token>> {
        self.gate(self.inner.token(hash))
    }
    fn extend_token(&self, hash: TokenHash, expires_ms: i64) -> Fut<'_, ()> {
        self.gate(self.inner.extend_token(hash, expires_ms))
    }
    fn delete_token(&self, hash: TokenHash) -> Fut<'_, bool> {
        self.gate(self.inner.delete_token(hash))
    }
    fn delete_account_tokens(&self, account_id: Uuid) -> Fut<'_, u64> {
        self.gate(self.inner.delete_account_tokens(account_id))
    }
    fn prune_tokens(&self, now_ms: i64) -> Fut<'_, u64> {
        self.gate(self.inner.prune_tokens(now_ms))
    }
    fn secret<'a>(&'a self, name: &'a str, fresh: &'a str) -> Fut<'a, String> {
        self.gate(self.inner.secret(name, fresh))
    }
    fn create_api_key<'a>(&'a self, key: &'a ApiKey, max: usize) -> Fut<'a, bool> {
        self.gate(self.inner.create_api_key(key, max))
    }
    fn api_key(&self, uuid: Uuid) -> Fut<'_, Option<ApiKey>> {
        self.gate(self.inner.api_key(uuid))
    }
    fn api_keys(&self, account_id: Uuid) -> Fut<'_, Vec<ApiKey>> {
        self.gate(self.inner.api_keys(account_id))
    }
    fn delete_api_key(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, bool> {
        self.gate(self.inner.delete_api_key(account_id, uuid))
    }
    fn experiments(&self) -> Fut<'_, Experiments> {
        self.gate(self.inner.experiments())
    }
    fn experiment(&self, uuid: Uuid) -> Fut<'_, Option<Result<Experiment, Unreadable>>> {
        self.gate(self.inner.experiment(uuid))
    }
    fn known_as(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, Option<Uuid>> {
        self.gate(self.inner.known_as(account_id, uuid))
    }
    fn create_experiment<'a>(&'a self, experiment: &'a Experiment, now_ms: i64) -> Fut<'a, ()> {
        self.gate(self.inner.create_experiment(experiment, now_ms))
    }
    fn update_experiment<'a>(&'a self, experiment: &'a Experiment) -> Fut<'a, bool> {
        self.gate(self.inner.update_experiment(experiment))
    }
    fn create_experiment_checked(
        &self,
        experiment: Experiment,
        now_ms: i64,
        id_chosen: bool,
        max: usize,
    ) -> Fut<'_, Created> {
        self.gate(
            self.inner
                .create_experiment_checked(experiment, now_ms, id_chosen, max),
        )
    }
    fn update_experiment_with<'a>(&'a self, uuid: Uuid, apply: Apply<'a>) -> Fut<'a, Updated> {
        self.gate(self.inner.update_experiment_with(uuid, apply))
    }
    fn delete_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        self.gate(self.inner.delete_experiment(uuid))
    }
    fn reset_experiment(&self, uuid: Uuid) -> Fut<'_, bool> {
        self.gate(self.inner.reset_experiment(uuid))
    }
    fn record<'a>(&'a self, batches: &'a [Recording], now_ms: i64) -> Fut<'a, Vec<bool>> {
        if self.mode() == Mode::RefusingCommits {
            return Box::pin(async {
                Err(StorageError::Unavailable("database or disk is full".into()))
            });
        }
        self.gate(self.inner.record(batches, now_ms))
    }
    fn prune_batches(&self, before_ms: i64) -> Fut<'_, u64> {
        self.gate(self.inner.prune_batches(before_ms))
    }
    fn hourly(&self, experiment: Uuid) -> Fut<'_, Vec<HourTotals>> {
        self.gate(self.inner.hourly(experiment))
    }
    fn add_served<'a>(&'a self, rows: &'a [Served]) -> Fut<'a, ()> {
        self.gate(self.inner.add_served(rows))
    }
    fn served(&self, experiment: Uuid) -> Fut<'_, Vec<Served>> {
        self.gate(self.inner.served(experiment))
    }
    fn create_webhook<'a>(&'a self, webhook: &'a Webhook, max: usize) -> Fut<'a, bool> {
        self.gate(self.inner.create_webhook(webhook, max))
    }
    fn webhooks(&self, account_id: Uuid) -> Fut<'_, Vec<Webhook>> {
        self.gate(self.inner.webhooks(account_id))
    }
    fn delete_webhook(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, bool> {
        self.gate(self.inner.delete_webhook(account_id, uuid))
    }
    fn webhook_accounts(&self) -> Fut<'_, Vec<Uuid>> {
        self.gate(self.inner.webhook_accounts())
    }
    fn observations(&self) -> Fut<'_, Vec<Observed>> {
        self.gate(self.inner.observations())
    }
    fn observe<'a>(&'a self, notice: &'a Notice<'a>) -> Fut<'a, bool> {
        self.gate(self.inner.observe(notice))
    }
    fn due_deliveries(
        &self,
        now_ms: i64,
        per_webhook: usize,
        limit: usize,
    ) -> Fut<'_, Vec<Delivery>> {
        self.gate(self.inner.due_deliveries(now_ms, per_webhook, limit))
    }
    fn claim_delivery(&self, id: i64, due_ms: i64, until_ms: i64, now_ms: i64) -> Fut<'_, bool> {
        self.gate(self.inner.claim_delivery(id, due_ms, until_ms, now_ms))
    }
    fn finish_attempt<'a>(&'a self, attempt: &'a Attempt) -> Fut<'a, ()> {
        self.gate(self.inner.finish_attempt(attempt))
    }
    fn attempts(&self, account_id: Uuid, limit: usize) -> Fut<'_, Vec<AttemptLog>> {
        self.gate(self.inner.attempts(account_id, limit))
    }
    fn deliveries(&self, account_id: Uuid, limit: usize) -> Fut<'_, Vec<Delivery>> {
        self.gate(self.inner.deliveries(account_id, limit))
    }
    fn prune_deliveries(&self, keep: usize) -> Fut<'_, u64> {
        self.gate(self.inner.prune_deliveries(keep))
    }
    fn drop_pending(&self, max: usize) -> Fut<'_, Vec<(Uuid, u64)>> {
        self.gate(self.inner.drop_pending(max))
    }
}

/// A started server on a [`Faulty`] database holding one published
/// experiment (variants `a` and `b`), the database working.
struct Running {
    faulty: Arc<Faulty>,
    state: AppState,
    background: Background,
    clock: Clock,
    experiment: Uuid,
    _dir: tempfile::TempDir,
}

async fn running() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteStorage::open(&dir.path().join("myna.db"))
        .await
        .unwrap();
    let faulty = Arc::new(Faulty {
        inner,
        mode: AtomicU8::new(Mode::Normal as u8),
        pings: AtomicUsize::new(0),
    });
    let account = Account {
        id: Uuid::new_v4(),
        email: "me@example.com".into(),
        password_hash: "$argon2id$stub".into(),
        created_ms: 0,
    };
    faulty.create_account(&account).await.unwrap();
    let clock = Clock::manual(START_MS);
    let options = Options {
        clock: clock.clone(),
        passwords: Passwords::fast_for_tests(),
        ..Options::default()
    };
    let storage: Arc<dyn Storage> = faulty.clone();
    let (state, background) = AppState::start(storage, options).await.unwrap();
    let experiment = Experiment {
        uuid: Uuid::new_v4(),
        alias: None,
        id: "outage".into(),
        account_id: account.id,
        name: "Outage".into(),
        visibility: Visibility::Published,
        settings: json!({}),
        variants: vec![Variant::new("a"), Variant::new("b")],
    };
    let uuid = experiment.uuid;
    let created = state.committer.change(Change::Create {
        experiment,
        id_chosen: false,
    });
    created.await.unwrap();
    Running {
        faulty,
        state,
        background,
        clock,
        experiment: uuid,
        _dir: dir,
    }
}

/// A batch of one view of `a`.
fn one_view() -> RecordBatch {
    RecordBatch {
        batch: Some(Uuid::new_v4()),
        events: vec![Event {
            typename: EventType::View,
            variant: "a".into(),
            amount: None,
            timestamp: START_MS,
        }],
    }
}

impl Running {
    /// Commits one view of `a`.
    async fn record(&self) -> Result<bool, myna_core::Problem> {
        let batch = one_view();
        self.state
            .committer
            .record(
                Recording {
                    experiment: self.experiment,
                    batch,
                },
                myna_core::Access::Complete,
            )
            .await
    }

    /// Pages read the experiment: weights served, for the next flush.
    fn serve_reads(&self) {
        for _ in 0..3 {
            let served = self
                .state
                .cache
                .serve_snapshot(self.experiment, self.clock.now_ms());
            assert!(served.is_some());
        }
    }

    async fn healthz(&self) -> StatusCode {
        let client = TestClient::new(app(self.state.clone()).map_to_response());
        client.get("/healthz").send().await.0.status()
    }

    /// Waits (a while) for the database to have taken `n` probe writes
    /// or refusals in all.
    async fn pinged(&self, n: usize) {
        for _ in 0..500 {
            if self.faulty.pings.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn a_commit_failed_while_the_database_was_away_holds_healthz_no_longer_than_the_outage() {
    let server = running().await;
    assert_eq!(server.healthz().await, StatusCode::OK);
    let pings = server.faulty.pings.load(Ordering::SeqCst);

    // A short outage (connections refused): a record during it fails.
    server.faulty.set(Mode::Away);
    let refused = server.record().await.unwrap_err();
    assert_eq!(refused.status, 503);
    // The server looks whether the database takes a small write (no).
    server.pinged(pings + 1).await;

    // The database answers again; no record arrives (a load balancer took
    // the instance out of rotation): the health check alone brings it back,
    // without the 30 s (here, the manual clock never moves) a failure of the
    // database's own holds.
    server.faulty.set(Mode::Normal);
    assert_eq!(server.healthz().await, StatusCode::OK);
    assert!(server.record().await.unwrap());
}

#[tokio::test]
async fn a_commit_the_database_refuses_while_it_takes_small_writes_holds_healthz_30_s() {
    let server = running().await;
    assert_eq!(server.healthz().await, StatusCode::OK);
    let pings = server.faulty.pings.load(Ordering::SeqCst);

    // A full disk: the group commit fails, the probe's small write works.
    server.faulty.set(Mode::RefusingCommits);
    let refused = server.record().await.unwrap_err();
    assert_eq!(refused.status, 503);
    server.pinged(pings + 1).await;
    assert_eq!(server.healthz().await, StatusCode::SERVICE_UNAVAILABLE);
    server.clock.advance(WRITE_FAILURE_HOLD_MS - 1);
    assert_eq!(server.healthz().await, StatusCode::SERVICE_UNAVAILABLE);
    server.clock.advance(1);
    assert_eq!(server.healthz().await, StatusCode::OK);

    // A commit that succeeds ends the hold at once.
    assert_eq!(
        server.record().await.unwrap_err().status,
        503,
        "the disk is still full"
    );
    assert_eq!(server.healthz().await, StatusCode::SERVICE_UNAVAILABLE);
    server.faulty.set(Mode::Normal);
    assert!(server.record().await.unwrap());
    assert_eq!(server.healthz().await, StatusCode::OK);
}

#[tokio::test]
async fn a_failed_flush_of_the_weights_served_never_fails_healthz() {
    let server = running().await;
    server.serve_reads();
    server.faulty.set(Mode::Away);
    assert!(server.state.flush_served().await.is_err());
    server.faulty.set(Mode::Normal);
    assert_eq!(server.healthz().await, StatusCode::OK);
    // Kept for the next flush.
    server.state.flush_served().await.unwrap();
    let served = server.faulty.served(server.experiment).await.unwrap();
    assert!(!served.is_empty(), "the weights served were kept");
}

#[tokio::test]
async fn a_shutdown_ends_though_the_database_never_answers() {
    let server = running().await;
    let Running {
        faulty,
        state,
        background,
        experiment,
        ..
    } = server;
    state
        .cache
        .serve_snapshot(experiment, START_MS)
        .expect("served");

    // Frozen (no call answers, closing included), with a commit under way
    // whose request the serve loop has given up on.
    faulty.set(Mode::Frozen);
    let committer = state.committer.clone();
    let waiting = tokio::spawn(async move {
        let batch = RecordBatch {
            batch: Some(Uuid::new_v4()),
            events: vec![],
        };
        committer
            .record(Recording { experiment, batch }, myna_core::Access::Complete)
            .await
    });
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    waiting.abort();
    drop(state);

    // Short bounds (the server's are 10 s and 3 s); a wait with no bound
    // would never end (then this fails after 5 minutes of it).
    let storage: &dyn Storage = faulty.as_ref();
    let bound = Duration::from_millis(300);
    let finished = tokio::time::timeout(
        Duration::from_secs(300),
        myna_server::serve::finish_within(background, storage, bound, bound),
    )
    .await
    .expect("the shutdown waited on a database that never answers");
    assert!(finished.commits, "{finished:?}");
    assert!(finished.served, "{finished:?}");
    assert!(finished.close, "{finished:?}");
}

/// A signed-in owner's page during an outage is a 503 to retry, not the
/// sign-in form: the session could not be checked, it is not over.
#[tokio::test]
async fn the_dashboard_answers_503_during_an_outage_and_keeps_the_session() {
    let server = running().await;
    let account = server
        .state
        .storage
        .account_by_email("me@example.com")
        .await;
    let account = account.unwrap().expect("the account").id;
    let token = myna_server::auth::issue_session(server.faulty.as_ref(), account, START_MS)
        .await
        .unwrap();
    let client = TestClient::new(app(server.state.clone()).map_to_response());
    let cookie = format!("myna_session={token}");
    let page = |path: &'static str| client.get(path).header("cookie", cookie.as_str()).send();
    assert_eq!(page("/").await.0.status(), StatusCode::OK);
    server.faulty.set(Mode::Away);
    for path in ["/", "/keys", "/no-such-page"] {
        let answer = page(path).await;
        assert_eq!(answer.0.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(
            answer.0.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..]),
            "{path}"
        );
        assert!(answer.0.headers().get("location").is_none(), "{path}");
    }
    // Signing out meanwhile: signed out in this browser (the cookie
    // cleared), and told that the server could not end the session itself.
    let csrf = {
        server.faulty.set(Mode::Normal);
        let keys = page("/keys")
            .await
            .0
            .into_body()
            .into_string()
            .await
            .unwrap();
        server.faulty.set(Mode::Away);
        let field = "name=\"csrf\" value=\"";
        let at = keys.find(field).expect("a csrf field") + field.len();
        keys[at..].split('"').next().unwrap_or_default().to_owned()
    };
    let out = client
        .post("/signout")
        .header("cookie", cookie.as_str())
        .content_type("application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await;
    assert_eq!(out.0.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        out.0.headers().get("location").map(|v| v.as_bytes()),
        Some(&b"/signin?session=out-here"[..])
    );
    let cleared = out
        .0
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap_or_default());
    assert!(cleared.is_some_and(|c| c.starts_with("myna_session=;") && c.contains("Max-Age=0")));
    server.faulty.set(Mode::Normal);
    assert_eq!(page("/").await.0.status(), StatusCode::OK);
}

/// A commit that never ends holds every record call queued behind it to
/// its own 5 s, not that commit's 5 s plus its own: each answers 503
/// within 5 s of its start, and nothing it sent is acknowledged.
#[tokio::test]
async fn record_calls_behind_a_hung_commit_answer_503_within_their_own_5_s() {
    let server = Arc::new(running().await);
    server.faulty.set(Mode::Frozen);
    let first = {
        let server = server.clone();
        tokio::spawn(async move { server.record().await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = std::time::Instant::now();
    // Bounded here, so a server that waits for the hung commit fails the
    // test instead of hanging it.
    let behind = tokio::time::timeout(Duration::from_secs(15), server.record())
        .await
        .expect("an answer, not a wait for the hung commit")
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(behind.status, 503, "{behind:?}");
    assert!(
        waited < Duration::from_millis(5_500),
        "waited {waited:?}: the hung commit's time as well as its own"
    );
    let first = tokio::time::timeout(Duration::from_secs(15), first).await;
    assert_eq!(first.expect("an answer").unwrap().unwrap_err().status, 503);
}

#[tokio::test]
async fn an_api_key_batch_queued_behind_a_change_to_draft_is_refused_and_not_stored() {
    let server = running().await;
    let uuid = server.experiment;
    let account = server.state.cache.experiment(uuid).unwrap().account_id;
    // The owner sets the experiment to draft: the writer takes the change,
    // whose storage call waits...
    server.faulty.set(Mode::Held);
    let committer = server.state.committer.clone();
    let change = tokio::spawn(async move {
        let body = br#"{"visibility":"draft"}"#.to_vec();
        committer
            .change(Change::Update {
                uuid,
                account,
                body,
                unless: None,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...while a page's batch, validated against the published experiment
    // still cached, is queued behind it.
    let state = server.state.clone();
    let recorded = tokio::spawn(async move {
        let caller = myna_server::auth::Caller::Key {
            account,
            key: Uuid::new_v4(),
        };
        let batch = one_view();
        myna_server::service::experiments::record(&state, caller, uuid, batch).await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.faulty.set(Mode::Normal);
    change.await.unwrap().unwrap();
    // Refused as the key's call on a draft is (404), and nothing stored:
    // the answer and the counts agree.
    let problem = recorded.await.unwrap().unwrap_err();
    assert_eq!(problem.status, 404, "{problem:?}");
    let stored = server.faulty.inner.experiment(uuid).await.unwrap();
    let views: Vec<u64> = stored
        .unwrap()
        .unwrap()
        .variants
        .iter()
        .map(|v| v.views)
        .collect();
    assert_eq!(views, [0, 0]);
}
