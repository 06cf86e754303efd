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
//! read every 200 visits by an owner who stops at the first conclusive one
//! (`decided`, or `no-difference`: "keep any, you can stop"), the SRM check
//! every hour.
//!
//! Both weights modes are played, each with its own default thresholds:
//! `conversions` (Thompson sampling, the default) and `decide` (top-two
//! sampling, `myna.weights.mode`), so owners see the trade: how soon a test
//! is decided against the conversions lost to the worse variant meanwhile.
//!
//! Run with `cargo run --release -p myna-core --example decisions`. The
//! number of experiments per row is `MYNA_SIM_EXPERIMENTS` (default 1,000)
//! or `runs=…`; thresholds may be overridden for tuning: `-- minViews=500
//! probabilityBest=0.99 expectedLoss=0.001 equivalence=0.02`, and the
//! simulation too: `returning=0.3` (share of visits by returning visitors),
//! `srm=0` (skip the SRM check and its rows), `mode=conversions` or
//! `mode=decide` (play only that mode; the SRM rows of a lost share play
//! the first mode), `salt=1` (other seeds, to check tuned figures on runs
//! they were not tuned on), `tune=1` (instead of the figures, search
//! thresholds on recorded verdict numbers, for `mode`'s weights).
//!
//! Experiments are spread over the machine's cores (`std::thread::scope`,
//! each thread taking the next experiment); each experiment has its own
//! seed, so the figures do not depend on the number of threads. The PRNG is
//! rand's `SmallRng` (xoshiro): fast, and the same figures on every machine
//! of one platform; rand is already a dev-dependency (the weights' bench and
//! tests).

use std::thread;
use std::time::Instant;

use myna_core::decision::rule::{Thresholds, Verdict};
use myna_core::weights::WeightsMode;

mod play;
mod tune;

use play::runs;
use tune::tune;

const VISITS_PER_HOUR: u64 = 1_000;
const SLICE: u64 = 200;
const SLICES_PER_HOUR: usize = (VISITS_PER_HOUR / SLICE) as usize;

/// What one simulated experiment is.
#[derive(Clone, Copy)]
struct Setup {
    rates: [f64; 2],
    /// Visits to play at most.
    horizon: u64,
    /// Read the verdict every slice (else only the weights are computed).
    read_verdict: bool,
    /// Stop at the first conclusive verdict (`decided` or `no-difference`).
    stop_when_conclusive: bool,
    /// Share of variant 1's views lost before they are recorded.
    lost: f64,
    /// Stop at the first SRM failure.
    stop_when_srm: bool,
    /// Share of visits by returning (sticky) visitors.
    returning: f64,
    /// Whether to run the SRM check.
    check_srm: bool,
    /// Record the verdict's numbers at every slice (for `tune=1`).
    record: bool,
    /// How the weights share traffic.
    mode: WeightsMode,
}

impl Setup {
    /// An A/A experiment (5 % and 5 %) played to 100,000 visitors whatever
    /// the verdict, which is read every slice; the other rows start from it.
    fn aa(mode: WeightsMode, returning: f64, check_srm: bool) -> Setup {
        Setup {
            rates: [0.05, 0.05],
            horizon: 100_000,
            read_verdict: true,
            stop_when_conclusive: false,
            lost: 0.0,
            stop_when_srm: false,
            returning,
            check_srm,
            record: false,
            mode,
        }
    }
}

/// The verdict's numbers at one slice, for tuning: fewest views, leader
/// (highest probability of being best), its probability of being best, its
/// expected loss and the other's, both relative to the leader's rate.
#[derive(Clone, Copy)]
struct Numbers {
    fewest: u64,
    leader: u8,
    best: f32,
    loss: f32,
    other_loss: f32,
    /// The leader's posterior mean minus the other's, and the difference's
    /// posterior standard deviation, relative to the leader's rate.
    diff: f32,
    sd: f32,
}

/// What happened in one experiment.
#[derive(Clone, Default)]
struct Run {
    /// The first conclusive verdict: visits, verdict, leader.
    conclusive: Option<(u64, Verdict, Option<usize>)>,
    /// Visits when the verdict first said `decided` (ignoring any earlier
    /// `no-difference`), and its leader.
    decided: Option<(u64, usize)>,
    /// Recorded views when the SRM check first failed.
    srm_failed: Option<u64>,
    /// Whether the SRM check failed at the last hour.
    srm_failed_at_end: bool,
    /// Hourly SRM checks run, how many failed, how many warned.
    srm_checks: u64,
    srm_failures: u64,
    srm_warnings: u64,
    /// The verdict's numbers at every slice, for `tune=1`.
    numbers: Vec<Numbers>,
    /// Conversions lost in expectation to the worse variants until the
    /// run ended: the sum over visits of the best true rate less the shown
    /// variant's.
    regret: f64,
    /// Visits played.
    visits: u64,
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
    100.0 * part as f64 / whole.max(1) as f64
}

/// The A/A and A/B rows of one weights mode; the runs, for the SRM rows.
fn verdict_rows(
    mode: WeightsMode,
    thresholds: &Thresholds,
    count: usize,
    returning: f64,
    check_srm: bool,
    salt: u64,
) -> (Vec<Run>, Vec<Run>) {
    let label = mode.as_str();
    println!("mode {label}: {thresholds:?}");
    // A/A: played to 100,000 visitors whatever the verdict, so that both the
    // owner who stops at the first conclusive verdict and one who ignores
    // `no-difference` can be counted, and the SRM check sees whole runs.
    let base = Setup::aa(mode, returning, check_srm);
    let row = Instant::now();
    let aa = runs(base, thresholds, count, 1 + 10 * salt);
    let aa_time = row.elapsed().as_secs_f64();
    let wrong = aa
        .iter()
        .filter(|r| matches!(r.conclusive, Some((_, Verdict::Decided, _))))
        .count();
    let no_difference = aa
        .iter()
        .filter(|r| matches!(r.conclusive, Some((_, Verdict::NoDifference, _))))
        .count();
    let strict = aa.iter().filter(|r| r.decided.is_some()).count();
    let to_no_difference = median(
        aa.iter()
            .map(|r| match r.conclusive {
                Some((v, Verdict::NoDifference, _)) => Some(v),
                _ => None,
            })
            .collect(),
    );
    println!(
        "mode {label}: A/A (5 % and 5 %), 100,000 visitors, owner stopping at the first conclusive verdict: `decided` (wrongly) in {:.1} % (goal <= 5 %); `no-difference` in {:.1} % (median visitors {}); neither in {:.1} % ({aa_time:.1} s)",
        percent(wrong, aa.len()),
        percent(no_difference, aa.len()),
        to_no_difference.map_or("over 100,000".to_owned(), |n| n.to_string()),
        percent(aa.len() - wrong - no_difference, aa.len()),
    );
    println!(
        "  ignoring `no-difference`: `decided` at some point within 100,000 visitors in {:.1} %",
        percent(strict, aa.len()),
    );

    let ab_setup = Setup {
        rates: [0.05, 0.055],
        horizon: 200_000,
        stop_when_conclusive: true,
        ..base
    };
    let row = Instant::now();
    let ab = runs(ab_setup, thresholds, count, 2 + 10 * salt);
    let ab_time = row.elapsed().as_secs_f64();
    let decided: Vec<(u64, usize)> = ab.iter().filter_map(|r| r.decided).collect();
    let right = decided.iter().filter(|(_, leader)| *leader == 1).count();
    let ab_no_difference = ab
        .iter()
        .filter(|r| matches!(r.conclusive, Some((_, Verdict::NoDifference, _))))
        .count();
    let fixed = fixed_horizon(0.05, 0.055);
    let to_decision = median(ab.iter().map(|r| r.decided.map(|d| d.0)).collect());
    println!(
        "mode {label}: A/B (5 % vs 5.5 %), 200,000 visitors, owner stopping at the first conclusive verdict: `decided` in {:.1} %, of those the true best in {:.1} % (goal >= 95 %); `decided` for the worse variant in {:.1} % of all; `no-difference` (wrongly) in {:.1} %; neither in {:.1} % ({ab_time:.1} s)",
        percent(decided.len(), ab.len()),
        percent(right, decided.len()),
        percent(decided.len() - right, ab.len()),
        percent(ab_no_difference, ab.len()),
        percent(ab.len() - decided.len() - ab_no_difference, ab.len()),
    );
    println!(
        "  median visitors to `decided` (runs without one count as more): {} (fixed-horizon two-sided test, 80 % power at alpha 0.05: {:.0}; goal: fewer)",
        to_decision.map_or("over 200,000".to_owned(), |n| n.to_string()),
        fixed,
    );

    // Conversions lost to the worse variant until the owner stopped (or
    // 200,000 visits): the price of the test, against its length.
    let regret: f64 = ab.iter().map(|r| r.regret).sum::<f64>() / ab.len().max(1) as f64;
    let played: f64 = ab.iter().map(|r| r.visits as f64).sum::<f64>() / ab.len().max(1) as f64;
    println!(
        "  conversions lost to the worse variant during the test (until the owner stops, or 200,000 visitors), mean per experiment: {regret:.1} over {played:.0} visitors ({:.2} per 1,000 visitors; an even split loses 2.50)",
        1_000.0 * regret / played.max(1.0),
    );
    (aa, ab)
}

fn main() {
    let started = Instant::now();
    // Threshold overrides, applied to each mode's defaults.
    let mut overrides: Vec<(String, f64)> = Vec::new();
    let mut count: usize = std::env::var("MYNA_SIM_EXPERIMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let mut returning = 0.3;
    let mut check_srm = true;
    let mut tuning = false;
    let mut mode = None;
    let mut salt = 0;
    for arg in std::env::args().skip(1) {
        let Some((key, value)) = arg.split_once('=') else {
            continue;
        };
        if key == "mode" {
            mode = Some(match value {
                "conversions" => WeightsMode::Conversions,
                "decide" => WeightsMode::Decide,
                _ => panic!("mode is conversions or decide, not {value}"),
            });
            continue;
        }
        let x: f64 = value.parse().expect("a number");
        match key {
            "minViews" | "probabilityBest" | "expectedLoss" | "equivalence" => {
                overrides.push((key.to_owned(), x));
            }
            "salt" => salt = x as u64,
            "runs" => count = x as usize,
            "returning" => returning = x,
            "srm" => check_srm = x != 0.0,
            "tune" => tuning = x != 0.0,
            _ => panic!("unknown parameter {key}"),
        }
    }
    let threads = thread::available_parallelism().map_or(2, |n| n.get());
    if tuning {
        tune(count, returning, mode.unwrap_or_default());
        println!(
            "tuning time: {:.1} s on {threads} threads",
            started.elapsed().as_secs_f64()
        );
        return;
    }
    let thresholds_of = |mode: WeightsMode| {
        let mut t = Thresholds::for_mode(mode);
        for (key, x) in &overrides {
            match key.as_str() {
                "minViews" => t.min_views = *x as u64,
                "probabilityBest" => t.probability_best = *x,
                "expectedLoss" => t.expected_loss = *x,
                _ => t.equivalence = *x,
            }
        }
        t
    };
    println!("{count} experiments per row");

    let modes: Vec<WeightsMode> = match mode {
        Some(m) => vec![m],
        None => vec![WeightsMode::Conversions, WeightsMode::Decide],
    };
    let mut healthy_runs = Vec::new();
    for &mode in &modes {
        let (aa, ab) = verdict_rows(
            mode,
            &thresholds_of(mode),
            count,
            returning,
            check_srm,
            salt,
        );
        healthy_runs.push((mode, aa, ab));
    }
    let base = Setup::aa(modes[0], returning, check_srm);

    if check_srm {
        for (mode, aa, ab) in &healthy_runs {
            // Healthy traffic: the A/A runs (100,000 visitors each) and the
            // A/B runs up to the owner's stop.
            let healthy: Vec<&Run> = aa.iter().chain(ab.iter()).collect();
            let ever = healthy.iter().filter(|r| r.srm_failed.is_some()).count();
            let at_end = aa.iter().filter(|r| r.srm_failed_at_end).count();
            let checks: u64 = healthy.iter().map(|r| r.srm_checks).sum();
            let failures: u64 = healthy.iter().map(|r| r.srm_failures).sum();
            let warnings: u64 = healthy.iter().map(|r| r.srm_warnings).sum();
            println!(
                "mode {}: SRM on healthy traffic ({} experiments, {checks} hourly checks): `failing` in {:.3} % of hourly checks (goal <= 0.1 %), `warning` in {:.3} %; failing at some hour of an experiment in {:.2} %; at the A/A runs' last hour in {:.2} %",
                mode.as_str(),
                healthy.len(),
                100.0 * failures as f64 / checks.max(1) as f64,
                100.0 * warnings as f64 / checks.max(1) as f64,
                percent(ever, healthy.len()),
                percent(at_end, aa.len()),
            );
        }

        let broken = Setup {
            rates: [0.05, 0.05],
            horizon: 1_000_000,
            read_verdict: false,
            lost: 0.1,
            stop_when_srm: true,
            ..base
        };
        let row = Instant::now();
        let srm = runs(broken, &thresholds_of(base.mode), count, 3 + 10 * salt);
        let srm_time = row.elapsed().as_secs_f64();
        let detected = srm.iter().filter(|r| r.srm_failed.is_some()).count();
        let views = median(srm.iter().map(|r| r.srm_failed).collect());
        println!(
            "mode {}: SRM with one variant losing 10 % of its views: `failing` within 1,000,000 visits in {:.1} %; median recorded views to `failing` {} ({srm_time:.1} s)",
            base.mode.as_str(),
            percent(detected, srm.len()),
            views.map_or("over 1,000,000".to_owned(), |n| n.to_string()),
        );
    }
    println!(
        "total run time: {:.1} s on {threads} threads",
        started.elapsed().as_secs_f64(),
    );
}
