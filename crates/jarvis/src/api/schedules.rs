//! `/api/v1/schedules`: create or replace, list, show, pause, resume and delete recurring
//! schedules (see `crate::schedules`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::envelope::{ok, ApiError, ApiJson, ApiOk, ApiPath, Envelope};
use super::openapi::ErrorEnvelope;
use super::services::path_name;
use super::types::ScheduleView;
use crate::api::AppState;
use crate::names::Name;
use crate::schedules::{Schedule, ScheduleInput, Timing};
use crate::store::ScheduleRow;

/// How many coming ticks a schedule shows (`upcoming`, from `nextRunAt` on).
const UPCOMING: usize = 5;

fn view(row: ScheduleRow) -> Result<ScheduleView, ApiError> {
    let task = row.task.0.clone();
    let s = Schedule::from_row(row)
        .map_err(|e| ApiError::internal(format!("stored schedule does not parse: {e}")))?;
    let (cron, every_ms, timezone) = match &s.spec.timing {
        Timing::Cron { expr, tz, .. } => (Some(expr.clone()), None, tz.name().to_string()),
        Timing::Every { ms } => (None, Some(*ms), "UTC".to_string()),
    };
    Ok(ScheduleView {
        name: s.spec.name.to_string(),
        cron,
        every_ms,
        timezone,
        task,
        paused: s.spec.paused,
        missed: s.spec.missed,
        catch_up_limit: s.spec.catch_up_limit,
        upcoming: s
            .next_run_at
            .map(|t| s.spec.upcoming(t, UPCOMING))
            .unwrap_or_default(),
        next_run_at: s.next_run_at,
        last_run_at: s.last_run_at,
        last_task_id: s.last_task_id,
        created_at: s.created_at,
        updated_at: s.updated_at,
    })
}

fn schedule_name(raw: &str) -> Result<Name, ApiError> {
    path_name(raw, "schedule name")
}

fn not_found(name: &Name) -> ApiError {
    ApiError::not_found(format!("no schedule named {name}"))
}

/// `PUT /api/v1/schedules/{name}`: 201 when new, 200 when replaced. A replacement that keeps
/// the timing (cron, everyMs, timezone) and the paused state keeps the next tick.
#[utoipa::path(put, path = "/api/v1/schedules/{name}", tag = "schedules",
    params(("name" = Name, Path, description = "The schedule's name.")),
    request_body = ScheduleInput,
    responses(
        (status = 200, description = "Replaced.", body = Envelope<ScheduleView>),
        (status = 201, description = "Created.", body = Envelope<ScheduleView>),
        (status = 400, description = "`invalid_name`, `invalid_schedule`, `invalid_body` or `malformed_json`.", body = ErrorEnvelope),
    ))]
pub async fn put(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(input): ApiJson<ScheduleInput>,
) -> Result<ApiOk<ScheduleView>, ApiError> {
    let name = schedule_name(&name)?;
    let now = crate::clock::now();
    let spec = input
        .into_spec(name, now)
        .map_err(|e| ApiError::bad_request("invalid_schedule", e.to_string()))?;
    let (stored, created) = state.store.put_schedule(&spec.to_row(now)).await?;
    tracing::info!(
        schedule = %stored.name,
        created,
        next_run_at = %crate::schedules::scheduler::iso(stored.next_run_at),
        "schedule stored"
    );
    state.scheduler.changed();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(ApiOk(status, view(stored)?))
}

/// `GET /api/v1/schedules`: every schedule, by name.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules",
    responses((status = 200, description = "Every schedule, by name.", body = Envelope<Vec<ScheduleView>>)))]
pub async fn list(State(state): State<AppState>) -> Result<ApiOk<Vec<ScheduleView>>, ApiError> {
    let rows = state.store.list_schedules().await?;
    Ok(ok(rows.into_iter().map(view).collect::<Result<_, _>>()?))
}

/// `GET /api/v1/schedules/{name}`.
#[utoipa::path(get, path = "/api/v1/schedules/{name}", tag = "schedules",
    params(("name" = Name, Path, description = "The schedule's name.")),
    responses(
        (status = 200, description = "The schedule.", body = Envelope<ScheduleView>),
        (status = 400, description = "`invalid_name`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`.", body = ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<ApiOk<ScheduleView>, ApiError> {
    let name = schedule_name(&name)?;
    match state.store.get_schedule(name.as_str()).await? {
        Some(row) => Ok(ok(view(row)?)),
        None => Err(not_found(&name)),
    }
}

/// `DELETE /api/v1/schedules/{name}`: 204. The tasks it submitted stay.
#[utoipa::path(delete, path = "/api/v1/schedules/{name}", tag = "schedules",
    params(("name" = Name, Path, description = "The schedule's name.")),
    responses(
        (status = 204, description = "Removed (the tasks it submitted stay)."),
        (status = 400, description = "`invalid_name`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`.", body = ErrorEnvelope),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let name = schedule_name(&name)?;
    if state.store.delete_schedule(name.as_str()).await? {
        tracing::info!(schedule = %name, "schedule removed");
        state.scheduler.changed();
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(&name))
    }
}

async fn set_paused(state: &AppState, raw: &str, paused: bool) -> Result<ScheduleView, ApiError> {
    let name = schedule_name(raw)?;
    let row = state
        .store
        .get_schedule(name.as_str())
        .await?
        .ok_or_else(|| not_found(&name))?;
    let now = crate::clock::now();
    let next = if paused {
        None
    } else {
        let s = Schedule::from_row(row)
            .map_err(|e| ApiError::internal(format!("stored schedule does not parse: {e}")))?;
        s.spec.timing.next_after(now)
    };
    let row = state
        .store
        .set_schedule_paused(name.as_str(), paused, next, now)
        .await?
        .ok_or_else(|| not_found(&name))?;
    tracing::info!(schedule = %name, paused, next_run_at = %crate::schedules::scheduler::iso(row.next_run_at), "schedule paused or resumed");
    state.scheduler.changed();
    view(row)
}

/// `POST /api/v1/schedules/{name}/pause`: the schedule, paused (`nextRunAt` null). Pausing a
/// paused schedule changes nothing.
#[utoipa::path(post, path = "/api/v1/schedules/{name}/pause", tag = "schedules",
    params(("name" = Name, Path, description = "The schedule's name.")),
    responses(
        (status = 200, description = "The schedule, paused.", body = Envelope<ScheduleView>),
        (status = 400, description = "`invalid_name`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`.", body = ErrorEnvelope),
    ))]
pub async fn pause(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<ApiOk<ScheduleView>, ApiError> {
    Ok(ok(set_paused(&state, &name, true).await?))
}

/// `POST /api/v1/schedules/{name}/resume`: the schedule, running again from its next tick
/// after now (ticks while paused are not made up). Resuming a running schedule changes
/// nothing.
#[utoipa::path(post, path = "/api/v1/schedules/{name}/resume", tag = "schedules",
    params(("name" = Name, Path, description = "The schedule's name.")),
    responses(
        (status = 200, description = "The schedule, running again from its next tick.", body = Envelope<ScheduleView>),
        (status = 400, description = "`invalid_name`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`.", body = ErrorEnvelope),
    ))]
pub async fn resume(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<ApiOk<ScheduleView>, ApiError> {
    Ok(ok(set_paused(&state, &name, false).await?))
}
