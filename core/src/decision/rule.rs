//! The stopping rule: thresholds (from an experiment's settings), the
//! verdict, and how many more views a `leading` experiment likely needs.

use serde_json::Value;

use crate::problem::{Code, Message};
use crate::stats::normal_quantile;
use crate::weights::{Arm, WeightsMode, probability_best_and_loss};

/// The settings prefix of every decision threshold.
pub const PREFIX: &str = "myna.decision.";

/// When an experiment is decided, or its variants practically equal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Views every variant needs before any verdict but `collecting`
    /// (`myna.decision.minViews`, a whole number).
    pub min_views: u64,
    /// Least probability of being best for `decided`
    /// (`myna.decision.probabilityBest`, in (0.5, 1)).
    pub probability_best: f64,
    /// Largest expected loss of the leader for `decided`, as a fraction of
    /// its conversion rate (`myna.decision.expectedLoss`, in (0, 1)).
    pub expected_loss: f64,
    /// Variants are practically equal (`no-difference`) when every one's
    /// expected loss is below this fraction of the leader's rate
    /// (`myna.decision.equivalence`, in (0, 1)).
    pub equivalence: f64,
}

/// The defaults of the `conversions` weights mode (Thompson sampling).
impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::for_mode(WeightsMode::Conversions)
    }
}

/// Reads `path` in `settings`, whether stored flat (`"myna.decision.x"`),
/// nested (`{"myna": {"decision": {"x": …}}}`) or anything between.
pub fn setting<'a>(settings: &'a Value, path: &str) -> Option<&'a Value> {
    every_setting(settings, path).into_iter().next()
}

/// Every value at `path` in `settings`, however stored (flat, nested or
/// between), in the order [`setting`] tries them: more than one that
/// differ is an ambiguity the owner should hear of.
fn every_setting<'a>(settings: &'a Value, path: &str) -> Vec<&'a Value> {
    let names: Vec<&str> = path.split('.').collect();
    let mut found = Vec::new();
    collect(settings, &names, &mut found);
    found
}

fn collect<'a>(value: &'a Value, names: &[&str], found: &mut Vec<&'a Value>) {
    let Some(map) = value.as_object() else {
        return;
    };
    for taken in 1..=names.len() {
        if let Some(inner) = map.get(&names[..taken].join(".")) {
            if taken == names.len() {
                found.push(inner);
            } else {
                collect(inner, &names[taken..], found);
            }
        }
    }
}

/// Removes `path` from `settings` wherever [`setting`] would find it
/// (flat, nested or anything between), so that a value written afterwards
/// is the one read.
pub fn remove_setting(settings: &mut Value, path: &str) {
    let names: Vec<&str> = path.split('.').collect();
    crate::settings::remove_spellings(settings, &names);
}

impl Thresholds {
    /// The defaults for an experiment whose weights use `mode`. How often a
    /// rule read again and again wrongly says `decided` depends on how the
    /// traffic is shared: the even split of `decide` needs a higher
    /// `probabilityBest` to keep A/A errors at most 5 % (chosen on the
    /// `decisions` example, as README "When is an experiment done?" says).
    pub fn for_mode(mode: WeightsMode) -> Thresholds {
        let probability_best = match mode {
            WeightsMode::Conversions => 0.997,
            WeightsMode::Decide => 0.9985,
        };
        Thresholds {
            min_views: 2_000,
            probability_best,
            expected_loss: 0.001,
            equivalence: 0.015,
        }
    }

    /// The thresholds of an experiment with these settings: the defaults of
    /// its weights mode (`myna.weights.mode`), each absent or bad value
    /// falling back to its default, and each bad one (the mode's too) named
    /// in a problem message (path `settings.myna.decision.…` or
    /// `settings.myna.weights.mode`), so the owner can be told without the
    /// decision failing.
    pub fn from_settings(settings: &Value) -> (Thresholds, Vec<Message>) {
        let (mode, mut problems) = WeightsMode::from_settings(settings);
        let mut thresholds = Thresholds::for_mode(mode);
        let mut read = |name: &str, ok: &dyn Fn(f64) -> bool, rule: &str| -> Option<f64> {
            let path = format!("{PREFIX}{name}");
            let every = every_setting(settings, &path);
            if every.iter().any(|v| *v != every[0]) {
                problems.push(Message::at(
                    Code::InvalidValue,
                    format!("settings.{path}"),
                    format!(
                        "`{path}` is given more than once (flat and nested) with different values: {} is read; keep one.",
                        every[0]
                    ),
                ));
            }
            let value = setting(settings, &path)?;
            match value.as_f64().filter(|&x| ok(x)) {
                Some(x) => Some(x),
                None => {
                    problems.push(Message::at(
                        Code::InvalidValue,
                        format!("settings.{path}"),
                        format!("`{path}` must be {rule}, not {value}; the default is used."),
                    ));
                    None
                }
            }
        };
        let whole = |x: f64| x >= 0.0 && x.fract() == 0.0 && x <= 1e15;
        if let Some(x) = read("minViews", &whole, "a whole number of views") {
            thresholds.min_views = x as u64;
        }
        let above_half = |x: f64| x > 0.5 && x < 1.0;
        if let Some(x) = read(
            "probabilityBest",
            &above_half,
            "a number above 0.5 and below 1",
        ) {
            thresholds.probability_best = x;
        }
        let fraction = |x: f64| x > 0.0 && x < 1.0;
        if let Some(x) = read("expectedLoss", &fraction, "a number above 0 and below 1") {
            thresholds.expected_loss = x;
        }
        if let Some(x) = read("equivalence", &fraction, "a number above 0 and below 1") {
            thresholds.equivalence = x;
        }
        (thresholds, problems)
    }
}

/// The state of an experiment's evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Too little data for anything else.
    Collecting,
    /// A variant leads, not yet decidedly.
    Leading,
    /// The leader is best with enough probability and choosing it costs
    /// little in expectation: the experiment can stop.
    Decided,
    /// The variants are practically equal: any may be kept.
    NoDifference,
}

impl Verdict {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Collecting => "collecting",
            Verdict::Leading => "leading",
            Verdict::Decided => "decided",
            Verdict::NoDifference => "no-difference",
        }
    }
}

/// The verdict with the numbers behind it, variants in the arms' order.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// The leading (or chosen) variant's index: `None` while collecting and
    /// when there is no difference.
    pub leader: Option<usize>,
    /// Each variant's probability of being best.
    pub probability_best: Vec<f64>,
    /// Each variant's expected loss, in conversion-rate units.
    pub expected_loss: Vec<f64>,
    /// For `leading`: the views (all variants together) likely still needed.
    pub more_views: Option<u64>,
}

/// The verdict for these counts.
///
/// `collecting` until every variant has `min_views` views (and with fewer
/// than two variants); then `no-difference` when every variant's expected
/// loss is below `equivalence` times the leader's rate; `decided` when the
/// leader's probability of being best reaches `probability_best` and its
/// expected loss is below `expected_loss` times its rate; else `leading`.
pub fn verdict(arms: &[Arm], thresholds: &Thresholds) -> Outcome {
    let (probability_best, expected_loss) = probability_best_and_loss(arms);
    let leader = (0..arms.len()).reduce(|a, b| {
        if probability_best[b] > probability_best[a] {
            b
        } else {
            a
        }
    });
    let fewest = arms.iter().map(|a| a.views).min().unwrap_or(0);
    let mut outcome = Outcome {
        verdict: Verdict::Collecting,
        leader: None,
        probability_best,
        expected_loss,
        more_views: None,
    };
    let Some(leader) = leader.filter(|_| arms.len() >= 2 && fewest >= thresholds.min_views) else {
        return outcome;
    };
    let rate = mean(&arms[leader]);
    let worst = outcome.expected_loss.iter().copied().fold(0.0, f64::max);
    if worst < thresholds.equivalence * rate {
        outcome.verdict = Verdict::NoDifference;
    } else if outcome.probability_best[leader] >= thresholds.probability_best
        && outcome.expected_loss[leader] < allowed_loss(&arms[leader], thresholds)
    {
        outcome.verdict = Verdict::Decided;
        outcome.leader = Some(leader);
    } else {
        outcome.verdict = Verdict::Leading;
        outcome.leader = Some(leader);
        outcome.more_views = more_views(arms, leader, thresholds);
    }
    outcome
}

/// The largest expected loss a leader with these counts may have for
/// `decided`: `expectedLoss` times its rate (the posterior mean).
pub fn allowed_loss(leader: &Arm, thresholds: &Thresholds) -> f64 {
    thresholds.expected_loss * mean(leader)
}

/// The posterior mean and variance of an arm's rate (the weights' Beta).
fn moments(arm: &Arm) -> (f64, f64) {
    let views = arm.views as f64;
    let reward = if arm.total_reward.is_finite() {
        arm.total_reward.clamp(0.0, views)
    } else {
        0.0
    };
    let (alpha, beta) = (1.0 + reward, 1.0 + views - reward);
    let n = alpha + beta;
    (alpha / n, alpha * beta / (n * n * (n + 1.0)))
}

fn mean(arm: &Arm) -> f64 {
    moments(arm).0
}

/// Views likely still needed for `leader` to reach the probability
/// threshold against the runner-up (highest other mean), if the rates seen
/// so far are the true ones and every variant's views grow in proportion:
/// the difference must reach `z` posterior standard deviations, and the
/// variance falls as 1 / views. `None` when the leader is not ahead in mean,
/// or when by this estimate no more are needed (another threshold, such as
/// the expected loss, holds the verdict back: "about 0 more views" would
/// tell the owner nothing).
fn more_views(arms: &[Arm], leader: usize, thresholds: &Thresholds) -> Option<u64> {
    let (leader_mean, leader_var) = moments(&arms[leader]);
    let (runner_mean, runner_var) = (0..arms.len())
        .filter(|&i| i != leader)
        .map(|i| moments(&arms[i]))
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    let difference = leader_mean - runner_mean;
    if difference <= 0.0 {
        return None;
    }
    let z = normal_quantile(thresholds.probability_best);
    let factor = (z * (leader_var + runner_var).sqrt() / difference).powi(2);
    let total: f64 = arms.iter().map(|a| a.views as f64).sum();
    let more = ((factor - 1.0).max(0.0) * total).ceil();
    (more.is_finite() && (1.0..1e15).contains(&more)).then_some(more as u64)
}
