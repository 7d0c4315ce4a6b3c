//! Where the state lives: the embedded SQLite file, or PostgreSQL at `DATABASE_URL`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::setting::{redact_url, settings, Default, Kind, Mask, Reader, Setting};
use super::ConfigError;

settings! {
    /// `DATABASE_URL`.
    DATABASE_URL = Setting {
        var: "DATABASE_URL",
        kind: Kind::Text {
            check: postgres_url,
            accepted: "`postgres://` or `postgresql://` URL (shown with `***` for its password, \
                       without its query)",
        },
        default: Default::Unset("unset: the embedded SQLite store `<data dir>/jarvis.db`"),
        mask: Mask::UrlPassword,
        view: "store.url",
        help: "PostgreSQL, shared by several instances",
        ..Setting::PLAIN
    };
    /// `JARVIS_DB_CONNECT_TIMEOUT_MS`.
    DB_CONNECT_TIMEOUT_MS = Setting {
        var: "JARVIS_DB_CONNECT_TIMEOUT_MS",
        kind: Kind::Int { min: 0, max: 3_600_000 },
        default: Default::Value("30000"),
        view: "store.connectTimeoutMs",
        help: "how long start-up retries an unreachable PostgreSQL (only read with `DATABASE_URL`)",
        ..Setting::PLAIN
    };
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

impl StoreConfig {
    /// Reads the group: SQLite under `data_dir` unless `DATABASE_URL` is set.
    pub(super) fn read(r: &mut Reader<'_>, data_dir: &Path) -> Result<StoreConfig, ConfigError> {
        let store = match r.opt::<String>(&DATABASE_URL)? {
            None => {
                let path = data_dir.join("jarvis.db");
                r.show("store.path", path.display().to_string());
                StoreConfig::Sqlite { path }
            }
            Some(raw) => StoreConfig::Postgres {
                url: DatabaseUrl::parse(&raw).expect("checked by postgres_url"),
                connect_timeout: r.get(&DB_CONNECT_TIMEOUT_MS)?,
            },
        };
        r.show("store.backend", store.backend());
        Ok(store)
    }

    fn backend(&self) -> &'static str {
        match self {
            StoreConfig::Sqlite { .. } => "sqlite",
            StoreConfig::Postgres { .. } => "postgres",
        }
    }
}

fn postgres_url(raw: &str) -> Result<(), String> {
    DatabaseUrl::parse(raw).map(drop)
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
        Ok(DatabaseUrl {
            secret: SecretString::from(raw.to_string()),
            redacted: redact_url(raw).expect("parsed above"),
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
