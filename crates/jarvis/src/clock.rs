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
//! read; on PostgreSQL the store corrects it every [`SYNC_EVERY`] by the database server's
//! clock ([`follow_within`], called by `store::sync_clock`), so every instance of a deployment
//! compares times on one clock, PostgreSQL's, as graphile-worker and River do with `now()`.
//! On the embedded store (one instance) the reference is the machine's clock, followed every
//! [`SYNC_EVERY`] while it agrees within a second (NTP's slewing), and a step of it only once
//! the step has held for [`STEP_SETTLE`] ([`StepFilter`], [`follow_machine_loop`]): a clock set
//! wrong and back within a minute moves nothing, and a laptop resumed from sleep (whose
//! monotonic clock did not count the sleep) is back on real time a minute later.
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
    /// When the wall time last moved by more than [`DRIFT`] at once (a step followed).
    stepped: std::sync::Mutex<Option<Instant>>,
}

impl Reference {
    /// A reference taken from the machine's clock now.
    pub fn new() -> Reference {
        Reference {
            at: Instant::now(),
            epoch_nanos: AtomicI64::new(nanos_of(SystemTime::now())),
            stepped: std::sync::Mutex::new(None),
        }
    }

    /// When the wall time last moved by more than a second at once ([`follow`](Self::follow)).
    pub fn last_step(&self) -> Option<Instant> {
        *self.stepped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reference plus the monotonic clock's progress since.
    pub fn wall(&self) -> SystemTime {
        self.wall_at(Instant::now())
    }

    /// Makes `reference`, read at the monotonic instant `read_at`, the wall time from now on.
    /// Returns how far the wall time moved (positive: forward); a move of more than a second
    /// is remembered as a step ([`last_step`](Self::last_step)).
    pub fn follow(&self, reference: SystemTime, read_at: Instant) -> chrono::TimeDelta {
        let new = nanos_of(reference).saturating_sub(self.nanos_since(read_at));
        let old = self.epoch_nanos.swap(new, Ordering::Relaxed);
        let moved = chrono::TimeDelta::nanoseconds(new.saturating_sub(old));
        if moved.abs() > DRIFT {
            *self.stepped.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        moved
    }

    /// Follows a clock read somewhere between the monotonic instants `sent` and `received`
    /// (a round trip to the database server) by the least move that makes the reading
    /// possible: when `reading` lies between this wall time at `sent` and at `received`, nothing
    /// moves; otherwise the wall time moves so that the nearer end of that window equals it.
    /// Returns how far the wall time moved (see [`follow`](Self::follow)).
    ///
    /// Taking the reading as made halfway through the round trip (the usual estimate) moved
    /// the wall time by up to half of every round trip, and a round trip that waited (for a
    /// pooled connection, its ping, a busy machine) is mostly not the server's: with the
    /// database on the same machine the process ran ~1 ms ahead of the machine's clock, which
    /// every time written by one instance and compared by another (a task's `runAt` against a
    /// claim's `now`) carried. Moving only when the reading is impossible keeps the error
    /// within the shortest round trip seen, and a server on the same machine moves nothing.
    pub fn follow_within(
        &self,
        reading: SystemTime,
        sent: Instant,
        received: Instant,
    ) -> chrono::TimeDelta {
        let (earliest, latest) = (self.wall_at(sent), self.wall_at(received));
        if reading < earliest {
            self.follow(reading, sent)
        } else if reading > latest {
            self.follow(reading, received)
        } else {
            chrono::TimeDelta::zero()
        }
    }

    /// The wall time at the monotonic instant `at`.
    fn wall_at(&self, at: Instant) -> SystemTime {
        time_of(
            self.epoch_nanos
                .load(Ordering::Relaxed)
                .saturating_add(self.nanos_since(at)),
        )
    }

    /// Nanoseconds from the reference's monotonic instant to `at` (negative before it).
    fn nanos_since(&self, at: Instant) -> i64 {
        match at.checked_duration_since(self.at) {
            Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            None => -i64::try_from(self.at.duration_since(at).as_nanos()).unwrap_or(i64::MAX),
        }
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

/// Follows a reference clock read between `sent` and `received` (see
/// [`Reference::follow_within`]).
pub fn follow_within(reading: SystemTime, sent: Instant, received: Instant) -> chrono::TimeDelta {
    reference().follow_within(reading, sent, received)
}

/// When the process's wall time last stepped (see [`Reference::last_step`]): times written
/// before it (the leases of live attempts) are off by the step until they are written again,
/// so the queue's reclaimer waits a lease after it.
pub fn last_step() -> Option<Instant> {
    reference().last_step()
}

/// How far the machine's clock is from the process's wall time (positive: ahead).
pub fn machine_offset() -> chrono::TimeDelta {
    reference().machine_offset()
}

/// How long a step of the machine's clock must hold before an instance on the embedded store
/// follows it.
pub const STEP_SETTLE: Duration = Duration::from_secs(60);

/// How far the machine's clock may be from the process's and still be followed at once (drift,
/// NTP's slewing).
const DRIFT: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// Decides, from the machine's offset sampled now and then, when the process follows the
/// machine's clock: at once while the offset is within a second, and after a step only once
/// the same step (within a second) has held for the settle time.
#[derive(Debug)]
pub struct StepFilter {
    settle: Duration,
    /// A step seen and since when, not followed yet.
    pending: Option<(chrono::TimeDelta, Instant)>,
}

impl StepFilter {
    /// A filter that follows a step once it has held for `settle`.
    pub fn new(settle: Duration) -> StepFilter {
        StepFilter {
            settle,
            pending: None,
        }
    }

    /// The machine's clock is `offset` from the process's at `at`: whether to follow it now.
    pub fn observe(&mut self, offset: chrono::TimeDelta, at: Instant) -> bool {
        if offset.abs() <= DRIFT {
            self.pending = None;
            return true;
        }
        match self.pending {
            Some((seen, since)) if (offset - seen).abs() <= DRIFT => {
                if at.saturating_duration_since(since) >= self.settle {
                    self.pending = None;
                    return true;
                }
                false
            }
            _ => {
                self.pending = Some((offset, at));
                false
            }
        }
    }
}

/// Keeps the process's wall time on the machine's clock for a store without a clock of its
/// own (see [`StepFilter`]): every [`SYNC_EVERY`] until `stop`.
pub async fn follow_machine_loop(mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut filter = StepFilter::new(STEP_SETTLE);
    loop {
        tokio::select! {
            () = tokio::time::sleep(SYNC_EVERY) => {}
            _ = stop.changed() => return,
        }
        let offset = machine_offset();
        if filter.observe(offset, Instant::now()) {
            follow(SystemTime::now(), Instant::now());
            if offset.abs() > DRIFT {
                tracing::warn!(
                    step_ms = offset.num_milliseconds(),
                    "following a step of this machine's clock that held for a minute"
                );
            }
        }
    }
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
        // Following the machine's own clock is no step.
        r.follow(SystemTime::now(), Instant::now());
        assert_eq!(r.last_step(), None);
        // A reference an hour ahead, read now: the wall time is an hour ahead and goes on.
        let moved = r.follow(
            SystemTime::now() + Duration::from_secs(3_600),
            Instant::now(),
        );
        assert!((moved.num_seconds() - 3_600).abs() <= 1, "{moved}");
        assert!(r.last_step().is_some(), "an hour is a step");
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
    fn a_reading_within_the_round_trip_moves_nothing_and_one_outside_moves_the_least() {
        let r = Reference::new();
        let ms = Duration::from_millis;
        let sent = Instant::now();
        let received = sent + ms(4);
        let at_sent = r.wall_at(sent);
        // Read anywhere within the round trip: consistent, nothing moves (the midpoint estimate
        // would have moved by up to 2 ms).
        for k in [0, 1, 3, 4] {
            let moved = r.follow_within(at_sent + ms(k), sent, received);
            assert_eq!(moved, chrono::TimeDelta::zero(), "read {k} ms in");
        }
        assert_eq!(r.wall_at(sent), at_sent);
        // A server 10 ms ahead: moved so that the latest possible moment matches (6 ms), not
        // by the whole 10 (the reading may have been taken at the start of the trip).
        let moved = r.follow_within(at_sent + ms(10), sent, received);
        assert_eq!(moved, chrono::TimeDelta::milliseconds(6));
        // Now 10 ms behind the new wall time: moved back to the earliest possible moment.
        let at_sent = r.wall_at(sent);
        let moved = r.follow_within(at_sent - ms(10), sent, received);
        assert_eq!(moved, chrono::TimeDelta::milliseconds(-10));
        assert_eq!(r.last_step(), None, "moves of milliseconds are no step");
        // An hour off is a step.
        let at_sent = r.wall_at(sent);
        r.follow_within(at_sent + Duration::from_secs(3_600), sent, received);
        assert!(r.last_step().is_some());
    }

    #[test]
    fn a_step_is_followed_only_once_it_has_held() {
        let mut f = StepFilter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let ms = chrono::TimeDelta::milliseconds;
        // Drift is followed at once.
        assert!(f.observe(ms(300), at(0)));
        assert!(f.observe(ms(-900), at(10)));
        // A jump of an hour, back after 50 s: never followed.
        for s in [20, 30, 40, 50, 60, 70] {
            assert!(!f.observe(ms(3_600_000), at(s)), "followed at {s} s");
        }
        assert!(f.observe(ms(0), at(80)));
        // A step that holds (a resumed laptop): followed once it has held for 60 s.
        assert!(!f.observe(ms(7_200_000), at(90)));
        assert!(!f.observe(ms(7_200_400), at(140)));
        assert!(f.observe(ms(7_199_800), at(150)));
        // A step that changes is a new step: its wait starts again.
        assert!(!f.observe(ms(-5_000), at(160)));
        assert!(!f.observe(ms(9_000), at(230)));
        assert!(!f.observe(ms(9_000), at(280)));
        assert!(f.observe(ms(9_000), at(290)));
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
