//! `/api/v1/agents`: register, list and remove the HTTP agent of a domain, and with it the
//! health check it declares (the service named after the domain, see `model::agent`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::envelope::{ok, ApiError, ApiJson, ApiOk, ApiPath, Envelope};
use super::openapi::ErrorEnvelope;
use super::services::path_name;
use crate::agents::{AgentInput, AgentSpec};
use crate::api::AppState;
use crate::names::Name;

/// `PUT /api/v1/agents/{domain}`: 201 when new, 200 when replaced.
#[utoipa::path(put, path = "/api/v1/agents/{domain}", tag = "agents",
    params(("domain" = Name, Path, description = "The domain the agent serves.")),
    request_body = AgentInput,
    responses(
        (status = 200, description = "Replaced.", body = Envelope<AgentSpec>),
        (status = 201, description = "Registered.", body = Envelope<AgentSpec>),
        (status = 400, description = "`invalid_name`, `invalid_agent`, `invalid_body` or `malformed_json`.", body = ErrorEnvelope),
        (status = 409, description = "`builtin_agent`: a built-in agent serves the domain.", body = ErrorEnvelope),
    ))]
pub async fn put(
    State(state): State<AppState>,
    ApiPath(domain): ApiPath<String>,
    ApiJson(input): ApiJson<AgentInput>,
) -> Result<ApiOk<AgentSpec>, ApiError> {
    let domain = path_name(&domain, "domain")?;
    if state.tasks.has_builtin(domain.as_str()) {
        // The built-in would go on running the domain's tasks: a 201 would be a lie.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "builtin_agent",
            format!(
                "domain {domain} is served by a built-in agent; an HTTP agent cannot replace it \
                 (register it under another domain)"
            ),
        ));
    }
    let spec = input
        .into_spec(domain, crate::clock::now())
        .map_err(|e| ApiError::bad_request("invalid_agent", e.to_string()))?;
    let before = state.store.get_agent(spec.domain.as_str()).await?;
    let put = state.store.put_agent(&spec).await;
    // Even after an error: the row may have changed.
    state.agent_defaults.invalidate(spec.domain.as_str());
    let (stored, created) = put?;
    sync_health_check(&state, before.as_ref(), Some(&stored)).await?;
    tracing::info!(
        domain = %stored.domain,
        created,
        use_learned = stored.use_learned,
        "agent registered"
    );
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(ApiOk(status, stored))
}

/// `GET /api/v1/agents`.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    responses((status = 200, description = "Every HTTP or AI agent, by domain.", body = Envelope<Vec<AgentSpec>>)))]
pub async fn list(State(state): State<AppState>) -> Result<ApiOk<Vec<AgentSpec>>, ApiError> {
    Ok(ok(state.store.list_agents().await?))
}

/// `GET /api/v1/agents/{domain}`.
#[utoipa::path(get, path = "/api/v1/agents/{domain}", tag = "agents",
    params(("domain" = Name, Path, description = "The agent's domain.")),
    responses(
        (status = 200, description = "The agent.", body = Envelope<AgentSpec>),
        (status = 400, description = "`invalid_name`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no agent for the domain.", body = ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(domain): ApiPath<String>,
) -> Result<ApiOk<AgentSpec>, ApiError> {
    let domain = path_name(&domain, "domain")?;
    match state.store.get_agent(domain.as_str()).await? {
        Some(a) => Ok(ok(a)),
        None => Err(ApiError::not_found(format!("no agent for domain {domain}"))),
    }
}

/// `DELETE /api/v1/agents/{domain}`: 204.
#[utoipa::path(delete, path = "/api/v1/agents/{domain}", tag = "agents",
    params(("domain" = Name, Path, description = "The agent's domain.")),
    responses(
        (status = 204, description = "Removed (with the health check it declared)."),
        (status = 400, description = "`invalid_name`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no agent for the domain.", body = ErrorEnvelope),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(domain): ApiPath<String>,
) -> Result<Response, ApiError> {
    let domain = path_name(&domain, "domain")?;
    let before = state.store.get_agent(domain.as_str()).await?;
    let deleted = state.store.delete_agent(domain.as_str()).await;
    state.agent_defaults.invalidate(domain.as_str());
    if deleted? {
        sync_health_check(&state, before.as_ref(), None).await?;
        tracing::info!(domain = %domain, "agent removed");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("no agent for domain {domain}")))
    }
}

/// Keeps the service named after the domain in step with the agent's health URL: registered
/// (or replaced) when the agent declares one, removed when the agent no longer does (or is
/// removed), but only if it is the agent's own check, not a service an operator registered.
async fn sync_health_check(
    state: &AppState,
    before: Option<&AgentSpec>,
    after: Option<&AgentSpec>,
) -> Result<(), ApiError> {
    let now = crate::clock::now();
    if let Some(service) = after.and_then(|a| a.health_service(now)) {
        let service = service.map_err(|e| ApiError::internal(e.to_string()))?;
        let (stored, _) = state.store.put_service(&service).await?;
        tracing::info!(service = %stored.name, url = %stored.url, "agent health check registered");
        // Checked at once, without the monitor re-reading every service.
        state.health.service_put(&stored);
        return Ok(());
    }
    let Some(before) = before.filter(|b| b.health_url.is_some()) else {
        return Ok(());
    };
    if let Some(service) = state.store.get_service(before.domain.as_str()).await? {
        if before.owns(&service) {
            super::services::remove(state, &before.domain).await?;
        }
    }
    Ok(())
}
