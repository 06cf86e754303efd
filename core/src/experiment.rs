//! Creating and updating experiments: the create body and the update body
//! (`name`, `visibility`, `settings`, `settingsUpdates`, `variantUpdates`).
//!
//! Both validate everything and return every problem with its path. The
//! experiment's `id` (the short name pages use) follows the rules of [`id`].

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::{MAX_BODY_BYTES, body_too_large};
use crate::limits::{
    Definition, MAX_DEFINITION_BYTES, MAX_VARIANTS, definition_bytes, definition_too_large,
    too_many_variants,
};
use crate::model::{Experiment, Variant, Visibility, empty_object};
use crate::problem::{BODY_PATH, Code, Message, Problem};
use crate::settings::key_path;

mod fields;
pub mod id;

use fields::{
    apply_settings_updates, apply_variant_spec, check_variant_id, composed_id,
    no_variants_published, parse_name, parse_settings, parse_visibility, reads_as,
};

pub use id::{default_id, id_clashes, id_taken, is_valid_id, legacy_id, unique_id};

/// A validated create request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExperiment {
    /// The uuid the client chose, if any.
    pub uuid: Option<Uuid>,
    /// The id the client chose, if any (else the default from the name).
    pub id: Option<String>,
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
    /// client chose one, and the id the client chose or else
    /// [`default_id`] of its name (which the server then makes unique).
    pub fn into_experiment(self, uuid: Uuid, account_id: Uuid) -> Experiment {
        Experiment {
            uuid: self.uuid.unwrap_or(uuid),
            id: self.id.unwrap_or_else(|| default_id(&self.name)),
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
    match crate::json::parse_body(body)? {
        Value::Object(map) => Ok(map),
        _ => Err(Problem::at(
            Code::InvalidType,
            BODY_PATH,
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
/// `{ uuid?, id?, name, visibility?, settings?, variants?: { id: { name?, settings? } } }`
/// (an array of `{ id, name?, settings? }` is accepted for `variants` too).
pub fn parse_create(body: &[u8]) -> Result<NewExperiment, Problem> {
    let root = parse_object(body)?;
    let mut problems = Vec::new();
    crate::json::unknown_fields(root.keys(), "", CREATE_FIELDS, "a create", &mut problems);
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
    let id = match root.get("id") {
        None | Some(Value::Null) => None,
        Some(value) => id::parse_id(value, "id", &mut problems),
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
    let mut settings = match root.get("settings") {
        None | Some(Value::Null) => empty_object(),
        Some(value) => parse_settings(value, "settings", &mut problems).unwrap_or_default(),
    };
    // As an update sets them (the hosted Myna's create took them too).
    if let Some(value) = root.get("settingsUpdates").filter(|v| !v.is_null()) {
        apply_settings_updates(&mut settings, value, "settingsUpdates", &mut problems);
    }
    let mut variants: Vec<Variant> = Vec::new();
    // The variants' ids as a reader sees them (`composed_id`), in order.
    let mut composed: Vec<String> = Vec::new();
    let mut add = |id: &str, spec: &Value, path: String, problems: &mut Vec<Message>| {
        if variants.iter().any(|v| v.id == id) {
            problems.push(Message::at(
                Code::InvalidValue,
                path,
                "Variant ids must be unique.",
            ));
            return;
        }
        let nfc = composed_id(id);
        if let Some(i) = composed.iter().position(|c| *c == nfc) {
            problems.push(reads_as(&variants[i].id, path));
            return;
        }
        let mut variant = Variant::new(id);
        if apply_variant_spec(&mut variant, spec, &path, problems) {
            variants.push(variant);
            composed.push(nfc);
        }
    };
    let count = match root.get("variants") {
        // A null variant deletes one: at a create, there is none to delete.
        Some(Value::Object(map)) => map.values().filter(|v| !v.is_null()).count(),
        Some(Value::Array(items)) => items.iter().filter(|v| !v.is_null()).count(),
        _ => 0,
    };
    if count > MAX_VARIANTS {
        problems.push(too_many_variants("variants"));
    }
    match root.get("variants") {
        // Past the limit, the variants are not looked at one by one (a 1 MiB
        // body holds 60,000 of them: checking each against the others would
        // cost seconds of CPU).
        _ if count > MAX_VARIANTS => {}
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (id, spec) in map.iter().filter(|(_, spec)| !spec.is_null()) {
                let path = key_path("variants", id);
                if check_variant_id(id, &path, &mut problems) {
                    add(id, spec, path, &mut problems);
                }
            }
        }
        Some(Value::Array(items)) => {
            // The legacy array form: each variant an object with its `id`; a
            // null is no variant, as in the object form.
            for (i, spec) in items.iter().enumerate().filter(|(_, spec)| !spec.is_null()) {
                let path = format!("variants[{i}]");
                if !spec.is_object() {
                    problems.push(Message::at(
                        Code::InvalidType,
                        path,
                        "A variant must be an object with its `id` (or null for none).",
                    ));
                    continue;
                }
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
    if visibility == Visibility::Published && count == 0 {
        problems.push(no_variants_published("variants"));
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
            id,
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
    if root.contains_key("variants") {
        problems.push(Message::at(
            Code::InvalidValue,
            "variants",
            "An update changes variants by `variantUpdates` (an object by variant id; null deletes one): `variants` is for a create.",
        ));
    }
    let others = root.keys().filter(|k| *k != "variants");
    crate::json::unknown_fields(others, "", UPDATE_FIELDS, "an update", &mut problems);
    let mut next = experiment.clone();
    if let Some(value) = root.get("id").filter(|v| !v.is_null())
        && let Some(id) = id::parse_id(value, "id", &mut problems)
    {
        next.id = id;
    }
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
        // More updates than the variants it has and may add: past the limit
        // whatever they are, and not looked at one by one (see create).
        Some(Value::Object(updates))
            if updates.len() > experiment.variants.len() + MAX_VARIANTS =>
        {
            problems.push(too_many_variants("variantUpdates"));
        }
        Some(Value::Object(updates)) => {
            for (id, spec) in updates {
                let path = key_path("variantUpdates", id);
                if spec.is_null() {
                    next.variants.retain(|v| &v.id != id);
                    continue;
                }
                if let Some(variant) = next.variants.iter_mut().find(|v| &v.id == id) {
                    apply_variant_spec(variant, spec, &path, &mut problems);
                } else if let Some(same) = next
                    .variants
                    .iter()
                    .find(|v| composed_id(&v.id) == composed_id(id))
                {
                    problems.push(reads_as(&same.id, path));
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
    // Pages choose among a published experiment's variants: it keeps one
    // (unless it had none before this update: it may still be fixed).
    let unservable =
        |e: &Experiment| e.visibility == Visibility::Published && e.variants.is_empty();
    if unservable(&next) && !unservable(experiment) {
        let path = if next.variants.len() < experiment.variants.len() {
            "variantUpdates"
        } else {
            "visibility"
        };
        problems.push(no_variants_published(path));
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

/// The fields a create reads (`typename` aside, which any body may carry).
const CREATE_FIELDS: &[&str] = &[
    "uuid",
    "id",
    "name",
    "visibility",
    "settings",
    "settingsUpdates",
    "variants",
];
/// The fields an update reads.
const UPDATE_FIELDS: &[&str] = &[
    "id",
    "name",
    "visibility",
    "settings",
    "settingsUpdates",
    "variantUpdates",
];

#[cfg(test)]
mod tests;
