//! The access matrix, endpoint by endpoint: who gets which status, and that
//! a refused call changed nothing.

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{Harness, MATRIX, Who, without_timestamp};

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap()
}

/// Runs `method path` as each caller of the matrix, each on a fresh
/// experiment of the owner (`visibility`), and checks the statuses.
async fn matrix(
    h: &Harness,
    visibility: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    expected: [u16; 4],
) {
    for (who, expected) in MATRIX.into_iter().zip(expected) {
        let uuid = h.experiment(visibility).await;
        let uri = path.replace("{uuid}", &uuid.to_string());
        let answer = h.send(method.clone(), &uri, who, body.clone()).await;
        assert_eq!(
            answer.status,
            status(expected),
            "{method} {path} ({visibility}) as {who:?}: {}",
            answer.text
        );
        if expected != 200 || method == Method::GET {
            // A refused call (or a read) changed nothing.
            let complete = h.complete(uuid).await;
            assert_eq!(complete["name"], format!("{visibility} test"), "{who:?}");
            assert_eq!(complete["variants"]["a"]["views"], 0, "{who:?}");
        }
    }
}

#[tokio::test]
async fn read_published() {
    let h = Harness::new().await;
    matrix(
        &h,
        "published",
        Method::GET,
        "/v2/experiment/{uuid}",
        None,
        [401, 200, 404, 200],
    )
    .await;
}

#[tokio::test]
async fn read_draft_and_archived_are_hidden_from_api_keys() {
    let h = Harness::new().await;
    for visibility in ["draft", "archived"] {
        matrix(
            &h,
            visibility,
            Method::GET,
            "/v2/experiment/{uuid}",
            None,
            [401, 404, 404, 200],
        )
        .await;
    }
}

#[tokio::test]
async fn update() {
    let h = Harness::new().await;
    let body = json!({"name": "renamed"});
    matrix(
        &h,
        "published",
        Method::PUT,
        "/v2/experiment/{uuid}",
        Some(body),
        [401, 403, 404, 200],
    )
    .await;
}

#[tokio::test]
async fn delete() {
    let h = Harness::new().await;
    matrix(
        &h,
        "published",
        Method::DELETE,
        "/v2/experiment/{uuid}",
        None,
        [401, 403, 404, 200],
    )
    .await;
}

#[tokio::test]
async fn reset() {
    let h = Harness::new().await;
    matrix(
        &h,
        "published",
        Method::POST,
        "/v2/experiment/{uuid}/reset",
        None,
        [401, 403, 404, 200],
    )
    .await;
}

#[tokio::test]
async fn record_post() {
    let h = Harness::new().await;
    let body = json!({"events": [{"typename": "view", "variant": "a"}]});
    for (visibility, key) in [("published", 200), ("draft", 404), ("archived", 404)] {
        for who in MATRIX {
            let uuid = h.experiment(visibility).await;
            let answer = h
                .post(&format!("/v2/experiment/{uuid}/record"), who, body.clone())
                .await;
            let expected = match who {
                Who::Nobody => 401,
                Who::Key => key,
                Who::Other => 404,
                _ => 200,
            };
            assert_eq!(
                answer.status,
                status(expected),
                "{visibility} {who:?}: {}",
                answer.text
            );
            let views = h.complete(uuid).await["variants"]["a"]["views"].clone();
            assert_eq!(views, u64::from(expected == 200), "{visibility} {who:?}");
        }
    }
}

#[tokio::test]
async fn record_get() {
    let h = Harness::new().await;
    for (visibility, key) in [("published", 200), ("draft", 404)] {
        for who in MATRIX.into_iter().chain([Who::OtherKey]) {
            let uuid = h.experiment(visibility).await;
            let uri = format!("/v2/experiment/{uuid}/record?typename=view&variant=b");
            let answer = h.get(&uri, who).await;
            let expected = match who {
                Who::Nobody => 401,
                Who::Key => key,
                Who::Other | Who::OtherKey => 404,
                _ => 200,
            };
            assert_eq!(
                answer.status,
                status(expected),
                "{visibility} {who:?}: {}",
                answer.text
            );
            let views = h.complete(uuid).await["variants"]["b"]["views"].clone();
            assert_eq!(views, u64::from(expected == 200), "{visibility} {who:?}");
        }
    }
}

#[tokio::test]
async fn another_accounts_api_key_sees_nothing() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let read = h
        .get(&format!("/v2/experiment/{uuid}"), Who::OtherKey)
        .await;
    assert_eq!(read.status, StatusCode::NOT_FOUND);
    let search = h.get("/v2/experiment", Who::OtherKey).await;
    assert_eq!(search.json()["results"], json!([]));
}

#[tokio::test]
async fn another_accounts_experiment_looks_exactly_missing() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let theirs = h.get(&format!("/v2/experiment/{uuid}"), Who::Other).await;
    let missing = Uuid::new_v4();
    let none = h
        .get(&format!("/v2/experiment/{missing}"), Who::Other)
        .await;
    assert_eq!(theirs.status, none.status);
    let theirs = without_timestamp(theirs.json());
    let none = without_timestamp(none.json());
    let mask = |v: Value| {
        v.to_string()
            .replace(&uuid.to_string(), "U")
            .replace(&missing.to_string(), "U")
    };
    assert_eq!(mask(theirs), mask(none));
}

#[tokio::test]
async fn search() {
    let h = Harness::new().await;
    let published = h.experiment("published").await;
    let draft = h.experiment("draft").await;
    let all = "/v2/experiment?visibility=draft,published,archived";
    let found = |answer: &crate::harness::Answer| -> Vec<String> {
        answer.json()["results"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|e| e["uuid"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        h.get(all, Who::Nobody).await.status,
        StatusCode::UNAUTHORIZED
    );
    let key = h.get(all, Who::Key).await;
    assert_eq!(key.status, StatusCode::OK);
    assert_eq!(found(&key), [published.to_string()]);
    assert_eq!(key.json()["results"][0]["subtype"], "summary");
    let other = h.get(all, Who::Other).await;
    assert_eq!((other.status, found(&other)), (StatusCode::OK, vec![]));
    let owner = h.get(all, Who::Owner).await;
    let mut mine = found(&owner);
    mine.sort();
    let mut expected = vec![published.to_string(), draft.to_string()];
    expected.sort();
    assert_eq!(mine, expected);
    assert_eq!(owner.json()["results"][0]["subtype"], "complete");
}

#[tokio::test]
async fn create() {
    let h = Harness::new().await;
    let body = json!({"name": "new", "variants": {"x": {}}});
    for (who, expected) in MATRIX.into_iter().zip([401, 403, 200, 200]) {
        let answer = h.post("/v2/experiment", who, body.clone()).await;
        assert_eq!(answer.status, status(expected), "{who:?}: {}", answer.text);
        if expected == 200 {
            let account = match who {
                Who::Other => h.other.account,
                _ => h.owner.account,
            };
            assert_eq!(
                answer.json()["accountId"],
                account.to_string(),
                "created in the caller's account"
            );
        }
    }
    let owner = h.get("/v2/experiment?visibility=draft", Who::Owner).await;
    assert_eq!(owner.json()["results"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn login() {
    let h = Harness::new().await;
    let expectations = [
        (None, 401),
        (Some(format!("ApiKey {}", h.owner.key)), 403),
        (Some(h.other.basic()), 200),
        (Some(h.owner.basic()), 200),
    ];
    for (authorization, expected) in expectations {
        let headers: Vec<_> = authorization
            .iter()
            .map(|a| ("Authorization", a.clone()))
            .collect();
        let answer = h
            .send_with(Method::POST, "/v2/user/login", &headers, None)
            .await;
        assert_eq!(
            answer.status,
            status(expected),
            "{authorization:?}: {}",
            answer.text
        );
    }
}

#[tokio::test]
async fn logout() {
    let h = Harness::new().await;
    for (who, expected) in MATRIX.into_iter().zip([401, 403, 200, 200]) {
        let answer = h.send(Method::POST, "/v2/user/logout", who, None).await;
        assert_eq!(answer.status, status(expected), "{who:?}: {}", answer.text);
    }
    // The owner's and the other account's tokens ended; the API key still works.
    assert_eq!(
        h.get("/v2/experiment", Who::Owner).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.get("/v2/experiment", Who::Other).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.get("/v2/experiment", Who::Key).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn api_keys() {
    let h = Harness::new().await;
    for (who, expected) in MATRIX.into_iter().zip([401, 403, 200, 200]) {
        let create = h.post("/v2/apikey", who, json!({"name": "x"})).await;
        assert_eq!(
            create.status,
            status(expected),
            "create {who:?}: {}",
            create.text
        );
        let list = h.get("/v2/apikey", who).await;
        assert_eq!(list.status, status(expected), "list {who:?}: {}", list.text);
    }
    let h = &h;
    let listed = |who| async move {
        let list = h.get("/v2/apikey", who).await.json();
        list["results"].as_array().map(Vec::len).unwrap_or(0)
    };
    assert_eq!(
        listed(Who::Owner).await,
        2,
        "the harness key and one created"
    );
    assert_eq!(listed(Who::Other).await, 2);
    let owner_key = h.owner.key;
    for (who, expected) in MATRIX.into_iter().zip([401, 403, 404, 200]) {
        let answer = h
            .send(
                Method::DELETE,
                &format!("/v2/apikey/{owner_key}"),
                who,
                None,
            )
            .await;
        assert_eq!(
            answer.status,
            status(expected),
            "delete {who:?}: {}",
            answer.text
        );
        // The key works until its owner deletes it.
        let with_key = h.get("/v2/experiment", Who::Key).await.status;
        let expected_key = if expected == 200 { 401 } else { 200 };
        assert_eq!(with_key, status(expected_key), "after delete as {who:?}");
    }
}

#[tokio::test]
async fn export_is_the_owners_only() {
    let h = Harness::new().await;
    matrix(
        &h,
        "published",
        Method::GET,
        "/v2/experiment/{uuid}/export?format=csv",
        None,
        [401, 404, 404, 200],
    )
    .await;
}
