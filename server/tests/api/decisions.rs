//! `GET /v2/experiment/{uuid}/decision`: the decision form for the owner,
//! the missing answer for everyone else, and the weights served (counted as
//! read forms are answered, flushed to storage) in its health checks.

use poem::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{Harness, Who, without_timestamp};

/// An experiment of the owner with variants `a` and `b` deciding after 100
/// views each.
async fn experiment(h: &Harness) -> Uuid {
    let answer = h
        .post(
            "/v2/experiment",
            Who::Owner,
            json!({"name": "Headline", "visibility": "published",
                   "settings": {"myna": {"decision": {"minViews": 100}}},
                   "variants": {"a": {}, "b": {}}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    Uuid::parse_str(answer.json()["uuid"].as_str().unwrap()).unwrap()
}

/// Records `views` views and `rewards` rewards of `variant` (by the key).
async fn record(h: &Harness, uuid: Uuid, variant: &str, views: usize, rewards: usize) {
    let view = json!({"typename": "view", "variant": variant});
    let reward = json!({"typename": "reward", "variant": variant, "amount": 1});
    let mut events = vec![view; views];
    events.extend(vec![reward; rewards]);
    for chunk in events.chunks(1000) {
        let answer = h
            .post(
                &format!("/v2/experiment/{uuid}/record"),
                Who::Key,
                json!({ "events": chunk }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
}

async fn decision(h: &Harness, uuid: Uuid, who: Who) -> (StatusCode, Value) {
    let answer = h.get(&format!("/v2/experiment/{uuid}/decision"), who).await;
    (answer.status, answer.json())
}

fn check<'v>(decision: &'v Value, typename: &str) -> &'v Value {
    decision["health"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["typename"] == typename))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn the_owner_gets_the_decision_form() {
    let h = Harness::new().await;
    let uuid = experiment(&h).await;
    let (status, form) = decision(&h, uuid, Who::Owner).await;
    assert_eq!(status, StatusCode::OK, "{form}");
    assert_eq!(form["typename"], "decision");
    assert_eq!(form["uuid"], uuid.to_string());
    assert_eq!(form["verdict"], "collecting");
    assert_eq!(form["leader"], Value::Null);
    record(&h, uuid, "a", 200, 10).await;
    record(&h, uuid, "b", 200, 100).await;
    for who in [Who::Owner, Who::OwnerBasic] {
        let (status, form) = decision(&h, uuid, who).await;
        assert_eq!(status, StatusCode::OK, "{form}");
        assert_eq!(form["verdict"], "decided", "{form}");
        assert_eq!(form["leader"], "b");
        assert!(form["message"].as_str().is_some_and(|m| m.contains('b')));
        assert!(form["variants"]["b"]["probabilityBest"].as_f64().unwrap() > 0.99);
        assert!(form["variants"]["a"]["expectedLoss"].as_f64().unwrap() > 0.1);
        assert_eq!(form["moreViews"], Value::Null);
        assert_eq!(form["at"], "2026-11-26T15:59:33.232Z");
        let checks: Vec<&str> = form["health"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["status"].as_str().unwrap())
            .collect();
        assert!(checks.iter().all(|s| *s == "ok"), "{form}");
    }
    // JSONP like the other GETs.
    let answer = h
        .get(
            &format!("/v2/experiment/{uuid}/decision?callback=cb"),
            Who::Owner,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text.starts_with("/**/cb("), "{}", answer.text);
    assert!(answer.text.contains(r#""verdict":"decided""#));
}

#[tokio::test]
async fn everyone_else_gets_the_missing_answer() {
    let h = Harness::new().await;
    let uuid = experiment(&h).await;
    record(&h, uuid, "a", 5, 1).await;
    let unknown = Uuid::new_v4();
    let (status, missing) = decision(&h, unknown, Who::Owner).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["messages"][0]["typename"], "unknown-experiment");
    // The answer for a missing experiment, with its uuid.
    let same = |text: Value| {
        without_timestamp(text)
            .to_string()
            .replace(&unknown.to_string(), "U")
    };
    for who in [Who::Key, Who::Other, Who::OtherKey] {
        let (status, answer) = decision(&h, uuid, who).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who:?}: {answer}");
        assert_eq!(
            same(answer).replace(&uuid.to_string(), "U"),
            same(missing.clone()),
            "{who:?}"
        );
    }
    // The key's answer for a missing experiment is the same too.
    let (status, answer) = decision(&h, unknown, Who::Key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(same(answer), same(missing.clone()));
    let (status, _) = decision(&h, uuid, Who::Nobody).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A malformed uuid: the read endpoint's answer.
    let answer = h
        .get("/v2/experiment/not-a-uuid/decision", Who::Owner)
        .await;
    let read = h.get("/v2/experiment/not-a-uuid", Who::Owner).await;
    assert_eq!(answer.status, read.status);
    assert_eq!(
        without_timestamp(answer.json()),
        without_timestamp(read.json())
    );
}

#[tokio::test]
async fn served_weights_reach_the_health_checks_after_a_flush() {
    let h = Harness::new().await;
    let uuid = experiment(&h).await;
    // Pages read the experiment (weights 0.5 each) and only `a` is ever shown.
    for _ in 0..30 {
        let answer = h.get(&format!("/v2/experiment/{uuid}"), Who::Key).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    record(&h, uuid, "a", 40, 0).await;
    // Before the flush no weights served are known: nothing is suspicious.
    let (_, before) = decision(&h, uuid, Who::Owner).await;
    assert_eq!(
        check(&before, "variant-never-shown")["status"],
        "ok",
        "{before}"
    );
    h.state.flush_served().await.unwrap();
    let served = h.storage.served(uuid).await.unwrap();
    let rows: Vec<_> = served
        .iter()
        .map(|s| (s.variant.as_str(), s.answers))
        .collect();
    // 30 reads and a record's answer (each a read form a page chooses by).
    assert_eq!(rows, [("a", 31), ("b", 31)]);
    assert!((served[0].weight_sum - 15.5).abs() < 1e-9, "{served:?}");
    let (_, after) = decision(&h, uuid, Who::Owner).await;
    let never = check(&after, "variant-never-shown");
    assert_eq!(never["status"], "failing", "{after}");
    assert_eq!(never["data"]["variants"], json!(["b"]));
    // A second flush adds to the same hour's row (additive).
    h.get(&format!("/v2/experiment/{uuid}"), Who::Key).await;
    h.state.flush_served().await.unwrap();
    let served = h.storage.served(uuid).await.unwrap();
    assert_eq!(served[0].answers, 32);
    // A reset forgets them, as it forgets the hourly totals.
    let answer = h
        .send(
            poem::http::Method::POST,
            &format!("/v2/experiment/{uuid}/reset"),
            Who::Owner,
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(h.storage.served(uuid).await.unwrap().is_empty());
    h.state.flush_served().await.unwrap();
    assert!(h.storage.served(uuid).await.unwrap().is_empty());
}

/// The weights pages get follow the experiment's `myna.weights.mode`: by
/// default traffic flows to what converts; in `decide` mode the leader and
/// its challengers keep sharing it, so the decision comes sooner.
#[tokio::test]
async fn the_decide_mode_keeps_traffic_on_the_challengers() {
    let h = Harness::new().await;
    let mut weight_of_leader = Vec::new();
    for settings in [json!({}), json!({"myna.weights.mode": "decide"})] {
        let answer = h
            .post(
                "/v2/experiment",
                Who::Owner,
                json!({"name": "Mode", "visibility": "published", "settings": settings,
                       "variants": {"a": {}, "b": {}, "c": {}}}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let uuid = Uuid::parse_str(answer.json()["uuid"].as_str().unwrap()).unwrap();
        record(&h, uuid, "a", 300, 15).await;
        record(&h, uuid, "b", 300, 60).await;
        record(&h, uuid, "c", 300, 18).await;
        h.clock.advance(250);
        let read = h.get(&format!("/v2/experiment/{uuid}"), Who::Key).await;
        let weight = |v: &str| read.json()["variants"][v]["weight"].as_f64().unwrap();
        weight_of_leader.push(weight("b"));
        if settings != json!({}) {
            // The challengers' half, mostly to the runner-up `c`.
            assert!(weight("a") + weight("c") > 0.45, "{}", read.text);
            assert!(weight("c") > weight("a"), "{}", read.text);
        }
    }
    assert!(weight_of_leader[0] > 0.9, "{weight_of_leader:?}");
    assert!(
        (weight_of_leader[1] - 0.5).abs() < 0.05,
        "top-two: the leader gets about half ({weight_of_leader:?})"
    );
}
