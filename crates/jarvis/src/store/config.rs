//! Where the store lives, as the configuration says: the SQLite file or a PostgreSQL URL whose
//! password never reaches a log line. Read from the environment by `config`; the store needs
//! only these values.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

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
        /// A direct connection for `LISTEN` and migrations, when `url` reaches a pooler
        /// (`None`: `url`).
        listen_url: Option<DatabaseUrl>,
        /// What `url` reaches.
        pooler: Pooler,
        /// How long start-up keeps retrying a refused connection.
        connect_timeout: Duration,
    },
}

/// What `DATABASE_URL` reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooler {
    /// PostgreSQL itself (or a session-mode pooler): statements are prepared once per
    /// connection and cached, the queue's connections carry their planner settings.
    #[default]
    None,
    /// A transaction-mode pooler (PgBouncer `pool_mode = transaction`, RDS Proxy), which may
    /// hand the server connection to another client between transactions: every statement is
    /// sent unnamed in a transaction of its own, nothing is set per session.
    Transaction,
}

impl StoreConfig {
    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            StoreConfig::Sqlite { .. } => "sqlite",
            StoreConfig::Postgres { .. } => "postgres",
        }
    }
}

/// `raw` as a URL with its password replaced by `***` and its query (which may carry a
/// `password=` too) removed; `None` when it does not parse as a URL.
pub fn redact_url(raw: &str) -> Option<String> {
    let mut url = url::Url::parse(raw).ok()?;
    if url.password().is_some() {
        // Cannot fail for a URL with a host, which a password implies.
        let _ = url.set_password(Some("***"));
    }
    url.set_query(None);
    Some(url.to_string())
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
