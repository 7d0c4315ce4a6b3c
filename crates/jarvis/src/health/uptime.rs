//! Uptime over the last hour and day, kept in memory per service in a few fixed buckets.
//!
//! Twelve 5-minute buckets answer "the last hour" and twenty-four 1-hour buckets "the last day":
//! 36 small buckets per service (under 600 bytes), whatever the check rate, so 20,000 services
//! cost about 12 MB. The windows slide by whole buckets, so "the last hour" covers 55 to 60
//! minutes. The figures describe what this instance saw since it started; history in the store
//! keeps every result for longer questions.

/// One bucket: the checks that fell in one period.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// The period's number (`unix seconds / width`); 0 means never used.
    period: u64,
    up: u32,
    total: u32,
}

/// A ring of `N` buckets of `WIDTH` seconds.
#[derive(Debug, Clone)]
struct Ring<const N: usize, const WIDTH: u64> {
    buckets: [Bucket; N],
}

impl<const N: usize, const WIDTH: u64> Ring<N, WIDTH> {
    fn new() -> Self {
        Ring {
            buckets: [Bucket::default(); N],
        }
    }

    fn record(&mut self, unix_secs: u64, up: bool) {
        let period = unix_secs / WIDTH + 1;
        let b = &mut self.buckets[(period % N as u64) as usize];
        if b.period != period {
            *b = Bucket {
                period,
                up: 0,
                total: 0,
            };
        }
        b.total = b.total.saturating_add(1);
        if up {
            b.up = b.up.saturating_add(1);
        }
    }

    fn percent(&self, unix_secs: u64) -> Option<f64> {
        let now = unix_secs / WIDTH + 1;
        let (up, total) = self
            .buckets
            .iter()
            .filter(|b| b.period != 0 && b.period + (N as u64) > now && b.period <= now)
            .fold((0u64, 0u64), |(u, t), b| {
                (u + u64::from(b.up), t + u64::from(b.total))
            });
        (total > 0).then(|| (up as f64 * 10_000.0 / total as f64).round() / 100.0)
    }
}

/// Uptime of one service: share of checks that found it up or degraded.
#[derive(Debug, Clone)]
pub struct Uptime {
    hour: Ring<12, 300>,
    day: Ring<24, 3600>,
}

impl Default for Uptime {
    fn default() -> Self {
        Uptime::new()
    }
}

impl Uptime {
    /// No checks yet.
    pub fn new() -> Uptime {
        Uptime {
            hour: Ring::new(),
            day: Ring::new(),
        }
    }

    /// Counts one check at `unix_secs`.
    pub fn record(&mut self, unix_secs: u64, up: bool) {
        self.hour.record(unix_secs, up);
        self.day.record(unix_secs, up);
    }

    /// Percent up over about the last hour (two decimals), `None` without checks.
    pub fn hour(&self, unix_secs: u64) -> Option<f64> {
        self.hour.percent(unix_secs)
    }

    /// Percent up over about the last day (two decimals), `None` without checks.
    pub fn day(&self, unix_secs: u64) -> Option<f64> {
        self.day.percent(unix_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_slide() {
        let mut u = Uptime::new();
        let t0 = 1_800_000_000;
        assert_eq!(u.hour(t0), None);
        for i in 0..4 {
            u.record(t0 + i, i != 0);
        }
        assert_eq!(u.hour(t0 + 10), Some(75.0));
        assert_eq!(u.day(t0 + 10), Some(75.0));
        // Two hours later the hour window is empty, the day still remembers.
        let later = t0 + 2 * 3600;
        assert_eq!(u.hour(later), None);
        assert_eq!(u.day(later), Some(75.0));
        u.record(later, true);
        assert_eq!(u.hour(later), Some(100.0));
        assert_eq!(u.day(later), Some(80.0));
        // Two days later everything has aged out.
        assert_eq!(u.day(t0 + 2 * 86_400), None);
    }
}
