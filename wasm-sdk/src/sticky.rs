//! The original Myna client's decision rules, per visitor and experiment:
//! `suggest` is sticky, one view per suggestion, one reward per view. Pure
//! logic, tested natively; the client keeps the state in localStorage.

use alloc::borrow::ToOwned;
use alloc::string::String;

use crate::queue::write_string;

/// What this visitor last saw of one experiment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sticky {
    /// The variant shown last (by `suggest` or `view`), if any.
    pub variant: Option<String>,
    /// Whether that view was rewarded already.
    pub rewarded: bool,
}

impl Sticky {
    /// The stored form: `{"v":"<variant>","r":<rewarded>}` (`{}` when empty).
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        if let Some(v) = &self.variant {
            out.push_str("\"v\":");
            write_string(&mut out, v);
            out.push_str(if self.rewarded {
                ",\"r\":true"
            } else {
                ",\"r\":false"
            });
        }
        out.push('}');
        out
    }
}

/// What `suggest` should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Suggestion {
    /// Show this variant again; record nothing.
    Again(String),
    /// Show the variant at this index (chosen by weight) and record a view.
    Fresh(usize),
    /// The experiment has no variants.
    Nothing,
}

/// Decides a suggestion: the sticky variant while it still exists, otherwise
/// one drawn by weight with core's [`myna_core::weights::choose`] from the
/// uniform number `u`.
pub fn suggest(state: &Sticky, ids: &[&str], weights: &[f64], u: f64) -> Suggestion {
    if let Some(v) = &state.variant
        && ids.contains(&v.as_str())
    {
        return Suggestion::Again(v.clone());
    }
    if ids.is_empty() {
        return Suggestion::Nothing;
    }
    Suggestion::Fresh(myna_core::weights::choose(weights, u).min(ids.len() - 1))
}

/// The state after a view of `variant` (by `suggest` or `view`): a new view
/// may be rewarded once.
pub fn viewed(variant: &str) -> Sticky {
    Sticky {
        variant: Some(variant.to_owned()),
        rewarded: false,
    }
}

/// What `reward` should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Reward {
    /// Nothing was viewed: there is nothing to reward.
    NoView,
    /// The last view was rewarded already: record nothing.
    Already,
    /// Record a reward for this variant.
    Record(String),
}

/// Decides a reward from the visitor's state.
pub fn reward(state: &Sticky) -> Reward {
    match (&state.variant, state.rewarded) {
        (None, _) => Reward::NoView,
        (Some(_), true) => Reward::Already,
        (Some(v), false) => Reward::Record(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn first_suggestion_is_by_weight_then_sticky() {
        let ids = ["a", "b", "c"];
        let weights = [0.2, 0.5, 0.3];
        let fresh = suggest(&Sticky::default(), &ids, &weights, 0.3);
        assert_eq!(fresh, Suggestion::Fresh(1));
        assert_eq!(
            suggest(&Sticky::default(), &ids, &weights, 0.1),
            Suggestion::Fresh(0)
        );
        assert_eq!(
            suggest(&Sticky::default(), &ids, &weights, 0.95),
            Suggestion::Fresh(2)
        );
        let state = viewed("b");
        for u in [0.0, 0.5, 0.99] {
            assert_eq!(
                suggest(&state, &ids, &weights, u),
                Suggestion::Again("b".into())
            );
        }
    }

    #[test]
    fn a_vanished_sticky_variant_is_chosen_afresh() {
        let state = viewed("gone");
        assert_eq!(suggest(&state, &["a"], &[1.0], 0.7), Suggestion::Fresh(0));
        assert_eq!(suggest(&state, &[], &[], 0.7), Suggestion::Nothing);
    }

    #[test]
    fn one_reward_per_view() {
        assert_eq!(reward(&Sticky::default()), Reward::NoView);
        let mut state = viewed("a");
        assert_eq!(reward(&state), Reward::Record("a".into()));
        state.rewarded = true;
        assert_eq!(reward(&state), Reward::Already);
        // A new view may be rewarded again.
        assert_eq!(reward(&viewed("a")), Reward::Record("a".into()));
    }

    #[test]
    fn stored_form_is_compact_json() {
        let state = Sticky {
            variant: Some("a\"b".into()),
            rewarded: true,
        };
        assert_eq!(state.to_json(), r#"{"v":"a\"b","r":true}"#);
        let back: serde_json::Value = serde_json::from_str(&state.to_json()).unwrap();
        assert_eq!(back["v"], "a\"b");
        assert_eq!(Sticky::default().to_json(), "{}");
    }
}
