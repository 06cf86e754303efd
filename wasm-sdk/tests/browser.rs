//! The SDK in real Chromium without a server: decisions (sticky suggest, one
//! view per suggest, one reward per view), validation errors, the queue
//! (persistence across a simulated reload, bounds, full storage, adoption
//! between tabs), beacons at page hide, JSONP script handling and retry
//! classification. Run by `wasm-pack test --headless --chrome` (scripts/test).
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn suggest_is_sticky_and_records_one_view() {
    let ns = ns("sticky");
    let myna = connect(&quiet(
        &ns,
        DEAD,
        &[snapshot(U1, &[("a", 0.5), ("b", 0.5)])],
    ))
    .await;
    let expt = myna.experiment(U1).unwrap();
    let first = expt.suggest().unwrap();
    assert_eq!(
        get(&get(&first, "settings"), "label").as_string(),
        Some(format!("{}!", id_of(&first)))
    );
    assert_eq!(
        get(&first, "name").as_string(),
        Some(format!("Variant {}", id_of(&first)))
    );
    for _ in 0..10 {
        assert_eq!(id_of(&expt.suggest().unwrap()), id_of(&first));
    }
    assert_eq!(myna.queued(), 1, "ten suggestions, one view");
    // Sticky across clients too (the state is in localStorage).
    let again = connect(&quiet(
        &ns,
        DEAD,
        &[snapshot(U1, &[("a", 0.5), ("b", 0.5)])],
    ))
    .await;
    assert_eq!(
        id_of(&again.experiment(U1).unwrap().suggest().unwrap()),
        id_of(&first)
    );
    assert_eq!(again.queued(), 0);
    expt.unstick();
    expt.suggest().unwrap();
    assert_eq!(
        myna.queued(),
        2,
        "after unstick a suggestion records a view again"
    );
    myna.close();
    again.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn suggest_draws_by_weight() {
    let ns = ns("weight");
    let myna = connect(&quiet(
        &ns,
        DEAD,
        &[snapshot(U1, &[("a", 0.0), ("b", 1.0), ("c", 0.0)])],
    ))
    .await;
    let expt = myna.experiment(U1).unwrap();
    for _ in 0..20 {
        assert_eq!(id_of(&expt.suggest().unwrap()), "b");
        expt.unstick();
    }
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn view_forces_a_variant_and_reward_counts_once_per_view() {
    let ns = ns("reward");
    let myna = connect(&quiet(
        &ns,
        DEAD,
        &[snapshot(U1, &[("a", 1.0), ("b", 0.0)])],
    ))
    .await;
    let expt = myna.experiment(U1).unwrap();
    assert_eq!(id_of(&expt.view("b").unwrap()), "b");
    assert_eq!(
        id_of(&expt.suggest().unwrap()),
        "b",
        "a forced view is sticky"
    );
    assert!(expt.reward(Some(0.5)).unwrap());
    assert!(
        !expt.reward(None).unwrap(),
        "a second reward of the same view records nothing"
    );
    assert!(!expt.reward(Some(1.0)).unwrap());
    assert_eq!(myna.queued(), 2);
    expt.view("b").unwrap();
    assert!(expt.reward(None).unwrap(), "a new view may be rewarded");
    assert_eq!(myna.queued(), 4);
    sleep(0).await; // the queue is written in a microtask
    let events: Vec<String> = stored_batches(&ns)
        .into_iter()
        .flat_map(|(_, events)| events)
        .map(|e| js_sys::JSON::stringify(&e).unwrap().into())
        .collect();
    assert_eq!(events.len(), 4);
    assert!(
        events[0].starts_with(r#"{"typename":"view","variant":"b","timestamp":"#),
        "{events:?}"
    );
    assert!(
        events[1].starts_with(r#"{"typename":"reward","variant":"b","amount":0.5,"#),
        "{events:?}"
    );
    assert!(
        events[3].starts_with(r#"{"typename":"reward","variant":"b","amount":1,"#),
        "{events:?}"
    );
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn bad_events_throw_coded_errors_and_queue_nothing() {
    let ns = ns("invalid");
    let myna = connect(&quiet(&ns, DEAD, &[snapshot(U1, &[("a", 1.0)])])).await;
    let expt = myna.experiment(U1).unwrap();
    let err = expt.reward(None).unwrap_err();
    assert_myna_error(&err, "no-view", None);
    let err = expt.view("nope").unwrap_err();
    assert_myna_error(&err, "unknown-variant", Some("variant"));
    expt.view("a").unwrap();
    for bad in [7.0, -0.1, f64::NAN, f64::INFINITY] {
        let err = expt.reward(Some(bad)).unwrap_err();
        assert_myna_error(&err, "invalid-amount", Some("amount"));
    }
    assert_eq!(myna.queued(), 1, "only the valid view was queued");
    assert!(
        expt.reward(Some(1.0)).unwrap(),
        "the bad amounts did not use up the reward"
    );
    let err = myna
        .experiment("00000000-0000-0000-0000-00000000beef")
        .err()
        .unwrap();
    assert_myna_error(&err, "unknown-experiment", None);
    // The experiment handle accepts any text form of the uuid.
    assert!(myna.experiment(&U1.to_uppercase()).is_ok());
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn connect_checks_its_options() {
    let err = myna_wasm_sdk::Myna::connect(options(&[("apiKey", "k".into())]))
        .await
        .err()
        .unwrap();
    assert_myna_error(&err, "missing-field", Some("apiRoot"));
    // Not a URL: said at once, not a 404 from a path relative to the page.
    let err = myna_wasm_sdk::Myna::connect(options(&[
        ("apiRoot", "ab.example.com".into()),
        ("apiKey", "k".into()),
    ]))
    .await
    .err()
    .unwrap();
    assert_myna_error(&err, "invalid-value", Some("apiRoot"));
    let err = myna_wasm_sdk::Myna::connect(options(&[
        ("apiRoot", DEAD.into()),
        ("apiKey", "k".into()),
        ("transport", "carrier-pigeon".into()),
        ("batchSize", 0.into()),
        // Past a browser timer's longest delay, which fires at once.
        ("timeoutMs", 2_147_483_648.0.into()),
        ("flushIntervalMs", 1e12.into()),
        ("maxQueueBytes", 1e12.into()),
    ]))
    .await
    .err()
    .unwrap();
    assert_myna_error(&err, "invalid-value", Some("transport"));
    let paths: Vec<String> = Array::from(&get(&err, "messages"))
        .iter()
        .map(|m| get(&m, "path").as_string().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["transport", "batchSize", "flushIntervalMs", "timeoutMs"],
        "every problem is listed"
    );
    let mut fields = quiet(
        "x",
        DEAD,
        &[json(
            r#"{"typename":"experiment","uuid":"nope","variants":{}}"#,
        )],
    );
    fields.retain(|(k, _)| *k != "storageKey");
    let err = myna_wasm_sdk::Myna::connect(options(&fields))
        .await
        .err()
        .unwrap();
    assert_myna_error(&err, "invalid-type", Some("experiments[0].uuid"));
}

#[wasm_bindgen_test]
async fn the_queue_survives_a_reload_and_a_live_tab_keeps_its_own() {
    let ns = ns("reload");
    let snap = || snapshot(U1, &[("a", 0.5), ("b", 0.5)]);
    let first = connect(&quiet(&ns, DEAD, &[snap()])).await;
    let expt = first.experiment(U1).unwrap();
    // One event a task: each is stored (as a record of its own) before
    // the next task.
    expt.view("a").unwrap();
    sleep(0).await;
    assert_eq!(stored_batches(&ns)[0].1.len(), 1);
    expt.reward(Some(0.25)).unwrap();
    sleep(0).await;
    expt.view("b").unwrap();
    sleep(0).await;
    let before = stored_batches(&ns);
    assert_eq!(before.len(), 1, "one batch, in a base and its records");
    assert_eq!(before[0].1.len(), 3);

    // Another tab while the first is alive: it leaves the first one's queue alone.
    let other = connect(&quiet(&ns, DEAD, &[snap()])).await;
    let sent = settle(other.flush()).await.unwrap();
    assert_eq!(get(&sent, "sent").as_f64(), Some(0.0));
    assert_eq!(other.queued(), 0);
    other.close();

    // The page goes away; the next page (same storage) takes the queue over,
    // under the same batch ids, and keeps it while the server is unreachable.
    first.close();
    let next = connect(&quiet(&ns, DEAD, &[snap()])).await;
    let err = settle(next.flush()).await.unwrap_err();
    assert_myna_error(&err, "network", None);
    assert_eq!(next.queued(), 3, "nothing lost");
    let after = stored_batches(&ns);
    assert_eq!(
        stored_queues(&ns).len(),
        1,
        "one queue left: the new page's"
    );
    let ids =
        |b: &Vec<(String, Vec<JsValue>)>| b.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&after),
        ids(&before),
        "batch ids are kept across the reload"
    );
    next.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn a_queue_left_by_a_crashed_tab_is_adopted_once_stale() {
    let ns = ns("stale");
    let key = format!("{ns}:q:deadtab");
    let body = r#"{"batch":"6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a99","events":[{"typename":"view","variant":"a","timestamp":5}]}"#;
    let fresh = format!(
        r#"{{"t":{},"r":false,"q":[{{"e":"{U1}","s":false,"b":{body}}}]}}"#,
        js_sys::Date::now()
    );
    storage().set_item(&key, &fresh).unwrap();
    let myna = connect(&quiet(&ns, DEAD, &[snapshot(U1, &[("a", 1.0)])])).await;
    let _ = settle(myna.flush()).await;
    assert_eq!(myna.queued(), 0, "a live tab's queue stays its own");
    let stale = format!(r#"{{"t":1,"r":false,"q":[{{"e":"{U1}","s":false,"b":{body}}}]}}"#);
    storage().set_item(&key, &stale).unwrap();
    let _ = settle(myna.flush()).await;
    assert_eq!(myna.queued(), 1, "a tab silent for long is taken over");
    assert!(storage().get_item(&key).unwrap().is_none());
    let batches = stored_batches(&ns);
    assert_eq!(
        batches[0].0, "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a99",
        "with its batch id"
    );
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn the_queue_is_bounded_oldest_first_with_an_event() {
    let ns = ns("bounds");
    let mut fields = quiet(&ns, DEAD, &[snapshot(U1, &[("a", 1.0)])]);
    fields.push(("maxQueueEvents", 3.into()));
    let myna = connect(&fields).await;
    let errors = Listener::on(&myna, "error");
    let syncs = Listener::on(&myna, "sync");
    let expt = myna.experiment(U1).unwrap();
    for _ in 0..5 {
        expt.view("a").unwrap();
    }
    assert_eq!(myna.queued(), 3);
    sleep(0).await;
    // One burst, one report (at the write that follows it), with the count.
    assert_eq!(errors.all().len(), 1);
    assert_myna_error(&errors.all()[0], "queue-full", None);
    assert_eq!(get(&errors.all()[0], "dropped").as_f64(), Some(2.0));
    assert_eq!(syncs.all().len(), 1);
    assert_eq!(syncs.total("dropped"), 2.0);
    let kept: Vec<f64> = stored_batches(&ns)
        .into_iter()
        .flat_map(|(_, e)| e)
        .map(|e| get(&e, "timestamp").as_f64().unwrap())
        .collect();
    assert_eq!(kept.len(), 3, "the newest three are kept");
    myna.close();
    clear(&ns);

    let ns2 = common::ns("bytes");
    let mut fields = quiet(&ns2, DEAD, &[snapshot(U1, &[("a", 1.0)])]);
    fields.push(("maxQueueBytes", 400.into()));
    let myna = connect(&fields).await;
    let expt = myna.experiment(U1).unwrap();
    for _ in 0..50 {
        expt.view("a").unwrap();
    }
    sleep(0).await;
    let stored = stored_bytes(&ns2);
    assert!(stored <= 400, "{stored} bytes stored");
    assert!(myna.queued() >= 1 && myna.queued() < 50);
    myna.close();
    clear(&ns2);
}

#[wasm_bindgen_test]
async fn a_full_storage_drops_oldest_and_keeps_working() {
    let ns = ns("quota");
    let myna = connect(&quiet(&ns, DEAD, &[snapshot(U1, &[("a", 1.0)])])).await;
    let errors = Listener::on(&myna, "error");
    let expt = myna.experiment(U1).unwrap();
    // Fill localStorage to the last byte.
    let s = storage();
    let mut fillers = Vec::new();
    let mut size = 1 << 22;
    while size >= 1 {
        let key = format!("{ns}:filler{}", fillers.len());
        if s.set_item(&key, &"x".repeat(size)).is_ok() {
            fillers.push(key);
        } else {
            size /= 2;
        }
    }
    for _ in 0..3 {
        expt.view("a").unwrap();
        sleep(0).await;
    }
    assert_eq!(myna.queued(), 3, "events are kept in memory");
    let full: Vec<JsValue> = errors.all();
    assert!(!full.is_empty(), "the page is told");
    assert_myna_error(&full[0], "queue-full", None);
    for key in &fillers {
        s.remove_item(key).unwrap();
    }
    expt.view("a").unwrap();
    sleep(0).await;
    let stored: usize = stored_batches(&ns).iter().map(|(_, e)| e.len()).sum();
    assert_eq!(stored, 4, "once there is room again everything is written");
    myna.close();
    clear(&ns);
}

/// Replaces `navigator.sendBeacon` with a recorder; restored on drop.
struct BeaconSpy {
    calls: std::rc::Rc<std::cell::RefCell<Vec<(String, String)>>>,
    _closure: Closure<dyn FnMut(String, String) -> bool>,
}

impl BeaconSpy {
    fn install() -> BeaconSpy {
        let calls = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let sink = calls.clone();
        let closure = Closure::<dyn FnMut(String, String) -> bool>::new(move |url, body| {
            sink.borrow_mut().push((url, body));
            true
        });
        let navigator = web_sys::window().unwrap().navigator();
        let descriptor = Object::new();
        Reflect::set(&descriptor, &"value".into(), closure.as_ref()).unwrap();
        Reflect::set(&descriptor, &"configurable".into(), &true.into()).unwrap();
        Object::define_property(&navigator, &"sendBeacon".into(), &descriptor);
        BeaconSpy {
            calls,
            _closure: closure,
        }
    }
}

impl Drop for BeaconSpy {
    fn drop(&mut self) {
        let navigator = web_sys::window().unwrap().navigator();
        Reflect::delete_property(navigator.unchecked_ref::<Object>(), &"sendBeacon".into())
            .unwrap();
    }
}

fn dispatch(name: &str) {
    let window = web_sys::window().unwrap();
    window
        .dispatch_event(&web_sys::Event::new(name).unwrap())
        .unwrap();
}

#[wasm_bindgen_test]
async fn page_hide_beacons_the_queue_and_keeps_it_until_confirmed() {
    let ns = ns("beacon");
    let spy = BeaconSpy::install();
    let mut fields = quiet(
        &ns,
        "https://ab.example.com/",
        &[snapshot(U1, &[("a", 1.0)])],
    );
    fields[1] = ("apiKey", "key with space".into());
    let myna = connect(&fields).await;
    let expt = myna.experiment(U1).unwrap();
    expt.view("a").unwrap();
    expt.reward(None).unwrap();
    dispatch("pagehide");
    let calls = spy.calls.borrow().clone();
    assert_eq!(calls.len(), 1);
    let (url, body) = &calls[0];
    assert_eq!(
        url,
        &format!("https://ab.example.com/v2/experiment/{U1}/record?apikey=key%20with%20space")
    );
    let body = json(body);
    let events = Array::from(&get(&body, "events"));
    assert_eq!(events.length(), 2);
    let id = get(&body, "batch").as_string().unwrap();
    assert_eq!(myna.queued(), 2, "kept queued until a confirmed send");
    let stored = stored_queues(&ns);
    assert_eq!(
        get(&stored[0], "r").as_bool(),
        Some(true),
        "released for other tabs"
    );
    // The beaconed batch is sealed: a new event starts a new batch, and the
    // next beacon repeats the first under the same id.
    expt.view("a").unwrap();
    dispatch("pagehide");
    let calls = spy.calls.borrow().clone();
    assert_eq!(calls.len(), 3);
    assert_eq!(
        get(&json(&calls[1].1), "batch").as_string(),
        Some(id.clone())
    );
    assert_ne!(get(&json(&calls[2].1), "batch").as_string(), Some(id));
    myna.close();
    drop(spy);
    clear(&ns);
}

#[wasm_bindgen_test]
async fn jsonp_scripts_are_removed_and_failures_classified() {
    // Each phase has its own storage, so no phase inherits another's queue.
    let with = |root: &str| {
        let mut f = quiet(
            &ns("jsonp"),
            root,
            &[snapshot(U1, &[("a", 0.0), ("b", 1.0)])],
        );
        f.push(("transport", "jsonp".into()));
        f.push(("timeoutMs", 300.into()));
        f
    };
    let registry = || get(&JsValue::from(web_sys::window().unwrap()), "__mynaJsonp");
    // No server: the script fails to load → network, retried later.
    let myna = connect(&with(DEAD)).await;
    myna.experiment(U1).unwrap().view("a").unwrap();
    let err = settle(myna.flush()).await.unwrap_err();
    assert_myna_error(&err, "network", None);
    assert_eq!(jsonp_scripts(), 0, "the failed script is removed");
    assert_eq!(myna.queued(), 1);
    myna.close();
    // A script that runs without calling back (not Myna's answer) → a
    // network failure at once; script removed, callback left as a harmless
    // function for a late answer.
    let myna = connect(&with("data:text/javascript,//")).await;
    myna.experiment(U1).unwrap().view("a").unwrap();
    let err = settle(myna.flush()).await.unwrap_err();
    assert_myna_error(&err, "network", None);
    assert_eq!(jsonp_scripts(), 0);
    let callbacks: Object = registry().unchecked_into();
    let keys = Object::keys(&callbacks);
    assert!(keys.length() >= 1);
    assert!(
        get(
            &registry(),
            &keys.get(keys.length() - 1).as_string().unwrap()
        )
        .is_instance_of::<Function>()
    );
    assert_eq!(myna.queued(), 1);
    myna.close();
    // A server answering through the callback: 503 is retried, 400 dropped
    // with an error event, a read form confirms (and brings new weights).
    let answering = |answer: &str| {
        let js = format!("__mynaJsonp[Object.keys(__mynaJsonp).pop()]({answer})//");
        format!(
            "data:text/javascript,{}",
            String::from(js_sys::encode_uri_component(&js))
        )
    };
    let busy = answering(
        r#"{"typename":"problem","status":503,"messages":[{"typename":"unavailable","message":"later"}]}"#,
    );
    let myna = connect(&with(&busy)).await;
    myna.experiment(U1).unwrap().view("a").unwrap();
    let err = settle(myna.flush()).await.unwrap_err();
    assert_myna_error(&err, "unavailable", None);
    assert_eq!(get(&err, "status").as_f64(), Some(503.0));
    assert_eq!(myna.queued(), 1, "kept for a retry");
    myna.close();
    let refused = answering(
        r#"{"typename":"problem","status":400,"messages":[{"typename":"unknown-variant","message":"no","path":"variant"}]}"#,
    );
    let myna = connect(&with(&refused)).await;
    let errors = Listener::on(&myna, "error");
    let syncs = Listener::on(&myna, "sync");
    myna.experiment(U1).unwrap().view("a").unwrap();
    let counts = settle(myna.flush()).await.unwrap();
    assert_eq!(get(&counts, "dropped").as_f64(), Some(1.0));
    assert_eq!(myna.queued(), 0);
    assert_eq!(errors.all().len(), 1);
    assert_myna_error(&errors.all()[0], "unknown-variant", Some("variant"));
    assert_eq!(get(&errors.all()[0], "status").as_f64(), Some(400.0));
    assert_eq!(syncs.total("dropped"), 1.0);
    myna.close();
    let form = format!(
        r#"{{"typename":"experiment","subtype":"summary","uuid":"{U1}","name":"Test","visibility":"published","variants":{{"a":{{"name":"a","weight":1}},"b":{{"name":"b","weight":0}}}}}}"#
    );
    let myna = connect(&with(&answering(&form))).await;
    let expt = myna.experiment(U1).unwrap();
    assert_eq!(id_of(&expt.suggest().unwrap()), "b");
    expt.reward(Some(0.3)).unwrap();
    let counts = settle(myna.flush()).await.unwrap();
    assert_eq!(
        get(&counts, "sent").as_f64(),
        Some(2.0),
        "one request per event"
    );
    assert_eq!(myna.queued(), 0);
    assert_eq!(jsonp_scripts(), 0);
    expt.unstick();
    assert_eq!(
        id_of(&expt.suggest().unwrap()),
        "a",
        "the answer's weights are used"
    );
    myna.close();
}

#[wasm_bindgen_test]
async fn without_web_locks_a_lease_serializes_flushes() {
    let ns = ns("lease");
    let navigator = web_sys::window().unwrap().navigator();
    let descriptor = Object::new();
    Reflect::set(&descriptor, &"value".into(), &JsValue::UNDEFINED).unwrap();
    Reflect::set(&descriptor, &"configurable".into(), &true.into()).unwrap();
    Object::define_property(&navigator, &"locks".into(), &descriptor);
    let myna = connect(&quiet(&ns, DEAD, &[snapshot(U1, &[("a", 1.0)])])).await;
    myna.experiment(U1).unwrap().view("a").unwrap();
    // Both flushes start now; the second waits for the first's lease.
    let (first, second) = (myna.flush(), myna.flush());
    let (one, two) = (settle(first).await, settle(second).await);
    Reflect::delete_property(navigator.unchecked_ref::<Object>(), &"locks".into()).unwrap();
    assert_myna_error(&one.unwrap_err(), "network", None);
    assert_myna_error(&two.unwrap_err(), "network", None);
    assert!(
        storage()
            .get_item(&format!("{ns}:lease"))
            .unwrap()
            .is_none(),
        "the lease is given back"
    );
    assert_eq!(myna.queued(), 1);
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn failed_sends_back_off_and_online_retries_at_once() {
    let ns = ns("backoff");
    let mut fields = quiet(&ns, DEAD, &[snapshot(U1, &[("a", 1.0)])]);
    fields.retain(|(k, _)| *k != "flushIntervalMs");
    fields.push(("flushIntervalMs", 50.into()));
    let myna = connect(&fields).await;
    let syncs = Listener::on(&myna, "sync");
    myna.experiment(U1).unwrap().view("a").unwrap();
    for _ in 0..100 {
        if !syncs.all().is_empty() {
            break;
        }
        sleep(20).await;
    }
    assert_eq!(syncs.all().len(), 1, "the timer tried once");
    assert_eq!(get(&syncs.all()[0], "requeued").as_f64(), Some(1.0));
    // Ticks every 50 ms, but the next attempt waits at least 500 ms.
    sleep(400).await;
    assert_eq!(syncs.all().len(), 1, "no retry before the backoff delay");
    // Back online: the next tick tries at once.
    dispatch("online");
    for _ in 0..100 {
        if syncs.all().len() > 1 {
            break;
        }
        sleep(20).await;
    }
    assert_eq!(syncs.all().len(), 2, "online retries without waiting");
    assert_eq!(myna.queued(), 1);
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn events_whose_claims_lost_to_another_tab_are_dropped_before_they_leave() {
    let ns = ns("claims");
    let spy = BeaconSpy::install();
    let myna = connect(&quiet(
        &ns,
        "https://ab.example.com",
        &[snapshot(U1, &[("a", 0.5), ("b", 0.5)])],
    ))
    .await;
    let expt = myna.experiment(U1).unwrap();
    expt.suggest().unwrap();
    sleep(0).await; // the claim is written at the end of the task
    let key = format!("{ns}:s:{U1}");
    let mine = storage().get_item(&key).unwrap().unwrap();
    assert!(mine.contains(r#""c":[[1,"#), "{mine}");
    // Another tab drew at the same moment, and storage kept its write.
    storage()
        .set_item(&key, r#"{"v":"b","r":false,"c":[[1,7,0]]}"#)
        .unwrap();
    dispatch("pagehide");
    assert_eq!(
        spy.calls.borrow().len(),
        0,
        "the view that lost is not sent"
    );
    assert_eq!(myna.queued(), 0);
    // This tab now rewards the visitor's view (the other tab's)…
    dispatch("pageshow");
    assert!(expt.reward(None).unwrap());
    sleep(0).await;
    // …while a third tab's reward of it is what storage kept.
    storage()
        .set_item(&key, r#"{"v":"b","r":true,"c":[[1,7,99]]}"#)
        .unwrap();
    dispatch("pagehide");
    assert_eq!(
        spy.calls.borrow().len(),
        0,
        "the reward that lost is not sent"
    );
    assert_eq!(myna.queued(), 0);
    // Uncontested, a view is sent.
    expt.view("a").unwrap();
    dispatch("pagehide");
    assert_eq!(spy.calls.borrow().len(), 1);
    myna.close();
    drop(spy);
    clear(&ns);
}

#[wasm_bindgen_test]
async fn a_crashed_tabs_records_are_adopted_once_stale_each_event_once() {
    let ns = ns("crash");
    let snap = || snapshot(U1, &[("a", 0.5), ("b", 0.5)]);
    let page = connect(&quiet(&ns, DEAD, &[snap()])).await;
    let expt = page.experiment(U1).unwrap();
    for i in 0..5 {
        if i % 2 == 0 {
            expt.view("a").unwrap();
        } else {
            assert!(expt.reward(None).unwrap());
        }
        sleep(0).await;
        // What a reload now would find: every event so far, once.
        let stored = stored_batches(&ns);
        assert_eq!(stored.iter().map(|(_, e)| e.len()).sum::<usize>(), i + 1);
    }
    // The page crashes (no pagehide, nothing more written); 15 minutes on
    // (its base's heartbeat made old), the next page adopts its queue.
    let shape = |b: Vec<(String, Vec<JsValue>)>| -> Vec<(String, usize)> {
        b.into_iter().map(|(id, e)| (id, e.len())).collect()
    };
    let before = shape(stored_batches(&ns));
    let s = storage();
    let keys: Vec<String> = (0..s.length().unwrap())
        .filter_map(|i| s.key(i).unwrap())
        .filter(|k| k.starts_with(&format!("{ns}:t:")))
        .collect();
    assert!(keys.len() > 1, "a base and records: {keys:?}");
    for key in keys {
        let text = s.get_item(&key).unwrap().unwrap();
        let at = text.find(",\"r\"").unwrap();
        s.set_item(&key, &format!("{{\"t\":1{}", &text[at..]))
            .unwrap();
    }
    let next = connect(&quiet(&ns, DEAD, &[snap()])).await;
    let err = settle(next.flush()).await.unwrap_err();
    assert_myna_error(&err, "network", None);
    assert_eq!(next.queued(), 5, "every event, once");
    assert_eq!(
        shape(stored_batches(&ns)),
        before,
        "under the same batch ids"
    );
    assert_eq!(stored_queues(&ns).len(), 1, "the dead tab's keys are gone");
    next.close();
    page.close(); // (its listeners would hear the next tests' page events)
    clear(&ns);
}
