//! An HTTP agent's definition: as stored and answered (`AgentSpec`) and as given
//! (`AgentInput`, validated into a spec).
//!
//! An agent may declare a health URL (`healthUrl`): Jarvis then checks it as the monitored
//! service named after the agent's domain. A service and a domain of the same name share one
//! circuit breaker, so failed health checks open the breaker the domain's tasks go through,
//! and the tasks wait (spending no attempt) while the agent is down.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::Name;

/// The domain of the built-in `noop` agent (succeeds at once).
pub const NOOP_DOMAIN: &str = "noop";

/// The domains every Jarvis serves with an agent compiled into the binary: no HTTP agent can be
/// registered for them (the built-in would still run their tasks).
pub const BUILTIN_DOMAINS: &[&str] = &[NOOP_DOMAIN];

/// Default per-attempt timeout of an agent call.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// An HTTP agent as stored and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// The domain this agent serves.
    pub domain: Name,
    /// Where each attempt is POSTed.
    pub url: String,
    /// Per-attempt timeout, ms.
    pub timeout_ms: u64,
    /// Tasks of this domain submitted without `useLearned` get learned parameters.
    #[serde(default)]
    pub use_learned: bool,
    /// Checked as the service named after the domain (see the module docs), or `None`.
    #[serde(default)]
    pub health_url: Option<String>,
    /// How often the health URL is checked, ms (`None`: the services' default).
    #[serde(default)]
    pub health_interval_ms: Option<u64>,
    /// When it was first registered.
    pub created_at: DateTime<Utc>,
    /// When it was last replaced.
    pub updated_at: DateTime<Utc>,
}

/// The body of `PUT /api/v1/agents/{domain}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentInput {
    /// Required: the agent's URL.
    pub url: String,
    /// Default 30000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Learned parameters by default for the domain's tasks (default false).
    #[serde(default)]
    pub use_learned: Option<bool>,
    /// A health URL (http or https) checked as the service named after the domain.
    #[serde(default)]
    pub health_url: Option<String>,
    /// How often the health URL is checked (default: the services' default, 5000 ms).
    #[serde(default)]
    pub health_interval_ms: Option<u64>,
}

impl AgentInput {
    /// Validates the input; the error names the field.
    pub fn into_spec(
        self,
        domain: Name,
        now: DateTime<Utc>,
    ) -> Result<AgentSpec, crate::model::service::SpecError> {
        use crate::model::service::SpecError;
        let url = url::Url::parse(&self.url).map_err(|e| SpecError {
            field: "url",
            message: format!("{:?} is not a URL ({e})", self.url),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(SpecError {
                field: "url",
                message: "an agent URL is http:// or https:// with a host".into(),
            });
        }
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1..=3_600_000).contains(&timeout_ms) {
            return Err(SpecError {
                field: "timeoutMs",
                message: "must be from 1 to 3600000".into(),
            });
        }
        if self.health_interval_ms.is_some() && self.health_url.is_none() {
            return Err(SpecError {
                field: "healthIntervalMs",
                message: "needs healthUrl".into(),
            });
        }
        let health_url = match self.health_url {
            None => None,
            Some(raw) => {
                let parsed = url::Url::parse(&raw)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
                let Some(parsed) = parsed else {
                    return Err(SpecError {
                        field: "healthUrl",
                        message: format!("{raw:?} is not an http:// or https:// URL with a host"),
                    });
                };
                Some(parsed.to_string())
            }
        };
        let agent = AgentSpec {
            domain,
            url: url.to_string(),
            timeout_ms,
            use_learned: self.use_learned.unwrap_or(false),
            health_url,
            health_interval_ms: self.health_interval_ms,
            created_at: now,
            updated_at: now,
        };
        // The interval is checked by the service's own rules, with the service's field names
        // turned into the agent's.
        agent
            .health_service(now)
            .transpose()
            .map_err(|e| SpecError {
                field: match e.field {
                    "intervalMs" => "healthIntervalMs",
                    _ => "healthUrl",
                },
                message: e.message,
            })?;
        Ok(agent)
    }
}

impl AgentSpec {
    /// The monitored service that checks this agent's health URL: named after the domain, with
    /// the services' defaults but for the URL and the interval; `None` without a health URL.
    pub fn health_service(
        &self,
        now: DateTime<Utc>,
    ) -> Option<Result<crate::model::service::ServiceSpec, crate::model::service::SpecError>> {
        let url = self.health_url.clone()?;
        let input = crate::model::service::ServiceInput {
            url,
            interval_ms: self.health_interval_ms,
            timeout_ms: None,
            critical: None,
            expected_status: None,
            method: None,
            expect_body: None,
            degraded_latency_ms: None,
        };
        Some(input.into_spec(self.domain.clone(), now))
    }

    /// Whether `service` is the health check this agent declared (and not a service an
    /// operator registered under the same name).
    pub fn owns(&self, service: &crate::model::service::ServiceSpec) -> bool {
        self.health_url.as_deref() == Some(service.url.as_str())
    }
}
