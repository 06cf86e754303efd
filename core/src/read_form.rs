//! The read form: how an experiment is answered (complete for owners, summary
//! for API keys), and the search answer.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::model::{Access, Experiment, Visibility, empty_object, shown_reward};

/// Which read form this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subtype {
    /// The owner's form, with counts and the account id.
    Complete,
    /// The API key's form, without them.
    Summary,
}

/// An experiment as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadForm {
    /// Always `experiment`.
    pub typename: String,
    /// `complete` or `summary`.
    pub subtype: Subtype,
    /// The experiment's uuid.
    pub uuid: Uuid,
    /// The short name pages know it by (`myna-{id}`).
    #[serde(default)]
    pub id: String,
    /// The owner's account (complete form only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Uuid>,
    /// Its name.
    pub name: String,
    /// Its visibility.
    pub visibility: Visibility,
    /// Its settings object.
    #[serde(default = "empty_object")]
    pub settings: Value,
    /// Its variants, in creation order.
    pub variants: ReadVariants,
}

/// The variants of a read form: a JSON object whose key order is creation order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadVariants(pub Vec<(String, ReadVariant)>);

/// One variant in a read form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadVariant {
    /// Its name.
    pub name: String,
    /// Views recorded (complete form only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views: Option<u64>,
    /// Sum of rewards (complete form only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_reward: Option<f64>,
    /// The probability with which a client should show it next.
    pub weight: f64,
    /// Its settings object.
    #[serde(default = "empty_object")]
    pub settings: Value,
}

impl ReadForm {
    /// The read form of `experiment` for `access`, with one weight per variant.
    ///
    /// Missing weights (a shorter slice) are answered as 0.
    pub fn new(experiment: &Experiment, access: Access, weights: &[f64]) -> ReadForm {
        let complete = access == Access::Complete;
        let variants = experiment
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let read = ReadVariant {
                    name: v.name.clone(),
                    views: complete.then_some(v.views),
                    total_reward: complete.then(|| shown_reward(v.total_reward)),
                    weight: weights.get(i).copied().unwrap_or(0.0),
                    settings: v.settings.clone(),
                };
                (v.id.clone(), read)
            })
            .collect();
        ReadForm {
            typename: "experiment".to_owned(),
            subtype: if complete {
                Subtype::Complete
            } else {
                Subtype::Summary
            },
            uuid: experiment.public_uuid(),
            id: experiment.id.clone(),
            account_id: complete.then_some(experiment.account_id),
            name: experiment.name.clone(),
            visibility: experiment.visibility,
            settings: experiment.settings.clone(),
            variants: ReadVariants(variants),
        }
    }

    /// The read form as a JSON value.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The variant with this id.
    pub fn variant(&self, id: &str) -> Option<&ReadVariant> {
        self.variants
            .0
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| v)
    }
}

/// The search answer: `{ "results": [ read forms ] }`.
pub fn search_answer(results: &[ReadForm]) -> Value {
    serde_json::json!({ "results": results })
}

/// [`search_answer`] as JSON text, written straight from the forms (no
/// value tree).
pub fn search_text(results: &[ReadForm]) -> String {
    #[derive(Serialize)]
    struct Answer<'a> {
        results: &'a [ReadForm],
    }
    serde_json::to_string(&Answer { results }).unwrap_or_default()
}

impl Serialize for ReadVariants {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (id, variant) in &self.0 {
            map.serialize_entry(id, variant)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ReadVariants {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = ReadVariants;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of variants")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReadVariants, A::Error> {
                let mut out = Vec::new();
                while let Some((id, variant)) = map.next_entry::<String, ReadVariant>()? {
                    out.push((id, variant));
                }
                Ok(ReadVariants(out))
            }
        }
        deserializer.deserialize_map(Ordered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Variant;

    fn experiment() -> Experiment {
        let mut b = Variant::new("b");
        b.views = 10;
        b.total_reward = 2.5;
        Experiment {
            uuid: Uuid::from_u128(1),
            alias: None,
            id: "e".into(),
            account_id: Uuid::from_u128(2),
            name: "e".into(),
            visibility: Visibility::Published,
            settings: serde_json::json!({"k": 1}),
            variants: vec![b, Variant::new("a")],
        }
    }

    #[test]
    fn complete_form_has_counts_in_creation_order() {
        let json = serde_json::to_string(&ReadForm::new(
            &experiment(),
            Access::Complete,
            &[0.75, 0.25],
        ))
        .unwrap_or_default();
        assert!(json.contains(r#""subtype":"complete""#));
        assert!(json.contains(r#""accountId":"00000000-0000-0000-0000-000000000002""#));
        let b = json.find(r#""b":{"#).unwrap_or(usize::MAX);
        let a = json.find(r#""a":{"#).unwrap_or(0);
        assert!(b < a, "variants keep creation order: {json}");
        assert!(json.contains(r#""views":10,"totalReward":2.5,"weight":0.75"#));
    }

    #[test]
    fn reward_sums_show_fifteen_significant_digits() {
        // Ten rewards of 0.1, summed as the counters sum them.
        let mut e = experiment();
        e.variants[0].total_reward = (0..10).fold(0.0, |sum, _| sum + 0.1);
        assert_eq!(e.variants[0].total_reward, 0.9999999999999999);
        let json = serde_json::to_string(&ReadForm::new(&e, Access::Complete, &[0.5, 0.5]))
            .unwrap_or_default();
        assert!(json.contains(r#""totalReward":1.0,"#), "{json}");
        for (sum, shown) in [
            (0.1 + 0.2, 0.3),
            (1234567.8900000001, 1234567.89),
            (5e-324, 5e-324),
            (1e300, 1e300),
            (2.5, 2.5),
            (0.0, 0.0),
        ] {
            assert_eq!(shown_reward(sum), shown, "{sum}");
        }
    }

    #[test]
    fn the_search_text_is_the_search_answer() {
        let forms = [
            ReadForm::new(&experiment(), Access::Complete, &[0.75, 0.25]),
            ReadForm::new(&experiment(), Access::Summary, &[0.5, 0.5]),
        ];
        assert_eq!(search_text(&forms), search_answer(&forms).to_string());
        assert_eq!(search_text(&[]), r#"{"results":[]}"#);
    }

    #[test]
    fn summary_form_hides_counts_and_account() {
        let form = ReadForm::new(&experiment(), Access::Summary, &[0.5, 0.5]);
        let json = serde_json::to_string(&form).unwrap_or_default();
        assert!(json.contains(r#""subtype":"summary""#));
        for hidden in ["accountId", "views", "totalReward"] {
            assert!(!json.contains(hidden), "{hidden} leaked: {json}");
        }
        let back: ReadForm = serde_json::from_str(&json).unwrap_or_else(|_| form.clone());
        assert_eq!(back, form);
    }
}
