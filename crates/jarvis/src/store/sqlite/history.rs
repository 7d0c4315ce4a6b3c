//! Task history on SQLite: one transaction per batch on the single writer connection.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::SqliteStore;
use crate::history::record::{ExecutionRecord, StoredExecution};
use crate::history::rollup::{split_range, FailureCount, Rollup};
use crate::store::history::{ExecutionFilter, HistoryStore, StatsQuery, StatsRaw};
use crate::store::{rows, StoreError};

async fn write_rollup(
    tx: &mut Transaction<'_, Sqlite>,
    rollup: &Rollup,
) -> Result<(), sqlx::Error> {
    for ((domain, action, hour), t) in &rollup.totals {
        sqlx::query(
            "INSERT INTO task_stats_hourly (domain, action, hour, total, succeeded, failed, \
             duration_sum_ms, impact_sum, impact_count, cost_sum_usd, cost_count, \
             last_executed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT (domain, action, hour) DO UPDATE SET \
             total = total + excluded.total, succeeded = succeeded + excluded.succeeded, \
             failed = failed + excluded.failed, \
             duration_sum_ms = duration_sum_ms + excluded.duration_sum_ms, \
             impact_sum = impact_sum + excluded.impact_sum, \
             impact_count = impact_count + excluded.impact_count, \
             cost_sum_usd = cost_sum_usd + excluded.cost_sum_usd, \
             cost_count = cost_count + excluded.cost_count, \
             last_executed_at = MAX(last_executed_at, excluded.last_executed_at)",
        )
        .bind(domain)
        .bind(action)
        .bind(hour)
        .bind(t.total)
        .bind(t.succeeded)
        .bind(t.failed)
        .bind(t.duration_sum_ms)
        .bind(t.impact_sum)
        .bind(t.impact_count)
        .bind(t.cost_sum_usd)
        .bind(t.cost_count)
        .bind(t.last_executed_at.unwrap_or(*hour))
        .execute(&mut **tx)
        .await?;
    }
    for (((domain, action, hour), bucket), count) in &rollup.durations {
        sqlx::query(
            "INSERT INTO task_duration_hourly (domain, action, hour, bucket, count) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (domain, action, hour, bucket) \
             DO UPDATE SET count = count + excluded.count",
        )
        .bind(domain)
        .bind(action)
        .bind(hour)
        .bind(i64::from(*bucket))
        .bind(count)
        .execute(&mut **tx)
        .await?;
    }
    for (((domain, action, day), bucket), count) in rollup.daily_durations() {
        sqlx::query(
            "INSERT INTO task_duration_daily (domain, action, day, bucket, count) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (domain, action, day, bucket) \
             DO UPDATE SET count = count + excluded.count",
        )
        .bind(domain)
        .bind(action)
        .bind(day)
        .bind(i64::from(bucket))
        .bind(count)
        .execute(&mut **tx)
        .await?;
    }
    for (((domain, action, hour), group), f) in &rollup.failures {
        sqlx::query(
            "INSERT INTO task_failure_hourly (domain, action, hour, failure_group, template, \
             example, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (domain, action, hour, failure_group) \
             DO UPDATE SET count = count + excluded.count",
        )
        .bind(domain)
        .bind(action)
        .bind(hour)
        .bind(group)
        .bind(&f.template)
        .bind(&f.example)
        .bind(f.count)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn insert_history(&self, records: &[ExecutionRecord]) -> Result<u64, StoreError> {
        let work = async {
            let mut tx = self.writer().begin().await?;
            let mut inserted = Vec::with_capacity(records.len());
            for r in records {
                let done = sqlx::query(
                    "INSERT INTO task_history (record_id, task_id, domain, action, attempt, \
                     parameters, learned_parameters, success, duration_ms, impact_score, \
                     failure_reason, failure_group, cost_usd, correlation_id, instance_id, \
                     started_at, finished_at, timed_out) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                     ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) ON CONFLICT DO NOTHING",
                )
                .bind(r.record_id.hyphenated().to_string())
                .bind(r.task_id.hyphenated().to_string())
                .bind(&r.domain)
                .bind(&r.action)
                .bind(r.attempt.max(1) as i64)
                .bind(r.parameters.to_string())
                .bind(r.learned_parameters.as_ref().map(|v| v.to_string()))
                .bind(r.success)
                .bind(r.duration_ms.min(i64::MAX as u64) as i64)
                .bind(r.impact_score)
                .bind(r.failure_reason.as_deref())
                .bind(r.failure_group.as_deref())
                .bind(r.cost_usd)
                .bind(r.correlation_id.as_deref())
                .bind(r.instance_id.as_deref())
                .bind(r.started_at)
                .bind(r.finished_at)
                .bind(r.timed_out)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() > 0 {
                    inserted.push(r);
                }
            }
            write_rollup(&mut tx, &Rollup::of(inserted.iter().copied())).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(inserted.len() as u64)
        };
        work.await.map_err(|e| self.err(e))
    }

    async fn history_stats(&self, q: &StatsQuery) -> Result<StatsRaw, StoreError> {
        let (since, until) = crate::store::history_range(q);
        let work = async {
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(total), 0) AS INTEGER) AS total, \
                 CAST(COALESCE(SUM(succeeded), 0) AS INTEGER) AS succeeded, \
                 CAST(COALESCE(SUM(failed), 0) AS INTEGER) AS failed, \
                 CAST(COALESCE(SUM(duration_sum_ms), 0) AS INTEGER) AS duration_sum_ms, \
                 CAST(COALESCE(SUM(impact_sum), 0) AS REAL) AS impact_sum, \
                 CAST(COALESCE(SUM(impact_count), 0) AS INTEGER) AS impact_count, \
                 CAST(COALESCE(SUM(cost_sum_usd), 0) AS REAL) AS cost_sum_usd, \
                 CAST(COALESCE(SUM(cost_count), 0) AS INTEGER) AS cost_count, \
                 MAX(last_executed_at) AS last_executed_at \
                 FROM task_stats_hourly \
                 WHERE domain = ?1 AND action = ?2 AND hour >= ?3 AND hour <= ?4",
            )
            .bind(&q.domain)
            .bind(&q.action)
            .bind(since)
            .bind(until)
            .fetch_one(self.pool())
            .await?;
            let totals = crate::store::totals_of(&row)?;
            // Whole days from the daily rollup, edge hours from the hourly one.
            let split = split_range(since, until);
            let durations = sqlx::query(
                "SELECT bucket, CAST(SUM(n) AS INTEGER) AS n FROM ( \
                 SELECT bucket, count AS n FROM task_duration_hourly \
                 WHERE domain = ?1 AND action = ?2 AND hour >= ?3 AND hour < ?4 \
                 UNION ALL SELECT bucket, count FROM task_duration_daily \
                 WHERE domain = ?1 AND action = ?2 AND day >= ?5 AND day < ?6 \
                 UNION ALL SELECT bucket, count FROM task_duration_hourly \
                 WHERE domain = ?1 AND action = ?2 AND hour >= ?7 AND hour < ?8) \
                 GROUP BY bucket ORDER BY bucket",
            )
            .bind(&q.domain)
            .bind(&q.action)
            .bind(split.head.0)
            .bind(split.head.1)
            .bind(split.days.0)
            .bind(split.days.1)
            .bind(split.tail.0)
            .bind(split.tail.1)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>("bucket")? as i16, r.try_get("n")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let failures = sqlx::query(
                "SELECT failure_group, MIN(template) AS template, MIN(example) AS example, \
                 CAST(SUM(count) AS INTEGER) AS n FROM task_failure_hourly \
                 WHERE domain = ?1 AND action = ?2 AND hour >= ?3 AND hour <= ?4 \
                 GROUP BY failure_group ORDER BY n DESC, failure_group LIMIT ?5",
            )
            .bind(&q.domain)
            .bind(&q.action)
            .bind(since)
            .bind(until)
            .bind(i64::from(q.top_failures))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("failure_group")?,
                    FailureCount {
                        template: r.try_get("template")?,
                        example: r.try_get("example")?,
                        count: r.try_get("n")?,
                    },
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let recent = sqlx::query_scalar::<_, sqlx::types::Json<serde_json::Value>>(
                "SELECT parameters FROM (SELECT parameters, success FROM task_history \
                 WHERE domain = ?1 AND action = ?2 AND finished_at >= ?3 AND finished_at <= ?4 \
                 ORDER BY id DESC LIMIT ?5) WHERE success",
            )
            .bind(&q.domain)
            .bind(&q.action)
            .bind(q.since.unwrap_or(since))
            .bind(q.until.unwrap_or(until))
            .bind(i64::from(q.recent_successes) * 4)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .take(q.recent_successes as usize)
            .map(|j| j.0)
            .collect();
            Ok::<_, sqlx::Error>(StatsRaw {
                totals,
                durations,
                failures,
                recent_successful_parameters: recent,
            })
        };
        work.await.map_err(|e| self.err(e))
    }

    async fn list_executions(
        &self,
        f: &ExecutionFilter,
    ) -> Result<Vec<StoredExecution>, StoreError> {
        let all = sqlx::query(
            "SELECT * FROM task_history WHERE (?1 IS NULL OR domain = ?1) \
             AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR task_id = ?3) \
             AND (?4 IS NULL OR success = ?4) AND (?5 IS NULL OR correlation_id = ?5) \
             AND (?6 IS NULL OR finished_at >= ?6) AND (?7 IS NULL OR finished_at < ?7) \
             AND (?8 IS NULL OR id < ?8) ORDER BY id DESC LIMIT ?9",
        )
        .bind(f.domain.as_deref())
        .bind(f.action.as_deref())
        .bind(f.task_id.map(|u| u.hyphenated().to_string()))
        .bind(f.success)
        .bind(f.correlation_id.as_deref())
        .bind(f.since)
        .bind(f.until)
        .bind(f.before_id)
        .bind(i64::from(f.limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        all.iter()
            .map(rows::execution)
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    async fn count_executions(&self, task_id: Option<Uuid>) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM task_history WHERE (?1 IS NULL OR task_id = ?1)",
        )
        .bind(task_id.map(|u| u.hyphenated().to_string()))
        .fetch_one(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        Ok(n.max(0) as u64)
    }

    async fn purge_history(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let work = async {
            let mut tx = self.writer().begin().await?;
            let done = sqlx::query(
                "DELETE FROM task_history WHERE id IN (SELECT id FROM \
                 (SELECT id, finished_at FROM task_history ORDER BY id LIMIT ?2) \
                 WHERE finished_at < ?1)",
            )
            .bind(before)
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await?;
            // Whole days only (see the PostgreSQL store).
            sqlx::query("DELETE FROM task_duration_daily WHERE day < ?1")
                .bind(crate::history::rollup::day_of(before))
                .execute(&mut *tx)
                .await?;
            let hour = crate::history::rollup::hour_of(before);
            for table in [
                "task_stats_hourly",
                "task_duration_hourly",
                "task_failure_hourly",
            ] {
                sqlx::query(&format!("DELETE FROM {table} WHERE hour < ?1"))
                    .bind(hour)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(done.rows_affected())
        };
        work.await.map_err(|e| self.err(e))
    }
}
