//! Traces: everything Jarvis knows about one correlation ID, in time order.
//!
//! Most of a trace is already kept elsewhere: the tasks submitted under the ID (`tasks`), each
//! attempt's execution record (`task_history`, with the model call of an `ai` agent), the
//! health checks (`health_checks`). What no other table keeps — the API request itself, calls
//! through the AI gateway (`/v1/*`), HTTP agent calls, breaker decisions — is written as
//! [`TraceEvent`]s by a [`Tracer`]: one bounded channel send on the path that produces them,
//! batched inserts into `trace_events` by a background writer, deleted after the retention.
//! With PostgreSQL every instance writes there, so a trace is whole across instances.
//! This instance's own log lines for the ID come from the telemetry layer's ring of recent
//! lines ([`crate::telemetry::recent_lines`]).
//!
//! [`assemble`] merges the sources into one timeline.

pub mod context;
pub mod otel;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch};

use crate::model::task::TaskStatus;
pub use crate::model::trace::{TraceEvent, TraceKind};
use crate::store::traces::TraceSources;
use crate::store::Store;

/// Events waiting for the writer at most; more are dropped (and counted), never waited for.
pub const QUEUE_CAPACITY: usize = 8_192;
/// Events per insert batch at most.
const BATCH: usize = 512;
/// How long the writer gathers a batch after its first event.
const LINGER: Duration = Duration::from_millis(100);
/// How often old events are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Rows read from each source of one trace at most.
pub const SOURCE_LIMIT: u32 = 1_000;

/// Records trace events off the hot path. Cheap to clone; a disabled tracer records nothing.
#[derive(Clone)]
pub struct Tracer {
    tx: Option<mpsc::Sender<TraceEvent>>,
    instance: Arc<str>,
    dropped: Arc<AtomicU64>,
}

/// The tracer's background writer: run it with [`TraceWriter::run`].
pub struct TraceWriter {
    rx: mpsc::Receiver<TraceEvent>,
    store: Arc<dyn Store>,
    retention: Duration,
    dropped: Arc<AtomicU64>,
}

impl Tracer {
    /// A tracer that records nothing (tools and tests that build parts alone).
    pub fn disabled(instance: &str) -> Tracer {
        Tracer {
            tx: None,
            instance: instance.into(),
            dropped: Arc::default(),
        }
    }

    /// A tracer of `instance` writing to `store`, and its writer (events older than
    /// `retention` are deleted; zero keeps them).
    pub fn start(
        store: Arc<dyn Store>,
        instance: &str,
        retention: Duration,
    ) -> (Tracer, TraceWriter) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        (
            Tracer {
                tx: Some(tx),
                instance: instance.into(),
                dropped: dropped.clone(),
            },
            TraceWriter {
                rx,
                store,
                retention,
                dropped,
            },
        )
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// A new event of this instance, now.
    pub fn event(&self, correlation_id: &str, kind: TraceKind, summary: String) -> TraceEvent {
        TraceEvent {
            correlation_id: correlation_id.to_string(),
            at: crate::clock::now(),
            kind,
            instance: self.instance.to_string(),
            task_id: None,
            attempt: None,
            summary,
            duration_ms: None,
            status: None,
            detail: Value::Object(Map::new()),
        }
    }

    /// Queues an event for the writer: one channel send that never waits (a full queue drops
    /// the event and counts it).
    pub fn record(&self, event: TraceEvent) {
        if let Some(tx) = &self.tx {
            if tx.try_send(event).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped because the queue was full (or the writer gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl TraceWriter {
    /// Writes queued events in batches until `stop` turns true, then writes what is left.
    /// Deletes events older than the retention every ten minutes.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported = 0;
        loop {
            let first = tokio::select! {
                e = self.rx.recv() => e,
                _ = prune.tick() => { self.prune().await; continue; }
                _ = stop.changed() => None,
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < BATCH {
                match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                    Ok(Some(e)) => batch.push(e),
                    _ => break,
                }
            }
            self.write(&batch).await;
            let dropped = self.dropped.load(Ordering::Relaxed);
            if dropped > reported {
                tracing::warn!(
                    dropped = dropped - reported,
                    "trace events dropped: the trace writer's queue was full"
                );
                reported = dropped;
            }
        }
        self.rx.close();
        let mut rest = Vec::new();
        while let Ok(e) = self.rx.try_recv() {
            rest.push(e);
        }
        if !rest.is_empty() {
            self.write(&rest).await;
        }
    }

    async fn write(&self, batch: &[TraceEvent]) {
        // Trace events are diagnostics: a batch the store refuses is dropped, not retried
        // (memory stays bounded during an outage).
        if let Err(e) = self.store.insert_trace_events(batch).await {
            tracing::warn!(error = %e, events = batch.len(), "cannot store trace events; dropped");
        }
    }

    async fn prune(&self) {
        if self.retention.is_zero() {
            return;
        }
        let Ok(age) = chrono::TimeDelta::from_std(self.retention) else {
            return;
        };
        match self
            .store
            .prune_trace_events(crate::clock::now() - age)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "old trace events deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot delete old trace events"),
        }
    }
}

/// A URL as a trace shows it: scheme, host, port and path; never credentials or a query
/// (either may hold a secret).
pub fn display_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => format!(
            "{}://{}{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path()
        ),
        Err(_) => "(unparsable URL)".to_string(),
    }
}

/// One timeline from everything the store keeps under the ID and this instance's recent log
/// lines (`logs`: the JSON lines, as the telemetry layer wrote them), oldest first.
pub fn assemble(sources: TraceSources, logs: Vec<Value>, instance: &str) -> Vec<TraceEvent> {
    let mut events = sources.events;
    for task in &sources.tasks {
        let name = format!("{}/{}", task.domain, task.action);
        let mut submitted = TraceEvent {
            correlation_id: task.correlation_id.clone(),
            at: task.created_at,
            kind: TraceKind::Task,
            instance: String::new(),
            task_id: Some(task.id),
            attempt: None,
            summary: format!("task {name} submitted"),
            duration_ms: None,
            status: Some("submitted".into()),
            detail: json!({
                "domain": task.domain.as_str(),
                "action": task.action.as_str(),
                "priority": task.priority,
                "maxAttempts": task.max_attempts,
                "currentStatus": task.status.as_str(),
            }),
        };
        let settled = matches!(
            task.status,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled
        );
        if let (true, Some(finished)) = (settled, task.finished_at) {
            let mut e = submitted.clone();
            e.at = finished;
            e.summary = format!(
                "task {name} {} after {} attempt{}",
                task.status.as_str(),
                task.attempts,
                if task.attempts == 1 { "" } else { "s" }
            );
            e.status = Some(task.status.as_str().into());
            e.duration_ms = Some((finished - task.created_at).num_milliseconds().max(0) as u64);
            e.detail = json!({"attempts": task.attempts, "error": task.error});
            events.push(e);
        }
        submitted.detail["currentStatus"] = json!(task.status.as_str());
        events.push(submitted);
    }
    for stored in sources.attempts {
        let r = stored.record;
        let instance = r.instance_id.clone().unwrap_or_default();
        let outcome = if r.success { "succeeded" } else { "failed" };
        let mut summary = format!(
            "attempt {} of {}/{} {outcome}",
            r.attempt, r.domain, r.action
        );
        if let Some(reason) = &r.failure_reason {
            summary.push_str(": ");
            summary.extend(reason.chars().take(200));
        }
        if let Some(call) = &r.model_call {
            events.push(TraceEvent {
                correlation_id: r.correlation_id.clone().unwrap_or_default(),
                at: r.started_at,
                kind: TraceKind::ModelCall,
                instance: instance.clone(),
                task_id: Some(r.task_id),
                attempt: Some(r.attempt),
                summary: format!(
                    "model {} via {}: {} prompt + {} completion tokens",
                    call.model, call.deployment, call.prompt_tokens, call.completion_tokens
                ),
                duration_ms: Some(r.duration_ms),
                status: Some(outcome.into()),
                detail: json!({
                    "model": call.model,
                    "deployment": call.deployment,
                    "promptTokens": call.prompt_tokens,
                    "completionTokens": call.completion_tokens,
                    "costUsd": r.cost_usd,
                }),
            });
        }
        events.push(TraceEvent {
            correlation_id: r.correlation_id.clone().unwrap_or_default(),
            at: r.started_at,
            kind: TraceKind::Attempt,
            instance,
            task_id: Some(r.task_id),
            attempt: Some(r.attempt),
            summary,
            duration_ms: Some(r.duration_ms),
            status: Some(outcome.into()),
            detail: json!({
                "finishedAt": r.finished_at,
                "failureReason": r.failure_reason,
                "timedOut": r.timed_out,
                "impactScore": r.impact_score,
                "costUsd": r.cost_usd,
                "parameters": r.parameters,
            }),
        });
    }
    for (check, by) in sources.checks {
        events.push(TraceEvent {
            correlation_id: check
                .correlation_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            at: check.timestamp,
            kind: TraceKind::HealthCheck,
            instance: by.unwrap_or_default(),
            task_id: None,
            attempt: None,
            summary: format!(
                "health check of {}: {} ({})",
                check.service,
                check.status.as_str(),
                check.message
            ),
            duration_ms: Some(check.latency_ms),
            status: Some(check.status.as_str().into()),
            detail: json!({"service": check.service.as_str(), "breakerOpen": check.breaker_open}),
        });
    }
    for line in logs {
        let Some(at) = line
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        else {
            continue;
        };
        let message = line.get("message").and_then(Value::as_str).unwrap_or("");
        events.push(TraceEvent {
            correlation_id: line
                .get("correlationId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            at: at.with_timezone(&Utc),
            kind: TraceKind::Log,
            instance: instance.to_string(),
            task_id: line
                .get("taskId")
                .and_then(Value::as_str)
                .and_then(|t| t.parse().ok()),
            attempt: line
                .get("attempt")
                .and_then(Value::as_u64)
                .map(|a| a as u32),
            summary: message.to_string(),
            duration_ms: line.get("durationMs").and_then(Value::as_u64),
            status: line
                .get("level")
                .and_then(Value::as_str)
                .map(str::to_string),
            detail: line,
        });
    }
    // Stable: what happened at the same instant keeps the order above (a task's submission
    // before its attempts, an attempt before its agent call).
    events.sort_by_key(|e| (e.at, kind_rank(e.kind)));
    events
}

fn kind_rank(kind: TraceKind) -> u8 {
    match kind {
        TraceKind::Request => 0,
        TraceKind::Task => 1,
        TraceKind::Breaker => 2,
        TraceKind::Attempt => 3,
        TraceKind::AgentCall | TraceKind::ModelCall | TraceKind::HealthCheck => 4,
        TraceKind::Log => 5,
    }
}

/// The instances that appear in a timeline, in order of first appearance.
pub fn instances(events: &[TraceEvent]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for e in events {
        if !e.instance.is_empty() && !seen.contains(&e.instance) {
            seen.push(e.instance.clone());
        }
    }
    seen
}
