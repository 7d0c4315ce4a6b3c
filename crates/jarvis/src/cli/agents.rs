//! `jarvis agents [list|show|put|delete]`: the agents of a running Jarvis (HTTP endpoints, or
//! `ai` prompts run through the AI gateway), one per task domain (`/api/v1/agents`), registered
//! and inspected from a terminal.

use clap::Subcommand;
use serde_json::Value;

use crate::api::types::{wire_time, AgentSpec};
use crate::cli::common::{labelled, print_one, put_body};
use crate::client::{json_text, Connection};

/// `jarvis agents …`
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Every agent, by domain (the default).
    List,
    /// The agent of one domain with every field, labelled.
    Show {
        /// The domain.
        domain: String,
    },
    /// Register the agent of a domain, or replace it (PUT /api/v1/agents/{domain}). Fields
    /// left out take their defaults: `jarvis agents put music http://127.0.0.1:8001/run`, or
    /// an ai agent: `jarvis agents put summaries --model openai/gpt-4o-mini --prompt 'Summarise
    /// {{parameters.text}}'`.
    Put {
        /// The domain whose tasks it runs (also its circuit breaker's name).
        domain: String,
        /// Where Jarvis POSTs each attempt (http:// or https://); may be left out when --body
        /// gives it.
        #[arg(value_name = "URL")]
        address: Option<String>,
        /// Per-attempt timeout of tasks that give none, ms.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Tasks of the domain submitted without useLearned get learned parameters (true or
        /// false).
        #[arg(long, value_name = "BOOL")]
        use_learned: Option<bool>,
        /// An ai agent's model (makes the agent of kind ai).
        #[arg(long, conflicts_with = "address")]
        model: Option<String>,
        /// An ai agent's prompt template (makes the agent of kind ai).
        #[arg(long, conflicts_with = "address")]
        prompt: Option<String>,
        /// The whole body of the PUT as a JSON object (docs/api.md, Agents); the options above
        /// are set over it.
        #[arg(long, value_name = "JSON")]
        body: Option<String>,
    },
    /// Remove the agent of a domain.
    Delete {
        /// The domain.
        domain: String,
    },
}

/// What an agent calls: its URL, or `ai <model>` for an `ai` agent.
fn target(a: &AgentSpec) -> String {
    match a.kind {
        crate::model::agent::AgentKind::Http => a.url.clone(),
        crate::model::agent::AgentKind::Ai => {
            format!("ai {}", a.model.as_deref().unwrap_or("-"))
        }
    }
}

/// The table of `jarvis agents`: a row per agent.
pub fn table(agents: &[AgentSpec]) -> String {
    let mut rows = vec![[
        "DOMAIN".to_string(),
        "URL".into(),
        "TIMEOUT".into(),
        "USE LEARNED".into(),
        "UPDATED".into(),
    ]];
    for a in agents {
        rows.push([
            a.domain.to_string(),
            target(a),
            format!("{} ms", a.timeout_ms),
            if a.use_learned { "yes" } else { "no" }.into(),
            wire_time(&a.updated_at),
        ]);
    }
    crate::client::columns(&rows, "(no agent)")
}

/// Every field of one agent, one labelled line each.
pub fn detail(a: &AgentSpec) -> String {
    labelled(&[
        ("domain", a.domain.to_string()),
        ("url", target(a)),
        ("timeout", format!("{} ms", a.timeout_ms)),
        (
            "use learned",
            if a.use_learned { "yes" } else { "no" }.into(),
        ),
        ("created at", wire_time(&a.created_at)),
        ("updated at", wire_time(&a.updated_at)),
    ])
}

/// Runs one `jarvis agents` command and prints the answer (`--json`: the `data` as JSON).
pub async fn run(
    connection: &Connection,
    json: bool,
    command: Option<AgentsCommand>,
) -> anyhow::Result<()> {
    let client = connection.client()?;
    let path = |domain: &str| format!("/api/v1/agents/{domain}");
    let one: AgentSpec = match command.unwrap_or(AgentsCommand::List) {
        AgentsCommand::List => {
            let all: Vec<AgentSpec> = client.get("/api/v1/agents").await?;
            if json {
                crate::cli::common::outln(&json_text(&all)?);
            } else {
                crate::cli::common::out(&table(&all));
            }
            return Ok(());
        }
        AgentsCommand::Show { domain } => client.get(&path(&domain)).await?,
        AgentsCommand::Put {
            domain,
            address,
            timeout_ms,
            use_learned,
            model,
            prompt,
            body,
        } => {
            let ai = (model.is_some() || prompt.is_some()).then(|| Value::from("ai"));
            let fields = put_body(
                body.as_deref(),
                [
                    ("kind", ai),
                    ("url", address.map(Value::from)),
                    ("model", model.map(Value::from)),
                    ("prompt", prompt.map(Value::from)),
                    ("timeoutMs", timeout_ms.map(Value::from)),
                    ("useLearned", use_learned.map(Value::from)),
                ],
            )?;
            client.put(&path(&domain), &fields).await?
        }
        AgentsCommand::Delete { domain } => {
            client.delete::<()>(&path(&domain)).await?;
            crate::cli::common::outln(&format!("agent of domain {domain} deleted"));
            return Ok(());
        }
    };
    print_one(json, &one, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_detail_show_every_agent_field() {
        let all: Vec<AgentSpec> = serde_json::from_value(serde_json::json!([
            {"domain": "music", "url": "http://127.0.0.1:8001/run", "timeoutMs": 30000,
             "useLearned": true, "createdAt": "2026-01-01T00:00:00Z",
             "updatedAt": "2026-01-02T00:00:00Z"}
        ]))
        .unwrap();
        assert_eq!(
            table(&all),
            concat!(
                "DOMAIN  URL                        TIMEOUT   USE LEARNED  UPDATED\n",
                "music   http://127.0.0.1:8001/run  30000 ms  yes          2026-01-02T00:00:00Z\n",
            )
        );
        assert_eq!(
            detail(&all[0]),
            concat!(
                "domain:      music\n",
                "url:         http://127.0.0.1:8001/run\n",
                "timeout:     30000 ms\n",
                "use learned: yes\n",
                "created at:  2026-01-01T00:00:00Z\n",
                "updated at:  2026-01-02T00:00:00Z\n",
            )
        );
        assert!(table(&[]).contains("(no agent)"));
    }
}
