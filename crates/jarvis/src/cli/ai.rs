//! `jarvis ai [usage|budgets|prices|models]`: what the AI gateway of a running Jarvis used and
//! spent, its budgets, prices and models.

use clap::Subcommand;
use serde::Deserialize;

use crate::api::types::{AiUsageView, BudgetView};
use crate::client::{columns, json_text, Connection};
use crate::model::ai::Price;

/// `jarvis ai …`
#[derive(Debug, Subcommand)]
pub enum AiCommand {
    /// Usage and spend, grouped (the default: this UTC month, by model).
    Usage {
        /// Group by model, deployment, domain, token or hour.
        #[arg(long, default_value = "model")]
        by: String,
        /// From (RFC 3339, or a date: from its start).
        #[arg(long)]
        since: Option<String>,
        /// Until (RFC 3339, or a date: to its end).
        #[arg(long)]
        until: Option<String>,
    },
    /// The configured budgets and what they have spent.
    Budgets,
    /// The price of every listed model (USD per million tokens).
    Prices,
    /// The models the configured providers offer (`GET /v1/models`).
    Models,
}

/// The usage table: a row per group and the total.
pub fn usage_table(u: &AiUsageView) -> String {
    let mut rows = vec![[
        u.by.to_uppercase(),
        "REQUESTS".to_string(),
        "ERRORS".into(),
        "PROMPT TOKENS".into(),
        "COMPLETION TOKENS".into(),
        "COST USD".into(),
    ]];
    let line = |r: &crate::api::types::AiUsageRowView| {
        [
            if r.key.is_empty() {
                "(none)".to_string()
            } else {
                r.key.clone()
            },
            r.requests.to_string(),
            r.errors.to_string(),
            r.prompt_tokens.to_string(),
            r.completion_tokens.to_string(),
            format!("{:.6}", r.cost_usd),
        ]
    };
    if u.rows.is_empty() {
        return columns(&rows[..1], "") + "(no AI calls in this range)\n";
    }
    rows.extend(u.rows.iter().map(line));
    rows.push(line(&u.total));
    columns(&rows, "")
}

/// The budgets table.
pub fn budgets_table(budgets: &[BudgetView]) -> String {
    let mut rows = vec![[
        "SCOPE".to_string(),
        "DAILY USD".into(),
        "SPENT TODAY".into(),
        "MONTHLY USD".into(),
        "SPENT THIS MONTH".into(),
        "STATE".into(),
    ]];
    let limit = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2}"));
    for b in budgets {
        rows.push([
            b.scope.clone(),
            limit(b.daily_usd),
            format!("{:.6}", b.spent_today_usd),
            limit(b.monthly_usd),
            format!("{:.6}", b.spent_this_month_usd),
            if b.exhausted { "exhausted" } else { "ok" }.into(),
        ]);
    }
    columns(
        &rows,
        "(no budget configured: [[ai.budgets]] in the config file)",
    )
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelItem>,
}

#[derive(Deserialize)]
struct ModelItem {
    id: String,
    #[serde(default)]
    owned_by: Option<String>,
}

/// Runs one `jarvis ai` command and prints the answer (`--json`: the data as JSON).
pub async fn run(connection: &Connection, json: bool, command: AiCommand) -> anyhow::Result<()> {
    let client = connection.client()?;
    let print = |text: String| crate::cli::common::out(&text);
    match command {
        AiCommand::Usage { by, since, until } => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("by", &by);
            for (k, v) in [("since", since), ("until", until)] {
                if let Some(v) = v {
                    query.append_pair(k, &v);
                }
            }
            let usage: AiUsageView = client
                .get(&format!("/api/v1/ai/usage?{}", query.finish()))
                .await?;
            print(if json {
                json_text(&usage)? + "\n"
            } else {
                usage_table(&usage)
            });
        }
        AiCommand::Budgets => {
            let budgets: Vec<BudgetView> = client.get("/api/v1/ai/budgets").await?;
            print(if json {
                json_text(&budgets)? + "\n"
            } else {
                budgets_table(&budgets)
            });
        }
        AiCommand::Prices => {
            let prices: std::collections::BTreeMap<String, Price> =
                client.get("/api/v1/ai/prices").await?;
            if json {
                print(json_text(&prices)? + "\n");
            } else {
                let mut rows = vec![[
                    "MODEL".to_string(),
                    "INPUT USD/M".into(),
                    "OUTPUT USD/M".into(),
                ]];
                for (model, p) in &prices {
                    rows.push([
                        model.clone(),
                        format!("{}", p.input_per_million),
                        format!("{}", p.output_per_million),
                    ]);
                }
                print(columns(&rows, "(no prices)"));
            }
        }
        AiCommand::Models => {
            let text = client.get_raw("/v1/models").await?;
            if json {
                print(text + "\n");
            } else {
                let list: ModelList = serde_json::from_str(&text)?;
                let mut rows = vec![["MODEL".to_string(), "OWNED BY".into()]];
                for m in list.data {
                    rows.push([m.id, m.owned_by.unwrap_or_else(|| "-".into())]);
                }
                print(columns(&rows, "(no models: no provider key is set)"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_table_has_a_row_per_group_and_a_total() {
        let u: AiUsageView = serde_json::from_value(serde_json::json!({
            "since": "2026-12-01T00:00:00Z", "until": "2026-12-06T14:00:00Z", "by": "domain",
            "rows": [
                {"key": "", "requests": 2, "errors": 1, "promptTokens": 10, "completionTokens": 5, "costUsd": 0.5},
                {"key": "research", "requests": 3, "errors": 0, "promptTokens": 30, "completionTokens": 6, "costUsd": 1.25}
            ],
            "total": {"key": "total", "requests": 5, "errors": 1, "promptTokens": 40, "completionTokens": 11, "costUsd": 1.75}
        }))
        .unwrap();
        assert_eq!(
            usage_table(&u),
            concat!(
                "DOMAIN    REQUESTS  ERRORS  PROMPT TOKENS  COMPLETION TOKENS  COST USD\n",
                "(none)    2         1       10             5                  0.500000\n",
                "research  3         0       30             6                  1.250000\n",
                "total     5         1       40             11                 1.750000\n",
            )
        );
    }
}
