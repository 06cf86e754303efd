//! What the SDK keeps in localStorage, written and read back here only:
//! a tab's queue and its records ([`write_queue`], [`read_queue`],
//! [`Stored::merge`]) and the visitor's state
//! of an experiment ([`write_sticky`], [`read_sticky`]). Writing is
//! concatenation (a batch's record body is kept written); reading walks
//! what the browser parsed (core's [`Json`]), so the wasm holds no JSON
//! parser. Pure, tested natively (reading through serde_json).

use alloc::string::String;
use alloc::vec::Vec;

use myna_core::event::{Event, EventType, record_body};
use myna_core::wire::{Json, Number, parse_uuid, push_decimal, push_json_string};
use uuid::Uuid;

use crate::queue::{Batch, Queue};
use crate::sticky::{Claim, Entry, Sticky};

/// The whole queue as [`write_queue_from`] writes it (skipping none).
#[cfg(test)]
pub(crate) fn write_queue(
    queue: &Queue<impl Number>,
    heartbeat_ms: f64,
    released: bool,
    folded: Option<u32>,
) -> String {
    write_queue_from(queue, 0, heartbeat_ms, released, folded)
}

/// A tab's stored queue: `{"t":heartbeat,"r":released,"n":folded,"q":[{"e":expt,"s":sealed,"b":body,"k":claims}]}`,
/// where each `b` is the exact record body and `k` its events' claims
/// (`[seq,token,reward]` each, `[seq,token]` for a view; absent when
/// none has one). With `folded`, the whole queue (its *base*: it holds
/// every record numbered up to `folded`); without, a *record*: only the
/// events appended since [`Queue::mark_stored`] (no `n`). SDK versions
/// before records wrote the whole form without `n`, which reads alike.
/// The queue's `skip` oldest batches are left out (what storage would
/// hold once they are dropped).
pub(crate) fn write_queue_from(
    queue: &Queue<impl Number>,
    skip: usize,
    heartbeat_ms: f64,
    released: bool,
    folded: Option<u32>,
) -> String {
    let mut out = String::with_capacity(if folded.is_some() { queue.bytes() } else { 200 });
    out.push_str("{\"t\":");
    push_decimal(&mut out, heartbeat_ms.max(0.0) as u64);
    out.push_str(if released {
        ",\"r\":true"
    } else {
        ",\"r\":false"
    });
    if let Some(n) = folded {
        out.push_str(",\"n\":");
        push_decimal(&mut out, n.into());
    }
    out.push_str(",\"q\":[");
    let mut first = true;
    for b in queue.batches().iter().skip(skip) {
        let (json, claims) = b.events_since(folded.is_none());
        if json.is_empty() {
            continue;
        }
        let body = record_body(b.id, None, json);
        if !core::mem::take(&mut first) {
            out.push(',');
        }
        out.push_str("{\"e\":");
        push_json_string(&mut out, &b.experiment);
        out.push_str(if b.sealed {
            ",\"s\":true"
        } else {
            ",\"s\":false"
        });
        out.push_str(",\"b\":");
        out.push_str(&body);
        if claims.iter().any(|c| c.seq > 0) {
            out.push_str(",\"k\":[");
            for (i, c) in claims.iter().enumerate() {
                out.push_str(if i > 0 { ",[" } else { "[" });
                push_decimal(&mut out, u64::from(c.seq));
                out.push(',');
                push_decimal(&mut out, c.token);
                if c.reward > 0 || c.shown {
                    out.push(',');
                    push_decimal(&mut out, c.reward);
                }
                if c.shown {
                    out.push_str(",1");
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

/// A tab's queue as read back from storage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    /// When its owner last showed it was alive (epoch ms).
    pub(crate) heartbeat: f64,
    /// Whether its owner let go of it (page hidden or closed): any tab may take it.
    pub(crate) released: bool,
    /// A base: the number of the last record it holds (0 for a record).
    pub(crate) folded: u32,
    /// Its batches.
    pub(crate) batches: Vec<StoredBatch>,
}

/// One batch as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredBatch {
    /// The experiment uuid.
    pub(crate) experiment: String,
    /// Sealed?
    pub(crate) sealed: bool,
    /// The batch id (always there unless the entry was tampered with).
    pub(crate) id: Option<Uuid>,
    /// The events.
    pub(crate) events: Vec<Event>,
    /// Their claims (as many as events, or none).
    pub(crate) claims: Vec<Claim>,
}

impl Stored {
    /// Nothing (a record that does not read as one).
    pub(crate) fn empty() -> Stored {
        Stored {
            heartbeat: 0.0,
            released: false,
            folded: 0,
            batches: Vec::new(),
        }
    }

    /// The batches, ready for [`Queue::adopt`] (a stored batch without an id
    /// gets one from `new_id`).
    pub(crate) fn into_batches(
        self,
        number: impl Number,
        mut new_id: impl FnMut() -> Uuid,
    ) -> Vec<Batch> {
        self.batches
            .into_iter()
            .filter(|s| !s.events.is_empty())
            .map(|s| {
                let id = s.id.unwrap_or_else(&mut new_id);
                Batch::restored(id, &s.experiment, s.sealed, s.events, s.claims, number)
            })
            .collect()
    }

    /// Adds a later record: the events of a batch already here go after
    /// its own (its claims kept in step), a new batch after the others.
    pub(crate) fn merge(&mut self, later: Stored) {
        self.heartbeat = self.heartbeat.max(later.heartbeat);
        self.released |= later.released;
        for batch in later.batches {
            match self
                .batches
                .iter_mut()
                .find(|b| b.id.is_some() && b.id == batch.id)
            {
                Some(b) => {
                    b.claims.resize(b.events.len(), Claim::default());
                    b.events.extend(batch.events);
                    b.claims.extend(batch.claims);
                }
                None => self.batches.push(batch),
            }
        }
    }

    /// Whether a tab may take this queue over at `now_ms`: its owner let go of
    /// it, or has shown no sign of life for `stale_ms`.
    pub(crate) fn is_orphan(&self, now_ms: f64, stale_ms: f64) -> bool {
        self.released || now_ms - self.heartbeat > stale_ms
    }
}

/// Reads a tab's stored queue ([`write_queue`]), as parsed; `None` if it is
/// not one. Malformed events are skipped.
pub(crate) fn read_queue<J: Json>(value: &J) -> Option<Stored> {
    let heartbeat = value.field("t").number()?;
    let mut batches = Vec::new();
    for entry in value.field("q").items()? {
        let body = entry.field("b");
        let mut events = Vec::new();
        if let Some(listed) = body.field("events").items() {
            for e in listed {
                events.extend(read_event(&e));
            }
        }
        if let Some(experiment) = entry.field("e").text() {
            batches.push(StoredBatch {
                experiment,
                sealed: entry.field("s").boolean().unwrap_or(false),
                id: body.field("batch").text().and_then(|t| parse_uuid(&t)),
                events,
                claims: read_claims(&entry.field("k")),
            });
        }
    }
    Some(Stored {
        heartbeat,
        released: value.field("r").boolean().unwrap_or(false),
        folded: value.field("n").number().unwrap_or(0.0) as u32,
        batches,
    })
}

/// An event of a stored body (core's wire form, as written), if it is one.
fn read_event<J: Json>(e: &J) -> Option<Event> {
    Some(Event {
        typename: EventType::from_typename(&e.field("typename").text()?)?,
        variant: e.field("variant").text()?,
        amount: e.field("amount").number(),
        timestamp: e.field("timestamp").number()? as i64,
    })
}

/// The visitor's stored state of one experiment:
/// `{"v":"<variant>","r":<rewarded>,"c":[[seq,token,reward],…]}` (`v` and
/// `r` absent when nothing is shown; `c` absent when empty).
pub(crate) fn write_sticky(state: &Sticky) -> String {
    let mut out = String::from("{");
    if let Some(v) = &state.variant {
        out.push_str("\"v\":");
        push_json_string(&mut out, v);
        out.push_str(if state.rewarded {
            ",\"r\":true"
        } else {
            ",\"r\":false"
        });
    }
    if !state.views.is_empty() {
        out.push_str(if state.variant.is_some() {
            ",\"c\":["
        } else {
            "\"c\":["
        });
        for (i, e) in state.views.iter().enumerate() {
            out.push_str(if i > 0 { ",[" } else { "[" });
            for (j, n) in [u64::from(e.seq), e.token, e.reward]
                .into_iter()
                .enumerate()
            {
                if j > 0 {
                    out.push(',');
                }
                push_decimal(&mut out, n);
            }
            out.push_str(if e.shown { ",1]" } else { "]" });
        }
        out.push(']');
    }
    out.push('}');
    out
}

/// Reads the visitor's stored state ([`write_sticky`]), as parsed; the
/// default when there is none or it is not one.
pub(crate) fn read_sticky<J: Json>(value: Option<&J>) -> Sticky {
    let Some(value) = value else {
        return Sticky::default();
    };
    Sticky {
        variant: value.field("v").text(),
        rewarded: value.field("r").boolean().unwrap_or(false),
        views: read_claims(&value.field("c")),
    }
}

/// `[[seq, token, reward, shown], …]` as claims, `reward` and `shown` (1)
/// optional (a malformed one reads as no claim).
fn read_claims<J: Json>(value: &J) -> Vec<Entry> {
    let Some(list) = value.items() else {
        return Vec::new();
    };
    list.map(|e| {
        let mut n = [0.0; 4];
        if let Some(parts) = e.items() {
            for (slot, part) in n.iter_mut().zip(parts) {
                *slot = part.number().unwrap_or(0.0);
            }
        }
        Entry {
            seq: n[0] as u32,
            token: n[1] as u64,
            reward: n[2] as u64,
            shown: n[3] == 1.0,
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sticky::{rewarded, unstuck, view as viewed};
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

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn stored_form_is_json_holding_the_exact_bodies() {
        let mut q = queue(20);
        let mut next = ids();
        q.push("e1", view("a", 1), Claim::default(), &mut next);
        q.push("e\"2", view("b", 2), Claim::default(), &mut next);
        q.seal_settled(Some(Uuid::from_u128(1)), |_, _| true);
        let stored: Value = serde_json::from_str(&write_queue(&q, 1234.0, false, Some(0))).unwrap();
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
        let released: Value = serde_json::from_str(&write_queue(&q, 1.0, true, Some(0))).unwrap();
        assert_eq!(released["r"], true);
    }

    #[test]
    fn stored_batches_come_back_with_ids_seals_and_orphan_rules() {
        let mut q = queue(20);
        q.push("e", view("a", 1), Claim::default(), || Uuid::from_u128(5));
        q.seal_settled(None, |_, _| true);
        let stored = Stored {
            heartbeat: 1000.0,
            released: false,
            folded: 0,
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
    fn claims_are_stored_with_their_events() {
        let mut q = queue(10);
        let c = Entry {
            seq: 99_999,
            token: 4_294_967_295,
            reward: 4_294_967_295,
            shown: true,
        };
        q.push("e", view("a", 1), c, || Uuid::from_u128(1));
        let v = Entry {
            reward: 0,
            shown: false,
            ..c
        };
        q.push("e", view("a", 2), v, || Uuid::from_u128(1));
        let s = Entry { reward: 0, ..c };
        q.push("e", view("a", 3), s, || Uuid::from_u128(1));
        let stored: Value = serde_json::from_str(&write_queue(&q, 1.0, false, Some(0))).unwrap();
        let big = 4_294_967_295u64;
        assert_eq!(
            stored["q"][0]["k"],
            serde_json::json!([[99_999, big, big, 1], [99_999, big], [99_999, big, 0, 1]])
        );
        assert!(
            write_queue(&q, 1.0, false, Some(0)).len() <= q.bytes(),
            "the bound counts the claims"
        );
        let mut plain = queue(10);
        plain.push("e", view("a", 1), Claim::default(), || Uuid::from_u128(1));
        let stored: Value =
            serde_json::from_str(&write_queue(&plain, 1.0, false, Some(0))).unwrap();
        assert!(stored["q"][0].get("k").is_none(), "no claims, no field");
    }

    #[test]
    fn a_stored_queue_reads_back_as_it_was_written() {
        let mut q = queue(2);
        let mut next = ids();
        let claim = |seq, token, reward| Entry {
            seq,
            token,
            reward,
            shown: false,
        };
        q.push("e1", view("a", 1), claim(1, 11, 0), &mut next);
        q.push("e1", view("b\"\u{1}é", -2), claim(2, 12, 0), &mut next);
        q.push("e1", view("c", 3), Claim::default(), &mut next);
        let shown = Entry {
            shown: true,
            ..claim(3, 14, 0)
        };
        q.push("e1", view("c", 5), shown, &mut next);
        let reward = Event {
            typename: EventType::Reward,
            variant: "a".into(),
            amount: Some(0.25),
            timestamp: 4,
        };
        q.push("e2", reward, claim(1, 13, 4_294_967_295), &mut next);
        q.seal_settled(Some(Uuid::from_u128(1)), |_, _| true);
        let text = write_queue(&q, 1234.0, true, Some(0));
        let stored = read_queue(&&parse(&text)).unwrap();
        assert_eq!(stored.heartbeat, 1234.0);
        assert!(stored.released);
        assert_eq!(stored.into_batches(num, || unreachable!()), q.batches());
    }

    #[test]
    fn what_is_not_a_stored_queue_reads_as_none_and_bad_events_are_skipped() {
        for text in ["null", "[]", "{}", r#"{"t":"1","q":[]}"#, r#"{"t":1}"#] {
            assert_eq!(read_queue(&&parse(text)), None, "{text}");
        }
        let text = r#"{"t":5,"q":[
            {"e":"x","b":{"batch":"not a uuid","events":[
                {"typename":"view","variant":"a","timestamp":1},
                {"typename":"click","variant":"a","timestamp":2},
                {"typename":"view","variant":7,"timestamp":3},
                {"typename":"view","variant":"a"}]},
             "k":[[1,2],"bad",[3,"x",4]]},
            {"s":true,"b":{}}]}"#;
        let stored = read_queue(&&parse(text)).unwrap();
        assert!(!stored.released);
        assert_eq!(
            stored.batches.len(),
            1,
            "an entry without an experiment goes"
        );
        let batch = &stored.batches[0];
        assert_eq!((batch.id, batch.sealed), (None, false));
        assert_eq!(batch.events, vec![view("a", 1)]);
        let claim = |seq, token, reward| Entry {
            seq,
            token,
            reward,
            shown: false,
        };
        assert_eq!(
            batch.claims,
            vec![claim(1, 2, 0), claim(0, 0, 0), claim(3, 0, 4)]
        );
    }

    #[test]
    fn the_visitors_state_is_compact_json_and_reads_back() {
        let (state, _) = viewed(&Sticky::default(), "a\"b", 12);
        let (state, _) = rewarded(&state, 34, 0);
        assert_eq!(
            write_sticky(&state),
            r#"{"v":"a\"b","r":true,"c":[[1,12,34]]}"#
        );
        assert_eq!(read_sticky(Some(&&parse(&write_sticky(&state)))), state);
        assert_eq!(write_sticky(&Sticky::default()), "{}");
        assert_eq!(write_sticky(&unstuck(&state)), r#"{"c":[[1,12,34]]}"#);
        assert_eq!(
            read_sticky(Some(&&parse(&write_sticky(&unstuck(&state))))),
            unstuck(&state)
        );
        assert_eq!(read_sticky::<&Value>(None), Sticky::default());
        assert_eq!(read_sticky(Some(&&parse("[1]"))), Sticky::default());
        // A view the page showed itself is marked.
        let (state, _) = crate::sticky::shown(&state, "c", 13);
        assert_eq!(
            write_sticky(&state),
            r#"{"v":"c","r":false,"c":[[1,12,34],[2,13,0,1]]}"#
        );
        assert_eq!(read_sticky(Some(&&parse(&write_sticky(&state)))), state);
    }
}
