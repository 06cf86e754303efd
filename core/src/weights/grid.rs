//! The quadrature's grid and the logarithms shared on it.

use super::quadrature::{CENTERED_ABOVE, POINTS_PER_WINDOW, Posterior};

/// Sorted, distinct grid points covering every window: each stretch between
/// window ends is split evenly, as finely as the narrowest window covering it
/// asks (`POINTS_PER_WINDOW` per window). Windows that overlap share points
/// instead of stacking theirs.
pub(super) fn grid(windows: &[(f64, f64)]) -> Vec<f64> {
    let mut breaks: Vec<f64> = Vec::with_capacity(2 * windows.len() + 2);
    breaks.push(0.0);
    breaks.push(1.0);
    let steps = (POINTS_PER_WINDOW - 1) as f64;
    for &(lo, hi) in windows {
        breaks.push(lo);
        breaks.push(hi);
        // One window step beyond each end: the density falls to 0 there
        // (the curve's outer points), over a step of its own scale. Without
        // it the next point could be 0 or 1 itself, and the trapezoid over
        // that whole stretch would add mass a density at 12 SDs still has
        // (e^-13 of its peak for a posterior near 0, such as Beta(1, 10^5):
        // 11 % of its mass, smeared up to 1).
        let step = (hi - lo) / steps;
        breaks.push((lo - step).max(0.0));
        breaks.push((hi + step).min(1.0));
    }
    breaks.sort_by(f64::total_cmp);
    breaks.dedup();

    let mut xs = Vec::with_capacity(windows.len() * POINTS_PER_WINDOW);
    for pair in breaks.windows(2) {
        let (u, v) = (pair[0], pair[1]);
        let spacing = windows
            .iter()
            .filter(|&&(lo, hi)| lo <= u && v <= hi && hi > lo)
            .map(|&(lo, hi)| (hi - lo) / steps)
            .fold(f64::INFINITY, f64::min);
        let pieces = if spacing.is_finite() && spacing > 0.0 {
            ((v - u) / spacing).ceil().clamp(1.0, steps) as usize
        } else {
            1
        };
        for j in 0..pieces {
            xs.push(u + (v - u) * (j as f64 / pieces as f64));
        }
    }
    xs.push(1.0);
    xs.dedup();
    xs
}

/// `ln x` and `ln(1 - x)` at the grid points from `from` on, each accurate to
/// a few ulps, shared by every posterior on the direct path.
pub(super) struct GridLogs {
    pub(super) from: usize,
    pub(super) ln_x: Vec<f64>,
    pub(super) ln_1mx: Vec<f64>,
}

impl GridLogs {
    pub(super) fn new<'a>(
        xs: &[f64],
        from: usize,
        mut posteriors: impl Iterator<Item = &'a Posterior>,
    ) -> GridLogs {
        let needed = posteriors.any(|p| p.alpha + p.beta <= CENTERED_ABOVE);
        let (ln_x, ln_1mx) = if needed {
            xs[from..]
                .iter()
                .map(|&x| {
                    if x <= 0.5 {
                        (x.ln(), (-x).ln_1p())
                    } else {
                        ((x - 1.0).ln_1p(), (1.0 - x).ln())
                    }
                })
                .unzip()
        } else {
            (Vec::new(), Vec::new())
        };
        GridLogs { from, ln_x, ln_1mx }
    }
}
