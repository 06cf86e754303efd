//! The fields of a create or update body one by one: names, visibility,
//! settings and their updates, a variant's spec, and variant ids (their
//! length, and ids that read alike).

use serde_json::Value;

use crate::limits::{
    MAX_NAME_CHARS, MAX_VARIANT_ID_CHARS, check_settings, has_nul, is_blank, is_default_ignorable,
    nul_problem,
};
use crate::model::{Variant, Visibility};
use crate::problem::{Code, Message};
use crate::settings::apply_updates;

/// The fields a variant of a create or update reads (`id`: the array form's).
const VARIANT_FIELDS: &[&str] = &["id", "name", "settings", "settingsUpdates"];

/// A published experiment with no variant: pages would have nothing to
/// choose (its weights could not sum to 1).
pub(super) fn no_variants_published(path: &str) -> Message {
    Message::at(
        Code::InvalidValue,
        path,
        "A published experiment needs at least one variant: pages choose among them.",
    )
}

/// Applies a variant's `{ name?, settings?, settingsUpdates? }`; false if it had problems.
pub(super) fn apply_variant_spec(
    variant: &mut Variant,
    spec: &Value,
    path: &str,
    problems: &mut Vec<Message>,
) -> bool {
    let before = problems.len();
    let Some(spec) = spec.as_object() else {
        problems.push(Message::at(
            Code::InvalidType,
            path,
            "A variant must be an object (or null to delete it).",
        ));
        return false;
    };
    crate::json::unknown_fields(spec.keys(), path, VARIANT_FIELDS, "a variant", problems);
    if spec
        .get("id")
        .is_some_and(|id| id.as_str() != Some(variant.id.as_str()))
    {
        // Ids never change (pages and counts know the variant by it): an
        // `id` is only the array form's, and must be the variant's own.
        problems.push(Message::at(
            Code::InvalidValue,
            format!("{path}.id"),
            "A variant's id is its key and never changes: leave `id` out, or give the same.",
        ));
    }
    if let Some(value) = spec.get("name").filter(|v| !v.is_null())
        && let Some(name) = parse_name(value, &format!("{path}.name"), problems)
    {
        variant.name = name;
    }
    if let Some(value) = spec.get("settings").filter(|v| !v.is_null())
        && let Some(settings) = parse_settings(value, &format!("{path}.settings"), problems)
    {
        variant.settings = settings;
    }
    if let Some(value) = spec.get("settingsUpdates").filter(|v| !v.is_null()) {
        let base = format!("{path}.settingsUpdates");
        apply_settings_updates(&mut variant.settings, value, &base, problems);
    }
    problems.len() == before
}

pub(super) fn apply_settings_updates(
    settings: &mut Value,
    updates: &Value,
    path: &str,
    problems: &mut Vec<Message>,
) {
    match updates.as_object() {
        Some(updates) => {
            if let Err(mut more) = apply_updates(settings, updates, path) {
                problems.append(&mut more);
            }
        }
        None => problems.push(Message::at(
            Code::InvalidType,
            path,
            "Settings updates must be an object of path to value.",
        )),
    }
}

/// A variant id as a reader sees it: without the characters never shown
/// by themselves (zero-width ones, bidi controls: `ok\u{202e}dab` reads as
/// `okdab` in a sentence), in Unicode's compatibility form (NFKC, as
/// identifiers are compared: `é` typed as one character or as `e` and a
/// combining accent, fullwidth `Ａ` and `A`, the ligature `ﬁ` and `fi`). Two
/// ids alike this way are one to a reader, though not to a computer.
pub(super) fn composed_id(id: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    id.chars()
        .filter(|&c| !is_default_ignorable(c))
        .nfkc()
        .collect()
}

/// 400 at `path`: a new variant id reads as the variant `other`'s
/// ([`composed_id`]), which neither the dashboard nor the owner could tell
/// apart.
pub(super) fn reads_as(other: &str, path: String) -> Message {
    Message::at(
        Code::InvalidValue,
        path,
        format!(
            "This variant id reads as the variant `{other}`'s: they differ only in \
             invisible characters or in how letters are encoded (accents, fullwidth or \
             ligature forms: Unicode NFKC). Use the other's spelling or another id."
        ),
    )
    .with_data(serde_json::json!({ "variant": other }))
}

pub(super) fn check_variant_id(id: &str, path: &str, problems: &mut Vec<Message>) -> bool {
    if id.is_empty() || id.chars().nth(MAX_VARIANT_ID_CHARS).is_some() {
        problems.push(
            Message::at(
                Code::InvalidValue,
                path,
                format!("A variant id must be 1 to {MAX_VARIANT_ID_CHARS} characters."),
            )
            .with_data(serde_json::json!({ "limit": MAX_VARIANT_ID_CHARS })),
        );
        false
    } else if has_nul(id) {
        problems.push(nul_problem(path));
        false
    } else if is_blank(id) {
        problems.push(Message::at(
            Code::InvalidValue,
            path,
            "A variant id must show something: not only spaces, marks or invisible \
             characters (such as U+200B).",
        ));
        false
    } else {
        true
    }
}

pub(super) fn parse_name(value: &Value, path: &str, problems: &mut Vec<Message>) -> Option<String> {
    match value {
        Value::String(s) if has_nul(s) => {
            problems.push(nul_problem(path));
            None
        }
        Value::String(s) if is_blank(s) || s.chars().nth(MAX_NAME_CHARS).is_some() => {
            problems.push(
                Message::at(
                    Code::InvalidValue,
                    path,
                    format!("A name must be 1 to {MAX_NAME_CHARS} characters, not blank."),
                )
                .with_data(serde_json::json!({ "limit": MAX_NAME_CHARS })),
            );
            None
        }
        Value::String(s) => Some(s.clone()),
        _ => {
            problems.push(Message::at(
                Code::InvalidType,
                path,
                "A name must be a string.",
            ));
            None
        }
    }
}

pub(super) fn parse_visibility(value: &Value, problems: &mut Vec<Message>) -> Option<Visibility> {
    let parsed = value.as_str().and_then(Visibility::parse);
    if parsed.is_none() {
        problems.push(Message::at(
            Code::InvalidValue,
            "visibility",
            "`visibility` must be `draft`, `published` or `archived`.",
        ));
    }
    parsed
}

pub(super) fn parse_settings(
    value: &Value,
    path: &str,
    problems: &mut Vec<Message>,
) -> Option<Value> {
    if value.is_object() {
        check_settings(value, path, problems).then(|| value.clone())
    } else {
        problems.push(Message::at(
            Code::InvalidType,
            path,
            "Settings must be a JSON object.",
        ));
        None
    }
}
