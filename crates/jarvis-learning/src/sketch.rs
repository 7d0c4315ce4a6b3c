//! A mergeable quantile sketch for durations (DDSketch).
//!
//! The learned timeout needs a high quantile (p99) of successful durations, and several Jarvis
//! instances must combine what each has seen. Keeping every duration is unbounded; averaging
//! per-instance p99s is wrong. DDSketch (Masson, Rim & Lee, VLDB 2019) solves both: values go to
//! logarithmic buckets `i = ⌈log_γ x⌉` with `γ = (1 + α)/(1 − α)`, each bucket is a counter, and
//! two sketches merge by adding counters — exactly, associatively and commutatively. Any quantile
//! is returned within relative error `α` of the true sample quantile (here α = 1 %).
//!
//! Durations are integer milliseconds, so the buckets in use are bounded by construction: 1 ms
//! to `u64::MAX` ms spans about 2,200 buckets at α = 1 %, and a realistic range (1 ms to a day)
//! fewer than 600. No collapsing of buckets is needed, which keeps merging exact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The relative accuracy α of every [`DurationSketch`]. It is a constant, not a setting, so that
/// sketches written by any instance or version can be merged.
pub const RELATIVE_ACCURACY: f64 = 0.01;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// A DDSketch of durations in milliseconds, plus their exact count, sum, minimum and maximum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DurationSketch {
    count: u64,
    zero_count: u64,
    sum_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_ms: Option<u64>,
    bins: BTreeMap<i32, u64>,
}

impl DurationSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one duration.
    pub fn add(&mut self, duration_ms: u64) {
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(duration_ms);
        self.min_ms = Some(self.min_ms.map_or(duration_ms, |m| m.min(duration_ms)));
        self.max_ms = Some(self.max_ms.map_or(duration_ms, |m| m.max(duration_ms)));
        if duration_ms == 0 {
            self.zero_count += 1;
        } else {
            *self.bins.entry(bucket_index(duration_ms)).or_insert(0) += 1;
        }
    }

    /// Adds every count of `other` to this sketch (exact, associative and commutative).
    pub fn merge(&mut self, other: &DurationSketch) {
        self.count += other.count;
        self.zero_count += other.zero_count;
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
        self.min_ms = match (self.min_ms, other.min_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_ms = match (self.max_ms, other.max_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (&index, &count) in &other.bins {
            *self.bins.entry(index).or_insert(0) += count;
        }
    }

    /// The number of durations added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The exact mean in ms, or `None` when empty.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ms as f64 / self.count as f64)
    }

    /// The exact smallest duration.
    pub fn min_ms(&self) -> Option<u64> {
        self.min_ms
    }

    /// The exact largest duration.
    pub fn max_ms(&self) -> Option<u64> {
        self.max_ms
    }

    /// The `q`-quantile (`q` in `[0, 1]`, clamped) within 1 % relative error, or `None` when the
    /// sketch is empty or `q` is NaN. `q = 0` and `q = 1` return the exact minimum and maximum.
    ///
    /// As in the reference implementation the quantile is the value of rank `q·(n − 1)` (zero
    /// based): the first bucket whose cumulative count exceeds that rank, reported as the
    /// bucket's centre `2γ^i/(γ + 1)` and clamped into the exact `[min, max]`.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 || q.is_nan() {
            return None;
        }
        let (min, max) = (self.min_ms?, self.max_ms?);
        let q = q.clamp(0.0, 1.0);
        if q == 0.0 {
            return Some(min);
        }
        if q == 1.0 {
            return Some(max);
        }
        let rank = q * (self.count - 1) as f64;
        let mut cumulative = self.zero_count;
        if cumulative as f64 > rank {
            return Some(0);
        }
        let gamma = gamma();
        for (&index, &count) in &self.bins {
            cumulative += count;
            if cumulative as f64 > rank {
                let value = 2.0 * gamma.powi(index) / (gamma + 1.0);
                return Some((value.round() as u64).clamp(min, max));
            }
        }
        Some(max)
    }

    /// The share of durations strictly greater than `threshold_ms`, in `[0, 1]`; 0 when empty.
    ///
    /// Exact when every duration is on one side of the threshold (checked with the exact
    /// minimum and maximum); otherwise the bucket holding the threshold is attributed by the
    /// position of the threshold inside it, so the answer is within that one bucket's share.
    pub fn share_above(&self, threshold_ms: u64) -> f64 {
        let (Some(min), Some(max)) = (self.min_ms, self.max_ms) else {
            return 0.0;
        };
        if max <= threshold_ms {
            return 0.0;
        }
        if min > threshold_ms {
            return 1.0;
        }
        let threshold_index = if threshold_ms == 0 {
            i32::MIN
        } else {
            bucket_index(threshold_ms)
        };
        let gamma = gamma();
        let mut above = 0.0;
        for (&index, &count) in self.bins.range(threshold_index..) {
            if index == threshold_index {
                // Bucket i holds (γ^(i−1), γ^i]; assume a uniform spread inside it.
                let low = gamma.powi(index - 1);
                let high = gamma.powi(index);
                let fraction = ((high - threshold_ms as f64) / (high - low)).clamp(0.0, 1.0);
                above += fraction * count as f64;
            } else {
                above += count as f64;
            }
        }
        (above / self.count as f64).clamp(0.0, 1.0)
    }

    /// The number of non-empty buckets (the memory the sketch uses, roughly).
    pub fn bucket_count(&self) -> usize {
        self.bins.len()
    }
}

/// `⌈log_γ x⌉` for `x ≥ 1`.
fn bucket_index(duration_ms: u64) -> i32 {
    ((duration_ms as f64).ln() / gamma().ln()).ceil() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch_of(values: impl IntoIterator<Item = u64>) -> DurationSketch {
        let mut sketch = DurationSketch::new();
        for value in values {
            sketch.add(value);
        }
        sketch
    }

    fn within_relative(estimate: u64, truth: u64) -> bool {
        (estimate as f64 - truth as f64).abs() <= RELATIVE_ACCURACY * truth as f64 + 0.5
    }

    #[test]
    fn empty_sketch() {
        let sketch = DurationSketch::new();
        assert_eq!(sketch.quantile(0.5), None);
        assert_eq!(sketch.mean_ms(), None);
        assert_eq!(sketch.share_above(10), 0.0);
        assert!(sketch.is_empty());
    }

    #[test]
    fn quantiles_of_one_to_ten_thousand() {
        let sketch = sketch_of(1..=10_000);
        for (q, truth) in [(0.5, 5_000), (0.9, 9_000), (0.95, 9_500), (0.99, 9_900)] {
            let estimate = sketch.quantile(q).unwrap();
            assert!(within_relative(estimate, truth), "q{q}: {estimate}");
        }
        assert_eq!(sketch.quantile(0.0), Some(1));
        assert_eq!(sketch.quantile(1.0), Some(10_000));
        assert_eq!(sketch.quantile(-3.0), Some(1));
        assert_eq!(sketch.quantile(7.0), Some(10_000));
        assert_eq!(sketch.quantile(f64::NAN), None);
        assert_eq!(sketch.mean_ms(), Some(5_000.5));
    }

    #[test]
    fn small_samples_and_ties() {
        let one = sketch_of([1234]);
        assert_eq!(one.quantile(0.99), Some(1234));
        let ties = sketch_of([500; 7]);
        assert_eq!(ties.quantile(0.5), Some(500));
        assert_eq!(ties.quantile(0.99), Some(500));
        let zeros = sketch_of([0, 0, 0, 10]);
        assert_eq!(zeros.quantile(0.5), Some(0));
        assert_eq!(zeros.quantile(1.0), Some(10));
    }

    #[test]
    fn merging_equals_adding_everything_to_one_sketch() {
        let mut a = sketch_of((1..=500).map(|x| x * 7));
        let b = sketch_of((1..=300).map(|x| x * 13 + 5));
        let all = sketch_of(
            (1..=500)
                .map(|x| x * 7)
                .chain((1..=300).map(|x| x * 13 + 5)),
        );
        a.merge(&b);
        assert_eq!(a, all);
    }

    #[test]
    fn share_above_known_answers() {
        let sketch = sketch_of(1..=1000);
        assert_eq!(sketch.share_above(1000), 0.0);
        assert_eq!(sketch.share_above(0), 1.0);
        let share = sketch.share_above(900);
        assert!((share - 0.1).abs() < 0.011, "{share}");
        let share = sketch.share_above(500);
        assert!((share - 0.5).abs() < 0.011, "{share}");
    }

    #[test]
    fn serde_round_trip() {
        let sketch = sketch_of([0, 5, 5, 1_000, 30_000]);
        let json = serde_json::to_string(&sketch).unwrap();
        let back: DurationSketch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sketch);
    }
}
