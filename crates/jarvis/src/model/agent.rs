//! An agent's definition: as stored and answered (`AgentSpec`) and as given (`AgentInput`,
//! validated into a spec). An agent is an HTTP endpoint that speaks the agent protocol (kind
//! `http`, the default), or a prompt run through the AI gateway (kind `ai`: a model and a
//! prompt template rendered with each task's domain, action and parameters).
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

/// Default per-attempt timeout of an `ai` agent (model calls are slower than most agents).
pub const DEFAULT_AI_TIMEOUT_MS: u64 = 120_000;

/// Longest prompt template, in bytes.
pub const MAX_PROMPT_BYTES: usize = 100_000;

/// What runs a domain's tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// An HTTP endpoint speaking the agent protocol.
    #[default]
    Http,
    /// A prompt run through the AI gateway.
    Ai,
}

impl AgentKind {
    /// As stored and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Http => "http",
            AgentKind::Ai => "ai",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<AgentKind> {
        match s {
            "http" => Some(AgentKind::Http),
            "ai" => Some(AgentKind::Ai),
            _ => None,
        }
    }
}

/// An HTTP agent as stored and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// The domain this agent serves.
    pub domain: Name,
    /// `http` or `ai`.
    #[serde(default)]
    pub kind: AgentKind,
    /// Where each attempt is POSTed (kind `http`; empty for `ai`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// The model an `ai` agent calls (a task's `model` parameter overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// An `ai` agent's prompt template (see [`render_prompt`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
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

/// The body of `PUT /api/v1/agents/{domain}`, and an `[agents.<domain>]` table of the config
/// file (the same keys).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(examples(json!({"url": "http://127.0.0.1:9/run", "timeoutMs": 30000})))]
pub struct AgentInput {
    /// `http` (default) or `ai`.
    #[serde(default)]
    pub kind: Option<AgentKind>,
    /// The agent's URL: required for `http`, refused for `ai`.
    #[serde(default)]
    pub url: Option<String>,
    /// The model of an `ai` agent (required for `ai`).
    #[serde(default)]
    pub model: Option<String>,
    /// The prompt template of an `ai` agent (required for `ai`).
    #[serde(default)]
    pub prompt: Option<String>,
    /// Default 30000 (`ai`: 120000).
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
        let kind = self.kind.unwrap_or_default();
        let (url, model, prompt) = match kind {
            AgentKind::Http => {
                for (field, given) in [("model", &self.model), ("prompt", &self.prompt)] {
                    if given.is_some() {
                        return Err(SpecError {
                            field,
                            message: "is for an agent of kind ai (give \"kind\": \"ai\")".into(),
                        });
                    }
                }
                let Some(raw) = self.url.as_deref() else {
                    return Err(SpecError {
                        field: "url",
                        message: "is required (an http agent's endpoint)".into(),
                    });
                };
                let url = url::Url::parse(raw).map_err(|e| SpecError {
                    field: "url",
                    message: format!("{raw:?} is not a URL ({e})"),
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(SpecError {
                        field: "url",
                        message: "an agent URL is http:// or https:// with a host".into(),
                    });
                }
                super::outbound::check(&url).map_err(|message| SpecError {
                    field: "url",
                    message,
                })?;
                (url.to_string(), None, None)
            }
            AgentKind::Ai => {
                if self.url.is_some() {
                    return Err(SpecError {
                        field: "url",
                        message: "an ai agent has no URL: its model is called through the AI \
                                  gateway"
                            .into(),
                    });
                }
                if self.health_url.is_some() {
                    return Err(SpecError {
                        field: "healthUrl",
                        message: "an ai agent has no health URL: its deployments' breakers \
                                  watch the providers"
                            .into(),
                    });
                }
                let model = self.model.unwrap_or_default();
                if model.trim().is_empty() || model.len() > 200 {
                    return Err(SpecError {
                        field: "model",
                        message: "is required for an ai agent: a model name as /v1 takes it \
                                  (openai/gpt-4o-mini), at most 200 characters"
                            .into(),
                    });
                }
                let prompt = self.prompt.unwrap_or_default();
                if prompt.trim().is_empty() || prompt.len() > MAX_PROMPT_BYTES {
                    return Err(SpecError {
                        field: "prompt",
                        message: format!(
                            "is required for an ai agent: a template of at most \
                             {MAX_PROMPT_BYTES} bytes"
                        ),
                    });
                }
                check_template(&prompt).map_err(|message| SpecError {
                    field: "prompt",
                    message,
                })?;
                (String::new(), Some(model), Some(prompt))
            }
        };
        let default_timeout = match kind {
            AgentKind::Http => DEFAULT_TIMEOUT_MS,
            AgentKind::Ai => DEFAULT_AI_TIMEOUT_MS,
        };
        let timeout_ms = self.timeout_ms.unwrap_or(default_timeout);
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
                super::outbound::check(&parsed).map_err(|message| SpecError {
                    field: "healthUrl",
                    message,
                })?;
                Some(parsed.to_string())
            }
        };
        let agent = AgentSpec {
            domain,
            kind,
            url,
            model,
            prompt,
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

/// The placeholders of a template, in order: the text between `{{` and `}}`, trimmed.
fn placeholders(template: &str) -> impl Iterator<Item = Result<(usize, usize, &str), String>> {
    let mut rest = 0;
    std::iter::from_fn(move || {
        let start = template[rest..].find("{{")? + rest;
        let Some(len) = template[start + 2..].find("}}") else {
            rest = template.len();
            return Some(Err(format!(
                "a placeholder opened at byte {start} is not closed with }}}}"
            )));
        };
        let end = start + 2 + len + 2;
        rest = end;
        Some(Ok((start, end, template[start + 2..end - 2].trim())))
    })
}

/// Checks that every placeholder of a prompt template is one [`render_prompt`] fills.
pub fn check_template(template: &str) -> Result<(), String> {
    for p in placeholders(template) {
        let (_, _, name) = p?;
        let known = matches!(name, "domain" | "action" | "parameters")
            || name
                .strip_prefix("parameters.")
                .is_some_and(|k| !k.is_empty() && !k.contains(['{', '}']));
        if !known {
            return Err(format!(
                "unknown placeholder {{{{{name}}}}}: use {{{{domain}}}}, {{{{action}}}}, \
                 {{{{parameters}}}} (all, as JSON) or {{{{parameters.NAME}}}} (one)"
            ));
        }
    }
    Ok(())
}

/// Renders an `ai` agent's prompt template for one task: `{{domain}}`, `{{action}}`,
/// `{{parameters}}` (the parameters as JSON) and `{{parameters.NAME}}` (one parameter: a
/// string as it is, anything else as JSON). A parameter the template names and the task lacks
/// is an error naming it.
pub fn render_prompt(
    template: &str,
    domain: &str,
    action: &str,
    parameters: &serde_json::Value,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut at = 0;
    for p in placeholders(template) {
        let (start, end, name) = p?;
        out.push_str(&template[at..start]);
        match name {
            "domain" => out.push_str(domain),
            "action" => out.push_str(action),
            "parameters" => out.push_str(&parameters.to_string()),
            other => {
                let key = other.strip_prefix("parameters.").unwrap_or(other);
                match parameters.get(key) {
                    Some(serde_json::Value::String(s)) => out.push_str(s),
                    Some(v) => out.push_str(&v.to_string()),
                    None => {
                        return Err(format!(
                            "the prompt template uses parameter {key:?}, which the task does \
                             not have"
                        ))
                    }
                }
            }
        }
        at = end;
    }
    out.push_str(&template[at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_prompt_is_rendered_with_the_tasks_fields() {
        let p = json!({"topic": "jazz", "bars": 8, "style": {"swing": true}});
        let check = |t: &str, want: &str| {
            assert_eq!(
                render_prompt(t, "music", "write", &p).as_deref(),
                Ok(want),
                "{t}"
            );
        };
        check(
            "Write {{ parameters.bars }} bars of {{parameters.topic}}.",
            "Write 8 bars of jazz.",
        );
        check(
            "{{domain}}/{{action}}: {{parameters.style}}",
            "music/write: {\"swing\":true}",
        );
        check("{{parameters}}", &p.to_string());
        check("no placeholders", "no placeholders");
        check("{ single braces } stay", "{ single braces } stay");
        assert_eq!(
            render_prompt("{{parameters.mood}}", "d", "a", &p),
            Err("the prompt template uses parameter \"mood\", which the task does not have".into())
        );
    }

    #[test]
    fn a_template_with_an_unknown_or_open_placeholder_is_refused() {
        assert!(check_template("Hi {{parameters.x}} in {{domain}}").is_ok());
        let e = check_template("Hi {{user}}").unwrap_err();
        assert!(e.contains("unknown placeholder {{user}}"), "{e}");
        let e = check_template("Hi {{parameters.x").unwrap_err();
        assert!(e.contains("not closed"), "{e}");
        assert!(check_template("{{parameters.}}").is_err());
    }

    fn input(v: serde_json::Value) -> Result<AgentSpec, String> {
        let input: AgentInput = serde_json::from_value(v).map_err(|e| e.to_string())?;
        input
            .into_spec(Name::parse("research").unwrap(), Utc::now())
            .map_err(|e| format!("{}: {}", e.field, e.message))
    }

    #[test]
    fn an_ai_agent_needs_a_model_and_a_prompt_and_nothing_of_http() {
        let a = input(json!({"kind": "ai", "model": "openai/gpt-4o-mini",
                             "prompt": "Summarise {{parameters.text}}"}))
        .unwrap();
        assert_eq!(a.kind, AgentKind::Ai);
        assert_eq!(a.url, "");
        assert_eq!(a.timeout_ms, DEFAULT_AI_TIMEOUT_MS);
        let wire = serde_json::to_value(&a).unwrap();
        assert!(wire.get("url").is_none(), "{wire}");
        assert_eq!(wire["kind"], "ai");
        let refused = |v, says: &str| {
            let e = input(v).unwrap_err();
            assert!(e.starts_with(says), "{e}");
        };
        refused(json!({"kind": "ai", "prompt": "x"}), "model: is required");
        refused(json!({"kind": "ai", "model": "m"}), "prompt: is required");
        refused(
            json!({"kind": "ai", "model": "m", "prompt": "{{x}}"}),
            "prompt: unknown placeholder",
        );
        refused(
            json!({"kind": "ai", "model": "m", "prompt": "p", "url": "http://a"}),
            "url: an ai agent has no URL",
        );
        refused(
            json!({"kind": "ai", "model": "m", "prompt": "p", "healthUrl": "http://a"}),
            "healthUrl:",
        );
        refused(
            json!({"url": "http://a", "model": "m"}),
            "model: is for an agent of kind ai",
        );
        refused(json!({}), "url: is required");
        refused(
            json!({"kind": "grpc", "url": "http://a"}),
            "unknown variant `grpc`",
        );
        // An http agent as before.
        let h = input(json!({"url": "http://127.0.0.1:9/run"})).unwrap();
        assert_eq!(
            (h.kind, h.timeout_ms),
            (AgentKind::Http, DEFAULT_TIMEOUT_MS)
        );
    }
}
