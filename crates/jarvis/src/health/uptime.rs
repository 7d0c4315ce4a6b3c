//! Uptime over the last hour and day, kept in memory per service in a few fixed buckets, and
//! in the store so that it survives restarts and is shared by instances.
//!
//! Twelve 5-minute buckets answer "the last hour" and twenty-four 1-hour buckets "the last day":
//! 36 small buckets per service (under 600 bytes), whatever the check rate, so 20,000 services
//! cost about 12 MB. The windows slide by whole buckets, so "the last hour" covers 55 to 60
//! minutes.
//!
//! The same buckets are kept in the store (`health_uptime`, one row per service and bucket).
//! What this instance counts goes into its buckets at once and into `pending`; every
//! `JARVIS_HEALTH_UPTIME_SYNC_MS` the monitor adds the pending counts to the stored ones. At
//! start the buckets are seeded from the store, and with PostgreSQL the current buckets are
//! read back after every sync ([`Uptime::set_stored`]: stored counts plus what is still
//! pending), so every instance shows the counts of all instances. Answering the API therefore
//! never touches the store.

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

    /// Replaces the counts of the bucket starting at `start` (unix seconds) unless the slot
    /// already holds a newer bucket.
    fn set(&mut self, start: u64, up: u32, total: u32) {
        let period = start / WIDTH + 1;
        let b = &mut self.buckets[(period % N as u64) as usize];
        if b.period <= period {
            *b = Bucket { period, up, total };
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

/// Width of the buckets of the hour window, seconds.
pub const HOUR_BUCKET: u32 = 300;
/// Width of the buckets of the day window, seconds.
pub const DAY_BUCKET: u32 = 3600;

/// Checks counted in one bucket and not yet added to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// [`HOUR_BUCKET`] or [`DAY_BUCKET`].
    pub width_s: u32,
    /// When the bucket starts (unix seconds).
    pub bucket_start: u64,
    /// Checks up or degraded.
    pub up: u32,
    /// All checks.
    pub total: u32,
    /// Sum of the latencies of the checks that reached the service, ms (hour buckets only:
    /// the analytics API's latency series).
    pub latency_sum_ms: u64,
    /// How many checks reached the service (hour buckets only).
    pub latency_count: u32,
}

/// Uptime of one service: share of checks that found it up or degraded.
#[derive(Debug, Clone)]
pub struct Uptime {
    hour: Ring<12, { HOUR_BUCKET as u64 }>,
    day: Ring<24, { DAY_BUCKET as u64 }>,
    /// Counted here since the last sync (a few entries: the current buckets, and the previous
    /// ones right after a bucket boundary).
    pending: Vec<Pending>,
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
            pending: Vec::new(),
        }
    }

    /// Counts one check at `unix_secs`.
    pub fn record(&mut self, unix_secs: u64, up: bool) {
        self.hour.record(unix_secs, up);
        self.day.record(unix_secs, up);
        for width_s in [HOUR_BUCKET, DAY_BUCKET] {
            let bucket_start = unix_secs / u64::from(width_s) * u64::from(width_s);
            let entry = match self
                .pending
                .iter_mut()
                .find(|p| p.width_s == width_s && p.bucket_start == bucket_start)
            {
                Some(p) => p,
                None => {
                    self.pending.push(Pending {
                        width_s,
                        bucket_start,
                        up: 0,
                        total: 0,
                        latency_sum_ms: 0,
                        latency_count: 0,
                    });
                    self.pending.last_mut().expect("just pushed")
                }
            };
            entry.total = entry.total.saturating_add(1);
            if up {
                entry.up = entry.up.saturating_add(1);
            }
        }
    }

    /// Counts one check at `unix_secs`, and the latency of a check that reached the service
    /// (`None` for one the open circuit rejected).
    pub fn record_check(&mut self, unix_secs: u64, up: bool, latency_ms: Option<u64>) {
        self.record(unix_secs, up);
        if let Some(ms) = latency_ms {
            let bucket_start = unix_secs / u64::from(DAY_BUCKET) * u64::from(DAY_BUCKET);
            if let Some(p) = self
                .pending
                .iter_mut()
                .find(|p| p.width_s == DAY_BUCKET && p.bucket_start == bucket_start)
            {
                p.latency_sum_ms = p.latency_sum_ms.saturating_add(ms);
                p.latency_count = p.latency_count.saturating_add(1);
            }
        }
    }

    /// Takes the counts not yet added to the store.
    pub fn take_pending(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.pending)
    }

    /// Gives back counts that could not be written, to be written with the next sync.
    pub fn restore_pending(&mut self, counts: &[Pending]) {
        for c in counts {
            match self
                .pending
                .iter_mut()
                .find(|p| p.width_s == c.width_s && p.bucket_start == c.bucket_start)
            {
                Some(p) => {
                    p.up = p.up.saturating_add(c.up);
                    p.total = p.total.saturating_add(c.total);
                    p.latency_sum_ms = p.latency_sum_ms.saturating_add(c.latency_sum_ms);
                    p.latency_count = p.latency_count.saturating_add(c.latency_count);
                }
                None => self.pending.push(*c),
            }
        }
    }

    /// Sets a bucket to what the store holds for it (every instance's synced counts), plus what
    /// this instance counted and has not synced yet. Buckets of other widths are ignored.
    pub fn set_stored(&mut self, width_s: u32, bucket_start: u64, up: u64, total: u64) {
        let (mut up, mut total) = (up, total);
        for p in &self.pending {
            if p.width_s == width_s && p.bucket_start == bucket_start {
                up += u64::from(p.up);
                total += u64::from(p.total);
            }
        }
        let clamp = |v: u64| v.min(u64::from(u32::MAX)) as u32;
        match width_s {
            HOUR_BUCKET => self.hour.set(bucket_start, clamp(up), clamp(total)),
            DAY_BUCKET => self.day.set(bucket_start, clamp(up), clamp(total)),
            _ => {}
        }
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

    #[test]
    fn stored_counts_and_pending_counts_add_up() {
        let t0 = 1_800_000_000; // a multiple of 3600
        let mut u = Uptime::new();
        u.record(t0 + 1, true);
        u.record(t0 + 2, false);
        let pending = u.take_pending();
        assert_eq!(
            pending,
            vec![
                Pending {
                    width_s: HOUR_BUCKET,
                    bucket_start: t0,
                    up: 1,
                    total: 2,
                    latency_sum_ms: 0,
                    latency_count: 0,
                },
                Pending {
                    width_s: DAY_BUCKET,
                    bucket_start: t0,
                    up: 1,
                    total: 2,
                    latency_sum_ms: 0,
                    latency_count: 0,
                },
            ]
        );
        // Synced; another instance added 8 up checks; one more check here, not synced yet.
        u.record(t0 + 3, true);
        u.set_stored(HOUR_BUCKET, t0, 9, 10);
        u.set_stored(DAY_BUCKET, t0, 9, 10);
        assert_eq!(u.hour(t0 + 10), Some(90.91));
        assert_eq!(u.day(t0 + 10), u.hour(t0 + 10));
        // A failed write gives the counts back.
        let pending = u.take_pending();
        u.restore_pending(&pending);
        u.restore_pending(&pending);
        assert_eq!(u.take_pending()[0].total, 2);
        // A restarted instance seeded from the store shows the same figure.
        let mut fresh = Uptime::new();
        fresh.set_stored(HOUR_BUCKET, t0, 10, 11);
        fresh.set_stored(DAY_BUCKET, t0, 10, 11);
        assert_eq!(fresh.hour(t0 + 10), u.hour(t0 + 10));
        // Old buckets do not replace newer ones in the ring.
        fresh.set_stored(HOUR_BUCKET, t0 - 3600, 0, 50);
        assert_eq!(fresh.hour(t0 + 10), u.hour(t0 + 10));
    }

    #[test]
    fn latency_is_summed_per_hour_for_checks_that_reached_the_service() {
        let t0 = 1_800_000_000;
        let mut u = Uptime::new();
        u.record_check(t0 + 1, true, Some(30));
        u.record_check(t0 + 2, true, Some(50));
        // Rejected by the open circuit: counted as down, no latency.
        u.record_check(t0 + 3, false, None);
        let pending = u.take_pending();
        let hour = pending.iter().find(|p| p.width_s == DAY_BUCKET).unwrap();
        assert_eq!((hour.total, hour.up), (3, 2));
        assert_eq!((hour.latency_sum_ms, hour.latency_count), (80, 2));
        let five = pending.iter().find(|p| p.width_s == HOUR_BUCKET).unwrap();
        assert_eq!(five.latency_count, 0);
        u.restore_pending(&pending);
        u.restore_pending(&pending);
        let again = u.take_pending();
        let hour = again.iter().find(|p| p.width_s == DAY_BUCKET).unwrap();
        assert_eq!((hour.latency_sum_ms, hour.latency_count), (160, 4));
    }
}
