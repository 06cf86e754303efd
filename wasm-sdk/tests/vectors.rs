//! The shared vectors of `tests/vectors/record.json` (also read by
//! core/tests/record.rs) give the same answers in the browser, and what the
//! SDK queues (POST bodies, JSONP parameters, with the browser's number
//! formatting) is read back by core exactly as it was meant.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use myna_core::event::{parse_record_body, parse_record_params};
use myna_core::model::{Experiment, Variant, Visibility, empty_object};
use myna_core::{Event, EventType, Problem, RecordBatch};
use serde_json::{Value, json};
use uuid::Uuid;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const VECTORS: &str = include_str!("../../tests/vectors/record.json");

fn experiment(ids: &[&str]) -> Experiment {
    Experiment {
        uuid: Uuid::from_u128(1),
        alias: None,
        account_id: Uuid::from_u128(2),
        id: "vectors".into(),
        name: "vectors".into(),
        visibility: Visibility::Published,
        settings: empty_object(),
        variants: ids.iter().map(|id| Variant::new(*id)).collect(),
    }
}

fn summary(problem: &Problem) -> Value {
    json!({
        "status": problem.status,
        "messages": problem.messages.iter().map(|m| {
            let mut out = json!({ "typename": m.code.typename() });
            if let Some(path) = &m.path {
                out["path"] = json!(path);
            }
            out
        }).collect::<Vec<_>>(),
    })
}

#[wasm_bindgen_test]
fn shared_record_vectors_give_the_same_answers_in_the_browser() {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    let ids: Vec<&str> = doc["experiment"]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let experiment = experiment(&ids);
    let now = doc["now"].as_i64().unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let result = if let Some(params) = case.get("params") {
            let params = params.as_object().unwrap();
            parse_record_params(|k| params.get(k).and_then(Value::as_str), &experiment, now)
        } else if let Some(text) = case.get("bodyText") {
            parse_record_body(text.as_str().unwrap().as_bytes(), &experiment, now)
        } else {
            parse_record_body(case["body"].to_string().as_bytes(), &experiment, now)
        };
        match (&case["expect"]["batch"], result) {
            (Value::Null, Err(problem)) => {
                assert_eq!(summary(&problem), case["expect"]["problem"], "{name}")
            }
            (Value::Null, Ok(batch)) => panic!("{name}: expected a problem, got {batch:?}"),
            (expected, Ok(batch)) => {
                let expected: RecordBatch = serde_json::from_value(expected.clone()).unwrap();
                assert_eq!(batch, expected, "{name}");
            }
            (_, Err(problem)) => panic!("{name}: unexpected problem {problem}"),
        }
    }
}

#[wasm_bindgen_test]
async fn what_the_sdk_queues_core_reads_back() {
    let ns = ns("wire");
    let tricky = "é \"q\" \\ / ☃";
    let snap = json(&format!(
        r#"{{"typename":"experiment","subtype":"summary","uuid":"{U1}","name":"w","visibility":"published","variants":{{"{}":{{"name":"t","weight":1}}}}}}"#,
        tricky.replace('\\', "\\\\").replace('"', "\\\"")
    ));
    let myna = connect(&quiet(&ns, DEAD, &[snap])).await;
    let expt = myna.experiment(U1).unwrap();
    let amounts = [0.0, 1.0, 0.25, 0.3, 1e-7, 0.1 + 0.2, 5e-324];
    for amount in amounts {
        expt.view(tricky).unwrap();
        assert!(expt.reward(Some(amount)).unwrap());
    }
    sleep(0).await;
    let stored = storage();
    let key = (0..stored.length().unwrap())
        .filter_map(|i| stored.key(i).unwrap())
        .find(|k| k.starts_with(&format!("{ns}:t:")))
        .unwrap();
    let text = stored.get_item(&key).unwrap().unwrap();
    let queue: Value = serde_json::from_str(&text).unwrap();
    let body = queue["q"][0]["b"].to_string();
    let exp = experiment(&[tricky]);
    let batch = parse_record_body(body.as_bytes(), &exp, js_sys::Date::now() as i64).unwrap();
    let got: Vec<f64> = batch
        .events
        .iter()
        .filter(|e| e.typename == EventType::Reward)
        .map(|e| e.amount.unwrap())
        .collect();
    assert_eq!(got, amounts, "POST bodies carry the exact amounts");
    assert!(batch.events.iter().all(|e| e.variant == tricky));
    for amount in amounts {
        let event = Event {
            typename: EventType::Reward,
            variant: tricky.into(),
            amount: Some(amount),
            timestamp: 5,
        };
        let id = Uuid::from_u128(77);
        let params = event.query_params_with(Some(id), myna_wasm_sdk::js_number);
        let back = parse_record_params(
            |k| {
                params
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.as_str())
            },
            &exp,
            10,
        )
        .unwrap();
        assert_eq!(back.events, vec![event], "JSONP parameters carry {amount}");
        assert_eq!(back.batch, Some(id));
    }
    myna.close();
    clear(&ns);
}
