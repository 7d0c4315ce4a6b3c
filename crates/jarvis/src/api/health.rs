//! `GET /health`: liveness of Jarvis itself (process and store), public and cheap.
//!
//! `pass` (200): all well. `warn` (200): degraded but serving — a shared PostgreSQL does not
//! answer, or the breakers could not write their state and run on local state. `fail` (503): the
//! embedded store is broken.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::app::AppState;

/// How long the store may take to answer before `/health` reports it failed.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers 200 with `status: pass` when the store answers, else 503 with `status: fail`.
pub async fn health(State(state): State<AppState>) -> Response {
    let started = Instant::now();
    let store = match tokio::time::timeout(STORE_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => json!({
            "status": "pass",
            "backend": state.store.backend(),
            "latencyMs": started.elapsed().as_millis() as u64,
        }),
        Ok(Err(e)) => json!({
            "status": "fail",
            "backend": state.store.backend(),
            "output": e.to_string(),
        }),
        Err(_) => json!({
            "status": "fail",
            "backend": state.store.backend(),
            "output": format!("no answer within {} ms", STORE_TIMEOUT.as_millis()),
        }),
    };
    // A shared PostgreSQL that does not answer degrades Jarvis (breakers run on local state, the
    // queue waits) but does not make it dead: every instance would otherwise be taken out of
    // its load balancer at once. A local SQLite file that fails is fatal.
    let mut store = store;
    if store["status"] == "fail" && state.store.backend() == crate::store::Backend::Postgres {
        store["status"] = "warn".into();
    }
    let pass = store["status"] != "fail";
    let breakers = if state.breaker_sync.degraded() {
        json!({
            "status": "warn",
            "output": "the store was unreachable at the last breaker update; breakers run on local state",
        })
    } else {
        json!({ "status": "pass" })
    };
    let status = if !pass {
        "fail"
    } else if breakers["status"] == "warn" || store["status"] == "warn" {
        "warn"
    } else {
        "pass"
    };
    let data = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "instanceId": state.instance_id,
        "uptimeSeconds": state.started_at.elapsed().as_secs(),
        "checks": {
            "process": { "status": "pass" },
            "store": store,
            "breakers": breakers,
        },
    });
    if pass {
        (
            StatusCode::OK,
            Json(json!({ "success": true, "data": data })),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "success": false,
                "error": { "code": "unhealthy", "message": "the store does not answer" },
                "data": data,
            })),
        )
            .into_response()
    }
}
