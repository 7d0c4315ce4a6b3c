//! The shared store: PostgreSQL, through which several instances share breakers, queue and
//! history.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use sqlx::types::Json;

mod history;
mod learning;
mod tasks;

pub use tasks::CHANNEL;

use super::{rows, Backend, Store, StoreError};
use crate::agents::AgentSpec;
use crate::config::DatabaseUrl;
use crate::health::ServiceSpec;

/// The PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: PgPool,
    url: DatabaseUrl,
    options: PgConnectOptions,
}

impl PostgresStore {
    /// Connects, retrying with exponential backoff (100 ms doubling to 2 s) until
    /// `connect_timeout` has passed. The error names host and database, never the password.
    pub async fn connect(url: &DatabaseUrl, connect_timeout: Duration) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url
            .expose()
            .parse()
            .map_err(|e: sqlx::Error| anyhow::anyhow!(url.scrub(&e.to_string())))?;
        let options = options.application_name("jarvis");
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // One plain connection first: it fails fast with the real cause (refused, unknown
            // host, bad password), where a pool would only report that it timed out.
            let result = match PgConnection::connect_with(&options).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    PgPoolOptions::new()
                        .max_connections(16)
                        .min_connections(1)
                        .acquire_timeout(Duration::from_secs(5))
                        .connect_with(options.clone())
                        .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(pool) => {
                    return Ok(PostgresStore {
                        pool,
                        url: url.clone(),
                        options,
                    })
                }
                Err(e) => {
                    let message = url.scrub(&e.to_string());
                    // Worth retrying: the server is not there yet, or still starting (57P03).
                    let refused = match &e {
                        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
                            true
                        }
                        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
                        _ => false,
                    };
                    if !refused || started.elapsed() + delay > connect_timeout {
                        anyhow::bail!(
                            "cannot connect to PostgreSQL at {} (database {:?}) after {attempt} \
                             attempt(s): {message}",
                            url.host(),
                            url.database(),
                        );
                    }
                    tracing::warn!(
                        host = url.host(),
                        database = url.database(),
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        error = %message,
                        "PostgreSQL is not reachable yet; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// The connection pool, for the backend's own modules.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How connections are opened (the task listener opens its own).
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// Classifies a driver error, scrubbing the password from its text.
    pub(crate) fn error(&self, e: sqlx::Error) -> StoreError {
        self.err(e)
    }

    fn err(&self, e: sqlx::Error) -> StoreError {
        match StoreError::from_sqlx(e) {
            StoreError::Unavailable(m) => StoreError::Unavailable(self.url.scrub(&m)),
            StoreError::Other(m) => StoreError::Other(self.url.scrub(&m)),
            other => other,
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migration(self.url.scrub(&e.to_string())))
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn put_service(&self, spec: &ServiceSpec) -> Result<(ServiceSpec, bool), StoreError> {
        let row = sqlx::query(
            "INSERT INTO services (name, url, method, interval_ms, timeout_ms, critical, \
             expected_status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (name) DO UPDATE SET url = excluded.url, method = excluded.method, \
             interval_ms = excluded.interval_ms, timeout_ms = excluded.timeout_ms, \
             critical = excluded.critical, expected_status = excluded.expected_status, \
             updated_at = excluded.updated_at \
             RETURNING *",
        )
        .bind(spec.name.as_str())
        .bind(&spec.url)
        .bind(&spec.method)
        .bind(spec.interval_ms as i64)
        .bind(spec.timeout_ms as i64)
        .bind(spec.critical)
        .bind(Json(&spec.expected_status))
        .bind(spec.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let stored = rows::service(&row).map_err(|e| self.err(e))?;
        let created = stored.created_at == spec.created_at;
        Ok((stored, created))
    }

    async fn get_service(&self, name: &str) -> Result<Option<ServiceSpec>, StoreError> {
        let row = sqlx::query("SELECT * FROM services WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| rows::service(&r))
            .transpose()
            .map_err(|e| self.err(e))
    }

    async fn list_services(&self) -> Result<Vec<ServiceSpec>, StoreError> {
        let all = sqlx::query("SELECT * FROM services ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        all.iter()
            .map(rows::service)
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    async fn delete_service(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM services WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_agent(&self, spec: &AgentSpec) -> Result<(AgentSpec, bool), StoreError> {
        let row = sqlx::query(
            "INSERT INTO agents (domain, url, timeout_ms, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (domain) DO UPDATE SET url = excluded.url, \
             timeout_ms = excluded.timeout_ms, updated_at = excluded.updated_at \
             RETURNING *",
        )
        .bind(spec.domain.as_str())
        .bind(&spec.url)
        .bind(spec.timeout_ms as i64)
        .bind(spec.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let stored = rows::agent(&row).map_err(|e| self.err(e))?;
        let created = stored.created_at == spec.created_at;
        Ok((stored, created))
    }

    async fn get_agent(&self, domain: &str) -> Result<Option<AgentSpec>, StoreError> {
        let row = sqlx::query("SELECT * FROM agents WHERE domain = $1")
            .bind(domain)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| rows::agent(&r))
            .transpose()
            .map_err(|e| self.err(e))
    }

    async fn list_agents(&self) -> Result<Vec<AgentSpec>, StoreError> {
        let all = sqlx::query("SELECT * FROM agents ORDER BY domain")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        all.iter()
            .map(rows::agent)
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    async fn delete_agent(&self, domain: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM agents WHERE domain = $1")
            .bind(domain)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() > 0)
    }
}
