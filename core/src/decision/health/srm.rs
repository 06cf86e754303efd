//! Sample ratio mismatch for a bandit: are the views per variant what the
//! weights the server served predict?
//!
//! A fixed-split test alarms on every bandit, since its split moves. Here
//! each hour's views are compared with the weights served around that hour.
//! Views in hour `h` come from clients that loaded weights this hour or up to
//! an hour earlier, and from sticky visitors who return to the variant drawn
//! on an earlier visit. So the expected share of hour `h` is a mixture of
//! four known splits: the weights served in hour `h`, in hour `h - 1`, on
//! average over the day before that, and on average (views-weighted) over
//! all earlier hours. The mixture's proportions, one set for the whole
//! experiment, are fitted by maximum likelihood (EM).
//!
//! The test: each variant's views minus its expected views, summed over the
//! hours, against the multinomial covariance of those sums: a chi-square
//! with `K - 1` degrees of freedom. A variant losing a share of its views
//! shifts every hour the same way, so this is far more powerful than a sum
//! of hourly tests. Sticky visitors make views clustered (one visitor, many
//! views of one variant), so the statistic is divided by the overdispersion
//! seen hour to hour (the hourly Pearson chi-square over its degrees of
//! freedom, at least 1).

use crate::stats::gamma_cdf;

/// One hour of an experiment as the SRM check sees it, variants in the
/// experiment's order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct HourSplit {
    /// The weights the server answered with during the hour (their
    /// average); empty when it answered none.
    pub served: Vec<f64>,
    /// Views recorded per variant during the hour.
    pub views: Vec<u64>,
}

/// The result of the SRM test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleRatio {
    /// The p-value: how likely a mismatch at least this large is on healthy
    /// traffic. 1 with too little data to test.
    pub p: f64,
    /// The chi-square statistic, after the overdispersion.
    pub statistic: f64,
    /// Its degrees of freedom.
    pub degrees: usize,
    /// The overdispersion factor it was divided by (at least 1).
    pub dispersion: f64,
}

/// Hours of the day before `h - 1` whose weights form one split.
const DAY: usize = 24;

/// EM iterations for the mixture proportions (each is one pass over the
/// cells; the fit converges well before).
const ITERATIONS: usize = 60;

/// Least expected share of a cell, so that a variant served with weight 0
/// yet viewed makes a huge statistic rather than a division by zero.
const LEAST_SHARE: f64 = 1e-9;

/// The SRM test over `hours` (oldest first, one entry per clock hour; hours
/// without views may be left out only if the server served nothing either).
pub fn sample_ratio(hours: &[HourSplit]) -> SampleRatio {
    let k = hours
        .iter()
        .map(|h| h.views.len().max(h.served.len()))
        .max()
        .unwrap_or(0);
    let none = SampleRatio {
        p: 1.0,
        statistic: 0.0,
        degrees: 0,
        dispersion: 1.0,
    };
    if k < 2 {
        return none;
    }
    let cells = components(hours, k);
    if cells.is_empty() {
        return none;
    }
    let mix = fit(&cells, k);
    let expected = |cell: &Cell, i: usize| -> f64 {
        (0..COMPONENTS)
            .map(|c| mix[c] * cell.splits[c][i])
            .sum::<f64>()
            .max(LEAST_SHARE)
    };

    // Hourly Pearson chi-square (for the overdispersion) and the summed
    // differences with their covariance.
    let (mut pearson, mut hourly_degrees) = (0.0, 0usize);
    let mut difference = vec![0.0; k];
    let mut covariance = vec![vec![0.0; k]; k];
    for cell in &cells {
        let n = cell.total;
        let shares: Vec<f64> = (0..k).map(|i| expected(cell, i)).collect();
        for i in 0..k {
            let e = n * shares[i];
            let o = cell.views[i];
            pearson += (o - e) * (o - e) / e;
            difference[i] += o - e;
            for j in 0..k {
                let identity = if i == j { shares[i] } else { 0.0 };
                covariance[i][j] += n * (identity - shares[i] * shares[j]);
            }
        }
        hourly_degrees += k - 1;
    }
    let fitted = COMPONENTS - 1;
    let dispersion = if hourly_degrees > fitted + k {
        (pearson / (hourly_degrees - fitted) as f64).max(1.0)
    } else {
        1.0
    };
    // The sums add to 0, so the covariance is singular: drop the last
    // variant and solve for the rest.
    let raw = quadratic_form(&covariance, &difference, k - 1);
    let statistic = raw / dispersion;
    let degrees = k - 1;
    SampleRatio {
        p: chi_square_survival(statistic, degrees),
        statistic,
        degrees,
        dispersion,
    }
}

/// Splits in the mixture: this hour, the hour before, the day before, all
/// earlier hours.
const COMPONENTS: usize = 4;

/// One hour with views, its four candidate splits.
struct Cell {
    total: f64,
    views: Vec<f64>,
    splits: [Vec<f64>; COMPONENTS],
}

/// The cells of the hours with views, each with its candidate splits (a
/// missing split falls back to the nearest later one: an hour with no
/// answers served nothing new).
fn components(hours: &[HourSplit], k: usize) -> Vec<Cell> {
    let normalized = |w: &[f64]| -> Option<Vec<f64>> {
        let mut v: Vec<f64> = (0..k)
            .map(|i| {
                w.get(i)
                    .copied()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .unwrap_or(0.0)
            })
            .collect();
        let sum: f64 = v.iter().sum();
        (sum > 0.0).then(|| {
            v.iter_mut().for_each(|x| *x /= sum);
            v
        })
    };
    let mut cells = Vec::new();
    let mut last_served: Option<Vec<f64>> = None;
    let mut served_by_hour: Vec<Vec<f64>> = Vec::with_capacity(hours.len());
    let mut history = vec![0.0; k];
    let mut history_views = 0.0;
    for hour in hours {
        let previous = last_served.clone();
        if let Some(w) = normalized(&hour.served) {
            last_served = Some(w);
        }
        let Some(now) = last_served.clone() else {
            served_by_hour.push(Vec::new());
            continue;
        };
        served_by_hour.push(now.clone());
        let before = previous.unwrap_or_else(|| now.clone());
        let h = served_by_hour.len() - 1;
        let day_hours: Vec<&Vec<f64>> = served_by_hour
            [h.saturating_sub(DAY + 1)..h.saturating_sub(1)]
            .iter()
            .filter(|w| !w.is_empty())
            .collect();
        let day = if day_hours.is_empty() {
            before.clone()
        } else {
            (0..k)
                .map(|i| day_hours.iter().map(|w| w[i]).sum::<f64>() / day_hours.len() as f64)
                .collect()
        };
        let all = if history_views > 0.0 {
            history.iter().map(|x| x / history_views).collect()
        } else {
            before.clone()
        };
        let views: Vec<f64> = (0..k)
            .map(|i| hour.views.get(i).copied().unwrap_or(0) as f64)
            .collect();
        let total: f64 = views.iter().sum();
        if total > 0.0 {
            for i in 0..k {
                history[i] += total * now[i];
            }
            history_views += total;
            cells.push(Cell {
                total,
                views,
                splits: [now, before, day, all],
            });
        }
    }
    cells
}

/// Mixture proportions maximizing the multinomial likelihood (EM from equal
/// proportions).
fn fit(cells: &[Cell], k: usize) -> [f64; COMPONENTS] {
    let mut mix = [1.0 / COMPONENTS as f64; COMPONENTS];
    for _ in 0..ITERATIONS {
        let mut next = [0.0; COMPONENTS];
        for cell in cells {
            for i in 0..k {
                let o = cell.views[i];
                if o == 0.0 {
                    continue;
                }
                let parts: [f64; COMPONENTS] = core::array::from_fn(|c| mix[c] * cell.splits[c][i]);
                let sum: f64 = parts.iter().sum();
                if sum > 0.0 {
                    for c in 0..COMPONENTS {
                        next[c] += o * parts[c] / sum;
                    }
                }
            }
        }
        let sum: f64 = next.iter().sum();
        if sum.is_nan() || sum <= 0.0 {
            break;
        }
        mix = next.map(|x| x / sum);
    }
    mix
}

/// `d' S^-1 d` over the first `m` coordinates of a covariance `S`, by
/// Gaussian elimination (no pivoting: `S` is symmetric positive
/// semi-definite); directions without variance are skipped.
fn quadratic_form(covariance: &[Vec<f64>], difference: &[f64], m: usize) -> f64 {
    let mut a: Vec<Vec<f64>> = (0..m)
        .map(|i| {
            let mut row = covariance[i][..m].to_vec();
            row.push(difference[i]);
            row
        })
        .collect();
    let scale = (0..m).map(|i| a[i][i].abs()).fold(0.0, f64::max);
    let mut statistic = 0.0;
    for col in 0..m {
        if a[col][col].abs() <= scale * 1e-12 {
            continue;
        }
        let (done, rest) = a.split_at_mut(col + 1);
        let pivot = &done[col];
        for row in rest.iter_mut() {
            let factor = row[col] / pivot[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot[col..]) {
                *x -= factor * p;
            }
        }
    }
    // S = L D L' and elimination leaves U = D L' and y = L^-1 d, so
    // d' S^-1 d = y' D^-1 y = sum y_i^2 / U_ii.
    for (i, row) in a.iter().enumerate() {
        if row[i].abs() > scale * 1e-12 {
            statistic += row[m] * row[m] / row[i];
        }
    }
    statistic.max(0.0)
}

/// `P(X > x)` for `X` chi-square with `degrees` degrees of freedom.
pub fn chi_square_survival(x: f64, degrees: usize) -> f64 {
    if degrees == 0 || x.is_nan() || x <= 0.0 {
        return 1.0;
    }
    if !x.is_finite() {
        return 0.0;
    }
    (1.0 - gamma_cdf(degrees as f64 / 2.0, x / 2.0)).clamp(0.0, 1.0)
}
