//! Events a breaker reports to its listener, and state that comes from elsewhere.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::config::Policy;
use crate::state::{Rejected, State};
use crate::Breaker;

/// Who caused a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Calls through this breaker (outcomes, the end of an open period).
    Local,
    /// An operator action on this breaker ([`Breaker::force_open`], [`Breaker::force_closed`],
    /// [`Breaker::reset`]).
    Manual,
    /// State applied with [`Breaker::apply_remote`]: it came from another instance, so a
    /// listener that shares state must not send it back.
    Remote,
}

impl Origin {
    /// `local`, `manual` or `remote`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Origin::Local => "local",
            Origin::Manual => "manual",
            Origin::Remote => "remote",
        }
    }
}

/// A change of state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// The generation the breaker entered (it grows by one at every transition).
    pub generation: u64,
    /// Who caused it.
    pub origin: Origin,
    /// `true` when the circuit is held open by an operator (or a remote forced open).
    pub forced: bool,
    /// Consecutive failures at the time of the transition.
    pub consecutive_failures: u32,
    /// Successful half-open trials at the time of the transition.
    pub half_open_successes: u32,
    /// For `OPEN`: how long until a trial is allowed (`None` when forced).
    pub open_for: Option<Duration>,
}

/// What a breaker reports to its [`Listener`].
///
/// Besides transitions and rejections, it reports exactly the *state-relevant* changes a
/// breaker that shares its state with other instances must publish: a failure counted
/// while `CLOSED`, the first success after failures, and half-open trial successes.
/// A success while `CLOSED` with no failures counted reports nothing, so the hot path
/// never calls the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The circuit changed state.
    Transition(Transition),
    /// A call was rejected.
    Rejected(Rejected),
    /// A failure was counted while `CLOSED` (the transition, if it trips, follows as a
    /// separate event).
    FailureRecorded {
        /// The consecutive-failure count after this failure.
        consecutive_failures: u32,
        /// The generation it was counted in.
        generation: u64,
    },
    /// A success while `CLOSED` reset a non-zero consecutive-failure count.
    FailuresReset {
        /// The count before the reset.
        previous: u32,
        /// The generation it happened in.
        generation: u64,
    },
    /// A half-open trial succeeded without closing the circuit yet (the consecutive-failure
    /// count is reset to zero with it).
    TrialSucceeded {
        /// Successful trials so far in this half-open period.
        half_open_successes: u32,
        /// The generation it happened in.
        generation: u64,
    },
    /// With coordinated trials: the open period of this generation is over and the
    /// breaker waits for [`Breaker::grant_trial`]. Reported once per generation.
    TrialDue {
        /// The generation to pass to [`Breaker::grant_trial`].
        generation: u64,
    },
}

/// Receives a breaker's events.
///
/// Registered at construction ([`BreakerBuilder::listener`](crate::BreakerBuilder::listener))
/// and called **synchronously** on the thread that caused the event, after the breaker
/// released its internal lock (so a listener may call [`Breaker::snapshot`]). Listeners
/// **must not block**: no I/O, no waiting on locks held across I/O. Hand the event to a
/// channel or bump a metric, and return. Events from different threads may arrive out of
/// order; the `generation` they carry orders them.
///
/// Any `Fn(&Breaker, &Event) + Send + Sync` closure is a listener.
pub trait Listener: Send + Sync + 'static {
    /// Called for every event of `breaker`.
    fn on_event(&self, breaker: &Breaker, event: &Event);
}

impl<F> Listener for F
where
    F: Fn(&Breaker, &Event) + Send + Sync + 'static,
{
    fn on_event(&self, breaker: &Breaker, event: &Event) {
        self(breaker, event)
    }
}

/// State received from another instance (for example read from a shared store), applied
/// with [`Breaker::apply_remote`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteState {
    /// The state to take.
    pub state: State,
    /// For `OPEN`: `true` when held open by an operator (`next_attempt_in` is ignored).
    pub forced: bool,
    /// The consecutive-failure count.
    pub consecutive_failures: u32,
    /// Successful half-open trials.
    pub half_open_successes: u32,
    /// For `OPEN`: time until a trial is allowed (`None` or zero: now).
    /// For `HALF_OPEN`: the trial runs on another instance, so this instance rejects every
    /// call; once this much time has passed without news (the other instance's trial
    /// lease expired), this instance may start a trial itself. `None`: wait for news.
    pub next_attempt_in: Option<Duration>,
    /// A version that grows with every change of the shared state. A remote state whose
    /// version is not above the last applied one is ignored (stale).
    pub version: u64,
}

/// A consistent-enough picture of a breaker, for the API and metrics.
///
/// Times are wall-clock [`SystemTime`]s (convert with `humantime`, `time` or `chrono` to
/// ISO 8601). Counters are totals since creation or the last [`Breaker::reset`]; they are
/// read without stopping calls, so they may be a few calls apart from each other.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The breaker's name.
    pub name: String,
    /// The current state. An `OPEN` breaker whose `next_attempt_at` is past stays `OPEN`
    /// until the next call moves it to `HALF_OPEN`.
    pub state: State,
    /// `true` when held open by an operator.
    pub forced: bool,
    /// Consecutive failures (`failureCount`).
    pub failure_count: u32,
    /// Successful trials in the current half-open period (`successCount`).
    pub success_count: u32,
    /// Half-open trial calls running now.
    pub trials_in_flight: u32,
    /// Calls that asked the breaker and are finished: successes + failures + ignored +
    /// rejected. A call is counted when its outcome is known.
    pub total_calls: u64,
    /// Calls rejected without touching the service.
    pub rejected_calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Calls whose outcome did not count (cancelled, or permit dropped without an outcome).
    pub ignored: u64,
    /// When the last failure was recorded.
    pub last_failure_at: Option<SystemTime>,
    /// Why the last failure happened (at most 256 bytes).
    pub last_failure_reason: Option<String>,
    /// When the circuit last opened (kept while `OPEN` and `HALF_OPEN`).
    pub opened_at: Option<SystemTime>,
    /// When an `OPEN` circuit will let a trial through (`None` unless `OPEN` and not forced).
    pub next_attempt_at: Option<SystemTime>,
    /// Grows by one at every transition.
    pub generation: u64,
    /// The version of the last remote state applied, if any.
    pub remote_version: Option<u64>,
    /// The trip policy.
    pub policy: Policy,
    /// A one-line description of every setting.
    pub description: String,
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (failures {}, trial successes {}, calls {}, rejected {})",
            self.name,
            self.state,
            self.failure_count,
            self.success_count,
            self.total_calls,
            self.rejected_calls
        )
    }
}
