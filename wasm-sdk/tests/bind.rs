//! Deployments in real Chromium without a server: the deployment form (an
//! experiment `id`, variants as an array) as `Myna.connect`'s experiments,
//! lookup by id, and `myna.bind`, the declarative binding of page markup
//! (show and hide, bindings, redirects, click and load goals, stickiness).
//! Run by `wasm-pack test --headless --chrome` (scripts/test-sdk).
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use js_sys::{Array, Function, Object};
use myna_wasm_sdk::Myna;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const U2: &str = "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a22";

/// An experiment as a deployment lists it: `id`, variants an array of
/// `(id, weight, settings JSON)`.
fn deployed(uuid: &str, id: &str, settings: &str, variants: &[(&str, f64, &str)]) -> String {
    let variants: Vec<String> = variants
        .iter()
        .map(|(v, w, s)| {
            format!(
                r#"{{"typename":"variant","id":"{v}","name":"Variant {v}","weight":{w},"settings":{s}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"typename":"experiment","uuid":"{uuid}","id":"{id}","name":"Hero banner","settings":{settings},"variants":[{}]}}"#,
        variants.join(",")
    )
}

/// The deployment form holding these experiments.
fn deployment(experiments: &[String]) -> JsValue {
    json(&format!(
        r#"{{"typename":"deployment","uuid":"k","apiKey":"k","apiRoot":"{DEAD}","latest":"{DEAD}/v2/deployment/k/myna.json","experiments":[{}]}}"#,
        experiments.join(",")
    ))
}

/// The hero experiment: `b` always drawn; its settings nested and flat.
fn hero() -> String {
    deployed(
        U1,
        "hero",
        "{}",
        &[
            ("a", 0.0, r#"{"title":"Hi","big":false}"#),
            (
                "b",
                1.0,
                r#"{"title":"Hello","big":true,"small":0,"look":"loud wide","body":"<b>bold</b>","copy":{"deep":"Deep"},"copy.flat":"Flat","obj":{"x":1},"js":" JavaScript:alert(1)","mail":"mailto:a@example.com"}"#,
            ),
        ],
    )
}

/// Quiet options (no sends) whose experiments are `experiments`.
fn with(ns: &str, experiments: JsValue) -> Vec<(&'static str, JsValue)> {
    let mut fields = quiet(ns, DEAD, &[]);
    fields.retain(|(k, _)| *k != "experiments");
    fields.push(("experiments", experiments));
    fields
}

/// A container in the document with this markup; removed on drop.
struct Page(web_sys::Element);

impl Page {
    fn new(html: &str) -> Page {
        let document = web_sys::window().unwrap().document().unwrap();
        let root = document.create_element("div").unwrap();
        root.set_inner_html(html);
        document
            .document_element()
            .unwrap()
            .append_child(&root)
            .unwrap();
        Page(root)
    }

    fn root(&self) -> JsValue {
        self.0.clone().into()
    }

    fn el(&self, id: &str) -> web_sys::Element {
        self.0
            .query_selector(&format!("#{id}"))
            .unwrap()
            .unwrap_or_else(|| panic!("no #{id}"))
    }

    /// Whether the element is not displayed, whatever the reason (the
    /// binding, the `hidden` attribute, the page's CSS).
    fn hidden(&self, id: &str) -> bool {
        let window: JsValue = web_sys::window().unwrap().into();
        let style = get(&window, "getComputedStyle")
            .unchecked_into::<Function>()
            .call1(&window, &self.el(id).into())
            .unwrap();
        get(&style, "display").as_string().as_deref() == Some("none")
    }

    fn click(&self, id: &str) {
        let el: JsValue = self.el(id).into();
        get(&el, "click")
            .unchecked_into::<Function>()
            .call0(&el)
            .unwrap();
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// Binds `root`; the variants shown by experiment id, and every URL the
/// binding navigated to.
fn bind(myna: &Myna, root: &JsValue) -> (JsValue, Vec<String>) {
    let urls = Rc::new(RefCell::new(Vec::new()));
    let sink = urls.clone();
    let navigate = Closure::<dyn FnMut(String)>::new(move |url| sink.borrow_mut().push(url));
    let shown = myna.bind(root, &options(&[("navigate", navigate.as_ref().clone())]));
    let urls = urls.borrow().clone();
    (shown, urls)
}

fn shown_id(shown: &JsValue, experiment: &str) -> Option<String> {
    get(&get(shown, experiment), "id").as_string()
}

/// Every stored event's typename and variant (and amount), in order.
async fn events(ns: &str) -> Vec<String> {
    sleep(0).await; // the queue is written in a microtask
    stored_batches(ns)
        .into_iter()
        .flat_map(|(_, events)| events)
        .map(|e| {
            let mut text = format!(
                "{} {}",
                get(&e, "typename").as_string().unwrap(),
                get(&e, "variant").as_string().unwrap()
            );
            if let Some(amount) = get(&e, "amount").as_f64() {
                text.push_str(&format!(" {amount}"));
            }
            text
        })
        .collect()
}

#[wasm_bindgen_test]
async fn a_deployment_form_is_accepted_and_experiments_are_found_by_id() {
    let ns = ns("deploy");
    let myna = connect(&with(&ns, deployment(&[hero()]))).await;
    let expt = myna.experiment("hero").unwrap();
    assert_eq!(expt.uuid(), U1);
    assert_eq!(expt.id().as_deref(), Some("hero"));
    assert_eq!(myna.experiment(U1).unwrap().id().as_deref(), Some("hero"));
    assert_myna_error(
        &myna.experiment("villain").err().unwrap(),
        "unknown-experiment",
        None,
    );
    let variants = expt.variants().unwrap();
    let ids: Vec<String> = variants
        .iter()
        .map(|v| get(&v, "id").as_string().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(
        get(&variants.get(1), "name").as_string().as_deref(),
        Some("Variant b")
    );
    let variant = expt.suggest().unwrap();
    assert_eq!(get(&variant, "id").as_string().as_deref(), Some("b"));
    assert_eq!(
        get(&get(&variant, "settings"), "title")
            .as_string()
            .as_deref(),
        Some("Hello")
    );
    let all = myna.experiments();
    assert_eq!(
        Object::keys(all.unchecked_ref::<Object>()).to_vec(),
        vec![JsValue::from("hero")]
    );
    myna.close();

    // The deployment's experiments alone, and a read form (variants by id,
    // no id: found by uuid only, listed by uuid).
    let list = get(&deployment(&[hero()]), "experiments");
    let myna = connect(&with(&ns, list)).await;
    assert_eq!(myna.experiment("hero").unwrap().uuid(), U1);
    myna.close();
    let read = [snapshot(U2, &[("a", 1.0)])].iter().collect::<Array>();
    let myna = connect(&with(&ns, read.into())).await;
    let expt = myna.experiment(U2).unwrap();
    assert_eq!(expt.id(), None);
    assert!(get(&myna.experiments(), U2).is_object());
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn bad_deployment_shapes_are_refused_with_a_path() {
    let ns = ns("deploy-bad");
    let refused = |experiments: JsValue| {
        let fields = with(&ns, experiments);
        async move { Myna::connect(options(&fields)).await.err().unwrap() }
    };
    let no_id = deployed(U1, "hero", "{}", &[("a", 1.0, "{}")]).replace(r#""id":"a","#, "");
    let err = refused(deployment(&[hero(), no_id])).await;
    assert_myna_error(
        &err,
        "invalid-type",
        Some("experiments.experiments[1].variants[0].id"),
    );
    let twice = deployed(U1, "hero", "{}", &[("a", 0.5, "{}"), ("a", 0.5, "{}")]);
    let err = refused(deployment(&[twice])).await;
    assert_myna_error(
        &err,
        "invalid-type",
        Some("experiments.experiments[0].variants[1].id"),
    );
    let weightless = deployed(U1, "hero", "{}", &[("a", 1.0, "{}")]).replace(r#""weight":1,"#, "");
    let list = get(&deployment(&[weightless]), "experiments");
    let err = refused(list).await;
    assert_myna_error(
        &err,
        "invalid-type",
        Some("experiments[0].variants[0].weight"),
    );
    let numbered =
        deployed(U1, "hero", "{}", &[("a", 1.0, "{}")]).replace(r#""id":"hero""#, r#""id":7"#);
    let err = refused(deployment(&[numbered])).await;
    assert_myna_error(&err, "invalid-type", Some("experiments.experiments[0].id"));
    let err = refused(json(r#"{"typename":"deployment","experiments":{}}"#)).await;
    assert_myna_error(&err, "invalid-type", Some("experiments"));
    let flat = deployed(U1, "hero", "{}", &[("a", 1.0, "{}")])
        .replace(r#""variants":["#, r#""variants":7,"x":["#);
    let err = refused(deployment(&[flat])).await;
    assert_myna_error(
        &err,
        "invalid-type",
        Some("experiments.experiments[0].variants"),
    );
    clear(&ns);
}

#[wasm_bindgen_test]
async fn bind_shows_hides_and_fills_in_the_chosen_variant_once() {
    let ns = ns("bind");
    let page = Page::new(
        r#"
        <style>.btn { display: inline-block }</style>
        <p class="myna-hero" data-show="a" id="show-a" style="display: flex">A</p>
        <p class="myna-hero" data-show="b" id="show-b">B</p>
        <span class="myna-hero btn" data-show="a" id="styled-a">A, styled</span>
        <span class="myna-hero" data-bind="text" id="bare">x</span>
        <span class="myna-hero" data-bind="text=" id="bare-empty">x</span>
        <p class="myna-hero" data-show="big" id="show-big">big</p>
        <p class="myna-hero" data-show="small" id="show-small">small</p>
        <p class="myna-hero" data-hide="b" id="hide-b">not b</p>
        <p class="myna-hero" data-show="b" id="pre" hidden>hidden in markup</p>
        <h1 class="myna-hero" data-bind="text=title, class=look @title=name @data-v=id" id="t">x</h1>
        <div class="myna-hero" data-bind="html=body" id="h"></div>
        <p class="myna-hero" data-bind="text=copy.deep" id="deep"></p>
        <p class="myna-hero" data-bind="text=copy.flat" id="flat"></p>
        <p class="myna-hero" data-bind="text=obj,text=nothing" id="kept">kept</p>
        <a class="myna-hero" data-bind="@onclick=title @href=title" id="link"></a>
        <a class="myna-hero" data-bind="@href=js @title=js" href="/as-written" id="js"></a>
        <a class="myna-hero" data-bind="@HREF=mail @srcdoc=title" id="mail"></a>
        <svg><a><animate class="myna-hero" attributeName="href" data-bind="@values=js @to=js @from=title" id="anim"></animate></a></svg>
        <p class="myna-other" data-show="a" id="other">not this experiment's</p>
        "#,
    );
    let myna = connect(&with(&ns, deployment(&[hero()]))).await;
    let (shown, urls) = bind(&myna, &page.root());
    assert_eq!(shown_id(&shown, "hero").as_deref(), Some("b"));
    assert!(urls.is_empty());
    assert!(page.hidden("show-a"));
    assert!(!page.hidden("show-b"));
    assert!(
        page.hidden("styled-a"),
        "hidden although the page's CSS gives it a display"
    );
    assert_eq!(
        page.el("bare").text_content().as_deref(),
        Some("Variant b"),
        "a bare `text` is the variant's name, as in myna-html"
    );
    assert_eq!(
        page.el("bare-empty").text_content().as_deref(),
        Some("Variant b"),
        "so is `text=`"
    );
    assert!(!page.hidden("show-big"), "setting `big` is true");
    assert!(page.hidden("show-small"), "setting `small` is 0");
    assert!(page.hidden("hide-b"));
    assert!(
        !page.hidden("pre"),
        "written hidden (for pages without JavaScript), shown when its variant is, \
         as myna-html's jQuery `show()` did"
    );
    assert!(!page.hidden("other"));
    let t = page.el("t");
    assert_eq!(t.text_content().as_deref(), Some("Hello"));
    assert_eq!(t.class_name(), "myna-hero loud wide");
    assert_eq!(t.get_attribute("title").as_deref(), Some("Variant b"));
    assert_eq!(t.get_attribute("data-v").as_deref(), Some("b"));
    assert_eq!(page.el("h").inner_html(), "<b>bold</b>");
    assert_eq!(page.el("deep").text_content().as_deref(), Some("Deep"));
    assert_eq!(page.el("flat").text_content().as_deref(), Some("Flat"));
    assert_eq!(page.el("kept").text_content().as_deref(), Some("kept"));
    let link = page.el("link");
    assert_eq!(
        link.get_attribute("onclick"),
        None,
        "never an event handler"
    );
    assert_eq!(link.get_attribute("href").as_deref(), Some("Hello"));
    // A URL attribute never takes a script URL (any case, leading space);
    // other attributes take the text as it is.
    let js = page.el("js");
    assert_eq!(js.get_attribute("href").as_deref(), Some("/as-written"));
    assert_eq!(
        js.get_attribute("title").as_deref(),
        Some(" JavaScript:alert(1)")
    );
    let mail = page.el("mail");
    assert_eq!(
        mail.get_attribute("href").as_deref(),
        Some("mailto:a@example.com")
    );
    assert_eq!(mail.get_attribute("srcdoc"), None, "never srcdoc");
    // An SVG animation's values could set its parent's `href` to a script
    // URL: none of its attributes comes from settings.
    let anim = page.el("anim");
    assert_eq!(anim.local_name(), "animate");
    for name in ["values", "to", "from"] {
        assert_eq!(anim.get_attribute(name), None, "an animation's {name}");
    }
    assert_eq!(events(&ns).await, ["view b"]);

    // Again: the same variant, no second view.
    let (again, _) = bind(&myna, &page.root());
    assert_eq!(shown_id(&again, "hero").as_deref(), Some("b"));
    assert_eq!(myna.queued(), 1);
    // The next page (a new client): sticky, no view.
    let next = connect(&with(&ns, deployment(&[hero()]))).await;
    let (shown, _) = bind(&next, &page.root());
    assert_eq!(shown_id(&shown, "hero").as_deref(), Some("b"));
    assert_eq!(next.queued(), 0);
    // Another variant: what the binding hid shows again, and only that.
    next.experiment("hero").unwrap().view("a").unwrap();
    bind(&next, &page.root());
    assert!(!page.hidden("show-a"));
    assert_eq!(
        page.el("show-a").get_attribute("style").as_deref(),
        Some("display: flex;"),
        "its own inline display is back"
    );
    assert!(!page.hidden("styled-a"));
    assert!(page.hidden("show-b"));
    assert!(!page.hidden("hide-b"));
    assert!(page.hidden("pre"));
    assert_eq!(page.el("t").text_content().as_deref(), Some("Hi"));
    myna.close();
    next.close();
    clear(&ns);
}

/// Sets the page's URL fragment (no navigation).
fn set_hash(hash: &str) {
    let location = get(&web_sys::window().unwrap().into(), "location");
    js_sys::Reflect::set(&location, &"hash".into(), &hash.into()).unwrap();
}

#[wasm_bindgen_test]
async fn a_preview_link_shows_the_variant_it_names() {
    let page = Page::new(
        r#"
        <p class="myna-hero" data-show="a" id="show-a">A</p>
        <p class="myna-hero" data-show="b" id="show-b">B</p>
        "#,
    );
    // `b` is always drawn; the link asks for `a` (other experiments'
    // entries and malformed ones are passed over).
    let linked = ns("preview");
    set_hash("#other=x&%E0%A4%A=y&hero=a");
    let myna = connect(&with(&linked, deployment(&[hero()]))).await;
    let (shown, _) = bind(&myna, &page.root());
    // Bound again (a single-page app re-rendering) with the link still
    // in the URL: the same variant, and still the one view.
    let (again, _) = bind(&myna, &page.root());
    set_hash("");
    assert_eq!(shown_id(&shown, "hero").as_deref(), Some("a"));
    assert_eq!(shown_id(&again, "hero").as_deref(), Some("a"));
    assert!(!page.hidden("show-a"));
    assert!(page.hidden("show-b"));
    assert_eq!(events(&linked).await, ["view a"]);
    // Sticky: the next page without the link shows `a` again, no view.
    let next = connect(&with(&linked, deployment(&[hero()]))).await;
    let (again, _) = bind(&next, &page.root());
    assert_eq!(shown_id(&again, "hero").as_deref(), Some("a"));
    assert_eq!(next.queued(), 0);
    myna.close();
    next.close();
    clear(&linked);

    // A variant the experiment does not have asks for nothing.
    let unknown = ns("preview-unknown");
    set_hash("#hero=zz");
    let myna = connect(&with(&unknown, deployment(&[hero()]))).await;
    let (shown, _) = bind(&myna, &page.root());
    set_hash("");
    assert_eq!(shown_id(&shown, "hero").as_deref(), Some("b"));
    assert_eq!(events(&unknown).await, ["view b"]);
    myna.close();
    clear(&unknown);
}

#[wasm_bindgen_test]
async fn preview_mode_shows_the_named_or_first_variant_and_counts_nothing() {
    let page = Page::new(
        r#"
        <p class="myna-hero" data-show="a" id="show-a">A</p>
        <p class="myna-hero" data-show="b" id="show-b">B</p>
        <button class="myna-hero" data-goal="click" id="goal">Buy</button>
        "#,
    );
    let ns = ns("preview-mode");
    // `b` is always drawn; preview mode shows the first, `a`.
    set_hash("#preview");
    let myna = connect(&with(&ns, deployment(&[hero()]))).await;
    let (shown, _) = bind(&myna, &page.root());
    assert_eq!(shown_id(&shown, "hero").as_deref(), Some("a"));
    assert!(!page.hidden("show-a"));
    assert!(page.hidden("show-b"));
    page.click("goal");
    // Named by the fragment: shown, still nothing counted.
    set_hash("#preview&hero=b");
    let (shown, _) = bind(&myna, &page.root());
    set_hash("");
    assert_eq!(shown_id(&shown, "hero").as_deref(), Some("b"));
    assert!(page.hidden("show-a"));
    assert!(events(&ns).await.is_empty(), "no view, no reward");
    // Nothing stuck: the next page draws as usual (and counts that view).
    let next = connect(&with(&ns, deployment(&[hero()]))).await;
    let (shown, _) = bind(&next, &page.root());
    assert_eq!(shown_id(&shown, "hero").as_deref(), Some("b"));
    assert_eq!(events(&ns).await, ["view b"]);
    myna.close();
    next.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn redirects_go_only_to_http_or_relative_urls() {
    let ns = ns("redirect");
    let go = deployed(
        U1,
        "go",
        "{}",
        &[(
            "a",
            1.0,
            r#"{"rel":"/next?x=1","abs":"https://example.com/landing","js":"javascript:alert(1)","sneaky":" Java\tScript:alert(1)","data":"data:text/html,hi","empty":"","num":7}"#,
        )],
    );
    let page = Page::new(
        r#"
        <i class="myna-go" data-redirect="js"></i>
        <i class="myna-go" data-redirect="sneaky"></i>
        <i class="myna-go" data-redirect="data"></i>
        <i class="myna-go" data-redirect="empty"></i>
        <i class="myna-go" data-redirect="num"></i>
        <i class="myna-go" data-redirect="missing"></i>
        <i class="myna-go" data-redirect="rel"></i>
        <i class="myna-go" data-redirect="abs"></i>
        "#,
    );
    let myna = connect(&with(&ns, deployment(&[go]))).await;
    let (_, urls) = bind(&myna, &page.root());
    let origin = get(&get(&js_sys::global(), "location"), "origin")
        .as_string()
        .unwrap();
    assert_eq!(
        urls,
        [
            format!("{origin}/next?x=1"),
            "https://example.com/landing".into()
        ]
    );
    assert_eq!(events(&ns).await, ["view a"], "a redirect is a view");
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn a_click_goal_rewards_each_view_once() {
    let ns = ns("click");
    let page = Page::new(
        r#"<p class="myna-hero" data-show="b" id="s">B</p>
        <button class="myna-hero" data-goal="click" id="buy">Buy</button>"#,
    );
    let myna = connect(&with(&ns, deployment(&[hero()]))).await;
    bind(&myna, &page.root());
    bind(&myna, &page.root()); // no second listener
    page.click("buy");
    page.click("buy");
    assert_eq!(events(&ns).await, ["view b", "reward b 1"]);
    myna.experiment("hero").unwrap().view("b").unwrap();
    page.click("buy");
    assert_eq!(
        events(&ns).await,
        ["view b", "reward b 1", "view b", "reward b 1"]
    );
    myna.close();
    clear(&ns);

    // A page with only the goal: not shown, and a click of a visitor who
    // never saw the experiment rewards nothing.
    let ns = common::ns("click-only");
    let page = Page::new(r#"<button class="myna-hero" data-goal="click" id="buy">Buy</button>"#);
    let myna = connect(&with(&ns, deployment(&[hero()]))).await;
    let errors = Listener::on(&myna, "error");
    let (shown, _) = bind(&myna, &page.root());
    assert!(get(&shown, "hero").is_undefined());
    page.click("buy");
    assert_eq!(myna.queued(), 0);
    assert!(errors.all().is_empty());
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn a_load_goal_rewards_only_a_visitor_who_saw_the_experiment() {
    let ns = ns("load");
    let goal = r#"<div class="myna-hero" data-goal="load"></div>"#;
    // The goal page first: nothing seen, nothing recorded.
    let page = Page::new(goal);
    let first = connect(&with(&ns, deployment(&[hero()]))).await;
    let (shown, _) = bind(&first, &page.root());
    assert!(get(&shown, "hero").is_undefined());
    assert_eq!(first.queued(), 0);
    first.close();
    drop(page);
    // The landing page shows it…
    let page = Page::new(r#"<p class="myna-hero" data-show="b">B</p>"#);
    let landing = connect(&with(&ns, deployment(&[hero()]))).await;
    bind(&landing, &page.root());
    landing.close();
    drop(page);
    // …so the goal page rewards that view, once.
    let page = Page::new(goal);
    let thanks = connect(&with(&ns, deployment(&[hero()]))).await;
    bind(&thanks, &page.root());
    bind(&thanks, &page.root());
    // Counted in all the pages' queues, not by `thanks.queued()`, which
    // counts the landing page's view too once it adopts it (a next task,
    // which a loaded machine may run before this line).
    let mut all = events(&ns).await;
    all.sort();
    assert_eq!(all, ["reward b 1", "view b"], "two binds, one reward");
    thanks.close();
    let reload = connect(&with(&ns, deployment(&[hero()]))).await;
    bind(&reload, &page.root());
    // A reload rewards nothing more: still one view and one reward in all
    // the pages' queues (stored in no particular order). Not the reload's
    // `queued`, which counts the closed pages' events once it adopts them
    // (a next task, which a loaded machine may run before this line).
    let mut all = events(&ns).await;
    all.sort();
    assert_eq!(
        all,
        ["reward b 1", "view b"],
        "a reload rewards nothing more"
    );
    reload.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn the_css_class_setting_names_the_elements() {
    let ns = ns("css");
    let nested = deployed(
        U1,
        "hero",
        r#"{"myna":{"html":{"cssClass":"promo"}}}"#,
        &[("a", 1.0, "{}")],
    );
    let flat = deployed(
        U2,
        "side",
        r#"{"myna.html.cssClass":"flat-promo"}"#,
        &[("b", 1.0, "{}")],
    );
    let page = Page::new(
        r#"<p class="promo" data-show="a" id="nested">A</p>
        <p class="flat-promo" data-show="a" id="flat">A</p>
        <p class="myna-hero" data-show="b" id="plain">B</p>"#,
    );
    let myna = connect(&with(&ns, deployment(&[nested, flat]))).await;
    let (shown, _) = bind(&myna, &page.root());
    assert_eq!(shown_id(&shown, "hero").as_deref(), Some("a"));
    assert_eq!(shown_id(&shown, "side").as_deref(), Some("b"));
    assert!(!page.hidden("nested"));
    assert!(page.hidden("flat"), "`side` drew b");
    assert!(
        !page.hidden("plain"),
        "myna-hero is not hero's class any more"
    );
    assert_eq!(myna.queued(), 2);
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn an_answer_without_an_id_keeps_the_experiments_id() {
    // A server answering the record with a read form that has no `id`
    // (through the JSONP callback, from a data: URL).
    let form = format!(
        r#"{{"typename":"experiment","subtype":"summary","uuid":"{U1}","name":"Hero banner","visibility":"published","variants":{{"a":{{"name":"a","weight":1}},"b":{{"name":"b","weight":0}}}}}}"#
    );
    let js = format!("__mynaJsonp[Object.keys(__mynaJsonp).pop()]({form})//");
    let root = format!(
        "data:text/javascript,{}",
        String::from(js_sys::encode_uri_component(&js))
    );
    let ns = ns("keep-id");
    let mut fields = with(&ns, deployment(&[hero()]));
    fields[0] = ("apiRoot", root.into());
    fields.push(("transport", "jsonp".into()));
    let myna = connect(&fields).await;
    myna.experiment("hero").unwrap().suggest().unwrap();
    settle(myna.flush()).await.unwrap();
    let expt = myna.experiment("hero").unwrap();
    assert_eq!(expt.id().as_deref(), Some("hero"));
    expt.unstick();
    assert_eq!(
        get(&expt.suggest().unwrap(), "id").as_string().as_deref(),
        Some("a"),
        "the answer's weights are used"
    );
    myna.close();
    clear(&ns);
}

#[wasm_bindgen_test]
async fn a_binding_that_would_fail_leaves_its_experiment_as_written_and_uncounted() {
    let ns = ns("bind-fails");
    // An attribute name no element takes (`a/b`) on one element, after
    // elements that would bind; another experiment beside it.
    let other = deployed(U2, "other", "{}", &[("x", 1.0, r#"{"label":"X"}"#)]);
    let page = Page::new(
        r#"
        <p class="myna-hero" data-show="a" id="show-a">A</p>
        <h1 class="myna-hero" data-bind="text=title" id="title">Welcome</h1>
        <a class="myna-hero" data-bind="@a/b=title" id="bad">link</a>
        <span class="myna-other" data-bind="text=label" id="label">label</span>
        "#,
    );
    let myna = connect(&with(&ns, deployment(&[hero(), other]))).await;
    let errors = Listener::on(&myna, "error");
    let (shown, _) = bind(&myna, &page.root());
    assert_eq!(shown_id(&shown, "hero"), None, "not shown");
    assert!(!page.hidden("show-a"), "as written");
    assert_eq!(
        page.el("title").text_content().as_deref(),
        Some("Welcome"),
        "nothing half-applied"
    );
    let errors = errors.all();
    assert_eq!(errors.len(), 1);
    assert_myna_error(&errors[0], "invalid-value", None);
    let message = get(&errors[0], "message").as_string().unwrap();
    assert!(message.contains("experiment hero"), "{message}");
    // The other experiment is bound, and only its view is counted.
    assert_eq!(page.el("label").text_content().as_deref(), Some("X"));
    assert_eq!(events(&ns).await, ["view x"]);
    myna.close();
    clear(&ns);
}
