//! Traces in the store: the trace events Jarvis writes (`trace_events`: API requests, AI
//! gateway calls, agent calls, breaker decisions; appended in batches, pruned by age) and
//! everything else kept under one correlation ID (tasks, execution records, health checks),
//! each read through an index on `correlation_id` — except tasks: `tasks` has no such index (it
//! would take an entry at every status change of every task; see migration 0016), so a trace's
//! tasks are those its submission markers name (a `task` event per submission, with the IDs
//! stored) and those its attempts ran, read by primary key.
//!
//! The SQL is written once: both engines accept it as is. `impl_trace_store!` expands it for a
//! backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::model::check::CheckResult;
use crate::model::record::StoredExecution;
use crate::model::task::Task;
use crate::model::trace::TraceEvent;

/// The head of a multi-row insert of trace events (`push_values` adds the rows).
pub(crate) const INSERT: &str = "INSERT INTO trace_events (correlation_id, at, kind, \
     instance_id, task_id, attempt, summary, duration_ms, status, detail) ";

pub(crate) const EVENTS: &str = "\
SELECT * FROM trace_events WHERE correlation_id = $1 ORDER BY at, id LIMIT $2";
/// The head of the read of a trace's tasks by ID (`push_tuples`-style list added after it).
pub(crate) const TASKS_BY_ID: &str = "SELECT * FROM tasks WHERE id IN ";
pub(crate) const ATTEMPTS: &str = "\
SELECT * FROM task_history WHERE correlation_id = $1 ORDER BY started_at, id LIMIT $2";
pub(crate) const CHECKS: &str = "\
SELECT * FROM health_checks WHERE correlation_id = $1 ORDER BY checked_at, id LIMIT $2";

/// One retention batch ([`PRUNE_BATCH`](super::PRUNE_BATCH) rows at most).
pub(crate) const PRUNE: &str = "\
DELETE FROM trace_events WHERE id IN
    (SELECT id FROM trace_events WHERE at < $1 LIMIT $2)";

/// Everything the store keeps under one correlation ID (each list at most the limit asked
/// for, oldest first).
#[derive(Debug, Default)]
pub struct TraceSources {
    /// Trace events (requests, gateway and agent calls, breaker decisions).
    pub events: Vec<TraceEvent>,
    /// Tasks submitted under the ID (named by a submission marker or run by an attempt).
    pub tasks: Vec<Task>,
    /// Their execution records (one per attempt).
    pub attempts: Vec<StoredExecution>,
    /// Health checks made under the ID, with the instance that made each.
    pub checks: Vec<(CheckResult, Option<String>)>,
}

impl TraceSources {
    /// Whether the store knows nothing of the ID.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.tasks.is_empty()
            && self.attempts.is_empty()
            && self.checks.is_empty()
    }
}

/// The detail key of a submission marker: the IDs of the tasks one submission stored.
pub const SUBMITTED_IDS: &str = "taskIds";

/// Splits the submission markers (stored `task` events, see [`SUBMITTED_IDS`]) off `events`
/// and returns the task IDs they and `attempts` name, first seen first, at most `limit`.
pub(crate) fn task_ids(
    events: &mut Vec<TraceEvent>,
    attempts: &[StoredExecution],
    limit: usize,
) -> Vec<uuid::Uuid> {
    let mut seen = std::collections::HashSet::new();
    let mut ids = Vec::new();
    let mut keep = |id: uuid::Uuid| {
        if ids.len() < limit && seen.insert(id) {
            ids.push(id);
        }
    };
    events.retain(|e| {
        if e.kind != crate::model::trace::TraceKind::Task {
            return true;
        }
        let named = e.detail.get(SUBMITTED_IDS).and_then(|v| v.as_array());
        for id in named.into_iter().flatten() {
            if let Some(id) = id.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()) {
                keep(id);
            }
        }
        false
    });
    for a in attempts {
        keep(a.record.task_id);
    }
    ids
}

/// A `trace_events` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TraceEventRow {
    correlation_id: String,
    at: DateTime<Utc>,
    kind: String,
    instance_id: String,
    task_id: Option<super::shared::DbUuid>,
    attempt: Option<i32>,
    summary: String,
    duration_ms: Option<i64>,
    status: Option<String>,
    detail: sqlx::types::Json<serde_json::Value>,
}

impl TryFrom<TraceEventRow> for TraceEvent {
    type Error = sqlx::Error;

    fn try_from(r: TraceEventRow) -> Result<Self, Self::Error> {
        Ok(TraceEvent {
            correlation_id: r.correlation_id,
            at: r.at,
            kind: crate::model::trace::TraceKind::parse(&r.kind).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown trace event kind {:?}", r.kind).into())
            })?,
            instance: r.instance_id,
            task_id: r.task_id.map(|u| u.0),
            attempt: r.attempt.map(|a| a.max(0) as u32),
            summary: r.summary,
            duration_ms: r.duration_ms.map(|d| d.max(0) as u64),
            status: r.status,
            detail: r.detail.0,
        })
    }
}

/// A `health_checks` row with the instance that made the check.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CheckTraceRow {
    #[sqlx(flatten)]
    check: super::rows::HealthCheckRow,
    instance_id: Option<String>,
}

impl CheckTraceRow {
    pub(crate) fn decode(self) -> Result<(CheckResult, Option<String>), sqlx::Error> {
        Ok((CheckResult::try_from(self.check)?, self.instance_id))
    }
}

/// Trace events and the trace of one correlation ID.
#[async_trait]
pub trait TraceStore: Send + Sync {
    /// Appends trace events (one multi-row insert per few hundred).
    async fn insert_trace_events(&self, events: &[TraceEvent]) -> Result<(), StoreError>;

    /// Everything kept under `correlation_id`, at most `limit` rows of each source.
    async fn trace_sources(
        &self,
        correlation_id: &str,
        limit: u32,
    ) -> Result<TraceSources, StoreError>;

    /// Deletes trace events from before `before` (in bounded batches); returns how many.
    async fn prune_trace_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// The one body of [`TraceStore`] for both backends.
macro_rules! impl_trace_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::traces::TraceStore for $backend {
            async fn insert_trace_events(
                &self,
                events: &[$crate::model::trace::TraceEvent],
            ) -> Result<(), $crate::store::StoreError> {
                type Db = <$backend as $crate::store::shared::SqlBackend>::Db;
                for chunk in events.chunks($crate::store::INSERT_CHUNK / 2) {
                    let mut q = sqlx::QueryBuilder::<Db>::new($crate::store::traces::INSERT);
                    q.push_values(chunk, |mut b, e| {
                        b.push_bind(e.correlation_id.as_str())
                            .push_bind(e.at)
                            .push_bind(e.kind.as_str())
                            .push_bind(e.instance.as_str())
                            .push_bind(e.task_id.map($crate::store::shared::DbUuid))
                            .push_bind(e.attempt.map(|a| a.min(i32::MAX as u32) as i32))
                            .push_bind(e.summary.as_str())
                            .push_bind(e.duration_ms.map(|d| d.min(i64::MAX as u64) as i64))
                            .push_bind(e.status.as_deref())
                            .push_bind(sqlx::types::Json(&e.detail));
                    });
                    q.build()
                        .execute($crate::store::shared::SqlBackend::writer(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                }
                Ok(())
            }

            async fn trace_sources(
                &self,
                correlation_id: &str,
                limit: u32,
            ) -> Result<$crate::store::traces::TraceSources, $crate::store::StoreError> {
                use $crate::store::shared::SqlBackend;
                let limit = i64::from(limit);
                let pool = self.reader();
                let events = sqlx::query_as::<_, $crate::store::traces::TraceEventRow>(
                    $crate::store::traces::EVENTS,
                )
                .bind(correlation_id)
                .bind(limit)
                .fetch_all(pool);
                let attempts = sqlx::query_as::<_, $crate::store::rows::ExecutionRow>(
                    $crate::store::traces::ATTEMPTS,
                )
                .bind(correlation_id)
                .bind(limit)
                .fetch_all(pool);
                let checks = sqlx::query_as::<_, $crate::store::traces::CheckTraceRow>(
                    $crate::store::traces::CHECKS,
                )
                .bind(correlation_id)
                .bind(limit)
                .fetch_all(pool);
                // The three reads by correlation ID at once, each on its own connection;
                // then the tasks they name, by primary key.
                let (events, attempts, checks) =
                    tokio::try_join!(events, attempts, checks).map_err(|e| self.classify(e))?;
                let decode = |e: sqlx::Error| self.classify(e);
                let mut events: Vec<$crate::model::trace::TraceEvent> =
                    $crate::store::rows::all(events).map_err(decode)?;
                let attempts: Vec<$crate::model::record::StoredExecution> =
                    $crate::store::rows::all(attempts).map_err(decode)?;
                let ids = $crate::store::traces::task_ids(&mut events, &attempts, limit as usize);
                let mut tasks: Vec<$crate::model::task::Task> = Vec::new();
                if !ids.is_empty() {
                    type Db = <$backend as $crate::store::shared::SqlBackend>::Db;
                    let mut q = sqlx::QueryBuilder::<Db>::new($crate::store::traces::TASKS_BY_ID);
                    q.push("(");
                    let mut list = q.separated(", ");
                    for id in &ids {
                        list.push_bind($crate::store::shared::DbUuid(*id));
                    }
                    q.push(") ORDER BY created_at, id");
                    let rows = q
                        .build_query_as::<$crate::store::rows::TaskRow>()
                        .fetch_all(pool)
                        .await
                        .map_err(|e| self.classify(e))?;
                    tasks = $crate::store::rows::all(rows).map_err(decode)?;
                }
                Ok($crate::store::traces::TraceSources {
                    events,
                    tasks,
                    attempts,
                    checks: checks
                        .into_iter()
                        .map($crate::store::traces::CheckTraceRow::decode)
                        .collect::<Result<_, _>>()
                        .map_err(decode)?,
                })
            }

            async fn prune_trace_events(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, $crate::store::StoreError> {
                $crate::store::shared::prune_in_batches!(self, $crate::store::traces::PRUNE, before)
            }
        }
    };
}
pub(crate) use impl_trace_store;
