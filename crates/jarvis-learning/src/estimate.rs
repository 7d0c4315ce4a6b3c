//! Success rates with their uncertainty.
//!
//! A raw success rate ranks one lucky run (1/1 = 100 %) above a proven value (80/100 = 80 %). Two
//! estimators fix that, each used where it fits:
//!
//! * [`wilson_interval`] — the Wilson score interval. Unlike the textbook normal ("Wald")
//!   interval it stays inside `[0, 1]` and keeps close to its nominal coverage for small samples
//!   and for rates near 0 or 1, which is exactly the regime of a fresh domain/action. Its lower
//!   bound is the conservative score that [`crate::recommend`](mod@crate::recommend) ranks by: 1/1 has a 95 % lower bound
//!   of 0.21, 80/100 one of 0.71.
//! * [`BetaPosterior`] — the conjugate posterior of a Bernoulli rate under a uniform prior. It can
//!   be *sampled*, which is what Thompson sampling in [`crate::explore`] needs, and it also accepts
//!   fractional evidence (rewards in `[0, 1]`, such as an impact score divided by 100).
//!
//! [`normal_cdf`] is the standard normal distribution function, used to compare two posteriors
//! without sampling (the confidence of a recommendation).

use rand::Rng;
use rand_distr::Distribution;
use serde::{Deserialize, Serialize};

/// The two-sided 95 % quantile of the standard normal distribution (z for a 95 % interval).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A closed interval `[lower, upper]` inside `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The lower bound.
    pub lower: f64,
    /// The upper bound.
    pub upper: f64,
}

impl Interval {
    /// `[0, 1]`: no information at all about a rate.
    pub const UNINFORMATIVE: Interval = Interval {
        lower: 0.0,
        upper: 1.0,
    };

    /// `upper - lower`.
    pub fn width(&self) -> f64 {
        self.upper - self.lower
    }

    /// Whether `x` lies inside the interval (bounds included).
    pub fn contains(&self, x: f64) -> bool {
        self.lower <= x && x <= self.upper
    }
}

/// The observed success rate `successes / runs`, or `None` without runs.
///
/// `successes` larger than `runs` is clamped to `runs`.
pub fn success_rate(successes: u64, runs: u64) -> Option<f64> {
    if runs == 0 {
        None
    } else {
        Some(successes.min(runs) as f64 / runs as f64)
    }
}

/// The Wilson score interval for `successes` out of `runs` at normal quantile `z`
/// (use [`Z_95`] for a 95 % interval).
///
/// With `p = s/n` the interval is
/// `(p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)`.
///
/// Guards: no runs, or a `z` that is NaN, infinite or negative, give
/// [`Interval::UNINFORMATIVE`]; `successes > runs` is clamped to `runs`; `z = 0` gives the point
/// `[p, p]`.
pub fn wilson_interval(successes: u64, runs: u64, z: f64) -> Interval {
    if runs == 0 || !z.is_finite() || z < 0.0 {
        return Interval::UNINFORMATIVE;
    }
    let n = runs as f64;
    let p = successes.min(runs) as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half_width = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    Interval {
        lower: (centre - half_width).clamp(0.0, 1.0),
        upper: (centre + half_width).clamp(0.0, 1.0),
    }
}

/// A Beta(α, β) distribution: the posterior of a rate in `[0, 1]`.
///
/// With a uniform Beta(1, 1) prior, `s` successes and `f` failures give Beta(1 + s, 1 + f). For a
/// reward `r ∈ [0, 1]` per run (not just 0 or 1) the same update with `s = Σr`, `f = n − Σr` is the
/// "Bernoulli trick" of Agrawal & Goyal's Thompson sampling analysis; [`Self::from_fractional`]
/// does that.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BetaPosterior {
    /// α, the prior plus the (possibly fractional) number of successes. Always finite and `> 0`.
    pub alpha: f64,
    /// β, the prior plus the (possibly fractional) number of failures. Always finite and `> 0`.
    pub beta: f64,
}

impl BetaPosterior {
    /// The uniform prior Beta(1, 1).
    pub const UNIFORM: BetaPosterior = BetaPosterior {
        alpha: 1.0,
        beta: 1.0,
    };

    /// Beta(α, β), or `None` unless both are finite and strictly positive.
    pub fn new(alpha: f64, beta: f64) -> Option<Self> {
        (alpha.is_finite() && beta.is_finite() && alpha > 0.0 && beta > 0.0)
            .then_some(BetaPosterior { alpha, beta })
    }

    /// The posterior Beta(1 + successes, 1 + failures) under a uniform prior.
    pub fn from_counts(successes: u64, failures: u64) -> Self {
        BetaPosterior {
            alpha: 1.0 + successes as f64,
            beta: 1.0 + failures as f64,
        }
    }

    /// The posterior for `count` rewards in `[0, 1]` that add up to `sum`, under a uniform prior:
    /// Beta(1 + sum, 1 + count − sum). `sum` is clamped to `[0, count]`; NaN counts as 0.
    pub fn from_fractional(sum: f64, count: f64) -> Self {
        let count = if count.is_finite() && count > 0.0 {
            count
        } else {
            0.0
        };
        let sum = if sum.is_nan() {
            0.0
        } else {
            sum.clamp(0.0, count)
        };
        BetaPosterior {
            alpha: 1.0 + sum,
            beta: 1.0 + (count - sum),
        }
    }

    /// The posterior mean α / (α + β).
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// The posterior variance αβ / ((α + β)²(α + β + 1)).
    pub fn variance(&self) -> f64 {
        let total = self.alpha + self.beta;
        self.alpha * self.beta / (total * total * (total + 1.0))
    }

    /// The posterior standard deviation.
    pub fn std_dev(&self) -> f64 {
        self.variance().sqrt()
    }

    /// One draw from the distribution (the core step of Thompson sampling).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match rand_distr::Beta::new(self.alpha, self.beta) {
            Ok(distribution) => distribution.sample(rng),
            // Unreachable for values built through this type's constructors; the mean is the
            // least surprising answer if someone deserialised a broken posterior.
            Err(_) => self.mean(),
        }
    }

    /// The probability that a draw from `self` exceeds a draw from `other`, by the normal
    /// approximation `Φ((μ₁ − μ₂) / sqrt(σ₁² + σ₂²))`. Two identical posteriors give 0.5.
    pub fn prob_greater_than(&self, other: &BetaPosterior) -> f64 {
        prob_greater(self.mean(), self.variance(), other.mean(), other.variance())
    }
}

/// `P(X > Y)` for independent normals with the given means and variances; exactly 0.5 when the
/// means are equal.
pub(crate) fn prob_greater(mean_x: f64, var_x: f64, mean_y: f64, var_y: f64) -> f64 {
    let spread = (var_x.max(0.0) + var_y.max(0.0)).sqrt();
    let difference = mean_x - mean_y;
    if difference == 0.0 {
        // Exactly even, whatever the spread (Φ(0) from the erfc fit is only 0.5 ± 1e-7).
        return 0.5;
    }
    if spread == 0.0 || !spread.is_finite() {
        return if difference > 0.0 { 1.0 } else { 0.0 };
    }
    normal_cdf(difference / spread)
}

/// The standard normal distribution function Φ(x).
///
/// Computed from the complementary error function with the Chebyshev fit of Numerical Recipes
/// (`erfcc`, fractional error below 1.2·10⁻⁷ everywhere), which is plenty for ranking and
/// confidence figures. NaN gives NaN.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function, Numerical Recipes' `erfcc`.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let polynomial = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let result = t * polynomial.exp();
    if x >= 0.0 {
        result
    } else {
        2.0 - result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    /// Known answers for z = 1.96 (a published table of Wilson bounds).
    #[test]
    fn wilson_matches_known_answers() {
        let cases = [
            (0, 1, 0.0, 0.793_456_708_526_107_1),
            (1, 1, 0.206_543_291_473_892_94, 1.0),
            (1, 2, 0.094_528_654_800_866_11, 0.905_471_345_199_134),
            (1, 11, 0.016_231_752_262_825_982, 0.377_364_625_486_203_8),
            (10, 11, 0.622_635_374_513_796_2, 0.983_768_247_737_174_1),
            (10, 100, 0.055_228_541_613_136_12, 0.174_367_304_367_665_4),
            (75, 100, 0.656_953_536_299_241_7, 0.824_549_059_962_757_3),
            (50, 100, 0.403_829_828_590_147_16, 0.596_170_171_409_852_8),
            (0, 100, 0.0, 0.036_994_807_476_001_91),
            (100, 100, 0.963_005_192_523_998_1, 1.0),
        ];
        for (successes, runs, lower, upper) in cases {
            let interval = wilson_interval(successes, runs, 1.96);
            assert!(
                close(interval.lower, lower, 1e-12) && close(interval.upper, upper, 1e-12),
                "{successes}/{runs}: {interval:?}, expected [{lower}, {upper}]"
            );
        }
    }

    #[test]
    fn one_lucky_run_ranks_below_eighty_of_a_hundred() {
        let lucky = wilson_interval(1, 1, Z_95);
        let proven = wilson_interval(80, 100, Z_95);
        assert!(lucky.lower < proven.lower);
        assert!(
            BetaPosterior::from_counts(1, 0).mean() < BetaPosterior::from_counts(80, 20).mean()
        );
    }

    #[test]
    fn wilson_guards() {
        assert_eq!(wilson_interval(0, 0, Z_95), Interval::UNINFORMATIVE);
        assert_eq!(wilson_interval(3, 5, f64::NAN), Interval::UNINFORMATIVE);
        assert_eq!(wilson_interval(3, 5, -1.0), Interval::UNINFORMATIVE);
        assert_eq!(
            wilson_interval(3, 5, f64::INFINITY),
            Interval::UNINFORMATIVE
        );
        // More successes than runs is clamped, not a panic or a rate above 1.
        assert_eq!(wilson_interval(7, 5, Z_95), wilson_interval(5, 5, Z_95));
        // z = 0 collapses to the observed rate.
        let point = wilson_interval(3, 4, 0.0);
        assert!(close(point.lower, 0.75, 1e-15) && close(point.upper, 0.75, 1e-15));
    }

    #[test]
    fn wilson_ties_and_symmetry() {
        // Same rate, more data: a narrower interval around the same centre region.
        let small = wilson_interval(4, 5, Z_95);
        let large = wilson_interval(80, 100, Z_95);
        assert!(large.width() < small.width());
        // s/n and (n−s)/n are mirror images.
        let a = wilson_interval(3, 10, Z_95);
        let b = wilson_interval(7, 10, Z_95);
        assert!(close(a.lower, 1.0 - b.upper, 1e-12) && close(a.upper, 1.0 - b.lower, 1e-12));
        // Equal counts give identical intervals (ties stay ties).
        assert_eq!(wilson_interval(5, 9, Z_95), wilson_interval(5, 9, Z_95));
    }

    #[test]
    fn success_rate_known_answers() {
        assert_eq!(success_rate(0, 0), None);
        assert_eq!(success_rate(3, 4), Some(0.75));
        assert_eq!(success_rate(9, 4), Some(1.0));
    }

    #[test]
    fn beta_moments_known_answers() {
        let uniform = BetaPosterior::UNIFORM;
        assert!(close(uniform.mean(), 0.5, 1e-15));
        assert!(close(uniform.variance(), 1.0 / 12.0, 1e-15));
        // Beta(3, 2): mean 3/5, variance 6 / (25 · 6) = 0.04.
        let posterior = BetaPosterior::from_counts(2, 1);
        assert!(close(posterior.mean(), 0.6, 1e-15));
        assert!(close(posterior.variance(), 0.04, 1e-15));
        assert!(close(posterior.std_dev(), 0.2, 1e-15));
    }

    #[test]
    fn beta_guards() {
        assert!(BetaPosterior::new(0.0, 1.0).is_none());
        assert!(BetaPosterior::new(1.0, -1.0).is_none());
        assert!(BetaPosterior::new(f64::NAN, 1.0).is_none());
        assert!(BetaPosterior::new(f64::INFINITY, 1.0).is_none());
        assert_eq!(BetaPosterior::new(2.0, 3.0).map(|b| b.mean()), Some(0.4));
        // Fractional evidence is clamped into [0, count]; NaN and negatives count as nothing.
        assert_eq!(
            BetaPosterior::from_fractional(5.0, 2.0),
            BetaPosterior::from_counts(2, 0)
        );
        assert_eq!(
            BetaPosterior::from_fractional(f64::NAN, 2.0),
            BetaPosterior::from_counts(0, 2)
        );
        assert_eq!(
            BetaPosterior::from_fractional(1.0, -3.0),
            BetaPosterior::UNIFORM
        );
        assert_eq!(
            BetaPosterior::from_fractional(1.5, 3.0),
            BetaPosterior {
                alpha: 2.5,
                beta: 2.5
            }
        );
    }

    #[test]
    fn beta_samples_have_the_right_mean() {
        let mut rng = StdRng::seed_from_u64(7);
        let posterior = BetaPosterior::from_counts(30, 10);
        let draws = 20_000;
        let mean = (0..draws).map(|_| posterior.sample(&mut rng)).sum::<f64>() / draws as f64;
        // Standard error of the mean is about 0.066 / sqrt(20000) ≈ 0.0005.
        assert!(close(mean, posterior.mean(), 0.003), "{mean}");
        for _ in 0..1000 {
            let draw = posterior.sample(&mut rng);
            assert!((0.0..=1.0).contains(&draw));
        }
    }

    #[test]
    fn comparing_posteriors() {
        let a = BetaPosterior::from_counts(80, 20);
        let b = BetaPosterior::from_counts(1, 0);
        assert!(close(a.prob_greater_than(&a), 0.5, 1e-12));
        assert!(a.prob_greater_than(&b) > 0.5);
        assert!(close(
            a.prob_greater_than(&b) + b.prob_greater_than(&a),
            1.0,
            1e-6
        ));
        assert_eq!(prob_greater(1.0, 0.0, 0.0, 0.0), 1.0);
        assert_eq!(prob_greater(0.0, 0.0, 1.0, 0.0), 0.0);
        assert_eq!(prob_greater(0.3, 0.0, 0.3, 0.0), 0.5);
    }

    #[test]
    fn normal_cdf_known_answers() {
        assert!(close(normal_cdf(0.0), 0.5, 1e-7));
        assert!(close(normal_cdf(1.0), 0.841_344_746, 1e-7));
        assert!(close(normal_cdf(-1.0), 0.158_655_254, 1e-7));
        assert!(close(normal_cdf(Z_95), 0.975, 1e-7));
        assert!(close(normal_cdf(-3.0), 0.001_349_898, 1e-7));
        assert_eq!(normal_cdf(f64::INFINITY), 1.0);
        assert_eq!(normal_cdf(f64::NEG_INFINITY), 0.0);
        assert!(normal_cdf(f64::NAN).is_nan());
    }
}
