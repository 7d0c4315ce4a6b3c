//! Configuration: the environment variables of docs/api.md, Environment variables, plus an
//! optional `jarvis.toml` (docs/api.md, Config file).
//!
//! Configuration is read once at start into a [`Config`] value; nothing else in the crate reads the
//! environment. Layering is: built-in defaults, then the config file, then the environment (the
//! environment wins). A wrong value is refused with a [`ConfigError`] whose message names the
//! variable, the value and what was expected; secret values are never echoed back.
//!
//! Every setting is one declaration ([`setting::Setting`]: names, kind and range, default,
//! secret or not, help), kept next to the group of [`Config`] that uses it:
//!
//! - [`server`]: environment, address, token, instance name, data directory, request limits;
//! - [`auth`]: more tokens with roles, their reload, rate limits per token and per address;
//! - [`telemetry`]: log level, format and directory, CloudWatch EMF lines;
//! - [`store`]: `DATABASE_URL` or the embedded SQLite file;
//! - [`breakers`]: breaker defaults and shared breaker state;
//! - [`health`]: the health monitor;
//! - [`tasks`]: queue, workers, retries, history retention;
//! - [`learning`]: the learner;
//! - [`integrations`]: Redis and the model providers;
//! - [`alerts`]: alert rules, webhooks and their delivery (with the `[alerts]` table);
//! - [`file`]: the config file's shape and checks;
//! - [`docs`]: the settings table of README.md and docs/api.md, generated from the declarations.
//!
//! Parsing takes the environment as a map ([`Config::from_env_map`]) so tests can exercise every
//! rule without touching the process environment.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::Value;

pub mod alerts;
pub mod auth;
pub mod breakers;
pub mod docs;
pub mod file;
pub mod health;
pub mod integrations;
pub mod learning;
pub mod server;
pub mod setting;
pub mod store;
pub mod tasks;
pub mod telemetry;

pub use alerts::AlertSettings;
pub use auth::{AuthSettings, Rate};
pub use breakers::{BreakerDefaults, BreakerSettings};
pub use file::{load_file, BreakerFileEntry, FileAi, FileConfig, FileLearning, FileServer};
pub use health::HealthConfig;
pub use integrations::{AiCacheSettings, AiTimeouts, Integrations, ProviderKeys, RedisConfig};
pub use learning::LearningSettings;
pub use server::{secrets_prefix, Environment, ServerSettings};
pub use store::{DatabaseUrl, StoreConfig};
pub use tasks::TaskSettings;
pub use telemetry::{LogFormat, LogLevel, TelemetrySettings};

use setting::{Reader, Setting};

/// Every declared setting, group by group, in the order of the docs' table.
pub fn all_settings() -> impl Iterator<Item = &'static Setting> {
    [
        server::SETTINGS,
        auth::SETTINGS,
        telemetry::SETTINGS,
        store::SETTINGS,
        breakers::SETTINGS,
        tasks::SETTINGS,
        health::SETTINGS,
        learning::SETTINGS,
        integrations::SETTINGS,
        alerts::SETTINGS,
    ]
    .into_iter()
    .flatten()
    .copied()
}

/// The whole effective configuration, by concern.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server: environment, address, token, instance name, data directory, limits.
    pub server: ServerSettings,
    /// More tokens with roles, their reload, rate limits.
    pub auth: AuthSettings,
    /// Log lines and CloudWatch metrics lines.
    pub telemetry: TelemetrySettings,
    /// Where the state lives.
    pub store: StoreConfig,
    /// Breaker defaults and shared breaker state.
    pub breakers: BreakerSettings,
    /// The health monitor.
    pub health: HealthConfig,
    /// Queue, worker and history settings.
    pub tasks: TaskSettings,
    /// The learner's settings.
    pub learning: LearningSettings,
    /// Redis and the model providers.
    pub integrations: Integrations,
    /// Alert rules, webhooks and delivery.
    pub alerts: AlertSettings,
    /// The parsed config file (services, agents, per-breaker settings, schedules).
    pub file: FileConfig,
    /// Where the config file was read from, if any.
    pub file_path: Option<PathBuf>,
    /// Every setting as read, secrets masked, by its place in the `config check` view.
    shown: BTreeMap<String, Value>,
}

/// A configuration value that was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// An environment variable had a value that does not fit.
    #[error("invalid {var}={value}: expected {expected}")]
    Invalid {
        /// The variable's name.
        var: String,
        /// The value as given (masked for secrets), already quoted.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// A required value was missing.
    #[error("missing {var}: {why}")]
    Missing {
        /// The variable's name.
        var: String,
        /// Why it is required.
        why: String,
    },
    /// The config file could not be read, parsed or accepted.
    #[error("config file {path}: {message}")]
    File {
        /// The file's path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl Config {
    /// Reads the configuration from the process environment (and the config file it names).
    pub fn from_env(config_path: Option<PathBuf>) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Config::from_env_map(&vars, config_path)
    }

    /// Reads the configuration from `vars`; `config_path` (from `--config`) wins over
    /// `JARVIS_CONFIG`. A `jarvis.toml` in the working directory is read when neither is given.
    pub fn from_env_map(
        vars: &HashMap<String, String>,
        config_path: Option<PathBuf>,
    ) -> Result<Config, ConfigError> {
        let mut r = Reader::new(vars);
        // First: the URLs of the config file's services, agents and webhooks are checked
        // against it.
        if let Some(raw) = r.opt::<String>(&integrations::OUTBOUND_ALLOW)? {
            crate::model::outbound::allow(
                crate::model::outbound::Allowed::parse(&raw).expect("checked by its setting"),
            );
        }
        let file_path = match config_path {
            // `--config '~/jarvis.toml'` (quoted, so the shell left it alone) is read like the
            // variable would be.
            Some(p) => Some(PathBuf::from(
                setting::expand_home(&p.to_string_lossy(), vars.get("HOME").map(String::as_str))
                    .map_err(|expected| ConfigError::Invalid {
                        var: "--config".into(),
                        value: format!("{:?}", p.display().to_string()),
                        expected,
                    })?,
            )),
            None => r.opt::<PathBuf>(&server::CONFIG_FILE)?,
        }
        .or_else(|| {
            let p = PathBuf::from("jarvis.toml");
            p.is_file().then_some(p)
        });
        r.show(
            server::CONFIG_FILE.view,
            file_path.as_ref().map(|p| p.display().to_string()),
        );
        let file = match &file_path {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };
        let mut r = match &file_path {
            Some(p) => r.with_file(p, &file)?,
            None => r,
        };

        let server = ServerSettings::read(&mut r)?;
        let auth = AuthSettings::read(&mut r)?;
        let telemetry = TelemetrySettings::read(&mut r)?;
        let store = StoreConfig::read(&mut r, &server.data_dir)?;
        let breakers = BreakerSettings::read(&mut r)?;
        let health = HealthConfig::read(&mut r)?;
        let tasks = TaskSettings::read(&mut r)?;
        let learning = LearningSettings::read(&mut r, &file.learning)?;
        let mut integrations = Integrations::read(&mut r)?;
        // The keys model groups may name (`keyEnv`: a variable whose name holds `API_KEY`, so
        // that a group cannot send other secrets, the database URL or the auth token, to its
        // endpoint): read here, where the environment is, and never shown.
        for (var, v) in vars {
            if crate::model::ai::is_key_var(var) && !v.is_empty() {
                integrations
                    .providers
                    .named
                    .insert(var.clone(), secrecy::SecretString::from(v.clone()));
            }
        }
        let alerts = AlertSettings::read(&mut r, &file.alerts)?;
        let shown = r.into_shown();
        Ok(Config {
            server,
            auth,
            telemetry,
            store,
            breakers,
            health,
            tasks,
            learning,
            integrations,
            alerts,
            file,
            file_path,
            shown,
        })
    }

    /// The effective configuration as JSON with every secret masked (`jarvis config check`):
    /// every declared setting at its `view` path, then the config file's tables.
    pub fn masked_view(&self) -> Value {
        let mut view = serde_json::Map::new();
        for (path, value) in &self.shown {
            insert_at(&mut view, path, value.clone());
        }
        insert_at(&mut view, "learning.file", json(&self.learning.file));
        insert_at(&mut view, "services", json(&self.file.services));
        insert_at(&mut view, "agents", json(&self.file.agents));
        insert_at(&mut view, "breakers", json(&self.file.breakers));
        insert_at(&mut view, "schedules", json(&self.file.schedules));
        insert_at(&mut view, "alerts.rules", json(&self.file.alerts));
        // Names, roles and given hashes; a token itself is never serialized.
        insert_at(&mut view, "auth.file", json(&self.file.auth));
        Value::Object(view)
    }
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Puts `value` at the dotted `path` of `map`, making the objects on the way.
fn insert_at(map: &mut serde_json::Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = map
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(inner) = entry {
                insert_at(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests;
