//! Time, injected. Engines (the task queue, the health monitor) read time through one
//! [`Clock`] — the breaker crate's trait, so that the whole process shares one notion of it —
//! and take it as a value. Their decisions (retry backoff, lease expiry and reclaiming,
//! skipping a late check) are then tested on a [`ManualClock`] that moves only when told to,
//! without sleeping.
//!
//! The process's wall time ([`wall`], [`now`], [`ProcessClock`]) is not the machine's clock as
//! it is at each call: it is a reference time plus the monotonic clock's progress since the
//! reference was taken. A step of the machine's clock (an operator's `date -s`, an NTP step, a
//! VM resumed with a stale clock) does not move it, so leases, retry times and `runAt` written
//! by this instance keep their meaning. The reference is the machine's clock at the first
//! read; on PostgreSQL the store replaces it every [`SYNC_EVERY`] with the database server's
//! clock ([`follow`], called by `store::sync_clock`), so every instance of a deployment
//! compares times on one clock, PostgreSQL's, as graphile-worker and River do with `now()`.
//! On the embedded store (one instance) the reference stays the machine's clock at start:
//! a step while running is ignored until the next start (bench/chaos/README.md, clock jumps).
//!
//! This module sits at the bottom of the crate: it depends on nothing else in it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SubsecRound, Utc};

pub use jarvis_breaker::{Clock, ManualClock, SystemClock};

/// A clock shared by the parts of one engine.
pub type SharedClock = Arc<dyn Clock>;

/// How often a store with a clock of its own (PostgreSQL) is asked for it.
pub const SYNC_EVERY: Duration = Duration::from_secs(10);

/// A wall time that moves with the monotonic clock from a reference: a monotonic instant and
/// the wall time then, in nanoseconds since the Unix epoch (replaced by [`follow`](Self::follow)).
/// The process has one ([`wall`], [`follow`]).
#[derive(Debug)]
pub struct Reference {
    at: Instant,
    epoch_nanos: AtomicI64,
}

impl Reference {
    /// A reference taken from the machine's clock now.
    pub fn new() -> Reference {
        Reference {
            at: Instant::now(),
            epoch_nanos: AtomicI64::new(nanos_of(SystemTime::now())),
        }
    }

    /// The reference plus the monotonic clock's progress since.
    pub fn wall(&self) -> SystemTime {
        let since = i64::try_from(self.at.elapsed().as_nanos()).unwrap_or(i64::MAX);
        time_of(
            self.epoch_nanos
                .load(Ordering::Relaxed)
                .saturating_add(since),
        )
    }

    /// Makes `reference`, read at the monotonic instant `read_at`, the wall time from now on.
    /// Returns how far the wall time moved (positive: forward).
    pub fn follow(&self, reference: SystemTime, read_at: Instant) -> chrono::TimeDelta {
        let since = match read_at.checked_duration_since(self.at) {
            Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            None => -i64::try_from(self.at.duration_since(read_at).as_nanos()).unwrap_or(i64::MAX),
        };
        let new = nanos_of(reference).saturating_sub(since);
        let old = self.epoch_nanos.swap(new, Ordering::Relaxed);
        chrono::TimeDelta::nanoseconds(new.saturating_sub(old))
    }

    /// How far the machine's clock is from [`wall`](Self::wall) (positive: the machine's
    /// clock is ahead).
    pub fn machine_offset(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::nanoseconds(
            nanos_of(SystemTime::now()).saturating_sub(nanos_of(self.wall())),
        )
    }
}

impl Default for Reference {
    fn default() -> Self {
        Reference::new()
    }
}

/// The process's reference, taken from the machine's clock at the first read.
fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(Reference::new)
}

fn nanos_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

fn time_of(nanos: i64) -> SystemTime {
    if nanos >= 0 {
        UNIX_EPOCH + Duration::from_nanos(nanos.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_nanos(nanos.unsigned_abs())
    }
}

/// The process's wall time (see the module docs).
pub fn wall() -> SystemTime {
    reference().wall()
}

/// Makes `reference`, read at `read_at`, the process's wall time (see [`Reference::follow`]).
pub fn follow(reference_time: SystemTime, read_at: Instant) -> chrono::TimeDelta {
    reference().follow(reference_time, read_at)
}

/// How far the machine's clock is from the process's wall time (positive: ahead).
pub fn machine_offset() -> chrono::TimeDelta {
    reference().machine_offset()
}

/// The process's clocks: [`Instant::now`] and [`wall`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessClock;

impl Clock for ProcessClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[inline]
    fn wall(&self) -> SystemTime {
        wall()
    }
}

/// The process's clocks, shared.
pub fn system() -> SharedClock {
    Arc::new(ProcessClock)
}

/// The clock's wall time as the stores keep it: UTC, truncated to microseconds (PostgreSQL's
/// precision), so what is written compares equal to what is read back.
pub fn utc(clock: &dyn Clock) -> DateTime<Utc> {
    DateTime::<Utc>::from(clock.wall()).trunc_subsecs(6)
}

/// The current time as the stores keep it ([`utc`] of the [`ProcessClock`]).
pub fn now() -> DateTime<Utc> {
    utc(&ProcessClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_is_followed_and_then_the_monotonic_clock() {
        let r = Reference::new();
        assert!(r.machine_offset().num_milliseconds().abs() < 1_000);
        // A reference an hour ahead, read now: the wall time is an hour ahead and goes on.
        let moved = r.follow(
            SystemTime::now() + Duration::from_secs(3_600),
            Instant::now(),
        );
        assert!((moved.num_seconds() - 3_600).abs() <= 1, "{moved}");
        let ahead = r.machine_offset();
        assert!((ahead.num_seconds() + 3_600).abs() <= 1, "{ahead}");
        let a = r.wall();
        std::thread::sleep(Duration::from_millis(5));
        let b = r.wall();
        assert!(b.duration_since(a).unwrap() >= Duration::from_millis(5));
        // A reference read a second ago counts that second.
        let earlier = Instant::now() - Duration::from_secs(1);
        r.follow(SystemTime::now() - Duration::from_secs(1), earlier);
        assert!(r.machine_offset().num_milliseconds().abs() < 100);
        // Before the reference's own instant (a read started before the process's first).
        let r2 = Reference::new();
        let before = r2.at - Duration::from_millis(500);
        r2.follow(SystemTime::now() - Duration::from_millis(500), before);
        assert!(r2.machine_offset().num_milliseconds().abs() < 100);
    }

    #[test]
    fn utc_follows_a_manual_clock_to_the_microsecond() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let clock = ManualClock::starting_at(start);
        assert_eq!(
            utc(&clock).timestamp_nanos_opt(),
            Some(1_700_000_000_123_456_000)
        );
        clock.advance(Duration::from_millis(1500));
        assert_eq!(
            utc(&clock).timestamp_nanos_opt(),
            Some(1_700_000_001_623_456_000)
        );
    }
}
