//! Task history on SQLite: records and rollups a chunk of rows per statement (multi-row
//! `INSERT … VALUES`), inside the one transaction per batch on the single writer connection;
//! retention in one transaction too (one commit).

use sqlx::{QueryBuilder, Sqlite};

use crate::store::pool::Tx;
use uuid::Uuid;

use super::tasks::ROWS;
use super::SqliteStore;
use crate::model::record::ExecutionRecord;
use crate::model::rollup::Rollup;
use crate::store::history::HistoryDialect;
use crate::store::shared::DbUuid;

/// Both unique keys: the record itself (a replayed spool) and its attempt (one record per
/// attempt, whoever wrote it first).
const INSERT_RECORDS: &str = "\
INSERT INTO task_history (record_id, task_id, domain, action, attempt, parameters,
    learned_parameters, success, duration_ms, impact_score, failure_reason, failure_group,
    cost_usd, correlation_id, instance_id, started_at, finished_at, timed_out, model_call) ";

const UPSERT_TOTALS: &str = "\
INSERT INTO task_stats_hourly (domain, action, hour, total, succeeded, failed, duration_sum_ms,
    impact_sum, impact_count, cost_sum_usd, cost_count, last_executed_at) ";

const ON_TOTALS: &str = " ON CONFLICT (domain, action, hour) DO UPDATE SET
    total = total + excluded.total, succeeded = succeeded + excluded.succeeded,
    failed = failed + excluded.failed, duration_sum_ms = duration_sum_ms + excluded.duration_sum_ms,
    impact_sum = impact_sum + excluded.impact_sum, impact_count = impact_count + excluded.impact_count,
    cost_sum_usd = cost_sum_usd + excluded.cost_sum_usd, cost_count = cost_count + excluded.cost_count,
    last_executed_at = MAX(last_executed_at, excluded.last_executed_at)";

const UPSERT_MINUTE_TOTALS: &str = "\
INSERT INTO task_stats_minute (domain, action, minute, total, succeeded, failed, duration_sum_ms,
    cost_sum_usd, cost_count) ";

const ON_MINUTE_TOTALS: &str = " ON CONFLICT (domain, action, minute) DO UPDATE SET
    total = total + excluded.total, succeeded = succeeded + excluded.succeeded,
    failed = failed + excluded.failed, duration_sum_ms = duration_sum_ms + excluded.duration_sum_ms,
    cost_sum_usd = cost_sum_usd + excluded.cost_sum_usd, cost_count = cost_count + excluded.cost_count";

impl HistoryDialect for SqliteStore {
    const PURGE_IN_ONE_TRANSACTION: bool = true;

    async fn insert_records(
        tx: &mut Tx<'_, Sqlite>,
        records: &[ExecutionRecord],
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        let mut inserted = Vec::with_capacity(records.len());
        for chunk in records.chunks(ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(INSERT_RECORDS);
            q.push_values(chunk, |mut row, r| {
                row.push_bind(DbUuid(r.record_id))
                    .push_bind(DbUuid(r.task_id))
                    .push_bind(r.domain.as_str())
                    .push_bind(r.action.as_str())
                    .push_bind(r.attempt.max(1) as i64)
                    .push_bind(r.parameters.to_string())
                    .push_bind(r.learned_parameters.as_ref().map(|v| v.to_string()))
                    .push_bind(r.success)
                    .push_bind(r.duration_ms.min(i64::MAX as u64) as i64)
                    .push_bind(r.impact_score)
                    .push_bind(r.failure_reason.as_deref())
                    .push_bind(r.failure_group.as_deref())
                    .push_bind(r.cost_usd)
                    .push_bind(r.correlation_id.as_deref())
                    .push_bind(r.instance_id.as_deref())
                    .push_bind(r.started_at)
                    .push_bind(r.finished_at)
                    .push_bind(r.timed_out)
                    .push_bind(r.model_call.as_ref().map(sqlx::types::Json));
            });
            q.push(" ON CONFLICT DO NOTHING RETURNING record_id");
            let ids: Vec<DbUuid> = q.build_query_scalar().fetch_all(&mut *tx).await?;
            inserted.extend(ids.into_iter().map(|u| u.0));
        }
        Ok(inserted)
    }

    async fn write_rollup(tx: &mut Tx<'_, Sqlite>, rollup: &Rollup) -> Result<(), sqlx::Error> {
        let totals: Vec<_> = rollup.totals.iter().collect();
        for chunk in totals.chunks(ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(UPSERT_TOTALS);
            q.push_values(chunk, |mut row, ((domain, action, hour), t)| {
                row.push_bind(domain.as_str())
                    .push_bind(action.as_str())
                    .push_bind(*hour)
                    .push_bind(t.total)
                    .push_bind(t.succeeded)
                    .push_bind(t.failed)
                    .push_bind(t.duration_sum_ms)
                    .push_bind(t.impact_sum)
                    .push_bind(t.impact_count)
                    .push_bind(t.cost_sum_usd)
                    .push_bind(t.cost_count)
                    .push_bind(t.last_executed_at.unwrap_or(*hour));
            });
            q.push(ON_TOTALS).build().execute(&mut *tx).await?;
        }
        let minutes: Vec<_> = rollup.minute_totals.iter().collect();
        for chunk in minutes.chunks(ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(UPSERT_MINUTE_TOTALS);
            q.push_values(chunk, |mut row, ((domain, action, minute), t)| {
                row.push_bind(domain.as_str())
                    .push_bind(action.as_str())
                    .push_bind(*minute)
                    .push_bind(t.total)
                    .push_bind(t.succeeded)
                    .push_bind(t.failed)
                    .push_bind(t.duration_sum_ms)
                    .push_bind(t.cost_sum_usd)
                    .push_bind(t.cost_count);
            });
            q.push(ON_MINUTE_TOTALS).build().execute(&mut *tx).await?;
        }
        // The hourly, daily and minute duration histograms: the same columns, another time unit.
        let daily = rollup.daily_durations();
        for (table, unit, counts) in [
            ("task_duration_hourly", "hour", &rollup.durations),
            ("task_duration_daily", "day", &daily),
            ("task_duration_minute", "minute", &rollup.minute_durations),
        ] {
            let counts: Vec<_> = counts.iter().collect();
            for chunk in counts.chunks(ROWS) {
                let mut q = QueryBuilder::<Sqlite>::new(format!(
                    "INSERT INTO {table} (domain, action, {unit}, bucket, count) "
                ));
                q.push_values(chunk, |mut row, (((domain, action, at), bucket), count)| {
                    row.push_bind(domain.as_str())
                        .push_bind(action.as_str())
                        .push_bind(*at)
                        .push_bind(i64::from(*bucket))
                        .push_bind(**count);
                });
                q.push(format!(
                    " ON CONFLICT (domain, action, {unit}, bucket) \
                     DO UPDATE SET count = count + excluded.count"
                ));
                q.build().execute(&mut *tx).await?;
            }
        }
        let failures: Vec<_> = rollup.failures.iter().collect();
        for chunk in failures.chunks(ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO task_failure_hourly (domain, action, hour, failure_group, template, \
                 example, count) ",
            );
            q.push_values(chunk, |mut row, (((domain, action, hour), group), f)| {
                row.push_bind(domain.as_str())
                    .push_bind(action.as_str())
                    .push_bind(*hour)
                    .push_bind(group.as_str())
                    .push_bind(f.template.as_str())
                    .push_bind(f.example.as_str())
                    .push_bind(f.count);
            });
            q.push(
                " ON CONFLICT (domain, action, hour, failure_group) \
                 DO UPDATE SET count = count + excluded.count",
            );
            q.build().execute(&mut *tx).await?;
        }
        Ok(())
    }
}
