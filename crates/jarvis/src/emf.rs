//! CloudWatch Embedded Metric Format: key metrics written as JSON lines to stdout, so that
//! CloudWatch turns them into metrics (and alarms) with no agent.
//!
//! Every `JARVIS_EMF_INTERVAL_MS` (default 60 s; 0 turns it off) one line carries an `_aws`
//! object (`Timestamp`, `CloudWatchMetrics[{Namespace, Dimensions, Metrics}]`) and the values at
//! its top level, as the EMF specification requires. The dimension set is empty, so the figures
//! are fleet-wide: the alarms `jarvis-circuit-open` (CircuitBreakersOpen ≥ 1) and
//! `jarvis-high-failure-rate` (TaskFailureRate > 0.3) read them without dimensions. The lines
//! have a writer of their own ([`StdoutLines`]), so no `LOG_LEVEL` or `LOG_FORMAT` silences
//! them; they are not in the log file.

use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::api::AppState;

pub use crate::api::state::RequestStats;

/// One metric of an EMF line.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The CloudWatch metric name.
    pub name: &'static str,
    /// The CloudWatch unit (`Count`, `Milliseconds`, `None`, …).
    pub unit: &'static str,
    /// The value.
    pub value: f64,
}

/// The EMF fields of one line: `_aws` plus every value at the top level.
pub fn fields(namespace: &str, timestamp_ms: i64, figures: &[Figure]) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [[]],
                "Metrics": figures
                    .iter()
                    .map(|f| json!({ "Name": f.name, "Unit": f.unit }))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    for f in figures {
        out.insert(f.name.into(), json!(f.value));
    }
    out
}

/// Totals the reporter compares between two lines.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    transitions: u64,
    rejected: u64,
    requests: u64,
    errors: u64,
    latency_ms: u64,
    tasks: crate::tasks::metrics::TaskTotals,
    ai: crate::ai::spend::AiTotals,
    /// Services whose trip forecast warns now (a level, not a total).
    predicted_trips: u64,
    /// Log lines so far.
    log: crate::telemetry::LogTotals,
}

fn totals(state: &AppState) -> (Totals, u64) {
    let snaps = state.breakers.snapshots();
    let open = snaps
        .iter()
        .filter(|s| s.state == jarvis_breaker::State::Open)
        .count() as u64;
    let (requests, errors, latency_ms) = state.requests.totals();
    (
        Totals {
            // Every transition bumps a breaker's generation.
            transitions: snaps.iter().map(|s| s.generation).sum(),
            rejected: snaps.iter().map(|s| s.rejected_calls).sum(),
            requests,
            errors,
            latency_ms,
            tasks: state.tasks.metrics().totals(),
            ai: state.ai.spend().totals(),
            predicted_trips: state.health.predicted_trips() as u64,
            log: crate::telemetry::LOG_VOLUME.totals(),
        },
        open,
    )
}

/// The figures of one interval, from the totals before and now.
fn figures(before: Totals, now: Totals, open: u64, interval: Duration) -> Vec<Figure> {
    let requests = now.requests.saturating_sub(before.requests);
    let errors = now.errors.saturating_sub(before.errors);
    let latency = now.latency_ms.saturating_sub(before.latency_ms);
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let failed = now.tasks.failed.saturating_sub(before.tasks.failed);
    let finished = now.tasks.succeeded.saturating_sub(before.tasks.succeeded) + failed;
    vec![
        Figure {
            name: "CircuitBreakersOpen",
            unit: "Count",
            value: open as f64,
        },
        Figure {
            name: "CircuitStateChanges",
            unit: "Count",
            value: now.transitions.saturating_sub(before.transitions) as f64,
        },
        Figure {
            name: "RejectedCalls",
            unit: "Count",
            value: now.rejected.saturating_sub(before.rejected) as f64,
        },
        Figure {
            name: "TasksCompleted",
            unit: "Count",
            value: finished as f64,
        },
        Figure {
            name: "TasksPerHour",
            unit: "Count",
            value: finished as f64 * 3600.0 / interval.as_secs_f64().max(1e-3),
        },
        Figure {
            name: "TaskFailureRate",
            unit: "None",
            value: ratio(failed, finished),
        },
        Figure {
            name: "TaskDurationMs",
            unit: "Milliseconds",
            value: ratio(
                now.tasks
                    .duration_ms
                    .saturating_sub(before.tasks.duration_ms),
                now.tasks.attempts.saturating_sub(before.tasks.attempts),
            ),
        },
        Figure {
            name: "CostPerTask",
            unit: "None",
            value: ratio(
                now.tasks
                    .cost_micro_usd
                    .saturating_sub(before.tasks.cost_micro_usd),
                finished,
            ) / 1e6,
        },
        Figure {
            name: "RequestLatencyMs",
            unit: "Milliseconds",
            value: ratio(latency, requests),
        },
        Figure {
            name: "ErrorRate",
            unit: "None",
            value: ratio(errors, requests),
        },
        Figure {
            name: "PredictedTrips",
            unit: "Count",
            value: now.predicted_trips as f64,
        },
        Figure {
            name: "LogLinesError",
            unit: "Count",
            value: now.log.lines[0].saturating_sub(before.log.lines[0]) as f64,
        },
        Figure {
            name: "LogLinesWarn",
            unit: "Count",
            value: now.log.lines[1].saturating_sub(before.log.lines[1]) as f64,
        },
        Figure {
            name: "LogLinesInfo",
            unit: "Count",
            value: now.log.lines[2].saturating_sub(before.log.lines[2]) as f64,
        },
        Figure {
            name: "LogLinesDebug",
            unit: "Count",
            value: (now.log.lines[3] + now.log.lines[4])
                .saturating_sub(before.log.lines[3] + before.log.lines[4])
                as f64,
        },
        Figure {
            name: "CorrelationCoverage",
            unit: "None",
            value: ratio(
                now.log.correlated.saturating_sub(before.log.correlated),
                now.log.total().saturating_sub(before.log.total()),
            ),
        },
        Figure {
            name: "AiCalls",
            unit: "Count",
            value: now.ai.requests.saturating_sub(before.ai.requests) as f64,
        },
        Figure {
            name: "AiErrorRate",
            unit: "None",
            value: ratio(
                now.ai.errors.saturating_sub(before.ai.errors),
                now.ai.requests.saturating_sub(before.ai.requests),
            ),
        },
        Figure {
            name: "AiCostUsd",
            unit: "None",
            value: now
                .ai
                .cost_micro_usd
                .saturating_sub(before.ai.cost_micro_usd) as f64
                / 1e6,
        },
    ]
}

/// Writes one EMF line per interval until `stop` turns true.
pub async fn run(
    state: AppState,
    interval: Duration,
    namespace: String,
    mut stop: watch::Receiver<bool>,
) {
    if interval.is_zero() {
        return;
    }
    let writer = StdoutLines::start();
    let (mut before, _) = totals(&state);
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let (now, open) = totals(&state);
        let mut figures = figures(before, now, open, interval);
        // Tasks waiting, fleet-wide (the store's count): what auto-scaling divides by the
        // running instances. Left out, not zero, when the store does not answer in time.
        let depth = tokio::time::timeout(Duration::from_secs(2), state.store.queue_depth()).await;
        if let Ok(Ok(depth)) = depth {
            figures.push(Figure {
                name: "QueuedTasks",
                unit: "Count",
                value: depth as f64,
            });
        }
        let line = fields(&namespace, chrono::Utc::now().timestamp_millis(), &figures);
        before = now;
        writer.write(&state.instance_id, line);
    }
}

/// Writes EMF lines to stdout by itself, not through the log: CloudWatch reads them from
/// stdout, and the alarms built on them must not go silent because `LOG_LEVEL` is above `info`
/// or `LOG_FORMAT=pretty` turned the log lines into text (issue 16). One thread owns the
/// writes; a line that finds it still writing the previous ones (stdout is a pipe nobody
/// reads) is dropped, never waited for.
struct StdoutLines {
    lines: std::sync::mpsc::SyncSender<String>,
}

impl StdoutLines {
    fn start() -> StdoutLines {
        let (lines, rx) = std::sync::mpsc::sync_channel::<String>(4);
        let spawned = std::thread::Builder::new()
            .name("jarvis-emf".into())
            .spawn(move || {
                use std::io::Write;
                for line in rx {
                    // One write of a whole line: stdout's lock keeps it apart from the log's.
                    let _ = std::io::stdout().lock().write_all(line.as_bytes());
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the EMF writer; no CloudWatch metrics");
        }
        StdoutLines { lines }
    }

    /// One EMF line, shaped like the JSON log lines (timestamp, level, message, target,
    /// correlationId) so that it reads the same beside them.
    fn write(&self, instance_id: &str, figures: Map<String, Value>) {
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        line.insert("level".into(), json!("INFO"));
        line.insert("message".into(), json!("metrics"));
        line.insert("target".into(), json!("jarvis::emf"));
        line.insert("correlationId".into(), json!(format!("sys-{instance_id}")));
        line.extend(figures);
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        if self.lines.try_send(text).is_err() {
            tracing::warn!("an EMF metrics line was dropped: stdout is not being read");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_follows_the_emf_specification() {
        let f = fields(
            "Jarvis",
            1_700_000_000_000,
            &[Figure {
                name: "CircuitBreakersOpen",
                unit: "Count",
                value: 1.0,
            }],
        );
        let aws = &f["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_000i64);
        let d = &aws["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], "Jarvis");
        assert_eq!(d["Dimensions"], json!([[]]));
        assert_eq!(d["Metrics"][0]["Name"], "CircuitBreakersOpen");
        assert_eq!(f["CircuitBreakersOpen"], 1.0);
    }

    #[test]
    fn interval_figures_are_deltas() {
        use crate::tasks::metrics::TaskTotals;
        let before = Totals {
            transitions: 2,
            rejected: 10,
            requests: 4,
            errors: 1,
            latency_ms: 40,
            tasks: TaskTotals {
                succeeded: 10,
                failed: 0,
                attempts: 10,
                duration_ms: 100,
                cost_micro_usd: 0,
            },
            ai: crate::ai::spend::AiTotals {
                requests: 5,
                errors: 0,
                cost_micro_usd: 1_000,
            },
            predicted_trips: 0,
            log: crate::telemetry::LogTotals {
                lines: [1, 2, 3, 0, 0],
                correlated: 2,
            },
        };
        let now = Totals {
            transitions: 5,
            rejected: 13,
            requests: 8,
            errors: 2,
            latency_ms: 100,
            tasks: TaskTotals {
                succeeded: 16,
                failed: 4,
                attempts: 22,
                duration_ms: 400,
                cost_micro_usd: 2_000_000,
            },
            ai: crate::ai::spend::AiTotals {
                requests: 9,
                errors: 1,
                cost_micro_usd: 501_000,
            },
            predicted_trips: 2,
            log: crate::telemetry::LogTotals {
                lines: [2, 4, 13, 1, 1],
                correlated: 14,
            },
        };
        let f = figures(before, now, 1, Duration::from_secs(60));
        let get = |n: &str| f.iter().find(|x| x.name == n).unwrap().value;
        assert_eq!(get("CircuitStateChanges"), 3.0);
        assert_eq!(get("RejectedCalls"), 3.0);
        assert_eq!(get("RequestLatencyMs"), 15.0);
        assert_eq!(get("ErrorRate"), 0.25);
        assert_eq!(get("CircuitBreakersOpen"), 1.0);
        assert_eq!(get("TasksCompleted"), 10.0);
        assert_eq!(get("TasksPerHour"), 600.0);
        assert_eq!(get("TaskFailureRate"), 0.4);
        assert_eq!(get("TaskDurationMs"), 25.0);
        assert_eq!(get("CostPerTask"), 0.2);
        assert_eq!(get("AiCalls"), 4.0);
        assert_eq!(get("AiErrorRate"), 0.25);
        assert_eq!(get("AiCostUsd"), 0.5);
        assert_eq!(get("PredictedTrips"), 2.0);
        assert_eq!(get("LogLinesError"), 1.0);
        assert_eq!(get("LogLinesWarn"), 2.0);
        assert_eq!(get("LogLinesInfo"), 10.0);
        assert_eq!(get("LogLinesDebug"), 2.0);
        assert_eq!(get("CorrelationCoverage"), 0.8);
    }
}
