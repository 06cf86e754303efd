//! Helpers shared by the browser tests: snapshots, options, listeners, errors,
//! storage, and (for tests against the real server) the owner's HTTP calls.
#![allow(dead_code, clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, JSON, Object, Promise, Reflect};
use myna_wasm_sdk::Myna;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// A root where fetches and scripts fail at once (Chromium refuses port 9).
pub const DEAD: &str = "http://127.0.0.1:9";
/// An experiment uuid for snapshots.
pub const U1: &str = "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11";

/// A fresh storage namespace, so tests never see each other's queues.
pub fn ns(name: &str) -> String {
    let n = (js_sys::Math::random() * 1e9) as u64;
    format!("t-{name}-{n}")
}

/// Parses JSON text in the browser.
pub fn json(text: &str) -> JsValue {
    JSON::parse(text).unwrap_or_else(|e| panic!("bad JSON in a test: {text}: {e:?}"))
}

/// A summary read form with these variants and weights (each variant's
/// settings say its id).
pub fn snapshot(uuid: &str, variants: &[(&str, f64)]) -> JsValue {
    let variants: Vec<String> = variants
        .iter()
        .map(|(id, w)| {
            format!(
                r#""{id}":{{"name":"Variant {id}","weight":{w},"settings":{{"label":"{id}!"}}}}"#
            )
        })
        .collect();
    json(&format!(
        r#"{{"typename":"experiment","subtype":"summary","uuid":"{uuid}","name":"Test","visibility":"published","settings":{{"page":"home"}},"variants":{{{}}}}}"#,
        variants.join(",")
    ))
}

/// An options object.
pub fn options(fields: &[(&str, JsValue)]) -> JsValue {
    let out = Object::new();
    for (k, v) in fields {
        Reflect::set(&out, &(*k).into(), v).unwrap();
    }
    out.into()
}

/// Options for a client that never sends by itself (no timer flush, no
/// batch-size flush) with one snapshot.
pub fn quiet(ns: &str, root: &str, snapshots: &[JsValue]) -> Vec<(&'static str, JsValue)> {
    vec![
        ("apiRoot", root.into()),
        ("apiKey", "00000000-0000-0000-0000-000000000000".into()),
        ("storageKey", ns.into()),
        ("flushIntervalMs", 1e9.into()),
        ("batchSize", 1000.into()),
        ("experiments", snapshots.iter().collect::<Array>().into()),
    ]
}

/// Connects or panics; resolves in the task after (the client's
/// listeners start then, as a page's later tasks see them).
pub async fn connect(fields: &[(&str, JsValue)]) -> Myna {
    match Myna::connect(options(fields)).await {
        Ok(m) => {
            sleep(0).await;
            m
        }
        Err(e) => panic!("connect failed: {}", describe(&e)),
    }
}

/// A `Promise` settled: Ok(value) or Err(reason).
pub async fn settle(promise: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(promise).await
}

/// Resolves after `ms` milliseconds (0: the next task, after microtasks).
pub async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    JsFuture::from(p).await.unwrap();
}

/// A variant's id, as `suggest` and `view` answer it.
pub fn id_of(variant: &JsValue) -> String {
    get(variant, "id").as_string().unwrap()
}

/// `value[key]`.
pub fn get(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

/// A short text for a JS value (errors show code, path, message).
pub fn describe(value: &JsValue) -> String {
    if value.is_instance_of::<js_sys::Error>() {
        format!(
            "{:?} code={:?} path={:?} status={:?}: {:?}",
            get(value, "name").as_string(),
            get(value, "code").as_string(),
            get(value, "path").as_string(),
            get(value, "status").as_f64(),
            get(value, "message").as_string()
        )
    } else {
        JSON::stringify(value)
            .map(String::from)
            .unwrap_or_else(|_| format!("{value:?}"))
    }
}

/// Asserts `value` is a `MynaError` (a real `Error`) with this code and path.
pub fn assert_myna_error(value: &JsValue, code: &str, path: Option<&str>) {
    assert!(
        value.is_instance_of::<js_sys::Error>(),
        "not an Error: {}",
        describe(value)
    );
    assert_eq!(
        get(value, "name").as_string().as_deref(),
        Some("MynaError"),
        "{}",
        describe(value)
    );
    assert_eq!(
        get(value, "code").as_string().as_deref(),
        Some(code),
        "{}",
        describe(value)
    );
    assert_eq!(
        get(value, "path").as_string().as_deref(),
        path,
        "{}",
        describe(value)
    );
    let messages = get(value, "messages");
    assert!(Array::is_array(&messages) && Array::from(&messages).length() >= 1);
}

/// Records what a `myna.on(...)` listener receives.
pub struct Listener {
    /// Every payload, in order.
    pub seen: Rc<RefCell<Vec<JsValue>>>,
    closure: Closure<dyn FnMut(JsValue)>,
}

impl Listener {
    /// A listener attached to `event` of `myna`.
    pub fn on(myna: &Myna, event: &str) -> Listener {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let sink = seen.clone();
        let closure = Closure::<dyn FnMut(JsValue)>::new(move |v| sink.borrow_mut().push(v));
        myna.on(
            event.into(),
            closure.as_ref().unchecked_ref::<Function>().clone(),
        );
        Listener { seen, closure }
    }

    /// The payloads so far.
    pub fn all(&self) -> Vec<JsValue> {
        self.seen.borrow().clone()
    }

    /// The sum of one counter over `sync` payloads.
    pub fn total(&self, key: &str) -> f64 {
        self.seen
            .borrow()
            .iter()
            .map(|v| get(v, key).as_f64().unwrap_or(0.0))
            .sum()
    }
}

/// The page's localStorage.
pub fn storage() -> web_sys::Storage {
    web_sys::window().unwrap().local_storage().unwrap().unwrap()
}

/// Every key of a namespace's tab queues (`<ns>:t:…`, and `<ns>:q:…` as
/// SDK versions before records wrote them), with its value.
fn queue_items(ns: &str) -> Vec<(String, String)> {
    let s = storage();
    let (t, q) = (format!("{ns}:t:"), format!("{ns}:q:"));
    (0..s.length().unwrap())
        .filter_map(|i| s.key(i).unwrap())
        .filter(|k| k.starts_with(&t) || k.starts_with(&q))
        .map(|k| {
            let v = s.get_item(&k).unwrap().unwrap();
            (k, v)
        })
        .collect()
}

/// Every stored queue of a namespace, one per tab: its base (the whole
/// queue as last written, or an old SDK's queue), parsed.
pub fn stored_queues(ns: &str) -> Vec<JsValue> {
    queue_items(ns)
        .into_iter()
        .filter(|(k, _)| k[ns.len() + 3..].find(':').is_none())
        .map(|(_, v)| json(&v))
        .collect()
}

/// Bytes the namespace's queues take in storage (bases and records).
pub fn stored_bytes(ns: &str) -> usize {
    queue_items(ns).iter().map(|(_, v)| v.len()).sum()
}

/// The events of every stored batch of a namespace, as another tab reads
/// them: (batch id, events as JSON), each tab's base then its records
/// numbered after the base, in order, merged by batch id.
pub fn stored_batches(ns: &str) -> Vec<(String, Vec<JsValue>)> {
    let items = queue_items(ns);
    let mut out: Vec<(String, Vec<JsValue>)> = Vec::new();
    for (base, text) in items
        .iter()
        .filter(|(k, _)| k[ns.len() + 3..].find(':').is_none())
    {
        let mut parts = vec![json(text)];
        let folded = get(&parts[0], "n").as_f64().unwrap_or(0.0) as u64;
        let mut records: Vec<(u64, JsValue)> = items
            .iter()
            .filter_map(|(k, v)| {
                let n: u64 = k
                    .strip_prefix(base.as_str())?
                    .strip_prefix(':')?
                    .parse()
                    .ok()?;
                (n > folded).then(|| (n, json(v)))
            })
            .collect();
        records.sort_by_key(|(n, _)| *n);
        parts.extend(records.into_iter().map(|(_, v)| v));
        for part in parts {
            for entry in Array::from(&get(&part, "q")).iter() {
                let body = get(&entry, "b");
                let id = get(&body, "batch").as_string().unwrap();
                let events: Vec<JsValue> = Array::from(&get(&body, "events")).iter().collect();
                match out.iter_mut().find(|(i, _)| *i == id) {
                    Some((_, e)) => e.extend(events),
                    None => out.push((id, events)),
                }
            }
        }
    }
    out
}

/// Removes every key of a namespace.
pub fn clear(ns: &str) {
    let s = storage();
    let keys: Vec<String> = (0..s.length().unwrap())
        .filter_map(|i| s.key(i).unwrap())
        .filter(|k| k.starts_with(ns))
        .collect();
    for k in keys {
        s.remove_item(&k).unwrap();
    }
}

/// `<script>` elements of JSONP requests still in the document.
pub fn jsonp_scripts() -> u32 {
    web_sys::window()
        .unwrap()
        .document()
        .unwrap()
        .query_selector_all("script[src*='callback=__mynaJsonp']")
        .unwrap()
        .length()
}

// ---- The real server (compile-time configuration from scripts/with-server) --

/// A value `scripts/with-server` exported when the tests were compiled; the
/// test fails (never skips) without it.
fn configured(value: Option<&'static str>, name: &str) -> &'static str {
    match value {
        Some(v) => v,
        None => panic!(
            "{name} is not set: run the server tests through scripts/with-server (scripts/test does)"
        ),
    }
}

/// The server's root, from `scripts/with-server`.
pub fn api_root() -> &'static str {
    configured(option_env!("MYNA_TEST_API_ROOT"), "MYNA_TEST_API_ROOT")
}

/// A root where nothing listens, from `scripts/with-server`.
pub fn down_root() -> &'static str {
    configured(option_env!("MYNA_TEST_DOWN_ROOT"), "MYNA_TEST_DOWN_ROOT")
}

fn basic() -> String {
    let email = configured(
        option_env!("MYNA_TEST_ADMIN_EMAIL"),
        "MYNA_TEST_ADMIN_EMAIL",
    );
    let password = configured(
        option_env!("MYNA_TEST_ADMIN_PASSWORD"),
        "MYNA_TEST_ADMIN_PASSWORD",
    );
    let token = web_sys::window()
        .unwrap()
        .btoa(&format!("{email}:{password}"))
        .unwrap();
    format!("Basic {token}")
}

/// An owner's call to the real server: (status, JSON body).
pub async fn owner(method: &str, path: &str, body: Option<&str>) -> (u16, JsValue) {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let headers = Object::new();
    Reflect::set(&headers, &"Authorization".into(), &basic().into()).unwrap();
    if let Some(body) = body {
        Reflect::set(&headers, &"Content-Type".into(), &"application/json".into()).unwrap();
        init.set_body(&body.into());
    }
    init.set_headers(&headers);
    let url = format!("{}{path}", api_root());
    let response: web_sys::Response = JsFuture::from(
        web_sys::window()
            .unwrap()
            .fetch_with_str_and_init(&url, &init),
    )
    .await
    .unwrap_or_else(|e| panic!("{method} {url} failed: {e:?}"))
    .dyn_into()
    .unwrap();
    let status = response.status();
    let body = JsFuture::from(response.json().unwrap())
        .await
        .unwrap_or(JsValue::NULL);
    (status, body)
}

/// Creates a published experiment with these variants (their settings name
/// them); its uuid.
pub async fn create_experiment(name: &str, variants: &[&str]) -> String {
    let variants: Vec<String> = variants
        .iter()
        .map(|id| format!(r#""{id}":{{"settings":{{"label":"{id}!"}}}}"#))
        .collect();
    let body = format!(
        r#"{{"name":"{name}","visibility":"published","variants":{{{}}}}}"#,
        variants.join(",")
    );
    let (status, answer) = owner("POST", "/v2/experiment", Some(&body)).await;
    assert!(
        (200..300).contains(&status),
        "create: {status} {}",
        describe(&answer)
    );
    get(&answer, "uuid").as_string().unwrap()
}

/// Creates an API key; its uuid.
pub async fn create_api_key() -> String {
    let (status, answer) = owner("POST", "/v2/apikey", Some("{}")).await;
    assert!(
        (200..300).contains(&status),
        "apikey: {status} {}",
        describe(&answer)
    );
    get(&answer, "uuid").as_string().unwrap()
}

/// The owner's (views, totalReward) of each variant.
pub async fn counts(uuid: &str) -> Vec<(String, f64, f64)> {
    let (status, answer) = owner("GET", &format!("/v2/experiment/{uuid}"), None).await;
    assert_eq!(status, 200, "{}", describe(&answer));
    let variants = get(&answer, "variants");
    Object::keys(variants.unchecked_ref::<Object>())
        .iter()
        .map(|id| {
            let id = id.as_string().unwrap();
            let v = get(&variants, &id);
            (
                id,
                get(&v, "views").as_f64().unwrap(),
                get(&v, "totalReward").as_f64().unwrap(),
            )
        })
        .collect()
}

/// Total views and reward of an experiment.
pub async fn totals(uuid: &str) -> (f64, f64) {
    counts(uuid)
        .await
        .iter()
        .fold((0.0, 0.0), |(v, r), (_, views, reward)| {
            (v + views, r + reward)
        })
}
