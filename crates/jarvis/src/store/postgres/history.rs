//! Task history on PostgreSQL: batched inserts with `UNNEST`, rollups in the same transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::PostgresStore;
use crate::history::record::{ExecutionRecord, StoredExecution};
use crate::history::rollup::{split_range, FailureCount, Rollup};
use crate::store::history::{ExecutionFilter, HistoryStore, StatsQuery, StatsRaw};
use crate::store::{rows, StoreError};

const INSERT: &str = "\
INSERT INTO task_history (record_id, task_id, domain, action, attempt, parameters,
                          learned_parameters, success, duration_ms, impact_score, failure_reason,
                          failure_group, cost_usd, correlation_id, instance_id, started_at,
                          finished_at, timed_out)
SELECT r, t, d, a, n, p::jsonb, lp::jsonb, s, dur, imp, fr, fg, c, corr, inst, st, fin, tmo
FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int4[], $6::text[], $7::text[],
            $8::bool[], $9::int8[], $10::float8[], $11::text[], $12::text[], $13::float8[],
            $14::text[], $15::text[], $16::timestamptz[], $17::timestamptz[], $18::bool[])
     AS u(r, t, d, a, n, p, lp, s, dur, imp, fr, fg, c, corr, inst, st, fin, tmo)
-- Both unique keys: the record itself (a replayed spool) and its attempt (one record per
-- attempt, whoever wrote it first).
ON CONFLICT DO NOTHING
RETURNING record_id";

const UPSERT_TOTALS: &str = "\
INSERT INTO task_stats_hourly AS s (domain, action, hour, total, succeeded, failed,
       duration_sum_ms, impact_sum, impact_count, cost_sum_usd, cost_count, last_executed_at)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::int8[], $5::int8[],
                     $6::int8[], $7::int8[], $8::float8[], $9::int8[], $10::float8[], $11::int8[],
                     $12::timestamptz[])
ON CONFLICT (domain, action, hour) DO UPDATE SET
    total = s.total + excluded.total,
    succeeded = s.succeeded + excluded.succeeded,
    failed = s.failed + excluded.failed,
    duration_sum_ms = s.duration_sum_ms + excluded.duration_sum_ms,
    impact_sum = s.impact_sum + excluded.impact_sum,
    impact_count = s.impact_count + excluded.impact_count,
    cost_sum_usd = s.cost_sum_usd + excluded.cost_sum_usd,
    cost_count = s.cost_count + excluded.cost_count,
    last_executed_at = GREATEST(s.last_executed_at, excluded.last_executed_at)";

const UPSERT_DURATIONS: &str = "\
INSERT INTO task_duration_hourly AS h (domain, action, hour, bucket, count)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::int2[], $5::int8[])
ON CONFLICT (domain, action, hour, bucket) DO UPDATE SET count = h.count + excluded.count";

const UPSERT_DURATIONS_DAILY: &str = "\
INSERT INTO task_duration_daily AS h (domain, action, day, bucket, count)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::int2[], $5::int8[])
ON CONFLICT (domain, action, day, bucket) DO UPDATE SET count = h.count + excluded.count";

/// The duration histogram over a range: whole days from the daily rollup, edge hours from the
/// hourly one (see `rollup::split_range`).
const DURATIONS: &str = "\
SELECT bucket::int4 AS bucket, SUM(n)::int8 AS n FROM (
    SELECT bucket, count AS n FROM task_duration_hourly
    WHERE domain = $1 AND action = $2 AND hour >= $3 AND hour < $4
    UNION ALL
    SELECT bucket, count FROM task_duration_daily
    WHERE domain = $1 AND action = $2 AND day >= $5 AND day < $6
    UNION ALL
    SELECT bucket, count FROM task_duration_hourly
    WHERE domain = $1 AND action = $2 AND hour >= $7 AND hour < $8
) d GROUP BY bucket ORDER BY bucket";

const UPSERT_FAILURES: &str = "\
INSERT INTO task_failure_hourly AS f (domain, action, hour, failure_group, template, example, count)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
                     $6::text[], $7::int8[])
ON CONFLICT (domain, action, hour, failure_group) DO UPDATE SET count = f.count + excluded.count";

/// Writes what `rollup` adds to the rollup tables, inside `tx`. Shared by both statements
/// shapes so that the row locks are always taken in the rollup's (sorted) key order.
async fn write_rollup(
    tx: &mut Transaction<'_, Postgres>,
    rollup: &Rollup,
) -> Result<(), sqlx::Error> {
    if rollup.is_empty() {
        return Ok(());
    }
    let (mut d, mut a, mut h) = (Vec::new(), Vec::new(), Vec::new());
    let (mut total, mut ok, mut failed, mut dur) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut isum, mut icount, mut csum, mut ccount, mut last) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((domain, action, hour), t) in &rollup.totals {
        d.push(domain.as_str());
        a.push(action.as_str());
        h.push(*hour);
        total.push(t.total);
        ok.push(t.succeeded);
        failed.push(t.failed);
        dur.push(t.duration_sum_ms);
        isum.push(t.impact_sum);
        icount.push(t.impact_count);
        csum.push(t.cost_sum_usd);
        ccount.push(t.cost_count);
        last.push(t.last_executed_at.unwrap_or(*hour));
    }
    sqlx::query(UPSERT_TOTALS)
        .bind(&d)
        .bind(&a)
        .bind(&h)
        .bind(&total)
        .bind(&ok)
        .bind(&failed)
        .bind(&dur)
        .bind(&isum)
        .bind(&icount)
        .bind(&csum)
        .bind(&ccount)
        .bind(&last)
        .execute(&mut **tx)
        .await?;

    let (mut d, mut a, mut h, mut b, mut c) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (((domain, action, hour), bucket), count) in &rollup.durations {
        d.push(domain.as_str());
        a.push(action.as_str());
        h.push(*hour);
        b.push(*bucket);
        c.push(*count);
    }
    sqlx::query(UPSERT_DURATIONS)
        .bind(&d)
        .bind(&a)
        .bind(&h)
        .bind(&b)
        .bind(&c)
        .execute(&mut **tx)
        .await?;

    let (mut d, mut a, mut day, mut b, mut c) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (((domain, action, start), bucket), count) in rollup.daily_durations() {
        d.push(domain);
        a.push(action);
        day.push(start);
        b.push(bucket);
        c.push(count);
    }
    sqlx::query(UPSERT_DURATIONS_DAILY)
        .bind(&d)
        .bind(&a)
        .bind(&day)
        .bind(&b)
        .bind(&c)
        .execute(&mut **tx)
        .await?;

    if !rollup.failures.is_empty() {
        let (mut d, mut a, mut h, mut g, mut tpl, mut ex, mut c) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for (((domain, action, hour), group), f) in &rollup.failures {
            d.push(domain.as_str());
            a.push(action.as_str());
            h.push(*hour);
            g.push(group.as_str());
            tpl.push(f.template.as_str());
            ex.push(f.example.as_str());
            c.push(f.count);
        }
        sqlx::query(UPSERT_FAILURES)
            .bind(&d)
            .bind(&a)
            .bind(&h)
            .bind(&g)
            .bind(&tpl)
            .bind(&ex)
            .bind(&c)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl HistoryStore for PostgresStore {
    async fn insert_history(&self, records: &[ExecutionRecord]) -> Result<u64, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        let n = records.len();
        let mut rid = Vec::with_capacity(n);
        let mut tid = Vec::with_capacity(n);
        let mut dom = Vec::with_capacity(n);
        let mut act = Vec::with_capacity(n);
        let mut att = Vec::with_capacity(n);
        let mut par = Vec::with_capacity(n);
        let mut lpar = Vec::with_capacity(n);
        let mut suc = Vec::with_capacity(n);
        let mut dur = Vec::with_capacity(n);
        let mut imp = Vec::with_capacity(n);
        let mut fr = Vec::with_capacity(n);
        let mut fg = Vec::with_capacity(n);
        let mut cost = Vec::with_capacity(n);
        let mut corr = Vec::with_capacity(n);
        let mut inst = Vec::with_capacity(n);
        let mut st = Vec::with_capacity(n);
        let mut fin = Vec::with_capacity(n);
        let mut tmo = Vec::with_capacity(n);
        for r in records {
            rid.push(r.record_id);
            tid.push(r.task_id);
            dom.push(r.domain.as_str());
            act.push(r.action.as_str());
            att.push(r.attempt.max(1) as i32);
            par.push(r.parameters.to_string());
            lpar.push(r.learned_parameters.as_ref().map(|v| v.to_string()));
            suc.push(r.success);
            dur.push(r.duration_ms.min(i64::MAX as u64) as i64);
            imp.push(r.impact_score);
            fr.push(r.failure_reason.as_deref());
            fg.push(r.failure_group.as_deref());
            cost.push(r.cost_usd);
            corr.push(r.correlation_id.as_deref());
            inst.push(r.instance_id.as_deref());
            st.push(r.started_at);
            fin.push(r.finished_at);
            tmo.push(r.timed_out);
        }
        let work = async {
            let mut tx = self.pool().begin().await?;
            let inserted: Vec<Uuid> = sqlx::query_scalar(INSERT)
                .bind(&rid)
                .bind(&tid)
                .bind(&dom)
                .bind(&act)
                .bind(&att)
                .bind(&par)
                .bind(&lpar)
                .bind(&suc)
                .bind(&dur)
                .bind(&imp)
                .bind(&fr)
                .bind(&fg)
                .bind(&cost)
                .bind(&corr)
                .bind(&inst)
                .bind(&st)
                .bind(&fin)
                .bind(&tmo)
                .fetch_all(&mut *tx)
                .await?;
            let rollup = if inserted.len() == n {
                Rollup::of(records)
            } else {
                let new: std::collections::HashSet<Uuid> = inserted.iter().copied().collect();
                Rollup::of(records.iter().filter(|r| new.contains(&r.record_id)))
            };
            write_rollup(&mut tx, &rollup).await?;
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(inserted.len() as u64)
        };
        work.await.map_err(|e| self.err(e))
    }

    async fn history_stats(&self, q: &StatsQuery) -> Result<StatsRaw, StoreError> {
        let (since, until) = super::super::history_range(q);
        let work = async {
            let row = sqlx::query(
                "SELECT COALESCE(SUM(total), 0)::int8 AS total, \
                 COALESCE(SUM(succeeded), 0)::int8 AS succeeded, \
                 COALESCE(SUM(failed), 0)::int8 AS failed, \
                 COALESCE(SUM(duration_sum_ms), 0)::int8 AS duration_sum_ms, \
                 COALESCE(SUM(impact_sum), 0)::float8 AS impact_sum, \
                 COALESCE(SUM(impact_count), 0)::int8 AS impact_count, \
                 COALESCE(SUM(cost_sum_usd), 0)::float8 AS cost_sum_usd, \
                 COALESCE(SUM(cost_count), 0)::int8 AS cost_count, \
                 MAX(last_executed_at) AS last_executed_at \
                 FROM task_stats_hourly \
                 WHERE domain = $1 AND action = $2 AND hour >= $3 AND hour <= $4",
            )
            .bind(&q.domain)
            .bind(&q.action)
            .bind(since)
            .bind(until)
            .fetch_one(self.pool())
            .await?;
            let totals = super::super::totals_of(&row)?;
            let split = split_range(since, until);
            let durations = sqlx::query(DURATIONS)
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
                .map(|r| Ok((r.try_get::<i32, _>("bucket")? as i16, r.try_get("n")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let failures = sqlx::query(
                "SELECT failure_group, MIN(template) AS template, MIN(example) AS example, \
                 SUM(count)::int8 AS n FROM task_failure_hourly \
                 WHERE domain = $1 AND action = $2 AND hour >= $3 AND hour <= $4 \
                 GROUP BY failure_group ORDER BY n DESC, failure_group LIMIT $5",
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
                 WHERE domain = $1 AND action = $2 AND finished_at >= $3 AND finished_at <= $4 \
                 ORDER BY id DESC LIMIT $5) s WHERE success",
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
            "SELECT * FROM task_history WHERE ($1::text IS NULL OR domain = $1) \
             AND ($2::text IS NULL OR action = $2) AND ($3::uuid IS NULL OR task_id = $3) \
             AND ($4::bool IS NULL OR success = $4) AND ($5::text IS NULL OR correlation_id = $5) \
             AND ($6::timestamptz IS NULL OR finished_at >= $6) \
             AND ($7::timestamptz IS NULL OR finished_at < $7) \
             AND ($8::int8 IS NULL OR id < $8) \
             ORDER BY id DESC LIMIT $9",
        )
        .bind(f.domain.as_deref())
        .bind(f.action.as_deref())
        .bind(f.task_id)
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
            "SELECT count(*) FROM task_history WHERE ($1::uuid IS NULL OR task_id = $1)",
        )
        .bind(task_id)
        .fetch_one(self.pool())
        .await
        .map_err(|e| self.err(e))?;
        Ok(n.max(0) as u64)
    }

    async fn purge_history(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let work = async {
            let done = sqlx::query(
                "DELETE FROM task_history WHERE id IN (SELECT id FROM \
                 (SELECT id, finished_at FROM task_history ORDER BY id LIMIT $2) oldest \
                 WHERE finished_at < $1)",
            )
            .bind(before)
            .bind(i64::from(limit))
            .execute(self.pool())
            .await?;
            // Whole days only: a day the cutoff falls in stays in the daily rollup until the
            // next day's purge, while its older hours are gone from the hourly tables.
            sqlx::query("DELETE FROM task_duration_daily WHERE day < $1")
                .bind(crate::history::rollup::day_of(before))
                .execute(self.pool())
                .await?;
            let hour = crate::history::rollup::hour_of(before);
            for table in [
                "task_stats_hourly",
                "task_duration_hourly",
                "task_failure_hourly",
            ] {
                sqlx::query(&format!("DELETE FROM {table} WHERE hour < $1"))
                    .bind(hour)
                    .execute(self.pool())
                    .await?;
            }
            Ok::<_, sqlx::Error>(done.rows_affected())
        };
        work.await.map_err(|e| self.err(e))
    }
}
