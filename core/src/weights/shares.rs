//! From probabilities of being best to the weights clients use: each
//! variant's share by the experiment's mode, mixed with the exploration
//! floor (`std` only).

use super::mode::{WeightsMode, top_two};
use super::quadrature::{Arm, probability_best, sanitize_non_negative};

/// Tuning of the weights computation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightsConfig {
    /// Least weight of every variant, so that none is ever starved of traffic
    /// (default 0.001). Non-finite or negative values count as 0; with `K`
    /// variants and `K * floor >= 1` every variant gets `1 / K`.
    pub exploration_floor: f64,
    /// How probabilities of being best become traffic shares (default
    /// [`WeightsMode::Conversions`]); per experiment, see
    /// [`WeightsConfig::for_settings`].
    pub mode: WeightsMode,
}

impl Default for WeightsConfig {
    fn default() -> Self {
        WeightsConfig {
            exploration_floor: DEFAULT_EXPLORATION_FLOOR,
            mode: WeightsMode::default(),
        }
    }
}

const DEFAULT_EXPLORATION_FLOOR: f64 = 0.001;

/// The weights clients use: each variant's traffic share by the mode,
/// mixed with the exploration floor.
///
/// The share is the probability of being best ([`WeightsMode::Conversions`])
/// or top-two sampling's share ([`WeightsMode::Decide`]); then
/// `weight_i = floor + (1 - K * floor) * share_i`, or `1 / K` each when
/// `K * floor >= 1`. Every weight is in `[0, 1]`, none is NaN, they sum to 1
/// within 1e-9, and they are exactly equal when there is no data or when
/// every posterior is the same. Deterministic: no seed is involved.
pub fn weights(arms: &[Arm], config: &WeightsConfig) -> Vec<f64> {
    let k = arms.len();
    if sanitize_non_negative(config.exploration_floor) * k as f64 >= 1.0 {
        // 1 / K each whatever the counts: no quadrature needed.
        return vec![1.0 / k as f64; k];
    }
    weights_from_probabilities(arms, &probability_best(arms), config)
}

/// The weights [`weights`] gives for `arms` with these probabilities of
/// being best (as [`probability_best`] computes them), for a caller that has
/// them already (the decision computes them too): bit for bit the same.
pub fn weights_from_probabilities(
    arms: &[Arm],
    probability_best: &[f64],
    config: &WeightsConfig,
) -> Vec<f64> {
    let k = probability_best.len();
    if k == 0 {
        return Vec::new();
    }
    let floor = sanitize_non_negative(config.exploration_floor);
    let kf = k as f64;
    if floor * kf >= 1.0 {
        return vec![1.0 / kf; k];
    }
    let shares = match config.mode {
        WeightsMode::Conversions => probability_best.to_vec(),
        WeightsMode::Decide => top_two(probability_best, |certain| {
            let others: Vec<Arm> = (arms.iter().enumerate())
                .filter(|&(i, _)| i != certain)
                .map(|(_, arm)| *arm)
                .collect();
            self::probability_best(&others)
        }),
    };
    let scale = 1.0 - kf * floor;
    let mut out: Vec<f64> = shares
        .into_iter()
        .map(|p| (floor + scale * p).clamp(0.0, 1.0))
        .collect();
    let sum: f64 = out.iter().sum();
    if (sum - 1.0).abs() > 1e-12 {
        let mut largest = 0;
        for (i, &w) in out.iter().enumerate() {
            if w > out[largest] {
                largest = i;
            }
        }
        out[largest] = (out[largest] + (1.0 - sum)).clamp(0.0, 1.0);
    }
    out
}
