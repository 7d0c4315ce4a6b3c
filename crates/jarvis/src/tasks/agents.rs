//! Who runs an attempt: a built-in agent compiled into the binary, or an HTTP agent speaking
//! the agent protocol (docs/api.md, Agent protocol).
//!
//! Built-in agents implement [`BuiltinAgent`] and are registered by domain in
//! [`BuiltinAgents`] before the workers start (`noop` is always there; the health monitor
//! registers `system-health`). A domain with a built-in agent never looks for an HTTP one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::agents::AgentSpec;
use crate::breakers::Outcome;
use crate::correlation::HEADER;
use crate::store::{Store, StoreError};

/// The body of one attempt, as POSTed to an HTTP agent (and handed to a built-in one).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCall {
    /// The task.
    pub task_id: Uuid,
    /// Its domain.
    pub domain: String,
    /// Its action.
    pub action: String,
    /// The parameters to run with.
    pub parameters: Value,
    /// Which attempt this is (1-based).
    pub attempt: u32,
    /// The submitting request's correlation ID (also sent as `X-Correlation-ID`).
    pub correlation_id: String,
    /// The W3C `traceparent` header of this call: the agent-call span of the attempt (not in
    /// the body; none: a new span in the trace derived from the correlation ID).
    #[serde(skip)]
    pub traceparent: Option<String>,
}

/// What an agent answered.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentAnswer {
    /// The task is done.
    Success {
        /// 0–100, when the agent reports one.
        impact_score: Option<f64>,
        /// Whatever the agent returns.
        output: Option<Value>,
        /// What the attempt cost.
        cost_usd: Option<f64>,
        /// The model call an `ai` agent made.
        model_call: Option<crate::model::record::ModelCall>,
    },
    /// The attempt failed.
    Failure {
        /// Why.
        reason: String,
    },
}

impl AgentAnswer {
    /// A success without details.
    pub fn done() -> AgentAnswer {
        AgentAnswer::Success {
            impact_score: None,
            output: None,
            cost_usd: None,
            model_call: None,
        }
    }
}

/// An agent compiled into the binary. It runs inside the task's span (so its log lines carry
/// the task's correlation ID) and under the task's timeout.
#[async_trait]
pub trait BuiltinAgent: Send + Sync + 'static {
    /// Runs one attempt.
    async fn run(&self, call: &AgentCall) -> AgentAnswer;
}

/// The `noop` agent: succeeds at once (benchmarks, smoke tests).
pub struct Noop;

#[async_trait]
impl BuiltinAgent for Noop {
    async fn run(&self, _call: &AgentCall) -> AgentAnswer {
        AgentAnswer::done()
    }
}

/// The domain of the built-in [`Noop`] agent.
pub use crate::model::agent::NOOP_DOMAIN;

/// Built-in agents by domain.
#[derive(Clone, Default)]
pub struct BuiltinAgents {
    agents: HashMap<String, Arc<dyn BuiltinAgent>>,
}

impl BuiltinAgents {
    /// The agents every Jarvis has: `noop`.
    pub fn with_defaults() -> BuiltinAgents {
        let mut a = BuiltinAgents::default();
        a.register(NOOP_DOMAIN, Arc::new(Noop));
        a
    }

    /// Adds (or replaces) the built-in agent of `domain`.
    pub fn register(&mut self, domain: &str, agent: Arc<dyn BuiltinAgent>) {
        self.agents.insert(domain.to_string(), agent);
    }

    /// The built-in agent of `domain`.
    pub fn get(&self, domain: &str) -> Option<Arc<dyn BuiltinAgent>> {
        self.agents.get(domain).cloned()
    }

    /// The domains served by built-in agents.
    pub fn domains(&self) -> Vec<String> {
        let mut d: Vec<String> = self.agents.keys().cloned().collect();
        d.sort();
        d
    }
}

/// How long a looked-up HTTP agent is reused before asking the store again.
const AGENT_CACHE_TTL: Duration = Duration::from_secs(1);
/// How long "no agent for this domain" is remembered.
const MISSING_AGENT_TTL: Duration = Duration::from_millis(200);

/// Calls HTTP agents, looking them up in the store (briefly cached: registering an agent with
/// `PUT /api/v1/agents/{domain}` reaches every instance within a second).
pub struct HttpAgents {
    client: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, Option<AgentSpec>)>>,
}

impl Default for HttpAgents {
    fn default() -> Self {
        HttpAgents::new()
    }
}

/// What an HTTP call came to: the answer, and the outcome for the agent's breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResult {
    /// What the task gets.
    pub answer: AgentAnswer,
    /// What the breaker is told.
    pub outcome: Outcome,
}

/// The answer body of the agent protocol.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAnswer {
    // Required: an answer without it (`{"result": "done"}`) is refused with the expected shape
    // quoted (see `not_the_protocol`).
    success: bool,
    #[serde(default)]
    impact_score: Option<f64>,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    cost_usd: Option<f64>,
    #[serde(default)]
    error: Option<Value>,
}

impl HttpAgents {
    /// A client with connection reuse.
    pub fn new() -> HttpAgents {
        let client = reqwest::Client::builder()
            // Link-local and cloud metadata addresses are not called (crate::resolver).
            .dns_resolver(crate::resolver::refusing())
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        HttpAgents {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The HTTP agent of `domain`, if one is registered.
    pub async fn lookup(
        &self,
        store: &dyn Store,
        domain: &str,
    ) -> Result<Option<AgentSpec>, StoreError> {
        if let Some((at, spec)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(domain)
        {
            let ttl = if spec.is_some() {
                AGENT_CACHE_TTL
            } else {
                MISSING_AGENT_TTL
            };
            if at.elapsed() < ttl {
                return Ok(spec.clone());
            }
        }
        let spec = store.get_agent(domain).await?;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(domain.to_string(), (Instant::now(), spec.clone()));
        Ok(spec)
    }

    /// POSTs one attempt to `agent` and reads its answer, within `timeout`. `on_sent` runs
    /// once the whole request has been handed to the connection (the agent has it even if
    /// this process dies now); it never runs for a request that was not sent. It must not
    /// block.
    pub async fn call(
        &self,
        agent: &AgentSpec,
        call: &AgentCall,
        timeout: Duration,
        on_sent: Option<Box<dyn FnOnce() + Send>>,
    ) -> HttpResult {
        let body = match serde_json::to_vec(call) {
            Ok(b) => b,
            Err(e) => {
                return HttpResult {
                    answer: AgentAnswer::Failure {
                        reason: format!("cannot encode the agent call: {e}"),
                    },
                    outcome: Outcome::Cancelled,
                }
            }
        };
        let len = body.len();
        // The body is one chunk, taken by the connection only once it is open and the
        // headers are written; it is written out in the same step, synchronously, long before
        // the mark that `on_sent` queues can reach the database. (A body of known length is
        // never polled for its end, so the signal goes with the chunk.)
        let stream =
            futures_util::stream::unfold((Some(body), on_sent), |(body, on_sent)| async move {
                let b = body?;
                if let Some(f) = on_sent {
                    f();
                }
                Some((Ok::<_, std::io::Error>(b), (None, None)))
            });
        let sent = self
            .client
            .post(&agent.url)
            .header(HEADER, &call.correlation_id)
            .header(
                crate::trace::context::TRACEPARENT,
                call.traceparent
                    .clone()
                    .unwrap_or_else(|| crate::trace::context::outgoing(None, &call.correlation_id)),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(stream))
            .timeout(timeout)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return transport_error(&e, timeout),
        };
        let status = response.status().as_u16();
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return transport_error(&e, timeout),
        };
        read_answer(status, &body)
    }
}

/// What an agent's HTTP answer (its status and body) means for the task and the breaker: a
/// non-2xx status is a failed attempt the breaker counts; a 2xx body is read as the agent
/// protocol, and one that is not the protocol is a failed attempt (with what was expected) but
/// a healthy agent. Pure, so that any answer can be checked without a server (`crate::props`).
pub fn read_answer(status: u16, body: &[u8]) -> HttpResult {
    if !(200..300).contains(&status) {
        return HttpResult {
            answer: AgentAnswer::Failure {
                reason: format!("agent answered HTTP {status}"),
            },
            outcome: Outcome::Status(status),
        };
    }
    let outcome = Outcome::Status(status);
    let wire: WireAnswer = match serde_json::from_slice(body) {
        Ok(w) => w,
        Err(e) => {
            return HttpResult {
                answer: AgentAnswer::Failure {
                    reason: not_the_protocol(body, &e).replace('\0', "\u{FFFD}"),
                },
                outcome,
            }
        }
    };
    let answer = if wire.success {
        let impact_score = wire.impact_score.filter(|s| {
            let ok = s.is_finite() && (0.0..=100.0).contains(s);
            if !ok {
                tracing::warn!(
                    impact_score = s,
                    "agent reported an impact score outside 0-100; ignored"
                );
            }
            ok
        });
        AgentAnswer::Success {
            impact_score,
            output: wire.output.map(without_nul),
            cost_usd: wire.cost_usd.filter(|c| c.is_finite() && *c >= 0.0),
            model_call: None,
        }
    } else {
        let reason = match wire.error {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::Null) | None => "agent reported failure without a reason".to_string(),
            Some(other) => other.to_string(),
        };
        AgentAnswer::Failure {
            reason: reason.replace('\0', "\u{FFFD}"),
        }
    };
    HttpResult { answer, outcome }
}

/// `v` with every NUL character in its strings and keys replaced by U+FFFD: the output and the
/// reason are stored (`jsonb`, `text`), and PostgreSQL refuses NUL in both, which would fail the
/// settlement of an attempt the agent completed.
fn without_nul(v: Value) -> Value {
    match v {
        Value::String(s) if s.contains('\0') => Value::String(s.replace('\0', "\u{FFFD}")),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nul).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), without_nul(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The answer shape of the agent protocol, quoted in the failure reason of an answer that is
/// not it (docs/api.md, Agent protocol).
pub const EXPECTED_ANSWER: &str = r#"{"success": true, "output": <any JSON>} or {"success": false, "error": "<why>"} (optional: "impactScore" 0-100, "costUsd" >= 0)"#;

/// Most characters of a wrong answer quoted in the failure reason.
const QUOTED_ANSWER_CHARS: usize = 200;

/// The failure reason of a 2xx answer that is not the agent protocol: what was expected, what
/// was wrong with it, and the beginning of what came, so that the agent's author can fix it
/// from the task's `error` alone.
fn not_the_protocol(body: &[u8], e: &serde_json::Error) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut quoted: String = text.chars().take(QUOTED_ANSWER_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    let what = if text.is_empty() {
        "the body was empty".to_string()
    } else {
        format!("{e}; the answer was {quoted}")
    };
    format!("agent answer is not the agent protocol: expected {EXPECTED_ANSWER}, but {what}")
}

fn transport_error(e: &reqwest::Error, timeout: Duration) -> HttpResult {
    if e.is_timeout() {
        HttpResult {
            answer: AgentAnswer::Failure {
                reason: format!("agent timed out after {} ms", timeout.as_millis()),
            },
            outcome: Outcome::Timeout,
        }
    } else if e.is_connect() {
        HttpResult {
            answer: AgentAnswer::Failure {
                reason: format!("cannot connect to agent: {}", error_chain(e)),
            },
            outcome: Outcome::Connection,
        }
    } else {
        HttpResult {
            answer: AgentAnswer::Failure {
                reason: format!("agent call failed: {}", error_chain(e)),
            },
            outcome: Outcome::Connection,
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(body: &str) -> String {
        let e = serde_json::from_slice::<WireAnswer>(body.as_bytes()).unwrap_err();
        not_the_protocol(body.as_bytes(), &e)
    }

    #[test]
    fn an_answer_without_success_says_what_was_expected() {
        let r = reason(r#"{"result": "done"}"#);
        assert!(
            r.starts_with("agent answer is not the agent protocol: expected {\"success\": true"),
            "{r}"
        );
        assert!(r.contains("missing field `success`"), "{r}");
        assert!(r.contains(r#"the answer was {"result": "done"}"#), "{r}");
    }

    #[test]
    fn nul_characters_in_an_answer_are_replaced_not_stored() {
        // PostgreSQL refuses NUL in jsonb and text; the task's result must still settle.
        let r = read_answer(
            200,
            br#"{"success": true, "output": {"a\u0000": ["x\u0000"]}}"#,
        );
        let AgentAnswer::Success { output, .. } = r.answer else {
            panic!("{r:?}")
        };
        assert_eq!(
            output.unwrap(),
            serde_json::json!({"a\u{FFFD}": ["x\u{FFFD}"]})
        );
        let r = read_answer(200, br#"{"success": false, "error": "bad\u0000"}"#);
        assert_eq!(
            r.answer,
            AgentAnswer::Failure {
                reason: "bad\u{FFFD}".into()
            }
        );
    }

    #[test]
    fn long_and_empty_answers_are_quoted_briefly() {
        let long = format!(r#"{{"x": "{}"}}"#, "y".repeat(1000));
        let r = reason(&long);
        assert!(r.ends_with('…'), "{r}");
        assert!(r.len() < EXPECTED_ANSWER.len() + 400, "{r}");
        assert!(reason("").ends_with("but the body was empty"));
        assert!(reason("ok").contains("the answer was ok"));
    }
}
