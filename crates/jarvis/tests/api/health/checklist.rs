//! The user's acceptance checklist for the health monitor: a fresh system has no breakers, a
//! stopped service opens its circuit after five failed checks and recovers by itself once it is
//! back (steps 1–3), and health rounds are tasks with history (step 4).

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::{health_env, iso_to_system, until_open, until_service_is};
use crate::both_backends;
use crate::helpers::*;

// Steps 1–3.
both_backends!(
    a_stopped_service_opens_its_circuit_after_five_checks_and_recovers_by_itself,
    |backend| async move {
        let app = TestApp::spawn_with(health_env(backend, 1_500).await).await;

        // 1. A fresh system has no breakers.
        let (s, body) = json(app.get("/api/v1/circuit-breakers").await).await;
        assert_eq!(s, 200);
        assert_eq!(body, json!({"success": true, "data": {}}));

        let mut service = FakeService::start(Mode::Ok).await;
        app.put_service(
        "aiDawgBackend",
        json!({"url": service.url("/health"), "intervalMs": 200, "timeoutMs": 500, "critical": true}),
    )
    .await;
        until_service_is(&app, "aiDawgBackend", "up").await;
        assert_eq!(app.breaker("aiDawgBackend").await["state"], "CLOSED");

        // 2. Stop the service: five failed checks later the circuit is OPEN with failureCount 5.
        service.stop().await;
        let breaker = until_open(&app, "aiDawgBackend").await;
        assert_eq!(breaker["failureCount"], 5, "{breaker}");
        let next_attempt = iso_to_system(breaker["nextAttemptAt"].as_str().unwrap());
        // The service is reported down with exactly the message and latency 0 of docs/api.md,
        // Health checks.
        let h = eventually_some(
            Duration::from_secs(5),
            "a check refused by the circuit",
            || async {
                let h = app.service_health("aiDawgBackend").await;
                (h["message"] == "Circuit breaker OPEN").then_some(h)
            },
        )
        .await;
        assert_eq!(h["status"], "down");
        assert_eq!(h["latency"], 0);
        assert_eq!(h["breaker"], "OPEN");
        assert!(iso_to_system(h["timestamp"].as_str().unwrap()) <= SystemTime::now());
        assert_eq!(app.data("/api/v1/health/services").await["status"], "fail");

        // 3. Start it again: no check reaches it while the circuit is open; after the open period a
        // trial goes through, then a second, and the circuit closes by itself.
        service.restart().await;
        eventually(Duration::from_secs(10), "the circuit to close", || async {
            app.breaker("aiDawgBackend").await["state"] == "CLOSED"
        })
        .await;
        let hits = service.hits();
        assert!(hits.len() >= 2, "two trials at least: {hits:?}");
        for hit in &hits {
            assert!(
            // nextAttemptAt is shown to the millisecond.
            hit.at + Duration::from_millis(5) >= next_attempt,
            "a check reached the service while its circuit was open: {hit:?} < {next_attempt:?}"
        );
        }
        until_service_is(&app, "aiDawgBackend", "up").await;
        assert_eq!(app.data("/api/v1/health/services").await["status"], "pass");
        app.stop().await;
    }
);

// Step 4: health rounds are tasks of system-health/monitor-services.
both_backends!(health_rounds_are_tasks_with_history, |backend| async move {
    let ok = FakeService::start(Mode::Ok).await;
    let mut env = TestEnv::new(backend).await;
    env.set("JARVIS_HEALTH_ROUND_MS", "200");
    let app = TestApp::spawn_with(env).await;
    app.put_service(
        "db",
        json!({"url": ok.url("/health"), "intervalMs": 100, "critical": true}),
    )
    .await;
    let path = "/api/v1/tasks/history?domain=system-health&action=monitor-services";
    eventually(
        Duration::from_secs(20),
        "rounds with the service up in history",
        || async {
            let (_, body) = json(app.get(path).await).await;
            body["data"]["succeeded"].as_u64().unwrap_or(0) >= 2
        },
    )
    .await;
    let (status, body) = json(app.get(path).await).await;
    assert_eq!(status, 200, "{body}");
    let d = &body["data"];
    assert_eq!(d["domain"], "system-health");
    assert_eq!(d["action"], "monitor-services");
    assert!(d["total"].as_u64().unwrap() >= 2, "{d}");
    assert!(d["successRate"].as_f64().is_some(), "{d}");
    assert!(d["avgImpactScore"].as_f64().is_some(), "{d}");
    assert!(d["lastExecutedAt"].as_str().is_some(), "{d}");
    // The records carry each round's correlation ID (hm-…).
    let (_, records) = json(
        app.get("/api/v1/tasks/executions?domain=system-health&action=monitor-services&limit=5")
            .await,
    )
    .await;
    let first = &records["data"]["items"][0];
    assert!(
        first["correlationId"]
            .as_str()
            .is_some_and(|c| c.starts_with("hm-")),
        "{records}"
    );
    app.stop().await;
});
