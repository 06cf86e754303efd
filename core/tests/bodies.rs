//! Generators of create and update bodies for property tests: odd keys and
//! paths (quoted segments, escapes, brackets), unicode and U+0000, big and
//! odd numbers, settings deep and shallow, near and past every limit.
//! Shared by `core/tests/limits.rs` and the server's `tests/limits.rs`.
#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};

/// Text of every kind a client might send: plain, any unicode (U+0000
/// included), control characters, near the name and id limits.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z]{1,8}",
        2 => ".{0,12}",
        1 => Just("a\u{0}b".to_owned()),
        1 => Just("\u{1}\t\u{7f}\u{2028}é😀".to_owned()),
        1 => Just(" ".to_owned()),
        1 => (120usize..=132).prop_map(|n| "x".repeat(n)),
        1 => (250usize..=260).prop_map(|n| "é".repeat(n)),
    ]
    .boxed()
}

/// Object keys: plain, with the characters paths treat specially, any unicode.
pub fn key() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-c]{1,2}",
        2 => r#"[a-c.\[\]"\\ 0-9]{0,5}"#,
        1 => ".{0,6}",
        1 => Just("k\u{0}".to_owned()),
    ]
    .boxed()
}

/// Numbers: integers of every size, any finite float, the odd ones.
pub fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just(json!(-0.0)),
            Just(json!(1e300)),
            Just(json!(5e-324)),
            Just(json!(0.1)),
            Just(json!(u64::MAX)),
            Just(json!(i64::MIN)),
        ],
    ]
    .boxed()
}

fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ]
    .boxed()
}

/// `levels` objects and arrays one inside the other, around `leaf`.
pub fn chain(levels: usize, leaf: Value) -> Value {
    let mut value = leaf;
    for level in 0..levels {
        value = if level % 3 == 2 {
            Value::Array(vec![value])
        } else {
            let mut map = Map::new();
            map.insert(format!("l{level}"), value);
            Value::Object(map)
        };
    }
    value
}

/// Any JSON value: small trees of every kind, and chains around the depth limit.
pub fn value() -> BoxedStrategy<Value> {
    let tree = scalar().prop_recursive(5, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    });
    prop_oneof![
        12 => tree,
        1 => (28usize..36, scalar()).prop_map(|(levels, leaf)| chain(levels, leaf)),
        // Near what a JSON body may nest at all (128 levels, with the body's own).
        1 => (110usize..126, scalar()).prop_map(|(levels, leaf)| chain(levels, leaf)),
    ]
    .boxed()
}

/// A settings object (and now and then something that is not one).
pub fn settings() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => prop::collection::vec((key(), value()), 0..4)
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        1 => (28usize..36).prop_map(|levels| {
            let mut root = Map::new();
            root.insert("deep".into(), chain(levels - 1, json!(1)));
            Value::Object(root)
        }),
        1 => (60_000usize..70_000).prop_map(|n| json!({ "big": "x".repeat(n) })),
        1 => scalar(),
    ]
    .boxed()
}

fn segment() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-c]{1,2}",
        1 => (0usize..3).prop_map(|i| format!("[{i}]")),
        1 => key().prop_map(|k| {
            let escaped = k.replace('\\', "\\\\").replace('"', "\\\"");
            format!("[\"{escaped}\"]")
        }),
    ]
    .boxed()
}

/// Settings paths: well-formed of any length (around the segment limit), and
/// arbitrary text.
pub fn path() -> BoxedStrategy<String> {
    let formed = |segments: std::ops::Range<usize>| {
        prop::collection::vec(segment(), segments).prop_map(|segments| {
            let mut out = String::new();
            for s in segments {
                if !out.is_empty() && !s.starts_with('[') {
                    out.push('.');
                }
                out.push_str(&s);
            }
            out
        })
    };
    prop_oneof![
        12 => formed(1..4),
        2 => formed(29..36),
        // Past what serde_json reads back (128 levels) once built.
        1 => prop::collection::vec("[a-c]{1,2}", 126..134).prop_map(|names| names.join(".")),
        1 => ".{0,10}",
        1 => (1020usize..1030).prop_map(|n| "p".repeat(n)),
    ]
    .boxed()
}

/// A `settingsUpdates` object.
pub fn settings_updates() -> BoxedStrategy<Value> {
    prop::collection::vec(
        (path(), prop_oneof![3 => value(), 1 => Just(Value::Null)]),
        0..4,
    )
    .prop_map(|entries| Value::Object(entries.into_iter().collect()))
    .boxed()
}

/// A variant id: mostly from a small pool (so updates meet existing ones).
pub fn variant_id() -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(str::to_owned),
        1 => text(),
    ]
    .boxed()
}

/// An experiment id: mostly valid ones from a small pool (so published
/// experiments meet each other's), the longest allowed and one over it,
/// or any text (mostly not an id).
pub fn experiment_id() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(vec!["hero", "banner", "Hero_2", "a-b"]).prop_map(Value::from),
        1 => (63usize..66).prop_map(|n| Value::String("x".repeat(n))),
        1 => text().prop_map(Value::String),
        1 => scalar(),
    ]
    .boxed()
}

fn fields(entries: Vec<Option<(&'static str, Value)>>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// A variant of a create body or a `variantUpdates` entry.
pub fn variant_spec() -> BoxedStrategy<Value> {
    (
        prop::option::of(text().prop_map(Value::String)),
        prop::option::of(settings()),
        prop::option::weighted(0.3, settings_updates()),
    )
        .prop_map(|(name, settings, updates)| {
            fields(vec![
                name.map(|v| ("name", v)),
                settings.map(|v| ("settings", v)),
                updates.map(|v| ("settingsUpdates", v)),
            ])
        })
        .boxed()
}

fn visibility() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop::sample::select(vec!["draft", "published", "archived"]).prop_map(Value::from),
        1 => text().prop_map(Value::String),
    ]
    .boxed()
}

fn variants() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => prop::collection::vec((variant_id(), variant_spec()), 0..5)
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        1 => (98usize..103).prop_map(|n| {
            Value::Object((0..n).map(|i| (format!("v{i}"), json!({}))).collect())
        }),
    ]
    .boxed()
}

/// A create body.
pub fn create_body() -> BoxedStrategy<Value> {
    (
        prop_oneof![9 => text().prop_map(Value::String), 1 => scalar()],
        prop::option::of(visibility()),
        prop::option::of(settings()),
        prop::option::of(variants()),
        prop::option::weighted(0.4, experiment_id()),
    )
        .prop_map(|(name, visibility, settings, variants, id)| {
            fields(vec![
                Some(("name", name)),
                id.map(|v| ("id", v)),
                visibility.map(|v| ("visibility", v)),
                settings.map(|v| ("settings", v)),
                variants.map(|v| ("variants", v)),
            ])
        })
        .boxed()
}

/// An update body.
pub fn update_body() -> BoxedStrategy<Value> {
    (
        prop::option::weighted(0.3, text().prop_map(Value::String)),
        prop::option::weighted(0.2, visibility()),
        prop::option::weighted(0.2, settings()),
        prop::option::weighted(0.5, settings_updates()),
        prop::option::weighted(
            0.5,
            prop::collection::vec(
                (
                    variant_id(),
                    prop_oneof![3 => variant_spec(), 1 => Just(Value::Null)],
                ),
                0..4,
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ),
        prop::option::weighted(0.3, experiment_id()),
    )
        .prop_map(|(name, visibility, settings, updates, variants, id)| {
            fields(vec![
                name.map(|v| ("name", v)),
                id.map(|v| ("id", v)),
                visibility.map(|v| ("visibility", v)),
                settings.map(|v| ("settings", v)),
                updates.map(|v| ("settingsUpdates", v)),
                variants.map(|v| ("variantUpdates", v)),
            ])
        })
        .boxed()
}
