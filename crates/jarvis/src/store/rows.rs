//! Row mapping shared by both backends: the columns have the same names and decode to the same
//! Rust types on SQLite and PostgreSQL, so each mapping is written once.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::agents::AgentSpec;
use crate::correlation::CorrelationId;
use crate::health::{BodyCondition, CheckResult, ServiceSpec, Status};
use crate::names::Name;

fn name(raw: String) -> Result<Name, sqlx::Error> {
    Name::parse(&raw).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn ms(v: i64) -> u64 {
    v.max(0) as u64
}

/// A `services` row.
pub fn service<'r, R>(row: &'r R) -> Result<ServiceSpec, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    Json<Vec<u16>>: Decode<'r, R::Database> + Type<R::Database>,
    Option<Json<BodyCondition>>: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ServiceSpec {
        name: name(row.try_get("name")?)?,
        url: row.try_get("url")?,
        method: row.try_get("method")?,
        interval_ms: ms(row.try_get("interval_ms")?),
        timeout_ms: ms(row.try_get("timeout_ms")?),
        critical: row.try_get("critical")?,
        expected_status: row.try_get::<Json<Vec<u16>>, _>("expected_status")?.0,
        expect_body: row
            .try_get::<Option<Json<BodyCondition>>, _>("expect_body")?
            .map(|j| j.0),
        degraded_latency_ms: row
            .try_get::<Option<i64>, _>("degraded_latency_ms")?
            .map(ms),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// An `agents` row.
pub fn agent<'r, R>(row: &'r R) -> Result<AgentSpec, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(AgentSpec {
        domain: name(row.try_get("domain")?)?,
        url: row.try_get("url")?,
        timeout_ms: ms(row.try_get("timeout_ms")?),
        use_learned: row.try_get("use_learned")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A `health_checks` row.
pub fn health_check<'r, R>(row: &'r R) -> Result<CheckResult, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    Ok(CheckResult {
        service: name(row.try_get("service")?)?,
        status: Status::parse(&status).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown health status {status:?}").into())
        })?,
        message: row.try_get("message")?,
        latency_ms: ms(row.try_get("latency_ms")?),
        breaker_open: row.try_get("breaker_open")?,
        correlation_id: row
            .try_get::<Option<String>, _>("correlation_id")?
            .and_then(|c| CorrelationId::parse(&c)),
        timestamp: row.try_get("checked_at")?,
    })
}

/// Reading a UUID column: native on PostgreSQL, hyphenated text on SQLite.
pub trait UuidColumn {
    /// The UUID in column `col`.
    fn uuid(&self, col: &str) -> Result<uuid::Uuid, sqlx::Error>;
}

impl UuidColumn for sqlx::postgres::PgRow {
    fn uuid(&self, col: &str) -> Result<uuid::Uuid, sqlx::Error> {
        self.try_get(col)
    }
}

impl UuidColumn for sqlx::sqlite::SqliteRow {
    fn uuid(&self, col: &str) -> Result<uuid::Uuid, sqlx::Error> {
        let raw: String = self.try_get(col)?;
        uuid::Uuid::parse_str(&raw).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }
}

fn status(raw: String) -> Result<crate::tasks::model::TaskStatus, sqlx::Error> {
    crate::tasks::model::TaskStatus::parse(&raw)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown task status {raw:?}").into()))
}

/// A `tasks` row.
pub fn task<'r, R>(row: &'r R) -> Result<crate::tasks::model::Task, sqlx::Error>
where
    R: Row + UuidColumn,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    Json<serde_json::Value>: Decode<'r, R::Database> + Type<R::Database>,
{
    let opt_ms = |v: Option<i64>| v.map(ms);
    Ok(crate::tasks::model::Task {
        id: row.uuid("id")?,
        domain: name(row.try_get("domain")?)?,
        action: name(row.try_get("action")?)?,
        parameters: row.try_get::<Json<serde_json::Value>, _>("parameters")?.0,
        learned_parameters: row
            .try_get::<Option<Json<serde_json::Value>>, _>("learned_parameters")?
            .map(|j| j.0),
        status: status(row.try_get("status")?)?,
        priority: row.try_get::<i32, _>("priority")?,
        run_at: row.try_get("run_at")?,
        attempts: row.try_get::<i32, _>("attempts")?.max(0) as u32,
        max_attempts: row.try_get::<i32, _>("max_attempts")?.max(1) as u32,
        timeout_ms: opt_ms(row.try_get("timeout_ms")?),
        idempotency_key: row.try_get("idempotency_key")?,
        correlation_id: row.try_get("correlation_id")?,
        locked_by: row.try_get("locked_by")?,
        lease_until: row.try_get("lease_until")?,
        result: row
            .try_get::<Option<Json<serde_json::Value>>, _>("result")?
            .map(|j| j.0),
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        duration_ms: opt_ms(row.try_get("duration_ms")?),
        notify_done: row.try_get("notify_done")?,
    })
}

/// A `task_history` row.
pub fn execution<'r, R>(row: &'r R) -> Result<crate::history::record::StoredExecution, sqlx::Error>
where
    R: Row + UuidColumn,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    Json<serde_json::Value>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(crate::history::record::StoredExecution {
        id: row.try_get("id")?,
        record: crate::history::record::ExecutionRecord {
            record_id: row.uuid("record_id")?,
            task_id: row.uuid("task_id")?,
            domain: row.try_get("domain")?,
            action: row.try_get("action")?,
            attempt: row.try_get::<i32, _>("attempt")?.max(1) as u32,
            parameters: row.try_get::<Json<serde_json::Value>, _>("parameters")?.0,
            learned_parameters: row
                .try_get::<Option<Json<serde_json::Value>>, _>("learned_parameters")?
                .map(|j| j.0),
            success: row.try_get("success")?,
            duration_ms: ms(row.try_get("duration_ms")?),
            impact_score: row.try_get("impact_score")?,
            failure_reason: row.try_get("failure_reason")?,
            failure_group: row.try_get("failure_group")?,
            cost_usd: row.try_get("cost_usd")?,
            correlation_id: row.try_get("correlation_id")?,
            instance_id: row.try_get("instance_id")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            timed_out: row.try_get("timed_out")?,
        },
    })
}
