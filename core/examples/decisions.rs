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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

use myna_core::decision::health::{HourSplit, Status, sample_ratio, sample_ratio_status};
use myna_core::decision::rule::{Thresholds, Verdict, verdict};
use myna_core::weights::{
    Arm, WeightsConfig, WeightsMode, choose, weights, weights_from_probabilities,
};
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

/// Each new visitor's variant (0 or 1), by arrival, one bit each: returning
/// visitors are drawn at random among them, and a bit set stays in the
/// cache where a byte each would not.
#[derive(Default)]
struct Visitors {
    bits: Vec<u64>,
    len: usize,
}

impl Visitors {
    fn push(&mut self, variant: usize) {
        if self.len.is_multiple_of(64) {
            self.bits.push(0);
        }
        self.bits[self.len / 64] |= (variant as u64 & 1) << (self.len % 64);
        self.len += 1;
    }

    fn variant(&self, i: usize) -> usize {
        ((self.bits[i / 64] >> (i % 64)) & 1) as usize
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn play(setup: Setup, thresholds: &Thresholds, seed: u64) -> Run {
    let mut rng = SmallRng::seed_from_u64(seed);
    let config = WeightsConfig {
        mode: setup.mode,
        ..WeightsConfig::default()
    };
    let best_rate = setup.rates[0].max(setup.rates[1]);
    let mut arms = [Arm::default(); 2];
    // Weights in force at each slice so far (the server's, every slice).
    let mut snapshots: Vec<Vec<f64>> = vec![weights(&arms, &config)];
    // Each new visitor's variant, by arrival.
    let mut visitors = Visitors::default();
    // Index in `visitors` of each hour's first new visitor.
    let mut first_of_hour: Vec<usize> = Vec::new();
    let mut hours: Vec<HourSplit> = Vec::new();
    let mut hour_views = [0u64; 2];
    let mut run = Run::default();
    let mut srm_before = 1.0;
    let mut srm_status = Status::Ok;
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
            visitors.variant(rng.random_range(from..n))
        } else {
            let age = rng.random_range(0..=SLICES_PER_HOUR);
            let held = &snapshots[snapshots.len().saturating_sub(1 + age)];
            let v = choose(held, rng.random::<f64>());
            visitors.push(v);
            v
        };
        run.regret += best_rate - setup.rates[variant];
        run.visits = visit + 1;
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
        // Below `min_views` the verdict is `collecting` whatever the
        // numbers: they are computed only when recorded.
        let fewest = arms[0].views.min(arms[1].views);
        if !(setup.read_verdict && (setup.record || fewest >= thresholds.min_views)) {
            snapshots.push(weights(&arms, &config));
        } else {
            let outcome = verdict(&arms, thresholds);
            // The weights from the probabilities of being best the verdict
            // just computed (same quadrature); checked against `weights`
            // now and then.
            let served = weights_from_probabilities(&arms, &outcome.probability_best, &config);
            if snapshots.len().is_multiple_of(64) {
                assert_eq!(served, weights(&arms, &config), "{arms:?}");
            }
            snapshots.push(served);
            if setup.record {
                let leader = outcome.leader.unwrap_or_else(|| {
                    usize::from(outcome.probability_best[1] > outcome.probability_best[0])
                });
                let moments = |a: &Arm| {
                    let (al, be) = (1.0 + a.total_reward, 1.0 + a.views as f64 - a.total_reward);
                    let n = al + be;
                    (al / n, al * be / (n * n * (n + 1.0)))
                };
                let (m0, v0) = moments(&arms[leader]);
                let (m1, v1) = moments(&arms[1 - leader]);
                let rate = m0;
                run.numbers.push(Numbers {
                    fewest,
                    leader: leader as u8,
                    best: outcome.probability_best[leader] as f32,
                    loss: (outcome.expected_loss[leader] / rate) as f32,
                    other_loss: (outcome.expected_loss[1 - leader] / rate) as f32,
                    diff: ((m0 - m1) / rate) as f32,
                    sd: ((v0 + v1).sqrt() / rate) as f32,
                });
            }
            if outcome.verdict == Verdict::Decided && run.decided.is_none() {
                run.decided = Some((done, outcome.leader.unwrap_or(0)));
            }
            if matches!(outcome.verdict, Verdict::Decided | Verdict::NoDifference)
                && run.conclusive.is_none()
            {
                run.conclusive = Some((done, outcome.verdict, outcome.leader));
                if setup.stop_when_conclusive {
                    return run;
                }
            }
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
            let p = sample_ratio(&hours).p;
            srm_status = sample_ratio_status(p, srm_before);

            srm_before = p;
            run.srm_checks += 1;
            run.srm_failures += u64::from(srm_status == Status::Failing);
            run.srm_warnings += u64::from(srm_status == Status::Warning);
            if srm_status == Status::Failing && run.srm_failed.is_none() {
                run.srm_failed = Some(arms[0].views + arms[1].views);
                if setup.stop_when_srm {
                    return run;
                }
            }
        }
    }
    run.srm_failed_at_end = srm_status == Status::Failing;
    run
}

/// Every run of `setup`, experiment `i` with seed `salt * 1_000_003 + i`,
/// shared among the machine's cores; in experiment order.
fn runs(setup: Setup, thresholds: &Thresholds, count: usize, salt: u64) -> Vec<Run> {
    let threads = thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    let mut all: Vec<(usize, Run)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return mine;
                        }
                        let seed = salt * 1_000_003 + i as u64;
                        mine.push((i, play(setup, thresholds, seed)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("simulation thread panicked"))
            .collect()
    });
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, run)| run).collect()
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
fn tune(count: usize, returning: f64, mode: WeightsMode) {
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
