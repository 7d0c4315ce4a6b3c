//! A circuit opened by failed checks, end to end: after the open period exactly one trial
//! check goes through; a failed trial re-opens the circuit, two successful ones close it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use super::{health_env, iso_to_system, until_open};
use crate::both_backends;
use crate::helpers::*;

both_backends!(
    an_open_circuit_admits_exactly_one_trial_and_closes_after_two_successes,
    |backend| async move {
        let app = TestApp::spawn_with(health_env(backend, 1_000).await).await;
        let service = FakeService::start(Mode::Fail).await;
        app.put_service(
            "flaky",
            json!({"url": service.url("/"), "intervalMs": 400, "timeoutMs": 300}),
        )
        .await;

        // Five failures open the circuit; the service then sees no calls.
        let first = until_open(&app, "flaky").await;
        assert_eq!(first["failureCount"], 5);
        assert_eq!(service.count(), 5, "exactly the five failing checks");

        // Still failing: after the open period exactly one trial goes through and re-opens it.
        let second = eventually_some(
            Duration::from_secs(10),
            "the failed trial to re-open",
            || async {
                let b = app.breaker("flaky").await;
                // A greater generation (transitions so far) in OPEN: it re-opened.
                let later = b["generation"].as_u64() > first["generation"].as_u64();
                (b["state"] == "OPEN" && later).then_some(b)
            },
        )
        .await;
        assert_eq!(service.count(), 6, "one trial, not more: {second}");
        let reopened = iso_to_system(second["openedAt"].as_str().unwrap());
        let trial = &service.hits()[5];
        assert!(
            trial.at >= iso_to_system(first["nextAttemptAt"].as_str().unwrap()),
            "the trial came after the open period"
        );
        // openedAt is shown to the millisecond (and derived from a monotonic clock).
        assert!(trial.at <= reopened + Duration::from_millis(5));

        // Healthy again: one trial (HALF_OPEN, successCount 1), a second, and the circuit closes.
        service.set_mode(Mode::Ok);
        let saw_half_open = AtomicBool::new(false);
        eventually_some(Duration::from_secs(10), "the circuit to close", || async {
            let b = app.breaker("flaky").await;
            // HALF_OPEN shows as soon as the open period is over (successCount 0), and between
            // the two successful trials (successCount 1).
            if b["state"] == "HALF_OPEN" {
                assert!(b["successCount"] == 0 || b["successCount"] == 1, "{b}");
                if b["successCount"] == 1 {
                    saw_half_open.store(true, Ordering::SeqCst);
                }
            }
            (b["state"] == "CLOSED").then_some(())
        })
        .await;
        assert!(
            saw_half_open.load(Ordering::SeqCst),
            "the circuit was HALF_OPEN with one success between the two trials"
        );
        // Two successful trials after the failed one; the next regular check is 400 ms away.
        assert_eq!(service.count(), 8);
        app.stop().await;
    }
);
