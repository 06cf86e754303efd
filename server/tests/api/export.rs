//! `GET /v2/experiment/{uuid}/export`: the hourly totals per variant, as
//! CSV or JSON, hours oldest first and variants in creation order.

use poem::http::StatusCode;
use serde_json::json;

use crate::harness::{Harness, START_MS, Who};

const HOUR: i64 = 3_600_000;

#[tokio::test]
async fn csv_and_json_give_the_hourly_totals_in_order() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let start = START_MS - START_MS % HOUR;
    let events = json!({"events": [
        {"typename": "view", "variant": "b", "timestamp": start - HOUR},
        {"typename": "view", "variant": "a", "timestamp": start - HOUR + 5},
        {"typename": "reward", "variant": "a", "amount": 0.25, "timestamp": start - HOUR + 9},
        {"typename": "view", "variant": "b", "timestamp": start + 1},
        {"typename": "view", "variant": "b", "timestamp": start + 2}]});
    let recorded = h
        .post(&format!("/v2/experiment/{uuid}/record"), Who::Key, events)
        .await;
    assert_eq!(recorded.status, StatusCode::OK, "{}", recorded.text);

    let csv = h
        .get(
            &format!("/v2/experiment/{uuid}/export?format=csv"),
            Who::Owner,
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(
        csv.header("content-disposition")
            .is_some_and(|d| d.contains(".csv"))
    );
    let iso = |ms: i64| myna_core::timestamp::format_iso(ms);
    assert_eq!(
        csv.text,
        format!(
            "hour,variant,views,totalReward\r\n\
             {h0},a,1,0.25\r\n{h0},b,1,0.0\r\n{h1},b,2,0.0\r\n",
            h0 = iso(start - HOUR),
            h1 = iso(start)
        )
    );

    let json = h
        .get(&format!("/v2/experiment/{uuid}/export"), Who::OwnerBasic)
        .await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.text);
    let form = json.json();
    assert_eq!(form["typename"], "export");
    assert_eq!(form["uuid"], uuid.to_string());
    assert_eq!(form["rows"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        form["rows"][0],
        json!({"hour": iso(start - HOUR), "variant": "a", "views": 1, "totalReward": 0.25})
    );
}

#[tokio::test]
async fn an_empty_experiment_and_a_bad_format() {
    let h = Harness::new().await;
    let uuid = h.experiment("draft").await;
    let json = h
        .get(
            &format!("/v2/experiment/{uuid}/export?format=json"),
            Who::Owner,
        )
        .await;
    assert_eq!(json.json()["rows"], json!([]));
    let bad = h
        .get(
            &format!("/v2/experiment/{uuid}/export?format=xlsx"),
            Who::Owner,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["messages"][0]["path"], "format");
    let missing = h
        .get(
            &format!("/v2/experiment/{}/export", uuid::Uuid::new_v4()),
            Who::Owner,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
