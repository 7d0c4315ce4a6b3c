//! The embedded store: one SQLite file in WAL mode, for a single machine with no setup.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use sqlx::types::Json;

use super::{
    rows, Backend, HistoryRange, ServicesFingerprint, Store, StoreError, UptimeCount, INSERT_CHUNK,
    PRUNE_BATCH,
};
use crate::agents::AgentSpec;
use crate::health::{CheckResult, ServiceSpec};

mod history;
mod learning;
mod retry;
mod schedules;
mod tasks;

/// Health check results per insert (one transaction each). Every other write waits its turn
/// behind the insert in progress on the one writer connection; 500-row inserts made a service
/// deletion wait ~25 ms behind each under a saturated history writer, 128-row ones a quarter
/// of that, for a few percent more time per row (bench/health/README.md).
const HEALTH_INSERT_CHUNK: usize = 128;

/// The SQLite-backed [`Store`].
///
/// SQLite allows one writer at a time. Every write (queue, history, services, agents, breaker
/// state, health history and uptime) therefore goes through `writer`, a pool of exactly one
/// connection whose waiters are served in order, so writes queue inside the process instead
/// of contending for the file lock; reads use `pool`. Contending for the lock would leave the
/// loser in SQLite's busy handler, which sleeps 1, 2, 5 … 100 ms between attempts: a
/// `DELETE` of one service then lost, again and again, to the health history writer that
/// grabs the lock again within microseconds of releasing it (15,000 deletions at 20,000
/// services: p99 0.3–1.5 s each, see bench/health/README.md).
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    /// The last "out of space" error, until a probe write succeeds (`/health` says `fail`
    /// meanwhile).
    full: std::sync::Mutex<Option<String>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and its directory.
    pub async fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("cannot create the data directory {}: {e}", dir.display())
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes; only an OS crash may lose the
            // last transactions, which is the usual trade for an embedded store.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot open the SQLite database {}: {e}", path.display())
            })?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            // A connection must come back outside any transaction. When a write fails at
            // COMMIT or mid-transaction with SQLITE_FULL or an I/O error, SQLite may already
            // have rolled the transaction back, so sqlx's ROLLBACK fails and its count of open
            // transactions stays at one; the next `begin` then opens a SAVEPOINT whose
            // rollback leaves a real transaction open, and every later write joins it and is
            // never committed, though each reports success (issue: 16,300 acknowledged tasks
            // lost on a full disk). Such a connection is closed here, not reused: closing it
            // rolls back whatever it held, and the pool opens a fresh one.
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    if !conn.is_in_transaction() {
                        return Ok(true);
                    }
                    // A dropped transaction's ROLLBACK is queued on the connection's worker:
                    // let it run before judging.
                    conn.lock_handle().await?;
                    let clean = !conn.is_in_transaction();
                    if !clean {
                        tracing::warn!(
                            "closing the SQLite writer connection: a failed write left it inside a transaction"
                        );
                    }
                    Ok(clean)
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot open the SQLite database {}: {e}", path.display())
            })?;
        Ok(SqliteStore {
            pool,
            writer,
            full: std::sync::Mutex::new(None),
        })
    }

    /// The connection pool, for the backend's own modules.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The single-connection pool every queue and history write goes through.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn err(&self, e: sqlx::Error) -> StoreError {
        let e = StoreError::from_sqlx(e);
        if let StoreError::Full(m) = &e {
            *self.full.lock().unwrap_or_else(|p| p.into_inner()) = Some(m.clone());
        }
        e
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        let full = self.full.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(m) = full {
            // Writes failed for lack of space: a probe write (a header field of the file, no
            // table touched) says whether they work again.
            // A value that differs from the stored one, so the header page is really written.
            static PROBE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
            let n = PROBE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1_000_000 + 1;
            sqlx::query(&format!("PRAGMA user_version = {n}"))
                .execute(&self.writer)
                .await
                .map_err(|e| self.err(e))
                .map_err(|e| match e {
                    StoreError::Full(_) => StoreError::Full(format!("writes fail: {m}")),
                    other => other,
                })?;
            *self.full.lock().unwrap_or_else(|p| p.into_inner()) = None;
            tracing::info!("the SQLite store takes writes again");
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))
    }

    async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    async fn put_service(&self, spec: &ServiceSpec) -> Result<(ServiceSpec, bool), StoreError> {
        let row = sqlx::query(
            "INSERT INTO services (name, url, method, interval_ms, timeout_ms, critical, \
             expected_status, expect_body, degraded_latency_ms, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9, ?10, ?8, ?8) \
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
        .fetch_one(&self.writer)
        .await
        .map_err(|e| self.err(e))?;
        let stored = rows::service(&row).map_err(|e| self.err(e))?;
        let created = stored.created_at == spec.created_at;
        Ok((stored, created))
    }

    async fn get_service(&self, name: &str) -> Result<Option<ServiceSpec>, StoreError> {
        let row = sqlx::query("SELECT * FROM services WHERE name = ?1")
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
        let mut tx = self.writer.begin().await.map_err(|e| self.err(e))?;
        let done = sqlx::query("DELETE FROM services WHERE name = ?1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        if done.rows_affected() > 0 {
            sqlx::query("DELETE FROM health_uptime WHERE service = ?1")
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
             VALUES (?1, ?2, ?3, ?5, ?4, ?4) \
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
        .fetch_one(&self.writer)
        .await
        .map_err(|e| self.err(e))?;
        let stored = rows::agent(&row).map_err(|e| self.err(e))?;
        let created = stored.created_at == spec.created_at;
        Ok((stored, created))
    }

    async fn get_agent(&self, domain: &str) -> Result<Option<AgentSpec>, StoreError> {
        let row = sqlx::query("SELECT * FROM agents WHERE domain = ?1")
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
        let done = sqlx::query("DELETE FROM agents WHERE domain = ?1")
            .bind(domain)
            .execute(&self.writer)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_health_checks(
        &self,
        results: &[CheckResult],
        instance_id: &str,
    ) -> Result<(), StoreError> {
        for chunk in results.chunks(HEALTH_INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
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
                .execute(&self.writer)
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
            "SELECT * FROM health_checks WHERE service = ?1 \
             AND (?2 IS NULL OR checked_at >= ?2) AND (?3 IS NULL OR checked_at < ?3) \
             ORDER BY checked_at DESC, id DESC LIMIT ?4",
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
                 (SELECT id FROM health_checks WHERE checked_at < ?1 LIMIT ?2)",
            )
            .bind(before)
            .bind(PRUNE_BATCH)
            .execute(&self.writer)
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
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
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
                .execute(&self.writer)
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
             WHERE (width_s = 300 AND bucket_start >= ?1) \
                OR (width_s = 3600 AND bucket_start >= ?2)",
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
        let done = sqlx::query("DELETE FROM health_uptime WHERE bucket_start < ?1")
            .bind(before)
            .execute(&self.writer)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected())
    }
}
