//! Creating and updating experiments: the create body and the update body
//! (`name`, `visibility`, `settings`, `settingsUpdates`, `variantUpdates`).
//!
//! Both validate everything and return every problem with its path.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::{MAX_BODY_BYTES, body_too_large, invalid_json};
use crate::limits::{
    Definition, MAX_DEFINITION_BYTES, MAX_NAME_CHARS, MAX_VARIANT_ID_CHARS, MAX_VARIANTS,
    check_settings, definition_bytes, definition_too_large, has_nul, nul_problem,
    too_many_variants,
};
use crate::model::{Experiment, Variant, Visibility, empty_object};
use crate::problem::{Code, Message, Problem};
use crate::settings::{apply_updates, key_path};

/// A validated create request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExperiment {
    /// The uuid the client chose, if any.
    pub uuid: Option<Uuid>,
    /// Its name.
    pub name: String,
    /// Its visibility (default `draft`).
    pub visibility: Visibility,
    /// Its settings (default `{}`).
    pub settings: Value,
    /// Its variants, in the order given, with no counts.
    pub variants: Vec<Variant>,
}

impl NewExperiment {
    /// The experiment this creates, owned by `account_id`, with `uuid` unless the
    /// client chose one.
    pub fn into_experiment(self, uuid: Uuid, account_id: Uuid) -> Experiment {
        Experiment {
            uuid: self.uuid.unwrap_or(uuid),
            alias: None,
            account_id,
            name: self.name,
            visibility: self.visibility,
            settings: self.settings,
            variants: self.variants,
        }
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    if body.len() > MAX_BODY_BYTES {
        return Err(body_too_large(body.len()));
    }
    match serde_json::from_slice::<Value>(body).map_err(|e| invalid_json(&e))? {
        Value::Object(map) => Ok(map),
        _ => Err(Problem::new(
            Code::InvalidType,
            "The body must be a JSON object.",
        )),
    }
}

fn done<T>(value: T, problems: Vec<Message>) -> Result<T, Problem> {
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(Problem::many(problems))
    }
}

/// Parses and validates a create body:
/// `{ uuid?, name, visibility?, settings?, variants?: { id: { name?, settings? } } }`
/// (an array of `{ id, name?, settings? }` is accepted for `variants` too).
pub fn parse_create(body: &[u8]) -> Result<NewExperiment, Problem> {
    let root = parse_object(body)?;
    let mut problems = Vec::new();
    let uuid = match root.get("uuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Uuid::parse_str(s).ok().or_else(|| {
            problems.push(Message::at(
                Code::InvalidValue,
                "uuid",
                "`uuid` must be a UUID.",
            ));
            None
        }),
        Some(_) => {
            problems.push(Message::at(
                Code::InvalidType,
                "uuid",
                "`uuid` must be a string.",
            ));
            None
        }
    };
    let name = match root.get("name") {
        None | Some(Value::Null) => {
            problems.push(Message::at(
                Code::MissingField,
                "name",
                "An experiment needs a `name`.",
            ));
            String::new()
        }
        Some(value) => parse_name(value, "name", &mut problems).unwrap_or_default(),
    };
    let visibility = match root.get("visibility") {
        None | Some(Value::Null) => Visibility::Draft,
        Some(value) => parse_visibility(value, &mut problems).unwrap_or(Visibility::Draft),
    };
    let settings = match root.get("settings") {
        None | Some(Value::Null) => empty_object(),
        Some(value) => parse_settings(value, "settings", &mut problems).unwrap_or_default(),
    };
    let mut variants: Vec<Variant> = Vec::new();
    let mut add = |id: &str, spec: &Value, path: String, problems: &mut Vec<Message>| {
        if variants.iter().any(|v| v.id == id) {
            problems.push(Message::at(
                Code::InvalidValue,
                path,
                "Variant ids must be unique.",
            ));
            return;
        }
        let mut variant = Variant::new(id);
        if apply_variant_spec(&mut variant, spec, &path, problems) {
            variants.push(variant);
        }
    };
    let count = match root.get("variants") {
        Some(Value::Object(map)) => map.len(),
        Some(Value::Array(items)) => items.len(),
        _ => 0,
    };
    if count > MAX_VARIANTS {
        problems.push(too_many_variants("variants"));
    }
    match root.get("variants") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (id, spec) in map {
                let path = key_path("variants", id);
                if check_variant_id(id, &path, &mut problems) {
                    add(id, spec, path, &mut problems);
                }
            }
        }
        Some(Value::Array(items)) => {
            for (i, spec) in items.iter().enumerate() {
                let path = format!("variants[{i}]");
                match spec.get("id") {
                    Some(Value::String(id)) => {
                        if check_variant_id(id, &format!("{path}.id"), &mut problems) {
                            add(id, spec, path, &mut problems);
                        }
                    }
                    None | Some(Value::Null) => problems.push(Message::at(
                        Code::MissingField,
                        format!("{path}.id"),
                        "A variant needs an `id`.",
                    )),
                    Some(_) => problems.push(Message::at(
                        Code::InvalidType,
                        format!("{path}.id"),
                        "A variant id must be a string.",
                    )),
                }
            }
        }
        Some(_) => problems.push(Message::at(
            Code::InvalidType,
            "variants",
            "`variants` must be an object of variants by id.",
        )),
    }
    let definition = Definition {
        name: &name,
        settings: &settings,
        variants: &variants,
    };
    if definition_bytes(definition, MAX_DEFINITION_BYTES).is_none() {
        problems.push(definition_too_large("variants"));
    }
    done(
        NewExperiment {
            uuid,
            name,
            visibility,
            settings,
            variants,
        },
        problems,
    )
}

/// Parses an update body and applies it to a copy of `experiment`, returning
/// the updated experiment (counts kept; new variants start at zero; deleted
/// variants are gone). Atomic: on any problem nothing changes.
pub fn apply_update(experiment: &Experiment, body: &[u8]) -> Result<Experiment, Problem> {
    let root = parse_object(body)?;
    let mut problems = Vec::new();
    let mut next = experiment.clone();
    if let Some(value) = root.get("name").filter(|v| !v.is_null())
        && let Some(name) = parse_name(value, "name", &mut problems)
    {
        next.name = name;
    }
    if let Some(value) = root.get("visibility").filter(|v| !v.is_null())
        && let Some(visibility) = parse_visibility(value, &mut problems)
    {
        next.visibility = visibility;
    }
    if let Some(value) = root.get("settings").filter(|v| !v.is_null())
        && let Some(settings) = parse_settings(value, "settings", &mut problems)
    {
        next.settings = settings;
    }
    if let Some(value) = root.get("settingsUpdates").filter(|v| !v.is_null()) {
        apply_settings_updates(&mut next.settings, value, "settingsUpdates", &mut problems);
    }
    match root.get("variantUpdates") {
        None | Some(Value::Null) => {}
        Some(Value::Object(updates)) => {
            for (id, spec) in updates {
                let path = key_path("variantUpdates", id);
                if spec.is_null() {
                    next.variants.retain(|v| &v.id != id);
                    continue;
                }
                if let Some(variant) = next.variants.iter_mut().find(|v| &v.id == id) {
                    apply_variant_spec(variant, spec, &path, &mut problems);
                } else if check_variant_id(id, &path, &mut problems) {
                    let mut variant = Variant::new(id.clone());
                    if apply_variant_spec(&mut variant, spec, &path, &mut problems) {
                        next.variants.push(variant);
                    }
                }
            }
        }
        Some(_) => problems.push(Message::at(
            Code::InvalidType,
            "variantUpdates",
            "`variantUpdates` must be an object of variant id to update (or null to delete).",
        )),
    }
    // Limits on the whole: what an update adds may not take it past them (an
    // experiment stored before a limit existed may still shrink).
    let grew = next.variants.len() > experiment.variants.len();
    if grew && next.variants.len() > MAX_VARIANTS {
        problems.push(too_many_variants("variantUpdates"));
    }
    if problems.is_empty() && definition_bytes(&next, MAX_DEFINITION_BYTES).is_none() {
        let before = definition_bytes(experiment, usize::MAX).unwrap_or(0);
        if definition_bytes(&next, before).is_none() {
            let path = ["variantUpdates", "settingsUpdates", "settings", "name"]
                .into_iter()
                .find(|field| root.get(*field).is_some_and(|v| !v.is_null()))
                .unwrap_or("variantUpdates");
            problems.push(definition_too_large(path));
        }
    }
    done(next, problems)
}

/// Applies a variant's `{ name?, settings?, settingsUpdates? }`; false if it had problems.
fn apply_variant_spec(
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

fn apply_settings_updates(
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

fn check_variant_id(id: &str, path: &str, problems: &mut Vec<Message>) -> bool {
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
    } else {
        true
    }
}

fn parse_name(value: &Value, path: &str, problems: &mut Vec<Message>) -> Option<String> {
    match value {
        Value::String(s) if s.trim().is_empty() || s.chars().nth(MAX_NAME_CHARS).is_some() => {
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
        Value::String(s) if has_nul(s) => {
            problems.push(nul_problem(path));
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

fn parse_visibility(value: &Value, problems: &mut Vec<Message>) -> Option<Visibility> {
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

fn parse_settings(value: &Value, path: &str, problems: &mut Vec<Message>) -> Option<Value> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_SETTINGS_DEPTH;
    use serde_json::json;

    fn created(body: Value) -> Result<NewExperiment, Problem> {
        parse_create(body.to_string().as_bytes())
    }

    fn paths(problem: Problem) -> Vec<(Code, String)> {
        problem
            .messages
            .into_iter()
            .map(|m| (m.code, m.path.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn create_defaults_and_order() {
        let new = created(
            json!({"name": "Headline", "variants": {"b": {}, "a": {"name": "A", "settings": {"x": 1}}}}),
        );
        let new = new.unwrap_or_else(|p| panic!("{p}"));
        assert_eq!(new.visibility, Visibility::Draft);
        assert_eq!(new.settings, json!({}));
        let ids: Vec<_> = new.variants.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert_eq!(new.variants[0].name, "b");
        assert_eq!(new.variants[1].settings, json!({"x": 1}));
    }

    #[test]
    fn create_lists_every_problem() {
        let long = "x".repeat(129);
        let problem = created(json!({
            "visibility": "live", "settings": [], "uuid": "nope",
            "variants": {"": {}, long.clone(): {}, "ok": {"name": 5}}
        }))
        .err()
        .unwrap_or_else(Problem::internal);
        assert_eq!(problem.status, 400);
        assert_eq!(
            paths(problem),
            vec![
                (Code::InvalidValue, "uuid".to_owned()),
                (Code::MissingField, "name".to_owned()),
                (Code::InvalidValue, "visibility".to_owned()),
                (Code::InvalidType, "settings".to_owned()),
                (Code::InvalidValue, r#"variants[""]"#.to_owned()),
                (Code::InvalidValue, format!(r#"variants["{long}"]"#)),
                (Code::InvalidType, r#"variants["ok"].name"#.to_owned()),
            ]
        );
    }

    #[test]
    fn update_changes_definition_and_keeps_counts() {
        let mut exp = created(
            json!({"name": "e", "settings": {"a": {"b": 1}}, "variants": {"v1": {}, "v2": {}}}),
        )
        .unwrap_or_else(|p| panic!("{p}"))
        .into_experiment(Uuid::from_u128(1), Uuid::from_u128(2));
        exp.variants[0].views = 7;
        let body = json!({
            "name": "renamed", "visibility": "published",
            "settingsUpdates": {"a.c": 2},
            "variantUpdates": {"v2": null, "v3": {"name": "three"}, "v1": {"settingsUpdates": {"color": "red"}}}
        });
        let next =
            apply_update(&exp, body.to_string().as_bytes()).unwrap_or_else(|p| panic!("{p}"));
        assert_eq!(next.name, "renamed");
        assert_eq!(next.visibility, Visibility::Published);
        assert_eq!(next.settings, json!({"a": {"b": 1, "c": 2}}));
        let ids: Vec<_> = next.variants.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["v1", "v3"]);
        assert_eq!(next.variants[0].views, 7);
        assert_eq!(next.variants[0].settings, json!({"color": "red"}));
        assert_eq!(next.variants[1].name, "three");
    }

    #[test]
    fn bad_update_changes_nothing() {
        let exp = created(json!({"name": "e"}))
            .unwrap_or_else(|p| panic!("{p}"))
            .into_experiment(Uuid::from_u128(1), Uuid::from_u128(2));
        let body =
            json!({"name": "ok", "settingsUpdates": {"a..b": 1}, "variantUpdates": {"v": 3}});
        let problem = apply_update(&exp, body.to_string().as_bytes())
            .err()
            .unwrap_or_else(Problem::internal);
        assert_eq!(
            paths(problem),
            vec![
                (
                    Code::InvalidSettingsPath,
                    r#"settingsUpdates["a..b"]"#.to_owned()
                ),
                (Code::InvalidType, r#"variantUpdates["v"]"#.to_owned()),
            ]
        );
    }

    fn problems_of(
        result: Result<impl std::fmt::Debug, Problem>,
    ) -> Vec<(Code, String, Option<Value>)> {
        result
            .err()
            .unwrap_or_else(|| Problem::many(vec![]))
            .messages
            .into_iter()
            .map(|m| (m.code, m.path.unwrap_or_default(), m.data))
            .collect()
    }

    fn experiment_with(body: Value) -> Experiment {
        created(body)
            .unwrap_or_else(|p| panic!("{p}"))
            .into_experiment(Uuid::from_u128(1), Uuid::from_u128(2))
    }

    #[test]
    fn nul_is_refused_in_every_stored_text_with_every_path() {
        let body = json!({
            "name": "a\u{0}",
            "settings": {"k": ["\u{0}"]},
            "variants": {
                "v\u{0}": {},
                "ok": {"name": "n\u{0}", "settings": {"x\u{0}": 1},
                       "settingsUpdates": {"p": "\u{0}"}},
            }
        });
        let none = None;
        assert_eq!(
            problems_of(created(body)),
            vec![
                (Code::InvalidValue, "name".to_owned(), none.clone()),
                (
                    Code::InvalidValue,
                    r#"settings["k"][0]"#.to_owned(),
                    none.clone()
                ),
                (
                    Code::InvalidValue,
                    "variants[\"v\\u0000\"]".to_owned(),
                    none.clone()
                ),
                (
                    Code::InvalidValue,
                    r#"variants["ok"].name"#.to_owned(),
                    none.clone()
                ),
                (
                    Code::InvalidValue,
                    "variants[\"ok\"].settings[\"x\\u0000\"]".to_owned(),
                    none.clone()
                ),
                (
                    Code::InvalidValue,
                    r#"variants["ok"].settingsUpdates["p"]"#.to_owned(),
                    none.clone()
                ),
            ]
        );
        let exp = experiment_with(json!({"name": "e", "variants": {"a": {}}}));
        let body = json!({
            "name": "\u{0}", "settingsUpdates": {"s": "\u{0}"},
            "variantUpdates": {"a": {"name": "\u{0}"}, "b\u{0}": {}}
        });
        assert_eq!(
            problems_of(apply_update(&exp, body.to_string().as_bytes())),
            vec![
                (Code::InvalidValue, "name".to_owned(), none.clone()),
                (
                    Code::InvalidValue,
                    r#"settingsUpdates["s"]"#.to_owned(),
                    none.clone()
                ),
                (
                    Code::InvalidValue,
                    r#"variantUpdates["a"].name"#.to_owned(),
                    none.clone()
                ),
                (
                    Code::InvalidValue,
                    "variantUpdates[\"b\\u0000\"]".to_owned(),
                    none
                ),
            ]
        );
        // Other control characters are text like any other.
        let fine =
            json!({"name": "\u{1}\t", "variants": {"\u{7f}": {"settings": {"\u{1}": "\u{2028}"}}}});
        assert!(created(fine).is_ok());
    }

    #[test]
    fn deep_settings_paths_are_refused_on_create_and_update() {
        // The review's body: 129 segments (and 10,000) through both routes.
        for segments in [129, 10_000] {
            let path = vec!["a"; segments].join(".");
            let body =
                json!({"name": "e", "variants": {"v": {"settingsUpdates": {path.clone(): 1}}}});
            let found = problems_of(created(body));
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].0, Code::InvalidSettingsPath);
            assert_eq!(
                found[0].1,
                format!(r#"variants["v"].settingsUpdates["{path}"]"#)
            );
            let exp = experiment_with(json!({"name": "e"}));
            let body = json!({"settingsUpdates": {path.clone(): 1}});
            let found = problems_of(apply_update(&exp, body.to_string().as_bytes()));
            assert_eq!(found[0].1, format!(r#"settingsUpdates["{path}"]"#));
        }
        // Deep settings given whole.
        let mut deep = json!(1);
        for _ in 0..=MAX_SETTINGS_DEPTH {
            deep = json!({ "d": deep });
        }
        let found = problems_of(created(json!({"name": "e", "settings": deep})));
        let limit = Some(json!({ "limit": MAX_SETTINGS_DEPTH }));
        let path = format!("settings{}", r#"["d"]"#.repeat(MAX_SETTINGS_DEPTH));
        assert_eq!(found, vec![(Code::InvalidValue, path, limit)]);
    }

    #[test]
    fn variants_are_limited_in_number() {
        let variants = |n: usize| {
            (0..n)
                .map(|i| (format!("v{i}"), json!({})))
                .collect::<Map<String, Value>>()
        };
        assert!(created(json!({"name": "e", "variants": variants(MAX_VARIANTS)})).is_ok());
        let found = problems_of(created(
            json!({"name": "e", "variants": variants(MAX_VARIANTS + 1)}),
        ));
        let limit = Some(json!({ "limit": MAX_VARIANTS }));
        assert_eq!(
            found,
            vec![(Code::InvalidValue, "variants".to_owned(), limit.clone())]
        );
        let exp = experiment_with(json!({"name": "e", "variants": variants(MAX_VARIANTS)}));
        let body = json!({"variantUpdates": {"new": {}}});
        let found = problems_of(apply_update(&exp, body.to_string().as_bytes()));
        assert_eq!(
            found,
            vec![(Code::InvalidValue, "variantUpdates".to_owned(), limit)]
        );
        // Replacing one is fine.
        let body = json!({"variantUpdates": {"v0": null, "new": {}}});
        assert!(apply_update(&exp, body.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn the_whole_definition_is_limited_in_size() {
        // Each variant well under the settings limit; together over 1 MiB.
        let big = json!({ "text": "x".repeat(60_000) });
        let mut exp = experiment_with(json!({"name": "e"}));
        let limit = Some(json!({ "limit": MAX_DEFINITION_BYTES }));
        for i in 0.. {
            let body = json!({"variantUpdates": { format!("v{i}"): {"settings": big.clone()} }});
            match apply_update(&exp, body.to_string().as_bytes()) {
                Ok(next) => exp = next,
                Err(problem) => {
                    assert_eq!(
                        problems_of(Err::<(), _>(problem)),
                        vec![(Code::InvalidValue, "variantUpdates".to_owned(), limit)]
                    );
                    break;
                }
            }
        }
        let size = definition_bytes(&exp, usize::MAX).unwrap_or(usize::MAX);
        assert!(
            size <= MAX_DEFINITION_BYTES && size > MAX_DEFINITION_BYTES - 61_000,
            "{size}"
        );
        // Shrinking it is always fine.
        let body = json!({"variantUpdates": {"v0": {"settings": {}}}});
        assert!(apply_update(&exp, body.to_string().as_bytes()).is_ok());
    }
}
