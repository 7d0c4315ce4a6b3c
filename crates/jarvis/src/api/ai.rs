//! `/v1/*`: the AI gateway's OpenAI-compatible routes (`POST /v1/chat/completions`,
//! `POST /v1/embeddings`, `GET /v1/models`), behind the same bearer token as `/api/v1` (the
//! OpenAI SDKs send it as their API key).
//!
//! Answers are OpenAI's, not the Jarvis envelope: an OpenAI deployment's answer is passed on
//! as it came (status, `Content-Type`, body; a stream chunk by chunk), a translating
//! provider's (Anthropic, Gemini) arrives already in OpenAI's shape from `crate::ai`, and
//! every error on `/v1/*` — ours,
//! the auth and body-limit middleware's, a route that does not exist — has OpenAI's error shape
//! `{"error": {"message", "type", "param", "code"}}` ([`openai_errors`] converts the envelope
//! errors of the shared middleware). The provider side is `crate::ai`.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::envelope::{ApiError, ErrorAnswer};
use super::AppState;
use crate::ai::{cache, AiError, Caller, Endpoint, Models, Reply, ReplyBody, ResolveError};
use crate::correlation::CorrelationId;
use crate::names::Name;

/// The OpenAI error shape under the name the OpenAPI document gives it.
type OpenAiErrorEnvelope = ErrorShape<'static>;
use crate::trace::context::{RequestTrace, TraceContext};

/// The header that says which deployment answered.
pub const DEPLOYMENT_HEADER: HeaderName = HeaderName::from_static("x-jarvis-deployment");

/// The header that says how many of a model group's deployments were passed over (skipped
/// or failed) before the one that answered.
pub const FALLBACKS_HEADER: HeaderName = HeaderName::from_static("x-jarvis-fallbacks");

/// The header that names the domain a call is made for (usage and budgets per domain).
pub const DOMAIN_HEADER: HeaderName = HeaderName::from_static("x-jarvis-domain");

/// The `/v1` routes (nested under `/v1` by `api::router`), token-protected.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/chat/completions", post(chat_completions))
        .route("/embeddings", post(embeddings))
        .route("/models", get(models))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state,
            super::middleware::require_token,
        ))
}

/// Whether `path` is one of the gateway's (`/v1`, `/v1/…`).
fn is_gateway_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// Gives the envelope errors of the shared middleware and fallbacks (401, 404, 405, 413) on
/// `/v1/*` OpenAI's error shape, with the same status and headers (`WWW-Authenticate`,
/// `Allow`). Other paths are untouched.
pub async fn openai_errors(req: Request, next: Next) -> Response {
    if !is_gateway_path(req.uri().path()) {
        return next.run(req).await;
    }
    let mut response = next.run(req).await;
    let Some(ErrorAnswer(error)) = response.extensions_mut().remove::<ErrorAnswer>() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let converted = OpenAiError::new(error.status, error.message, error.code).into_response();
    let (with, body) = converted.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(with.headers);
    Response::from_parts(parts, body)
}

/// An error in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<&'static str>,
    code: &'static str,
    deployment: Option<std::sync::Arc<str>>,
    retry_after_secs: Option<u64>,
}

/// An error on `/v1/*`, in OpenAI's shape.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OpenAiErrorEnvelope)]
pub struct ErrorShape<'a> {
    /// What went wrong.
    pub error: ErrorFields<'a>,
}

/// The `error` of OpenAI's error shape.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OpenAiErrorBody)]
pub struct ErrorFields<'a> {
    /// What went wrong, for a person.
    pub message: &'a str,
    /// OpenAI's error type: `invalid_request_error`, `authentication_error`,
    /// `rate_limit_error`, `insufficient_quota` or `server_error`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// The request field at fault, when one is.
    pub param: Option<&'a str>,
    /// Stable and machine-readable (`invalid_request`, `circuit_open`, `budget_exceeded`, …);
    /// a provider's own error, passed on, may have none.
    #[schema(value_type = Option<String>)]
    pub code: &'a str,
}

impl OpenAiError {
    /// An error with `status`; its `type` follows from the status as in OpenAI's API.
    fn new(status: StatusCode, message: impl Into<String>, code: &'static str) -> OpenAiError {
        let kind = match status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            s if s >= 500 => "server_error",
            _ => "invalid_request_error",
        };
        OpenAiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code,
            deployment: None,
            retry_after_secs: None,
        }
    }

    fn param(mut self, param: Option<&'static str>) -> OpenAiError {
        self.param = param;
        self
    }

    fn deployment(mut self, deployment: std::sync::Arc<str>) -> OpenAiError {
        self.deployment = Some(deployment);
        self
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = ErrorShape {
            error: ErrorFields {
                message: &self.message,
                kind: self.kind,
                param: self.param,
                code: self.code,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(v) = self.deployment.and_then(|d| HeaderValue::from_str(&d).ok()) {
            response.headers_mut().insert(DEPLOYMENT_HEADER, v);
        }
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<AiError> for OpenAiError {
    fn from(e: AiError) -> OpenAiError {
        let message = e.to_string();
        match e {
            AiError::InvalidRequest { param, .. } => {
                OpenAiError::new(StatusCode::BAD_REQUEST, message, "invalid_request").param(param)
            }
            AiError::Model(m) => {
                let code = match m {
                    ResolveError::Empty => "invalid_model",
                    ResolveError::UnknownProvider(_) => "unknown_provider",
                };
                OpenAiError::new(StatusCode::BAD_REQUEST, message, code).param(Some("model"))
            }
            AiError::NotConfigured(_) | AiError::NoProvider => OpenAiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                message,
                "provider_not_configured",
            ),
            AiError::Unsupported { .. } => {
                OpenAiError::new(StatusCode::BAD_REQUEST, message, "unsupported_by_provider")
                    .param(Some("model"))
            }
            AiError::BreakerOpen {
                deployment,
                retry_after,
                ..
            } => {
                let mut e =
                    OpenAiError::new(StatusCode::SERVICE_UNAVAILABLE, message, "circuit_open")
                        .deployment(deployment);
                e.retry_after_secs = retry_after.map(|d| d.as_secs().max(1));
                e
            }
            AiError::Timeout { deployment, .. } => {
                OpenAiError::new(StatusCode::GATEWAY_TIMEOUT, message, "upstream_timeout")
                    .deployment(deployment)
            }
            AiError::Unreachable { deployment, .. } => {
                OpenAiError::new(StatusCode::BAD_GATEWAY, message, "upstream_unreachable")
                    .deployment(deployment)
            }
            AiError::UpstreamFailed { deployment, .. } => {
                OpenAiError::new(StatusCode::BAD_GATEWAY, message, "upstream_error")
                    .deployment(deployment)
            }
            AiError::BadAnswer { deployment, .. } => {
                OpenAiError::new(StatusCode::BAD_GATEWAY, message, "upstream_bad_answer")
                    .deployment(deployment)
            }
            AiError::Cooling { retry_after, .. } => {
                let mut e = OpenAiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    message,
                    "deployments_cooling",
                );
                e.retry_after_secs = Some(retry_after.as_secs().max(1));
                e
            }
            AiError::GroupUnavailable { .. } => OpenAiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                message,
                "no_deployment_available",
            ),
            // OpenAI's own "out of quota" type, so SDKs and callers treat it as such.
            AiError::Budget(_) => {
                let mut e =
                    OpenAiError::new(StatusCode::TOO_MANY_REQUESTS, message, "budget_exceeded");
                e.kind = "insufficient_quota";
                e
            }
        }
    }
}

/// `POST /v1/chat/completions`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "ai-gateway",
    params(("X-Jarvis-Domain" = Option<Name>, Header, description = "The domain the call is made for (usage and budgets).")),
    request_body = super::openapi::ChatCompletionRequest,
    responses(
        (status = 200, description = "The provider's answer in OpenAI's shape (a stream of events with `stream: true`); `x-jarvis-deployment` names the deployment.", content(
            (Object = "application/json"),
            (super::openapi::ServerSentEvent = "text/event-stream"),
        )),
        (status = 400, description = "`invalid_request`, `invalid_model`, `unknown_provider`, `unsupported_by_provider`, `invalid_domain`, `invalid_cache_header`, `malformed_json`; or a provider's own 4xx, passed on.", body = OpenAiErrorEnvelope),
        (status = 429, description = "`deployments_cooling` (with `Retry-After`) or `budget_exceeded`.", body = OpenAiErrorEnvelope),
        (status = 502, description = "`upstream_unreachable`, `upstream_error` or `upstream_bad_answer`.", body = OpenAiErrorEnvelope),
        (status = 503, description = "`provider_not_configured`, `circuit_open` or `no_deployment_available`.", body = OpenAiErrorEnvelope),
        (status = 504, description = "`upstream_timeout`.", body = OpenAiErrorEnvelope),
    ))]
pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(id): Extension<CorrelationId>,
    trace: Option<Extension<RequestTrace>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let trace = trace.map(|t| t.0.context);
    forward(
        &state,
        Endpoint::ChatCompletions,
        &id,
        trace,
        &headers,
        body,
    )
    .await
}

/// `POST /v1/embeddings`.
#[utoipa::path(post, path = "/v1/embeddings", tag = "ai-gateway",
    params(("X-Jarvis-Domain" = Option<Name>, Header, description = "The domain the call is made for (usage and budgets).")),
    request_body = super::openapi::EmbeddingsRequest,
    responses(
        (status = 200, description = "The provider's answer in OpenAI's shape.", body = Object),
        (status = 400, description = "`invalid_request`, `invalid_model`, `unknown_provider`, `unsupported_by_provider`, `invalid_domain`, `malformed_json`; or a provider's own 4xx, passed on.", body = OpenAiErrorEnvelope),
        (status = 429, description = "`deployments_cooling` (with `Retry-After`) or `budget_exceeded`.", body = OpenAiErrorEnvelope),
        (status = 502, description = "`upstream_unreachable`, `upstream_error` or `upstream_bad_answer`.", body = OpenAiErrorEnvelope),
        (status = 503, description = "`provider_not_configured`, `circuit_open` or `no_deployment_available`.", body = OpenAiErrorEnvelope),
        (status = 504, description = "`upstream_timeout`.", body = OpenAiErrorEnvelope),
    ))]
pub async fn embeddings(
    State(state): State<AppState>,
    Extension(id): Extension<CorrelationId>,
    trace: Option<Extension<RequestTrace>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let trace = trace.map(|t| t.0.context);
    forward(&state, Endpoint::Embeddings, &id, trace, &headers, body).await
}

/// Who is calling: the domain of `X-Jarvis-Domain` (a valid name, or a 400) and the token's
/// fingerprint (the token passed `require_token`, so it is there).
fn caller(headers: &HeaderMap) -> Result<Caller, OpenAiError> {
    let domain = match headers.get(&DOMAIN_HEADER) {
        None => String::new(),
        Some(v) => {
            let text = v.to_str().unwrap_or("");
            crate::names::Name::parse(text)
                .map_err(|e| {
                    OpenAiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("the X-Jarvis-Domain header is not a domain name: {e}"),
                        "invalid_domain",
                    )
                })?
                .as_str()
                .to_string()
        }
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| crate::ai::spend::token_id(t.trim()))
        .unwrap_or_default();
    Ok(Caller { domain, token })
}

async fn forward(
    state: &AppState,
    endpoint: Endpoint,
    id: &CorrelationId,
    trace: Option<TraceContext>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let caller = match caller(headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let body = match read_json(state, body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let ask = match cache::Ask::parse(
        headers
            .get(cache::HEADER)
            .map(|v| v.to_str().unwrap_or("?")),
    ) {
        Ok(a) => a,
        Err(message) => {
            return OpenAiError::new(StatusCode::BAD_REQUEST, message, "invalid_cache_header")
                .into_response()
        }
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .map(|m| m.chars().take(128).collect::<String>())
        .unwrap_or_default();
    let (at, started) = (crate::clock::now(), std::time::Instant::now());
    // The model call's span, a child of the request's: each provider call it makes sends a
    // `traceparent` with a new span under it.
    let request_span = trace.unwrap_or_else(|| TraceContext::for_correlation(id.as_str()));
    let span = request_span.child();
    let answer =
        crate::trace::context::scope(span, state.ai.cached_call(endpoint, body, id, &caller, ask))
            .await;
    trace_model_call(state, id, &model, at, started.elapsed(), &answer);
    if crate::trace::otel::enabled() {
        let (deployment, error) = match &answer {
            Ok(reply) => (reply.deployment.to_string(), None),
            Err(e) => (String::new(), Some(e.to_string())),
        };
        crate::trace::otel::record(crate::trace::otel::SpanRecord {
            name: "model call",
            kind: opentelemetry::trace::SpanKind::Client,
            context: span,
            parent: Some(request_span.span_id),
            start: at,
            end: crate::clock::now(),
            attributes: vec![
                ("gen_ai.request.model", model.clone()),
                ("jarvis.deployment", deployment),
                ("jarvis.correlation_id", id.to_string()),
            ],
            error,
        });
    }
    match answer {
        Ok(reply) => reply_response(reply),
        Err(e) => OpenAiError::from(e).into_response(),
    }
}

/// Traces a gateway call (and a breaker's rejection of it): one channel send. A stream's
/// duration is the time to its answer's head.
fn trace_model_call(
    state: &AppState,
    id: &CorrelationId,
    model: &str,
    at: chrono::DateTime<chrono::Utc>,
    took: std::time::Duration,
    answer: &Result<Reply, AiError>,
) {
    use crate::trace::TraceKind;
    let tracer = &state.traces;
    let (summary, status, detail) = match answer {
        Ok(reply) => (
            format!(
                "model {model} via {}: HTTP {}",
                reply.deployment, reply.status
            ),
            reply.status.to_string(),
            serde_json::json!({
                "model": model,
                "deployment": &*reply.deployment,
                "fallbacks": reply.fallbacks,
                "stream": !matches!(reply.body, ReplyBody::Full(_)),
            }),
        ),
        Err(e) => (
            format!("model {model}: {e}"),
            "error".to_string(),
            serde_json::json!({"model": model, "error": e.to_string()}),
        ),
    };
    if let Err(AiError::BreakerOpen {
        deployment,
        breaker,
        ..
    }) = answer
    {
        let mut b = tracer.event(
            id.as_str(),
            TraceKind::Breaker,
            format!("breaker {breaker}: rejected the call to {deployment}"),
        );
        b.at = at;
        b.status = Some("rejected".into());
        b.detail = serde_json::json!({"breaker": &**breaker, "deployment": &**deployment});
        tracer.record(b);
    }
    let mut e = tracer.event(id.as_str(), TraceKind::ModelCall, summary);
    e.at = at;
    e.duration_ms = Some(took.as_millis() as u64);
    e.status = Some(status);
    e.detail = detail;
    tracer.record(e);
}

/// The body as JSON; no `Content-Type` is required (clients of OpenAI's API are not held to
/// one). A body over the limit or not JSON answers in OpenAI's shape.
fn read_json(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Value, OpenAiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            OpenAiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than the server accepts ({} bytes, \
                     JARVIS_BODY_LIMIT_BYTES)",
                    state.config.server.body_limit
                ),
                "payload_too_large",
            )
        } else {
            OpenAiError::new(
                rejection.status(),
                format!(
                    "the request body could not be read: {}",
                    rejection.body_text()
                ),
                "invalid_body",
            )
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        OpenAiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not valid JSON: {e}"),
            "malformed_json",
        )
    })
}

/// A provider's answer as the caller's response, with `x-jarvis-deployment`.
fn reply_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let streamed = !matches!(reply.body, ReplyBody::Full(_));
    let mut response = match reply.body {
        ReplyBody::Full(bytes) => Response::new(Body::from(bytes)),
        ReplyBody::Stream(stream) => Response::new(Body::from_stream(stream)),
        ReplyBody::Translated(stream) => Response::new(Body::from_stream(stream)),
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.extend(reply.headers);
    if let Some(ct) = reply
        .content_type
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    if let Ok(v) = HeaderValue::from_str(&reply.deployment) {
        headers.insert(DEPLOYMENT_HEADER, v);
    }
    if let Some(n) = reply.fallbacks {
        headers.insert(FALLBACKS_HEADER, HeaderValue::from(n));
    }
    if streamed {
        // Proxies in front of Jarvis must not hold the events back either.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
    }
    response
}

/// The answer of `GET /v1/models`, OpenAI's model list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelList {
    /// Always `list`.
    object: &'static str,
    /// The models.
    data: Vec<ModelView>,
}

/// One model of `GET /v1/models`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelView {
    /// The name `/v1/*` takes (`openai/gpt-4o-mini`, a model group).
    id: String,
    /// Always `model`.
    object: &'static str,
    /// When the provider made it (unix seconds; 0 when not known).
    created: i64,
    /// Who owns it, as the provider says.
    owned_by: String,
}

/// The header that names the deployments whose models `GET /v1/models` could not list.
pub const UNLISTED_HEADER: HeaderName = HeaderName::from_static("x-jarvis-unlisted");

/// `GET /v1/models`: the models of the configured providers, named as `/v1/*` takes them.
/// `x-jarvis-deployment` names the deployments that listed theirs, `x-jarvis-unlisted` those
/// that could not (their models are missing; the rest is still listed).
#[utoipa::path(get, path = "/v1/models", tag = "ai-gateway",
    responses(
        (status = 200, description = "The models of the configured providers and model groups.", body = ModelList),
        (status = 503, description = "`provider_not_configured`.", body = OpenAiErrorEnvelope),
    ))]
pub async fn models(
    State(state): State<AppState>,
    Extension(id): Extension<CorrelationId>,
) -> Response {
    match state.ai.models(&id).await {
        Ok(Models::List {
            models,
            listed,
            unlisted,
        }) => {
            let mut response = Json(ModelList {
                object: "list",
                data: models
                    .into_iter()
                    .map(|m| ModelView {
                        id: m.id,
                        object: "model",
                        created: m.created.unwrap_or(0),
                        owned_by: m.owned_by.unwrap_or_else(|| "openai".into()),
                    })
                    .collect(),
            })
            .into_response();
            let headers = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&listed.join(", ")) {
                headers.insert(DEPLOYMENT_HEADER, v);
            }
            if !unlisted.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&unlisted.join(", ")) {
                    headers.insert(UNLISTED_HEADER, v);
                }
            }
            response
        }
        Ok(Models::Refused(reply)) => reply_response(*reply),
        Err(e) => OpenAiError::from(e).into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no such route on the AI gateway: /v1 serves POST /v1/chat/completions, \
         POST /v1/embeddings and GET /v1/models",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_v1_paths_are_the_gateways() {
        assert!(is_gateway_path("/v1"));
        assert!(is_gateway_path("/v1/chat/completions"));
        assert!(!is_gateway_path("/v10/x"));
        assert!(!is_gateway_path("/api/v1/tasks"));
    }

    #[tokio::test]
    async fn errors_have_openais_shape() {
        let response = OpenAiError::new(StatusCode::BAD_REQUEST, "no model", "invalid_request")
            .param(Some("model"))
            .into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "no model", "type": "invalid_request_error",
                "param": "model", "code": "invalid_request"}})
        );
    }
}
