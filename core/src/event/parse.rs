//! Parsing and validation of what clients send: a record POST body (JSONP
//! record parameters are `params`), against an experiment (the server's
//! side; `std` only).
//!
//! A sender may say when, on its own clock, it sent the events (`sentAt`:
//! a top-level field of the body, a parameter of the JSONP call). Every
//! event's timestamp is then read on that clock and moved onto the
//! server's by `now - sentAt`, before any check: an event keeps its true
//! age however wrong the page's clock is (a visitor's clock two days fast
//! must not lose their events to the future-timestamp rule).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    Event, EventType, MAX_BODY_BYTES, MAX_EVENTS, MAX_RECORD_VALUES, check_event, finish_event,
};
use crate::json::JsonError;
use crate::model::Experiment;
use crate::problem::{BODY_PATH, Code, Message, Problem};
use crate::timestamp::{self, MAX_FUTURE_MS};

/// A validated batch, in its wire form: `{ "batch": uuid?, "events": [...] }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RecordBatch {
    /// Makes the call idempotent: a batch id already recorded is not counted again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Uuid>,
    /// The events, in order.
    pub events: Vec<Event>,
}

impl RecordBatch {
    /// Views and total reward this batch adds to each variant, in first-seen order.
    pub fn totals(&self) -> Vec<(&str, u64, f64)> {
        let mut out: Vec<(&str, u64, f64)> = Vec::new();
        for e in &self.events {
            let i = match out.iter().position(|(v, _, _)| *v == e.variant) {
                Some(i) => i,
                None => {
                    out.push((&e.variant, 0, 0.0));
                    out.len() - 1
                }
            };
            match e.typename {
                EventType::View => out[i].1 += 1,
                EventType::Reward => out[i].2 += e.reward(),
            }
        }
        out
    }
}

/// A timestamp as the client gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimestampInput<'a> {
    /// Epoch milliseconds (must be a non-negative integer).
    Millis(f64),
    /// RFC 3339 / ISO 8601 text.
    Text(&'a str),
}

/// An event as a client gave it, before validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventInput<'a> {
    /// Should be `view` or `reward`.
    pub typename: &'a str,
    /// Should name a variant of the experiment.
    pub variant: &'a str,
    /// Rewards only; absent means 1.0.
    pub amount: Option<f64>,
    /// Absent means `now`.
    pub timestamp: Option<TimestampInput<'a>>,
}

/// Validates one event against `experiment` at time `now_ms`.
///
/// `prefix` is prepended to each problem path: `events[3].` for a POST body,
/// empty for JSONP parameters and SDK calls.
pub fn validate_event(
    input: &EventInput,
    experiment: &Experiment,
    now_ms: i64,
    prefix: &str,
) -> Result<Event, Vec<Message>> {
    validate_event_sent(input, experiment, now_ms, prefix, 0)
}

/// [`validate_event`] for an event whose timestamp is on a sender's clock
/// that is `shift_ms` behind the server's (`now - sentAt`): the timestamp is
/// moved onto the server's clock, then checked.
pub fn validate_event_sent(
    input: &EventInput,
    experiment: &Experiment,
    now_ms: i64,
    prefix: &str,
    shift_ms: i64,
) -> Result<Event, Vec<Message>> {
    let known = experiment.has_variant(input.variant);
    let (typename, amount, mut problems) = check_event(input.typename, known, input.amount, prefix);
    // The server's answers say what was wrong.
    for m in &mut problems {
        m.data = match m.code {
            Code::UnknownTypename => Some(json!({ "typename": input.typename })),
            Code::UnknownVariant => Some(json!({ "variant": input.variant })),
            _ => None,
        };
    }
    let timestamp = match input.timestamp {
        None => Some(now_ms),
        Some(ts) => match timestamp_ms(ts)
            .map(|ms| ms.saturating_add(shift_ms))
            .filter(|ms| *ms >= 0)
        {
            Some(ms) if ms > now_ms.saturating_add(MAX_FUTURE_MS) => {
                problems.push(
                    Message::at(
                        Code::FutureTimestamp,
                        [prefix, "timestamp"].concat(),
                        "A timestamp may be at most 24 hours in the future.",
                    )
                    .with_data(json!({ "timestamp": ms, "now": now_ms })),
                );
                None
            }
            Some(ms) => Some(ms),
            None => {
                problems.push(invalid_timestamp([prefix, "timestamp"].concat()));
                None
            }
        },
    };
    finish_event(typename, input.variant, amount, timestamp, problems)
}

fn timestamp_ms(input: TimestampInput) -> Option<i64> {
    match input {
        TimestampInput::Millis(ms) => {
            // Integral, non-negative and exactly representable (below 2^53).
            let ok = ms.is_finite() && ms >= 0.0 && ms.fract() == 0.0 && ms < 9.0e15;
            #[allow(clippy::cast_possible_truncation)]
            ok.then_some(ms as i64)
        }
        TimestampInput::Text(text) => timestamp::parse_rfc3339(text).filter(|ms| *ms >= 0),
    }
}

/// Parses and validates a record POST body (JSON, or the same text sent as
/// `text/plain` by `sendBeacon`) against `experiment` at time `now_ms`.
///
/// Atomic: any invalid event fails the whole batch, and the problem lists every
/// invalid event. Unknown fields are ignored.
pub fn parse_record_body(
    body: &[u8],
    experiment: &Experiment,
    now_ms: i64,
) -> Result<RecordBatch, Problem> {
    if body.len() > MAX_BODY_BYTES {
        return Err(body_too_large(body.len()));
    }
    if let Some(batch) = super::fast::parse_valid(body, experiment, now_ms) {
        return Ok(batch);
    }
    let value =
        crate::json::parse_limited(body, MAX_RECORD_VALUES).map_err(|error| match error {
            // A number too large for a double (`1e400`) is valid JSON the parser
            // refuses: the problem of the field it was in, at its path.
            JsonError::OutOfRange(Some(path)) => Problem::one(if path.ends_with(".amount") {
                super::invalid_amount(path)
            } else if path.ends_with(".timestamp") {
                invalid_timestamp(path)
            } else if path == "sentAt" {
                invalid_sent_at()
            } else {
                Message::at(Code::InvalidValue, path, crate::json::OUT_OF_RANGE)
            }),
            other => crate::json::problem(other),
        })?;
    parse_record_value(&value, experiment, now_ms)
}

/// An event's timestamp that is none, at `path`.
fn invalid_timestamp(path: String) -> Message {
    Message::at(
        Code::InvalidTimestamp,
        path,
        "A timestamp must be integer milliseconds since the Unix epoch or an RFC 3339 date-time, not before 1970.",
    )
}

/// A `sentAt` that is no timestamp.
fn invalid_sent_at() -> Message {
    Message::at(
        Code::InvalidTimestamp,
        "sentAt",
        "`sentAt` must be integer milliseconds since the Unix epoch or an RFC 3339 date-time, not before 1970.",
    )
}

/// Validates a record body already parsed as JSON; see [`parse_record_body`].
pub fn parse_record_value(
    value: &Value,
    experiment: &Experiment,
    now_ms: i64,
) -> Result<RecordBatch, Problem> {
    let Some(root) = value.as_object() else {
        return Err(Problem::at(
            Code::InvalidType,
            BODY_PATH,
            "The body must be a JSON object with an `events` array.",
        ));
    };
    let mut problems = Vec::new();
    let batch = parse_batch_id(root.get("batch"), "batch", &mut problems);
    let sent_at = match root.get("sentAt") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(TimestampInput::Millis(n.as_f64().unwrap_or(f64::NAN))),
        Some(Value::String(s)) => Some(TimestampInput::Text(s)),
        Some(_) => Some(TimestampInput::Millis(f64::NAN)),
    };
    let shift = clock_shift(sent_at, now_ms, &mut problems);
    let events = match root.get("events") {
        None | Some(Value::Null) => {
            problems.push(Message::at(
                Code::MissingField,
                "events",
                "The body must have an `events` array.",
            ));
            &[][..]
        }
        Some(Value::Array(events)) => events.as_slice(),
        Some(_) => {
            problems.push(Message::at(
                Code::InvalidType,
                "events",
                "`events` must be an array.",
            ));
            &[][..]
        }
    };
    if events.len() > MAX_EVENTS {
        return Err(Problem::one(
            Message::at(
                Code::TooManyEvents,
                "events",
                format!("A batch may carry at most {MAX_EVENTS} events."),
            )
            .with_data(json!({ "limit": MAX_EVENTS, "count": events.len() })),
        ));
    }
    let mut valid = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let prefix = format!("events[{i}].");
        match parse_event_value(event, experiment, now_ms, &prefix, shift) {
            Ok(event) => valid.push(event),
            Err(mut messages) => problems.append(&mut messages),
        }
    }
    if problems.is_empty() {
        Ok(RecordBatch {
            batch,
            events: valid,
        })
    } else {
        Err(Problem::many(problems))
    }
}

/// How far the sender's clock is behind the server's (`now - sentAt`, 0
/// without a `sentAt`); a `sentAt` that is no timestamp is a problem.
pub(super) fn clock_shift(
    sent_at: Option<TimestampInput>,
    now_ms: i64,
    problems: &mut Vec<Message>,
) -> i64 {
    let Some(input) = sent_at else {
        return 0;
    };
    match timestamp_ms(input) {
        Some(ms) => now_ms.saturating_sub(ms),
        None => {
            problems.push(invalid_sent_at());
            0
        }
    }
}

fn parse_event_value(
    value: &Value,
    experiment: &Experiment,
    now_ms: i64,
    prefix: &str,
    shift: i64,
) -> Result<Event, Vec<Message>> {
    let Some(object) = value.as_object() else {
        return Err(vec![Message::at(
            Code::InvalidType,
            prefix.trim_end_matches('.'),
            "An event must be a JSON object.",
        )]);
    };
    let mut problems = Vec::new();
    let typename = string_field(object, "typename", prefix, &mut problems);
    let after_typename = problems.len();
    let variant = string_field(object, "variant", prefix, &mut problems);
    // One field missing still has the other's problem told (in field
    // order), though the event's rules cannot run without both.
    match (typename, variant) {
        (Some(t), None) if EventType::from_typename(t).is_none() => {
            problems.insert(after_typename, super::unknown_typename(prefix));
        }
        (None, Some(v)) if !experiment.has_variant(v) => {
            problems.push(super::unknown_variant(prefix));
        }
        _ => {}
    }
    let amount = match object.get("amount") {
        None => None,
        // On a view, which takes no amount, null is as absent.
        Some(Value::Null) if typename != Some("reward") => None,
        // On a reward it is what `JSON.stringify` makes of NaN and
        // Infinity: never a full conversion, as an absent amount would be.
        Some(Value::Null) => {
            problems.push(Message::at(
                Code::InvalidAmount,
                [prefix, "amount"].concat(),
                "`amount` is null (JSON's form of NaN and Infinity): a reward amount must be a number from 0 to 1, or absent for 1.",
            ));
            None
        }
        Some(Value::Number(n)) => n.as_f64().or(Some(f64::NAN)),
        Some(_) => {
            problems.push(Message::at(
                Code::InvalidType,
                [prefix, "amount"].concat(),
                "`amount` must be a number.",
            ));
            None
        }
    };
    // The JSONP GET's synonym of `amount` is no event field: ignored, it
    // would count a full reward where the sender meant its value.
    if object.contains_key("reward") {
        problems.push(Message::at(
            Code::InvalidValue,
            [prefix, "reward"].concat(),
            "An event's reward amount is `amount`; `reward` is only the JSONP parameter's synonym.",
        ));
    }
    let timestamp = match object.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(TimestampInput::Millis(n.as_f64().unwrap_or(f64::NAN))),
        Some(Value::String(s)) => Some(TimestampInput::Text(s)),
        Some(_) => {
            problems.push(Message::at(
                Code::InvalidType,
                format!("{prefix}timestamp"),
                "`timestamp` must be a number or a string.",
            ));
            None
        }
    };
    let (Some(typename), Some(variant)) = (typename, variant) else {
        return Err(problems);
    };
    let input = EventInput {
        typename,
        variant,
        amount,
        timestamp,
    };
    match validate_event_sent(&input, experiment, now_ms, prefix, shift) {
        Ok(event) if problems.is_empty() => Ok(event),
        Ok(_) => Err(problems),
        Err(mut more) => {
            problems.append(&mut more);
            Err(problems)
        }
    }
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    name: &str,
    prefix: &str,
    problems: &mut Vec<Message>,
) -> Option<&'a str> {
    match object.get(name) {
        Some(Value::String(s)) => Some(s),
        None | Some(Value::Null) => {
            problems.push(Message::at(
                Code::MissingField,
                format!("{prefix}{name}"),
                format!("An event must have a `{name}`."),
            ));
            None
        }
        Some(_) => {
            problems.push(Message::at(
                Code::InvalidType,
                format!("{prefix}{name}"),
                format!("`{name}` must be a string."),
            ));
            None
        }
    }
}

fn parse_batch_id(value: Option<&Value>, path: &str, problems: &mut Vec<Message>) -> Option<Uuid> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => parse_batch_text(s, path, problems),
        Some(_) => {
            problems.push(Message::at(
                Code::InvalidBatchId,
                path,
                "`batch` must be a UUID string.",
            ));
            None
        }
    }
}

pub(super) fn parse_batch_text(
    text: &str,
    path: &str,
    problems: &mut Vec<Message>,
) -> Option<Uuid> {
    match Uuid::parse_str(text) {
        Ok(id) => Some(id),
        Err(_) => {
            problems.push(Message::at(
                Code::InvalidBatchId,
                path,
                "`batch` must be a UUID string.",
            ));
            None
        }
    }
}

/// The problem for a body over [`MAX_BODY_BYTES`].
pub fn body_too_large(size: usize) -> Problem {
    Problem::one(
        Message::at(
            Code::BodyTooLarge,
            BODY_PATH,
            format!("A request body may be at most {MAX_BODY_BYTES} bytes."),
        )
        .with_data(json!({ "limit": MAX_BODY_BYTES, "size": size })),
    )
}

/// The problem for a body that is not valid JSON, saying where it broke
/// (and in which value, when inside one).
pub fn invalid_json(error: &serde_json::Error, path: Option<String>) -> Problem {
    let text = format!("The body is not valid JSON: {error}.");
    let message = Message::at(
        Code::InvalidJson,
        path.as_deref().unwrap_or(BODY_PATH),
        text,
    );
    Problem::one(message.with_data(json!({ "line": error.line(), "column": error.column() })))
}
