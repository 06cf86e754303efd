//! The client behind `Myna`, as a thin shell: the loaded experiments (read
//! forms, JS values) and one [`Tab`] (every rule, pure), with what neither
//! can do alone: converting the page's values and the answers, loading
//! experiments, running the [`Effect`]s the tab asks for (timers, the
//! microtask write, flushes, the page's listeners) once it is released,
//! and turning problems into `MynaError`s. `driver` calls it at each step.
//!
//! Each step's method is `#[inline(never)]` (and scripts/wasm-opt keeps
//! binaryen from inlining it back): browsers compile a wasm function when
//! it is first called, so a page's first decision compiles the step
//! dispatcher (3.4 KB) and the methods it calls, not one 16 KB function
//! holding every step (`scripts/sdk-bench`, Chromium: connect to first
//! decision 3.4 -> 2.9 ms cold, 2.5 -> 1.2 ms warm, for 36 bytes gzipped).

use alloc::rc::{Rc, Weak};
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{RefCell, RefMut};

use js_sys::{Array, Promise};
use myna_core::wire::push_decimal;
use myna_core::{Code, Problem};
use wasm_bindgen::prelude::*;

use crate::api::{SEARCH_PAGE, Server};
use crate::delivery::{Counts, Failure};
use crate::experiment::{Loaded, canonical_uuid};
use crate::js::{Page, array, get};
use crate::lock::{Lease, RENEW_MS};
use crate::options::{self, Transport};
use crate::queue::Bounds;
use crate::tab::{Effect, PageEvent, Settings, Tab};
use crate::transport::{self, Want};
use crate::{error, glue, storage};

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

/// The client state shared by `Myna` and its `Experiment` handles.
pub(crate) struct Client {
    /// This client's driver as the JS object `js/glue.js` calls back.
    driver: JsValue,
    /// The page's `sync` and `error` listeners (`[name, listener]` pairs,
    /// which the page's `Myna` adds and removes).
    pub(crate) listeners: Array,
    /// Whether the page gave snapshots (then nothing is loaded at the start).
    snapshots: bool,
    /// The Web Locks name of the flush lock.
    lock: String,
    state: RefCell<State>,
}

/// A client whose last handle goes (`free`, `Symbol.dispose`, or the
/// garbage collector) closes first, as [`Client::close`]: what it queued
/// is stored and released for the next page or another tab to send (its
/// store was to be written at the end of the task, through the driver
/// that is going).
impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}

/// What the client changes: the loaded experiments and the tab.
struct State {
    experiments: Vec<Loaded>,
    tab: Tab<Page>,
}

impl Client {
    /// Reads the options and takes their snapshots; nothing runs until
    /// [`Client::start`]. `driver` makes the client's (weak) driver. A
    /// `MynaError` for bad options or snapshots.
    pub(crate) fn new(
        options: &JsValue,
        driver: impl FnOnce(Weak<Client>) -> JsValue,
    ) -> Result<Rc<Client>, JsValue> {
        let opts = options::read(options).map_err(|p| error::to_js(&p, false))?;
        if opts.transport == Transport::Jsonp && glue::scripts_blocked() {
            return Err(error::new(
                Code::InvalidValue,
                Some("transport"),
                "The JSONP transport adds a script tag per event, which this page refuses \
                 (Trusted Types, or no document): use transport \"post\".",
            ));
        }
        let mut experiments = Vec::new();
        if let Some((list, at)) = &opts.experiments {
            for (i, form) in list.iter().enumerate() {
                let loaded = Loaded::from_js(form).map_err(|p| form_problem(p, at, i))?;
                experiments.push(loaded);
            }
        }
        let settings = Settings {
            server: Server::new(
                opts.api_root,
                &opts.api_key,
                opts.transport == Transport::Jsonp,
                opts.timeout_ms,
            ),
            batch_size: opts.batch_size,
            bounds: Bounds {
                max_events: opts.max_queue_events,
                max_bytes: opts.max_queue_bytes,
            },
            flush_interval_ms: opts.flush_interval_ms,
            ns: opts.storage_key,
        };
        Ok(Rc::new_cyclic(|weak| Client {
            driver: driver(weak.clone()),
            listeners: Array::new(),
            snapshots: opts.experiments.is_some(),
            lock: storage::flush_lock(&settings.ns),
            state: RefCell::new(State {
                experiments,
                tab: Tab::new(Page, settings),
            }),
        }))
    }

    /// The state, borrowed (one call site for every borrow: each site of
    /// `RefCell::borrow_mut` carries its own panic location in the wasm).
    #[inline(never)]
    fn st(&self) -> RefMut<'_, State> {
        self.state.borrow_mut()
    }

    /// Runs `f` on the tab, then the effects it asked for, once the tab is
    /// released (a listener of the page may call back into the SDK).
    fn act<T>(&self, f: impl FnOnce(&mut Tab<Page>) -> T) -> T {
        let (out, effects) = {
            let mut st = self.st();
            let out = f(&mut st.tab);
            (out, st.tab.take_effects())
        };
        self.run(effects);
        out
    }

    #[inline(never)]
    fn run(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Persist => glue::later(&self.driver),
                Effect::Flush => {
                    let _ = glue::flush(&self.driver, &self.lock, false, RENEW_MS);
                }
                Effect::Listen(ms) => glue::listen(&self.driver, ms),
                Effect::QueueFull { dropped, message } => {
                    let e = error::new(Code::QueueFull, None, message);
                    glue::set_dropped(&e, dropped as f64);
                    self.emit("error", &e);
                }
                Effect::Refused(failure) => self.emit("error", &failure_js(failure)),
                Effect::Sync(c) => self.emit("sync", &counts(c)),
            }
        }
    }

    /// Calls every listener of `name` with `payload` (one that throws does
    /// not stop the others, nor the SDK).
    fn emit(&self, name: &str, payload: &JsValue) {
        glue::emit(&self.listeners, name, payload);
    }

    // ---- Loading ---------------------------------------------------------

    /// Loads the experiments (unless snapshots were given), then starts the
    /// timer and the page listeners and sends what earlier pages left
    /// queued; the Promise resolves with `value`.
    pub(crate) fn start(&self, value: JsValue) -> Promise {
        let request = if self.snapshots {
            self.act(Tab::start);
            JsValue::UNDEFINED // no request: resolves at once
        } else {
            transport::to_js(Some(&self.st().tab.server().search(0)))
        };
        glue::load(&self.driver, &request, value)
    }

    /// Loads one experiment afresh (read endpoint); the Promise resolves
    /// with its (canonical) uuid. A failure is also emitted as an `error`
    /// event.
    #[inline(never)]
    pub(crate) fn load(&self, uuid: String) -> Promise {
        let request = transport::to_js(Some(&self.st().tab.server().read(&uuid)));
        glue::load(&self.driver, &request, uuid.into())
    }

    /// Takes the answer to a load request: a search page (while connecting)
    /// or one read form; the next search page's request, or `undefined`. A
    /// failed load of one experiment is also emitted as an `error` event.
    #[inline(never)]
    pub(crate) fn loaded(&self, answer: &JsValue, request: &JsValue) -> Result<JsValue, JsValue> {
        let page = transport::page(request);
        let want = if page.is_some() {
            Want::Search
        } else {
            Want::Form
        };
        let (verdict, body) = transport::verdict(answer, want);
        let result = match (verdict.problem, page) {
            (Some(p), _) => Err(error::to_js(&p, verdict.from_server)),
            (None, Some(skip)) => self.search_page(&body, skip),
            (None, None) => match Loaded::from_js(body) {
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
                // Not Myna's answer (the server's own forms are whole):
                // said where, with no status the server did not answer.
                let loaded =
                    Loaded::from_js(form).map_err(|p| form_problem(p, "results", count))?;
                self.insert(loaded);
                count += 1;
            }
        }
        if count >= SEARCH_PAGE {
            Ok(transport::to_js(Some(
                &self.st().tab.server().search(skip + SEARCH_PAGE),
            )))
        } else {
            self.act(Tab::start);
            Ok(JsValue::UNDEFINED)
        }
    }

    /// Adds or replaces a loaded experiment. A form without an `id` (a
    /// server's read form before ids) keeps the id the experiment had.
    fn insert(&self, mut loaded: Loaded) {
        let experiments = &mut self.st().experiments;
        match experiments.iter_mut().find(|e| e.uuid == loaded.uuid) {
            Some(e) => {
                if loaded.id.is_none()
                    && let Some(id) = e.id.take()
                {
                    let _ = js_sys::Reflect::set(&loaded.form, &"id".into(), &id.as_str().into());
                    loaded.id = Some(id);
                }
                *e = loaded;
            }
            None => experiments.push(loaded),
        }
    }

    /// Takes the weights of a record answer (a read form) for a loaded experiment.
    fn refresh(&self, body: &JsValue) {
        if get(body, "typename").as_string().as_deref() != Some("experiment") {
            return;
        }
        let uuid = canonical_uuid(&get(body, "uuid").as_string().unwrap_or_default());
        let known = self.st().experiments.iter().any(|e| e.uuid == uuid);
        if known && let Ok(loaded) = Loaded::from_js(body.clone()) {
            self.insert(loaded);
        }
    }

    /// The canonical uuid of the loaded experiment `key` names: its uuid
    /// (any text form) or its id; or fails with `unknown-experiment`.
    #[inline(never)]
    pub(crate) fn resolve(&self, key: &str) -> Result<String, JsValue> {
        let uuid = canonical_uuid(key);
        self.st()
            .experiments
            .iter()
            .find(|e| e.uuid == uuid || e.id.as_deref() == Some(key))
            .map(|e| e.uuid.clone())
            .ok_or_else(unknown)
    }

    /// The uuids of the loaded experiments, in the order they came.
    #[inline(never)]
    pub(crate) fn uuids(&self) -> Array {
        self.st()
            .experiments
            .iter()
            .map(|e| JsValue::from(e.uuid.as_str()))
            .collect()
    }

    /// Runs `f` on the loaded experiment, or fails with `unknown-experiment`.
    pub(crate) fn with<T>(&self, uuid: &str, f: impl FnOnce(&Loaded) -> T) -> Result<T, JsValue> {
        let st = self.st();
        Ok(f(find(&st.experiments, uuid)?))
    }

    // ---- The page's calls ------------------------------------------------

    /// Runs a decision of the tab on a loaded experiment (or fails with
    /// `unknown-experiment`); its problem as a `MynaError`.
    fn decide<T>(
        &self,
        uuid: &str,
        f: impl FnOnce(&mut Tab<Page>, &Loaded) -> Result<T, Problem>,
    ) -> Result<T, JsValue> {
        let (out, effects) = {
            let mut st = self.st();
            let State { experiments, tab } = &mut *st;
            let loaded = find(experiments, uuid)?;
            (f(tab, loaded), tab.take_effects())
        };
        self.run(effects);
        out.map_err(|p| error::to_js(&p, false))
    }

    /// The sticky variant's id, or one drawn by weight (queueing one view).
    #[inline(never)]
    pub(crate) fn suggest(&self, uuid: &str) -> Result<String, JsValue> {
        self.decide(uuid, |tab, e| tab.suggest(uuid, &e.variants, &e.weights))
    }

    /// Shows a given variant: queues a view and makes it the sticky one.
    #[inline(never)]
    pub(crate) fn view(&self, uuid: &str, variant: &str) -> Result<(), JsValue> {
        self.decide(uuid, |tab, e| tab.view(uuid, &e.variants, variant))
    }

    /// Rewards the visitor's last view once; whether a reward was queued.
    #[inline(never)]
    pub(crate) fn reward(&self, uuid: &str, amount: Option<f64>) -> Result<bool, JsValue> {
        self.decide(uuid, |tab, e| tab.reward(uuid, &e.variants, amount))
    }

    /// Forgets this visitor's variant of the experiment.
    #[inline(never)]
    pub(crate) fn unstick(&self, uuid: &str) {
        self.act(|tab| tab.unstick(uuid));
    }

    /// How many events this tab has queued.
    pub(crate) fn queued(&self) -> usize {
        self.st().tab.queued()
    }

    /// Writes the queue (the microtask after events were queued).
    #[inline(never)]
    pub(crate) fn persist(&self) {
        self.act(Tab::persist);
    }

    /// A tick or a page event.
    #[inline(never)]
    pub(crate) fn page_event(&self, event: PageEvent) {
        self.act(|tab| tab.page_event(event));
    }

    /// Stops the timer and the listeners; the queue is sealed and released.
    #[inline(never)]
    pub(crate) fn close(&self) {
        self.act(Tab::close);
    }

    // ---- Delivery --------------------------------------------------------

    /// The page's flush: sends everything queued now (ignoring backoff),
    /// after any flush in progress. Resolves with the counts once the
    /// server confirmed or refused each batch; rejects with the `MynaError`
    /// of a failed attempt (the events stay queued and are retried with
    /// backoff).
    #[inline(never)]
    pub(crate) fn flush(&self) -> Promise {
        self.act(Tab::flush);
        glue::flush(&self.driver, &self.lock, true, RENEW_MS)
    }

    /// The first step of a flush: its first request, or `undefined`.
    #[inline(never)]
    pub(crate) fn start_flush(&self, eager: bool) -> JsValue {
        let request = self.act(|tab| tab.start_flush(eager));
        transport::to_js(request.as_ref())
    }

    /// A step of a flush: takes the answer to the last request, gives the
    /// next one, or `undefined` when the run is over.
    #[inline(never)]
    pub(crate) fn deliver(&self, answer: &JsValue) -> JsValue {
        let (verdict, body) = transport::verdict(answer, Want::Form);
        let answered = self.act(|tab| tab.answered(verdict));
        if answered.sent {
            self.refresh(&body);
        }
        transport::to_js(answered.request.as_ref())
    }

    /// The end of a flush (the lock released): the `error` events of refused
    /// batches and the `sync` event; the counts, or the error of the failed
    /// attempt.
    #[inline(never)]
    pub(crate) fn done(&self) -> Result<JsValue, JsValue> {
        let done = self.act(Tab::done);
        let result = counts(done.counts);
        if done.counts.any() {
            self.emit("sync", &result);
        }
        match done.failure {
            Some(failure) => Err(failure_js(failure)),
            None => Ok(result),
        }
    }

    /// A step of the flush lease (where Web Locks are missing).
    #[inline(never)]
    pub(crate) fn lease(&self, step: Lease) -> bool {
        self.st().tab.lease(step)
    }
}

/// The loaded experiment with this uuid, or the `unknown-experiment` error
/// (not generic: [`Client::with`] and [`Client::decide`] are).
#[inline(never)]
fn find<'a>(experiments: &'a [Loaded], uuid: &str) -> Result<&'a Loaded, JsValue> {
    experiments
        .iter()
        .find(|e| e.uuid == uuid)
        .ok_or_else(unknown)
}

/// The `unknown-experiment` error.
#[inline(never)]
fn unknown() -> JsValue {
    error::new(
        Code::UnknownExperiment,
        None,
        "There is no such experiment.",
    )
}

/// The `{ sent, dropped, requeued }` object of a `sync` event.
fn counts(c: Counts) -> JsValue {
    glue::counts(c.sent as f64, c.dropped as f64, c.requeued as f64)
}

/// The `MynaError` of a failed attempt or a refused batch.
fn failure_js(failure: Failure) -> JsValue {
    failure.problem.map_or(JsValue::UNDEFINED, |p| {
        error::to_js(&p, failure.from_server)
    })
}

/// The `MynaError` of the form at `list[i]` (`experiments[2].variants[0].weight`:
/// every problem of a form has a path).
fn form_problem(mut problem: Problem, list: &str, i: usize) -> JsValue {
    for m in &mut problem.messages {
        let mut path = String::from(list);
        path.push('[');
        push_decimal(&mut path, i as u64);
        path.push_str("].");
        path.push_str(m.path.as_deref().unwrap_or_default());
        m.path = Some(path);
    }
    error::to_js(&problem, false)
}
