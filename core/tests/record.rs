//! The record rules, driven by the shared vectors in `tests/vectors/record.json`
//! (the SDK's browser tests read the same file), plus property tests that the
//! parsers never panic on arbitrary input.
#![allow(clippy::unwrap_used, missing_docs)]

use myna_core::event::{
    MAX_EVENTS, MAX_RECORD_VALUES, parse_record_body, parse_record_params, parse_record_value,
};
use myna_core::experiment::{apply_update, parse_create};
use myna_core::model::{Experiment, Variant, Visibility, empty_object};
use myna_core::settings::parse_path;
use myna_core::{Problem, RecordBatch, jsonp};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

const VECTORS: &str = include_str!("../../tests/vectors/record.json");

fn experiment(ids: &[&str]) -> Experiment {
    Experiment {
        uuid: Uuid::from_u128(1),
        alias: None,
        id: "vectors".into(),
        account_id: Uuid::from_u128(2),
        name: "vectors".into(),
        visibility: Visibility::Published,
        settings: empty_object(),
        variants: ids.iter().map(|id| Variant::new(*id)).collect(),
    }
}

fn problem_summary(problem: &Problem) -> Value {
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

#[test]
fn shared_record_vectors() {
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
    assert!(cases.len() >= 30, "the vectors cover every rule");
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
            (Value::Null, Ok(batch)) => panic!("{name}: expected a problem, got {batch:?}"),
            (Value::Null, Err(problem)) => {
                assert_eq!(
                    problem_summary(&problem),
                    case["expect"]["problem"],
                    "{name}"
                );
            }
            (expected, Ok(batch)) => {
                let expected: RecordBatch = serde_json::from_value(expected.clone()).unwrap();
                assert_eq!(batch, expected, "{name}");
                // The wire form round-trips: what the SDK sends is what the server reads.
                let wire = serde_json::to_vec(&batch).unwrap();
                assert_eq!(
                    parse_record_body(&wire, &experiment, now).unwrap(),
                    batch,
                    "{name}"
                );
            }
            (_, Err(problem)) => panic!("{name}: unexpected problem {problem}"),
        }
    }
}

#[test]
fn jsonp_params_of_an_event_parse_back_to_it() {
    let experiment = experiment(&["v1"]);
    let body = json!({"batch": Uuid::from_u128(7).to_string(), "events": [{"typename": "reward", "variant": "v1", "amount": 0.3, "timestamp": 5}]});
    let batch = parse_record_body(body.to_string().as_bytes(), &experiment, 10).unwrap();
    let params = batch.events[0].query_params(batch.batch);
    let back = parse_record_params(
        |k| {
            params
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.as_str())
        },
        &experiment,
        10,
    )
    .unwrap();
    assert_eq!(back, batch);
}

#[test]
fn body_over_one_mebibyte_is_refused_before_parsing() {
    let body = vec![b' '; (1 << 20) + 1];
    let problem = parse_record_body(&body, &experiment(&["v1"]), 0).unwrap_err();
    assert_eq!(problem.status, 413);
    assert_eq!(problem.code().typename(), "body-too-large");
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("view".to_owned()),
            Just("reward".to_owned()),
            Just("v1".to_owned()),
            Just("2026-11-26T15:59:33.232Z".to_owned()),
            ".*"
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("events".to_owned()),
                        Just("typename".to_owned()),
                        Just("variant".to_owned()),
                        Just("amount".to_owned()),
                        Just("timestamp".to_owned()),
                        Just("batch".to_owned()),
                        Just("name".to_owned()),
                        Just("settingsUpdates".to_owned()),
                        Just("variantUpdates".to_owned()),
                        Just("variants".to_owned()),
                        ".*"
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// What `parse_record_body` answers (its fast path for plain valid bodies,
/// else the full walk) equals the walk over the parsed JSON, on plain
/// bodies and on every kind the fast path leaves to the walk.
fn agrees_with_the_walk(body: &str) {
    let experiment = experiment(&["a", "b"]);
    // The strict reader's value (a key twice is refused before any walk).
    let Ok(value) = myna_core::json::parse(body.as_bytes()) else {
        return;
    };
    assert_eq!(
        parse_record_body(body.as_bytes(), &experiment, NOW),
        parse_record_value(&value, &experiment, NOW),
        "{body}"
    );
}

const NOW: i64 = 1_780_000_000_000;

#[test]
fn the_record_body_answers_as_the_walk_over_its_json() {
    // Valid and plain (the fast path's); then the walk's: valid with escapes
    // or repeated keys (the last kept), and invalid in every way.
    let bodies: &[(&str, bool)] = &[
        (r#"{"events":[{"typename":"view","variant":"a"}]}"#, true),
        (
            r#"{"batch":"6f1c2f8e-8d7c-4c1e-9b0a-2b9f3f5c8a11","sentAt":1780000000000,
               "events":[{"typename":"view","variant":"a","timestamp":1779999990000},
                         {"typename":"reward","variant":"b","amount":0.25,"timestamp":"2026-05-28T20:26:30Z"},
                         {"typename":"reward","variant":"b","amount":1,"extra":[1,{"x":null}]}],
               "other":{"k":"v"}}"#,
            true,
        ),
        (r#"{"batch":null,"sentAt":null,"events":[]}"#, true),
        (
            r#"{"events":[{"typename":"reward","variant":"a","amount":null,"timestamp":null}]}"#,
            false,
        ),
        (
            r#"{"events":[{"typename":"reward","variant":"a","amount":-0}]}"#,
            true,
        ),
        (
            r#"{"events":[{"typename":"view","variant":"a","timestamp":1.78e12}]}"#,
            true,
        ),
        (
            r#"{"sentAt":"2026-05-28T20:26:40Z","events":[{"typename":"view","variant":"a"}]}"#,
            true,
        ),
        (
            r#"{"events":[{"typename":"view","variant":"\u0061"}]}"#,
            true,
        ),
        (
            r#"{"ev\u0065nts":[{"typename":"view","variant":"a"}]}"#,
            true,
        ),
        (
            r#"{"events":[{"typename":"view","variant":"a","variant":"b"}]}"#,
            false,
        ),
        (
            r#"{"events":[{"typename":"view","variant":"a"}],"events":[]}"#,
            false,
        ),
        (r#"{"events":[["view","a"]]}"#, false),
        (r#"[null,null,[{"typename":"view","variant":"a"}]]"#, false),
        (r#"{"events":[{"typename":"view","variant":"z"}]}"#, false),
        (r#"{"events":[{"typename":"click","variant":"a"}]}"#, false),
        (
            r#"{"events":[{"typename":"reward","variant":"a","amount":2}]}"#,
            false,
        ),
        (
            r#"{"events":[{"typename":"reward","variant":"a","amount":"1"}]}"#,
            false,
        ),
        (
            r#"{"events":[{"typename":"view","variant":"a","timestamp":-1}]}"#,
            false,
        ),
        (
            r#"{"events":[{"typename":"view","variant":"a","timestamp":1.5}]}"#,
            false,
        ),
        (
            r#"{"events":[{"typename":"view","variant":"a","timestamp":true}]}"#,
            false,
        ),
        (
            r#"{"events":[{"typename":"view","variant":"a","timestamp":"yesterday"}]}"#,
            false,
        ),
        (
            r#"{"events":[{"typename":"view","variant":"a","timestamp":9999999999999999}]}"#,
            false,
        ),
        (
            r#"{"batch":"nope","events":[{"typename":"view","variant":"a"}]}"#,
            false,
        ),
        (r#"{"batch":7,"events":[]}"#, false),
        (r#"{"sentAt":"soon","events":[]}"#, false),
        (r#"{"sentAt":{},"events":[]}"#, false),
        (r#"{"events":{}}"#, false),
        (r#"{"events":[{"variant":"a"}]}"#, false),
        (r#"{"events":[{"typename":null,"variant":"a"}]}"#, false),
        (r#"{"batch":"x"}"#, false),
        (r#"{"events":[]} x"#, false),
        (r#"{"events":[1]}"#, false),
    ];
    for (body, valid) in bodies {
        agrees_with_the_walk(body);
        let answer = parse_record_body(body.as_bytes(), &experiment(&["a", "b"]), NOW);
        assert_eq!(answer.is_ok(), *valid, "{body}");
    }
    let many = format!(
        r#"{{"events":[{}]}}"#,
        vec![r#"{"typename":"view","variant":"a"}"#; MAX_EVENTS + 1].join(",")
    );
    agrees_with_the_walk(&many);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn record_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_record_body(&bytes, &experiment(&["v1"]), 1_000);
    }

    #[test]
    fn record_parser_never_panics_on_json(value in arb_json(), now in any::<i64>()) {
        let body = serde_json::to_vec(&value).unwrap();
        if let Err(problem) = parse_record_body(&body, &experiment(&["v1", "v2"]), now) {
            prop_assert!(!problem.messages.is_empty());
            prop_assert!((400..500).contains(&problem.status));
        }
        let events = json!({"events": [value]});
        let _ = parse_record_body(events.to_string().as_bytes(), &experiment(&["v1"]), now);
    }

    #[test]
    fn any_record_body_answers_as_the_walk(value in arb_json()) {
        agrees_with_the_walk(&json!({"events": [value.clone()]}).to_string());
        agrees_with_the_walk(&value.to_string());
    }

    #[test]
    fn jsonp_params_never_panic(pairs in prop::collection::vec((prop_oneof![
        Just("typename"), Just("variant"), Just("amount"), Just("reward"), Just("timestamp"), Just("batch")
    ], ".*"), 0..6)) {
        let _ = parse_record_params(
            |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str()),
            &experiment(&["v1"]),
            0,
        );
    }

    #[test]
    fn experiment_bodies_never_panic(value in arb_json()) {
        let body = serde_json::to_vec(&value).unwrap();
        let _ = parse_create(&body);
        let _ = apply_update(&experiment(&["v1"]), &body);
        let wrapped = json!({"settingsUpdates": value.clone(), "variantUpdates": {"v1": value}});
        let _ = apply_update(&experiment(&["v1"]), wrapped.to_string().as_bytes());
    }

    #[test]
    fn path_and_callback_checks_never_panic(text in ".*") {
        let _ = parse_path(&text);
        let _ = jsonp::validate_callback(&text);
    }
}

#[test]
fn new_event_follows_validate_event_rules() {
    use myna_core::event::{EventInput, new_event, validate_event};
    let experiment = experiment(&["v1", "v2"]);
    let now = 1_795_708_773_232;
    let cases: [(&str, &str, Option<f64>); 9] = [
        ("view", "v1", None),
        ("reward", "v2", None),
        ("reward", "v2", Some(0.25)),
        ("reward", "v1", Some(7.0)),
        ("reward", "v1", Some(f64::NAN)),
        ("view", "v1", Some(0.5)),
        ("view", "nope", None),
        ("click", "nope", Some(2.0)),
        ("reward", "v1", Some(-0.0)),
    ];
    for (typename, variant, amount) in cases {
        let input = EventInput {
            typename,
            variant,
            amount,
            timestamp: None,
        };
        // The same answer, without the problems' `data`.
        let expected = validate_event(&input, &experiment, now, "").map_err(|problems| {
            problems
                .into_iter()
                .map(|mut m| {
                    m.data = None;
                    m
                })
                .collect::<Vec<_>>()
        });
        let got = new_event(typename, variant, amount, &experiment, now);
        assert_eq!(
            format!("{got:?}"),
            format!("{expected:?}"),
            "{typename} {variant} {amount:?}"
        );
    }
    let problems = new_event("reward", "v1", Some(7.0), &experiment, now).unwrap_err();
    assert_eq!(problems[0].path.as_deref(), Some("amount"));
    assert_eq!(problems[0].code.typename(), "invalid-amount");
}

#[test]
fn jsonp_params_with_any_faithful_number_format_parse_back() {
    let experiment = experiment(&["v1"]);
    for amount in [0.0, 1.0, 0.25, 0.3, 1e-7, 0.1 + 0.2, 5e-324] {
        let event = myna_core::Event {
            typename: myna_core::EventType::Reward,
            variant: "v1".into(),
            amount: Some(amount),
            timestamp: 5,
        };
        let batch = Some(Uuid::from_u128(9));
        assert_eq!(
            event.query_params_with(batch, |a| a.to_string()),
            event.query_params(batch)
        );
        // Exponent notation (what a browser writes for 1e-7) parses back too.
        let params = event.query_params_with(batch, |a| format!("{a:e}"));
        let back = parse_record_params(
            |k| {
                params
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.as_str())
            },
            &experiment,
            10,
        )
        .unwrap();
        assert_eq!(back.events, vec![event], "{amount}");
    }
}

#[test]
fn an_event_missing_a_field_still_has_its_other_fields_problems_told() {
    let exp = experiment(&["a"]);
    let told = |body: Value| {
        let problem = parse_record_body(body.to_string().as_bytes(), &exp, 1_000).unwrap_err();
        problem_summary(&problem)["messages"].clone()
    };
    assert_eq!(
        told(json!({"events": [{"typename": "q"}]})),
        json!([
            {"typename": "unknown-typename", "path": "events[0].typename"},
            {"typename": "missing-field", "path": "events[0].variant"},
        ])
    );
    assert_eq!(
        told(json!({"events": [{"variant": "zz"}]})),
        json!([
            {"typename": "missing-field", "path": "events[0].typename"},
            {"typename": "unknown-variant", "path": "events[0].variant"},
        ])
    );
    // A field that is right is not told.
    assert_eq!(
        told(json!({"events": [{"typename": "view"}, {"variant": "a"}]})),
        json!([
            {"typename": "missing-field", "path": "events[0].variant"},
            {"typename": "missing-field", "path": "events[1].typename"},
        ])
    );
}

#[test]
fn a_date_before_1970_is_refused_saying_so() {
    let exp = experiment(&["a"]);
    for timestamp in [r#""1969-12-31T23:59:59Z""#, "-1"] {
        let body = format!(
            r#"{{"events":[{{"typename":"view","variant":"a","timestamp":{timestamp}}}]}}"#
        );
        let problem = parse_record_body(body.as_bytes(), &exp, 1_000).unwrap_err();
        let message = &problem.messages[0];
        assert_eq!(message.path.as_deref(), Some("events[0].timestamp"));
        assert!(
            message.message.ends_with("not before 1970."),
            "{timestamp}: {}",
            message.message
        );
    }
}

#[test]
fn a_number_too_large_for_a_double_is_its_fields_problem_at_its_path() {
    let exp = experiment(&["a"]);
    let told = |body: &str| {
        let problem = parse_record_body(body.as_bytes(), &exp, 1_000).unwrap_err();
        problem_summary(&problem)["messages"].clone()
    };
    assert_eq!(
        told(
            r#"{"events":[{"typename":"view","variant":"a"},{"typename":"reward","variant":"a","amount":1e400}]}"#
        ),
        json!([{"typename": "invalid-amount", "path": "events[1].amount"}])
    );
    assert_eq!(
        told(
            "{\n \"events\": [\n  {\"typename\": \"view\", \"variant\": \"a\", \"timestamp\": -1e999}\n ]\n}"
        ),
        json!([{"typename": "invalid-timestamp", "path": "events[0].timestamp"}])
    );
    assert_eq!(
        told(r#"{"sentAt": 2e308, "events": []}"#),
        json!([{"typename": "invalid-timestamp", "path": "sentAt"}])
    );
    // Keys with escapes and nested values before it are skipped as text.
    assert_eq!(
        told(r#"{"x\"y": {"events": [1, {"a": "]}"}]}, "events": [{"amount": 9e999}]}"#),
        json!([{"typename": "invalid-amount", "path": "events[0].amount"}])
    );
    // Other invalid JSON stays invalid JSON.
    assert_eq!(told(r#"{"events": [}"#)[0]["typename"], "invalid-json");
}

#[test]
fn a_record_parameter_given_twice_is_refused_at_its_name() {
    use myna_core::event::check_record_param_names;
    let paths = |names: &[&str]| match check_record_param_names(names.iter().copied()) {
        Ok(()) => Vec::new(),
        Err(problem) => problem
            .messages
            .iter()
            .map(|m| m.path.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
    };
    let none: Vec<String> = Vec::new();
    assert_eq!(
        paths(&["typename", "variant", "amount", "apikey", "callback"]),
        none
    );
    assert_eq!(
        paths(&["callback", "callback", "x", "x"]),
        none,
        "not record parameters"
    );
    assert_eq!(paths(&["typename", "variant", "variant"]), ["variant"]);
    assert_eq!(paths(&["amount", "reward"]), ["reward"], "the amount twice");
    assert_eq!(paths(&["reward", "amount"]), ["amount"]);
    assert_eq!(
        paths(&["amount", "amount", "amount", "batch", "batch"]),
        ["amount", "batch"],
        "each name once"
    );
}

#[test]
fn a_record_body_of_too_many_values_is_refused_before_it_grows() {
    let experiment = experiment(&["a", "b"]);
    // An ignored field of a megabyte of one-element arrays (~90 MB parsed).
    let mut body = String::from(r#"{"events":[{"typename":"view","variant":"a"}],"x":["#);
    body.push_str(&"[0],".repeat(250_000));
    body.push_str("[0]]}");
    let problem = parse_record_body(body.as_bytes(), &experiment, 1_700_000_000_000).unwrap_err();
    assert_eq!(problem.status, 413, "{problem:?}");
    let message = &problem.messages[0];
    assert_eq!(
        message.data,
        Some(serde_json::json!({"limit": MAX_RECORD_VALUES}))
    );
    assert!(
        message.path.as_deref().is_some_and(|p| p.starts_with("x[")),
        "{message:?}"
    );
    // A full batch of the SDK's is far within the limit.
    let events = vec![
        serde_json::json!({"typename": "reward", "variant": "b", "amount": 0.5, "timestamp": 1_700_000_000_000_i64});
        MAX_EVENTS
    ];
    let full = serde_json::json!({"batch": "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11", "sentAt": 1_700_000_000_000_i64, "events": events});
    let batch =
        parse_record_body(full.to_string().as_bytes(), &experiment, 1_700_000_000_000).unwrap();
    assert_eq!(batch.events.len(), MAX_EVENTS);
}
