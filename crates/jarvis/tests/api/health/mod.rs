//! The health monitor against real services on 127.0.0.1 ([`FakeService`],
//! [`HangingService`] in the harness), one module per behaviour: the user's checklist, breaker
//! trials through checks, how one check decides, the overall status, services changing, uptime,
//! stored results and round reports, and what the CLI and `/metrics` show.

mod aggregation;
mod checklist;
mod checks;
mod history;
mod prediction;
mod reporting;
mod services;
mod trials;
mod uptime;

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::helpers::*;

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

/// A health environment, with a config file holding `toml`.
async fn health_env_with_file(backend: Backend, breaker_timeout_ms: u64, toml: &str) -> TestEnv {
    let mut env = health_env(backend, breaker_timeout_ms).await;
    let file = env.dir.path().join("jarvis.toml");
    std::fs::write(&file, toml).unwrap();
    env.set("JARVIS_CONFIG", &file.display().to_string());
    env
}

fn iso_to_system(s: &str) -> SystemTime {
    let t = chrono::DateTime::parse_from_rfc3339(s).unwrap();
    SystemTime::from(t.with_timezone(&chrono::Utc))
}

/// Waits until breaker `name` is OPEN; returns its view.
async fn until_open(app: &TestApp, name: &str) -> Value {
    eventually_some(Duration::from_secs(10), "the circuit to open", || async {
        let b = app.breaker(name).await;
        (b["state"] == "OPEN").then_some(b)
    })
    .await
}

/// Waits until the monitor reports service `name` with `status`; returns its view.
async fn until_service_is(app: &TestApp, name: &str, status: &str) -> Value {
    eventually_some(
        Duration::from_secs(10),
        &format!("{name} to be {status}"),
        || async {
            let h = app.service_health(name).await;
            (h["status"] == status).then_some(h)
        },
    )
    .await
}

/// Waits until the monitor has dropped every service (its gauge says so: their check tasks
/// are gone).
async fn until_the_monitor_checks_nothing(app: &TestApp) {
    eventually(
        Duration::from_secs(5),
        "the monitor to drop every service",
        || async {
            let text = app.get("/metrics").await.text().await.unwrap();
            text.lines().any(|l| l == "jarvis_health_services 0")
        },
    )
    .await
}
