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
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(AgentSpec {
        domain: name(row.try_get("domain")?)?,
        url: row.try_get("url")?,
        timeout_ms: ms(row.try_get("timeout_ms")?),
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
