//! The shared store: PostgreSQL, through which several instances share breakers, queue and
//! history.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};

mod breaker_state;
mod history;
mod retry;
mod tasks;

pub use tasks::CHANNEL;

use super::pool::StorePool;
use super::shared::{BackendHooks, Pools, SqlBackend};
use super::INSERT_CHUNK;
use crate::store::config::{DatabaseUrl, Pooler};

/// The PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    /// The main pool reads and writes; the queue's own statements (claim, settle, leases,
    /// marks, reclaim) have connections of their own, opened with the planner settings those
    /// statements need (`tasks::QUEUE_PLAN`), so that each is one round trip instead of BEGIN,
    /// SET LOCAL, the statement and COMMIT. Behind a transaction-mode pooler that is what they
    /// cost (see `store::pool`): a pooler cannot keep settings per session.
    pools: Pools<sqlx::Postgres>,
    url: DatabaseUrl,
    /// Where `LISTEN` and migrations connect: directly to PostgreSQL, never through a
    /// transaction-mode pooler (a listening session must stay one server session, and the
    /// migrator holds a session-level advisory lock).
    listen_url: DatabaseUrl,
    listen: PgConnectOptions,
    /// What `url` reaches.
    pooler: Pooler,
}

/// Connect options from a URL, named `jarvis` in `pg_stat_activity`; the error names host and
/// database, never the password.
fn options_of(url: &DatabaseUrl) -> anyhow::Result<PgConnectOptions> {
    let options: PgConnectOptions = url
        .expose()
        .parse()
        .map_err(|e: sqlx::Error| anyhow::anyhow!(url.scrub(&e.to_string())))?;
    Ok(options.application_name("jarvis"))
}

impl PostgresStore {
    /// Connects to PostgreSQL itself at `url` (see [`connect_to`](Self::connect_to)).
    pub async fn connect(url: &DatabaseUrl, connect_timeout: Duration) -> anyhow::Result<Self> {
        Self::connect_to(url, None, Pooler::None, connect_timeout).await
    }

    /// Connects to `url`, which reaches PostgreSQL or a `pooler`, retrying with exponential
    /// backoff (100 ms doubling to 2 s) until `connect_timeout` has passed; `LISTEN` and
    /// migrations connect to `listen_url` (by default `url`). The error names host and
    /// database, never the password.
    pub async fn connect_to(
        url: &DatabaseUrl,
        listen_url: Option<&DatabaseUrl>,
        pooler: Pooler,
        connect_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut options = options_of(url)?;
        let listen_url = listen_url.unwrap_or(url).clone();
        let listen = options_of(&listen_url)?;
        if pooler == Pooler::Transaction {
            // PgBouncer refuses startup parameters it does not know ("unsupported startup
            // parameter: extra_float_digits"); results come back in binary, which it does not
            // affect. No statement cache: every statement is sent unnamed (`store::pool`).
            options = options.extra_float_digits(None).statement_cache_capacity(0);
        }
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
                        .acquire_timeout(Duration::from_secs(5));
                    let pools = match pooler {
                        Pooler::None => Pools {
                            reader: StorePool::direct(pool.clone()),
                            writer: StorePool::direct(pool),
                            queue: StorePool::direct(
                                queue.connect_lazy_with(options.clone().options(tasks::QUEUE_PLAN)),
                            ),
                        },
                        Pooler::Transaction => Pools {
                            reader: StorePool::behind_pooler(pool.clone(), "BEGIN"),
                            writer: StorePool::behind_pooler(pool, "BEGIN"),
                            queue: StorePool::behind_pooler(
                                queue.connect_lazy_with(options.clone()),
                                tasks::queue_begin(),
                            ),
                        },
                    };
                    return Ok(PostgresStore {
                        pools,
                        url: url.clone(),
                        listen_url,
                        listen,
                        pooler,
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

    /// How `LISTEN`ing connections are opened: directly to PostgreSQL
    /// (`JARVIS_LISTEN_DATABASE_URL`, by default `DATABASE_URL`).
    pub(crate) fn listen_options(&self) -> &PgConnectOptions {
        &self.listen
    }
}

impl BackendHooks for PostgresStore {
    /// The passwords of the URLs, from error messages.
    fn scrub(&self, message: String) -> String {
        self.listen_url.scrub(&self.url.scrub(&message))
    }

    /// Behind a pooler, on a direct connection (`JARVIS_LISTEN_DATABASE_URL`): sqlx's migrator
    /// holds a session-level advisory lock (`pg_advisory_lock`) from the first migration to the
    /// last, which a transaction-mode pooler would leave on whichever server connection took
    /// it. Without one, on a connection of the main pool (no connection more at start).
    async fn run_migrations(&self) -> Result<(), sqlx::migrate::MigrateError> {
        if self.pooler == Pooler::None {
            return Self::MIGRATOR.run(self.reader().inner()).await;
        }
        let direct = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(self.listen.clone())
            .await?;
        let done = Self::MIGRATOR.run(&direct).await;
        direct.close().await;
        done
    }

    /// `clock_timestamp()`: the server's clock when the statement runs (`now()` would be the
    /// start of the transaction).
    async fn database_time(
        &self,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, crate::store::StoreError> {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>("SELECT clock_timestamp()")
            .fetch_one(self.reader())
            .await
            .map(Some)
            .map_err(|e| self.classify(e))
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
