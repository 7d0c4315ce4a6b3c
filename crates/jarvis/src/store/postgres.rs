//! The shared store: PostgreSQL, through which several instances share breakers, queue and
//! history.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

mod breaker_state;
mod history;
mod retry;
mod tasks;

pub use tasks::CHANNEL;

use super::shared::{BackendHooks, Pools};
use super::INSERT_CHUNK;
use crate::store::config::DatabaseUrl;

/// The PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    /// The main pool reads and writes; the queue's own statements (claim, settle, leases,
    /// marks, reclaim) have connections of their own, opened with the planner settings those
    /// statements need (`tasks::QUEUE_PLAN`), so that each is one round trip instead of BEGIN,
    /// SET LOCAL, the statement and COMMIT.
    pools: Pools<sqlx::Postgres>,
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
                    let queue = PgPoolOptions::new()
                        .max_connections(8)
                        .acquire_timeout(Duration::from_secs(5))
                        .connect_lazy_with(options.clone().options(tasks::QUEUE_PLAN));
                    return Ok(PostgresStore {
                        pools: Pools {
                            reader: pool.clone(),
                            writer: pool,
                            queue,
                        },
                        url: url.clone(),
                        options,
                    });
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

    /// The main pool, for the backend's own modules.
    pub fn pool(&self) -> &PgPool {
        &self.pools.writer
    }

    /// How connections are opened (the task listener opens its own).
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.options
    }
}

impl BackendHooks for PostgresStore {
    /// The password of the URL, from error messages.
    fn scrub(&self, message: String) -> String {
        self.url.scrub(&message)
    }
}

// Everything else is written once, in `store::<domain>`, with this backend's dialect.
// The main pool for reads and writes, the queue's own (see [`PostgresStore`]).
crate::store::shared::impl_sql_store!(
    PostgresStore,
    db = sqlx::Postgres,
    engine = Postgres,
    migrations = "./migrations/postgres",
    health_chunk = INSERT_CHUNK,
    retry = retry::RETRY,
);
