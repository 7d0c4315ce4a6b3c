//! An `ai` agent's attempt: the task's prompt sent through the gateway as one non-streamed chat
//! completion, so it gets everything a `/v1` call gets (the deployment's breaker, usage and
//! cost counted under the task's domain, budgets, the `ai call` log line) and its answer,
//! tokens, cost, model and deployment come back for the task's result and execution record.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{resolve, AiError, Caller, Endpoint, Gateway, ReplyBody};
use crate::correlation::CorrelationId;

/// What the model answered to a task's prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The answer's text (`choices[0].message.content`; tool calls as JSON when it made some).
    pub content: Value,
    /// Why the model stopped (`stop`, `length`, …).
    pub finish_reason: Option<String>,
    /// The model asked for.
    pub model: String,
    /// The deployment that answered.
    pub deployment: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// What it cost (`None`: the model has no price).
    pub cost_usd: Option<f64>,
}

/// Why a task's model call did not give a completion.
#[derive(Debug)]
pub enum CompletionError {
    /// Nothing was called: the deployment's breaker is OPEN, or a budget is spent. The attempt
    /// is not the task's fault and should wait, not be spent.
    NotCalled(AiError),
    /// The call failed (or the provider refused it): the attempt is spent.
    Failed {
        /// Why, for the record.
        reason: String,
        /// Whether it was a timeout.
        timed_out: bool,
    },
}

#[derive(Deserialize)]
struct ChatAnswer {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct TokenUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl Gateway {
    /// Sends `prompt` as the one user message of a chat completion with `model`, for `domain`.
    pub async fn complete(
        &self,
        model: &str,
        prompt: &str,
        domain: &str,
        correlation: &CorrelationId,
    ) -> Result<Completion, CompletionError> {
        let body = json!({"model": model, "messages": [{"role": "user", "content": prompt}]});
        let caller = Caller {
            domain: domain.to_string(),
            token: String::new(),
        };
        let reply = match self
            .call(Endpoint::ChatCompletions, body, correlation, &caller)
            .await
        {
            Ok(r) => r,
            // Nothing was called (an OPEN breaker, a spent budget, a model group whose every
            // deployment cools down after a 429): the task waits rather than fails.
            Err(
                e @ (AiError::BreakerOpen { .. } | AiError::Budget(_) | AiError::Cooling { .. }),
            ) => return Err(CompletionError::NotCalled(e)),
            Err(e) => {
                let timed_out = matches!(e, AiError::Timeout { .. });
                return Err(CompletionError::Failed {
                    reason: e.to_string(),
                    timed_out,
                });
            }
        };
        let ReplyBody::Full(bytes) = reply.body else {
            return Err(CompletionError::Failed {
                reason: "the provider streamed an answer that was not asked for".into(),
                timed_out: false,
            });
        };
        if !(200..300).contains(&reply.status) {
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
            return Err(CompletionError::Failed {
                reason: format!(
                    "the {} deployment refused the call (HTTP {}): {message}",
                    reply.deployment, reply.status
                ),
                timed_out: false,
            });
        }
        let answer: ChatAnswer =
            serde_json::from_slice(&bytes).map_err(|e| CompletionError::Failed {
                reason: format!(
                    "the {} deployment's answer is not a chat completion: {e}",
                    reply.deployment
                ),
                timed_out: false,
            })?;
        let Some(choice) = answer.choices.into_iter().next() else {
            return Err(CompletionError::Failed {
                reason: format!("the {} deployment answered no choice", reply.deployment),
                timed_out: false,
            });
        };
        let message = choice.message.unwrap_or(Value::Null);
        let content = match (&message["content"], &message["tool_calls"]) {
            (Value::String(s), _) => Value::String(s.clone()),
            (_, calls @ Value::Array(_)) => json!({"toolCalls": calls}),
            _ => Value::Null,
        };
        let (prompt_tokens, completion_tokens) = answer
            .usage
            .map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
        let cost_usd = resolve(model).ok().and_then(|r| {
            self.spend
                .prices()
                .price(r.provider.prefix(), &r.upstream)
                .map(|p| p.cost(prompt_tokens, completion_tokens))
        });
        Ok(Completion {
            content,
            finish_reason: choice.finish_reason,
            model: model.to_string(),
            deployment: reply.deployment.to_string(),
            prompt_tokens,
            completion_tokens,
            cost_usd,
        })
    }
}
