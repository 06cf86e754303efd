//! Experiments: create, read, update, delete, reset, search, with their answers.

use poem::http::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::harness::{Harness, Who};

#[tokio::test]
async fn create_answers_the_complete_read_form() {
    let h = Harness::new().await;
    let chosen = Uuid::new_v4();
    let body = json!({"uuid": chosen, "name": "Headline", "visibility": "published",
                      "settings": {"k": 1}, "variants": {"b": {"name": "Bee"}, "a": {}}});
    let answer = h.post("/v2/experiment", Who::OwnerBasic, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let form = answer.json();
    assert_eq!(form["typename"], "experiment");
    assert_eq!(form["subtype"], "complete");
    assert_eq!(form["uuid"], chosen.to_string());
    assert_eq!(form["accountId"], h.owner.account.to_string());
    assert_eq!(form["settings"], json!({"k": 1}));
    assert_eq!(
        form["variants"]["b"],
        json!({"name": "Bee", "views": 0, "totalReward": 0.0, "weight": 0.5, "settings": {}})
    );
    // Variants keep their creation order.
    assert!(answer.text.find(r#""b":{"#) < answer.text.find(r#""a":{"#));
    // The same uuid again is a conflict.
    let again = h
        .post(
            "/v2/experiment",
            Who::Owner,
            json!({"uuid": chosen, "name": "x"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code().as_deref(), Some("conflict"));
    assert_eq!(
        again.json()["messages"][0]["path"],
        "uuid",
        "{}",
        again.text
    );
}

#[tokio::test]
async fn read_forms_complete_and_summary() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let complete = h.complete(uuid).await;
    assert_eq!(complete["variants"]["a"]["settings"], json!({"text": "A"}));
    assert_eq!(complete["variants"]["a"]["views"], 0);
    let summary = h.get(&format!("/v2/experiment/{uuid}"), Who::Key).await;
    assert_eq!(summary.status, StatusCode::OK);
    let form = summary.json();
    assert_eq!(form["subtype"], "summary");
    assert_eq!(form["settings"], json!({"color": "blue"}));
    assert_eq!(form["variants"]["a"]["weight"], 0.5);
    for hidden in ["accountId", "views", "totalReward"] {
        assert!(
            !summary.text.contains(hidden),
            "{hidden} leaked: {}",
            summary.text
        );
    }
    // The apikey parameter works like the header.
    let by_param = h
        .get(
            &format!("/v2/experiment/{uuid}?apikey={}", h.owner.key),
            Who::Nobody,
        )
        .await;
    assert_eq!(by_param.text, summary.text);
}

#[tokio::test]
async fn update_changes_the_definition_and_keeps_counts() {
    let h = Harness::new().await;
    let uuid = h.experiment("draft").await;
    let record = json!({"events": [{"typename": "view", "variant": "a"}, {"typename": "view", "variant": "b"}]});
    assert_eq!(
        h.post(&format!("/v2/experiment/{uuid}/record"), Who::Owner, record)
            .await
            .status,
        StatusCode::OK
    );
    let body = json!({"name": "renamed", "visibility": "published",
                      "settingsUpdates": {"color": "red", "size.big": true},
                      "variantUpdates": {"b": null, "c": {"name": "See"}, "a": {"settingsUpdates": {"text": null}}}});
    let answer = h
        .send(
            Method::PUT,
            &format!("/v2/experiment/{uuid}"),
            Who::Owner,
            Some(body),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let form = answer.json();
    assert_eq!(form["name"], "renamed");
    assert_eq!(form["visibility"], "published");
    assert_eq!(
        form["settings"],
        json!({"color": "red", "size": {"big": true}})
    );
    assert_eq!(form["variants"]["a"]["views"], 1, "counts are kept");
    assert_eq!(form["variants"]["a"]["settings"], json!({}));
    assert!(form["variants"].get("b").is_none());
    assert_eq!(form["variants"]["c"]["views"], 0);
    let weights: f64 = ["a", "c"]
        .iter()
        .map(|v| form["variants"][v]["weight"].as_f64().unwrap())
        .sum();
    assert!((weights - 1.0).abs() < 1e-9);
    // Now published: the API key sees it.
    assert_eq!(
        h.get(&format!("/v2/experiment/{uuid}"), Who::Key)
            .await
            .status,
        StatusCode::OK
    );
    // A removed variant no longer takes events.
    let stale = json!({"events": [{"typename": "view", "variant": "b"}]});
    let refused = h
        .post(&format!("/v2/experiment/{uuid}/record"), Who::Key, stale)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    // The database holds the same definition and counts.
    let stored = h.storage.experiment(uuid).await.unwrap().unwrap().unwrap();
    let ids: Vec<_> = stored.variants.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(stored.variants[0].views, 1);
}

#[tokio::test]
async fn bad_updates_change_nothing_and_name_the_path() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let body = json!({"name": "x", "settingsUpdates": {"a..b": 1}, "variantUpdates": {"a": 5}});
    let answer = h
        .send(
            Method::PUT,
            &format!("/v2/experiment/{uuid}"),
            Who::Owner,
            Some(body),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let paths: Vec<_> = answer.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["typename"].as_str().unwrap().to_owned(),
                m["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        paths,
        [
            (
                "invalid-settings-path".to_owned(),
                r#"settingsUpdates["a..b"]"#.to_owned()
            ),
            ("invalid-type".to_owned(), "variantUpdates.a".to_owned()),
        ]
    );
    assert_eq!(h.complete(uuid).await["name"], "published test");
}

#[tokio::test]
async fn delete_answers_ok_and_forgets_everything() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let record = json!({"events": [{"typename": "view", "variant": "a"}]});
    h.post(
        &format!("/v2/experiment/{uuid}/record"),
        Who::Key,
        record.clone(),
    )
    .await;
    let answer = h
        .send(
            Method::DELETE,
            &format!("/v2/experiment/{uuid}"),
            Who::Owner,
            None,
        )
        .await;
    assert_eq!(
        (answer.status, answer.json()),
        (StatusCode::OK, json!({"typename": "ok"}))
    );
    for who in [Who::Owner, Who::Key] {
        let read = h.get(&format!("/v2/experiment/{uuid}"), who).await;
        assert_eq!(read.status, StatusCode::NOT_FOUND);
        assert_eq!(read.code().as_deref(), Some("unknown-experiment"));
    }
    let again = h
        .send(
            Method::DELETE,
            &format!("/v2/experiment/{uuid}"),
            Who::Owner,
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let late = h
        .post(&format!("/v2/experiment/{uuid}/record"), Who::Key, record)
        .await;
    assert_eq!(late.status, StatusCode::NOT_FOUND);
    assert!(h.storage.experiment(uuid).await.unwrap().is_none());
    assert!(h.storage.hourly(uuid).await.unwrap().is_empty());
}

#[tokio::test]
async fn reset_zeroes_counts_and_ignores_the_body() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let batch = Uuid::new_v4();
    let record = json!({"batch": batch, "events": [{"typename": "view", "variant": "a"}, {"typename": "reward", "variant": "a"}]});
    h.post(
        &format!("/v2/experiment/{uuid}/record"),
        Who::Key,
        record.clone(),
    )
    .await;
    assert_eq!(h.complete(uuid).await["variants"]["a"]["totalReward"], 1.0);
    let answer = h
        .send_with(
            Method::POST,
            &format!("/v2/experiment/{uuid}/reset"),
            &[("Authorization", h.authorization(Who::Owner).unwrap())],
            Some(b"not json at all".to_vec()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let form = answer.json();
    assert_eq!(form["variants"]["a"]["views"], 0);
    assert_eq!(form["variants"]["a"]["totalReward"], 0.0);
    assert_eq!(form["variants"]["a"]["weight"], 0.5);
    assert!(h.storage.hourly(uuid).await.unwrap().is_empty());
    // A retry of a batch recorded before the reset is still not counted again.
    h.post(&format!("/v2/experiment/{uuid}/record"), Who::Key, record)
        .await;
    assert_eq!(h.complete(uuid).await["variants"]["a"]["views"], 0);
}

/// Searches and deployments (their CPU grows with the account, and a
/// public key may send them) are built in turns held by at most half the
/// cores: with every turn taken, they wait, and reads, records and health
/// checks are answered meanwhile; then they are answered too.
#[tokio::test]
async fn searches_and_deployments_wait_for_a_turn_and_nothing_else_does() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let turns = h.state.large_answers.turns();
    assert!(turns >= 1);
    // Every turn, each held for another account.
    let mut taken = Vec::new();
    for i in 0..turns {
        let other = uuid::Uuid::from_u128(u128::try_from(i).unwrap() + 1);
        taken.push(h.state.large_answers.take(other).await);
    }
    let deployment = format!("/v2/deployment/{}/myna.json", h.owner.key);
    for uri in ["/v2/experiment", deployment.as_str()] {
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(300), h.get(uri, Who::Key)).await;
        assert!(waited.is_err(), "{uri} answered without a turn");
    }
    let read = h.get(&format!("/v2/experiment/{uuid}"), Who::Key).await;
    assert_eq!(read.status, StatusCode::OK);
    let body = json!({"events": [{"typename": "view", "variant": "a"}]});
    let record = h
        .post(&format!("/v2/experiment/{uuid}/record"), Who::Key, body)
        .await;
    assert_eq!(record.status, StatusCode::OK);
    assert_eq!(h.get("/healthz", Who::Nobody).await.status, StatusCode::OK);
    drop(taken);
    assert_eq!(
        h.get("/v2/experiment", Who::Key).await.status,
        StatusCode::OK
    );
    assert_eq!(h.get(&deployment, Who::Nobody).await.status, StatusCode::OK);
}

#[tokio::test]
async fn search_parameters() {
    let h = Harness::new().await;
    for name in ["Bravo", "alpha", "Charlie"] {
        let body = json!({"name": name, "visibility": "published", "variants": {"a": {}}});
        assert_eq!(
            h.post("/v2/experiment", Who::Owner, body).await.status,
            StatusCode::OK
        );
    }
    h.experiment("archived").await;
    let names = |answer: crate::harness::Answer| -> Vec<String> {
        answer.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(h.get("/v2/experiment", Who::Owner).await),
        ["alpha", "Bravo", "Charlie"]
    );
    assert_eq!(
        names(
            h.get("/v2/experiment?sort=name-desc&limit=2", Who::Owner)
                .await
        ),
        ["Charlie", "Bravo"]
    );
    assert_eq!(
        names(h.get("/v2/experiment?q=ar&skip=0", Who::Owner).await),
        ["Charlie"]
    );
    assert_eq!(
        names(
            h.get("/v2/experiment?visibility=archived", Who::Owner)
                .await
        ),
        ["archived test"]
    );
    assert_eq!(
        names(h.get("/v2/experiment?visibility=archived", Who::Key).await),
        Vec::<String>::new()
    );
    let bad = h
        .get("/v2/experiment?sort=random&limit=x", Who::Owner)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let paths: Vec<_> = bad.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].clone())
        .collect();
    assert_eq!(paths, [json!("sort"), json!("limit")]);
    // A parameter given twice: which one counts would be a guess.
    for uri in [
        "/v2/experiment?limit=1&limit=2".to_owned(),
        "/v2/experiment?sort=name-asc&q=a&sort=name-desc".to_owned(),
        format!(
            "/v2/experiment/{}/export?format=csv&format=json",
            Uuid::new_v4()
        ),
    ] {
        let twice = h.get(&uri, Who::Owner).await;
        assert_eq!(
            twice.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            twice.text
        );
        assert_eq!(twice.code().as_deref(), Some("invalid-value"), "{uri}");
        let path = &twice.json()["messages"][0]["path"];
        assert!(
            matches!(path.as_str(), Some("limit" | "sort" | "format")),
            "{uri}: {path}"
        );
    }
    let jsonp = h.get("/v2/experiment?callback=found", Who::Key).await;
    assert_eq!(jsonp.status, StatusCode::OK);
    assert!(
        jsonp.text.starts_with("/**/found({\"results\":["),
        "{}",
        jsonp.text
    );
}

/// Uuids are per account: a uuid another account's experiment has is no
/// conflict (a 409 would tell the caller that experiment exists); each
/// account reads, updates, records to and deletes its own under that uuid,
/// and the other's never moves.
#[tokio::test]
async fn a_uuid_another_account_has_is_yours_to_use_and_reveals_nothing() {
    let h = Harness::new().await;
    let uuid = Uuid::new_v4();
    let theirs = h
        .post(
            "/v2/experiment",
            Who::Other,
            json!({"uuid": uuid, "name": "Theirs", "visibility": "draft", "variants": {"x": {}}}),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.text);
    let mine = h
        .post(
            "/v2/experiment",
            Who::Owner,
            json!({"uuid": uuid, "name": "Mine", "visibility": "published",
                   "variants": {"a": {}, "b": {}}}),
        )
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
    assert_eq!(mine.json()["uuid"], uuid.to_string());
    assert_eq!(mine.json()["accountId"], h.owner.account.to_string());

    let path = format!("/v2/experiment/{uuid}");
    assert_eq!(h.complete(uuid).await["name"], "Mine");
    assert_eq!(h.get(&path, Who::Other).await.json()["name"], "Theirs");
    assert_eq!(
        h.get(&path, Who::Key).await.json()["uuid"],
        uuid.to_string()
    );
    // Recorded through the owner's public key: counted in the owner's.
    let record = h
        .post(
            &format!("{path}/record"),
            Who::Key,
            json!({"events": [{"typename": "view", "variant": "a"}]}),
        )
        .await;
    assert_eq!(record.status, StatusCode::OK, "{}", record.text);
    assert_eq!(record.json()["uuid"], uuid.to_string());
    assert_eq!(h.complete(uuid).await["variants"]["a"]["views"], 1);
    // Search finds it by that uuid, and lists it under it.
    let found = h
        .get(
            &format!("/v2/experiment?q={uuid}&visibility=published"),
            Who::Key,
        )
        .await;
    assert_eq!(found.json()["results"][0]["uuid"], uuid.to_string());
    // Updating is the owner's own; the same uuid again IS the owner's conflict.
    let renamed = h
        .send(
            Method::PUT,
            &path,
            Who::Owner,
            Some(json!({"name": "Mine, renamed"})),
        )
        .await;
    assert_eq!(renamed.json()["name"], "Mine, renamed");
    let again = h
        .post(
            "/v2/experiment",
            Who::Owner,
            json!({"uuid": uuid, "name": "x"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    // Deleting the owner's leaves the other account's as it was.
    let deleted = h.send(Method::DELETE, &path, Who::Owner, None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(h.get(&path, Who::Owner).await.status, StatusCode::NOT_FOUND);
    let still = h.get(&path, Who::Other).await.json();
    assert_eq!(
        (
            still["name"].as_str(),
            still["variants"]["x"]["views"].as_u64()
        ),
        (Some("Theirs"), Some(0))
    );
}

#[tokio::test]
async fn a_variants_array_element_that_is_no_object_is_an_invalid_type_at_it() {
    let h = Harness::new().await;
    let answer = h
        .post(
            "/v2/experiment",
            Who::Owner,
            json!({"name": "junk", "variants": [1, "x", null, {"id": "a"}]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    let found: Vec<(String, String)> = answer.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["typename"].as_str().unwrap().to_owned(),
                m["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("invalid-type".to_owned(), "variants[0]".to_owned()),
            ("invalid-type".to_owned(), "variants[1]".to_owned()),
        ]
    );
}
