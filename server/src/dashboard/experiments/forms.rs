//! What the experiment forms post, read once into types, and their
//! translation into the API's JSON bodies (core validates those, as it
//! does the API's). The confirmed actions and the notices after a redirect
//! are `actions`.

use myna_core::json::{self, JsonError};
use myna_core::search::MAX_LIMIT;
use myna_core::weights::WeightsMode;
use myna_core::{Code, Experiment, Message, Problem, Variant};
use serde_json::{Map, Value, json};

use crate::request::Params;

/// A settings textarea as a JSON value (blank is `{}`), read as strictly
/// as the API reads its bodies (core's `json::parse`: a key twice in one
/// object is refused, not the last one kept); a problem at `path` (or
/// within it: core's message, its path under `path`) when it is not such
/// JSON (core checks that it is an object).
fn settings_value(text: &str, path: &str, problems: &mut Vec<Message>) -> Value {
    if text.trim().is_empty() {
        return Value::Object(Map::new());
    }
    json::parse(text.as_bytes()).unwrap_or_else(|error| {
        match error {
            JsonError::Syntax(error, _) => problems.push(Message::at(
                Code::InvalidJson,
                path,
                format!("This is not valid JSON: {error}."),
            )),
            other => problems.extend(json::problem(other).messages.into_iter().map(|mut m| {
                m.path = Some(match m.path.filter(|inner| !inner.is_empty()) {
                    Some(inner) if inner.starts_with('[') => format!("{path}{inner}"),
                    Some(inner) => format!("{path}.{inner}"),
                    None => path.to_owned(),
                });
                m
            })),
        }
        Value::Null
    })
}

/// The weights mode a form's select chose (blank: none chosen), or a
/// problem at `mode` for any other value.
fn mode_value(text: &str, problems: &mut Vec<Message>) -> Option<WeightsMode> {
    if text.is_empty() {
        return None;
    }
    let mode = WeightsMode::parse(text);
    if mode.is_none() {
        problems.push(Message::at(
            Code::InvalidValue,
            "mode",
            "Choose how the weights share traffic: \"conversions\" or \"decide\".",
        ));
    }
    mode
}

/// The lines of a textarea that are not blank, trimmed.
pub(super) fn ids(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|line| !line.is_empty())
}

/// What the new-experiment form held (to show again after a problem).
#[derive(Debug, Default)]
pub struct NewForm<'a> {
    /// The name.
    pub name: &'a str,
    /// The id pages use (blank: the default from the name).
    pub id: &'a str,
    /// The visibility (core checks it).
    pub visibility: &'a str,
    /// The variant ids, one a line.
    pub variants: &'a str,
    /// The settings, JSON.
    pub settings: &'a str,
    /// How the weights share traffic (`conversions` or `decide`, the
    /// setting `myna.weights.mode`).
    pub mode: &'a str,
    /// The uuid the experiment gets, chosen when the form was shown, so
    /// the form sent twice creates one experiment.
    pub uuid: &'a str,
}

impl<'a> NewForm<'a> {
    /// The form's fields.
    pub fn of(form: &'a Params) -> NewForm<'a> {
        NewForm {
            name: form.get("name").unwrap_or_default(),
            id: form.get("id").unwrap_or_default(),
            visibility: form.get("visibility").unwrap_or_default(),
            variants: form.get("variants").unwrap_or_default(),
            settings: form.get("settings").unwrap_or_default(),
            mode: form.get("mode").unwrap_or_default(),
            uuid: form.get("uuid").unwrap_or_default(),
        }
    }

    /// The create body (`name`, `id` unless blank, `visibility`,
    /// `settings`, `variants`) for core's `parse_create`, or the problems of
    /// the form itself. `decide` chosen in the select is written into the
    /// settings; `conversions`, the default, leaves them as typed.
    pub fn create_body(&self) -> Result<Value, Problem> {
        let mut problems = Vec::new();
        let mut settings = settings_value(self.settings, "settings", &mut problems);
        if let Some(WeightsMode::Decide) = mode_value(self.mode, &mut problems) {
            WeightsMode::Decide.set_in(&mut settings);
        }
        let variants: Vec<Value> = ids(self.variants).map(|id| json!({ "id": id })).collect();
        if variants.is_empty() {
            problems.push(Message::at(
                Code::MissingField,
                "variants",
                "Give at least one variant id (one a line).",
            ));
        }
        let mut body = json!({
            "name": self.name,
            "visibility": self.visibility,
            "settings": settings,
            "variants": variants,
        });
        with_id(&mut body, self.id);
        if let Ok(uuid) = uuid::Uuid::parse_str(self.uuid) {
            body["uuid"] = json!(uuid);
        }
        if !problems.is_empty() {
            let core = myna_core::experiment::parse_create(body.to_string().as_bytes());
            return Err(with_core_problems(problems, core.err()));
        }
        Ok(body)
    }
}

/// The form's own problems (JSON that does not parse, a variant gone…)
/// and, after them, core's problems with the rest of the body (where the
/// form's failed, a `null`: left as it is), so that one save lists every
/// problem; core's at a path the form's name already are left out.
fn with_core_problems(mut problems: Vec<Message>, core: Option<Problem>) -> Problem {
    let named: Vec<Option<String>> = problems.iter().map(|m| m.path.clone()).collect();
    problems.extend(
        core.into_iter()
            .flat_map(|p| p.messages)
            .filter(|m| !named.contains(&m.path)),
    );
    Problem::many(problems)
}

/// Adds `id` to a body unless it is blank (blank keeps the id, or gives
/// the default from the name at creation).
fn with_id(body: &mut Value, id: &str) {
    let id = id.trim();
    if let (Some(body), false) = (body.as_object_mut(), id.is_empty()) {
        body.insert("id".to_owned(), Value::String(id.to_owned()));
    }
}

/// One variant in the edit form.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantForm {
    /// Its id (fixed).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its settings, JSON.
    pub settings: String,
    /// Whether it is to be removed.
    pub remove: bool,
}

/// What the edit form holds.
#[derive(Debug, Clone, PartialEq)]
pub struct EditForm {
    /// The name.
    pub name: String,
    /// The id pages use.
    pub id: String,
    /// The visibility.
    pub visibility: String,
    /// The settings, JSON.
    pub settings: String,
    /// How the weights share traffic (`conversions` or `decide`, the
    /// setting `myna.weights.mode`), as chosen in the select…
    pub mode: String,
    /// …and as the page showed it: a select left as it was leaves the
    /// settings as typed.
    pub mode_was: String,
    /// The variants, in the experiment's order.
    pub variants: Vec<VariantForm>,
    /// New variant ids, one a line.
    pub add: String,
    /// The [`definition_tag`] of the experiment the form was filled in
    /// with: a save refuses to replace a definition changed since.
    pub was: String,
    /// A digest of each field as filled in ([`super::merge::field_tags`]):
    /// a refused save keeps the fields edited since over the newer version.
    pub loaded: String,
    /// The [`removal_tag`] the owner confirmed with the form's second
    /// button (shown once a save asked): a removal deletes counts for good,
    /// so it is never done by one stray tick and Enter, nor of other
    /// variants than the ones the refusal named (their counts go whole,
    /// with the views recorded since the refusal: on a live experiment
    /// they grow between the two presses).
    pub confirm_removal: String,
}

/// A digest of what removing the variants ticked in `form` deletes from
/// `experiment`: each counted one's id (empty when nothing counted is
/// ticked). The refusal's button carries it; a save goes ahead only when
/// it still names the variants whose counts would be deleted.
pub fn removal_tag(experiment: &Experiment, form: &EditForm) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    let mut counted = false;
    for v in form.variants.iter().filter(|v| v.remove) {
        let Some(stored) = current_variant(experiment, &v.id).filter(|c| c.has_counts()) else {
            continue;
        };
        counted = true;
        digest.update((stored.id.len() as u64).to_le_bytes());
        digest.update(stored.id.as_bytes());
    }
    if counted {
        crate::auth::secret::hex(&digest.finalize()[..16])
    } else {
        String::new()
    }
}

/// A digest of `experiment`'s definition (everything the edit form sets:
/// name, id, visibility, settings, each variant's id, name and settings;
/// what core's `Experiment::same_definition` compares, less identities):
/// equal for equal definitions, on every instance and after restarts.
pub fn definition_tag(experiment: &Experiment) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    let mut field = |text: &str| {
        // Length-prefixed, so no two definitions run together alike.
        digest.update((text.len() as u64).to_le_bytes());
        digest.update(text.as_bytes());
    };
    field(&experiment.name);
    field(&experiment.id);
    field(experiment.visibility.as_str());
    field(&experiment.settings.to_string());
    for v in &experiment.variants {
        field(&v.id);
        field(&v.name);
        field(&v.settings.to_string());
    }
    crate::auth::secret::hex(&digest.finalize()[..16])
}

/// A JSON value as a settings textarea shows it.
fn pretty(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        value => serde_json::to_string_pretty(value).unwrap_or_default(),
    }
}

impl EditForm {
    /// The form filled in with `experiment` as it is.
    pub fn of(experiment: &Experiment) -> EditForm {
        let mode = WeightsMode::from_settings(&experiment.settings).0.as_str();
        let mut form = EditForm {
            name: experiment.name.clone(),
            id: experiment.id.clone(),
            visibility: experiment.visibility.as_str().to_owned(),
            settings: pretty(&experiment.settings),
            mode: mode.to_owned(),
            mode_was: mode.to_owned(),
            variants: experiment
                .variants
                .iter()
                .map(|v| VariantForm {
                    id: v.id.clone(),
                    name: v.name.clone(),
                    settings: pretty(&v.settings),
                    remove: false,
                })
                .collect(),
            add: String::new(),
            was: definition_tag(experiment),
            loaded: String::new(),
            confirm_removal: String::new(),
        };
        form.loaded = super::merge::field_tags(&form);
        form
    }

    /// The form as posted (variants `v0.…`, `v1.…` up to the first gap).
    pub fn posted(form: &Params) -> EditForm {
        let field = |name: String| form.get(&name).unwrap_or_default().to_owned();
        let variants = (0..MAX_LIMIT)
            .map_while(|i| {
                let id = form.get(&format!("v{i}.id"))?;
                Some(VariantForm {
                    id: id.to_owned(),
                    name: field(format!("v{i}.name")),
                    settings: field(format!("v{i}.settings")),
                    remove: form.get(&format!("v{i}.remove")).is_some(),
                })
            })
            .collect();
        EditForm {
            name: field("name".to_owned()),
            id: field("id".to_owned()),
            visibility: field("visibility".to_owned()),
            settings: field("settings".to_owned()),
            mode: field("mode".to_owned()),
            mode_was: field("mode_was".to_owned()),
            variants,
            add: field("add".to_owned()),
            was: field("was".to_owned()),
            loaded: field("loaded".to_owned()),
            confirm_removal: form.get("confirm_removal").unwrap_or_default().to_owned(),
        }
    }

    /// The update body (`name`, `id` unless blank, `visibility`,
    /// `settings`, `variantUpdates`) for core's `apply_update`, or the
    /// problems of the form itself. A mode chosen in the select (other
    /// than the one the page showed) is written into the settings.
    pub fn update_body(&self, current: &Experiment) -> Result<Value, Problem> {
        let mut problems = Vec::new();
        let mut settings = settings_value(&self.settings, "settings", &mut problems);
        if self.mode != self.mode_was
            && let Some(mode) = mode_value(&self.mode, &mut problems)
        {
            mode.set_in(&mut settings);
        }
        // Confirmed: the removal of the variants the refusal named.
        let confirmed =
            !self.confirm_removal.is_empty() && self.confirm_removal == removal_tag(current, self);
        let mut updates = Map::new();
        for v in &self.variants {
            // The variant the field was rendered for: a browser sends a line
            // break in the hidden id as CRLF. One that is gone (deleted
            // since the page was loaded) is never created again from here:
            // only "Add variants" creates.
            let Some(stored) = current_variant(current, &v.id) else {
                if !v.remove {
                    problems.push(Message::at(
                        Code::InvalidValue,
                        myna_core::settings::key_path("variantUpdates", &v.id),
                        "This variant no longer exists (deleted since the page was loaded?): reload the page.",
                    ));
                }
                continue;
            };
            let id = stored.id.as_str();
            let path = myna_core::settings::key_path("variantUpdates", id);
            let update = if v.remove {
                if stored.has_counts() && !confirmed {
                    let views = match stored.views {
                        1 => "1 view".to_owned(),
                        n => format!("{n} views"),
                    };
                    problems.push(Message::at(
                        Code::Conflict,
                        format!("{path}.remove"),
                        format!(
                            "It deletes the variant's {views} and its rewards (total {}), \
                             and those recorded until it is saved, for good, so nothing was \
                             saved yet: press “Remove and save” below to confirm, or untick \
                             Remove.",
                            stored.total_reward
                        ),
                    ));
                }
                Value::Null
            } else {
                let settings =
                    settings_value(&v.settings, &format!("{path}.settings"), &mut problems);
                let name = as_stored(&v.name, &stored.name);
                json!({ "name": name, "settings": settings })
            };
            updates.insert(id.to_owned(), update);
        }
        for id in ids(&self.add) {
            if updates.contains_key(id) {
                // At the field it was typed in: the id names a variant
                // above, which is not where the problem is.
                problems.push(Message::at(
                    Code::InvalidValue,
                    "add",
                    format!("A variant with the id `{id}` exists already."),
                ));
            } else {
                updates.insert(id.to_owned(), json!({}));
            }
        }
        let mut body = json!({
            "name": as_stored(&self.name, &current.name),
            "visibility": self.visibility,
            "settings": settings,
            "variantUpdates": updates,
        });
        with_id(&mut body, &self.id);
        if !problems.is_empty() {
            let core = myna_core::experiment::apply_update(current, body.to_string().as_bytes());
            return Err(with_core_problems(problems, core.err()));
        }
        Ok(body)
    }
}

/// A name from a one-line field: the `stored` one when the field held it
/// unchanged (a browser strips the line breaks of a text input's value, so
/// a name the API stored with one would otherwise change at every save).
fn as_stored<'a>(posted: &'a str, stored: &'a str) -> &'a str {
    let stripped = stored.chars().filter(|c| !matches!(c, '\r' | '\n'));
    if stripped.eq(posted.chars()) {
        stored
    } else {
        posted
    }
}

/// `experiment`'s variant a form's `posted` id names: the same id, or the
/// same once the browser's CRLF line breaks are read as LF.
pub(super) fn current_variant<'a>(experiment: &'a Experiment, posted: &str) -> Option<&'a Variant> {
    let find = |id: &str| experiment.variants.iter().find(|v| v.id == id);
    find(posted).or_else(|| find(&posted.replace("\r\n", "\n")))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn an_edit_form_reads_back_as_it_was_rendered() {
        let mut experiment = Experiment {
            uuid: uuid::Uuid::from_u128(1),
            alias: None,
            id: "hero_2".into(),
            account_id: uuid::Uuid::from_u128(2),
            name: "e".into(),
            visibility: myna_core::Visibility::Draft,
            settings: json!({"a": 1}),
            variants: vec![myna_core::Variant::new("x"), myna_core::Variant::new("y")],
        };
        experiment.variants[1].name = "Why".into();
        let form = EditForm::of(&experiment);
        let mut pairs = vec![
            ("name".to_owned(), form.name.clone()),
            ("id".to_owned(), form.id.clone()),
            ("visibility".to_owned(), form.visibility.clone()),
            ("settings".to_owned(), form.settings.clone()),
            ("mode".to_owned(), form.mode.clone()),
            ("mode_was".to_owned(), form.mode_was.clone()),
            ("add".to_owned(), form.add.clone()),
            ("was".to_owned(), form.was.clone()),
            ("loaded".to_owned(), form.loaded.clone()),
        ];
        for (i, v) in form.variants.iter().enumerate() {
            pairs.push((format!("v{i}.id"), v.id.clone()));
            pairs.push((format!("v{i}.name"), v.name.clone()));
            pairs.push((format!("v{i}.settings"), v.settings.clone()));
        }
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    myna_core::wire::url_encode(k),
                    myna_core::wire::url_encode(v)
                )
            })
            .collect();
        let posted = EditForm::posted(&Params::parse(&query.join("&")));
        assert_eq!(posted, form);
        let body = posted.update_body(&experiment).expect("a valid body");
        assert_eq!(body["variantUpdates"]["y"]["name"], "Why");
        assert_eq!(body["settings"], json!({"a": 1}));
        assert_eq!(body["id"], "hero_2");
    }

    /// A draft named and id'd `e` with these variants.
    pub(in crate::dashboard::experiments) fn draft(variants: &[&str]) -> Experiment {
        Experiment {
            uuid: uuid::Uuid::from_u128(1),
            alias: None,
            id: "e".into(),
            account_id: uuid::Uuid::from_u128(2),
            name: "e".into(),
            visibility: myna_core::Visibility::Draft,
            settings: json!({}),
            variants: variants
                .iter()
                .map(|id| myna_core::Variant::new(*id))
                .collect(),
        }
    }

    #[test]
    fn one_save_lists_every_problem_of_the_form_and_of_the_rest() {
        let experiment = draft(&["b", "c"]);
        let mut form = EditForm::of(&experiment);
        form.name = "   ".into();
        form.variants[0].settings = "[]".into();
        form.variants[1].settings = "{bad".into();
        let problem = form.update_body(&experiment).expect_err("refused");
        let paths: Vec<_> = problem
            .messages
            .iter()
            .map(|m| (m.code, m.path.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(
            paths,
            [
                (Code::InvalidJson, "variantUpdates.c.settings"),
                (Code::InvalidValue, "name"),
                (Code::InvalidType, "variantUpdates.b.settings"),
            ]
        );
    }

    #[test]
    fn removing_a_variant_with_counts_waits_for_its_confirmation() {
        let mut experiment = draft(&["b", "c", "d"]);
        experiment.variants[0].views = 120;
        experiment.variants[0].total_reward = 8.5;
        experiment.variants[1].total_reward = 1.0;
        let mut form = EditForm::of(&experiment);
        for v in &mut form.variants {
            v.remove = true;
        }
        // One tick and Enter: nothing removed, each counted variant named
        // with what it would lose (`d` has no counts: nothing to lose).
        let problem = form.update_body(&experiment).expect_err("asks first");
        let asked: Vec<_> = problem
            .messages
            .iter()
            .map(|m| (m.code, m.path.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(
            asked,
            [
                (Code::Conflict, "variantUpdates.b.remove"),
                (Code::Conflict, "variantUpdates.c.remove")
            ]
        );
        assert!(problem.messages[0].message.contains("120 views"));
        assert!(problem.messages[0].message.contains("8.5"));
        // Confirmed with the refusal's tag: all three go.
        form.confirm_removal = removal_tag(&experiment, &form);
        let body = form.update_body(&experiment).expect("a valid body");
        assert_eq!(
            body["variantUpdates"],
            json!({ "b": null, "c": null, "d": null })
        );
        // Views recorded since the refusal go with them (a live experiment
        // counts on between the two presses)...
        let mut counted_since = experiment.clone();
        counted_since.variants[0].views += 500;
        counted_since.variants[1].total_reward += 3.0;
        let body = form.update_body(&counted_since).expect("still confirmed");
        assert_eq!(body["variantUpdates"]["b"], Value::Null);
        // ...but another variant ticked instead is asked again.
        let mut swapped = form.clone();
        swapped.variants[0].remove = false;
        swapped.variants[1].remove = false;
        swapped.variants[2].remove = true;
        experiment.variants[2].views = 1;
        let asked = swapped.update_body(&experiment).expect_err("asked");
        assert_eq!(
            asked.messages[0].path.as_deref(),
            Some("variantUpdates.d.remove")
        );
        assert!(asked.messages[0].message.contains("1 view "));
        // Read back from the form as a browser posts it.
        let posted = |fields: &[(&str, &str)]| {
            let query: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            EditForm::posted(&Params::parse(&query.join("&")))
        };
        assert!(
            posted(&[("v0.id", "b"), ("v0.remove", "1")])
                .confirm_removal
                .is_empty()
        );
        assert_eq!(
            posted(&[
                ("v0.id", "b"),
                ("v0.remove", "1"),
                ("confirm_removal", "ab12")
            ])
            .confirm_removal,
            "ab12"
        );
    }

    #[test]
    fn only_variants_the_experiment_has_are_updated_from_the_form() {
        let experiment = draft(&["a\nb", "c"]);
        let mut form = EditForm::of(&experiment);
        // As a browser sends the hidden id back: its line break as CRLF.
        form.variants[0].id = "a\r\nb".into();
        let body = form.update_body(&experiment).expect("a valid body");
        let ids: Vec<&String> = body["variantUpdates"]
            .as_object()
            .expect("updates")
            .keys()
            .collect();
        assert_eq!(ids, ["a\nb", "c"], "no variant made of the CRLF id");
        // Its name (the id, by default) as a one-line field sends it back:
        // without the line break. Unchanged, it stays as stored.
        form.variants[0].name = "ab".into();
        let body = form.update_body(&experiment).expect("a valid body");
        assert_eq!(body["variantUpdates"]["a\nb"]["name"], "a\nb");
        form.variants[0].name = "ab2".into();
        let body = form.update_body(&experiment).expect("a valid body");
        assert_eq!(
            body["variantUpdates"]["a\nb"]["name"], "ab2",
            "an edit is an edit"
        );
        // A variant deleted since the page was loaded is not made again…
        let mut gone = experiment.clone();
        gone.variants.truncate(1);
        let problem = EditForm::of(&experiment)
            .update_body(&gone)
            .expect_err("stale");
        assert_eq!(
            problem.messages[0].path.as_deref(),
            Some("variantUpdates.c")
        );
        // …and removing it again is no problem.
        let mut removing = EditForm::of(&experiment);
        removing.variants[1].remove = true;
        let body = removing.update_body(&gone).expect("a valid body");
        assert_eq!(body["variantUpdates"].as_object().map(|u| u.len()), Some(1));
    }

    #[test]
    fn a_blank_id_is_left_out_of_the_bodies() {
        let new = NewForm {
            name: "Hero",
            id: "  ",
            visibility: "draft",
            variants: "a",
            settings: "",
            mode: "",
            uuid: "",
        };
        let body = new.create_body().expect("a valid body");
        assert!(body.get("id").is_none(), "{body}");
        let body = NewForm {
            id: " hero ",
            ..new
        }
        .create_body();
        assert_eq!(body.expect("a valid body")["id"], "hero");
    }

    #[test]
    fn the_forms_own_problems_come_all_at_once() {
        let form = NewForm {
            name: "n",
            id: "",
            visibility: "draft",
            variants: " \n ",
            settings: "{not json",
            mode: "fastest",
            uuid: "",
        };
        let problem = form.create_body().expect_err("three problems");
        let paths: Vec<_> = problem.messages.iter().map(|m| m.path.as_deref()).collect();
        assert_eq!(paths, [Some("settings"), Some("mode"), Some("variants")]);
    }

    #[test]
    fn the_traffic_select_writes_the_weights_mode_only_when_chosen() {
        let new = NewForm {
            name: "Hero",
            id: "",
            visibility: "draft",
            variants: "a\nb",
            settings: r#"{"a": 1}"#,
            mode: "decide",
            uuid: "",
        };
        let body = new.create_body().expect("a valid body");
        assert_eq!(
            body["settings"],
            json!({"a": 1, "myna.weights.mode": "decide"})
        );
        let body = NewForm {
            mode: "conversions",
            ..new
        }
        .create_body()
        .expect("a valid body");
        assert_eq!(
            body["settings"],
            json!({"a": 1}),
            "the default adds nothing"
        );

        let experiment = Experiment {
            uuid: uuid::Uuid::from_u128(1),
            alias: None,
            id: "hero".into(),
            account_id: uuid::Uuid::from_u128(2),
            name: "e".into(),
            visibility: myna_core::Visibility::Draft,
            settings: json!({"myna": {"weights": {"mode": "decide"}}, "a": 1}),
            variants: vec![myna_core::Variant::new("x")],
        };
        let form = EditForm::of(&experiment);
        assert_eq!(
            (form.mode.as_str(), form.mode_was.as_str()),
            ("decide", "decide")
        );
        // The select left as it was: the settings as typed (here, edited).
        let typed = EditForm {
            settings: r#"{"a": 2}"#.into(),
            ..form.clone()
        };
        assert_eq!(
            typed.update_body(&experiment).expect("a valid body")["settings"],
            json!({"a": 2})
        );
        // The select changed: it wins, whatever spelling the settings use.
        let chosen = EditForm {
            mode: "conversions".into(),
            ..form.clone()
        };
        assert_eq!(
            chosen.update_body(&experiment).expect("a valid body")["settings"],
            json!({"myna": {"weights": {}}, "a": 1, "myna.weights.mode": "conversions"})
        );
        let bad = EditForm {
            mode: "<b>".into(),
            ..form
        };
        let problem = bad.update_body(&experiment).expect_err("not a mode");
        assert_eq!(problem.messages[0].path.as_deref(), Some("mode"));
    }
}
