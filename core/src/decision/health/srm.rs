//! Sample ratio mismatch for a bandit: are the views per variant what the
//! weights the server served predict?
//!
//! A fixed-split test alarms on every bandit, since its split moves. Here
//! each hour's views are compared with the weights served around that hour.
//! Views in hour `h` come from clients that loaded weights this hour or up to
//! an hour earlier, and from sticky visitors who return to the variant drawn
//! on an earlier visit. So the expected share of hour `h` mixes new visitors
//! (half on the weights served in hour `h`, half on those of hour `h - 1`)
//! with returning ones (half on the weights served on average over the last
//! day, half over all hours so far, views-weighted; both up to this hour,
//! since a visitor may return within it). The share of
//! returning visitors, one for the whole experiment, is fitted by maximum
//! likelihood (at most 80 %). It is the served weights, not the views seen
//! before, that returning visitors follow, so a loss of views does not hide
//! in that share (partly it can when many visitors return and the weights
//! move one way all along: one share then explains a steady drift).
//!
//! The test: each hour's views minus its expected views, per variant,
//! averaged over the hours and set against the spread of those hourly
//! differences themselves, neighbouring hours' correlation included
//! (Newey–West), as Hotelling's T², referred to the F distribution with
//! the spread's equivalent degrees of freedom (3H / (2 (lags + 1)), not
//! H - 1: an estimated long-run spread is far less certain than a plain
//! variance, and H - 1 alarmed on healthy bandits 30 times more often than
//! its p-value said). A variant losing a
//! share of its views shifts every hour the same way, so the sum grows
//! faster than its spread; the spread itself absorbs whatever makes hours
//! noisier than a multinomial: sticky visitors (one visitor, many views of
//! one variant), weights moving within an hour, a mixture that fits only
//! roughly. Before 24 hours with views it does not test (p = 1). It tests
//! the last [`WINDOW_HOURS`] hours with views (the shares still use every
//! hour before them): the spread's cost grows with the hours, the lags and
//! the variants squared (a year of 100 variants took 28 s of CPU), so a
//! long-lived experiment costs what four weeks of it do, and the check says
//! whether its traffic is healthy now.

use crate::stats::beta_cdf;

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
    /// The T² statistic of the hourly differences.
    pub statistic: f64,
    /// The hours with views it tested (at most [`WINDOW_HOURS`]).
    pub hours: usize,
}

/// Hours before `h` whose weights, with `h`'s, form the last day's split.
const DAY: usize = 24;

/// The hours with views the test looks at, the latest: four weeks.
pub const WINDOW_HOURS: usize = 28 * 24;

/// Hours with views the test needs: with fewer, the spread of the hourly
/// differences (and their correlation) is too poorly known to alarm on.
const LEAST_HOURS: usize = 24;

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
        hours: 0,
    };
    if k < 2 {
        return none;
    }
    let cells = Cells::of(hours, k);
    let m = k - 1;
    // The latest hours with views, at most WINDOW_HOURS of them.
    let first = cells.total.len().saturating_sub(WINDOW_HOURS);
    let hours = cells.total.len() - first;
    if hours < LEAST_HOURS.max(m + 2) {
        return none;
    }
    let returning = fit(&cells);

    // Each hour's views minus its expected views (the first K - 1
    // variants: the last is determined by them), averaged, against the
    // spread of those hourly differences themselves.
    let h = hours as f64;
    let mut residuals = vec![0.0; hours * m];
    let mut mean = vec![0.0; m];
    for t in 0..hours {
        let c = (first + t) * k;
        for i in 0..m {
            let r = cells.views[c + i] - cells.total[first + t] * cells.share(c + i, returning);
            residuals[t * m + i] = r;
            mean[i] += r / h;
        }
    }
    for t in 0..hours {
        for i in 0..m {
            residuals[t * m + i] -= mean[i];
        }
    }
    // The long-run covariance of the hourly differences (Newey–West,
    // Bartlett weights over sqrt(H) lags): a returning visitor carries one
    // hour's luck into later hours, so neighbouring hours are correlated.
    let lags = (h.sqrt().ceil() as usize).min(hours - 1);
    let mut spread = vec![vec![0.0; m]; m];
    for lag in 0..=lags {
        let weight = if lag == 0 {
            1.0
        } else {
            2.0 * (1.0 - lag as f64 / (lags + 1) as f64)
        };
        for i in 0..m {
            for j in 0..m {
                // Σ_t r_t,i r_{t-l},j, then symmetrized below.
                let products: f64 = (lag..hours)
                    .map(|t| residuals[t * m + i] * residuals[(t - lag) * m + j])
                    .sum();
                spread[i][j] += 0.5 * weight * products / h;
                spread[j][i] += 0.5 * weight * products / h;
            }
        }
    }
    // H r̄' Ω^-1 r̄, referred to Hotelling's T² with the long-run
    // covariance's equivalent degrees of freedom rather than H - 1: a
    // Bartlett estimate over a bandwidth of `lags + 1` hours varies about
    // as a chi-square with 3H / (2 (lags + 1)) of them (Andrews 1991; the
    // approximation Lazarus, Lewis, Stock and Watson 2018 recommend), far
    // fewer than H, so H - 1 would alarm too often on healthy traffic.
    let p = m as f64;
    let t2 = h * quadratic_form(&spread, &mean, m);
    let nu = (1.5 * h / (lags + 1) as f64).max(p);
    SampleRatio {
        p: f_survival(t2 * (nu - p + 1.0) / (p * nu), p, nu - p + 1.0),
        statistic: t2,
        hours,
    }
}

/// The hours with views, `k` variants each, flat (hour `t`, variant `i` at
/// `t * k + i`): views, and expected shares as new visitors and as
/// returning ones.
struct Cells {
    total: Vec<f64>,
    views: Vec<f64>,
    /// Half on the weights served this hour, half on the hour before.
    new: Vec<f64>,
    /// Half on the last day's weights, half on all hours' so far.
    old: Vec<f64>,
}

impl Cells {
    /// The cells of `hours` (a missing split falls back to the nearest
    /// earlier one: an hour with no answers served nothing new).
    fn of(hours: &[HourSplit], k: usize) -> Cells {
        let mut cells = Cells {
            total: Vec::with_capacity(hours.len()),
            views: Vec::with_capacity(hours.len() * k),
            new: Vec::with_capacity(hours.len() * k),
            old: Vec::with_capacity(hours.len() * k),
        };
        // The weights in force each hour since the first that served any,
        // and the sum of the last day's (this hour and DAY before).
        let mut served: Vec<f64> = Vec::with_capacity(hours.len() * k);
        let mut day = vec![0.0; k];
        let mut history = vec![0.0; k];
        let mut history_views = 0.0;
        let mut now = vec![0.0; k];
        let mut before = vec![1.0 / k as f64; k];
        let mut serving = false;
        for hour in hours {
            let sum: f64 = (0..k).map(|i| clean(hour.served.get(i))).sum();
            if serving {
                before.copy_from_slice(&now);
            }
            if sum > 0.0 {
                (0..k).for_each(|i| now[i] = clean(hour.served.get(i)) / sum);
                serving = true;
            }
            if !serving {
                continue;
            }
            let h = served.len() / k;
            served.extend_from_slice(&now);
            (0..k).for_each(|i| day[i] += now[i]);
            if h > DAY {
                (0..k).for_each(|i| day[i] -= served[(h - DAY - 1) * k + i]);
            }
            let day_hours = (h + 1).min(DAY + 1) as f64;
            let views = (0..k).map(|i| hour.views.get(i).copied().unwrap_or(0) as f64);
            let start = cells.views.len();
            cells.views.extend(views);
            let total: f64 = cells.views[start..].iter().sum();
            if total <= 0.0 {
                cells.views.truncate(start);
                continue;
            }
            history_views += total;
            for i in 0..k {
                history[i] += total * now[i];
                cells.new.push(0.5 * (now[i] + before[i]));
                cells
                    .old
                    .push(0.5 * (day[i] / day_hours + history[i] / history_views));
            }
            cells.total.push(total);
        }
        cells
    }

    /// The expected share of cell `c` (hour `c / k`, variant `c % k`) when
    /// returning visitors make `returning` of its views.
    fn share(&self, c: usize, returning: f64) -> f64 {
        ((1.0 - returning) * self.new[c] + returning * self.old[c]).max(LEAST_SHARE)
    }
}

/// A served weight as the test reads it: non-finite, negative or missing
/// count as 0.
fn clean(w: Option<&f64>) -> f64 {
    w.copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .unwrap_or(0.0)
}

/// Largest share of views the fit may give to returning visitors.
const MOST_RETURNING: f64 = 0.8;

/// The share of returning visitors maximizing the multinomial likelihood,
/// in `[0, MOST_RETURNING]`. The log-likelihood is concave in it (each
/// share is linear in it), so its derivative falls: Newton's method on the
/// derivative, kept within a bracket that shrinks at every step and halves
/// when a step would leave it.
fn fit(cells: &Cells) -> f64 {
    // The log-likelihood's first and second derivatives at `r`.
    let slope = |r: f64| -> (f64, f64) {
        let (mut first, mut second) = (0.0, 0.0);
        for c in 0..cells.views.len() {
            let (v, new, old) = (cells.views[c], cells.new[c], cells.old[c]);
            let s = (1.0 - r) * new + r * old;
            if v > 0.0 && s > LEAST_SHARE {
                let d = (old - new) / s;
                first += v * d;
                second -= v * d * d;
            }
        }
        (first, second)
    };
    let (mut lo, mut hi) = (0.0, MOST_RETURNING);
    if slope(lo).0 <= 0.0 {
        return lo;
    }
    if slope(hi).0 >= 0.0 {
        return hi;
    }
    let mut r = 0.5 * (lo + hi);
    for _ in 0..STEPS {
        let (first, second) = slope(r);
        if first > 0.0 {
            lo = r;
        } else {
            hi = r;
        }
        let newton = if second < 0.0 {
            r - first / second
        } else {
            f64::NAN
        };
        let next = if newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - r).abs() < 1e-10 {
            return next;
        }
        r = next;
    }
    r
}

/// Most steps of the fit (Newton's converges in a handful; halving the
/// bracket 60 times would narrow it below 1e-18).
const STEPS: usize = 60;

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

/// `P(X > f)` for `X` following Fisher's F with `d1` and `d2` degrees of
/// freedom: `I_x(d2 / 2, d1 / 2)` with `x = d2 / (d2 + d1 f)`.
pub fn f_survival(f: f64, d1: f64, d2: f64) -> f64 {
    if f.is_nan() || f <= 0.0 {
        return 1.0;
    }
    if !f.is_finite() {
        return 0.0;
    }
    beta_cdf(d2 / 2.0, d1 / 2.0, d2 / (d2 + d1 * f)).clamp(0.0, 1.0)
}
