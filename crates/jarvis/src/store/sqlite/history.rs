//! Task history on SQLite: records and rollups row by row, inside the one transaction per
//! batch on the single writer connection; retention in one transaction too (one commit).

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use super::SqliteStore;
use crate::model::record::ExecutionRecord;
use crate::model::rollup::Rollup;
use crate::store::history::HistoryDialect;

#[async_trait]
impl HistoryDialect for SqliteStore {
    const PURGE_IN_ONE_TRANSACTION: bool = true;

    async fn insert_records(
        tx: &mut Transaction<'_, Sqlite>,
        records: &[ExecutionRecord],
    ) -> Result<Vec<Uuid>, sqlx::Error> {
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
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() > 0 {
                inserted.push(r.record_id);
            }
        }
        Ok(inserted)
    }

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
}
