//! One execution record: one attempt of one task, as kept in `task_history`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Longest failure reason kept, in characters (the rest is cut).
pub const MAX_REASON_CHARS: usize = 2_000;

/// One attempt of one task. The store keeps one record per task and attempt, so writing a
/// record twice (a replayed spool file) stores it once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    /// The record's own ID.
    pub record_id: Uuid,
    /// The task.
    pub task_id: Uuid,
    /// The task's domain.
    pub domain: String,
    /// The task's action.
    pub action: String,
    /// Which attempt this was (1-based).
    pub attempt: u32,
    /// The parameters the attempt ran with.
    pub parameters: Value,
    /// Which of them were learned.
    pub learned_parameters: Option<Value>,
    /// Whether the attempt succeeded.
    pub success: bool,
    /// How long it took.
    pub duration_ms: u64,
    /// The agent's impact score (0–100).
    pub impact_score: Option<f64>,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// The fingerprint of the normalised failure reason (the learning crate's grouping).
    pub failure_group: Option<String>,
    /// What the attempt cost.
    pub cost_usd: Option<f64>,
    /// The submitting request's correlation ID.
    pub correlation_id: Option<String>,
    /// The instance that ran it.
    pub instance_id: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// Whether Jarvis cut the attempt off at its timeout. (Absent in spool lines written
    /// before the field existed: false.)
    #[serde(default)]
    pub timed_out: bool,
    /// The model call the attempt made, for an `ai` agent's task: model, deployment, tokens
    /// (its cost is `cost_usd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_call: Option<ModelCall>,
}

/// The model call of an `ai` agent's attempt, as its execution record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelCall {
    /// The model asked for (`openai/gpt-4o-mini`).
    pub model: String,
    /// The deployment that answered.
    pub deployment: String,
    /// Prompt (input) tokens.
    pub prompt_tokens: u64,
    /// Completion (output) tokens.
    pub completion_tokens: u64,
}

impl ExecutionRecord {
    /// Sets the failure reason (cut to [`MAX_REASON_CHARS`]) and its group.
    pub fn with_failure(mut self, reason: &str) -> ExecutionRecord {
        let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
        self.failure_group = Some(jarvis_learning::fingerprint(&reason).to_string());
        self.failure_reason = Some(reason);
        self
    }
}

/// A record as read back, with its position for cursor pagination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredExecution {
    /// Position in the history (increasing).
    pub id: i64,
    /// The record.
    #[serde(flatten)]
    pub record: ExecutionRecord,
}
