//! The server itself: environment, address, token, instance name, data directory, request limits.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;

use super::setting::{settings, Default, FileKey, FromParsed, Kind, Mask, Parsed, Reader, Setting};
use super::ConfigError;
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

impl FromParsed for Environment {
    fn from_parsed(p: Parsed) -> Self {
        match p {
            Parsed::Choice("production") => Environment::Production,
            _ => Environment::Development,
        }
    }
}

settings! {
    /// `JARVIS_ENV`, `NODE_ENV`.
    ENV = Setting {
        var: "JARVIS_ENV",
        aliases: &["NODE_ENV"],
        kind: Kind::Choice(&[&["production", "prod"], &["development", "dev", "test"]]),
        default: Default::Value("development"),
        view: "environment",
        help: "environment; production requires `JARVIS_AUTH_TOKEN`",
        ..Setting::PLAIN
    };
    /// `JARVIS_PORT`, `PORT`.
    PORT = Setting {
        var: "JARVIS_PORT",
        aliases: &["PORT"],
        kind: Kind::Int { min: 0, max: 65_535 },
        default: Default::Value("4000"),
        file: Some(FileKey { table: "server", key: "port", get: |f| f.server.port.map(Into::into) }),
        view: "port",
        help: "HTTP port",
        ..Setting::PLAIN
    };
    /// `JARVIS_BIND`.
    BIND = Setting {
        var: "JARVIS_BIND",
        kind: Kind::Text { check: ip_address, accepted: "an IP address" },
        default: Default::Value("0.0.0.0"),
        view: "bind",
        help: "address to bind",
        ..Setting::PLAIN
    };
    /// `JARVIS_DATA_DIR`.
    DATA_DIR = Setting {
        var: "JARVIS_DATA_DIR",
        kind: Kind::Path,
        default: Default::Value("data"),
        file: Some(FileKey {
            table: "server",
            key: "dataDir",
            get: |f| f.server.data_dir.as_ref().map(|p| p.display().to_string().into()),
        }),
        view: "dataDir",
        help: "directory of `jarvis.db` (SQLite), `dev-token`, `history-spool.jsonl`, `serve.lock`",
        ..Setting::PLAIN
    };
    /// `JARVIS_CONFIG`.
    CONFIG_FILE = Setting {
        var: "JARVIS_CONFIG",
        kind: Kind::Path,
        default: Default::Unset("`./jarvis.toml` when it exists"),
        view: "configFile",
        help: "config file; `--config` wins",
        ..Setting::PLAIN
    };
    /// `JARVIS_AUTH_TOKEN`.
    AUTH_TOKEN = Setting {
        var: "JARVIS_AUTH_TOKEN",
        kind: Kind::Text {
            check: token,
            accepted: "16–512 printable ASCII characters, no spaces",
        },
        default: Default::Unset("generated in development, required in production"),
        mask: Mask::Secret,
        view: "authToken",
        help: "the bearer token for `/api/v1/*` (secret); also read by the CLI clients",
        ..Setting::PLAIN
    };
    /// `JARVIS_INSTANCE_ID`.
    INSTANCE_ID = Setting {
        var: "JARVIS_INSTANCE_ID",
        kind: Kind::Text { check: name, accepted: "a name (1–64 of `A-Z a-z 0-9 _ . -`)" },
        default: Default::Computed(
            default_instance_id,
            "`<hostname>-<pid>` (hostname from `/etc/hostname`, else `jarvis`; other characters \
             replaced by `-`, cut to 64)",
        ),
        view: "instanceId",
        help: "this instance's name in logs, history, leases and breaker rows",
        ..Setting::PLAIN
    };
    /// `JARVIS_SHUTDOWN_GRACE_MS`.
    SHUTDOWN_GRACE_MS = Setting {
        var: "JARVIS_SHUTDOWN_GRACE_MS",
        kind: Kind::Int { min: 0, max: 600_000 },
        default: Default::Value("30000"),
        view: "shutdownGraceMs",
        help: "after SIGTERM/SIGINT, how long requests and attempts may finish",
        ..Setting::PLAIN
    };
    /// `JARVIS_BODY_LIMIT_BYTES`.
    BODY_LIMIT_BYTES = Setting {
        var: "JARVIS_BODY_LIMIT_BYTES",
        kind: Kind::Int { min: 1_024, max: 64 * 1024 * 1024 },
        default: Default::Value("1048576"),
        view: "bodyLimitBytes",
        help: "largest request body",
        ..Setting::PLAIN
    };
    /// `JARVIS_METRICS_PUBLIC`.
    METRICS_PUBLIC = Setting {
        var: "JARVIS_METRICS_PUBLIC",
        kind: Kind::Bool,
        default: Default::Value("false"),
        view: "metricsPublic",
        help: "`true`: `GET /metrics` needs no token",
        ..Setting::PLAIN
    };
    /// `JARVIS_SECRETS_PREFIX` (read by `main` before the rest, see [`secrets_prefix`]).
    SECRETS_PREFIX = Setting {
        var: "JARVIS_SECRETS_PREFIX",
        kind: Kind::Any("a secret name prefix"),
        view: "secretsPrefix",
        help: "at start, read the AWS Secrets Manager secrets `<prefix>/database`, `/redis`, \
               `/ai-keys`, `/app` (JSON objects of variable names to string values) and use them \
               for variables the environment does not set; a missing secret is skipped, any other \
               failure stops start-up (exit 2); uses `AWS_REGION`, `AWS_ENDPOINT_URL`, AWS \
               credentials. The API tokens of `/app` are read again at each token reload \
               (`JARVIS_AUTH_RELOAD_MS`, SIGHUP)",
        ..Setting::PLAIN
    };
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Development or production.
    pub environment: Environment,
    /// Address to bind.
    pub bind: IpAddr,
    /// HTTP port.
    pub port: u16,
    /// A name for this instance, shown in logs and history rows.
    pub instance_id: String,
    /// Directory of the embedded database, the development token and the history spool.
    pub data_dir: PathBuf,
    /// The bearer token; `None` only in development before one is generated.
    pub auth_token: Option<SecretString>,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// Whether `GET /metrics` is public (default: it needs the token).
    pub metrics_public: bool,
    /// Where secrets are read from at start, if anywhere.
    pub secrets_prefix: Option<String>,
}

impl ServerSettings {
    /// Reads the group; production without a token is refused.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<ServerSettings, ConfigError> {
        let settings = ServerSettings {
            environment: r.get(&ENV)?,
            bind: r
                .get::<String>(&BIND)?
                .parse()
                .expect("checked by ip_address"),
            port: r.get(&PORT)?,
            instance_id: r.get(&INSTANCE_ID)?,
            data_dir: r.get(&DATA_DIR)?,
            auth_token: r.opt(&AUTH_TOKEN)?,
            shutdown_grace: r.get(&SHUTDOWN_GRACE_MS)?,
            body_limit: r.get(&BODY_LIMIT_BYTES)?,
            metrics_public: r.get(&METRICS_PUBLIC)?,
            secrets_prefix: r.opt(&SECRETS_PREFIX)?,
        };
        if settings.environment == Environment::Production && settings.auth_token.is_none() {
            return Err(ConfigError::Missing {
                var: AUTH_TOKEN.var.into(),
                why: "a bearer token is required in production (JARVIS_ENV/NODE_ENV=production)"
                    .into(),
            });
        }
        Ok(settings)
    }
}

/// `JARVIS_SECRETS_PREFIX` from `vars`: `main` reads it before the configuration, because the
/// secrets it names become variables of that configuration.
pub fn secrets_prefix(
    vars: &std::collections::HashMap<String, String>,
) -> Result<Option<String>, ConfigError> {
    Reader::new(vars).opt(&SECRETS_PREFIX)
}

fn ip_address(raw: &str) -> Result<(), String> {
    raw.parse::<IpAddr>()
        .map(drop)
        .map_err(|_| "an IP address such as 0.0.0.0".into())
}

fn token(raw: &str) -> Result<(), String> {
    if raw.len() < 16 || raw.len() > 512 || !raw.chars().all(|c| c.is_ascii_graphic()) {
        return Err("16 to 512 printable ASCII characters without spaces".into());
    }
    Ok(())
}

fn name(raw: &str) -> Result<(), String> {
    Name::parse(raw).map(drop).map_err(|e| e.to_string())
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
