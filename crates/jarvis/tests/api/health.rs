//! The health monitor against real services on 127.0.0.1: the user's checklist (steps 1–3),
//! breaker trials through checks, hanging services, aggregation, TCP checks, history, the CLI
//! and the Prometheus exposition.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

// ---------------------------------------------------------------------------------------------
// Test services

/// How a [`FakeService`] answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// 200 `{"status":"ok"}`.
    Ok,
    /// 503.
    Fail,
    /// 200 after a delay (ms).
    Slow(u64),
}

/// One request a fake service received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: SystemTime,
    pub correlation_id: Option<String>,
}

#[derive(Clone)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    mode: Arc<Mutex<Mode>>,
}

async fn answer(State(s): State<Shared>, headers: HeaderMap) -> axum::response::Response {
    s.hits.lock().unwrap().push(Hit {
        at: SystemTime::now(),
        correlation_id: headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let mode = s.mode.lock().unwrap().clone();
    match mode {
        Mode::Ok => (StatusCode::OK, "{\"status\":\"ok\"}").into_response(),
        Mode::Fail => (StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
        Mode::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (StatusCode::OK, "{\"status\":\"ok\"}").into_response()
        }
    }
}

/// A real HTTP service on 127.0.0.1 that counts the requests it receives, can fail on demand,
/// and can be stopped and started again on the same port.
pub struct FakeService {
    pub port: u16,
    shared: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl FakeService {
    pub async fn start(mode: Mode) -> FakeService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shared = Shared {
            hits: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
        };
        let mut s = FakeService {
            port: listener.local_addr().unwrap().port(),
            shared,
            shutdown: None,
            handle: None,
        };
        s.serve(listener);
        s
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let router = axum::Router::new()
            .fallback(answer)
            .with_state(self.shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.shutdown = Some(tx);
        self.handle = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        }));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.hits.lock().unwrap().len()
    }

    /// Stops listening and closes every connection (the port refuses connections after this).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    /// Listens on the same port again, with a fresh request count.
    pub async fn restart(&mut self) {
        self.shared.hits.lock().unwrap().clear();
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on port {} again: {e}", self.port),
            }
        };
        self.serve(listener);
    }
}

/// A service that accepts connections and never answers.
pub struct HangingService {
    pub port: u16,
    handle: tokio::task::JoinHandle<()>,
}

impl HangingService {
    pub async fn start() -> HangingService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        HangingService { port, handle }
    }
}

impl Drop for HangingService {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A port with nothing listening.
fn closed_port() -> u16 {
    free_port()
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Polls `probe` every 20 ms until it returns `Some`, or panics after `limit` with `what`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A test environment with short monitor periods and the given open period of circuits.
async fn health_env(backend: Backend, breaker_timeout_ms: u64) -> TestEnv {
    let mut env = TestEnv::new(backend).await;
    env.set(
        "CIRCUIT_BREAKER_TIMEOUT_MS",
        &breaker_timeout_ms.to_string(),
    )
    .set("JARVIS_HEALTH_RELOAD_MS", "500")
    .set("JARVIS_HEALTH_ROUND_MS", "500")
    .set("JARVIS_HEALTH_HISTORY_FLUSH_MS", "100");
    env
}

impl TestApp {
    async fn put_service(&self, name: &str, body: Value) {
        let r = self
            .send_json(Method::PUT, &format!("/api/v1/services/{name}"), &body)
            .await;
        let (s, b) = json(r).await;
        assert!(s == 200 || s == 201, "{b}");
    }

    async fn delete_service(&self, name: &str) {
        let r = self
            .send_json(
                Method::DELETE,
                &format!("/api/v1/services/{name}"),
                &json!({}),
            )
            .await;
        assert_eq!(r.status(), 204);
    }

    async fn data(&self, path: &str) -> Value {
        let (s, body) = json(self.get(path).await).await;
        assert_eq!(s, 200, "{path}: {body}");
        assert_eq!(body["success"], true, "{body}");
        body["data"].clone()
    }

    async fn breaker(&self, name: &str) -> Value {
        self.data("/api/v1/circuit-breakers").await[name].clone()
    }

    async fn service_health(&self, name: &str) -> Value {
        self.data("/api/v1/health/services").await["services"][name].clone()
    }
}

fn iso_to_system(s: &str) -> SystemTime {
    let t = chrono::DateTime::parse_from_rfc3339(s).unwrap();
    SystemTime::from(t.with_timezone(&chrono::Utc))
}

// ---------------------------------------------------------------------------------------------
// The user's checklist, steps 1–3

both_backends!(checklist_steps_1_to_3, |backend| async move {
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
    wait_for(Duration::from_secs(10), "the service to be up", || async {
        let h = app.service_health("aiDawgBackend").await;
        (h["status"] == "up").then_some(())
    })
    .await;
    assert_eq!(app.breaker("aiDawgBackend").await["state"], "CLOSED");

    // 2. Stop the service: five failed checks later the circuit is OPEN with failureCount 5.
    service.stop().await;
    let breaker = wait_for(Duration::from_secs(10), "the circuit to open", || async {
        let b = app.breaker("aiDawgBackend").await;
        (b["state"] == "OPEN").then_some(b)
    })
    .await;
    assert_eq!(breaker["failureCount"], 5, "{breaker}");
    let next_attempt = iso_to_system(breaker["nextAttemptAt"].as_str().unwrap());
    // The service is reported down with exactly the message and latency 0 of docs/api.md,
    // Health checks.
    let h = wait_for(
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
    wait_for(Duration::from_secs(10), "the circuit to close", || async {
        let b = app.breaker("aiDawgBackend").await;
        (b["state"] == "CLOSED").then_some(())
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
    wait_for(
        Duration::from_secs(5),
        "the service to be up again",
        || async { (app.service_health("aiDawgBackend").await["status"] == "up").then_some(()) },
    )
    .await;
    assert_eq!(app.data("/api/v1/health/services").await["status"], "pass");
    app.stop().await;
});

// ---------------------------------------------------------------------------------------------
// The breaker, end to end through checks

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_admits_exactly_one_trial_and_closes_after_two_successes() {
    let app = TestApp::spawn_with(health_env(Backend::Sqlite, 1_000).await).await;
    let service = FakeService::start(Mode::Fail).await;
    app.put_service(
        "flaky",
        json!({"url": service.url("/"), "intervalMs": 400, "timeoutMs": 300}),
    )
    .await;

    // Five failures open the circuit; the service then sees no calls.
    let first = wait_for(Duration::from_secs(10), "the circuit to open", || async {
        let b = app.breaker("flaky").await;
        (b["state"] == "OPEN").then_some(b)
    })
    .await;
    assert_eq!(first["failureCount"], 5);
    assert_eq!(service.count(), 5, "exactly the five failing checks");

    // Still failing: after the open period exactly one trial goes through and re-opens it.
    let second = wait_for(
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
    let saw_half_open = std::sync::atomic::AtomicBool::new(false);
    wait_for(Duration::from_secs(10), "the circuit to close", || async {
        let b = app.breaker("flaky").await;
        // HALF_OPEN shows as soon as the open period is over (successCount 0), and between
        // the two successful trials (successCount 1).
        if b["state"] == "HALF_OPEN" {
            assert!(b["successCount"] == 0 || b["successCount"] == 1, "{b}");
            if b["successCount"] == 1 {
                saw_half_open.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        (b["state"] == "CLOSED").then_some(())
    })
    .await;
    assert!(
        saw_half_open.load(std::sync::atomic::Ordering::SeqCst),
        "the circuit was HALF_OPEN with one success between the two trials"
    );
    // Two successful trials after the failed one; the next regular check is 400 ms away.
    assert_eq!(service.count(), 8);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Slow services, concurrency

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

    let h = wait_for(
        Duration::from_secs(10),
        "the hanging service to be down",
        || async {
            let h = app.service_health("hanging").await;
            (h["status"] == "down").then_some(h)
        },
    )
    .await;
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

// ---------------------------------------------------------------------------------------------
// Aggregation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregation_is_pass_warn_fail() {
    let app = TestApp::spawn_with(health_env(Backend::Sqlite, 60_000).await).await;
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
    let v = wait_for(Duration::from_secs(5), "pass", status_is("pass")).await;
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
    let v = wait_for(Duration::from_secs(5), "extra to be down", || async {
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
    let v = wait_for(Duration::from_secs(5), "db to be down", || async {
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
    let v = wait_for(Duration::from_secs(5), "degraded", || async {
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
    let v = wait_for(Duration::from_secs(5), "fail on body", status_is("fail")).await;
    assert_eq!(
        v["services"]["core"]["message"],
        "body /status is \"ok\", expected \"green\""
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_checks_connect() {
    let app = TestApp::spawn_with(health_env(Backend::Sqlite, 60_000).await).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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
    let v = wait_for(Duration::from_secs(5), "both TCP results", || async {
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
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    server.abort();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_the_api_are_picked_up() {
    let app = TestApp::spawn_with(health_env(Backend::Sqlite, 60_000).await).await;
    let a = FakeService::start(Mode::Ok).await;
    let b = FakeService::start(Mode::Ok).await;
    app.put_service("svc", json!({"url": a.url("/"), "intervalMs": 100}))
        .await;
    wait_for(Duration::from_secs(5), "checks of a", || async {
        (a.count() >= 2).then_some(())
    })
    .await;
    // Changed: the new URL is checked, the old one no longer.
    app.put_service("svc", json!({"url": b.url("/"), "intervalMs": 100}))
        .await;
    wait_for(Duration::from_secs(5), "checks of b", || async {
        (b.count() >= 2).then_some(())
    })
    .await;
    let a_then = a.count();
    wait_for(Duration::from_secs(5), "more checks of b", || async {
        (b.count() >= 6).then_some(())
    })
    .await;
    assert_eq!(a.count(), a_then, "the old URL is not checked any more");
    // Removed: no more checks, and it is gone from the view.
    app.delete_service("svc").await;
    let v = app.data("/api/v1/health/services").await;
    assert_eq!(v["services"], json!({}));
    // Once the monitor has dropped it (the gauge says so), its task is gone.
    wait_for(Duration::from_secs(5), "the monitor to drop it", || async {
        let text = app.get("/metrics").await.text().await.unwrap();
        text.lines()
            .any(|l| l == "jarvis_health_services 0")
            .then_some(())
    })
    .await;
    let b_then = b.count();
    let until = Instant::now() + Duration::from_millis(500);
    wait_for(Duration::from_secs(2), "500 ms to pass", || async {
        (Instant::now() >= until).then_some(())
    })
    .await;
    assert_eq!(b.count(), b_then, "a removed service is not checked");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// A deleted service takes its breaker with it

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
        let breaker = wait_for(Duration::from_secs(10), "the circuit to open", || async {
            let b = app.breaker("doomed").await;
            (b["state"] == "OPEN").then_some(b)
        })
        .await;
        assert_eq!(breaker["failureCount"], 5, "{breaker}");
        wait_for(Duration::from_secs(5), "the OPEN row to be stored", || async {
        matches!(app.state().store.breaker_row("doomed").await, Ok(Some(r)) if r.state == "OPEN")
            .then_some(())
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
        wait_for(Duration::from_secs(5), "the monitor to drop it", || async {
            let text = app.get("/metrics").await.text().await.unwrap();
            text.lines()
                .any(|l| l == "jarvis_health_services 0")
                .then_some(())
        })
        .await;
        let until = Instant::now() + Duration::from_millis(500);
        wait_for(Duration::from_secs(2), "500 ms to pass", || async {
            (Instant::now() >= until).then_some(())
        })
        .await;
        let all = app.data("/api/v1/circuit-breakers").await;
        assert_eq!(all, json!({}), "no breaker is left behind");

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
        wait_for(
            Duration::from_secs(5),
            "the new service to be up",
            || async { (app.service_health("doomed").await["status"] == "up").then_some(()) },
        )
        .await;
        let breaker = app.breaker("doomed").await;
        assert_eq!(breaker["state"], "CLOSED", "{breaker}");
        assert_eq!(breaker["failureCount"], 0, "{breaker}");
        assert_eq!(breaker["rejectedCalls"], 0, "{breaker}");
        app.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_shared_with_an_agent_domain_is_kept() {
    let app = TestApp::spawn_with(health_env(Backend::Sqlite, 600_000).await).await;
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
    wait_for(Duration::from_secs(5), "its breaker", || async {
        (app.breaker("music").await["state"] == "CLOSED").then_some(())
    })
    .await;
    app.delete_service("music").await;
    // Tasks of the domain still call through it.
    assert_eq!(app.breaker("music").await["state"], "CLOSED");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Uptime comes from the store: it survives restarts and is shared by instances

/// A service that was up for its first checks and fails since, checked every 100 ms without a
/// breaker (every check calls it), until its hourly uptime is between 30 % and 70 %. Returns
/// that uptime.
async fn half_up(app: &TestApp, service: &FakeService) -> f64 {
    app.put_service(
        "steady",
        json!({"url": service.url("/"), "intervalMs": 100}),
    )
    .await;
    wait_for(Duration::from_secs(10), "ten checks", || async {
        (service.count() >= 10).then_some(())
    })
    .await;
    service.set_mode(Mode::Fail);
    wait_for(Duration::from_secs(10), "uptime to fall", || async {
        let u = app.service_health("steady").await["uptime"]["hour"].as_f64()?;
        (u > 30.0 && u < 70.0).then_some(u)
    })
    .await
}

fn uptime_env(env: &mut TestEnv) {
    env.set("CIRCUIT_BREAKER_ENABLED", "false")
        .set("JARVIS_HEALTH_UPTIME_SYNC_MS", "200");
}

both_backends!(uptime_survives_a_restart, |backend| async move {
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
    let h = wait_for(
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
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_postgres_report_the_same_uptime() {
    let mut env1 = health_env(Backend::Postgres, 600_000).await;
    uptime_env(&mut env1);
    let dir2 = tempfile::tempdir().unwrap();
    let mut vars2 = env1.vars.clone();
    vars2.insert(
        "JARVIS_DATA_DIR".into(),
        dir2.path().join("data").display().to_string(),
    );
    vars2.insert(
        "JARVIS_LOG_DIR".into(),
        dir2.path().join("logs").display().to_string(),
    );
    let env2 = TestEnv {
        dir: dir2,
        vars: vars2,
        db: None,
    };
    let first = TestApp::spawn_with(env1).await;
    let service = FakeService::start(Mode::Ok).await;
    let before = half_up(&first, &service).await;
    // The second instance starts while the service fails: its own checks alone would say 0 %.
    let second = TestApp::spawn_with(env2).await;
    let two = wait_for(
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
    wait_for(Duration::from_secs(10), "both to agree", || async {
        let two = second.service_health("steady").await["uptime"]["hour"].as_f64()?;
        let one = first.service_health("steady").await["uptime"]["hour"].as_f64()?;
        ((one - two).abs() < 5.0).then_some(())
    })
    .await;
    second.stop().await;
    first.stop().await;
}

// ---------------------------------------------------------------------------------------------
// History

both_backends!(history_keeps_results, |backend| async move {
    let app = TestApp::spawn_with(health_env(backend, 60_000).await).await;
    let service = FakeService::start(Mode::Ok).await;
    let t0 = chrono::Utc::now();
    app.put_service("hist", json!({"url": service.url("/"), "intervalMs": 100}))
        .await;
    let results = wait_for(Duration::from_secs(10), "five stored results", || async {
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
});

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------
// CLI, config file, metrics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jarvis_health_prints_config_file_services() {
    let service = FakeService::start(Mode::Ok).await;
    let mut env = health_env(Backend::Sqlite, 60_000).await;
    let file = env.dir.path().join("jarvis.toml");
    std::fs::write(
        &file,
        format!(
            "[services.fromFile]\nurl = \"{}\"\nintervalMs = 100\ncritical = true\n",
            service.url("/health")
        ),
    )
    .unwrap();
    env.set("JARVIS_CONFIG", &file.display().to_string());
    let app = TestApp::spawn_with(env).await;
    wait_for(
        Duration::from_secs(5),
        "the file's service to be up",
        || async { (app.service_health("fromFile").await["status"] == "up").then_some(()) },
    )
    .await;

    let address = app.address.clone();
    let dir = app.env.dir.path().to_path_buf();
    let (table, json_out, no_token, probe) = tokio::task::spawn_blocking(move || {
        let mut vars = std::collections::HashMap::new();
        vars.insert("JARVIS_AUTH_TOKEN".to_string(), TOKEN.to_string());
        let table = run_jarvis(&["health", "--url", &address], &vars, &dir);
        let json_out = run_jarvis(&["health", "--url", &address, "--json"], &vars, &dir);
        let no_token = run_jarvis(
            &["health", "--url", &address],
            &std::collections::HashMap::new(),
            &dir,
        );
        // The container health check takes `/health` as health+json.
        let probe = run_jarvis(
            &["healthcheck", "--url", &format!("{address}/health")],
            &std::collections::HashMap::new(),
            &dir,
        );
        (table, json_out, no_token, probe)
    })
    .await
    .unwrap();
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("overall: pass\n"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("fromFile") && l.contains("up") && l.contains("CLOSED")),
        "{text}"
    );
    assert!(json_out.status.success());
    let v: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(v["services"]["fromFile"]["critical"], true);
    assert_eq!(no_token.status.code(), Some(2));
    assert!(probe.status.success(), "{probe:?}");
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("JARVIS_AUTH_TOKEN"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool() {
    let app = TestApp::spawn_with(health_env(Backend::Sqlite, 60_000).await).await;
    let ok = FakeService::start(Mode::Ok).await;
    app.put_service("up1", json!({"url": ok.url("/"), "intervalMs": 100}))
        .await;
    app.put_service(
        "down1",
        json!({"url": format!("http://127.0.0.1:{}/", closed_port()), "intervalMs": 100}),
    )
    .await;
    wait_for(
        Duration::from_secs(10),
        "both breakers and results",
        || async {
            let v = app.data("/api/v1/health/services").await;
            (v["services"]["up1"]["status"] == "up" && v["services"]["down1"]["status"] == "down")
                .then_some(())
        },
    )
    .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    for name in [
        "jarvis_health_checks_total{result=\"up\"}",
        "jarvis_health_checks_total{result=\"down\"}",
        "jarvis_health_check_duration_seconds_bucket",
        "jarvis_health_check_lag_seconds_bucket",
        "jarvis_health_checks_skipped_total",
        "jarvis_health_services 2",
        "jarvis_circuit_breaker_state{breaker=\"up1\"",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let checked = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = match std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!(
                "promtool is required for this test ({e}); run scripts/ensure-tools.sh \
                 (Debian package prometheus)"
            ),
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Round reports (the hook task history is wired to)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_round_is_reported_to_the_sinks() {
    let ok = FakeService::start(Mode::Ok).await;
    let mut env = health_env(Backend::Sqlite, 60_000).await;
    env.set("JARVIS_HEALTH_ROUND_MS", "300");
    let file = env.dir.path().join("jarvis.toml");
    std::fs::write(
        &file,
        format!(
            "[services.core]\nurl = \"{}\"\nintervalMs = 100\ncritical = true\n\
             [services.gone]\nurl = \"tcp://127.0.0.1:{}\"\nintervalMs = 100\n",
            ok.url("/"),
            closed_port()
        ),
    )
    .unwrap();
    env.set("JARVIS_CONFIG", &file.display().to_string());
    let config = jarvis::config::Config::from_env_map(&env.vars, None).unwrap();
    let app = jarvis::app::Application::build(config).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<jarvis::health::RoundReport>(16);
    app.state().health.add_sink(Arc::new(tx));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let report = wait_for(Duration::from_secs(10), "a round with both results", || {
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

// ---------------------------------------------------------------------------------------------
// Several instances

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_registered_on_one_instance_is_checked_by_another() {
    // Two instances on one PostgreSQL database; the second learns of the service only through
    // its periodic poll of the service list (no local API call).
    let env1 = health_env(Backend::Postgres, 60_000).await;
    let dir2 = tempfile::tempdir().unwrap();
    let mut vars2 = env1.vars.clone();
    vars2.insert(
        "JARVIS_DATA_DIR".into(),
        dir2.path().join("data").display().to_string(),
    );
    vars2.insert(
        "JARVIS_LOG_DIR".into(),
        dir2.path().join("logs").display().to_string(),
    );
    vars2.insert("JARVIS_HEALTH_RELOAD_MS".into(), "200".into());
    let env2 = TestEnv {
        dir: dir2,
        vars: vars2,
        db: None,
    };
    let first = TestApp::spawn_with(env1).await;
    let second = TestApp::spawn_with(env2).await;
    let service = FakeService::start(Mode::Ok).await;
    first
        .put_service(
            "shared",
            json!({"url": service.url("/"), "intervalMs": 100}),
        )
        .await;
    wait_for(
        Duration::from_secs(10),
        "the other instance to check it",
        || async { (second.service_health("shared").await["status"] == "up").then_some(()) },
    )
    .await;
    // Both check it, each with its own checks.
    wait_for(Duration::from_secs(5), "checks from both", || async {
        (service.count() >= 4).then_some(())
    })
    .await;
    assert_eq!(second.breaker("shared").await["state"], "CLOSED");
    first.delete_service("shared").await;
    wait_for(
        Duration::from_secs(10),
        "the other instance to drop it",
        || async {
            let v = second.data("/api/v1/health/services").await;
            (v["services"] == json!({})).then_some(())
        },
    )
    .await;
    // Its breaker goes too, on both instances (the other one hears of the deletion).
    wait_for(
        Duration::from_secs(5),
        "the breaker to go on both instances",
        || async {
            let one = first.data("/api/v1/circuit-breakers").await;
            let two = second.data("/api/v1/circuit-breakers").await;
            (one.get("shared").is_none() && two.get("shared").is_none()).then_some(())
        },
    )
    .await;
    second.stop().await;
    first.stop().await;
}

// The user's checklist, step 4: health rounds are tasks of system-health/monitor-services.
both_backends!(health_rounds_have_task_history, |backend| async move {
    let ok = FakeService::start(Mode::Ok).await;
    let mut env = TestEnv::new(backend).await;
    env.set("JARVIS_HEALTH_ROUND_MS", "200");
    let app = TestApp::spawn_with(env).await;
    let r = app
        .send_json(
            Method::PUT,
            "/api/v1/services/db",
            &json!({"url": ok.url("/health"), "intervalMs": 100, "critical": true}),
        )
        .await;
    assert_eq!(r.status(), 201);
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
