//! Experiment ids: the short name pages know an experiment by (the
//! deployment's `id`, `client.experiments.hero`, the CSS class `myna-hero`).
//!
//! An id is 1 to [`MAX_EXPERIMENT_ID_CHARS`] ASCII letters, digits, `-` and
//! `_` (so it fits a CSS class and a JavaScript property name as written in
//! markup). Without one, an experiment's id is a slug of its name
//! ([`default_id`]), made unique among the account's experiments by the
//! server ([`unique_id`]). Among an account's *published* experiments an id
//! is unique: the server refuses a change that would give two the same one
//! ([`id_taken`]).

use serde_json::{Value, json};

use crate::limits::MAX_EXPERIMENT_ID_CHARS;
use crate::model::{Experiment, Visibility};
use crate::problem::{Code, Message};

/// The id an experiment gets when nothing else is said.
const FALLBACK_ID: &str = "experiment";

/// Whether `id` follows the rule: 1 to [`MAX_EXPERIMENT_ID_CHARS`] ASCII
/// letters, digits, `-` or `_`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_EXPERIMENT_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads an `id` field at `path`: a string following the rule, else a
/// problem in `problems`.
pub fn parse_id(value: &Value, path: &str, problems: &mut Vec<Message>) -> Option<String> {
    match value {
        Value::String(id) if is_valid_id(id) => Some(id.clone()),
        Value::String(_) => {
            problems.push(
                Message::at(
                    Code::InvalidValue,
                    path,
                    format!(
                        "An experiment id must be 1 to {MAX_EXPERIMENT_ID_CHARS} ASCII letters, \
                         digits, `-` or `_`."
                    ),
                )
                .with_data(json!({ "limit": MAX_EXPERIMENT_ID_CHARS })),
            );
            None
        }
        _ => {
            problems.push(Message::at(
                Code::InvalidType,
                path,
                "An experiment id must be a string.",
            ));
            None
        }
    }
}

/// The default id of a new experiment named `name`: [`legacy_id`] of the
/// name with its accents and case folded ("Été campaign Straße" →
/// `ete-campaign-strasse`, not `t-campaign-stra-e`).
pub fn default_id(name: &str) -> String {
    legacy_id(&crate::search::folded(name))
}

/// The id of an experiment stored before ids existed (`id` NULL), by the
/// rule its pages were first served with, so their classes never change:
/// the name's lower-case ASCII letters and digits, every run of other
/// characters one `-`, no `-` at either end, at most
/// [`MAX_EXPERIMENT_ID_CHARS`] characters; `experiment` when nothing is
/// left ("Hero banner!" → `hero-banner`).
pub fn legacy_id(name: &str) -> String {
    let mut slug = String::new();
    let mut gap = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !slug.is_empty() {
                slug.push('-');
            }
            gap = false;
            slug.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
        if slug.len() >= MAX_EXPERIMENT_ID_CHARS {
            break;
        }
    }
    slug.truncate(MAX_EXPERIMENT_ID_CHARS);
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        FALLBACK_ID.to_owned()
    } else {
        slug.to_owned()
    }
}

/// `base` if `taken` says it is free, else the first of `base-2`, `base-3`,
/// … that is (`base` shortened as needed to keep within
/// [`MAX_EXPERIMENT_ID_CHARS`]). `base` must follow the rule.
pub fn unique_id(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_owned();
    }
    let mut n: u64 = 2;
    loop {
        let suffix = format!("-{n}");
        let room = MAX_EXPERIMENT_ID_CHARS.saturating_sub(suffix.len());
        let head = base.get(..base.len().min(room)).unwrap_or(base);
        let candidate = format!("{head}{suffix}");
        if !taken(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// Whether `experiment`, as it would be stored, is published with an id
/// another published experiment of `others` (its account's) has: then the
/// change is refused with [`id_taken`]. Drafts and archived experiments
/// keep their ids without holding them.
pub fn id_clashes<'a>(
    experiment: &Experiment,
    mut others: impl Iterator<Item = &'a Experiment>,
) -> bool {
    experiment.visibility == Visibility::Published
        && others.any(|e| {
            e.uuid != experiment.uuid
                && e.visibility == Visibility::Published
                && e.id == experiment.id
        })
}

/// The problem of an id another published experiment of the account has
/// (409 `conflict`, path `id`).
pub fn id_taken(id: &str) -> Message {
    Message::at(
        Code::Conflict,
        "id",
        format!(
            "Another published experiment of this account has the id `{id}`; ids of published \
             experiments are unique (pages find experiments by them)."
        ),
    )
    .with_data(json!({ "id": id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        assert!(is_valid_id("hero"));
        assert!(is_valid_id("Hero_banner-2"));
        assert!(is_valid_id(&"a".repeat(MAX_EXPERIMENT_ID_CHARS)));
        assert!(!is_valid_id(&"a".repeat(MAX_EXPERIMENT_ID_CHARS + 1)));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("hero banner"));
        assert!(!is_valid_id("héro"));
        assert!(!is_valid_id("a.b"));
    }

    #[test]
    fn default_is_a_slug_of_the_name() {
        assert_eq!(default_id("Hero banner!"), "hero-banner");
        assert_eq!(default_id("  --Big   NEW__sale 2026 "), "big-new-sale-2026");
        assert_eq!(default_id("Café crème"), "cafe-creme");
        assert_eq!(default_id("Æsir Ørsted"), "aesir-orsted");
        assert_eq!(default_id("Été campaign Straße"), "ete-campaign-strasse");
        assert_eq!(
            legacy_id("Café crème"),
            "caf-cr-me",
            "as stored ids were made"
        );
        assert_eq!(default_id("!!!"), "experiment");
        assert_eq!(default_id("日本"), "experiment");
        let long = default_id(&"ab ".repeat(100));
        assert!(long.len() <= MAX_EXPERIMENT_ID_CHARS && is_valid_id(&long));
        assert!(!long.ends_with('-'), "{long}");
    }

    #[test]
    fn only_two_published_experiments_clash() {
        let experiment = |n: u128, id: &str, visibility: Visibility| Experiment {
            uuid: uuid::Uuid::from_u128(n),
            alias: None,
            id: id.into(),
            account_id: uuid::Uuid::from_u128(9),
            name: id.into(),
            visibility,
            settings: serde_json::json!({}),
            variants: vec![],
        };
        let hero = experiment(1, "hero", Visibility::Published);
        let other = experiment(2, "hero", Visibility::Published);
        let draft = experiment(3, "hero", Visibility::Draft);
        assert!(id_clashes(&hero, [&other].into_iter()));
        assert!(
            !id_clashes(&hero, [&draft].into_iter()),
            "a draft holds no id"
        );
        assert!(!id_clashes(&hero, [&hero].into_iter()), "not with itself");
        assert!(
            !id_clashes(&draft, [&other].into_iter()),
            "a draft may share one"
        );
        let renamed = experiment(2, "hero-2", Visibility::Published);
        assert!(!id_clashes(&hero, [&renamed].into_iter()));
    }

    #[test]
    fn unique_adds_a_counter_within_the_limit() {
        let taken = ["hero", "hero-2"];
        assert_eq!(unique_id("free", |id| taken.contains(&id)), "free");
        assert_eq!(unique_id("hero", |id| taken.contains(&id)), "hero-3");
        let long = "x".repeat(MAX_EXPERIMENT_ID_CHARS);
        let next = unique_id(&long, |id| id == long);
        assert_eq!(next.len(), MAX_EXPERIMENT_ID_CHARS);
        assert!(next.ends_with("-2") && is_valid_id(&next));
    }
}
