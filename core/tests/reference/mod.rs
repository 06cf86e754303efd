//! Monte Carlo references the weights tests share (`weights.rs`,
//! `weights_mode.rs`): arms, their Beta posteriors sampled independently of
//! core's quadrature, and the accuracy check against such a reference.
#![allow(dead_code, clippy::unwrap_used)]

use myna_core::weights::Arm;
use rand::rngs::StdRng;
use rand_distr::{Beta, Distribution};

pub fn arm(views: u64, total_reward: f64) -> Arm {
    Arm {
        views,
        total_reward,
    }
}

/// Each arm's Beta(1 + rewards, 1 + views - rewards) posterior (rewards
/// read as core reads them: not finite or negative is 0).
pub fn posteriors(arms: &[Arm]) -> Vec<Beta<f64>> {
    arms.iter()
        .map(|a| {
            let r = if a.total_reward.is_finite() {
                a.total_reward.max(0.0)
            } else {
                0.0
            };
            Beta::new((1.0 + r).max(1.0), (1.0 + a.views as f64 - r).max(1.0)).unwrap()
        })
        .collect()
}

/// The arm whose draw from `posteriors` is the largest.
pub fn best_of(posteriors: &[Beta<f64>], rng: &mut StdRng) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, beta) in posteriors.iter().enumerate() {
        let x = beta.sample(rng);
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Every value within the 0.005 goal of the reference, and within five
/// Monte Carlo standard errors (plus 0.0005 for the quadrature) of it.
pub fn assert_close(p: &[f64], reference: &[f64], draws: usize, what: &str) {
    for (i, (&q, &r)) in p.iter().zip(reference).enumerate() {
        let se = (r * (1.0 - r) / draws as f64)
            .sqrt()
            .max(1.0 / draws as f64);
        let diff = (q - r).abs();
        assert!(
            diff <= 0.005 && diff <= 5.0 * se + 0.0005,
            "{what}: arm {i}: quadrature {q}, Monte Carlo {r} (s.e. {se})"
        );
    }
}
