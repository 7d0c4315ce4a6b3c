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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// A condition on the JSON body: when it does not hold the service is down.
    #[serde(default)]
    pub expect_body: Option<BodyCondition>,
    /// An answer slower than this (ms) makes the service `degraded` rather than `up`.
    #[serde(default)]
    pub degraded_latency_ms: Option<u64>,
    /// When it was first registered.
    pub created_at: DateTime<Utc>,
    /// When it was last replaced.
    pub updated_at: DateTime<Utc>,
}

/// The body of `PUT /api/v1/services/{name}`, and a `[services.<name>]` entry of the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(examples(json!({"url": "http://127.0.0.1:9/health", "intervalMs": 5000, "timeoutMs": 3000, "critical": true, "expectedStatus": [200]})))]
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
    /// Default: the body is not looked at.
    #[serde(default)]
    pub expect_body: Option<BodyCondition>,
    /// Default: never degraded for slowness.
    #[serde(default)]
    pub degraded_latency_ms: Option<u64>,
}

/// A condition on the JSON body of a check's answer: the value at `pointer` (a JSON Pointer,
/// RFC 6901, such as `/status`) must equal `equals`, or, without `equals`, must exist and be
/// neither `null` nor `false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BodyCondition {
    /// Where to look in the body.
    pub pointer: String,
    /// The value expected there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
}

impl BodyCondition {
    /// Whether `body` satisfies the condition; the error says what was found instead.
    pub fn check(&self, body: &serde_json::Value) -> Result<(), String> {
        let found = body.pointer(&self.pointer);
        match (&self.equals, found) {
            (_, None) => Err(format!("body has no {}", self.pointer)),
            (Some(want), Some(got)) if want == got => Ok(()),
            (Some(want), Some(got)) => Err(format!(
                "body {} is {}, expected {}",
                self.pointer,
                shorten(got),
                shorten(want)
            )),
            (None, Some(serde_json::Value::Null | serde_json::Value::Bool(false))) => {
                Err(format!("body {} is null or false", self.pointer))
            }
            (None, Some(_)) => Ok(()),
        }
    }
}

fn shorten(v: &serde_json::Value) -> String {
    let mut s = v.to_string();
    if s.len() > 80 {
        let mut cut = 80;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
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
        super::outbound::check(&url).map_err(|m| refuse("url", m))?;
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
        if let Some(c) = &self.expect_body {
            if !(c.pointer.is_empty() || c.pointer.starts_with('/')) || c.pointer.len() > 256 {
                return Err(refuse(
                    "expectBody.pointer",
                    "must be a JSON Pointer such as /status (at most 256 characters)",
                ));
            }
            if !url.scheme().starts_with("http") {
                return Err(refuse("expectBody", "only HTTP checks have a body"));
            }
        }
        if let Some(ms) = self.degraded_latency_ms {
            // A check slower than the timeout is cut off and `down`: at or above it, `degraded`
            // could never be reached. The default timeout does not follow silently; the
            // message says which timeout applies and what to change.
            if ms == 0 || ms >= timeout_ms {
                let which = if self.timeout_ms.is_some() {
                    format!("timeoutMs ({timeout_ms})")
                } else {
                    format!(
                        "timeoutMs ({timeout_ms}, the default: the smaller of \
                         {DEFAULT_TIMEOUT_MS} and intervalMs)"
                    )
                };
                return Err(refuse(
                    "degradedLatencyMs",
                    format!(
                        "must be from 1 to below {which}: a check slower than the timeout is \
                         down, not degraded; lower degradedLatencyMs or raise timeoutMs"
                    ),
                ));
            }
        }
        Ok(ServiceSpec {
            name,
            url: url.to_string(),
            method,
            interval_ms,
            timeout_ms,
            critical: self.critical.unwrap_or(false),
            expected_status,
            expect_body: self.expect_body,
            degraded_latency_ms: self.degraded_latency_ms,
            created_at: now,
            updated_at: now,
        })
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
            expect_body: None,
            degraded_latency_ms: None,
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
        let mut i = input("http://x/");
        i.degraded_latency_ms = Some(5000);
        assert_eq!(check(i).unwrap_err().field, "degradedLatencyMs");
        let mut i = input("http://x/");
        i.expect_body = Some(BodyCondition {
            pointer: "status".into(),
            equals: None,
        });
        assert_eq!(check(i).unwrap_err().field, "expectBody.pointer");
    }

    #[test]
    fn degraded_must_be_reachable_below_the_timeout() {
        let with = |interval: Option<u64>, timeout: Option<u64>, degraded: u64| {
            let mut i = input("http://x/");
            i.interval_ms = interval;
            i.timeout_ms = timeout;
            i.degraded_latency_ms = Some(degraded);
            check(i)
        };
        // The default timeout (min(3000, intervalMs)): 1000 with a 1 s interval.
        let err = with(Some(1000), None, 1000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "degradedLatencyMs: must be from 1 to below timeoutMs (1000, the default: the \
             smaller of 3000 and intervalMs): a check slower than the timeout is down, not \
             degraded; lower degradedLatencyMs or raise timeoutMs"
        );
        let err = with(None, Some(2000), 2000).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("degradedLatencyMs: must be from 1 to below timeoutMs (2000):"),
            "{err}"
        );
        assert!(with(None, None, 0).is_err());
        assert_eq!(
            with(Some(1000), None, 999).unwrap().degraded_latency_ms,
            Some(999)
        );
        assert_eq!(with(None, Some(2000), 1000).unwrap().timeout_ms, 2000);
    }

    #[test]
    fn body_conditions() {
        let body = serde_json::json!({"status": "ok", "db": {"up": true}, "n": null});
        let cases = [
            ("/status", Some(serde_json::json!("ok")), true),
            ("/status", Some(serde_json::json!("down")), false),
            ("/db/up", None, true),
            ("/n", None, false),
            ("/missing", None, false),
        ];
        for (pointer, equals, ok) in cases {
            let c = BodyCondition {
                pointer: pointer.into(),
                equals,
            };
            assert_eq!(c.check(&body).is_ok(), ok, "{pointer}");
        }
    }
}
