//! `jarvis breakers [list|show|open|close|reset]`: the circuit breakers of a running Jarvis.

use clap::Subcommand;
use serde_json::Value;

use crate::api::types::BreakerViews;
use crate::client::{json_text, Connection};

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

/// The table of `jarvis breakers`: a row per breaker, by name.
pub fn table(views: &BreakerViews) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "STATE".into(),
        "FAILURES".into(),
        "REJECTED".into(),
        "CALLS".into(),
        "NEXT ATTEMPT".into(),
        "LAST FAILURE".into(),
    ]];
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for (name, b) in views {
        rows.push([
            name.clone(),
            b.state.to_string(),
            b.failure_count.to_string(),
            b.rejected_calls.to_string(),
            b.total_calls.to_string(),
            or_dash(&b.next_attempt_at),
            or_dash(&b.last_failure_reason),
        ]);
    }
    crate::client::columns(&rows, "(no circuit breaker yet)")
}

/// Runs one `jarvis breakers` command and prints the answer (`--json`: the `data` as JSON).
pub async fn run(
    connection: &Connection,
    json: bool,
    command: Option<BreakersCommand>,
) -> anyhow::Result<()> {
    let client = connection.client()?;
    let views: BreakerViews = match command.unwrap_or(BreakersCommand::List) {
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
        println!("{}", json_text(&views)?);
    } else {
        print!("{}", table(&views));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_breaker() {
        let mut views: BreakerViews = serde_json::from_value(sample()).unwrap();
        views.remove("music");
        let t = table(&views);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].starts_with("aiDawgBackend  OPEN"));
        assert!(lines[1].ends_with("connection refused"));
        assert!(table(&BreakerViews::new()).contains("no circuit breaker yet"));
    }

    /// Two breakers as `GET /api/v1/circuit-breakers` answers them, every field present.
    fn sample() -> serde_json::Value {
        serde_json::json!({
            "aiDawgBackend": {"state": "OPEN", "failureCount": 5, "successCount": 0,
                "totalCalls": 7, "rejectedCalls": 2, "successes": 0, "failures": 5,
                "lastFailureAt": "2026-01-01T00:00:00.000Z",
                "lastFailureReason": "connection refused",
                "openedAt": "2026-01-01T00:00:00.000Z",
                "nextAttemptAt": "2026-01-01T00:01:00.000Z", "forced": false, "generation": 1,
                "policy": "5 consecutive failures, open 60000 ms", "enabled": true},
            "music": {"state": "CLOSED", "failureCount": 0, "successCount": 0,
                "totalCalls": 12345, "rejectedCalls": 0, "successes": 12345, "failures": 0,
                "lastFailureAt": null, "lastFailureReason": null, "openedAt": null,
                "nextAttemptAt": null, "forced": false, "generation": 0,
                "policy": "5 consecutive failures, open 60000 ms", "enabled": true}
        })
    }

    /// The table and `--json` output are what the CLI printed when it read the answer as
    /// untyped JSON.
    #[test]
    fn the_output_is_unchanged() {
        let views: BreakerViews = serde_json::from_value(sample()).unwrap();
        assert_eq!(
            table(&views),
            concat!(
                "NAME           STATE   FAILURES  REJECTED  CALLS  NEXT ATTEMPT              LAST FAILURE\n",
                "aiDawgBackend  OPEN    5         2         7      2026-01-01T00:01:00.000Z  connection refused\n",
                "music          CLOSED  0         0         12345  -                         -\n",
            )
        );
        assert_eq!(
            json_text(&views).unwrap(),
            serde_json::to_string_pretty(&sample()).unwrap()
        );
    }
}
