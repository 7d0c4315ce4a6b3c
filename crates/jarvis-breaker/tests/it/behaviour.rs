//! One test per behaviour of the state machine, on a manual clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jarvis_breaker::{
    Breaker, CallError, Classifier, Config, Event, FailureRate, ManualClock, Origin, Outcome,
    Policy, RejectReason, SlowCall, State, Verdict, Window,
};

use crate::helpers::*;

#[test]
fn opens_after_five_consecutive_failures_not_four() {
    let (b, _, _) = defaults();
    fail(&b, 4);
    assert_eq!(b.state(), State::Closed);
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
    let snap = b.snapshot();
    assert_eq!((snap.state, snap.failure_count), (State::Open, 5));
}

#[test]
fn a_success_resets_the_consecutive_failure_count() {
    let (b, _, rec) = defaults();
    fail(&b, 4);
    succeed(&b, 1);
    assert_eq!(b.consecutive_failures(), 0);
    fail(&b, 4);
    assert_eq!(b.state(), State::Closed);
    assert!(rec.events().contains(&Event::FailuresReset {
        previous: 4,
        generation: 0
    }));
}

#[test]
fn open_rejects_without_calling_until_the_period_ends() {
    let (b, clock, _) = defaults();
    fail(&b, 5);
    let mut called = false;
    let r = b.call_sync(|| {
        called = true;
        Ok::<_, String>(())
    });
    assert!(!called, "an open breaker must not call the service");
    let rejected = *r.unwrap_err().rejected().unwrap();
    assert_eq!(rejected.reason(), RejectReason::Open);
    assert_eq!(rejected.retry_after(), Some(MINUTE));

    clock.advance(MINUTE - Duration::from_millis(1));
    let r = b.try_acquire().unwrap_err();
    assert_eq!(r.retry_after(), Some(Duration::from_millis(1)));
    clock.advance(Duration::from_millis(1));
    let trial = b.try_acquire().expect("trial after 60 s");
    assert!(trial.is_trial());
    assert_eq!(b.state(), State::HalfOpen);
    trial.success();
}

#[test]
fn half_open_admits_one_trial_and_two_successes_close() {
    let (b, clock, rec) = defaults();
    fail(&b, 5);
    clock.advance(MINUTE);
    let trial = b.try_acquire().unwrap();
    let second = b.try_acquire().unwrap_err();
    assert_eq!(second.reason(), RejectReason::HalfOpenFull);
    assert_eq!(second.state(), State::HalfOpen);
    trial.success();
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.snapshot().success_count, 1);
    assert_eq!(
        b.consecutive_failures(),
        0,
        "a trial success resets the count"
    );
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
    let states: Vec<_> = rec.transitions().iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        states,
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
}

#[test]
fn concurrent_trials_and_successes_to_close_are_separate_settings() {
    let (b, clock, _) = breaker_with(|b| b.half_open_max_trials(3).successes_to_close(5));
    fail(&b, 5);
    clock.advance(MINUTE);
    let trials: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    assert_eq!(
        b.try_acquire().unwrap_err().reason(),
        RejectReason::HalfOpenFull
    );
    assert_eq!(b.snapshot().trials_in_flight, 3);
    for t in trials {
        t.success();
    }
    assert_eq!(b.state(), State::HalfOpen);
    succeed(&b, 1);
    assert_eq!(b.state(), State::HalfOpen);
    succeed(&b, 1);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn a_failed_trial_reopens_with_capped_exponential_growth() {
    let (b, clock, rec) = breaker_with(|b| b.backoff(2.0, Duration::from_secs(300)));
    fail(&b, 5);
    let mut periods = vec![];
    for _ in 0..5 {
        let t = rec.transitions().last().copied().unwrap();
        assert_eq!(t.to, State::Open);
        let period = t.open_for.unwrap();
        periods.push(period.as_secs());
        clock.advance(period);
        b.try_acquire().unwrap().failure("still down");
    }
    assert_eq!(periods, [60, 120, 240, 300, 300]);
    // Closing resets the growth.
    clock.advance(Duration::from_secs(300));
    succeed(&b, 2);
    assert_eq!(b.state(), State::Closed);
    fail(&b, 5);
    assert_eq!(rec.transitions().last().unwrap().open_for, Some(MINUTE));
}

#[test]
fn jitter_lengthens_the_open_period_within_bounds_and_varies() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let (b, _, rec) = breaker_with(|b| b.jitter(0.1).jitter_seed(seed));
        fail(&b, 5);
        let p = rec.transitions()[0].open_for.unwrap();
        assert!(p >= MINUTE && p < Duration::from_secs(66), "{p:?}");
        seen.insert(p);
        let snap = b.snapshot();
        assert_eq!(snap.next_attempt_at.unwrap(), snap.opened_at.unwrap() + p);
    }
    assert!(seen.len() > 10, "jitter should spread periods: {seen:?}");
}

#[test]
fn an_outcome_from_an_earlier_generation_moves_nothing() {
    let (b, clock, _) = defaults();
    let stale = b.try_acquire().unwrap(); // admitted while CLOSED, generation 0
    let stale_ok = b.try_acquire().unwrap();
    fail(&b, 5); // OPEN, generation 1
    clock.advance(MINUTE);
    let trial = b.try_acquire().unwrap(); // HALF_OPEN, generation 2
    assert_eq!(trial.generation(), 2);
    stale.failure("late failure");
    assert_eq!(
        b.state(),
        State::HalfOpen,
        "a stale failure must not re-open"
    );
    stale_ok.success();
    assert_eq!(
        b.snapshot().success_count,
        0,
        "a stale success must not count as a trial"
    );
    trial.success();
    assert_eq!(b.snapshot().success_count, 1);
    // Still counted in the totals.
    let snap = b.snapshot();
    assert_eq!((snap.failures, snap.successes), (6, 2));
}

#[test]
fn a_dropped_trial_permit_frees_its_slot_and_is_not_a_success() {
    let (b, clock, _) = defaults();
    fail(&b, 5);
    clock.advance(MINUTE);
    let trial = b.try_acquire().unwrap();
    drop(trial);
    let snap = b.snapshot();
    assert_eq!(
        (snap.state, snap.success_count, snap.trials_in_flight),
        (State::HalfOpen, 0, 0)
    );
    assert_eq!(snap.ignored, 1);
    // The slot is free for the next caller.
    b.try_acquire().unwrap().ignore();
    assert_eq!(b.snapshot().ignored, 2);
}

#[test]
fn a_dropped_closed_permit_does_not_reset_failures() {
    let (b, _, _) = defaults();
    fail(&b, 4);
    drop(b.try_acquire().unwrap());
    assert_eq!(b.consecutive_failures(), 4);
}

#[test]
fn default_classifier_counts_5xx_timeouts_connection_errors_not_4xx_or_cancellations() {
    let c = Classifier::default();
    assert_eq!(c.classify(Outcome::Status(500)), Verdict::Failure);
    assert_eq!(c.classify(Outcome::Status(503)), Verdict::Failure);
    assert_eq!(c.classify(Outcome::Status(599)), Verdict::Failure);
    assert_eq!(c.classify(Outcome::Status(404)), Verdict::Success);
    assert_eq!(c.classify(Outcome::Status(429)), Verdict::Success);
    assert_eq!(c.classify(Outcome::Status(200)), Verdict::Success);
    assert_eq!(c.classify(Outcome::Timeout), Verdict::Failure);
    assert_eq!(c.classify(Outcome::Connection), Verdict::Failure);
    assert_eq!(c.classify(Outcome::Error), Verdict::Failure);
    assert_eq!(c.classify(Outcome::Cancelled), Verdict::Ignore);
    let custom = Classifier::default()
        .status_range(400, 499, Verdict::Failure)
        .status(503, Verdict::Success)
        .timeouts(Verdict::Ignore);
    assert_eq!(custom.classify(Outcome::Status(404)), Verdict::Failure);
    assert_eq!(custom.classify(Outcome::Status(503)), Verdict::Success);
    assert_eq!(custom.classify(Outcome::Timeout), Verdict::Ignore);
}

#[test]
fn record_uses_the_breakers_classifier() {
    let (b, _, _) = defaults();
    for _ in 0..4 {
        b.try_acquire()
            .unwrap()
            .record(Outcome::Status(502), "HTTP 502");
    }
    b.try_acquire()
        .unwrap()
        .record(Outcome::Cancelled, "cancelled");
    assert_eq!(b.consecutive_failures(), 4, "a cancellation is ignored");
    b.try_acquire()
        .unwrap()
        .record(Outcome::Status(404), "not found");
    assert_eq!(
        b.consecutive_failures(),
        0,
        "a 4xx means the service answered"
    );
    assert_eq!(
        b.snapshot().last_failure_reason.as_deref(),
        Some("HTTP 502")
    );
}

#[test]
fn force_open_holds_until_closed_and_reset_clears_statistics() {
    let (b, clock, rec) = defaults();
    succeed(&b, 3);
    b.force_open();
    clock.advance(Duration::from_secs(3600));
    let r = b.try_acquire().unwrap_err();
    assert_eq!(
        (r.reason(), r.retry_after()),
        (RejectReason::ForcedOpen, None)
    );
    let snap = b.snapshot();
    assert!(snap.forced);
    assert_eq!(snap.next_attempt_at, None);
    assert_eq!(rec.transitions()[0].origin, Origin::Manual);

    b.force_closed();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().successes, 3, "force_closed keeps statistics");
    fail(&b, 2);
    b.reset();
    let snap = b.snapshot();
    assert_eq!(
        (snap.state, snap.failure_count, snap.total_calls),
        (State::Closed, 0, 0)
    );
    assert_eq!(
        (snap.last_failure_at, snap.last_failure_reason),
        (None, None)
    );
}

#[test]
fn snapshot_reports_times_counts_and_policy() {
    let (b, clock, _) = defaults();
    succeed(&b, 2);
    clock.advance(Duration::from_secs(10));
    fail(&b, 5);
    let rej = b.try_acquire().unwrap_err();
    assert_eq!(rej.state(), State::Open);
    let s = b.snapshot();
    let t0 = epoch() + Duration::from_secs(10);
    assert_eq!(s.state, State::Open);
    assert_eq!(s.failure_count, 5);
    assert_eq!(
        (s.successes, s.failures, s.rejected_calls, s.total_calls),
        (2, 5, 1, 8)
    );
    assert_eq!(s.last_failure_at, Some(t0));
    assert_eq!(s.last_failure_reason.as_deref(), Some("boom"));
    assert_eq!(s.opened_at, Some(t0));
    assert_eq!(s.next_attempt_at, Some(t0 + MINUTE));
    assert_eq!(s.generation, 1);
    assert_eq!(s.policy, Policy::ConsecutiveFailures { threshold: 5 });
    assert_eq!(
        s.description,
        "open after 5 consecutive failures; open 60s; half-open: 1 concurrent trial, 2 successes to close"
    );
}

#[test]
fn the_failure_reason_is_bounded() {
    let (b, _, _) = defaults();
    b.try_acquire().unwrap().failure("é".repeat(1000));
    let reason = b.snapshot().last_failure_reason.unwrap();
    assert!(
        reason.len() <= 256 && reason.len() >= 254,
        "{}",
        reason.len()
    );
}

#[test]
fn listeners_see_failures_resets_rejections_and_nothing_on_the_hot_path() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let b = Breaker::builder("svc")
        .listener(move |_: &Breaker, _: &Event| {
            seen.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    for _ in 0..10_000 {
        b.call_sync(|| Ok::<_, String>(1)).unwrap();
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        0,
        "healthy CLOSED calls report nothing"
    );

    let (b, _, rec) = defaults();
    fail(&b, 2);
    succeed(&b, 2);
    fail(&b, 5);
    let _ = b.try_acquire();
    let ev = rec.events();
    assert_eq!(
        ev[0],
        Event::FailureRecorded {
            consecutive_failures: 1,
            generation: 0
        }
    );
    assert_eq!(
        ev[1],
        Event::FailureRecorded {
            consecutive_failures: 2,
            generation: 0
        }
    );
    assert_eq!(
        ev[2],
        Event::FailuresReset {
            previous: 2,
            generation: 0
        }
    );
    assert_eq!(ev.len(), 3 + 5 + 1 + 1, "{ev:?}");
    assert!(
        matches!(ev[8], Event::Transition(t) if t.to == State::Open && t.consecutive_failures == 5 && t.origin == Origin::Local)
    );
    assert!(matches!(ev[9], Event::Rejected(r) if r.reason() == RejectReason::Open));
}

#[test]
fn a_listener_may_read_the_snapshot() {
    let b = Breaker::builder("svc")
        .listener(|b: &Breaker, e: &Event| {
            if let Event::Transition(t) = e {
                assert_eq!(b.snapshot().state, t.to);
            }
        })
        .build()
        .unwrap();
    for _ in 0..5 {
        let _ = b.call_sync(|| Err::<(), _>("down"));
    }
    b.force_closed();
}

#[test]
fn failure_rate_policy_with_count_window() {
    let (b, _, _) = breaker_with(|b| {
        b.failure_rate(FailureRate {
            window: Window::Count(10),
            minimum_calls: 10,
            threshold: 0.5,
            slow_call: None,
        })
    });
    for i in 0..9 {
        if i % 2 == 0 {
            fail(&b, 1);
        } else {
            succeed(&b, 1);
        }
    }
    assert_eq!(b.state(), State::Closed, "below minimum calls");
    succeed(&b, 1); // 5 failures of 10
    assert_eq!(b.state(), State::Open);
}

#[test]
fn failure_rate_policy_with_time_window_forgets_old_failures() {
    let (b, clock, _) = breaker_with(|b| {
        b.failure_rate(FailureRate {
            window: Window::Time(Duration::from_secs(10)),
            minimum_calls: 4,
            threshold: 0.5,
            slow_call: None,
        })
    });
    fail(&b, 3);
    clock.advance(Duration::from_secs(11));
    succeed(&b, 3);
    fail(&b, 1);
    assert_eq!(b.state(), State::Closed, "1 of 4 in the window");
    fail(&b, 1);
    assert_eq!(b.state(), State::Closed, "2 of 5 is 40%");
    fail(&b, 1);
    assert_eq!(b.state(), State::Open, "3 of 6 is 50%");
}

#[test]
fn slow_calls_open_the_circuit() {
    let (b, clock, _) = breaker_with(|b| {
        b.failure_rate(FailureRate {
            window: Window::Count(4),
            minimum_calls: 4,
            threshold: 1.0,
            slow_call: Some(SlowCall {
                duration: Duration::from_secs(2),
                rate: 0.5,
            }),
        })
    });
    succeed(&b, 2);
    for _ in 0..2 {
        let p = b.try_acquire().unwrap();
        clock.advance(Duration::from_secs(3));
        p.success();
    }
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.snapshot().failures, 0, "slow successes are not failures");
}

#[test]
fn invalid_settings_are_refused_with_the_setting_named() {
    let e = Breaker::builder("x")
        .half_open_max_trials(0)
        .build()
        .unwrap_err();
    assert_eq!(e.setting, "half_open_max_trials");
    let e = Breaker::builder("x")
        .failure_threshold(0)
        .build()
        .unwrap_err();
    assert_eq!(e.setting, "policy.threshold");
    let e = Breaker::builder("x").jitter(1.5).build().unwrap_err();
    assert_eq!(e.setting, "jitter");
    let e = Breaker::builder("x")
        .failure_rate(FailureRate {
            window: Window::Count(5),
            minimum_calls: 10,
            ..FailureRate::default()
        })
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("minimum_calls"), "{e}");
    assert!(Config::default().validate().is_ok());
}

#[test]
fn call_sync_reports_errors_as_failures_with_their_reason() {
    let (b, _, _) = defaults();
    let r: Result<(), CallError<String>> = b.call_sync(|| Err("HTTP 500 from backend".to_string()));
    assert_eq!(
        r,
        Err(CallError::Inner("HTTP 500 from backend".to_string()))
    );
    assert_eq!(b.consecutive_failures(), 1);
    assert_eq!(
        b.snapshot().last_failure_reason.as_deref(),
        Some("HTTP 500 from backend")
    );
}

// Paused tokio time: the timeout below completes without sleeping.
#[tokio::test(start_paused = true)]
async fn async_call_counts_outcomes_and_a_dropped_future_is_ignored() {
    let clock = Arc::new(ManualClock::new());
    let b = Breaker::builder("svc")
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(b.call(async { Ok::<_, String>(7) }).await, Ok(7));
    for _ in 0..5 {
        let r = b.call(async { Err::<(), _>("refused".to_string()) }).await;
        assert!(matches!(r, Err(CallError::Inner(_))));
    }
    assert!(matches!(
        b.call(async { Ok::<_, String>(1) }).await,
        Err(CallError::Rejected(_))
    ));
    clock.advance(MINUTE);
    // The trial's caller gives up: the slot is released, nothing is counted.
    {
        let pending = b.call(std::future::pending::<Result<(), String>>());
        let timed_out = tokio::time::timeout(Duration::from_millis(1), pending).await;
        assert!(timed_out.is_err());
    }
    let s = b.snapshot();
    assert_eq!(
        (s.state, s.trials_in_flight, s.ignored),
        (State::HalfOpen, 0, 1)
    );
    let r = b
        .call_with(async { Ok::<u16, String>(503) }, |r| {
            Outcome::Status(*r.as_ref().unwrap())
        })
        .await;
    assert_eq!(r, Ok(503));
    assert_eq!(b.state(), State::Open, "a 503 trial re-opens the circuit");
    assert_eq!(
        b.snapshot().last_failure_reason.as_deref(),
        Some("HTTP 503")
    );
}

#[test]
fn owned_permits_move_across_threads() {
    let b = Arc::new(Breaker::new("svc"));
    let p = b.try_acquire_owned().unwrap();
    std::thread::spawn(move || p.failure("from another thread"))
        .join()
        .unwrap();
    assert_eq!(b.consecutive_failures(), 1);
    drop(b.try_acquire_owned().unwrap());
    assert_eq!(b.snapshot().ignored, 1);
}

#[test]
fn a_call_that_panics_is_ignored_not_counted_as_success() {
    let (b, _, _) = defaults();
    fail(&b, 2);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = b.call_sync(|| -> Result<(), String> { panic!("boom") });
    }));
    assert!(r.is_err());
    let s = b.snapshot();
    assert_eq!((s.ignored, s.successes, s.failure_count), (1, 0, 2));
}

#[test]
fn call_sync_feeds_the_failure_rate_window() {
    let (b, _, _) = breaker_with(|b| {
        b.failure_rate(FailureRate {
            window: Window::Count(4),
            minimum_calls: 4,
            threshold: 0.5,
            slow_call: None,
        })
    });
    for i in 0..4 {
        let _ = b.call_sync(|| if i % 2 == 0 { Err("down") } else { Ok(()) });
    }
    assert_eq!(b.state(), State::Open);
}
