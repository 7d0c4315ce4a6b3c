//! `jarvis trace <correlationId>`: one correlation ID's trace as a timeline — time since the
//! first event, kind, instance, summary, duration — read from `GET /api/v1/traces/{id}` into
//! the API's own view (`api::types::TraceView`).

use crate::api::types::{TraceEventView, TraceView};
use crate::client::Connection;

/// The timeline of a trace, one line per event.
pub fn timeline(trace: &TraceView) -> String {
    let mut out = format!("trace {}", trace.correlation_id);
    if !trace.instances.is_empty() {
        out.push_str(&format!(" (instances: {})", trace.instances.join(", ")));
    }
    out.push('\n');
    let Some(first) = trace.events.first().map(|e| e.at) else {
        out.push_str("(no events)\n");
        return out;
    };
    out.push_str(&format!(
        "started {}\n",
        first.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    ));
    let width = trace
        .instances
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(1)
        .max(1);
    for e in &trace.events {
        out.push_str(&line(e, first, width));
        out.push('\n');
    }
    out
}

fn line(e: &TraceEventView, first: chrono::DateTime<chrono::Utc>, width: usize) -> String {
    let ms = (e.at - first).num_milliseconds();
    let offset = format!("+{}.{:03}s", ms / 1000, ms % 1000);
    let mut text = format!(
        "{offset:>10}  {:<12}  {:<width$}  {}",
        e.kind.as_str(),
        e.instance.as_deref().unwrap_or("-"),
        e.summary.replace('\n', " "),
    );
    if let Some(d) = e.duration_ms {
        text.push_str(&format!(" ({d} ms)"));
    }
    text
}

/// Runs `jarvis trace <id>` (`--json`: the `data` as JSON).
pub async fn run(connection: &Connection, json: bool, id: &str) -> anyhow::Result<()> {
    let client = connection.client()?;
    let trace: TraceView = client.get(&format!("/api/v1/traces/{id}")).await?;
    if json {
        crate::cli::common::outln(&serde_json::to_string_pretty(&trace)?);
    } else {
        crate::cli::common::out(&timeline(&trace));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceKind;

    #[test]
    fn prints_relative_times_kinds_instances_and_summaries() {
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let event = |t: &str, kind, instance: Option<&str>, summary: &str, d| TraceEventView {
            at: at(t),
            kind,
            instance: instance.map(str::to_string),
            task_id: None,
            attempt: None,
            summary: summary.into(),
            duration_ms: d,
            status: None,
            detail: serde_json::json!({}),
        };
        let trace = TraceView {
            correlation_id: "req-abc".into(),
            instances: vec!["node-a".into()],
            events: vec![
                event(
                    "2026-01-01T00:00:00Z",
                    TraceKind::Request,
                    Some("node-a"),
                    "POST /api/v1/execute → 202",
                    Some(3),
                ),
                event(
                    "2026-01-01T00:00:00.004Z",
                    TraceKind::Task,
                    None,
                    "task a/b submitted",
                    None,
                ),
                event(
                    "2026-01-01T00:00:01.250Z",
                    TraceKind::Attempt,
                    Some("node-a"),
                    "attempt 1 of a/b succeeded",
                    Some(20),
                ),
            ],
        };
        let text = timeline(&trace);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "trace req-abc (instances: node-a)");
        assert!(
            lines[2].contains("+0.000s  request       node-a  POST /api/v1/execute → 202 (3 ms)"),
            "{text}"
        );
        assert!(
            lines[3].contains("+0.004s  task          -       task a/b submitted"),
            "{text}"
        );
        assert!(lines[4].contains("+1.250s  attempt"), "{text}");
    }
}
