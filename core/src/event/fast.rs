//! The fast path of a valid record body: read straight into borrowed
//! fields (no JSON value tree, no map per event), then the same checks as
//! the full walk in `parse.rs`. Whatever it does not take as it comes (a
//! wrong type, a missing or repeated field, a field it does not know (whose
//! content the strict reader, `crate::json`, must see: a key twice, a number
//! out of range, nesting past its limit), a string with escapes, an array
//! where an object belongs, more than [`MAX_EVENTS`] events, a problem in any
//! event) makes it give up, and the full walk answers, with every problem
//! and its path. So it only ever answers a batch the walk answers alike
//! (`core/tests/record.rs`: both on the same bodies, chosen and arbitrary).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::MAX_EVENTS;
use super::parse::{
    EventInput, RecordBatch, TimestampInput, clock_shift, parse_batch_text, validate_event_sent,
};
use crate::model::Experiment;

/// The batch of `body` when it is valid and plain (see the module's doc);
/// `None`: the full walk decides.
pub(super) fn parse_valid(
    body: &[u8],
    experiment: &Experiment,
    now_ms: i64,
) -> Option<RecordBatch> {
    let body: Body<'_> = serde_json::from_slice(body).ok()?;
    if body.events.len() > MAX_EVENTS {
        return None;
    }
    let mut problems = Vec::new();
    let batch = match body.batch {
        Some(text) => parse_batch_text(text, "batch", &mut problems),
        None => None,
    };
    let shift = clock_shift(body.sent_at, now_ms, &mut problems);
    if !problems.is_empty() {
        return None;
    }
    let mut events = Vec::with_capacity(body.events.len());
    for input in &body.events {
        events.push(validate_event_sent(&input.0, experiment, now_ms, "", shift).ok()?);
    }
    Some(RecordBatch { batch, events })
}

/// A record body's fields, borrowed from its text.
struct Body<'a> {
    batch: Option<&'a str>,
    sent_at: Option<TimestampInput<'a>>,
    events: Vec<Plain<'a>>,
}

/// One event, borrowed from the body's text.
struct Plain<'a>(EventInput<'a>);

/// A timestamp: a number or a string without escapes.
struct Time<'a>(TimestampInput<'a>);

/// Fills `slot` once: a repeated key gives up (the walk keeps the last).
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom("repeated key"));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de> Deserialize<'de> for Body<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Body<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a record body")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body<'de>, A::Error> {
                let (mut batch, mut sent_at, mut events) = (None, None, None);
                while let Some(key) = map.next_key::<&'de str>()? {
                    match key {
                        "batch" => once(&mut batch, map.next_value::<Option<&'de str>>()?)?,
                        "sentAt" => once(&mut sent_at, map.next_value::<Option<Time<'de>>>()?)?,
                        "events" => once(&mut events, map.next_value::<Vec<Plain<'de>>>()?)?,
                        _ => return Err(de::Error::custom("an unknown field")),
                    }
                }
                Ok(Body {
                    batch: batch.flatten(),
                    sent_at: sent_at.flatten().map(|t| t.0),
                    events: events.ok_or_else(|| de::Error::missing_field("events"))?,
                })
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

impl<'de> Deserialize<'de> for Plain<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Plain<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Plain<'de>, A::Error> {
                let (mut typename, mut variant, mut amount, mut timestamp) =
                    (None, None, None, None);
                while let Some(key) = map.next_key::<&'de str>()? {
                    match key {
                        "typename" => once(&mut typename, map.next_value::<&'de str>()?)?,
                        "variant" => once(&mut variant, map.next_value::<&'de str>()?)?,
                        // A null amount is refused by the full reader, with its path.
                        "amount" => once(&mut amount, map.next_value::<f64>()?)?,
                        "timestamp" => {
                            once(&mut timestamp, map.next_value::<Option<Time<'de>>>()?)?
                        }
                        _ => return Err(de::Error::custom("an unknown field")),
                    }
                }
                Ok(Plain(EventInput {
                    typename: typename.ok_or_else(|| de::Error::missing_field("typename"))?,
                    variant: variant.ok_or_else(|| de::Error::missing_field("variant"))?,
                    amount,
                    timestamp: timestamp.flatten().map(|t| t.0),
                }))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

impl<'de> Deserialize<'de> for Time<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = Time<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Time<'de>, E> {
                Ok(Time(TimestampInput::Millis(v as f64)))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Time<'de>, E> {
                Ok(Time(TimestampInput::Millis(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Time<'de>, E> {
                Ok(Time(TimestampInput::Millis(v)))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Time<'de>, E> {
                Ok(Time(TimestampInput::Text(v)))
            }
        }
        deserializer.deserialize_any(Either)
    }
}
