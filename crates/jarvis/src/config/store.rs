//! Where the state lives: the embedded SQLite file, or PostgreSQL at `DATABASE_URL`.

use std::path::Path;

use super::setting::{settings, Default, FromParsed, Kind, Mask, Parsed, Reader, Setting};
use super::ConfigError;
pub use crate::store::config::{DatabaseUrl, Pooler, StoreConfig};

impl FromParsed for Pooler {
    fn from_parsed(p: Parsed) -> Self {
        match p {
            Parsed::Choice("pgbouncer") => Pooler::Transaction,
            _ => Pooler::None,
        }
    }
}

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
    /// `JARVIS_LISTEN_DATABASE_URL`.
    LISTEN_DATABASE_URL = Setting {
        var: "JARVIS_LISTEN_DATABASE_URL",
        kind: Kind::Text {
            check: postgres_url,
            accepted: "`postgres://` or `postgresql://` URL (shown with `***` for its password, \
                       without its query)",
        },
        default: Default::Unset("unset: `DATABASE_URL`"),
        mask: Mask::UrlPassword,
        view: "store.listenUrl",
        help: "a direct PostgreSQL connection (not through a transaction-mode pooler) for \
               `LISTEN` and, with `JARVIS_DATABASE_POOLER`, migrations (only read with \
               `DATABASE_URL`)",
        ..Setting::PLAIN
    };
    /// `JARVIS_DATABASE_POOLER`.
    DATABASE_POOLER = Setting {
        var: "JARVIS_DATABASE_POOLER",
        kind: Kind::Choice(&[&["none"], &["pgbouncer", "rds-proxy", "transaction"]]),
        default: Default::Value("none"),
        view: "store.pooler",
        help: "what `DATABASE_URL` reaches: PostgreSQL itself, or a transaction-mode pooler \
               (PgBouncer `pool_mode = transaction`, RDS Proxy): then every statement is sent \
               unnamed in a transaction of its own (see docs/operations.md)",
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
                listen_url: r
                    .opt::<String>(&LISTEN_DATABASE_URL)?
                    .map(|raw| DatabaseUrl::parse(&raw).expect("checked by postgres_url")),
                pooler: r.get(&DATABASE_POOLER)?,
                connect_timeout: r.get(&DB_CONNECT_TIMEOUT_MS)?,
            },
        };
        r.show("store.backend", store.backend_name());
        Ok(store)
    }
}

fn postgres_url(raw: &str) -> Result<(), String> {
    DatabaseUrl::parse(raw).map(drop)
}
