//! `jarvis schedules [list|show|pause|resume|delete]`: the schedules of a running Jarvis, with
//! their next run times.

use clap::Subcommand;
use serde_json::Value;

use crate::client::Connection;

/// `jarvis schedules …`
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Every schedule with its next run time (the default).
    List,
    /// One schedule with every field and its next run times.
    Show {
        /// The schedule's name.
        name: String,
    },
    /// Pause a schedule (no task is submitted until it is resumed).
    Pause {
        /// The schedule's name.
        name: String,
    },
    /// Resume a paused schedule (from its next tick; ticks while paused are not made up).
    Resume {
        /// The schedule's name.
        name: String,
    },
    /// Delete a schedule (the tasks it submitted stay).
    Delete {
        /// The schedule's name.
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

/// The table of `jarvis schedules`.
pub fn table(data: &Value) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "WHEN".into(),
        "TASK".into(),
        "STATE".into(),
        "NEXT RUN".into(),
        "LAST RUN".into(),
    ]];
    let list = match data {
        Value::Array(items) => items.clone(),
        Value::Object(_) => vec![data.clone()],
        _ => Vec::new(),
    };
    for s in &list {
        let when = match (&s["cron"], &s["everyMs"]) {
            (Value::String(c), _) => format!("cron {c} ({})", cell(&s["timezone"])),
            (_, Value::Number(ms)) => format!("every {ms} ms"),
            _ => "-".into(),
        };
        let state = if s["paused"] == true {
            "paused".to_string()
        } else {
            format!("active, missed: {}", cell(&s["missed"]))
        };
        rows.push([
            cell(&s["name"]),
            when,
            format!(
                "{}/{}",
                cell(&s["task"]["domain"]),
                cell(&s["task"]["action"])
            ),
            state,
            cell(&s["nextRunAt"]),
            cell(&s["lastRunAt"]),
        ]);
    }
    let widths: Vec<usize> = (0..6)
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
        out.push_str("(no schedule yet)\n");
    }
    if let (Value::Object(_), Some(next)) = (data, data["upcoming"].as_array()) {
        out.push_str("upcoming:\n");
        for t in next {
            out.push_str(&format!("  {}\n", cell(t)));
        }
    }
    out
}

/// Runs one `jarvis schedules` command and prints the answer (`--json`: the raw `data`).
pub async fn run(
    connection: &Connection,
    json: bool,
    command: Option<SchedulesCommand>,
) -> anyhow::Result<()> {
    let client = connection.client()?;
    let path = |name: &str| format!("/api/v1/schedules/{name}");
    let data = match command.unwrap_or(SchedulesCommand::List) {
        SchedulesCommand::List => client.get("/api/v1/schedules").await?,
        SchedulesCommand::Show { name } => client.get(&path(&name)).await?,
        SchedulesCommand::Pause { name } => {
            client
                .post(&format!("{}/pause", path(&name)), &Value::Null)
                .await?
        }
        SchedulesCommand::Resume { name } => {
            client
                .post(&format!("{}/resume", path(&name)), &Value::Null)
                .await?
        }
        SchedulesCommand::Delete { name } => {
            client.delete(&path(&name)).await?;
            println!("schedule {name} deleted");
            return Ok(());
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
    fn the_table_has_a_row_per_schedule() {
        let data = serde_json::json!([
            {"name": "nightly", "cron": "0 3 * * *", "everyMs": null, "timezone": "Europe/Paris",
             "task": {"domain": "noop", "action": "report"}, "paused": false, "missed": "skip",
             "nextRunAt": "2026-01-02T02:00:00Z", "lastRunAt": null},
            {"name": "poll", "cron": null, "everyMs": 5000, "timezone": "UTC",
             "task": {"domain": "music", "action": "sync"}, "paused": true, "missed": "catchUp",
             "nextRunAt": null, "lastRunAt": "2026-01-01T00:00:05Z"}
        ]);
        let t = table(&data);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].contains("cron 0 3 * * * (Europe/Paris)"), "{t}");
        assert!(lines[1].contains("2026-01-02T02:00:00Z"), "{t}");
        assert!(
            lines[2].contains("every 5000 ms") && lines[2].contains("paused"),
            "{t}"
        );
        assert!(table(&serde_json::json!([])).contains("no schedule yet"));
    }
}
