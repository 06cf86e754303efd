//! The `decide` weights mode (top-two Thompson sampling) against a Monte
//! Carlo reference of top-two sampling played draw by draw, its properties,
//! and how an experiment's settings choose the mode.
#![allow(clippy::unwrap_used)]

use myna_core::weights::{
    Arm, MODE_SETTING, WeightsConfig, WeightsMode, probability_best, weights,
    weights_from_probabilities,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const FLOOR: f64 = 0.001;

mod reference;
use reference::{arm, assert_close, best_of, posteriors};

fn decide() -> WeightsConfig {
    WeightsConfig {
        mode: WeightsMode::Decide,
        ..WeightsConfig::default()
    }
}

/// Share of `plays` in which top-two sampling (β = 0.5) plays each arm,
/// played as Russo describes it: draw every posterior, toss a fair coin;
/// heads plays the draw's best, tails redraws until another arm is best and
/// plays that one. Independent of the closed form under test.
fn top_two_monte_carlo(arms: &[Arm], plays: usize, seed: u64) -> Vec<f64> {
    let betas = posteriors(arms);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut played = vec![0u64; arms.len()];
    for _ in 0..plays {
        let first = best_of(&betas, &mut rng);
        let arm = if rng.random::<bool>() {
            first
        } else {
            loop {
                let challenger = best_of(&betas, &mut rng);
                if challenger != first {
                    break challenger;
                }
            }
        };
        played[arm] += 1;
    }
    played.iter().map(|&n| n as f64 / plays as f64).collect()
}

/// Each weight within 0.005 of the reference's share mixed with the floor,
/// and within five Monte Carlo standard errors (plus 0.0005 for the
/// quadrature).
fn assert_matches_reference(arms: &[Arm], plays: usize, seed: u64) {
    let k = arms.len() as f64;
    let expected: Vec<f64> = top_two_monte_carlo(arms, plays, seed)
        .iter()
        .map(|r| FLOOR + (1.0 - k * FLOOR) * r)
        .collect();
    let what = format!("{arms:?}: top-two weights");
    assert_close(&weights(arms, &decide()), &expected, plays, &what);
}

#[test]
fn matches_top_two_sampling_three_arms() {
    assert_matches_reference(
        &[arm(500, 50.0), arm(500, 60.0), arm(500, 45.0)],
        200_000,
        1,
    );
    assert_matches_reference(&[arm(40, 3.0), arm(5, 1.0), arm(2_000, 190.0)], 200_000, 2);
}

#[test]
fn matches_top_two_sampling_ten_arms() {
    let mut rng = StdRng::seed_from_u64(10);
    let arms: Vec<Arm> = (0..10)
        .map(|_| {
            let views: u64 = rng.random_range(200..3_000);
            let rate: f64 = rng.random_range(0.09..0.12);
            arm(views, (views as f64 * rate).round())
        })
        .collect();
    assert_matches_reference(&arms, 100_000, 3);
}

#[test]
fn two_arms_split_evenly_whatever_the_counts() {
    for arms in [
        [arm(0, 0.0), arm(0, 0.0)],
        [arm(1_000, 50.0), arm(1_000, 55.0)],
        [arm(100_000, 5_000.0), arm(20_000, 1_500.0)],
        [arm(10_000_000, 9_000_000.0), arm(10_000_000, 1_000_000.0)],
    ] {
        let w = weights(&arms, &decide());
        assert!(
            (w[0] - 0.5).abs() < 1e-12 && (w[1] - 0.5).abs() < 1e-12,
            "{arms:?}: {w:?}"
        );
    }
}

#[test]
fn runner_up_gets_far_more_than_thompson_gives_it() {
    // Thompson sampling starves the runner-up; top-two keeps it near half.
    let arms = [arm(5_000, 250.0), arm(5_000, 290.0), arm(5_000, 200.0)];
    let thompson = weights(&arms, &WeightsConfig::default());
    let top_two = weights(&arms, &decide());
    assert!(thompson[1] > 0.9 && thompson[0] < 0.1, "{thompson:?}");
    assert!(top_two[1] > 0.45 && top_two[1] < 0.55, "{top_two:?}");
    assert!(top_two[0] > 0.4, "{top_two:?}");
    assert!(top_two[2] < 0.05, "{top_two:?}");
}

#[test]
fn certain_leader_leaves_its_challenger_half_to_the_best_of_the_rest() {
    // The others' chances of being best are exactly 0 as far as the
    // quadrature sees: the redraw's best is then the best among the others
    // alone, so the runner-up keeps its half and a variant that converts
    // far less is not given as much (an even split gave it 25 %).
    let arms = [
        arm(1_000_000, 900_000.0),
        arm(1_000_000, 100_000.0),
        arm(1_000_000, 200_000.0),
    ];
    assert_eq!(probability_best(&arms), vec![1.0, 0.0, 0.0]);
    let w = weights(&arms, &decide());
    let expected = [0.5, 0.0, 0.5].map(|s| FLOOR + (1.0 - 3.0 * FLOOR) * s);
    for (q, e) in w.iter().zip(expected) {
        assert!((q - e).abs() < 1e-12, "{w:?}");
    }

    // An outside probe's case: making the runner-up worse must not move a
    // quarter of the traffic to a variant with no conversion in 2,000 views.
    for runner_up in [600.0, 100.0] {
        let arms = [arm(2_000, 1_000.0), arm(2_000, runner_up), arm(2_000, 0.0)];
        let w = weights(&arms, &decide());
        assert!(w[1] > 0.49 && w[2] < 0.002, "{runner_up}: {w:?}");
    }
    let arms = [
        arm(2_000, 1_000.0),
        arm(2_000, 100.0),
        arm(2_000, 10.0),
        arm(2_000, 0.0),
    ];
    let w = weights(&arms, &decide());
    assert!(w[1] > 0.49 && w[2] < 0.002 && w[3] < 0.002, "{w:?}");
}

#[test]
fn identical_arms_get_exactly_equal_weights_and_weights_are_a_distribution() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..200 {
        let k = rng.random_range(2..12);
        let mut arms: Vec<Arm> = (0..k)
            .map(|_| {
                let views: u64 = rng.random_range(0..5_000);
                arm(views, (views as f64 * rng.random_range(0.0..0.3)).round())
            })
            .collect();
        let twin = arms[0];
        arms[k - 1] = twin;
        let w = weights(&arms, &decide());
        assert_eq!(w[0].to_bits(), w[k - 1].to_bits(), "{arms:?}: {w:?}");
        let sum: f64 = w.iter().sum();
        assert!((sum - 1.0).abs() <= 1e-9, "{arms:?}: {w:?}");
        assert!(
            w.iter().all(|x| (FLOOR..=1.0).contains(x)),
            "{arms:?}: {w:?}"
        );
    }
}

#[test]
fn from_probabilities_is_bit_for_bit_weights() {
    let arms = [
        arm(3_000, 160.0),
        arm(2_500, 140.0),
        arm(4_000, 190.0),
        arm(10, 1.0),
    ];
    for config in [WeightsConfig::default(), decide()] {
        assert_eq!(
            weights_from_probabilities(&arms, &probability_best(&arms), &config),
            weights(&arms, &config)
        );
    }
}

#[test]
fn mode_from_settings_flat_nested_absent_or_bad() {
    assert_eq!(MODE_SETTING, "myna.weights.mode");
    let read = |settings: serde_json::Value| WeightsMode::from_settings(&settings);
    assert_eq!(read(json!({})), (WeightsMode::Conversions, vec![]));
    assert_eq!(
        read(json!({"myna.weights.mode": "decide"})).0,
        WeightsMode::Decide
    );
    assert_eq!(
        read(json!({"myna": {"weights": {"mode": "decide"}}})).0,
        WeightsMode::Decide
    );
    assert_eq!(
        read(json!({"myna.weights": {"mode": "decide"}})).0,
        WeightsMode::Decide
    );
    assert_eq!(
        read(json!({"myna.weights.mode": "conversions"})),
        (WeightsMode::Conversions, vec![])
    );
    for bad in [
        json!("fast"),
        json!("Decide"),
        json!(1),
        json!(null),
        json!({"x": 1}),
    ] {
        let (mode, problems) = read(json!({ "myna.weights.mode": bad }));
        assert_eq!(mode, WeightsMode::Conversions, "{bad}");
        assert_eq!(problems.len(), 1, "{bad}");
        assert_eq!(
            problems[0].path.as_deref(),
            Some("settings.myna.weights.mode")
        );
        assert!(
            problems[0].message.contains("\"decide\""),
            "{}",
            problems[0].message
        );
    }
}

#[test]
fn config_for_settings_keeps_the_floor() {
    let server = WeightsConfig {
        exploration_floor: 0.01,
        ..WeightsConfig::default()
    };
    let (config, problems) = server.for_settings(&json!({"myna.weights.mode": "decide"}));
    assert_eq!(
        config,
        WeightsConfig {
            exploration_floor: 0.01,
            mode: WeightsMode::Decide
        }
    );
    assert!(problems.is_empty());
    assert_eq!(server.for_settings(&json!({})).0, server);
}

#[test]
fn choosing_a_mode_in_settings_makes_it_the_one_read_whatever_the_shape() {
    let shapes = [
        json!({}),
        json!({"a": 1}),
        json!({"myna.weights.mode": "decide"}),
        json!({"myna": {"weights": {"mode": "decide", "other": 1}}, "a": 1}),
        json!({"myna.weights": {"mode": "nonsense"}}),
        json!({"myna": {"weights.mode": "decide"}}),
    ];
    for shape in shapes {
        for mode in [WeightsMode::Conversions, WeightsMode::Decide] {
            let mut settings = shape.clone();
            mode.set_in(&mut settings);
            assert_eq!(
                WeightsMode::from_settings(&settings),
                (mode, vec![]),
                "{shape}"
            );
            assert_eq!(settings[MODE_SETTING], mode.as_str());
            // Only the mode changed: every other setting is kept.
            if let Some(other) = shape.get("a") {
                assert_eq!(&settings["a"], other);
            }
        }
    }
    let mut nested = json!({"myna": {"weights": {"mode": "decide", "other": 1}}});
    WeightsMode::Conversions.set_in(&mut nested);
    assert_eq!(nested["myna"]["weights"], json!({"other": 1}));
    // Not an object: left alone (core refuses such settings anyway).
    let mut list = json!([1]);
    WeightsMode::Decide.set_in(&mut list);
    assert_eq!(list, json!([1]));
    assert_eq!(WeightsMode::parse("decide"), Some(WeightsMode::Decide));
    assert_eq!(
        WeightsMode::parse("conversions"),
        Some(WeightsMode::Conversions)
    );
    assert_eq!(WeightsMode::parse("Decide"), None);
}
