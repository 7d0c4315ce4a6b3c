//! Settings of a breaker: trip policy, open period, half-open trials, classification.

use std::fmt;
use std::time::Duration;

use crate::classify::Classifier;

/// When a `CLOSED` breaker opens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    /// Open after `threshold` consecutive failures (any success resets the count).
    ///
    /// This is the default (`threshold = 5`) and the fastest policy: a healthy `CLOSED`
    /// breaker takes no lock, writes no shared memory and reads no clock.
    ConsecutiveFailures {
        /// Consecutive failures that open the circuit.
        threshold: u32,
    },
    /// Open when the failure rate (or the slow-call rate) over a sliding window reaches a
    /// threshold, as resilience4j does. Every outcome is recorded in the window under a
    /// short lock, so this policy costs more per call than
    /// [`Policy::ConsecutiveFailures`].
    FailureRate(FailureRate),
}

impl Default for Policy {
    fn default() -> Self {
        Policy::ConsecutiveFailures { threshold: 5 }
    }
}

/// Settings of the failure-rate policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FailureRate {
    /// The sliding window the rates are computed over.
    pub window: Window,
    /// No decision is taken before the window holds at least this many calls.
    pub minimum_calls: u32,
    /// Failure rate in `0.0..=1.0` (for example `0.5`) at or above which the circuit opens.
    pub threshold: f64,
    /// Optional slow-call detection.
    pub slow_call: Option<SlowCall>,
}

impl Default for FailureRate {
    fn default() -> Self {
        FailureRate {
            window: Window::Count(100),
            minimum_calls: 100,
            threshold: 0.5,
            slow_call: None,
        }
    }
}

/// The sliding window of the failure-rate policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The last `n` calls.
    Count(u32),
    /// The calls of the last `duration`, kept in 20 buckets (so the window slides in
    /// steps of `duration / 20`). Needs a clock read per call.
    Time(Duration),
}

/// Slow-call detection: a call slower than `duration` counts as slow, and the circuit
/// opens when the share of slow calls in the window reaches `rate`.
///
/// A slow call that succeeded is still a success for the consecutive-failure count; it
/// only weighs on the slow-call rate. Needs a clock read per call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowCall {
    /// Calls at least this long are slow.
    pub duration: Duration,
    /// Slow-call rate in `0.0..=1.0` at or above which the circuit opens.
    pub rate: f64,
}

/// Every setting of a breaker. [`Config::default`] is the user's design: open after 5
/// consecutive failures, stay open 60 s, then admit one trial at a time, close after 2
/// successful trials.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// When a `CLOSED` breaker opens.
    pub policy: Policy,
    /// How long the circuit stays `OPEN` before a trial call is let through.
    pub open_duration: Duration,
    /// Growth of the open period after each failed trial (`1.0`: constant). The period
    /// after `k` consecutive failed trials is `open_duration * multiplier^k`, capped at
    /// `max_open_duration`; it returns to `open_duration` when the circuit closes.
    pub backoff_multiplier: f64,
    /// Cap of the open period when `backoff_multiplier > 1`.
    pub max_open_duration: Duration,
    /// Random extra open time, as a fraction of the open period in `0.0..=1.0`: with
    /// `0.1` a 60 s period becomes 60–66 s, so that many breakers do not all retry at
    /// once. Never shortens the period.
    pub jitter: f64,
    /// How many trial calls may run at the same time in `HALF_OPEN` (default 1). Calls
    /// beyond it are rejected, never queued.
    pub half_open_max_trials: u32,
    /// How many successful trials close the circuit (default 2). Any failed trial
    /// re-opens it.
    pub half_open_successes_to_close: u32,
    /// What counts as a failure.
    pub classifier: Classifier,
    /// When `true`, the breaker does not start a half-open trial on its own when its open
    /// period ends: it rejects calls with [`RejectReason::AwaitingTrial`], emits
    /// [`Event::TrialDue`] once, and waits for [`Breaker::grant_trial`]. This is the hook
    /// for a cluster-wide trial lease; see [`Breaker::set_coordinated`].
    ///
    /// [`RejectReason::AwaitingTrial`]: crate::RejectReason::AwaitingTrial
    /// [`Event::TrialDue`]: crate::Event::TrialDue
    /// [`Breaker::grant_trial`]: crate::Breaker::grant_trial
    /// [`Breaker::set_coordinated`]: crate::Breaker::set_coordinated
    pub coordinated_trials: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: Policy::default(),
            open_duration: Duration::from_secs(60),
            backoff_multiplier: 1.0,
            max_open_duration: Duration::from_secs(60),
            jitter: 0.0,
            half_open_max_trials: 1,
            half_open_successes_to_close: 2,
            classifier: Classifier::default(),
            coordinated_trials: false,
        }
    }
}

/// The largest number of concurrent half-open trials a breaker supports.
pub const MAX_TRIALS: u32 = (1 << 12) - 1;

/// A setting that a breaker cannot work with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting, as named in [`Config`] (for example `"half_open_max_trials"`).
    pub setting: &'static str,
    /// What was wrong and what is expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid breaker setting `{}`: {}",
            self.setting, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

fn err(setting: &'static str, message: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError {
        setting,
        message: message.into(),
    })
}

fn is_rate(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

impl Config {
    /// Checks that every setting is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.policy {
            Policy::ConsecutiveFailures { threshold } => {
                if threshold == 0 {
                    return err("policy.threshold", "must be at least 1");
                }
            }
            Policy::FailureRate(rate) => {
                match rate.window {
                    Window::Count(0) => return err("policy.window", "must hold at least 1 call"),
                    Window::Time(d) if d < Duration::from_millis(20) => {
                        return err("policy.window", "a time window must be at least 20 ms")
                    }
                    _ => {}
                }
                if rate.minimum_calls == 0 {
                    return err("policy.minimum_calls", "must be at least 1");
                }
                if let Window::Count(n) = rate.window {
                    if rate.minimum_calls > n {
                        return err(
                            "policy.minimum_calls",
                            format!(
                                "{} is more than the window of {n} calls",
                                rate.minimum_calls
                            ),
                        );
                    }
                }
                if !is_rate(rate.threshold) || rate.threshold == 0.0 {
                    return err("policy.threshold", "must be a rate in (0, 1]");
                }
                if let Some(slow) = rate.slow_call {
                    if !is_rate(slow.rate) || slow.rate == 0.0 {
                        return err("policy.slow_call.rate", "must be a rate in (0, 1]");
                    }
                    if slow.duration.is_zero() {
                        return err("policy.slow_call.duration", "must be more than zero");
                    }
                }
            }
        }
        if self.open_duration.is_zero() {
            return err("open_duration", "must be more than zero");
        }
        if !(self.backoff_multiplier >= 1.0 && self.backoff_multiplier.is_finite()) {
            return err("backoff_multiplier", "must be a finite number >= 1.0");
        }
        if self.max_open_duration < self.open_duration {
            return err("max_open_duration", "must be at least open_duration");
        }
        if !is_rate(self.jitter) {
            return err("jitter", "must be a fraction in [0, 1]");
        }
        if self.half_open_max_trials == 0 || self.half_open_max_trials > MAX_TRIALS {
            return err(
                "half_open_max_trials",
                format!("must be between 1 and {MAX_TRIALS}"),
            );
        }
        if self.half_open_successes_to_close == 0 {
            return err("half_open_successes_to_close", "must be at least 1");
        }
        Ok(())
    }

    /// Whether this configuration needs the time of every call.
    pub(crate) fn needs_call_time(&self) -> bool {
        matches!(
            self.policy,
            Policy::FailureRate(FailureRate {
                window: Window::Time(_),
                ..
            }) | Policy::FailureRate(FailureRate {
                slow_call: Some(_),
                ..
            })
        )
    }
}

fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::ConsecutiveFailures { threshold } => {
                write!(f, "open after {threshold} consecutive failures")
            }
            Policy::FailureRate(rate) => {
                write!(
                    f,
                    "open at failure rate >= {}% over the last ",
                    rate.threshold * 100.0
                )?;
                match rate.window {
                    Window::Count(n) => write!(f, "{n} calls")?,
                    Window::Time(d) => write!(f, "{}", secs(d))?,
                }
                write!(f, " (minimum {} calls)", rate.minimum_calls)?;
                if let Some(slow) = rate.slow_call {
                    write!(
                        f,
                        " or slow-call rate >= {}% (slow: >= {})",
                        slow.rate * 100.0,
                        secs(slow.duration)
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Config {
    /// A one-line description, for example: `open after 5 consecutive failures; open 60s;
    /// half-open: 1 concurrent trial, 2 successes to close`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; open {}", self.policy, secs(self.open_duration))?;
        if self.backoff_multiplier > 1.0 {
            write!(
                f,
                " (x{} per failed trial, max {})",
                self.backoff_multiplier,
                secs(self.max_open_duration)
            )?;
        }
        if self.jitter > 0.0 {
            write!(f, " + up to {}% jitter", self.jitter * 100.0)?;
        }
        write!(
            f,
            "; half-open: {} concurrent trial{}, {} success{} to close",
            self.half_open_max_trials,
            if self.half_open_max_trials == 1 {
                ""
            } else {
                "s"
            },
            self.half_open_successes_to_close,
            if self.half_open_successes_to_close == 1 {
                ""
            } else {
                "es"
            },
        )
    }
}
