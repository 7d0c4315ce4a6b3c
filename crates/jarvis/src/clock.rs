//! Time, injected. Engines (the task queue, the health monitor) read time through one
//! [`Clock`] — the breaker crate's trait, so that the whole process shares one notion of it —
//! and take it as a value. Their decisions (retry backoff, lease expiry and reclaiming,
//! skipping a late check) are then tested on a [`ManualClock`] that moves only when told to,
//! without sleeping.
//!
//! This module sits at the bottom of the crate: it depends on nothing else in it.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};

pub use jarvis_breaker::{Clock, ManualClock, SystemClock};

/// A clock shared by the parts of one engine.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clocks, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The clock's wall time as the stores keep it: UTC, truncated to microseconds (PostgreSQL's
/// precision), so what is written compares equal to what is read back.
pub fn utc(clock: &dyn Clock) -> DateTime<Utc> {
    DateTime::<Utc>::from(clock.wall()).trunc_subsecs(6)
}

/// The current time as the stores keep it ([`utc`] of the system clock).
pub fn now() -> DateTime<Utc> {
    utc(&SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

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
