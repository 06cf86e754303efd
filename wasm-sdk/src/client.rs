//! The client behind `Myna`: loaded experiments, the visitor's decisions, the
//! queue, its persistence and its delivery. Decisions and bounds are
//! [`crate::sticky`] and [`crate::queue`] (pure); answers are judged by
//! [`crate::retry`]; bytes travel by [`crate::transport`].
//!
//! Storage protocol (several tabs share one localStorage): each client keeps
//! its own queue under `<ns>:q:<tab>`, rewritten whenever it changes (in a
//! microtask, so a burst of events costs one write) and at every tick as a
//! heartbeat. When its page is hidden or closed a client beacons everything,
//! seals its batches and marks its queue *released*; a flushing tab (holding
//! the flush lock) adopts released queues, and queues whose heartbeat is older
//! than [`STALE_MS`] (a crashed tab). Adopted batches keep their ids, so a
//! batch sent by two tabs is still counted once.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Object, Promise, Reflect};
use myna_core::event::{Event, new_event};
use myna_core::{Code, Problem};
use uuid::Uuid;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise, spawn_local};
use web_sys::{EventTarget, VisibilityState};

use crate::error;
use crate::experiment::{Loaded, get};
use crate::lock;
use crate::options::{Options, Transport};
use crate::queue::{Batch, Bounds, Queue, unit_id};
use crate::retry::{self, Fate};
use crate::sticky::{self, Sticky, Suggestion};
use crate::storage::{Store, WriteError, keys, read_stored};
use crate::transport::{self, Answer, Verdict, url};

#[wasm_bindgen(typescript_custom_section)]
const CLIENT_TS: &str = r#"
/** What a flush did: events the server confirmed, refused for good, or kept to retry. */
export interface SyncEvent {
  /** Events the server confirmed. */
  sent: number;
  /** Events dropped: refused by the server (4xx) or pushed out of a full queue. */
  dropped: number;
  /** Events still queued after a failed attempt (retried with backoff). */
  requeued: number;
}

/** A listener of `myna.on("sync", …)` or `myna.on("error", …)`. */
export type MynaListener = ((event: SyncEvent) => void) | ((error: MynaError) => void);
"#;

/// A queue whose owner has shown no sign of life this long (ms) may be adopted.
pub const STALE_MS: f64 = 15.0 * 60_000.0;
/// Look for queues left by other tabs every this many ticks.
const ORPHAN_TICKS: u32 = 10;
/// Experiments asked for per search call.
const SEARCH_PAGE: usize = 100;

/// The client state shared by `Myna` and its `Experiment` handles.
pub struct Client {
    /// The checked options.
    pub opts: Options,
    tab: String,
    store: Rc<Store>,
    state: RefCell<State>,
    listeners: RefCell<Vec<(String, Function)>>,
    /// The visitor's sticky states read so far (a localStorage read and parse
    /// cost microseconds); cleared when another tab changes storage.
    stickies: RefCell<Vec<(String, Sticky)>>,
    /// The last flush: flushes run one after another.
    chain: RefCell<Option<Promise>>,
    hooks: RefCell<Hooks>,
}

struct State {
    experiments: Vec<Loaded>,
    queue: Queue,
    /// Failed attempts in a row.
    attempt: u32,
    /// No automatic flush before this time (epoch ms).
    retry_at: f64,
    persist_pending: bool,
    /// Flushes queued or running.
    runs: u32,
    released: bool,
    closed: bool,
    /// Storage refused even our newest batch: we run from memory.
    memory_only: bool,
    /// When our queue was last written (epoch ms).
    beat: f64,
    ticks: u32,
}

/// A page listener: its target, its event and the closure to remove.
type Listening = (EventTarget, &'static str, Closure<dyn FnMut()>);

#[derive(Default)]
struct Hooks {
    interval: Option<(i32, Closure<dyn FnMut()>)>,
    events: Vec<Listening>,
}

/// A fresh random (v4) uuid from `crypto.getRandomValues`.
pub fn random_uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A number as the browser writes it (JSON's form for finite numbers).
pub fn js_number(x: f64) -> String {
    js_sys::Number::from(x)
        .to_string_with_radix(10)
        .map(String::from)
        .unwrap_or_default()
}

fn now() -> f64 {
    js_sys::Date::now()
}

fn unknown(_uuid: &str) -> JsValue {
    // Core's message without its JSON data (which would bring serde_json's
    // maps into the wasm); the uuid is the caller's own argument.
    error::new(
        Code::UnknownExperiment,
        None,
        "There is no such experiment.",
    )
}

impl Client {
    /// A client with no experiments yet; nothing runs until [`Client::start`].
    pub fn new(opts: Options) -> Rc<Client> {
        let capacity = match opts.transport {
            Transport::Post => opts.batch_size,
            Transport::Jsonp => 1,
        };
        Rc::new(Client {
            tab: random_uuid()
                .simple()
                .encode_lower(&mut Uuid::encode_buffer())
                .to_owned(),
            store: Rc::new(Store::new(&opts.storage_key)),
            state: RefCell::new(State {
                experiments: Vec::new(),
                queue: Queue::new(capacity, js_number),
                attempt: 0,
                retry_at: 0.0,
                persist_pending: false,
                runs: 0,
                released: false,
                closed: false,
                memory_only: false,
                beat: now(),
                ticks: 0,
            }),
            listeners: RefCell::new(Vec::new()),
            stickies: RefCell::new(Vec::new()),
            chain: RefCell::new(None),
            hooks: RefCell::new(Hooks::default()),
            opts,
        })
    }

    /// Loads the experiments (snapshots, else the search endpoint), then
    /// starts the timer and the page listeners, and sends what earlier pages
    /// left queued.
    pub async fn start(self: &Rc<Self>) -> Result<(), JsValue> {
        match self.opts.experiments.clone() {
            Some(list) => {
                for (i, form) in list.iter().enumerate() {
                    let loaded = Loaded::from_js(form).map_err(|mut p| {
                        for m in &mut p.messages {
                            m.path = Some(["experiments[", &i.to_string(), "]"].concat());
                        }
                        error::to_js(&p, false)
                    })?;
                    self.insert(loaded);
                }
            }
            None => self.load_all().await?,
        }
        self.install();
        if !self
            .store
            .keys(&keys::queue_prefix(&self.store.ns))
            .is_empty()
        {
            self.background_flush();
        }
        Ok(())
    }

    async fn load_all(&self) -> Result<(), JsValue> {
        let mut skip = 0;
        loop {
            let url = url::search(&self.opts.api_root, SEARCH_PAGE, skip);
            let body = self.get_json(&url).await?;
            let results = get(&body, "results");
            let results = if Array::is_array(&results) {
                Array::from(&results)
            } else {
                Array::new()
            };
            for form in results.iter() {
                let loaded = Loaded::from_js(form).map_err(|p| error::to_js(&p, true))?;
                self.insert(loaded);
            }
            if (results.length() as usize) < SEARCH_PAGE {
                return Ok(());
            }
            skip += SEARCH_PAGE;
        }
    }

    /// Loads one experiment afresh (read endpoint); a failure is also emitted
    /// as an `error` event.
    pub async fn load(self: &Rc<Self>, uuid: &str) -> Result<(), JsValue> {
        let result = async {
            let body = self
                .get_json(&url::experiment(&self.opts.api_root, uuid))
                .await?;
            Loaded::from_js(body).map_err(|p| error::to_js(&p, true))
        }
        .await;
        match result {
            Ok(loaded) => {
                self.insert(loaded);
                Ok(())
            }
            Err(e) => {
                self.emit("error", &e);
                Err(e)
            }
        }
    }

    /// A GET answered with JSON: by fetch (API key header) or JSONP (`apikey` parameter).
    async fn get_json(&self, url: &str) -> Result<JsValue, JsValue> {
        let answer = match self.opts.transport {
            Transport::Post => {
                let auth = ["ApiKey ", &self.opts.api_key].concat();
                transport::fetch("GET", url, Some(&auth), None, self.opts.timeout_ms).await
            }
            Transport::Jsonp => {
                let separator = if url.contains('?') { "&" } else { "?" };
                let url = [url, separator, "apikey=", &url::encode(&self.opts.api_key)].concat();
                transport::jsonp(&url, self.opts.timeout_ms).await
            }
        };
        let verdict = answer.verdict();
        match verdict.problem {
            None => Ok(verdict.body),
            Some(p) => Err(error::to_js(&p, verdict.from_server)),
        }
    }

    fn insert(&self, loaded: Loaded) {
        let mut st = self.state.borrow_mut();
        match st.experiments.iter_mut().find(|e| e.uuid == loaded.uuid) {
            Some(e) => *e = loaded,
            None => st.experiments.push(loaded),
        }
    }

    /// Whether an experiment with this (canonical) uuid is loaded.
    pub fn has(&self, uuid: &str) -> bool {
        self.state
            .borrow()
            .experiments
            .iter()
            .any(|e| e.uuid == uuid)
    }

    /// Runs `f` on the loaded experiment, or fails with `unknown-experiment`.
    pub fn with<T>(&self, uuid: &str, f: impl FnOnce(&Loaded) -> T) -> Result<T, JsValue> {
        let st = self.state.borrow();
        let e = st.experiments.iter().find(|e| e.uuid == uuid);
        e.map(f).ok_or_else(|| unknown(uuid))
    }

    /// How many events this tab has queued.
    pub fn queued(&self) -> usize {
        self.state.borrow().queue.len()
    }

    // ---- Decisions -------------------------------------------------------

    /// The sticky variant, or one drawn by weight (queueing one view).
    pub fn suggest(self: &Rc<Self>, uuid: &str) -> Result<JsValue, JsValue> {
        let state = self.sticky(uuid);
        let decision = self.with(uuid, |e| {
            match sticky::suggest(&state, &e.ids(), &e.weights, js_sys::Math::random()) {
                Suggestion::Again(id) => Some((id, false)),
                Suggestion::Fresh(i) => Some((e.model.variants[i].id.clone(), true)),
                Suggestion::Nothing => None,
            }
        })?;
        let Some((id, fresh)) = decision else {
            return Err(error::new(
                Code::UnknownVariant,
                None,
                "The experiment has no variants.",
            ));
        };
        if fresh {
            let event = self.validate(uuid, "view", &id, None)?;
            self.enqueue(uuid, event);
            self.set_sticky(uuid, &sticky::viewed(&id));
        }
        self.with(uuid, |e| e.variant_js(&id))
    }

    /// Shows a given variant: queues a view and makes it the sticky one.
    pub fn view(self: &Rc<Self>, uuid: &str, variant: &str) -> Result<JsValue, JsValue> {
        let event = self.validate(uuid, "view", variant, None)?;
        self.enqueue(uuid, event);
        self.set_sticky(uuid, &sticky::viewed(variant));
        self.with(uuid, |e| e.variant_js(variant))
    }

    /// Rewards the last viewed variant once; whether a reward was queued.
    pub fn reward(self: &Rc<Self>, uuid: &str, amount: Option<f64>) -> Result<bool, JsValue> {
        self.with(uuid, |_| ())?;
        let mut state = self.sticky(uuid);
        let Some(variant) = state.variant.clone() else {
            return Err(error::new(
                Code::NoView,
                None,
                "Nothing to reward: the visitor has not viewed this experiment.",
            ));
        };
        // Validated first: a bad amount is an error even when nothing would be recorded.
        let event = self.validate(uuid, "reward", &variant, amount)?;
        match sticky::reward(&state) {
            sticky::Reward::Record(_) => {
                self.enqueue(uuid, event);
                state.rewarded = true;
                self.set_sticky(uuid, &state);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Forgets this visitor's variant of the experiment.
    pub fn unstick(&self, uuid: &str) {
        self.stickies.borrow_mut().retain(|(u, _)| u != uuid);
        self.store.remove(&self.store.sticky_key(uuid));
    }

    fn sticky(&self, uuid: &str) -> Sticky {
        if let Some((_, state)) = self.stickies.borrow().iter().find(|(u, _)| u == uuid) {
            return state.clone();
        }
        let stored = self
            .store
            .get(&self.store.sticky_key(uuid))
            .and_then(|text| js_sys::JSON::parse(&text).ok())
            .unwrap_or(JsValue::UNDEFINED);
        let state = Sticky {
            variant: get(&stored, "v").as_string(),
            rewarded: get(&stored, "r").as_bool().unwrap_or(false),
        };
        self.stickies
            .borrow_mut()
            .push((uuid.to_owned(), state.clone()));
        state
    }

    /// Writes the visitor's state, unless it is unchanged (a localStorage
    /// write costs tens of microseconds).
    fn set_sticky(&self, uuid: &str, state: &Sticky) {
        if self.sticky(uuid) == *state {
            return;
        }
        if let Some(entry) = self
            .stickies
            .borrow_mut()
            .iter_mut()
            .find(|(u, _)| u == uuid)
        {
            entry.1 = state.clone();
        }
        let _ = self
            .store
            .set(&self.store.sticky_key(uuid), &state.to_json());
    }

    // ---- Recording -------------------------------------------------------

    /// Core's validation of one event, now; a `MynaError` listing every problem.
    fn validate(
        &self,
        uuid: &str,
        typename: &str,
        variant: &str,
        amount: Option<f64>,
    ) -> Result<Event, JsValue> {
        self.with(uuid, |e| {
            new_event(typename, variant, amount, &e.model, now() as i64)
        })?
        .map_err(|messages| error::to_js(&Problem::many(messages), false))
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            max_events: self.opts.max_queue_events,
            max_bytes: self.opts.max_queue_bytes,
        }
    }

    /// Queues a validated event; persists in a microtask, flushes at batch size.
    pub fn enqueue(self: &Rc<Self>, uuid: &str, event: Event) {
        let t = now();
        let (dropped, persist, flush) = {
            let mut st = self.state.borrow_mut();
            if !st.queue.is_empty() && t - st.beat > STALE_MS / 2.0 {
                // Asleep long enough that another tab may have adopted our
                // queue: what it may have taken never grows again.
                st.queue.seal_all();
            }
            st.queue.push(uuid, event, random_uuid);
            let dropped = st.queue.enforce(self.bounds());
            let persist = !st.persist_pending;
            st.persist_pending = true;
            let flush = st.queue.len() >= self.opts.batch_size && t >= st.retry_at;
            (dropped, persist, flush)
        };
        if persist {
            let me = self.clone();
            spawn_local(async move { me.persist() });
        }
        if dropped > 0 {
            self.queue_full(
                dropped,
                "The queue was full: the oldest events were dropped.",
            );
        }
        if flush {
            self.background_flush();
        }
    }

    fn queue_full(&self, dropped: usize, message: &str) {
        let e = error::new(Code::QueueFull, None, message);
        let _ = Reflect::set(&e, &"dropped".into(), &(dropped as f64).into());
        self.emit("error", &e);
        if dropped > 0 {
            self.emit("sync", &counts(0, dropped, 0));
        }
    }

    /// Writes this tab's queue to storage (or removes it when empty). When
    /// storage is full the oldest batches go, one at a time, the newest
    /// staying in memory if even it does not fit.
    pub fn persist(&self) {
        let key = self.store.queue_key(&self.tab);
        let t = now();
        let mut dropped = 0;
        let mut memory_only = false;
        loop {
            let text = {
                let mut st = self.state.borrow_mut();
                st.persist_pending = false;
                st.beat = t;
                (!st.queue.is_empty()).then(|| st.queue.to_stored(t, st.released))
            };
            let Some(text) = text else {
                self.store.remove(&key);
                break;
            };
            match self.store.set(&key, &text) {
                Ok(()) => break,
                Err(WriteError::Full) => {
                    let mut st = self.state.borrow_mut();
                    if st.queue.batches().len() > 1 {
                        dropped += st.queue.drop_oldest_batch();
                    } else {
                        memory_only = true;
                        break;
                    }
                }
            }
        }
        let newly_memory_only = {
            let mut st = self.state.borrow_mut();
            let newly = memory_only && !st.memory_only;
            st.memory_only = memory_only;
            newly
        };
        if dropped > 0 || newly_memory_only {
            self.queue_full(
                dropped,
                "Storage is full: the oldest events were dropped, the newest are kept in memory.",
            );
        }
    }

    // ---- Delivery --------------------------------------------------------

    /// Sends everything queued now (ignoring backoff), after any flush in
    /// progress. Resolves with the counts once the server confirmed or refused
    /// each batch; rejects with the `MynaError` of a failed attempt (the
    /// events stay queued and are retried with backoff).
    pub fn flush(self: &Rc<Self>) -> Promise {
        self.state.borrow_mut().runs += 1;
        let previous = self.chain.borrow_mut().take();
        let me = self.clone();
        let run = future_to_promise(async move {
            if let Some(previous) = previous {
                let _ = JsFuture::from(previous).await;
            }
            let result = me.run_flush().await;
            me.state.borrow_mut().runs -= 1;
            result
        });
        // The chain awaits the run, so a background run's rejection is handled.
        let settled = run.clone();
        let link = future_to_promise(async move {
            let _ = JsFuture::from(settled).await;
            Ok(JsValue::UNDEFINED)
        });
        *self.chain.borrow_mut() = Some(link);
        run
    }

    /// A flush nobody awaits (timer, batch size, `online`), unless one is pending.
    fn background_flush(self: &Rc<Self>) {
        if self.state.borrow().runs == 0 {
            let _ = self.flush();
        }
    }

    async fn run_flush(self: &Rc<Self>) -> Result<JsValue, JsValue> {
        let guard = lock::acquire(self.store.clone(), &self.tab).await;
        self.adopt_orphans();
        let (mut sent, mut dropped) = (0, 0);
        let mut refusals = Vec::new();
        let mut failure: Option<Verdict> = None;
        let mut tried: Vec<Uuid> = Vec::new();
        loop {
            let next = {
                let mut st = self.state.borrow_mut();
                let next = st
                    .queue
                    .batches()
                    .iter()
                    .find(|b| !tried.contains(&b.id))
                    .cloned();
                if let Some(b) = &next {
                    st.queue.seal(b.id);
                }
                next
            };
            let Some(batch) = next else { break };
            tried.push(batch.id);
            self.persist(); // sealed before it leaves
            let verdict = self.deliver(&batch).await;
            match verdict.fate {
                Fate::Sent => {
                    sent += self.state.borrow_mut().queue.remove(batch.id);
                    self.refresh(&verdict.body);
                }
                Fate::Dropped => {
                    dropped += self.state.borrow_mut().queue.remove(batch.id);
                    refusals.push(verdict);
                }
                Fate::Retry => {
                    failure = Some(verdict);
                    break;
                }
            }
            self.persist();
        }
        drop(guard);
        let requeued = {
            let mut st = self.state.borrow_mut();
            match &failure {
                Some(f) => {
                    let delay = retry::delay_ms(st.attempt, js_sys::Math::random(), f.retry_after);
                    st.attempt = st.attempt.saturating_add(1);
                    st.retry_at = now() + delay;
                    st.queue.len()
                }
                None => {
                    st.attempt = 0;
                    st.retry_at = 0.0;
                    0
                }
            }
        };
        for refusal in &refusals {
            if let Some(p) = &refusal.problem {
                self.emit("error", &error::to_js(p, refusal.from_server));
            }
        }
        let result = counts(sent, dropped, requeued);
        if sent + dropped + requeued > 0 {
            self.emit("sync", &result);
        }
        match failure.and_then(|f| f.problem.map(|p| (p, f.from_server))) {
            Some((p, from_server)) => Err(error::to_js(&p, from_server)),
            None => Ok(result),
        }
    }

    /// One attempt at a batch: a POST of the whole batch, or with JSONP one
    /// request per event (each under its own id, derived from the batch's).
    async fn deliver(&self, batch: &Batch) -> Verdict {
        let root = &self.opts.api_root;
        match self.opts.transport {
            Transport::Post => {
                let url = url::record(root, &batch.experiment, &self.opts.api_key);
                transport::fetch(
                    "POST",
                    &url,
                    None,
                    Some(&batch.body()),
                    self.opts.timeout_ms,
                )
                .await
                .verdict()
            }
            Transport::Jsonp => {
                let mut last = Answer::Json {
                    status: 200,
                    body: JsValue::NULL,
                    retry_after: None,
                }
                .verdict();
                for (i, event) in batch.events().iter().enumerate() {
                    let mut params = event.query_params_with(Some(unit_id(batch.id, i)), js_number);
                    params.push(("apikey", self.opts.api_key.clone()));
                    let url = [
                        &url::experiment(root, &batch.experiment),
                        "/record?",
                        &url::query(&params),
                    ]
                    .concat();
                    last = transport::jsonp(&url, self.opts.timeout_ms).await.verdict();
                    if last.fate != Fate::Sent {
                        break;
                    }
                }
                last
            }
        }
    }

    /// Takes the weights of a record answer (a read form) for a loaded experiment.
    fn refresh(&self, body: &JsValue) {
        if get(body, "typename").as_string().as_deref() != Some("experiment") {
            return;
        }
        let uuid = get(body, "uuid").as_string().unwrap_or_default();
        if self.has(&crate::experiment::canonical_uuid(&uuid))
            && let Ok(loaded) = Loaded::from_js(body.clone())
        {
            self.insert(loaded);
        }
    }

    /// Adopts the queues other tabs released, or left for dead.
    fn adopt_orphans(&self) {
        let mine = self.store.queue_key(&self.tab);
        let t = now();
        for key in self.store.keys(&keys::queue_prefix(&self.store.ns)) {
            if key == mine {
                continue;
            }
            let Some(text) = self.store.get(&key) else {
                continue;
            };
            match read_stored(&text) {
                Some(stored) if stored.is_orphan(t, STALE_MS) => {
                    let batches = stored.into_batches(js_number, random_uuid);
                    let dropped = {
                        let mut st = self.state.borrow_mut();
                        st.queue.adopt(batches);
                        st.queue.enforce(self.bounds())
                    };
                    self.persist(); // ours first: a crash here leaves a harmless duplicate
                    self.store.remove(&key);
                    if dropped > 0 {
                        self.queue_full(
                            dropped,
                            "The queue was full: the oldest events were dropped.",
                        );
                    }
                }
                Some(_) => {}
                None => self.store.remove(&key), // unreadable: nothing to save
            }
        }
    }

    // ---- Page life -------------------------------------------------------

    /// The page is going away (or hidden): beacon everything, keep it queued
    /// (sealed) until a later confirmed send, and let other tabs adopt it.
    pub fn on_hidden(&self) {
        let sends: Vec<(String, String)> = {
            let mut st = self.state.borrow_mut();
            st.queue.seal_all();
            st.released = true;
            let root = &self.opts.api_root;
            let key = &self.opts.api_key;
            st.queue
                .batches()
                .iter()
                .flat_map(|b| {
                    let url = url::record(root, &b.experiment, key);
                    match self.opts.transport {
                        Transport::Post => vec![(url, b.body())],
                        Transport::Jsonp => (0..b.events().len())
                            .map(|i| (url.clone(), st.queue.unit_body(b, i)))
                            .collect(),
                    }
                })
                .collect()
        };
        for (url, body) in sends {
            if !transport::beacon(&url, &body) {
                break; // the browser's beacon quota is used up
            }
        }
        self.persist();
    }

    /// The page is visible again: the queue is ours again.
    pub fn on_visible(&self) {
        let nonempty = {
            let mut st = self.state.borrow_mut();
            if st.closed {
                return;
            }
            st.released = false;
            !st.queue.is_empty()
        };
        if nonempty {
            self.persist();
        }
    }

    fn tick(self: &Rc<Self>) {
        let t = now();
        let (beat, flush) = {
            let mut st = self.state.borrow_mut();
            if st.closed {
                return;
            }
            st.ticks = st.ticks.wrapping_add(1);
            let nonempty = !st.queue.is_empty();
            if nonempty && t - st.beat > STALE_MS / 2.0 {
                st.queue.seal_all();
            }
            let due = nonempty && t >= st.retry_at;
            (nonempty, due || st.ticks.is_multiple_of(ORPHAN_TICKS))
        };
        if beat {
            self.persist();
        }
        if flush {
            self.background_flush();
        }
    }

    fn install(self: &Rc<Self>) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let mut hooks = self.hooks.borrow_mut();
        let weak = Rc::downgrade(self);
        let tick = {
            let weak = weak.clone();
            Closure::<dyn FnMut()>::new(move || {
                if let Some(c) = weak.upgrade() {
                    c.tick();
                }
            })
        };
        if let Ok(handle) = window.set_interval_with_callback_and_timeout_and_arguments_0(
            tick.as_ref().unchecked_ref(),
            self.opts.flush_interval_ms as i32,
        ) {
            hooks.interval = Some((handle, tick));
        }
        let document = window.document();
        let mut on = |target: &EventTarget, name: &'static str, f: fn(&Rc<Client>)| {
            let weak: Weak<Client> = weak.clone();
            let closure = Closure::<dyn FnMut()>::new(move || {
                if let Some(c) = weak.upgrade() {
                    f(&c);
                }
            });
            let _ = target.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
            hooks.events.push((target.clone(), name, closure));
        };
        on(&window, "pagehide", |c| c.on_hidden());
        on(&window, "pageshow", |c| c.on_visible());
        // Another tab changed the visitor's state: read it afresh.
        on(&window, "storage", |c| c.stickies.borrow_mut().clear());
        on(&window, "online", |c| {
            c.state.borrow_mut().retry_at = 0.0;
            c.background_flush();
        });
        if let Some(document) = document {
            on(&document, "visibilitychange", |c| {
                let hidden = web_sys::window()
                    .and_then(|w| w.document())
                    .is_some_and(|d| d.visibility_state() == VisibilityState::Hidden);
                if hidden {
                    c.on_hidden()
                } else {
                    c.on_visible()
                }
            });
            on(&document, "freeze", |c| c.on_hidden());
        }
    }

    /// Stops the timer and the listeners; the queue is sealed and released
    /// (the next page, or another tab, sends it).
    pub fn close(&self) {
        {
            let mut st = self.state.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            st.released = true;
            st.queue.seal_all();
        }
        let hooks = std::mem::take(&mut *self.hooks.borrow_mut());
        if let Some(window) = web_sys::window()
            && let Some((handle, _)) = &hooks.interval
        {
            window.clear_interval_with_handle(*handle);
        }
        for (target, name, closure) in &hooks.events {
            let _ =
                target.remove_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
        }
        self.persist();
    }

    // ---- Page events -----------------------------------------------------

    /// Adds a listener of `sync` or `error`.
    pub fn on(&self, name: &str, listener: Function) {
        self.listeners
            .borrow_mut()
            .push((name.to_owned(), listener));
    }

    /// Removes a listener added by [`Client::on`].
    pub fn off(&self, name: &str, listener: &Function) {
        self.listeners
            .borrow_mut()
            .retain(|(n, f)| !(n == name && f == listener));
    }

    fn emit(&self, name: &str, payload: &JsValue) {
        let listeners: Vec<Function> = self
            .listeners
            .borrow()
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, f)| f.clone())
            .collect();
        for f in listeners {
            // A throwing listener must not break the SDK.
            let _ = f.call1(&JsValue::UNDEFINED, payload);
        }
    }
}

/// The `{ sent, dropped, requeued }` object of a `sync` event.
fn counts(sent: usize, dropped: usize, requeued: usize) -> JsValue {
    let out = Object::new();
    for (k, v) in [("sent", sent), ("dropped", dropped), ("requeued", requeued)] {
        let _ = Reflect::set(&out, &k.into(), &(v as f64).into());
    }
    out.into()
}
