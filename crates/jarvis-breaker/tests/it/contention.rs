//! Races: exactly one caller gets the half-open trial; counters stay exact.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use jarvis_breaker::{Breaker, ManualClock, RejectReason, State};

fn half_open_ready(max_trials: u32) -> (Arc<Breaker>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let b = Arc::new(
        Breaker::builder("race")
            .clock(clock.clone())
            .half_open_max_trials(max_trials)
            .build()
            .unwrap(),
    );
    for _ in 0..5 {
        let _ = b.call_sync(|| Err::<(), _>("down"));
    }
    clock.advance(Duration::from_secs(60));
    (b, clock)
}

#[test]
fn threads_racing_for_the_half_open_slot_admit_exactly_one() {
    let threads = 8;
    for _round in 0..200 {
        let (b, _) = half_open_ready(1);
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (b, barrier) = (b.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    // Hold the permit until every thread has tried.
                    let permit = b.try_acquire_owned();
                    let admitted = permit.is_ok();
                    barrier.wait();
                    if let Ok(p) = permit {
                        assert!(p.is_trial());
                        p.success();
                    }
                    admitted
                })
            })
            .collect();
        let admitted = handles
            .into_iter()
            .filter(|_| true)
            .map(|h| h.join().unwrap())
            .filter(|a| *a)
            .count();
        assert_eq!(admitted, 1);
        let s = b.snapshot();
        assert_eq!(s.state, State::HalfOpen);
        assert_eq!(s.success_count, 1);
        assert_eq!(s.rejected_calls, threads as u64 - 1);
    }
}

#[test]
fn racing_threads_respect_a_limit_of_three_trials() {
    let threads = 8;
    for _round in 0..100 {
        let (b, _) = half_open_ready(3);
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (b, barrier) = (b.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let permit = b.try_acquire_owned();
                    let result = permit.as_ref().map(|_| ()).map_err(|r| r.reason());
                    barrier.wait();
                    drop(permit);
                    result
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
        assert!(results
            .iter()
            .filter_map(|r| r.err())
            .all(|r| r == RejectReason::HalfOpenFull));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_racing_for_the_half_open_slot_admit_exactly_one() {
    for _round in 0..50 {
        let (b, _) = half_open_ready(1);
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (b, barrier) = (b.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let permit = b.try_acquire_owned();
                    let admitted = permit.is_ok();
                    barrier.wait().await;
                    drop(permit);
                    admitted
                })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            admitted += usize::from(t.await.unwrap());
        }
        assert_eq!(admitted, 1);
    }
}

#[test]
fn counters_are_exact_under_concurrency() {
    let b = Arc::new(Breaker::new("count"));
    let threads = 6;
    let per = 50_000u64;
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let b = b.clone();
            std::thread::spawn(move || {
                for n in 0..per {
                    if i == 0 && n % 1000 == 0 {
                        // Occasional failures, never 5 in a row.
                        let _ = b.call_sync(|| Err::<(), _>("blip"));
                    } else {
                        let _ = b.call_sync(|| Ok::<_, String>(()));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = b.snapshot();
    assert_eq!(s.state, State::Closed);
    assert_eq!(s.failures, per / 1000);
    assert_eq!(s.successes + s.failures, threads * per);
    assert_eq!(s.total_calls, threads * per);
}
