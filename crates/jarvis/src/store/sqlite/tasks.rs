//! The queue on SQLite: every write goes through the single writer connection, so a claim
//! (one `UPDATE … RETURNING` over the next due rows) can never hand a task to two workers.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::SqliteStore;
use crate::model::task::{NewTask, Task, TaskStatus};
use crate::store::rows;
use crate::store::shared::{DbUuid, SqlBackend};
use crate::store::tasks::{Lease, QueueDialect, ReclaimOutcome, Reclaimed, Settlement};

/// Rows per statement (at most 19 parameters each: far below SQLite's limit of 32,766).
///
/// Every statement is a round trip to sqlx's SQLite worker thread: with one per task a batch
/// was mostly thread wake-ups (bench/queue/README.md, SQLite enqueue), so inserts and
/// settlements take a chunk of rows each (lease renewals and call marks take the whole batch
/// as JSON arrays).
pub(super) const ROWS: usize = 100;

impl QueueDialect for SqliteStore {
    /// One `UPDATE … RETURNING` over the next due rows (the single writer makes it atomic).
    const CLAIM: &'static str = "\
UPDATE tasks SET status = 'running', attempts = attempts + 1, locked_by = $1, lease_until = $4,
       started_at = $2, called_at = NULL, updated_at = $2
WHERE id IN (SELECT id FROM tasks WHERE status IN ('queued', 'waiting') AND run_at <= $2
             ORDER BY priority DESC, run_at, id LIMIT $3)
RETURNING *";

    /// SQLite has no arrays: the keys come as a JSON array.
    const BY_KEYS: &'static str =
        "SELECT * FROM tasks WHERE idempotency_key IN (SELECT value FROM json_each($1))";

    /// The lists come as JSON arrays; the holder and the expected status are one value each
    /// (bound per task for PostgreSQL's plan), so membership is the per-task comparison.
    const RENEW: &'static str = "\
UPDATE tasks SET lease_until = $1
WHERE id IN (SELECT value FROM json_each($2))
  AND locked_by IN (SELECT value FROM json_each($3)) AND status IN (SELECT value FROM json_each($4))
RETURNING id";

    /// Like [`RENEW`](Self::RENEW), with each task's attempt number at the same index of `$3`.
    const MARK_CALLED: &'static str = "\
UPDATE tasks SET called_at = $1
FROM (SELECT i.value AS id, $3 ->> i.key AS attempt FROM json_each($2) AS i) AS u
WHERE tasks.id = u.id AND tasks.attempts = u.attempt
  AND tasks.locked_by IN (SELECT value FROM json_each($4))
  AND tasks.status IN (SELECT value FROM json_each($5))
RETURNING tasks.id";

    async fn store_tasks(
        &self,
        tasks: &[NewTask],
        claim: Option<Lease<'_>>,
    ) -> Result<Vec<Task>, sqlx::Error> {
        let mut tx = self.writer().begin().await?;
        let mut stored = Vec::with_capacity(tasks.len());
        for chunk in tasks.chunks(ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO tasks (id, domain, action, parameters, learned_parameters, \
                 status, priority, run_at, attempts, max_attempts, timeout_ms, \
                 idempotency_key, correlation_id, locked_by, lease_until, created_at, \
                 started_at, updated_at, notify_done, traceparent) ",
            );
            q.push_values(chunk, |mut b, t| {
                b.push_bind(DbUuid(t.id))
                    .push_bind(t.domain.as_str())
                    .push_bind(t.action.as_str())
                    .push_bind(t.parameters.to_string())
                    .push_bind(t.learned_parameters.as_ref().map(|v| v.to_string()))
                    .push_bind(if claim.is_some() {
                        TaskStatus::Running.as_str()
                    } else {
                        TaskStatus::Queued.as_str()
                    })
                    .push_bind(t.priority)
                    .push_bind(t.run_at)
                    .push_bind(if claim.is_some() { 1 } else { 0 })
                    .push_bind(t.max_attempts as i64)
                    .push_bind(t.timeout_ms.map(|v| v as i64))
                    .push_bind(t.idempotency_key.as_deref())
                    .push_bind(t.correlation_id.as_str())
                    .push_bind(claim.map(|c| c.instance))
                    .push_bind(claim.map(|c| c.until))
                    .push_bind(t.created_at)
                    .push_bind(claim.map(|c| c.now))
                    .push_bind(t.created_at)
                    .push_bind(t.notify_done)
                    .push_bind(t.traceparent.as_deref());
            });
            q.push(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING *");
            for r in q.build().fetch_all(&mut tx).await? {
                stored.push(rows::task(&r)?);
            }
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// One `UPDATE … FROM (VALUES …)` per chunk of settlements, each row matched by primary
    /// key and attempt (like PostgreSQL's `UNNEST` join).
    async fn apply_settlements(
        &self,
        instance: &str,
        settlements: &[Settlement],
        now: DateTime<Utc>,
    ) -> Result<u64, sqlx::Error> {
        let mut tx = self.writer().begin().await?;
        let mut applied = 0;
        for chunk in settlements.chunks(ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE tasks SET status = u.status, attempts = tasks.attempts + u.delta, \
                 run_at = COALESCE(u.run_at, tasks.run_at), result = u.result, error = u.error, \
                 finished_at = u.finished_at, duration_ms = COALESCE(u.duration_ms, tasks.duration_ms), \
                 locked_by = NULL, lease_until = NULL, called_at = NULL, updated_at = ",
            );
            q.push_bind(now).push(
                " FROM (SELECT column1 AS id, column2 AS attempt, column3 AS status, \
                 column4 AS delta, column5 AS run_at, column6 AS result, column7 AS error, \
                 column8 AS finished_at, column9 AS duration_ms FROM (",
            );
            q.push_values(chunk, |mut row, s| {
                row.push_bind(DbUuid(s.id))
                    .push_bind(i64::from(s.attempt))
                    .push_bind(s.status.as_str())
                    .push_bind(s.attempts_delta)
                    .push_bind(s.run_at)
                    .push_bind(s.result.as_ref().map(|v| v.to_string()))
                    .push_bind(s.error.as_deref())
                    .push_bind(s.finished_at)
                    .push_bind(s.duration_ms.map(|d| d as i64));
            });
            q.push(
                ")) AS u WHERE tasks.id = u.id AND tasks.attempts = u.attempt \
                 AND tasks.status = 'running' AND tasks.locked_by = ",
            )
            .push_bind(instance);
            applied += q.build().execute(&mut tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(applied)
    }

    /// One process owns the file, so there is no server restart to wait for: `grace` is
    /// ignored (the queue itself waits after its own store errors).
    async fn take_back_expired(
        &self,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
        limit: u32,
        _grace: std::time::Duration,
    ) -> Result<Vec<Reclaimed>, sqlx::Error> {
        let mut tx = self.writer().begin().await?;
        let expired = sqlx::query(
            "SELECT t.id, t.locked_by, t.started_at, t.called_at, t.lease_until, t.attempts, \
                    t.max_attempts, t.error, h.success AS rec_success, \
                    h.failure_reason AS rec_reason, h.finished_at AS rec_finished, \
                    h.duration_ms AS rec_duration, h.task_id IS NOT NULL AS recorded \
             FROM tasks t \
             LEFT JOIN task_history h ON h.task_id = t.id AND h.attempt = t.attempts \
             WHERE t.status = 'running' AND t.lease_until < ?1 \
             ORDER BY t.lease_until LIMIT ?2",
        )
        .bind(expired_before)
        .bind(i64::from(limit))
        .fetch_all(&mut tx)
        .await?;
        let mut out = Vec::with_capacity(expired.len());
        for e in &expired {
            let task_id: String = e.try_get("id")?;
            let lost_by: Option<String> = e.try_get("locked_by")?;
            let started: Option<DateTime<Utc>> = e.try_get("started_at")?;
            let called: Option<DateTime<Utc>> = e.try_get("called_at")?;
            let lease_until: Option<DateTime<Utc>> = e.try_get("lease_until")?;
            let attempts: i64 = e.try_get("attempts")?;
            let max_attempts: i64 = e.try_get("max_attempts")?;
            let last = attempts >= max_attempts;
            let recorded: bool = e.try_get("recorded")?;
            let (outcome, status, delta, finished, duration, error) = if recorded {
                let success: bool = e.try_get("rec_success")?;
                let finished: Option<DateTime<Utc>> = e.try_get("rec_finished")?;
                let duration: Option<i64> = e.try_get("rec_duration")?;
                let reason: Option<String> = e.try_get("rec_reason")?;
                let status = if success {
                    TaskStatus::Succeeded
                } else if last {
                    TaskStatus::Failed
                } else {
                    TaskStatus::Queued
                };
                let finished = status.is_final().then_some(finished).flatten();
                let error = if success { None } else { reason };
                (
                    ReclaimOutcome::Recorded,
                    status,
                    0,
                    finished,
                    duration,
                    error,
                )
            } else if called.is_none() {
                let error: Option<String> = e.try_get("error")?;
                (
                    ReclaimOutcome::GivenBack,
                    TaskStatus::Queued,
                    -1,
                    None,
                    None,
                    error,
                )
            } else {
                let status = if last {
                    TaskStatus::Failed
                } else {
                    TaskStatus::Queued
                };
                let holder = lost_by.as_deref().unwrap_or("?");
                // Taken back whatever its lease (`reclaim_orphaned`): the holder is known gone.
                let error = if expired_before > now {
                    format!(
                        "attempt {attempts} interrupted: instance {holder} stopped while the \
                         attempt ran (taken back when serve started again on its data directory)"
                    )
                } else {
                    format!(
                        "attempt {attempts} interrupted: instance {holder} stopped renewing its lease"
                    )
                };
                (
                    ReclaimOutcome::Interrupted,
                    status,
                    0,
                    last.then_some(now),
                    None,
                    Some(error),
                )
            };
            let row = sqlx::query(
                "UPDATE tasks SET status = ?3, attempts = attempts + ?4, finished_at = ?5, \
                 duration_ms = COALESCE(?6, duration_ms), error = ?7, locked_by = NULL, \
                 lease_until = NULL, called_at = NULL, run_at = ?2, updated_at = ?2 \
                 WHERE id = ?1 RETURNING *",
            )
            .bind(&task_id)
            .bind(now)
            .bind(status.as_str())
            .bind(delta)
            .bind(finished)
            .bind(duration)
            .bind(error)
            .fetch_one(&mut tx)
            .await?;
            out.push(Reclaimed {
                task: rows::task(&row)?,
                lost_by,
                attempt_started_at: started,
                lost_lease_until: lease_until,
                outcome,
            });
        }
        tx.commit().await?;
        Ok(out)
    }
}
