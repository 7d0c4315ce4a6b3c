//! Request middleware: correlation IDs and W3C trace context with the access log (and in every
//! error envelope), the request's trace event, the body limit, and the hook of the token check
//! (`api::auth`: bearer token or the dashboard's session cookie, roles, rate limits).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::envelope::{ApiError, ErrorAnswer};
use crate::api::AppState;
use crate::correlation::{CorrelationId, ALT_HEADER, HEADER};
use crate::trace::context::{RequestTrace, TraceContext, TRACEPARENT};
use crate::trace::TraceKind;

/// The longest path written to the access log; longer paths are cut (never a whole hostile URL).
const MAX_LOGGED_PATH: usize = 256;

/// Takes or makes the request's correlation ID, runs the request inside a span that carries it,
/// echoes it in `X-Correlation-ID` (and as `error.correlationId` of an error envelope), and
/// writes one access-log line with method, path, status and `durationMs`.
pub async fn correlate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let given = req
        .headers()
        .get(HEADER)
        .or_else(|| req.headers().get(ALT_HEADER));
    let (id, replaced) = match given {
        None => (CorrelationId::generate("req"), false),
        Some(value) => match value.to_str().ok().and_then(CorrelationId::parse) {
            Some(id) => (id, false),
            None => (CorrelationId::generate("req"), true),
        },
    };
    let carried_id = given.is_some();
    req.extensions_mut().insert(id.clone());
    // The caller's W3C trace context, else a trace Jarvis starts for the ID; a malformed
    // `traceparent` is ignored, as the specification asks.
    let given_trace = req
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    // The request's own span: a child of the caller's, else the root of the derived trace.
    let trace = given_trace
        .map(|t| t.child())
        .unwrap_or_else(|| TraceContext::for_correlation(id.as_str()));
    req.extensions_mut().insert(RequestTrace {
        context: trace,
        given: given_trace.is_some(),
    });
    let traced = worth_tracing(
        req.method(),
        req.uri().path(),
        carried_id || given_trace.is_some(),
    );
    let method = req.method().clone();

    let mut path = req.uri().path().to_string();
    if path.len() > MAX_LOGGED_PATH {
        let mut cut = MAX_LOGGED_PATH;
        while !path.is_char_boundary(cut) {
            cut -= 1;
        }
        path.truncate(cut);
        path.push('…');
    }
    let span = tracing::info_span!(
        "request",
        correlation_id = %id,
        trace_id = %trace.trace_id_hex(),
        method = %req.method(),
        path = %path,
    );
    let at = crate::clock::now();
    async move {
        if replaced {
            // The refused value itself is never logged: it may be an injection attempt.
            tracing::warn!("replaced an invalid X-Correlation-ID header with a generated ID");
        }
        let mut response = next.run(req).await;
        if let Some(ErrorAnswer(error)) = response.extensions_mut().remove::<ErrorAnswer>() {
            // The same answer (status, headers such as `WWW-Authenticate` or `Allow`) with the
            // request's ID in the envelope: the caller can quote it without the headers.
            let (mut parts, _) = response.into_parts();
            let (with_id, body) = error.response(Some(id.as_str())).into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.extend(with_id.headers);
            response = Response::from_parts(parts, body);
        }
        if let Ok(value) = HeaderValue::from_str(id.as_str()) {
            response.headers_mut().insert(HEADER, value);
        }
        state
            .requests
            .record(response.status().as_u16(), started.elapsed());
        let status = response.status().as_u16();
        if crate::trace::otel::enabled() {
            crate::trace::otel::record(crate::trace::otel::SpanRecord {
                name: "request",
                kind: opentelemetry::trace::SpanKind::Server,
                context: trace,
                parent: given_trace.map(|t| t.span_id),
                start: at,
                end: crate::clock::now(),
                attributes: vec![
                    ("http.request.method", method.to_string()),
                    ("url.path", path.clone()),
                    ("http.response.status_code", status.to_string()),
                    ("jarvis.correlation_id", id.to_string()),
                ],
                error: (status >= 500).then(|| format!("HTTP {status}")),
            });
        }
        if traced {
            let mut e = state.traces.event(
                id.as_str(),
                TraceKind::Request,
                format!("{method} {path} → {status}"),
            );
            e.at = at;
            e.duration_ms = Some(started.elapsed().as_millis() as u64);
            e.status = Some(status.to_string());
            e.detail = serde_json::json!({
                "method": method.as_str(),
                "path": path,
                "traceId": trace.trace_id_hex(),
                "traceparent": given_trace.map(|t| t.to_string()),
            });
            state.traces.record(e);
        }
        tracing::info!(
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_millis() as u64,
            "request completed"
        );
        response
    }
    .instrument(span)
    .await
}

/// Whether a request gets a trace event: one that changes something or calls out (not a GET,
/// HEAD or OPTIONS), or one that carries its caller's correlation ID or trace context; never
/// the probes (`/health`, `/metrics`) or the trace API itself.
fn worth_tracing(method: &Method, path: &str, carried: bool) -> bool {
    if path == "/health" || path == "/metrics" || path.starts_with("/api/v1/traces") {
        return false;
    }
    carried || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The token check of the protected routes: [`super::auth::authorize`] (the caller's token or
/// dashboard session, its role against the route's in `api::auth::ROUTES`, its rate limit).
pub async fn require_token(state: State<AppState>, req: Request, next: Next) -> Response {
    super::auth::authorize(state, req, next).await
}

/// Answers 413 at once when `Content-Length` announces a body over the limit, before reading it
/// (bodies without a length are cut at the limit by the JSON extractor, with the same answer).
pub async fn limit_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > state.config.server.body_limit as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body is larger than the server accepts ({} bytes)",
                state.config.server.body_limit
            ),
        )
        .into_response();
    }
    next.run(req).await
}
