//! Sliding windows of the failure-rate policy. Always used under the breaker's lock.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::{FailureRate, Window};

const TIME_BUCKETS: u64 = 20;

/// One recorded call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sample {
    pub failed: bool,
    pub slow: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// `time / bucket_width` of the calls in this bucket.
    index: u64,
    calls: u32,
    failures: u32,
    slow: u32,
}

#[derive(Debug)]
enum Store {
    Count {
        capacity: usize,
        samples: VecDeque<Sample>,
    },
    Time {
        width_nanos: u64,
        buckets: Vec<Bucket>,
    },
}

/// Calls, failures and slow calls over the window.
#[derive(Debug)]
pub(crate) struct RateWindow {
    settings: FailureRate,
    store: Store,
    calls: u32,
    failures: u32,
    slow: u32,
}

impl RateWindow {
    pub(crate) fn new(settings: FailureRate) -> Self {
        let store = match settings.window {
            Window::Count(n) => Store::Count {
                capacity: n as usize,
                samples: VecDeque::with_capacity(n as usize),
            },
            Window::Time(d) => Store::Time {
                width_nanos: (duration_nanos(d) / TIME_BUCKETS).max(1),
                buckets: vec![Bucket::default(); TIME_BUCKETS as usize],
            },
        };
        RateWindow {
            settings,
            store,
            calls: 0,
            failures: 0,
            slow: 0,
        }
    }

    pub(crate) fn clear(&mut self) {
        *self = RateWindow::new(self.settings);
    }

    /// Whether a call that took `elapsed` is slow.
    pub(crate) fn is_slow(&self, elapsed: Option<Duration>) -> bool {
        match (self.settings.slow_call, elapsed) {
            (Some(slow), Some(elapsed)) => elapsed >= slow.duration,
            _ => false,
        }
    }

    /// Records a call finished at `now_nanos` (monotonic, breaker-relative) and tells
    /// whether the window now asks to open the circuit.
    pub(crate) fn record(&mut self, sample: Sample, now_nanos: u64) -> bool {
        match &mut self.store {
            Store::Count { capacity, samples } => {
                if samples.len() == *capacity {
                    if let Some(old) = samples.pop_front() {
                        self.calls -= 1;
                        self.failures -= u32::from(old.failed);
                        self.slow -= u32::from(old.slow);
                    }
                }
                samples.push_back(sample);
                self.calls += 1;
                self.failures += u32::from(sample.failed);
                self.slow += u32::from(sample.slow);
            }
            Store::Time {
                width_nanos,
                buckets,
            } => {
                let index = now_nanos / *width_nanos;
                let bucket = &mut buckets[(index % TIME_BUCKETS) as usize];
                if bucket.index != index {
                    *bucket = Bucket {
                        index,
                        ..Bucket::default()
                    };
                }
                bucket.calls += 1;
                bucket.failures += u32::from(sample.failed);
                bucket.slow += u32::from(sample.slow);
                let (mut calls, mut failures, mut slow) = (0, 0, 0);
                for b in buckets.iter() {
                    if b.calls > 0 && b.index + TIME_BUCKETS > index {
                        calls += b.calls;
                        failures += b.failures;
                        slow += b.slow;
                    }
                }
                self.calls = calls;
                self.failures = failures;
                self.slow = slow;
            }
        }
        self.should_open()
    }

    fn should_open(&self) -> bool {
        if self.calls < self.settings.minimum_calls || self.calls == 0 {
            return false;
        }
        let calls = f64::from(self.calls);
        if f64::from(self.failures) / calls >= self.settings.threshold {
            return true;
        }
        match self.settings.slow_call {
            Some(slow) => f64::from(self.slow) / calls >= slow.rate,
            None => false,
        }
    }
}

#[inline]
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SlowCall;

    const OK: Sample = Sample {
        failed: false,
        slow: false,
    };
    const BAD: Sample = Sample {
        failed: true,
        slow: false,
    };

    #[test]
    fn count_window_needs_minimum_calls_then_trips_at_threshold() {
        let mut w = RateWindow::new(FailureRate {
            window: Window::Count(4),
            minimum_calls: 4,
            threshold: 0.5,
            slow_call: None,
        });
        assert!(!w.record(BAD, 0));
        assert!(!w.record(BAD, 0));
        assert!(!w.record(OK, 0));
        assert!(w.record(OK, 0), "2 of 4 failed = 50%");
    }

    #[test]
    fn count_window_forgets_old_calls() {
        let mut w = RateWindow::new(FailureRate {
            window: Window::Count(3),
            minimum_calls: 3,
            threshold: 0.6,
            slow_call: None,
        });
        assert!(!w.record(BAD, 0));
        assert!(!w.record(OK, 0));
        assert!(!w.record(OK, 0));
        assert!(!w.record(BAD, 0), "the first failure slid out: 1 of 3");
        assert!(w.record(BAD, 0), "2 of 3");
    }

    #[test]
    fn time_window_forgets_calls_older_than_the_window() {
        let sec = 1_000_000_000u64;
        let mut w = RateWindow::new(FailureRate {
            window: Window::Time(Duration::from_secs(10)),
            minimum_calls: 2,
            threshold: 0.5,
            slow_call: None,
        });
        assert!(!w.record(BAD, 0));
        // 11 s later the failure is gone: one success alone is under minimum_calls.
        assert!(!w.record(OK, 11 * sec));
        assert!(!w.record(OK, 12 * sec));
        assert!(!w.record(BAD, 13 * sec), "1 failure of 3 is 33%");
        assert!(w.record(BAD, 14 * sec), "2 failures of 4 is 50%");
    }

    #[test]
    fn slow_call_rate_trips() {
        let mut w = RateWindow::new(FailureRate {
            window: Window::Count(2),
            minimum_calls: 2,
            threshold: 1.0,
            slow_call: Some(SlowCall {
                duration: Duration::from_millis(100),
                rate: 0.5,
            }),
        });
        assert!(w.is_slow(Some(Duration::from_millis(100))));
        assert!(!w.is_slow(Some(Duration::from_millis(99))));
        assert!(!w.record(OK, 0));
        let slow = Sample {
            failed: false,
            slow: true,
        };
        assert!(w.record(slow, 0));
    }
}
