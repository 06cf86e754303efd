//! The delivery paths against the real myna-server (started by
//! scripts/with-server, which passes its address at compile time): POST and
//! JSONP end to end, a server that is down then back (nothing lost, nothing
//! doubled), a refused event (dropped with an event), a beacon replayed
//! harmlessly, loads by the read and search endpoints. Counts are checked
//! through the owner's read endpoint.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use js_sys::{Array, JSON};
use myna_wasm_sdk::Myna;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Options of a client of the real server (no timer flush unless asked).
fn live(ns: &str, root: &str, key: &str, transport: &str) -> Vec<(&'static str, JsValue)> {
    vec![
        ("apiRoot", root.into()),
        ("apiKey", key.into()),
        ("storageKey", ns.into()),
        ("transport", transport.into()),
        ("flushIntervalMs", 1e9.into()),
        ("batchSize", 1000.into()),
        ("timeoutMs", 5000.into()),
    ]
}

/// A fresh published experiment with variants a and b, and a fresh API key.
async fn setup(name: &str) -> (String, String) {
    (
        create_experiment(name, &["a", "b"]).await,
        create_api_key().await,
    )
}

async fn round_trip(transport: &str) {
    let ns = ns(transport);
    let (uuid, key) = setup(&format!("round trip {transport}")).await;
    // Loaded by the search endpoint (fetch, or JSONP), no snapshot.
    let myna = connect(&live(&ns, api_root(), &key, transport)).await;
    let expt = myna.experiment(&uuid).unwrap();
    let variant = expt.suggest().unwrap();
    let id = get(&variant, "id").as_string().unwrap();
    assert_eq!(
        get(&get(&variant, "settings"), "label").as_string(),
        Some(format!("{id}!")),
        "settings come from the server"
    );
    expt.suggest().unwrap();
    assert!(expt.reward(Some(0.5)).unwrap());
    let syncs = Listener::on(&myna, "sync");
    let counts = settle(myna.flush()).await.unwrap();
    assert_eq!(
        get(&counts, "sent").as_f64(),
        Some(2.0),
        "{}",
        describe(&counts)
    );
    assert_eq!(syncs.total("sent"), 2.0);
    assert_eq!(myna.queued(), 0);
    assert_eq!(jsonp_scripts(), 0);
    let by_variant = common::counts(&uuid).await;
    let mine = by_variant.iter().find(|(v, _, _)| *v == id).unwrap();
    assert_eq!((mine.1, mine.2), (1.0, 0.5), "{by_variant:?}");
    assert_eq!(totals(&uuid).await, (1.0, 0.5));
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn post_transport_records_exactly_what_the_page_did() {
    round_trip("post").await;
}

#[wasm_bindgen_test]
async fn jsonp_transport_records_exactly_what_the_page_did() {
    round_trip("jsonp").await;
}

#[wasm_bindgen_test]
async fn a_server_down_then_back_loses_nothing_and_doubles_nothing() {
    for transport in ["post", "jsonp"] {
        let ns = ns("down");
        let (uuid, key) = setup(&format!("down then back {transport}")).await;
        // A page loads the experiment, then the server is unreachable.
        let loader = connect(&live(&ns, api_root(), &key, transport)).await;
        let (status, form) = owner("GET", &format!("/v2/experiment/{uuid}"), None).await;
        assert_eq!(status, 200);
        loader.close();
        let mut down = live(&ns, down_root(), &key, transport);
        down.push(("experiments", [form].iter().collect::<Array>().into()));
        let page = connect(&down).await;
        let expt = page.experiment(&uuid).unwrap();
        expt.view("a").unwrap();
        expt.reward(None).unwrap();
        expt.view("b").unwrap();
        for _ in 0..3 {
            let err = settle(page.flush()).await.unwrap_err();
            assert_myna_error(&err, "network", None);
        }
        assert_eq!(page.queued(), 3);
        page.close(); // the visitor leaves; the next page finds the queue

        // The server is back: the next page sends it all, once.
        let back = connect(&live(&ns, api_root(), &key, transport)).await;
        let syncs = Listener::on(&back, "sync"); // before its first flush ends
        settle(back.flush()).await.unwrap();
        assert_eq!(syncs.total("sent"), 3.0, "{transport}");
        assert_eq!(back.queued(), 0);
        assert_eq!(totals(&uuid).await, (2.0, 1.0), "{transport}: nothing lost");
        // Sending again (as a retry after a lost answer would) changes nothing.
        let again = settle(back.flush()).await.unwrap();
        assert_eq!(get(&again, "sent").as_f64(), Some(0.0));
        assert_eq!(
            totals(&uuid).await,
            (2.0, 1.0),
            "{transport}: nothing doubled"
        );
        back.close();
        clear(&ns);
    }
}

#[wasm_bindgen_test]
async fn a_replayed_batch_is_counted_once() {
    let ns = ns("replay");
    let (uuid, key) = setup("replay").await;
    let myna = connect(&live(&ns, api_root(), &key, "post")).await;
    let expt = myna.experiment(&uuid).unwrap();
    expt.view("a").unwrap();
    expt.reward(None).unwrap();
    sleep(0).await;
    let (batch, events) = stored_batches(&ns).remove(0);
    assert_eq!(events.len(), 2);
    settle(myna.flush()).await.unwrap();
    assert_eq!(totals(&uuid).await, (1.0, 1.0));
    // The same body again (a beacon replayed after a confirmed send).
    let body = format!(
        r#"{{"batch":"{batch}","events":[{}]}}"#,
        events
            .iter()
            .map(|e| String::from(JSON::stringify(e).unwrap()))
            .collect::<Vec<_>>()
            .join(",")
    );
    let (status, _) = owner(
        "POST",
        &format!("/v2/experiment/{uuid}/record"),
        Some(&body),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        totals(&uuid).await,
        (1.0, 1.0),
        "acknowledged, not counted again"
    );
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn page_hide_beacons_and_the_later_flush_does_not_double() {
    let ns = ns("beacon");
    let (uuid, key) = setup("beacon").await;
    let myna = connect(&live(&ns, api_root(), &key, "post")).await;
    let expt = myna.experiment(&uuid).unwrap();
    expt.view("b").unwrap();
    expt.reward(Some(0.25)).unwrap();
    web_sys::window()
        .unwrap()
        .dispatch_event(&web_sys::Event::new("pagehide").unwrap())
        .unwrap();
    assert_eq!(myna.queued(), 2, "kept until a confirmed send");
    // The beacon arrives on its own (text/plain, apikey in the URL).
    let mut seen = (0.0, 0.0);
    for _ in 0..100 {
        seen = totals(&uuid).await;
        if seen == (1.0, 0.25) {
            break;
        }
        sleep(50).await;
    }
    assert_eq!(seen, (1.0, 0.25), "the beacon was recorded");
    let counts = settle(myna.flush()).await.unwrap();
    assert_eq!(
        get(&counts, "sent").as_f64(),
        Some(2.0),
        "confirmed by the server"
    );
    assert_eq!(myna.queued(), 0);
    assert_eq!(
        totals(&uuid).await,
        (1.0, 0.25),
        "the replay was not counted"
    );
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn a_refused_event_is_dropped_with_an_error_event() {
    let ns = ns("refused");
    let (uuid, key) = setup("refused").await;
    let (_, form) = owner("GET", &format!("/v2/experiment/{uuid}"), None).await;
    // The page's snapshot names a variant the server does not have.
    let variants = get(&form, "variants");
    js_sys::Reflect::set(
        &variants,
        &"ghost".into(),
        &json(r#"{"name":"ghost","weight":0.5}"#),
    )
    .unwrap();
    let mut fields = live(&ns, api_root(), &key, "post");
    fields.push(("experiments", [form].iter().collect::<Array>().into()));
    let myna = connect(&fields).await;
    let errors = Listener::on(&myna, "error");
    let syncs = Listener::on(&myna, "sync");
    myna.experiment(&uuid).unwrap().view("ghost").unwrap();
    let counts = settle(myna.flush()).await.unwrap();
    assert_eq!(get(&counts, "dropped").as_f64(), Some(1.0));
    assert_eq!(myna.queued(), 0, "not retried");
    assert_eq!(syncs.total("dropped"), 1.0);
    let errors = errors.all();
    assert_eq!(errors.len(), 1);
    assert_myna_error(&errors[0], "unknown-variant", Some("events[0].variant"));
    assert_eq!(get(&errors[0], "status").as_f64(), Some(400.0));
    assert_eq!(totals(&uuid).await, (0.0, 0.0));
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn load_reads_one_experiment_and_bad_keys_are_refused() {
    let ns = ns("load");
    let (uuid, key) = setup("load").await;
    for transport in ["post", "jsonp"] {
        let mut fields = live(&ns, api_root(), &key, transport);
        fields.push(("experiments", Array::new().into()));
        let myna = connect(&fields).await;
        assert_myna_error(
            &myna.experiment(&uuid).err().unwrap(),
            "unknown-experiment",
            None,
        );
        let expt = myna_wasm_sdk::Myna::load(&myna, &uuid);
        let expt = settle(expt).await.unwrap();
        assert_eq!(get(&expt, "uuid").as_string(), Some(uuid.clone()));
        assert!(myna.experiment(&uuid).is_ok(), "{transport}: loaded");
        let errors = Listener::on(&myna, "error");
        let missing = settle(myna.load("00000000-0000-4000-8000-000000000000")).await;
        assert_myna_error(&missing.unwrap_err(), "unknown-experiment", None);
        assert_eq!(
            errors.all().len(),
            1,
            "a failed load is also an error event"
        );
        myna.close();
    }
    let err = Myna::connect(options(&live(
        &ns,
        api_root(),
        "00000000-0000-4000-8000-000000000000",
        "post",
    )))
    .await
    .err()
    .unwrap();
    assert_myna_error(&err, "authentication", None);
    assert_eq!(get(&err, "status").as_f64(), Some(401.0));
    clear(&ns);
}

#[wasm_bindgen_test]
async fn a_queue_an_older_sdk_stored_is_delivered_after_the_upgrade_once() {
    let ns = ns("upgrade");
    let (uuid, key) = setup("upgrade mid-queue").await;
    // The page as the previous SDK version left it, going away: its whole
    // queue under `<ns>:q:<tab>`, released (one batch sealed, one not).
    let old = format!(
        r#"{{"t":{now},"r":true,"q":[
        {{"e":"{uuid}","s":true,"b":{{"batch":"5d9e8c1a-2b3c-4d5e-8f70-0a1b2c3d4e01","events":[
          {{"typename":"view","variant":"a","timestamp":{now}}},
          {{"typename":"reward","variant":"a","amount":0.5,"timestamp":{now}}}]}},"k":[[1,7],[1,7,9]]}},
        {{"e":"{uuid}","s":false,"b":{{"batch":"5d9e8c1a-2b3c-4d5e-8f70-0a1b2c3d4e02","events":[
          {{"typename":"view","variant":"b","timestamp":{now}}}]}}}}]}}"#,
        now = js_sys::Date::now()
    );
    storage().set_item(&format!("{ns}:q:oldtab"), &old).unwrap();
    // The upgraded page sends it, under its batch ids.
    let page = connect(&live(&ns, api_root(), &key, "post")).await;
    let syncs = Listener::on(&page, "sync");
    settle(page.flush()).await.unwrap();
    assert_eq!(syncs.total("sent"), 3.0);
    assert_eq!(totals(&uuid).await, (2.0, 0.5), "nothing lost");
    assert!(
        storage()
            .get_item(&format!("{ns}:q:oldtab"))
            .unwrap()
            .is_none()
    );
    assert!(stored_queues(&ns).is_empty());
    page.close();
    // Sent again (another tab of the old version, a beacon): counted once.
    storage().set_item(&format!("{ns}:q:oldtab"), &old).unwrap();
    let again = connect(&live(&ns, api_root(), &key, "post")).await;
    settle(again.flush()).await.unwrap();
    assert_eq!(totals(&uuid).await, (2.0, 0.5), "nothing doubled");
    again.close();
    clear(&ns);
}
