//! The fast path of a valid record body: read straight into borrowed
//! fields (no JSON value tree, no map per event), then the same checks as
//! the full walk in `parse.rs`. Whatever it does not take as it comes (a
//! wrong type, a missing or repeated field, a string with escapes, an array
//! where an object belongs, more than [`MAX_EVENTS`] events, a problem in any
//! event) makes it give up, and the full walk answers, with every problem
//! and its path. So it only ever answers a batch the walk answers alike
//! (`tests`: both on the same bodies).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

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
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
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
                        "amount" => once(&mut amount, map.next_value::<Option<f64>>()?)?,
                        "timestamp" => {
                            once(&mut timestamp, map.next_value::<Option<Time<'de>>>()?)?
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Plain(EventInput {
                    typename: typename.ok_or_else(|| de::Error::missing_field("typename"))?,
                    variant: variant.ok_or_else(|| de::Error::missing_field("variant"))?,
                    amount: amount.flatten(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_record_value;
    use crate::model::{Variant, Visibility, empty_object};
    use uuid::Uuid;

    fn experiment() -> Experiment {
        Experiment {
            uuid: Uuid::from_u128(1),
            alias: None,
            id: "fast".into(),
            account_id: Uuid::from_u128(2),
            name: "fast".into(),
            visibility: Visibility::Published,
            settings: empty_object(),
            variants: vec![Variant::new("a"), Variant::new("b")],
        }
    }

    const NOW: i64 = 1_780_000_000_000;

    /// The fast path answers only batches the full walk answers alike, and
    /// takes the plain valid bodies the SDK sends.
    #[test]
    fn the_fast_path_agrees_with_the_walk() {
        let experiment = experiment();
        let bodies: &[(&str, bool)] = &[
            (r#"{"events":[{"typename":"view","variant":"a"}]}"#, true),
            (
                r#"{"batch":"6f1c2f8e-8d7c-4c1e-9b0a-2b9f3f5c8a11","sentAt":1780000000000,
                   "events":[{"typename":"view","variant":"a","timestamp":1779999990000},
                             {"typename":"reward","variant":"b","amount":0.25,"timestamp":"2026-05-28T20:26:30Z"},
                             {"typename":"reward","variant":"b","amount":1,"extra":[1,{"x":null}]}],
                   "other":{"k":"v"}}"#,
                true,
            ),
            (r#"{"batch":null,"sentAt":null,"events":[]}"#, true),
            (
                r#"{"events":[{"typename":"reward","variant":"a","amount":null,"timestamp":null}]}"#,
                true,
            ),
            (
                r#"{"events":[{"typename":"reward","variant":"a","amount":-0}]}"#,
                true,
            ),
            (
                r#"{"events":[{"typename":"view","variant":"a","timestamp":1.78e12}]}"#,
                true,
            ),
            (
                r#"{"sentAt":"2026-05-28T20:26:40Z","events":[{"typename":"view","variant":"a"}]}"#,
                true,
            ),
            // What the walk decides (problems, or values the fast path does not take as they come).
            (
                r#"{"events":[{"typename":"view","variant":"\u0061"}]}"#,
                false,
            ),
            (
                r#"{"ev\u0065nts":[{"typename":"view","variant":"a"}]}"#,
                false,
            ),
            (
                r#"{"events":[{"typename":"view","variant":"a","variant":"b"}]}"#,
                false,
            ),
            (
                r#"{"events":[{"typename":"view","variant":"a"}],"events":[]}"#,
                false,
            ),
            (r#"{"events":[["view","a"]]}"#, false),
            (r#"[null,null,[{"typename":"view","variant":"a"}]]"#, false),
            (r#"{"events":[{"typename":"view","variant":"z"}]}"#, false),
            (r#"{"events":[{"typename":"click","variant":"a"}]}"#, false),
            (
                r#"{"events":[{"typename":"reward","variant":"a","amount":2}]}"#,
                false,
            ),
            (
                r#"{"events":[{"typename":"reward","variant":"a","amount":"1"}]}"#,
                false,
            ),
            (
                r#"{"events":[{"typename":"view","variant":"a","timestamp":-1}]}"#,
                false,
            ),
            (
                r#"{"events":[{"typename":"view","variant":"a","timestamp":1.5}]}"#,
                false,
            ),
            (
                r#"{"events":[{"typename":"view","variant":"a","timestamp":true}]}"#,
                false,
            ),
            (
                r#"{"events":[{"typename":"view","variant":"a","timestamp":"yesterday"}]}"#,
                false,
            ),
            (
                r#"{"events":[{"typename":"view","variant":"a","timestamp":9999999999999999}]}"#,
                false,
            ),
            (
                r#"{"batch":"nope","events":[{"typename":"view","variant":"a"}]}"#,
                false,
            ),
            (r#"{"batch":7,"events":[]}"#, false),
            (r#"{"sentAt":"soon","events":[]}"#, false),
            (r#"{"sentAt":{},"events":[]}"#, false),
            (r#"{"events":{}}"#, false),
            (r#"{"events":[{"variant":"a"}]}"#, false),
            (r#"{"events":[{"typename":null,"variant":"a"}]}"#, false),
            (r#"{"batch":"x"}"#, false),
            (r#"{"events":[]} x"#, false),
            (r#"{"events":[1]}"#, false),
        ];
        for (body, fast) in bodies {
            let walked: serde_json::Value =
                serde_json::from_str(body).map_or(serde_json::Value::Null, |v| v);
            let walked = parse_record_value(&walked, &experiment, NOW);
            let quick = parse_valid(body.as_bytes(), &experiment, NOW);
            assert_eq!(quick.is_some(), *fast, "{body}");
            if let Some(quick) = quick {
                assert_eq!(Ok(quick), walked, "{body}");
            }
        }
        let many = format!(
            r#"{{"events":[{}]}}"#,
            vec![r#"{"typename":"view","variant":"a"}"#; MAX_EVENTS + 1].join(",")
        );
        assert!(parse_valid(many.as_bytes(), &experiment, NOW).is_none());
    }
}
