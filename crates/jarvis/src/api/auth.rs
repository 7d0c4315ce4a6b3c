//! Who may call which route: the one table of routes and the role each needs ([`ROUTES`]), the
//! middleware that checks a request's token (or dashboard session) against it ([`authorize`]),
//! and the rate limits per token and per client address ([`RateLimits`], [`limit_by_address`]).
//!
//! The middleware finds a request's route by axum's [`MatchedPath`] (the route pattern, such as
//! `/api/v1/tasks/{id}`), so the table names routes exactly as the router does. A route the
//! router serves but the table does not list is refused to every token (403, logged as an
//! error): the table fails closed, and a test fails until the route is given one
//! (`tests/api/auth.rs`, `every_route_of_the_router_has_an_entry_in_the_access_table`). Every refusal (401, 403, 429) is logged with the request's
//! correlation ID (from the request span) and the route, never with the token.
//!
//! Rate limits are kept in this instance's memory (`governor`'s GCRA): with several instances
//! behind a load balancer, a token may make the configured rate on each instance.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::envelope::ApiError;
use crate::api::AppState;
use crate::auth::{Caller, Keyring, Role};
use crate::config::{AuthSettings, Rate};

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing: served without a token (rate-limited per client address).
    Public,
    /// A token (or dashboard session) of this role or a higher one.
    Needs(Role),
}

use Access::{Needs, Public};
use Role::{Admin, Operate, Read};

/// Every route of the router: method, route pattern (as axum matches it), and what it needs.
/// `HEAD` is answered by the `GET` route and needs what `GET` needs. `/metrics` is listed with
/// `read`: with `JARVIS_METRICS_PUBLIC=true` it is routed without the token check.
pub const ROUTES: &[(&str, &str, Access)] = &[
    // Probes, metrics and the dashboard's page, files and sign-in.
    ("GET", "/health", Public),
    ("GET", "/metrics", Needs(Read)),
    ("GET", "/", Public),
    ("GET", "/ui/{file}", Public),
    ("POST", "/ui/login", Public),
    ("POST", "/ui/logout", Public),
    ("GET", "/ui/session", Public),
    // The API's own description (served by the OpenAPI work of issue 17).
    ("GET", "/api/v1/openapi.json", Needs(Read)),
    // Services and their health.
    ("GET", "/api/v1/services", Needs(Read)),
    ("GET", "/api/v1/services/{name}", Needs(Read)),
    ("PUT", "/api/v1/services/{name}", Needs(Operate)),
    ("DELETE", "/api/v1/services/{name}", Needs(Operate)),
    ("GET", "/api/v1/health/services", Needs(Read)),
    ("GET", "/api/v1/health/services/{name}/history", Needs(Read)),
    // Circuit breakers: forcing one is an admin's act.
    ("GET", "/api/v1/circuit-breakers", Needs(Read)),
    ("GET", "/api/v1/circuit-breakers/{name}", Needs(Read)),
    (
        "POST",
        "/api/v1/circuit-breakers/{name}/{action}",
        Needs(Admin),
    ),
    // Tasks.
    ("POST", "/api/v1/execute", Needs(Operate)),
    ("POST", "/api/v1/tasks", Needs(Operate)),
    ("GET", "/api/v1/tasks", Needs(Read)),
    ("POST", "/api/v1/tasks/batch", Needs(Operate)),
    ("GET", "/api/v1/tasks/history", Needs(Read)),
    ("GET", "/api/v1/tasks/recommendations", Needs(Read)),
    ("GET", "/api/v1/tasks/executions", Needs(Read)),
    ("GET", "/api/v1/tasks/{id}", Needs(Read)),
    ("DELETE", "/api/v1/tasks/{id}", Needs(Operate)),
    ("POST", "/api/v1/tasks/{id}/retry", Needs(Operate)),
    // Schedules.
    ("GET", "/api/v1/schedules", Needs(Read)),
    ("GET", "/api/v1/schedules/{name}", Needs(Read)),
    ("PUT", "/api/v1/schedules/{name}", Needs(Operate)),
    ("DELETE", "/api/v1/schedules/{name}", Needs(Operate)),
    ("POST", "/api/v1/schedules/{name}/pause", Needs(Operate)),
    ("POST", "/api/v1/schedules/{name}/resume", Needs(Operate)),
    // The AI gateway's figures and model groups (changing a group is an admin's act).
    ("GET", "/api/v1/ai/usage", Needs(Read)),
    ("GET", "/api/v1/ai/budgets", Needs(Read)),
    ("GET", "/api/v1/ai/prices", Needs(Read)),
    ("GET", "/api/v1/ai/models", Needs(Read)),
    ("GET", "/api/v1/ai/models/{group}", Needs(Read)),
    ("PUT", "/api/v1/ai/models/{group}", Needs(Admin)),
    ("DELETE", "/api/v1/ai/models/{group}", Needs(Admin)),
    // Events, analytics, traces.
    ("GET", "/api/v1/events", Needs(Read)),
    ("GET", "/api/v1/analytics/tasks", Needs(Read)),
    ("GET", "/api/v1/analytics/overview", Needs(Read)),
    ("GET", "/api/v1/analytics/breakers", Needs(Read)),
    ("GET", "/api/v1/analytics/services", Needs(Read)),
    ("GET", "/api/v1/traces/{id}", Needs(Read)),
    // Alerts.
    ("GET", "/api/v1/alerts", Needs(Read)),
    ("GET", "/api/v1/alerts/silences", Needs(Read)),
    ("POST", "/api/v1/alerts/silences", Needs(Operate)),
    ("DELETE", "/api/v1/alerts/silences/{id}", Needs(Operate)),
    ("GET", "/api/v1/alerts/notifications", Needs(Read)),
    // Agents.
    ("GET", "/api/v1/agents", Needs(Read)),
    ("GET", "/api/v1/agents/{domain}", Needs(Read)),
    ("PUT", "/api/v1/agents/{domain}", Needs(Operate)),
    ("DELETE", "/api/v1/agents/{domain}", Needs(Operate)),
    // The OpenAI-compatible gateway: model calls are operations, the model list a view.
    ("POST", "/v1/chat/completions", Needs(Operate)),
    ("POST", "/v1/embeddings", Needs(Operate)),
    ("GET", "/v1/models", Needs(Read)),
];

/// [`ROUTES`] by `(method, pattern)`.
static BY_ROUTE: LazyLock<HashMap<(&'static str, &'static str), Access>> =
    LazyLock::new(|| ROUTES.iter().map(|(m, p, a)| ((*m, *p), *a)).collect());

/// What the table says of a request's route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The route and method are listed.
    Listed(Access),
    /// The route is listed for other methods only (the answer is 405 with these in `Allow`).
    OtherMethods(Vec<&'static str>),
    /// The route is not listed at all: refused to everyone.
    Unlisted,
}

/// What `method pattern` needs, by the table.
pub fn lookup(method: &Method, pattern: &str) -> Lookup {
    let method = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    if let Some(a) = BY_ROUTE.get(&(method, pattern)) {
        return Lookup::Listed(*a);
    }
    let others: Vec<&'static str> = ROUTES
        .iter()
        .filter(|(_, p, _)| *p == pattern)
        .map(|(m, _, _)| *m)
        .collect();
    if others.is_empty() {
        Lookup::Unlisted
    } else {
        Lookup::OtherMethods(others)
    }
}

type Limiter = DefaultKeyedRateLimiter<String>;

/// The request budgets of this instance: one per token name, one per client address.
pub struct RateLimits {
    per_token: Option<Limiter>,
    per_address: Option<Limiter>,
    trust_forwarded_for: bool,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_token", &self.per_token.is_some())
            .field("per_address", &self.per_address.is_some())
            .finish()
    }
}

fn limiter(rate: Option<Rate>) -> Option<Limiter> {
    let rate = rate?;
    let per_second = NonZeroU32::new(rate.per_second)?;
    let burst = NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Some(RateLimiter::keyed(
        Quota::per_second(per_second).allow_burst(burst),
    ))
}

impl RateLimits {
    /// The limits the settings ask for.
    pub fn new(settings: &AuthSettings) -> RateLimits {
        RateLimits {
            per_token: limiter(settings.token_rate),
            per_address: limiter(settings.address_rate),
            trust_forwarded_for: settings.trust_forwarded_for,
        }
    }

    /// `Err(wait)` when the token named `name` is over its rate.
    fn check_token(&self, name: &str) -> Result<(), Duration> {
        check(self.per_token.as_ref(), name)
    }

    /// `Err(wait)` when `address` is over its rate.
    fn check_address(&self, address: &str) -> Result<(), Duration> {
        check(self.per_address.as_ref(), address)
    }

    /// Forgets the budgets of keys idle long enough to be full again (the per-address map would
    /// otherwise grow with every address ever seen).
    pub fn forget_idle(&self) {
        for l in [&self.per_token, &self.per_address].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// The client address of a request: the last `X-Forwarded-For` entry when trusted (and an
    /// IP address), else the TCP peer's.
    fn client_address(&self, req: &Request) -> String {
        if self.trust_forwarded_for {
            let last = req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                // The entry the load balancer appended; not an earlier one the client wrote.
                .next_back()
                .and_then(|a| a.trim().parse::<IpAddr>().ok());
            if let Some(ip) = last {
                return ip.to_string();
            }
        }
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into())
    }
}

fn check(limiter: Option<&Limiter>, key: &str) -> Result<(), Duration> {
    let Some(l) = limiter else { return Ok(()) };
    // The key is a token name or an address: short, and the map is pruned by `forget_idle`.
    l.check_key(&key.to_string())
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

/// The auth state of a running instance: the tokens in force and the rate limits.
#[derive(Debug)]
pub struct Auth {
    /// The tokens in force (reloaded on SIGHUP and a timer).
    pub keyring: Arc<Keyring>,
    /// Budgets per token and per client address.
    pub limits: RateLimits,
}

/// 429 `rate_limited` with `Retry-After` (whole seconds, at least 1).
fn too_many(wait: Duration, whose: &str) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests from {whose}; retry after {secs} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// 401 `unauthorized` with `WWW-Authenticate`.
pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"jarvis\""),
    );
    response
}

/// Logs a refused request: the route (pattern, else the path as the access log cuts it), the
/// status and why; the request span adds the correlation ID. Never the token.
pub(crate) fn log_denied(route: &str, status: u16, token_name: Option<&str>, reason: &str) {
    tracing::warn!(
        route,
        status,
        token_name = token_name.unwrap_or(""),
        reason,
        "request denied"
    );
}

/// The bearer token of a request, if it has an `Authorization: Bearer` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// The route a log line names: the matched pattern, else the path (cut at 256 bytes).
fn route_of(req: &Request) -> String {
    match req.extensions().get::<MatchedPath>() {
        Some(m) => m.as_str().to_string(),
        None => {
            let mut p = req.uri().path().to_string();
            if p.len() > 256 {
                let mut cut = 256;
                while !p.is_char_boundary(cut) {
                    cut -= 1;
                }
                p.truncate(cut);
            }
            p
        }
    }
}

/// A request without a valid token: 429 when its address is over its budget (so guessing
/// tokens is slowed), else 401. Logged either way.
fn refuse_unauthenticated(state: &AppState, req: &Request, route: &str, why: &str) -> Response {
    let address = state.auth.limits.client_address(req);
    if let Err(wait) = state.auth.limits.check_address(&address) {
        log_denied(route, 429, None, "client address over its rate limit");
        return too_many(wait, "this client address");
    }
    log_denied(route, 401, None, why);
    unauthorized(why)
}

/// The token check of every protected route: finds the caller (bearer token, else the
/// dashboard's session cookie with its CSRF check), applies the token's rate limit, and lets the
/// request through when the caller's role is at least the one [`ROUTES`] gives the route.
/// A request for no route at all (the 404 fallback) needs any valid token.
pub async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = route_of(&req);
    let caller: Caller = match bearer(req.headers()) {
        Some(token) => match state.auth.keyring.authenticate(token) {
            Some(c) => c,
            None => {
                return refuse_unauthenticated(
                    &state,
                    &req,
                    &route,
                    "the bearer token is not valid",
                )
            }
        },
        // No bearer header: the dashboard's session cookie (with its CSRF check) will do.
        None => match super::dashboard::session_caller(&state, &req) {
            Ok(c) => c,
            Err(super::dashboard::Refusal::Unauthorized(why)) => {
                return refuse_unauthenticated(&state, &req, &route, why)
            }
            Err(super::dashboard::Refusal::Csrf(name, why)) => {
                log_denied(&route, 403, Some(&*name), why);
                return super::dashboard::csrf_refused(why);
            }
        },
    };
    if let Err(wait) = state.auth.limits.check_token(&caller.name) {
        log_denied(
            &route,
            429,
            Some(&*caller.name),
            "token over its rate limit",
        );
        return too_many(wait, &format!("token {}", caller.name));
    }
    let Some(pattern) = req.extensions().get::<MatchedPath>().map(|m| m.as_str()) else {
        // No route matched: the router's fallback answers 404.
        return next.run(req).await;
    };
    match lookup(req.method(), pattern) {
        Lookup::Listed(Public) => next.run(req).await,
        Lookup::Listed(Needs(role)) if caller.role >= role => next.run(req).await,
        Lookup::Listed(Needs(role)) => {
            log_denied(
                &route,
                403,
                Some(&*caller.name),
                &format!("role {} below {role}", caller.role),
            );
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this route needs the {role} role; token {} has {}",
                    caller.name, caller.role
                ),
            )
            .into_response()
        }
        Lookup::OtherMethods(allowed) => {
            let mut allow: Vec<&str> = Vec::new();
            for m in allowed {
                allow.push(m);
                if m == "GET" {
                    allow.push("HEAD");
                }
            }
            let mut response = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&allow.join(",")) {
                response.headers_mut().insert(header::ALLOW, v);
            }
            response
        }
        Lookup::Unlisted => {
            tracing::error!(
                route = %route,
                method = %req.method(),
                "route has no entry in the access table (api::auth::ROUTES); refused"
            );
            log_denied(
                &route,
                403,
                Some(&*caller.name),
                "route not in the access table",
            );
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this route has no role in the access table; it is refused to every token",
            )
            .into_response()
        }
    }
}

/// The per-address rate limit of the public routes (`/health`, public `/metrics`, the
/// dashboard's page, files and sign-in).
pub async fn limit_by_address(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let address = state.auth.limits.client_address(&req);
    if let Err(wait) = state.auth.limits.check_address(&address) {
        log_denied(
            &route_of(&req),
            429,
            None,
            "client address over its rate limit",
        );
        return too_many(wait, "this client address");
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_each_route_once_and_head_follows_get() {
        let mut seen = std::collections::HashSet::new();
        for (m, p, _) in ROUTES {
            assert!(seen.insert((m, p)), "{m} {p} is listed twice");
            assert!(p.starts_with('/'), "{p}");
        }
        assert_eq!(
            lookup(&Method::HEAD, "/api/v1/tasks/{id}"),
            Lookup::Listed(Needs(Read))
        );
        assert_eq!(
            lookup(&Method::PATCH, "/api/v1/tasks/{id}"),
            Lookup::OtherMethods(vec!["GET", "DELETE"])
        );
        assert_eq!(lookup(&Method::GET, "/api/v1/nope"), Lookup::Unlisted);
    }

    #[test]
    fn a_limiter_refuses_past_the_burst_with_a_wait() {
        let l = limiter(Some(Rate {
            per_second: 1,
            burst: 2,
        }));
        assert!(check(l.as_ref(), "a").is_ok());
        assert!(check(l.as_ref(), "a").is_ok());
        let wait = check(l.as_ref(), "a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another key has its own budget.
        assert!(check(l.as_ref(), "b").is_ok());
        assert!(check(None, "a").is_ok());
    }
}
