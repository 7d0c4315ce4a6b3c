//! States, rejections and the errors of wrapped calls.

use std::fmt;
use std::time::Duration;

/// The state of a circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls flow; failures are counted.
    Closed,
    /// Calls are rejected without touching the service.
    Open,
    /// A limited number of trial calls test whether the service recovered.
    HalfOpen,
}

impl State {
    /// The name used in the API: `CLOSED`, `OPEN` or `HALF_OPEN`.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Open => "OPEN",
            State::HalfOpen => "HALF_OPEN",
        }
    }

    /// Parses `CLOSED`, `OPEN` or `HALF_OPEN` (as stored or sent by another instance).
    pub fn parse(name: &str) -> Option<State> {
        match name {
            "CLOSED" => Some(State::Closed),
            "OPEN" => Some(State::Open),
            "HALF_OPEN" => Some(State::HalfOpen),
            _ => None,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a call was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The circuit is open and its open period has not ended.
    Open,
    /// An operator forced the circuit open; it stays open until closed or reset.
    ForcedOpen,
    /// The circuit is half-open and every trial slot is taken.
    HalfOpenFull,
    /// The open period is over but the trial is coordinated elsewhere: the breaker waits
    /// for [`Breaker::grant_trial`](crate::Breaker::grant_trial), or another instance
    /// runs the trial.
    AwaitingTrial,
}

impl RejectReason {
    /// A short stable name (`open`, `forced_open`, `half_open_full`, `awaiting_trial`),
    /// usable as a metric label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Open => "open",
            RejectReason::ForcedOpen => "forced_open",
            RejectReason::HalfOpenFull => "half_open_full",
            RejectReason::AwaitingTrial => "awaiting_trial",
        }
    }
}

/// A call the breaker refused.
///
/// One packed `u64` (`Copy`, no allocation), so that a `Result` carrying it is returned
/// in registers or moved as whole words: a rejection stays cheap.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rejected {
    /// bits 0..2 state, bits 2..4 reason, bits 4..64 nanoseconds until the open period
    /// ends (`NO_RETRY`: unknown).
    bits: u64,
}

const NO_RETRY: u64 = (1 << 60) - 1;

impl Rejected {
    /// A rejection (mostly useful to tests and to wrappers that reject on their own).
    #[inline]
    pub fn new(state: State, reason: RejectReason, retry_after: Option<Duration>) -> Self {
        let retry = retry_after.map_or(NO_RETRY, |d| {
            u64::try_from(d.as_nanos()).map_or(NO_RETRY - 1, |n| n.min(NO_RETRY - 1))
        });
        let state = match state {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        };
        let reason = match reason {
            RejectReason::Open => 0,
            RejectReason::ForcedOpen => 1,
            RejectReason::HalfOpenFull => 2,
            RejectReason::AwaitingTrial => 3,
        };
        Rejected {
            bits: retry << 4 | reason << 2 | state,
        }
    }

    /// The state the breaker was in.
    #[inline]
    pub fn state(&self) -> State {
        match self.bits & 0b11 {
            0 => State::Closed,
            1 => State::Open,
            _ => State::HalfOpen,
        }
    }

    /// Why the call was refused.
    #[inline]
    pub fn reason(&self) -> RejectReason {
        match (self.bits >> 2) & 0b11 {
            0 => RejectReason::Open,
            1 => RejectReason::ForcedOpen,
            2 => RejectReason::HalfOpenFull,
            _ => RejectReason::AwaitingTrial,
        }
    }

    /// How long until the open period ends, when known (only [`RejectReason::Open`]).
    #[inline]
    pub fn retry_after(&self) -> Option<Duration> {
        let retry = self.bits >> 4;
        (retry != NO_RETRY).then(|| Duration::from_nanos(retry))
    }
}

impl fmt::Debug for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("state", &self.state())
            .field("reason", &self.reason())
            .field("retry_after", &self.retry_after())
            .finish()
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            RejectReason::Open => f.write_str("circuit breaker OPEN")?,
            RejectReason::ForcedOpen => f.write_str("circuit breaker OPEN (forced)")?,
            RejectReason::HalfOpenFull => {
                f.write_str("circuit breaker HALF_OPEN: trial slots taken")?
            }
            RejectReason::AwaitingTrial => {
                f.write_str("circuit breaker OPEN: awaiting a coordinated trial")?
            }
        }
        if let Some(after) = self.retry_after() {
            write!(f, "; next attempt in {} ms", after.as_millis())?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

/// The error of a call made through a breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker refused the call; the wrapped operation was not run.
    Rejected(Rejected),
    /// The wrapped operation ran and failed with this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// The rejection, if the call was rejected.
    pub fn rejected(&self) -> Option<&Rejected> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Inner(_) => None,
        }
    }

    /// The operation's own error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Rejected(_) => None,
            CallError::Inner(e) => Some(e),
        }
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Inner(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_pack_into_one_word() {
        assert_eq!(std::mem::size_of::<Rejected>(), 8);
        assert_eq!(std::mem::size_of::<CallError<&str>>(), 16);
        for state in [State::Closed, State::Open, State::HalfOpen] {
            for reason in [
                RejectReason::Open,
                RejectReason::ForcedOpen,
                RejectReason::HalfOpenFull,
                RejectReason::AwaitingTrial,
            ] {
                for retry in [None, Some(Duration::ZERO), Some(Duration::from_secs(60))] {
                    let r = Rejected::new(state, reason, retry);
                    assert_eq!(
                        (r.state(), r.reason(), r.retry_after()),
                        (state, reason, retry)
                    );
                }
            }
        }
        let far = Rejected::new(State::Open, RejectReason::Open, Some(Duration::MAX));
        assert!(far.retry_after().unwrap() > Duration::from_secs(365 * 24 * 3600));
    }
}
