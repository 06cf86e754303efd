//! The deployment form (`GET /v2/deployment/{key}/myna.json`): what a page
//! needs to run every published experiment of an account, as the original
//! clients (`myna-js` 2.x, `myna-html`) read it.
//!
//! No counts and no account id (API keys are public); variants as an array
//! in creation order, each with its current weight.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::model::{Experiment, Visibility};

/// The path of a key's deployment under the API root.
pub fn deployment_path(key: Uuid) -> String {
    format!("/v2/deployment/{key}/myna.json")
}

/// The setting that names the class of an experiment's elements in pages.
pub const CSS_CLASS_SETTING: &str = "myna.html.cssClass";

/// The class that marks `experiment`'s elements in pages: its setting
/// [`CSS_CLASS_SETTING`] (flat or nested) when that is a non-empty string,
/// else `myna-{id}`, as `myna-html` read it. The deployment script
/// (`wasm-sdk/js/boot.js`) and `myna.bind` (`wasm-sdk/js/glue.js`) apply
/// the same rule in the page.
pub fn css_class(experiment: &Experiment) -> String {
    match crate::decision::rule::setting(&experiment.settings, CSS_CLASS_SETTING) {
        Some(Value::String(class)) if !class.is_empty() => class.clone(),
        _ => format!("myna-{}", experiment.id),
    }
}

/// The deployment form of API key `key`, whose server answers at `api_root`
/// (no trailing `/`): every *published* experiment in `experiments`, each
/// with its weights (one per variant, in order; a missing one is 0), in a
/// stable order: by `id`, then by uuid (ids of published experiments are
/// unique, so the uuid only orders ones stored before that held).
pub fn deployment_form(key: Uuid, api_root: &str, experiments: &[(&Experiment, &[f64])]) -> Value {
    serde_json::to_value(deployment(key, api_root, experiments)).unwrap_or(Value::Null)
}

/// [`deployment_form`] as JSON text, written straight from the experiments
/// (no value tree: a large account's settings are not copied first).
pub fn deployment_text(key: Uuid, api_root: &str, experiments: &[(&Experiment, &[f64])]) -> String {
    let mut published: Vec<&(&Experiment, &[f64])> = experiments
        .iter()
        .filter(|(e, _)| e.visibility == Visibility::Published)
        .collect();
    published.sort_by(|(a, _), (b, _)| deployment_order(a).cmp(&deployment_order(b)));
    let parts: Vec<String> = published
        .into_iter()
        .map(|(experiment, weights)| deployed_text(experiment, weights))
        .collect();
    deployment_text_of(key, api_root, parts.iter().map(String::as_str))
}

/// Where an experiment goes in a deployment: by `id`, then by uuid.
pub fn deployment_order(experiment: &Experiment) -> (&str, Uuid) {
    (experiment.id.as_str(), experiment.public_uuid())
}

/// One experiment of the deployment form, as JSON text, with `weights`:
/// what [`deployment_text_of`] joins (a server may keep it while the
/// experiment's definition and weights stay the same).
pub fn deployed_text(experiment: &Experiment, weights: &[f64]) -> String {
    serde_json::to_string(&deployed(experiment, weights)).unwrap_or_default()
}

/// The deployment form as JSON text from its experiments' texts
/// ([`deployed_text`], in [`deployment_order`], published ones only): the
/// same bytes as [`deployment_text`].
pub fn deployment_text_of<'p>(
    key: Uuid,
    api_root: &str,
    experiments: impl IntoIterator<Item = &'p str>,
) -> String {
    let head = Deployment {
        typename: "deployment",
        uuid: key,
        api_key: key,
        api_root,
        latest: format!("{api_root}{}", deployment_path(key)),
        experiments: Vec::new(),
    };
    let head = serde_json::to_string(&head).unwrap_or_default();
    // `…,"experiments":[]}` made `…,"experiments":[<each>,…]}`.
    let mut text = head.strip_suffix("]}").unwrap_or(&head).to_owned();
    for (i, part) in experiments.into_iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(part);
    }
    text.push_str("]}");
    text
}

fn deployment<'a>(
    key: Uuid,
    api_root: &'a str,
    experiments: &'a [(&'a Experiment, &'a [f64])],
) -> Deployment<'a> {
    let mut published: Vec<&(&Experiment, &[f64])> = experiments
        .iter()
        .filter(|(e, _)| e.visibility == Visibility::Published)
        .collect();
    published.sort_by(|(a, _), (b, _)| deployment_order(a).cmp(&deployment_order(b)));
    Deployment {
        typename: "deployment",
        uuid: key,
        api_key: key,
        api_root,
        latest: format!("{api_root}{}", deployment_path(key)),
        experiments: published
            .into_iter()
            .map(|(experiment, weights)| deployed(experiment, weights))
            .collect(),
    }
}

fn deployed<'a>(experiment: &'a Experiment, weights: &[f64]) -> DeployedExperiment<'a> {
    DeployedExperiment {
        typename: "experiment",
        uuid: experiment.public_uuid(),
        id: &experiment.id,
        name: &experiment.name,
        settings: &experiment.settings,
        variants: experiment
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| DeployedVariant {
                typename: "variant",
                id: &v.id,
                name: &v.name,
                weight: weights.get(i).copied().unwrap_or(0.0),
                settings: &v.settings,
            })
            .collect(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Deployment<'a> {
    typename: &'static str,
    uuid: Uuid,
    api_key: Uuid,
    api_root: &'a str,
    latest: String,
    experiments: Vec<DeployedExperiment<'a>>,
}

#[derive(Serialize)]
struct DeployedExperiment<'a> {
    typename: &'static str,
    uuid: Uuid,
    id: &'a str,
    name: &'a str,
    settings: &'a Value,
    variants: Vec<DeployedVariant<'a>>,
}

#[derive(Serialize)]
struct DeployedVariant<'a> {
    typename: &'static str,
    id: &'a str,
    name: &'a str,
    weight: f64,
    settings: &'a Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Variant;
    use serde_json::json;

    #[test]
    fn the_css_class_is_the_setting_when_it_names_one_else_myna_id() {
        let mut e = experiment(1, "hero", Visibility::Published);
        assert_eq!(css_class(&e), "myna-hero");
        for (settings, class) in [
            (json!({"myna.html.cssClass": "banner"}), "banner"),
            (json!({"myna": {"html": {"cssClass": "nested"}}}), "nested"),
            (json!({"myna.html": {"cssClass": "between"}}), "between"),
            (json!({"myna.html.cssClass": ""}), "myna-hero"),
            (json!({"myna.html.cssClass": 7}), "myna-hero"),
        ] {
            e.settings = settings;
            assert_eq!(css_class(&e), class, "{}", e.settings);
        }
    }

    fn experiment(n: u128, id: &str, visibility: Visibility) -> Experiment {
        let mut b = Variant::new("b");
        b.views = 10;
        b.total_reward = 3.0;
        b.settings = json!({"color": "blue"});
        Experiment {
            uuid: Uuid::from_u128(n),
            alias: None,
            id: id.into(),
            account_id: Uuid::from_u128(99),
            name: format!("Experiment {id}"),
            visibility,
            settings: json!({"myna.web.sticky": true}),
            variants: vec![b, Variant::new("a")],
        }
    }

    #[test]
    fn the_form_has_the_specs_shape() {
        let key = Uuid::from_u128(5);
        let hero = experiment(1, "hero", Visibility::Published);
        let form = deployment_form(key, "https://ab.example.com", &[(&hero, &[0.75, 0.25])]);
        let text = deployment_text(key, "https://ab.example.com", &[(&hero, &[0.75, 0.25])]);
        assert_eq!(text, form.to_string());
        assert_eq!(
            form,
            json!({
                "typename": "deployment",
                "uuid": key, "apiKey": key,
                "apiRoot": "https://ab.example.com",
                "latest": format!("https://ab.example.com/v2/deployment/{key}/myna.json"),
                "experiments": [{
                    "typename": "experiment", "uuid": hero.uuid, "id": "hero",
                    "name": "Experiment hero", "settings": {"myna.web.sticky": true},
                    "variants": [
                        {"typename": "variant", "id": "b", "name": "b", "weight": 0.75,
                         "settings": {"color": "blue"}},
                        {"typename": "variant", "id": "a", "name": "a", "weight": 0.25,
                         "settings": {}}
                    ]
                }]
            })
        );
        let text = form.to_string();
        for hidden in ["views", "totalReward", "accountId"] {
            assert!(!text.contains(hidden), "{hidden} leaked: {text}");
        }
    }

    /// The text joined from each experiment's ([`deployment_text_of`]) is
    /// the form's, with no experiment, with several, whatever the root.
    #[test]
    fn the_joined_text_is_the_forms() {
        let key = Uuid::from_u128(5);
        let zeta = experiment(3, "zeta", Visibility::Published);
        let alpha = experiment(4, "alpha", Visibility::Published);
        let draft = experiment(5, "draft", Visibility::Draft);
        for root in ["https://ab.example.com", "http://h/\"é\u{2028}"] {
            let cases: [&[(&Experiment, &[f64])]; 3] = [
                &[],
                &[(&zeta, &[0.5, 0.5])],
                &[(&zeta, &[0.5, 0.5]), (&draft, &[1.0]), (&alpha, &[0.1])],
            ];
            for experiments in cases {
                let form = deployment_form(key, root, experiments).to_string();
                assert_eq!(deployment_text(key, root, experiments), form);
            }
        }
    }

    #[test]
    fn only_published_experiments_by_id() {
        let drafts = experiment(1, "a-draft", Visibility::Draft);
        let archived = experiment(2, "archived", Visibility::Archived);
        let zeta = experiment(3, "zeta", Visibility::Published);
        let alpha = experiment(4, "alpha", Visibility::Published);
        let all = [
            (&zeta, &[0.5, 0.5][..]),
            (&drafts, &[0.5, 0.5][..]),
            (&alpha, &[0.5, 0.5][..]),
            (&archived, &[0.5, 0.5][..]),
        ];
        let form = deployment_form(Uuid::from_u128(5), "http://x", &all);
        // The text is the form, written without the value tree.
        assert_eq!(
            deployment_text(Uuid::from_u128(5), "http://x", &all),
            form.to_string()
        );
        let ids: Vec<_> = form["experiments"]
            .as_array()
            .map(|a| a.iter().map(|e| e["id"].clone()).collect())
            .unwrap_or_default();
        assert_eq!(ids, [json!("alpha"), json!("zeta")]);
    }
}
