//! How one check decides: an HTTP service that never answers is down after its timeout without
//! delaying the checks of others, each check carries its own correlation ID, and a TCP check is
//! up when the port accepts a connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{health_env, until_service_is};
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_service_is_down_after_its_timeout_and_delays_no_one() {
    let app = TestApp::spawn_with(health_env(Backend::Sqlite, 60_000).await).await;
    let hanging = HangingService::start().await;
    let healthy = FakeService::start(Mode::Ok).await;
    app.put_service(
        "hanging",
        json!({"url": format!("http://127.0.0.1:{}/", hanging.port), "intervalMs": 500, "timeoutMs": 2000}),
    )
    .await;
    app.put_service(
        "healthy",
        json!({"url": healthy.url("/"), "intervalMs": 100}),
    )
    .await;

    let h = until_service_is(&app, "hanging", "down").await;
    assert_eq!(h["message"], "timeout after 2000 ms");
    assert!(h["latency"].as_u64().unwrap() >= 2000, "{h}");

    // Meanwhile the healthy service was checked on its own 100 ms interval: over the 2 s and
    // more that the hanging check took, no gap came anywhere near that timeout.
    let hits = healthy.hits();
    assert!(
        hits.len() >= 15,
        "only {} checks of the healthy service",
        hits.len()
    );
    let max_gap = hits
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at).unwrap_or_default())
        .max()
        .unwrap();
    assert!(
        max_gap < Duration::from_millis(1000),
        "a gap of {max_gap:?}"
    );
    assert_eq!(app.service_health("healthy").await["status"], "up");

    // Each check has its own correlation ID, sent as X-Correlation-ID.
    let ids: Vec<String> = hits
        .iter()
        .filter_map(|h| h.correlation_id.clone())
        .collect();
    assert_eq!(ids.len(), hits.len());
    assert!(ids.iter().all(|id| id.starts_with("hc-")), "{ids:?}");
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_check_is_up_when_the_port_accepts_and_down_when_refused() {
    let app = TestApp::spawn_with(health_env(Backend::Sqlite, 60_000).await).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    app.put_service(
        "redis",
        json!({"url": format!("tcp://127.0.0.1:{port}"), "intervalMs": 100}),
    )
    .await;
    app.put_service(
        "gone",
        json!({"url": format!("tcp://127.0.0.1:{}", closed_port()), "intervalMs": 100}),
    )
    .await;
    let v = eventually_some(Duration::from_secs(5), "both TCP results", || async {
        let v = app.data("/api/v1/health/services").await;
        (v["services"]["redis"]["status"] == "up" && v["services"]["gone"]["status"] == "down")
            .then_some(v)
    })
    .await;
    assert_eq!(v["services"]["redis"]["message"], "TCP connect OK");
    assert_eq!(v["services"]["redis"]["componentType"], "tcp");
    assert!(v["services"]["gone"]["message"]
        .as_str()
        .unwrap()
        .contains("refused"));
    assert!(accepted.load(Ordering::SeqCst) >= 1);
    server.abort();
    app.stop().await;
}
