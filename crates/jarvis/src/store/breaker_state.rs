//! Shared circuit-breaker state: one row per breaker in `circuit_breaker_state`.
//!
//! Every instance writes here only when something changes (a failure, the first success after
//! failures, a transition, a trial lease), never on a plain successful call. Times are computed
//! with the database's clock (`now()`), and every row read back carries how long until the next
//! attempt and until the trial lease expires *by that clock*, so instances with skewed clocks
//! agree. PostgreSQL announces every change on the channel [`CHANNEL`] (`LISTEN/NOTIFY`, one
//! notification per transaction); SQLite has a single instance and announces nothing.
//!
//! The statements are written once here ([`BreakerSql`]), with the time arithmetic left to
//! each dialect ([`TimeSql`]: the database's clock, adding milliseconds to it, milliseconds
//! until a time) and the announcement and change feed too ([`BreakerDialect`], in
//! `store/{sqlite,postgres}/breaker_state.rs`); `impl_breaker_state_store!` is the one body.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

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

/// A `circuit_breaker_state` row with the two durations every statement adds to it.
#[derive(sqlx::FromRow)]
pub(crate) struct BreakerStateRow {
    name: String,
    state: String,
    forced: bool,
    consecutive_failures: i32,
    half_open_successes: i32,
    failure_instances: String,
    opened_at: Option<DateTime<Utc>>,
    next_attempt_at: Option<DateTime<Utc>>,
    next_attempt_in_ms: Option<i64>,
    trial_holder: Option<String>,
    trial_expires_in_ms: Option<i64>,
    last_failure_reason: Option<String>,
    last_failure_at: Option<DateTime<Utc>>,
    version: i64,
    updated_by: Option<String>,
}

impl From<BreakerStateRow> for BreakerRow {
    fn from(r: BreakerStateRow) -> Self {
        let to_u32 = |v: i32| v.max(0) as u32;
        BreakerRow {
            name: r.name,
            state: r.state,
            forced: r.forced,
            consecutive_failures: to_u32(r.consecutive_failures),
            half_open_successes: to_u32(r.half_open_successes),
            failure_instances: r
                .failure_instances
                .split(',')
                .filter(|s| !s.is_empty())
                .count() as u32,
            opened_at: r.opened_at,
            next_attempt_at: r.next_attempt_at,
            next_attempt_in_ms: r.next_attempt_in_ms,
            trial_holder: r.trial_holder,
            trial_expires_in_ms: r.trial_expires_in_ms,
            last_failure_reason: r.last_failure_reason,
            last_failure_at: r.last_failure_at,
            version: r.version.max(0) as u64,
            updated_by: r.updated_by,
        }
    }
}

/// Reasons are kept short in the shared row.
pub(crate) fn short(reason: &str) -> &str {
    let mut end = reason.len().min(256);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// The time arithmetic of a dialect, as SQL fragments: all times are the database's.
pub(crate) struct TimeSql {
    /// The current time.
    pub now: &'static str,
    /// The current time plus the milliseconds in parameter `param` (a float).
    pub plus_ms: fn(param: &str) -> String,
    /// Milliseconds from now until the time in `column`, as an integer (negative: past).
    pub ms_until: fn(column: &str) -> String,
    /// Whether the text `needle` occurs in the text `haystack` (`strpos`/`instr`).
    pub contains: fn(haystack: &str, needle: &str) -> String,
}

/// Every breaker statement of a dialect, built once from its [`TimeSql`].
pub(crate) struct BreakerSql {
    /// Every row; append `WHERE name = $1` or `ORDER BY name`.
    pub select: String,
    /// Adds `$2` failures of instance `$3` (reason `$4`) to a CLOSED circuit's count.
    pub count_failures: String,
    /// Opens the circuit `$1` (by `$2`, for `$3` ms) once the count reaches `$4` and the
    /// instances the quorum `$5`.
    pub open_at_threshold: String,
    /// Resets a CLOSED circuit's count (`$1` by `$2`).
    pub success: String,
    /// Writes a state (see [`BreakerWrite`]), compare-and-swap on `$9` when given.
    pub write: String,
    /// Takes the half-open trial lease (`$1` by `$2` for `$3` ms).
    pub try_trial: String,
    /// Deletes a row.
    pub delete: &'static str,
}

impl BreakerSql {
    /// The statements with `time`'s arithmetic.
    pub(crate) fn new(time: &TimeSql) -> BreakerSql {
        let now = time.now;
        let plus = time.plus_ms;
        let durations = format!(
            "{} AS next_attempt_in_ms, {} AS trial_expires_in_ms",
            (time.ms_until)("next_attempt_at"),
            (time.ms_until)("trial_expires_at")
        );
        let returning = format!("RETURNING *, {durations}");
        let known = (time.contains)("',' || s.failure_instances || ','", "',' || $3 || ','");
        BreakerSql {
            select: format!("SELECT *, {durations} FROM circuit_breaker_state"),
            count_failures: format!(
                "INSERT INTO circuit_breaker_state AS s (name, consecutive_failures, \
                 failure_instances, last_failure_at, last_failure_reason, version, updated_by, \
                 updated_at) VALUES ($1, $2, $3, {now}, $4, 1, $3, {now}) \
                 ON CONFLICT (name) DO UPDATE SET \
                 consecutive_failures = CASE WHEN s.state = 'CLOSED' \
                     THEN s.consecutive_failures + $2 ELSE s.consecutive_failures END, \
                 failure_instances = CASE \
                     WHEN s.state <> 'CLOSED' THEN s.failure_instances \
                     WHEN {known} THEN s.failure_instances \
                     WHEN s.failure_instances = '' THEN $3 \
                     ELSE s.failure_instances || ',' || $3 END, \
                 last_failure_at = {now}, last_failure_reason = $4, version = s.version + 1, \
                 updated_by = $3, updated_at = {now} {returning}"
            ),
            open_at_threshold: format!(
                "UPDATE circuit_breaker_state SET state = 'OPEN', forced = false, \
                 opened_at = {now}, next_attempt_at = {}, \
                 half_open_successes = 0, trial_holder = NULL, trial_expires_at = NULL, \
                 version = version + 1, updated_by = $2, updated_at = {now} \
                 WHERE name = $1 AND state = 'CLOSED' AND consecutive_failures >= $4 \
                 AND (CASE WHEN failure_instances = '' THEN 0 ELSE \
                      length(failure_instances) - length(replace(failure_instances, ',', '')) + 1 \
                      END) >= $5 {returning}",
                plus("$3")
            ),
            success: format!(
                "UPDATE circuit_breaker_state SET consecutive_failures = 0, \
                 failure_instances = '', version = version + 1, updated_by = $2, \
                 updated_at = {now} \
                 WHERE name = $1 AND state = 'CLOSED' AND consecutive_failures > 0 {returning}"
            ),
            write: format!(
                "INSERT INTO circuit_breaker_state AS s (name, state, forced, \
                 consecutive_failures, half_open_successes, opened_at, next_attempt_at, \
                 trial_holder, trial_expires_at, failure_instances, version, updated_by, \
                 updated_at) \
                 VALUES ($1, $2, $3, $4, $5, \
                   CASE WHEN $2 = 'CLOSED' THEN NULL ELSE {now} END, \
                   CASE WHEN $2 = 'OPEN' AND $6 IS NOT NULL THEN {} END, \
                   CASE WHEN $2 = 'HALF_OPEN' THEN $7 END, \
                   CASE WHEN $2 = 'HALF_OPEN' AND $8 IS NOT NULL THEN {} END, \
                   '', 1, $7, {now}) \
                 ON CONFLICT (name) DO UPDATE SET state = excluded.state, \
                 forced = excluded.forced, \
                 consecutive_failures = excluded.consecutive_failures, \
                 half_open_successes = excluded.half_open_successes, \
                 opened_at = CASE WHEN excluded.state = 'CLOSED' THEN NULL \
                     WHEN s.state = 'CLOSED' OR excluded.state = 'OPEN' AND s.state = 'HALF_OPEN' \
                     THEN {now} ELSE s.opened_at END, \
                 next_attempt_at = excluded.next_attempt_at, \
                 trial_holder = excluded.trial_holder, \
                 trial_expires_at = excluded.trial_expires_at, \
                 failure_instances = CASE WHEN excluded.state = 'CLOSED' \
                     AND excluded.consecutive_failures = 0 THEN '' ELSE s.failure_instances END, \
                 version = s.version + 1, updated_by = excluded.updated_by, updated_at = {now} \
                 WHERE $9 IS NULL OR s.version = $9 {returning}",
                plus("$6"),
                plus("$8")
            ),
            try_trial: format!(
                "UPDATE circuit_breaker_state SET state = 'HALF_OPEN', half_open_successes = 0, \
                 trial_holder = $2, trial_expires_at = {}, \
                 next_attempt_at = NULL, version = version + 1, updated_by = $2, \
                 updated_at = {now} \
                 WHERE name = $1 AND NOT forced AND ( \
                   (state = 'OPEN' AND next_attempt_at <= {now}) OR \
                   (state = 'HALF_OPEN' AND (trial_expires_at IS NULL \
                      OR trial_expires_at <= {now} OR trial_holder = $2))) {returning}",
                plus("$3")
            ),
            delete: "DELETE FROM circuit_breaker_state WHERE name = $1",
        }
    }
}

/// What differs by dialect around the shared statements. The defaults are those of a store
/// one instance owns (SQLite): nobody to announce a change to, nobody to hear one from.
pub(crate) trait BreakerDialect: super::shared::SqlBackend + Sync {
    /// This dialect's time arithmetic, from which `impl_breaker_state_store!` builds the
    /// statements once.
    const TIME: TimeSql;

    /// Announces a change of `name` to other instances, inside the transaction that makes it
    /// (PostgreSQL: `pg_notify`).
    async fn announce(
        tx: &mut crate::store::pool::Tx<'_, Self::Db>,
        name: &str,
    ) -> Result<(), sqlx::Error> {
        let _ = (tx, name);
        Ok(())
    }

    /// See [`BreakerStateStore::watch_breakers`]. By default nothing arrives: the feed only
    /// waits for `shutdown`.
    async fn watch(
        &self,
        notes: tokio::sync::mpsc::UnboundedSender<ChangeNote>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let _ = notes;
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The one body of [`BreakerStateStore`] for both backends (`impl_breaker_state_store!(SqliteStore)`):
/// every change runs on the writer in a transaction that also announces it
/// ([`BreakerDialect::announce`]); plain reads run on the reader.
macro_rules! impl_breaker_state_store {
    ($backend:ty) => {
        impl $backend {
            /// The breaker statements with this backend's time arithmetic, built on first use.
            fn breaker_sql() -> &'static $crate::store::breaker_state::BreakerSql {
                static SQL: std::sync::LazyLock<$crate::store::breaker_state::BreakerSql> =
                    std::sync::LazyLock::new(|| {
                        $crate::store::breaker_state::BreakerSql::new(
                            &<$backend as $crate::store::breaker_state::BreakerDialect>::TIME,
                        )
                    });
                &SQL
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::breaker_state::BreakerStateStore for $backend {
            async fn breaker_rows(
                &self,
            ) -> Result<Vec<$crate::store::breaker_state::BreakerRow>, $crate::store::StoreError>
            {
                use $crate::store::breaker_state::BreakerStateRow;
                let sql = <$backend>::breaker_sql();
                let rows: Vec<BreakerStateRow> =
                    sqlx::query_as(&format!("{} ORDER BY name", sql.select))
                        .fetch_all($crate::store::shared::SqlBackend::reader(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn breaker_row(
                &self,
                name: &str,
            ) -> Result<Option<$crate::store::breaker_state::BreakerRow>, $crate::store::StoreError>
            {
                use $crate::store::breaker_state::BreakerStateRow;
                let sql = <$backend>::breaker_sql();
                let row: Option<BreakerStateRow> =
                    sqlx::query_as(&format!("{} WHERE name = $1", sql.select))
                        .bind(name)
                        .fetch_optional($crate::store::shared::SqlBackend::reader(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                Ok(row.map(Into::into))
            }

            async fn breaker_failures(
                &self,
                f: &$crate::store::breaker_state::FailureReport<'_>,
            ) -> Result<$crate::store::breaker_state::BreakerRow, $crate::store::StoreError> {
                use $crate::store::breaker_state::{short, BreakerDialect, BreakerStateRow};
                let sql = <$backend>::breaker_sql();
                let work = async {
                    let mut tx = $crate::store::shared::SqlBackend::writer(self)
                        .begin()
                        .await?;
                    let counted: BreakerStateRow = sqlx::query_as(&sql.count_failures)
                        .bind(f.name)
                        .bind(i64::from(f.count))
                        .bind(f.instance)
                        .bind(short(f.reason))
                        .fetch_one(&mut tx)
                        .await?;
                    let opened: Option<BreakerStateRow> = sqlx::query_as(&sql.open_at_threshold)
                        .bind(f.name)
                        .bind(f.instance)
                        .bind(f.open_ms as f64)
                        .bind(i64::from(f.threshold))
                        .bind(i64::from(f.quorum))
                        .fetch_optional(&mut tx)
                        .await?;
                    <$backend as BreakerDialect>::announce(&mut tx, f.name).await?;
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(opened.unwrap_or(counted).into())
                };
                work.await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn breaker_success(
                &self,
                name: &str,
                instance: &str,
            ) -> Result<Option<$crate::store::breaker_state::BreakerRow>, $crate::store::StoreError>
            {
                use $crate::store::breaker_state::{BreakerDialect, BreakerStateRow};
                let sql = <$backend>::breaker_sql();
                let work = async {
                    let mut tx = $crate::store::shared::SqlBackend::writer(self)
                        .begin()
                        .await?;
                    let reset: Option<BreakerStateRow> = sqlx::query_as(&sql.success)
                        .bind(name)
                        .bind(instance)
                        .fetch_optional(&mut tx)
                        .await?;
                    if reset.is_some() {
                        <$backend as BreakerDialect>::announce(&mut tx, name).await?;
                    }
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(reset.map(Into::into))
                };
                work.await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn breaker_write(
                &self,
                w: &$crate::store::breaker_state::BreakerWrite<'_>,
            ) -> Result<Option<$crate::store::breaker_state::BreakerRow>, $crate::store::StoreError>
            {
                use $crate::store::breaker_state::{BreakerDialect, BreakerStateRow};
                let sql = <$backend>::breaker_sql();
                let work = async {
                    let mut tx = $crate::store::shared::SqlBackend::writer(self)
                        .begin()
                        .await?;
                    let written: Option<BreakerStateRow> = sqlx::query_as(&sql.write)
                        .bind(w.name)
                        .bind(w.state)
                        .bind(w.forced)
                        .bind(i64::from(w.consecutive_failures))
                        .bind(i64::from(w.half_open_successes))
                        .bind(w.open_ms.map(|v| v as f64))
                        .bind(w.instance)
                        .bind(w.lease_ms.map(|v| v as f64))
                        .bind(w.expected_version.map(|v| v as i64))
                        .fetch_optional(&mut tx)
                        .await?;
                    if written.is_some() {
                        <$backend as BreakerDialect>::announce(&mut tx, w.name).await?;
                    }
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(written.map(Into::into))
                };
                work.await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn breaker_try_trial(
                &self,
                name: &str,
                instance: &str,
                lease_ms: u64,
            ) -> Result<
                (bool, Option<$crate::store::breaker_state::BreakerRow>),
                $crate::store::StoreError,
            > {
                use $crate::store::breaker_state::{BreakerDialect, BreakerStateRow};
                let sql = <$backend>::breaker_sql();
                let work = async {
                    let mut tx = $crate::store::shared::SqlBackend::writer(self)
                        .begin()
                        .await?;
                    let granted: Option<BreakerStateRow> = sqlx::query_as(&sql.try_trial)
                        .bind(name)
                        .bind(instance)
                        .bind(lease_ms as f64)
                        .fetch_optional(&mut tx)
                        .await?;
                    let result = match granted {
                        Some(row) => {
                            <$backend as BreakerDialect>::announce(&mut tx, name).await?;
                            (true, Some(row.into()))
                        }
                        None => {
                            let row: Option<BreakerStateRow> =
                                sqlx::query_as(&format!("{} WHERE name = $1", sql.select))
                                    .bind(name)
                                    .fetch_optional(&mut tx)
                                    .await?;
                            (false, row.map(Into::into))
                        }
                    };
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(result)
                };
                work.await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn breaker_delete(&self, name: &str) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::breaker_state::BreakerDialect;
                let sql = <$backend>::breaker_sql();
                let work = async {
                    let mut tx = $crate::store::shared::SqlBackend::writer(self)
                        .begin()
                        .await?;
                    let done = sqlx::query(sql.delete).bind(name).execute(&mut tx).await?;
                    let deleted = done.rows_affected() > 0;
                    if deleted {
                        <$backend as BreakerDialect>::announce(&mut tx, name).await?;
                    }
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(deleted)
                };
                work.await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn watch_breakers(
                &self,
                notes: tokio::sync::mpsc::UnboundedSender<$crate::store::breaker_state::ChangeNote>,
                shutdown: tokio::sync::watch::Receiver<bool>,
            ) {
                $crate::store::breaker_state::BreakerDialect::watch(self, notes, shutdown).await
            }
        }
    };
}
pub(crate) use impl_breaker_state_store;
