//! The trip forecast (issue 16): a service slowing toward its timeout is forecast to trip — in
//! `GET /api/v1/health/services` and `/metrics` — while its checks
//! still pass and before its circuit opens; a steady service is forecast not to.

use std::time::Duration;

use serde_json::{json, Value};

use super::health_env;
use crate::both_backends;
use crate::helpers::*;

/// The services view (`data`).
async fn services(app: &TestApp) -> Value {
    app.data("/api/v1/health/services").await
}

both_backends!(
    a_service_slowing_toward_its_timeout_is_forecast_to_trip_before_its_circuit_opens,
    |backend| async move {
        let app = TestApp::spawn_with(health_env(backend, 60_000).await).await;
        // 10 ms, then 40 ms slower with every check: the 600 ms timeout is reached at the
        // 15th check, and five timeouts in a row open the circuit.
        let slowing = FakeService::start(Mode::Ramp {
            from_ms: 10,
            step_ms: 40,
        })
        .await;
        app.put_service(
            "slowing",
            json!({"url": slowing.url("/"), "intervalMs": 100, "timeoutMs": 600}),
        )
        .await;

        let (view, checks) = eventually_some(
            Duration::from_secs(30),
            "a trip forecast for the slowing service",
            || async {
                let checks = slowing.count();
                let view = services(&app).await;
                let s = &view["services"]["slowing"];
                (s["prediction"]["status"] == "warn").then_some((view, checks))
            },
        )
        .await;
        let s = &view["services"]["slowing"];
        // Forecast while every check still answered in time, with the circuit closed.
        assert_eq!(s["breaker"], "CLOSED", "{s}");
        assert_eq!(s["status"], "up", "{s}");
        assert!(checks < 15, "warned only after {checks} checks: {s}");
        let p = &s["prediction"];
        assert!(p["tripProbability"].as_f64().unwrap() >= 0.5, "{p}");
        assert!(p["latencyTrendMsPerMin"].as_f64().unwrap() > 0.0, "{p}");
        assert!(
            p["reason"].as_str().unwrap().contains("600 ms timeout"),
            "{p}"
        );
        assert_eq!(p["horizonSeconds"], 120.0);
        // The overall status is the checks' (every check passed so far).
        assert_eq!(view["status"], "pass", "{view}");

        // The forecast came true: the circuit opens.
        eventually(
            Duration::from_secs(30),
            "the slowing service's circuit opens",
            || async { app.breaker("slowing").await["state"] == "OPEN" },
        )
        .await;
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let warnings = metrics
            .lines()
            .find(|l| l.starts_with("jarvis_health_trip_warnings_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok());
        assert!(warnings.is_some_and(|w| w >= 1.0), "{warnings:?}");
    }
);

both_backends!(
    a_steady_service_is_forecast_not_to_trip,
    |backend| async move {
        let app = TestApp::spawn_with(health_env(backend, 60_000).await).await;
        let steady = FakeService::start(Mode::Ok).await;
        app.put_service(
            "steady",
            json!({"url": steady.url("/"), "intervalMs": 100, "timeoutMs": 600}),
        )
        .await;
        let p = eventually_some(
            Duration::from_secs(10),
            "a forecast for the steady service",
            || async {
                let p = app.service_health("steady").await["prediction"].clone();
                (!p.is_null()).then_some(p)
            },
        )
        .await;
        assert_eq!(p["status"], "ok", "{p}");
        assert!(p["reason"].is_null(), "{p}");
        assert!(p["tripProbability"].as_f64().unwrap() < 0.01, "{p}");
        assert_eq!(p["consecutiveFailures"], 0);
        assert!(p["latencyMs"].as_f64().unwrap() < 600.0, "{p}");
        stays(
            Duration::from_secs(2),
            "the steady service is not forecast to trip",
            || async {
                services(&app).await["status"] == "pass"
                    && app.service_health("steady").await["prediction"]["status"] == "ok"
            },
        )
        .await;
    }
);

both_backends!(
    an_agent_domain_failing_call_after_call_is_forecast_to_trip,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let agent = FakeService::start(Mode::Ok).await;
        let (s, body) = app
            .put_agent("payments", json!({"url": agent.url("/run")}))
            .await;
        assert!(s == 200 || s == 201, "{body}");
        let task = json!({"domain": "payments", "action": "charge", "maxAttempts": 1});
        for _ in 0..8 {
            app.run_task(task.clone()).await;
        }
        let p = eventually_some(
            Duration::from_secs(10),
            "a forecast for the payments domain",
            || async {
                let p = services(&app).await["agents"]["payments"]["prediction"].clone();
                (!p.is_null()).then_some(p)
            },
        )
        .await;
        assert_eq!(p["status"], "ok", "{p}");

        // The agent starts failing: one failed attempt after another.
        agent.set_mode(Mode::Fail);
        let mut failed = 0;
        let p = eventually_some(
            Duration::from_secs(30),
            "a trip forecast for the payments domain",
            || {
                failed += 1;
                let task = task.clone();
                let app = &app;
                async move {
                    app.run_task(task).await;
                    let p = services(app).await["agents"]["payments"]["prediction"].clone();
                    (p["status"] == "warn").then_some(p)
                }
            },
        )
        .await;
        assert!(
            p["reason"]
                .as_str()
                .unwrap()
                .contains("consecutive failures"),
            "{p}"
        );
        assert!(p["consecutiveFailures"].as_u64().unwrap() >= 1, "{p}");
        assert!(failed <= 20, "{failed} failures before a warning");
    }
);
