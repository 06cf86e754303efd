//! `GET /v2/openapi.json`: public, OpenAPI 3.1, and complete: every route
//! and method `routes::app` serves (read from `server/src/routes/mod.rs`)
//! is described, and nothing it does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;

use myna_server::cors::Origins;
use poem::http::{Method, StatusCode};
use serde_json::Value;

mod common;
use common::app::Seed;

/// `(method, path)` of every route `app` mounts, from its source: each
/// `.at("path", …)` with the methods chained in it (the API's paths are
/// written whole, `/v2/…`).
fn routes_in_source() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/routes/mod.rs");
    let mut routes = BTreeSet::new();
    for part in source.split(".at(").skip(1) {
        let path = part.split('"').nth(1).expect("a path literal");
        // The methods of this `.at(…)`: up to the next `.at(` or the end of
        // the statement.
        let chain = part.split(';').next().unwrap_or(part);
        let path = path
            .split('/')
            .map(|s| match s.strip_prefix(':') {
                Some(name) => format!("{{{name}}}"),
                None => s.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["get", "post", "put", "delete"] {
            let called = [
                format!("{method}("),
                format!(".{method}("),
                format!("::{method}("),
            ];
            if called.iter().any(|c| chain.contains(c.as_str())) {
                routes.insert((method.to_owned(), path.clone()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn the_description_is_public_and_names_every_route() {
    let app = Seed::new().await.start(Origins::Any).await;
    let answer = app
        .send_with(Method::GET, "/v2/openapi.json", &[], None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let document: Value = serde_json::from_str(&answer.text).expect("JSON");
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));

    let mut described = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            described.insert((method.clone(), path.clone()));
        }
    }
    let served = routes_in_source();
    assert!(served.len() >= 20, "the source reader found {served:?}");
    let missing: Vec<_> = served.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the description: {missing:?}"
    );
    let extra: Vec<_> = described.difference(&served).collect();
    assert!(extra.is_empty(), "described but not served: {extra:?}");

    // Every operation says what a problem looks like.
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let problem =
                &operation["responses"]["default"]["content"]["application/json"]["schema"];
            assert_eq!(
                problem["$ref"], "#/components/schemas/Problem",
                "{method} {path}"
            );
        }
    }
    let required = &document["components"]["schemas"]["Problem"]["required"];
    for field in ["typename", "timestamp", "status", "messages"] {
        assert!(
            required.as_array().unwrap().iter().any(|f| f == field),
            "{field}"
        );
    }
}

/// What code generators and validators read: every operation has its own
/// `operationId`; the bodies describe what the server takes (a create's
/// `uuid`, a batch's `sentAt`, a timestamp as a number or an RFC 3339
/// string, no other field but in a record, whose unknown fields SPEC
/// ignores); the query parameters their limits.
#[tokio::test]
async fn the_description_says_what_the_server_takes() {
    let app = Seed::new().await.start(Origins::Any).await;
    let answer = app
        .send_with(Method::GET, "/v2/openapi.json", &[], None)
        .await;
    let document: Value = serde_json::from_str(&answer.text).expect("JSON");
    let mut ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().expect("an operationId");
            assert!(ids.insert(id.to_owned()), "{method} {path}: {id} twice");
        }
    }
    let schemas = &document["components"]["schemas"];
    let timestamp = &schemas["Event"]["properties"]["timestamp"]["oneOf"];
    assert_eq!(timestamp[0]["type"], "number");
    assert_eq!(timestamp[1]["type"], "string");
    assert_eq!(timestamp[1]["format"], "date-time");
    assert!(schemas["CreateBody"]["properties"]["uuid"].is_object());
    assert!(schemas["RecordBody"]["properties"]["sentAt"].is_object());
    for body in ["CreateBody", "UpdateBody", "VariantInput", "WebhookBody"] {
        assert_eq!(schemas[body]["additionalProperties"], false, "{body}");
    }
    // SPEC: a record's unknown fields are ignored.
    for body in ["RecordBody", "Event"] {
        assert_ne!(schemas[body]["additionalProperties"], false, "{body}");
    }
    let search = document["paths"]["/v2/experiment"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    let param = |name: &str| {
        search
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["schema"].clone())
            .unwrap_or_default()
    };
    // The limits it states are core's (utoipa takes only literals: these
    // keep them from drifting apart).
    assert_eq!(param("limit")["maximum"], myna_core::search::MAX_LIMIT);
    assert_eq!(
        param("callback")["maxLength"],
        myna_core::jsonp::MAX_CALLBACK_CHARS
    );
    let max_name = myna_core::limits::MAX_NAME_CHARS;
    assert_eq!(
        schemas["CreateBody"]["properties"]["name"]["maxLength"],
        max_name
    );
    assert_eq!(
        schemas["UpdateBody"]["properties"]["name"]["maxLength"],
        max_name
    );
    assert_eq!(
        schemas["WebhookBody"]["properties"]["url"]["maxLength"],
        myna_core::limits::MAX_WEBHOOK_URL_BYTES
    );
}
