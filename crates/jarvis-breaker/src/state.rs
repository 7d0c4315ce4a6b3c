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

/// A call the breaker refused. A 16-byte `Copy` value: rejecting allocates nothing, and a
/// `Result` carrying it stays small.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rejected {
    /// Nanoseconds until the open period ends; `u64::MAX` when unknown.
    retry_after_ns: u64,
    state: State,
    reason: RejectReason,
}

impl Rejected {
    /// A rejection (mostly useful to tests and to wrappers that reject on their own).
    pub fn new(state: State, reason: RejectReason, retry_after: Option<Duration>) -> Self {
        Rejected {
            retry_after_ns: retry_after.map_or(u64::MAX, |d| {
                u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
            }),
            state,
            reason,
        }
    }

    /// The state the breaker was in.
    pub fn state(&self) -> State {
        self.state
    }

    /// Why the call was refused.
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// How long until the open period ends, when known (only [`RejectReason::Open`]).
    pub fn retry_after(&self) -> Option<Duration> {
        (self.retry_after_ns != u64::MAX).then(|| Duration::from_nanos(self.retry_after_ns))
    }
}

impl fmt::Debug for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("state", &self.state)
            .field("reason", &self.reason)
            .field("retry_after", &self.retry_after())
            .finish()
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
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
