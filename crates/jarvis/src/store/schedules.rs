//! The schedules' part of the storage trait: definitions, and the compare-and-swap through
//! which exactly one scheduler, on any instance, moves a schedule past a tick.
//!
//! The SQL is written once here: both engines accept it as is (`$n` placeholders, `IS NOT
//! DISTINCT FROM`, `RETURNING`), and [`ScheduleRow`] decodes from either. `impl_schedule_store!`
//! expands it for a backend (on SQLite, writes go through the single writer).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::StoreError;

/// A `schedules` row (same columns and Rust types on both backends).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScheduleRow {
    /// The schedule's name.
    pub name: String,
    /// A cron expression, or `None` with `every_ms`.
    pub cron: Option<String>,
    /// A period in ms, or `None` with `cron`.
    pub every_ms: Option<i64>,
    /// The cron expression's IANA time zone (`UTC` for periods).
    pub timezone: String,
    /// The task each tick submits (`TaskInput` JSON).
    pub task: Json<Value>,
    /// Whether it is paused.
    pub paused: bool,
    /// `skip` or `catchUp`.
    pub missed: String,
    /// With `catchUp`, the most recent due ticks submitted at most.
    pub catch_up_limit: i32,
    /// The next tick to submit; `None` while paused.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The latest tick submitted.
    pub last_run_at: Option<DateTime<Utc>>,
    /// The task of that tick.
    pub last_task_id: Option<String>,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When it was last changed through the API or the config file.
    pub updated_at: DateTime<Utc>,
}

/// Creates or replaces a schedule, keeping `created_at`, and keeping `next_run_at` when the
/// timing (cron, period, time zone) and `paused` did not change: re-applying the same
/// definition (the config file at every start, a PUT that only changes the task) neither
/// moves the next tick nor hides ticks missed while every instance was down.
pub(crate) const PUT: &str = "\
INSERT INTO schedules (name, cron, every_ms, timezone, task, paused, missed, catch_up_limit,
                       next_run_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
ON CONFLICT (name) DO UPDATE SET
    next_run_at = CASE
        WHEN schedules.cron IS NOT DISTINCT FROM excluded.cron
         AND schedules.every_ms IS NOT DISTINCT FROM excluded.every_ms
         AND schedules.timezone = excluded.timezone
         AND schedules.paused = excluded.paused
         AND NOT excluded.paused
        THEN COALESCE(schedules.next_run_at, excluded.next_run_at)
        ELSE excluded.next_run_at END,
    cron = excluded.cron, every_ms = excluded.every_ms, timezone = excluded.timezone,
    task = excluded.task, paused = excluded.paused, missed = excluded.missed,
    catch_up_limit = excluded.catch_up_limit, updated_at = excluded.updated_at
RETURNING *";

pub(crate) const GET: &str = "SELECT * FROM schedules WHERE name = $1";
pub(crate) const LIST: &str = "SELECT * FROM schedules ORDER BY name";
pub(crate) const DELETE: &str = "DELETE FROM schedules WHERE name = $1";

/// Pauses or resumes; only a change of state sets `next_run_at` (so resuming twice does not
/// move the next tick).
pub(crate) const SET_PAUSED: &str = "\
UPDATE schedules SET
    next_run_at = CASE WHEN paused = $2 THEN next_run_at ELSE $3 END,
    paused = $2, updated_at = $4
WHERE name = $1
RETURNING *";

pub(crate) const DUE: &str = "\
SELECT * FROM schedules WHERE next_run_at IS NOT NULL AND next_run_at <= $1
ORDER BY next_run_at LIMIT $2";

pub(crate) const EARLIEST: &str = "SELECT MIN(next_run_at) FROM schedules";

/// The tick claim: only the scheduler that still sees `next_run_at = due` moves it.
pub(crate) const ADVANCE: &str = "\
UPDATE schedules SET next_run_at = $3,
    last_run_at = COALESCE($4, last_run_at), last_task_id = COALESCE($5, last_task_id)
WHERE name = $1 AND next_run_at = $2";

/// How a scheduler moves a schedule past its due tick (see [`ScheduleStore::advance_schedule`]).
#[derive(Debug, Clone, Copy)]
pub struct Advance<'a> {
    /// The schedule.
    pub name: &'a str,
    /// The tick this scheduler saw as due (the expected `next_run_at`).
    pub due: DateTime<Utc>,
    /// The new `next_run_at` (`None`: the schedule has no further tick).
    pub next: Option<DateTime<Utc>>,
    /// The latest tick submitted now and its task, if any.
    pub last: Option<(DateTime<Utc>, &'a str)>,
}

/// Schedule operations of the store.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Creates or replaces a schedule (see [`PUT`] for what a replacement keeps). Returns
    /// the stored row and whether it was new.
    async fn put_schedule(&self, row: &ScheduleRow) -> Result<(ScheduleRow, bool), StoreError>;

    /// One schedule.
    async fn get_schedule(&self, name: &str) -> Result<Option<ScheduleRow>, StoreError>;

    /// Every schedule, by name.
    async fn list_schedules(&self) -> Result<Vec<ScheduleRow>, StoreError>;

    /// Removes a schedule; false when there was none. Tasks it submitted stay.
    async fn delete_schedule(&self, name: &str) -> Result<bool, StoreError>;

    /// Pauses (`next_run_at` becomes `None`) or resumes (`next_run_at` becomes `next`). A
    /// call that does not change the state changes nothing else. `None` when there is no such
    /// schedule.
    async fn set_schedule_paused(
        &self,
        name: &str,
        paused: bool,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<ScheduleRow>, StoreError>;

    /// Schedules whose next tick is at or before `now`, earliest first, at most `limit`.
    async fn due_schedules(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ScheduleRow>, StoreError>;

    /// The earliest next tick of any schedule.
    async fn earliest_schedule_tick(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Moves a schedule past its due tick if its `next_run_at` is still `due` (compare and
    /// swap). False when another scheduler did it first, or the schedule was changed, paused
    /// or deleted meanwhile.
    async fn advance_schedule(&self, advance: Advance<'_>) -> Result<bool, StoreError>;
}

/// The one body of [`ScheduleStore`] for both backends (`impl_schedule_store!(SqliteStore)`):
/// the SQL above is the same in both dialects; reads go to the backend's reader, writes to
/// its writer (see `store::shared::SqlBackend`).
macro_rules! impl_schedule_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::schedules::ScheduleStore for $backend {
            async fn put_schedule(
                &self,
                row: &$crate::store::schedules::ScheduleRow,
            ) -> Result<($crate::store::schedules::ScheduleRow, bool), $crate::store::StoreError>
            {
                let stored: $crate::store::schedules::ScheduleRow =
                    sqlx::query_as($crate::store::schedules::PUT)
                        .bind(&row.name)
                        .bind(&row.cron)
                        .bind(row.every_ms)
                        .bind(&row.timezone)
                        .bind(&row.task)
                        .bind(row.paused)
                        .bind(&row.missed)
                        .bind(row.catch_up_limit)
                        .bind(row.next_run_at)
                        .bind(row.created_at)
                        .fetch_one($crate::store::shared::SqlBackend::writer(self))
                        .await
                        .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                let created = stored.created_at == row.created_at;
                Ok((stored, created))
            }

            async fn get_schedule(
                &self,
                name: &str,
            ) -> Result<Option<$crate::store::schedules::ScheduleRow>, $crate::store::StoreError>
            {
                sqlx::query_as($crate::store::schedules::GET)
                    .bind(name)
                    .fetch_optional($crate::store::shared::SqlBackend::reader(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn list_schedules(
                &self,
            ) -> Result<Vec<$crate::store::schedules::ScheduleRow>, $crate::store::StoreError> {
                sqlx::query_as($crate::store::schedules::LIST)
                    .fetch_all($crate::store::shared::SqlBackend::reader(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn delete_schedule(&self, name: &str) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query($crate::store::schedules::DELETE)
                    .bind(name)
                    .execute($crate::store::shared::SqlBackend::writer(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_schedule_paused(
                &self,
                name: &str,
                paused: bool,
                next: Option<chrono::DateTime<chrono::Utc>>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<$crate::store::schedules::ScheduleRow>, $crate::store::StoreError>
            {
                sqlx::query_as($crate::store::schedules::SET_PAUSED)
                    .bind(name)
                    .bind(paused)
                    .bind(next)
                    .bind(now)
                    .fetch_optional($crate::store::shared::SqlBackend::writer(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn due_schedules(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<$crate::store::schedules::ScheduleRow>, $crate::store::StoreError> {
                sqlx::query_as($crate::store::schedules::DUE)
                    .bind(now)
                    .bind(i64::from(limit))
                    .fetch_all($crate::store::shared::SqlBackend::reader(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn earliest_schedule_tick(
                &self,
            ) -> Result<Option<chrono::DateTime<chrono::Utc>>, $crate::store::StoreError> {
                sqlx::query_scalar($crate::store::schedules::EARLIEST)
                    .fetch_one($crate::store::shared::SqlBackend::reader(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))
            }

            async fn advance_schedule(
                &self,
                a: $crate::store::schedules::Advance<'_>,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query($crate::store::schedules::ADVANCE)
                    .bind(a.name)
                    .bind(a.due)
                    .bind(a.next)
                    .bind(a.last.map(|(tick, _)| tick))
                    .bind(a.last.map(|(_, task)| task))
                    .execute($crate::store::shared::SqlBackend::writer(self))
                    .await
                    .map_err(|e| $crate::store::shared::SqlBackend::classify(self, e))?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}
pub(crate) use impl_schedule_store;
