//! Time of `weights` for 2, 10 and 50 arms on realistic counts (in both
//! modes: `conversions` and `decide`, goal <= 1 ms for 10 arms), and of the
//! decision numbers (`probability_best_and_loss`, goal <= 1 ms for 10 arms),
//! then the weights' accuracy against a 1,000,000-draw Monte Carlo reference
//! on the same counts.
//!
//! Run with `cargo bench -p myna-core --bench weights`.

use std::hint::black_box;

use criterion::Criterion;
use myna_core::weights::{
    Arm, WeightsConfig, WeightsMode, probability_best, probability_best_and_loss, weights,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution};

const SIZES: [usize; 3] = [2, 10, 50];
const REFERENCE_DRAWS: usize = 1_000_000;
const GOAL: f64 = 0.005;

/// Thousands of views per arm, conversion rates between 0.05 and 0.3 that
/// differ by up to ±15% between arms, so several arms are still in the race.
fn realistic_arms(k: usize, seed: u64) -> Vec<Arm> {
    let mut rng = StdRng::seed_from_u64(seed);
    let base: f64 = rng.random_range(0.05..0.26);
    (0..k)
        .map(|_| {
            let views: u64 = rng.random_range(1_000..10_000);
            let rate: f64 = base * rng.random_range(0.85..1.15);
            let conversions = (0..views).filter(|_| rng.random::<f64>() < rate).count();
            Arm {
                views,
                total_reward: conversions as f64,
            }
        })
        .collect()
}

/// Share of joint draws in which each arm's Beta draw is the largest.
fn monte_carlo(arms: &[Arm], draws: usize, seed: u64) -> Vec<f64> {
    let betas: Vec<Beta<f64>> = arms
        .iter()
        .map(|a| {
            let r = a.total_reward.max(0.0);
            let alpha = (1.0 + r).max(1.0);
            let beta = (1.0 + a.views as f64 - r).max(1.0);
            Beta::new(alpha, beta).expect("valid Beta parameters")
        })
        .collect();
    let threads = 2;
    let per_thread = draws / threads;
    let wins: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let betas = &betas;
                scope.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(t as u64));
                    let mut wins = vec![0u64; betas.len()];
                    for _ in 0..per_thread {
                        let mut best = 0;
                        let mut best_x = f64::NEG_INFINITY;
                        for (i, b) in betas.iter().enumerate() {
                            let x = b.sample(&mut rng);
                            if x > best_x {
                                best_x = x;
                                best = i;
                            }
                        }
                        wins[best] += 1;
                    }
                    wins
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("Monte Carlo thread"))
            .collect()
    });
    let total = (per_thread * threads) as f64;
    (0..arms.len())
        .map(|i| wins.iter().map(|w| w[i]).sum::<u64>() as f64 / total)
        .collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn bench_weights(c: &mut Criterion) {
    let config = WeightsConfig::default();
    for k in SIZES {
        let arms = realistic_arms(k, k as u64);
        c.bench_function(&format!("weights/{k} arms"), |b| {
            b.iter(|| weights(black_box(&arms), black_box(&config)))
        });
    }
    let decide = WeightsConfig {
        mode: WeightsMode::Decide,
        ..config
    };
    for k in SIZES {
        let arms = realistic_arms(k, k as u64);
        c.bench_function(&format!("weights decide/{k} arms"), |b| {
            b.iter(|| weights(black_box(&arms), black_box(&decide)))
        });
    }
    for k in SIZES {
        let arms = realistic_arms(k, k as u64);
        c.bench_function(&format!("decision numbers/{k} arms"), |b| {
            b.iter(|| probability_best_and_loss(black_box(&arms)))
        });
    }
}

fn accuracy_report() {
    let config = WeightsConfig::default();
    println!();
    println!("accuracy against a {REFERENCE_DRAWS}-draw Monte Carlo reference (goal <= {GOAL}):");
    println!(
        "{:>5}  {:>20}  {:>20}  {:>9}  {:>6}",
        "arms", "max |weights - MC|", "max |p_best - MC|", "MC s.e.", "goal"
    );
    for k in SIZES {
        let arms = realistic_arms(k, k as u64);
        let reference = monte_carlo(&arms, REFERENCE_DRAWS, 1_000 + k as u64);
        let floor = config.exploration_floor;
        let scale = 1.0 - k as f64 * floor;
        let reference_weights: Vec<f64> = reference.iter().map(|p| floor + scale * p).collect();
        let w_diff = max_abs_diff(&weights(&arms, &config), &reference_weights);
        let p_diff = max_abs_diff(&probability_best(&arms), &reference);
        let se = reference
            .iter()
            .map(|p| (p * (1.0 - p) / REFERENCE_DRAWS as f64).sqrt())
            .fold(0.0, f64::max);
        let met = if w_diff <= GOAL { "met" } else { "NOT met" };
        println!("{k:>5}  {w_diff:>20.6}  {p_diff:>20.6}  {se:>9.6}  {met:>6}");
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_weights(&mut criterion);
    criterion.final_summary();
    accuracy_report();
}
