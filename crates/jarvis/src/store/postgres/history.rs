//! Task history on PostgreSQL: batched inserts with `UNNEST`, rollups in the same transaction;
//! retention statement by statement, so that no lock outlives its statement.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::PostgresStore;
use crate::model::record::ExecutionRecord;
use crate::model::rollup::Rollup;
use crate::store::history::HistoryDialect;

const INSERT: &str = "\
INSERT INTO task_history (record_id, task_id, domain, action, attempt, parameters,
                          learned_parameters, success, duration_ms, impact_score, failure_reason,
                          failure_group, cost_usd, correlation_id, instance_id, started_at,
                          finished_at, timed_out, model_call)
SELECT r, t, d, a, n, p::jsonb, lp::jsonb, s, dur, imp, fr, fg, c, corr, inst, st, fin, tmo,
       mc::jsonb
FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int4[], $6::text[], $7::text[],
            $8::bool[], $9::int8[], $10::float8[], $11::text[], $12::text[], $13::float8[],
            $14::text[], $15::text[], $16::timestamptz[], $17::timestamptz[], $18::bool[],
            $19::text[])
     AS u(r, t, d, a, n, p, lp, s, dur, imp, fr, fg, c, corr, inst, st, fin, tmo, mc)
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

const UPSERT_MINUTE_TOTALS: &str = "\
INSERT INTO task_stats_minute AS s (domain, action, minute, total, succeeded, failed,
       duration_sum_ms, cost_sum_usd, cost_count)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::int8[], $5::int8[],
                     $6::int8[], $7::int8[], $8::float8[], $9::int8[])
ON CONFLICT (domain, action, minute) DO UPDATE SET
    total = s.total + excluded.total,
    succeeded = s.succeeded + excluded.succeeded,
    failed = s.failed + excluded.failed,
    duration_sum_ms = s.duration_sum_ms + excluded.duration_sum_ms,
    cost_sum_usd = s.cost_sum_usd + excluded.cost_sum_usd,
    cost_count = s.cost_count + excluded.cost_count";

const UPSERT_MINUTE_DURATIONS: &str = "\
INSERT INTO task_duration_minute AS h (domain, action, minute, bucket, count)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::int2[], $5::int8[])
ON CONFLICT (domain, action, minute, bucket) DO UPDATE SET count = h.count + excluded.count";

const UPSERT_FAILURES: &str = "\
INSERT INTO task_failure_hourly AS f (domain, action, hour, failure_group, template, example, count)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
                     $6::text[], $7::int8[])
ON CONFLICT (domain, action, hour, failure_group) DO UPDATE SET count = f.count + excluded.count";

impl HistoryDialect for PostgresStore {
    const PURGE_IN_ONE_TRANSACTION: bool = false;

    async fn insert_records(
        tx: &mut Transaction<'_, Postgres>,
        records: &[ExecutionRecord],
    ) -> Result<Vec<Uuid>, sqlx::Error> {
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
        let mut mc = Vec::with_capacity(n);
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
            mc.push(
                r.model_call
                    .as_ref()
                    .map(|m| serde_json::to_string(m).expect("a model call serializes")),
            );
        }
        sqlx::query_scalar(INSERT)
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
            .bind(&mc)
            .fetch_all(&mut **tx)
            .await
    }

    /// One `UNNEST` statement per rollup table.
    async fn write_rollup(
        tx: &mut Transaction<'_, Postgres>,
        rollup: &Rollup,
    ) -> Result<(), sqlx::Error> {
        if rollup.is_empty() {
            return Ok(());
        }
        let (mut d, mut a, mut h) = (Vec::new(), Vec::new(), Vec::new());
        let (mut total, mut ok, mut failed, mut dur) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
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

        upsert_histogram(tx, UPSERT_DURATIONS, &rollup.durations).await?;
        upsert_histogram(tx, UPSERT_DURATIONS_DAILY, &rollup.daily_durations()).await?;

        let (mut d, mut a, mut m) = (Vec::new(), Vec::new(), Vec::new());
        let (mut total, mut ok, mut failed, mut dur, mut csum, mut ccount) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for ((domain, action, minute), t) in &rollup.minute_totals {
            d.push(domain.as_str());
            a.push(action.as_str());
            m.push(*minute);
            total.push(t.total);
            ok.push(t.succeeded);
            failed.push(t.failed);
            dur.push(t.duration_sum_ms);
            csum.push(t.cost_sum_usd);
            ccount.push(t.cost_count);
        }
        sqlx::query(UPSERT_MINUTE_TOTALS)
            .bind(&d)
            .bind(&a)
            .bind(&m)
            .bind(&total)
            .bind(&ok)
            .bind(&failed)
            .bind(&dur)
            .bind(&csum)
            .bind(&ccount)
            .execute(&mut **tx)
            .await?;

        upsert_histogram(tx, UPSERT_MINUTE_DURATIONS, &rollup.minute_durations).await?;

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
}

/// One duration histogram (hourly, daily or per minute: the same columns, another time unit)
/// added to its table with one `UNNEST` statement.
async fn upsert_histogram(
    tx: &mut Transaction<'_, Postgres>,
    sql: &str,
    counts: &std::collections::BTreeMap<(crate::model::rollup::HourKey, i16), i64>,
) -> Result<(), sqlx::Error> {
    let (mut d, mut a, mut at, mut b, mut c) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (((domain, action, start), bucket), count) in counts {
        d.push(domain.as_str());
        a.push(action.as_str());
        at.push(*start);
        b.push(*bucket);
        c.push(*count);
    }
    sqlx::query(sql)
        .bind(&d)
        .bind(&a)
        .bind(&at)
        .bind(&b)
        .bind(&c)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
