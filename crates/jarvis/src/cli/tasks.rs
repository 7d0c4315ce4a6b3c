//! `jarvis tasks submit|show|cancel|retry|stats|recommend|list`: the task API from a terminal.

use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Map, Value};

use crate::api::types::{Accepted, ExecutionPage, RecommendationView, Stats, TaskView};
use crate::client::{json_text, ApiClient};

pub use crate::client::Connection;

/// `jarvis tasks …`
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Submit a task (POST /api/v1/execute) and print {taskId, correlationId, status}.
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
        /// Wait (bounded by the server) for the task to finish and print it.
        #[arg(long)]
        wait: bool,
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
    /// Statistics of a domain/action (GET /api/v1/tasks/history).
    Stats {
        /// The domain.
        domain: String,
        /// The action.
        action: String,
        /// From (ISO 8601).
        #[arg(long)]
        since: Option<String>,
        /// Until (ISO 8601).
        #[arg(long)]
        until: Option<String>,
    },
    /// What the learner recommends for a domain/action: parameters, timeout, confidence,
    /// alternatives, timeout warning (GET /api/v1/tasks/recommendations).
    Recommend {
        /// The domain.
        domain: String,
        /// The action.
        action: String,
    },
    /// List execution records, newest first (GET /api/v1/tasks/executions).
    List {
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
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Continue after this cursor (the `nextCursor` of a previous page).
        #[arg(long)]
        cursor: Option<String>,
    },
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
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

/// Runs one `jarvis tasks` subcommand and prints the answer (the view the route serializes) as
/// JSON.
pub async fn run(connection: &Connection, command: TasksCommand) -> anyhow::Result<()> {
    let token = connection.token.clone().unwrap_or_default();
    let client = ApiClient::new(&connection.url, &token, Duration::from_secs(120))?;
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
            wait,
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
            let path = if wait {
                "/api/v1/execute?wait=true"
            } else {
                "/api/v1/execute"
            };
            if wait {
                json_text(&client.post::<TaskView>(path, &body).await?)?
            } else {
                json_text(&client.post::<Accepted>(path, &body).await?)?
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
        } => {
            let q = query(&[
                ("domain", Some(domain)),
                ("action", Some(action)),
                ("since", since),
                ("until", until),
            ]);
            json_text(
                &client
                    .get::<Stats>(&format!("/api/v1/tasks/history{q}"))
                    .await?,
            )?
        }
        TasksCommand::Recommend { domain, action } => {
            let q = query(&[("domain", Some(domain)), ("action", Some(action))]);
            let view: RecommendationView = client
                .get(&format!("/api/v1/tasks/recommendations{q}"))
                .await?;
            json_text(&view)?
        }
        TasksCommand::List {
            domain,
            action,
            task,
            success,
            limit,
            cursor,
        } => {
            let q = query(&[
                ("domain", domain),
                ("action", action),
                ("taskId", task),
                ("success", success.map(|s| s.to_string())),
                ("limit", Some(limit.to_string())),
                ("cursor", cursor),
            ]);
            let page: ExecutionPage = client.get(&format!("/api/v1/tasks/executions{q}")).await?;
            json_text(&page)?
        }
    };
    println!("{text}");
    Ok(())
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
}
