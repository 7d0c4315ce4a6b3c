//! The AI gateway's plain types the config file and the store share: what a model costs, and
//! the budgets calls are held to (docs/api.md, AI gateway).

use serde::{Deserialize, Serialize};

/// A model's price, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Price {
    /// Per million prompt (input) tokens.
    pub input_per_million: f64,
    /// Per million completion (output) tokens.
    #[serde(default)]
    pub output_per_million: f64,
}

impl Price {
    /// A price from its two figures.
    pub const fn new(input_per_million: f64, output_per_million: f64) -> Price {
        Price {
            input_per_million,
            output_per_million,
        }
    }

    /// The cost of a call's tokens, USD.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input_per_million
            + completion_tokens as f64 * self.output_per_million)
            / 1_000_000.0
    }

    /// Whether both figures are finite and not negative (what the config file must give).
    pub fn is_valid(&self) -> bool {
        [self.input_per_million, self.output_per_million]
            .iter()
            .all(|p| p.is_finite() && *p >= 0.0)
    }
}

/// A spending limit, as the config file gives it (`[[ai.budgets]]`): for one domain, one token
/// (its fingerprint, as `jarvis ai usage --by token` shows it), or every call when it names
/// neither; per UTC day, per UTC month, or both.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Budget {
    /// The domain held to it (the `X-Jarvis-Domain` header, or an `ai` agent's domain).
    #[serde(default)]
    pub domain: Option<String>,
    /// The token fingerprint held to it.
    #[serde(default)]
    pub token: Option<String>,
    /// Most dollars per UTC day.
    #[serde(default)]
    pub daily_usd: Option<f64>,
    /// Most dollars per UTC month.
    #[serde(default)]
    pub monthly_usd: Option<f64>,
}

impl Budget {
    /// What is wrong with it, if anything (the config file's message).
    pub fn problem(&self) -> Option<String> {
        if self.domain.is_some() && self.token.is_some() {
            return Some("give domain or token, not both (two budgets hold both)".into());
        }
        if self.daily_usd.is_none() && self.monthly_usd.is_none() {
            return Some("give dailyUsd, monthlyUsd or both".into());
        }
        for (key, v) in [
            ("dailyUsd", self.daily_usd),
            ("monthlyUsd", self.monthly_usd),
        ] {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 {
                    return Some(format!(
                        "{key} must be a number of dollars, 0 or more (got {v})"
                    ));
                }
            }
        }
        None
    }

    /// Who it holds, for messages: `domain research`, `token tok-…`, `all calls`.
    pub fn scope(&self) -> String {
        match (&self.domain, &self.token) {
            (Some(d), _) => format!("domain {d}"),
            (_, Some(t)) => format!("token {t}"),
            _ => "all calls".into(),
        }
    }
}
