//! Events and record batches: the wire form, and the parsing and validation of
//! a record POST body or of JSONP record parameters against an experiment.
//!
//! Validation returns every problem, each with its `path`, never just the first.
//!
//! This file holds what the SDK compiles too (the event, its rules for an
//! event created now, its wire JSON, the record body and the JSONP record
//! query, written with [`crate::wire`]); the parsing of what a client sends
//! is [`parse`]'s, in the `std` build only (re-exported here).

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

#[cfg(feature = "std")]
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::problem::{Code, Message};
use crate::wire::{self, Number};

#[cfg(feature = "std")]
mod fast;
#[cfg(feature = "std")]
mod params;
#[cfg(feature = "std")]
mod parse;
#[cfg(feature = "std")]
pub use params::*;
#[cfg(feature = "std")]
pub use parse::*;

/// Most events one batch may carry.
pub const MAX_EVENTS: usize = 1000;
/// Events the SDK sends in one batch by default (its `batchSize`): the
/// server's `--record-limit` is at least this, so that those batches fit.
pub const DEFAULT_BATCH_EVENTS: usize = 20;
/// Largest request body, in bytes (1 MiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Most JSON values a record body may hold (every object, array, string,
/// number, boolean and null counts one; [`crate::json::parse_limited`]):
/// a full batch of the SDK's is about 5 per event, and anyone holding the
/// public API key may send one, so its parsed form stays within a few
/// megabytes whatever the body.
pub const MAX_RECORD_VALUES: usize = 32 * MAX_EVENTS;

/// What kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "std", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "std", serde(rename_all = "lowercase"))]
pub enum EventType {
    /// A visitor was shown the variant.
    View,
    /// A visitor who saw the variant converted.
    Reward,
}

impl EventType {
    /// The wire `typename`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::View => "view",
            EventType::Reward => "reward",
        }
    }

    /// The event type a wire `typename` names.
    pub fn from_typename(typename: &str) -> Option<EventType> {
        match typename {
            "view" => Some(EventType::View),
            "reward" => Some(EventType::Reward),
            _ => None,
        }
    }
}

/// A validated event, in its wire form.
///
/// Invariant (held by [`validate_event`] and [`new_event`]): a reward's
/// `amount` is `Some` finite value in `[0, 1]`; a view's is `None`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "std", derive(Serialize, Deserialize))]
pub struct Event {
    /// `view` or `reward`.
    pub typename: EventType,
    /// The variant id.
    pub variant: String,
    /// The reward amount (rewards only).
    #[cfg_attr(
        feature = "std",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub amount: Option<f64>,
    /// When it happened, in epoch milliseconds.
    pub timestamp: i64,
}

impl Event {
    /// The reward amount this event adds (0 for a view).
    pub fn reward(&self) -> f64 {
        self.amount.unwrap_or(0.0)
    }

    /// The JSONP record parameters for this event (without `apikey`/`callback`).
    #[cfg(feature = "std")]
    pub fn query_params(&self, batch: Option<Uuid>) -> Vec<(&'static str, String)> {
        self.query_params_with(batch, |amount| amount.to_string())
    }

    /// [`Event::query_params`] with the amount written by `number`, which may
    /// give any text that parses back to the same `f64`.
    pub fn query_params_with(
        &self,
        batch: Option<Uuid>,
        number: impl FnOnce(f64) -> String,
    ) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("typename", self.typename.as_str().to_owned()),
            ("variant", self.variant.clone()),
        ];
        if let Some(amount) = self.amount {
            params.push(("amount", number(amount)));
        }
        let mut timestamp = String::new();
        wire::push_integer(&mut timestamp, self.timestamp);
        params.push(("timestamp", timestamp));
        if let Some(batch) = batch {
            params.push(("batch", wire::uuid_text(batch, true)));
        }
        params
    }

    /// Appends this event's wire JSON: exactly what serde writes for it
    /// (`core/tests/wire.rs` holds the two equal), with the amount written
    /// by `number` and without serde_json, whose float formatting would
    /// weigh on the SDK's wasm.
    pub fn write_json(&self, out: &mut String, number: impl Number) {
        out.push_str("{\"typename\":\"");
        out.push_str(self.typename.as_str());
        out.push_str("\",\"variant\":");
        wire::push_json_string(out, &self.variant);
        if let Some(amount) = self.amount {
            out.push_str(",\"amount\":");
            out.push_str(&number.text(amount));
        }
        out.push_str(",\"timestamp\":");
        wire::push_integer(out, self.timestamp);
        out.push('}');
    }

    /// The JSONP record query of this event sent as batch `batch`:
    /// [`Event::query_params_with`], each part URL-encoded, joined by `&`
    /// (`core/tests/wire.rs` holds the two equal), then `sentAt` (the
    /// sender's clock as it leaves, epoch ms) when given. Written without
    /// the list of pairs, which weighs on the SDK's wasm.
    pub fn record_query(&self, batch: Uuid, number: impl Number, sent_at: Option<u64>) -> String {
        let mut out = String::from("typename=");
        out.push_str(self.typename.as_str());
        out.push_str("&variant=");
        out.push_str(&wire::url_encode(&self.variant));
        if let Some(amount) = self.amount {
            out.push_str("&amount=");
            out.push_str(&wire::url_encode(&number.text(amount)));
        }
        out.push_str("&timestamp=");
        wire::push_integer(&mut out, self.timestamp);
        out.push_str("&batch=");
        wire::push_uuid(&mut out, batch, true);
        push_sent_at(&mut out, "&sentAt=", sent_at);
        out
    }
}

/// A record POST body: `{"batch":"…","sentAt":…,"events":[…]}` (the wire
/// form of a batch with an id), where `events` is the events' wire JSON
/// ([`Event::write_json`]) joined by commas, and `sentAt` (the sender's
/// clock as it leaves, epoch ms: the server reads the timestamps on it) is
/// there when given.
pub fn record_body(batch: Uuid, sent_at: Option<u64>, events: &str) -> String {
    let mut out = String::with_capacity(events.len() + 80);
    out.push_str("{\"batch\":\"");
    wire::push_uuid(&mut out, batch, true);
    out.push('"');
    push_sent_at(&mut out, ",\"sentAt\":", sent_at);
    out.push_str(",\"events\":[");
    out.push_str(events);
    out.push_str("]}");
    out
}

/// Appends `label` and `sent_at` when there is one.
fn push_sent_at(out: &mut String, label: &str, sent_at: Option<u64>) {
    if let Some(at) = sent_at {
        out.push_str(label);
        wire::push_decimal(out, at);
    }
}

/// What an event is checked against: the variant ids of its experiment (the
/// server's [`crate::Experiment`], or the ids the SDK read from a read form).
pub trait Variants {
    /// Whether there is a variant with this id.
    fn has_variant(&self, id: &str) -> bool;
}

impl<S: AsRef<str>> Variants for [S] {
    fn has_variant(&self, id: &str) -> bool {
        self.iter().any(|v| v.as_ref() == id)
    }
}

#[cfg(feature = "std")]
impl Variants for crate::Experiment {
    fn has_variant(&self, id: &str) -> bool {
        crate::Experiment::has_variant(self, id)
    }
}

/// Validates an event the caller creates now (an SDK call: `view`, `reward`),
/// by the same rules as [`validate_event`], stamped `now_ms`. Problem paths
/// are the bare field names (`amount`, `variant`).
///
/// Taking no timestamp input, it needs no timestamp parsing, which keeps the
/// RFC 3339 parser out of the SDK's wasm; and its problems carry no `data`
/// (the SDK throws them, it never sends them), which keeps JSON values out.
pub fn new_event(
    typename: &str,
    variant: &str,
    amount: Option<f64>,
    experiment: &(impl Variants + ?Sized),
    now_ms: i64,
) -> Result<Event, Vec<Message>> {
    let known = experiment.has_variant(variant);
    let (typename, amount, problems) = check_event(typename, known, amount, "");
    finish_event(typename, variant, amount, Some(now_ms), problems)
}

/// The rules on an event's typename, variant (`known`: the experiment has
/// it) and amount; every problem, in field order, without `data`.
fn check_event(
    typename: &str,
    known: bool,
    amount: Option<f64>,
    prefix: &str,
) -> (Option<EventType>, Option<f64>, Vec<Message>) {
    let mut problems = Vec::new();
    let typename = EventType::from_typename(typename);
    if typename.is_none() {
        problems.push(unknown_typename(prefix));
    }
    if !known {
        problems.push(unknown_variant(prefix));
    }
    let amount = match (typename, amount) {
        (Some(EventType::View), Some(_)) => {
            problems.push(Message::at(
                Code::InvalidAmount,
                [prefix, "amount"].concat(),
                "A view takes no amount; only rewards do.",
            ));
            None
        }
        (Some(EventType::Reward), amount) => {
            let amount = amount.unwrap_or(1.0);
            if !(amount.is_finite() && (0.0..=1.0).contains(&amount)) {
                problems.push(invalid_amount([prefix, "amount"].concat()));
            }
            Some(amount)
        }
        _ => None,
    };
    (typename, amount, problems)
}

/// An event's `typename` that is neither `view` nor `reward`.
fn unknown_typename(prefix: &str) -> Message {
    Message::at(
        Code::UnknownTypename,
        [prefix, "typename"].concat(),
        "An event's typename must be `view` or `reward`.",
    )
}

/// A reward amount that is not a number from 0 to 1, at `path`.
fn invalid_amount(path: String) -> Message {
    Message::at(
        Code::InvalidAmount,
        path,
        "A reward amount must be a number from 0 to 1.",
    )
}

/// An event's `variant` the experiment does not have.
fn unknown_variant(prefix: &str) -> Message {
    Message::at(
        Code::UnknownVariant,
        [prefix, "variant"].concat(),
        "The experiment has no variant with this id.",
    )
}

fn finish_event(
    typename: Option<EventType>,
    variant: &str,
    amount: Option<f64>,
    timestamp: Option<i64>,
    problems: Vec<Message>,
) -> Result<Event, Vec<Message>> {
    match (typename, timestamp) {
        (Some(typename), Some(timestamp)) if problems.is_empty() => Ok(Event {
            typename,
            variant: variant.to_owned(),
            amount,
            timestamp,
        }),
        _ => Err(problems),
    }
}
