//! The web dashboard's routes (docs/api.md, Dashboard): the page at `/` and its files under
//! `/ui/` (embedded, validated by `ETag`), sign-in and sign-out with the API token (an HttpOnly,
//! SameSite=Strict session cookie holding an opaque ID, see [`crate::dashboard::session`]), the
//! CSRF check of state-changing requests authenticated by that cookie, and the server-sent
//! events of `GET /api/v1/events` (breaker transitions, service status changes, settled tasks).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::SecondsFormat;
use futures_util::stream::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

use super::envelope::{ok, ApiError, ApiJson, Envelope, ErrorEnvelope};
use crate::api::AppState;
use crate::dashboard::{assets, Asset, Session};

/// The session cookie's name.
pub const COOKIE: &str = "jarvis_session";
/// The header a cookie-authenticated state-changing request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-jarvis-csrf";

/// Served beside every dashboard file: the page loads only its own scripts and styles, talks
/// only to its own origin, and cannot be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers of every answer with a dashboard file (or its 304) besides its `ETag`: name,
/// value, and what it is for (the OpenAPI document says).
const FILE_HEADERS: [(HeaderName, &str, &str); 5] = [
    (
        header::CACHE_CONTROL,
        "no-cache",
        "Revalidate every time: a new binary's files are used at once.",
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        CSP,
        "The page loads only its own files, talks only to its own origin, and cannot be framed.",
    ),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        "nosniff",
        "The file is only ever read as its own type.",
    ),
    (
        header::REFERRER_POLICY,
        "no-referrer",
        "No referrer is sent from the page.",
    ),
    (
        header::X_FRAME_OPTIONS,
        "DENY",
        "The page cannot be framed (for browsers without CSP).",
    ),
];

/// `/`, `/ui/{file}`, `/ui/login`, `/ui/logout`, `/ui/session` (merged into the root router;
/// `GET /api/v1/events` is routed with the rest of `/api/v1`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/session", get(session))
        .route("/ui/{file}", get(file))
}

/// `GET /`: the dashboard's page.
#[utoipa::path(
    get,
    path = "/",
    tag = "dashboard",
    params(Revalidation),
    responses(PageResponses)
)]
pub async fn index(headers: HeaderMap) -> Response {
    serve(assets::index(), &headers)
}

/// `GET /ui/{file}`: one of the page's files.
#[utoipa::path(get, path = "/ui/{file}", tag = "dashboard",
    params(
        ("file" = FileName, Path, description = "The file's name."),
        Revalidation,
    ),
    responses(
        FileResponses,
        (status = 404, description = "`not_found`: the dashboard has no such file.", body = ErrorEnvelope),
    ))]
pub async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ui_files().find(|a| a.name == name) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::not_found("no such dashboard file").into_response(),
    }
}

/// The files served under `/ui/`: every embedded file but the page (served at `/` only).
fn ui_files() -> impl Iterator<Item = &'static Asset> {
    let page = assets::index();
    assets::ASSETS.iter().filter(move |a| a.name != page.name)
}

/// The request header of a file's revalidation (a schema only: [`serve`] reads the headers).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct Revalidation {
    /// The `ETag`s the caller holds (or `*`): 304 without a body when one is the file's.
    #[param(rename = "If-None-Match", nullable = false)]
    pub if_none_match: Option<String>,
}

/// The name of a file under `/ui/` (a schema only): one of the embedded files.
pub struct FileName;

impl utoipa::PartialSchema for FileName {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ui_files().map(|a| a.name)))
            .description(Some(
                "A file of the dashboard's page (the page itself is served at `/`).",
            ))
            .into()
    }
}

impl ToSchema for FileName {}

/// The answers of `GET /`: the page, or 304.
pub struct PageResponses;

impl IntoResponses for PageResponses {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        file_responses(std::iter::once(assets::index()))
    }
}

/// The answers of `GET /ui/{file}` but 404: the file (with its own type), or 304.
pub struct FileResponses;

impl IntoResponses for FileResponses {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        file_responses(ui_files())
    }
}

/// 200 with one of `files` (each type once) and 304, both with the headers [`serve`] sets.
fn file_responses(
    files: impl Iterator<Item = &'static Asset>,
) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    let mut types: Vec<&str> = files.map(|a| a.content_type).collect();
    types.sort_unstable();
    types.dedup();
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let etag = (
        "ETag".to_string(),
        string(),
        "The file's strong validator, for `If-None-Match`.",
    );
    let fixed = FILE_HEADERS.iter().map(|(name, value, description)| {
        let schema = string().enum_values(Some([*value]));
        (canonical(name), schema, *description)
    });
    let headers = std::iter::once(etag).chain(fixed);
    let mut fresh = ResponseBuilder::new().description("The file.");
    for t in types {
        fresh = fresh.content(t, ContentBuilder::new().schema(Some(string())).build());
    }
    let mut not_modified = ResponseBuilder::new()
        .description("Not modified: `If-None-Match` names the file's `ETag` (or is `*`); no body.");
    for (name, schema, description) in headers {
        let schema = schema.build();
        let header = || {
            HeaderBuilder::new()
                .schema(schema.clone())
                .description(Some(description))
                .build()
        };
        fresh = fresh.header(&name, header());
        not_modified = not_modified.header(&name, header());
    }
    BTreeMap::from([
        ("200".to_string(), RefOr::T(fresh.build())),
        ("304".to_string(), RefOr::T(not_modified.build())),
    ])
}

/// `x-content-type-options` → `X-Content-Type-Options`, as the document writes header names.
fn canonical(name: &HeaderName) -> String {
    name.as_str()
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The file, or 304 when the caller holds the same version. `no-cache`: always revalidated, so
/// a new binary's files are used at once; the `ETag` makes the revalidation a 304 without body.
fn serve(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let etag = asset.etag();
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == etag || t == "*" || t.strip_prefix("W/") == Some(etag)
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.bytes).into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    for (name, value, _) in FILE_HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The body of `POST /ui/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// A token of `JARVIS_AUTH_TOKEN`, `JARVIS_AUTH_TOKENS` or the tokens file.
    token: String,
}

/// What the page needs to know of its session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Always true here.
    signed_in: bool,
    /// The session's CSRF token, for `X-Jarvis-CSRF`.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    csrf: String,
    /// The instance that holds the session (sessions live in its memory).
    instance_id: String,
    /// Seconds a session lasts without a request.
    idle_timeout_seconds: u64,
    /// The role of the token the session was signed in with (`read`, `operate`, `admin`); null
    /// once a reload removed that token (the session's next other request ends it).
    role: Option<crate::auth::Role>,
}

fn session_view(state: &AppState, session: &Session) -> SessionView {
    SessionView {
        signed_in: true,
        csrf: session.csrf.clone(),
        instance_id: state.instance_id.clone(),
        idle_timeout_seconds: crate::dashboard::session::IDLE.as_secs(),
        role: state
            .auth
            .keyring
            .current()
            .find_hash(&session.token)
            .map(|c| c.role),
    }
}

/// The answer of `POST /ui/logout`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedOut {
    /// Always false here.
    signed_in: bool,
}

/// `POST /ui/login` `{"token": "…"}`: a session for the right token, in a cookie.
#[utoipa::path(post, path = "/ui/login", tag = "dashboard",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in: the session, and its cookie.", body = Envelope<SessionView>,
            headers(
                ("Set-Cookie" = String, description = "`jarvis_session=<64 hex>; Path=/; HttpOnly; SameSite=Strict` (and `; Secure` when `X-Forwarded-Proto` is `https`)."),
                ("Cache-Control" = String, description = "`no-store`."),
            )),
        (status = 401, description = "`unauthorized`: the token is not valid.", body = ErrorEnvelope),
        (status = 403, description = "`csrf_failed`: a browser says the request came from another site (`Sec-Fetch-Site` not `same-origin`, or `Origin` not this server).", body = ErrorEnvelope),
    ))]
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Response {
    if let Err(why) = same_origin(&headers) {
        return forbidden(why);
    }
    let Some(caller) = state.auth.keyring.authenticate(&body.token) else {
        // The given value is never logged: it may be a real token of another system.
        tracing::warn!(
            route = "/ui/login",
            status = 401,
            reason = "dashboard sign-in refused: wrong token",
            "request denied"
        );
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token is not valid",
        )
        .into_response();
    };
    let (id, session) = state.sessions.create(caller.hash);
    tracing::info!(token_name = %caller.name, role = %caller.role, "dashboard sign-in");
    let response = ok(session_view(&state, &session)).into_response();
    with_cookie(response, &format!("{COOKIE}={id}"), &headers)
}

/// `response` with the session cookie set to `value` (`name=value[; attributes]`): HttpOnly,
/// SameSite=Strict, Secure over TLS, and not to be stored by caches.
fn with_cookie(mut response: Response, value: &str, headers: &HeaderMap) -> Response {
    let cookie = format!(
        "{value}; Path=/; HttpOnly; SameSite=Strict{}",
        if over_tls(headers) { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    no_store(response)
}

/// `POST /ui/logout`: ends the session server-side and clears the cookie (the CSRF check of
/// every cookie-authenticated state change applies).
#[utoipa::path(post, path = "/ui/logout", tag = "dashboard",
    params(("X-Jarvis-CSRF" = String, Header, description = "The session's `csrf` (`GET /ui/session`).")),
    security(("session" = [])),
    responses(
        (status = 200, description = "Signed out: the session is ended and its cookie cleared.", body = Envelope<SignedOut>,
            headers(
                ("Set-Cookie" = String, description = "`jarvis_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict` (and `; Secure` when `X-Forwarded-Proto` is `https`)."),
                ("Cache-Control" = String, description = "`no-store`."),
            )),
        (status = 401, description = "`unauthorized`: not signed in (no session cookie, or no live session).", body = ErrorEnvelope),
        (status = 403, description = "`csrf_failed`: `X-Jarvis-CSRF` is missing or not the session's, or a browser says the request came from another site.", body = ErrorEnvelope),
    ))]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(id) = cookie_of(&headers) else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "not signed in")
            .into_response();
    };
    match state.sessions.find(id) {
        Some(session) => {
            if let Err(why) = check_csrf(&session, &headers) {
                return forbidden(why);
            }
            state.sessions.end(id);
            tracing::info!("dashboard sign-out");
        }
        None => {
            return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "not signed in")
                .into_response()
        }
    }
    let response = ok(SignedOut { signed_in: false }).into_response();
    // Cleared: empty, expired at once.
    with_cookie(response, &format!("{COOKIE}=; Max-Age=0"), &headers)
}

/// `GET /ui/session`: the signed-in session (with its CSRF token), or 401.
#[utoipa::path(get, path = "/ui/session", tag = "dashboard",
    security(("session" = [])),
    responses(
        (status = 200, description = "The cookie's session.", body = Envelope<SessionView>,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 401, description = "`unauthorized`: not signed in (no session cookie, or no live session).", body = ErrorEnvelope),
    ))]
pub async fn session(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match cookie_of(&headers).and_then(|id| state.sessions.find(id)) {
        Some(session) => no_store(ok(session_view(&state, &session)).into_response()),
        None => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "not signed in").into_response()
        }
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn forbidden(why: &'static str) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", why).into_response()
}

/// Whether the browser reached Jarvis over HTTPS (through a TLS-terminating proxy or load
/// balancer, which says so in `X-Forwarded-Proto`): the cookie is then `Secure`.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The value of the session cookie, if the request has one.
pub(crate) fn cookie_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Refuses what a browser says came from another site: `Sec-Fetch-Site` other than
/// `same-origin`, or an `Origin` whose host is not the request's `Host`. (Clients that are not
/// browsers send neither; they cannot hold the cookie of a signed-in person anyway.)
fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes() != b"same-origin" {
            return Err("cross-site request refused (Sec-Fetch-Site is not same-origin)");
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or("");
        if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return Err("cross-origin request refused (Origin is not this server)");
        }
    }
    Ok(())
}

/// The CSRF defence of a state-changing request authenticated by the session cookie: the
/// session's token in `X-Jarvis-CSRF` (a header another site's form or image cannot set, and its
/// scripts cannot read), and a same-origin `Sec-Fetch-Site`/`Origin` where the browser sends them.
pub(crate) fn check_csrf(session: &Session, headers: &HeaderMap) -> Result<(), &'static str> {
    same_origin(headers)?;
    match headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(given) if session.csrf_matches(given.trim()) => Ok(()),
        Some(_) => Err("the X-Jarvis-CSRF header does not match the session"),
        None => Err("a request signed in by cookie must carry the X-Jarvis-CSRF header"),
    }
}

/// Why the cookie path refused a request.
pub(crate) enum Refusal {
    /// No cookie, or no live session, or the session's token was rotated away: 401.
    Unauthorized(&'static str),
    /// The session's CSRF check failed (the session's token name and why): 403 `csrf_failed`.
    Csrf(std::sync::Arc<str>, &'static str),
}

/// 403 `csrf_failed`.
pub(crate) fn csrf_refused(why: &'static str) -> Response {
    forbidden(why)
}

/// The auth middleware's cookie path (`api::auth::authorize` without a bearer header): the
/// caller of a live session whose token is still in force (a session whose token was rotated
/// away ends here), once a request other than GET, HEAD or OPTIONS passes the CSRF check.
pub(crate) fn session_caller(
    state: &AppState,
    req: &Request,
) -> Result<crate::auth::Caller, Refusal> {
    let headers = req.headers();
    let Some(id) = cookie_of(headers) else {
        return Err(Refusal::Unauthorized(
            "missing Authorization: Bearer <token> header",
        ));
    };
    let Some(session) = state.sessions.find(id) else {
        return Err(Refusal::Unauthorized(
            "the session is not valid (signed out or expired): sign in again",
        ));
    };
    let Some(caller) = state.auth.keyring.current().find_hash(&session.token) else {
        state.sessions.end(id);
        return Err(Refusal::Unauthorized(
            "the token this session was signed in with is no longer valid: sign in again",
        ));
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        if let Err(why) = check_csrf(&session, headers) {
            return Err(Refusal::Csrf(caller.name, why));
        }
    }
    Ok(caller)
}

/// `GET /api/v1/events`: server-sent events, as they happen on this instance (breaker changes
/// made by other instances included, with PostgreSQL): `breaker`, `service`, `task`, and
/// `lagged` when this stream fell behind and dropped some (the page then reloads its data).
#[utoipa::path(get, path = "/api/v1/events", tag = "dashboard",
    responses((status = 200, description = "Server-sent events: `hello`, then `breaker`, `service` and `task` events as they happen; the stream does not end.", content_type = "text/event-stream", body = super::openapi::ServerSentEvent)))]
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // A stream opened with the session cookie ends once the session does (sign-out, expiry,
    // its token removed by a reload); one opened with a bearer token once a reload removed
    // that token (or lowered it below `read`).
    let holder = match super::auth::bearer(&headers) {
        Some(token) => Some(Holder::Token(
            crate::auth::hash(token),
            state.auth.keyring.clone(),
        )),
        None => {
            cookie_of(&headers).map(|id| Holder::Session(id.to_string(), state.sessions.clone()))
        }
    };
    let mut check = tokio::time::interval(SESSION_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let streams = Streams {
        holder,
        check,
        breakers: state.breakers.subscribe(),
        services: state.health.subscribe(),
        tasks: state.tasks.subscribe_finished(),
        hello: Some(serde_json::json!({"instanceId": state.instance_id})),
        open: [true; 3],
    };
    let stream = futures_util::stream::unfold(streams, |mut s| async move {
        let event = s.next().await?;
        Some((Ok(event), s))
    });
    Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    )
}

/// At most this many task IDs in one `task` event.
const TASKS_PER_EVENT: usize = 256;

/// How often an event stream checks that its session or token is still accepted.
const SESSION_CHECK: Duration = Duration::from_secs(5);

/// What an event stream was opened with, checked every [`SESSION_CHECK`].
enum Holder {
    /// A dashboard session (its ID).
    Session(String, std::sync::Arc<crate::dashboard::Sessions>),
    /// A bearer token (its hash).
    Token(crate::auth::Digest32, std::sync::Arc<crate::auth::Keyring>),
}

impl Holder {
    /// Whether the stream may go on.
    fn accepted(&self) -> bool {
        match self {
            Holder::Session(id, sessions) => sessions.is_live(id),
            Holder::Token(hash, keyring) => keyring
                .current()
                .find_hash(hash)
                .is_some_and(|c| c.role >= crate::auth::Role::Read),
        }
    }
}

struct Streams {
    holder: Option<Holder>,
    check: tokio::time::Interval,
    breakers: tokio::sync::broadcast::Receiver<crate::breakers::BreakerChange>,
    services: tokio::sync::broadcast::Receiver<crate::health::ServiceChange>,
    tasks: tokio::sync::broadcast::Receiver<uuid::Uuid>,
    hello: Option<serde_json::Value>,
    /// Which of breakers, services, tasks still send.
    open: [bool; 3],
}

fn at(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Streams {
    /// The next event; `None` ends the stream (its session ended).
    async fn next(&mut self) -> Option<Event> {
        if let Some(hello) = self.hello.take() {
            return Some(json_event("hello", &hello).retry(Duration::from_secs(3)));
        }
        loop {
            // A source that closed (the application stopping) is left out from then on.
            let (b, s, t) = (self.open[0], self.open[1], self.open[2]);
            if !(b || s || t) && self.holder.is_none() {
                std::future::pending::<()>().await;
            }
            let lagged = tokio::select! {
                _ = self.check.tick() => {
                    if self.holder.as_ref().is_some_and(|h| !h.accepted()) {
                        return None;
                    }
                    continue;
                }
                r = self.breakers.recv(), if b => match r {
                    Ok(c) => return Some(json_event("breaker", &serde_json::json!({
                        "name": c.name, "from": c.from.as_str(), "to": c.to.as_str(),
                        "origin": c.origin.as_str(), "at": at(c.at),
                    }))),
                    Err(RecvError::Lagged(n)) => n,
                    Err(RecvError::Closed) => { self.open[0] = false; continue }
                },
                r = self.services.recv(), if s => match r {
                    Ok(c) => return Some(json_event("service", &serde_json::json!({
                        "name": c.name,
                        "from": c.from.map_or("unknown", |s| s.as_str()),
                        "to": c.result.status.as_str(),
                        "message": c.result.message,
                        "latency": c.result.latency_ms,
                        "breakerOpen": c.result.breaker_open,
                        "at": at(c.result.timestamp),
                    }))),
                    Err(RecvError::Lagged(n)) => n,
                    Err(RecvError::Closed) => { self.open[1] = false; continue }
                },
                r = self.tasks.recv(), if t => match r {
                    Ok(id) => {
                        // Settlements come in bursts: the ones already waiting go in the same
                        // event, so a busy queue costs a client one event per burst.
                        let mut ids = vec![id];
                        while ids.len() < TASKS_PER_EVENT {
                            match self.tasks.try_recv() {
                                Ok(id) => ids.push(id),
                                Err(_) => break,
                            }
                        }
                        return Some(json_event("task", &serde_json::json!({"taskIds": ids})));
                    }
                    Err(RecvError::Lagged(n)) => n,
                    Err(RecvError::Closed) => { self.open[2] = false; continue }
                },
            };
            return Some(json_event(
                "lagged",
                &serde_json::json!({ "missed": lagged }),
            ));
        }
    }
}

fn json_event(name: &str, data: &serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}
