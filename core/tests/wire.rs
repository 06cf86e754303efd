//! The `no_std` wire codec (`wire`, the event writer, the record body and
//! query, the problem reader) against core's serde forms and the standard
//! library: what the SDK writes and reads is exactly what the server reads
//! and writes.
#![allow(clippy::unwrap_used, missing_docs)]

use myna_core::event::{parse_record_body, record_body};
use myna_core::model::{Experiment, Variant, Visibility, empty_object};
use myna_core::wire::{
    parse_decimal, parse_uuid, push_decimal, push_hex, push_integer, push_json_string, url_decode,
    url_encode, uuid_text,
};
use myna_core::{Code, Event, EventType, Message, Problem, RecordBatch};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

/// Rust's own float text (the SDK passes the browser's).
fn num(x: f64) -> String {
    serde_json::to_string(&x).unwrap()
}

fn view(variant: &str, timestamp: i64) -> Event {
    Event {
        typename: EventType::View,
        variant: variant.into(),
        amount: None,
        timestamp,
    }
}

fn reward(variant: &str, amount: f64, timestamp: i64) -> Event {
    Event {
        typename: EventType::Reward,
        variant: variant.into(),
        amount: Some(amount),
        timestamp,
    }
}

/// `name=value&…`, each part URL-encoded.
fn query(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(name, value)| [url_encode(name), url_encode(value)].join("="))
        .collect::<Vec<_>>()
        .join("&")
}

const TRICKY: &str = "q\"b\\s/\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é😀\u{2028}&=?+ ~";

#[test]
fn events_are_written_exactly_as_serde_writes_cores_event() {
    let events = [
        view("a", 0),
        view(TRICKY, 1_795_708_773_232),
        view("a", -5),
        view("a", i64::MIN),
        reward(TRICKY, 0.3, 9_000_000_000_000_000),
        reward("b", 1.0, 5),
        reward("b", 1e-7, i64::MAX),
    ];
    for event in events {
        let mut ours = String::new();
        event.write_json(&mut ours, num);
        assert_eq!(ours, serde_json::to_string(&event).unwrap());
    }
}

#[test]
fn record_bodies_are_cores_wire_form_and_parse_back() {
    let events = [view("a\"b", 7), reward("a\"b", 0.25, 8)];
    let mut json = String::new();
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        event.write_json(&mut json, num);
    }
    let id = Uuid::from_u128(0x6f1c1a52_3b0e_4d8e_9f39_0c6f5c1d2a11);
    let body = record_body(id, None, &json);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        serde_json::to_value(RecordBatch {
            batch: Some(id),
            events: events.to_vec(),
        })
        .unwrap()
    );
    let experiment = Experiment {
        uuid: Uuid::from_u128(1),
        alias: None,
        id: "wire".into(),
        account_id: Uuid::from_u128(2),
        name: "wire".into(),
        visibility: Visibility::Published,
        settings: empty_object(),
        variants: vec![Variant::new("a\"b")],
    };
    let back = parse_record_body(body.as_bytes(), &experiment, 10).unwrap();
    assert_eq!(back.batch, Some(id));
    assert_eq!(back.events, events);
    // Sent: the sender's clock rides along; the id and events do not change.
    let sent: Value = serde_json::from_str(&record_body(id, Some(1234), &json)).unwrap();
    assert_eq!(sent["sentAt"], 1234);
    let back: RecordBatch = serde_json::from_value(sent).unwrap();
    assert_eq!(back.batch, Some(id));
    assert_eq!(back.events, events);
}

#[test]
fn record_queries_are_cores_jsonp_parameters_url_encoded() {
    let events = [
        view("a", 0),
        view(TRICKY, -5),
        reward(TRICKY, 0.3, 1_795_708_773_232),
        reward("b", 1e-7, 5),
    ];
    for (i, event) in events.iter().enumerate() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef + i as u128);
        let params = query(&event.query_params_with(Some(id), num));
        assert_eq!(event.record_query(id, num, None), params);
        assert_eq!(
            event.record_query(id, num, Some(1_795_708_773_232)),
            [params, "&sentAt=1795708773232".into()].concat()
        );
    }
}

#[test]
fn uuids_are_written_and_read_as_the_uuid_crate_does() {
    for n in [0u128, 1, 0x6f1c1a52_3b0e_4d8e_9f39_0c6f5c1d2a11, u128::MAX] {
        let id = Uuid::from_u128(n);
        assert_eq!(uuid_text(id, true), id.hyphenated().to_string());
        assert_eq!(uuid_text(id, false), id.simple().to_string());
        assert_eq!(parse_uuid(&id.hyphenated().to_string()), Some(id));
        assert_eq!(
            parse_uuid(&id.simple().to_string().to_uppercase()),
            Some(id)
        );
    }
}

#[test]
fn uuids_parse_in_both_text_forms_and_nothing_else() {
    let id = Uuid::from_u128(0x6f1c1a52_3b0e_4d8e_9f39_0c6f5c1d2a11);
    assert_eq!(parse_uuid("6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11"), Some(id));
    assert_eq!(parse_uuid("6F1C1A523B0E4D8E9F390C6F5C1D2A11"), Some(id));
    for bad in [
        "",
        "6f1c1a52",
        "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a1",
        "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a111",
        "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a1g",
        "g".repeat(32).as_str(),
        "a".repeat(33).as_str(),
    ] {
        assert_eq!(parse_uuid(bad), None, "{bad}");
    }
}

#[test]
fn decimals_are_written_as_to_string_writes_them() {
    for n in [0, 5, 10, 99, 1_795_708_773_232, u64::MAX] {
        let mut out = String::from("x");
        push_decimal(&mut out, n);
        assert_eq!(out, format!("x{n}"));
    }
    for n in [0, 7, 10, 1_795_708_773_232, -1, -90, i64::MAX, i64::MIN] {
        let mut out = String::new();
        push_integer(&mut out, n);
        assert_eq!(out, n.to_string());
    }
}

#[test]
fn hexadecimals_are_written_as_format_writes_them() {
    for n in [
        0,
        1,
        0xab,
        0x10,
        0xfff,
        0x1234_5678,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        for digits in [0, 1, 8, 20] {
            let mut out = String::from("x");
            push_hex(&mut out, n, digits);
            let width = digits as usize;
            assert_eq!(out, format!("x{n:0width$x}"), "{n} {digits}");
        }
    }
}

#[test]
fn decimals_are_read_as_str_parse_reads_them() {
    for text in [
        "0",
        "7",
        "0012",
        "18446744073709551615",
        "18446744073709551616",
        "",
    ] {
        assert_eq!(parse_decimal(text), text.parse::<u64>().ok(), "{text:?}");
    }
    for text in ["+1", "-1", " 1", "1 ", "1.5", "x"] {
        assert_eq!(parse_decimal(text), None, "{text:?}");
    }
}

#[test]
fn url_encoding_is_like_encode_uri_component_and_decoding_reads_forms() {
    assert_eq!(url_encode("a-b_c.d~e"), "a-b_c.d~e");
    assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    assert_eq!(url_encode("😀"), "%F0%9F%98%80");
    // Decoding, as a query string or form is read: `+` a space, a `%`
    // without two hex digits kept, bytes that are not UTF-8 replaced.
    assert_eq!(url_decode("a%20b+c%26%C3%A9"), "a b c&é");
    assert_eq!(url_decode("%zz%4%"), "%zz%4%");
    assert_eq!(url_decode("%ff"), "\u{fffd}");
    assert_eq!(url_decode("%E2%82%AC"), "€");
}

proptest! {
    #[test]
    fn json_strings_are_what_serde_writes(text in any::<String>()) {
        let mut ours = String::new();
        push_json_string(&mut ours, &text);
        prop_assert_eq!(ours, serde_json::to_string(&text).unwrap());
    }

    #[test]
    fn integers_are_what_to_string_writes(n in any::<i64>()) {
        let mut ours = String::new();
        push_integer(&mut ours, n);
        prop_assert_eq!(&ours, &n.to_string());
        if n >= 0 {
            prop_assert_eq!(parse_decimal(&ours), Some(n as u64));
        }
    }

    #[test]
    fn url_encoding_decodes_back(text in any::<String>()) {
        let encoded = url_encode(&text);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
        prop_assert_eq!(url_decode(&encoded), text);
    }

    #[test]
    fn url_decoding_takes_any_text(text in any::<String>()) {
        // Whatever a client sends decodes to something: text without `%`
        // or `+` as it is, and every `%XX` a byte.
        let decoded = url_decode(&text);
        if !text.contains(['%', '+']) {
            prop_assert_eq!(decoded, text);
        }
    }
}

#[test]
fn problems_read_back_from_their_wire_form() {
    let p = Problem::many(vec![
        Message::at(Code::UnknownVariant, "events[0].variant", "No variant `x`."),
        Message::new(Code::TooManyEvents, "Too many."),
    ]);
    let json = p.to_json(1_795_708_773_232);
    assert_eq!(Problem::read(&&json), Some(p.clone()));
    assert_eq!(Problem::from_json(&json), Some(p));
    // What a client must survive: a newer server's codes, odd statuses.
    let odd = json!({
        "typename": "problem",
        "status": 404.5,
        "messages": [{ "typename": "from-the-future", "message": "?" }, 7],
    });
    let read = Problem::read(&&odd).unwrap();
    assert_eq!(read.status, 404);
    assert_eq!(read.code(), Code::Internal);
    assert_eq!(read.messages[1].message, "");
    let bare = json!({ "typename": "problem", "status": 503 });
    assert_eq!(Problem::read(&&bare).unwrap().messages, vec![]);
    for not in [
        json!({ "typename": "problem", "status": 99 }),
        json!({ "typename": "problem", "status": 600 }),
        json!({ "typename": "problem", "status": "400" }),
        json!({ "typename": "experiment", "status": 400 }),
        json!([1, 2]),
        json!(null),
    ] {
        assert_eq!(Problem::read(&&not), None, "{not}");
        assert_eq!(Problem::from_json(&not), None, "{not}");
    }
}

#[test]
fn a_bare_status_stands_for_the_code_that_answers_with_it() {
    for code in [
        Code::Authentication,
        Code::Authorization,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::Conflict,
        Code::BodyTooLarge,
        Code::Unavailable,
        Code::Internal,
    ] {
        assert_eq!(Code::for_status(code.status()), code, "{code}");
    }
    assert_eq!(Code::for_status(408), Code::Timeout);
    assert_eq!(Code::for_status(429), Code::Unavailable);
    assert_eq!(Code::for_status(502), Code::Internal);
    assert_eq!(Code::for_status(400), Code::InvalidValue);
    assert_eq!(Code::for_status(418), Code::InvalidValue);
    let p = Problem::of_status(502);
    assert_eq!(p.status, 502);
    assert_eq!(p.messages[0].message, "The server answered HTTP 502.");
    assert!(p.is_retryable());
}
