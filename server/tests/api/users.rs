//! Login, tokens (expiry after an hour unused, logout) and API keys.

use poem::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Harness, START_MS, Who};

async fn login_token(h: &Harness) -> String {
    let answer = h
        .send_with(
            Method::POST,
            "/v2/user/login",
            &[("Authorization", h.owner.basic())],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let form = answer.json();
    assert_eq!(form["typename"], "token");
    assert_eq!(
        form["expires"], "2026-11-26T16:59:33.232Z",
        "one hour from now"
    );
    format!("Bearer {}", form["token"].as_str().unwrap())
}

async fn search_with(h: &Harness, authorization: &str) -> StatusCode {
    h.send_with(
        Method::GET,
        "/v2/experiment",
        &[("Authorization", authorization.to_owned())],
        None,
    )
    .await
    .status
}

#[tokio::test]
async fn login_with_basic_or_a_json_body() {
    let h = Harness::new().await;
    let token = login_token(&h).await;
    assert_eq!(search_with(&h, &token).await, StatusCode::OK);
    let body = json!({"email": "OWNER@example.com ", "password": h.owner.password});
    let answer = h.post("/v2/user/login", Who::Nobody, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_ne!(answer.json()["token"], token.trim_start_matches("Bearer "));
}

/// Basic credentials and a JSON body at once are refused: which one would
/// log in is not for the sender to guess (an empty body is no second one).
#[tokio::test]
async fn basic_credentials_with_a_login_body_are_refused() {
    let h = Harness::new().await;
    for body in [
        json!({"email": "other@example.com", "password": "wrong-password"}),
        json!({"email": "owner@example.com", "password": h.owner.password}),
    ] {
        let answer = h
            .send_with(
                Method::POST,
                "/v2/user/login",
                &[("Authorization", h.owner.basic())],
                Some(body.to_string().into_bytes()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
        assert_eq!(answer.json()["messages"][0]["path"], "body");
    }
    let blank = h
        .send_with(
            Method::POST,
            "/v2/user/login",
            &[("Authorization", h.owner.basic())],
            Some(b" \n".to_vec()),
        )
        .await;
    assert_eq!(blank.status, StatusCode::OK, "{}", blank.text);
}

/// Clients that send a password only when a 401 asks for Basic (curl
/// --anyauth, wget, Java's Authenticator, Python's HTTPBasicAuthHandler)
/// are asked; a browser never is, and nobody where Basic is refused (a
/// record GET; a JSONP call answers 200 with the problem inside, so no
/// challenge at all).
#[tokio::test]
async fn a_401_offers_basic_only_to_clients_that_are_no_page() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let path = format!("/v2/experiment/{uuid}/decision");
    let challenge = |headers: Vec<(&'static str, String)>| {
        let (h, path) = (&h, &path);
        async move {
            let answer = h.send_with(Method::GET, path, &headers, None).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{headers:?}");
            answer.header("www-authenticate").map(str::to_owned)
        }
    };
    let with_basic = "Basic realm=\"myna\", Bearer realm=\"myna\", ApiKey realm=\"myna\"";
    let without = "Bearer realm=\"myna\", ApiKey realm=\"myna\"";
    // curl, wget, Java, Python: nothing sent yet, then Basic once asked.
    assert_eq!(challenge(vec![]).await.as_deref(), Some(with_basic));
    let basic = (
        "Authorization",
        "Basic b3duZXJAZXhhbXBsZS5jb206d3Jvbmc=".to_owned(),
    );
    assert_eq!(challenge(vec![basic]).await.as_deref(), Some(with_basic));
    // A browser, never: it would ask its user for a password and then send
    // it with other sites' requests too. A navigation (in a frame as well),
    // over HTTPS or plain HTTP; a page's calls: with an Origin, Fetch
    // Metadata of a script, an API key.
    for headers in [
        vec![("Sec-Fetch-Mode", "navigate".to_owned())],
        vec![(
            "Accept",
            "text/html,application/xhtml+xml,*/*;q=0.8".to_owned(),
        )],
        vec![("Upgrade-Insecure-Requests", "1".to_owned())],
        vec![("Origin", "https://shop.example".to_owned())],
        vec![("Sec-Fetch-Mode", "cors".to_owned())],
        vec![("Sec-Fetch-Mode", "no-cors".to_owned())],
        vec![(
            "Authorization",
            "ApiKey 00000000-0000-4000-8000-000000000000".to_owned(),
        )],
    ] {
        assert_eq!(challenge(headers).await.as_deref(), Some(without));
    }
    let keyed = h
        .send_with(
            Method::GET,
            &format!("{path}?apikey=00000000-0000-4000-8000-000000000000"),
            &[],
            None,
        )
        .await;
    assert_eq!(keyed.status, StatusCode::UNAUTHORIZED);
    let record = format!("/v2/experiment/{uuid}/record?typename=view&variant=a");
    assert_eq!(challenge_at(&h, &record).await.as_deref(), Some(without));
    assert_eq!(keyed.header("www-authenticate"), Some(without));
}

async fn challenge_at(h: &Harness, path: &str) -> Option<String> {
    let answer = h.send_with(Method::GET, path, &[], None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
    answer.header("www-authenticate").map(str::to_owned)
}

#[tokio::test]
async fn wrong_credentials_are_401() {
    let h = Harness::new().await;
    for body in [
        json!({"email": "owner@example.com", "password": "wrong"}),
        json!({"email": "nobody@example.com", "password": "wrong"}),
    ] {
        let answer = h.post("/v2/user/login", Who::Nobody, body).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.code().as_deref(), Some("authentication"));
        // A 401 names the schemes to try; Basic too, to a client that is
        // no page's script.
        assert_eq!(
            answer.header("www-authenticate"),
            Some("Basic realm=\"myna\", Bearer realm=\"myna\", ApiKey realm=\"myna\"")
        );
    }
    let missing = h
        .post("/v2/user/login", Who::Nobody, json!({"email": "a@b"}))
        .await;
    assert_eq!(
        (missing.status, missing.code().as_deref()),
        (StatusCode::BAD_REQUEST, Some("missing-field"))
    );
    for header in [
        "Basic b3duZXJAZXhhbXBsZS5jb206d3Jvbmc=", // owner@example.com:wrong
        "Bearer 00000000-0000-4000-8000-000000000000",
        "ApiKey 00000000-0000-4000-8000-000000000000",
        "Token abc",
        "Basic %%%",
    ] {
        assert_eq!(
            search_with(&h, header).await,
            StatusCode::UNAUTHORIZED,
            "{header}"
        );
    }
}

#[tokio::test]
async fn tokens_expire_after_an_hour_unused() {
    let h = Harness::new().await;
    let token = login_token(&h).await;
    h.clock.advance(50 * 60_000);
    assert_eq!(
        search_with(&h, &token).await,
        StatusCode::OK,
        "used at 50 minutes"
    );
    h.clock.advance(50 * 60_000);
    assert_eq!(
        search_with(&h, &token).await,
        StatusCode::OK,
        "the use slid the expiry"
    );
    h.clock.advance(60 * 60_000);
    assert_eq!(
        search_with(&h, &token).await,
        StatusCode::UNAUTHORIZED,
        "an hour unused"
    );
    // Refused for good: a clock stepped back an hour (NTP) does not bring
    // it back (an outside probe's expired token answered 200 again).
    let stored = h
        .storage
        .token(myna_server::auth::token_hash(
            token.trim_start_matches("Bearer "),
        ))
        .await;
    assert!(stored.unwrap().is_none());
    h.clock.advance(-60 * 60_000);
    assert_eq!(
        search_with(&h, &token).await,
        StatusCode::UNAUTHORIZED,
        "the clock stepped back"
    );
}

#[tokio::test]
async fn logout_ends_the_token() {
    let h = Harness::new().await;
    let token = login_token(&h).await;
    let answer = h
        .send_with(
            Method::POST,
            "/v2/user/logout",
            &[("Authorization", token.clone())],
            None,
        )
        .await;
    assert_eq!(
        (answer.status, answer.json()),
        (StatusCode::OK, json!({"typename": "ok"}))
    );
    assert_eq!(search_with(&h, &token).await, StatusCode::UNAUTHORIZED);
    // The harness's other token is untouched.
    assert_eq!(
        h.get("/v2/experiment", Who::Owner).await.status,
        StatusCode::OK
    );
    // Logout with Basic ends every token of the account.
    let token = login_token(&h).await;
    let answer = h
        .send(Method::POST, "/v2/user/logout", Who::OwnerBasic, None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(search_with(&h, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.get("/v2/experiment", Who::Owner).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.get("/v2/experiment", Who::OwnerBasic).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn api_key_lifecycle() {
    let h = Harness::new().await;
    let created = h
        .post("/v2/apikey", Who::Owner, json!({"name": "landing page"}))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let key = created.json();
    assert_eq!(key["typename"], "apikey");
    assert_eq!(key["name"], "landing page");
    assert_eq!(key["created"], "2026-11-26T15:59:33.232Z");
    let uuid = key["uuid"].as_str().unwrap().to_owned();
    let unnamed = h.send(Method::POST, "/v2/apikey", Who::Owner, None).await;
    assert_eq!(unnamed.status, StatusCode::OK);
    assert!(unnamed.json().get("name").is_none());
    let list = h.get("/v2/apikey", Who::Owner).await.json();
    let uuids: Vec<_> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["uuid"].clone())
        .collect();
    assert_eq!(uuids.len(), 3);
    assert!(uuids.contains(&json!(uuid)));
    // The new key works, then stops working once deleted.
    let experiment = h.experiment("published").await;
    let h = &h;
    let read = |auth: String| {
        let uri = format!("/v2/experiment/{experiment}");
        async move {
            h.send_with(Method::GET, &uri, &[("Authorization", auth)], None)
                .await
                .status
        }
    };
    assert_eq!(read(format!("ApiKey {uuid}")).await, StatusCode::OK);
    let deleted = h
        .send(
            Method::DELETE,
            &format!("/v2/apikey/{uuid}"),
            Who::Owner,
            None,
        )
        .await;
    assert_eq!(
        (deleted.status, deleted.json()),
        (StatusCode::OK, json!({"typename": "ok"}))
    );
    assert_eq!(
        read(format!("ApiKey {uuid}")).await,
        StatusCode::UNAUTHORIZED
    );
    let again = h
        .send(
            Method::DELETE,
            &format!("/v2/apikey/{uuid}"),
            Who::Owner,
            None,
        )
        .await;
    assert_eq!(
        (again.status, again.code().as_deref()),
        (StatusCode::NOT_FOUND, Some("not-found"))
    );
    let bad = h.post("/v2/apikey", Who::Owner, json!({"name": 3})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // An account holds at most MAX_API_KEYS keys: the next is a 409.
    let max = myna_core::limits::MAX_API_KEYS;
    let mut refused = None;
    for _ in 0..=max {
        let created = h.post("/v2/apikey", Who::Owner, json!({})).await;
        if created.status != StatusCode::OK {
            refused = Some(created);
            break;
        }
    }
    let refused = refused.expect("a key past the limit is refused");
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.code().as_deref(), Some("conflict"));
    let list = h.get("/v2/apikey", Who::Owner).await.json();
    assert_eq!(list["results"].as_array().unwrap().len(), max);
}

#[tokio::test]
async fn nul_in_an_api_key_name_or_a_login_email_is_a_400_with_its_path() {
    let h = Harness::new().await;
    let key = h
        .post("/v2/apikey", Who::Owner, json!({"name": "site\u{0}x"}))
        .await;
    assert_eq!(key.status, StatusCode::BAD_REQUEST, "{}", key.text);
    assert_eq!(key.json()["messages"][0]["path"], "name");
    let login = h
        .post(
            "/v2/user/login",
            Who::Nobody,
            json!({"email": "owner\u{0}@example.com", "password": h.owner.password}),
        )
        .await;
    assert_eq!(login.status, StatusCode::BAD_REQUEST, "{}", login.text);
    assert_eq!(login.json()["messages"][0]["path"], "email");
}

#[tokio::test]
async fn new_accounts_follow_the_password_policy() {
    let h = Harness::new().await;
    let passwords = myna_server::auth::Passwords::fast_for_tests();
    let storage = h.storage.as_ref();
    for (email, password, path) in [
        ("new@example.com", "1", "password"),
        ("new@example.com", "aaaaaaaaaa", "password"),
        ("new@example.com", "new@example.com", "password"),
        ("new@example.com", "NEW", "password"),
        ("longer@example.com", "longer", "password"),
        ("new@example.com", "password123", "password"),
        ("new\u{0}@example.com", "a fine password", "email"),
        ("c:d@example.com", "a fine password", "email"),
        ("bad email", "a fine password", "email"),
        ("no-at-sign", "a fine password", "email"),
    ] {
        let refused =
            myna_server::accounts::create_account(storage, &passwords, email, password, START_MS)
                .await
                .err()
                .unwrap_or_else(|| panic!("{email} {password} was accepted"));
        assert_eq!(refused.status, 400, "{refused}");
        assert!(
            refused
                .messages
                .iter()
                .all(|m| m.path.as_deref() == Some(path)),
            "{refused}"
        );
        assert!(
            storage
                .account_by_email(&email.to_lowercase())
                .await
                .unwrap()
                .is_none()
        );
    }
    let created = myna_server::accounts::create_account(
        storage,
        &passwords,
        "new@example.com",
        "change-me",
        START_MS,
    )
    .await;
    assert!(created.is_ok(), "{created:?}");
}

#[tokio::test]
async fn an_unknown_field_of_an_api_key_body_is_a_400_at_its_path_and_creates_nothing() {
    let h = Harness::new().await;
    let before = h.get("/v2/apikey", Who::Owner).await.json()["results"].clone();
    let misspelt = h.post("/v2/apikey", Who::Owner, json!({"nmae": "x"})).await;
    assert_eq!(
        misspelt.status,
        StatusCode::BAD_REQUEST,
        "{}",
        misspelt.text
    );
    let problem = misspelt.json();
    assert_eq!(problem["messages"][0]["typename"], "invalid-value");
    assert_eq!(problem["messages"][0]["path"], "nmae");
    assert!(
        problem["messages"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`name`")),
        "{problem}"
    );
    let quoted = h
        .post("/v2/apikey", Who::Owner, json!({"a.b": 1, "name": 2}))
        .await;
    let paths: Vec<_> = quoted.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].clone())
        .collect();
    assert_eq!(paths, [json!("[\"a.b\"]"), json!("name")], "every problem");
    let after = h.get("/v2/apikey", Who::Owner).await.json()["results"].clone();
    assert_eq!(after, before);
    let typed = h
        .post(
            "/v2/apikey",
            Who::Owner,
            json!({"typename": "apikey", "name": "x"}),
        )
        .await;
    assert_eq!(typed.status, StatusCode::OK, "{}", typed.text);
}
