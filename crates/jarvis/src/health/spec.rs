//! Service definitions: validated on construction, so nothing downstream re-checks them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::Name;

/// Default interval between two checks of a service (5 s: with the default threshold of five
/// failures a dead service's circuit opens about 25–30 s after it stops).
pub const DEFAULT_INTERVAL_MS: u64 = 5_000;
/// Default timeout of one check.
pub const DEFAULT_TIMEOUT_MS: u64 = 3_000;

/// A monitored service as stored and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The service's name (also its breaker's name).
    pub name: Name,
    /// What is checked: `http(s)://…` (a request) or `tcp://host:port` (a connect).
    pub url: String,
    /// HTTP method of the check.
    pub method: String,
    /// Interval between checks, ms.
    pub interval_ms: u64,
    /// Timeout of one check, ms.
    pub timeout_ms: u64,
    /// Whether the overall status fails when this service is down.
    pub critical: bool,
    /// Status codes that mean up; empty means any 2xx.
    pub expected_status: Vec<u16>,
    /// When it was first registered.
    pub created_at: DateTime<Utc>,
    /// When it was last replaced.
    pub updated_at: DateTime<Utc>,
}

/// The body of `PUT /api/v1/services/{name}` (and a config-file entry).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceInput {
    /// Required: what to check.
    pub url: String,
    /// Default 5000.
    #[serde(default)]
    pub interval_ms: Option<u64>,
    /// Default 3000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Default false.
    #[serde(default)]
    pub critical: Option<bool>,
    /// Default: any 2xx.
    #[serde(default)]
    pub expected_status: Option<Vec<u16>>,
    /// Default GET.
    #[serde(default)]
    pub method: Option<String>,
}

/// A field of a service definition that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The field's JSON name.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> SpecError {
    SpecError {
        field,
        message: message.into(),
    }
}

impl ServiceInput {
    /// Validates the input into a spec named `name`, stamped `now`.
    pub fn into_spec(self, name: Name, now: DateTime<Utc>) -> Result<ServiceSpec, SpecError> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| refuse("url", format!("{:?} is not a URL ({e})", self.url)))?;
        match url.scheme() {
            "http" | "https" => {}
            "tcp" => {
                if url.host_str().is_none() || url.port().is_none() {
                    return Err(refuse("url", "a tcp:// URL needs a host and a port"));
                }
            }
            other => {
                return Err(refuse(
                    "url",
                    format!("scheme {other:?} is not supported (http, https or tcp)"),
                ))
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(refuse("url", "the URL has no host"));
        }
        let interval_ms = self.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS);
        if !(100..=86_400_000).contains(&interval_ms) {
            return Err(refuse("intervalMs", "must be from 100 to 86400000"));
        }
        let timeout_ms = self
            .timeout_ms
            .unwrap_or(DEFAULT_TIMEOUT_MS.min(interval_ms));
        if !(1..=120_000).contains(&timeout_ms) {
            return Err(refuse("timeoutMs", "must be from 1 to 120000"));
        }
        let expected_status = self.expected_status.unwrap_or_default();
        if expected_status.len() > 32 {
            return Err(refuse("expectedStatus", "at most 32 status codes"));
        }
        if let Some(bad) = expected_status.iter().find(|s| !(100..=599).contains(*s)) {
            return Err(refuse(
                "expectedStatus",
                format!("{bad} is not an HTTP status code"),
            ));
        }
        let method = self
            .method
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase();
        if !["GET", "HEAD", "POST", "PUT", "OPTIONS"].contains(&method.as_str()) {
            return Err(refuse(
                "method",
                "must be one of GET, HEAD, POST, PUT, OPTIONS",
            ));
        }
        Ok(ServiceSpec {
            name,
            url: url.to_string(),
            method,
            interval_ms,
            timeout_ms,
            critical: self.critical.unwrap_or(false),
            expected_status,
            created_at: now,
            updated_at: now,
        })
    }
}

impl From<&crate::config::ServiceFileEntry> for ServiceInput {
    fn from(e: &crate::config::ServiceFileEntry) -> ServiceInput {
        ServiceInput {
            url: e.url.clone(),
            interval_ms: e.interval_ms,
            timeout_ms: e.timeout_ms,
            critical: e.critical,
            expected_status: e.expected_status.clone(),
            method: e.method.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(url: &str) -> ServiceInput {
        ServiceInput {
            url: url.into(),
            interval_ms: None,
            timeout_ms: None,
            critical: None,
            expected_status: None,
            method: None,
        }
    }

    fn check(i: ServiceInput) -> Result<ServiceSpec, SpecError> {
        i.into_spec(Name::parse("svc").unwrap(), Utc::now())
    }

    #[test]
    fn defaults() {
        let s = check(input("http://127.0.0.1:3000/health")).unwrap();
        assert_eq!(s.interval_ms, 5000);
        assert_eq!(s.timeout_ms, 3000);
        assert_eq!(s.method, "GET");
        assert!(!s.critical);
        assert!(s.expected_status.is_empty());
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(check(input("not a url")).unwrap_err().field, "url");
        assert_eq!(check(input("ftp://x/")).unwrap_err().field, "url");
        assert_eq!(check(input("tcp://x")).unwrap_err().field, "url");
        let mut i = input("http://x/");
        i.interval_ms = Some(5);
        assert_eq!(check(i).unwrap_err().field, "intervalMs");
        let mut i = input("http://x/");
        i.timeout_ms = Some(0);
        assert_eq!(check(i).unwrap_err().field, "timeoutMs");
        let mut i = input("http://x/");
        i.expected_status = Some(vec![200, 999]);
        assert_eq!(check(i).unwrap_err().field, "expectedStatus");
        let mut i = input("http://x/");
        i.method = Some("DELETE".into());
        assert_eq!(check(i).unwrap_err().field, "method");
        assert!(check(input("tcp://127.0.0.1:5432")).is_ok());
    }
}
