//! Decisions: when an experiment is done, and whether its data is healthy.
//!
//! - [`rule`]: each variant's probability of being best and expected loss
//!   (from the weights' Beta posteriors, by the same quadrature: no sampling
//!   noise), the thresholds under `myna.decision.` in the settings, the
//!   verdict and the views a `leading` experiment likely still needs;
//! - [`health`]: the checks, SRM against the weights actually served among
//!   them;
//! - [`Decision`]: all of it for one experiment, and its JSON (the decision
//!   form of the API), so the server only fetches data and calls this.

pub mod health;
pub mod rule;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::model::{Experiment, Visibility};
use crate::problem::Message;
use crate::timestamp::format_iso;
pub use health::{Check, Hour, Status};
pub use rule::{Outcome, Thresholds, Verdict, verdict};

/// One variant's decision numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantNumbers {
    /// The variant's id.
    pub id: String,
    /// Probability that its conversion rate is the highest.
    pub probability_best: f64,
    /// Conversion rate given up, in expectation, by choosing it.
    pub expected_loss: f64,
}

/// An experiment's decision: the verdict, the numbers, the health checks.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The experiment's public uuid.
    pub uuid: Uuid,
    /// When it was made, epoch milliseconds.
    pub at_ms: i64,
    /// The verdict.
    pub verdict: Verdict,
    /// The leading or chosen variant's id.
    pub leader: Option<String>,
    /// The verdict in one sentence.
    pub message: String,
    /// Per variant, in creation order.
    pub variants: Vec<VariantNumbers>,
    /// For `leading`: the views likely still needed.
    pub more_views: Option<u64>,
    /// The health checks, in a fixed order.
    pub health: Vec<Check>,
}

/// The decision for `experiment` from its hourly totals (`hours`, oldest
/// first, variants in the experiment's order) at `now_ms`.
pub fn decide(experiment: &Experiment, hours: &[Hour], now_ms: i64) -> Decision {
    let arms = experiment.arms();
    let ids: Vec<&str> = experiment.variants.iter().map(|v| v.id.as_str()).collect();
    let (thresholds, problems) = Thresholds::from_settings(&experiment.settings);
    let outcome = verdict(&arms, &thresholds);
    let named: Vec<String> = ids.iter().map(|id| isolated(id)).collect();
    let named: Vec<&str> = named.iter().map(String::as_str).collect();
    let starved = starved(&experiment.settings, &arms, &outcome, &thresholds);
    let message = sentence(&outcome, &named, &arms, &thresholds, starved);
    let mut health = vec![
        health::sample_ratio_check(hours),
        health::rewards_exceed_views(&ids, &arms),
        health::traffic_stopped(
            hours,
            experiment.visibility == Visibility::Published,
            now_ms,
        ),
        health::never_shown(&ids, hours),
    ];
    if !problems.is_empty() {
        health.push(settings_check(&problems));
    }
    Decision {
        uuid: experiment.public_uuid(),
        at_ms: now_ms,
        verdict: outcome.verdict,
        leader: outcome.leader.map(|i| ids[i].to_owned()),
        message,
        variants: ids
            .iter()
            .enumerate()
            .map(|(i, id)| VariantNumbers {
                id: (*id).to_owned(),
                probability_best: outcome.probability_best[i],
                expected_loss: outcome.expected_loss[i],
            })
            .collect(),
        more_views: outcome.more_views,
        health,
    }
}

impl Decision {
    /// The decision form (SPEC: "Decisions, export, webhooks, description").
    pub fn to_json(&self) -> Value {
        let variants: Map<String, Value> = self
            .variants
            .iter()
            .map(|v| {
                let numbers = json!({
                    "probabilityBest": v.probability_best,
                    "expectedLoss": v.expected_loss,
                });
                (v.id.clone(), numbers)
            })
            .collect();
        json!({
            "typename": "decision",
            "uuid": self.uuid,
            "at": format_iso(self.at_ms),
            "verdict": self.verdict.as_str(),
            "leader": self.leader,
            "message": self.message,
            "variants": variants,
            "moreViews": self.more_views,
            "health": self.health.iter().map(Check::to_json).collect::<Vec<_>>(),
        })
    }

    /// Whether any health check fails.
    pub fn failing(&self) -> bool {
        self.health.iter().any(|c| c.status == Status::Failing)
    }
}

/// A warning naming the thresholds (or weights mode) that could not be read.
fn settings_check(problems: &[Message]) -> Check {
    let paths: Vec<String> = problems.iter().filter_map(|m| m.path.clone()).collect();
    let messages: Vec<&str> = problems.iter().map(|m| m.message.as_str()).collect();
    Check {
        typename: "decision-settings",
        status: Status::Warning,
        message: messages.join(" "),
        data: json!({ "paths": paths }),
    }
}

/// A count with thousands separators, as people read it: `1,234,567`
/// (the summary's and the dashboard's).
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A probability as a percentage for people, the one rule the decision's
/// sentences and the dashboard share: rounded down (so never up to a
/// threshold), from the decimal the API writes (`0.997` is `99.7`, not
/// `99.6` by a binary rounding): `97` below 99 %, `99.5` from there, and
/// `more than 99.9` beyond 99.9 % (never `100`: nothing here is certain).
pub fn probability_percent(p: f64) -> String {
    if !(p.is_finite() && p > 0.0) {
        return "0".to_owned();
    }
    if p >= 1.0 {
        return "more than 99.9".to_owned();
    }
    // `p` in (0, 1): its shortest decimal is `0.` then the digits.
    let text = p.to_string();
    let digits = text.strip_prefix("0.").unwrap_or("");
    let digit = |i: usize| u64::from(digits.as_bytes().get(i).map_or(0, |b| b - b'0'));
    let tenths = digit(0) * 100 + digit(1) * 10 + digit(2);
    let exact = digits.len() <= 3;
    if tenths == 999 && !exact {
        "more than 99.9".to_owned()
    } else if tenths < 990 {
        format!("{}", tenths / 10)
    } else {
        format!("{}.{}", tenths / 10, tenths % 10)
    }
}

/// `x` rounded up (`up`) or down to two significant digits, as text:
/// `0.00054`, `0.067`, `1.3`, `25`. A relative epsilon keeps a value
/// already on a step (`0.02` computed as `0.020000000000000004`) there.
fn two_digits(x: f64, up: bool) -> String {
    if !(x.is_finite() && x > 0.0) {
        return "0".to_owned();
    }
    let decimals = (1 - x.log10().floor() as i32).clamp(0, 17);
    let scale = 10f64.powi(decimals);
    let scaled = x * scale;
    let whole = if up {
        (scaled * (1.0 - 1e-12)).ceil()
    } else {
        (scaled * (1.0 + 1e-12)).floor()
    };
    let decimals = decimals as usize;
    format!("{:.decimals$}", whole / scale)
}

/// At most `loss` (conversion-rate units) as percentage points (`0.0002`
/// is `at most 0.02`), at most four decimals, rounded up: a bound must not
/// understate (`0.000544` points is `at most 0.0006`); `less than 0.0001`
/// below.
fn points(loss: f64) -> String {
    let p = loss * 100.0;
    // Up at `decimals`; a relative epsilon keeps a value already on a step
    // (0.02 computed as 0.020000000000000004) from reading a step higher.
    let up = |decimals: i32| {
        let scale = 10f64.powi(decimals);
        (p * scale * (1.0 - 1e-12)).ceil() / scale
    };
    if p > 0.01 {
        format!("at most {:.2}", up(2))
    } else if p >= 0.0001 {
        format!("at most {:.4}", up(4))
    } else {
        "less than 0.0001".to_owned()
    }
}

/// Why a `leading` experiment is not `decided`: each threshold its leader
/// misses, with the numbers, and the settings those thresholds are.
fn unmet(
    outcome: &Outcome,
    leader: usize,
    arms: &[crate::weights::Arm],
    t: &Thresholds,
) -> (String, Vec<&'static str>) {
    let mut reasons = Vec::new();
    let mut settings = Vec::new();
    if outcome.probability_best[leader] < t.probability_best {
        reasons.push(format!(
            "that is below the {} % required",
            threshold_percent(t.probability_best)
        ));
        settings.push("myna.decision.probabilityBest");
    }
    let loss = outcome.expected_loss[leader];
    let allowed = rule::allowed_loss(&arms[leader], t);
    if loss >= allowed {
        reasons.push(format!(
            "choosing it gives up {} {POINTS} in expectation, more than the {} allowed \
             ({} % of its rate)",
            two_digits(loss * 100.0, true),
            two_digits(allowed * 100.0, false),
            threshold_percent(t.expected_loss),
        ));
        settings.push("myna.decision.expectedLoss");
    }
    (reasons.join(", and "), settings)
}

/// The unit of an expected loss in messages (said in full: "points" alone
/// could be points of anything).
const POINTS: &str = "percentage points of conversion rate";

/// The settings behind thresholds, said after the sentence rather than in
/// it: ` (This threshold is the setting a.)`, ` (These thresholds are the
/// settings a and b.)`.
fn settings_note(settings: &[&str]) -> String {
    match settings {
        [] => String::new(),
        [one] => format!(" (This threshold is the setting {one}.)"),
        [rest @ .., last] => format!(
            " (These thresholds are the settings {} and {last}.)",
            rest.join(", ")
        ),
    }
}

/// A threshold (a probability) as a percentage, as written: `99.7`, `99.85`.
fn threshold_percent(p: f64) -> String {
    let text = format!("{:.6}", p * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The verdict in one sentence.
/// Unicode's bidirectional controls: embeddings, overrides, isolates and
/// marks (UAX #9).
const BIDI_CONTROLS: &[char] = &[
    '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
    '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];

/// A variant id as a sentence names it, whatever its direction: without
/// bidirectional controls (an id holding U+202E would reverse the words
/// after it, on the dashboard, in a webhook's body, wherever the sentence
/// is shown), and wrapped in a first-strong isolate (U+2068 … U+2069) when
/// it has a character of a right-to-left script, so an Arabic id keeps
/// the sentence's numbers and words in their order. The exact ids are in
/// the data beside the message; Latin text is unchanged.
pub fn isolated(id: &str) -> String {
    let text: String = id.chars().filter(|c| !BIDI_CONTROLS.contains(c)).collect();
    if text.chars().any(|c| c >= '\u{0590}') {
        format!("\u{2068}{text}\u{2069}")
    } else {
        text
    }
}

/// Variant ids as a sentence lists them ([`isolated`]), comma-separated.
pub(crate) fn listed(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| isolated(id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// While collecting in the `conversions` mode: the variant with the fewest
/// views, its weight now and the visitors it still needs at that weight,
/// when the bandit starves it (a weight under half an even share), so the
/// owner learns that waiting may take far longer than the views suggest.
fn starved(
    settings: &Value,
    arms: &[crate::weights::Arm],
    outcome: &Outcome,
    t: &Thresholds,
) -> Option<(usize, f64, u64)> {
    use crate::weights::{WeightsConfig, WeightsMode, weights_from_probabilities};
    let config = WeightsConfig::default().for_settings(settings).0;
    if outcome.verdict != Verdict::Collecting || config.mode != WeightsMode::Conversions {
        return None;
    }
    let weights = weights_from_probabilities(arms, &outcome.probability_best, &config);
    let (fewest, arm) = arms.iter().enumerate().min_by_key(|(_, a)| a.views)?;
    let weight = *weights.get(fewest)?;
    let even = 1.0 / arms.len() as f64;
    if arms.len() < 2 || weight <= 0.0 || weight >= even / 2.0 {
        return None;
    }
    let missing = t.min_views.saturating_sub(arm.views) as f64;
    Some((
        fewest,
        weight,
        two_significant((missing / weight).ceil() as u64),
    ))
}

/// `n` to its two leading digits, the nearest (480,140 reads 480,000): an
/// estimate shown as one.
fn two_significant(n: u64) -> u64 {
    let mut unit = 1;
    while n / unit >= 100 {
        unit *= 10;
    }
    (n + unit / 2) / unit * unit
}

fn sentence(
    outcome: &Outcome,
    ids: &[&str],
    arms: &[crate::weights::Arm],
    t: &Thresholds,
    starved: Option<(usize, f64, u64)>,
) -> String {
    let others = |leader: usize| -> String {
        let rest: Vec<&str> = (0..ids.len())
            .filter(|&i| i != leader)
            .map(|i| ids[i])
            .collect();
        match rest.len() {
            1 => rest[0].to_owned(),
            n => format!("the {n} other variants"),
        }
    };
    match (outcome.verdict, outcome.leader) {
        (Verdict::Decided, Some(l)) => format!(
            "{} is better than {} with {} % probability; choosing it gives up {} {POINTS} in expectation: you can stop.",
            ids[l],
            others(l),
            probability_percent(outcome.probability_best[l]),
            points(outcome.expected_loss[l]),
        ),
        (Verdict::Leading, Some(l)) => {
            let more = match outcome.more_views {
                Some(n) => format!(
                    "about {} more views in total (all variants together) are likely needed to decide",
                    grouped(n)
                ),
                None => "how many more views that needs cannot be estimated from these counts"
                    .to_owned(),
            };
            let (reasons, settings) = unmet(outcome, l, arms, t);
            format!(
                "{} leads with {} % probability of being best, not yet enough to decide: {reasons}; {more}.{}",
                ids[l],
                probability_percent(outcome.probability_best[l]),
                settings_note(&settings),
            )
        }
        (Verdict::NoDifference, _) => format!(
            "The variants perform practically the same (choosing any gives up less than {} % of the best rate in expectation): you can stop and keep any.",
            t.equivalence * 100.0
        ),
        _ => {
            let fewest = arms.iter().map(|a| a.views).min().unwrap_or(0);
            if ids.len() < 2 {
                "Collecting data: a decision needs at least two variants.".to_owned()
            } else {
                let mut text = format!(
                    "Collecting data: every variant needs at least {} views before a decision (the fewest has {}).",
                    grouped(t.min_views),
                    grouped(fewest)
                );
                if let Some((i, weight, visitors)) = starved {
                    text.push_str(&format!(
                        " {} is shown to {} % of visitors now, so at this rate it needs about {} more visitors; \
                         to decide sooner, set myna.weights.mode to decide (the runner-up keeps about half the traffic) \
                         or lower myna.decision.minViews.",
                        ids[i],
                        two_digits(weight * 100.0, false),
                        grouped(visitors)
                    ));
                }
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{grouped, points, probability_percent, two_digits};

    #[test]
    fn a_loss_reads_at_most_its_points_or_less_than_the_smallest_printed() {
        assert_eq!(points(0.0002), "at most 0.02");
        assert_eq!(points(0.000_002), "at most 0.0002");
        // Too small to print: "gives up less than 0.0001 points", never
        // "at most less than".
        assert_eq!(points(0.0), "less than 0.0001");
        assert_eq!(points(1e-9), "less than 0.0001");
    }

    #[test]
    fn at_most_rounds_up_never_understating_the_loss() {
        // 0.000544 points was "at most 0.0005": less than the loss.
        assert_eq!(points(0.000_005_44), "at most 0.0006");
        assert_eq!(points(0.000_123), "at most 0.02");
        assert_eq!(points(0.000_099_99), "at most 0.0100");
        assert_eq!(points(0.000_001_000_1), "at most 0.0002");
        for loss in [3.3e-6, 5.44e-6, 1.2345e-4, 9.99e-5, 0.0123, 0.2] {
            let text = points(loss);
            let shown: f64 = text
                .trim_start_matches("at most ")
                .parse()
                .unwrap_or(f64::NAN);
            assert!(shown >= loss * 100.0, "{text} for {} points", loss * 100.0);
        }
    }

    #[test]
    fn estimates_keep_two_significant_digits() {
        use super::two_significant;
        let cases = [
            (7, 7),
            (99, 99),
            (480_140, 480_000),
            (527_000, 530_000),
            (995, 1_000),
        ];
        for (n, shown) in cases {
            assert_eq!(two_significant(n), shown, "{n}");
        }
    }

    #[test]
    fn two_digits_round_the_way_asked() {
        assert_eq!(two_digits(0.000_544_1, true), "0.00055");
        assert_eq!(two_digits(0.000_066_7, false), "0.000066");
        assert_eq!(two_digits(0.02, true), "0.020");
        assert_eq!(two_digits(1.23, true), "1.3");
        assert_eq!(two_digits(25.0, false), "25");
    }

    #[test]
    fn probabilities_read_rounded_down_and_never_certain() {
        let cases = [
            (0.0, "0"),
            (0.0144, "1"),
            (0.5, "50"),
            (0.98999, "98"),
            (0.99, "99.0"),
            (0.996_999, "99.6"),
            (0.997, "99.7"),
            (0.997_06, "99.7"),
            (0.9985, "99.8"),
            (0.999, "99.9"),
            (0.999_01, "more than 99.9"),
            (0.999_99, "more than 99.9"),
            (1.0, "more than 99.9"),
            (f64::NAN, "0"),
        ];
        for (p, text) in cases {
            assert_eq!(probability_percent(p), text, "{p}");
        }
    }

    #[test]
    fn counts_read_with_thousands_separators() {
        assert_eq!(
            [0, 999, 1000, 964_056, 1_234_567].map(grouped),
            ["0", "999", "1,000", "964,056", "1,234,567"]
        );
    }
}
