//! `GET /health`: liveness of Jarvis itself (process and store), public and cheap; and the
//! health of the monitored services (`/api/v1/health/services`, with history), read from what
//! the monitor already knows.
//!
//! `pass` (200): all well. `warn` (200): degraded but serving — a shared PostgreSQL does not
//! answer, or the breakers could not write their state and run on local state. `fail` (503): the
//! embedded store is broken.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::envelope::{ok, ApiError, ApiOk, ApiPath, ApiQuery, Envelope};
use super::openapi::ErrorEnvelope;
use super::services::path_name;
use super::types::{
    AgentPredictionView, CheckHistoryView, CheckResultView, PredictionView, ServiceView,
    ServicesView, UptimeView,
};
use crate::api::AppState;
use crate::health::{overall, Kind, Overall, ServiceHealth};
use crate::names::Name;
use crate::store::HistoryRange;

/// How long the store may take to answer before `/health` reports it failed.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The media type of the IETF health check response format (draft-inadarei-api-health-check).
pub const HEALTH_JSON: &str = "application/health+json";

/// An answer in our envelope, served as `application/health+json`. The draft's fields (`status`,
/// `checks`, …) live in `data`: the envelope comes first because every client of the API
/// unwraps it, and docs/api.md, Envelope fixes `success` as the first field.
pub struct HealthJson<T>(pub StatusCode, pub T);

impl<T: Serialize> IntoResponse for HealthJson<T> {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(self.1)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(HEALTH_JSON),
        );
        response
    }
}

/// One entry of a draft `checks` array: a component, one measurement of it and its status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// The instance, on `process:uptime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    component_id: Option<String>,
    /// `system`, `datastore` or `component`.
    component_type: &'static str,
    /// The measurement (seconds of uptime, ms of the store's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_value: Option<u64>,
    /// `s` or `ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_unit: Option<&'static str>,
    /// `pass`, `warn` or `fail`.
    status: &'static str,
    /// When it was measured (ISO 8601 UTC).
    time: String,
    /// Why it is not `pass` (the draft's raw error output); absent on `pass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    /// Which engine the store runs on (`sqlite` or `postgres`); only on the store check.
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<crate::store::Backend>,
}

/// The `data` of `GET /health`: the health+json draft's fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    /// `pass`, `warn` or `fail`.
    status: &'static str,
    /// The major version.
    version: &'static str,
    /// The full version.
    release_id: &'static str,
    /// Always `jarvis`.
    service_id: &'static str,
    /// Always `Jarvis control plane`.
    description: &'static str,
    /// This instance's ID.
    instance_id: String,
    /// Seconds since this instance started.
    uptime_seconds: u64,
    /// `process:uptime`, `store:responseTime`, `breakers:storeSync`.
    checks: BTreeMap<&'static str, Vec<Check>>,
    /// Why it is not `pass` (the store's error); absent on `pass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
}

/// The answer of `GET /health` when the store is broken (503): the error envelope with the
/// health `data` beside it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthFailure {
    /// Always false.
    success: bool,
    /// `unhealthy`.
    #[schema(value_type = super::envelope::ErrorBody)]
    error: serde_json::Value,
    /// What failed.
    data: HealthView,
}

/// `GET /health`, in the IETF health+json format inside the envelope: 200 with `status: pass`
/// (or `warn`) when the store answers, else 503 with `status: fail`. The `checks` keys follow
/// the draft's `{component}:{measurement}`: `process:uptime`, `store:responseTime`,
/// `breakers:storeSync`.
#[utoipa::path(get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "`pass` or `warn`: serving.", content_type = "application/health+json", body = Envelope<HealthView>),
        (status = 503, description = "`fail`: the embedded store is broken (error code `unhealthy`).", content_type = "application/health+json", body = HealthFailure),
    ))]
pub async fn health(
    State(state): State<AppState>,
    correlation_id: Option<axum::Extension<crate::correlation::CorrelationId>>,
) -> Response {
    let started = Instant::now();
    let backend = state.store.backend();
    let answer = tokio::time::timeout(STORE_TIMEOUT, state.store.ping()).await;
    let now = iso(crate::clock::now());
    let (mut store_status, store_output, latency) = match answer {
        Ok(Ok(())) => ("pass", None, Some(started.elapsed().as_millis() as u64)),
        Ok(Err(e)) => ("fail", Some(e.to_string()), None),
        Err(_) => (
            "fail",
            Some(format!("no answer within {} ms", STORE_TIMEOUT.as_millis())),
            None,
        ),
    };
    // A shared PostgreSQL that does not answer degrades Jarvis (breakers run on local state, the
    // queue waits) but does not make it dead: every instance would otherwise be taken out of
    // its load balancer at once. A local SQLite file that fails is fatal.
    if store_status == "fail" && backend == crate::store::Backend::Postgres {
        store_status = "warn";
    }
    let pass = store_status != "fail";
    let breakers_warn = state.breaker_sync.degraded();
    let status = if !pass {
        "fail"
    } else if breakers_warn || store_status == "warn" {
        "warn"
    } else {
        "pass"
    };
    let output = store_output.clone();
    let mut checks = BTreeMap::new();
    checks.insert(
        "process:uptime",
        vec![Check {
            component_id: Some(state.instance_id.clone()),
            component_type: "system",
            observed_value: Some(state.started_at.elapsed().as_secs()),
            observed_unit: Some("s"),
            status: "pass",
            time: now.clone(),
            output: None,
            backend: None,
        }],
    );
    checks.insert(
        "store:responseTime",
        vec![Check {
            component_id: None,
            component_type: "datastore",
            observed_value: latency,
            observed_unit: latency.map(|_| "ms"),
            status: store_status,
            time: now.clone(),
            output: store_output,
            backend: Some(backend),
        }],
    );
    checks.insert(
        "breakers:storeSync",
        vec![Check {
            component_id: None,
            component_type: "component",
            observed_value: None,
            observed_unit: None,
            status: if breakers_warn { "warn" } else { "pass" },
            time: now,
            output: breakers_warn.then(|| {
                "the store was unreachable at the last breaker update; breakers run on local state"
                    .to_string()
            }),
            backend: None,
        }],
    );
    let data = HealthView {
        status,
        version: env!("CARGO_PKG_VERSION").split('.').next().unwrap_or("0"),
        release_id: env!("CARGO_PKG_VERSION"),
        service_id: "jarvis",
        description: "Jarvis control plane",
        instance_id: state.instance_id.clone(),
        uptime_seconds: state.started_at.elapsed().as_secs(),
        checks,
        // The draft's raw error output, omitted on `pass`.
        output,
    };
    if pass {
        HealthJson(
            StatusCode::OK,
            Envelope {
                success: true,
                data,
            },
        )
        .into_response()
    } else {
        HealthJson(
            StatusCode::SERVICE_UNAVAILABLE,
            HealthFailure {
                success: false,
                error: json!({
                    "code": "unhealthy",
                    "message": "the store does not answer",
                    "correlationId": correlation_id.map(|c| c.0.to_string()),
                }),
                data,
            },
        )
        .into_response()
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `GET /api/v1/health/services`: the latest result of every service and the overall status
/// (any critical service down → `fail`; otherwise anything down, degraded or unchecked → `warn`;
/// else `pass`), served as `application/health+json` with the draft's `status` and
/// `description` inside the envelope. Each service keeps the shape docs/api.md, Service health
/// gives it (with the draft's `componentType`); they are not repeated as a draft `checks` map,
/// which would double an answer that is already several MB at 20,000 services. It reads what
/// the monitor already knows: it never calls a service.
#[utoipa::path(get, path = "/api/v1/health/services", tag = "health",
    responses((status = 200, description = "The latest result of every service and the overall status.", content_type = "application/health+json", body = Envelope<ServicesView>)))]
pub async fn services(
    State(state): State<AppState>,
) -> Result<HealthJson<Envelope<ServicesView>>, ApiError> {
    // Taken before the monitor's view, so that the view is at least as new as it.
    let monitor_read = state.health.fingerprint();
    let mut known: BTreeMap<String, ServiceHealth> = state
        .health
        .services()
        .into_iter()
        .map(|s| (s.spec.name.to_string(), s))
        .collect();
    // Services stored but not (yet) picked up by the monitor are shown as unknown. When the
    // list has not changed since the monitor read it (same fingerprint: a count and a time, no
    // rows decoded), the monitor's view is the list: thousands of services are not read again
    // for every request.
    let current = state.store.services_fingerprint().await.ok();
    let unchanged =
        current.is_some() && current == monitor_read && state.health.fingerprint() == monitor_read;
    let listed = if unchanged {
        None
    } else {
        Some(state.store.list_services().await)
    };
    match listed {
        None => {}
        Some(Ok(specs)) => {
            let stored: std::collections::HashSet<String> =
                specs.iter().map(|s| s.name.to_string()).collect();
            known.retain(|name, _| stored.contains(name));
            for spec in specs {
                known
                    .entry(spec.name.to_string())
                    .or_insert_with(|| ServiceHealth {
                        spec,
                        latest: None,
                        last_checked: None,
                        uptime_hour: None,
                        uptime_day: None,
                        prediction: None,
                    });
            }
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "cannot read the service list; showing what the monitor knows")
        }
    }
    let status = overall(
        known
            .values()
            .map(|s| (s.spec.critical, s.latest.as_ref().map(|l| l.status))),
    );
    let services = known
        .into_iter()
        .map(|(name, s)| {
            let breaker = state
                .breakers
                .get(&name)
                .map_or("CLOSED", |b| b.snapshot().state.as_str());
            let view = ServiceView {
                status: s
                    .latest
                    .as_ref()
                    .map_or("unknown", |l| l.status.as_str())
                    .into(),
                message: s
                    .latest
                    .as_ref()
                    .map_or_else(|| "not checked yet".to_string(), |l| l.message.clone()),
                latency: s.latest.as_ref().map_or(0, |l| l.latency_ms),
                timestamp: s.latest.as_ref().map(|l| iso(l.timestamp)),
                breaker: breaker.into(),
                last_checked: s.last_checked.map(iso),
                uptime: UptimeView {
                    hour: s.uptime_hour,
                    day: s.uptime_day,
                },
                critical: s.spec.critical,
                component_type: Kind::of(&s.spec).as_str().into(),
                prediction: s.prediction.as_ref().map(PredictionView::from),
            };
            (name, view)
        })
        .collect();
    let description = match status {
        Overall::Pass => "every service is up",
        Overall::Warn => {
            "some non-critical service is down, or some service is degraded or not checked yet"
        }
        Overall::Fail => "a critical service is down",
    };
    Ok(HealthJson(
        StatusCode::OK,
        Envelope {
            success: true,
            data: ServicesView {
                status,
                description: description.into(),
                services,
                agents: state
                    .health
                    .domain_forecasts()
                    .forecasts()
                    .iter()
                    .map(|(domain, f)| {
                        (
                            domain.clone(),
                            AgentPredictionView {
                                prediction: PredictionView::from(f),
                            },
                        )
                    })
                    .collect(),
            },
        },
    ))
}

/// Query of `GET /api/v1/health/services/{name}/history`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only results at or after this time (RFC 3339, or a date: its 00:00 UTC).
    #[param(value_type = Option<super::openapi::TimeBound>)]
    pub since: Option<String>,
    /// Only results before this time (RFC 3339, or a date: up to the end of that UTC day).
    #[param(value_type = Option<super::openapi::TimeBound>)]
    pub until: Option<String>,
    /// At most this many results, newest first (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `GET /api/v1/health/services/{name}/history?since=&until=&limit=`: stored check results,
/// newest first. 404 for a service that is neither registered nor has history.
#[utoipa::path(get, path = "/api/v1/health/services/{name}/history", tag = "health",
    params(("name" = Name, Path, description = "The service's name."), HistoryQuery),
    responses(
        (status = 200, description = "Stored check results, newest first.", body = Envelope<CheckHistoryView>),
        (status = 400, description = "`invalid_name` or `invalid_query`.", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: neither registered nor with history.", body = ErrorEnvelope),
    ))]
pub async fn history(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<ApiOk<CheckHistoryView>, ApiError> {
    let name = path_name(&name, "service name")?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit: must be from 1 to 1000",
        ));
    }
    let since = super::tasks::time("since", query.since)?;
    let until = super::tasks::time("until", query.until)?;
    if let (Some(since), Some(until)) = (since, until) {
        if since > until {
            return Err(ApiError::bad_request(
                "invalid_query",
                "since: must not be after until",
            ));
        }
    }
    let range = HistoryRange {
        since,
        until,
        limit,
    };
    let rows = state.store.health_history(name.as_str(), range).await?;
    if rows.is_empty() && state.store.get_service(name.as_str()).await?.is_none() {
        return Err(ApiError::not_found(format!("no service named {name}")));
    }
    Ok(ok(CheckHistoryView {
        service: name.to_string(),
        results: rows
            .into_iter()
            .map(|r| CheckResultView {
                status: r.status.as_str().into(),
                message: r.message,
                latency: r.latency_ms,
                timestamp: iso(r.timestamp),
                breaker_open: r.breaker_open,
                correlation_id: r.correlation_id.map(|c| c.to_string()),
            })
            .collect(),
    }))
}
