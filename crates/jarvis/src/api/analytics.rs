//! `/api/v1/analytics/*`: task series, the overview, breaker transitions and service uptime,
//! all read from rollups (see `crate::analytics`).

use axum::extract::State;
use serde::Deserialize;

use super::envelope::{ok, ApiError, ApiOk, ApiQuery, Envelope};
use super::openapi::ErrorEnvelope;
use super::services::path_name;
use super::tasks::time;
use crate::analytics::{BreakerTransitions, Overview, RangeError, ServicesSeries, TaskSeries};
use crate::api::AppState;
use crate::model::rollup::Bucket;

fn range_error(e: RangeError) -> ApiError {
    let code = match e {
        RangeError::Empty(..) => "invalid_range",
        RangeError::TooManyPoints { .. } => "too_many_points",
    };
    ApiError::bad_request(code, e.to_string())
}

/// `bucket`: one of `allowed` (default `default`).
fn bucket(raw: Option<String>, allowed: &[Bucket], default: Bucket) -> Result<Bucket, ApiError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    Bucket::parse(&raw)
        .filter(|b| allowed.contains(b))
        .ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|b| b.as_str()).collect();
            ApiError::bad_request(
                "invalid_bucket",
                format!("bucket: must be one of {}", names.join(", ")),
            )
        })
}

/// `GET /api/v1/analytics/tasks?domain=&action=&since=&until=&bucket=&includeSystem=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct TasksQuery {
    /// Also Jarvis's own system-* domains.
    #[serde(default)]
    include_system: Option<bool>,
    /// Only this domain.
    #[serde(default)]
    #[param(value_type = Option<crate::names::Name>)]
    domain: Option<String>,
    /// Only this action (with domain).
    #[serde(default)]
    #[param(value_type = Option<crate::names::Name>)]
    action: Option<String>,
    /// From this time (RFC 3339, or a date).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    since: Option<String>,
    /// Until this time (RFC 3339, or a date).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    until: Option<String>,
    /// minute, hour (default) or day.
    #[serde(default)]
    #[param(value_type = Option<Bucket>)]
    bucket: Option<String>,
}

/// A time series of task runs: every domain/action combined, one domain's actions, or one
/// domain/action.
#[utoipa::path(get, path = "/api/v1/analytics/tasks", tag = "analytics",
    params(TasksQuery),
    responses(
        (status = 200, description = "A time series of task runs.", body = Envelope<TaskSeries>),
        (status = 400, description = "`invalid_query`, `invalid_name`, `invalid_bucket`, `invalid_range` or `too_many_points`.", body = ErrorEnvelope),
    ))]
pub async fn tasks(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<TasksQuery>,
) -> Result<ApiOk<TaskSeries>, ApiError> {
    let domain = q
        .domain
        .as_deref()
        .map(|d| path_name(d, "domain"))
        .transpose()?;
    let action = q
        .action
        .as_deref()
        .map(|a| path_name(a, "action"))
        .transpose()?;
    if action.is_some() && domain.is_none() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "action: only with a domain",
        ));
    }
    let bucket = bucket(
        q.bucket,
        &[Bucket::Minute, Bucket::Hour, Bucket::Day],
        Bucket::Hour,
    )?;
    let since = time("since", q.since)?;
    let until = time("until", q.until)?;
    let range = crate::analytics::series_range(bucket, since, until, crate::clock::now())
        .map_err(range_error)?;
    let series = crate::analytics::task_series(
        state.store.as_ref(),
        (
            domain.map(|d| d.as_str().to_string()),
            action.map(|a| a.as_str().to_string()),
        ),
        q.include_system.unwrap_or(false),
        bucket,
        range,
    )
    .await?;
    Ok(ok(series))
}

/// `GET /api/v1/analytics/overview?since=&until=&includeSystem=` (the same as
/// `GET /api/v1/tasks/history` without a query).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OverviewQuery {
    /// From this time (RFC 3339, or a date).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    since: Option<String>,
    /// Until this time (RFC 3339, or a date).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    until: Option<String>,
    /// Also Jarvis's own system-* domains.
    #[serde(default)]
    include_system: Option<bool>,
}

/// Every domain/action with its figures.
#[utoipa::path(get, path = "/api/v1/analytics/overview", tag = "analytics",
    params(OverviewQuery),
    responses(
        (status = 200, description = "Every domain/action with its figures.", body = Envelope<Overview>),
        (status = 400, description = "`invalid_query`, `invalid_name`, `invalid_bucket`, `invalid_range` or `too_many_points`.", body = ErrorEnvelope),
    ))]
pub async fn overview(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<OverviewQuery>,
) -> Result<ApiOk<Overview>, ApiError> {
    let since = time("since", q.since)?;
    let until = time("until", q.until)?;
    Ok(ok(overview_answer(
        &state,
        since,
        until,
        q.include_system.unwrap_or(false),
    )
    .await?))
}

/// The overview, checked for an empty range (shared with `GET /api/v1/tasks/history`).
pub(super) async fn overview_answer(
    state: &AppState,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
    include_system: bool,
) -> Result<Overview, ApiError> {
    if let (Some(s), Some(u)) = (since, until) {
        if s >= u {
            return Err(ApiError::bad_request(
                "invalid_range",
                format!("since must be before until ({s} to {u})"),
            ));
        }
    }
    Ok(crate::analytics::overview(state.store.as_ref(), since, until, include_system).await?)
}

/// `GET /api/v1/analytics/breakers?name=&since=&until=&limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BreakersQuery {
    /// Only this breaker.
    #[serde(default)]
    #[param(value_type = Option<crate::names::Name>)]
    name: Option<String>,
    /// From this time (RFC 3339, or a date).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    since: Option<String>,
    /// Until this time (RFC 3339, or a date).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    until: Option<String>,
    /// At most this many (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Breaker transitions, newest first.
#[utoipa::path(get, path = "/api/v1/analytics/breakers", tag = "analytics",
    params(BreakersQuery),
    responses(
        (status = 200, description = "Breaker transitions, newest first.", body = Envelope<BreakerTransitions>),
        (status = 400, description = "`invalid_query`, `invalid_name`, `invalid_bucket`, `invalid_range` or `too_many_points`.", body = ErrorEnvelope),
    ))]
pub async fn breakers(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<BreakersQuery>,
) -> Result<ApiOk<BreakerTransitions>, ApiError> {
    let name = q
        .name
        .as_deref()
        .map(|n| path_name(n, "name"))
        .transpose()?;
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "limit: must be from 1 to 1000",
            ))
        }
    };
    let since = time("since", q.since)?;
    let until = time("until", q.until)?;
    let range = crate::analytics::transitions_range(since, until, crate::clock::now())
        .map_err(range_error)?;
    let t = crate::analytics::breaker_transitions(
        state.store.as_ref(),
        name.as_ref().map(|n| n.as_str()),
        range,
        limit,
    )
    .await?;
    Ok(ok(t))
}

/// The buckets of `GET /api/v1/analytics/services` (a schema only; [`bucket`] reads the text).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ServiceBucket {
    /// An hour.
    Hour,
    /// A day.
    Day,
}

/// `GET /api/v1/analytics/services?name=&since=&until=&bucket=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ServicesQuery {
    /// Only this service.
    #[serde(default)]
    #[param(value_type = Option<crate::names::Name>)]
    name: Option<String>,
    /// From this time (RFC 3339, or a date).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    since: Option<String>,
    /// Until this time (RFC 3339, or a date).
    #[serde(default)]
    #[param(value_type = Option<super::openapi::TimeBound>)]
    until: Option<String>,
    /// hour (default) or day.
    #[serde(default)]
    #[param(value_type = Option<ServiceBucket>)]
    bucket: Option<String>,
}

/// Uptime and latency series of monitored services.
#[utoipa::path(get, path = "/api/v1/analytics/services", tag = "analytics",
    params(ServicesQuery),
    responses(
        (status = 200, description = "Uptime and latency series of monitored services.", body = Envelope<ServicesSeries>),
        (status = 400, description = "`invalid_query`, `invalid_name`, `invalid_bucket`, `invalid_range` or `too_many_points`.", body = ErrorEnvelope),
    ))]
pub async fn services(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ServicesQuery>,
) -> Result<ApiOk<ServicesSeries>, ApiError> {
    let name = q
        .name
        .as_deref()
        .map(|n| path_name(n, "name"))
        .transpose()?;
    let bucket = bucket(q.bucket, &[Bucket::Hour, Bucket::Day], Bucket::Hour)?;
    let since = time("since", q.since)?;
    let until = time("until", q.until)?;
    let range = crate::analytics::series_range(bucket, since, until, crate::clock::now())
        .map_err(range_error)?;
    let s = crate::analytics::service_series(
        state.store.as_ref(),
        name.as_ref().map(|n| n.as_str()),
        bucket,
        range,
    )
    .await?;
    Ok(ok(s))
}
