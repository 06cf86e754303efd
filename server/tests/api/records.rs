//! Recording: POST batches (JSON and `text/plain`), JSONP GET, exactly-once,
//! the hourly totals, and the weights that follow the counts.

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{Harness, START_MS, Who};

fn views(form: &Value, variant: &str) -> u64 {
    form["variants"][variant]["views"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

#[tokio::test]
async fn post_records_and_answers_the_form_of_the_caller() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let uri = format!("/v2/experiment/{uuid}/record");
    let body = json!({"events": [
        {"typename": "view", "variant": "a", "timestamp": START_MS - 1000},
        {"typename": "reward", "variant": "a", "amount": 0.5, "timestamp": "2026-11-26T15:00:00Z"},
        {"typename": "view", "variant": "b"}]});
    let key = h.post(&uri, Who::Key, body.clone()).await;
    assert_eq!(key.status, StatusCode::OK, "{}", key.text);
    assert_eq!(key.json()["subtype"], "summary");
    assert!(!key.text.contains("views"));
    let owner = h.post(&uri, Who::Owner, body).await;
    let form = owner.json();
    assert_eq!(form["subtype"], "complete");
    assert_eq!(views(&form, "a"), 2);
    assert_eq!(form["variants"]["a"]["totalReward"], 1.0);
    assert_eq!(views(&form, "b"), 2);
}

#[tokio::test]
async fn text_plain_bodies_and_the_apikey_parameter_are_accepted() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let body = json!({"events": [{"typename": "view", "variant": "b"}]}).to_string();
    // What navigator.sendBeacon sends: text/plain, no Authorization header.
    let answer = h
        .send_with(
            Method::POST,
            &format!("/v2/experiment/{uuid}/record?apikey={}", h.owner.key),
            &[("Content-Type", "text/plain;charset=UTF-8".to_owned())],
            Some(body.into_bytes()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(views(&h.complete(uuid).await, "b"), 1);
}

#[tokio::test]
async fn a_batch_id_is_counted_once() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let other = h.experiment("published").await;
    let batch = Uuid::new_v4();
    let body = json!({"batch": batch, "events": [{"typename": "view", "variant": "a"}, {"typename": "reward", "variant": "a"}]});
    for _ in 0..3 {
        let answer = h
            .post(
                &format!("/v2/experiment/{uuid}/record"),
                Who::Key,
                body.clone(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "a retry is acknowledged");
    }
    let form = h.complete(uuid).await;
    assert_eq!(
        (
            views(&form, "a"),
            form["variants"]["a"]["totalReward"].clone()
        ),
        (1, json!(1.0))
    );
    // The same id for another experiment is another batch.
    h.post(&format!("/v2/experiment/{other}/record"), Who::Key, body)
        .await;
    assert_eq!(views(&h.complete(other).await, "a"), 1);
    // Without an id, every call counts.
    let plain = json!({"events": [{"typename": "view", "variant": "b"}]});
    for _ in 0..2 {
        h.post(
            &format!("/v2/experiment/{uuid}/record"),
            Who::Key,
            plain.clone(),
        )
        .await;
    }
    assert_eq!(views(&h.complete(uuid).await, "b"), 2);
}

#[tokio::test]
async fn concurrent_retries_of_one_batch_count_once() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let uri = format!("/v2/experiment/{uuid}/record");
    let body = json!({"batch": Uuid::new_v4(), "events": [{"typename": "view", "variant": "a"}]});
    let calls = (0..20).map(|_| h.post(&uri, Who::Key, body.clone()));
    let answers = futures_join(calls).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(views(&h.complete(uuid).await, "a"), 1);
}

/// Polls every future together (all requests are in flight at once), in order.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut pending: Vec<_> = futures.map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (future, slot) in pending.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *slot = Some(value),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

#[tokio::test]
async fn hourly_totals_are_stored_with_each_commit() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let hour = 3_600_000;
    let this_hour = START_MS - START_MS % hour;
    let body = json!({"events": [
        {"typename": "view", "variant": "a", "timestamp": this_hour - 1},
        {"typename": "view", "variant": "a", "timestamp": this_hour + 1},
        {"typename": "reward", "variant": "a", "amount": 0.25},
        {"typename": "view", "variant": "b", "timestamp": this_hour}]});
    h.post(&format!("/v2/experiment/{uuid}/record"), Who::Key, body)
        .await;
    let hours: Vec<_> = h
        .storage
        .hourly(uuid)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.variant, t.hour_ms, t.views, t.total_reward))
        .collect();
    assert_eq!(
        hours,
        [
            ("a".to_owned(), this_hour - hour, 1, 0.0),
            ("a".to_owned(), this_hour, 1, 0.25),
            ("b".to_owned(), this_hour, 1, 0.0),
        ]
    );
}

#[tokio::test]
async fn weights_follow_counts_at_most_every_250_ms() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let mut events = Vec::new();
    for _ in 0..40 {
        events.push(json!({"typename": "view", "variant": "a"}));
        events.push(json!({"typename": "reward", "variant": "a"}));
        events.push(json!({"typename": "view", "variant": "b"}));
    }
    let answer = h
        .post(
            &format!("/v2/experiment/{uuid}/record"),
            Who::Key,
            json!({"events": events}),
        )
        .await;
    let weight = |form: &Value| form["variants"]["a"]["weight"].as_f64().unwrap();
    assert_eq!(
        weight(&answer.json()),
        0.5,
        "weights are not recomputed on every commit"
    );
    h.clock.advance(250);
    let form = h
        .get(&format!("/v2/experiment/{uuid}"), Who::Key)
        .await
        .json();
    assert!(weight(&form) > 0.99, "the rewarded variant leads: {form}");
}

#[tokio::test]
async fn jsonp_record_get() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let key = h.owner.key;
    let batch = Uuid::new_v4();
    let uri = format!(
        "/v2/experiment/{uuid}/record?typename=reward&variant=a&reward=0.75&batch={batch}&apikey={key}&callback=myna.cb_1"
    );
    for _ in 0..2 {
        let answer = h.get(&uri, Who::Nobody).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.header("content-type"),
            Some("application/javascript; charset=utf-8")
        );
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
        assert!(
            answer
                .text
                .starts_with("/**/myna.cb_1({\"typename\":\"experiment\",\"subtype\":\"summary\""),
            "{}",
            answer.text
        );
        assert!(answer.text.ends_with("});"));
    }
    let form = h.complete(uuid).await;
    assert_eq!(
        form["variants"]["a"]["totalReward"], 0.75,
        "the batch counted once"
    );
    // Without a callback: plain JSON.
    let plain = h
        .get(
            &format!("/v2/experiment/{uuid}/record?typename=view&variant=a&apikey={key}"),
            Who::Nobody,
        )
        .await;
    assert_eq!(plain.header("content-type"), Some("application/json"));
    assert_eq!(plain.json()["subtype"], "summary");
}

/// What pages written for the original Myna send: a path with a doubled or
/// trailing slash (an API root ending in `/`), as nginx in front of it
/// would pass it on; the help page's reward without a `typename`.
#[tokio::test]
async fn jsonp_records_as_the_original_clients_send_them() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let key = h.owner.key;
    for uri in [
        format!("//v2/experiment/{uuid}/record?typename=view&variant=a&apikey={key}&callback=cb"),
        format!("/v2//experiment/{uuid}/record/?typename=view&variant=a&apikey={key}&callback=cb"),
        format!("/v2/experiment/{uuid}/record?variant=a&amount=1.0&apikey={key}&callback=cb"),
    ] {
        let answer = h.get(&uri, Who::Nobody).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}");
        assert!(
            answer
                .text
                .starts_with("/**/cb({\"typename\":\"experiment\""),
            "{uri}: {}",
            answer.text
        );
    }
    let form = h.complete(uuid).await;
    assert_eq!(views(&form, "a"), 2, "{form}");
    assert_eq!(form["variants"]["a"]["totalReward"], 1.0, "{form}");
}

/// A POST records the events of its body: a batch id (or any record
/// parameter) in its URL would be ignored, so a retry would count twice;
/// it is refused at its name and nothing is counted.
#[tokio::test]
async fn a_post_with_record_parameters_in_its_url_is_refused() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let key = h.owner.key;
    let body = json!({ "events": [{ "typename": "view", "variant": "a" }] });
    for name in ["batch", "typename", "amount"] {
        let uri = format!(
            "/v2/experiment/{uuid}/record?apikey={key}&{name}={}",
            Uuid::new_v4()
        );
        let answer = h.post(&uri, Who::Nobody, body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
        assert_eq!(answer.code().as_deref(), Some("invalid-value"));
        assert_eq!(answer.json()["messages"][0]["path"], name);
    }
    assert_eq!(views(&h.complete(uuid).await, "a"), 0);
    // With the API key alone in the URL it records.
    let uri = format!("/v2/experiment/{uuid}/record?apikey={key}");
    assert_eq!(h.post(&uri, Who::Nobody, body).await.status, StatusCode::OK);
    assert_eq!(views(&h.complete(uuid).await, "a"), 1);
}

#[tokio::test]
async fn a_head_on_the_record_endpoint_records_nothing() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let key = h.owner.key;
    let uri = format!("/v2/experiment/{uuid}/record?typename=view&variant=a&apikey={key}");
    let head = h.send(Method::HEAD, &uri, Who::Nobody, None).await;
    assert_eq!(head.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        views(&h.complete(uuid).await, "a"),
        0,
        "a link checker's HEAD"
    );
    // The same URL by GET records the view.
    assert_eq!(h.get(&uri, Who::Nobody).await.status, StatusCode::OK);
    assert_eq!(views(&h.complete(uuid).await, "a"), 1);
}

#[tokio::test]
async fn an_empty_batch_records_nothing_and_answers_the_form() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let answer = h
        .post(
            &format!("/v2/experiment/{uuid}/record"),
            Who::Owner,
            json!({"events": []}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(views(&answer.json(), "a"), 0);
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let body =
        json!({"sdk": "1.0", "events": [{"typename": "view", "variant": "a", "extra": [1]}]});
    let answer = h
        .post(&format!("/v2/experiment/{uuid}/record"), Who::Key, body)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(views(&h.complete(uuid).await, "a"), 1);
}

/// POSTs `text` as a JSON body with the owner's API key.
async fn post_text(h: &Harness, uri: &str, text: &str) -> crate::harness::Answer {
    let headers = [
        ("Content-Type", "application/json".to_owned()),
        ("Authorization", format!("ApiKey {}", h.owner.key)),
    ];
    h.send_with(Method::POST, uri, &headers, Some(text.as_bytes().to_vec()))
        .await
}

/// What two readers could take differently is refused, and nothing of it is
/// counted: a null reward amount (JSON's NaN), a key given twice (two
/// parameters, two headers, a header and a parameter that differ), a JSONP
/// record parameter given twice; a byte order mark is no such thing.
#[tokio::test]
async fn ambiguous_records_are_refused_at_their_path_and_count_nothing() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let uri = format!("/v2/experiment/{uuid}/record");
    for (text, path, code) in [
        (
            r#"{"events":[{"typename":"reward","variant":"a","amount":null}]}"#,
            "events[0].amount",
            "invalid-amount",
        ),
        (
            r#"{"events":[{"typename":"view","variant":"a","variant":"b"}]}"#,
            "events[0].variant",
            "invalid-json",
        ),
        (
            r#"{"events":[{"typename":"view","variant":"a"}],"events":[]}"#,
            "events",
            "invalid-json",
        ),
    ] {
        let answer = post_text(&h, &uri, text).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{text}: {}",
            answer.text
        );
        assert_eq!(answer.code().as_deref(), Some(code), "{text}");
        assert_eq!(answer.json()["messages"][0]["path"], path, "{text}");
    }
    for query in [
        "typename=reward&variant=a&amount=0.5&amount=0.7",
        "typename=reward&variant=a&amount=0.5&reward=0.7",
        "typename=view&variant=a&variant=b",
    ] {
        let answer = h
            .get(
                &format!("{uri}?{query}&apikey={}", h.owner.key),
                Who::Nobody,
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            answer.text
        );
        assert_eq!(answer.code().as_deref(), Some("invalid-value"), "{query}");
    }
    // Two API keys or two callbacks: which one would count is a guess.
    let key = &h.owner.key;
    for (query, status, code) in [
        (
            format!("apikey={key}&apikey=x"),
            StatusCode::UNAUTHORIZED,
            "authentication",
        ),
        (
            format!("apikey=x&apikey={key}"),
            StatusCode::UNAUTHORIZED,
            "authentication",
        ),
        (
            format!("apikey={key}&callback=a&callback=b"),
            StatusCode::BAD_REQUEST,
            "invalid-callback",
        ),
    ] {
        let uri = format!("{uri}?typename=view&variant=a&{query}");
        let answer = h.get(&uri, Who::Nobody).await;
        assert_eq!(answer.status, status, "{query}: {}", answer.text);
        assert_eq!(answer.code().as_deref(), Some(code), "{query}");
        assert!(
            !answer.text.contains("a(") && !answer.text.contains("b("),
            "{}",
            answer.text
        );
    }
    // Two Authorization headers, or an API key in the header and another
    // in the parameter: which a proxy in front took would be a guess.
    let record = format!("{uri}?typename=view&variant=a");
    let header = ("Authorization", format!("ApiKey {key}"));
    let other = ("Authorization", format!("ApiKey {}", uuid::Uuid::new_v4()));
    for (uri, headers) in [
        (record.clone(), vec![header.clone(), other]),
        (
            format!("{record}&apikey={}", uuid::Uuid::new_v4()),
            vec![header.clone()],
        ),
    ] {
        let answer = h.send_with(Method::GET, &uri, &headers, None).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{uri}: {}",
            answer.text
        );
    }
    let same = format!("{record}&apikey={key}");
    let answer = h.send_with(Method::GET, &same, &[header], None).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the same key twice is one: {}",
        answer.text
    );
    let form = h.complete(uuid).await;
    assert_eq!(
        (views(&form, "a"), views(&form, "b")),
        (1, 0),
        "that one only"
    );
    assert_eq!(form["variants"]["a"]["totalReward"], 0.0);
    // Two Content-Type headers: what the body is would be a guess.
    let headers = [
        ("Content-Type", "application/json".to_owned()),
        ("Content-Type", "text/plain".to_owned()),
        ("Authorization", format!("ApiKey {}", h.owner.key)),
    ];
    let body = r#"{"events":[{"typename":"view","variant":"a"}]}"#;
    let answer = h
        .send_with(Method::POST, &uri, &headers, Some(body.as_bytes().to_vec()))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        answer.text
    );
    assert_eq!(answer.json()["messages"][0]["path"], "Content-Type");
    assert_eq!(
        views(&h.complete(uuid).await, "a"),
        1,
        "still the one above"
    );
    // A byte order mark before the body is skipped.
    let answer = post_text(
        &h,
        &uri,
        "\u{feff}{\"events\":[{\"typename\":\"view\",\"variant\":\"a\"}]}",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(views(&h.complete(uuid).await, "a"), 2);
}

/// `--record-limit 10`: ten events a minute from one address with an API
/// key. Past it a batch is refused whole (429 `rate-limited`, `Retry-After`
/// the seconds until it fits) and counts nothing; the same batch sent after
/// the wait counts once; a batch of 11 is taken from a full allowance and
/// leaves a debt (no batch is refused for its size). Other addresses and the
/// owner's credentials are not held back; a JSONP call gets the problem in
/// its callback.
#[tokio::test]
async fn a_record_limit_refuses_an_address_past_it_whole_until_its_wait_is_over() {
    let h = Harness::with_record_limit(10).await;
    let uuid = h.experiment("published").await;
    let uri = format!("/v2/experiment/{uuid}/record");
    let post = |address: &'static str, who: Who, events: usize, batch: Uuid| {
        let body = json!({"batch": batch,
            "events": vec![json!({"typename": "view", "variant": "a"}); events]});
        let mut headers = vec![
            ("Content-Type", "application/json".to_owned()),
            ("X-Forwarded-For", address.to_owned()),
        ];
        headers.extend(h.authorization(who).map(|auth| ("Authorization", auth)));
        let (h, uri) = (&h, uri.clone());
        async move {
            h.send_with(
                Method::POST,
                &uri,
                &headers,
                Some(body.to_string().into_bytes()),
            )
            .await
        }
    };
    let (a, b) = ("198.51.100.7", "203.0.113.9");
    assert_eq!(
        post(a, Who::Key, 8, Uuid::new_v4()).await.status,
        StatusCode::OK
    );
    let refused_batch = Uuid::new_v4();
    let refused = post(a, Who::Key, 3, refused_batch).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text
    );
    assert_eq!(refused.code().as_deref(), Some("rate-limited"));
    // 2 left, 3 wanted: one more event, at 10 a minute, in 6 s.
    assert_eq!(refused.header("retry-after"), Some("6"));
    assert_eq!(refused.json()["messages"][0]["data"]["retryAfter"], 6);
    assert_eq!(
        views(&h.complete(uuid).await, "a"),
        8,
        "nothing of it counted"
    );

    // More than a minute's events in one batch: taken from a full
    // allowance, which they leave one in debt (the next event waits 12 s).
    assert_eq!(
        post(b, Who::Key, 11, Uuid::new_v4()).await.status,
        StatusCode::OK
    );
    let in_debt = post(b, Who::Key, 1, Uuid::new_v4()).await;
    assert_eq!(in_debt.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(in_debt.header("retry-after"), Some("12"));
    assert_eq!(
        post(a, Who::Owner, 5, Uuid::new_v4()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        post(a, Who::Key, 2, Uuid::new_v4()).await.status,
        StatusCode::OK
    );
    let jsonp = h
        .send_with(
            Method::GET,
            &format!(
                "{uri}?typename=view&variant=a&apikey={}&callback=cb",
                h.owner.key
            ),
            &[("X-Forwarded-For", a.to_owned())],
            None,
        )
        .await;
    assert_eq!(jsonp.status, StatusCode::OK);
    assert!(
        jsonp.text.contains("\"rate-limited\"") && jsonp.text.contains("cb("),
        "{}",
        jsonp.text
    );
    assert_eq!(views(&h.complete(uuid).await, "a"), 8 + 11 + 5 + 2);

    // Nothing left: the wait told is the whole batch's (3 events, 18 s),
    // not one event's.
    let spent = post(a, Who::Key, 3, refused_batch).await;
    assert_eq!(spent.header("retry-after"), Some("18"), "{}", spent.text);

    // Counted for the operator: the three POSTs and the JSONP call refused.
    assert_eq!(h.state.metrics.batches_limited.get(), 4);

    h.clock.advance(36_000);
    for _ in 0..2 {
        // Sent again after the wait (and once more, as a lost answer's retry).
        assert_eq!(
            post(a, Who::Key, 3, refused_batch).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(views(&h.complete(uuid).await, "a"), 8 + 11 + 5 + 2 + 3);
}
