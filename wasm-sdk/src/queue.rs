//! The event queue: batches of validated events waiting for the server.
//!
//! Pure logic, tested natively: ids come from the caller, nothing here touches
//! the browser. A batch keeps its id from the moment it is created, so every
//! retry (fetch, JSONP or beacon) carries the same id and the server never
//! counts it twice. A batch is *sealed* once it may have left the page (a send
//! was attempted, a beacon went out, another tab may have taken it); a sealed
//! batch never gains events, so one id always names one content. Bodies are
//! core's wire form ([`myna_core::event::record_body`]).

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use myna_core::event::{Event, record_body};
use myna_core::wire::Number;
use uuid::Uuid;

use crate::sticky::Claim;

/// Events of one experiment sharing one batch id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Batch {
    /// The `batch` id sent with every attempt.
    pub(crate) id: Uuid,
    /// The experiment's uuid (the record endpoint is per experiment).
    pub(crate) experiment: String,
    /// Whether the batch may have left the page (then it never grows).
    pub(crate) sealed: bool,
    events: Vec<Event>,
    /// What each event claims of the visitor's views ([`crate::sticky`]).
    claims: Vec<Claim>,
    /// The events' wire JSON, comma-separated (kept so storing is a concatenation).
    json: String,
    /// How many of its events, and bytes of `json`, storage holds already
    /// (what [`Queue::mark_stored`] saw).
    stored: (usize, usize),
}

impl Batch {
    fn new(id: Uuid, experiment: &str) -> Batch {
        Batch {
            id,
            experiment: experiment.to_owned(),
            sealed: false,
            events: Vec::new(),
            claims: Vec::new(),
            json: String::new(),
            stored: (0, 0),
        }
    }

    /// A batch read back from storage: `events` with their `claims` (a
    /// missing claim is none).
    pub(crate) fn restored(
        id: Uuid,
        experiment: &str,
        sealed: bool,
        events: Vec<Event>,
        claims: Vec<Claim>,
        number: impl Number,
    ) -> Batch {
        let mut batch = Batch::new(id, experiment);
        let mut claims = claims.into_iter();
        for event in events {
            batch.push(event, claims.next().unwrap_or_default(), number);
        }
        batch.sealed = sealed;
        batch
    }

    /// The validated events, oldest first.
    pub(crate) fn events(&self) -> &[Event] {
        &self.events
    }

    /// The record POST body (core's wire form), with `"sentAt"` (the page's
    /// clock when it leaves: the server reads the timestamps on that clock)
    /// when `sent_at` is given. The batch's content, which its id names, is
    /// the events: a resend says a later `sentAt` for the same events.
    pub(crate) fn body(&self, sent_at: Option<u64>) -> String {
        let newest = self.events.iter().map(|e| e.timestamp).max();
        record_body(self.id, sent_after(sent_at, newest), &self.json)
    }

    /// The body of event `i` alone, under its own id [`unit_id`] (what JSONP
    /// sends, and a beacon in JSONP mode, so both name it the same way).
    pub(crate) fn unit_body(&self, i: usize, number: impl Number, sent_at: Option<u64>) -> String {
        let mut event = String::new();
        let e = self.events.get(i);
        if let Some(e) = e {
            e.write_json(&mut event, number);
        }
        let sent_at = sent_after(sent_at, e.map(|e| e.timestamp));
        record_body(unit_id(self.id, i), sent_at, &event)
    }

    /// The claims of its events, in order.
    #[cfg(test)]
    pub(crate) fn claims(&self) -> &[Claim] {
        &self.claims
    }

    /// Its events (or only those storage does not hold yet, when `fresh`):
    /// their wire JSON (comma-separated) and their claims.
    pub(crate) fn events_since(&self, fresh: bool) -> (&str, &[Claim]) {
        let (events, bytes) = if fresh { self.stored } else { (0, 0) };
        let json = self.json.get(bytes..).unwrap_or_default();
        (
            json.strip_prefix(",").unwrap_or(json),
            self.claims.get(events..).unwrap_or_default(),
        )
    }

    fn push(&mut self, event: Event, claim: Claim, number: impl Number) {
        if !self.json.is_empty() {
            self.json.push(',');
        }
        event.write_json(&mut self.json, number);
        self.events.push(event);
        self.claims.push(claim);
    }

    /// Keeps the events whose claim `keep` accepts; how many went. (Every
    /// event has its claim: [`Batch::push`] and the stored form keep them
    /// in step.)
    fn retain(
        &mut self,
        keep: &mut impl FnMut(&str, &Claim) -> bool,
        number: impl Number,
    ) -> usize {
        let before = self.events.len();
        let events = core::mem::take(&mut self.events);
        let claims = core::mem::take(&mut self.claims);
        for (event, claim) in events.into_iter().zip(claims) {
            if keep(&self.experiment, &claim) {
                self.events.push(event);
                self.claims.push(claim);
            }
        }
        if self.events.len() != before {
            self.rewrite(number);
        }
        before - self.events.len()
    }

    /// Drops its `n` oldest events; the tokens of the views among them go
    /// to `views`.
    fn drop_oldest(&mut self, n: usize, number: impl Number, views: &mut Vec<u64>) {
        let n = n.min(self.events.len());
        self.events.drain(..n);
        views.extend(view_tokens(self.claims.drain(..n.min(self.claims.len()))));
        self.rewrite(number);
    }

    fn rewrite(&mut self, number: impl Number) {
        self.json.clear();
        for (i, event) in self.events.iter().enumerate() {
            if i > 0 {
                self.json.push(',');
            }
            event.write_json(&mut self.json, number);
        }
    }

    /// Bytes this batch takes in storage (its body, its claims and a little
    /// framing; a claim takes at most 32: `[seq,token,reward,1],` with
    /// 32-bit tokens, a seq under 100,000, and a drawn view's without its
    /// reward).
    fn bytes(&self) -> usize {
        // Every claim counted (one without a seq, from before claims, is not
        // stored): constant time, as enforcing the bounds at each event needs.
        self.json.len() + self.experiment.len() + 80 + self.claims.len() * 32
    }
}

/// The `sentAt` of a request: the page's clock as it leaves, or the newest
/// event's time when that is later (the clock was set back since the
/// events were queued, say a clock days fast corrected: they would read as
/// from the future and be refused).
pub(crate) fn sent_after(sent_at: Option<u64>, newest: Option<i64>) -> Option<u64> {
    sent_at.map(|t| t.max(newest.unwrap_or(0).max(0) as u64))
}

/// The id of event `i` of batch `id` when events travel one per request
/// (JSONP): the batch id itself for the first, then ids differing in the last
/// bits, so a 1-event batch keeps its id and every retry names each event alike.
pub(crate) fn unit_id(id: Uuid, i: usize) -> Uuid {
    // The id as a big-endian number XOR `i`, byte by byte (u128 arithmetic
    // weighs on the wasm).
    let mut bytes = *id.as_bytes();
    for (b, x) in bytes[8..].iter_mut().zip((i as u64).to_be_bytes()) {
        *b ^= x;
    }
    Uuid::from_bytes(bytes)
}

/// The tokens of the views among `claims` (a view's claim names no reward;
/// one without a seq claims nothing).
fn view_tokens(claims: impl Iterator<Item = Claim>) -> impl Iterator<Item = u64> {
    claims
        .filter(|c| c.seq != 0 && c.reward == 0)
        .map(|c| c.token)
}

/// How big the queue may grow before the oldest events are dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bounds {
    /// Most events kept.
    pub(crate) max_events: usize,
    /// Most bytes kept (as stored).
    pub(crate) max_bytes: usize,
}

/// The batches of one tab, oldest first; `N` writes their amounts.
#[derive(Debug, Clone)]
pub(crate) struct Queue<N> {
    batches: Vec<Batch>,
    /// Changed since [`Queue::mark_stored`] otherwise than by events
    /// appended (dropped, removed, adopted): storage needs it whole.
    reshaped: bool,
    /// Most events in one batch (1 for JSONP: one event a request).
    capacity: usize,
    number: N,
}

impl<N: Number> Queue<N> {
    /// An empty queue whose batches hold at most `capacity` events (at least 1,
    /// at most core's limit for one record call).
    pub(crate) fn new(capacity: usize, number: N) -> Queue<N> {
        Queue {
            batches: Vec::new(),
            reshaped: false,
            capacity: capacity.clamp(1, myna_core::event::MAX_EVENTS),
            number,
        }
    }

    /// What writes the amounts.
    pub(crate) fn number(&self) -> N {
        self.number
    }

    /// Appends a validated event (and its claim) to its experiment's newest
    /// open batch, opening a new batch (with the id `new_id` gives) when
    /// there is none or it is full.
    pub(crate) fn push(
        &mut self,
        experiment: &str,
        event: Event,
        claim: Claim,
        new_id: impl FnOnce() -> Uuid,
    ) {
        let (capacity, number) = (self.capacity, self.number);
        // Only the experiment's newest open batch may grow: its events stay
        // oldest first across batches (a trimmed older one takes no more).
        let open = self
            .batches
            .iter_mut()
            .rev()
            .find(|b| b.experiment == experiment && !b.sealed)
            .filter(|b| b.events.len() < capacity);
        match open {
            Some(batch) => batch.push(event, claim, number),
            None => {
                let mut batch = Batch::new(new_id(), experiment);
                batch.push(event, claim, number);
                self.batches.push(batch);
            }
        }
    }

    /// Seals the batch with this id, or every batch (`None`), first keeping
    /// only the events of not yet sealed batches whose claims `keep`
    /// accepts (a batch that loses every event goes): a batch may shrink
    /// only before it is sealed, so one id always names one content. How
    /// many events went.
    pub(crate) fn seal_settled(
        &mut self,
        id: Option<Uuid>,
        mut keep: impl FnMut(&str, &Claim) -> bool,
    ) -> usize {
        let number = self.number;
        let mut gone = 0;
        for b in &mut self.batches {
            if !b.sealed && id.is_none_or(|id| id == b.id) {
                gone += b.retain(&mut keep, number);
                b.sealed = true;
            }
        }
        self.batches.retain(|b| !b.events.is_empty());
        self.reshaped |= gone > 0;
        gone
    }

    /// Whether the queue changed since [`Queue::mark_stored`] otherwise
    /// than by events appended (a batch sealed without losing any is not a
    /// change: whoever reads a stored queue seals it).
    pub(crate) fn reshaped(&self) -> bool {
        self.reshaped
    }

    /// Whether events were appended since [`Queue::mark_stored`].
    pub(crate) fn appended(&self) -> bool {
        self.batches.iter().any(|b| b.stored.0 < b.events.len())
    }

    /// Storage holds the queue as it is now.
    pub(crate) fn mark_stored(&mut self) {
        self.reshaped = false;
        for b in &mut self.batches {
            b.stored = (b.events.len(), b.json.len());
        }
    }

    /// How many events are queued.
    pub(crate) fn len(&self) -> usize {
        self.batches.iter().map(|b| b.events.len()).sum()
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Bytes the queue takes in storage, roughly.
    pub(crate) fn bytes(&self) -> usize {
        self.batches.iter().map(Batch::bytes).sum::<usize>() + 40
    }

    /// The batches, oldest first.
    pub(crate) fn batches(&self) -> &[Batch] {
        &self.batches
    }

    /// The unit body of event `i` of a batch ([`Batch::unit_body`]).
    pub(crate) fn unit_body(&self, batch: &Batch, i: usize, sent_at: Option<u64>) -> String {
        batch.unit_body(i, self.number, sent_at)
    }

    /// The batch with this id.
    pub(crate) fn get(&self, id: Uuid) -> Option<&Batch> {
        self.batches.iter().find(|b| b.id == id)
    }

    /// Removes the batch with this id (confirmed or dropped); its event count.
    pub(crate) fn remove(&mut self, id: Uuid) -> usize {
        match self.batches.iter().position(|b| b.id == id) {
            Some(i) => {
                self.reshaped = true;
                self.batches.remove(i).events.len()
            }
            None => 0,
        }
    }

    /// Keeps the queue within `bounds`: once over one, drops the oldest
    /// events until it is within nine tenths of both (whole batches while
    /// they fit in the excess), so a full queue is stored whole once per
    /// tenth of its room, not at every event, and with a view dropped, the
    /// rewards of it queued later; how many were dropped.
    pub(crate) fn enforce(&mut self, bounds: Bounds) -> usize {
        if self.len() <= bounds.max_events && self.bytes() <= bounds.max_bytes {
            return 0;
        }
        let events = bounds.max_events - bounds.max_events / 10;
        let bytes = bounds.max_bytes - bounds.max_bytes / 10;
        let mut dropped = 0;
        while !self.batches.is_empty() {
            let over_events = self.len().saturating_sub(events);
            let over_bytes = self.bytes().saturating_sub(bytes);
            if over_events == 0 && over_bytes == 0 {
                break;
            }
            let oldest = &mut self.batches[0];
            let len = oldest.events.len();
            // The excess in events: counted, or the bytes over by the
            // batch's average event (a claim included), rounded up.
            let n = over_events.max(over_bytes.div_ceil(oldest.bytes() / len.max(1)));
            let experiment = oldest.experiment.clone();
            let mut views = Vec::new();
            if n >= len {
                let gone = self.batches.remove(0);
                views.extend(view_tokens(gone.claims.iter().copied()));
                dropped += gone.events.len();
            } else {
                oldest.drop_oldest(n, self.number, &mut views);
                dropped += n;
            }
            // A reward whose view went would count without it, raising
            // its variant's rate: it goes too.
            if !views.is_empty() {
                for b in self
                    .batches
                    .iter_mut()
                    .filter(|b| b.experiment == experiment)
                {
                    dropped += b.retain(
                        &mut |_, c: &Claim| c.reward == 0 || !views.contains(&c.token),
                        self.number,
                    );
                }
                self.batches.retain(|b| !b.events.is_empty());
            }
        }
        self.reshaped |= dropped > 0;
        dropped
    }

    /// Drops the oldest batch whole (to make room when storage is full); how
    /// many events went.
    pub(crate) fn drop_oldest_batch(&mut self) -> usize {
        if self.batches.is_empty() {
            0
        } else {
            self.reshaped = true;
            self.batches.remove(0).events.len()
        }
    }

    /// Takes over batches another tab left behind: they arrive sealed (their
    /// owner may have sent them), after ours; ids already here are skipped.
    pub(crate) fn adopt(&mut self, batches: Vec<Batch>) {
        for mut batch in batches {
            if self.get(batch.id).is_none() {
                self.reshaped = true;
                batch.sealed = true;
                self.batches.push(batch);
            }
        }
    }
}

#[cfg(test)]
mod tests;
