//! One service's task: checks on its interval, skipping a check that cannot start in time
//! (late) or whose due time passed while the previous check ran (overrun).

use super::*;

/// Checks one service on its interval until aborted.
pub(super) async fn run_service(inner: Arc<Inner>, history: History, slot: Arc<Slot>) {
    let spec = &slot.spec;
    let kind = Kind::of(spec);
    let interval = Duration::from_millis(spec.interval_ms);
    let offset = rand::rng().random_range(0..interval.as_micros().max(1) as u64);
    // Sleeping is tokio's (its clock, which tests may pause); deciding is the cadence's.
    let now = || tokio::time::Instant::now().into_std();
    let mut cadence = Cadence::new(now() + Duration::from_micros(offset), interval);
    let m = &inner.metrics;
    loop {
        tokio::time::sleep_until(tokio::time::Instant::from_std(cadence.due())).await;
        let acquired = tokio::time::timeout_at(
            tokio::time::Instant::from_std(cadence.deadline()),
            inner.slots_semaphore.clone().acquire_owned(),
        )
        .await;
        let started = now();
        match (acquired, cadence.start(started)) {
            (Ok(Ok(permit)), Start::Check { lag }) => {
                m.lag(lag);
                m.in_flight.increment(1.0);
                let id = CorrelationId::generate("hc");
                // Boxed: the check's future is large (an HTTP exchange), and a sleeping task
                // should not carry it; with 20,000 services that is tens of MB.
                let result = Box::pin(inner.checker.check(spec, id)).await;
                m.in_flight.decrement(1.0);
                drop(permit);
                let took = now().saturating_duration_since(started);
                m.result(result.status, result.breaker_open, kind, took);
                inner.round_result(&result);
                if let Some(from) = slot.record(&result, &inner) {
                    if inner.changes.receiver_count() > 0 {
                        let _ = inner.changes.send(ServiceChange {
                            name: spec.name.to_string(),
                            from,
                            result: result.clone(),
                        });
                    }
                }
                history.record(result);
            }
            (Ok(Err(_closed)), _) => return,
            _ => {
                m.skipped_late.increment(1);
                inner.round.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let missed = cadence.advance(now());
        if missed > 0 {
            m.skipped_overrun.increment(u64::from(missed));
            inner
                .round
                .skipped
                .fetch_add(u64::from(missed), Ordering::Relaxed);
        }
    }
}

/// When one service's checks are due, and which of them are skipped.
///
/// A check is due every interval. One that cannot start within half an interval of its due
/// time (no free slot, an overloaded runtime) is skipped as late, not made late; due times
/// that pass while a check runs are skipped as overrun. Either way the next due time stays on
/// the service's grid, so overload sheds work instead of piling it up.
#[derive(Debug, Clone)]
pub(super) struct Cadence {
    due: Instant,
    interval: Duration,
}

/// Whether a check whose slot came at some moment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// It runs, this long after it was due.
    Check { lag: Duration },
    /// Skipped: it could not start within half an interval of its due time.
    Late,
}

impl Cadence {
    /// A cadence whose first check is due at `first`.
    pub(super) fn new(first: Instant, interval: Duration) -> Cadence {
        Cadence {
            due: first,
            interval: interval.max(Duration::from_millis(1)),
        }
    }

    /// When the next check is due.
    pub(super) fn due(&self) -> Instant {
        self.due
    }

    /// The latest moment the due check may start.
    pub(super) fn deadline(&self) -> Instant {
        self.due + self.interval / 2
    }

    /// Whether the due check, able to start at `now`, runs.
    pub(super) fn start(&self, now: Instant) -> Start {
        let lag = now.saturating_duration_since(self.due);
        if lag <= self.interval / 2 {
            Start::Check { lag }
        } else {
            Start::Late
        }
    }

    /// Moves on after the due check ran (or was skipped) and ended at `now`: the next due
    /// time is the first one of the grid after `now`. Returns how many due times were passed
    /// over meanwhile (skipped as overrun).
    pub(super) fn advance(&mut self, now: Instant) -> u32 {
        self.due += self.interval;
        if self.due >= now {
            return 0;
        }
        let behind = now - self.due;
        let missed = (behind.as_nanos() / self.interval.as_nanos()) as u32 + 1;
        self.due += self.interval * missed;
        missed
    }
}
impl Inner {
    pub(super) fn round_result(&self, result: &CheckResult) {
        let r = &self.round;
        if result.breaker_open {
            r.rejected.fetch_add(1, Ordering::Relaxed);
        } else {
            r.checks.fetch_add(1, Ordering::Relaxed);
            r.latency_sum_ms
                .fetch_add(result.latency_ms, Ordering::Relaxed);
            r.latency_max_ms
                .fetch_max(result.latency_ms, Ordering::Relaxed);
        }
    }
}

impl Slot {
    /// Stops the service's check task.
    pub(super) fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }

    /// Keeps `result` as the latest, counts it for uptime and logs a change of status; returns
    /// the status before when it changed. Feeds the service's trip forecast and logs a warning
    /// that starts or ends.
    pub(super) fn record(&self, result: &CheckResult, inner: &Inner) -> Option<Option<Status>> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let before = seen.latest.as_ref().map(|r| r.status);
        let secs = result.timestamp.timestamp().max(0) as u64;
        seen.uptime.record_check(
            secs,
            result.status != Status::Down,
            (!result.breaker_open).then_some(result.latency_ms),
        );
        if !result.breaker_open {
            seen.last_checked = Some(result.timestamp);
        }
        seen.latest = Some(result.clone());
        let change = seen.forecast.observe(
            result,
            self.spec.timeout_ms,
            inner.checker.failure_threshold(self.spec.name.as_str()),
            &inner.forecast,
        );
        let reason = change
            .is_some()
            .then(|| seen.forecast.latest().and_then(|f| f.reason.clone()))
            .flatten();
        drop(seen);
        match change {
            Some(Change::Warns) => {
                inner.metrics.trip_warnings.increment(1);
                tracing::warn!(
                    service = %self.spec.name,
                    correlation_id = %result.correlation_id.as_ref().map_or("", |c| c.as_str()),
                    reason = reason.as_deref().unwrap_or(""),
                    "circuit trip predicted"
                );
            }
            Some(Change::Clears) => tracing::info!(
                service = %self.spec.name,
                "circuit trip no longer predicted"
            ),
            None => {}
        }
        if before == Some(result.status) {
            return None;
        }
        let span = tracing::info_span!(
            "health_check",
            correlation_id = %result.correlation_id.as_ref().map_or("", |c| c.as_str()),
            service = %self.spec.name,
        );
        let _entered = span.enter();
        let from = before.map_or("unknown", Status::as_str);
        if before.is_none() && result.status == Status::Up {
            // The first result of a healthy service is news to no one (thousands at start).
            tracing::debug!(message = %result.message, "service is up");
        } else if result.status == Status::Down {
            tracing::warn!(
                from,
                to = result.status.as_str(),
                critical = self.spec.critical,
                message = %result.message,
                latency_ms = result.latency_ms,
                "service is down"
            );
        } else {
            tracing::info!(
                from,
                to = result.status.as_str(),
                message = %result.message,
                latency_ms = result.latency_ms,
                "service status changed"
            );
        }
        Some(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    const INTERVAL: Duration = Duration::from_secs(10);

    #[test]
    fn a_check_runs_until_half_an_interval_late_and_is_skipped_after() {
        let clock = ManualClock::new();
        let cadence = Cadence::new(clock.now(), INTERVAL);
        assert_eq!(
            cadence.start(clock.now()),
            Start::Check {
                lag: Duration::ZERO
            }
        );
        clock.advance(Duration::from_secs(4));
        assert_eq!(
            cadence.start(clock.now()),
            Start::Check {
                lag: Duration::from_secs(4)
            }
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(cadence.deadline(), clock.now());
        assert_eq!(
            cadence.start(clock.now()),
            Start::Check {
                lag: Duration::from_secs(5)
            }
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(cadence.start(clock.now()), Start::Late);
    }

    #[test]
    fn a_slot_that_came_early_starts_without_lag() {
        let clock = ManualClock::new();
        let cadence = Cadence::new(clock.now() + INTERVAL, INTERVAL);
        assert_eq!(
            cadence.start(clock.now()),
            Start::Check {
                lag: Duration::ZERO
            }
        );
    }

    #[test]
    fn a_check_within_its_interval_keeps_the_grid() {
        let clock = ManualClock::new();
        let first = clock.now();
        let mut cadence = Cadence::new(first, INTERVAL);
        clock.advance(Duration::from_secs(3));
        assert_eq!(cadence.advance(clock.now()), 0);
        assert_eq!(cadence.due(), first + INTERVAL);
        // Ending exactly at the next due time is not an overrun.
        clock.advance(Duration::from_secs(17));
        assert_eq!(cadence.advance(clock.now()), 0);
        assert_eq!(cadence.due(), first + 2 * INTERVAL);
    }

    #[test]
    fn due_times_passed_during_a_long_check_are_skipped_as_overrun() {
        let clock = ManualClock::new();
        let first = clock.now();
        let mut cadence = Cadence::new(first, INTERVAL);
        // The check started on time and took 25 s: the due times at 10 s and 20 s passed.
        clock.advance(Duration::from_secs(25));
        assert_eq!(cadence.advance(clock.now()), 2);
        assert_eq!(cadence.due(), first + 3 * INTERVAL);
        assert!(cadence.due() > clock.now());
        // A late skip moves on like a check: one due time later, nothing passed over.
        clock.advance(Duration::from_secs(5) + INTERVAL / 2 + Duration::from_millis(1));
        assert_eq!(cadence.start(clock.now()), Start::Late);
        assert_eq!(cadence.advance(clock.now()), 0);
        assert_eq!(cadence.due(), first + 4 * INTERVAL);
    }
}
