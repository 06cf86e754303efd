//! Creating and updating experiments: the create body and the update body
//! (`name`, `visibility`, `settings`, `settingsUpdates`, `variantUpdates`).
//!
//! Both validate everything and return every problem with its path.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::{MAX_BODY_BYTES, body_too_large, invalid_json};
use crate::model::{
    Experiment, MAX_NAME_CHARS, MAX_VARIANT_ID_CHARS, Variant, Visibility, empty_object,
};
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
    let ok = !id.is_empty() && id.chars().count() <= MAX_VARIANT_ID_CHARS;
    if !ok {
        problems.push(Message::at(
            Code::InvalidValue,
            path,
            format!("A variant id must be 1 to {MAX_VARIANT_ID_CHARS} characters."),
        ));
    }
    ok
}

fn parse_name(value: &Value, path: &str, problems: &mut Vec<Message>) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() && s.chars().count() <= MAX_NAME_CHARS => {
            Some(s.clone())
        }
        Value::String(_) => {
            problems.push(Message::at(
                Code::InvalidValue,
                path,
                format!("A name must be 1 to {MAX_NAME_CHARS} characters, not blank."),
            ));
            None
        }
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
        Some(value.clone())
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
}
