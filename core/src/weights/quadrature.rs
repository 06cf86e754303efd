//! The weights by quadrature (see [`super`] for the method); `std` only: it
//! needs `exp` and `ln`.

use std::cmp::Ordering;

use super::ONE_BELOW;
use super::grid::{GridLogs, grid};

/// Counts of one variant as the bandit sees them.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Arm {
    /// How many times the variant was shown.
    pub views: u64,
    /// Sum of the rewards the variant earned (one per conversion for a 0/1
    /// goal). Non-finite or negative values count as 0.
    pub total_reward: f64,
}

impl Arm {
    /// The parameters `(alpha, beta)` of its rate's Beta posterior, which
    /// the weights, the decision and the dashboard's interval all use:
    /// `Beta(1 + reward, 1 + max(views - reward, 0))`, a uniform prior,
    /// rewards beyond the views included, both at most 2^64.
    pub fn posterior(&self) -> (f64, f64) {
        let reward = sanitize_non_negative(self.total_reward);
        let views = self.views as f64;
        (
            (1.0 + reward).clamp(1.0, MAX_PARAMETER),
            (1.0 + views - reward).clamp(1.0, MAX_PARAMETER),
        )
    }
}

/// Half-width of the window in which a posterior's density is evaluated, in
/// standard deviations. Beta densities with both parameters at least 1 are
/// log-concave, so the mass outside is far below the accuracy that matters.
const WINDOW_SDS: f64 = 12.0;

/// Grid points across one posterior's window (its own resolution: about
/// 0.12 standard deviations between points).
pub(super) const POINTS_PER_WINDOW: usize = 200;

/// Above this `alpha + beta` the log density is evaluated relative to the
/// posterior's mode, since `(alpha - 1) ln x` alone would lose the digits that
/// matter to cancellation.
pub(super) const CENTERED_ABOVE: f64 = 1e9;

/// Largest posterior parameter: 2^64, one more than any `u64` count. Rewards
/// beyond it carry no extra information.
const MAX_PARAMETER: f64 = 18_446_744_073_709_551_616.0;

/// Probability that each arm is best under Beta posteriors (sums to 1).
///
/// Arm `i` gets `P(X_i > X_j for all j != i)` with `X_i ~ Beta(alpha_i,
/// beta_i)`, computed deterministically by quadrature (no Monte Carlo, so no
/// seed): within about 0.001 of the exact value. Arms with identical
/// posteriors get exactly equal results; no data at all gives exactly `1 / K`
/// each. An empty slice gives an empty vector and one arm gives `[1.0]`.
pub fn probability_best(arms: &[Arm]) -> Vec<f64> {
    best_and_loss(arms, false).0
}

/// Each arm's probability of being best (as [`probability_best`]) and its
/// expected loss, `E[max_j X_j - X_i]`: the reward rate given up, in
/// expectation, by choosing it. Same posteriors, same quadrature, so no
/// sampling noise; losses are never negative, and identical posteriors get
/// exactly equal numbers.
pub fn probability_best_and_loss(arms: &[Arm]) -> (Vec<f64>, Vec<f64>) {
    best_and_loss(arms, true)
}

/// The probabilities, and the expected losses when `with_loss` (else empty).
fn best_and_loss(arms: &[Arm], with_loss: bool) -> (Vec<f64>, Vec<f64>) {
    let k = arms.len();
    if k == 0 {
        return (Vec::new(), Vec::new());
    }
    let posteriors: Vec<Posterior> = arms.iter().map(Posterior::of).collect();

    // Identical posteriors form one group, computed once, so they get exactly
    // equal results.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| posteriors[i].cmp(&posteriors[j]));
    let mut groups: Vec<Group> = Vec::new();
    let mut group_of = vec![0usize; k];
    for &i in &order {
        match groups.last_mut() {
            Some(last) if last.posterior == posteriors[i] => last.members += 1,
            _ => groups.push(Group {
                posterior: posteriors[i],
                members: 1,
            }),
        }
        group_of[i] = groups.len() - 1;
    }
    if groups.len() == 1 && (!with_loss || k == 1) {
        let losses = if with_loss { vec![0.0; k] } else { Vec::new() };
        return (vec![1.0 / k as f64; k], losses);
    }

    match group_probabilities(&groups) {
        Some((per_group, loss_of_group)) => {
            let best = if groups.len() == 1 {
                vec![1.0 / k as f64; k]
            } else {
                group_of.iter().map(|&g| per_group[g]).collect()
            };
            let losses = if with_loss {
                group_of.iter().map(|&g| loss_of_group[g]).collect()
            } else {
                Vec::new()
            };
            (best, losses)
        }
        None => {
            let best = best_mean_fallback(&posteriors);
            let losses = if with_loss {
                let means: Vec<f64> = posteriors.iter().map(Posterior::mean).collect();
                let top = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                means.iter().map(|m| top - m).collect()
            } else {
                Vec::new()
            };
            (best, losses)
        }
    }
}

pub(super) fn sanitize_non_negative(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

/// A Beta posterior; both parameters finite and in `[1, 2^64]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Posterior {
    pub(super) alpha: f64,
    pub(super) beta: f64,
}

impl Posterior {
    fn of(arm: &Arm) -> Posterior {
        let (alpha, beta) = arm.posterior();
        Posterior { alpha, beta }
    }

    fn cmp(&self, other: &Posterior) -> Ordering {
        self.alpha
            .total_cmp(&other.alpha)
            .then(self.beta.total_cmp(&other.beta))
    }

    fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// `[lo, hi]`: mean ± `WINDOW_SDS` standard deviations, clipped to [0, 1].
    fn window(&self) -> (f64, f64) {
        let n = self.alpha + self.beta;
        let mean = self.alpha / n;
        let complement = self.beta / n;
        let sd = (mean * complement / (n + 1.0)).sqrt();
        let lo = (mean - WINDOW_SDS * sd).clamp(0.0, 1.0);
        let hi = (mean + WINDOW_SDS * sd).clamp(0.0, 1.0);
        (lo, hi)
    }
}

/// Arms sharing one posterior.
struct Group {
    posterior: Posterior,
    members: usize,
}

/// Where one group's curves live on the grid: its window is
/// `xs[first..=last]`, and one more point each side (`start`, `end`) gives the
/// density room to fall to 0.
#[derive(Clone, Copy)]
struct Span {
    first: usize,
    last: usize,
    start: usize,
    end: usize,
}

impl Span {
    fn new(xs: &[f64], (lo, hi): (f64, f64)) -> Span {
        // lo and hi are grid points, so the window is not empty.
        let first = xs.partition_point(|&x| x < lo).min(xs.len() - 1);
        let last = xs.partition_point(|&x| x <= hi).max(first + 1) - 1;
        Span {
            first,
            last,
            start: first.saturating_sub(1),
            end: (last + 1).min(xs.len() - 1),
        }
    }
}

/// One group's normalized density and CDF on `xs[start..=end]`; the density
/// is 0 outside, the CDF 0 before and 1 after.
struct Curve {
    start: usize,
    end: usize,
    pdf: Vec<f64>,
    cdf: Vec<f64>,
}

/// Probability that one member of each group is best, renormalized so the
/// members' total is 1, and each group's expected loss; `None` when the
/// quadrature degenerates.
fn group_probabilities(groups: &[Group]) -> Option<(Vec<f64>, Vec<f64>)> {
    let windows: Vec<(f64, f64)> = groups.iter().map(|g| g.posterior.window()).collect();
    let xs = grid(&windows);
    let spans: Vec<Span> = windows.iter().map(|&w| Span::new(&xs, w)).collect();

    // Below the highest start some group's CDF is 0, so no arm can be best
    // there; a group whose span ends before it is never best.
    let begin = spans.iter().map(|s| s.start).max().unwrap_or(0);
    let relevant: Vec<usize> = (0..groups.len())
        .filter(|&g| spans[g].end >= begin)
        .collect();
    let from = relevant
        .iter()
        .map(|&g| spans[g].start)
        .min()
        .unwrap_or(begin);
    let logs = GridLogs::new(&xs, from, relevant.iter().map(|&g| &groups[g].posterior));
    let curves: Vec<Curve> = relevant
        .iter()
        .map(|&g| curve(&xs, &logs, &groups[g].posterior, spans[g]))
        .collect();
    let members: Vec<usize> = relevant.iter().map(|&g| groups[g].members).collect();

    // P(a member of g is best) = ∫ f_g F_g^(m_g - 1) ∏_{h != g} F_h^(m_h),
    // with prefix and suffix products over the groups (no division). Groups
    // whose span ended have F = 1 and f = 0, so only active ones take part.
    let n = curves.len();
    let mut active: Vec<usize> = Vec::with_capacity(n);
    let mut own = vec![0.0; n];
    let mut full = vec![0.0; n];
    let mut prefix = vec![1.0; n + 1];
    let mut suffix = vec![1.0; n + 1];
    let mut previous = vec![0.0; n];
    let mut integral = vec![0.0; n];
    // ∫ ∏ F over [xs[begin], 1]: E[max] = 1 - that (the product is 0 below).
    let (mut below_max, mut previous_product) = (0.0, 0.0);
    for k in begin..xs.len() {
        active.clear();
        active.extend((0..n).filter(|&c| curves[c].end >= k));
        for (slot, &c) in active.iter().enumerate() {
            let f = curves[c].cdf[k - curves[c].start];
            own[slot] = power(f, members[c] - 1);
            full[slot] = own[slot] * f;
        }
        let m = active.len();
        for slot in 0..m {
            prefix[slot + 1] = prefix[slot] * full[slot];
        }
        suffix[m] = 1.0;
        for slot in (0..m).rev() {
            suffix[slot] = suffix[slot + 1] * full[slot];
        }
        let half_dx = if k == 0 {
            0.0
        } else {
            0.5 * (xs[k] - xs[k - 1])
        };
        below_max += half_dx * (previous_product + prefix[m]);
        previous_product = prefix[m];
        for (slot, &c) in active.iter().enumerate() {
            let curve = &curves[c];
            let integrand =
                curve.pdf[k - curve.start] * own[slot] * prefix[slot] * suffix[slot + 1];
            integral[c] += half_dx * (previous[c] + integrand);
            previous[c] = integrand;
        }
    }

    let total: f64 = integral
        .iter()
        .zip(&members)
        .map(|(p, &m)| p * m as f64)
        .sum();
    if !(total.is_finite() && total > 0.0) {
        return None;
    }
    let mut per_group = vec![0.0; groups.len()];
    for (&g, p) in relevant.iter().zip(&integral) {
        per_group[g] = (p / total).clamp(0.0, 1.0);
    }

    // Loss of g = E[max] - E[X_g]. For a relevant group both come from the
    // same trapezoids, so the difference is the trapezoid sum of F_g - ∏ F,
    // which is never negative; the others lie wholly below the rest.
    let expected_max = 1.0 - below_max;
    let mut losses: Vec<f64> = groups
        .iter()
        .map(|g| (expected_max - g.posterior.mean()).max(0.0))
        .collect();
    for (&g, curve) in relevant.iter().zip(&curves) {
        let mut below = 1.0 - xs[curve.end];
        for j in 1..curve.cdf.len() {
            let k = curve.start + j;
            below += 0.5 * (xs[k] - xs[k - 1]) * (curve.cdf[j - 1] + curve.cdf[j]);
        }
        losses[g] = (expected_max - (1.0 - below)).max(0.0);
    }
    Some((per_group, losses))
}

/// `x^n` for `x` in [0, 1], exact for n = 0 and 1.
fn power(x: f64, n: usize) -> f64 {
    match n {
        0 => 1.0,
        1 => x,
        _ => x.powi(i32::try_from(n).unwrap_or(i32::MAX)),
    }
}

/// `e * l`, with `0 * ln 0` taken as 0 (the density's factor is then 1).
fn term(e: f64, l: f64) -> f64 {
    if e == 0.0 { 0.0 } else { e * l }
}

/// The posterior's density and CDF on its span, normalized by trapezoids (so
/// no log-gamma is needed).
fn curve(xs: &[f64], logs: &GridLogs, posterior: &Posterior, span: Span) -> Curve {
    let Span {
        first,
        last,
        start,
        end,
    } = span;
    let a1 = posterior.alpha - 1.0;
    let b1 = posterior.beta - 1.0;
    let centered = posterior.alpha + posterior.beta > CENTERED_ABOVE;
    // Reference point of the centered form: any point gives the same density
    // up to a constant; the mode keeps the two terms small.
    let c = if a1 > 0.0 && b1 > 0.0 {
        (a1 / (a1 + b1)).clamp(f64::MIN_POSITIVE, ONE_BELOW)
    } else {
        0.5
    };
    let one_minus_c = 1.0 - c;
    let log_density = |k: usize| -> f64 {
        let l = if centered {
            let d = xs[k] - c;
            let below = if a1 == 0.0 { 0.0 } else { a1 * (d / c).ln_1p() };
            let above = if b1 == 0.0 {
                0.0
            } else {
                b1 * (-d / one_minus_c).ln_1p()
            };
            below + above
        } else {
            term(a1, logs.ln_x[k - logs.from]) + term(b1, logs.ln_1mx[k - logs.from])
        };
        if l.is_nan() { f64::NEG_INFINITY } else { l }
    };

    let mut pdf = vec![0.0; end - start + 1];
    let window = first - start..=last - start;
    for k in first..=last {
        pdf[k - start] = log_density(k);
    }
    let peak = pdf[window.clone()]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    if peak.is_finite() {
        for l in &mut pdf[window] {
            *l = (*l - peak).exp();
        }
        // A parameter between 1 and 2 (a total reward, or views less the
        // reward, between 0 and 1) makes the density rise from 0 at that
        // end as x^a, a < 1: faster than the first trapezoid sees (the mass
        // over [0, h] is h f(h) / (1 + a), not h f(h) / 2). The end point
        // takes the value that gives its trapezoid that mass.
        if last > first {
            if xs[first] == 0.0 && a1 > 0.0 && a1 < 1.0 {
                pdf[first - start] = pdf[first + 1 - start] * (1.0 - a1) / (1.0 + a1);
            }
            if xs[last] == 1.0 && b1 > 0.0 && b1 < 1.0 {
                pdf[last - start] = pdf[last - 1 - start] * (1.0 - b1) / (1.0 + b1);
            }
        }
    } else {
        // Too narrow for the grid to see: a point mass at the grid point
        // nearest the mean.
        let mean = posterior.mean();
        let mut nearest = first;
        for k in first..=last {
            if (xs[k] - mean).abs() < (xs[nearest] - mean).abs() {
                nearest = k;
            }
        }
        pdf.iter_mut().for_each(|p| *p = 0.0);
        pdf[nearest - start] = 1.0;
    }

    let mut cdf = Vec::with_capacity(pdf.len());
    let mut cumulative = 0.0;
    cdf.push(0.0);
    for j in 1..pdf.len() {
        let k = start + j;
        cumulative += 0.5 * (xs[k] - xs[k - 1]) * (pdf[j - 1] + pdf[j]);
        cdf.push(cumulative);
    }
    // cumulative > 0: the peak is 1 and every grid interval has positive width.
    let total = cumulative;
    for (p, f) in pdf.iter_mut().zip(cdf.iter_mut()) {
        *p /= total;
        *f = (*f / total).min(1.0);
    }
    Curve {
        start,
        end,
        pdf,
        cdf,
    }
}

/// When quadrature cannot separate the arms: everything to the arms with the
/// highest posterior mean, shared equally.
fn best_mean_fallback(posteriors: &[Posterior]) -> Vec<f64> {
    let means: Vec<f64> = posteriors.iter().map(Posterior::mean).collect();
    let best = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let winners = means.iter().filter(|&&m| m == best).count().max(1);
    means
        .iter()
        .map(|&m| if m == best { 1.0 / winners as f64 } else { 0.0 })
        .collect()
}
