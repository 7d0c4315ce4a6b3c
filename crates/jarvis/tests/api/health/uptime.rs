//! Uptime comes from the store: it survives a restart, and instances on one PostgreSQL
//! database report the same figure.

use std::time::Duration;

use serde_json::json;

use super::health_env;
use crate::both_backends;
use crate::helpers::*;

/// A service that was up for its first checks and fails since, checked every 100 ms without a
/// breaker (every check calls it), until its hourly uptime is between 30 % and 70 %. Returns
/// that uptime.
async fn half_up(app: &TestApp, service: &FakeService) -> f64 {
    app.put_service(
        "steady",
        json!({"url": service.url("/"), "intervalMs": 100}),
    )
    .await;
    eventually(Duration::from_secs(10), "ten checks", || async {
        service.count() >= 10
    })
    .await;
    service.set_mode(Mode::Fail);
    eventually_some(Duration::from_secs(10), "uptime to fall", || async {
        let u = app.service_health("steady").await["uptime"]["hour"].as_f64()?;
        (u > 30.0 && u < 70.0).then_some(u)
    })
    .await
}

fn uptime_env(env: &mut TestEnv) {
    env.set("CIRCUIT_BREAKER_ENABLED", "false")
        .set("JARVIS_HEALTH_UPTIME_SYNC_MS", "200");
}

both_backends!(
    uptime_survives_a_restart_from_the_store,
    |backend| async move {
        let mut env = health_env(backend, 600_000).await;
        uptime_env(&mut env);
        let app = TestApp::spawn_with(env).await;
        let service = FakeService::start(Mode::Ok).await;
        let before = half_up(&app, &service).await;
        let env = app.stop_keep_env().await;

        // Restarted, the service still failing: a fresh count would say 0 % (or nothing yet); the
        // stored counts carry on from where the stopped instance was (a few more failed checks
        // only lower it a little).
        let app = TestApp::spawn_with(env).await;
        let h = eventually_some(
            Duration::from_secs(10),
            "uptime after the restart",
            || async {
                let h = app.service_health("steady").await;
                h["uptime"]["hour"].is_f64().then_some(h)
            },
        )
        .await;
        let after = h["uptime"]["hour"].as_f64().unwrap();
        assert!(
            after <= before && after > before - 20.0,
            "uptime {before} before the restart, {after} after: {h}"
        );
        assert_eq!(h["uptime"]["day"], h["uptime"]["hour"], "{h}");
        app.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_postgres_report_the_same_uptime() {
    let mut env1 = health_env(Backend::Postgres, 600_000).await;
    uptime_env(&mut env1);
    let env2 = env1.another_instance();
    let first = TestApp::spawn_with(env1).await;
    let service = FakeService::start(Mode::Ok).await;
    let before = half_up(&first, &service).await;
    // The second instance starts while the service fails: its own checks alone would say 0 %.
    let second = TestApp::spawn_with(env2).await;
    let two = eventually_some(
        Duration::from_secs(10),
        "the second instance to show uptime",
        || async { second.service_health("steady").await["uptime"]["hour"].as_f64() },
    )
    .await;
    assert!(
        two > before - 20.0,
        "the second instance shows {two}, the first showed {before}"
    );
    // Both count every check of both: they agree, up to what one has not synced yet.
    eventually_some(Duration::from_secs(10), "both to agree", || async {
        let two = second.service_health("steady").await["uptime"]["hour"].as_f64()?;
        let one = first.service_health("steady").await["uptime"]["hour"].as_f64()?;
        ((one - two).abs() < 5.0).then_some(())
    })
    .await;
    second.stop().await;
    first.stop().await;
}
