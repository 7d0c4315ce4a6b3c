//! `POST /api/v1/tasks/{id}/retry`: runs a failed or cancelled task again, by hand.
//!
//! The task keeps its id, correlation ID and history: it goes back to `queued`, due now, with
//! its error and result cleared, and its attempts carry on counting (the next attempt of a
//! task that failed after 3 is attempt 4). `?attempts=N` (1–100, default 1) is how many more
//! attempts it gets: `maxAttempts` becomes `attempts + N`. A task that is queued, waiting,
//! running or succeeded answers 409 `not_retryable`, so a retry sent twice runs the task once
//! more, not twice.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use super::envelope::{ApiError, ApiOk, ApiPath, ApiQuery, Envelope};
use super::openapi::ErrorEnvelope;
use super::types::TaskView;
use crate::api::AppState;
use crate::tasks::input::MAX_ATTEMPTS;

/// `?attempts=` of a retry.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RetryQuery {
    /// How many more attempts the task gets (default 1).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    attempts: Option<u32>,
}

/// `POST /api/v1/tasks/{id}/retry`: 202 with the task, queued again.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/retry", tag = "tasks",
    params(("id" = uuid::Uuid, Path, description = "The task's ID."), RetryQuery),
    responses(
        (status = 202, description = "The task, queued again.", body = Envelope<TaskView>),
        (status = 400, description = "`invalid_id` or `invalid_query`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such task.", body = ErrorEnvelope),
        (status = 409, description = "`not_retryable`: the task is queued, waiting, running or succeeded.", body = ErrorEnvelope),
    ))]
pub async fn retry(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RetryQuery>,
) -> Result<ApiOk<TaskView>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| {
        ApiError::bad_request("invalid_id", format!("task id: {id:?} is not a UUID"))
    })?;
    let extra = q.attempts.unwrap_or(1);
    if !(1..=MAX_ATTEMPTS).contains(&extra) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("attempts: must be from 1 to {MAX_ATTEMPTS}"),
        ));
    }
    match state.tasks.retry(id, extra).await? {
        Some((task, true)) => {
            crate::tasks::queue::task_span(&task).in_scope(|| {
                tracing::info!(
                    task_id = %id,
                    attempts = task.attempts,
                    max_attempts = task.max_attempts,
                    "task queued again by hand"
                )
            });
            Ok(ApiOk(StatusCode::ACCEPTED, TaskView::from(task)))
        }
        Some((task, false)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_retryable",
            format!(
                "task {id} is {}; only failed or cancelled tasks can be retried",
                task.status
            ),
        )),
        None => Err(ApiError::not_found(format!("no task {id}"))),
    }
}
