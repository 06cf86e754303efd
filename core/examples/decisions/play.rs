//! One simulated experiment played visit by visit, and many of them spread
//! over the machine's cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use myna_core::decision::health::{HourSplit, Status, sample_ratio, sample_ratio_status};
use myna_core::decision::rule::{Thresholds, Verdict, verdict};
use myna_core::weights::{Arm, WeightsConfig, choose, weights, weights_from_probabilities};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Numbers, Run, SLICE, SLICES_PER_HOUR, Setup, VISITS_PER_HOUR};

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

pub fn play(setup: Setup, thresholds: &Thresholds, seed: u64) -> Run {
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
pub fn runs(setup: Setup, thresholds: &Thresholds, count: usize, salt: u64) -> Vec<Run> {
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
