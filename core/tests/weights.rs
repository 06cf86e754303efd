//! Bandit weights: properties, accuracy against an independent Monte Carlo
//! reference, and the shared vectors in `tests/vectors/weights.json`.
#![allow(clippy::unwrap_used)]

use myna_core::weights::{Arm, WeightsConfig, WeightsMode, choose, probability_best, weights};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

const FLOOR: f64 = 0.001;

mod reference;
use reference::{arm, assert_close, best_of, posteriors};

fn default_weights(arms: &[Arm]) -> Vec<f64> {
    weights(arms, &WeightsConfig::default())
}

/// Panics unless `w` is a probability vector: entries in [0, 1], not NaN,
/// summing to 1 within 1e-9.
fn assert_distribution(w: &[f64], what: &str) {
    for (i, &x) in w.iter().enumerate() {
        assert!(
            (0.0..=1.0).contains(&x),
            "{what}: entry {i} is {x} in {w:?}"
        );
    }
    if !w.is_empty() {
        let sum: f64 = w.iter().sum();
        assert!((sum - 1.0).abs() <= 1e-9, "{what}: sum {sum} in {w:?}");
    }
}

fn assert_all_exactly_equal(w: &[f64]) {
    assert!(
        w.iter().all(|x| x.to_bits() == w[0].to_bits()),
        "not exactly equal: {w:?}"
    );
}

fn argmax(w: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in w.iter().enumerate() {
        if x > w[best] {
            best = i;
        }
    }
    best
}

// ---------------------------------------------------------------- units

#[test]
fn default_floor_is_one_in_a_thousand() {
    assert_eq!(WeightsConfig::default().exploration_floor, 0.001);
}

#[test]
fn empty_and_single_arm() {
    assert!(default_weights(&[]).is_empty());
    assert!(probability_best(&[]).is_empty());
    assert_eq!(default_weights(&[arm(1000, 30.0)]), vec![1.0]);
    assert_eq!(probability_best(&[arm(0, 0.0)]), vec![1.0]);
}

#[test]
fn no_data_gives_exactly_equal_weights() {
    for k in 1..=60 {
        let w = default_weights(&vec![Arm::default(); k]);
        assert_eq!(w.len(), k);
        assert_all_exactly_equal(&w);
        assert_eq!(w[0], 1.0 / k as f64);
        assert_distribution(&w, "no data");
    }
}

#[test]
fn identical_counts_give_exactly_equal_weights() {
    for counts in [
        arm(1000, 37.0),
        arm(3, 3.0),
        arm(1_000_000_000_000, 2.5e11),
        arm(u64::MAX, 1e18),
    ] {
        for k in [2, 3, 7, 50] {
            let w = default_weights(&vec![counts; k]);
            assert_all_exactly_equal(&w);
            assert_distribution(&w, "identical");
        }
    }
}

#[test]
fn identical_arms_among_others_are_exactly_equal() {
    let arms = [
        arm(500, 60.0),
        arm(800, 70.0),
        arm(500, 60.0),
        arm(20, 1.0),
        arm(500, 60.0),
    ];
    let w = default_weights(&arms);
    assert_eq!(w[0].to_bits(), w[2].to_bits());
    assert_eq!(w[0].to_bits(), w[4].to_bits());
    assert_ne!(w[0], w[1]);
    assert_distribution(&w, "mixed");
}

#[test]
fn reordering_arms_reorders_weights_exactly() {
    let arms = [
        arm(900, 100.0),
        arm(1000, 130.0),
        arm(0, 0.0),
        arm(1100, 120.0),
    ];
    let w = default_weights(&arms);
    let reversed: Vec<Arm> = arms.iter().rev().copied().collect();
    let mut w_reversed = default_weights(&reversed);
    w_reversed.reverse();
    assert_eq!(w, w_reversed);
}

#[test]
fn same_counts_same_weights() {
    let arms = [arm(1234, 150.0), arm(1300, 170.0), arm(17, 2.0)];
    assert_eq!(default_weights(&arms), default_weights(&arms));
}

#[test]
fn clear_winner_gets_most_weight() {
    let arms = [arm(2000, 200.0), arm(2000, 300.0), arm(2000, 210.0)];
    let w = default_weights(&arms);
    assert!(w[1] > 0.99, "{w:?}");
    assert_eq!(argmax(&w), 1);
    // The losers are held near the floor, not below it.
    assert!(w[0] >= FLOOR && w[0] < FLOOR + 1e-4, "{w:?}");
    assert!(w[2] >= FLOOR && w[2] < FLOOR + 1e-4, "{w:?}");
}

#[test]
fn more_evidence_for_the_same_lead_means_more_weight() {
    let small = default_weights(&[arm(100, 10.0), arm(100, 12.0)]);
    let large = default_weights(&[arm(10_000, 1_000.0), arm(10_000, 1_200.0)]);
    assert!(small[1] > 0.5 && small[1] < 0.8, "{small:?}");
    assert!(large[1] > small[1], "{small:?} {large:?}");
}

#[test]
fn floor_is_respected() {
    let cases: Vec<Vec<Arm>> = vec![
        vec![arm(10_000, 100.0), arm(10_000, 2_000.0)],
        vec![arm(1_000_000, 0.0), arm(10, 10.0), arm(0, 0.0)],
        (0..50).map(|i| arm(1000, 10.0 * i as f64)).collect(),
    ];
    for arms in cases {
        let w = default_weights(&arms);
        assert!(w.iter().all(|&x| x >= FLOOR), "{w:?}");
        assert_distribution(&w, "floor");
    }
}

#[test]
fn floor_is_configurable() {
    let arms = [arm(5_000, 500.0), arm(5_000, 1_000.0), arm(5_000, 520.0)];
    let with = |floor: f64| {
        weights(
            &arms,
            &WeightsConfig {
                exploration_floor: floor,
                ..WeightsConfig::default()
            },
        )
    };

    let w = with(0.05);
    assert!(
        (w[0] - 0.05).abs() < 1e-9 && (w[2] - 0.05).abs() < 1e-9,
        "{w:?}"
    );
    assert!((w[1] - 0.9).abs() < 1e-9, "{w:?}");

    let w = with(0.0);
    assert!(w[0] < 1e-12 && w[2] < 1e-12 && w[1] > 1.0 - 1e-9, "{w:?}");

    // Non-finite or negative floors count as 0.
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.3] {
        assert_eq!(with(bad), with(0.0), "floor {bad}");
    }

    // A floor of 1/K or more leaves nothing to share out: equal weights.
    for floor in [1.0 / 3.0, 0.5, 1.0, 7.0] {
        let w = with(floor);
        assert_all_exactly_equal(&w);
        assert_eq!(w[0], 1.0 / 3.0);
    }
}

#[test]
fn rewards_are_sanitized() {
    // Non-finite or negative total reward counts as 0.
    let zero = default_weights(&[arm(10, 0.0), arm(10, 4.0)]);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, -1e300] {
        assert_eq!(default_weights(&[arm(10, bad), arm(10, 4.0)]), zero);
        assert_all_exactly_equal(&default_weights(&[arm(10, bad), arm(10, 0.0)]));
    }
}

#[test]
fn reward_above_views_is_allowed() {
    let w = default_weights(&[arm(10, 50.0), arm(10, 5.0)]);
    assert_distribution(&w, "reward above views");
    assert!(w[0] > 0.99, "{w:?}");

    // Without views: Beta(4, 1) against Beta(1, 1) is best with probability
    // E[Beta(4, 1)] = 0.8.
    let p = probability_best(&[arm(0, 3.0), arm(0, 0.0)]);
    assert!((p[0] - 0.8).abs() < 1e-3, "{p:?}");
}

#[test]
fn zero_views_against_data_matches_closed_form() {
    // P(U > X) = 1 - E[X] for U uniform, whatever X's distribution.
    for (views, reward) in [(10, 1.0), (100, 70.0), (100_000, 30_000.0), (3, 0.0)] {
        let p = probability_best(&[arm(0, 0.0), arm(views, reward)]);
        let mean = (1.0 + reward) / (2.0 + views as f64);
        assert!(
            (p[0] - (1.0 - mean)).abs() < 1e-3,
            "{views} {reward}: {p:?}"
        );
    }
}

#[test]
fn fractional_total_rewards_match_exact_values() {
    // Beta(1 + r, 101 - r) against Beta(1, 101); exact values by adaptive
    // quadrature, checked by Monte Carlo (an outside probe's figures). A
    // total reward between 0 and 1 makes the density rise from 0 at x = 0
    // as x^r, steeper than the first trapezoid saw (0.01 gave 0.5189).
    for (reward, exact) in [
        (0.001, 0.500348),
        (0.01, 0.503466),
        (0.1, 0.533611),
        (0.5, 0.647106),
        (2.0, 0.876866),
    ] {
        let p = probability_best(&[arm(100, reward), arm(100, 0.0)]);
        assert!(
            (p[0] - exact).abs() < 1e-3,
            "{reward}: {p:?}, exact {exact}"
        );
    }
}

#[test]
fn fractional_parameters_at_either_end_match_monte_carlo() {
    // A reward between 0 and 1 (alpha between 1 and 2), and views less the
    // reward between 0 and 1 (beta between 1 and 2: the same rise at x = 1).
    let sets = [
        vec![arm(10, 0.01), arm(10, 0.0)],
        vec![arm(1_000, 0.5), arm(1_000, 0.01), arm(1_000, 0.0)],
        vec![arm(1, 0.5), arm(1, 1.0)],
        vec![arm(3, 2.7), arm(3, 2.0), arm(5, 4.9)],
    ];
    for (s, arms) in sets.iter().enumerate() {
        let reference = monte_carlo(arms, 300_000, 40 + s as u64);
        assert_close(&probability_best(arms), &reference, 300_000, "fractional");
    }
}

#[test]
fn huge_counts() {
    let e12 = 1_000_000_000_000;
    // Rates 0.1 and 0.1000001 with 10^12 views each: the posteriors are
    // normal to many digits, sd 3e-7, so P(second best) = Φ(0.2357) = 0.5932.
    let p = probability_best(&[arm(e12, 1e11), arm(e12, 1.000001e11)]);
    assert!((p[1] - 0.5932).abs() < 2e-3, "{p:?}");

    // Against few views: P(Beta(2, 10) > 0.1) = P(Bin(11, 0.1) <= 1) = 0.6974.
    let p = probability_best(&[arm(e12, 1e11), arm(10, 1.0)]);
    assert!((p[1] - 0.6974).abs() < 2e-3, "{p:?}");

    // The largest counts there are.
    for arms in [
        vec![arm(u64::MAX, 1e18), arm(u64::MAX, 1.0000001e18)],
        vec![arm(u64::MAX, 0.0), arm(0, 0.0)],
        vec![arm(u64::MAX, u64::MAX as f64), arm(u64::MAX, 1e19)],
        vec![arm(10, f64::MAX), arm(0, 0.0), arm(u64::MAX, 1e300)],
    ] {
        let w = default_weights(&arms);
        assert_distribution(&w, "largest counts");
        assert_distribution(&probability_best(&arms), "largest counts");
    }
    // sd 5.3e-11, means 5.4e-11 apart: the second is best with probability
    // Φ(0.7271) = 0.7664.
    let p = probability_best(&[arm(u64::MAX, 1e18), arm(u64::MAX, 1e18 + 1e9)]);
    assert!((p[1] - 0.7664).abs() < 2e-3, "{p:?}");
}

#[test]
fn mixed_wide_and_narrow_posteriors() {
    let arms = [
        arm(0, 0.0),
        arm(1_000_000_000_000, 3e11),
        arm(5, 1.0),
        arm(100_000, 29_000.0),
    ];
    let w = default_weights(&arms);
    assert_distribution(&w, "mixed");
    let reference = monte_carlo(&arms, 400_000, 11);
    assert_close(&probability_best(&arms), &reference, 400_000, "mixed");
}

#[test]
fn choose_picks_by_cumulative_weight() {
    let w = [0.2, 0.3, 0.5];
    assert_eq!(choose(&w, 0.0), 0);
    assert_eq!(choose(&w, 0.19), 0);
    assert_eq!(choose(&w, 0.21), 1);
    assert_eq!(choose(&w, 0.49), 1);
    assert_eq!(choose(&w, 0.51), 2);
    assert_eq!(choose(&w, 0.999_999), 2);
    // Clamped into [0, 1).
    assert_eq!(choose(&w, -3.0), 0);
    assert_eq!(choose(&w, 1.0), 2);
    assert_eq!(choose(&w, 17.0), 2);
    assert_eq!(choose(&w, f64::NAN), 0);
    assert_eq!(choose(&w, f64::INFINITY), 2);

    // Shares of a fine uniform grid of u match the weights.
    let n = 100_000;
    let mut counts = [0usize; 3];
    for i in 0..n {
        counts[choose(&w, (i as f64 + 0.5) / n as f64)] += 1;
    }
    assert_eq!(counts, [20_000, 30_000, 50_000]);
}

#[test]
fn choose_never_picks_a_zero_weight() {
    let w = [0.0, 0.4, 0.0, 0.6, 0.0];
    for i in 0..1000 {
        let c = choose(&w, i as f64 / 1000.0);
        assert!(c == 1 || c == 3, "{c}");
    }
    assert_eq!(choose(&w, 0.0), 1);
    assert_eq!(choose(&w, 1.0), 3);
    // Bad weights count as 0.
    let w = [f64::NAN, 1.0, f64::INFINITY, -2.0];
    for i in 0..100 {
        assert_eq!(choose(&w, i as f64 / 100.0), 1);
    }
}

#[test]
fn choose_with_no_positive_weight_is_uniform() {
    let w = [0.0; 4];
    assert_eq!(choose(&w, 0.0), 0);
    assert_eq!(choose(&w, 0.3), 1);
    assert_eq!(choose(&w, 0.6), 2);
    assert_eq!(choose(&w, 0.99), 3);
    assert_eq!(choose(&[f64::NAN], 0.5), 0);
}

#[test]
fn choose_with_huge_weights() {
    let w = [f64::MAX, f64::MAX];
    assert_eq!(choose(&w, 0.25), 0);
    assert_eq!(choose(&w, 0.75), 1);
}

// ---------------------------------------------------- Monte Carlo accuracy

/// Share of `draws` joint draws from the arms' Beta posteriors in which each
/// arm's draw is the largest: an implementation independent of the
/// quadrature under test.
fn monte_carlo(arms: &[Arm], draws: usize, seed: u64) -> Vec<f64> {
    let betas = posteriors(arms);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut wins = vec![0u64; arms.len()];
    for _ in 0..draws {
        wins[best_of(&betas, &mut rng)] += 1;
    }
    wins.iter().map(|&w| w as f64 / draws as f64).collect()
}

#[test]
fn matches_monte_carlo_two_arms() {
    let sets = [
        vec![arm(100, 10.0), arm(100, 12.0)],
        vec![arm(1000, 100.0), arm(1000, 110.0)],
        vec![arm(3, 1.0), arm(40, 9.0)],
        vec![arm(20_000, 600.0), arm(15_000, 470.0)],
    ];
    for (s, arms) in sets.iter().enumerate() {
        let reference = monte_carlo(arms, 300_000, s as u64);
        assert_close(&probability_best(arms), &reference, 300_000, "two arms");
        let w = default_weights(arms);
        let reference_w: Vec<f64> = reference
            .iter()
            .map(|p| FLOOR + (1.0 - 2.0 * FLOOR) * p)
            .collect();
        assert_close(&w, &reference_w, 300_000, "two arms, weights");
    }
}

#[test]
fn matches_monte_carlo_ten_arms() {
    let mut rng = StdRng::seed_from_u64(10);
    let arms: Vec<Arm> = (0..10)
        .map(|_| {
            let views: u64 = rng.random_range(200..3_000);
            let rate: f64 = rng.random_range(0.09..0.12);
            arm(views, (views as f64 * rate).round())
        })
        .collect();
    let reference = monte_carlo(&arms, 200_000, 100);
    assert_close(&probability_best(&arms), &reference, 200_000, "ten arms");

    let early: Vec<Arm> = (0..10)
        .map(|i| arm(i % 4, (i % 3).min(i % 4) as f64))
        .collect();
    let reference = monte_carlo(&early, 200_000, 101);
    assert_close(
        &probability_best(&early),
        &reference,
        200_000,
        "ten arms, early",
    );
}

#[test]
fn matches_monte_carlo_fifty_arms() {
    let arms: Vec<Arm> = (0..50)
        .map(|i| {
            let views = 2_000 + 53 * i;
            arm(views, (views as f64 * (0.2 + 0.0004 * i as f64)).round())
        })
        .collect();
    let reference = monte_carlo(&arms, 100_000, 50);
    assert_close(&probability_best(&arms), &reference, 100_000, "fifty arms");
}

#[test]
fn matches_monte_carlo_huge_counts() {
    let e12 = 1_000_000_000_000;
    let arms = [
        arm(e12, 1e11),
        arm(e12, 1.0000003e11),
        arm(e12, 0.9999998e11),
        arm(2_000_000, 200_100.0),
    ];
    let reference = monte_carlo(&arms, 400_000, 12);
    assert_close(&probability_best(&arms), &reference, 400_000, "huge counts");
}

// -------------------------------------------------------------- proptest

fn any_arm() -> impl Strategy<Value = Arm> {
    let views = prop_oneof![0u64..20, 0u64..100_000, any::<u64>()];
    let reward = prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-1.0),
        Just(f64::MAX),
        any::<f64>(),
        0.0f64..100.0,
    ];
    (views, reward, 0.0f64..1.2, any::<bool>()).prop_map(|(views, reward, rate, relative)| Arm {
        views,
        total_reward: if relative {
            (views as f64 * rate).round()
        } else {
            reward
        },
    })
}

proptest! {
    #[test]
    fn weights_are_always_a_distribution(
        arms in prop::collection::vec(any_arm(), 0..24),
        floor in prop_oneof![Just(0.001), 0.0f64..0.2, any::<f64>()],
        decide in any::<bool>(),
    ) {
        let mode = if decide { WeightsMode::Decide } else { WeightsMode::Conversions };
        let w = weights(&arms, &WeightsConfig { exploration_floor: floor, mode });
        prop_assert_eq!(w.len(), arms.len());
        assert_distribution(&w, "weights");
        if floor.is_finite() && floor > 0.0 && floor * arms.len() as f64 <= 0.5 {
            prop_assert!(w.iter().all(|&x| x >= floor), "{:?}", w);
        }
        let p = probability_best(&arms);
        prop_assert_eq!(p.len(), arms.len());
        assert_distribution(&p, "probability_best");
    }

    #[test]
    fn identical_arms_always_get_equal_weights(
        arm in any_arm(),
        others in prop::collection::vec(any_arm(), 0..5),
        copies in 2usize..6,
    ) {
        let mut arms = others.clone();
        arms.extend(std::iter::repeat_n(arm, copies));
        let w = default_weights(&arms);
        let copied = &w[others.len()..];
        prop_assert!(copied.iter().all(|x| x.to_bits() == copied[0].to_bits()), "{:?}", w);
    }

    #[test]
    fn choose_is_always_in_range(
        w in prop::collection::vec(prop_oneof![any::<f64>(), 0.0f64..1.0], 1..20),
        u in prop_oneof![any::<f64>(), 0.0f64..1.0],
    ) {
        let i = choose(&w, u);
        prop_assert!(i < w.len());
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if w.iter().any(|&x| positive(x)) {
            prop_assert!(positive(w[i]), "chose {} in {:?}", i, w);
        }
    }
}

// ---------------------------------------------------------- shared vectors

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vectors {
    description: String,
    sum_tolerance: f64,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    name: String,
    arms: Vec<VectorArm>,
    floor: f64,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VectorArm {
    views: u64,
    total_reward: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Expect {
    sum_to: f64,
    equal: bool,
    best: Option<usize>,
    min_weight: f64,
    approx: Option<Vec<f64>>,
    tolerance: f64,
}

#[test]
fn shared_vectors() {
    let vectors: Vectors =
        serde_json::from_str(include_str!("../../tests/vectors/weights.json")).unwrap();
    assert!(!vectors.description.is_empty());
    assert!(vectors.cases.len() >= 15);
    for case in &vectors.cases {
        let name = &case.name;
        let arms: Vec<Arm> = case
            .arms
            .iter()
            .map(|a| arm(a.views, a.total_reward))
            .collect();
        let config = WeightsConfig {
            exploration_floor: case.floor,
            ..WeightsConfig::default()
        };
        let w = weights(&arms, &config);
        let expect = &case.expect;
        assert_eq!(w.len(), arms.len(), "{name}");
        let sum: f64 = w.iter().sum();
        assert!(
            (sum - expect.sum_to).abs() <= vectors.sum_tolerance,
            "{name}: sum {sum}"
        );
        assert!(w.iter().all(|x| (0.0..=1.0).contains(x)), "{name}: {w:?}");
        let all_equal = w.iter().all(|x| x.to_bits() == w[0].to_bits());
        assert_eq!(all_equal, expect.equal, "{name}: equal? {w:?}");
        if let Some(best) = expect.best {
            assert!(
                w.iter().enumerate().all(|(i, &x)| i == best || x < w[best]),
                "{name}: best should be {best}: {w:?}"
            );
        }
        assert!(w.iter().all(|&x| x >= expect.min_weight), "{name}: {w:?}");
        if let Some(approx) = &expect.approx {
            assert_eq!(approx.len(), w.len(), "{name}");
            for (i, (&got, &want)) in w.iter().zip(approx).enumerate() {
                assert!(
                    (got - want).abs() <= expect.tolerance,
                    "{name}: arm {i}: got {got}, expected {want} ± {}",
                    expect.tolerance
                );
            }
        }
    }
}
