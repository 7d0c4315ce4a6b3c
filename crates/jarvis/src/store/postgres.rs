//! The shared store: PostgreSQL, through which several instances share breakers, queue and
//! history.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use sqlx::types::Json;

mod history;
mod learning;
mod retry;
mod schedules;
mod tasks;

pub use tasks::CHANNEL;

use super::{
    rows, Backend, HistoryRange, ServicesFingerprint, Store, StoreError, UptimeCount, INSERT_CHUNK,
    PRUNE_BATCH,
};
use crate::agents::AgentSpec;
use crate::config::DatabaseUrl;
use crate::health::{CheckResult, ServiceSpec};

/// The PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: PgPool,
    /// Connections for the queue's own statements (claim, settle, leases, marks, reclaim),
    /// opened with the planner settings those statements need (`tasks::QUEUE_PLAN`), so that
    /// each is one round trip instead of BEGIN, SET LOCAL, the statement and COMMIT.
    queue: PgPool,
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
                        pool,
                        queue,
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

    /// The pool of the queue's statements (see the field).
    pub fn queue_pool(&self) -> &PgPool {
        &self.queue
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
            StoreError::Full(m) => StoreError::Full(self.url.scrub(&m)),
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
        self.queue.close().await;
        self.pool.close().await;
    }

    async fn put_service(&self, spec: &ServiceSpec) -> Result<(ServiceSpec, bool), StoreError> {
        let row = sqlx::query(
            "INSERT INTO services (name, url, method, interval_ms, timeout_ms, critical, \
             expected_status, expect_body, degraded_latency_ms, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $10, $8, $8) \
             ON CONFLICT (name) DO UPDATE SET url = excluded.url, method = excluded.method, \
             interval_ms = excluded.interval_ms, timeout_ms = excluded.timeout_ms, \
             critical = excluded.critical, expected_status = excluded.expected_status, \
             expect_body = excluded.expect_body, \
             degraded_latency_ms = excluded.degraded_latency_ms, updated_at = excluded.updated_at \
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
        .bind(spec.expect_body.as_ref().map(Json))
        .bind(spec.degraded_latency_ms.map(|v| v as i64))
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
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let done = sqlx::query("DELETE FROM services WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        if done.rows_affected() > 0 {
            sqlx::query("DELETE FROM health_uptime WHERE service = $1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn services_fingerprint(&self) -> Result<ServicesFingerprint, StoreError> {
        let (count, latest): (i64, Option<chrono::DateTime<chrono::Utc>>) =
            sqlx::query_as("SELECT COUNT(*), MAX(updated_at) FROM services")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        Ok(ServicesFingerprint { count, latest })
    }

    async fn put_agent(&self, spec: &AgentSpec) -> Result<(AgentSpec, bool), StoreError> {
        let row = sqlx::query(
            "INSERT INTO agents (domain, url, timeout_ms, use_learned, created_at, updated_at) \
             VALUES ($1, $2, $3, $5, $4, $4) \
             ON CONFLICT (domain) DO UPDATE SET url = excluded.url, \
             timeout_ms = excluded.timeout_ms, use_learned = excluded.use_learned, \
             updated_at = excluded.updated_at \
             RETURNING *",
        )
        .bind(spec.domain.as_str())
        .bind(&spec.url)
        .bind(spec.timeout_ms as i64)
        .bind(spec.created_at)
        .bind(spec.use_learned)
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

    async fn insert_health_checks(
        &self,
        results: &[CheckResult],
        instance_id: &str,
    ) -> Result<(), StoreError> {
        for chunk in results.chunks(INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "INSERT INTO health_checks (service, status, message, latency_ms, breaker_open, \
                 correlation_id, instance_id, checked_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.service.as_str())
                    .push_bind(r.status.as_str())
                    .push_bind(r.message.as_str())
                    .push_bind(r.latency_ms as i64)
                    .push_bind(r.breaker_open)
                    .push_bind(r.correlation_id.as_ref().map(|c| c.as_str()))
                    .push_bind(instance_id)
                    .push_bind(r.timestamp);
            });
            q.build()
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    async fn health_history(
        &self,
        service: &str,
        range: HistoryRange,
    ) -> Result<Vec<CheckResult>, StoreError> {
        let all = sqlx::query(
            "SELECT * FROM health_checks WHERE service = $1 \
             AND ($2 IS NULL OR checked_at >= $2) AND ($3 IS NULL OR checked_at < $3) \
             ORDER BY checked_at DESC, id DESC LIMIT $4",
        )
        .bind(service)
        .bind(range.since)
        .bind(range.until)
        .bind(i64::from(range.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        all.iter()
            .map(rows::health_check)
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    async fn prune_health_checks(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM health_checks WHERE id IN \
                 (SELECT id FROM health_checks WHERE checked_at < $1 LIMIT $2)",
            )
            .bind(before)
            .bind(PRUNE_BATCH)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
            total += done.rows_affected();
            if done.rows_affected() < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    async fn add_uptime(&self, counts: &[UptimeCount]) -> Result<(), StoreError> {
        for chunk in counts.chunks(INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "INSERT INTO health_uptime (service, width_s, bucket_start, up, total) ",
            );
            q.push_values(chunk, |mut b, c| {
                b.push_bind(c.service.as_str())
                    .push_bind(c.width_s as i32)
                    .push_bind(c.bucket_start)
                    .push_bind(c.up)
                    .push_bind(c.total);
            });
            q.push(
                " ON CONFLICT (service, width_s, bucket_start) DO UPDATE SET \
                 up = health_uptime.up + excluded.up, total = health_uptime.total + excluded.total",
            );
            q.build()
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    async fn uptime_counts(
        &self,
        since_5m: i64,
        since_1h: i64,
    ) -> Result<Vec<UptimeCount>, StoreError> {
        let rows: Vec<(String, i32, i64, i64, i64)> = sqlx::query_as(
            "SELECT service, width_s, bucket_start, up, total FROM health_uptime \
             WHERE (width_s = 300 AND bucket_start >= $1) \
                OR (width_s = 3600 AND bucket_start >= $2)",
        )
        .bind(since_5m)
        .bind(since_1h)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|(service, width_s, bucket_start, up, total)| UptimeCount {
                service,
                width_s: width_s.max(0) as u32,
                bucket_start,
                up,
                total,
            })
            .collect())
    }

    async fn prune_uptime(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM health_uptime WHERE bucket_start < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected())
    }
}
