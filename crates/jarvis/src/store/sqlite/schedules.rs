//! Schedules on SQLite: the shared SQL of `store::schedules`; writes on the single writer
//! connection, reads on the pool.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqliteStore;
use crate::store::schedules::{self as sql, Advance, ScheduleRow, ScheduleStore};
use crate::store::StoreError;

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn put_schedule(&self, row: &ScheduleRow) -> Result<(ScheduleRow, bool), StoreError> {
        let stored: ScheduleRow = sqlx::query_as(sql::PUT)
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
            .fetch_one(self.writer())
            .await
            .map_err(|e| self.err(e))?;
        let created = stored.created_at == row.created_at;
        Ok((stored, created))
    }

    async fn get_schedule(&self, name: &str) -> Result<Option<ScheduleRow>, StoreError> {
        sqlx::query_as(sql::GET)
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| self.err(e))
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRow>, StoreError> {
        sqlx::query_as(sql::LIST)
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::DELETE)
            .bind(name)
            .execute(self.writer())
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_schedule_paused(
        &self,
        name: &str,
        paused: bool,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<ScheduleRow>, StoreError> {
        sqlx::query_as(sql::SET_PAUSED)
            .bind(name)
            .bind(paused)
            .bind(next)
            .bind(now)
            .fetch_optional(self.writer())
            .await
            .map_err(|e| self.err(e))
    }

    async fn due_schedules(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ScheduleRow>, StoreError> {
        sqlx::query_as(sql::DUE)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(|e| self.err(e))
    }

    async fn earliest_schedule_tick(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        sqlx::query_scalar(sql::EARLIEST)
            .fetch_one(self.pool())
            .await
            .map_err(|e| self.err(e))
    }

    async fn advance_schedule(&self, a: Advance<'_>) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::ADVANCE)
            .bind(a.name)
            .bind(a.due)
            .bind(a.next)
            .bind(a.last.map(|(tick, _)| tick))
            .bind(a.last.map(|(_, task)| task))
            .execute(self.writer())
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() == 1)
    }
}
