//! A server on a temporary SQLite file, driven through poem's `TestClient`
//! (no socket), with two accounts, their API keys and tokens, and a manual
//! clock.

use std::ops::Deref;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use myna_server::accounts;
use myna_server::auth::{Passwords, issue_token};
use myna_server::cors::Origins;
use myna_server::storage::{ApiKey, Storage};
use poem::http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

pub use crate::common::app::{Answer, START_MS};
use crate::common::app::{Seed, TestApp};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// No credentials at all.
    Nobody,
    /// The owner's API key (`Authorization: ApiKey`).
    Key,
    /// Another account's API key.
    OtherKey,
    /// Another account's credentials (Bearer token).
    Other,
    /// The owner's Bearer token.
    Owner,
    /// The owner's Basic credentials.
    OwnerBasic,
}

/// The four columns of the access matrix.
pub const MATRIX: [Who; 4] = [Who::Nobody, Who::Key, Who::Other, Who::Owner];

/// An account with its credentials.
#[derive(Debug, Clone)]
pub struct Party {
    pub account: Uuid,
    pub email: String,
    pub password: String,
    pub token: Uuid,
    pub key: Uuid,
}

impl Party {
    pub fn basic(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.email, self.password))
        )
    }
}

impl Answer {
    /// The problem's first message `typename`, if this is a problem.
    pub fn code(&self) -> Option<String> {
        let json = self.json();
        (json["typename"] == "problem")
            .then(|| json["messages"][0]["typename"].as_str().map(str::to_owned))
            .flatten()
    }
}

/// The shared test app with two accounts (owner and other), each with an
/// API key and a token.
pub struct Harness {
    app: TestApp,
    pub owner: Party,
    pub other: Party,
}

impl Deref for Harness {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_origins(Origins::Any).await
    }

    pub async fn with_origins(origins: Origins) -> Harness {
        Harness::build(origins, None, None).await
    }

    /// The harness of a server started with `--public-url url`.
    pub async fn with_public_url(url: &str) -> Harness {
        Harness::build(Origins::Any, Some(url.to_owned()), None).await
    }

    /// The harness of a server started with `--record-limit events` and
    /// `--client-ip-header X-Forwarded-For`.
    pub async fn with_record_limit(events: u32) -> Harness {
        Harness::build(Origins::Any, None, Some(events)).await
    }

    async fn build(origins: Origins, public_url: Option<String>, limit: Option<u32>) -> Harness {
        let mut seed = Seed::new().await;
        seed.public_url = public_url;
        seed.record_limit = limit;
        let owner = party(
            &seed.storage,
            &seed.passwords,
            "owner@example.com",
            START_MS,
        )
        .await;
        let other = party(
            &seed.storage,
            &seed.passwords,
            "other@example.com",
            START_MS,
        )
        .await;
        Harness {
            app: seed.start(origins).await,
            owner,
            other,
        }
    }

    /// The `Authorization` header of `who`.
    pub fn authorization(&self, who: Who) -> Option<String> {
        match who {
            Who::Nobody => None,
            Who::Key => Some(format!("ApiKey {}", self.owner.key)),
            Who::OtherKey => Some(format!("ApiKey {}", self.other.key)),
            Who::Other => Some(format!("Bearer {}", self.other.token)),
            Who::Owner => Some(format!("Bearer {}", self.owner.token)),
            Who::OwnerBasic => Some(self.owner.basic()),
        }
    }

    /// Sends a request as `who`, with a JSON body if given.
    pub async fn send(&self, method: Method, uri: &str, who: Who, body: Option<Value>) -> Answer {
        let mut headers = Vec::new();
        if let Some(auth) = self.authorization(who) {
            headers.push(("Authorization", auth));
        }
        if body.is_some() {
            headers.push(("Content-Type", "application/json".to_owned()));
        }
        let body = body.map(|b| b.to_string().into_bytes());
        self.send_with(method, uri, &headers, body).await
    }

    pub async fn get(&self, uri: &str, who: Who) -> Answer {
        self.send(Method::GET, uri, who, None).await
    }

    pub async fn post(&self, uri: &str, who: Who, body: Value) -> Answer {
        self.send(Method::POST, uri, who, Some(body)).await
    }

    /// Creates an experiment of the owner with variants `a` and `b`.
    pub async fn experiment(&self, visibility: &str) -> Uuid {
        let answer = self
            .post(
                "/v2/experiment",
                Who::Owner,
                json!({"name": format!("{visibility} test"), "visibility": visibility,
                       "settings": {"color": "blue"},
                       "variants": {"a": {"settings": {"text": "A"}}, "b": {}}}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.json()["uuid"]
            .as_str()
            .and_then(|u| Uuid::parse_str(u).ok())
            .expect("a uuid")
    }

    /// The owner's complete read form of an experiment.
    pub async fn complete(&self, uuid: Uuid) -> Value {
        let answer = self
            .get(&format!("/v2/experiment/{uuid}"), Who::Owner)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.json()
    }
}

async fn party(storage: &Arc<dyn Storage>, passwords: &Passwords, email: &str, now: i64) -> Party {
    let password = format!("pw-{email}");
    let account = accounts::create_account(storage.as_ref(), passwords, email, &password, now)
        .await
        .expect("account");
    let token = issue_token(storage.as_ref(), account.id, now)
        .await
        .expect("token");
    let key = ApiKey {
        uuid: Uuid::new_v4(),
        account_id: account.id,
        name: Some("site".into()),
        created_ms: now,
    };
    storage
        .create_api_key(&key, myna_core::limits::MAX_API_KEYS)
        .await
        .expect("key");
    Party {
        account: account.id,
        email: email.to_owned(),
        password,
        token: token.token,
        key: key.uuid,
    }
}

/// The problem body without its timestamp (to compare two problems).
pub fn without_timestamp(mut problem: Value) -> Value {
    if let Some(object) = problem.as_object_mut() {
        object.remove("timestamp");
    }
    problem
}
