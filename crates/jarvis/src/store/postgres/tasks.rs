//! The queue on PostgreSQL: `FOR UPDATE SKIP LOCKED` claims in batches, leases, one `NOTIFY`
//! per submitting transaction, batched settlements.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use sqlx::Row;
use uuid::Uuid;

use super::PostgresStore;
use crate::store::rows;
use crate::store::tasks::{Inserted, Lease, Reclaimed, Settlement, TaskFilter, TaskStore};
use crate::store::StoreError;
use crate::tasks::model::{NewTask, Task};

/// The channel idle workers `LISTEN` on.
pub const CHANNEL: &str = "jarvis_tasks";

const INSERT: &str = "\
WITH ins AS (
    INSERT INTO tasks (id, domain, action, parameters, learned_parameters, status, priority,
                       run_at, attempts, max_attempts, timeout_ms, idempotency_key,
                       correlation_id, locked_by, lease_until, created_at, started_at, updated_at)
    SELECT u.id, u.domain, u.action, u.parameters::jsonb, u.learned::jsonb,
           CASE WHEN $13 THEN 'running' ELSE 'queued' END, u.priority, u.run_at,
           CASE WHEN $13 THEN 1 ELSE 0 END, u.max_attempts, u.timeout_ms, u.key, u.corr,
           $14, $15, u.created_at, $16, u.created_at
    FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[],
                $7::timestamptz[], $8::int4[], $9::int8[], $10::text[], $11::text[],
                $12::timestamptz[])
         AS u(id, domain, action, parameters, learned, priority, run_at, max_attempts,
              timeout_ms, key, corr, created_at)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
), wake AS (
    SELECT pg_notify('jarvis_tasks', '') AS sent WHERE $17 AND EXISTS (SELECT 1 FROM ins)
)
SELECT ins.* FROM ins LEFT JOIN wake ON true";

/// Planner settings of the claim's transaction. With few statistics (a queue that just
/// filled up, before autovacuum analysed it) the planner estimated a handful of ready rows and
/// chose a bitmap scan of the whole ready index plus a sort of every ready task, to take the
/// first `LIMIT` of them: 21 ms per claim with 20,000 tasks queued, O(queue) per claim. Without
/// bitmap scans and sorts the only plan left is the ordered walk of `tasks_ready_idx` that
/// stops at `LIMIT` (1 ms), whatever the statistics say. Hash and merge joins are off for the
/// same reason as in the settlement (`SETTLE_PLAN`): with accurate statistics and a large
/// `LIMIT`, joining the picked rows back to `tasks` by hashing would scan the whole table.
const CLAIM_PLAN: &str = "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off; \
                          SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

const CLAIM: &str = "\
WITH picked AS (
    SELECT id FROM tasks
    WHERE status IN ('queued', 'waiting') AND run_at <= $2
    ORDER BY priority DESC, run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE tasks t SET status = 'running', attempts = t.attempts + 1, locked_by = $1,
       lease_until = $4, started_at = $2, updated_at = $2
FROM picked WHERE t.id = picked.id
RETURNING t.*";

/// Planner settings of the settlement's transaction: with hash and merge joins off, the only
/// plans left are nested loops, and of those the settlement's shape (below) makes the
/// primary-key probe per settlement the cheapest by far.
const SETTLE_PLAN: &str = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

/// Settles a batch by primary key: one primary-key probe per settlement.
///
/// The holder, the expected status and the attempt are compared with per-row values of the
/// batch (join clauses), never with constants (restrictions on `tasks`). With
/// `t.locked_by = $1 AND t.status = 'running'` the planner estimated, from statistics taken
/// before this instance held anything, that one row of `tasks` matched, and for large batches
/// (custom plans know the batch size) chose a sequential scan of `tasks` as the outer side with
/// the whole unnested batch rescanned for every row: O(held × batch), up to 1.2 s for one
/// settlement of 1,382 tasks (auto_explain, bench/queue/README.md). Without a restriction on
/// `tasks`, that plan costs what it really costs (the whole table × the batch), and with hash
/// and merge joins off (`SETTLE_PLAN`; a hash join would scan the whole table per batch) the
/// probe is what remains.
const SETTLE: &str = "\
UPDATE tasks t SET status = u.status, attempts = t.attempts + u.delta,
       run_at = COALESCE(u.run_at, t.run_at), result = u.result::jsonb, error = u.error,
       finished_at = u.finished_at, duration_ms = COALESCE(u.duration_ms, t.duration_ms),
       locked_by = NULL, lease_until = NULL, updated_at = $1
FROM UNNEST($2::uuid[], $3::int4[], $4::text[], $5::int4[], $6::timestamptz[], $7::text[],
            $8::text[], $9::timestamptz[], $10::int8[], $11::text[], $12::text[])
     AS u(id, attempt, status, delta, run_at, result, error, finished_at, duration_ms, holder,
          expected)
WHERE t.id = u.id AND t.locked_by = u.holder AND t.status = u.expected
  AND t.attempts = u.attempt";

const RECLAIM: &str = "\
WITH expired AS (
    SELECT id, locked_by, started_at FROM tasks
    WHERE status = 'running' AND lease_until < $1
    ORDER BY lease_until
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE tasks t SET
    status = CASE WHEN t.attempts >= t.max_attempts THEN 'failed' ELSE 'queued' END,
    finished_at = CASE WHEN t.attempts >= t.max_attempts THEN $1 ELSE NULL END,
    error = 'attempt ' || t.attempts || ' interrupted: instance '
            || COALESCE(e.locked_by, '?') || ' stopped renewing its lease',
    locked_by = NULL, lease_until = NULL, run_at = $1, updated_at = $1
FROM expired e WHERE t.id = e.id
RETURNING t.*, e.locked_by AS lost_by, e.started_at AS attempt_started_at";

#[async_trait]
impl TaskStore for PostgresStore {
    async fn insert_tasks(
        &self,
        tasks: &[NewTask],
        claim: Option<Lease<'_>>,
    ) -> Result<Vec<Inserted>, StoreError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let n = tasks.len();
        let mut ids = Vec::with_capacity(n);
        let mut domains = Vec::with_capacity(n);
        let mut actions = Vec::with_capacity(n);
        let mut params = Vec::with_capacity(n);
        let mut learned = Vec::with_capacity(n);
        let mut priorities = Vec::with_capacity(n);
        let mut run_ats = Vec::with_capacity(n);
        let mut max_attempts = Vec::with_capacity(n);
        let mut timeouts = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let mut corrs = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        for t in tasks {
            ids.push(t.id);
            domains.push(t.domain.as_str().to_string());
            actions.push(t.action.as_str().to_string());
            params.push(t.parameters.to_string());
            learned.push(t.learned_parameters.as_ref().map(|v| v.to_string()));
            priorities.push(t.priority);
            run_ats.push(t.run_at);
            max_attempts.push(t.max_attempts as i32);
            timeouts.push(t.timeout_ms.map(|v| v as i64));
            keys.push(t.idempotency_key.clone());
            corrs.push(t.correlation_id.clone());
            created.push(t.created_at);
        }
        let rows = sqlx::query(INSERT)
            .bind(&ids)
            .bind(&domains)
            .bind(&actions)
            .bind(&params)
            .bind(&learned)
            .bind(&priorities)
            .bind(&run_ats)
            .bind(&max_attempts)
            .bind(&timeouts)
            .bind(&keys)
            .bind(&corrs)
            .bind(&created)
            .bind(claim.is_some())
            .bind(claim.map(|c| c.instance))
            .bind(claim.map(|c| c.until))
            .bind(claim.map(|c| c.now))
            .bind(claim.is_none())
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        let mut stored: HashMap<Uuid, Task> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let t = rows::task(row).map_err(|e| self.err(e))?;
            stored.insert(t.id, t);
        }
        let mut existing: HashMap<String, Task> = HashMap::new();
        if stored.len() < n {
            let missing: Vec<String> = tasks
                .iter()
                .filter(|t| !stored.contains_key(&t.id))
                .filter_map(|t| t.idempotency_key.clone())
                .collect();
            let rows = sqlx::query("SELECT * FROM tasks WHERE idempotency_key = ANY($1)")
                .bind(&missing)
                .fetch_all(self.pool())
                .await
                .map_err(|e| self.err(e))?;
            for row in &rows {
                let t = rows::task(row).map_err(|e| self.err(e))?;
                if let Some(k) = t.idempotency_key.clone() {
                    existing.insert(k, t);
                }
            }
        }
        tasks
            .iter()
            .map(|t| {
                if let Some(s) = stored.get(&t.id) {
                    return Ok(Inserted {
                        task: s.clone(),
                        created: true,
                    });
                }
                t.idempotency_key
                    .as_ref()
                    .and_then(|k| existing.get(k))
                    .map(|e| Inserted {
                        task: e.clone(),
                        created: false,
                    })
                    .ok_or_else(|| {
                        StoreError::Other(format!("task {} was neither stored nor found", t.id))
                    })
            })
            .collect()
    }

    async fn get_task(&self, id: Uuid) -> Result<Option<Task>, StoreError> {
        let row = sqlx::query("SELECT * FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| rows::task(&r))
            .transpose()
            .map_err(|e| self.err(e))
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        let all = sqlx::query(
            "SELECT * FROM tasks WHERE ($1::text IS NULL OR domain = $1) \
             AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR status = $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(filter.domain.as_deref())
        .bind(filter.action.as_deref())
        .bind(filter.status.map(|s| s.as_str()))
        .bind(i64::from(filter.limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        all.iter()
            .map(rows::task)
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    async fn cancel_task(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<(Task, bool)>, StoreError> {
        let row = sqlx::query(
            "UPDATE tasks SET status = 'cancelled', finished_at = $2, locked_by = NULL, \
             lease_until = NULL, updated_at = $2 \
             WHERE id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled') RETURNING *",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        match row {
            Some(r) => Ok(Some((rows::task(&r).map_err(|e| self.err(e))?, true))),
            None => Ok(self.get_task(id).await?.map(|t| (t, false))),
        }
    }

    async fn claim_tasks(&self, lease: Lease<'_>, limit: u32) -> Result<Vec<Task>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let work = async {
            let mut tx = self.pool().begin().await?;
            sqlx::Executor::execute(&mut *tx, CLAIM_PLAN).await?;
            let all = sqlx::query(CLAIM)
                .bind(lease.instance)
                .bind(lease.now)
                .bind(i64::from(limit))
                .bind(lease.until)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(all)
        };
        let all = work.await.map_err(|e| self.err(e))?;
        let mut tasks: Vec<Task> = all
            .iter()
            .map(rows::task)
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        tasks.sort_by(|a, b| (b.priority, a.run_at).cmp(&(a.priority, b.run_at)));
        Ok(tasks)
    }

    async fn extend_leases(
        &self,
        instance: &str,
        ids: &[Uuid],
        until: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Same shape and plan settings as the settlement (see `SETTLE`): one primary-key probe
        // per held task, whatever the statistics say about `locked_by` and `status`.
        let holders = vec![instance; ids.len()];
        let expected = vec!["running"; ids.len()];
        let work = async {
            let mut tx = self.pool().begin().await?;
            sqlx::Executor::execute(&mut *tx, SETTLE_PLAN).await?;
            let rows = sqlx::query(
                "UPDATE tasks t SET lease_until = $1 \
                 FROM UNNEST($2::uuid[], $3::text[], $4::text[]) AS u(id, holder, expected) \
                 WHERE t.id = u.id AND t.locked_by = u.holder AND t.status = u.expected \
                 RETURNING t.id",
            )
            .bind(until)
            .bind(ids)
            .bind(&holders)
            .bind(&expected)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(rows)
        };
        let rows = work.await.map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| r.try_get::<Uuid, _>("id"))
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    async fn settle_tasks(
        &self,
        instance: &str,
        settlements: &[Settlement],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if settlements.is_empty() {
            return Ok(0);
        }
        let n = settlements.len();
        let mut ids = Vec::with_capacity(n);
        let mut attempts = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut deltas = Vec::with_capacity(n);
        let mut run_ats = Vec::with_capacity(n);
        let mut results = Vec::with_capacity(n);
        let mut errors = Vec::with_capacity(n);
        let mut finished = Vec::with_capacity(n);
        let mut durations = Vec::with_capacity(n);
        let holders = vec![instance; n];
        let expected = vec!["running"; n];
        for s in settlements {
            ids.push(s.id);
            attempts.push(s.attempt as i32);
            statuses.push(s.status.as_str());
            deltas.push(s.attempts_delta);
            run_ats.push(s.run_at);
            results.push(s.result.as_ref().map(|v| v.to_string()));
            errors.push(s.error.clone());
            finished.push(s.finished_at);
            durations.push(s.duration_ms.map(|d| d as i64));
        }
        let work = async {
            let mut tx = self.pool().begin().await?;
            sqlx::Executor::execute(&mut *tx, SETTLE_PLAN).await?;
            let done = sqlx::query(SETTLE)
                .bind(now)
                .bind(&ids)
                .bind(&attempts)
                .bind(&statuses)
                .bind(&deltas)
                .bind(&run_ats)
                .bind(&results)
                .bind(&errors)
                .bind(&finished)
                .bind(&durations)
                .bind(&holders)
                .bind(&expected)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(done.rows_affected())
        };
        work.await.map_err(|e| self.err(e))
    }

    async fn reclaim_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Reclaimed>, StoreError> {
        let all = sqlx::query(RECLAIM)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))?;
        all.iter()
            .map(|r| {
                Ok(Reclaimed {
                    task: rows::task(r)?,
                    lost_by: r.try_get("lost_by")?,
                    attempt_started_at: r.try_get("attempt_started_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| self.err(e))
    }

    async fn next_run_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        sqlx::query_scalar("SELECT min(run_at) FROM tasks WHERE status IN ('queued', 'waiting')")
            .fetch_one(self.pool())
            .await
            .map_err(|e| self.err(e))
    }

    async fn queue_depth(&self) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status IN ('queued', 'waiting')")
                .fetch_one(self.pool())
                .await
                .map_err(|e| self.err(e))?;
        Ok(n.max(0) as u64)
    }

    async fn listen_for_tasks(
        &self,
        wake: Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let options = self.connect_options().clone();
        Some(tokio::spawn(async move {
            loop {
                // A pool of its own (one connection, no timeouts): the listener reconnects
                // through it, and closing the main pool at shutdown never waits for it.
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .max_lifetime(None)
                    .idle_timeout(None)
                    .connect_with(options.clone())
                    .await;
                let mut listener = match pool {
                    Ok(pool) => match PgListener::connect_with(&pool).await {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot LISTEN for new tasks; retrying in 1 s");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for new tasks; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "cannot LISTEN for new tasks; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                // Anything submitted while we were not listening is found by this wake-up.
                wake.notify_one();
                loop {
                    match listener.try_recv().await {
                        Ok(Some(_)) => wake.notify_one(),
                        Ok(None) => {
                            // The connection was lost and will be re-established.
                            wake.notify_one();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "task notifications interrupted; reconnecting");
                            wake.notify_one();
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            break;
                        }
                    }
                }
            }
        }))
    }
}
