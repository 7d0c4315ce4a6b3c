//! Configuration: the environment variables of docs/api.md, Environment variables, plus an
//! optional `jarvis.toml` (docs/api.md, Config file).
//!
//! Configuration is read once at start into a [`Config`] value; nothing else in the crate reads the
//! environment. Layering is: built-in defaults, then the config file, then the environment (the
//! environment wins). A wrong value is refused with a [`ConfigError`] whose message names the
//! variable, the value and what was expected; secret values are never echoed back.
//!
//! Parsing takes the environment as a map ([`Config::from_env_map`]) so tests can exercise every
//! rule without touching the process environment.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::names::Name;

/// Where Jarvis runs: decides how strict start-up is (a token is required in production).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local development: a missing auth token is generated and printed once.
    Development,
    /// Production: every required secret must be configured.
    Production,
}

/// The minimum level of log lines that are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default: one line per notable event and per request.
    Info,
    /// Diagnostic detail.
    Debug,
    /// Everything, including dependencies' chatter.
    Trace,
}

impl LogLevel {
    /// The matching `tracing` level.
    pub fn as_tracing(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

/// How log lines look on stdout. The log file is always JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (CloudWatch-compatible). The default.
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// Defaults for every circuit breaker (the `CIRCUIT_BREAKER_*` variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerDefaults {
    /// `CIRCUIT_BREAKER_ENABLED`: when false every call passes through.
    pub enabled: bool,
    /// `CIRCUIT_BREAKER_FAILURE_THRESHOLD`: consecutive failures that open a circuit.
    pub failure_threshold: u32,
    /// `CIRCUIT_BREAKER_TIMEOUT_MS`: how long a circuit stays open before a trial call.
    pub timeout_ms: u64,
}

impl Default for BreakerDefaults {
    fn default() -> Self {
        BreakerDefaults {
            enabled: true,
            failure_threshold: 5,
            timeout_ms: 60_000,
        }
    }
}

/// Settings of the health monitor (`JARVIS_HEALTH_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthConfig {
    /// `JARVIS_HEALTH_MONITOR`: whether this instance checks services at all.
    pub enabled: bool,
    /// `JARVIS_HEALTH_CONCURRENCY`: checks in flight at once, at most.
    pub concurrency: usize,
    /// `JARVIS_HEALTH_ROUND_MS`: length of a monitoring round (one summary, one log line).
    #[serde(serialize_with = "ser_ms")]
    pub round: Duration,
    /// `JARVIS_HEALTH_RELOAD_MS`: how often the service list is re-read from the store.
    #[serde(serialize_with = "ser_ms")]
    pub reload: Duration,
    /// `JARVIS_HEALTH_HISTORY_RETENTION_HOURS`: how long check results are kept (0: not kept).
    pub history_retention_hours: u32,
    /// `JARVIS_HEALTH_HISTORY_FLUSH_MS`: the longest a result waits before it is written.
    #[serde(serialize_with = "ser_ms")]
    pub history_flush: Duration,
    /// `JARVIS_HEALTH_UPTIME_SYNC_MS`: how often uptime counts are added to the store (and,
    /// with PostgreSQL, the other instances' counts read back).
    #[serde(serialize_with = "ser_ms")]
    pub uptime_sync: Duration,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            concurrency: 1024,
            round: Duration::from_secs(5),
            reload: Duration::from_secs(10),
            history_retention_hours: 24,
            history_flush: Duration::from_secs(1),
            uptime_sync: Duration::from_secs(15),
        }
    }
}

/// Settings of the task queue, workers and history (`JARVIS_TASK_*`, `JARVIS_QUEUE_*`,
/// `JARVIS_WORKERS_ENABLED`, `JARVIS_HISTORY_RETENTION_DAYS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSettings {
    /// `JARVIS_WORKERS_ENABLED`: whether this instance runs tasks (false: API only).
    pub workers_enabled: bool,
    /// `JARVIS_TASK_LEASE_MS`: how long a claim holds without renewal; a task whose worker
    /// died is claimed again after this. Renewed every third of it.
    pub lease_ms: u64,
    /// `JARVIS_QUEUE_PREFETCH`: tasks claimed ahead of free workers (one claim fetches a
    /// batch; higher is faster on a backlog, lower is fairer between instances and priorities).
    pub prefetch: u32,
    /// `JARVIS_QUEUE_POLL_MS`: longest idle wait between looks at the queue (wake-ups by
    /// `LISTEN/NOTIFY` and by the instance's own submissions are immediate).
    pub poll_ms: u64,
    /// `JARVIS_TASK_RETRY_BASE_MS`: backoff before the second attempt; doubles per attempt.
    pub retry_base_ms: u64,
    /// `JARVIS_TASK_RETRY_MAX_MS`: longest backoff.
    pub retry_max_ms: u64,
    /// `JARVIS_HISTORY_RETENTION_DAYS`: execution records older than this are deleted (0: keep).
    pub history_retention_days: u32,
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings {
            workers_enabled: true,
            lease_ms: 30_000,
            prefetch: 1_000,
            poll_ms: 1_000,
            retry_base_ms: 1_000,
            retry_max_ms: 300_000,
            history_retention_days: 90,
        }
    }
}

/// Optional Redis connection settings (`REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`).
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Password, if any.
    pub password: Option<SecretString>,
}

/// API keys of the model providers.
#[derive(Debug, Clone, Default)]
pub struct ProviderKeys {
    /// `OPENAI_API_KEY`.
    pub openai: Option<SecretString>,
    /// `ANTHROPIC_API_KEY`.
    pub anthropic: Option<SecretString>,
    /// `GEMINI_API_KEY`.
    pub gemini: Option<SecretString>,
}

/// A PostgreSQL URL whose password never reaches `Debug`, `Display` or a log line.
#[derive(Clone)]
pub struct DatabaseUrl {
    secret: SecretString,
    redacted: String,
    host: String,
    database: String,
}

impl DatabaseUrl {
    /// Parses and validates a `postgres://` or `postgresql://` URL.
    pub fn parse(raw: &str) -> Result<DatabaseUrl, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("a postgres:// URL ({e})"))?;
        if url.scheme() != "postgres" && url.scheme() != "postgresql" {
            return Err(format!(
                "a postgres:// or postgresql:// URL, not the scheme {:?}",
                url.scheme()
            ));
        }
        let host = url.host_str().unwrap_or("localhost").to_string();
        let port = url.port().unwrap_or(5432);
        let database = url.path().trim_start_matches('/').to_string();
        let mut shown = url.clone();
        if shown.password().is_some() {
            // Cannot fail for a URL with a host, which a password implies.
            let _ = shown.set_password(Some("***"));
        }
        // Query parameters may carry a password too (`?password=`): drop them from the shown form.
        shown.set_query(None);
        Ok(DatabaseUrl {
            secret: SecretString::from(raw.to_string()),
            redacted: shown.to_string(),
            host: format!("{host}:{port}"),
            database: if database.is_empty() {
                "(default)".into()
            } else {
                database
            },
        })
    }

    /// The full URL, password included: only for opening connections.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// The URL with its password replaced by `***` and its query removed.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// `host:port`, for error messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The database name, for error messages.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Replaces every occurrence of this URL's password in `text` with `***`. Used on error
    /// messages from drivers, which we do not control.
    pub fn scrub(&self, text: &str) -> String {
        match url::Url::parse(self.expose())
            .ok()
            .and_then(|u| u.password().map(str::to_string))
        {
            Some(p) if !p.is_empty() => text.replace(&p, "***"),
            _ => text.to_string(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// Where the state lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded single-machine store: a SQLite file.
    Sqlite {
        /// Path of the database file.
        path: PathBuf,
    },
    /// PostgreSQL, shared by several instances.
    Postgres {
        /// The connection URL.
        url: DatabaseUrl,
        /// How long start-up keeps retrying a refused connection.
        connect_timeout: Duration,
    },
}

/// An HTTP agent, as given in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentFileEntry {
    /// Where Jarvis POSTs each attempt.
    pub url: String,
    /// Per-attempt timeout in ms.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Tasks of this domain submitted without `useLearned` get learned parameters.
    #[serde(default)]
    pub use_learned: Option<bool>,
}

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

/// The optional config file (`jarvis.toml`). Every section is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Settings that may also come from the environment; the environment wins.
    #[serde(default)]
    pub server: FileServer,
    /// Services to monitor, by name.
    #[serde(default)]
    pub services: BTreeMap<String, crate::health::ServiceInput>,
    /// Agents, by domain.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentFileEntry>,
    /// Per-breaker settings, by breaker name.
    #[serde(default)]
    pub breakers: BTreeMap<String, BreakerFileEntry>,
    /// The learner: settings and the search space per `"domain/action"`.
    #[serde(default)]
    pub learning: FileLearning,
    /// Recurring schedules, by name (the body of `PUT /api/v1/schedules/{name}`).
    #[serde(default)]
    pub schedules: BTreeMap<String, crate::schedules::ScheduleInput>,
}

/// The `[learning]` table of the config file. The environment (`JARVIS_LEARNING_*`) wins.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileLearning {
    /// Share of learned choices made uniformly at random (0–1).
    pub exploration: Option<f64>,
    /// Runs of a domain/action before anything is recommended.
    pub min_runs: Option<u64>,
    /// How often an instance merges its new results into the shared state, ms.
    pub flush_ms: Option<u64>,
    /// Weight of the impact score in the objective (0–1; the rest is success).
    pub impact_weight: Option<f64>,
    /// Smallest learned timeout, ms.
    pub timeout_min_ms: Option<u64>,
    /// Largest learned timeout, ms.
    pub timeout_max_ms: Option<u64>,
    /// The values each parameter may take, per `"domain/action"`, so that values nobody sent
    /// yet can be tried: `[learning.spaces."music/generate-beat".genre]` with
    /// `kind = "categorical"`, `values = [...]`, or `kind = "numeric"`, `min`, `max`, `integer`.
    #[serde(default)]
    pub spaces: BTreeMap<String, BTreeMap<String, jarvis_learning::ParameterSpace>>,
}

/// Settings of the learner (`JARVIS_LEARNING_EXPLORATION`, `JARVIS_LEARNING_MIN_RUNS`,
/// `JARVIS_LEARNING_FLUSH_MS`, and `[learning]` of the config file).
#[derive(Debug, Clone, PartialEq)]
pub struct LearningSettings {
    /// Share of learned choices made uniformly at random instead of by Thompson sampling.
    pub exploration: f64,
    /// Runs of a domain/action before anything is recommended.
    pub min_runs: u64,
    /// How often an instance merges its new results into the shared state (and how old a
    /// cached state may be).
    pub flush: Duration,
    /// The rest of the `[learning]` table (impact weight, timeout bounds, search spaces).
    pub file: FileLearning,
}

impl Default for LearningSettings {
    fn default() -> Self {
        LearningSettings {
            exploration: 0.05,
            min_runs: 20,
            flush: Duration::from_millis(1_000),
            file: FileLearning::default(),
        }
    }
}

/// The `[server]` table of the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FileServer {
    /// HTTP port.
    pub port: Option<u16>,
    /// Log level.
    pub log_level: Option<String>,
    /// Where log files go.
    pub log_dir: Option<PathBuf>,
    /// Where the embedded database goes.
    pub data_dir: Option<PathBuf>,
    /// Worker concurrency per instance.
    pub concurrency: Option<u32>,
}

/// The whole effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Development or production.
    pub environment: Environment,
    /// Address to bind (default 0.0.0.0).
    pub bind: std::net::IpAddr,
    /// HTTP port (default 4000).
    pub port: u16,
    /// Minimum log level.
    pub log_level: LogLevel,
    /// Stdout log format.
    pub log_format: LogFormat,
    /// Directory of `jarvis-combined.log`.
    pub log_dir: PathBuf,
    /// Directory of the embedded database and the development token.
    pub data_dir: PathBuf,
    /// Where the state lives.
    pub store: StoreConfig,
    /// Breaker defaults.
    pub breakers: BreakerDefaults,
    /// The health monitor.
    pub health: HealthConfig,
    /// The bearer token; `None` only in development before one is generated.
    pub auth_token: Option<SecretString>,
    /// Redis, when configured.
    pub redis: Option<RedisConfig>,
    /// Model provider keys.
    pub providers: ProviderKeys,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// Whether `GET /metrics` is public (default: it needs the token).
    pub metrics_public: bool,
    /// Worker concurrency per instance.
    pub concurrency: u32,
    /// Queue, worker and history settings.
    pub tasks: TaskSettings,
    /// The learner's settings.
    pub learning: LearningSettings,
    /// A name for this instance, shown in logs and history rows.
    pub instance_id: String,
    /// How often CloudWatch EMF metric lines are logged (zero: never).
    pub emf_interval: Duration,
    /// The CloudWatch namespace of those metrics.
    pub metrics_namespace: String,
    /// Shared breaker state: distinct instances whose failures open a shared circuit.
    pub breaker_quorum: u32,
    /// Shared breaker state: how long a half-open trial lease lasts.
    pub breaker_lease: Duration,
    /// Shared breaker state: how often every row is re-read.
    pub breaker_reconcile: Duration,
    /// The parsed config file (services, agents, per-breaker settings).
    pub file: FileConfig,
    /// Where the config file was read from, if any.
    pub file_path: Option<PathBuf>,
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
    /// The config file could not be read or parsed.
    #[error("config file {path}: {message}")]
    File {
        /// The file's path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

fn invalid(var: &str, value: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var: var.to_string(),
        value: format!("{value:?}"),
        expected: expected.into(),
    }
}

/// Reads typed values out of an environment map, producing precise errors.
struct Env<'a> {
    vars: &'a HashMap<String, String>,
}

impl Env<'_> {
    /// A non-empty value, trimmed. Empty values count as unset, as most tools treat them.
    fn get(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn secret(&self, var: &str) -> Option<SecretString> {
        self.get(var).map(|v| SecretString::from(v.to_string()))
    }

    fn int<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
        &self,
        var: &str,
        min: T,
        max: T,
    ) -> Result<Option<T>, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(None);
        };
        match raw.parse::<T>() {
            Ok(v) if v >= min && v <= max => Ok(Some(v)),
            _ => Err(invalid(
                var,
                raw,
                format!("a whole number from {min} to {max}"),
            )),
        }
    }

    fn bool(&self, var: &str) -> Result<Option<bool>, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(None);
        };
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => Err(invalid(var, raw, "true or false")),
        }
    }
}

fn parse_log_level(var: &str, raw: &str) -> Result<LogLevel, ConfigError> {
    match raw.to_ascii_lowercase().as_str() {
        "error" => Ok(LogLevel::Error),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "info" => Ok(LogLevel::Info),
        "debug" => Ok(LogLevel::Debug),
        "trace" => Ok(LogLevel::Trace),
        _ => Err(invalid(var, raw, "one of error, warn, info, debug, trace")),
    }
}

fn parse_environment(var: &str, raw: &str) -> Result<Environment, ConfigError> {
    match raw.to_ascii_lowercase().as_str() {
        "production" | "prod" => Ok(Environment::Production),
        "development" | "dev" | "test" => Ok(Environment::Development),
        _ => Err(invalid(var, raw, "production or development")),
    }
}

/// Loads and validates the config file at `path`.
pub fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse_file(path, &text)
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let file_err = |message: String| ConfigError::File {
        path: path.display().to_string(),
        message,
    };
    let file: FileConfig = toml::from_str(text).map_err(|e| file_err(e.to_string()))?;
    for (kind, names) in [
        ("services", file.services.keys().collect::<Vec<_>>()),
        ("agents", file.agents.keys().collect()),
        ("breakers", file.breakers.keys().collect()),
        ("schedules", file.schedules.keys().collect()),
    ] {
        for name in names {
            Name::parse(name).map_err(|e| file_err(format!("{kind}.{name}: {e}")))?;
        }
    }
    for (name, s) in &file.services {
        if url::Url::parse(&s.url).is_err() {
            return Err(file_err(format!(
                "services.{name}.url: {:?} is not a URL",
                s.url
            )));
        }
    }
    for (name, s) in &file.schedules {
        let parsed = Name::parse(name).map_err(|e| file_err(format!("schedules.{name}: {e}")))?;
        s.clone()
            .into_spec(parsed, chrono::Utc::now())
            .map_err(|e| file_err(format!("schedules.{name}.{e}")))?;
    }
    for key in file.learning.spaces.keys() {
        let ok = key
            .split_once('/')
            .is_some_and(|(d, a)| Name::parse(d).is_ok() && Name::parse(a).is_ok());
        if !ok {
            return Err(file_err(format!(
                "learning.spaces.{key:?}: expected \"domain/action\" (two names)"
            )));
        }
    }
    if let Some(x) = file.learning.exploration {
        if !(0.0..=1.0).contains(&x) {
            return Err(file_err(format!(
                "learning.exploration: {x} is not from 0 to 1"
            )));
        }
    }
    if let Some(x) = file.learning.impact_weight {
        if !(0.0..=1.0).contains(&x) {
            return Err(file_err(format!(
                "learning.impactWeight: {x} is not from 0 to 1"
            )));
        }
    }
    for (name, a) in &file.agents {
        match url::Url::parse(&a.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => {
                return Err(file_err(format!(
                    "agents.{name}.url: {:?} is not an http(s) URL",
                    a.url
                )))
            }
        }
    }
    Ok(file)
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
        let env = Env { vars };

        let file_path = config_path
            .or_else(|| env.get("JARVIS_CONFIG").map(PathBuf::from))
            .or_else(|| {
                let p = PathBuf::from("jarvis.toml");
                p.is_file().then_some(p)
            });
        let file = match &file_path {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };

        let environment = match (env.get("JARVIS_ENV"), env.get("NODE_ENV")) {
            (Some(v), _) => parse_environment("JARVIS_ENV", v)?,
            (None, Some(v)) => parse_environment("NODE_ENV", v)?,
            (None, None) => Environment::Development,
        };

        let port = match env.int::<u32>("JARVIS_PORT", 0, 65_535)? {
            Some(p) => p as u16,
            None => match env.int::<u32>("PORT", 0, 65_535)? {
                Some(p) => p as u16,
                None => file.server.port.unwrap_or(4000),
            },
        };
        let bind = match env.get("JARVIS_BIND") {
            Some(raw) => raw
                .parse()
                .map_err(|_| invalid("JARVIS_BIND", raw, "an IP address such as 0.0.0.0"))?,
            None => std::net::IpAddr::from([0, 0, 0, 0]),
        };

        let log_level = match env.get("LOG_LEVEL") {
            Some(raw) => parse_log_level("LOG_LEVEL", raw)?,
            None => match &file.server.log_level {
                Some(raw) => parse_log_level("server.log_level", raw)?,
                None => LogLevel::Info,
            },
        };
        let log_format = match env.get("LOG_FORMAT") {
            None => LogFormat::Json,
            Some(raw) => match raw.to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "pretty" | "text" => LogFormat::Pretty,
                _ => return Err(invalid("LOG_FORMAT", raw, "json or pretty")),
            },
        };
        let log_dir = env
            .get("JARVIS_LOG_DIR")
            .map(PathBuf::from)
            .or_else(|| file.server.log_dir.clone())
            .unwrap_or_else(|| PathBuf::from("logs"));
        let data_dir = env
            .get("JARVIS_DATA_DIR")
            .map(PathBuf::from)
            .or_else(|| file.server.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("data"));

        let store = match env.get("DATABASE_URL") {
            None => StoreConfig::Sqlite {
                path: data_dir.join("jarvis.db"),
            },
            Some(raw) => {
                let url = DatabaseUrl::parse(raw).map_err(|expected| {
                    // Show the URL without its password even when it does not parse.
                    let shown = match url::Url::parse(raw) {
                        Ok(mut u) => {
                            let _ = u.set_password(Some("***"));
                            u.to_string()
                        }
                        Err(_) => "(unparseable, not shown)".to_string(),
                    };
                    invalid("DATABASE_URL", &shown, expected)
                })?;
                let connect_timeout = Duration::from_millis(
                    env.int::<u64>("JARVIS_DB_CONNECT_TIMEOUT_MS", 0, 3_600_000)?
                        .unwrap_or(30_000),
                );
                StoreConfig::Postgres {
                    url,
                    connect_timeout,
                }
            }
        };

        let breakers = BreakerDefaults {
            enabled: env.bool("CIRCUIT_BREAKER_ENABLED")?.unwrap_or(true),
            failure_threshold: env
                .int::<u32>("CIRCUIT_BREAKER_FAILURE_THRESHOLD", 1, 1_000)?
                .unwrap_or(5),
            timeout_ms: env
                .int::<u64>("CIRCUIT_BREAKER_TIMEOUT_MS", 1, 86_400_000)?
                .unwrap_or(60_000),
        };

        let health_defaults = HealthConfig::default();
        let health = HealthConfig {
            enabled: env.bool("JARVIS_HEALTH_MONITOR")?.unwrap_or(true),
            concurrency: env
                .int::<usize>("JARVIS_HEALTH_CONCURRENCY", 1, 100_000)?
                .unwrap_or(health_defaults.concurrency),
            round: env
                .int::<u64>("JARVIS_HEALTH_ROUND_MS", 100, 3_600_000)?
                .map_or(health_defaults.round, Duration::from_millis),
            reload: env
                .int::<u64>("JARVIS_HEALTH_RELOAD_MS", 100, 3_600_000)?
                .map_or(health_defaults.reload, Duration::from_millis),
            history_retention_hours: env
                .int::<u32>("JARVIS_HEALTH_HISTORY_RETENTION_HOURS", 0, 24 * 366)?
                .unwrap_or(health_defaults.history_retention_hours),
            history_flush: env
                .int::<u64>("JARVIS_HEALTH_HISTORY_FLUSH_MS", 10, 60_000)?
                .map_or(health_defaults.history_flush, Duration::from_millis),
            uptime_sync: env
                .int::<u64>("JARVIS_HEALTH_UPTIME_SYNC_MS", 50, 3_600_000)?
                .map_or(health_defaults.uptime_sync, Duration::from_millis),
        };

        let auth_token = env.secret("JARVIS_AUTH_TOKEN");
        if let Some(token) = &auth_token {
            let t = token.expose_secret();
            if t.len() < 16 || t.len() > 512 || !t.chars().all(|c| c.is_ascii_graphic()) {
                return Err(invalid(
                    "JARVIS_AUTH_TOKEN",
                    "(secret, not shown)",
                    "16 to 512 printable ASCII characters without spaces",
                ));
            }
        }
        if environment == Environment::Production && auth_token.is_none() {
            return Err(ConfigError::Missing {
                var: "JARVIS_AUTH_TOKEN".into(),
                why: "a bearer token is required in production (JARVIS_ENV/NODE_ENV=production)"
                    .into(),
            });
        }

        let redis = match env.get("REDIS_HOST") {
            None => {
                if env.get("REDIS_PORT").is_some() || env.get("REDIS_PASSWORD").is_some() {
                    return Err(ConfigError::Missing {
                        var: "REDIS_HOST".into(),
                        why: "REDIS_PORT or REDIS_PASSWORD is set without a host".into(),
                    });
                }
                None
            }
            Some(host) => Some(RedisConfig {
                host: host.to_string(),
                port: env.int::<u32>("REDIS_PORT", 1, 65_535)?.unwrap_or(6379) as u16,
                password: env.secret("REDIS_PASSWORD"),
            }),
        };

        let providers = ProviderKeys {
            openai: env.secret("OPENAI_API_KEY"),
            anthropic: env.secret("ANTHROPIC_API_KEY"),
            gemini: env.secret("GEMINI_API_KEY"),
        };

        let shutdown_grace = Duration::from_millis(
            env.int::<u64>("JARVIS_SHUTDOWN_GRACE_MS", 0, 600_000)?
                .unwrap_or(30_000),
        );
        let body_limit = env
            .int::<usize>("JARVIS_BODY_LIMIT_BYTES", 1_024, 64 * 1024 * 1024)?
            .unwrap_or(1024 * 1024);
        let metrics_public = env.bool("JARVIS_METRICS_PUBLIC")?.unwrap_or(false);
        let concurrency = env
            .int::<u32>("JARVIS_CONCURRENCY", 1, 10_000)?
            .or(file.server.concurrency)
            .unwrap_or(10);
        let defaults = TaskSettings::default();
        let tasks = TaskSettings {
            workers_enabled: env
                .bool("JARVIS_WORKERS_ENABLED")?
                .unwrap_or(defaults.workers_enabled),
            lease_ms: env
                .int::<u64>("JARVIS_TASK_LEASE_MS", 300, 3_600_000)?
                .unwrap_or(defaults.lease_ms),
            prefetch: env
                .int::<u32>("JARVIS_QUEUE_PREFETCH", 0, 10_000)?
                .unwrap_or(defaults.prefetch),
            poll_ms: env
                .int::<u64>("JARVIS_QUEUE_POLL_MS", 10, 60_000)?
                .unwrap_or(defaults.poll_ms),
            retry_base_ms: env
                .int::<u64>("JARVIS_TASK_RETRY_BASE_MS", 1, 3_600_000)?
                .unwrap_or(defaults.retry_base_ms),
            retry_max_ms: env
                .int::<u64>("JARVIS_TASK_RETRY_MAX_MS", 1, 86_400_000)?
                .unwrap_or(defaults.retry_max_ms),
            history_retention_days: env
                .int::<u32>("JARVIS_HISTORY_RETENTION_DAYS", 0, 36_500)?
                .unwrap_or(defaults.history_retention_days),
        };
        if tasks.retry_max_ms < tasks.retry_base_ms {
            return Err(invalid(
                "JARVIS_TASK_RETRY_MAX_MS",
                &tasks.retry_max_ms.to_string(),
                format!(
                    "at least JARVIS_TASK_RETRY_BASE_MS ({})",
                    tasks.retry_base_ms
                ),
            ));
        }
        let learning_defaults = LearningSettings::default();
        let exploration = match env.get("JARVIS_LEARNING_EXPLORATION") {
            None => file
                .learning
                .exploration
                .unwrap_or(learning_defaults.exploration),
            Some(raw) => match raw.parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => x,
                _ => {
                    return Err(invalid(
                        "JARVIS_LEARNING_EXPLORATION",
                        raw,
                        "a share from 0 to 1, such as 0.05",
                    ))
                }
            },
        };
        let learning = LearningSettings {
            exploration,
            min_runs: env
                .int::<u64>("JARVIS_LEARNING_MIN_RUNS", 1, 1_000_000)?
                .or(file.learning.min_runs)
                .unwrap_or(learning_defaults.min_runs),
            flush: Duration::from_millis(
                env.int::<u64>("JARVIS_LEARNING_FLUSH_MS", 10, 600_000)?
                    .or(file.learning.flush_ms)
                    .unwrap_or(learning_defaults.flush.as_millis() as u64),
            ),
            file: file.learning.clone(),
        };
        let instance_id = match env.get("JARVIS_INSTANCE_ID") {
            Some(raw) => Name::parse(raw)
                .map_err(|e| invalid("JARVIS_INSTANCE_ID", raw, e.to_string()))?
                .to_string(),
            None => default_instance_id(),
        };

        let breaker_quorum = env
            .int::<u32>("JARVIS_BREAKER_QUORUM", 1, 1_000)?
            .unwrap_or(1);
        let breaker_lease = Duration::from_millis(
            env.int::<u64>("JARVIS_BREAKER_LEASE_MS", 100, 3_600_000)?
                .unwrap_or(30_000),
        );
        let breaker_reconcile = Duration::from_millis(
            env.int::<u64>("JARVIS_BREAKER_RECONCILE_MS", 50, 3_600_000)?
                .unwrap_or(5_000),
        );

        let emf_interval = Duration::from_millis(
            env.int::<u64>("JARVIS_EMF_INTERVAL_MS", 0, 86_400_000)?
                .unwrap_or(60_000),
        );
        let metrics_namespace = match env.get("JARVIS_METRICS_NAMESPACE") {
            None => "Jarvis".to_string(),
            Some(ns)
                if ns.len() <= 255
                    && ns
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-/#:".contains(c))
                    && !ns.starts_with("AWS/") =>
            {
                ns.to_string()
            }
            Some(ns) => {
                return Err(invalid(
                    "JARVIS_METRICS_NAMESPACE",
                    ns,
                    "a CloudWatch namespace (A-Z a-z 0-9 . _ - / # :, not starting with AWS/)",
                ))
            }
        };

        Ok(Config {
            emf_interval,
            metrics_namespace,
            breaker_quorum,
            breaker_lease,
            breaker_reconcile,
            environment,
            bind,
            port,
            log_level,
            log_format,
            log_dir,
            data_dir,
            store,
            breakers,
            health,
            auth_token,
            redis,
            providers,
            shutdown_grace,
            body_limit,
            metrics_public,
            concurrency,
            tasks,
            learning,
            instance_id,
            file,
            file_path,
        })
    }

    /// The effective configuration as JSON with every secret masked (`jarvis config check`).
    pub fn masked_view(&self) -> serde_json::Value {
        fn mask(s: &Option<SecretString>) -> serde_json::Value {
            match s {
                Some(_) => "***".into(),
                None => serde_json::Value::Null,
            }
        }
        let store = match &self.store {
            StoreConfig::Sqlite { path } => serde_json::json!({
                "backend": "sqlite",
                "path": path.display().to_string(),
            }),
            StoreConfig::Postgres {
                url,
                connect_timeout,
            } => serde_json::json!({
                "backend": "postgres",
                "url": url.redacted(),
                "connectTimeoutMs": connect_timeout.as_millis() as u64,
            }),
        };
        serde_json::json!({
            "environment": self.environment,
            "bind": self.bind.to_string(),
            "port": self.port,
            "logLevel": self.log_level,
            "logFormat": self.log_format,
            "logDir": self.log_dir.display().to_string(),
            "dataDir": self.data_dir.display().to_string(),
            "store": store,
            "circuitBreakers": self.breakers,
            "health": self.health,
            "breakerQuorum": self.breaker_quorum,
            "emfIntervalMs": self.emf_interval.as_millis() as u64,
            "metricsNamespace": self.metrics_namespace,
            "breakerLeaseMs": self.breaker_lease.as_millis() as u64,
            "breakerReconcileMs": self.breaker_reconcile.as_millis() as u64,
            "authToken": mask(&self.auth_token),
            "redis": self.redis.as_ref().map(|r| serde_json::json!({
                "host": r.host,
                "port": r.port,
                "password": mask(&r.password),
            })),
            "providers": {
                "openai": mask(&self.providers.openai),
                "anthropic": mask(&self.providers.anthropic),
                "gemini": mask(&self.providers.gemini),
            },
            "shutdownGraceMs": self.shutdown_grace.as_millis() as u64,
            "bodyLimitBytes": self.body_limit,
            "metricsPublic": self.metrics_public,
            "concurrency": self.concurrency,
            "tasks": self.tasks,
            "learning": {
                "exploration": self.learning.exploration,
                "minRuns": self.learning.min_runs,
                "flushMs": self.learning.flush.as_millis() as u64,
                "file": self.learning.file,
            },
            "instanceId": self.instance_id,
            "configFile": self.file_path.as_ref().map(|p| p.display().to_string()),
            "services": self.file.services,
            "agents": self.file.agents,
            "breakers": self.file.breakers,
            "schedules": self.file.schedules,
        })
    }
}

/// `<hostname>-<pid>`, shortened to a valid name.
fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "jarvis".into());
    let mut id: String = format!("{host}-{}", std::process::id())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    id.truncate(64);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn check_err(pairs: &[(&str, &str)], expected: &str) {
        let err = Config::from_env_map(&vars(pairs), None).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }

    #[test]
    fn defaults_need_no_environment() {
        let c = Config::from_env_map(&vars(&[]), None).unwrap();
        assert_eq!(c.port, 4000);
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.breakers, BreakerDefaults::default());
        assert!(
            matches!(c.store, StoreConfig::Sqlite { ref path } if path == Path::new("data/jarvis.db"))
        );
        assert_eq!(c.log_dir, PathBuf::from("logs"));
    }

    #[test]
    fn wrong_values_name_variable_value_and_expectation() {
        check_err(
            &[("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "abc")],
            r#"invalid CIRCUIT_BREAKER_FAILURE_THRESHOLD="abc": expected a whole number from 1 to 1000"#,
        );
        check_err(
            &[("PORT", "99999")],
            r#"invalid PORT="99999": expected a whole number from 0 to 65535"#,
        );
        check_err(
            &[("LOG_LEVEL", "loud")],
            r#"invalid LOG_LEVEL="loud": expected one of error, warn, info, debug, trace"#,
        );
        check_err(
            &[("CIRCUIT_BREAKER_ENABLED", "maybe")],
            r#"invalid CIRCUIT_BREAKER_ENABLED="maybe": expected true or false"#,
        );
        check_err(
            &[("NODE_ENV", "staging")],
            r#"invalid NODE_ENV="staging": expected production or development"#,
        );
        check_err(
            &[("CIRCUIT_BREAKER_TIMEOUT_MS", "-5")],
            r#"invalid CIRCUIT_BREAKER_TIMEOUT_MS="-5": expected a whole number from 1 to 86400000"#,
        );
        check_err(
            &[("JARVIS_LEARNING_EXPLORATION", "1.5")],
            r#"invalid JARVIS_LEARNING_EXPLORATION="1.5": expected a share from 0 to 1, such as 0.05"#,
        );
    }

    #[test]
    fn production_requires_a_token() {
        check_err(
            &[("NODE_ENV", "production")],
            "missing JARVIS_AUTH_TOKEN: a bearer token is required in production (JARVIS_ENV/NODE_ENV=production)",
        );
        let c = Config::from_env_map(
            &vars(&[
                ("NODE_ENV", "production"),
                ("JARVIS_AUTH_TOKEN", "0123456789abcdef0123"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(c.environment, Environment::Production);
    }

    #[test]
    fn jarvis_env_wins_over_node_env() {
        let c = Config::from_env_map(
            &vars(&[("NODE_ENV", "production"), ("JARVIS_ENV", "development")]),
            None,
        )
        .unwrap();
        assert_eq!(c.environment, Environment::Development);
    }

    #[test]
    fn jarvis_port_wins_over_port() {
        let c = Config::from_env_map(&vars(&[("PORT", "5000"), ("JARVIS_PORT", "5001")]), None)
            .unwrap();
        assert_eq!(c.port, 5001);
    }

    #[test]
    fn database_url_password_is_never_shown() {
        let c = Config::from_env_map(
            &vars(&[(
                "DATABASE_URL",
                "postgres://app:s3cr3t-pw@db.example:6432/jarvis?sslmode=require",
            )]),
            None,
        )
        .unwrap();
        let StoreConfig::Postgres { url, .. } = &c.store else {
            panic!("expected postgres")
        };
        assert_eq!(url.redacted(), "postgres://app:***@db.example:6432/jarvis");
        assert_eq!(url.host(), "db.example:6432");
        assert_eq!(url.database(), "jarvis");
        assert!(!format!("{c:?}").contains("s3cr3t-pw"));
        assert!(!c.masked_view().to_string().contains("s3cr3t-pw"));
        assert_eq!(
            url.scrub("auth failed for s3cr3t-pw"),
            "auth failed for ***"
        );

        let err = Config::from_env_map(
            &vars(&[("DATABASE_URL", "mysql://app:s3cr3t-pw@db/x")]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("invalid DATABASE_URL="), "{err}");
        assert!(!err.contains("s3cr3t-pw"), "{err}");
    }

    #[test]
    fn secrets_are_masked_in_the_view_and_debug() {
        let c = Config::from_env_map(
            &vars(&[
                ("JARVIS_AUTH_TOKEN", "tok-0123456789abcdef"),
                ("OPENAI_API_KEY", "sk-live-key"),
                ("REDIS_HOST", "127.0.0.1"),
                ("REDIS_PASSWORD", "redis-pw"),
            ]),
            None,
        )
        .unwrap();
        let shown = format!("{c:?} {}", c.masked_view());
        for secret in ["tok-0123456789abcdef", "sk-live-key", "redis-pw"] {
            assert!(!shown.contains(secret), "{secret} leaked");
        }
        assert_eq!(c.masked_view()["authToken"], "***");
    }

    #[test]
    fn task_settings_are_validated() {
        let c = Config::from_env_map(&vars(&[]), None).unwrap();
        assert_eq!(c.tasks, TaskSettings::default());
        check_err(
            &[("JARVIS_TASK_LEASE_MS", "10")],
            r#"invalid JARVIS_TASK_LEASE_MS="10": expected a whole number from 300 to 3600000"#,
        );
        check_err(
            &[("JARVIS_WORKERS_ENABLED", "sometimes")],
            r#"invalid JARVIS_WORKERS_ENABLED="sometimes": expected true or false"#,
        );
        check_err(
            &[
                ("JARVIS_TASK_RETRY_BASE_MS", "5000"),
                ("JARVIS_TASK_RETRY_MAX_MS", "100"),
            ],
            r#"invalid JARVIS_TASK_RETRY_MAX_MS="100": expected at least JARVIS_TASK_RETRY_BASE_MS (5000)"#,
        );
    }

    #[test]
    fn a_short_token_is_refused_without_echoing_it() {
        let err = Config::from_env_map(&vars(&[("JARVIS_AUTH_TOKEN", "short")]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("JARVIS_AUTH_TOKEN"));
        assert!(!err.contains("\"short\""));
    }

    #[test]
    fn config_file_services_agents_breakers() {
        let text = r#"
            [server]
            port = 4100
            [services.aiDawgBackend]
            url = "http://127.0.0.1:3001/health"
            intervalMs = 5000
            critical = true
            [agents.music]
            url = "http://127.0.0.1:8001/run"
            useLearned = true
            [agents.video]
            url = "http://127.0.0.1:8002/run"
            [breakers.aiDawgBackend]
            failureThreshold = 3
        "#;
        let file = parse_file(Path::new("jarvis.toml"), text).unwrap();
        assert_eq!(file.server.port, Some(4100));
        assert_eq!(file.services["aiDawgBackend"].critical, Some(true));
        assert_eq!(file.breakers["aiDawgBackend"].failure_threshold, Some(3));
        assert_eq!(file.agents["music"].use_learned, Some(true));
        assert_eq!(file.agents["video"].use_learned, None);

        let err = parse_file(
            Path::new("j.toml"),
            "[services.x]\nurl = \"http://a\"\nbogus = 1",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bogus"), "{err}");
        let err = parse_file(
            Path::new("j.toml"),
            "[agents.\"bad name\"]\nurl = \"http://a\"",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("agents.bad name"), "{err}");
    }
}
