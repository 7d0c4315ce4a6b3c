//! `jarvis tasks submit|show|cancel|retry|stats|recommend|list|executions`: the task API from
//! a terminal.
//!
//! `submit --wait` says how the task ended in its exit code ([`EXIT_TASK_FAILED`],
//! [`EXIT_STILL_RUNNING`]); `list` pages through tasks with the API's cursor, system tasks
//! (domain `system-*`) left out unless `--include-system`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Map, Value};

use crate::api::types::{
    wire_time, Accepted, ExecutionPage, RecommendationView, Stats, TaskPage, TaskView,
};
use crate::tasks::TaskStatus;

use crate::client::json_text;
pub use crate::client::Connection;

/// Exit code of `jarvis tasks submit --wait` when the task failed or was cancelled.
pub const EXIT_TASK_FAILED: u8 = 3;
/// Exit code of `jarvis tasks submit --wait` when the task was still queued, waiting or running
/// when the wait ended.
pub const EXIT_STILL_RUNNING: u8 = 4;

/// The longest wait the server grants (`waitMs` of `POST /api/v1/execute`).
const MAX_WAIT_MS: u64 = crate::api::tasks::MAX_WAIT_MS;

/// The exit codes of `jarvis tasks`, for `--help`.
const EXIT_CODES: &str = "\
Exit codes: 0 done (with --wait: the task succeeded); 1 the request failed or was refused \
(no token, Jarvis unreachable, an error answer); 2 the configuration cannot be read; \
with --wait or --wait-ms: 3 the task failed or was cancelled, 4 the task had not finished \
when the wait ended (still queued, waiting or running; see `jarvis tasks show ID`).";

/// `jarvis tasks …`
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Submit a task (POST /api/v1/execute) and print {taskId, correlationId, status}; with
    /// --wait, the task once finished.
    #[command(after_help = EXIT_CODES)]
    Submit {
        /// The domain (which agent runs it), e.g. noop.
        domain: String,
        /// The action.
        action: String,
        /// A parameter as name=value (value parsed as JSON when it is JSON, else a string);
        /// repeatable.
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// All parameters as one JSON object (merged under --param).
        #[arg(long, value_name = "JSON")]
        parameters: Option<String>,
        /// Higher runs first.
        #[arg(long)]
        priority: Option<i32>,
        /// ISO 8601 time before which it does not run.
        #[arg(long)]
        run_at: Option<String>,
        /// Attempts in all.
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Per-attempt timeout, ms.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// The same key returns the same task.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Wait for the task to finish (at most 30 s, or --wait-ms) and print it; the exit code
        /// says how it ended (below).
        #[arg(long)]
        wait: bool,
        /// Wait at most this many ms (1–120000) for the task to finish; implies --wait.
        #[arg(long, value_name = "MS",
              value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_MS))]
        wait_ms: Option<u64>,
        /// Fill the parameters left out (and the timeout, if none is given) from what was
        /// learned.
        #[arg(long)]
        use_learned: bool,
    },
    /// Show a task (GET /api/v1/tasks/{id}).
    Show {
        /// The task ID.
        id: String,
    },
    /// Cancel a task that has not finished (DELETE /api/v1/tasks/{id}).
    Cancel {
        /// The task ID.
        id: String,
    },
    /// Run a failed or cancelled task again, keeping its history
    /// (POST /api/v1/tasks/{id}/retry).
    Retry {
        /// The task ID.
        id: String,
        /// More attempts it gets (default 1).
        #[arg(long)]
        attempts: Option<u32>,
    },
    /// Statistics of a domain/action, or without DOMAIN ACTION the overview of every
    /// domain/action that ran (GET /api/v1/tasks/history): a table, --json for the figures.
    Stats {
        /// The domain (with ACTION); none: the overview.
        domain: Option<String>,
        /// The action.
        #[arg(requires = "domain")]
        action: Option<String>,
        /// From: a date (2026-12-06: from its start, UTC) or an RFC 3339 time.
        #[arg(long, value_parser = crate::cli::common::when)]
        since: Option<String>,
        /// Until: a date (2026-12-06: to its end, UTC) or an RFC 3339 time.
        #[arg(long, value_parser = crate::cli::common::when)]
        until: Option<String>,
        /// The overview also shows Jarvis's own system-* domains.
        #[arg(long, conflicts_with = "domain")]
        include_system: bool,
        /// Print the overview as JSON instead of a table (one domain/action is always JSON).
        #[arg(long)]
        json: bool,
    },
    /// What the learner recommends for a domain/action: parameters, timeout, confidence,
    /// alternatives, timeout warning (GET /api/v1/tasks/recommendations).
    Recommend {
        /// The domain.
        domain: String,
        /// The action.
        action: String,
    },
    /// List tasks, newest first, a page at a time (GET /api/v1/tasks); system tasks
    /// (domain system-*) only with --include-system or --domain.
    List {
        /// Only this status: queued, running, waiting, succeeded, failed or cancelled.
        #[arg(long, value_parser = ["queued", "running", "waiting", "succeeded", "failed", "cancelled"])]
        status: Option<String>,
        /// Only this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only this action.
        #[arg(long)]
        action: Option<String>,
        /// Only tasks submitted under this correlation ID.
        #[arg(long)]
        correlation_id: Option<String>,
        /// Submitted at or after: a date (2026-12-06: from its start, UTC) or an RFC 3339 time.
        #[arg(long, value_parser = crate::cli::common::when)]
        since: Option<String>,
        /// Submitted before: a date (2026-12-06: to its end, UTC) or an RFC 3339 time.
        #[arg(long, value_parser = crate::cli::common::when)]
        until: Option<String>,
        /// Show system tasks (domain system-*, such as system-health) too.
        #[arg(long)]
        include_system: bool,
        /// At most this many (1–1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Continue after this cursor (printed under the previous page).
        #[arg(long)]
        cursor: Option<String>,
        /// Print the page as JSON (`{items, nextCursor}`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List execution records (one per attempt), newest first, as JSON
    /// (GET /api/v1/tasks/executions); system records (domain system-*, such as each health
    /// round's) only with --include-system, --domain or --task.
    Executions {
        /// Only this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only this action.
        #[arg(long)]
        action: Option<String>,
        /// Only this task.
        #[arg(long)]
        task: Option<String>,
        /// Only successes (true) or failures (false).
        #[arg(long)]
        success: Option<bool>,
        /// Only records of this correlation ID.
        #[arg(long)]
        correlation_id: Option<String>,
        /// Finished at or after: a date (2026-12-06: from its start, UTC) or an RFC 3339 time.
        #[arg(long, value_parser = crate::cli::common::when)]
        since: Option<String>,
        /// Finished before: a date (2026-12-06: to its end, UTC) or an RFC 3339 time.
        #[arg(long, value_parser = crate::cli::common::when)]
        until: Option<String>,
        /// Show system records (domain system-*) too.
        #[arg(long)]
        include_system: bool,
        /// At most this many (1–1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Continue after this cursor (the `nextCursor` of a previous page).
        #[arg(long)]
        cursor: Option<String>,
    },
}

/// A query string (`?a=1&b=x`) of the pairs that have a value, encoded.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut url = url::Url::parse("http://x/").expect("static URL");
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    url.query().map(|q| format!("?{q}")).unwrap_or_default()
}

fn parameters(params: &[String], all: Option<&str>) -> anyhow::Result<Value> {
    let mut map = match all {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => anyhow::bail!("--parameters must be a JSON object"),
            Err(e) => anyhow::bail!("--parameters is not JSON: {e}"),
        },
        None => Map::new(),
    };
    for p in params {
        let (name, value) = p
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--param {p:?}: expected NAME=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        map.insert(name.to_string(), value);
    }
    Ok(Value::Object(map))
}

/// Runs one `jarvis tasks` subcommand and prints the answer: JSON (the view the route
/// serializes), or the table of `list`. The exit code is 0 except for `submit --wait` (see
/// [`EXIT_TASK_FAILED`], [`EXIT_STILL_RUNNING`]).
pub async fn run(connection: &Connection, command: TasksCommand) -> anyhow::Result<ExitCode> {
    let wait_ms = match &command {
        TasksCommand::Submit { wait, wait_ms, .. } => {
            wait_ms.or(wait.then_some(crate::api::tasks::DEFAULT_WAIT_MS))
        }
        _ => None,
    };
    // Long enough for the longest wait the server grants, and then some.
    let timeout = Duration::from_millis(wait_ms.unwrap_or(0) + 30_000);
    let client = connection.client_with_timeout(timeout)?;
    let text = match command {
        TasksCommand::Submit {
            domain,
            action,
            params,
            parameters: all,
            priority,
            run_at,
            max_attempts,
            timeout_ms,
            idempotency_key,
            wait: _,
            wait_ms: _,
            use_learned,
        } => {
            let mut body = json!({
                "domain": domain,
                "action": action,
                "parameters": parameters(&params, all.as_deref())?,
            });
            let fields = [
                ("priority", priority.map(Value::from)),
                ("runAt", run_at.map(Value::from)),
                ("maxAttempts", max_attempts.map(Value::from)),
                ("timeoutMs", timeout_ms.map(Value::from)),
                ("idempotencyKey", idempotency_key.map(Value::from)),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            if use_learned {
                body["useLearned"] = Value::Bool(true);
            }
            match wait_ms {
                Some(ms) => {
                    let path = format!("/api/v1/execute?wait=true&waitMs={ms}");
                    let task: TaskView = client.post(&path, &body).await?;
                    crate::cli::common::outln(&json_text(&task)?);
                    return Ok(ExitCode::from(wait_exit_code(task.status)));
                }
                None => json_text(&client.post::<Accepted>("/api/v1/execute", &body).await?)?,
            }
        }
        TasksCommand::Show { id } => json_text(
            &client
                .get::<TaskView>(&format!("/api/v1/tasks/{id}"))
                .await?,
        )?,
        TasksCommand::Cancel { id } => json_text(
            &client
                .delete::<TaskView>(&format!("/api/v1/tasks/{id}"))
                .await?,
        )?,
        TasksCommand::Retry { id, attempts } => {
            let q = attempts
                .map(|n| format!("?attempts={n}"))
                .unwrap_or_default();
            let task: TaskView = client
                .post(&format!("/api/v1/tasks/{id}/retry{q}"), &Value::Null)
                .await?;
            json_text(&task)?
        }
        TasksCommand::Stats {
            domain,
            action,
            since,
            until,
            include_system,
            json,
        } => {
            if domain.is_some() && action.is_none() {
                return Err(anyhow::anyhow!(
                    "give DOMAIN and ACTION, or neither for the overview"
                ));
            }
            let overview = domain.is_none();
            let q = query(&[
                ("domain", domain),
                ("action", action),
                ("since", since),
                ("until", until),
                ("includeSystem", include_system.then(|| "true".to_string())),
            ]);
            let path = format!("/api/v1/tasks/history{q}");
            if !overview {
                json_text(&client.get::<Stats>(&path).await?)?
            } else {
                let all: crate::analytics::Overview = client.get(&path).await?;
                if !json {
                    crate::cli::common::out(&overview_table(&all.items));
                    return Ok(ExitCode::SUCCESS);
                }
                json_text(&all)?
            }
        }
        TasksCommand::Recommend { domain, action } => {
            let q = query(&[("domain", Some(domain)), ("action", Some(action))]);
            let view: RecommendationView = client
                .get(&format!("/api/v1/tasks/recommendations{q}"))
                .await?;
            json_text(&view)?
        }
        TasksCommand::List {
            status,
            domain,
            action,
            correlation_id,
            since,
            until,
            include_system,
            limit,
            cursor,
            json,
        } => {
            let q = query(&[
                ("status", status),
                ("domain", domain),
                ("action", action),
                ("correlationId", correlation_id),
                ("since", since),
                ("until", until),
                ("includeSystem", include_system.then(|| "true".to_string())),
                ("limit", Some(limit.to_string())),
                ("cursor", cursor),
            ]);
            let page: TaskPage = client.get(&format!("/api/v1/tasks{q}")).await?;
            if !json {
                crate::cli::common::out(&task_table(&page));
                return Ok(ExitCode::SUCCESS);
            }
            json_text(&page)?
        }
        TasksCommand::Executions {
            domain,
            action,
            task,
            success,
            correlation_id,
            since,
            until,
            include_system,
            limit,
            cursor,
        } => {
            let q = query(&[
                ("domain", domain),
                ("action", action),
                ("taskId", task),
                ("success", success.map(|s| s.to_string())),
                ("correlationId", correlation_id),
                ("since", since),
                ("until", until),
                ("includeSystem", include_system.then(|| "true".to_string())),
                ("limit", Some(limit.to_string())),
                ("cursor", cursor),
            ]);
            let page: ExecutionPage = client.get(&format!("/api/v1/tasks/executions{q}")).await?;
            json_text(&page)?
        }
    };
    crate::cli::common::outln(&text);
    Ok(ExitCode::SUCCESS)
}

/// The exit code of `submit --wait` for the task as the wait left it.
pub fn wait_exit_code(status: TaskStatus) -> u8 {
    match status {
        TaskStatus::Succeeded => 0,
        TaskStatus::Failed | TaskStatus::Cancelled => EXIT_TASK_FAILED,
        TaskStatus::Queued | TaskStatus::Running | TaskStatus::Waiting => EXIT_STILL_RUNNING,
    }
}

/// The overview as a table: one row per domain/action.
fn overview_table(all: &[crate::analytics::OverviewItem]) -> String {
    let mut rows = vec![[
        "DOMAIN/ACTION".to_string(),
        "RUNS".to_string(),
        "SUCCESS".to_string(),
        "AVG MS".to_string(),
        "P95 MS".to_string(),
        "LAST RUN".to_string(),
    ]];
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    for s in all {
        rows.push([
            format!("{}/{}", s.domain, s.action),
            s.total.to_string(),
            or_dash(s.success_rate.map(|r| format!("{:.1} %", r * 100.0))),
            or_dash(s.avg_duration_ms.map(|v| v.to_string())),
            or_dash(s.p95_duration_ms.map(|v| v.to_string())),
            or_dash(s.last_executed_at.map(|t| wire_time(&t))),
        ]);
    }
    crate::client::columns(&rows, "(nothing ran in this range)")
}

/// A page of tasks as a table, with the command line of the next page under it.
pub fn task_table(page: &TaskPage) -> String {
    let mut rows = vec![[
        "TASK".to_string(),
        "DOMAIN/ACTION".into(),
        "STATUS".into(),
        "ATTEMPTS".into(),
        "CREATED".into(),
        "CORRELATION ID".into(),
        "ERROR".into(),
    ]];
    for t in &page.items {
        rows.push([
            t.task_id.to_string(),
            format!("{}/{}", t.domain, t.action),
            t.status.as_str().to_string(),
            format!("{}/{}", t.attempts, t.max_attempts),
            wire_time(&t.created_at),
            t.correlation_id.clone(),
            t.error
                .as_deref()
                .map(one_line)
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut out = crate::client::columns(&rows, "(no task)");
    if let Some(cursor) = &page.next_cursor {
        out.push_str(&format!("more: add --cursor {cursor}\n"));
    }
    out
}

/// An error message on one line, cut to 80 characters.
fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > 80 {
        format!("{}…", flat.chars().take(79).collect::<String>())
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_merge_json_and_pairs() {
        let p = parameters(
            &["bpm=120".into(), "genre=jazz".into(), "live=true".into()],
            Some(r#"{"bpm": 90, "key": "C"}"#),
        )
        .unwrap();
        assert_eq!(
            p,
            json!({"bpm": 120, "genre": "jazz", "live": true, "key": "C"})
        );
        assert!(parameters(&["novalue".into()], None).is_err());
        assert_eq!(
            query(&[("domain", Some("a b".into())), ("x", None)]),
            "?domain=a+b"
        );
    }

    #[test]
    fn the_wait_exit_codes_tell_how_the_task_ended() {
        assert_eq!(wait_exit_code(TaskStatus::Succeeded), 0);
        assert_eq!(wait_exit_code(TaskStatus::Failed), EXIT_TASK_FAILED);
        assert_eq!(wait_exit_code(TaskStatus::Cancelled), EXIT_TASK_FAILED);
        for s in [TaskStatus::Queued, TaskStatus::Running, TaskStatus::Waiting] {
            assert_eq!(wait_exit_code(s), EXIT_STILL_RUNNING);
        }
        assert_ne!(EXIT_TASK_FAILED, EXIT_STILL_RUNNING);
    }
}
