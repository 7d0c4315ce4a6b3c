//! Deciding what counts against a service.

use std::fmt;

/// What happened to a call, as reported by the caller.
///
/// The breaker's [`Classifier`] turns an outcome into a [`Verdict`]. The library does no
/// I/O and knows no HTTP client: callers map their own results to an `Outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call completed normally.
    Success,
    /// The service answered with this HTTP (or HTTP-like) status code.
    Status(u16),
    /// The call failed with an error not described by a more specific variant.
    Error,
    /// The call did not finish within its deadline.
    Timeout,
    /// The service could not be reached (connection refused, reset, DNS failure...).
    Connection,
    /// The caller gave up on the call (for example the request was cancelled).
    Cancelled,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Success => f.write_str("success"),
            Outcome::Status(code) => write!(f, "HTTP {code}"),
            Outcome::Error => f.write_str("error"),
            Outcome::Timeout => f.write_str("timeout"),
            Outcome::Connection => f.write_str("connection error"),
            Outcome::Cancelled => f.write_str("cancelled by caller"),
        }
    }
}

/// How an outcome moves the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The service is healthy: resets the consecutive-failure count and counts towards
    /// closing a half-open breaker.
    Success,
    /// The call counts against the service.
    Failure,
    /// The call says nothing about the service (a caller cancellation): it is counted in
    /// the statistics as ignored and frees its half-open trial slot, nothing more.
    Ignore,
}

/// Per-breaker rules that turn an [`Outcome`] into a [`Verdict`].
///
/// Defaults: errors, timeouts, connection errors and HTTP 5xx are failures; every other
/// status (including 4xx: the service answered, the request was wrong) is a success;
/// caller cancellations are ignored.
///
/// ```
/// use jarvis_breaker::{Classifier, Outcome, Verdict};
///
/// let strict = Classifier::default().status(429, Verdict::Failure);
/// assert_eq!(strict.classify(Outcome::Status(429)), Verdict::Failure);
/// assert_eq!(strict.classify(Outcome::Status(404)), Verdict::Success);
/// assert_eq!(strict.classify(Outcome::Status(503)), Verdict::Failure);
/// assert_eq!(strict.classify(Outcome::Cancelled), Verdict::Ignore);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Classifier {
    /// One bit per status code 0..=639: set means "failure". Codes above count as failures
    /// only when `high_status_fails`.
    failing_status: [u64; 10],
    high_status_fails: bool,
    error: Verdict,
    timeout: Verdict,
    connection: Verdict,
    cancelled: Verdict,
}

impl Default for Classifier {
    fn default() -> Self {
        let mut c = Classifier {
            failing_status: [0; 10],
            high_status_fails: false,
            error: Verdict::Failure,
            timeout: Verdict::Failure,
            connection: Verdict::Failure,
            cancelled: Verdict::Ignore,
        };
        c = c.status_range(500, 599, Verdict::Failure);
        c
    }
}

impl Classifier {
    /// Sets the verdict of one status code.
    ///
    /// Only [`Verdict::Failure`] and [`Verdict::Success`] are meaningful for statuses;
    /// [`Verdict::Ignore`] is treated as success (the service answered).
    #[must_use]
    pub fn status(self, code: u16, verdict: Verdict) -> Self {
        self.status_range(code, code, verdict)
    }

    /// Sets the verdict of every status code in `from..=to`.
    #[must_use]
    pub fn status_range(mut self, from: u16, to: u16, verdict: Verdict) -> Self {
        let fails = verdict == Verdict::Failure;
        for code in from..=to {
            let code = usize::from(code);
            if code >= 640 {
                self.high_status_fails = fails;
                break;
            }
            let (word, bit) = (code / 64, code % 64);
            if fails {
                self.failing_status[word] |= 1 << bit;
            } else {
                self.failing_status[word] &= !(1 << bit);
            }
        }
        self
    }

    /// Sets the verdict for [`Outcome::Error`].
    #[must_use]
    pub fn errors(mut self, verdict: Verdict) -> Self {
        self.error = verdict;
        self
    }

    /// Sets the verdict for [`Outcome::Timeout`].
    #[must_use]
    pub fn timeouts(mut self, verdict: Verdict) -> Self {
        self.timeout = verdict;
        self
    }

    /// Sets the verdict for [`Outcome::Connection`].
    #[must_use]
    pub fn connection_errors(mut self, verdict: Verdict) -> Self {
        self.connection = verdict;
        self
    }

    /// Sets the verdict for [`Outcome::Cancelled`].
    #[must_use]
    pub fn cancellations(mut self, verdict: Verdict) -> Self {
        self.cancelled = verdict;
        self
    }

    /// Whether this status code counts as a failure.
    pub fn status_fails(&self, code: u16) -> bool {
        let code = usize::from(code);
        if code >= 640 {
            return self.high_status_fails;
        }
        self.failing_status[code / 64] & (1 << (code % 64)) != 0
    }

    /// The verdict for an outcome.
    pub fn classify(&self, outcome: Outcome) -> Verdict {
        match outcome {
            Outcome::Success => Verdict::Success,
            Outcome::Status(code) => {
                if self.status_fails(code) {
                    Verdict::Failure
                } else {
                    Verdict::Success
                }
            }
            Outcome::Error => self.error,
            Outcome::Timeout => self.timeout,
            Outcome::Connection => self.connection,
            Outcome::Cancelled => self.cancelled,
        }
    }
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failing: Vec<u16> = (0u16..640).filter(|c| self.status_fails(*c)).collect();
        f.debug_struct("Classifier")
            .field("failing_status_count", &failing.len())
            .field("error", &self.error)
            .field("timeout", &self.timeout)
            .field("connection", &self.connection)
            .field("cancelled", &self.cancelled)
            .finish()
    }
}
