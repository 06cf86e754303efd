//! Browsers: CORS preflights and headers, the allowed-origins setting.

use myna_server::cors::Origins;
use poem::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Harness, Who};

async fn preflight(h: &Harness, origin: &str, uri: &str) -> crate::harness::Answer {
    h.send_with(
        Method::OPTIONS,
        uri,
        &[
            ("Origin", origin.to_owned()),
            ("Access-Control-Request-Method", "POST".to_owned()),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type".to_owned(),
            ),
        ],
        None,
    )
    .await
}

#[tokio::test]
async fn any_origin_by_default_without_credentials() {
    let h = Harness::new().await;
    let uuid = h.experiment("published").await;
    let answer = preflight(
        &h,
        "https://shop.example",
        &format!("/v2/experiment/{uuid}/record"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        answer.header("access-control-allow-methods"),
        Some("GET, POST, PUT, DELETE")
    );
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some("Authorization, Content-Type, X-Request-Id")
    );
    assert_eq!(answer.header("access-control-allow-credentials"), None);
    // A cross-origin GET with an Authorization header gets the header too.
    let get = h
        .send_with(
            Method::GET,
            &format!("/v2/experiment/{uuid}"),
            &[
                ("Origin", "https://shop.example".to_owned()),
                ("Authorization", format!("ApiKey {}", h.owner.key)),
            ],
            None,
        )
        .await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(get.header("access-control-allow-origin"), Some("*"));
    // The SDK reads Retry-After of a 503 or 429 to pace its retries.
    assert_eq!(
        get.header("access-control-expose-headers"),
        Some("Retry-After, Date, X-Request-Id")
    );
    // Problems carry it as well, so the page can read them.
    let missing = h
        .send_with(
            Method::GET,
            "/v2/experiment/x",
            &[("Origin", "https://shop.example".to_owned())],
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn configured_origins_only() {
    let h = Harness::with_origins(Origins::parse("https://shop.example")).await;
    let uuid = h.experiment("published").await;
    let uri = format!("/v2/experiment/{uuid}/record");
    let allowed = preflight(&h, "https://shop.example", &uri).await;
    assert_eq!(allowed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert_eq!(allowed.header("vary"), Some("Origin"));
    // Without an Origin the answer differs too (no CORS headers): a shared
    // cache must key it by Origin.
    let plain = h
        .get(
            &format!("/v2/experiment/{uuid}?apikey={}", h.owner.key),
            Who::Nobody,
        )
        .await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.header("access-control-allow-origin"), None);
    assert_eq!(plain.header("vary"), Some("Origin"));
    let refused = preflight(&h, "https://evil.example", &uri).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.header("access-control-allow-origin"), None);
    // A beacon from another origin (no preflight) is refused, not recorded.
    let beacon = h
        .send_with(
            Method::POST,
            &format!("{uri}?apikey={}", h.owner.key),
            &[
                ("Origin", "https://evil.example".to_owned()),
                ("Content-Type", "text/plain".to_owned()),
            ],
            Some(
                json!({"events": [{"typename": "view", "variant": "a"}]})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(
        (beacon.status, beacon.code().as_deref()),
        (StatusCode::FORBIDDEN, Some("authorization"))
    );
    assert_eq!(h.complete(uuid).await["variants"]["a"]["views"], 0);
    // A JSONP call from another origin gets its refusal inside its callback
    // (status 200, the would-be 403 inside); a bad callback is not echoed.
    let jsonp = h
        .send_with(
            Method::GET,
            &format!(
                "{uri}?typename=view&variant=a&apikey={}&callback=cb.r",
                h.owner.key
            ),
            &[("Origin", "https://evil.example".to_owned())],
            None,
        )
        .await;
    assert_eq!(jsonp.status, StatusCode::OK);
    assert!(
        jsonp.text.starts_with("/**/cb.r(") && jsonp.text.contains(r#""status":403"#),
        "{}",
        jsonp.text
    );
    let hostile = h
        .send_with(
            Method::GET,
            &format!("{uri}?typename=view&variant=a&callback=alert(1)//"),
            &[("Origin", "https://evil.example".to_owned())],
            None,
        )
        .await;
    assert!(hostile.status.is_client_error() && !hostile.text.contains("alert"));
    assert_eq!(h.complete(uuid).await["variants"]["a"]["views"], 0);
    // Calls without an Origin (servers, curl) are not affected.
    assert_eq!(
        h.get(&format!("/v2/experiment/{uuid}"), Who::Key)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn health_answers_ok() {
    let h = Harness::new().await;
    let answer = h.get("/healthz", Who::Nobody).await;
    assert_eq!(
        (answer.status, answer.json()),
        (StatusCode::OK, json!({"typename": "ok"}))
    );
}
