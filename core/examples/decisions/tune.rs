//! `tune=1`: thresholds searched on recorded verdict numbers, beside a
//! sequential probability ratio test.

use myna_core::decision::rule::{Thresholds, Verdict};
use myna_core::weights::WeightsMode;

use super::{Numbers, Run, SLICE, Setup, median, percent, runs};

/// The verdict `rule::verdict` gives for these thresholds, from recorded
/// numbers (the same order of tests).
fn replay(n: &Numbers, t: &Thresholds) -> Verdict {
    if n.fewest < t.min_views {
        Verdict::Collecting
    } else if f64::from(n.other_loss.max(n.loss)) < t.equivalence {
        Verdict::NoDifference
    } else if f64::from(n.best) >= t.probability_best && f64::from(n.loss) < t.expected_loss {
        Verdict::Decided
    } else {
        Verdict::Leading
    }
}

/// A sequential probability ratio test on the relative difference, for
/// comparison (Wald's: for given error rates, no test needs fewer visitors
/// on average between its two hypotheses): the log-likelihood ratio of a
/// difference of `effect` (either way) against none, normal
/// approximation; `decided` at `ln a` or above, `no-difference` at `-ln b`
/// or below.
fn sprt(n: &Numbers, min_views: u64, effect: f64, a: f64, b: f64) -> Verdict {
    let (d, s2) = (f64::from(n.diff), f64::from(n.sd).powi(2));
    let llr = (d.abs() * effect - effect * effect / 2.0) / s2;
    if n.fewest < min_views {
        Verdict::Collecting
    } else if llr >= a.ln() {
        Verdict::Decided
    } else if llr <= -b.ln() {
        Verdict::NoDifference
    } else {
        Verdict::Leading
    }
}

/// Searches thresholds on recorded A/A and A/B verdict numbers (the same
/// runs as the figures: same seeds), and sets a sequential probability
/// ratio test beside them.
pub fn tune(count: usize, returning: f64, mode: WeightsMode) {
    let base = Setup {
        record: true,
        ..Setup::aa(mode, returning, false)
    };
    // The verdict does not steer the weights: every run is played to its
    // horizon, its numbers recorded at every slice.
    let t = Thresholds::default();
    let aa = runs(base, &t, count, 1);
    let ab_setup = Setup {
        rates: [0.05, 0.055],
        horizon: 200_000,
        ..base
    };
    let ab = runs(ab_setup, &t, count, 2);
    let visits = |slice: usize| (slice as u64 + 1) * SLICE;
    let report = |label: String, rule: &dyn Fn(&Numbers) -> Verdict| {
        // The first conclusive verdict within `within` visits.
        let first = |run: &Run, within: u64| -> Option<(u64, Verdict, u8)> {
            run.numbers
                .iter()
                .enumerate()
                .take_while(|(s, _)| visits(*s) <= within)
                .find_map(|(s, n)| match rule(n) {
                    v @ (Verdict::Decided | Verdict::NoDifference) => {
                        Some((visits(s), v, n.leader))
                    }
                    _ => None,
                })
        };
        let aa_first: Vec<_> = aa.iter().map(|r| first(r, 100_000)).collect();
        let count_of =
            |outcomes: &[Option<(u64, Verdict, u8)>], verdict: Verdict, leader: Option<u8>| {
                outcomes
                    .iter()
                    .filter(|o| {
                        o.is_some_and(|(_, v, l)| v == verdict && leader.is_none_or(|x| x == l))
                    })
                    .count()
            };
        let wrong = count_of(&aa_first, Verdict::Decided, None);
        let aa_no_difference = count_of(&aa_first, Verdict::NoDifference, None);
        let strict = aa
            .iter()
            .filter(|r| r.numbers.iter().any(|n| rule(n) == Verdict::Decided))
            .count();
        let outcomes: Vec<_> = ab.iter().map(|r| first(r, 200_000)).collect();
        let right = count_of(&outcomes, Verdict::Decided, Some(1));
        let bad = count_of(&outcomes, Verdict::Decided, Some(0));
        let no_difference = count_of(&outcomes, Verdict::NoDifference, None);
        let to_decision = median(
            outcomes
                .iter()
                .map(|o| {
                    o.filter(|(_, v, _)| *v == Verdict::Decided)
                        .map(|(n, _, _)| n)
                })
                .collect(),
        );
        println!(
            "{label:<28} | {:>5.1} {:>5.1} {:>5.1} | {:>5.1} {:>5.1} {:>5.1} {:>7}",
            percent(wrong, aa.len()),
            percent(strict, aa.len()),
            percent(aa_no_difference, aa.len()),
            percent(right, right + bad),
            percent(no_difference, ab.len()),
            percent(bad, ab.len()),
            to_decision.map_or("-".to_owned(), |m| m.to_string()),
        );
    };
    println!(
        "rule                         | A/A: wrong strict no-diff | A/B: right-of-decided no-diff wrong-decided median"
    );
    for min_views in [1_000u64, 1_500, 2_000, 3_000] {
        for probability_best in [0.995, 0.996, 0.997, 0.998, 0.9985, 0.999] {
            for equivalence in [0.01, 0.015, 0.02] {
                let t = Thresholds {
                    min_views,
                    probability_best,
                    expected_loss: 0.001,
                    equivalence,
                };
                report(
                    format!("{min_views} {probability_best} 0.001 {equivalence}"),
                    &|n| replay(n, &t),
                );
            }
        }
    }
    for effect in [0.08, 0.1, 0.12] {
        for a in [19.0, 29.0] {
            report(format!("SPRT lift {effect} LR {a}"), &|n| {
                sprt(n, 1_000, effect, a, 19.0)
            });
        }
    }
}
