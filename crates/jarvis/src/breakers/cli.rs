//! `jarvis breakers [list|show|open|close|reset]`: the circuit breakers of a running Jarvis.

use clap::Subcommand;
use serde_json::Value;

use crate::client::Connection;

/// `jarvis breakers …`
#[derive(Debug, Subcommand)]
pub enum BreakersCommand {
    /// Every breaker (the default).
    List,
    /// One breaker with every field.
    Show {
        /// The breaker's name.
        name: String,
    },
    /// Hold a circuit open (no call reaches the service until closed or reset).
    Open {
        /// The breaker's name.
        name: String,
    },
    /// Close a circuit.
    Close {
        /// The breaker's name.
        name: String,
    },
    /// Close a circuit and clear its statistics.
    Reset {
        /// The breaker's name.
        name: String,
    },
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The table of `jarvis breakers`.
pub fn table(data: &Value) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "STATE".into(),
        "FAILURES".into(),
        "REJECTED".into(),
        "CALLS".into(),
        "NEXT ATTEMPT".into(),
        "LAST FAILURE".into(),
    ]];
    if let Some(map) = data.as_object() {
        for (name, b) in map {
            rows.push([
                name.clone(),
                cell(&b["state"]),
                cell(&b["failureCount"]),
                cell(&b["rejectedCalls"]),
                cell(&b["totalCalls"]),
                cell(&b["nextAttemptAt"]),
                cell(&b["lastFailureReason"]),
            ]);
        }
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if rows.len() == 1 {
        out.push_str("(no circuit breaker yet)\n");
    }
    out
}

/// Runs one `jarvis breakers` command and prints the answer (`--json`: the raw `data`).
pub async fn run(
    connection: &Connection,
    json: bool,
    command: Option<BreakersCommand>,
) -> anyhow::Result<()> {
    let client = connection.client()?;
    let data = match command.unwrap_or(BreakersCommand::List) {
        BreakersCommand::List => client.get("/api/v1/circuit-breakers").await?,
        BreakersCommand::Show { name } => {
            client
                .get(&format!("/api/v1/circuit-breakers/{name}"))
                .await?
        }
        BreakersCommand::Open { name } => {
            client
                .post(
                    &format!("/api/v1/circuit-breakers/{name}/open"),
                    &Value::Null,
                )
                .await?
        }
        BreakersCommand::Close { name } => {
            client
                .post(
                    &format!("/api/v1/circuit-breakers/{name}/close"),
                    &Value::Null,
                )
                .await?
        }
        BreakersCommand::Reset { name } => {
            client
                .post(
                    &format!("/api/v1/circuit-breakers/{name}/reset"),
                    &Value::Null,
                )
                .await?
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
    } else {
        print!("{}", table(&data));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_breaker() {
        let data = serde_json::json!({
            "aiDawgBackend": {"state": "OPEN", "failureCount": 5, "rejectedCalls": 2,
                              "totalCalls": 7, "nextAttemptAt": "2026-01-01T00:01:00.000Z",
                              "lastFailureReason": "connection refused"}
        });
        let t = table(&data);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].starts_with("aiDawgBackend  OPEN"));
        assert!(lines[1].ends_with("connection refused"));
        assert!(table(&serde_json::json!({})).contains("no circuit breaker yet"));
    }
}
