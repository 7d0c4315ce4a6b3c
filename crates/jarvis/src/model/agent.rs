//! An HTTP agent's definition: as stored and answered (`AgentSpec`) and as given
//! (`AgentInput`, validated into a spec).

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
        Ok(AgentSpec {
            domain,
            url: url.to_string(),
            timeout_ms,
            use_learned: self.use_learned.unwrap_or(false),
            created_at: now,
            updated_at: now,
        })
    }
}
