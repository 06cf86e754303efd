//! How the weights share traffic, chosen per experiment by the setting
//! `myna.weights.mode`: `conversions` (the default, Thompson sampling: the
//! most conversions during the test) or `decide` (top-two Thompson
//! sampling: a decision sooner, at the price of more traffic to the losers).

use serde_json::Value;

use super::shares::WeightsConfig;
use crate::decision::rule::setting;
use crate::problem::{Code, Message};

/// The setting that chooses an experiment's [`WeightsMode`].
pub const MODE_SETTING: &str = "myna.weights.mode";

/// Share of top-two sampling's traffic that goes to the posterior draw's
/// best arm (Russo's β; 0.5 is his recommended default).
const TOP_TWO_BETA: f64 = 0.5;

/// How probabilities of being best become traffic shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WeightsMode {
    /// Thompson sampling: each variant's share is its probability of being
    /// best. Most conversions during the test; the losers are starved, so a
    /// decision takes longer.
    #[default]
    Conversions,
    /// Top-two Thompson sampling (Russo 2016) with β = 0.5: half the time the
    /// variant a posterior draw ranks best, else the best of a fresh draw
    /// among the others. The runner-up keeps about half the traffic, so the
    /// evidence grows faster; with two variants it is an even split.
    Decide,
}

impl WeightsMode {
    /// The setting's value for this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            WeightsMode::Conversions => "conversions",
            WeightsMode::Decide => "decide",
        }
    }

    /// The mode an experiment's settings choose (flat
    /// `"myna.weights.mode"` or nested, as `myna.decision.*`): absent means
    /// the default; a bad value falls back to it with a problem message
    /// (path `settings.myna.weights.mode`).
    pub fn from_settings(settings: &Value) -> (WeightsMode, Vec<Message>) {
        let Some(value) = setting(settings, MODE_SETTING) else {
            return (WeightsMode::default(), Vec::new());
        };
        match value.as_str().and_then(WeightsMode::parse) {
            Some(mode) => (mode, Vec::new()),
            None => {
                let problem = Message::at(
                    Code::InvalidValue,
                    format!("settings.{MODE_SETTING}"),
                    format!(
                        "`{MODE_SETTING}` must be \"conversions\" or \"decide\", not {value}; the default (\"conversions\") is used."
                    ),
                );
                (WeightsMode::default(), vec![problem])
            }
        }
    }
}

impl WeightsMode {
    /// The mode a setting's text names, if any.
    pub fn parse(text: &str) -> Option<WeightsMode> {
        match text {
            "conversions" => Some(WeightsMode::Conversions),
            "decide" => Some(WeightsMode::Decide),
            _ => None,
        }
    }

    /// Chooses this mode in `settings` (an object; anything else is left
    /// as it is): the flat `"myna.weights.mode"`, any other spelling of the
    /// setting (nested) removed first, so this is the one read.
    pub fn set_in(self, settings: &mut Value) {
        crate::decision::rule::remove_setting(settings, MODE_SETTING);
        if let Some(map) = settings.as_object_mut() {
            map.insert(MODE_SETTING.to_owned(), Value::from(self.as_str()));
        }
    }
}

impl WeightsConfig {
    /// This configuration with the mode an experiment's settings choose
    /// (see [`WeightsMode::from_settings`]), and the problems with them.
    pub fn for_settings(&self, settings: &Value) -> (WeightsConfig, Vec<Message>) {
        let (mode, problems) = WeightsMode::from_settings(settings);
        (WeightsConfig { mode, ..*self }, problems)
    }
}

/// Top-two sampling's traffic shares from the probabilities of being best
/// `p` (summing to 1): arm `i` is played when a draw ranks it best and the
/// β coin says "best", or when another arm `j` is ranked best, the coin
/// says "challenger" and a redraw ranks `i` best among the rest:
///
/// `share_i = β p_i + (1 - β) Σ_{j != i} p_j p_i / S_j`, `S_j = Σ_{l != j} p_l`.
///
/// Closed form, so as free of sampling noise as `p`. Every sum adds its
/// terms in ascending order (`S_j` skipping one copy of `p_j`), so arms
/// with equal `p` get exactly equal shares. When `S_j` is 0 (`j` certainly
/// best as far as `p` can tell, every other `p` 0), the redraw's best is
/// taken as the best among the others alone: `best_of_rest(j)` gives their
/// probabilities of being best among themselves, in order without `j` (a
/// runner-up keeps its half; a variant that never converted is not given
/// as much).
pub(super) fn top_two(p: &[f64], best_of_rest: impl Fn(usize) -> Vec<f64>) -> Vec<f64> {
    let k = p.len();
    if k < 2 {
        return p.to_vec();
    }
    let mut sorted = p.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rest: Vec<f64> = p.iter().map(|&x| sum_without(&sorted, x)).collect();
    let certain = (0..k)
        .find(|&j| rest[j] <= 0.0)
        .map(|j| (j, best_of_rest(j)));
    let among_rest = |j: usize, i: usize| -> f64 {
        match &certain {
            Some((c, q)) if *c == j => q.get(if i < j { i } else { i - 1 }).copied().unwrap_or(0.0),
            _ => 0.0,
        }
    };
    let mut terms = Vec::with_capacity(k - 1);
    (0..k)
        .map(|i| {
            terms.clear();
            // p_i / S_j <= 1, so no term overflows however small S_j is.
            terms.extend((0..k).filter(|&j| j != i).map(|j| {
                if rest[j] > 0.0 {
                    p[j] * (p[i] / rest[j]).min(1.0)
                } else {
                    p[j] * among_rest(j, i)
                }
            }));
            terms.sort_by(f64::total_cmp);
            let challenger: f64 = terms.iter().sum();
            TOP_TWO_BETA * p[i] + (1.0 - TOP_TWO_BETA) * challenger
        })
        .collect()
}

/// The sum of `sorted` (ascending) without one copy of `skip` (bitwise).
fn sum_without(sorted: &[f64], skip: f64) -> f64 {
    let mut skipped = false;
    let mut sum = 0.0;
    for &x in sorted {
        if !skipped && x.to_bits() == skip.to_bits() {
            skipped = true;
        } else {
            sum += x;
        }
    }
    sum
}
