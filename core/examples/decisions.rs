//! The stopping rule and the SRM check on simulated bandit experiments,
//! played the way the server plays them.
//!
//! Each experiment: 1,000 visits an hour. The server's weights are
//! recomputed by `weights` from the counts every 200 visits (12 minutes; the
//! server does it at most every 250 ms, but clients cache weights for up to
//! an hour, which dwarfs that). A new visitor's client holds weights loaded
//! at a uniformly random moment of the last hour; 30 % of visits are
//! returning visitors, who see the variant of their first visit (half of
//! them first came within the last day, half at any earlier time). Every
//! visit is a view and converts with its variant's true rate. The server
//! keeps, per hour, the average of the weights it served; the verdict is
//! evaluated every 200 visits (an owner who stops at the first `decided`),
//! the SRM check every hour.
//!
//! Run with `cargo run --release -p myna-core --example decisions`;
//! thresholds may be overridden for tuning: `-- minViews=500
//! probabilityBest=0.99 expectedLoss=0.001 equivalence=0.02`, and the
//! simulation too: `runs=1000` (per row), `returning=0.3` (share of visits
//! by returning visitors), `srm=0` (skip the SRM rows).
//!
//! The PRNG is rand's `SmallRng` (xoshiro), seeded per run: fast, and the
//! same figures on every machine of one platform; rand is already a
//! dev-dependency (the weights' bench and tests).

use std::thread;
use std::time::Instant;

use myna_core::decision::health::{HourSplit, SRM_FAILING_BELOW, sample_ratio};
use myna_core::decision::rule::{Thresholds, Verdict, verdict};
use myna_core::weights::{Arm, WeightsConfig, choose, weights};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const VISITS_PER_HOUR: u64 = 1_000;
const SLICE: u64 = 200;
const SLICES_PER_HOUR: usize = (VISITS_PER_HOUR / SLICE) as usize;

/// What one simulated experiment is.
#[derive(Clone, Copy)]
struct Setup {
    rates: [f64; 2],
    /// Visits to play at most.
    horizon: u64,
    /// Stop at the first `decided`.
    stop_when_decided: bool,
    /// Share of variant 1's views lost before they are recorded.
    lost: f64,
    /// Stop at the first SRM failure.
    stop_when_srm: bool,
    /// Share of visits by returning (sticky) visitors.
    returning: f64,
    /// Whether to run the SRM check.
    check_srm: bool,
}

/// What happened in one experiment.
#[derive(Clone, Copy, Default)]
struct Run {
    /// Visits when the verdict first said `decided`, and its leader.
    decided: Option<(u64, usize)>,
    /// Whether `no-difference` was ever said.
    no_difference: bool,
    /// Recorded views when the SRM check first failed.
    srm_failed: Option<u64>,
    /// Whether the SRM check failed at the last hour.
    srm_failed_at_end: bool,
    /// Hourly SRM checks run, and how many failed.
    srm_checks: u64,
    srm_failures: u64,
}

fn play(setup: Setup, thresholds: &Thresholds, seed: u64) -> Run {
    let mut rng = SmallRng::seed_from_u64(seed);
    let config = WeightsConfig::default();
    let mut arms = [Arm::default(); 2];
    // Weights in force at each slice so far (the server's, every slice).
    let mut snapshots: Vec<Vec<f64>> = vec![weights(&arms, &config)];
    // Each new visitor's variant, by arrival.
    let mut visitors: Vec<u8> = Vec::new();
    // Index in `visitors` of each hour's first new visitor.
    let mut first_of_hour: Vec<usize> = Vec::new();
    let mut hours: Vec<HourSplit> = Vec::new();
    let mut hour_views = [0u64; 2];
    let mut run = Run::default();
    let mut srm_last = false;
    for visit in 0..setup.horizon {
        if visit % VISITS_PER_HOUR == 0 {
            first_of_hour.push(visitors.len());
        }
        let variant = if !visitors.is_empty() && rng.random::<f64>() < setup.returning {
            let n = visitors.len();
            // The first visitor of the hour a day ago (hours start at 0).
            let hour = (visit / VISITS_PER_HOUR) as usize;
            let day = first_of_hour[hour.saturating_sub(24)];
            let from = if rng.random::<bool>() {
                day.min(n - 1)
            } else {
                0
            };
            visitors[rng.random_range(from..n)] as usize
        } else {
            let age = rng.random_range(0..=SLICES_PER_HOUR);
            let held = &snapshots[snapshots.len().saturating_sub(1 + age)];
            let v = choose(held, rng.random::<f64>());
            visitors.push(v as u8);
            v
        };
        if !(variant == 1 && rng.random::<f64>() < setup.lost) {
            arms[variant].views += 1;
            hour_views[variant] += 1;
            if rng.random::<f64>() < setup.rates[variant] {
                arms[variant].total_reward += 1.0;
            }
        }
        let done = visit + 1;
        if done % SLICE != 0 {
            continue;
        }
        snapshots.push(weights(&arms, &config));
        let outcome = verdict(&arms, thresholds);
        match outcome.verdict {
            Verdict::Decided if run.decided.is_none() => {
                run.decided = Some((done, outcome.leader.unwrap_or(0)));
                if setup.stop_when_decided {
                    return run;
                }
            }
            Verdict::NoDifference => run.no_difference = true,
            _ => {}
        }
        if setup.check_srm && done % VISITS_PER_HOUR == 0 {
            // Served this hour: the average of its snapshots.
            let this_hour = &snapshots[snapshots.len() - 1 - SLICES_PER_HOUR..snapshots.len() - 1];
            let served = (0..2)
                .map(|i| this_hour.iter().map(|w| w[i]).sum::<f64>() / SLICES_PER_HOUR as f64)
                .collect();
            hours.push(HourSplit {
                served,
                views: hour_views.to_vec(),
            });
            hour_views = [0; 2];
            srm_last = sample_ratio(&hours).p < SRM_FAILING_BELOW;
            run.srm_checks += 1;
            run.srm_failures += u64::from(srm_last);
            if srm_last && run.srm_failed.is_none() {
                run.srm_failed = Some(arms[0].views + arms[1].views);
                if setup.stop_when_srm {
                    return run;
                }
            }
        }
    }
    run.srm_failed_at_end = srm_last;
    run
}

/// Every run of `setup`, seeds split across the machine's cores.
fn runs(setup: Setup, thresholds: &Thresholds, count: u64, salt: u64) -> Vec<Run> {
    let threads = thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (0..count)
                        .filter(|seed| seed % threads == t)
                        .map(|seed| play(setup, thresholds, salt * 1_000_003 + seed))
                        .collect::<Vec<Run>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("simulation thread panicked"))
            .collect()
    })
}

/// The median of `values` where `None` counts as larger than any value;
/// `None` when more than half are `None`.
fn median(mut values: Vec<Option<u64>>) -> Option<u64> {
    values.sort_by_key(|v| v.unwrap_or(u64::MAX));
    values[values.len() / 2]
}

/// Visitors a fixed-horizon two-sided test of two proportions needs (both
/// arms together) for `power` at `alpha`.
fn fixed_horizon(p1: f64, p2: f64) -> f64 {
    let (z_alpha, z_power) = (1.959_963_985, 0.841_621_234);
    let mean = (p1 + p2) / 2.0;
    let a = z_alpha * (2.0 * mean * (1.0 - mean)).sqrt();
    let b = z_power * (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt();
    2.0 * ((a + b) / (p2 - p1)).powi(2)
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole as f64
}

fn main() {
    let started = Instant::now();
    let mut thresholds = Thresholds::default();
    let mut count = 1_000u64;
    let mut returning = 0.3;
    let mut check_srm = true;
    for arg in std::env::args().skip(1) {
        let Some((key, value)) = arg.split_once('=') else {
            continue;
        };
        let x: f64 = value.parse().expect("a number");
        match key {
            "minViews" => thresholds.min_views = x as u64,
            "probabilityBest" => thresholds.probability_best = x,
            "expectedLoss" => thresholds.expected_loss = x,
            "equivalence" => thresholds.equivalence = x,
            "runs" => count = x as u64,
            "returning" => returning = x,
            "srm" => check_srm = x != 0.0,
            _ => panic!("unknown parameter {key}"),
        }
    }
    println!("thresholds: {thresholds:?}; {count} experiments per row");

    let base = Setup {
        rates: [0.05, 0.05],
        horizon: 100_000,
        stop_when_decided: false,
        lost: 0.0,
        stop_when_srm: false,
        returning,
        check_srm,
    };
    let aa = runs(base, &thresholds, count, 1);
    let false_decided = aa.iter().filter(|r| r.decided.is_some()).count();
    let no_difference = aa.iter().filter(|r| r.no_difference).count();
    println!(
        "A/A (5 % and 5 %), 100,000 visitors: `decided` at some point in {:.1} % (goal <= 5 %); `no-difference` in {:.1} %",
        percent(false_decided, aa.len()),
        percent(no_difference, aa.len()),
    );

    let ab_setup = Setup {
        rates: [0.05, 0.055],
        horizon: 200_000,
        stop_when_decided: true,
        ..base
    };
    let ab = runs(ab_setup, &thresholds, count, 2);
    let decided: Vec<(u64, usize)> = ab.iter().filter_map(|r| r.decided).collect();
    let right = decided.iter().filter(|(_, leader)| *leader == 1).count();
    let fixed = fixed_horizon(0.05, 0.055);
    let to_decision = median(ab.iter().map(|r| r.decided.map(|d| d.0)).collect());
    println!(
        "A/B (5 % vs 5.5 %): decided within 200,000 visitors in {:.1} %; of those, the true best in {:.1} % (goal >= 95 %); the true best in {:.1} % of all",
        percent(decided.len(), ab.len()),
        percent(right, decided.len().max(1)),
        percent(right, ab.len()),
    );
    println!(
        "  median visitors to `decided`: {} (fixed-horizon two-sided test, 80 % power at alpha 0.05: {:.0}; goal: fewer)",
        to_decision.map_or("over 200,000".to_owned(), |n| n.to_string()),
        fixed,
    );

    let healthy: Vec<&Run> = aa.iter().chain(ab.iter()).collect();
    let ever = healthy.iter().filter(|r| r.srm_failed.is_some()).count();
    let at_end = aa.iter().filter(|r| r.srm_failed_at_end).count();
    let checks: u64 = healthy.iter().map(|r| r.srm_checks).sum();
    let failures: u64 = healthy.iter().map(|r| r.srm_failures).sum();
    println!(
        "SRM on healthy traffic ({} experiments, {checks} hourly checks): {:.3} % of checks failed (goal <= 0.1 %); at the A/A runs' last hour {:.2} %; at some hour of an experiment {:.2} %",
        healthy.len(),
        100.0 * failures as f64 / checks.max(1) as f64,
        percent(at_end, aa.len()),
        percent(ever, healthy.len()),
    );

    if !check_srm {
        return;
    }
    let broken = Setup {
        rates: [0.05, 0.05],
        horizon: 1_000_000,
        lost: 0.1,
        stop_when_srm: true,
        ..base
    };
    let srm = runs(broken, &thresholds, count, 3);
    let detected = srm.iter().filter(|r| r.srm_failed.is_some()).count();
    let views = median(srm.iter().map(|r| r.srm_failed).collect());
    println!(
        "SRM with one variant losing 10 % of its views: detected within 1,000,000 visits in {:.1} %; median recorded views to detection {}",
        percent(detected, srm.len()),
        views.map_or("over 1,000,000".to_owned(), |n| n.to_string()),
    );
    println!(
        "total run time: {:.1} s on {} threads",
        started.elapsed().as_secs_f64(),
        thread::available_parallelism().map_or(2, |n| n.get())
    );
}
