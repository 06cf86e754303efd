//! Decisions: the numbers against closed forms and a Monte Carlo reference,
//! the verdict's transitions, the thresholds' settings, the health checks
//! and the decision form.
#![allow(clippy::unwrap_used)]

use myna_core::weights::{Arm, probability_best_and_loss};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Beta, Distribution};

fn arm(views: u64, total_reward: f64) -> Arm {
    Arm {
        views,
        total_reward,
    }
}

/// `ln B(a, b)` for whole `a`, `b` >= 1, from sums of logarithms.
fn ln_beta(a: u64, b: u64) -> f64 {
    let ln_factorial = |n: u64| (2..=n).map(|k| (k as f64).ln()).sum::<f64>();
    ln_factorial(a - 1) + ln_factorial(b - 1) - ln_factorial(a + b - 1)
}

/// `P(X_b > X_a)` for `X_a ~ Beta(aa, ba)`, `X_b ~ Beta(ab, bb)`, whole
/// parameters (Evan Miller's closed form).
fn prob_greater(aa: u64, ba: u64, ab: u64, bb: u64) -> f64 {
    (0..ab)
        .map(|i| {
            (ln_beta(aa + i, ba + bb)
                - ((bb + i) as f64).ln()
                - ln_beta(1 + i, bb)
                - ln_beta(aa, ba))
            .exp()
        })
        .sum()
}

/// `E[max(X_b - X_a, 0)]`: `E[X_b] P(X_b' > X_a) - E[X_a] P(X_b > X_a')`
/// with `X_b' ~ Beta(ab + 1, bb)` and `X_a' ~ Beta(aa + 1, ba)`.
fn loss_of_a(aa: u64, ba: u64, ab: u64, bb: u64) -> f64 {
    let mean = |a: u64, b: u64| a as f64 / (a + b) as f64;
    mean(ab, bb) * prob_greater(aa, ba, ab + 1, bb)
        - mean(aa, ba) * prob_greater(aa + 1, ba, ab, bb)
}

#[test]
fn two_arms_match_the_closed_forms() {
    for (a, b) in [
        ((20, 3.0), (25, 8.0)),
        ((200, 10.0), (180, 15.0)),
        ((1_000, 50.0), (1_000, 62.0)),
        ((3_000, 150.0), (2_500, 140.0)),
        ((50, 0.0), (60, 1.0)),
    ] {
        let arms = [arm(a.0, a.1), arm(b.0, b.1)];
        let (best, loss) = probability_best_and_loss(&arms);
        let params = |(views, reward): (u64, f64)| (1 + reward as u64, 1 + views - reward as u64);
        let (aa, ba) = params(a);
        let (ab, bb) = params(b);
        let p_b = prob_greater(aa, ba, ab, bb);
        assert!((best[1] - p_b).abs() < 0.001, "{arms:?}: {best:?} vs {p_b}");
        let expected = [loss_of_a(aa, ba, ab, bb), loss_of_a(ab, bb, aa, ba)];
        for i in 0..2 {
            assert!(
                (loss[i] - expected[i]).abs() < 1e-5 + 1e-3 * expected[i],
                "{arms:?}: loss {loss:?} vs {expected:?}"
            );
        }
    }
}

/// Probability of being best and expected loss by sampling.
fn monte_carlo(arms: &[Arm], draws: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let betas: Vec<Beta<f64>> = arms
        .iter()
        .map(|a| Beta::new(1.0 + a.total_reward, 1.0 + a.views as f64 - a.total_reward).unwrap())
        .collect();
    let k = arms.len();
    let (mut wins, mut loss) = (vec![0.0; k], vec![0.0; k]);
    let mut x = vec![0.0; k];
    for _ in 0..draws {
        for (xi, b) in x.iter_mut().zip(&betas) {
            *xi = b.sample(&mut rng);
        }
        let (best, top) =
            x.iter().copied().enumerate().fold(
                (0, f64::MIN),
                |acc, (i, v)| if v > acc.1 { (i, v) } else { acc },
            );
        wins[best] += 1.0;
        for i in 0..k {
            loss[i] += top - x[i];
        }
    }
    let n = draws as f64;
    (
        wins.iter().map(|w| w / n).collect(),
        loss.iter().map(|l| l / n).collect(),
    )
}

#[test]
fn several_arms_match_a_monte_carlo_reference() {
    let cases = [
        vec![arm(1_000, 50.0), arm(1_100, 61.0), arm(900, 47.0)],
        vec![
            arm(5_000, 1_000.0),
            arm(5_000, 1_030.0),
            arm(4_000, 790.0),
            arm(6_000, 1_250.0),
        ],
        vec![
            arm(30, 3.0),
            arm(40, 6.0),
            arm(25, 1.0),
            arm(10, 2.0),
            arm(60, 9.0),
        ],
    ];
    for (c, arms) in cases.iter().enumerate() {
        let (best, loss) = probability_best_and_loss(arms);
        let (mc_best, mc_loss) = monte_carlo(arms, 400_000, c as u64);
        for i in 0..arms.len() {
            assert!(
                (best[i] - mc_best[i]).abs() <= 0.005,
                "{arms:?}: {best:?} vs {mc_best:?}"
            );
            // The loss is far more precise than 0.005: hold it to 2 % or 2e-4.
            assert!(
                (loss[i] - mc_loss[i]).abs() <= (0.02 * mc_loss[i]).max(2e-4),
                "{arms:?}: {loss:?} vs {mc_loss:?}"
            );
        }
    }
}

#[test]
fn identical_arms_share_numbers_and_one_arm_loses_nothing() {
    let (best, loss) = probability_best_and_loss(&[arm(100, 10.0); 3]);
    assert_eq!(best, vec![1.0 / 3.0; 3]);
    assert!(
        loss[0] > 0.01 && loss.iter().all(|&l| l == loss[0]),
        "{loss:?}"
    );
    assert_eq!(
        probability_best_and_loss(&[arm(10, 1.0)]),
        (vec![1.0], vec![0.0])
    );
    assert_eq!(probability_best_and_loss(&[]), (vec![], vec![]));
}
