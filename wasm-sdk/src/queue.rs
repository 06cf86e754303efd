//! The event queue: batches of validated events waiting for the server.
//!
//! Pure logic, tested natively: ids come from the caller, nothing here touches
//! the browser. A batch keeps its id from the moment it is created, so every
//! retry (fetch, JSONP or beacon) carries the same id and the server never
//! counts it twice. A batch is *sealed* once it may have left the page (a send
//! was attempted, a beacon went out, another tab may have taken it); a sealed
//! batch never gains events, so one id always names one content.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use myna_core::event::{Event, EventType};
use uuid::Uuid;

use crate::sticky::Claim;

/// Writes a finite `f64` as JSON: the SDK's [`crate::client::JsNumber`]
/// (the browser's own number formatting), or in native tests any function
/// (Rust's). A type rather than a function pointer: a call through a
/// pointer keeps a function table, and all it references, in the wasm.
pub trait Number: Copy {
    /// The JSON text of `x`.
    fn text(self, x: f64) -> String;
}

impl<F: Fn(f64) -> String + Copy> Number for F {
    fn text(self, x: f64) -> String {
        self(x)
    }
}

/// Events of one experiment sharing one batch id.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The `batch` id sent with every attempt.
    pub id: Uuid,
    /// The experiment's uuid (the record endpoint is per experiment).
    pub experiment: String,
    /// Whether the batch may have left the page (then it never grows).
    pub sealed: bool,
    events: Vec<Event>,
    /// What each event claims of the visitor's views ([`crate::sticky`]).
    claims: Vec<Claim>,
    /// The events' wire JSON, comma-separated (kept so storing is a concatenation).
    json: String,
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
        }
    }

    /// The validated events, oldest first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The record POST body: `{"batch":"…","events":[…]}` (core's wire
    /// form), with `"sentAt"` (the page's clock when it leaves, epoch ms:
    /// the server reads the timestamps on that clock) when `sent_at` is
    /// given. The batch's content, which its id names, is the events: a
    /// resend says a later `sentAt` for the same events.
    pub fn body(&self, sent_at: Option<u64>) -> String {
        let mut out = String::with_capacity(self.json.len() + 80);
        out.push_str("{\"batch\":\"");
        out.push_str(&uuid_text(self.id, true));
        push_sent_at(&mut out, "\",\"sentAt\":", sent_at);
        out.push_str(if sent_at.is_some() {
            ",\"events\":["
        } else {
            "\",\"events\":["
        });
        out.push_str(&self.json);
        out.push_str("]}");
        out
    }

    /// The body of event `i` alone, under its own id [`unit_id`] (what JSONP
    /// sends, and a beacon in JSONP mode, so both name it the same way).
    pub fn unit_body(&self, i: usize, number: impl Number, sent_at: Option<u64>) -> String {
        let mut event = String::new();
        if let Some(e) = self.events.get(i) {
            write_event(&mut event, e, number);
        }
        let mut out = String::from("{\"batch\":\"");
        out.push_str(&uuid_text(unit_id(self.id, i), true));
        out.push('"');
        push_sent_at(&mut out, ",\"sentAt\":", sent_at);
        [&out, ",\"events\":[", &event, "]}"].concat()
    }

    /// The claims of its events, in order.
    pub fn claims(&self) -> &[Claim] {
        &self.claims
    }

    fn push(&mut self, event: Event, claim: Claim, number: impl Number) {
        if !self.json.is_empty() {
            self.json.push(',');
        }
        write_event(&mut self.json, &event, number);
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

    fn drop_oldest(&mut self, n: usize, number: impl Number) {
        let n = n.min(self.events.len());
        self.events.drain(..n);
        self.claims.drain(..n.min(self.claims.len()));
        self.rewrite(number);
    }

    fn rewrite(&mut self, number: impl Number) {
        self.json.clear();
        for (i, event) in self.events.iter().enumerate() {
            if i > 0 {
                self.json.push(',');
            }
            write_event(&mut self.json, event, number);
        }
    }

    /// Bytes this batch takes in storage (its body, its claims and a little
    /// framing; a claim takes at most 30: `[seq,token,reward],` with 32-bit
    /// tokens and a view's without its reward).
    fn bytes(&self) -> usize {
        // Every claim counted (one without a seq, from before claims, is not
        // stored): constant time, as enforcing the bounds at each event needs.
        self.json.len() + self.experiment.len() + 80 + self.claims.len() * 30
    }
}

/// Appends `label` and `sent_at` when there is one.
fn push_sent_at(out: &mut String, label: &str, sent_at: Option<u64>) {
    if let Some(at) = sent_at {
        out.push_str(label);
        push_decimal(out, at);
    }
}

/// The id of event `i` of batch `id` when events travel one per request
/// (JSONP): the batch id itself for the first, then ids differing in the last
/// bits, so a 1-event batch keeps its id and every retry names each event alike.
pub fn unit_id(id: Uuid, i: usize) -> Uuid {
    // The id as a big-endian number XOR `i`, byte by byte (u128 arithmetic
    // weighs on the wasm).
    let mut bytes = *id.as_bytes();
    for (b, x) in bytes[8..].iter_mut().zip((i as u64).to_be_bytes()) {
        *b ^= x;
    }
    Uuid::from_bytes(bytes)
}

/// The lower-case text of a uuid: hyphenated, or the 32 digits alone
/// (what `uuid`'s `hyphenated()` and `simple()` write, without their code).
pub fn uuid_text(id: Uuid, hyphens: bool) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in id.as_bytes().iter().enumerate() {
        if hyphens && matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// Lower-case hexadecimal digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends one event in core's wire form (what serde writes for
/// [`Event`]; a native test holds the two equal), without serde_json, whose
/// float formatting would weigh on the wasm.
pub fn write_event(out: &mut String, event: &Event, number: impl Number) {
    out.push_str("{\"typename\":\"");
    out.push_str(event.typename.as_str());
    out.push_str("\",\"variant\":");
    write_string(out, &event.variant);
    if let Some(amount) = event.amount {
        out.push_str(",\"amount\":");
        out.push_str(&number.text(amount));
    }
    out.push_str(",\"timestamp\":");
    if event.timestamp < 0 {
        out.push('-');
    }
    push_decimal(out, event.timestamp.unsigned_abs());
    out.push('}');
}

/// The JSONP record parameters of one event sent under id `id`, URL-encoded:
/// core's [`Event::query_params_with`] as `transport::url::query` writes
/// them (a native test holds the two equal), without the uuid crate's
/// formatting and the list of pairs, which weigh on the wasm; then `sentAt`
/// (the page's clock now) when given.
pub fn unit_query(event: &Event, id: Uuid, number: impl Number, sent_at: Option<u64>) -> String {
    use crate::transport::url::encode;
    let mut out = String::from("typename=");
    out.push_str(event.typename.as_str());
    out.push_str("&variant=");
    out.push_str(&encode(&event.variant));
    if let Some(amount) = event.amount {
        out.push_str("&amount=");
        out.push_str(&encode(&number.text(amount)));
    }
    out.push_str("&timestamp=");
    if event.timestamp < 0 {
        out.push('-');
    }
    push_decimal(&mut out, event.timestamp.unsigned_abs());
    out.push_str("&batch=");
    out.push_str(&uuid_text(id, true));
    push_sent_at(&mut out, "&sentAt=", sent_at);
    out
}

/// Reads a decimal integer: ASCII digits only (no sign, no spaces), `None`
/// when empty or over `u64` (what `str::parse::<u64>` accepts, smaller).
pub fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for b in text.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Appends `n` in decimal (what `to_string` writes, without `core::fmt`).
pub fn push_decimal(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Appends `text` as a JSON string.
pub fn write_string(out: &mut String, text: &str) {
    // Byte by byte, copying the runs between escapes (every escaped byte is
    // ASCII, so the runs are whole characters): no UTF-8 decoding.
    out.push('"');
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            8 => "\\b",
            12 => "\\f",
            0..0x20 => "\\u00",
            _ => continue,
        };
        out.push_str(text.get(start..i).unwrap_or_default());
        out.push_str(escape);
        if escape.len() > 2 {
            // `\u00` and two hexadecimal digits
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
        start = i + 1;
    }
    out.push_str(text.get(start..).unwrap_or_default());
    out.push('"');
}

/// Reads a uuid in its hyphenated or simple text form (no error type, no
/// formatting: small in wasm).
pub fn parse_uuid(text: &str) -> Option<Uuid> {
    let mut bytes = [0u8; 16];
    let mut digits = 0;
    for b in text.bytes() {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            b'-' => continue,
            _ => return None,
        };
        let byte = bytes.get_mut(digits / 2)?;
        *byte = (*byte << 4) | d;
        digits += 1;
    }
    (digits == 32).then(|| Uuid::from_bytes(bytes))
}

/// How big the queue may grow before the oldest events are dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Most events kept.
    pub max_events: usize,
    /// Most bytes kept (as stored).
    pub max_bytes: usize,
}

/// The batches of one tab, oldest first; `N` writes their amounts.
#[derive(Debug, Clone)]
pub struct Queue<N> {
    batches: Vec<Batch>,
    /// Most events in one batch (1 for JSONP: one event a request).
    capacity: usize,
    number: N,
}

impl<N: Number> Queue<N> {
    /// An empty queue whose batches hold at most `capacity` events (at least 1,
    /// at most core's limit for one record call).
    pub fn new(capacity: usize, number: N) -> Queue<N> {
        Queue {
            batches: Vec::new(),
            capacity: capacity.clamp(1, myna_core::event::MAX_EVENTS),
            number,
        }
    }

    /// Appends a validated event (and its claim) to the open batch of its
    /// experiment, opening a new batch (with the id `new_id` gives) when
    /// there is none or it is full.
    pub fn push(
        &mut self,
        experiment: &str,
        event: Event,
        claim: Claim,
        new_id: impl FnOnce() -> Uuid,
    ) {
        let (capacity, number) = (self.capacity, self.number);
        let open = self
            .batches
            .iter_mut()
            .rev()
            .find(|b| b.experiment == experiment && !b.sealed && b.events.len() < capacity);
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
    pub fn seal_settled(
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
        gone
    }

    /// How many events are queued.
    pub fn len(&self) -> usize {
        self.batches.iter().map(|b| b.events.len()).sum()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Bytes the queue takes in storage, roughly.
    pub fn bytes(&self) -> usize {
        self.batches.iter().map(Batch::bytes).sum::<usize>() + 40
    }

    /// The batches, oldest first.
    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }

    /// The unit body of event `i` of a batch ([`Batch::unit_body`]).
    pub fn unit_body(&self, batch: &Batch, i: usize, sent_at: Option<u64>) -> String {
        batch.unit_body(i, self.number, sent_at)
    }

    /// The batch with this id.
    pub fn get(&self, id: Uuid) -> Option<&Batch> {
        self.batches.iter().find(|b| b.id == id)
    }

    /// Marks the batch with this id as possibly sent: it will never grow.
    pub fn seal(&mut self, id: Uuid) {
        if let Some(b) = self.batches.iter_mut().find(|b| b.id == id) {
            b.sealed = true;
        }
    }

    /// Seals every batch (before a beacon, or when another tab may take them).
    pub fn seal_all(&mut self) {
        for b in &mut self.batches {
            b.sealed = true;
        }
    }

    /// Removes the batch with this id (confirmed or dropped); its event count.
    pub fn remove(&mut self, id: Uuid) -> usize {
        match self.batches.iter().position(|b| b.id == id) {
            Some(i) => self.batches.remove(i).events.len(),
            None => 0,
        }
    }

    /// Drops the oldest events until the queue is within `bounds`; how many
    /// were dropped.
    pub fn enforce(&mut self, bounds: Bounds) -> usize {
        let mut dropped = 0;
        while !self.batches.is_empty()
            && (self.len() > bounds.max_events || self.bytes() > bounds.max_bytes)
        {
            // Over the count: that many; over the bytes: one at a time.
            let excess = self.len().saturating_sub(bounds.max_events).max(1);
            let oldest = &mut self.batches[0];
            if excess < oldest.events.len() {
                oldest.drop_oldest(excess, self.number);
                dropped += excess;
            } else {
                dropped += self.batches.remove(0).events.len();
            }
        }
        dropped
    }

    /// Drops the oldest batch whole (to make room when storage is full); how
    /// many events went.
    pub fn drop_oldest_batch(&mut self) -> usize {
        if self.batches.is_empty() {
            0
        } else {
            self.batches.remove(0).events.len()
        }
    }

    /// Takes over batches another tab left behind: they arrive sealed (their
    /// owner may have sent them), after ours; ids already here are skipped.
    pub fn adopt(&mut self, batches: Vec<Batch>) {
        for mut batch in batches {
            if self.get(batch.id).is_none() {
                batch.sealed = true;
                self.batches.push(batch);
            }
        }
    }

    /// The stored form: `{"t":heartbeat,"r":released,"q":[{"e":expt,"s":sealed,"b":body,"k":claims}]}`,
    /// where each `b` is the exact record body and `k` its events' claims
    /// (`[seq,token,reward]` each, `[seq,token]` for a view; absent when
    /// none has one).
    pub fn to_stored(&self, heartbeat_ms: f64, released: bool) -> String {
        let mut out = String::with_capacity(self.bytes());
        out.push_str("{\"t\":");
        push_decimal(&mut out, heartbeat_ms.max(0.0) as u64);
        out.push_str(if released {
            ",\"r\":true"
        } else {
            ",\"r\":false"
        });
        out.push_str(",\"q\":[");
        for (i, b) in self.batches.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"e\":");
            write_string(&mut out, &b.experiment);
            out.push_str(if b.sealed {
                ",\"s\":true"
            } else {
                ",\"s\":false"
            });
            out.push_str(",\"b\":");
            out.push_str(&b.body(None));
            if b.claims.iter().any(|c| c.seq > 0) {
                out.push_str(",\"k\":[");
                for (i, c) in b.claims.iter().enumerate() {
                    out.push_str(if i > 0 { ",[" } else { "[" });
                    push_decimal(&mut out, u64::from(c.seq));
                    out.push(',');
                    push_decimal(&mut out, c.token);
                    if c.reward > 0 {
                        out.push(',');
                        push_decimal(&mut out, c.reward);
                    }
                    out.push(']');
                }
                out.push(']');
            }
            out.push('}');
        }
        out.push_str("]}");
        out
    }
}

/// A tab's queue as read back from storage (the JS side walks the parsed JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// When its owner last showed it was alive (epoch ms).
    pub heartbeat: f64,
    /// Whether its owner let go of it (page hidden or closed): any tab may take it.
    pub released: bool,
    /// Its batches.
    pub batches: Vec<StoredBatch>,
}

/// One batch as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBatch {
    /// The experiment uuid.
    pub experiment: String,
    /// Sealed?
    pub sealed: bool,
    /// The batch id (always there unless the entry was tampered with).
    pub id: Option<Uuid>,
    /// The events.
    pub events: Vec<Event>,
    /// Their claims (as many as events, or none).
    pub claims: Vec<Claim>,
}

impl Stored {
    /// The batches, ready for [`Queue::adopt`] (a stored batch without an id
    /// gets one from `new_id`).
    pub fn into_batches(self, number: impl Number, mut new_id: impl FnMut() -> Uuid) -> Vec<Batch> {
        self.batches
            .into_iter()
            .filter(|s| !s.events.is_empty())
            .map(|s| {
                let mut batch = Batch::new(s.id.unwrap_or_else(&mut new_id), &s.experiment);
                let mut claims = s.claims.into_iter();
                for event in s.events {
                    batch.push(event, claims.next().unwrap_or_default(), number);
                }
                batch.sealed = s.sealed;
                batch
            })
            .collect()
    }

    /// Whether a tab may take this queue over at `now_ms`: its owner let go of
    /// it, or has shown no sign of life for `stale_ms`.
    pub fn is_orphan(&self, now_ms: f64, stale_ms: f64) -> bool {
        self.released || now_ms - self.heartbeat > stale_ms
    }
}

/// The event type named by a wire `typename`.
pub fn event_type(typename: &str) -> Option<EventType> {
    match typename {
        "view" => Some(EventType::View),
        "reward" => Some(EventType::Reward),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sticky::Entry;
    use myna_core::RecordBatch;
    use serde_json::Value;

    fn num(x: f64) -> String {
        serde_json::to_string(&x).unwrap()
    }

    fn queue(capacity: usize) -> Queue<fn(f64) -> String> {
        Queue::new(capacity, num)
    }

    fn view(variant: &str, ts: i64) -> Event {
        Event {
            typename: EventType::View,
            variant: variant.into(),
            amount: None,
            timestamp: ts,
        }
    }

    fn ids() -> impl FnMut() -> Uuid {
        let mut n = 0u128;
        move || {
            n += 1;
            Uuid::from_u128(n)
        }
    }

    #[test]
    fn uuids_are_written_read_and_derived_as_the_uuid_crate_does() {
        for n in [0u128, 1, 0x6f1c1a52_3b0e_4d8e_9f39_0c6f5c1d2a11, u128::MAX] {
            let id = Uuid::from_u128(n);
            assert_eq!(uuid_text(id, true), id.hyphenated().to_string());
            assert_eq!(uuid_text(id, false), id.simple().to_string());
            assert_eq!(parse_uuid(&id.hyphenated().to_string()), Some(id));
            assert_eq!(
                parse_uuid(&id.simple().to_string().to_uppercase()),
                Some(id)
            );
            for i in [0, 1, 7, 255, 65_536, usize::MAX] {
                assert_eq!(unit_id(id, i), Uuid::from_u128(n ^ i as u128));
            }
        }
        assert_eq!(parse_uuid("6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a1"), None);
        assert_eq!(parse_uuid("6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a111"), None);
        assert_eq!(parse_uuid("6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a1g"), None);
    }

    #[test]
    fn events_are_written_exactly_as_serde_writes_cores_event() {
        let tricky = "q\"b\\s/\n\r\t\u{8}\u{c}\u{1}\u{1f}é😀\u{2028}";
        let events = [
            view("a", 0),
            view(tricky, 1_795_708_773_232),
            Event {
                typename: EventType::Reward,
                variant: tricky.into(),
                amount: Some(0.3),
                timestamp: 9_000_000_000_000_000,
            },
            Event {
                typename: EventType::Reward,
                variant: "b".into(),
                amount: Some(1.0),
                timestamp: 5,
            },
        ];
        for event in events {
            let mut ours = String::new();
            write_event(&mut ours, &event, num);
            assert_eq!(ours, serde_json::to_string(&event).unwrap());
        }
    }

    #[test]
    fn jsonp_parameters_are_cores_url_encoded() {
        let tricky = "q\"b\\s/&=?+ é😀";
        let events = [
            view("a", 0),
            view(tricky, -5),
            Event {
                typename: EventType::Reward,
                variant: tricky.into(),
                amount: Some(0.3),
                timestamp: 1_795_708_773_232,
            },
            Event {
                typename: EventType::Reward,
                variant: "b".into(),
                amount: Some(1e-7),
                timestamp: 5,
            },
        ];
        for (i, event) in events.iter().enumerate() {
            let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef + i as u128);
            assert_eq!(
                unit_query(event, id, num, None),
                crate::transport::url::query(&event.query_params_with(Some(id), num))
            );
            assert_eq!(
                unit_query(event, id, num, Some(1_795_708_773_232)),
                [
                    crate::transport::url::query(&event.query_params_with(Some(id), num)),
                    "&sentAt=1795708773232".into()
                ]
                .concat()
            );
        }
    }

    #[test]
    fn decimals_are_written_as_to_string_writes_them() {
        for n in [0, 5, 10, 99, 1_795_708_773_232, u64::MAX] {
            let mut out = String::from("x");
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }

    #[test]
    fn decimals_are_read_as_str_parse_reads_them() {
        for text in [
            "0",
            "7",
            "0012",
            "18446744073709551615",
            "18446744073709551616",
            "",
        ] {
            assert_eq!(parse_decimal(text), text.parse::<u64>().ok(), "{text:?}");
        }
        for text in ["+1", "-1", " 1", "1 ", "1.5", "x"] {
            assert_eq!(parse_decimal(text), None, "{text:?}");
        }
    }

    #[test]
    fn uuids_parse_in_both_text_forms_and_nothing_else() {
        let id = Uuid::from_u128(0x6f1c1a52_3b0e_4d8e_9f39_0c6f5c1d2a11);
        assert_eq!(parse_uuid("6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11"), Some(id));
        assert_eq!(parse_uuid("6F1C1A523B0E4D8E9F390C6F5C1D2A11"), Some(id));
        for bad in [
            "",
            "6f1c1a52",
            "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a1",
            "g".repeat(32).as_str(),
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad}");
        }
        assert_eq!(parse_uuid(&"a".repeat(33)), None);
    }

    #[test]
    fn events_of_one_experiment_share_a_batch_until_full_or_sealed() {
        let mut next = ids();
        let mut q = queue(2);
        q.push("e1", view("a", 1), Claim::default(), &mut next);
        q.push("e2", view("a", 2), Claim::default(), &mut next);
        q.push("e1", view("b", 3), Claim::default(), &mut next);
        assert_eq!(q.batches().len(), 2);
        assert_eq!(q.batches()[0].events().len(), 2);
        q.push("e1", view("c", 4), Claim::default(), &mut next); // e1's batch is full
        assert_eq!(q.batches().len(), 3);
        q.seal_all();
        q.push("e2", view("d", 5), Claim::default(), &mut next); // sealed batches never grow
        assert_eq!(q.batches().len(), 4);
        assert_eq!(q.len(), 5);
        let ids: Vec<_> = q.batches().iter().map(|b| b.id.as_u128()).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
    }

    #[test]
    fn unit_ids_keep_a_single_events_batch_id_and_differ_per_event() {
        let id = Uuid::from_u128(0xabc0);
        assert_eq!(unit_id(id, 0), id);
        let ids: Vec<Uuid> = (0..1000).map(|i| unit_id(id, i)).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 1000);
        let mut q = queue(5);
        q.push("e", view("a", 1), Claim::default(), || id);
        q.push("e", view("b", 2), Claim::default(), || id);
        let one: RecordBatch =
            serde_json::from_str(&q.unit_body(&q.batches()[0], 1, None)).unwrap();
        assert_eq!(one.batch, Some(unit_id(id, 1)));
        assert_eq!(one.events, vec![view("b", 2)]);
    }

    #[test]
    fn jsonp_capacity_is_one_event_a_batch() {
        let mut q = queue(1);
        let mut next = ids();
        q.push("e", view("a", 1), Claim::default(), &mut next);
        q.push("e", view("a", 2), Claim::default(), &mut next);
        assert_eq!(q.batches().len(), 2);
    }

    #[test]
    fn body_is_cores_wire_form_and_parses_back() {
        let mut q = queue(10);
        q.push("e", view("a\"b", 7), Claim::default(), ids());
        let reward = Event {
            typename: EventType::Reward,
            variant: "a\"b".into(),
            amount: Some(0.25),
            timestamp: 8,
        };
        q.push("e", reward.clone(), Claim::default(), ids());
        let body = q.batches()[0].body(None);
        let back: RecordBatch = serde_json::from_str(&body).unwrap();
        assert_eq!(back.batch, Some(Uuid::from_u128(1)));
        assert_eq!(back.events, vec![view("a\"b", 7), reward.clone()]);
        // Sent: the page's clock rides along; the batch's id and events do not change.
        let sent: Value = serde_json::from_str(&q.batches()[0].body(Some(1234))).unwrap();
        assert_eq!(sent["sentAt"], 1234);
        let back: RecordBatch = serde_json::from_value(sent).unwrap();
        assert_eq!(back.batch, Some(Uuid::from_u128(1)));
        assert_eq!(back.events, vec![view("a\"b", 7), reward]);
        let unit: Value = serde_json::from_str(&q.unit_body(&q.batches()[0], 1, Some(99))).unwrap();
        assert_eq!(unit["sentAt"], 99);
        assert_eq!(unit["events"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn oldest_events_go_first_when_over_bounds() {
        let mut q = queue(3);
        let mut next = ids();
        for ts in 0..7 {
            q.push("e", view("a", ts), Claim::default(), &mut next);
        }
        let dropped = q.enforce(Bounds {
            max_events: 5,
            max_bytes: usize::MAX,
        });
        assert_eq!(dropped, 2);
        assert_eq!(q.len(), 5);
        let first: Vec<i64> = q.batches()[0]
            .events()
            .iter()
            .map(|e| e.timestamp)
            .collect();
        assert_eq!(first, [2]);
        // The trimmed batch's body still parses and matches its events.
        let back: RecordBatch = serde_json::from_str(&q.batches()[0].body(None)).unwrap();
        assert_eq!(back.events, vec![view("a", 2)]);

        let dropped = q.enforce(Bounds {
            max_events: 100,
            max_bytes: q.bytes() - 1,
        });
        assert_eq!(dropped, 1, "the oldest event goes for bytes");
        assert_eq!(q.len(), 4);
        // One big batch over the byte bound loses its oldest events, not all.
        let mut big = queue(100);
        for ts in 0..50 {
            big.push("e", view("a", ts), Claim::default(), &mut next);
        }
        let bound = big.bytes() / 2;
        big.enforce(Bounds {
            max_events: 100,
            max_bytes: bound,
        });
        assert!(big.bytes() <= bound && big.len() > 20, "{}", big.len());
        assert_eq!(big.batches()[0].events().last().unwrap().timestamp, 49);
        assert_eq!(
            q.enforce(Bounds {
                max_events: 0,
                max_bytes: 0
            }),
            4
        );
        assert!(q.is_empty());
    }

    #[test]
    fn stored_form_is_json_holding_the_exact_bodies() {
        let mut q = queue(20);
        let mut next = ids();
        q.push("e1", view("a", 1), Claim::default(), &mut next);
        q.push("e\"2", view("b", 2), Claim::default(), &mut next);
        q.seal(Uuid::from_u128(1));
        let stored: Value = serde_json::from_str(&q.to_stored(1234.0, false)).unwrap();
        assert_eq!(stored["t"], 1234);
        assert_eq!(stored["r"], false);
        let entries = stored["q"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        for (entry, batch) in entries.iter().zip(q.batches()) {
            assert_eq!(entry["e"], batch.experiment.as_str());
            assert_eq!(entry["s"], batch.sealed);
            let body: RecordBatch = serde_json::from_value(entry["b"].clone()).unwrap();
            let expected: RecordBatch = serde_json::from_str(&batch.body(None)).unwrap();
            assert_eq!(body, expected);
        }
        let released: Value = serde_json::from_str(&q.to_stored(1.0, true)).unwrap();
        assert_eq!(released["r"], true);
    }

    #[test]
    fn stored_batches_come_back_with_ids_seals_and_orphan_rules() {
        let mut q = queue(20);
        q.push("e", view("a", 1), Claim::default(), || Uuid::from_u128(5));
        q.seal_all();
        let stored = Stored {
            heartbeat: 1000.0,
            released: false,
            batches: vec![
                StoredBatch {
                    experiment: "e".into(),
                    sealed: true,
                    id: Some(Uuid::from_u128(5)),
                    events: vec![view("a", 1)],
                    claims: vec![],
                },
                StoredBatch {
                    experiment: "e".into(),
                    sealed: false,
                    id: None,
                    events: vec![],
                    claims: vec![],
                },
            ],
        };
        assert!(!stored.is_orphan(1010.0, 100.0));
        assert!(stored.is_orphan(1101.0, 100.0));
        assert!(
            Stored {
                released: true,
                ..stored.clone()
            }
            .is_orphan(0.0, 1e9)
        );
        assert_eq!(stored.into_batches(num, Uuid::nil), q.batches());
    }

    #[test]
    fn adopted_batches_arrive_sealed_and_once() {
        let mut mine = queue(20);
        let mut theirs = queue(20);
        theirs.push("e", view("a", 1), Claim::default(), || Uuid::from_u128(9));
        mine.push("e", view("b", 2), Claim::default(), || Uuid::from_u128(1));
        mine.adopt(theirs.batches().to_vec());
        mine.adopt(theirs.batches().to_vec());
        assert_eq!(mine.batches().len(), 2);
        assert!(mine.get(Uuid::from_u128(9)).unwrap().sealed);
        // Our open batch keeps growing; theirs never does.
        mine.push("e", view("c", 3), Claim::default(), || Uuid::from_u128(2));
        assert_eq!(mine.get(Uuid::from_u128(1)).unwrap().events().len(), 2);
        assert_eq!(mine.remove(Uuid::from_u128(9)), 1);
        assert_eq!(mine.remove(Uuid::from_u128(9)), 0);
    }

    #[test]
    fn a_batch_loses_events_whose_claims_lost_only_before_it_is_sealed() {
        let claim = |seq, token| Entry {
            seq,
            token,
            reward: 0,
        };
        let mut q = queue(10);
        q.push("e", view("a", 1), claim(1, 11), || Uuid::from_u128(1));
        q.push("e", view("b", 2), claim(1, 12), || Uuid::from_u128(1));
        q.push("f", view("c", 3), claim(1, 13), || Uuid::from_u128(2));
        // Token 12 holds seq 1 of experiment e: 11's view lost.
        let gone = q.seal_settled(Some(Uuid::from_u128(1)), |e, c| e != "e" || c.token == 12);
        assert_eq!(gone, 1);
        let sealed = q.get(Uuid::from_u128(1)).unwrap();
        assert!(sealed.sealed);
        assert_eq!(sealed.events(), &[view("b", 2)]);
        assert_eq!(sealed.claims(), &[claim(1, 12)]);
        let back: RecordBatch = serde_json::from_str(&sealed.body(None)).unwrap();
        assert_eq!(back.events, vec![view("b", 2)]);
        // Sealed: never judged again, whatever the claims say later.
        assert_eq!(
            q.seal_settled(None, |_, _| false),
            1,
            "only f's unsealed batch"
        );
        assert_eq!(q.batches().len(), 1, "a batch that lost every event goes");
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn claims_are_stored_with_their_events() {
        let mut q = queue(10);
        let c = Entry {
            seq: 99_999,
            token: 4_294_967_295,
            reward: 4_294_967_295,
        };
        q.push("e", view("a", 1), c, || Uuid::from_u128(1));
        let v = Entry { reward: 0, ..c };
        q.push("e", view("a", 2), v, || Uuid::from_u128(1));
        let stored: Value = serde_json::from_str(&q.to_stored(1.0, false)).unwrap();
        let big = 4_294_967_295u64;
        assert_eq!(
            stored["q"][0]["k"],
            serde_json::json!([[99_999, big, big], [99_999, big]])
        );
        assert!(
            q.to_stored(1.0, false).len() <= q.bytes(),
            "the bound counts the claims"
        );
        let mut plain = queue(10);
        plain.push("e", view("a", 1), Claim::default(), || Uuid::from_u128(1));
        let stored: Value = serde_json::from_str(&plain.to_stored(1.0, false)).unwrap();
        assert!(stored["q"][0].get("k").is_none(), "no claims, no field");
    }
}
