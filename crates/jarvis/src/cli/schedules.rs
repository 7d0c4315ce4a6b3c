//! `jarvis schedules [list|show|pause|resume|delete]`: the schedules of a running Jarvis, with
//! their next run times.

use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde::Deserialize;
use serde_json::Value;

use crate::api::types::{wire_time, ScheduleView};
use crate::client::{json_text, Connection};
use crate::tasks::input::TaskInput;

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

/// The table of `jarvis schedules`: a row per schedule.
pub fn table(schedules: &[ScheduleView]) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "WHEN".into(),
        "TASK".into(),
        "STATE".into(),
        "NEXT RUN".into(),
        "LAST RUN".into(),
    ]];
    let time = |t: &Option<DateTime<Utc>>| t.as_ref().map_or_else(|| "-".into(), wire_time);
    for s in schedules {
        let when = match (&s.cron, s.every_ms) {
            (Some(c), _) => format!("cron {c} ({})", s.timezone),
            (None, Some(ms)) => format!("every {ms} ms"),
            (None, None) => "-".into(),
        };
        let state = if s.paused {
            "paused".to_string()
        } else {
            format!("active, missed: {}", s.missed.as_str())
        };
        // `task` is the task body as given (the wire keeps it as stored); it was validated as a
        // `TaskInput` when the schedule was stored.
        let (domain, action) = match TaskInput::deserialize(&s.task) {
            Ok(task) => (task.domain, task.action),
            Err(_) => (None, None),
        };
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        rows.push([
            s.name.clone(),
            when,
            format!("{}/{}", or_dash(domain), or_dash(action)),
            state,
            time(&s.next_run_at),
            time(&s.last_run_at),
        ]);
    }
    crate::client::columns(&rows, "(no schedule yet)")
}

/// One schedule: its row of the table, then its coming ticks.
pub fn detail(schedule: &ScheduleView) -> String {
    let mut out = table(std::slice::from_ref(schedule));
    out.push_str("upcoming:\n");
    for t in &schedule.upcoming {
        out.push_str(&format!("  {}\n", wire_time(t)));
    }
    out
}

/// Runs one `jarvis schedules` command and prints the answer (`--json`: the `data` as JSON).
pub async fn run(
    connection: &Connection,
    json: bool,
    command: Option<SchedulesCommand>,
) -> anyhow::Result<()> {
    let client = connection.client()?;
    let path = |name: &str| format!("/api/v1/schedules/{name}");
    let one: ScheduleView = match command.unwrap_or(SchedulesCommand::List) {
        SchedulesCommand::List => {
            let all: Vec<ScheduleView> = client.get("/api/v1/schedules").await?;
            if json {
                crate::cli::common::outln(&json_text(&all)?);
            } else {
                crate::cli::common::out(&table(&all));
            }
            return Ok(());
        }
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
            client.delete::<()>(&path(&name)).await?;
            crate::cli::common::outln(&format!("schedule {name} deleted"));
            return Ok(());
        }
    };
    if json {
        crate::cli::common::outln(&json_text(&one)?);
    } else {
        crate::cli::common::out(&detail(&one));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_schedule() {
        let list: Vec<ScheduleView> = serde_json::from_value(serde_json::json!([
            one("nightly", Some("0 3 * * *"), None, false),
            one("poll", None, Some(5000), true)
        ]))
        .unwrap();
        let t = table(&list);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].contains("cron 0 3 * * * (Europe/Paris)"), "{t}");
        assert!(lines[1].contains("2026-01-02T02:00:00Z"), "{t}");
        assert!(
            lines[2].contains("every 5000 ms") && lines[2].contains("paused"),
            "{t}"
        );
        assert!(table(&[]).contains("no schedule yet"));
    }

    fn one(name: &str, cron: Option<&str>, every: Option<u64>, paused: bool) -> serde_json::Value {
        serde_json::json!({
            "name": name, "cron": cron, "everyMs": every,
            "timezone": if cron.is_some() { "Europe/Paris" } else { "UTC" },
            "task": {"domain": "noop", "action": "report", "parameters": {"x": 1}},
            "paused": paused, "missed": if paused { "catchUp" } else { "skip" },
            "catchUpLimit": 10,
            "nextRunAt": if paused { None } else { Some("2026-01-02T02:00:00Z") },
            "upcoming": if paused { vec![] } else { vec!["2026-01-02T02:00:00Z", "2026-01-03T02:00:00Z"] },
            "lastRunAt": if paused { Some("2026-01-01T00:00:05.123456Z") } else { None },
            "lastTaskId": if paused { Some("0190a5e1-0000-7000-8000-000000000001") } else { None },
            "createdAt": "2026-01-01T00:00:00.123Z", "updatedAt": "2026-01-01T00:00:00.123Z"
        })
    }

    /// The tables and `--json` output are what the CLI printed when it read the answers as
    /// untyped JSON.
    #[test]
    fn the_output_is_unchanged() {
        let nightly = one("nightly", Some("0 3 * * *"), None, false);
        let poll = one("poll", None, Some(5000), true);
        let list = serde_json::json!([nightly, poll]);
        let all: Vec<ScheduleView> = serde_json::from_value(list.clone()).unwrap();
        assert_eq!(
            table(&all),
            concat!(
                "NAME     WHEN                           TASK         STATE                 NEXT RUN              LAST RUN\n",
                "nightly  cron 0 3 * * * (Europe/Paris)  noop/report  active, missed: skip  2026-01-02T02:00:00Z  -\n",
                "poll     every 5000 ms                  noop/report  paused                -                     2026-01-01T00:00:05.123456Z\n",
            )
        );
        let typed =
            |v: &serde_json::Value| -> ScheduleView { serde_json::from_value(v.clone()).unwrap() };
        assert_eq!(
            detail(&typed(&nightly)),
            concat!(
                "NAME     WHEN                           TASK         STATE                 NEXT RUN              LAST RUN\n",
                "nightly  cron 0 3 * * * (Europe/Paris)  noop/report  active, missed: skip  2026-01-02T02:00:00Z  -\n",
                "upcoming:\n",
                "  2026-01-02T02:00:00Z\n",
                "  2026-01-03T02:00:00Z\n",
            )
        );
        assert_eq!(
            detail(&typed(&poll)),
            concat!(
                "NAME  WHEN           TASK         STATE   NEXT RUN  LAST RUN\n",
                "poll  every 5000 ms  noop/report  paused  -         2026-01-01T00:00:05.123456Z\n",
                "upcoming:\n",
            )
        );
        assert_eq!(
            json_text(&all).unwrap(),
            serde_json::to_string_pretty(&list).unwrap()
        );
        assert_eq!(
            json_text(&typed(&poll)).unwrap(),
            serde_json::to_string_pretty(&poll).unwrap()
        );
    }
}
