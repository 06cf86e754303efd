//! `GET /v2/deployment/{key}/myna.json`: the deployment form field by field
//! (JSON and JSONP as `Myna.initRemote` asks for it), only published
//! experiments in a stable order, unknown and revoked keys, the API root
//! (`--public-url` or the request's), the weights counted as served; and
//! experiment ids (the default from the name, uniqueness among published
//! experiments, updates).

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{Answer, Harness, Who};

/// The deployment of `key`, as a page on `host` asks for it (no
/// credentials but the key in the path), with `query` appended.
async fn deployment(h: &Harness, key: &str, query: &str) -> Answer {
    let headers = [("Host", "ab.example.com".to_owned())];
    h.send_with(
        Method::GET,
        &format!("/v2/deployment/{key}/myna.json{query}"),
        &headers,
        None,
    )
    .await
}

/// Creates an experiment of the owner from `body`; its read form.
async fn create(h: &Harness, body: Value) -> Value {
    let answer = h.post("/v2/experiment", Who::Owner, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json()
}

/// Updates an experiment of the owner.
async fn update(h: &Harness, uuid: &Value, body: Value) -> Answer {
    let uri = format!("/v2/experiment/{}", uuid.as_str().unwrap());
    h.send(Method::PUT, &uri, Who::Owner, Some(body)).await
}

/// The ids of a deployment's experiments, in its order.
fn ids(form: &Value) -> Vec<&str> {
    form["experiments"]
        .as_array()
        .expect("experiments")
        .iter()
        .map(|e| e["id"].as_str().expect("an id"))
        .collect()
}

/// The problem's first message as `(status, typename, path)`.
fn refusal(answer: &Answer) -> (StatusCode, String, String) {
    let json = answer.json();
    let message = &json["messages"][0];
    (
        answer.status,
        message["typename"].as_str().unwrap_or_default().to_owned(),
        message["path"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn the_form_is_the_specs_field_by_field() {
    let h = Harness::new().await;
    let hero = create(
        &h,
        json!({"name": "Hero banner", "visibility": "published",
               "settings": {"myna.web.sticky": true},
               "variants": {"b": {"name": "Bold", "settings": {"color": "red"}}, "a": {}}}),
    )
    .await;
    create(&h, json!({"name": "Hidden", "variants": {"x": {}}})).await;
    let key = h.owner.key;
    let answer = deployment(&h, &key.to_string(), "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    // No --public-url: its root comes from the request, so no shared cache.
    assert_eq!(answer.header("cache-control"), Some("private, max-age=10"));
    let mut form = answer.json();
    // Weights are the current ones: equal for fresh counts, summing to 1.
    let variants = form["experiments"][0]["variants"].as_array_mut().unwrap();
    let weights: Vec<f64> = variants
        .iter_mut()
        .map(|v| v.as_object_mut().unwrap().remove("weight").unwrap())
        .map(|w| w.as_f64().unwrap())
        .collect();
    assert_eq!(weights.len(), 2);
    assert!((weights[0] + weights[1] - 1.0).abs() < 1e-9, "{weights:?}");
    assert!((weights[0] - weights[1]).abs() < 1e-9, "{weights:?}");
    assert_eq!(
        form,
        json!({
            "typename": "deployment",
            "uuid": key, "apiKey": key,
            "apiRoot": "http://ab.example.com",
            "latest": format!("http://ab.example.com/v2/deployment/{key}/myna.json"),
            "experiments": [{
                "typename": "experiment", "uuid": hero["uuid"], "id": "hero-banner",
                "name": "Hero banner", "settings": {"myna.web.sticky": true},
                "variants": [
                    {"typename": "variant", "id": "b", "name": "Bold", "settings": {"color": "red"}},
                    {"typename": "variant", "id": "a", "name": "a", "settings": {}}
                ]
            }]
        })
    );
    for hidden in ["views", "totalReward", "accountId"] {
        assert!(!answer.text.contains(hidden), "{hidden}: {}", answer.text);
    }
}

#[tokio::test]
async fn jsonp_as_the_original_client_asks_for_it() {
    let h = Harness::new().await;
    create(
        &h,
        json!({"name": "Hero", "visibility": "published", "variants": {"a": {}, "b": {}}}),
    )
    .await;
    let key = h.owner.key.to_string();
    let json = deployment(&h, &key, "").await.json();
    // `Myna.initRemote({url})` appends `?callback=…` to the deployment URL.
    let answer = deployment(&h, &key, "?callback=Myna.callbacks.cb_1").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("application/javascript"),
        "{:?}",
        answer.headers
    );
    let body = answer
        .text
        .strip_prefix("/**/Myna.callbacks.cb_1(")
        .and_then(|rest| rest.strip_suffix(");"))
        .unwrap_or_else(|| panic!("not JSONP: {}", answer.text));
    let wrapped: Value = serde_json::from_str(body).unwrap();
    assert_eq!(wrapped, json);
    assert_eq!(wrapped["experiments"][0]["id"], "hero");
    // An invalid callback is a plain JSON 400, never echoed.
    let bad = deployment(&h, &key, "?callback=alert(1)").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(!bad.text.contains("alert(1)"), "{}", bad.text);
}

#[tokio::test]
async fn only_published_experiments_ordered_by_id() {
    let h = Harness::new().await;
    let published = json!({"visibility": "published", "variants": {"a": {}}});
    let mut zeta = published.clone();
    zeta["name"] = json!("Zeta");
    create(&h, zeta).await;
    let mut alpha = published.clone();
    alpha["name"] = json!("Alpha");
    create(&h, alpha).await;
    let beta = create(&h, json!({"name": "Beta", "variants": {"a": {}}})).await;
    create(
        &h,
        json!({"name": "Old", "visibility": "archived", "variants": {"a": {}}}),
    )
    .await;
    let key = h.owner.key.to_string();
    let first = deployment(&h, &key, "").await.json();
    assert_eq!(ids(&first), ["alpha", "zeta"]);
    // Stable: asked again, the same order.
    assert_eq!(ids(&deployment(&h, &key, "").await.json()), ids(&first));
    // Published later, it takes its place by id.
    let answer = update(&h, &beta["uuid"], json!({"visibility": "published"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        ids(&deployment(&h, &key, "").await.json()),
        ["alpha", "beta", "zeta"]
    );
    // Another account's key sees none of them.
    let theirs = deployment(&h, &h.other.key.to_string(), "").await;
    assert_eq!(theirs.status, StatusCode::OK);
    assert_eq!(theirs.json()["experiments"], json!([]));
}

#[tokio::test]
async fn unknown_and_revoked_keys_are_404() {
    let h = Harness::new().await;
    for key in [Uuid::new_v4().to_string(), "not-a-key".to_owned()] {
        let answer = deployment(&h, &key, "").await;
        assert_eq!(
            refusal(&answer),
            (StatusCode::NOT_FOUND, "not-found".to_owned(), String::new()),
            "{key}"
        );
        assert_ne!(answer.header("cache-control"), Some("public, max-age=10"));
    }
    // In JSONP the problem is inside the callback, status 200.
    let answer = deployment(&h, &Uuid::new_v4().to_string(), "?callback=cb").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text.starts_with("/**/cb("), "{}", answer.text);
    assert!(answer.text.contains(r#""status":404"#), "{}", answer.text);

    let key = h.owner.key;
    assert_eq!(
        deployment(&h, &key.to_string(), "").await.status,
        StatusCode::OK
    );
    let revoked = h
        .send(
            Method::DELETE,
            &format!("/v2/apikey/{key}"),
            Who::Owner,
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    let answer = deployment(&h, &key.to_string(), "").await;
    assert_eq!(refusal(&answer).0, StatusCode::NOT_FOUND, "{}", answer.text);
}

#[tokio::test]
async fn the_api_root_is_the_public_url_or_the_requests() {
    let h = Harness::with_public_url("https://myna.example.org/ab").await;
    let key = h.owner.key;
    let answer = deployment(&h, &key.to_string(), "").await;
    assert_eq!(
        answer.header("vary"),
        None,
        "the same root for every request"
    );
    assert_eq!(answer.header("cache-control"), Some("public, max-age=10"));
    let js = h
        .get(&format!("/v2/deployment/{key}/myna.js"), Who::Nobody)
        .await;
    assert_eq!(js.header("cache-control"), Some("public, max-age=10"));
    let form = answer.json();
    assert_eq!(form["apiRoot"], "https://myna.example.org/ab");
    assert_eq!(
        form["latest"],
        format!("https://myna.example.org/ab/v2/deployment/{key}/myna.json")
    );

    // Without it: the scheme and host the visitor used, as a proxy reports them.
    let h = Harness::new().await;
    let key = h.owner.key;
    let headers = [
        ("Host", "10.0.0.5:8080".to_owned()),
        ("X-Forwarded-Proto", "https".to_owned()),
        ("X-Forwarded-Host", "ab.example.com".to_owned()),
    ];
    let uri = format!("/v2/deployment/{key}/myna.json");
    let answer = h.send_with(Method::GET, &uri, &headers, None).await;
    // A shared cache keeps one answer per root: none is served to a request
    // with another Host or X-Forwarded-* (a client's made-up one included).
    assert_eq!(
        answer.header("vary"),
        Some("Host, X-Forwarded-Host, X-Forwarded-Proto")
    );
    let script = format!("/v2/deployment/{key}/myna.js");
    let js = h.send_with(Method::GET, &script, &headers, None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(
        js.header("vary"),
        Some("Host, X-Forwarded-Host, X-Forwarded-Proto")
    );
    let form = answer.json();
    assert_eq!(form["apiRoot"], "https://ab.example.com");
    let direct = [("Host", "myna.local:8080".to_owned())];
    let form = h.send_with(Method::GET, &uri, &direct, None).await.json();
    assert_eq!(form["apiRoot"], "http://myna.local:8080");
    assert_eq!(
        form["latest"],
        format!("http://myna.local:8080/v2/deployment/{key}/myna.json")
    );
}

#[tokio::test]
async fn any_origin_may_read_it() {
    let h = Harness::new().await;
    let headers = [("Origin", "https://shop.example".to_owned())];
    let uri = format!("/v2/deployment/{}/myna.json", h.owner.key);
    let answer = h.send_with(Method::GET, &uri, &headers, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn the_weights_it_answers_count_as_served() {
    let h = Harness::new().await;
    let live = create(
        &h,
        json!({"name": "Live", "visibility": "published", "variants": {"a": {}, "b": {}}}),
    )
    .await;
    let draft = create(&h, json!({"name": "Draft", "variants": {"a": {}, "b": {}}})).await;
    let key = h.owner.key.to_string();
    for _ in 0..3 {
        assert_eq!(deployment(&h, &key, "").await.status, StatusCode::OK);
    }
    h.state.flush_served().await.unwrap();
    let uuid = |form: &Value| Uuid::parse_str(form["uuid"].as_str().unwrap()).unwrap();
    let served = h.storage.served(uuid(&live)).await.unwrap();
    let rows: Vec<_> = served
        .iter()
        .map(|s| (s.variant.as_str(), s.answers))
        .collect();
    assert_eq!(rows, [("a", 3), ("b", 3)]);
    assert!((served[0].weight_sum - 1.5).abs() < 1e-9, "{served:?}");
    // What pages were not given is not counted.
    assert!(h.storage.served(uuid(&draft)).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_id_defaults_to_a_unique_slug_of_the_name() {
    let h = Harness::new().await;
    let body = json!({"name": "Hero banner!", "variants": {"a": {}}});
    let first = create(&h, body.clone()).await;
    assert_eq!(first["id"], "hero-banner");
    // The read forms carry it right after the uuid.
    let text = h
        .get(
            &format!("/v2/experiment/{}", first["uuid"].as_str().unwrap()),
            Who::Owner,
        )
        .await
        .text;
    let after_uuid = format!(r#""uuid":{},"id":"hero-banner","#, first["uuid"]);
    assert!(text.contains(&after_uuid), "{text}");
    // Unique among the account's experiments, drafts included.
    assert_eq!(create(&h, body.clone()).await["id"], "hero-banner-2");
    assert_eq!(create(&h, body).await["id"], "hero-banner-3");
    // Another account has ids of its own.
    let theirs = h
        .send(
            Method::POST,
            "/v2/experiment",
            Who::Other,
            Some(json!({"name": "Hero banner!"})),
        )
        .await;
    assert_eq!(theirs.json()["id"], "hero-banner", "{}", theirs.text);
    // API keys see it in the summary form.
    let uuid = create(
        &h,
        json!({"name": "Shown", "visibility": "published", "variants": {"a": {}}}),
    )
    .await["uuid"]
        .clone();
    let summary = h
        .get(
            &format!("/v2/experiment/{}", uuid.as_str().unwrap()),
            Who::Key,
        )
        .await;
    assert_eq!(summary.json()["id"], "shown", "{}", summary.text);
}

#[tokio::test]
async fn published_experiments_never_share_an_id() {
    let h = Harness::new().await;
    let hero = create(
        &h,
        json!({"name": "Hero", "id": "hero", "visibility": "published", "variants": {"a": {}}}),
    )
    .await;
    assert_eq!(hero["id"], "hero");
    // Creating another published one with its id: refused.
    let answer = h
        .post(
            "/v2/experiment",
            Who::Owner,
            json!({"name": "Copy", "id": "hero", "visibility": "published", "variants": {"a": {}}}),
        )
        .await;
    assert_eq!(
        refusal(&answer),
        (StatusCode::CONFLICT, "conflict".to_owned(), "id".to_owned()),
        "{}",
        answer.text
    );
    // A draft may have it; publishing the draft is refused.
    let draft = create(
        &h,
        json!({"name": "Copy", "id": "hero", "variants": {"a": {}}}),
    )
    .await;
    assert_eq!(draft["id"], "hero");
    let answer = update(&h, &draft["uuid"], json!({"visibility": "published"})).await;
    assert_eq!(
        refusal(&answer),
        (StatusCode::CONFLICT, "conflict".to_owned(), "id".to_owned()),
        "{}",
        answer.text
    );
    // Nothing changed.
    let uri = format!("/v2/experiment/{}", draft["uuid"].as_str().unwrap());
    assert_eq!(h.get(&uri, Who::Owner).await.json()["visibility"], "draft");
    // With an id of its own it may be published.
    let answer = update(
        &h,
        &draft["uuid"],
        json!({"id": "hero-copy", "visibility": "published"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["id"], "hero-copy");
    // Renaming a published one onto another's id: refused.
    let answer = update(&h, &draft["uuid"], json!({"id": "hero"})).await;
    assert_eq!(
        refusal(&answer),
        (StatusCode::CONFLICT, "conflict".to_owned(), "id".to_owned()),
        "{}",
        answer.text
    );
    // An update of something else keeps the id and goes through.
    let answer = update(&h, &hero["uuid"], json!({"name": "Hero again"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["id"], "hero");
    // A bad id is a 400 at `id`.
    let answer = update(&h, &hero["uuid"], json!({"id": "no spaces"})).await;
    assert_eq!(
        refusal(&answer),
        (
            StatusCode::BAD_REQUEST,
            "invalid-value".to_owned(),
            "id".to_owned()
        )
    );
    // Archived, its id is free for another published experiment.
    let answer = update(&h, &hero["uuid"], json!({"visibility": "archived"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let answer = update(&h, &draft["uuid"], json!({"id": "hero"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let form = deployment(&h, &h.owner.key.to_string(), "").await.json();
    assert_eq!(ids(&form), ["hero"]);
    assert_eq!(form["experiments"][0]["uuid"], draft["uuid"]);
}

/// `GET …/myna.js` as a page's `<script src>` loads it from another origin.
async fn script(h: &Harness, path: &str) -> Answer {
    let headers = [
        ("Host", "ab.example.com".to_owned()),
        ("Origin", "https://shop.example".to_owned()),
    ];
    h.send_with(Method::GET, path, &headers, None).await
}

/// The path of the SDK's entry module that a `myna.js` asked for on host
/// `ab.example.com` imports (its URL, a JSON string in the script).
fn sdk_entry(script: &str) -> String {
    let start = script
        .find("\"http://ab.example.com/v2/sdk/")
        .expect("the SDK's URL")
        + 1;
    let entry = &script[start..start + script[start..].find('"').expect("its end")];
    assert!(entry.ends_with("/index.js"), "{entry}");
    entry.trim_start_matches("http://ab.example.com").to_owned()
}

#[tokio::test]
async fn the_script_inlines_the_deployment_and_loads_the_sdk_this_server_hosts() {
    let h = Harness::new().await;
    create(
        &h,
        json!({"name": "Hero banner", "visibility": "published", "variants": {"a": {}, "b": {}}}),
    )
    .await;
    let key = h.owner.key.to_string();
    let form = deployment(&h, &key, "").await;
    let js = script(&h, &format!("/v2/deployment/{key}/myna.js")).await;
    assert_eq!(js.status, StatusCode::OK, "{}", js.text);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(js.header("cache-control"), Some("private, max-age=10"));
    assert_eq!(js.header("x-content-type-options"), Some("nosniff"));
    assert!(
        js.text.contains(&form.text),
        "the deployment form is inlined as myna.json answers it: {}",
        js.text
    );
    assert!(!js.text.contains("__MYNA_"), "no placeholder left");

    // The SDK's entry, under the same API root, cached for good, readable
    // from the page's origin; the wasm beside it.
    let path = &sdk_entry(&js.text);
    let module = script(&h, path).await;
    assert_eq!(module.status, StatusCode::OK, "{}", module.text);
    assert_eq!(
        module.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        module.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(module.header("access-control-allow-origin"), Some("*"));
    assert!(
        module.text.contains("myna_sdk_bg.wasm"),
        "it fetches the wasm beside it"
    );
    let wasm = script(&h, &path.replace("index.js", "myna_sdk_bg.wasm")).await;
    assert_eq!(wasm.status, StatusCode::OK);
    assert_eq!(wasm.header("content-type"), Some("application/wasm"));
    assert_eq!(wasm.header("access-control-allow-origin"), Some("*"));

    // Another version (a stale script) or file: 404 problems, not cached.
    let version = path.split('/').nth(3).unwrap();
    for other in [
        path.replace(version, "0000000000000000"),
        path.replace("index.js", "boot.js"),
        path.replace("index.js", "../../../Cargo.toml"),
    ] {
        let answer = script(&h, &other).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{other}");
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{other}");
    }
    // An unknown key: a 404 problem, no script.
    let unknown = script(&h, &format!("/v2/deployment/{}/myna.js", Uuid::new_v4())).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["messages"][0]["typename"], "not-found");
}

#[tokio::test]
async fn the_sdk_is_gzipped_for_browsers_that_accept_it() {
    let h = Harness::new().await;
    let key = h.owner.key.to_string();
    let js = script(&h, &format!("/v2/deployment/{key}/myna.js")).await;
    let path = sdk_entry(&js.text);
    for file in [path.clone(), path.replace("index.js", "myna_sdk_bg.wasm")] {
        let ask = async |encoding: &'static str| {
            let headers = [
                ("Host", "ab.example.com".to_owned()),
                ("Accept-Encoding", encoding.to_owned()),
            ];
            h.send_with(Method::GET, &file, &headers, None).await
        };
        let gzipped = ask("gzip, deflate, br").await;
        assert_eq!(gzipped.status, StatusCode::OK, "{file}");
        assert_eq!(gzipped.header("content-encoding"), Some("gzip"), "{file}");
        assert_eq!(gzipped.header("vary"), Some("Accept-Encoding"), "{file}");
        let plain = ask("identity").await;
        assert_eq!(plain.status, StatusCode::OK, "{file}");
        assert_eq!(plain.header("content-encoding"), None, "{file}");
        assert_eq!(plain.header("vary"), Some("Accept-Encoding"), "{file}");
        let refused = ask("gzip;q=0").await;
        assert_eq!(refused.header("content-encoding"), None, "{file}");
    }
}
