//! The response envelope and the error type every handler returns.
//!
//! Success: `{"success": true, "data": …}`. Failure:
//! `{"success": false, "error": {"code": "…", "message": "…", "correlationId": "…"}}`: an
//! [`ApiError`] answer carries the error in its extensions, and the correlation middleware
//! (`api::middleware::correlate`, which knows the request's ID) writes the body with the ID in
//! it ([`ApiError::response`]), so that no handler has to thread the ID through to its errors.
//! The JSON and query extractors
//! here replace axum's own so that malformed, oversized or mistyped input gets the same envelope
//! (with the parse position for malformed JSON) instead of a plain-text rejection.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A successful answer: the status code and the `data` of the envelope.
pub struct ApiOk<T>(pub StatusCode, pub T);

/// `200 OK` with `data`.
pub fn ok<T: Serialize>(data: T) -> ApiOk<T> {
    ApiOk(StatusCode::OK, data)
}

/// The success envelope. A struct rather than a JSON map so that `success` comes first, as
/// docs/api.md, Envelope says (`{"success":true,"data":{}}` is compared literally by the user's
/// checklist).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Envelope<T> {
    /// Always true here.
    pub success: bool,
    /// The answer.
    pub data: T,
}

/// The error envelope, `success` first.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorEnvelope)]
pub struct ErrorEnvelope<'a> {
    /// Always false here.
    pub success: bool,
    /// What went wrong.
    pub error: ErrorBody<'a>,
}

/// The `error` of the error envelope.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ErrorBody)]
pub struct ErrorBody<'a> {
    /// Stable and machine-readable (`api::openapi::ErrorCode` lists them).
    #[schema(value_type = super::openapi::ErrorCode)]
    pub code: &'a str,
    /// What went wrong, for a person.
    pub message: &'a str,
    /// The request's correlation ID: absent only for an answer built outside a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<&'a str>,
}

impl<T: Serialize> IntoResponse for ApiOk<T> {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(Envelope {
                success: true,
                data: self.1,
            }),
        )
            .into_response()
    }
}

/// An error answer, with a machine-readable code and a message for a person.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable, snake_case error code (`not_found`, `invalid_body`, …).
    pub code: &'static str,
    /// What went wrong, for a person. Never holds a secret.
    pub message: String,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal`; the detail is logged, the caller sees a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the detail under this correlationId",
        )
    }

    /// 503 `unavailable`, for a store that cannot be reached.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl ApiError {
    /// The error envelope of this error, with `correlation_id` in its `error` object.
    pub fn response(&self, correlation_id: Option<&str>) -> Response {
        (
            self.status,
            Json(ErrorEnvelope {
                success: false,
                error: ErrorBody {
                    code: self.code,
                    message: &self.message,
                    correlation_id,
                },
            }),
        )
            .into_response()
    }
}

/// The error of an answer, kept in the response's extensions until the correlation middleware
/// writes the body again with the request's ID.
#[derive(Debug, Clone)]
pub struct ErrorAnswer(pub ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.response(None);
        response.extensions_mut().insert(ErrorAnswer(self));
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        match e {
            crate::store::StoreError::Unavailable(m) => ApiError::unavailable(m),
            // Nothing was stored: the caller may submit again once space is freed.
            crate::store::StoreError::Full(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_full",
                format!("the store is out of space; nothing was stored: {m}"),
            ),
            other => ApiError::internal(other),
        }
    }
}

/// A JSON body whose rejections are answered in the envelope.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request("malformed_json", text),
        JsonRejection::JsonDataError(_) => ApiError::bad_request("invalid_body", text),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a body with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the server accepts",
            )
        }
        other => ApiError::new(other.status(), "invalid_body", text),
    }
}

/// Query parameters whose rejections are answered in the envelope.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(r @ QueryRejection::FailedToDeserializeQueryString(_)) => {
                Err(ApiError::bad_request("invalid_query", r.body_text()))
            }
            Err(r) => Err(ApiError::bad_request("invalid_query", r.body_text())),
        }
    }
}

/// Path parameters whose rejections are answered in the envelope (axum's own `Path` answers a
/// segment that is not UTF-8, e.g. `%FF`, in plain text).
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(ApiError::bad_request("invalid_path", r.body_text())),
        }
    }
}
