//! The client's rules for one tab, without the browser: the visitor's
//! decisions and their claims, the queue, its persistence, its delivery
//! (each step of a flush), adopting other tabs' queues and page life. Pure
//! over [`Host`] and tested natively (several tabs on one storage, a clock
//! the tests move); `client` is the shell that converts JS values, runs
//! the [`Effect`]s asked for and calls back here at each step.
//!
//! Storage protocol (several tabs share one localStorage): each tab keeps
//! its own queue under `<ns>:t:<tab>`, written at the end of the task that
//! changed it: the events queued since the last write as one record, other
//! changes by rewriting it whole ([`persist`]), as every
//! [`persist::HEARTBEAT_MS`] while it holds events (a heartbeat). A tab whose
//! page is hidden or closed beacons everything, seals its batches and marks
//! its queue *released*; a flushing tab (holding the flush lock) adopts
//! released queues, those whose heartbeat is older than [`STALE_MS`] (a
//! crashed tab) and those of SDKs before records (`<ns>:q:<tab>`). Adopted
//! batches keep their ids: a batch sent by two tabs is counted once.

use alloc::string::String;
use alloc::vec::Vec;

use myna_core::event::{Event, new_event};
use myna_core::wire::uuid_text;
use myna_core::{Code, Problem};
use uuid::Uuid;

use crate::api::{Request, Server};
use crate::claims::Claims;
use crate::delivery::{Backoff, Counts, Failure, Run, Step};
use crate::host::{Host, OpenClient};
use crate::lock::{self, Lease};
use crate::persist::{self, Journal};
use crate::queue::{Bounds, Queue};
use crate::retry::Verdict;
use crate::sticky::{self, Claim, Suggestion};
use crate::{storage, stored};

/// A queue whose owner has shown no sign of life this long (ms) may be adopted.
pub(crate) const STALE_MS: f64 = 15.0 * 60_000.0;
/// Look for queues left by other tabs every this many ticks.
const ORPHAN_TICKS: u32 = 10;

/// What a tab is told at its start (from the options).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The server and how to reach it.
    pub(crate) server: Server,
    /// Flush once this many events are queued.
    pub(crate) batch_size: usize,
    /// How big the queue may grow.
    pub(crate) bounds: Bounds,
    /// Flush this often (ms).
    pub(crate) flush_interval_ms: f64,
    /// The storage namespace.
    pub(crate) ns: String,
}

/// What the shell must do for the tab, once the tab is released (a page's
/// listener may call back into the SDK).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Call [`Tab::persist`] at the end of the task (a microtask).
    Persist,
    /// Start a flush nobody awaits (its runs are counted already).
    Flush,
    /// Tick every `ms` and listen to page events; 0 stops them.
    Listen(f64),
    /// Tell the page's `error` listeners: the queue or storage was full.
    QueueFull {
        /// Events dropped.
        dropped: usize,
        /// Why.
        message: &'static str,
    },
    /// Tell the page's `error` listeners: the server refused a batch.
    Refused(Failure),
    /// Tell the page's `sync` listeners.
    Sync(Counts),
}

/// A tick or a page event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageEvent {
    /// The timer (`flushIntervalMs`).
    Tick,
    /// The listeners started (after the task that connected).
    Start,
    /// The page is hidden, frozen or going away.
    Hidden,
    /// The page is shown again.
    Visible,
    /// Another tab changed storage.
    Storage,
    /// The network is back.
    Online,
}

impl PageEvent {
    /// The event `js/glue.js` names (`"tick"`, or the DOM event's type, or
    /// `"hidden"` / `"visible"` for a visibility change).
    pub(crate) fn from_name(name: &str) -> Option<PageEvent> {
        Some(match name {
            "tick" => PageEvent::Tick,
            "start" => PageEvent::Start,
            "pagehide" | "freeze" | "hidden" => PageEvent::Hidden,
            "pageshow" | "visible" => PageEvent::Visible,
            "storage" => PageEvent::Storage,
            "online" => PageEvent::Online,
            _ => return None,
        })
    }
}

/// How a flush ended ([`Tab::done`]).
#[derive(Debug, PartialEq)]
pub(crate) struct Done {
    /// What it did (a `sync` event when any).
    pub(crate) counts: Counts,
    /// The attempt that failed.
    pub(crate) failure: Option<Failure>,
}

/// What came of an answer during a flush ([`Tab::answered`]).
#[derive(Debug, PartialEq)]
pub(crate) struct Answered {
    /// The next request, if the flush goes on.
    pub(crate) request: Option<Request>,
    /// The answer confirmed a batch: its read form has fresh weights.
    pub(crate) sent: bool,
}

/// One tab's client.
pub(crate) struct Tab<H: Host> {
    host: H,
    /// This tab's id (its queue key).
    id: String,
    settings: Settings,
    queue: Queue<H::Number>,
    claims: Claims,
    backoff: Backoff,
    /// The flush running (flushes run one at a time).
    run: Run,
    effects: Vec<Effect>,
    /// Events pushed out of the full queue since the page was last told
    /// (one `error` and one `sync` event per burst, at the next write).
    dropped: usize,
    persist_pending: bool,
    /// Flushes queued or running.
    runs: u32,
    released: bool,
    closed: bool,
    /// One of the page's open clients until closed.
    open: OpenClient<H>,
    /// Storage refused even our newest batch: we run from memory.
    memory_only: bool,
    /// What this tab has in storage (and when it last wrote it).
    journal: Journal,
    ticks: u32,
    /// The timer and the page listeners run.
    listening: bool,
}

impl<H: Host> Tab<H> {
    /// A tab that has done nothing yet.
    pub(crate) fn new(host: H, settings: Settings) -> Tab<H> {
        let capacity = if settings.server.jsonp {
            1
        } else {
            settings.batch_size
        };
        // `<sender>.<uuid>`: adopted only by tabs that send alike (`adoptable`).
        let id = settings.server.tab_id(&uuid_text(host.uuid(), false));
        Tab {
            open: OpenClient::new(&host),
            journal: Journal::new(&settings.ns, &id, host.now()),
            id,
            queue: Queue::new(capacity, H::Number::default()),
            claims: Claims::new(&settings.ns),
            backoff: Backoff::default(),
            run: Run::default(),
            effects: Vec::new(),
            dropped: 0,
            persist_pending: false,
            runs: 0,
            released: false,
            closed: false,
            memory_only: false,
            ticks: 0,
            listening: false,
            settings,
            host,
        }
    }

    /// The effects asked for since the last call.
    pub(crate) fn take_effects(&mut self) -> Vec<Effect> {
        core::mem::take(&mut self.effects)
    }

    /// The server and how to reach it.
    pub(crate) fn server(&self) -> &Server {
        &self.settings.server
    }

    /// How many events this tab has queued.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The experiments are loaded: asks for the timer and the page
    /// listeners (which start after the task that connected, then send
    /// what earlier pages left queued: [`PageEvent::Start`]).
    pub(crate) fn start(&mut self) {
        self.effects
            .push(Effect::Listen(self.settings.flush_interval_ms));
        self.listening = true;
    }

    // ---- Decisions -------------------------------------------------------

    /// The sticky variant's id, or one drawn by weight (queueing one view),
    /// for the experiment `uuid` whose variants (in order) have `weights`.
    pub(crate) fn suggest(
        &mut self,
        uuid: &str,
        variants: &[String],
        weights: &[f64],
    ) -> Result<String, Problem> {
        let state = self.claims.state(&self.host, uuid);
        let (id, fresh) = match sticky::suggest(&state, variants, weights, self.host.random()) {
            Suggestion::Again(id) => (id, false),
            Suggestion::Fresh(i) => match variants.get(i) {
                Some(id) => (id.clone(), true),
                None => return Err(no_variants()),
            },
            Suggestion::Nothing => return Err(no_variants()),
        };
        if fresh {
            let event = self.validate(variants, "view", &id, None)?;
            self.record_view(uuid, &id, event, false);
        }
        self.claims.show(uuid, Some(&id));
        Ok(id)
    }

    /// Shows a given variant: queues a view and makes it the sticky one.
    pub(crate) fn view(
        &mut self,
        uuid: &str,
        variants: &[String],
        variant: &str,
    ) -> Result<(), Problem> {
        let event = self.validate(variants, "view", variant, None)?;
        self.record_view(uuid, variant, event, true);
        Ok(())
    }

    /// Claims the view in the visitor's shared state, then queues it;
    /// `shown`: the page's own `view`, not a draw of `suggest`.
    fn record_view(&mut self, uuid: &str, variant: &str, event: Event, shown: bool) {
        let state = self.claims.state(&self.host, uuid);
        let viewed = if shown { sticky::shown } else { sticky::view };
        let (next, claim) = viewed(&state, variant, self.token());
        self.claims.show(uuid, Some(variant));
        self.set_sticky(uuid, next);
        self.enqueue(uuid, event, claim);
    }

    /// Rewards the visitor's last view once; whether a reward was queued.
    pub(crate) fn reward(
        &mut self,
        uuid: &str,
        variants: &[String],
        amount: Option<f64>,
    ) -> Result<bool, Problem> {
        // The shared state: another tab's reward is in it.
        let state = self.claims.state(&self.host, uuid);
        let Some(variant) = state.variant.clone() else {
            return Err(Problem::new(
                Code::NoView,
                "Nothing to reward: the visitor has not viewed this experiment.",
            ));
        };
        // Validated first: a bad amount is an error even when nothing would be recorded.
        let event = self.validate(variants, "reward", &variant, amount)?;
        // Not for a variant other than the one this tab shows (tabs that drew at once).
        match sticky::reward(&state) {
            sticky::Reward::Record(_) if self.claims.shows(uuid, &variant) => {
                let (next, claim) = sticky::rewarded(&state, self.token(), self.token());
                self.set_sticky(uuid, next);
                self.enqueue(uuid, event, claim);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Forgets this visitor's variant of the experiment (its views stay
    /// remembered, for the claims of events still queued).
    pub(crate) fn unstick(&mut self, uuid: &str) {
        let state = self.claims.state(&self.host, uuid);
        self.claims.show(uuid, None);
        // Nothing shown, nothing to write (`suggest` and `view` show one).
        if state.variant.is_some() {
            self.set_sticky(uuid, sticky::unstuck(&state));
        }
    }

    /// A random token naming a view or a reward in the visitor's claims (32
    /// bits: the few tabs of one visitor that act at once never draw the
    /// same; never 0, which means none).
    fn token(&self) -> u64 {
        (self.host.random() * 4_294_967_295.0) as u64 + 1
    }

    /// Changes the visitor's state (written now if another client may read it).
    fn set_sticky(&mut self, uuid: &str, state: sticky::Sticky) {
        self.claims.set(uuid, state);
        if self.host.page().crowded() {
            self.claims.write(&self.host);
        }
        self.schedule_persist();
    }

    /// Asks for [`Tab::persist`] at the end of the task, unless it is asked
    /// for already.
    fn schedule_persist(&mut self) {
        if !core::mem::replace(&mut self.persist_pending, true) {
            self.effects.push(Effect::Persist);
        }
    }

    // ---- Recording -------------------------------------------------------

    /// Core's validation of one event, now.
    fn validate(
        &self,
        variants: &[String],
        typename: &str,
        variant: &str,
        amount: Option<f64>,
    ) -> Result<Event, Problem> {
        let now = self.host.now() as i64;
        new_event(typename, variant, amount, variants, now).map_err(Problem::many)
    }

    /// Queues a validated event with its claim; stores it at the end of the
    /// task, flushes at batch size.
    fn enqueue(&mut self, uuid: &str, event: Event, claim: Claim) {
        let t = self.host.now();
        if !self.queue.is_empty() && t - self.journal.beat > STALE_MS / 2.0 {
            // Asleep long enough that another tab may have adopted our
            // queue: what it may have taken never grows again.
            self.seal(None);
        }
        let host = &self.host;
        self.queue.push(uuid, event, claim, || host.uuid());
        // Told once per burst, at the write that follows it.
        self.dropped += self.queue.enforce(self.settings.bounds);
        self.schedule_persist();
        if self.queue.len() >= self.settings.batch_size && self.backoff.due(t) {
            self.background_flush();
        }
    }

    /// Seals the batch with this id, or every batch, after dropping the
    /// events whose claims lost to another tab's (judged on the visitor's
    /// state as it is stored now).
    fn seal(&mut self, id: Option<Uuid>) {
        self.claims.write(&self.host);
        self.queue.seal_settled(id, self.claims.judge(&self.host));
    }

    /// Writes the visitor's states that changed and what changed of this
    /// tab's queue (or removes it when empty), by [`persist`]'s rules.
    /// Events pushed out of a full queue since the last write are told
    /// here, once.
    pub(crate) fn persist(&mut self) {
        self.claims.write(&self.host);
        let t = self.host.now();
        let overflow = core::mem::take(&mut self.dropped);
        if overflow > 0 {
            self.queue_full(
                overflow,
                "The queue was full: the oldest events were dropped.",
            );
        }
        self.persist_pending = false;
        if self.released {
            // Another tab may adopt what a released queue stores and send
            // it at once: sealed before it is stored, it never grows again.
            self.seal(None);
        }
        let written = self
            .journal
            .write(&self.host, &mut self.queue, t, self.released);
        let newly_memory_only = written.memory_only && !self.memory_only;
        self.memory_only = written.memory_only;
        if written.dropped > 0 || newly_memory_only {
            self.queue_full(written.dropped, persist::full_storage(written.dropped));
        }
    }

    // ---- Page life -------------------------------------------------------

    /// A tick or a page event.
    pub(crate) fn page_event(&mut self, event: PageEvent) {
        match event {
            PageEvent::Tick => self.tick(),
            PageEvent::Start => self.look_for_queues(),
            PageEvent::Hidden => self.hidden(),
            PageEvent::Visible => self.visible(),
            // Another tab changed the visitor's state: read it afresh.
            PageEvent::Storage => self.claims.forget(),
            PageEvent::Online => {
                // The network is back: retry now, unless the server asked to wait.
                self.backoff.online();
                self.background_flush();
            }
        }
    }

    /// The page is going away (or hidden): beacon everything, keep it queued
    /// (sealed) until a later confirmed send, and let other tabs adopt it.
    fn hidden(&mut self) {
        self.seal(None);
        self.released = true;
        let sends = self.settings.server.beacons(&self.queue, self.sent_at());
        for (url, body) in sends {
            if !self.host.beacon(&url, &body) {
                break; // the browser's beacon quota is used up
            }
        }
        self.persist();
        // A page going away must not hold up the others' flushes.
        self.lease(Lease::Give);
    }

    /// The page is visible again: the queue is ours again.
    fn visible(&mut self) {
        if self.closed {
            return;
        }
        self.released = false;
        if !self.queue.is_empty() {
            self.persist();
        }
    }

    fn tick(&mut self) {
        let t = self.host.now();
        if self.closed {
            return;
        }
        self.ticks = self.ticks.wrapping_add(1);
        let nonempty = !self.queue.is_empty();
        if nonempty && t - self.journal.beat > STALE_MS / 2.0 {
            self.seal(None);
        }
        if nonempty {
            self.persist(); // the heartbeat, once a minute
        }
        self.journal.sweep(&self.host);
        let due = nonempty && self.backoff.due(t);
        if due || self.ticks.is_multiple_of(ORPHAN_TICKS) {
            self.background_flush();
        }
    }

    /// Stops the timer and the listeners; the queue is sealed and released
    /// (the next page, or another tab, sends it).
    pub(crate) fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.open.close();
        self.released = true;
        let listening = core::mem::take(&mut self.listening);
        self.seal(None);
        if listening {
            self.effects.push(Effect::Listen(0.0));
        }
        self.persist();
        self.lease(Lease::Give);
    }
}

/// The `suggest` of an experiment without variants.
fn no_variants() -> Problem {
    Problem::new(Code::UnknownVariant, "The experiment has no variants.")
}

mod flush;
#[cfg(test)]
mod tests;
