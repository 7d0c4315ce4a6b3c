//! `jarvis health`: asks a running Jarvis for `GET /api/v1/health/services` and prints it;
//! `jarvis health history NAME`: one service's stored check results
//! (`GET /api/v1/health/services/{name}/history`).

use std::fmt::Write as _;

use clap::Subcommand;

use crate::api::types::{CheckHistoryView, ServiceView, ServicesView};
use crate::client::{json_text, Connection};

/// `jarvis health …`
#[derive(Debug, Subcommand)]
pub enum HealthCommand {
    /// One service's stored check results, newest first.
    History {
        /// The service's name.
        name: String,
        /// From this time: a date (2026-12-06: from its start, UTC) or an RFC 3339 time.
        #[arg(long, value_parser = crate::cli::common::when)]
        since: Option<String>,
        /// Before this time: a date (2026-12-06: to its end, UTC) or an RFC 3339 time.
        #[arg(long, value_parser = crate::cli::common::when)]
        until: Option<String>,
        /// At most this many results (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// Runs a `jarvis health` subcommand and prints the answer (`--json`: the `data` as JSON).
pub async fn run(
    connection: &Connection,
    json: bool,
    command: HealthCommand,
) -> anyhow::Result<()> {
    let client = connection.client()?;
    match command {
        HealthCommand::History {
            name,
            since,
            until,
            limit,
        } => {
            let q = crate::cli::tasks::query(&[
                ("since", since),
                ("until", until),
                ("limit", Some(limit.to_string())),
            ]);
            let view: CheckHistoryView = client
                .get(&format!("/api/v1/health/services/{name}/history{q}"))
                .await?;
            if json {
                crate::cli::common::outln(&json_text(&view)?);
            } else {
                crate::cli::common::out(&history_table(&view));
            }
        }
    }
    Ok(())
}

/// The check history of one service as a table, newest first.
pub fn history_table(view: &CheckHistoryView) -> String {
    let mut rows = vec![[
        "TIME".to_string(),
        "STATUS".into(),
        "LATENCY".into(),
        "CHECK ID".into(),
        "MESSAGE".into(),
    ]];
    for r in &view.results {
        rows.push([
            r.timestamp.clone(),
            r.status.to_string(),
            format!("{} ms", r.latency),
            r.correlation_id.clone().unwrap_or_else(|| "-".into()),
            r.message.clone(),
        ]);
    }
    crate::client::columns(&rows, "(no stored check result)")
}

/// Fetches the aggregated view (`data` of `GET /api/v1/health/services`) from a running
/// Jarvis. The error says what went wrong in one line.
pub async fn fetch(connection: &Connection) -> anyhow::Result<ServicesView> {
    connection.client()?.get("/api/v1/health/services").await
}

/// The aggregated view as a table, one service a line, worst first.
pub fn table(view: &ServicesView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "overall: {}", view.status.as_str());
    if view.services.is_empty() {
        let _ = writeln!(out, "(no services)");
        return out;
    }
    let rank = |s: &ServiceView| match s.status.as_ref() {
        "down" => 0,
        "unknown" => 1,
        "degraded" => 2,
        _ => 3,
    };
    let mut rows: Vec<(&String, &ServiceView)> = view.services.iter().collect();
    rows.sort_by(|a, b| rank(a.1).cmp(&rank(b.1)).then(a.0.cmp(b.0)));
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |p| format!("{p:.2}%"));
    let lines: Vec<[String; 8]> = rows
        .iter()
        .map(|(name, s)| {
            [
                name.to_string(),
                s.status.to_string(),
                if s.critical { "yes" } else { "no" }.to_string(),
                format!("{} ms", s.latency),
                s.breaker.to_string(),
                format!("{} / {}", pct(s.uptime.hour), pct(s.uptime.day)),
                s.last_checked.clone().unwrap_or_else(|| "-".into()),
                s.message.clone(),
            ]
        })
        .collect();
    let header = [
        "SERVICE",
        "STATUS",
        "CRITICAL",
        "LATENCY",
        "BREAKER",
        "UPTIME 1h / 24h",
        "LAST CHECKED",
        "MESSAGE",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let row = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                let _ = writeln!(out, "{cell}");
            } else {
                let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
            }
        }
    };
    row(header.to_vec(), &mut out);
    for line in &lines {
        row(line.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_puts_the_worst_first() {
        let data = serde_json::json!({
            "status": "fail",
            "description": "a critical service is down",
            "services": {
                "a": {"status": "up", "critical": false, "latency": 3, "breaker": "CLOSED",
                      "uptime": {"hour": 100.0, "day": 99.5}, "lastChecked": "t", "message": "HTTP 200",
                      "timestamp": "t", "componentType": "http"},
                "b": {"status": "down", "critical": true, "latency": 0, "breaker": "OPEN",
                      "uptime": {"hour": null, "day": null}, "lastChecked": null,
                      "message": "Circuit breaker OPEN", "timestamp": null, "componentType": "tcp"},
            }
        });
        let t = table(&serde_json::from_value(data).unwrap());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "overall: fail");
        assert!(lines[1].starts_with("SERVICE"));
        assert!(lines[2].starts_with("b ") && lines[2].contains("Circuit breaker OPEN"));
        assert!(lines[3].contains("100.00% / 99.50%"));
    }

    fn service(
        status: &str,
        critical: bool,
        hour: Option<f64>,
        checked: Option<&str>,
    ) -> serde_json::Value {
        serde_json::json!({
            "status": status, "message": format!("{status} message"), "latency": 17,
            "timestamp": checked, "breaker": "CLOSED", "lastChecked": checked,
            "uptime": {"hour": hour, "day": hour.map(|h| h - 0.125)},
            "critical": critical, "componentType": "http"
        })
    }

    /// The table and `--json` output are what `jarvis health` printed when it read the answer
    /// as untyped JSON.
    #[test]
    fn the_output_is_unchanged() {
        let data = serde_json::json!({
            "status": "warn",
            "description": "some non-critical service is down, or some service is degraded or not checked yet",
            "services": {
                "api": service("up", true, Some(100.0), Some("2026-01-01T00:00:00.000Z")),
                "cache": service("degraded", false, Some(99.5), Some("2026-01-01T00:00:01.000Z")),
                "new": service("unknown", false, None, None),
                "worker": service("down", false, Some(33.333333), Some("2026-01-01T00:00:02.000Z")),
            }
        });
        let view: ServicesView = serde_json::from_value(data.clone()).unwrap();
        assert_eq!(
            table(&view),
            concat!(
                "overall: warn\n",
                "SERVICE  STATUS    CRITICAL  LATENCY  BREAKER  UPTIME 1h / 24h   LAST CHECKED              MESSAGE\n",
                "worker   down      no        17 ms    CLOSED   33.33% / 33.21%   2026-01-01T00:00:02.000Z  down message\n",
                "new      unknown   no        17 ms    CLOSED   - / -             -                         unknown message\n",
                "cache    degraded  no        17 ms    CLOSED   99.50% / 99.38%   2026-01-01T00:00:01.000Z  degraded message\n",
                "api      up        yes       17 ms    CLOSED   100.00% / 99.88%  2026-01-01T00:00:00.000Z  up message\n",
            )
        );
        assert_eq!(
            crate::client::json_text(&view).unwrap(),
            serde_json::to_string_pretty(&data).unwrap()
        );
        let empty = serde_json::json!({"status": "pass", "description": "every service is up", "services": {}});
        assert_eq!(
            table(&serde_json::from_value(empty).unwrap()),
            concat!("overall: pass\n", "(no services)\n",)
        );
    }
}
