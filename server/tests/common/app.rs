//! One in-process server for the API and dashboard tests: a temporary
//! SQLite file, a manual clock, accounts seeded before the app starts, and
//! the app behind poem's `TestClient` (no socket).

use std::sync::Arc;

use myna_server::auth::Passwords;
use myna_server::clock::Clock;
use myna_server::cors::Origins;
use myna_server::storage::Storage;
use myna_server::storage::sqlite::SqliteStorage;
use myna_server::{AppState, Options, app};
use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderMap, Method, StatusCode};
use poem::test::TestClient;
use poem::{EndpointExt, Response};
use serde_json::Value;
use tempfile::TempDir;

/// The manual clock's start: 2026-11-26T15:59:33.232Z.
pub const START_MS: i64 = 1_795_708_773_232;

/// The database and clock before the app starts: seed accounts, keys and
/// tokens through `storage` and `passwords`, then [`Seed::start`].
pub struct Seed {
    pub storage: Arc<dyn Storage>,
    pub passwords: Passwords,
    pub clock: Clock,
    /// The server's `--public-url`, if any.
    pub public_url: Option<String>,
    /// The server's `--record-limit`, if any (clients then told apart by
    /// `X-Forwarded-For`, as behind a proxy).
    pub record_limit: Option<u32>,
    dir: TempDir,
}

impl Seed {
    pub async fn new() -> Seed {
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite = SqliteStorage::open(&dir.path().join("myna.db"))
            .await
            .expect("open sqlite");
        Seed {
            storage: Arc::new(sqlite),
            passwords: Passwords::fast_for_tests(),
            clock: Clock::manual(START_MS),
            public_url: None,
            record_limit: None,
            dir,
        }
    }

    /// The app on this database, answering cross-origin calls from `origins`.
    pub async fn start(self, origins: Origins) -> TestApp {
        let options = Options {
            clock: self.clock.clone(),
            passwords: self.passwords,
            origins,
            public_url: self.public_url,
            record_limit: self.record_limit,
            client_ip_header: self
                .record_limit
                .map(|_| poem::http::HeaderName::from_static("x-forwarded-for")),
            ..Options::default()
        };
        let (state, _background) = AppState::start(self.storage.clone(), options)
            .await
            .expect("start");
        TestApp {
            client: TestClient::new(app(state.clone()).map_to_response().boxed()),
            state,
            storage: self.storage,
            clock: self.clock,
            _dir: self.dir,
        }
    }
}

/// A running app, its database and its clock.
pub struct TestApp {
    pub client: TestClient<BoxEndpoint<'static, Response>>,
    pub state: AppState,
    pub storage: Arc<dyn Storage>,
    pub clock: Clock,
    _dir: TempDir,
}

/// An answer: status, headers, body text.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON (`null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    /// Sends a request with `headers`, and `body` as given.
    pub async fn send_with(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut request = self.client.request(method, uri.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.0;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.into_body().into_string().await.unwrap_or_default();
        Answer {
            status,
            headers,
            text,
        }
    }
}
