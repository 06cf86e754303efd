//! The client behind `Myna`: loaded experiments, the visitor's decisions, the
//! queue, its persistence and its delivery. Decisions and bounds are
//! [`crate::sticky`] and [`crate::queue`] (pure); answers are judged by
//! [`crate::transport`] and [`crate::retry`]; the waiting (requests, timers,
//! locks) is `js/glue.js`'s, which calls back through [`crate::driver`].
//!
//! Storage protocol (several tabs share one localStorage): each client keeps
//! its own queue under `<ns>:q:<tab>`, rewritten whenever it changes (in a
//! microtask, so a burst of events costs one write) and at every tick as a
//! heartbeat. When its page is hidden or closed a client beacons everything,
//! seals its batches and marks its queue *released*; a flushing tab (holding
//! the flush lock) adopts released queues, and queues whose heartbeat is older
//! than [`STALE_MS`] (a crashed tab). Adopted batches keep their ids, so a
//! batch sent by two tabs is still counted once.

use alloc::borrow::ToOwned;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell, RefMut};

use js_sys::{Array, Promise};
use myna_core::event::{Event, new_event};
use myna_core::{Code, Problem};
use uuid::Uuid;
use wasm_bindgen::prelude::*;

use crate::driver::{self, Driver};
use crate::error;
use crate::experiment::{Loaded, canonical_uuid, get};
use crate::lock;
use crate::options::{self, Options, Transport};
use crate::queue::{Batch, Bounds, Queue, unit_id, unit_query, uuid_text};
use crate::retry::{self, Fate};
use crate::sticky::{self, Claim, Sticky, Suggestion};
use crate::storage::{Store, array, keys, read_sticky, read_stored};
use crate::transport::{self, Want, url};

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

#[wasm_bindgen]
extern "C" {
    /// `String(x)`: the browser's own number formatting.
    #[wasm_bindgen(js_name = String)]
    fn number_text(x: f64) -> String;

    /// `crypto.getRandomValues`.
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues, catch)]
    fn random_values(bytes: &mut [u8]) -> Result<JsValue, JsValue>;
}

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
    store: Store,
    /// This client's [`Driver`] as the JS object `js/glue.js` calls back.
    driver: JsValue,
    state: RefCell<State>,
    /// The page's `sync` and `error` listeners (`[name, listener]` pairs,
    /// which the page's `Myna` adds and removes).
    pub listeners: Array,
    /// The visitor's sticky states read so far (a localStorage read and parse
    /// cost microseconds); forgotten when another tab changes storage.
    stickies: RefCell<Vec<Kept>>,
    /// A sticky state was read from, or written to, a cookie (storage was
    /// full): a later write to storage removes the cookie.
    cookie: Cell<bool>,
}

struct State {
    experiments: Vec<Loaded>,
    queue: Queue<JsNumber>,
    /// Failed attempts in a row.
    attempt: u32,
    /// No automatic flush before this time (epoch ms).
    retry_at: f64,
    /// The end of the server's last `Retry-After` (epoch ms): `online`
    /// does not bring a retry before it.
    server_at: f64,
    /// Events pushed out of the full queue since the page was last told
    /// (one `error` and one `sync` event per burst, at the next write).
    dropped: usize,
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
    /// The timer and the page listeners run.
    listening: bool,
    /// The flush running (flushes run one at a time).
    flush: Flush,
}

/// The visitor's state of one experiment as this tab holds it.
struct Kept {
    uuid: String,
    state: Sticky,
    /// Changed here, not written yet (it is at the end of the task, with the
    /// queue: a burst of events costs one write).
    dirty: bool,
}

/// Where a flush is: what it sent, what it still owes the page.
#[derive(Default)]
struct Flush {
    /// Batches tried in this run.
    tried: Vec<Uuid>,
    /// The batch being sent (as it was when it left) and, with JSONP, the
    /// index of its event being sent.
    current: Option<(Batch, usize)>,
    sent: usize,
    dropped: usize,
    /// The errors of refused batches, emitted at the end.
    refusals: Vec<JsValue>,
    /// The error of the attempt that failed, and the server's `Retry-After`.
    failure: Option<(JsValue, Option<f64>)>,
    /// Held back by the backoff: nothing was tried, the backoff stands.
    held: bool,
}

/// A fresh random (v4) uuid from `crypto.getRandomValues`.
pub fn random_uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    if random_values(&mut bytes).is_err() {
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    // Version 4, RFC 4122 variant (`uuid::Builder::from_random_bytes`).
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

/// A random token naming a view or a reward in the visitor's claims (32
/// bits: the few tabs of one visitor that act at once never draw the same;
/// never 0, which means none). `Math.random` is enough (nothing is secret
/// here) and costs a fraction of `crypto.getRandomValues` at each event.
fn random_token() -> u64 {
    (js_sys::Math::random() * 4_294_967_295.0) as u64 + 1
}

/// A number as the browser writes it (JSON's form for finite numbers).
pub fn js_number(x: f64) -> String {
    number_text(x)
}

/// [`js_number`] as the queue's [`crate::queue::Number`].
#[derive(Debug, Clone, Copy)]
pub struct JsNumber;

impl crate::queue::Number for JsNumber {
    fn text(self, x: f64) -> String {
        number_text(x)
    }
}

fn now() -> f64 {
    js_sys::Date::now()
}

/// The page's clock as a request leaves (`sentAt`): the server reads the
/// events' timestamps on it, so a wrong page clock loses nothing.
fn sent_at() -> u64 {
    now().max(0.0) as u64
}

/// The loaded experiment with this uuid, or the `unknown-experiment` error
/// (not generic: [`Client::with`] is, once per caller).
#[inline(never)]
fn find<'a>(experiments: &'a [Loaded], uuid: &str) -> Result<&'a Loaded, JsValue> {
    experiments
        .iter()
        .find(|e| e.uuid == uuid)
        .ok_or_else(unknown)
}

fn unknown() -> JsValue {
    error::new(
        Code::UnknownExperiment,
        None,
        "There is no such experiment.",
    )
}

impl Client {
    /// Reads the options and takes their snapshots; nothing runs until
    /// [`Client::start`]. A `MynaError` for bad options or snapshots.
    pub fn new(options: &JsValue) -> Result<Rc<Client>, JsValue> {
        let opts = options::read(options).map_err(|p| error::to_js(&p, false))?;
        let capacity = match opts.transport {
            Transport::Post => opts.batch_size,
            Transport::Jsonp => 1,
        };
        let mut experiments = Vec::new();
        if let Some(list) = &opts.experiments {
            for (i, form) in list.iter().enumerate() {
                let loaded = Loaded::from_js(form).map_err(|mut p| {
                    for m in &mut p.messages {
                        let mut path = String::from("experiments[");
                        crate::queue::push_decimal(&mut path, i as u64);
                        path.push(']');
                        m.path = Some(path);
                    }
                    error::to_js(&p, false)
                })?;
                experiments.push(loaded);
            }
        }
        let client = Rc::new_cyclic(|weak| Client {
            tab: uuid_text(random_uuid(), false),
            store: Store::new(&opts.storage_key),
            driver: Driver::new(weak.clone()).into(),
            state: RefCell::new(State {
                experiments,
                queue: Queue::new(capacity, JsNumber),
                attempt: 0,
                retry_at: 0.0,
                server_at: 0.0,
                dropped: 0,
                persist_pending: false,
                runs: 0,
                released: false,
                closed: false,
                memory_only: false,
                beat: now(),
                ticks: 0,
                listening: false,
                flush: Flush::default(),
            }),
            listeners: Array::new(),
            stickies: RefCell::new(Vec::new()),
            cookie: Cell::new(false),
            opts,
        });
        Ok(client)
    }

    /// Loads the experiments (unless snapshots were given), then starts the
    /// timer and the page listeners and sends what earlier pages left
    /// queued; the Promise resolves with `value`.
    pub fn start(&self, value: JsValue) -> Promise {
        let request = if self.opts.experiments.is_some() {
            self.started();
            JsValue::UNDEFINED // no request: resolves at once
        } else {
            self.search_request(0)
        };
        driver::load(&self.driver, &request, value)
    }

    fn started(&self) {
        self.install();
        if !self
            .store
            .keys(&keys::queue_prefix(&self.store.ns))
            .is_empty()
        {
            self.background_flush();
        }
    }

    /// The state, borrowed (one call site for every borrow: each site of
    /// `RefCell::borrow_mut` carries its own panic location in the wasm).
    #[inline(never)]
    fn st(&self) -> RefMut<'_, State> {
        self.state.borrow_mut()
    }

    /// The sticky states read so far, borrowed (see [`Client::st`]).
    #[inline(never)]
    fn stickies(&self) -> RefMut<'_, Vec<Kept>> {
        self.stickies.borrow_mut()
    }

    // ---- Loading ---------------------------------------------------------

    /// A GET answered with JSON: by fetch (API key header) or JSONP (`apikey`
    /// parameter); `page` is the `skip` of a search page.
    fn get_request(&self, url: String, page: Option<usize>) -> JsValue {
        let page = page.map_or(JsValue::UNDEFINED, |skip| (skip as f64).into());
        let timeout = self.opts.timeout_ms;
        match self.opts.transport {
            Transport::Post => {
                let auth = ["ApiKey ", &self.opts.api_key].concat();
                transport::request(&url, Some(&auth), None, timeout, false, &page)
            }
            Transport::Jsonp => {
                let separator = if url.bytes().any(|b| b == b'?') {
                    "&"
                } else {
                    "?"
                };
                let url = [&url, separator, "apikey=", &url::encode(&self.opts.api_key)].concat();
                transport::request(&url, None, None, timeout, true, &page)
            }
        }
    }

    fn search_request(&self, skip: usize) -> JsValue {
        self.get_request(
            url::search(&self.opts.api_root, SEARCH_PAGE, skip),
            Some(skip),
        )
    }

    /// The request that loads one experiment afresh (read endpoint).
    pub fn load_request(&self, uuid: &str) -> JsValue {
        self.get_request(url::experiment(&self.opts.api_root, uuid), None)
    }

    /// Loads one experiment by `request` ([`Client::load_request`]); the
    /// Promise resolves with `value`. A failure is also emitted as an
    /// `error` event.
    pub fn load(&self, request: JsValue, value: JsValue) -> Promise {
        driver::load(&self.driver, &request, value)
    }

    /// Takes the answer to a load request: a search page (while connecting)
    /// or one read form; the next search page's request, or `undefined`. A
    /// failed load of one experiment is also emitted as an `error` event.
    pub fn loaded(&self, answer: &JsValue, request: &JsValue) -> Result<JsValue, JsValue> {
        let page = transport::request_tag(request)
            .as_f64()
            .map(|skip| skip as usize);
        let want = if page.is_some() {
            Want::Search
        } else {
            Want::Form
        };
        let verdict = transport::verdict(answer, want);
        let result = match (verdict.problem, page) {
            (Some(p), _) => Err(error::to_js(&p, verdict.from_server)),
            (None, Some(skip)) => self.search_page(&verdict.body, skip),
            (None, None) => match Loaded::from_js(verdict.body) {
                Ok(loaded) => {
                    self.insert(loaded);
                    Ok(JsValue::UNDEFINED)
                }
                Err(p) => Err(error::to_js(&p, true)),
            },
        };
        if let (Err(e), None) = (&result, page) {
            self.emit("error", e);
        }
        result
    }

    /// Takes a search page: the next page's request, or (after the last
    /// page) starts the client.
    fn search_page(&self, body: &JsValue, skip: usize) -> Result<JsValue, JsValue> {
        let results = get(body, "results");
        let mut count = 0;
        if let Some(results) = array(&results) {
            for form in results.iter() {
                let loaded = Loaded::from_js(form).map_err(|p| error::to_js(&p, true))?;
                self.insert(loaded);
                count += 1;
            }
        }
        if count >= SEARCH_PAGE {
            Ok(self.search_request(skip + SEARCH_PAGE))
        } else {
            self.started();
            Ok(JsValue::UNDEFINED)
        }
    }

    fn insert(&self, loaded: Loaded) {
        let mut st = self.st();
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
        let st = self.st();
        Ok(f(find(&st.experiments, uuid)?))
    }

    /// How many events this tab has queued.
    pub fn queued(&self) -> usize {
        self.st().queue.len()
    }

    // ---- Decisions -------------------------------------------------------

    /// The sticky variant's id, or one drawn by weight (queueing one view).
    pub fn suggest(&self, uuid: &str) -> Result<String, JsValue> {
        let state = self.sticky(uuid);
        let decision = self.with(uuid, |e| {
            match sticky::suggest(&state, &e.ids(), &e.weights, js_sys::Math::random()) {
                Suggestion::Again(id) => Some((id, false)),
                Suggestion::Fresh(i) => e.variants.get(i).map(|id| (id.clone(), true)),
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
            self.record_view(uuid, &id, event);
        }
        Ok(id)
    }

    /// Shows a given variant: queues a view and makes it the sticky one.
    pub fn view(&self, uuid: &str, variant: &str) -> Result<(), JsValue> {
        let event = self.validate(uuid, "view", variant, None)?;
        self.record_view(uuid, variant, event);
        Ok(())
    }

    /// Claims the view in the visitor's shared state, then queues it.
    fn record_view(&self, uuid: &str, variant: &str, event: Event) {
        let (next, claim) = sticky::view(&self.sticky(uuid), variant, random_token());
        self.set_sticky(uuid, next);
        self.enqueue(uuid, event, claim);
    }

    /// Rewards the visitor's last view once; whether a reward was queued.
    pub fn reward(&self, uuid: &str, amount: Option<f64>) -> Result<bool, JsValue> {
        self.with(uuid, |_| ())?;
        // The shared state: another tab's reward is in it.
        let state = self.sticky(uuid);
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
                let (next, claim) = sticky::rewarded(&state, random_token(), random_token());
                self.set_sticky(uuid, next);
                self.enqueue(uuid, event, claim);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Forgets this visitor's variant of the experiment (its views stay
    /// remembered, for the claims of events still queued).
    pub fn unstick(&self, uuid: &str) {
        let state = sticky::unstuck(&self.sticky(uuid));
        self.set_sticky(uuid, state);
    }

    /// The visitor's state as this tab knows it: read from storage once,
    /// then kept (with this tab's changes) until another tab changes
    /// storage (the `storage` event forgets it).
    fn sticky(&self, uuid: &str) -> Sticky {
        if let Some(k) = self.stickies().iter().find(|k| k.uuid == uuid) {
            return k.state.clone();
        }
        let state = read_sticky(self.read_kept(&self.store.sticky_key(uuid)).as_deref());
        self.keep_sticky(uuid, state.clone(), false);
        state
    }

    fn keep_sticky(&self, uuid: &str, state: Sticky, dirty: bool) {
        let mut stickies = self.stickies();
        match stickies.iter_mut().find(|k| k.uuid == uuid) {
            Some(k) => {
                k.state = state;
                k.dirty |= dirty;
            }
            None => stickies.push(Kept {
                uuid: uuid.to_owned(),
                state,
                dirty,
            }),
        }
    }

    /// The visitor's state stored at `key` (localStorage, else the cookie a
    /// full storage left it in).
    fn read_kept(&self, key: &str) -> Option<String> {
        let text = self.store.get(key);
        if text.is_some() {
            return text;
        }
        let text = self.store.get_kept(key);
        if text.is_some() {
            self.cookie.set(true);
        }
        text
    }

    /// Changes the visitor's state (written at the end of the task).
    fn set_sticky(&self, uuid: &str, state: Sticky) {
        self.keep_sticky(uuid, state, true);
        self.schedule_persist();
    }

    /// Writes the visitor's states that changed: to storage, or to a cookie
    /// when storage is full.
    fn write_stickies(&self) {
        let pending: Vec<(String, String)> = self
            .stickies()
            .iter_mut()
            .filter(|k| k.dirty)
            .map(|k| {
                k.dirty = false;
                (self.store.sticky_key(&k.uuid), k.state.to_json())
            })
            .collect();
        for (key, text) in pending {
            if self.store.set(&key, &text) {
                if self.cookie.get() {
                    self.store.set_kept(&key, &text, true);
                }
            } else {
                self.store.set_kept(&key, &text, false);
                self.cookie.set(true);
            }
        }
    }

    /// Runs [`Client::persist`] in a microtask, unless one is pending.
    fn schedule_persist(&self) {
        let later = {
            let mut st = self.st();
            !core::mem::replace(&mut st.persist_pending, true)
        };
        if later {
            driver::later(&self.driver);
        }
    }

    /// Seals the batch with this id, or every batch, after dropping the
    /// events whose claims lost to another tab's ([`sticky::keeps`], judged
    /// on the visitor's state as it is now).
    fn seal(&self, id: Option<Uuid>) {
        self.write_stickies();
        let mut states: Vec<(String, Sticky)> = Vec::new();
        let keep = |experiment: &str, claim: &Claim| {
            if claim.seq == 0 {
                return true;
            }
            let at = match states.iter().position(|(u, _)| u == experiment) {
                Some(at) => at,
                None => {
                    let key = self.store.sticky_key(experiment);
                    let state = read_sticky(self.read_kept(&key).as_deref());
                    states.push((experiment.to_owned(), state));
                    states.len() - 1
                }
            };
            states
                .get(at)
                .is_none_or(|(_, state)| sticky::keeps(state, claim))
        };
        // `keep` reads storage only: the state may stay borrowed meanwhile.
        self.st().queue.seal_settled(id, keep);
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
            new_event(
                typename,
                variant,
                amount,
                e.variants.as_slice(),
                now() as i64,
            )
        })?
        .map_err(|messages| error::to_js(&Problem::many(messages), false))
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            max_events: self.opts.max_queue_events,
            max_bytes: self.opts.max_queue_bytes,
        }
    }

    /// Queues a validated event with its claim; persists in a microtask,
    /// flushes at batch size.
    pub fn enqueue(&self, uuid: &str, event: Event, claim: Claim) {
        let t = now();
        let asleep = {
            let st = self.st();
            !st.queue.is_empty() && t - st.beat > STALE_MS / 2.0
        };
        if asleep {
            // Asleep long enough that another tab may have adopted our
            // queue: what it may have taken never grows again.
            self.seal(None);
        }
        let (persist, flush) = {
            let mut st = self.st();
            st.queue.push(uuid, event, claim, random_uuid);
            // Told once per burst, at the write that follows it.
            let dropped = st.queue.enforce(self.bounds());
            st.dropped += dropped;
            let persist = !st.persist_pending;
            st.persist_pending = true;
            let flush = st.queue.len() >= self.opts.batch_size && t >= st.retry_at;
            (persist, flush)
        };
        if persist {
            driver::later(&self.driver);
        }
        if flush {
            self.background_flush();
        }
    }

    fn queue_full(&self, dropped: usize, message: &str) {
        let e = error::new(Code::QueueFull, None, message);
        driver::set_dropped(&e, dropped as f64);
        self.emit("error", &e);
        if dropped > 0 {
            self.emit("sync", &counts(0, dropped, 0));
        }
    }

    /// Writes this tab's queue to storage (or removes it when empty). When
    /// storage is full the oldest batches go, one at a time, the newest
    /// staying in memory if even it does not fit. Events pushed out of a
    /// full queue since the last write are reported here, once.
    pub fn persist(&self) {
        self.write_stickies();
        let key = self.store.queue_key(&self.tab);
        let t = now();
        let overflow = core::mem::take(&mut self.st().dropped);
        if overflow > 0 {
            self.queue_full(
                overflow,
                "The queue was full: the oldest events were dropped.",
            );
        }
        let mut dropped = 0;
        let mut memory_only = false;
        loop {
            let text = {
                let mut st = self.st();
                st.persist_pending = false;
                st.beat = t;
                (!st.queue.is_empty()).then(|| st.queue.to_stored(t, st.released))
            };
            let Some(text) = text else {
                self.store.remove(&key);
                break;
            };
            if self.store.set(&key, &text) {
                break;
            }
            let mut st = self.st();
            if st.queue.batches().len() > 1 {
                dropped += st.queue.drop_oldest_batch();
            } else {
                memory_only = true;
                break;
            }
        }
        let newly_memory_only = {
            let mut st = self.st();
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
    /// `eager` is the page's own flush; the others (timer, batch size,
    /// `online`, adopting other tabs' queues) send nothing before the
    /// backoff or the server's `Retry-After` ends.
    pub fn flush(&self, eager: bool) -> Promise {
        self.st().runs += 1;
        driver::flush(
            &self.driver,
            &keys::flush_lock(&self.store.ns),
            eager,
            lock::RENEW_MS,
        )
    }

    /// A flush nobody awaits (timer, batch size, `online`), unless one is pending.
    fn background_flush(&self) {
        if self.st().runs == 0 {
            let _ = self.flush(false);
        }
    }

    /// One step of a flush (holding the flush lock): takes the answer to the
    /// last request (`undefined` at the start, when queues other tabs left
    /// are adopted) and gives the next request, or `undefined` when every
    /// batch was tried or an attempt failed. A batch is sealed, and stored
    /// so, before it leaves; with JSONP each of its events is one request.
    /// A flush that is not `eager` sends nothing while the backoff lasts.
    pub fn deliver(&self, answer: &JsValue, eager: bool) -> JsValue {
        if answer.is_undefined() {
            self.st().flush = Flush::default();
            self.adopt_orphans();
            let mut st = self.st();
            if !eager && now() < st.retry_at {
                st.flush.held = true;
                return JsValue::UNDEFINED;
            }
        } else {
            let verdict = transport::verdict(answer, Want::Form);
            let error = || {
                verdict
                    .problem
                    .as_ref()
                    .map_or(JsValue::UNDEFINED, |p| error::to_js(p, verdict.from_server))
            };
            let current = self.st().flush.current.take();
            let Some((batch, unit)) = current else {
                return JsValue::UNDEFINED;
            };
            match verdict.fate {
                Fate::Sent
                    if self.opts.transport == Transport::Jsonp
                        && unit + 1 < batch.events().len() =>
                {
                    let request = self.send_request(&batch, unit + 1);
                    self.st().flush.current = Some((batch, unit + 1));
                    return request;
                }
                Fate::Sent => {
                    let mut st = self.st();
                    st.flush.sent += st.queue.remove(batch.id);
                    drop(st);
                    self.refresh(&verdict.body);
                }
                Fate::Dropped => {
                    let error = error();
                    let mut st = self.st();
                    st.flush.dropped += st.queue.remove(batch.id);
                    st.flush.refusals.push(error);
                }
                Fate::Retry => {
                    self.st().flush.failure = Some((error(), verdict.retry_after));
                    return JsValue::UNDEFINED;
                }
            }
            self.persist();
        }
        // The next batch not tried in this run, sealed (after dropping the
        // events whose claims lost: a batch left with none goes).
        let batch = loop {
            let next = {
                let st = self.st();
                let tried = &st.flush.tried;
                st.queue
                    .batches()
                    .iter()
                    .find(|b| !tried.contains(&b.id))
                    .map(|b| b.id)
            };
            let Some(id) = next else {
                return JsValue::UNDEFINED;
            };
            self.seal(Some(id));
            let mut st = self.st();
            st.flush.tried.push(id);
            if let Some(b) = st.queue.get(id) {
                break b.clone();
            }
        };
        self.persist(); // sealed before it leaves
        let request = self.send_request(&batch, 0);
        self.st().flush.current = Some((batch, 0));
        request
    }

    /// The request that sends a batch: a POST of the whole batch, or with
    /// JSONP its event `unit` (under its own id, derived from the batch's).
    fn send_request(&self, batch: &Batch, unit: usize) -> JsValue {
        let root = &self.opts.api_root;
        let timeout = self.opts.timeout_ms;
        match self.opts.transport {
            Transport::Post => {
                let url = url::record(root, &batch.experiment, &self.opts.api_key);
                transport::request(
                    &url,
                    None,
                    Some(&batch.body(Some(sent_at()))),
                    timeout,
                    false,
                    &JsValue::UNDEFINED,
                )
            }
            Transport::Jsonp => {
                let Some(event) = batch.events().get(unit) else {
                    return JsValue::UNDEFINED;
                };
                let url = [
                    &url::experiment(root, &batch.experiment),
                    "/record?",
                    &unit_query(event, unit_id(batch.id, unit), JsNumber, Some(sent_at())),
                    "&apikey=",
                    &url::encode(&self.opts.api_key),
                ]
                .concat();
                transport::request(&url, None, None, timeout, true, &JsValue::UNDEFINED)
            }
        }
    }

    /// The end of a flush (the lock released): the backoff after a failed
    /// attempt, the `error` events of refused batches and the `sync` event;
    /// the counts, or the error of the failed attempt.
    pub fn done(&self) -> Result<JsValue, JsValue> {
        let (flush, requeued) = {
            let mut st = self.st();
            st.runs = st.runs.saturating_sub(1);
            let flush = core::mem::take(&mut st.flush);
            let requeued = match &flush.failure {
                _ if flush.held => 0,
                Some((_, retry_after)) => {
                    let delay = retry::delay_ms(st.attempt, js_sys::Math::random(), *retry_after);
                    st.attempt = st.attempt.saturating_add(1);
                    st.retry_at = now() + delay;
                    st.server_at = if retry_after.is_some() {
                        st.retry_at
                    } else {
                        0.0
                    };
                    st.queue.len()
                }
                None => {
                    st.attempt = 0;
                    st.retry_at = 0.0;
                    st.server_at = 0.0;
                    0
                }
            };
            (flush, requeued)
        };
        for refusal in &flush.refusals {
            self.emit("error", refusal);
        }
        let result = counts(flush.sent, flush.dropped, requeued);
        if flush.sent + flush.dropped + requeued > 0 {
            self.emit("sync", &result);
        }
        match flush.failure {
            Some((error, _)) => Err(error),
            None => Ok(result),
        }
    }

    /// The flush lease ([`crate::driver::op::LEASE_TAKE`] and after): `0` takes, `1` checks, `2` gives back.
    pub fn lease(&self, step: u32) -> bool {
        lock::lease(&self.store, &self.tab, step, now())
    }

    /// Takes the weights of a record answer (a read form) for a loaded experiment.
    fn refresh(&self, body: &JsValue) {
        if get(body, "typename").as_string().as_deref() != Some("experiment") {
            return;
        }
        let uuid = get(body, "uuid").as_string().unwrap_or_default();
        if self.has(&canonical_uuid(&uuid))
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
                    let batches = stored.into_batches(JsNumber, random_uuid);
                    let dropped = {
                        let mut st = self.st();
                        st.queue.adopt(batches);
                        st.queue.enforce(self.bounds())
                    };
                    // What the other tab never sealed had not left it: its
                    // events are judged by their claims before they leave.
                    self.seal(None);
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

    /// A tick or a page event ([`crate::driver::op::EVENT`]).
    pub fn page_event(&self, event: &str) {
        match event {
            "tick" => self.tick(),
            "pagehide" | "freeze" | "hidden" => self.on_hidden(),
            "pageshow" | "visible" => self.on_visible(),
            // Another tab changed the visitor's state: read it afresh.
            "storage" => self.stickies().retain(|k| k.dirty),
            "online" => {
                // The network is back: retry now, unless the server asked to wait.
                let mut st = self.st();
                st.retry_at = st.server_at;
                drop(st);
                self.background_flush();
            }
            _ => {}
        }
    }

    /// The page is going away (or hidden): beacon everything, keep it queued
    /// (sealed) until a later confirmed send, and let other tabs adopt it.
    pub fn on_hidden(&self) {
        self.seal(None);
        let sends: Vec<(String, String)> = {
            let mut st = self.st();
            st.released = true;
            let root = &self.opts.api_root;
            let key = &self.opts.api_key;
            let mut sends = Vec::new();
            for b in st.queue.batches() {
                let url = url::record(root, &b.experiment, key);
                let at = Some(sent_at());
                match self.opts.transport {
                    Transport::Post => sends.push((url, b.body(at))),
                    Transport::Jsonp => {
                        for i in 0..b.events().len() {
                            sends.push((url.clone(), st.queue.unit_body(b, i, at)));
                        }
                    }
                }
            }
            sends
        };
        for (url, body) in sends {
            if !transport::beacon(&url, &body) {
                break; // the browser's beacon quota is used up
            }
        }
        self.persist();
        self.give_lease();
    }

    /// Gives the flush lease back if this tab holds it (where Web Locks are
    /// missing): a page going away must not hold up the others' flushes.
    fn give_lease(&self) {
        self.lease(2);
    }

    /// The page is visible again: the queue is ours again.
    pub fn on_visible(&self) {
        let nonempty = {
            let mut st = self.st();
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

    fn tick(&self) {
        let t = now();
        let (beat, flush, asleep) = {
            let mut st = self.st();
            if st.closed {
                return;
            }
            st.ticks = st.ticks.wrapping_add(1);
            let nonempty = !st.queue.is_empty();
            let asleep = nonempty && t - st.beat > STALE_MS / 2.0;
            let due = nonempty && t >= st.retry_at;
            (
                nonempty,
                due || st.ticks.is_multiple_of(ORPHAN_TICKS),
                asleep,
            )
        };
        if asleep {
            self.seal(None);
        }
        if beat {
            self.persist();
        }
        if flush {
            self.background_flush();
        }
    }

    fn install(&self) {
        driver::listen(&self.driver, self.opts.flush_interval_ms);
        self.st().listening = true;
    }

    /// Stops the timer and the listeners; the queue is sealed and released
    /// (the next page, or another tab, sends it).
    pub fn close(&self) {
        let listening = {
            let mut st = self.st();
            if st.closed {
                return;
            }
            st.closed = true;
            st.released = true;
            core::mem::take(&mut st.listening)
        };
        self.seal(None);
        if listening {
            driver::listen(&self.driver, 0.0);
        }
        self.persist();
        self.give_lease();
    }

    // ---- Page events -----------------------------------------------------

    /// Calls every listener of `name` with `payload` (one that throws does
    /// not stop the others, nor the SDK).
    fn emit(&self, name: &str, payload: &JsValue) {
        driver::emit(&self.listeners, name, payload);
    }
}

/// The `{ sent, dropped, requeued }` object of a `sync` event.
fn counts(sent: usize, dropped: usize, requeued: usize) -> JsValue {
    driver::counts(sent as f64, dropped as f64, requeued as f64)
}
