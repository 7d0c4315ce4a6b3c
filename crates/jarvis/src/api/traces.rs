//! `GET /api/v1/traces/{correlationId}`: everything Jarvis knows about one correlation ID, in
//! time order (see `crate::trace`), and the shapes `jarvis trace` reads back.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::envelope::{ok, ApiError, ApiOk, ApiPath, Envelope};
use super::openapi::ErrorEnvelope;
use crate::api::AppState;
use crate::correlation::CorrelationId;
use crate::trace::{TraceEvent, TraceKind};

/// One correlation ID's trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceView {
    /// The ID.
    pub correlation_id: String,
    /// The instances that did something for it, in order of first appearance.
    pub instances: Vec<String>,
    /// What happened, oldest first.
    pub events: Vec<TraceEventView>,
}

/// One event of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceEventView {
    /// When it happened (its start, for things that last).
    pub at: DateTime<Utc>,
    /// `request`, `task`, `attempt`, `agent_call`, `model_call`, `breaker`, `health_check` or
    /// `log`.
    pub kind: TraceKind,
    /// The instance that did it (null when not known: a task's submission).
    pub instance: Option<String>,
    /// The task it concerns.
    pub task_id: Option<Uuid>,
    /// The attempt it concerns.
    pub attempt: Option<u32>,
    /// One line for a person.
    pub summary: String,
    /// How long it took.
    pub duration_ms: Option<u64>,
    /// How it ended.
    pub status: Option<String>,
    /// Whatever else is known (an object).
    pub detail: Value,
}

impl From<TraceEvent> for TraceEventView {
    fn from(e: TraceEvent) -> Self {
        TraceEventView {
            at: e.at,
            kind: e.kind,
            instance: (!e.instance.is_empty()).then_some(e.instance),
            task_id: e.task_id,
            attempt: e.attempt,
            summary: e.summary,
            duration_ms: e.duration_ms,
            status: e.status,
            detail: e.detail,
        }
    }
}

/// `GET /api/v1/traces/{correlationId}`: 400 `invalid_correlation_id` for an ID Jarvis would
/// never accept, 404 `trace_not_found` when nothing is known of it.
#[utoipa::path(get, path = "/api/v1/traces/{correlationId}", tag = "traces",
    params(("correlationId" = String, Path, description = "The correlation ID (1-128 characters of A-Z a-z 0-9 - _ . :).")),
    responses(
        (status = 200, description = "Everything known about the ID, in time order.", body = Envelope<TraceView>),
        (status = 400, description = "`invalid_correlation_id`.", body = ErrorEnvelope),
        (status = 404, description = "`trace_not_found`.", body = ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiOk<TraceView>, ApiError> {
    let Some(id) = CorrelationId::parse(&raw) else {
        return Err(ApiError::bad_request(
            "invalid_correlation_id",
            "a correlation ID is 1-128 characters of A-Z a-z 0-9 - _ . :",
        ));
    };
    let sources = state
        .store
        .trace_sources(id.as_str(), crate::trace::SOURCE_LIMIT)
        .await?;
    let logs = crate::telemetry::recent_lines(id.as_str());
    if sources.is_empty() && logs.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "trace_not_found",
            format!("nothing is known of correlation ID {id} (trace events are kept for JARVIS_TRACE_RETENTION_HOURS)"),
        ));
    }
    let events = crate::trace::assemble(sources, logs, &state.instance_id);
    Ok(ok(TraceView {
        correlation_id: id.to_string(),
        instances: crate::trace::instances(&events),
        events: events.into_iter().map(TraceEventView::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_views_round_trip() {
        let view = TraceView {
            correlation_id: "req-abc".into(),
            instances: vec!["a".into()],
            events: vec![TraceEventView {
                at: "2026-01-02T03:04:05.123Z".parse().unwrap(),
                kind: TraceKind::AgentCall,
                instance: Some("a".into()),
                task_id: Some(Uuid::nil()),
                attempt: Some(2),
                summary: "POST http://127.0.0.1:9/run: HTTP 200".into(),
                duration_ms: Some(12),
                status: Some("HTTP 200".into()),
                detail: serde_json::json!({"url": "http://127.0.0.1:9/run"}),
            }],
        };
        let text = serde_json::to_string(&view).unwrap();
        assert!(text.contains(r#""kind":"agent_call""#), "{text}");
        assert!(text.contains(r#""taskId":"#), "{text}");
        let back: TraceView = serde_json::from_str(&text).unwrap();
        assert_eq!(back, view);
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }
}
