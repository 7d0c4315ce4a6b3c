//! `/api/v1/services`: register, list, show and remove monitored services.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::envelope::{ok, ApiError, ApiJson, ApiOk, ApiPath, Envelope};
use super::openapi::ErrorEnvelope;
use crate::api::AppState;
use crate::health::{ServiceInput, ServiceSpec};
use crate::names::Name;

/// Parses a path segment as a name, or answers 400 naming the problem.
pub fn path_name(raw: &str, what: &str) -> Result<Name, ApiError> {
    Name::parse(raw).map_err(|e| ApiError::bad_request("invalid_name", format!("{what}: {e}")))
}

/// `PUT /api/v1/services/{name}`: 201 when new, 200 when replaced.
#[utoipa::path(put, path = "/api/v1/services/{name}", tag = "services",
    params(("name" = Name, Path, description = "The service's name (also its breaker's).")),
    request_body = ServiceInput,
    responses(
        (status = 200, description = "Replaced.", body = Envelope<ServiceSpec>),
        (status = 201, description = "Registered.", body = Envelope<ServiceSpec>),
        (status = 400, description = "`invalid_name`, `invalid_service`, `invalid_body` or `malformed_json`.", body = ErrorEnvelope),
    ))]
pub async fn put(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(input): ApiJson<ServiceInput>,
) -> Result<ApiOk<ServiceSpec>, ApiError> {
    let name = path_name(&name, "service name")?;
    let spec = input
        .into_spec(name, crate::clock::now())
        .map_err(|e| ApiError::bad_request("invalid_service", e.to_string()))?;
    let (stored, created) = state.store.put_service(&spec).await?;
    tracing::info!(service = %stored.name, created, "service registered");
    // Checked at once, without the monitor re-reading every service.
    state.health.service_put(&stored);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(ApiOk(status, stored))
}

/// `GET /api/v1/services`.
#[utoipa::path(get, path = "/api/v1/services", tag = "services",
    responses((status = 200, description = "Every service, by name.", body = Envelope<Vec<ServiceSpec>>)))]
pub async fn list(State(state): State<AppState>) -> Result<ApiOk<Vec<ServiceSpec>>, ApiError> {
    Ok(ok(state.store.list_services().await?))
}

/// `GET /api/v1/services/{name}`.
#[utoipa::path(get, path = "/api/v1/services/{name}", tag = "services",
    params(("name" = Name, Path, description = "The service's name.")),
    responses(
        (status = 200, description = "The service.", body = Envelope<ServiceSpec>),
        (status = 400, description = "`invalid_name`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such service.", body = ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<ApiOk<ServiceSpec>, ApiError> {
    let name = path_name(&name, "service name")?;
    match state.store.get_service(name.as_str()).await? {
        Some(s) => Ok(ok(s)),
        None => Err(ApiError::not_found(format!("no service named {name}"))),
    }
}

/// `DELETE /api/v1/services/{name}`: 204. The service's circuit breaker goes with it (here, in
/// the store and on every other instance), unless an agent's domain shares the name.
#[utoipa::path(delete, path = "/api/v1/services/{name}", tag = "services",
    params(("name" = Name, Path, description = "The service's name.")),
    responses(
        (status = 204, description = "Removed, with its breaker."),
        (status = 400, description = "`invalid_name`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such service.", body = ErrorEnvelope),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let name = path_name(&name, "service name")?;
    if remove(&state, &name).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("no service named {name}")))
    }
}

/// Removes service `name`: its checks stop, and its circuit breaker goes (here, in the store
/// and on every other instance) unless an agent's domain shares the name. False when there was
/// no such service.
pub(super) async fn remove(state: &AppState, name: &Name) -> Result<bool, ApiError> {
    if !state.store.delete_service(name.as_str()).await? {
        return Ok(false);
    }
    tracing::info!(service = %name, "service removed");
    // Its checks stop first, so that none creates the breaker again after it is forgotten.
    state.health.service_removed(name.as_str());
    if let Err(e) = state.breaker_sync.forget(name.as_str()).await {
        // The service is gone either way; its breaker row is retried when the monitor drops
        // the service.
        tracing::warn!(service = %name, error = %e, "cannot delete the breaker of a removed service");
    }
    Ok(true)
}
