//! `/api/v1/ai/models`: the AI gateway's model groups, stored so that every instance serves
//! them (each reads the store every `ai::GROUP_SYNC_EVERY`; the instance that took the write
//! at once). The body is the config file's `[ai.models.<group>]` table in JSON (camelCase),
//! checked by the same `model::ai::groups_problem` as the config file, together with the
//! groups already stored (fallbacks known, no cycles, deployment names unique).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::envelope::{ok, ApiError, ApiJson, ApiOk, ApiPath, Envelope};
use super::openapi::ErrorEnvelope;
use super::services::path_name;
use crate::api::AppState;
use crate::model::ai::ModelGroup;
use crate::names::Name;

/// The stored groups, by name (a row that does not read as a group is left out, as the
/// gateway leaves it out).
async fn stored(state: &AppState) -> Result<BTreeMap<String, ModelGroup>, ApiError> {
    Ok(state
        .store
        .list_ai_models()
        .await?
        .into_iter()
        .filter_map(|(name, json)| Some((name, serde_json::from_str(&json).ok()?)))
        .collect())
}

/// `PUT /api/v1/ai/models/{group}`: 201 when new, 200 when replaced; 400 `invalid_model_group`
/// naming the key at fault.
#[utoipa::path(put, path = "/api/v1/ai/models/{group}", tag = "ai",
    params(("group" = Name, Path, description = "The model group's name.")),
    request_body = ModelGroup,
    responses(
        (status = 200, description = "Replaced.", body = Envelope<ModelGroup>),
        (status = 201, description = "Stored.", body = Envelope<ModelGroup>),
        (status = 400, description = "`invalid_name`, `invalid_model_group`, `invalid_body` or `malformed_json`.", body = ErrorEnvelope),
    ))]
pub async fn put(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(group): ApiJson<ModelGroup>,
) -> Result<ApiOk<ModelGroup>, ApiError> {
    let name = path_name(&name, "model group")?.as_str().to_string();
    let mut all = stored(&state).await?;
    all.insert(name.clone(), group.clone());
    if let Some(problem) = crate::model::ai::groups_problem(&all, "ai.models") {
        return Err(ApiError::bad_request("invalid_model_group", problem));
    }
    let json = serde_json::to_string(&group).expect("a group serializes");
    let now_ms = crate::clock::now().timestamp_millis();
    let created = state.store.put_ai_model(&name, &json, now_ms).await;
    // Served here at once (also after an error: the row may have changed).
    state.ai.sync_groups(&*state.store).await;
    let created = created?;
    tracing::info!(group = %name, created, "model group stored");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(ApiOk(status, group))
}

/// `GET /api/v1/ai/models`: every stored group, by name.
#[utoipa::path(get, path = "/api/v1/ai/models", tag = "ai",
    responses((status = 200, description = "Every stored model group, by name.", body = Envelope<BTreeMap<String, ModelGroup>>)))]
pub async fn list(
    State(state): State<AppState>,
) -> Result<ApiOk<BTreeMap<String, ModelGroup>>, ApiError> {
    Ok(ok(stored(&state).await?))
}

/// `GET /api/v1/ai/models/{group}`.
#[utoipa::path(get, path = "/api/v1/ai/models/{group}", tag = "ai",
    params(("group" = Name, Path, description = "The model group's name.")),
    responses(
        (status = 200, description = "The group.", body = Envelope<ModelGroup>),
        (status = 400, description = "`invalid_name`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`.", body = ErrorEnvelope),
    ))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<ApiOk<ModelGroup>, ApiError> {
    let name = path_name(&name, "model group")?;
    let json = state.store.get_ai_model(name.as_str()).await?;
    match json.and_then(|j| serde_json::from_str(&j).ok()) {
        Some(g) => Ok(ok(g)),
        None => Err(ApiError::not_found(format!("no model group {name}"))),
    }
}

/// `DELETE /api/v1/ai/models/{group}`: 204; 409 `model_group_in_use` while another group
/// falls back to it.
#[utoipa::path(delete, path = "/api/v1/ai/models/{group}", tag = "ai",
    params(("group" = Name, Path, description = "The model group's name.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, description = "`invalid_name`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`.", body = ErrorEnvelope),
        (status = 409, description = "`model_group_in_use`: another group falls back to it.", body = ErrorEnvelope),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let name = path_name(&name, "model group")?.as_str().to_string();
    let users: Vec<String> = stored(&state)
        .await?
        .into_iter()
        .filter(|(_, g)| g.fallbacks.contains(&name))
        .map(|(n, _)| n)
        .collect();
    if !users.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "model_group_in_use",
            format!(
                "model group {name} is a fallback of {}; change those first",
                users.join(", ")
            ),
        ));
    }
    let deleted = state.store.delete_ai_model(&name).await;
    state.ai.sync_groups(&*state.store).await;
    if deleted? {
        tracing::info!(group = %name, "model group removed");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("no model group {name}")))
    }
}
