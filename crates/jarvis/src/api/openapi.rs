//! The OpenAPI 3.1 document of the HTTP API, generated from the code: the handlers carry
//! `#[utoipa::path]`, the types they take and answer derive `ToSchema`/`IntoParams`, and
//! [`ApiDoc`] gathers them. Every route of the router is in it, the dashboard's included. What
//! is the same on every route of a kind (the bearer token with its 401 and 403, the rate limit's
//! 429, the body errors 400/413/415, the store's 503) is added once by [`Contract`].
//!
//! Served at `GET /api/v1/openapi.json` ([`serve`]) and committed as `docs/openapi.json`; a test
//! fails when the committed file is not this document
//! (`JARVIS_UPDATE_DOCS=1 cargo test -p jarvis --lib api::openapi` rewrites it).
//! `scripts/schemathesis.sh` checks a running server against it.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response as OaResponse, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

/// The error envelope under the name the document gives it.
pub type ErrorEnvelope = super::envelope::ErrorEnvelope<'static>;

/// Every `error.code` of the envelope (`api::envelope::ApiError`); a test checks that each code
/// the handlers use is listed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 409: the task had already finished.
    AlreadyFinished,
    /// 409: a built-in agent serves the domain.
    BuiltinAgent,
    /// 403: a cookie-authenticated change without the dashboard's CSRF header.
    CsrfFailed,
    /// 403: the token's role is below the one the route needs.
    Forbidden,
    /// 409: the idempotency key belongs to another request.
    IdempotencyConflict,
    /// 500: a bug; the server log has the detail under the correlation ID.
    Internal,
    /// 400: an agent body that does not validate.
    InvalidAgent,
    /// 400: a JSON body of the wrong shape.
    InvalidBody,
    /// 400: an analytics bucket that is not allowed.
    InvalidBucket,
    /// 400: a correlation ID Jarvis would never accept.
    InvalidCorrelationId,
    /// 400: a task ID that is not a UUID.
    InvalidId,
    /// 400: a model group that does not validate.
    InvalidModelGroup,
    /// 400: a name outside the name grammar.
    InvalidName,
    /// 400: a path segment that cannot be read.
    InvalidPath,
    /// 400: a query parameter that does not validate.
    InvalidQuery,
    /// 400: an empty time range.
    InvalidRange,
    /// 400: a schedule that does not validate.
    InvalidSchedule,
    /// 400: a service that does not validate.
    InvalidService,
    /// 400: a silence that does not validate.
    InvalidSilence,
    /// 400: a task that does not validate.
    InvalidTask,
    /// 400: a body that is not JSON.
    MalformedJson,
    /// 405: the route does not take the method.
    MethodNotAllowed,
    /// 409: another model group falls back to it.
    ModelGroupInUse,
    /// 422: the task's domain has no agent.
    NoAgent,
    /// 404: no such thing, or no such route.
    NotFound,
    /// 409: only failed or cancelled tasks can be retried.
    NotRetryable,
    /// 413: the body is larger than `JARVIS_BODY_LIMIT_BYTES`.
    PayloadTooLarge,
    /// 429: over the token's or the client address's rate; `Retry-After` says when to try again.
    RateLimited,
    /// 404: no such silence.
    SilenceNotFound,
    /// 503: the store is out of space; nothing was stored.
    StorageFull,
    /// 400: an analytics range with too many points.
    TooManyPoints,
    /// 404: nothing is known of the correlation ID.
    TraceNotFound,
    /// 401: no valid bearer token (nor dashboard session).
    Unauthorized,
    /// 503: the store cannot be reached.
    Unavailable,
    /// 503 on `GET /health`: the embedded store is broken.
    Unhealthy,
    /// 415: a body without `Content-Type: application/json`.
    UnsupportedMediaType,
}

/// A `since`/`until` query parameter: an RFC 3339 time with a zone, or a date (a whole UTC
/// day; `crate::timeparse`). A schema only: the handlers parse the text themselves.
pub struct TimeBound;

impl utoipa::PartialSchema for TimeBound {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, SchemaFormat};
        let string = |format| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(format)))
        };
        AnyOfBuilder::new()
            .item(string(KnownFormat::DateTime))
            .item(string(KnownFormat::Date))
            .description(Some(
                "An RFC 3339 time with a zone (2026-12-06T09:00:00Z), or a date (2026-12-06: from its \
                 00:00 UTC as since, to the end of that UTC day as until).",
            ))
            .into()
    }
}

impl ToSchema for TimeBound {}

/// One server-sent event of a `text/event-stream` answer (the schema of such an answer
/// describes each event, as OpenAPI 3.2's `itemSchema` does).
#[derive(ToSchema)]
pub struct ServerSentEvent {
    /// The event's name (`message` when the stream names none).
    pub event: Option<String>,
    /// The event's data: a JSON text, or `[DONE]` at the end of a chat completion stream.
    pub data: String,
    /// The event's ID, if it has one.
    pub id: Option<String>,
    /// The reconnection delay the server asks for, ms.
    pub retry: Option<u64>,
}

/// The body of `POST /v1/chat/completions`: OpenAI's chat completion request. Fields not named
/// here (`temperature`, `tools`, …) are passed to the provider as they are.
#[derive(ToSchema)]
pub struct ChatCompletionRequest {
    /// `openai/…` (or a bare OpenAI name), `anthropic/…`, `gemini/…`, or a model group.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Answer as server-sent events.
    pub stream: Option<bool>,
}

/// One message of a chat completion request (other fields are passed on).
#[derive(ToSchema)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text, or OpenAI's content parts (an assistant message with tool calls may have
    /// none).
    #[schema(value_type = Option<Object>)]
    pub content: Option<serde_json::Value>,
}

/// The body of `POST /v1/embeddings`: OpenAI's embeddings request (other fields are passed on).
#[derive(ToSchema)]
pub struct EmbeddingsRequest {
    /// The model, named as for chat completions.
    pub model: String,
    /// A text or an array of texts.
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
}

/// The whole document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Jarvis",
        description = "The control plane for autonomous agents and the services they depend on. \
                       docs/api.md is the reference this document is generated beside.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::health::health,
        super::breakers::metrics,
        super::services::list,
        super::services::get,
        super::services::put,
        super::services::delete,
        super::health::services,
        super::health::history,
        super::breakers::list,
        super::breakers::get,
        super::breakers::act,
        super::tasks::submit,
        super::tasks::list,
        super::tasks::batch,
        super::tasks::history,
        super::tasks::recommendations,
        super::tasks::executions,
        super::tasks::get,
        super::tasks::cancel,
        super::retry::retry,
        super::schedules::list,
        super::schedules::get,
        super::schedules::put,
        super::schedules::delete,
        super::schedules::pause,
        super::schedules::resume,
        super::ai_usage::usage,
        super::ai_usage::budgets,
        super::ai_usage::prices,
        super::ai_models::list,
        super::ai_models::get,
        super::ai_models::put,
        super::ai_models::delete,
        super::dashboard::index,
        super::dashboard::file,
        super::dashboard::login,
        super::dashboard::logout,
        super::dashboard::session,
        super::dashboard::events,
        super::analytics::tasks,
        super::analytics::overview,
        super::analytics::breakers,
        super::analytics::services,
        super::traces::get,
        super::alerts::list,
        super::alerts::silences,
        super::alerts::silence,
        super::alerts::unsilence,
        super::alerts::notifications,
        super::agents::list,
        super::agents::get,
        super::agents::put,
        super::agents::delete,
        serve,
        super::ai::chat_completions,
        super::ai::embeddings,
        super::ai::models,
    ),
    components(schemas(
        ErrorEnvelope,
        ErrorCode,
        TimeBound,
        super::dashboard::FileName,
        super::breakers::BreakerAction,
        super::ai_usage::UsageBy,
        super::analytics::ServiceBucket,
        crate::model::rollup::Bucket,
    )),
    modifiers(&Contract),
    tags(
        (name = "health", description = "Jarvis's own health and the monitored services'."),
        (name = "services", description = "Monitored services."),
        (name = "agents", description = "The HTTP and AI agents of task domains."),
        (name = "circuit-breakers", description = "Circuit breakers and operator actions."),
        (name = "tasks", description = "Tasks, their statistics and execution records."),
        (name = "schedules", description = "Recurring schedules."),
        (name = "ai", description = "The AI gateway's model groups, usage, budgets and prices."),
        (name = "ai-gateway", description = "OpenAI-compatible routes (errors in OpenAI's shape)."),
        (name = "analytics", description = "Series and overviews read from rollups."),
        (name = "traces", description = "Everything known about one correlation ID."),
        (name = "alerts", description = "Alert history, silences and notifications."),
        (name = "dashboard", description = "The dashboard's page and files, its sign-in with a token into a session cookie, and its event stream."),
        (name = "telemetry", description = "Prometheus metrics."),
        (name = "meta", description = "This document."),
    ),
)]
pub struct ApiDoc;

/// `/api/v1` routes that answer without touching the store (no 503).
const NO_STORE: [&str; 8] = [
    "/api/v1/circuit-breakers",
    "/api/v1/circuit-breakers/{name}",
    "/api/v1/circuit-breakers/{name}/{action}",
    "/api/v1/ai/budgets",
    "/api/v1/ai/prices",
    "/api/v1/events",
    "/api/v1/openapi.json",
    "/api/v1/health/services",
];

/// What every route of a kind shares: the bearer token or the dashboard's session cookie, and
/// their 401 and 403, on `/api/v1/*`, `/v1/*` and `/metrics` (the public routes, `/health` and
/// the dashboard's page, files and sign-in, have none); 429 on every route; the body errors on
/// routes that take a body; 503 on routes that read or write the store. The session cookie
/// alone is the security of `GET /ui/session` and `POST /ui/logout`.
pub struct Contract;

impl Modify for Contract {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "JARVIS_AUTH_TOKEN (the OpenAI SDKs send it as their API key on /v1)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::dashboard::COOKIE,
                "The dashboard's session, set by POST /ui/login (HttpOnly, SameSite=Strict)",
            ))),
        );
        // `POST /api/v1/tasks` is the handler of `POST /api/v1/execute` (`api::tasks::submit`),
        // and a handler has one `#[utoipa::path]`: the route gets a copy of that operation.
        let submit = doc
            .paths
            .paths
            .get("/api/v1/execute")
            .and_then(|item| item.post.clone());
        if let (Some(submit), Some(tasks)) = (submit, doc.paths.paths.get_mut("/api/v1/tasks")) {
            tasks.post = Some(submit);
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let gateway = path.starts_with("/v1/");
            let protected = gateway || path.starts_with("/api/v1/") || path == "/metrics";
            for (method, op) in operations(item) {
                // Unique, and saying what it is: `put_services_name`, `post_v1_chat_completions`
                // (utoipa's default, the handler's name, repeats: `get`, `list`, …).
                op.operation_id = Some(operation_id(method, path));
                if protected {
                    // Either credential (`api::auth::authorize`): the bearer token, or without
                    // an `Authorization` header the dashboard's session cookie.
                    op.security = Some(vec![
                        SecurityRequirement::new("bearer", Vec::<String>::new()),
                        SecurityRequirement::new("session", Vec::<String>::new()),
                    ]);
                    add(
                        op,
                        "401",
                        error(
                            gateway,
                            "`unauthorized`: no valid bearer token (nor dashboard session).",
                        ),
                    );
                    add(
                        op,
                        "403",
                        error(
                            gateway,
                            "`forbidden`: the token's role is below the route's (read < operate < admin); `csrf_failed`: a change made with the session cookie without the dashboard's CSRF header.",
                        ),
                    );
                }
                // Every route counts against a rate limit: a public route only against the
                // client address's; a protected one against the token's, or without a valid
                // token the client address's.
                let limited = rate_limited(gateway, protected);
                match op.responses.responses.get_mut("429") {
                    // The operation's own 429s (the gateway's): the rate limit's is one more.
                    Some(RefOr::T(own)) => {
                        own.description = format!("{} Or {}", own.description, limited.description);
                    }
                    _ => add(op, "429", limited),
                }
                if op.request_body.is_some() {
                    add(
                        op,
                        "400",
                        error(gateway, "`malformed_json` or `invalid_body`."),
                    );
                    add(
                        op,
                        "413",
                        error(
                            gateway,
                            "`payload_too_large`: over JARVIS_BODY_LIMIT_BYTES.",
                        ),
                    );
                    if !gateway {
                        add(
                            op,
                            "415",
                            error(
                                false,
                                "`unsupported_media_type`: not Content-Type: application/json.",
                            ),
                        );
                    }
                }
                if path.starts_with("/api/v1/") && !NO_STORE.contains(&path.as_str()) {
                    add(
                        op,
                        "503",
                        error(
                            false,
                            "`unavailable` (the store cannot be reached) or `storage_full`.",
                        ),
                    );
                }
            }
        }
        for link in LINKS {
            add_links(doc, link);
        }
    }
}

/// An OpenAPI link: the answer of `from` (with one of `statuses`) names a resource that the
/// `to` operations take as their path parameter `parameter`, at `value` (a runtime
/// expression). Links tell a client, and schemathesis's stateful tests, what to call next.
struct Links {
    from: (&'static str, &'static str),
    statuses: &'static [&'static str],
    to: &'static [(&'static str, &'static str)],
    parameter: &'static str,
    value: &'static str,
}

const LINKS: &[Links] = &[
    Links {
        from: ("put", "/api/v1/services/{name}"),
        statuses: &["200", "201"],
        to: &[
            ("get", "/api/v1/services/{name}"),
            ("delete", "/api/v1/services/{name}"),
            ("get", "/api/v1/health/services/{name}/history"),
        ],
        parameter: "name",
        value: "$request.path.name",
    },
    Links {
        from: ("put", "/api/v1/agents/{domain}"),
        statuses: &["200", "201"],
        to: &[
            ("get", "/api/v1/agents/{domain}"),
            ("delete", "/api/v1/agents/{domain}"),
        ],
        parameter: "domain",
        value: "$request.path.domain",
    },
    Links {
        from: ("put", "/api/v1/schedules/{name}"),
        statuses: &["200", "201"],
        to: &[
            ("get", "/api/v1/schedules/{name}"),
            ("delete", "/api/v1/schedules/{name}"),
            ("post", "/api/v1/schedules/{name}/pause"),
            ("post", "/api/v1/schedules/{name}/resume"),
        ],
        parameter: "name",
        value: "$request.path.name",
    },
    Links {
        from: ("put", "/api/v1/ai/models/{group}"),
        statuses: &["200", "201"],
        to: &[
            ("get", "/api/v1/ai/models/{group}"),
            ("delete", "/api/v1/ai/models/{group}"),
        ],
        parameter: "group",
        value: "$request.path.group",
    },
    Links {
        from: ("post", "/api/v1/execute"),
        statuses: &["200", "202"],
        to: &[
            ("get", "/api/v1/tasks/{id}"),
            ("delete", "/api/v1/tasks/{id}"),
            ("post", "/api/v1/tasks/{id}/retry"),
        ],
        parameter: "id",
        value: "$response.body#/data/taskId",
    },
    Links {
        from: ("post", "/api/v1/tasks"),
        statuses: &["200", "202"],
        to: &[
            ("get", "/api/v1/tasks/{id}"),
            ("delete", "/api/v1/tasks/{id}"),
            ("post", "/api/v1/tasks/{id}/retry"),
        ],
        parameter: "id",
        value: "$response.body#/data/taskId",
    },
    Links {
        from: ("post", "/api/v1/execute"),
        statuses: &["200", "202"],
        to: &[("get", "/api/v1/traces/{correlationId}")],
        parameter: "correlationId",
        value: "$response.body#/data/correlationId",
    },
    Links {
        from: ("post", "/api/v1/alerts/silences"),
        statuses: &["201"],
        to: &[("delete", "/api/v1/alerts/silences/{id}")],
        parameter: "id",
        value: "$response.body#/data/id",
    },
];

fn add_links(doc: &mut utoipa::openapi::OpenApi, links: &Links) {
    let (method, path) = links.from;
    let op = doc
        .paths
        .paths
        .get_mut(path)
        .and_then(|item| {
            operations(item)
                .find(|(m, _)| *m == method)
                .map(|(_, op)| op)
        })
        .unwrap_or_else(|| panic!("a link from {method} {path}, which is not documented"));
    for status in links.statuses {
        let Some(RefOr::T(response)) = op.responses.responses.get_mut(*status) else {
            panic!("a link from {method} {path} {status}, which is not documented");
        };
        for (to_method, to_path) in links.to {
            let id = operation_id(to_method, to_path);
            response.links.insert(
                id.clone(),
                RefOr::T(
                    LinkBuilder::new()
                        .operation_id(id)
                        .parameter(links.parameter, links.value)
                        .build(),
                ),
            );
        }
    }
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| Some((method, op?)))
}

/// `get` `/api/v1/services/{name}` → `get_services_name`; `/v1/…` keeps its `v1`; `/` is
/// `root`.
fn operation_id(method: &str, path: &str) -> String {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let words: Vec<String> = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if words.is_empty() {
        return format!("{method}_root");
    }
    format!("{method}_{}", words.join("_"))
}

/// Adds the response for `status` unless the operation documents that status itself.
fn add(op: &mut Operation, status: &str, response: OaResponse) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert(RefOr::T(response));
}

/// An error response: the envelope, or on `/v1/*` OpenAI's error shape.
fn error(gateway: bool, description: &str) -> OaResponse {
    let schema = if gateway {
        "OpenAiErrorEnvelope"
    } else {
        "ErrorEnvelope"
    };
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build(),
        )
        .build()
}

/// 429 `rate_limited`, with its `Retry-After`.
fn rate_limited(gateway: bool, protected: bool) -> OaResponse {
    let whose = if protected {
        "the token's or the client address's rate"
    } else {
        "the client address's rate"
    };
    let mut response = error(
        gateway,
        &format!("`rate_limited`: over {whose}; `Retry-After` says when to try again."),
    );
    response.headers.insert(
        "Retry-After".to_string(),
        HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            )
            .description(Some("Seconds to wait before the next request."))
            .build(),
    );
    response
}

/// The document as JSON, made once.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let text = ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes");
        // utoipa 5.5 writes a link's `operationId` as `operation_id` (its `Link` has no
        // camelCase renaming); no other key of the document is snake_case.
        let mut text = text.replace("\"operation_id\": ", "\"operationId\": ");
        text.push('\n');
        text
    })
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of the whole API.", body = Object)))]
pub async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed `docs/openapi.json` is this document (`JARVIS_UPDATE_DOCS=1` rewrites it).
    #[test]
    fn committed_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed == json() {
            return;
        }
        if std::env::var_os("JARVIS_UPDATE_DOCS").is_some() {
            std::fs::write(&path, json()).unwrap();
            return;
        }
        panic!(
            "docs/openapi.json is not the document the code generates \
             (JARVIS_UPDATE_DOCS=1 cargo test -p jarvis --lib api::openapi rewrites it)"
        );
    }

    /// Every error code a handler uses (`ApiError::new(status, "code", …)`,
    /// `ApiError::bad_request("code", …)`) is listed in [`ErrorCode`].
    #[test]
    fn every_error_code_is_documented() {
        let doc: serde_json::Value = serde_json::from_str(json()).unwrap();
        let listed: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut used = Vec::new();
        let mut dirs = vec![src];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    used.extend(codes_in(&std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
        assert!(used.len() > 20, "the scan found the codes: {used:?}");
        for code in used {
            assert!(
                listed.contains(&code.as_str()),
                "{code} is not in ErrorCode"
            );
        }
    }

    /// The first string literal after each `ApiError::new(` or `bad_request(`.
    fn codes_in(text: &str) -> Vec<String> {
        let mut codes = Vec::new();
        for marker in ["ApiError::new(", "bad_request("] {
            for (at, _) in text.match_indices(marker) {
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                if text[line_start..at].trim_start().starts_with("//") {
                    continue;
                }
                let rest = &text[at + marker.len()..];
                let Some(open) = rest.find('"') else { continue };
                // Only a literal among the first arguments, not one in a later statement.
                if rest[..open].contains(';') || rest[..open].matches(',').count() > 1 {
                    continue;
                }
                let literal = &rest[open + 1..];
                let code: String = literal.chars().take_while(|&c| c != '"').collect();
                if !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    codes.push(code);
                }
            }
        }
        codes
    }

    /// Every link names an operation of the document, with a parameter it takes.
    #[test]
    fn links_name_documented_operations() {
        let doc: serde_json::Value = serde_json::from_str(json()).unwrap();
        let mut ops = std::collections::BTreeMap::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                ops.insert(op["operationId"].as_str().unwrap().to_string(), op.clone());
            }
        }
        let mut links = 0;
        for op in ops.values() {
            for response in op["responses"].as_object().unwrap().values() {
                for link in response["links"].as_object().into_iter().flatten() {
                    let target = &ops[link.1["operationId"].as_str().unwrap()];
                    for name in link.1["parameters"].as_object().unwrap().keys() {
                        let takes = target["parameters"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|p| p["name"] == name.as_str());
                        assert!(takes, "link {} passes {name}", link.0);
                    }
                    links += 1;
                }
            }
        }
        assert!(links >= 20, "{links} links");
    }

    /// Every route of the document that needs the token says so, the public ones (`/health`,
    /// the dashboard's page, files and sign-in) do not; the dashboard's session routes need its
    /// cookie; whatever needs a credential documents 401; every route documents the rate
    /// limit's 429 (with `Retry-After` outside the gateway, whose own 429s may lack it);
    /// operation IDs are unique.
    #[test]
    fn security_is_declared() {
        use crate::api::auth::{Access, ROUTES};
        // `/a/{name}` → `/a/{}`: the document may name a parameter otherwise than the router.
        let generic = |path: &str| -> String {
            path.split('/')
                .map(|seg| if seg.starts_with('{') { "{}" } else { seg })
                .collect::<Vec<_>>()
                .join("/")
        };
        let doc: serde_json::Value = serde_json::from_str(json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = std::collections::BTreeSet::new();
        let mut public = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_string()), "operationId {id} repeats");
                let access = ROUTES
                    .iter()
                    .find(|(m, p, _)| m.eq_ignore_ascii_case(method) && generic(p) == generic(path))
                    .map(|(_, _, access)| *access)
                    .unwrap_or_else(|| panic!("{method} {path} is not in api::auth::ROUTES"));
                let security = &op["security"];
                if access == Access::Public {
                    public += 1;
                    let session = path == "/ui/session" || path == "/ui/logout";
                    let expected = if session {
                        serde_json::json!([{"session": []}])
                    } else {
                        serde_json::Value::Null
                    };
                    assert_eq!(security, &expected, "{method} {path}");
                } else {
                    assert_eq!(
                        security,
                        &serde_json::json!([{"bearer": []}, {"session": []}]),
                        "{method} {path}"
                    );
                }
                let responses = op["responses"].as_object().unwrap();
                if !security.is_null() {
                    assert!(responses.contains_key("401"), "{method} {path}");
                }
                let limited = &responses["429"];
                let description = limited["description"].as_str().unwrap_or("");
                assert!(
                    description.contains("`rate_limited`"),
                    "{method} {path}: {limited}"
                );
                // The gateway's own 429 `budget_exceeded` has no `Retry-After`.
                if !path.starts_with("/v1/") {
                    let retry = &limited["headers"]["Retry-After"];
                    assert!(
                        retry.is_object(),
                        "{method} {path}: 429 without Retry-After"
                    );
                }
            }
        }
        let listed = ROUTES.iter().filter(|r| r.2 == Access::Public).count();
        assert_eq!(
            public, listed,
            "public operations, against api::auth::ROUTES"
        );
    }
}
