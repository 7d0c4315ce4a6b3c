//! The overall status: pass when every service is up, warn when a non-critical one is down or
//! one is degraded (slow), fail when a critical one is down; a body that does not satisfy its
//! condition is down. Services come and go through the store, so both backends.

use std::time::Duration;

use serde_json::json;

use super::health_env;
use crate::both_backends;
use crate::helpers::*;

both_backends!(
    the_overall_status_is_pass_warn_or_fail_by_what_is_down,
    |backend| async move {
        let app = TestApp::spawn_with(health_env(backend, 60_000).await).await;
        let overall = || async { app.data("/api/v1/health/services").await };
        assert_eq!(
            overall().await,
            json!({"status": "pass", "description": "every service is up", "services": {}})
        );
        // The IETF health check response format, inside the envelope (`success` first).
        let r = app.get("/api/v1/health/services").await;
        assert_eq!(r.headers()["content-type"], "application/health+json");
        assert_eq!(
            r.text().await.unwrap(),
            r#"{"success":true,"data":{"status":"pass","description":"every service is up","services":{}}}"#
        );

        let ok = FakeService::start(Mode::Ok).await;
        let slow = FakeService::start(Mode::Slow(150)).await;
        app.put_service(
            "core",
            json!({"url": ok.url("/"), "intervalMs": 100, "critical": true,
               "expectBody": {"pointer": "/status", "equals": "ok"}}),
        )
        .await;
        let status_is = |want: &'static str| {
            let overall = &overall;
            move || async move {
                let v = overall().await;
                (v["status"] == want).then_some(v)
            }
        };
        let v = eventually_some(Duration::from_secs(5), "pass", status_is("pass")).await;
        let core = &v["services"]["core"];
        assert_eq!(core["status"], "up");
        assert_eq!(core["message"], "HTTP 200");
        assert_eq!(core["breaker"], "CLOSED");
        assert_eq!(core["componentType"], "http");
        assert!(core["lastChecked"].is_string());
        assert!(core["uptime"]["hour"].as_f64().unwrap() > 99.0, "{core}");

        // A non-critical service down: warn.
        app.put_service(
            "extra",
            json!({"url": format!("http://127.0.0.1:{}/", closed_port()), "intervalMs": 100}),
        )
        .await;
        let v = eventually_some(Duration::from_secs(5), "extra to be down", || async {
            let v = overall().await;
            (v["services"]["extra"]["status"] == "down").then_some(v)
        })
        .await;
        assert_eq!(v["status"], "warn");
        assert!(
            v["services"]["extra"]["message"]
                .as_str()
                .unwrap()
                .starts_with("connection failed"),
            "{v}"
        );

        // A critical service down: fail.
        app.put_service(
        "db",
        json!({"url": format!("tcp://127.0.0.1:{}", closed_port()), "intervalMs": 100, "critical": true}),
    )
    .await;
        let v = eventually_some(Duration::from_secs(5), "db to be down", || async {
            let v = overall().await;
            (v["services"]["db"]["status"] == "down").then_some(v)
        })
        .await;
        assert_eq!(v["status"], "fail");

        // Only a degraded (slow) service left besides the healthy one: warn.
        app.delete_service("db").await;
        app.delete_service("extra").await;
        app.put_service(
        "slow",
        json!({"url": slow.url("/"), "intervalMs": 300, "timeoutMs": 1000, "degradedLatencyMs": 50}),
    )
    .await;
        let v = eventually_some(Duration::from_secs(5), "degraded", || async {
            let v = overall().await;
            (v["services"]["slow"]["status"] == "degraded").then_some(v)
        })
        .await;
        assert_eq!(v["status"], "warn");
        assert!(
            v["services"].get("db").is_none(),
            "removed services disappear"
        );
        assert_eq!(
            app.breaker("slow").await["state"],
            "CLOSED",
            "slow is not a failure"
        );

        // A body that does not satisfy its condition is down.
        app.put_service(
            "core",
            json!({"url": ok.url("/"), "intervalMs": 100, "critical": true,
               "expectBody": {"pointer": "/status", "equals": "green"}}),
        )
        .await;
        let v = eventually_some(Duration::from_secs(5), "fail on body", status_is("fail")).await;
        assert_eq!(
            v["services"]["core"]["message"],
            "body /status is \"ok\", expected \"green\""
        );
        app.stop().await;
    }
);
