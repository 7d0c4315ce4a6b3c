//! What the monitor keeps and reports: stored check results (newest first, filtered by time,
//! limited), and a report of every round to its sinks (the hook task history is wired to).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{health_env, health_env_with_file};
use crate::both_backends;
use crate::helpers::*;

both_backends!(
    check_results_are_stored_newest_first_and_queried_by_time,
    |backend| async move {
        let app = TestApp::spawn_with(health_env(backend, 60_000).await).await;
        let service = FakeService::start(Mode::Ok).await;
        let t0 = chrono::Utc::now();
        app.put_service("hist", json!({"url": service.url("/"), "intervalMs": 100}))
            .await;
        let results = eventually_some(Duration::from_secs(10), "five stored results", || async {
            let v = app.data("/api/v1/health/services/hist/history").await;
            let r = v["results"].as_array().unwrap().clone();
            (r.len() >= 5).then_some(r)
        })
        .await;
        let first = &results[0];
        assert_eq!(first["status"], "up");
        assert_eq!(first["message"], "HTTP 200");
        assert_eq!(first["breakerOpen"], false);
        assert!(first["correlationId"].as_str().unwrap().starts_with("hc-"));
        assert!(first["latency"].is_u64());
        let times: Vec<String> = results
            .iter()
            .map(|r| r["timestamp"].as_str().unwrap().to_string())
            .collect();
        let mut sorted = times.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(times, sorted, "newest first");

        let v = app
            .data("/api/v1/health/services/hist/history?limit=2")
            .await;
        assert_eq!(v["results"].as_array().unwrap().len(), 2);
        let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let v = app
            .data(&format!(
                "/api/v1/health/services/hist/history?since={}",
                urlencode(&future)
            ))
            .await;
        assert_eq!(v["results"], json!([]));
        let v = app
            .data(&format!(
                "/api/v1/health/services/hist/history?until={}",
                urlencode(&t0.to_rfc3339())
            ))
            .await;
        assert_eq!(v["results"], json!([]));

        assert_error(
            app.get("/api/v1/health/services/nope/history").await,
            404,
            "not_found",
        )
        .await;
        assert_error(
            app.get("/api/v1/health/services/hist/history?limit=0")
                .await,
            400,
            "invalid_query",
        )
        .await;
        assert_error(
            app.get("/api/v1/health/services/hist/history?since=yesterday")
                .await,
            400,
            "invalid_query",
        )
        .await;
        app.stop().await;
    }
);

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_round_is_reported_to_the_sinks() {
    let ok = FakeService::start(Mode::Ok).await;
    let mut env = health_env_with_file(
        Backend::Sqlite,
        60_000,
        &format!(
            "[services.core]\nurl = \"{}\"\nintervalMs = 100\ncritical = true\n\
             [services.gone]\nurl = \"tcp://127.0.0.1:{}\"\nintervalMs = 100\n",
            ok.url("/"),
            closed_port()
        ),
    )
    .await;
    env.set("JARVIS_HEALTH_ROUND_MS", "300");
    let config = jarvis::config::Config::from_env_map(&env.vars, None).unwrap();
    let app = jarvis::app::Application::build(config).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<jarvis::health::RoundReport>(16);
    app.state().health.add_sink(Arc::new(tx));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let report = eventually_some(Duration::from_secs(10), "a round with both results", || {
        let next = rx.try_recv().ok();
        async move { next.filter(|r| r.up == 1 && r.down == 1) }
    })
    .await;
    assert_eq!(report.services, 2);
    assert_eq!(report.services_checked, 2);
    assert!(report.checks >= 2, "{report:?}");
    assert!(report.all_critical_up, "the critical one is up");
    // core weighs 3 and is up, gone weighs 1 and is down.
    assert_eq!(report.impact_score, 75.0);
    assert_eq!(report.down_services, vec!["gone".to_string()]);
    assert!(report.correlation_id.as_str().starts_with("hm-"));
    assert!(report.duration >= Duration::from_millis(250), "{report:?}");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

// Retention deletes old results in batches until none is left, and nothing newer.
both_backends!(
    retention_deletes_every_old_result_and_keeps_the_new,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let store = app.state().store.clone();
        let result = |at: chrono::DateTime<chrono::Utc>| jarvis::health::CheckResult {
            service: jarvis::names::Name::parse("kept").unwrap(),
            status: jarvis::health::Status::Up,
            message: "HTTP 200".into(),
            latency_ms: 3,
            timestamp: at,
            breaker_open: false,
            correlation_id: None,
        };
        let now = chrono::Utc::now();
        let old: Vec<_> = (0..25)
            // Two hours old: older than this test's cut-off, younger than the instance's own
            // retention (24 h), whose job would otherwise race the test for them.
            .map(|i| result(now - chrono::TimeDelta::hours(2) + chrono::TimeDelta::seconds(i)))
            .collect();
        store.insert_health_checks(&old, "test").await.unwrap();
        store
            .insert_health_checks(&[result(now)], "test")
            .await
            .unwrap();
        let cutoff = now - chrono::TimeDelta::hours(1);
        assert_eq!(store.prune_health_checks(cutoff).await.unwrap(), 25);
        assert_eq!(store.prune_health_checks(cutoff).await.unwrap(), 0);
        let history = app.data("/api/v1/health/services/kept/history").await;
        assert_eq!(history["results"].as_array().unwrap().len(), 1, "{history}");
    }
);
