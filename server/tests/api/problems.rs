//! Every problem case, in the exact form of the contract, and no 5xx for any
//! client input.

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{Answer, Harness, Who};

fn messages(answer: &Answer) -> Vec<(String, Option<String>)> {
    answer.json()["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    (
                        m["typename"].as_str().unwrap_or("").to_owned(),
                        m["path"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn unknown_experiment_is_the_spec_problem() {
    let h = Harness::new().await;
    let missing = Uuid::new_v4();
    let answer = h
        .get(&format!("/v2/experiment/{missing}"), Who::Owner)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(
        answer.json(),
        json!({"typename": "problem", "timestamp": "2026-11-26T15:59:33.232Z", "status": 404,
               "messages": [{"typename": "unknown-experiment", "message": "There is no such experiment.",
                             "data": {"uuid": missing.to_string()}}]})
    );
    for path in ["not-a-uuid", "123"] {
        let answer = h.get(&format!("/v2/experiment/{path}"), Who::Owner).await;
        assert_eq!(
            (answer.status, answer.code().as_deref()),
            (StatusCode::NOT_FOUND, Some("unknown-experiment"))
        );
    }
}

#[tokio::test]
async fn unknown_variant_and_every_invalid_event_are_listed_with_paths() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let body = json!({"events": [
        {"typename": "view", "variant": "zzz"},
        {"typename": "click", "variant": "a"},
        {"typename": "reward", "variant": "a", "amount": 2},
        {"typename": "view", "variant": "a", "timestamp": 9_000_000_000_000i64},
        {"typename": "view", "variant": "a"}]});
    let answer = h
        .post(&format!("/v2/experiment/{uuid}/record"), Who::Key, body)
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["status"], 400);
    let path = |s: &str| Some(s.to_owned());
    assert_eq!(
        messages(&answer),
        [
            ("unknown-variant".to_owned(), path("events[0].variant")),
            ("unknown-typename".to_owned(), path("events[1].typename")),
            ("invalid-amount".to_owned(), path("events[2].amount")),
            ("future-timestamp".to_owned(), path("events[3].timestamp")),
        ]
    );
    assert_eq!(
        answer.json()["messages"][0]["data"],
        json!({"variant": "zzz"})
    );
    // The batch is atomic: the valid event was not recorded either.
    assert_eq!(h.complete(uuid).await["variants"]["a"]["views"], 0);
}

#[tokio::test]
async fn bad_json_says_where_it_broke() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    for uri in [
        format!("/v2/experiment/{uuid}/record"),
        "/v2/experiment".to_owned(),
        format!("/v2/experiment/{uuid}"),
    ] {
        let method = if uri.ends_with(&uuid.to_string()) {
            Method::PUT
        } else {
            Method::POST
        };
        let answer = h
            .send_with(
                method,
                &uri,
                &[("Authorization", h.owner.basic())],
                Some(b"{\"events\": [\n  {\"typename\": \"view\",}\n]}".to_vec()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(answer.code().as_deref(), Some("invalid-json"));
        assert_eq!(
            answer.json()["messages"][0]["data"],
            json!({"line": 2, "column": 23}),
            "{uri}"
        );
    }
}

/// A body that is not JSON, or JSON but no object, is at fault as a
/// whole: its problem's `path` is `body` (the fields' paths are relative
/// to it), on every endpoint that reads a JSON body.
#[tokio::test]
async fn a_body_that_is_no_object_is_refused_at_the_body() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    for (method, uri) in [
        (Method::POST, format!("/v2/experiment/{uuid}/record")),
        (Method::POST, "/v2/experiment".to_owned()),
        (Method::PUT, format!("/v2/experiment/{uuid}")),
        (Method::POST, "/v2/webhook".to_owned()),
        (Method::POST, "/v2/user/login".to_owned()),
    ] {
        for (body, code) in [
            ("[]", "invalid-type"),
            ("null", "invalid-type"),
            ("\"x\"", "invalid-type"),
            ("1", "invalid-type"),
            ("events", "invalid-json"),
        ] {
            let answer = h
                .send_with(
                    method.clone(),
                    &uri,
                    // A login reads its credentials from a body without them.
                    &[("Authorization", h.owner.basic())][..usize::from(!uri.ends_with("login"))],
                    Some(body.as_bytes().to_vec()),
                )
                .await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{method} {uri} {body}"
            );
            assert_eq!(
                messages(&answer),
                vec![(code.to_owned(), Some("body".to_owned()))],
                "{method} {uri} {body}: {}",
                answer.text
            );
        }
    }
}

#[tokio::test]
async fn bodies_over_one_mib_are_413() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let uri = format!("/v2/experiment/{uuid}/record");
    // A declared length over the limit is refused without reading the body.
    let declared = h
        .send_with(
            Method::POST,
            &uri,
            &[
                ("Authorization", format!("ApiKey {}", h.owner.key)),
                ("Content-Length", "2097152".to_owned()),
            ],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(declared.code().as_deref(), Some("body-too-large"));
    assert_eq!(declared.json()["messages"][0]["data"]["limit"], 1_048_576);
    // A body that turns out longer is refused as soon as it passes the limit.
    let padding = " ".repeat(1 << 20);
    let long = format!("{{\"events\": []{padding}}}");
    for (method, uri) in [
        (Method::POST, uri.clone()),
        (Method::POST, "/v2/experiment".to_owned()),
        (Method::PUT, format!("/v2/experiment/{uuid}")),
    ] {
        let answer = h
            .send_with(
                method,
                &uri,
                &[("Authorization", h.owner.basic())],
                Some(long.clone().into_bytes()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{uri}");
        assert_eq!(answer.code().as_deref(), Some("body-too-large"));
    }
}

#[tokio::test]
async fn more_than_1000_events_are_413() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let events: Vec<Value> = (0..1001)
        .map(|_| json!({"typename": "view", "variant": "a"}))
        .collect();
    let answer = h
        .post(
            &format!("/v2/experiment/{uuid}/record"),
            Who::Key,
            json!({"events": events}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        messages(&answer),
        [("too-many-events".to_owned(), Some("events".to_owned()))]
    );
    let events: Vec<Value> = (0..1000)
        .map(|_| json!({"typename": "view", "variant": "a"}))
        .collect();
    let answer = h
        .post(
            &format!("/v2/experiment/{uuid}/record"),
            Who::Key,
            json!({"events": events}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn credentials_problems() {
    let h = Harness::new().await;
    let none = h.get("/v2/experiment", Who::Nobody).await;
    assert_eq!(
        (none.status, none.code().as_deref()),
        (StatusCode::UNAUTHORIZED, Some("authentication"))
    );
    assert_eq!(none.json()["status"], 401);
    let key = h
        .post("/v2/experiment", Who::Key, json!({"name": "x"}))
        .await;
    assert_eq!(
        (key.status, key.code().as_deref()),
        (StatusCode::FORBIDDEN, Some("authorization"))
    );
    assert_eq!(key.json()["status"], 403);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let h = Harness::new().await;
    for uri in ["/v2/nothing", "/nothing", "/v2/experiment/a/b/c", "/v2"] {
        let answer = h.get(uri, Who::Owner).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(answer.code().as_deref(), Some("not-found"), "{uri}");
        assert_eq!(answer.json()["status"], 404);
    }
    let uuid = h.experiment("published").await;
    // Each with `Allow`: what the path serves (RFC 9110).
    for (method, uri, allow) in [
        (
            Method::DELETE,
            "/v2/experiment".to_owned(),
            "GET, HEAD, POST",
        ),
        (
            Method::PATCH,
            format!("/v2/experiment/{uuid}"),
            "GET, HEAD, PUT, DELETE",
        ),
        (Method::GET, format!("/v2/experiment/{uuid}/reset"), "POST"),
        (
            Method::PUT,
            format!("/v2/experiment/{uuid}/record"),
            "GET, POST",
        ),
        (
            Method::HEAD,
            format!("/v2/experiment/{uuid}/record"),
            "GET, POST",
        ),
        (Method::GET, "/v2/user/login".to_owned(), "POST"),
        (Method::PUT, "/v2/apikey".to_owned(), "GET, HEAD, POST"),
    ] {
        let answer = h.send(method.clone(), &uri, Who::Owner, None).await;
        assert_eq!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        if method != Method::HEAD {
            assert_eq!(answer.code().as_deref(), Some("method-not-allowed"));
        }
        assert_eq!(answer.header("allow"), Some(allow), "{method} {uri}");
    }
}

#[tokio::test]
async fn jsonp_errors_are_200_with_the_status_inside() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let key = h.owner.key;
    let cases = [
        (
            format!("/v2/experiment/{}?callback=cb&apikey={key}", Uuid::new_v4()),
            404,
            "unknown-experiment",
        ),
        (
            format!(
                "/v2/experiment/{uuid}/record?callback=cb&apikey={key}&typename=view&variant=zzz"
            ),
            400,
            "unknown-variant",
        ),
        (
            format!("/v2/experiment/{uuid}/record?callback=cb&typename=view&variant=a"),
            401,
            "authentication",
        ),
        (
            format!("/v2/experiment/{uuid}/record?callback=cb&apikey={key}&variant=a"),
            400,
            "missing-field",
        ),
        (
            format!("/v2/experiment?callback=cb&apikey={key}&limit=-1"),
            400,
            "invalid-value",
        ),
        // What no handler answers reaches the page's callback too.
        (
            format!("/v2/experiment/{uuid}/recrod?callback=cb&apikey={key}"),
            404,
            "not-found",
        ),
        (
            "/v2/user/login?callback=cb".to_owned(),
            405,
            "method-not-allowed",
        ),
    ];
    for (uri, status, code) in cases {
        let answer = h.get(&uri, Who::Nobody).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
        let inner = answer
            .text
            .strip_prefix("/**/cb(")
            .and_then(|t| t.strip_suffix(");"))
            .unwrap_or("");
        let problem: Value = serde_json::from_str(inner).unwrap_or(Value::Null);
        assert_eq!(problem["status"], status, "{uri}: {}", answer.text);
        assert_eq!(problem["messages"][0]["typename"], code, "{uri}");
    }
    // A callback that may not be echoed is the same plain 400 there too.
    for uri in [
        "/v2/nothing?callback=a..b".to_owned(),
        "/v2/nothing?callback=a&callback=b".to_owned(),
        format!("/v2/experiment/{uuid}/reset?callback=function"),
    ] {
        let answer = h.get(&uri, Who::Nobody).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            answer.text
        );
        assert_eq!(answer.code().as_deref(), Some("invalid-callback"), "{uri}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
    }
}

/// A browser sends Basic credentials it knows for the server with any page's
/// `<script>`: a JSONP call does not authenticate by them (only by API key),
/// so a hostile page cannot read an owner's drafts; nor does a GET that
/// records (an `<img>` carries them too); without `callback` they work as
/// ever elsewhere.
#[tokio::test]
async fn jsonp_calls_ignore_basic_credentials() {
    let h = Harness::new().await;
    let draft = h.experiment("draft").await;
    let published = h.experiment("published").await;
    let inner = |text: &str| -> Value {
        let json = text
            .strip_prefix("/**/cb(")
            .and_then(|t| t.strip_suffix(");"));
        serde_json::from_str(json.unwrap_or("")).unwrap_or(Value::Null)
    };
    for uri in [
        format!("/v2/experiment/{draft}?callback=cb"),
        "/v2/experiment?visibility=draft&callback=cb".to_owned(),
        format!("/v2/experiment/{published}/record?typename=view&variant=a&callback=cb"),
    ] {
        let answer = h.get(&uri, Who::OwnerBasic).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}");
        let problem = inner(&answer.text);
        assert_eq!(problem["status"], 401, "{uri}: {}", answer.text);
        says_basic_is_not_accepted(&problem["messages"][0]["message"]);
        assert!(!answer.text.contains(&draft.to_string()), "{}", answer.text);
    }
    // With the API key (the JSONP way) the published one is read; Basic
    // without a callback still reads the draft.
    let keyed = h
        .get(
            &format!(
                "/v2/experiment/{published}?callback=cb&apikey={}",
                h.owner.key
            ),
            Who::OwnerBasic,
        )
        .await;
    assert_eq!(inner(&keyed.text)["subtype"], "summary", "{}", keyed.text);
    let plain = h
        .get(&format!("/v2/experiment/{draft}"), Who::OwnerBasic)
        .await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text);
    assert_eq!(plain.json()["subtype"], "complete");
    let img = format!("/v2/experiment/{draft}/record?typename=view&variant=a");
    let answer = h.get(&img, Who::OwnerBasic).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    says_basic_is_not_accepted(&answer.json()["messages"][0]["message"]);
    let nothing = h.get(&img, Who::Nobody).await;
    assert_eq!(nothing.status, StatusCode::UNAUTHORIZED, "{}", nothing.text);
    assert!(
        nothing.text.contains("Basic or Bearer"),
        "without credentials, the general advice: {}",
        nothing.text
    );
    for uuid in [draft, published] {
        let views = h.complete(uuid).await["variants"]["a"]["views"].clone();
        assert_eq!(views, 0, "the refused records counted nothing");
    }
}

/// The 401 of a call that ignored Basic credentials names what it takes
/// instead, and not Basic.
fn says_basic_is_not_accepted(message: &Value) {
    let message = message.as_str().unwrap_or_default();
    assert!(
        message.contains("API key")
            && message.contains("Bearer")
            && message.contains("Basic credentials are not accepted")
            && !message.contains("Basic or Bearer"),
        "{message}"
    );
}

#[tokio::test]
async fn invalid_callbacks_are_plain_400_never_echoed() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    for callback in [
        "alert(1)",
        "a%3Bb",
        "%3Cscript%3E",
        "1abc",
        "a..b",
        "function",
        "import",
    ] {
        for uri in [
            format!("/v2/experiment/{uuid}?callback={callback}"),
            format!("/v2/experiment/{uuid}/record?typename=view&variant=a&callback={callback}"),
        ] {
            let answer = h.get(&uri, Who::Key).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(answer.header("content-type"), Some("application/json"));
            assert_eq!(answer.code().as_deref(), Some("invalid-callback"));
            assert!(
                !answer.text.contains("alert") && !answer.text.contains("script"),
                "{}",
                answer.text
            );
        }
    }
    assert_eq!(
        h.complete(uuid).await["variants"]["a"]["views"],
        0,
        "nothing recorded"
    );
}

#[tokio::test]
async fn an_unavailable_database_is_503() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    assert_eq!(h.get("/healthz", Who::Nobody).await.status, StatusCode::OK);
    h.storage.close().await.unwrap();
    // The probe that succeeded answers the checks of the next 250 ms: the
    // first one after it says what the database does now.
    let asked = std::time::Instant::now();
    let health = loop {
        let health = h.get("/healthz", Who::Nobody).await;
        if health.status != StatusCode::OK || asked.elapsed().as_secs() >= 10 {
            break health;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        (health.status, health.code().as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
    );
    let body = json!({"events": [{"typename": "view", "variant": "a"}]});
    let record = h
        .post(&format!("/v2/experiment/{uuid}/record"), Who::Owner, body)
        .await;
    assert_eq!(
        record.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        record.text
    );
    assert_eq!(record.code().as_deref(), Some("unavailable"));
    assert!(
        !record.text.to_lowercase().contains("pool"),
        "no driver detail: {}",
        record.text
    );
}

#[tokio::test]
async fn no_client_input_causes_a_5xx() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let bodies: Vec<Vec<u8>> = vec![
        vec![],
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\"events\"".to_vec(),
        vec![0xff, 0xfe, 0x00],
        b"{\"events\": null, \"batch\": 5}".to_vec(),
        b"{\"events\": [null, 1, \"x\", {}]}".to_vec(),
        b"{\"events\": [{\"typename\": \"reward\", \"variant\": \"a\", \"amount\": 1e999}]}".to_vec(),
        b"{\"events\": [{\"typename\": \"view\", \"variant\": \"a\", \"timestamp\": -1}]}".to_vec(),
        b"{\"events\": [{\"typename\": \"view\", \"variant\": \"a\", \"timestamp\": \"9999-99-99\"}]}".to_vec(),
        b"{\"name\": {\"deep\": [[[[[[[[[[]]]]]]]]]]}, \"variants\": {\"\": null}}".to_vec(),
        b"{\"settingsUpdates\": {\"[99999999999999999999999]\": 1, \"a[0].b\": 2}}".to_vec(),
        "{\"variantUpdates\": {\"\u{2028}\": {\"name\": \"\u{0}\"}}}".as_bytes().to_vec(),
        format!("{{\"events\": [{}]}}", "[".repeat(5000) + &"]".repeat(5000)).into_bytes(),
    ];
    let routes = [
        (Method::POST, format!("/v2/experiment/{uuid}/record")),
        (Method::POST, "/v2/experiment".to_owned()),
        (Method::PUT, format!("/v2/experiment/{uuid}")),
        (Method::POST, "/v2/user/login".to_owned()),
        (Method::POST, "/v2/apikey".to_owned()),
        (Method::POST, format!("/v2/experiment/{uuid}/reset")),
    ];
    for (method, uri) in &routes {
        for body in &bodies {
            for who in [Who::Nobody, Who::Key, Who::Owner] {
                let mut headers = vec![("Content-Type", "application/json".to_owned())];
                if let Some(auth) = h.authorization(who) {
                    headers.push(("Authorization", auth));
                }
                let answer = h
                    .send_with(method.clone(), uri, &headers, Some(body.clone()))
                    .await;
                assert!(
                    answer.status.as_u16() < 500,
                    "{method} {uri} {who:?}: {}",
                    answer.text
                );
                assert!(answer.json().is_object(), "{method} {uri}: {}", answer.text);
            }
        }
    }
    let queries = [
        "typename=view&variant=%FF%FE",
        "typename=reward&variant=a&amount=NaN",
        "typename=reward&variant=a&amount=inf",
        "typename=view&variant=a&timestamp=1e400",
        "typename=view&variant=a&batch=not-a-uuid",
        "typename=%00&variant=%00",
        "apikey=%zz&typename=view&variant=a",
        "q=%FF&visibility=,,,&sort=&limit=99999999999999999999&skip=-0",
    ];
    for query in queries {
        for uri in [
            format!("/v2/experiment/{uuid}/record?{query}"),
            format!("/v2/experiment?{query}"),
            format!("/v2/experiment/{uuid}?{query}"),
        ] {
            for who in [Who::Nobody, Who::Key, Who::Owner] {
                let answer = h.get(&uri, who).await;
                assert!(
                    answer.status.as_u16() < 500,
                    "{uri} {who:?}: {}",
                    answer.text
                );
            }
        }
    }
    for header in ["Basic", "Basic Og==", "ApiKey", "Basic //////////"] {
        let answer = h
            .send_with(
                Method::GET,
                "/v2/experiment",
                &[("Authorization", header.to_owned())],
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{header}");
    }
}

#[tokio::test]
async fn refused_credentials_answer_jsonp_only_on_the_gets_that_speak_it() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let stranger = Uuid::new_v4();
    let record = format!("/v2/experiment/{uuid}/record?callback=cb&apikey={stranger}");
    // A JSONP GET gets the 401 inside its callback.
    let script = h
        .get(&format!("{record}&typename=view&variant=a"), Who::Nobody)
        .await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(
        script.text.starts_with("/**/cb(") && script.text.contains(r#""status":401"#),
        "{}",
        script.text
    );
    // A POST, or an owner-only GET, answers plain JSON whatever `callback` says.
    let body = json!({ "events": [{ "typename": "view", "variant": "a" }] });
    let post = h.post(&record, Who::Nobody, body).await;
    let keys = h.get("/v2/apikey?callback=cb", Who::Key).await;
    for (answer, status, code) in [
        (post, StatusCode::UNAUTHORIZED, "authentication"),
        (keys, StatusCode::FORBIDDEN, "authorization"),
    ] {
        assert_eq!(answer.status, status, "{}", answer.text);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(answer.code().as_deref(), Some(code));
    }
    assert_eq!(h.complete(uuid).await["variants"]["a"]["views"], 0);
}
