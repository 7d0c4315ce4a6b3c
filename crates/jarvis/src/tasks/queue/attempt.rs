//! One attempt: the agent looked up, the breaker asked, the call made (HTTP attempts marked
//! called once the request went out), and the outcome turned into a record and a settlement;
//! or the attempt given back when no agent was reached (none registered, the store unreadable,
//! the circuit OPEN).

use super::*;
use crate::ai::task::CompletionError;
use crate::model::agent::{render_prompt, AgentKind};
use crate::model::record::ModelCall;

impl TaskQueue {
    pub(super) async fn attempt(self: &Arc<Self>, task: Task, mut stop: oneshot::Receiver<Stop>) {
        let started_at = self.now();
        let clock = self.clock.now();
        tracing::info!(priority = task.priority, "executing task");
        // The attempt's span: a child of the submitting request's span (a task submitted with
        // a `traceparent`), else a root in the trace derived from the correlation ID; the agent
        // call's span is a child of it.
        let parent = task
            .traceparent
            .as_deref()
            .and_then(crate::trace::context::TraceContext::parse);
        let span = parent.map(|p| p.child()).unwrap_or_else(|| {
            crate::trace::context::TraceContext::for_correlation(&task.correlation_id)
        });
        let agent_span = span.child();
        let call = AgentCall {
            task_id: task.id,
            domain: task.domain.to_string(),
            action: task.action.to_string(),
            parameters: task.parameters.clone(),
            attempt: task.attempts,
            correlation_id: task.correlation_id.clone(),
            traceparent: Some(agent_span.to_string()),
        };
        enum Target {
            Builtin(Arc<dyn BuiltinAgent>),
            Http(AgentSpec),
            Ai(AgentSpec),
        }
        let target = match self.builtins.get(task.domain.as_str()) {
            Some(b) => Target::Builtin(b),
            None => match self
                .http
                .lookup(self.store.as_ref(), task.domain.as_str())
                .await
            {
                Ok(Some(spec)) if spec.kind == AgentKind::Ai => Target::Ai(spec),
                Ok(Some(spec)) => Target::Http(spec),
                Ok(None) => {
                    // Submission refuses such a task unless it asked to wait for an agent
                    // (`waitForAgent`), or the agent was removed since: either way it waits,
                    // spending no attempt, and runs once one is registered.
                    tracing::info!(
                        retry_in_ms = NO_AGENT_RECHECK.as_millis() as u64,
                        "no agent is registered for the domain; task waits without spending an attempt"
                    );
                    self.wait_unspent(
                        &task,
                        NO_AGENT_RECHECK,
                        format!(
                            "no agent is registered for domain {d}: waiting for one \
                             (PUT /api/v1/agents/{d})",
                            d = task.domain
                        ),
                    );
                    return;
                }
                Err(e) => {
                    // Nothing was called: the attempt is not spent.
                    self.store_failed();
                    let reason = format!("cannot look up the agent of {}: {e}", task.domain);
                    return self.give_back(&task, reason);
                }
            },
        };
        let admission = match self.breakers.acquire(&task.domain) {
            Ok(a) => a,
            Err(rejected) => {
                self.trace_breaker(&task, "rejected", format!("{rejected}"));
                let delay = rejected
                    .retry_after()
                    .unwrap_or(Duration::from_millis(100))
                    .max(Duration::from_millis(10));
                tracing::info!(
                    retry_in_ms = delay.as_millis() as u64,
                    "circuit breaker of the agent is OPEN; task waits without spending an attempt"
                );
                self.wait_unspent(
                    &task,
                    delay,
                    format!(
                        "{rejected}: waiting for the circuit of {} to close",
                        task.domain
                    ),
                );
                return;
            }
        };
        let timeout = Duration::from_millis(task.timeout_ms.unwrap_or(match &target {
            Target::Http(spec) | Target::Ai(spec) => spec.timeout_ms,
            Target::Builtin(_) => DEFAULT_TIMEOUT_MS,
        }));
        let call_started = self.clock.now();
        let work = async {
            match &target {
                Target::Builtin(agent) => {
                    match tokio::time::timeout(timeout, agent.run(&call)).await {
                        Ok(answer) => Ok((answer, Outcome::Success)),
                        Err(_) => Ok((
                            AgentAnswer::Failure {
                                reason: format!("agent timed out after {} ms", timeout.as_millis()),
                            },
                            Outcome::Timeout,
                        )),
                    }
                }
                Target::Ai(spec) => self.run_ai(spec, &task, timeout, span).await,
                Target::Http(spec) => {
                    tracing::info!(url = %spec.url, timeout_ms = timeout.as_millis() as u64, "calling agent");
                    // The attempt is spent once the agent has the request: then it is marked
                    // called (see `tasks::called`), in the background while the agent works,
                    // unless it is answered first. Dying before the mark is stored gives the
                    // attempt back; after it, the attempt is recorded.
                    let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let (id, attempt) = (task.id, task.attempts);
                    let on_sent = calls.clone().map(|calls| {
                        Box::new(move || calls.mark(id, attempt)) as Box<dyn FnOnce() + Send>
                    });
                    let sent_at = crate::clock::now();
                    let call_clock = Instant::now();
                    let r = self.http.call(spec, &call, timeout, on_sent).await;
                    if let Some(calls) = &calls {
                        calls.answered(id, attempt);
                    }
                    self.trace_agent_call(&task, spec, sent_at, call_clock.elapsed(), &r);
                    if crate::trace::otel::enabled() {
                        crate::trace::otel::record(crate::trace::otel::SpanRecord {
                            name: "agent call",
                            kind: opentelemetry::trace::SpanKind::Client,
                            context: agent_span,
                            parent: Some(span.span_id),
                            start: sent_at,
                            end: crate::clock::now(),
                            attributes: vec![
                                ("url.full", crate::trace::display_url(&spec.url)),
                                ("jarvis.outcome", r.outcome.to_string()),
                                ("jarvis.correlation_id", task.correlation_id.clone()),
                            ],
                            error: match &r.answer {
                                AgentAnswer::Failure { reason } => Some(reason.clone()),
                                AgentAnswer::Success { .. } => None,
                            },
                        });
                    }
                    Ok((r.answer, r.outcome))
                }
            }
        };
        let stopped = async {
            match (&mut stop).await {
                Ok(why) => why,
                Err(_) => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            r = work => Ok(r),
            why = stopped => Err(why),
        };
        let elapsed = self.since(call_started);
        self.breakers
            .metrics()
            .observe(task.domain.as_str(), elapsed);
        match result {
            Ok(Err(unspent)) => {
                // Nothing reached the provider (its breaker is OPEN, or a budget is spent):
                // neither the domain's breaker nor the attempt counts it.
                drop(admission);
                tracing::info!(
                    retry_in_ms = unspent.delay.as_millis() as u64,
                    reason = %unspent.why,
                    "the model was not called; task waits without spending an attempt"
                );
                self.wait_unspent(&task, unspent.delay, unspent.why);
            }
            Ok(Ok((answer, outcome))) => {
                let reason = match &answer {
                    AgentAnswer::Failure { reason } => reason.clone(),
                    AgentAnswer::Success { .. } => String::new(),
                };
                tracing::info!(
                    duration_ms = elapsed.as_millis() as u64,
                    outcome = %outcome,
                    success = matches!(answer, AgentAnswer::Success { .. }),
                    "agent answered"
                );
                let before = self
                    .tracer
                    .get()
                    .and_then(|_| self.breakers.get(task.domain.as_str()))
                    .map(|b| b.state());
                if crate::trace::otel::enabled() {
                    crate::trace::otel::record(crate::trace::otel::SpanRecord {
                        name: "task attempt",
                        kind: opentelemetry::trace::SpanKind::Internal,
                        context: span,
                        parent: parent.map(|p| p.span_id),
                        start: started_at,
                        end: self.now(),
                        attributes: vec![
                            ("jarvis.task_id", task.id.to_string()),
                            ("jarvis.domain", task.domain.to_string()),
                            ("jarvis.action", task.action.to_string()),
                            ("jarvis.attempt", task.attempts.to_string()),
                            ("jarvis.correlation_id", task.correlation_id.clone()),
                        ],
                        error: (!reason.is_empty()).then(|| reason.clone()),
                    });
                }
                admission.record(outcome, reason);
                if let Some(before) = before {
                    let after = self.breakers.get(task.domain.as_str()).map(|b| b.state());
                    if let Some(after) = after.filter(|a| *a != before) {
                        self.trace_breaker(
                            &task,
                            after.as_str(),
                            format!("{before} → {after} after outcome {outcome}"),
                        );
                    }
                }
                let timed_out = outcome == Outcome::Timeout;
                self.finish(&task, started_at, clock, answer, timed_out);
            }
            Err(why) => {
                admission.record(Outcome::Cancelled, "attempt stopped");
                self.interrupted(&task, started_at, clock, why);
            }
        }
    }

    /// An `ai` agent's attempt: the prompt rendered from the task and sent through the gateway
    /// under the task's timeout. The model is the task's `model` parameter when it is a string,
    /// else the agent's. The attempt is marked called as the request goes out.
    async fn run_ai(
        &self,
        spec: &AgentSpec,
        task: &Task,
        timeout: Duration,
        attempt_span: crate::trace::context::TraceContext,
    ) -> Result<(AgentAnswer, Outcome), Unspent> {
        let failed = |reason: String, outcome| Ok((AgentAnswer::Failure { reason }, outcome));
        let Some(gateway) = &self.ai else {
            return failed("this Jarvis has no AI gateway".into(), Outcome::Error);
        };
        let model = task
            .parameters
            .get("model")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .or_else(|| spec.model.clone())
            .unwrap_or_default();
        let prompt = match render_prompt(
            spec.prompt.as_deref().unwrap_or_default(),
            task.domain.as_str(),
            task.action.as_str(),
            &task.parameters,
        ) {
            Ok(p) => p,
            // The task's fault, not the provider's: the domain's breaker is not told.
            Err(reason) => return failed(reason, Outcome::Cancelled),
        };
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(calls) = &calls {
            calls.mark(task.id, task.attempts);
        }
        // A task's ID was checked when it was submitted; one stored otherwise gets a fresh one.
        let correlation = crate::correlation::CorrelationId::parse(&task.correlation_id)
            .unwrap_or_else(|| crate::correlation::CorrelationId::generate("task"));
        // The model call's span, a child of the attempt's; each provider call is a child of it.
        let trace = attempt_span.child();
        let called_at = crate::clock::now();
        let done = tokio::time::timeout(
            timeout,
            crate::trace::context::scope(
                trace,
                gateway.complete(&model, &prompt, task.domain.as_str(), &correlation),
            ),
        )
        .await;
        if let Some(calls) = &calls {
            calls.answered(task.id, task.attempts);
        }
        if crate::trace::otel::enabled() {
            crate::trace::otel::record(crate::trace::otel::SpanRecord {
                name: "model call",
                kind: opentelemetry::trace::SpanKind::Client,
                context: trace,
                parent: Some(attempt_span.span_id),
                start: called_at,
                end: crate::clock::now(),
                attributes: vec![
                    ("gen_ai.request.model", model.clone()),
                    ("jarvis.correlation_id", task.correlation_id.clone()),
                ],
                error: match &done {
                    Ok(Ok(_)) => None,
                    Err(_) => Some("timeout".into()),
                    Ok(Err(_)) => Some("failed".into()),
                },
            });
        }
        match done {
            Err(_) => failed(
                format!("agent timed out after {} ms", timeout.as_millis()),
                Outcome::Timeout,
            ),
            Ok(Ok(c)) => Ok((
                AgentAnswer::Success {
                    impact_score: None,
                    output: Some(serde_json::json!({
                        "content": c.content,
                        "finishReason": c.finish_reason,
                        "model": c.model,
                        "deployment": c.deployment,
                        "usage": {"promptTokens": c.prompt_tokens,
                                  "completionTokens": c.completion_tokens},
                        "costUsd": c.cost_usd,
                    })),
                    cost_usd: c.cost_usd,
                    model_call: Some(ModelCall {
                        model: c.model,
                        deployment: c.deployment,
                        prompt_tokens: c.prompt_tokens,
                        completion_tokens: c.completion_tokens,
                    }),
                },
                Outcome::Success,
            )),
            Ok(Err(CompletionError::Failed { reason, timed_out })) => failed(
                reason,
                if timed_out {
                    Outcome::Timeout
                } else {
                    Outcome::Error
                },
            ),
            Ok(Err(CompletionError::NotCalled(e))) => {
                let delay = match &e {
                    crate::ai::AiError::Budget(b) => (b.resets_at - crate::clock::now())
                        .to_std()
                        .unwrap_or_default()
                        .min(BUDGET_RECHECK),
                    crate::ai::AiError::BreakerOpen { retry_after, .. } => {
                        retry_after.unwrap_or(Duration::from_secs(1))
                    }
                    crate::ai::AiError::Cooling { retry_after, .. } => *retry_after,
                    _ => Duration::from_secs(1),
                }
                .max(Duration::from_millis(100));
                Err(Unspent {
                    delay,
                    why: format!("{e}: waiting"),
                })
            }
        }
    }

    /// Traces a breaker decision about the task's domain (`rejected`, or the state an outcome
    /// moved the circuit to).
    fn trace_breaker(&self, task: &Task, status: &str, summary: String) {
        let Some(tracer) = self.tracer.get() else {
            return;
        };
        let mut e = tracer.event(
            &task.correlation_id,
            crate::trace::TraceKind::Breaker,
            format!("breaker {}: {summary}", task.domain),
        );
        e.task_id = Some(task.id);
        e.attempt = Some(task.attempts);
        e.status = Some(status.to_string());
        e.detail = serde_json::json!({"breaker": task.domain.as_str()});
        tracer.record(e);
    }

    /// Traces one call to an HTTP agent: where (the URL without credentials or query), how it
    /// ended, how long it took.
    fn trace_agent_call(
        &self,
        task: &Task,
        spec: &AgentSpec,
        at: chrono::DateTime<chrono::Utc>,
        took: Duration,
        result: &crate::tasks::agents::HttpResult,
    ) {
        let Some(tracer) = self.tracer.get() else {
            return;
        };
        let url = crate::trace::display_url(&spec.url);
        let (status, reason) = match &result.answer {
            AgentAnswer::Success { .. } => (result.outcome.to_string(), None),
            AgentAnswer::Failure { reason } => (
                result.outcome.to_string(),
                Some(reason.chars().take(200).collect::<String>()),
            ),
        };
        let mut e = tracer.event(
            &task.correlation_id,
            crate::trace::TraceKind::AgentCall,
            match &reason {
                None => format!("POST {url}: {status}"),
                Some(r) => format!("POST {url}: {status}: {r}"),
            },
        );
        e.at = at;
        e.task_id = Some(task.id);
        e.attempt = Some(task.attempts);
        e.duration_ms = Some(took.as_millis() as u64);
        e.status = Some(status);
        e.detail = serde_json::json!({
            "url": url,
            "success": matches!(result.answer, AgentAnswer::Success { .. }),
            "failureReason": reason,
        });
        tracer.record(e);
    }

    /// Puts a claimed task back to `waiting` for `delay` without spending the attempt (no agent
    /// yet, an open circuit): nothing was called, so nothing is recorded.
    fn wait_unspent(&self, task: &Task, delay: Duration, why: String) {
        self.metrics
            .waiting(task.domain.as_str(), task.action.as_str());
        let delay = chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::seconds(1));
        self.settle(
            task,
            Settlement {
                id: task.id,
                attempt: task.attempts,
                status: TaskStatus::Waiting,
                attempts_delta: -1,
                run_at: Some(self.now() + delay),
                result: None,
                error: Some(why),
                finished_at: None,
                duration_ms: None,
            },
        );
    }

    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        backoff(
            self.settings.retry_base_ms,
            self.settings.retry_max_ms,
            attempt,
            &mut rand::rng(),
        )
    }

    pub(super) fn record_of(
        &self,
        task: &Task,
        started_at: chrono::DateTime<chrono::Utc>,
        clock: Instant,
    ) -> ExecutionRecord {
        attempt_record(
            task,
            Some(self.instance.clone()),
            started_at,
            self.now(),
            self.since(clock).as_millis() as u64,
        )
    }

    /// Records the attempt and settles the task after an agent answered (or could not be
    /// reached).
    pub(super) fn finish(
        self: &Arc<Self>,
        task: &Task,
        started_at: chrono::DateTime<chrono::Utc>,
        clock: Instant,
        answer: AgentAnswer,
        timed_out: bool,
    ) {
        let mut record = self.record_of(task, started_at, clock);
        record.timed_out = timed_out;
        let duration_ms = record.duration_ms;
        let domain = task.domain.as_str();
        let action = task.action.as_str();
        let settlement = match answer {
            AgentAnswer::Success {
                impact_score,
                output,
                cost_usd,
                model_call,
            } => {
                record.success = true;
                record.impact_score = impact_score;
                record.cost_usd = cost_usd;
                record.model_call = model_call;
                tracing::info!(
                    duration_ms,
                    status = "succeeded",
                    attempts = task.attempts,
                    "task completed"
                );
                Settlement {
                    id: task.id,
                    attempt: task.attempts,
                    status: TaskStatus::Succeeded,
                    attempts_delta: 0,
                    run_at: None,
                    result: Some(output.unwrap_or(serde_json::Value::Null)),
                    error: None,
                    finished_at: Some(record.finished_at),
                    duration_ms: Some(duration_ms),
                }
            }
            AgentAnswer::Failure { reason } => {
                record = record.with_failure(&reason);
                if task.attempts < task.max_attempts {
                    let delay = self.backoff(task.attempts);
                    tracing::warn!(
                        duration_ms,
                        error = %reason,
                        attempts = task.attempts,
                        max_attempts = task.max_attempts,
                        retry_in_ms = delay.as_millis() as u64,
                        "task attempt failed; retrying"
                    );
                    Settlement {
                        id: task.id,
                        attempt: task.attempts,
                        status: TaskStatus::Queued,
                        attempts_delta: 0,
                        run_at: Some(
                            record.finished_at
                                + chrono::TimeDelta::from_std(delay)
                                    .unwrap_or(chrono::TimeDelta::seconds(1)),
                        ),
                        result: None,
                        error: Some(reason),
                        finished_at: None,
                        duration_ms: Some(duration_ms),
                    }
                } else {
                    tracing::warn!(
                        duration_ms,
                        error = %reason,
                        status = "failed",
                        attempts = task.attempts,
                        "task completed"
                    );
                    Settlement {
                        id: task.id,
                        attempt: task.attempts,
                        status: TaskStatus::Failed,
                        attempts_delta: 0,
                        run_at: None,
                        result: None,
                        error: Some(reason),
                        finished_at: Some(record.finished_at),
                        duration_ms: Some(duration_ms),
                    }
                }
            }
        };
        self.metrics
            .attempt(domain, action, record.success, self.since(clock));
        self.metrics.cost(record.cost_usd);
        self.recorder.record(record);
        self.settle(task, settlement);
    }

    /// Records an attempt stopped by cancellation, a lost lease or shutdown.
    pub(super) fn interrupted(
        self: &Arc<Self>,
        task: &Task,
        started_at: chrono::DateTime<chrono::Utc>,
        clock: Instant,
        why: Stop,
    ) {
        let reason = match why {
            Stop::Cancelled => format!("attempt {} stopped: the task was cancelled", task.attempts),
            Stop::LeaseLost => {
                tracing::warn!("attempt stopped: another instance reclaimed the task");
                self.held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&task.id);
                return;
            }
            Stop::Shutdown => format!(
                "attempt {} interrupted: instance {} shut down",
                task.attempts, self.instance
            ),
        };
        let record = self
            .record_of(task, started_at, clock)
            .with_failure(&reason);
        tracing::warn!(duration_ms = record.duration_ms, error = %reason, "task attempt stopped");
        self.recorder.record(record);
        match why {
            Stop::Cancelled | Stop::LeaseLost => {
                self.held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&task.id);
            }
            Stop::Shutdown => {
                let last = task.attempts >= task.max_attempts;
                let now = self.now();
                self.settle(
                    task,
                    Settlement {
                        id: task.id,
                        attempt: task.attempts,
                        status: if last {
                            TaskStatus::Failed
                        } else {
                            TaskStatus::Queued
                        },
                        attempts_delta: 0,
                        run_at: Some(now),
                        result: None,
                        error: Some(reason),
                        finished_at: last.then_some(now),
                        duration_ms: None,
                    },
                );
            }
        }
    }

    /// Gives an attempt whose agent was not called back (not spent, nothing recorded): the task
    /// runs again after [`GIVE_BACK_DELAY`].
    pub(super) fn give_back(self: &Arc<Self>, task: &Task, reason: String) {
        tracing::warn!(error = %reason, "attempt given back; the agent was not called");
        self.settle(
            task,
            Settlement {
                id: task.id,
                attempt: task.attempts,
                status: TaskStatus::Queued,
                attempts_delta: -1,
                run_at: Some(
                    self.now()
                        + chrono::TimeDelta::from_std(GIVE_BACK_DELAY)
                            .unwrap_or(chrono::TimeDelta::seconds(1)),
                ),
                result: None,
                error: Some(reason),
                finished_at: None,
                duration_ms: None,
            },
        );
    }
}

/// The delay before attempt `attempt + 1` after attempt `attempt` failed: `base_ms` doubled per
/// attempt, capped at `max_ms`, with equal jitter — half of it fixed (the backoff grows), half
/// random (retries of tasks that failed together spread out).
pub(super) fn backoff(base_ms: u64, max_ms: u64, attempt: u32, rng: &mut impl Rng) -> Duration {
    let base = base_ms as f64 * 2f64.powi(attempt.saturating_sub(1).min(40) as i32);
    let capped = base.min(max_ms as f64).max(1.0);
    let half = capped / 2.0;
    let jitter = rng.random_range(0.0..=half);
    Duration::from_millis((half + jitter).round() as u64)
}

/// How long a task held by a spent AI budget waits before it is looked at again (at most; less
/// when the budget's period ends sooner).
const BUDGET_RECHECK: Duration = Duration::from_secs(300);

/// An attempt that called nothing and waits: for how long, and why.
struct Unspent {
    delay: Duration,
    why: String,
}
