//! Regret of the weights on simulated Bernoulli bandits, against the
//! Lai–Robbins lower bound.
//!
//! Imitates the server: a visitor gets a variant drawn by
//! [`choose`]`(weights, u)`, converts with the variant's true rate, and the
//! weights are recomputed from the counts (views = pulls, total reward =
//! conversions) every `recompute_every` events. Regret is pseudo-regret: the
//! sum over events of `p* - p_chosen`.
//!
//! Run with `cargo run --release -p myna-core --example regret`.

use std::thread;
use std::time::Instant;

use myna_core::weights::{Arm, WeightsConfig, choose, weights};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A Bernoulli bandit and how long to play it.
struct Instance {
    name: &'static str,
    rates: Vec<f64>,
    horizon: u64,
    seeds: u64,
    recompute_every: u64,
}

/// How variants are chosen.
#[derive(Clone, Copy)]
enum Policy {
    /// `choose` on `weights` with this exploration floor.
    Weights { floor: f64 },
    /// Every variant equally likely, whatever the counts.
    Uniform,
}

impl Policy {
    fn label(self) -> String {
        match self {
            Policy::Weights { floor } => format!("weights, floor {floor}"),
            Policy::Uniform => "uniform random".to_string(),
        }
    }
}

/// One row of the table: an instance, a policy and the goal for the ratio of
/// mean regret to the lower bound, if any.
struct Row {
    instance: Instance,
    policy: Policy,
    goal: Option<f64>,
}

/// Pseudo-regret of one run.
fn play(instance: &Instance, policy: Policy, seed: u64) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let k = instance.rates.len();
    let best = instance.rates.iter().copied().fold(f64::MIN, f64::max);
    let mut arms = vec![Arm::default(); k];
    let mut current = vec![1.0 / k as f64; k];
    let mut regret = 0.0;
    for t in 0..instance.horizon {
        let chosen = match policy {
            Policy::Weights { floor } => {
                if t % instance.recompute_every == 0 {
                    let config = WeightsConfig {
                        exploration_floor: floor,
                        ..WeightsConfig::default()
                    };
                    current = weights(&arms, &config);
                }
                choose(&current, rng.random::<f64>())
            }
            Policy::Uniform => rng.random_range(0..k),
        };
        let rate = instance.rates[chosen];
        regret += best - rate;
        arms[chosen].views += 1;
        if rng.random::<f64>() < rate {
            arms[chosen].total_reward += 1.0;
        }
    }
    regret
}

/// Worker threads: one per core.
fn threads() -> u64 {
    thread::available_parallelism().map_or(2, |n| n.get()) as u64
}

/// Regret of every seed, the seeds split across the machine's cores.
fn regrets(instance: &Instance, policy: Policy) -> Vec<f64> {
    let threads = threads();
    thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (0..instance.seeds)
                        .filter(|seed| seed % threads == t)
                        .map(|seed| play(instance, policy, seed))
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("simulation thread panicked"))
            .collect()
    })
}

/// Bernoulli Kullback–Leibler divergence KL(p, q).
fn kl(p: f64, q: f64) -> f64 {
    let part = |a: f64, b: f64| if a == 0.0 { 0.0 } else { a * (a / b).ln() };
    part(p, q) + part(1.0 - p, 1.0 - q)
}

/// Lai–Robbins: Σ over suboptimal arms of Δ_i / KL(p_i, p*), times ln T.
fn lai_robbins(rates: &[f64], horizon: u64) -> f64 {
    let best = rates.iter().copied().fold(f64::MIN, f64::max);
    let constant: f64 = rates
        .iter()
        .filter(|&&p| p < best)
        .map(|&p| (best - p) / kl(p, best))
        .sum();
    constant * (horizon as f64).ln()
}

fn main() {
    let started = Instant::now();
    let ten_arms = || Instance {
        name: "10 arms: 0.5 vs 9 x 0.4",
        rates: [vec![0.5], vec![0.4; 9]].concat(),
        horizon: 100_000,
        seeds: 20,
        recompute_every: 1_000,
    };
    let five_arms = || Instance {
        name: "5 arms: 4 x 0.1, 0.9",
        rates: vec![0.1, 0.1, 0.1, 0.1, 0.9],
        horizon: 250,
        seeds: 2_000,
        recompute_every: 1,
    };
    let default_floor = WeightsConfig::default().exploration_floor;
    let rows = [
        Row {
            instance: ten_arms(),
            policy: Policy::Weights {
                floor: default_floor,
            },
            goal: Some(1.0),
        },
        Row {
            instance: five_arms(),
            policy: Policy::Weights {
                floor: default_floor,
            },
            goal: Some(1.2),
        },
        Row {
            instance: ten_arms(),
            policy: Policy::Uniform,
            goal: None,
        },
        // Extra row: instance 1 without the exploration floor, to show what
        // the floor costs where it costs most (0.001 x 9 arms x 0.1 x T).
        Row {
            instance: ten_arms(),
            policy: Policy::Weights { floor: 0.0 },
            goal: None,
        },
    ];

    println!(
        "{:<24} {:<20} {:>8} {:>6} {:>6} {:>10} {:>6} {:>9} {:>6} {:>7} {:>8} {:>6}",
        "instance",
        "policy",
        "horizon",
        "every",
        "seeds",
        "mean reg.",
        "s.e.",
        "LR bound",
        "ratio",
        "goal",
        "met",
        "time"
    );
    for row in &rows {
        let instance = &row.instance;
        let row_started = Instant::now();
        let runs = regrets(instance, row.policy);
        let seconds = row_started.elapsed().as_secs_f64();
        let n = runs.len() as f64;
        let mean = runs.iter().sum::<f64>() / n;
        let variance = runs.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let se = (variance / n).sqrt();
        let bound = lai_robbins(&instance.rates, instance.horizon);
        let ratio = mean / bound;
        let (goal, met) = match row.goal {
            Some(g) => (
                format!("<= {g:.1}"),
                if ratio <= g { "met" } else { "NOT met" },
            ),
            None => ("-".to_string(), "-"),
        };
        let every = match row.policy {
            Policy::Weights { .. } => instance.recompute_every.to_string(),
            Policy::Uniform => "-".to_string(),
        };
        println!(
            "{:<24} {:<20} {:>8} {:>6} {:>6} {:>10.1} {:>6.1} {:>9.1} {:>6.3} {:>7} {:>8} {:>5.1}s",
            instance.name,
            row.policy.label(),
            instance.horizon,
            every,
            instance.seeds,
            mean,
            se,
            bound,
            ratio,
            goal,
            met,
            seconds
        );
    }
    println!(
        "total run time: {:.1} s on {} threads",
        started.elapsed().as_secs_f64(),
        threads()
    );
}
