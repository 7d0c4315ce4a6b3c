//! `/api/v1/agents`: register, list and remove the HTTP agent of a domain.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::envelope::{ok, ApiError, ApiJson, ApiOk, ApiPath};
use super::services::path_name;
use crate::agents::{AgentInput, AgentSpec};
use crate::api::AppState;

/// `PUT /api/v1/agents/{domain}`: 201 when new, 200 when replaced.
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
    let put = state.store.put_agent(&spec).await;
    // Even after an error: the row may have changed.
    state.agent_defaults.invalidate(spec.domain.as_str());
    let (stored, created) = put?;
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
pub async fn list(State(state): State<AppState>) -> Result<ApiOk<Vec<AgentSpec>>, ApiError> {
    Ok(ok(state.store.list_agents().await?))
}

/// `GET /api/v1/agents/{domain}`.
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
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(domain): ApiPath<String>,
) -> Result<Response, ApiError> {
    let domain = path_name(&domain, "domain")?;
    let deleted = state.store.delete_agent(domain.as_str()).await;
    state.agent_defaults.invalidate(domain.as_str());
    if deleted? {
        tracing::info!(domain = %domain, "agent removed");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("no agent for domain {domain}")))
    }
}
