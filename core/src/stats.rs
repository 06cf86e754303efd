//! Statistics shown to site owners: the conversion rate of a variant and its
//! 95 % credible interval.
//!
//! The rate's posterior is the one the weights use, `Beta(1 + reward, 1 +
//! max(views - reward, 0))`, and the interval is
//! equal-tailed: its ends are the 2.5 % and 97.5 % quantiles. Quantiles come
//! from the regularized incomplete beta function (a continued fraction, or
//! for huge counts the normal / gamma limits of the beta), inverted by
//! bisection, so the result is deterministic. `std` only: it needs `exp`,
//! `ln` and `sqrt`.

use crate::weights::Arm;

/// The probability mass outside a 95 % interval, on each side.
const TAIL: f64 = 0.025;

/// Above this `alpha + beta` the continued fraction would need too many
/// terms; the beta's limits (normal, or gamma when one parameter is small)
/// are used instead, which agree with it far beyond the digits shown.
const LIMIT_ABOVE: f64 = 1e7;

/// A parameter this small next to the other makes the beta a scaled gamma.
const GAMMA_BELOW: f64 = 1e5;

/// Conversion rate of a variant: `total_reward / views`, `None` without views.
/// The reward is clamped to `[0, views]`.
pub fn conversion_rate(views: u64, total_reward: f64) -> Option<f64> {
    (views > 0).then(|| clamp_reward(views, total_reward) / views as f64)
}

/// The equal-tailed 95 % credible interval `(low, high)` of the conversion
/// rate: the 2.5 % and 97.5 % quantiles of `Beta(1 + reward, 1 + max(views -
/// reward, 0))`, the posterior of the weights and the decision, rewards
/// beyond the views included (negative or non-finite counts as 0).
/// No data gives `(0.025, 0.975)`, the uniform prior's interval.
pub fn credible_interval(views: u64, total_reward: f64) -> (f64, f64) {
    let (alpha, beta) = Arm {
        views,
        total_reward,
    }
    .posterior();
    (
        beta_quantile(alpha, beta, TAIL),
        beta_quantile(alpha, beta, 1.0 - TAIL),
    )
}

fn clamp_reward(views: u64, total_reward: f64) -> f64 {
    if total_reward.is_finite() {
        total_reward.clamp(0.0, views as f64)
    } else {
        0.0
    }
}

/// The `p` quantile of `Beta(alpha, beta)` (`alpha`, `beta` >= 1, `p` in
/// (0, 1)), by bisection of the CDF to full double precision.
pub fn beta_quantile(alpha: f64, beta: f64, p: f64) -> f64 {
    let n = alpha + beta;
    if n > LIMIT_ABOVE {
        return large_quantile(alpha, beta, p);
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if beta_cdf(alpha, beta, mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The regularized incomplete beta function `I_x(alpha, beta)`: the CDF of
/// `Beta(alpha, beta)` at `x`.
pub fn beta_cdf(alpha: f64, beta: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(alpha + beta) - ln_gamma(alpha) - ln_gamma(beta)
        + alpha * x.ln()
        + beta * (-x).ln_1p();
    let front = ln_front.exp();
    if x < (alpha + 1.0) / (alpha + beta + 2.0) {
        (front * continued_fraction(alpha, beta, x) / alpha).clamp(0.0, 1.0)
    } else {
        (1.0 - front * continued_fraction(beta, alpha, 1.0 - x) / beta).clamp(0.0, 1.0)
    }
}

/// The continued fraction of the incomplete beta (modified Lentz).
fn continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-16;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    let mut m = 1.0;
    // Converges in O(sqrt(max(a, b))) terms; a + b is at most LIMIT_ABOVE.
    while m < 100_000.0 {
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < EPS {
            break;
        }
        m += 1.0;
    }
    h
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, nine terms; about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        let pi = core::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, &c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * core::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Quantiles for huge `alpha + beta`: a small parameter makes the beta a
/// gamma scaled by `1 / (alpha + beta)`; otherwise both are large and the
/// beta is normal but for a skew the Cornish-Fisher term corrects.
fn large_quantile(alpha: f64, beta: f64, p: f64) -> f64 {
    let n = alpha + beta;
    if alpha < GAMMA_BELOW {
        return (gamma_quantile(alpha, p) / n).clamp(0.0, 1.0);
    }
    if beta < GAMMA_BELOW {
        return (1.0 - gamma_quantile(beta, 1.0 - p) / n).clamp(0.0, 1.0);
    }
    let mean = alpha / n;
    let sd = (alpha * beta / (n * n * (n + 1.0))).sqrt();
    let skew = 2.0 * (beta - alpha) * (n + 1.0).sqrt() / ((n + 2.0) * (alpha * beta).sqrt());
    let z = normal_quantile(p);
    let z = z + skew * (z * z - 1.0) / 6.0;
    (mean + z * sd).clamp(0.0, 1.0)
}

/// The `p` quantile of `Gamma(shape, 1)` by bisection of its CDF.
fn gamma_quantile(shape: f64, p: f64) -> f64 {
    let sd = shape.sqrt();
    let (mut lo, mut hi) = (0.0_f64, shape + 20.0 * sd + 40.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if gamma_cdf(shape, mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The regularized lower incomplete gamma `P(shape, x)`: a series below
/// `shape + 1`, a continued fraction above.
fn gamma_cdf(shape: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let ln_front = shape * x.ln() - x - ln_gamma(shape);
    if x < shape + 1.0 {
        let (mut term, mut sum, mut a) = (1.0 / shape, 1.0 / shape, shape);
        for _ in 0..100_000 {
            a += 1.0;
            term *= x / a;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        (sum * ln_front.exp()).clamp(0.0, 1.0)
    } else {
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - shape;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        let mut i = 1.0;
        while i < 100_000.0 {
            let an = -i * (i - shape);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let step = d * c;
            h *= step;
            if (step - 1.0).abs() < 1e-16 {
                break;
            }
            i += 1.0;
        }
        (1.0 - ln_front.exp() * h).clamp(0.0, 1.0)
    }
}

/// The standard normal quantile (Acklam's rational approximation, refined by
/// one Halley step on `erfc`; about 15 digits).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        let q = (-2.0 * q.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.024_25 {
        tail(p)
    } else if p > 1.0 - 0.024_25 {
        -tail(1.0 - p)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // One Halley step: e = Φ(x) - p, with Φ(x) = erfc(-x / √2) / 2.
    let e = 0.5 * erfc(-x / core::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * core::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// The complementary error function, through the incomplete gamma:
/// `erfc(x) = 1 - P(1/2, x²)` for `x >= 0`.
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        2.0 - erfc(-x)
    } else {
        1.0 - gamma_cdf(0.5, x * x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    #[test]
    fn no_data_is_the_uniform_priors_interval() {
        let (low, high) = credible_interval(0, 0.0);
        close(low, 0.025, 1e-12);
        close(high, 0.975, 1e-12);
        assert_eq!(conversion_rate(0, 0.0), None);
    }

    #[test]
    fn closed_forms() {
        // Beta(1, b): quantile 1 - (1 - p)^(1 / b); Beta(a, 1): p^(1 / a).
        let (low, high) = credible_interval(9, 0.0);
        close(low, 1.0 - 0.975_f64.powf(0.1), 1e-12);
        close(high, 1.0 - 0.025_f64.powf(0.1), 1e-12);
        let (low, high) = credible_interval(4, 4.0);
        close(low, 0.025_f64.powf(0.2), 1e-12);
        close(high, 0.975_f64.powf(0.2), 1e-12);
    }

    /// Reference values from mpmath (50 digits): `findroot` on
    /// `betainc(a, b, 0, x, regularized=True) - p`.
    #[test]
    fn known_values() {
        let cases = [
            // (views, reward, low, high)
            (10, 3.0, 0.109_263_443_819_098_1, 0.609_742_559_572_421_2),
            (100, 10.0, 0.055_637_223_835_302_98, 0.174_552_826_077_119_1),
            (
                1000,
                250.5,
                0.224_644_160_165_230_6,
                0.278_293_301_642_636_5,
            ),
            (20, 19.0, 0.761_840_090_063_178_9, 0.988_250_682_115_554_2),
        ];
        for (views, reward, low, high) in cases {
            let (l, h) = credible_interval(views, reward);
            close(l, low, 1e-9);
            close(h, high, 1e-9);
        }
    }

    #[test]
    fn huge_counts_use_the_limits_and_agree_with_them() {
        // Both parameters large: the normal limit with its skew correction
        // agrees with the continued fraction where both work.
        for (alpha, beta) in [(3e6, 7e6), (5e5, 9.5e6), (9.9e6, 1e5)] {
            for p in [TAIL, 1.0 - TAIL] {
                let exact = beta_quantile(alpha, beta, p);
                let sd = (alpha * beta).sqrt() / (alpha + beta).powf(1.5);
                close(large_quantile(alpha, beta, p), exact, 1e-4 * sd);
            }
        }
        // Few rewards in many views: the gamma limit (mpmath reference).
        let (low, high) = credible_interval(1_000_000_000, 3.0);
        close(low, 1.089_865_373_577_354_3e-9, 1e-16);
        close(high, 8.767_273_035_693_424e-9, 1e-16);
        let (low, high) = credible_interval(1_000_000_000, 999_999_997.0);
        close(low, 1.0 - 8.767_273_035_693_424e-9, 1e-15);
        close(high, 1.0 - 1.089_865_373_577_354_3e-9, 1e-15);
        // Both large: the mean ± 1.96 sd, nearly.
        let (low, high) = credible_interval(1_000_000_000, 300_000_000.0);
        let sd = (0.3_f64 * 0.7 / 1e9).sqrt();
        close(low, 0.3 - 1.959_964 * sd, 1e-3 * sd);
        close(high, 0.3 + 1.959_964 * sd, 1e-3 * sd);
        // u64::MAX views still answers, inside [0, 1].
        let (low, high) = credible_interval(u64::MAX, 1.0);
        assert!((0.0..=high).contains(&low) && high <= 1.0);
    }

    #[test]
    fn rewards_beyond_views_count_as_the_weights_count_them() {
        // Beta(1 + R, 1 + max(V - R, 0)), as the weights: 0 views and a
        // reward of 1 is Beta(2, 1), not the uniform prior's interval.
        let (low, high) = credible_interval(0, 1.0);
        close(low, 0.025_f64.sqrt(), 1e-12);
        close(high, 0.975_f64.sqrt(), 1e-12);
        let (low, high) = credible_interval(5, 10.0);
        close(low, 0.025_f64.powf(1.0 / 11.0), 1e-12);
        close(high, 0.975_f64.powf(1.0 / 11.0), 1e-12);
        assert_eq!(credible_interval(5, -1.0), credible_interval(5, 0.0));
        assert_eq!(credible_interval(5, f64::NAN), credible_interval(5, 0.0));
        assert_eq!(conversion_rate(4, 9.0), Some(1.0));
        assert_eq!(conversion_rate(4, 1.0), Some(0.25));
    }

    #[test]
    fn normal_quantile_is_accurate() {
        close(normal_quantile(0.975), 1.959_963_984_540_054, 1e-13);
        close(normal_quantile(0.5), 0.0, 1e-15);
        close(normal_quantile(0.001), -3.090_232_306_167_813_5, 1e-12);
    }
}
