//! The AI gateway's plain types the config file and the store share: what a model costs, and
//! the budgets calls are held to (docs/api.md, AI gateway).

use serde::{Deserialize, Serialize};

/// A model's price, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
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

/// The providers a model group's deployment may name.
pub const GROUP_PROVIDERS: [&str; 3] = ["openai", "anthropic", "gemini"];

/// A model group (`[ai.models.<group>]`): callers name the group as their `model`, and the
/// gateway serves it from its deployments, in order (or weighted at random when weights are
/// given), then from its fallback groups.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(examples(json!({"deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]})))]
pub struct ModelGroup {
    /// The deployments, tried in this order unless weights are given.
    pub deployments: Vec<GroupDeployment>,
    /// Groups tried after every deployment of this one, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// Connecting to a deployment, ms (over `JARVIS_AI_CONNECT_TIMEOUT_MS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// A streamed call until its first byte, ms (over `JARVIS_AI_FIRST_BYTE_TIMEOUT_MS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout_ms: Option<u64>,
    /// A whole non-streamed call, ms (over `JARVIS_AI_TIMEOUT_MS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retries (calls after a request's first) allowed, as a percentage of the group's
    /// requests over the last 10 s (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget_percent: Option<f64>,
    /// Retries allowed per second whatever the traffic (default 1), so that a quiet group
    /// still falls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget_min_per_second: Option<f64>,
}

/// One deployment of a model group.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupDeployment {
    /// Its name (`x-jarvis-deployment`; its breaker is `ai-<name>`); default `<group>-<n>`,
    /// n counting from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `openai` (or any OpenAI-compatible server), `anthropic` or `gemini`.
    pub provider: String,
    /// The model, as the provider names it.
    pub model: String,
    /// The endpoint; default the provider's (`OPENAI_BASE_URL` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The environment variable that holds its key (never the key itself); default the
    /// provider's (`OPENAI_API_KEY` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    /// Its share of the group's requests, when the group is weighted (every deployment of a
    /// weighted group gives one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

impl GroupDeployment {
    /// Its name in group `group` at position `index` (from 0).
    pub fn name_in(&self, group: &str, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{group}-{}", index + 1))
    }
}

/// Whether `var` may be named by a deployment's `keyEnv`: a variable name (A-Z, 0-9, _) that
/// holds `API_KEY` (so that no other secret of the environment can be sent to an endpoint).
pub fn is_key_var(var: &str) -> bool {
    var.contains("API_KEY")
        && var
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The longest any group timeout may be, ms (the range of the `JARVIS_AI_*` timeouts).
const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// What is wrong with `groups`, as one message naming the key under `at` (`ai.models`), if
/// anything: names, providers, keys, weights, timeouts, fallbacks (known, no cycles), and
/// deployment names unique across groups.
pub fn groups_problem(
    groups: &std::collections::BTreeMap<String, ModelGroup>,
    at: &str,
) -> Option<String> {
    let mut names = std::collections::BTreeMap::<String, String>::new();
    for (group, g) in groups {
        if let Some(p) = group_problem(group, g, &|f| groups.contains_key(f)) {
            return Some(format!("{at}.{p}"));
        }
        for (i, d) in g.deployments.iter().enumerate() {
            let name = d.name_in(group, i);
            if let Some(other) = names.insert(name.clone(), group.clone()) {
                return Some(format!(
                    "{at}.{group}.deployments[{i}]: the deployment name {name} is also used in \
                     group {other}; give one of them another name"
                ));
            }
        }
    }
    // Cycles: a depth-first walk from every group along its fallbacks.
    for start in groups.keys() {
        let mut path = vec![start.as_str()];
        if let Some(cycle) = find_cycle(groups, &mut path) {
            return Some(format!(
                "{at}.{start}.fallbacks: the fallbacks go round in a circle ({cycle})"
            ));
        }
    }
    None
}

fn find_cycle<'a>(
    groups: &'a std::collections::BTreeMap<String, ModelGroup>,
    path: &mut Vec<&'a str>,
) -> Option<String> {
    let last = *path.last()?;
    for f in groups
        .get(last)
        .map(|g| g.fallbacks.as_slice())
        .unwrap_or(&[])
    {
        if path.contains(&f.as_str()) {
            let mut shown: Vec<&str> = path.clone();
            shown.push(f);
            return Some(shown.join(" -> "));
        }
        path.push(f);
        if let Some(c) = find_cycle(groups, path) {
            return Some(c);
        }
        path.pop();
    }
    None
}

/// What is wrong with group `group` alone (its fallbacks known when `known` says so), as
/// `<group>…: message`.
pub fn group_problem(group: &str, g: &ModelGroup, known: &dyn Fn(&str) -> bool) -> Option<String> {
    if let Err(e) = crate::names::Name::parse(group) {
        return Some(format!("{group}: {e}"));
    }
    if GROUP_PROVIDERS
        .iter()
        .any(|p| group.eq_ignore_ascii_case(p))
    {
        return Some(format!(
            "{group}: a group cannot be named after a provider ({group}/<model> names the \
             provider's models)"
        ));
    }
    if g.deployments.is_empty() {
        return Some(format!(
            "{group}.deployments: a group needs at least one deployment"
        ));
    }
    let weighted = g.deployments.iter().filter(|d| d.weight.is_some()).count();
    if weighted != 0 && weighted != g.deployments.len() {
        return Some(format!(
            "{group}.deployments: give every deployment a weight, or none (ordered)"
        ));
    }
    for (i, d) in g.deployments.iter().enumerate() {
        let at = format!("{group}.deployments[{i}]");
        if !GROUP_PROVIDERS.contains(&d.provider.as_str()) {
            return Some(format!(
                "{at}.provider: unknown provider {:?}: expected openai, anthropic or gemini",
                d.provider
            ));
        }
        if d.model.trim().is_empty() {
            return Some(format!("{at}.model: the model name is empty"));
        }
        if let Some(name) = &d.name {
            if let Err(e) = crate::names::Name::parse(name) {
                return Some(format!("{at}.name: {e}"));
            }
        }
        let name = d.name_in(group, i);
        if GROUP_PROVIDERS.contains(&name.as_str()) || name.len() + 3 > crate::names::Name::MAX_LEN
        {
            return Some(format!(
                "{at}.name: {name} cannot name a deployment (a provider's own deployment, or \
                 too long for its breaker ai-{name})"
            ));
        }
        if let Some(url) = &d.base_url {
            let ok = url::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !ok {
                return Some(format!(
                    "{at}.baseUrl: {url:?} is not an http:// or https:// URL with a host"
                ));
            }
            if let Err(why) = super::outbound::check_str(url) {
                return Some(format!("{at}.baseUrl: {why}"));
            }
        }
        if let Some(var) = &d.key_env {
            if !is_key_var(var) {
                return Some(format!(
                    "{at}.keyEnv: expected the name of an environment variable (A-Z, 0-9, _) \
                     that holds API_KEY, such as OPENAI_API_KEY_2; never the key itself"
                ));
            }
        }
        if d.weight == Some(0) {
            return Some(format!("{at}.weight: a weight is 1 or more"));
        }
    }
    for (key, v) in [
        ("connectTimeoutMs", g.connect_timeout_ms),
        ("firstByteTimeoutMs", g.first_byte_timeout_ms),
        ("timeoutMs", g.timeout_ms),
    ] {
        if let Some(ms) = v {
            if !(100..=MAX_TIMEOUT_MS).contains(&ms) {
                return Some(format!(
                    "{group}.{key}: expected a whole number from 100 to {MAX_TIMEOUT_MS} (got {ms})"
                ));
            }
        }
    }
    for (key, v) in [
        ("retryBudgetPercent", g.retry_budget_percent),
        ("retryBudgetMinPerSecond", g.retry_budget_min_per_second),
    ] {
        if let Some(x) = v {
            if !x.is_finite() || !(0.0..=1000.0).contains(&x) {
                return Some(format!(
                    "{group}.{key}: expected a number from 0 to 1000 (got {x})"
                ));
            }
        }
    }
    for f in &g.fallbacks {
        if f == group {
            return Some(format!(
                "{group}.fallbacks: a group cannot fall back to itself"
            ));
        }
        if !known(f) {
            return Some(format!(
                "{group}.fallbacks: unknown fallback group {f:?} (no [ai.models.{f}])"
            ));
        }
    }
    None
}
