//! `/api/v1/circuit-breakers`: the state of every breaker, and operator actions.

use std::borrow::Cow;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use jarvis_breaker::Snapshot;

use std::collections::BTreeMap;

use super::envelope::{ok, ApiError, ApiOk, ApiPath, Envelope};
use super::openapi::ErrorEnvelope;
use super::services::path_name;
use super::types::{BreakerView, BreakerViews as Views};
use crate::api::AppState;
use crate::correlation::CorrelationId;
use crate::names::Name;

/// The operator actions of `POST /api/v1/circuit-breakers/{name}/{action}` (the handler reads
/// the segment itself and answers 404 for any other).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum BreakerAction {
    /// Held open until closed or reset.
    Open,
    /// Held closed.
    Close,
    /// Closed, with its counts cleared.
    Reset,
}

/// ISO 8601 UTC with milliseconds.
pub fn iso(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The API's picture of a breaker's snapshot: camelCase fields, ISO 8601 times.
pub fn breaker_view(s: &Snapshot, enabled: bool) -> BreakerView {
    BreakerView {
        state: Cow::Borrowed(s.state.as_str()),
        failure_count: s.failure_count,
        success_count: s.success_count,
        total_calls: s.total_calls,
        rejected_calls: s.rejected_calls,
        successes: s.successes,
        failures: s.failures,
        last_failure_at: s.last_failure_at.map(iso),
        last_failure_reason: s.last_failure_reason.clone(),
        opened_at: s.opened_at.map(iso),
        next_attempt_at: s.next_attempt_at.map(iso),
        forced: s.forced,
        generation: s.generation,
        policy: s.description.clone(),
        enabled,
    }
}

fn view_of(state: &AppState, name: &str) -> Result<Views, ApiError> {
    let breaker = state
        .breakers
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("no circuit breaker named {name}")))?;
    let mut views = Views::new();
    views.insert(
        name.to_string(),
        breaker_view(&breaker.snapshot(), state.breakers.enabled()),
    );
    Ok(views)
}

/// `GET /api/v1/circuit-breakers`: `{name: view}` for every breaker (`{}` on a fresh system).
#[utoipa::path(get, path = "/api/v1/circuit-breakers", tag = "circuit-breakers",
    responses((status = 200, description = "`{name: breaker}` for every breaker (`{}` on a fresh system).", body = Envelope<BTreeMap<String, BreakerView>>)))]
pub async fn list(State(state): State<AppState>) -> ApiOk<Views> {
    let enabled = state.breakers.enabled();
    ok(state
        .breakers
        .snapshots()
        .iter()
        .map(|s| (s.name.clone(), breaker_view(s, enabled)))
        .collect())
}

/// `GET /api/v1/circuit-breakers/{name}`: `{name: view}`.
#[utoipa::path(get, path = "/api/v1/circuit-breakers/{name}", tag = "circuit-breakers",
    params(("name" = Name, Path, description = "The breaker's name.")),
    responses(
        (status = 200, description = "`{name: breaker}`.", body = Envelope<BTreeMap<String, BreakerView>>),
        (status = 400, description = "`invalid_name`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such breaker.", body = ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<ApiOk<Views>, ApiError> {
    let name = path_name(&name, "breaker name")?;
    Ok(ok(view_of(&state, name.as_str())?))
}

/// `POST /api/v1/circuit-breakers/{name}/{open|close|reset}`: an operator action.
#[utoipa::path(post, path = "/api/v1/circuit-breakers/{name}/{action}", tag = "circuit-breakers",
    params(
        ("name" = Name, Path, description = "The breaker's name."),
        ("action" = BreakerAction, Path, description = "`open` (held open), `close` (held closed) or `reset` (closed, counts cleared)."),
    ),
    responses(
        (status = 200, description = "`{name: breaker}` after the action.", body = Envelope<BTreeMap<String, BreakerView>>),
        (status = 400, description = "`invalid_name`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such breaker, or no such action.", body = ErrorEnvelope),
    ))]
pub async fn act(
    State(state): State<AppState>,
    ApiPath((name, action)): ApiPath<(String, String)>,
    correlation: Option<axum::Extension<CorrelationId>>,
) -> Result<ApiOk<Views>, ApiError> {
    let name = path_name(&name, "breaker name")?;
    let breaker = state
        .breakers
        .get(name.as_str())
        .ok_or_else(|| ApiError::not_found(format!("no circuit breaker named {name}")))?;
    match action.as_str() {
        "open" => breaker.force_open(),
        "close" => breaker.force_closed(),
        "reset" => breaker.reset(),
        _ => {
            return Err(ApiError::not_found(
                "no such action (expected open, close or reset)",
            ))
        }
    }
    // The request span already carries the correlation ID; it is named here for the audit.
    tracing::warn!(
        breaker = %name,
        action = action.as_str(),
        requested_by = correlation.map(|c| c.0.to_string()).unwrap_or_default(),
        "operator action on a circuit breaker"
    );
    Ok(ok(view_of(&state, name.as_str())?))
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "telemetry",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let snapshots = state.breakers.snapshots();
    state.breakers.metrics().refresh(&snapshots);
    let depth = tokio::time::timeout(std::time::Duration::from_secs(1), state.store.queue_depth())
        .await
        .ok()
        .and_then(Result::ok);
    state.tasks.metrics().refresh(depth, state.tasks.running());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut text = state.metrics.render();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&crate::breakers::metrics::BreakerMetrics::render(
                &snapshots,
            ));
            text
        },
    )
        .into_response()
}
