//! `jarvis breakers [list|show|open|close|reset]`: the circuit breakers of a running Jarvis.
//!
//! The list is a table whose failure columns say which count they are (`FAILS IN A ROW` is
//! `failureCount`, `FAILURES` is the total `failures` of the JSON); `show` prints every field
//! of one breaker, labelled.

use clap::Subcommand;
use serde_json::Value;

use crate::api::types::{BreakerView, BreakerViews};
use crate::client::{json_text, Connection};

/// `jarvis breakers …`
#[derive(Debug, Subcommand)]
pub enum BreakersCommand {
    /// Every breaker (the default).
    List,
    /// One breaker with every field, labelled.
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

/// The table of `jarvis breakers`: a row per breaker, by name. STATE says `OPEN (forced)` for
/// a circuit an operator holds open; FAILS IN A ROW is the consecutive count that opens a
/// circuit (`failureCount`), FAILURES the total since the breaker was created on this instance
/// (`failures`).
pub fn table(views: &BreakerViews) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "STATE".into(),
        "FAILS IN A ROW".into(),
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
            state(b),
            b.failure_count.to_string(),
            b.failures.to_string(),
            b.rejected_calls.to_string(),
            b.total_calls.to_string(),
            or_dash(&b.next_attempt_at),
            or_dash(&b.last_failure_reason),
        ]);
    }
    crate::client::columns(&rows, "(no circuit breaker yet)")
}

/// The state as the table shows it: `OPEN (forced)` when an operator holds it open.
fn state(b: &BreakerView) -> String {
    if b.forced {
        format!("{} (forced)", b.state)
    } else {
        b.state.to_string()
    }
}

/// Every field of each breaker, one labelled line each (`jarvis breakers show NAME`).
pub fn detail(views: &BreakerViews) -> String {
    let mut out = String::new();
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    for (i, (name, b)) in views.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let lines: [(&str, String); 16] = [
            ("name", name.clone()),
            ("state", b.state.to_string()),
            ("forced open", yes_no(b.forced).into()),
            ("enabled", yes_no(b.enabled).into()),
            ("policy", b.policy.clone()),
            ("fails in a row", b.failure_count.to_string()),
            ("half-open successes", b.success_count.to_string()),
            ("calls (total)", b.total_calls.to_string()),
            ("successes (total)", b.successes.to_string()),
            ("failures (total)", b.failures.to_string()),
            ("rejected (total)", b.rejected_calls.to_string()),
            ("last failure at", or_dash(&b.last_failure_at)),
            ("last failure", or_dash(&b.last_failure_reason)),
            ("opened at", or_dash(&b.opened_at)),
            ("next attempt at", or_dash(&b.next_attempt_at)),
            ("generation", b.generation.to_string()),
        ];
        out.push_str(&crate::cli::common::labelled(&lines));
    }
    out
}

/// Runs one `jarvis breakers` command and prints the answer (`--json`: the `data` as JSON).
pub async fn run(
    connection: &Connection,
    json: bool,
    command: Option<BreakersCommand>,
) -> anyhow::Result<()> {
    let client = connection.client()?;
    let mut labelled = false;
    let views: BreakerViews = match command.unwrap_or(BreakersCommand::List) {
        BreakersCommand::List => client.get("/api/v1/circuit-breakers").await?,
        BreakersCommand::Show { name } => {
            labelled = true;
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
        crate::cli::common::outln(&json_text(&views)?);
    } else if labelled {
        crate::cli::common::out(&detail(&views));
    } else {
        crate::cli::common::out(&table(&views));
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
        assert!(lines[1].starts_with("aiDawgBackend  OPEN (forced)"));
        assert!(lines[1].ends_with("connection refused"));
        assert!(table(&BreakerViews::new()).contains("no circuit breaker yet"));
    }

    /// Two breakers as `GET /api/v1/circuit-breakers` answers them, every field present.
    fn sample() -> serde_json::Value {
        serde_json::json!({
            "aiDawgBackend": {"state": "OPEN", "failureCount": 5, "successCount": 0,
                "totalCalls": 9, "rejectedCalls": 2, "successes": 0, "failures": 7,
                "lastFailureAt": "2026-01-01T00:00:00.000Z",
                "lastFailureReason": "connection refused",
                "openedAt": "2026-01-01T00:00:00.000Z",
                "nextAttemptAt": "2026-01-01T00:01:00.000Z", "forced": true, "generation": 1,
                "policy": "5 consecutive failures, open 60000 ms", "enabled": true},
            "music": {"state": "CLOSED", "failureCount": 0, "successCount": 0,
                "totalCalls": 12345, "rejectedCalls": 0, "successes": 12345, "failures": 0,
                "lastFailureAt": null, "lastFailureReason": null, "openedAt": null,
                "nextAttemptAt": null, "forced": false, "generation": 0,
                "policy": "5 consecutive failures, open 60000 ms", "enabled": true}
        })
    }

    /// The table labels both failure counts; `--json` is the answer as received.
    #[test]
    fn the_output_labels_every_count() {
        let views: BreakerViews = serde_json::from_value(sample()).unwrap();
        assert_eq!(
            table(&views),
            concat!(
                "NAME           STATE          FAILS IN A ROW  FAILURES  REJECTED  CALLS  NEXT ATTEMPT              LAST FAILURE\n",
                "aiDawgBackend  OPEN (forced)  5               7         2         9      2026-01-01T00:01:00.000Z  connection refused\n",
                "music          CLOSED         0               0         0         12345  -                         -\n",
            )
        );
        let mut one = views.clone();
        one.remove("music");
        assert_eq!(
            detail(&one),
            concat!(
                "name:                aiDawgBackend\n",
                "state:               OPEN\n",
                "forced open:         yes\n",
                "enabled:             yes\n",
                "policy:              5 consecutive failures, open 60000 ms\n",
                "fails in a row:      5\n",
                "half-open successes: 0\n",
                "calls (total):       9\n",
                "successes (total):   0\n",
                "failures (total):    7\n",
                "rejected (total):    2\n",
                "last failure at:     2026-01-01T00:00:00.000Z\n",
                "last failure:        connection refused\n",
                "opened at:           2026-01-01T00:00:00.000Z\n",
                "next attempt at:     2026-01-01T00:01:00.000Z\n",
                "generation:          1\n",
            )
        );
        assert_eq!(
            json_text(&views).unwrap(),
            serde_json::to_string_pretty(&sample()).unwrap()
        );
    }
}
