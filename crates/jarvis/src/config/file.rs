//! The optional config file (`jarvis.toml`): its shape, and the checks that refuse a wrong file
//! before anything starts.
//!
//! `jarvis config check` and `jarvis serve` read the file through the same [`load_file`], which
//! validates services, agents and schedules with the very functions `serve` later uses to write
//! them to the store (so a file `config check` accepts does not fail at start), and breaker
//! overrides and learning spaces with the ranges of the matching settings. A refused value reads
//! like a refused variable: `config file jarvis.toml: invalid breakers.x.failureThreshold="0":
//! expected a whole number from 1 to 1000`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::setting::{invalid_message, Kind};
use super::ConfigError;
use crate::names::Name;

/// Per-breaker overrides, as given in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BreakerFileEntry {
    /// Consecutive failures that open this circuit.
    #[serde(default)]
    pub failure_threshold: Option<u32>,
    /// How long this circuit stays open, in ms.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Successful trials needed to close.
    #[serde(default)]
    pub success_threshold: Option<u32>,
    /// Concurrent trial calls admitted while half-open.
    #[serde(default)]
    pub half_open_max_calls: Option<u32>,
}

/// What `[breakers.<name>]` accepts: the thresholds and the open period have the ranges of their
/// `CIRCUIT_BREAKER_*` variables; trials are what the breaker library takes.
const BREAKER_KEYS: [(&str, Kind); 4] = [
    ("failureThreshold", super::breakers::FAILURE_THRESHOLD.kind),
    ("timeoutMs", super::breakers::TIMEOUT_MS.kind),
    ("successThreshold", Kind::Int { min: 1, max: 1_000 }),
    (
        "halfOpenMaxCalls",
        Kind::Int {
            min: 1,
            max: jarvis_breaker::MAX_TRIALS as u64,
        },
    ),
];

/// The optional config file (`jarvis.toml`). Every section is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Settings that may also come from the environment; the environment wins.
    #[serde(default)]
    pub server: FileServer,
    /// Services to monitor, by name.
    #[serde(default)]
    pub services: BTreeMap<String, crate::model::service::ServiceInput>,
    /// Agents, by domain.
    #[serde(default)]
    pub agents: BTreeMap<String, crate::model::agent::AgentInput>,
    /// Per-breaker settings, by breaker name.
    #[serde(default)]
    pub breakers: BTreeMap<String, BreakerFileEntry>,
    /// The learner: settings and the search space per `"domain/action"`.
    #[serde(default)]
    pub learning: FileLearning,
    /// Recurring schedules, by name (the body of `PUT /api/v1/schedules/{name}`).
    #[serde(default)]
    pub schedules: BTreeMap<String, crate::model::schedule::ScheduleInput>,
    /// The AI gateway: prices, budgets and model groups.
    #[serde(default)]
    pub ai: FileAi,
    /// Alert rules and webhooks (`config::alerts`).
    #[serde(default)]
    pub alerts: super::alerts::FileAlerts,
    /// API tokens with their roles (`[[auth.tokens]]`: `name`, `role`, `token` or `sha256`),
    /// read again on SIGHUP and every `JARVIS_AUTH_RELOAD_MS` (`crate::auth`).
    #[serde(default)]
    pub auth: crate::auth::TokensTable,
}

/// The `[ai]` table of the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileAi {
    /// Prices by `"provider/model"` (a name or a `-`-bounded prefix of model names), over the
    /// built-in list prices: `[ai.prices."openai/gpt-4o"]` with `inputPerMillion` and
    /// `outputPerMillion` (USD per million tokens).
    #[serde(default)]
    pub prices: BTreeMap<String, crate::model::ai::Price>,
    /// Spending limits: `[[ai.budgets]]` with `domain` or `token` (or neither: every call)
    /// and `dailyUsd`, `monthlyUsd` or both.
    #[serde(default)]
    pub budgets: Vec<crate::model::ai::Budget>,
    /// Model groups, by the name callers give as `model`: `[ai.models.<group>]` with
    /// `deployments` (provider, model, optional `baseUrl`, `keyEnv`, `weight`, `name`) and
    /// `fallbacks` (docs/api.md, "Model groups and fallback").
    #[serde(default)]
    pub models: BTreeMap<String, crate::model::ai::ModelGroup>,
}

/// The `[server]` table of the config file: values under variables of the environment, checked
/// by the same declarations (numbers are wide here so that the range error is ours).
///
/// Keys are camelCase like every other table (`logLevel`, `logDir`, `dataDir`). The snake_case
/// spellings of earlier versions (`log_level`, `log_dir`, `data_dir`) are still read, so that an
/// existing file keeps working; a file that gives both spellings of one key is refused
/// (`duplicate field`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileServer {
    /// HTTP port (under `JARVIS_PORT`/`PORT`).
    pub port: Option<i64>,
    /// Log level (under `LOG_LEVEL`).
    #[serde(alias = "log_level")]
    pub log_level: Option<String>,
    /// Where log files go (under `JARVIS_LOG_DIR`).
    #[serde(alias = "log_dir")]
    pub log_dir: Option<PathBuf>,
    /// Where the embedded database goes (under `JARVIS_DATA_DIR`).
    #[serde(alias = "data_dir")]
    pub data_dir: Option<PathBuf>,
    /// Worker concurrency per instance (under `JARVIS_CONCURRENCY`).
    pub concurrency: Option<i64>,
}

/// The `[learning]` table of the config file. The environment (`JARVIS_LEARNING_*`) wins.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileLearning {
    /// Share of learned choices made uniformly at random (0–1).
    pub exploration: Option<f64>,
    /// Runs of a domain/action before anything is recommended.
    pub min_runs: Option<i64>,
    /// How often an instance merges its new results into the shared state, ms.
    pub flush_ms: Option<i64>,
    /// Weight of the impact score in the objective (0–1; the rest is success).
    pub impact_weight: Option<f64>,
    /// Smallest learned timeout, ms.
    pub timeout_min_ms: Option<u64>,
    /// Largest learned timeout, ms.
    pub timeout_max_ms: Option<u64>,
    /// Between values whose utility is within this share of the best, the cheaper per run is
    /// chosen (0–1; 0: cost plays no part).
    pub cost_tolerance: Option<f64>,
    /// The values each parameter may take, per `"domain/action"`, so that values nobody sent
    /// yet can be tried: `[learning.spaces."music/generate-beat".genre]` with
    /// `kind = "categorical"`, `values = [...]`, or `kind = "numeric"`, `min`, `max`, `integer`.
    #[serde(default)]
    pub spaces: BTreeMap<String, BTreeMap<String, jarvis_learning::ParameterSpace>>,
}

/// Loads and validates the config file at `path`.
pub fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse_file(path, &text)
}

/// Parses and validates the text of a config file read from `path`.
pub(crate) fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    validate(&file).map_err(|message| ConfigError::File {
        path: path.display().to_string(),
        message,
    })?;
    Ok(file)
}

/// What `serve` would refuse, as one message naming the key. The `[server]` values and the
/// learner's variables-backed keys are checked when they are read (see `setting::Reader`).
fn validate(file: &FileConfig) -> Result<(), String> {
    let now = chrono::Utc::now();
    crate::auth::tokens_of(&file.auth, "auth.tokens")?;
    for (name, s) in &file.services {
        let parsed = Name::parse(name).map_err(|e| format!("services.{name}: {e}"))?;
        s.clone()
            .into_spec(parsed, now)
            .map_err(|e| format!("services.{name}.{e}"))?;
    }
    for (name, a) in &file.agents {
        let parsed = Name::parse(name).map_err(|e| format!("agents.{name}: {e}"))?;
        if crate::model::agent::BUILTIN_DOMAINS.contains(&name.as_str()) {
            return Err(format!(
                "agents.{name}: domain {name} is served by a built-in agent; an HTTP agent \
                 cannot replace it (use another domain)"
            ));
        }
        a.clone()
            .into_spec(parsed, now)
            .map_err(|e| format!("agents.{name}.{e}"))?;
        if a.health_url.is_some() && file.services.contains_key(name) {
            return Err(format!(
                "agents.{name}.healthUrl: the agent's health check is the service {name}, which \
                 [services.{name}] defines too; keep one of them"
            ));
        }
    }
    for (name, s) in &file.schedules {
        let parsed = Name::parse(name).map_err(|e| format!("schedules.{name}: {e}"))?;
        s.clone()
            .into_spec(parsed, now)
            .map_err(|e| format!("schedules.{name}.{e}"))?;
    }
    for (name, b) in &file.breakers {
        Name::parse(name).map_err(|e| format!("breakers.{name}: {e}"))?;
        let values = [
            b.failure_threshold.map(u64::from),
            b.timeout_ms,
            b.success_threshold.map(u64::from),
            b.half_open_max_calls.map(u64::from),
        ];
        for ((key, kind), value) in BREAKER_KEYS.iter().zip(values) {
            if let Some(v) = value {
                let raw = v.to_string();
                kind.parse(&raw)
                    .map_err(|e| invalid_message(&format!("breakers.{name}.{key}"), &raw, &e))?;
            }
        }
    }
    validate_learning(&file.learning)?;
    super::alerts::validate(&file.alerts)?;
    validate_ai(&file.ai)
}

fn validate_ai(ai: &FileAi) -> Result<(), String> {
    for (name, price) in &ai.prices {
        let ok = name
            .split_once('/')
            .is_some_and(|(p, m)| matches!(p, "openai" | "anthropic" | "gemini") && !m.is_empty());
        if !ok {
            return Err(format!(
                "ai.prices.{name:?}: expected \"provider/model\" with provider openai, \
                 anthropic or gemini"
            ));
        }
        if !price.is_valid() {
            return Err(format!(
                "ai.prices.{name:?}: prices must be dollars per million tokens, 0 or more"
            ));
        }
    }
    for (i, budget) in ai.budgets.iter().enumerate() {
        if let Some(problem) = budget.problem() {
            return Err(format!("ai.budgets[{i}]: {problem}"));
        }
        if let Some(d) = &budget.domain {
            Name::parse(d).map_err(|e| format!("ai.budgets[{i}].domain: {e}"))?;
        }
    }
    if let Some(problem) = crate::model::ai::groups_problem(&ai.models, "ai.models") {
        return Err(problem);
    }
    Ok(())
}

fn validate_learning(l: &FileLearning) -> Result<(), String> {
    for (key, value) in [
        ("learning.impactWeight", l.impact_weight),
        ("learning.costTolerance", l.cost_tolerance),
    ] {
        if let Some(v) = value {
            let raw = v.to_string();
            Kind::Share
                .parse(&raw)
                .map_err(|e| invalid_message(key, &raw, &e))?;
        }
    }
    if let (Some(min), Some(max)) = (l.timeout_min_ms, l.timeout_max_ms) {
        if max < min {
            return Err(invalid_message(
                "learning.timeoutMaxMs",
                &max.to_string(),
                &format!("at least learning.timeoutMinMs ({min})"),
            ));
        }
    }
    for (key, params) in &l.spaces {
        let ok = key
            .split_once('/')
            .is_some_and(|(d, a)| Name::parse(d).is_ok() && Name::parse(a).is_ok());
        if !ok {
            return Err(format!(
                "learning.spaces.{key:?}: expected \"domain/action\" (two names)"
            ));
        }
        for (param, space) in params {
            let at = format!("learning.spaces.{key:?}.{param}");
            match space {
                jarvis_learning::ParameterSpace::Categorical { values } if values.is_empty() => {
                    return Err(invalid_message(
                        &format!("{at}.values"),
                        "[]",
                        "at least one value",
                    ));
                }
                jarvis_learning::ParameterSpace::Numeric { min, max, .. } => {
                    for (name, v) in [("min", min), ("max", max)] {
                        if !v.is_finite() {
                            return Err(invalid_message(
                                &format!("{at}.{name}"),
                                &v.to_string(),
                                "a finite number",
                            ));
                        }
                    }
                    if max < min {
                        return Err(invalid_message(
                            &format!("{at}.max"),
                            &max.to_string(),
                            &format!("at least min ({min})"),
                        ));
                    }
                }
                jarvis_learning::ParameterSpace::Categorical { .. } => {}
            }
        }
    }
    Ok(())
}
