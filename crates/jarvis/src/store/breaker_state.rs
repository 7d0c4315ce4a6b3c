//! Shared circuit-breaker state: one row per breaker in `circuit_breaker_state`.
//!
//! Every instance writes here only when something changes (a failure, the first success after
//! failures, a transition, a trial lease), never on a plain successful call. Times are computed
//! with the database's clock (`now()`), and every row read back carries how long until the next
//! attempt and until the trial lease expires *by that clock*, so instances with skewed clocks
//! agree. PostgreSQL announces every change on the channel [`CHANNEL`] (`LISTEN/NOTIFY`, one
//! notification per transaction); SQLite has a single instance and announces nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::StoreError;

/// The PostgreSQL notification channel; the payload is the breaker's name.
pub const CHANNEL: &str = "jarvis_breakers";

/// What the store's change feed reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeNote {
    /// The row of this breaker changed.
    Changed(String),
    /// The feed (re)connected: notifications may have been lost meanwhile.
    Reconnected,
}

/// A breaker's shared state as read from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerRow {
    /// The breaker's name.
    pub name: String,
    /// `CLOSED`, `OPEN` or `HALF_OPEN`.
    pub state: String,
    /// Held open by an operator.
    pub forced: bool,
    /// Consecutive failures, cluster-wide.
    pub consecutive_failures: u32,
    /// Successful half-open trials.
    pub half_open_successes: u32,
    /// How many distinct instances contributed to `consecutive_failures`.
    pub failure_instances: u32,
    /// When the circuit opened.
    pub opened_at: Option<DateTime<Utc>>,
    /// When a trial is allowed.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Milliseconds until `next_attempt_at` by the database's clock (negative: past).
    pub next_attempt_in_ms: Option<i64>,
    /// The instance holding the half-open trial lease.
    pub trial_holder: Option<String>,
    /// Milliseconds until that lease expires by the database's clock.
    pub trial_expires_in_ms: Option<i64>,
    /// The last failure's reason.
    pub last_failure_reason: Option<String>,
    /// When the last failure happened.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Grows with every change.
    pub version: u64,
    /// The instance that made the last change.
    pub updated_by: Option<String>,
}

/// Failures seen by one instance, to add to the shared count.
#[derive(Debug, Clone)]
pub struct FailureReport<'a> {
    /// The breaker.
    pub name: &'a str,
    /// How many failures (coalesced).
    pub count: u32,
    /// The reporting instance.
    pub instance: &'a str,
    /// The last failure's reason.
    pub reason: &'a str,
    /// Consecutive failures that open the circuit.
    pub threshold: u32,
    /// How long it then stays open, ms.
    pub open_ms: u64,
    /// How many distinct instances must have failed (1 = any).
    pub quorum: u32,
}

/// A state written by one instance (its own transition, or an operator's action).
#[derive(Debug, Clone)]
pub struct BreakerWrite<'a> {
    /// The breaker.
    pub name: &'a str,
    /// The new state.
    pub state: &'a str,
    /// Held open by an operator.
    pub forced: bool,
    /// For `OPEN`: how long until a trial, ms (from the database's `now()`).
    pub open_ms: Option<u64>,
    /// Consecutive failures.
    pub consecutive_failures: u32,
    /// Successful half-open trials.
    pub half_open_successes: u32,
    /// The writing instance (for `HALF_OPEN` it holds the trial).
    pub instance: &'a str,
    /// For `HALF_OPEN` run here: how long the trial lease lasts, ms.
    pub lease_ms: Option<u64>,
    /// Write only if the row is still at this version (`None`: unconditionally).
    pub expected_version: Option<u64>,
}

/// Shared breaker state, implemented by both backends.
#[async_trait]
pub trait BreakerStateStore: Send + Sync {
    /// Every breaker row.
    async fn breaker_rows(&self) -> Result<Vec<BreakerRow>, StoreError>;

    /// One breaker row.
    async fn breaker_row(&self, name: &str) -> Result<Option<BreakerRow>, StoreError>;

    /// Adds failures to a CLOSED circuit's count (creating the row), and opens it when the
    /// threshold and the quorum are reached. Returns the row after the change.
    async fn breaker_failures(&self, report: &FailureReport<'_>) -> Result<BreakerRow, StoreError>;

    /// A success: resets a CLOSED circuit's failure count. `None` when there was nothing to
    /// reset (no row, or the count was already zero, or the circuit is not CLOSED).
    async fn breaker_success(
        &self,
        name: &str,
        instance: &str,
    ) -> Result<Option<BreakerRow>, StoreError>;

    /// Writes a state. With `expected_version`, `None` means the row moved on meanwhile.
    async fn breaker_write(&self, w: &BreakerWrite<'_>) -> Result<Option<BreakerRow>, StoreError>;

    /// Takes the cluster-wide half-open trial lease when the circuit is OPEN (not forced) and its
    /// open period is over, or HALF_OPEN with an expired lease. Returns whether it was granted,
    /// and the row either way.
    async fn breaker_try_trial(
        &self,
        name: &str,
        instance: &str,
        lease_ms: u64,
    ) -> Result<(bool, Option<BreakerRow>), StoreError>;

    /// Deletes a breaker's row (its service was removed), announcing it like any change so
    /// other instances drop their local breaker too. Returns whether there was a row.
    async fn breaker_delete(&self, name: &str) -> Result<bool, StoreError>;

    /// Sends a [`ChangeNote`] for every change other instances make, until `shutdown` turns
    /// true (PostgreSQL: `LISTEN`, reconnecting with backoff; SQLite: nothing to hear).
    async fn watch_breakers(
        &self,
        notes: tokio::sync::mpsc::UnboundedSender<ChangeNote>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    );
}

fn to_u32(v: i64) -> u32 {
    v.clamp(0, i64::from(u32::MAX)) as u32
}

fn row<'r, R>(r: &'r R) -> Result<BreakerRow, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    Option<DateTime<Utc>>: Decode<'r, R::Database> + Type<R::Database>,
{
    let instances: String = r.try_get("failure_instances")?;
    Ok(BreakerRow {
        name: r.try_get("name")?,
        state: r.try_get("state")?,
        forced: r.try_get("forced")?,
        consecutive_failures: to_u32(r.try_get::<i32, _>("consecutive_failures")?.into()),
        half_open_successes: to_u32(r.try_get::<i32, _>("half_open_successes")?.into()),
        failure_instances: instances.split(',').filter(|s| !s.is_empty()).count() as u32,
        opened_at: r.try_get("opened_at")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        next_attempt_in_ms: r.try_get("next_attempt_in_ms")?,
        trial_holder: r.try_get("trial_holder")?,
        trial_expires_in_ms: r.try_get("trial_expires_in_ms")?,
        last_failure_reason: r.try_get("last_failure_reason")?,
        last_failure_at: r.try_get("last_failure_at")?,
        version: r.try_get::<i64, _>("version")?.max(0) as u64,
        updated_by: r.try_get("updated_by")?,
    })
}

/// Reasons are kept short in the shared row.
fn short(reason: &str) -> &str {
    let mut end = reason.len().min(256);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

// ------------------------------------------------------------------------------ PostgreSQL

const PG_RETURNING: &str = "RETURNING *, \
     (EXTRACT(EPOCH FROM (next_attempt_at - now())) * 1000)::bigint AS next_attempt_in_ms, \
     (EXTRACT(EPOCH FROM (trial_expires_at - now())) * 1000)::bigint AS trial_expires_in_ms";

const PG_SELECT: &str = "SELECT *, \
     (EXTRACT(EPOCH FROM (next_attempt_at - now())) * 1000)::bigint AS next_attempt_in_ms, \
     (EXTRACT(EPOCH FROM (trial_expires_at - now())) * 1000)::bigint AS trial_expires_in_ms \
     FROM circuit_breaker_state";

async fn pg_notify(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(name)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

#[async_trait]
impl BreakerStateStore for PostgresStore {
    async fn breaker_rows(&self) -> Result<Vec<BreakerRow>, StoreError> {
        let rows = sqlx::query(&format!("{PG_SELECT} ORDER BY name"))
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.error(e))?;
        rows.iter()
            .map(row)
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(e))
    }

    async fn breaker_row(&self, name: &str) -> Result<Option<BreakerRow>, StoreError> {
        let r = sqlx::query(&format!("{PG_SELECT} WHERE name = $1"))
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.error(e))?;
        r.as_ref().map(row).transpose().map_err(|e| self.error(e))
    }

    async fn breaker_failures(&self, f: &FailureReport<'_>) -> Result<BreakerRow, StoreError> {
        let mut tx = self.pool().begin().await.map_err(|e| self.error(e))?;
        let counted = sqlx::query(&format!(
            "INSERT INTO circuit_breaker_state AS s (name, consecutive_failures, \
             failure_instances, last_failure_at, last_failure_reason, version, updated_by, \
             updated_at) VALUES ($1, $2, $3, now(), $4, 1, $3, now()) \
             ON CONFLICT (name) DO UPDATE SET \
             consecutive_failures = CASE WHEN s.state = 'CLOSED' \
                 THEN s.consecutive_failures + $2 ELSE s.consecutive_failures END, \
             failure_instances = CASE \
                 WHEN s.state <> 'CLOSED' THEN s.failure_instances \
                 WHEN strpos(',' || s.failure_instances || ',', ',' || $3 || ',') > 0 \
                     THEN s.failure_instances \
                 WHEN s.failure_instances = '' THEN $3 \
                 ELSE s.failure_instances || ',' || $3 END, \
             last_failure_at = now(), last_failure_reason = $4, version = s.version + 1, \
             updated_by = $3, updated_at = now() {PG_RETURNING}"
        ))
        .bind(f.name)
        .bind(f.count as i32)
        .bind(f.instance)
        .bind(short(f.reason))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        let mut result = row(&counted).map_err(|e| self.error(e))?;
        let opened = sqlx::query(&format!(
            "UPDATE circuit_breaker_state SET state = 'OPEN', forced = false, \
             opened_at = now(), next_attempt_at = now() + $3 * interval '1 millisecond', \
             half_open_successes = 0, trial_holder = NULL, trial_expires_at = NULL, \
             version = version + 1, updated_by = $2, updated_at = now() \
             WHERE name = $1 AND state = 'CLOSED' AND consecutive_failures >= $4 \
             AND (CASE WHEN failure_instances = '' THEN 0 ELSE \
                  length(failure_instances) - length(replace(failure_instances, ',', '')) + 1 \
                  END) >= $5 {PG_RETURNING}"
        ))
        .bind(f.name)
        .bind(f.instance)
        .bind(f.open_ms as f64)
        .bind(f.threshold as i32)
        .bind(f.quorum as i32)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        if let Some(o) = opened {
            result = row(&o).map_err(|e| self.error(e))?;
        }
        pg_notify(&mut tx, f.name)
            .await
            .map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(result)
    }

    async fn breaker_success(
        &self,
        name: &str,
        instance: &str,
    ) -> Result<Option<BreakerRow>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(|e| self.error(e))?;
        let r = sqlx::query(&format!(
            "UPDATE circuit_breaker_state SET consecutive_failures = 0, failure_instances = '', \
             version = version + 1, updated_by = $2, updated_at = now() \
             WHERE name = $1 AND state = 'CLOSED' AND consecutive_failures > 0 {PG_RETURNING}"
        ))
        .bind(name)
        .bind(instance)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        if r.is_some() {
            pg_notify(&mut tx, name).await.map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))?;
        r.as_ref().map(row).transpose().map_err(|e| self.error(e))
    }

    async fn breaker_write(&self, w: &BreakerWrite<'_>) -> Result<Option<BreakerRow>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(|e| self.error(e))?;
        let r = sqlx::query(&format!(
            "INSERT INTO circuit_breaker_state AS s (name, state, forced, consecutive_failures, \
             half_open_successes, opened_at, next_attempt_at, trial_holder, trial_expires_at, \
             failure_instances, version, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, \
               CASE WHEN $2 = 'CLOSED' THEN NULL ELSE now() END, \
               CASE WHEN $2 = 'OPEN' AND $6::float8 IS NOT NULL \
                    THEN now() + $6::float8 * interval '1 millisecond' END, \
               CASE WHEN $2 = 'HALF_OPEN' THEN $7 END, \
               CASE WHEN $2 = 'HALF_OPEN' AND $8::float8 IS NOT NULL \
                    THEN now() + $8::float8 * interval '1 millisecond' END, \
               '', 1, $7, now()) \
             ON CONFLICT (name) DO UPDATE SET state = excluded.state, forced = excluded.forced, \
             consecutive_failures = excluded.consecutive_failures, \
             half_open_successes = excluded.half_open_successes, \
             opened_at = CASE WHEN excluded.state = 'CLOSED' THEN NULL \
                 WHEN s.state = 'CLOSED' OR excluded.state = 'OPEN' AND s.state = 'HALF_OPEN' \
                 THEN now() ELSE s.opened_at END, \
             next_attempt_at = excluded.next_attempt_at, \
             trial_holder = excluded.trial_holder, trial_expires_at = excluded.trial_expires_at, \
             failure_instances = CASE WHEN excluded.state = 'CLOSED' \
                 AND excluded.consecutive_failures = 0 THEN '' ELSE s.failure_instances END, \
             version = s.version + 1, updated_by = excluded.updated_by, updated_at = now() \
             WHERE $9::bigint IS NULL OR s.version = $9::bigint {PG_RETURNING}"
        ))
        .bind(w.name)
        .bind(w.state)
        .bind(w.forced)
        .bind(w.consecutive_failures as i32)
        .bind(w.half_open_successes as i32)
        .bind(w.open_ms.map(|v| v as f64))
        .bind(w.instance)
        .bind(w.lease_ms.map(|v| v as f64))
        .bind(w.expected_version.map(|v| v as i64))
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        if r.is_some() {
            pg_notify(&mut tx, w.name)
                .await
                .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))?;
        r.as_ref().map(row).transpose().map_err(|e| self.error(e))
    }

    async fn breaker_try_trial(
        &self,
        name: &str,
        instance: &str,
        lease_ms: u64,
    ) -> Result<(bool, Option<BreakerRow>), StoreError> {
        let mut tx = self.pool().begin().await.map_err(|e| self.error(e))?;
        let granted = sqlx::query(&format!(
            "UPDATE circuit_breaker_state SET state = 'HALF_OPEN', half_open_successes = 0, \
             trial_holder = $2, trial_expires_at = now() + $3 * interval '1 millisecond', \
             next_attempt_at = NULL, version = version + 1, updated_by = $2, updated_at = now() \
             WHERE name = $1 AND NOT forced AND ( \
               (state = 'OPEN' AND next_attempt_at <= now()) OR \
               (state = 'HALF_OPEN' AND (trial_expires_at IS NULL OR trial_expires_at <= now() \
                                         OR trial_holder = $2))) {PG_RETURNING}"
        ))
        .bind(name)
        .bind(instance)
        .bind(lease_ms as f64)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        let result = match granted {
            Some(r) => {
                pg_notify(&mut tx, name).await.map_err(|e| self.error(e))?;
                (true, Some(row(&r).map_err(|e| self.error(e))?))
            }
            None => {
                let r = sqlx::query(&format!("{PG_SELECT} WHERE name = $1"))
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| self.error(e))?;
                (
                    false,
                    r.as_ref().map(row).transpose().map_err(|e| self.error(e))?,
                )
            }
        };
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(result)
    }

    async fn breaker_delete(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await.map_err(|e| self.error(e))?;
        let done = sqlx::query("DELETE FROM circuit_breaker_state WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        let deleted = done.rows_affected() > 0;
        if deleted {
            pg_notify(&mut tx, name).await.map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(deleted)
    }

    async fn watch_breakers(
        &self,
        notes: tokio::sync::mpsc::UnboundedSender<ChangeNote>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut backoff = std::time::Duration::from_millis(100);
        while !*shutdown.borrow() {
            let listener = async {
                let mut l = sqlx::postgres::PgListener::connect_with(self.pool()).await?;
                l.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            };
            let mut listener = match listener.await {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(error = %self.error(e), "breaker change feed: cannot listen yet");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                    continue;
                }
            };
            backoff = std::time::Duration::from_millis(100);
            if notes.send(ChangeNote::Reconnected).is_err() {
                return;
            }
            loop {
                tokio::select! {
                    n = listener.try_recv() => match n {
                        Ok(Some(n)) => {
                            if notes.send(ChangeNote::Changed(n.payload().to_string())).is_err() {
                                return;
                            }
                        }
                        // The connection was lost; the next call reconnects and re-LISTENs.
                        Ok(None) => {
                            if notes.send(ChangeNote::Reconnected).is_err() {
                                return;
                            }
                        }
                        Err(_) => break,
                    },
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------- SQLite

/// The current time as SQLite text, like the values it stores.
const SQ_NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

fn sq_plus_ms(param: &str) -> String {
    format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ({param} / 1000.0) || ' seconds')")
}

fn sq_returning() -> String {
    "RETURNING *, \
     CAST(round((julianday(next_attempt_at) - julianday('now')) * 86400000.0) AS INTEGER) \
       AS next_attempt_in_ms, \
     CAST(round((julianday(trial_expires_at) - julianday('now')) * 86400000.0) AS INTEGER) \
       AS trial_expires_in_ms"
        .to_string()
}

fn sq_select() -> String {
    "SELECT *, \
     CAST(round((julianday(next_attempt_at) - julianday('now')) * 86400000.0) AS INTEGER) \
       AS next_attempt_in_ms, \
     CAST(round((julianday(trial_expires_at) - julianday('now')) * 86400000.0) AS INTEGER) \
       AS trial_expires_in_ms \
     FROM circuit_breaker_state"
        .to_string()
}

#[async_trait]
impl BreakerStateStore for SqliteStore {
    async fn breaker_rows(&self) -> Result<Vec<BreakerRow>, StoreError> {
        let rows = sqlx::query(&format!("{} ORDER BY name", sq_select()))
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::from_sqlx)
    }

    async fn breaker_row(&self, name: &str) -> Result<Option<BreakerRow>, StoreError> {
        let r = sqlx::query(&format!("{} WHERE name = ?1", sq_select()))
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        r.as_ref()
            .map(row)
            .transpose()
            .map_err(StoreError::from_sqlx)
    }

    async fn breaker_failures(&self, f: &FailureReport<'_>) -> Result<BreakerRow, StoreError> {
        let mut tx = self.writer().begin().await.map_err(StoreError::from_sqlx)?;
        let counted = sqlx::query(&format!(
            "INSERT INTO circuit_breaker_state AS s (name, consecutive_failures, \
             failure_instances, last_failure_at, last_failure_reason, version, updated_by, \
             updated_at) VALUES (?1, ?2, ?3, {SQ_NOW}, ?4, 1, ?3, {SQ_NOW}) \
             ON CONFLICT (name) DO UPDATE SET \
             consecutive_failures = CASE WHEN s.state = 'CLOSED' \
                 THEN s.consecutive_failures + ?2 ELSE s.consecutive_failures END, \
             failure_instances = CASE \
                 WHEN s.state <> 'CLOSED' THEN s.failure_instances \
                 WHEN instr(',' || s.failure_instances || ',', ',' || ?3 || ',') > 0 \
                     THEN s.failure_instances \
                 WHEN s.failure_instances = '' THEN ?3 \
                 ELSE s.failure_instances || ',' || ?3 END, \
             last_failure_at = {SQ_NOW}, last_failure_reason = ?4, version = s.version + 1, \
             updated_by = ?3, updated_at = {SQ_NOW} {}",
            sq_returning()
        ))
        .bind(f.name)
        .bind(f.count as i64)
        .bind(f.instance)
        .bind(short(f.reason))
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let mut result = row(&counted).map_err(StoreError::from_sqlx)?;
        let opened = sqlx::query(&format!(
            "UPDATE circuit_breaker_state SET state = 'OPEN', forced = 0, \
             opened_at = {SQ_NOW}, next_attempt_at = {}, \
             half_open_successes = 0, trial_holder = NULL, trial_expires_at = NULL, \
             version = version + 1, updated_by = ?2, updated_at = {SQ_NOW} \
             WHERE name = ?1 AND state = 'CLOSED' AND consecutive_failures >= ?4 \
             AND (CASE WHEN failure_instances = '' THEN 0 ELSE \
                  length(failure_instances) - length(replace(failure_instances, ',', '')) + 1 \
                  END) >= ?5 {}",
            sq_plus_ms("?3"),
            sq_returning()
        ))
        .bind(f.name)
        .bind(f.instance)
        .bind(f.open_ms as f64)
        .bind(f.threshold as i64)
        .bind(f.quorum as i64)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        if let Some(o) = opened {
            result = row(&o).map_err(StoreError::from_sqlx)?;
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(result)
    }

    async fn breaker_success(
        &self,
        name: &str,
        instance: &str,
    ) -> Result<Option<BreakerRow>, StoreError> {
        let r = sqlx::query(&format!(
            "UPDATE circuit_breaker_state SET consecutive_failures = 0, failure_instances = '', \
             version = version + 1, updated_by = ?2, updated_at = {SQ_NOW} \
             WHERE name = ?1 AND state = 'CLOSED' AND consecutive_failures > 0 {}",
            sq_returning()
        ))
        .bind(name)
        .bind(instance)
        .fetch_optional(self.writer())
        .await
        .map_err(StoreError::from_sqlx)?;
        r.as_ref()
            .map(row)
            .transpose()
            .map_err(StoreError::from_sqlx)
    }

    async fn breaker_write(&self, w: &BreakerWrite<'_>) -> Result<Option<BreakerRow>, StoreError> {
        let r = sqlx::query(&format!(
            "INSERT INTO circuit_breaker_state AS s (name, state, forced, consecutive_failures, \
             half_open_successes, opened_at, next_attempt_at, trial_holder, trial_expires_at, \
             failure_instances, version, updated_by, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, \
               CASE WHEN ?2 = 'CLOSED' THEN NULL ELSE {SQ_NOW} END, \
               CASE WHEN ?2 = 'OPEN' AND ?6 IS NOT NULL THEN {} END, \
               CASE WHEN ?2 = 'HALF_OPEN' THEN ?7 END, \
               CASE WHEN ?2 = 'HALF_OPEN' AND ?8 IS NOT NULL THEN {} END, \
               '', 1, ?7, {SQ_NOW}) \
             ON CONFLICT (name) DO UPDATE SET state = excluded.state, forced = excluded.forced, \
             consecutive_failures = excluded.consecutive_failures, \
             half_open_successes = excluded.half_open_successes, \
             opened_at = CASE WHEN excluded.state = 'CLOSED' THEN NULL \
                 WHEN s.state = 'CLOSED' OR excluded.state = 'OPEN' AND s.state = 'HALF_OPEN' \
                 THEN {SQ_NOW} ELSE s.opened_at END, \
             next_attempt_at = excluded.next_attempt_at, \
             trial_holder = excluded.trial_holder, trial_expires_at = excluded.trial_expires_at, \
             failure_instances = CASE WHEN excluded.state = 'CLOSED' \
                 AND excluded.consecutive_failures = 0 THEN '' ELSE s.failure_instances END, \
             version = s.version + 1, updated_by = excluded.updated_by, updated_at = {SQ_NOW} \
             WHERE ?9 IS NULL OR s.version = ?9 {}",
            sq_plus_ms("?6"),
            sq_plus_ms("?8"),
            sq_returning()
        ))
        .bind(w.name)
        .bind(w.state)
        .bind(w.forced)
        .bind(w.consecutive_failures as i64)
        .bind(w.half_open_successes as i64)
        .bind(w.open_ms.map(|v| v as f64))
        .bind(w.instance)
        .bind(w.lease_ms.map(|v| v as f64))
        .bind(w.expected_version.map(|v| v as i64))
        .fetch_optional(self.writer())
        .await
        .map_err(StoreError::from_sqlx)?;
        r.as_ref()
            .map(row)
            .transpose()
            .map_err(StoreError::from_sqlx)
    }

    async fn breaker_try_trial(
        &self,
        name: &str,
        instance: &str,
        lease_ms: u64,
    ) -> Result<(bool, Option<BreakerRow>), StoreError> {
        let granted = sqlx::query(&format!(
            "UPDATE circuit_breaker_state SET state = 'HALF_OPEN', half_open_successes = 0, \
             trial_holder = ?2, trial_expires_at = {}, \
             next_attempt_at = NULL, version = version + 1, updated_by = ?2, \
             updated_at = {SQ_NOW} \
             WHERE name = ?1 AND NOT forced AND ( \
               (state = 'OPEN' AND next_attempt_at <= {SQ_NOW}) OR \
               (state = 'HALF_OPEN' AND (trial_expires_at IS NULL \
                  OR trial_expires_at <= {SQ_NOW} OR trial_holder = ?2))) {}",
            sq_plus_ms("?3"),
            sq_returning()
        ))
        .bind(name)
        .bind(instance)
        .bind(lease_ms as f64)
        .fetch_optional(self.writer())
        .await
        .map_err(StoreError::from_sqlx)?;
        match granted {
            Some(r) => Ok((true, Some(row(&r).map_err(StoreError::from_sqlx)?))),
            None => Ok((false, self.breaker_row(name).await?)),
        }
    }

    async fn breaker_delete(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM circuit_breaker_state WHERE name = ?1")
            .bind(name)
            .execute(self.writer())
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    async fn watch_breakers(
        &self,
        _notes: tokio::sync::mpsc::UnboundedSender<ChangeNote>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        // One instance per SQLite file: there is nobody else to hear from.
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    }
}
