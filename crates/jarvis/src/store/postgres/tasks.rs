//! The queue on PostgreSQL: `FOR UPDATE SKIP LOCKED` claims in batches, leases, one `NOTIFY`
//! per submitting transaction, batched settlements.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use sqlx::Row;
use uuid::Uuid;

use super::PostgresStore;
use crate::model::task::{NewTask, Task};
use crate::store::rows;
use crate::store::shared::SqlBackend;
use crate::store::tasks::{Lease, QueueDialect, ReclaimOutcome, Reclaimed, Settlement};

/// The channel idle workers `LISTEN` on.
pub const CHANNEL: &str = "jarvis_tasks";
/// The channel waiters `LISTEN` on: comma-separated IDs of finished tasks someone waits for.
pub const DONE_CHANNEL: &str = "jarvis_task_done";
/// Task IDs per `jarvis_task_done` notification (37 bytes each; a payload holds < 8,000).
const DONE_PER_NOTICE: i64 = 200;

const INSERT: &str = "\
WITH ins AS (
    INSERT INTO tasks (id, domain, action, parameters, learned_parameters, status, priority,
                       run_at, attempts, max_attempts, timeout_ms, idempotency_key,
                       correlation_id, locked_by, lease_until, created_at, started_at, updated_at,
                       notify_done, traceparent)
    SELECT u.id, u.domain, u.action, u.parameters::jsonb, u.learned::jsonb,
           CASE WHEN $13 THEN 'running' ELSE 'queued' END, u.priority, u.run_at,
           CASE WHEN $13 THEN 1 ELSE 0 END, u.max_attempts, u.timeout_ms, u.key, u.corr,
           $14, $15, u.created_at, $16, u.created_at, u.notify, u.tp
    FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[],
                $7::timestamptz[], $8::int4[], $9::int8[], $10::text[], $11::text[],
                $12::timestamptz[], $18::bool[], $19::text[])
         AS u(id, domain, action, parameters, learned, priority, run_at, max_attempts,
              timeout_ms, key, corr, created_at, notify, tp)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
), wake AS (
    SELECT pg_notify('jarvis_tasks', '') AS sent WHERE $17 AND EXISTS (SELECT 1 FROM ins)
)
SELECT ins.* FROM ins LEFT JOIN wake ON true";

/// Planner settings of every queue statement, set when a connection of the store's queue
/// pool opens (so each statement is one round trip, with no transaction around it).
///
/// For the claim: with few statistics (a queue that just filled up, before autovacuum analysed
/// it) the planner estimated a handful of ready rows and chose a bitmap scan of the whole ready
/// index plus a sort of every ready task, to take the first `LIMIT` of them: 21 ms per claim
/// with 20,000 tasks queued, O(queue) per claim. Without bitmap scans and sorts the only plan
/// left is the ordered walk of `tasks_ready_idx` that stops at `LIMIT` (1 ms), whatever the
/// statistics say. Hash and merge joins are off for the reason given at `SETTLE`: with
/// accurate statistics and a large batch, joining it to `tasks` by hashing would scan the
/// whole table. The settlement, lease renewal, call marks and the reclaimer's join to the
/// attempt's history record are all primary-key (or unique-index) probes under these settings.
///
/// The queue's own statements also commit without waiting for the WAL flush
/// (`synchronous_commit = off`). What they write is bookkeeping that a PostgreSQL crash may
/// lose (the last few hundred ms) without losing anything acknowledged: a lost claim puts the
/// task back in the queue (at least once), a lost settlement leaves the task running until its
/// lease expires and the reclaimer settles it from its history record, a lost call mark gives
/// the attempt back. History records stay synchronous (the main pool), and each synchronous
/// commit flushes every earlier WAL record, the queue's included. Submissions commit here too,
/// but are flushed by a synchronous commit before they are acknowledged (`insert_tasks`).
/// Measured: cross-instance pickup after the submission's 202, p50 1.0 ms → 0.1 ms
/// (bench/queue).
pub(crate) const QUEUE_PLAN: [(&str, &str); 5] = [
    ("synchronous_commit", "off"),
    ("enable_bitmapscan", "off"),
    ("enable_sort", "off"),
    ("enable_hashjoin", "off"),
    ("enable_mergejoin", "off"),
];

/// The statement that opens each queue statement's transaction behind a transaction-mode
/// pooler, which cannot keep [`QUEUE_PLAN`] per session: `BEGIN` and a `SET LOCAL` of each
/// setting, in one round trip.
pub(crate) fn queue_begin() -> String {
    let mut begin = String::from("BEGIN");
    for (name, value) in QUEUE_PLAN {
        begin.push_str(&format!("; SET LOCAL {name} = {value}"));
    }
    begin
}

const CLAIM: &str = "\
WITH picked AS (
    SELECT id FROM tasks
    WHERE status IN ('queued', 'waiting') AND run_at <= $2
    ORDER BY priority DESC, run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE tasks t SET status = 'running', attempts = t.attempts + 1, locked_by = $1,
       lease_until = $4, started_at = $2, called_at = NULL, updated_at = $2
FROM picked WHERE t.id = picked.id
RETURNING t.*";

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
/// and merge joins off (`QUEUE_PLAN`; a hash join would scan the whole table per batch) the
/// probe is what remains.
///
/// Tasks someone waits for (`notify_done`) that reach a final status are announced on
/// `jarvis_task_done` in the same statement (delivered at commit, so a waiter that hears of
/// one reads the settled row), at most `DONE_PER_NOTICE` IDs per notification.
const SETTLE: &str = "\
WITH done AS (
    UPDATE tasks t SET status = u.status, attempts = t.attempts + u.delta,
           run_at = COALESCE(u.run_at, t.run_at), result = u.result::jsonb, error = u.error,
           finished_at = u.finished_at, duration_ms = COALESCE(u.duration_ms, t.duration_ms),
           locked_by = NULL, lease_until = NULL, called_at = NULL, updated_at = $1
    FROM UNNEST($2::uuid[], $3::int4[], $4::text[], $5::int4[], $6::timestamptz[], $7::text[],
                $8::text[], $9::timestamptz[], $10::int8[], $11::text[], $12::text[])
         AS u(id, attempt, status, delta, run_at, result, error, finished_at, duration_ms,
              holder, expected)
    WHERE t.id = u.id AND t.locked_by = u.holder AND t.status = u.expected
      AND t.attempts = u.attempt
    RETURNING t.id, t.status, t.notify_done
), waited AS (
    SELECT id, row_number() OVER () - 1 AS n FROM done
    WHERE notify_done AND status IN ('succeeded', 'failed', 'cancelled')
), sent AS (
    SELECT pg_notify('jarvis_task_done', string_agg(id::text, ',')) FROM waited
    GROUP BY n / $13
)
SELECT (SELECT count(*) FROM done) AS applied, (SELECT count(*) FROM sent) AS notices";

/// Takes back tasks whose lease expired, deciding per task from its row and the history record
/// of its current attempt (see [`ReclaimOutcome`]): `recorded` settles as the record says,
/// `given_back` returns an attempt whose agent was never called (`called_at IS NULL`),
/// `interrupted` requeues (or fails) and leaves the record to the caller. Leases that expired
/// before `$4` (`$1`, now, but for orphans); `$1` stamps what is taken back. Nothing is
/// reclaimed until `$3` has passed since the server started: leases that expired while it was down
/// belong to holders that may be alive and renew as soon as they reconnect.
const RECLAIM: &str = "\
WITH expired AS (
    SELECT id, locked_by, started_at, called_at, lease_until, attempts FROM tasks
    WHERE status = 'running' AND lease_until < $4 AND pg_postmaster_start_time() < $3
    ORDER BY lease_until
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), decided AS (
    SELECT e.id, e.locked_by, e.started_at, e.lease_until, h.success AS rec_success,
           h.failure_reason AS rec_reason, h.finished_at AS rec_finished,
           h.duration_ms AS rec_duration,
           CASE WHEN h.task_id IS NOT NULL THEN 'recorded'
                WHEN e.called_at IS NULL THEN 'given_back'
                ELSE 'interrupted' END AS outcome
    FROM expired e
    LEFT JOIN task_history h ON h.task_id = e.id AND h.attempt = e.attempts
)
UPDATE tasks t SET
    status = CASE
        WHEN d.outcome = 'recorded' AND d.rec_success THEN 'succeeded'
        WHEN d.outcome = 'given_back' THEN 'queued'
        WHEN t.attempts >= t.max_attempts THEN 'failed'
        ELSE 'queued' END,
    attempts = CASE WHEN d.outcome = 'given_back' THEN t.attempts - 1 ELSE t.attempts END,
    finished_at = CASE
        WHEN d.outcome = 'recorded' AND (d.rec_success OR t.attempts >= t.max_attempts)
            THEN d.rec_finished
        WHEN d.outcome = 'interrupted' AND t.attempts >= t.max_attempts THEN $1
        ELSE NULL END,
    duration_ms = CASE WHEN d.outcome = 'recorded' THEN d.rec_duration ELSE t.duration_ms END,
    error = CASE
        WHEN d.outcome = 'recorded' AND d.rec_success THEN NULL
        WHEN d.outcome = 'recorded' THEN d.rec_reason
        WHEN d.outcome = 'given_back' THEN t.error
        ELSE 'attempt ' || t.attempts || ' interrupted: instance '
             || COALESCE(d.locked_by, '?') || ' stopped renewing its lease' END,
    locked_by = NULL, lease_until = NULL, called_at = NULL, run_at = $1, updated_at = $1
FROM decided d WHERE t.id = d.id
RETURNING t.*, d.locked_by AS lost_by, d.started_at AS attempt_started_at,
          d.lease_until AS lost_lease_until, d.outcome";

/// Renews leases: same shape and plan settings as the settlement (see `SETTLE`), one
/// primary-key probe per held task, whatever the statistics say about `locked_by` and `status`.
const RENEW: &str = "\
UPDATE tasks t SET lease_until = $1
FROM UNNEST($2::uuid[], $3::text[], $4::text[]) AS u(id, holder, expected)
WHERE t.id = u.id AND t.locked_by = u.holder AND t.status = u.expected
RETURNING t.id";

/// Marks attempts as called; same shape and plan settings as the settlement (`SETTLE`).
const MARK_CALLED: &str = "\
UPDATE tasks t SET called_at = $1
FROM UNNEST($2::uuid[], $3::int4[], $4::text[], $5::text[]) AS u(id, attempt, holder, expected)
WHERE t.id = u.id AND t.locked_by = u.holder AND t.status = u.expected AND t.attempts = u.attempt
RETURNING t.id";

impl QueueDialect for PostgresStore {
    const CLAIM: &'static str = CLAIM;
    const BY_KEYS: &'static str = "SELECT * FROM tasks WHERE idempotency_key = ANY($1)";
    const RENEW: &'static str = RENEW;
    const MARK_CALLED: &'static str = MARK_CALLED;

    async fn store_tasks(
        &self,
        tasks: &[NewTask],
        claim: Option<Lease<'_>>,
    ) -> Result<Vec<Task>, sqlx::Error> {
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
        let mut notify = Vec::with_capacity(n);
        let mut traceparents = Vec::with_capacity(n);
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
            notify.push(t.notify_done);
            traceparents.push(t.traceparent.clone());
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
            .bind(&notify)
            .bind(&traceparents)
            .fetch_all(self.queue())
            .await?;
        // Visible at once, durable before anyone is told: the insert above commits without
        // waiting for its WAL flush (the queue pool), so its NOTIFY reaches the workers and
        // their claim runs while the flush happens; this synchronous commit (a transaction id
        // of its own, nothing else written) flushes the WAL up to and past the insert's commit
        // record before the caller hears "stored". A crash in between loses a task nobody was
        // told about (its run, if it started, with it: the claim and any record come later in
        // the WAL); an error here answers the submission with an error although the task may
        // exist, as a lost answer would (the idempotency key finds it).
        // (As text: sqlx does not know `xid8`, and would look the type up with a named
        // statement of its own, which a transaction-mode pooler cannot carry; `store::pool`.)
        sqlx::query("SELECT pg_current_xact_id()::text")
            .execute(self.writer())
            .await?;
        rows.iter().map(rows::task).collect()
    }

    async fn apply_settlements(
        &self,
        instance: &str,
        settlements: &[Settlement],
        now: DateTime<Utc>,
    ) -> Result<u64, sqlx::Error> {
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
            .bind(DONE_PER_NOTICE)
            .fetch_one(self.queue())
            .await?;
        Ok(done.try_get::<i64, _>("applied")?.max(0) as u64)
    }

    async fn take_back_expired(
        &self,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
        limit: u32,
        grace: Duration,
    ) -> Result<Vec<Reclaimed>, sqlx::Error> {
        let up_before =
            now - chrono::TimeDelta::from_std(grace).unwrap_or(chrono::TimeDelta::zero());
        let all = sqlx::query(RECLAIM)
            .bind(now)
            .bind(i64::from(limit))
            .bind(up_before)
            .bind(expired_before)
            .fetch_all(self.queue())
            .await?;
        all.iter()
            .map(|r| {
                let outcome: String = r.try_get("outcome")?;
                Ok(Reclaimed {
                    task: rows::task(r)?,
                    lost_by: r.try_get("lost_by")?,
                    attempt_started_at: r.try_get("attempt_started_at")?,
                    lost_lease_until: r.try_get("lost_lease_until")?,
                    outcome: match outcome.as_str() {
                        "recorded" => ReclaimOutcome::Recorded,
                        "given_back" => ReclaimOutcome::GivenBack,
                        _ => ReclaimOutcome::Interrupted,
                    },
                })
            })
            .collect()
    }

    async fn listen_for_tasks(
        &self,
        wake: Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let options = self.listen_options().clone();
        Some(tokio::spawn(listen(options, CHANNEL, move |_| {
            // Any message, a reconnection included (something may have been submitted while
            // nobody listened), is a reason to look for work.
            wake.notify_one();
        })))
    }

    async fn notify_finished(&self, ids: &[Uuid]) -> Result<(), sqlx::Error> {
        for chunk in ids.chunks(DONE_PER_NOTICE as usize) {
            let payload = chunk
                .iter()
                .map(|id| id.hyphenated().to_string())
                .collect::<Vec<_>>()
                .join(",");
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(DONE_CHANNEL)
                .bind(payload)
                .execute(self.writer())
                .await?;
        }
        Ok(())
    }

    async fn listen_for_finished(
        &self,
        finished: tokio::sync::broadcast::Sender<Uuid>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let options = self.listen_options().clone();
        Some(tokio::spawn(listen(
            options,
            DONE_CHANNEL,
            move |payload| {
                // A reconnection (`None`) carries no IDs: waiters fall back to their poll for
                // anything announced while nobody listened.
                for id in payload.unwrap_or("").split(',') {
                    if let Ok(id) = Uuid::parse_str(id) {
                        let _ = finished.send(id);
                    }
                }
            },
        )))
    }
}

/// `LISTEN`s on `channel` for as long as the task runs, reconnecting after a lost connection,
/// and hands every payload to `on_message` (`None` after each (re)connection, when messages
/// may have been missed).
async fn listen(
    options: sqlx::postgres::PgConnectOptions,
    channel: &'static str,
    on_message: impl Fn(Option<&str>) + Send + 'static,
) {
    loop {
        // A pool of its own (one connection, no timeouts): the listener reconnects through
        // it, and closing the main pool at shutdown never waits for it.
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
                    tracing::warn!(error = %e, channel, "cannot LISTEN; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, channel, "cannot LISTEN; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(channel).await {
            tracing::warn!(error = %e, channel, "cannot LISTEN; retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        on_message(None);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => on_message(Some(n.payload())),
                // The connection was lost and will be re-established.
                Ok(None) => on_message(None),
                Err(e) => {
                    tracing::warn!(error = %e, channel, "notifications interrupted; reconnecting");
                    on_message(None);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
        }
    }
}
