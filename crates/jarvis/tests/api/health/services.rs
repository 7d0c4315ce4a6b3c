//! Services changing under the monitor: a changed URL is checked instead of the old one, a
//! removed service is checked no more and takes its breaker with it (unless an agent's domain
//! shares it), and a service registered on one instance is checked by the others.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{health_env, until_open, until_service_is, until_the_monitor_checks_nothing};
use crate::both_backends;
use crate::helpers::*;

/// Long enough for several 100 ms checks to have happened, had they been made.
const QUIET: Duration = Duration::from_millis(500);

both_backends!(
    a_changed_service_is_checked_at_its_new_url_and_a_removed_one_not_at_all,
    |backend| async move {
        let app = TestApp::spawn_with(health_env(backend, 60_000).await).await;
        let a = FakeService::start(Mode::Ok).await;
        let b = FakeService::start(Mode::Ok).await;
        app.put_service("svc", json!({"url": a.url("/"), "intervalMs": 100}))
            .await;
        eventually(Duration::from_secs(5), "checks of a", || async {
            a.count() >= 2
        })
        .await;
        // Changed: the new URL is checked, the old one no longer.
        app.put_service("svc", json!({"url": b.url("/"), "intervalMs": 100}))
            .await;
        eventually(Duration::from_secs(5), "checks of b", || async {
            b.count() >= 2
        })
        .await;
        let a_then = a.count();
        eventually(Duration::from_secs(5), "more checks of b", || async {
            b.count() >= 6
        })
        .await;
        assert_eq!(a.count(), a_then, "the old URL is not checked any more");
        // Removed: no more checks, and it is gone from the view.
        app.delete_service("svc").await;
        let v = app.data("/api/v1/health/services").await;
        assert_eq!(v["services"], json!({}));
        // Once the monitor has dropped it, its task is gone: no check comes any more.
        until_the_monitor_checks_nothing(&app).await;
        let b_then = b.count();
        stays(QUIET, "a removed service is not checked", || async {
            b.count() == b_then
        })
        .await;
        app.stop().await;
    }
);

both_backends!(
    a_deleted_service_takes_its_breaker_with_it,
    |backend| async move {
        let app = TestApp::spawn_with(health_env(backend, 600_000).await).await;
        let failing = FakeService::start(Mode::Fail).await;
        app.put_service(
            "doomed",
            json!({"url": failing.url("/"), "intervalMs": 100, "timeoutMs": 500}),
        )
        .await;
        let breaker = until_open(&app, "doomed").await;
        assert_eq!(breaker["failureCount"], 5, "{breaker}");
        eventually(Duration::from_secs(5), "the OPEN row to be stored", || async {
            matches!(app.state().store.breaker_row("doomed").await, Ok(Some(r)) if r.state == "OPEN")
        })
        .await;

        app.delete_service("doomed").await;
        // Gone at once: from the list, the store and the single-breaker route.
        let all = app.data("/api/v1/circuit-breakers").await;
        assert!(all.get("doomed").is_none(), "{all}");
        assert!(app
            .state()
            .store
            .breaker_row("doomed")
            .await
            .unwrap()
            .is_none());
        assert_error(
            app.get("/api/v1/circuit-breakers/doomed").await,
            404,
            "not_found",
        )
        .await;
        // And it stays gone once the monitor has dropped the service (no check creates it again).
        until_the_monitor_checks_nothing(&app).await;
        stays(QUIET, "no breaker is left behind", || async {
            app.data("/api/v1/circuit-breakers").await == json!({})
        })
        .await;

        // A restart does not bring it back from the store.
        let env = app.stop_keep_env().await;
        let app = TestApp::spawn_with(env).await;
        assert_eq!(app.data("/api/v1/circuit-breakers").await, json!({}));

        // Created again (now healthy): a fresh CLOSED breaker, no failures remembered.
        let healthy = FakeService::start(Mode::Ok).await;
        app.put_service(
            "doomed",
            json!({"url": healthy.url("/"), "intervalMs": 100}),
        )
        .await;
        until_service_is(&app, "doomed", "up").await;
        let breaker = app.breaker("doomed").await;
        assert_eq!(breaker["state"], "CLOSED", "{breaker}");
        assert_eq!(breaker["failureCount"], 0, "{breaker}");
        assert_eq!(breaker["rejectedCalls"], 0, "{breaker}");
        app.stop().await;
    }
);

both_backends!(
    a_breaker_shared_with_an_agent_domain_outlives_the_service,
    |backend| async move {
        let app = TestApp::spawn_with(health_env(backend, 600_000).await).await;
        let service = FakeService::start(Mode::Ok).await;
        let r = app
            .send_json(
                Method::PUT,
                "/api/v1/agents/music",
                &json!({"url": service.url("/run")}),
            )
            .await;
        assert_eq!(r.status(), 201);
        app.put_service("music", json!({"url": service.url("/"), "intervalMs": 100}))
            .await;
        eventually(Duration::from_secs(5), "its breaker", || async {
            app.breaker("music").await["state"] == "CLOSED"
        })
        .await;
        app.delete_service("music").await;
        // Tasks of the domain still call through it.
        assert_eq!(app.breaker("music").await["state"], "CLOSED");
        app.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_registered_on_one_instance_is_checked_by_another() {
    // Two instances on one PostgreSQL database; the second learns of the service only through
    // its periodic poll of the service list (no local API call).
    let env1 = health_env(Backend::Postgres, 60_000).await;
    let mut env2 = env1.another_instance();
    env2.set("JARVIS_HEALTH_RELOAD_MS", "200");
    let first = TestApp::spawn_with(env1).await;
    let second = TestApp::spawn_with(env2).await;
    let service = FakeService::start(Mode::Ok).await;
    first
        .put_service(
            "shared",
            json!({"url": service.url("/"), "intervalMs": 100}),
        )
        .await;
    until_service_is(&second, "shared", "up").await;
    // Both check it, each with its own checks.
    eventually(Duration::from_secs(5), "checks from both", || async {
        service.count() >= 4
    })
    .await;
    assert_eq!(second.breaker("shared").await["state"], "CLOSED");
    first.delete_service("shared").await;
    eventually(
        Duration::from_secs(10),
        "the other instance to drop it",
        || async { second.data("/api/v1/health/services").await["services"] == json!({}) },
    )
    .await;
    // Its breaker goes too, on both instances (the other one hears of the deletion).
    eventually(
        Duration::from_secs(5),
        "the breaker to go on both instances",
        || async {
            first.breaker("shared").await.is_null() && second.breaker("shared").await.is_null()
        },
    )
    .await;
    second.stop().await;
    first.stop().await;
}
