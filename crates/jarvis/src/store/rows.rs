//! Rows shared by both backends: the columns have the same names on SQLite and PostgreSQL,
//! and each field's type decodes from either (times as `DateTime<Utc>`, JSON as
//! [`Json`], UUIDs as [`DbUuid`]), so every row is one `#[derive(sqlx::FromRow)]` struct,
//! turned into its domain type by a `TryFrom` that checks what the database cannot (names,
//! statuses).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::FromRow;

use super::shared::DbUuid;
use crate::correlation::CorrelationId;
use crate::model::agent::AgentSpec;
use crate::model::check::{CheckResult, Status};
use crate::model::record::{ExecutionRecord, StoredExecution};
use crate::model::service::{BodyCondition, ServiceSpec};
use crate::model::task::{Task, TaskStatus};
use crate::names::Name;

fn name(raw: String) -> Result<Name, sqlx::Error> {
    Name::parse(&raw).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn ms(v: i64) -> u64 {
    v.max(0) as u64
}

/// Decodes every row into its domain type.
pub(crate) fn all<R, T>(rows: Vec<R>) -> Result<Vec<T>, sqlx::Error>
where
    T: TryFrom<R, Error = sqlx::Error>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// Decodes a row, if there is one, into its domain type.
pub(crate) fn one<R, T>(row: Option<R>) -> Result<Option<T>, sqlx::Error>
where
    T: TryFrom<R, Error = sqlx::Error>,
{
    row.map(T::try_from).transpose()
}

/// A `services` row.
#[derive(Debug, FromRow)]
pub(crate) struct ServiceRow {
    name: String,
    url: String,
    method: String,
    interval_ms: i64,
    timeout_ms: i64,
    critical: bool,
    expected_status: Json<Vec<u16>>,
    expect_body: Option<Json<BodyCondition>>,
    degraded_latency_ms: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ServiceRow> for ServiceSpec {
    type Error = sqlx::Error;

    fn try_from(r: ServiceRow) -> Result<Self, Self::Error> {
        Ok(ServiceSpec {
            name: name(r.name)?,
            url: r.url,
            method: r.method,
            interval_ms: ms(r.interval_ms),
            timeout_ms: ms(r.timeout_ms),
            critical: r.critical,
            expected_status: r.expected_status.0,
            expect_body: r.expect_body.map(|j| j.0),
            degraded_latency_ms: r.degraded_latency_ms.map(ms),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// An `agents` row.
#[derive(Debug, FromRow)]
pub(crate) struct AgentRow {
    domain: String,
    kind: String,
    url: String,
    model: Option<String>,
    prompt: Option<String>,
    timeout_ms: i64,
    use_learned: bool,
    health_url: Option<String>,
    health_interval_ms: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<AgentRow> for AgentSpec {
    type Error = sqlx::Error;

    fn try_from(r: AgentRow) -> Result<Self, Self::Error> {
        let kind = crate::model::agent::AgentKind::parse(&r.kind).ok_or_else(|| {
            sqlx::Error::Decode(format!("agent kind {:?} is neither http nor ai", r.kind).into())
        })?;
        Ok(AgentSpec {
            domain: name(r.domain)?,
            kind,
            url: r.url,
            model: r.model,
            prompt: r.prompt,
            timeout_ms: ms(r.timeout_ms),
            use_learned: r.use_learned,
            health_url: r.health_url,
            health_interval_ms: r.health_interval_ms.map(ms),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A `health_checks` row.
#[derive(Debug, FromRow)]
pub(crate) struct HealthCheckRow {
    service: String,
    status: String,
    message: String,
    latency_ms: i64,
    breaker_open: bool,
    correlation_id: Option<String>,
    checked_at: DateTime<Utc>,
}

impl TryFrom<HealthCheckRow> for CheckResult {
    type Error = sqlx::Error;

    fn try_from(r: HealthCheckRow) -> Result<Self, Self::Error> {
        Ok(CheckResult {
            service: name(r.service)?,
            status: Status::parse(&r.status).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown health status {:?}", r.status).into())
            })?,
            message: r.message,
            latency_ms: ms(r.latency_ms),
            breaker_open: r.breaker_open,
            correlation_id: r.correlation_id.and_then(|c| CorrelationId::parse(&c)),
            timestamp: r.checked_at,
        })
    }
}

/// A `tasks` row.
#[derive(Debug, FromRow)]
pub(crate) struct TaskRow {
    id: DbUuid,
    domain: String,
    action: String,
    parameters: Json<Value>,
    learned_parameters: Option<Json<Value>>,
    status: String,
    priority: i32,
    run_at: DateTime<Utc>,
    attempts: i32,
    max_attempts: i32,
    timeout_ms: Option<i64>,
    idempotency_key: Option<String>,
    correlation_id: String,
    locked_by: Option<String>,
    lease_until: Option<DateTime<Utc>>,
    result: Option<Json<Value>>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
    notify_done: bool,
    #[sqlx(default)]
    traceparent: Option<String>,
}

impl TryFrom<TaskRow> for Task {
    type Error = sqlx::Error;

    fn try_from(r: TaskRow) -> Result<Self, Self::Error> {
        Ok(Task {
            id: r.id.0,
            domain: name(r.domain)?,
            action: name(r.action)?,
            parameters: r.parameters.0,
            learned_parameters: r.learned_parameters.map(|j| j.0),
            status: TaskStatus::parse(&r.status).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown task status {:?}", r.status).into())
            })?,
            priority: r.priority,
            run_at: r.run_at,
            attempts: r.attempts.max(0) as u32,
            max_attempts: r.max_attempts.max(1) as u32,
            timeout_ms: r.timeout_ms.map(ms),
            idempotency_key: r.idempotency_key,
            correlation_id: r.correlation_id,
            locked_by: r.locked_by,
            lease_until: r.lease_until,
            result: r.result.map(|j| j.0),
            error: r.error,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms.map(ms),
            notify_done: r.notify_done,
            traceparent: r.traceparent,
        })
    }
}

/// A task from a row that holds a `tasks` row's columns (and maybe more, as the queue's
/// `RETURNING` lists do).
pub(crate) fn task<'r, R>(row: &'r R) -> Result<Task, sqlx::Error>
where
    R: sqlx::Row,
    TaskRow: FromRow<'r, R>,
{
    TaskRow::from_row(row)?.try_into()
}

/// A `task_history` row.
#[derive(Debug, FromRow)]
pub(crate) struct ExecutionRow {
    id: i64,
    record_id: DbUuid,
    task_id: DbUuid,
    domain: String,
    action: String,
    attempt: i32,
    parameters: Json<Value>,
    learned_parameters: Option<Json<Value>>,
    success: bool,
    duration_ms: i64,
    impact_score: Option<f64>,
    failure_reason: Option<String>,
    failure_group: Option<String>,
    cost_usd: Option<f64>,
    correlation_id: Option<String>,
    instance_id: Option<String>,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    timed_out: bool,
    model_call: Option<Json<crate::model::record::ModelCall>>,
}

impl TryFrom<ExecutionRow> for StoredExecution {
    type Error = sqlx::Error;

    fn try_from(r: ExecutionRow) -> Result<Self, Self::Error> {
        Ok(StoredExecution {
            id: r.id,
            record: ExecutionRecord {
                record_id: r.record_id.0,
                task_id: r.task_id.0,
                domain: r.domain,
                action: r.action,
                attempt: r.attempt.max(1) as u32,
                parameters: r.parameters.0,
                learned_parameters: r.learned_parameters.map(|j| j.0),
                success: r.success,
                duration_ms: ms(r.duration_ms),
                impact_score: r.impact_score,
                failure_reason: r.failure_reason,
                failure_group: r.failure_group,
                cost_usd: r.cost_usd,
                correlation_id: r.correlation_id,
                instance_id: r.instance_id,
                started_at: r.started_at,
                finished_at: r.finished_at,
                timed_out: r.timed_out,
                model_call: r.model_call.map(|j| j.0),
            },
        })
    }
}
