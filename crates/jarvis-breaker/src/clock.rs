//! Injectable time: the breaker never calls `Instant::now()` directly.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A source of time for a breaker.
///
/// The breaker reads the monotonic clock ([`Clock::now`]) only on paths that need time:
/// an `OPEN` breaker deciding whether its open period is over, a failure being recorded,
/// and the failure-rate policy when it uses a time window or slow-call detection. The
/// default consecutive-failures policy never reads it while `CLOSED` and healthy.
///
/// The wall clock ([`Clock::wall`]) is read only to stamp the times shown in a
/// [`Snapshot`](crate::Snapshot) (`lastFailureAt`, `openedAt`, `nextAttemptAt`).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Monotonic time, used for every duration the breaker measures.
    fn now(&self) -> Instant;

    /// Wall-clock time, used only to report timestamps.
    fn wall(&self) -> SystemTime;
}

/// The real clocks of the operating system.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[inline]
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to, for deterministic tests.
///
/// Both the monotonic and the wall clock advance together.
///
/// ```
/// use jarvis_breaker::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let before = clock.now();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now() - before, Duration::from_secs(60));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    wall_origin: SystemTime,
    offset_nanos: AtomicU64,
}

impl ManualClock {
    /// A manual clock starting at the current real time.
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }

    /// A manual clock whose wall clock starts at `wall`.
    pub fn starting_at(wall: SystemTime) -> Self {
        Self {
            origin: Instant::now(),
            wall_origin: wall,
            offset_nanos: AtomicU64::new(0),
        }
    }

    /// Moves both clocks forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// Time elapsed on this clock since it was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + self.elapsed()
    }

    fn wall(&self) -> SystemTime {
        self.wall_origin + self.elapsed()
    }
}
