//! `jarvis health`: asks a running Jarvis for `GET /api/v1/health/services` and prints it.

use std::fmt::Write as _;

use serde_json::Value;

/// Fetches the aggregated view (`data` of `GET /api/v1/health/services`) from a running
/// Jarvis. The error says what went wrong in one line.
pub async fn fetch(connection: &crate::client::Connection) -> anyhow::Result<Value> {
    connection.client()?.get("/api/v1/health/services").await
}

/// The aggregated view as a table, one service a line, worst first.
pub fn table(data: &Value) -> String {
    let mut out = String::new();
    let overall = data["status"].as_str().unwrap_or("?");
    let _ = writeln!(out, "overall: {overall}");
    let Some(services) = data["services"].as_object() else {
        return out;
    };
    if services.is_empty() {
        let _ = writeln!(out, "(no services)");
        return out;
    }
    let rank = |s: &Value| match s["status"].as_str() {
        Some("down") => 0,
        Some("unknown") => 1,
        Some("degraded") => 2,
        _ => 3,
    };
    let mut rows: Vec<(&String, &Value)> = services.iter().collect();
    rows.sort_by(|a, b| rank(a.1).cmp(&rank(b.1)).then(a.0.cmp(b.0)));
    let pct = |v: &Value| v.as_f64().map_or("-".to_string(), |p| format!("{p:.2}%"));
    let lines: Vec<[String; 8]> = rows
        .iter()
        .map(|(name, s)| {
            [
                name.to_string(),
                s["status"].as_str().unwrap_or("?").to_string(),
                if s["critical"] == true { "yes" } else { "no" }.to_string(),
                format!("{} ms", s["latency"].as_u64().unwrap_or(0)),
                s["breaker"].as_str().unwrap_or("?").to_string(),
                format!(
                    "{} / {}",
                    pct(&s["uptime"]["hour"]),
                    pct(&s["uptime"]["day"])
                ),
                s["lastChecked"].as_str().unwrap_or("-").to_string(),
                s["message"].as_str().unwrap_or("").to_string(),
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
            "services": {
                "a": {"status": "up", "critical": false, "latency": 3, "breaker": "CLOSED",
                      "uptime": {"hour": 100.0, "day": 99.5}, "lastChecked": "t", "message": "HTTP 200"},
                "b": {"status": "down", "critical": true, "latency": 0, "breaker": "OPEN",
                      "uptime": {"hour": null, "day": null}, "lastChecked": null,
                      "message": "Circuit breaker OPEN"},
            }
        });
        let t = table(&data);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "overall: fail");
        assert!(lines[1].starts_with("SERVICE"));
        assert!(lines[2].starts_with("b ") && lines[2].contains("Circuit breaker OPEN"));
        assert!(lines[3].contains("100.00% / 99.50%"));
    }
}
