//! Trace events: what Jarvis did for one correlation ID that no other table keeps (the API
//! request itself, calls through the AI gateway, HTTP agent calls, breaker decisions), as the
//! store's `trace_events` table holds them. The trace API (`GET /api/v1/traces/{id}`) merges
//! them with the tasks, attempts and health checks of the same ID (see `crate::trace`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// What a trace event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TraceKind {
    /// An API request (`/api/v1/*`, `/v1/*`).
    Request,
    /// A task submitted or settled.
    Task,
    /// One attempt of a task (its execution record).
    Attempt,
    /// A call to an HTTP agent.
    AgentCall,
    /// A call to a model provider (through `/v1/*` or an `ai` agent).
    ModelCall,
    /// A breaker decision: a call rejected, or an outcome that changed the circuit's state.
    Breaker,
    /// A health check.
    HealthCheck,
    /// A log line of this instance.
    Log,
}

impl TraceKind {
    /// Every kind, in declaration order.
    pub const ALL: [TraceKind; 8] = [
        TraceKind::Request,
        TraceKind::Task,
        TraceKind::Attempt,
        TraceKind::AgentCall,
        TraceKind::ModelCall,
        TraceKind::Breaker,
        TraceKind::HealthCheck,
        TraceKind::Log,
    ];

    /// The wire name (`agent_call`).
    pub fn as_str(self) -> &'static str {
        match self {
            TraceKind::Request => "request",
            TraceKind::Task => "task",
            TraceKind::Attempt => "attempt",
            TraceKind::AgentCall => "agent_call",
            TraceKind::ModelCall => "model_call",
            TraceKind::Breaker => "breaker",
            TraceKind::HealthCheck => "health_check",
            TraceKind::Log => "log",
        }
    }

    /// The kind of a wire name.
    pub fn parse(raw: &str) -> Option<TraceKind> {
        TraceKind::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// One event of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceEvent {
    /// The correlation ID it belongs to.
    pub correlation_id: String,
    /// When it happened (its start, for things that last).
    pub at: DateTime<Utc>,
    /// What it is.
    pub kind: TraceKind,
    /// The instance that did it.
    pub instance: String,
    /// The task it concerns.
    pub task_id: Option<Uuid>,
    /// The attempt it concerns.
    pub attempt: Option<u32>,
    /// One line for a person.
    pub summary: String,
    /// How long it took.
    pub duration_ms: Option<u64>,
    /// How it ended (an HTTP status, `succeeded`, `rejected`, `OPEN` …).
    pub status: Option<String>,
    /// Whatever else is known, as a JSON object.
    pub detail: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in TraceKind::ALL {
            assert_eq!(TraceKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                Value::String(k.as_str().into())
            );
        }
        assert_eq!(TraceKind::parse("nope"), None);
    }
}
