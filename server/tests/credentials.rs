//! Password checks a hostile client cannot exploit, through poem's
//! `TestClient` behind a proxy that names the client (`X-Forwarded-For`):
//! failures limited per client address and per account (429 with
//! `Retry-After`, refused before any hashing, growing waits), the limits
//! in JSON, JSONP and the login endpoint, a success remembered so Basic on
//! every call hashes once, and tokens that never reach the database.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use myna_server::auth::Passwords;
use myna_server::clock::Clock;
use myna_server::storage::Storage;
use myna_server::storage::sqlite::SqliteStorage;
use myna_server::{AppState, Options, accounts, app};
use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderMap, Method, StatusCode};
use poem::test::TestClient;
use poem::{EndpointExt, Response};
use serde_json::{Value, json};
use tempfile::TempDir;

const START_MS: i64 = 1_795_708_773_232;
const OWNER: &str = "owner@example.com";
const OWNER_PASSWORD: &str = "owner password";
const OTHER: &str = "other@example.com";
const OTHER_PASSWORD: &str = "other password";

struct Server {
    client: TestClient<BoxEndpoint<'static, Response>>,
    _state: AppState,
    passwords: Passwords,
    clock: Clock,
    dir: TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn code(&self) -> Option<String> {
        self.json()["messages"][0]["typename"]
            .as_str()
            .map(str::to_owned)
    }

    fn retry_after(&self) -> Option<i64> {
        self.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }
}

fn basic(email: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{email}:{password}")))
}

impl Server {
    async fn new() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(
            SqliteStorage::open(&dir.path().join("myna.db"))
                .await
                .unwrap(),
        );
        let passwords = Passwords::fast_for_tests();
        for (email, password) in [(OWNER, OWNER_PASSWORD), (OTHER, OTHER_PASSWORD)] {
            accounts::create_account(storage.as_ref(), &passwords, email, password, START_MS)
                .await
                .unwrap();
        }
        let clock = Clock::manual(START_MS);
        let options = Options {
            clock: clock.clone(),
            passwords: passwords.clone(),
            client_ip_header: Some("x-forwarded-for".parse().unwrap()),
            ..Options::default()
        };
        let (state, _background) = AppState::start(storage, options).await.unwrap();
        let client = TestClient::new(app(state.clone()).map_to_response().boxed());
        Server {
            client,
            _state: state,
            passwords,
            clock,
            dir,
        }
    }

    /// A request from the client at `address` (as the proxy says).
    async fn send(
        &self,
        method: Method,
        uri: &str,
        address: &str,
        authorization: Option<String>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, uri.to_owned())
            .header("x-forwarded-for", address);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.0;
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.into_body().into_string().await.unwrap_or_default(),
        }
    }

    /// `GET /v2/experiment` with Basic credentials from `address`.
    async fn search(&self, address: &str, email: &str, password: &str) -> Answer {
        let auth = Some(basic(email, password));
        self.send(Method::GET, "/v2/experiment", address, auth, None)
            .await
    }

    /// The database's files (the main file and the write-ahead log).
    fn database_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for name in ["myna.db", "myna.db-wal"] {
            let path: PathBuf = self.dir.path().join(name);
            bytes.extend(std::fs::read(path).unwrap_or_default());
        }
        bytes
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn wrong_passwords_from_one_address_are_refused_before_hashing_with_growing_waits() {
    let s = Server::new().await;
    let attacker = "203.0.113.7";
    for n in 0..11 {
        let answer = s.search(attacker, OTHER, &format!("guess {n}")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "guess {n}");
    }
    let hashed = s.passwords.verifications();
    let mut waits = Vec::new();
    for round in 0..4 {
        // Spread over several emails, from the same address: all refused,
        // none hashed.
        for email in [OWNER, OTHER, "nobody@example.com"] {
            let answer = s.search(attacker, email, "guess").await;
            assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{round}");
            assert_eq!(answer.code().as_deref(), Some("too-many-attempts"));
            assert_eq!(
                Some(
                    answer.json()["messages"][0]["data"]["retryAfter"]
                        .as_i64()
                        .unwrap_or(0)
                ),
                answer.retry_after()
            );
        }
        let wait = s
            .search(attacker, OTHER, "guess")
            .await
            .retry_after()
            .unwrap();
        waits.push(wait);
        assert_eq!(s.passwords.verifications(), hashed + round);
        // Once the wait is over, one more guess is checked (and fails).
        s.clock.advance(wait * 1000);
        let email = format!("new{round}@example.com");
        let answer = s.search(attacker, &email, "guess").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(waits, [1, 2, 4, 8], "the wait doubles");
    // The right password from another address works meanwhile.
    let answer = s.search("198.51.100.1", OWNER, OWNER_PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // The client cannot pick its address: only the right-most one, which
    // the proxy appended, counts.
    let spoofed = format!("192.0.2.1, {attacker}");
    let answer = s.search(&spoofed, OWNER, "guess").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    // Nor its IPv6 address within its /64 (each guess at another email,
    // so only the address's limit applies).
    for n in 0..11 {
        let email = format!("v6-{n}@example.com");
        let answer = s
            .search(&format!("2001:db8:1:2::{n:x}"), &email, "guess")
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let answer = s
        .search("2001:db8:1:2:abcd::1", "v6@example.com", "guess")
        .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    let answer = s.search("2001:db8:1:3::1", "v6@example.com", "guess").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "another /64");
}

#[tokio::test]
async fn guesses_at_one_account_from_many_addresses_are_limited_but_its_owner_gets_in() {
    let s = Server::new().await;
    let home = "198.51.100.1";
    assert_eq!(
        s.search(home, OWNER, OWNER_PASSWORD).await.status,
        StatusCode::OK
    );
    for n in 0..11 {
        let answer = s.search(&format!("203.0.113.{n}"), OWNER, "guess").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "guess {n}");
    }
    let hashed = s.passwords.verifications();
    let answer = s.search("203.0.113.100", OWNER, "guess").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        answer.json()["messages"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("for this account")
    );
    assert_eq!(
        s.passwords.verifications(),
        hashed,
        "refused before hashing"
    );
    // Another account is not affected, and the owner gets in from the
    // address they signed in from before (once the verified cache is gone).
    s.clock.advance(61_000);
    let blocked = s.search("203.0.113.100", OWNER, "guess").await;
    assert_eq!(
        blocked.status,
        StatusCode::UNAUTHORIZED,
        "the 1 s wait ended"
    );
    assert_eq!(
        s.search("203.0.113.101", OWNER, "guess").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        s.search(home, OWNER, OWNER_PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.search("203.0.113.102", OTHER, OTHER_PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_limits_reach_json_and_the_login_endpoint_alike_and_jsonp_takes_no_password() {
    let s = Server::new().await;
    let attacker = "203.0.113.9";
    for n in 0..11 {
        let body = json!({"email": OWNER, "password": format!("guess {n}")});
        let answer = s
            .send(Method::POST, "/v2/user/login", attacker, None, Some(body))
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let body = json!({"email": OWNER, "password": OWNER_PASSWORD});
    let login = s
        .send(Method::POST, "/v2/user/login", attacker, None, Some(body))
        .await;
    assert_eq!(login.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login.code().as_deref(), Some("too-many-attempts"));
    assert_eq!(login.retry_after(), Some(1));
    // JSONP takes no Basic credentials at all (a browser attaches them to
    // any page's script): no guess is made through it, and no hash paid.
    let hashes = s.passwords.verifications();
    let auth = Some(basic(OWNER, "guess"));
    let jsonp = s
        .send(
            Method::GET,
            "/v2/experiment?callback=cb",
            attacker,
            auth,
            None,
        )
        .await;
    assert_eq!(jsonp.status, StatusCode::OK);
    assert!(jsonp.text.starts_with("/**/cb({"), "{}", jsonp.text);
    assert!(jsonp.text.contains(r#""status":401"#), "{}", jsonp.text);
    assert_eq!(s.passwords.verifications(), hashes);
}

#[tokio::test]
async fn basic_on_every_call_pays_for_one_hash_a_minute() {
    let s = Server::new().await;
    let before = s.passwords.verifications();
    for _ in 0..20 {
        let answer = s.search("198.51.100.1", OWNER, OWNER_PASSWORD).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    assert_eq!(s.passwords.verifications(), before + 1);
    // Another password for the same email is checked, not taken from it.
    let wrong = s.search("198.51.100.1", OWNER, "owner password!").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(s.passwords.verifications(), before + 2);
    s.clock.advance(60_000);
    assert_eq!(
        s.search("198.51.100.1", OWNER, OWNER_PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.passwords.verifications(),
        before + 3,
        "remembered a minute"
    );
}

#[tokio::test]
async fn login_tokens_and_dashboard_sessions_never_reach_the_database() {
    let s = Server::new().await;
    let auth = Some(basic(OWNER, OWNER_PASSWORD));
    let login = s
        .send(Method::POST, "/v2/user/login", "198.51.100.1", auth, None)
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let token = login.json()["token"].as_str().unwrap().to_owned();
    let bearer = Some(format!("Bearer {token}"));
    let answer = s
        .send(Method::GET, "/v2/experiment", "198.51.100.1", bearer, None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let uuid = uuid::Uuid::parse_str(&token).unwrap();
    let stored = s.database_bytes();
    assert!(stored.len() > 4096, "the database files were read");
    for form in [
        token.clone(),
        token.to_uppercase(),
        uuid.simple().to_string(),
    ] {
        assert!(!contains(&stored, form.as_bytes()), "{form} is stored");
    }
    assert!(!contains(&stored, uuid.as_bytes()), "its bytes are stored");
    // A dashboard session's token neither.
    let page = s
        .send(Method::GET, "/signin", "198.51.100.1", None, None)
        .await;
    let csrf = page
        .text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let nonce = page
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("myna_signin="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let form = format!("csrf={csrf}&next=%2F&email=owner%40example.com&password=owner+password");
    let response = s
        .client
        .post("/signin")
        .header("x-forwarded-for", "198.51.100.1")
        .header("cookie", format!("myna_signin={nonce}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .0;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("myna_session="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    assert!(session.len() >= 32, "{session}");
    assert!(!contains(&s.database_bytes(), session.as_bytes()));
}
