//! Task history on PostgreSQL: batches of records written with `COPY` (or, when some may be
//! stored already, an `UNNEST` insert that skips them), rollups in the same transaction;
//! retention statement by statement, so that no lock outlives its statement.

use sqlx::Postgres;

use crate::store::pool::Tx;
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

/// Every rollup table in one statement (one round trip per batch, not six): each table's rows
/// as an `UNNEST` of its columns, added to what is there; a table given empty arrays gets
/// nothing. Each `INSERT … ON CONFLICT` is a data-modifying CTE; they touch different tables, so
/// no row is updated twice in the statement.
const UPSERT_ROLLUP: &str = "\
WITH hourly AS (
    INSERT INTO task_stats_hourly AS s (domain, action, hour, total, succeeded, failed,
           duration_sum_ms, impact_sum, impact_count, cost_sum_usd, cost_count, last_executed_at)
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::int8[], $5::int8[],
                         $6::int8[], $7::int8[], $8::float8[], $9::int8[], $10::float8[],
                         $11::int8[], $12::timestamptz[])
    ON CONFLICT (domain, action, hour) DO UPDATE SET
        total = s.total + excluded.total,
        succeeded = s.succeeded + excluded.succeeded,
        failed = s.failed + excluded.failed,
        duration_sum_ms = s.duration_sum_ms + excluded.duration_sum_ms,
        impact_sum = s.impact_sum + excluded.impact_sum,
        impact_count = s.impact_count + excluded.impact_count,
        cost_sum_usd = s.cost_sum_usd + excluded.cost_sum_usd,
        cost_count = s.cost_count + excluded.cost_count,
        last_executed_at = GREATEST(s.last_executed_at, excluded.last_executed_at)
), hourly_durations AS (
    INSERT INTO task_duration_hourly AS h (domain, action, hour, bucket, count)
    SELECT * FROM UNNEST($13::text[], $14::text[], $15::timestamptz[], $16::int2[], $17::int8[])
    ON CONFLICT (domain, action, hour, bucket) DO UPDATE SET count = h.count + excluded.count
), daily_durations AS (
    INSERT INTO task_duration_daily AS h (domain, action, day, bucket, count)
    SELECT * FROM UNNEST($18::text[], $19::text[], $20::timestamptz[], $21::int2[], $22::int8[])
    ON CONFLICT (domain, action, day, bucket) DO UPDATE SET count = h.count + excluded.count
), minutes AS (
    INSERT INTO task_stats_minute AS s (domain, action, minute, total, succeeded, failed,
           duration_sum_ms, cost_sum_usd, cost_count)
    SELECT * FROM UNNEST($23::text[], $24::text[], $25::timestamptz[], $26::int8[], $27::int8[],
                         $28::int8[], $29::int8[], $30::float8[], $31::int8[])
    ON CONFLICT (domain, action, minute) DO UPDATE SET
        total = s.total + excluded.total,
        succeeded = s.succeeded + excluded.succeeded,
        failed = s.failed + excluded.failed,
        duration_sum_ms = s.duration_sum_ms + excluded.duration_sum_ms,
        cost_sum_usd = s.cost_sum_usd + excluded.cost_sum_usd,
        cost_count = s.cost_count + excluded.cost_count
), minute_durations AS (
    INSERT INTO task_duration_minute AS h (domain, action, minute, bucket, count)
    SELECT * FROM UNNEST($32::text[], $33::text[], $34::timestamptz[], $35::int2[], $36::int8[])
    ON CONFLICT (domain, action, minute, bucket) DO UPDATE SET count = h.count + excluded.count
)
INSERT INTO task_failure_hourly AS f (domain, action, hour, failure_group, template, example, count)
SELECT * FROM UNNEST($37::text[], $38::text[], $39::timestamptz[], $40::text[], $41::text[],
                     $42::text[], $43::int8[])
ON CONFLICT (domain, action, hour, failure_group) DO UPDATE SET count = f.count + excluded.count";

/// The columns of [`copy_row`], in its order.
const COPY: &str = "\
COPY task_history (record_id, task_id, domain, action, attempt, parameters, learned_parameters,
                   success, duration_ms, impact_score, failure_reason, failure_group, cost_usd,
                   correlation_id, instance_id, started_at, finished_at, timed_out, model_call)
FROM STDIN";

impl HistoryDialect for PostgresStore {
    const PURGE_IN_ONE_TRANSACTION: bool = false;

    /// `COPY`s the batch; if that fails (a record stored already: a replayed spool, an attempt
    /// the reclaimer recorded first; or a record the store refuses), goes back to before it and
    /// inserts with [`INSERT`], which skips what is stored (and fails as the batch would).
    ///
    /// Why `COPY`: PostgreSQL's work for the history is the largest part of its work per task
    /// (bench/queue/README.md, session 12), and `COPY` of a 2,000-record batch costs it about a
    /// third less than `INSERT … SELECT FROM UNNEST(…)` of the same rows (~8 against ~13 µs per
    /// record, measured alone). It cannot skip a conflicting row, hence the savepoint (one
    /// round trip per batch) and the fallback.
    async fn insert_records(
        tx: &mut Tx<'_, Postgres>,
        records: &[ExecutionRecord],
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query("SAVEPOINT copy_records")
            .execute(&mut *tx)
            .await?;
        let mut data = Vec::with_capacity(records.len() * 320);
        for r in records {
            copy_row(&mut data, r);
        }
        let copied = async {
            let mut copy = tx.connection().copy_in_raw(COPY).await?;
            copy.send(data).await?;
            copy.finish().await
        }
        .await;
        match copied {
            Ok(_) => Ok(records.iter().map(|r| r.record_id).collect()),
            Err(e) => {
                tracing::debug!(error = %e, records = records.len(), "COPY of history records failed; inserting them in one statement that skips those stored");
                sqlx::query("ROLLBACK TO SAVEPOINT copy_records")
                    .execute(&mut *tx)
                    .await?;
                insert_skipping(tx, records).await
            }
        }
    }

    /// One statement for every rollup table ([`UPSERT_ROLLUP`]).
    async fn write_rollup(tx: &mut Tx<'_, Postgres>, rollup: &Rollup) -> Result<(), sqlx::Error> {
        if rollup.is_empty() {
            return Ok(());
        }
        let hourly = totals(&rollup.totals);
        let minutes = totals(&rollup.minute_totals);
        let hourly_durations = histogram(&rollup.durations);
        let daily = rollup.daily_durations();
        let daily_durations = histogram(&daily);
        let minute_durations = histogram(&rollup.minute_durations);
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
        let q = sqlx::query(UPSERT_ROLLUP)
            .bind(&hourly.domain)
            .bind(&hourly.action)
            .bind(&hourly.start)
            .bind(&hourly.total)
            .bind(&hourly.succeeded)
            .bind(&hourly.failed)
            .bind(&hourly.duration_sum_ms)
            .bind(&hourly.impact_sum)
            .bind(&hourly.impact_count)
            .bind(&hourly.cost_sum_usd)
            .bind(&hourly.cost_count)
            .bind(&hourly.last);
        let q = hourly_durations.bind(q);
        let q = daily_durations.bind(q);
        let q = q
            .bind(&minutes.domain)
            .bind(&minutes.action)
            .bind(&minutes.start)
            .bind(&minutes.total)
            .bind(&minutes.succeeded)
            .bind(&minutes.failed)
            .bind(&minutes.duration_sum_ms)
            .bind(&minutes.cost_sum_usd)
            .bind(&minutes.cost_count);
        let q = minute_durations.bind(q);
        q.bind(&d)
            .bind(&a)
            .bind(&h)
            .bind(&g)
            .bind(&tpl)
            .bind(&ex)
            .bind(&c)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

/// Inserts `records` with [`INSERT`], skipping those stored already; returns the inserted IDs.
async fn insert_skipping(
    tx: &mut Tx<'_, Postgres>,
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
        .fetch_all(&mut *tx)
        .await
}

/// Appends one record to `out` as a line of `COPY`'s text format, in [`COPY`]'s column order.
fn copy_row(out: &mut Vec<u8>, r: &ExecutionRecord) {
    use std::io::Write;
    let _ = write!(out, "{}\t{}\t", r.record_id, r.task_id);
    copy_text(out, Some(&r.domain));
    copy_text(out, Some(&r.action));
    let _ = write!(out, "{}\t", r.attempt.max(1) as i32);
    copy_text(out, Some(&r.parameters.to_string()));
    copy_text(
        out,
        r.learned_parameters
            .as_ref()
            .map(|v| v.to_string())
            .as_deref(),
    );
    let _ = write!(
        out,
        "{}\t{}\t",
        copy_bool(r.success),
        r.duration_ms.min(i64::MAX as u64)
    );
    copy_float(out, r.impact_score);
    copy_text(out, r.failure_reason.as_deref());
    copy_text(out, r.failure_group.as_deref());
    copy_float(out, r.cost_usd);
    copy_text(out, r.correlation_id.as_deref());
    copy_text(out, r.instance_id.as_deref());
    copy_time(out, r.started_at);
    copy_time(out, r.finished_at);
    let _ = write!(out, "{}\t", copy_bool(r.timed_out));
    let model_call = r
        .model_call
        .as_ref()
        .map(|m| serde_json::to_string(m).expect("a model call serializes"));
    copy_text(out, model_call.as_deref());
    // The last column's tab becomes the line's end.
    out.pop();
    out.push(b'\n');
}

/// A text column and its tab: `\N` for NULL; backslash, tab, newline and carriage return
/// escaped (the only bytes `COPY`'s text format gives a meaning).
fn copy_text(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.extend_from_slice(b"\\N"),
        Some(v) => {
            for &b in v.as_bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(b),
                }
            }
        }
    }
    out.push(b'\t');
}

/// A `float8` column and its tab, as PostgreSQL reads it back exactly (Rust's shortest
/// round-trip form; PostgreSQL's names for the values that are not finite).
fn copy_float(out: &mut Vec<u8>, value: Option<f64>) {
    use std::io::Write;
    let _ = match value {
        None => write!(out, "\\N\t"),
        Some(v) if v.is_nan() => write!(out, "NaN\t"),
        Some(v) if v == f64::INFINITY => write!(out, "Infinity\t"),
        Some(v) if v == f64::NEG_INFINITY => write!(out, "-Infinity\t"),
        Some(v) => write!(out, "{v:?}\t"),
    };
}

/// A `timestamptz` column and its tab, in UTC to the microsecond (what PostgreSQL keeps; the
/// binary encoding of the `INSERT` truncates the same way).
fn copy_time(out: &mut Vec<u8>, at: chrono::DateTime<chrono::Utc>) {
    use std::io::Write;
    let _ = write!(out, "{}\t", at.format("%Y-%m-%d %H:%M:%S%.6f+00"));
}

fn copy_bool(v: bool) -> &'static str {
    if v {
        "t"
    } else {
        "f"
    }
}

type Query<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// The columns of one totals table (hourly or per minute), as arrays to `UNNEST`.
#[derive(Default)]
struct Totals<'a> {
    domain: Vec<&'a str>,
    action: Vec<&'a str>,
    start: Vec<chrono::DateTime<chrono::Utc>>,
    total: Vec<i64>,
    succeeded: Vec<i64>,
    failed: Vec<i64>,
    duration_sum_ms: Vec<i64>,
    impact_sum: Vec<f64>,
    impact_count: Vec<i64>,
    cost_sum_usd: Vec<f64>,
    cost_count: Vec<i64>,
    last: Vec<chrono::DateTime<chrono::Utc>>,
}

fn totals(
    rows: &std::collections::BTreeMap<
        crate::model::rollup::HourKey,
        crate::model::rollup::HourTotals,
    >,
) -> Totals<'_> {
    let mut out = Totals::default();
    for ((domain, action, start), t) in rows {
        out.domain.push(domain.as_str());
        out.action.push(action.as_str());
        out.start.push(*start);
        out.total.push(t.total);
        out.succeeded.push(t.succeeded);
        out.failed.push(t.failed);
        out.duration_sum_ms.push(t.duration_sum_ms);
        out.impact_sum.push(t.impact_sum);
        out.impact_count.push(t.impact_count);
        out.cost_sum_usd.push(t.cost_sum_usd);
        out.cost_count.push(t.cost_count);
        out.last.push(t.last_executed_at.unwrap_or(*start));
    }
    out
}

/// The columns of one duration histogram (hourly, daily or per minute: the same columns,
/// another time unit), as arrays to `UNNEST`.
struct Histogram<'a> {
    domain: Vec<&'a str>,
    action: Vec<&'a str>,
    start: Vec<chrono::DateTime<chrono::Utc>>,
    bucket: Vec<i16>,
    count: Vec<i64>,
}

fn histogram(
    counts: &std::collections::BTreeMap<(crate::model::rollup::HourKey, i16), i64>,
) -> Histogram<'_> {
    let mut out = Histogram {
        domain: Vec::with_capacity(counts.len()),
        action: Vec::with_capacity(counts.len()),
        start: Vec::with_capacity(counts.len()),
        bucket: Vec::with_capacity(counts.len()),
        count: Vec::with_capacity(counts.len()),
    };
    for (((domain, action, start), bucket), count) in counts {
        out.domain.push(domain.as_str());
        out.action.push(action.as_str());
        out.start.push(*start);
        out.bucket.push(*bucket);
        out.count.push(*count);
    }
    out
}

impl<'a> Histogram<'a> {
    /// Binds the five arrays, in column order.
    fn bind<'q>(self, q: Query<'q>) -> Query<'q>
    where
        'a: 'q,
    {
        q.bind(self.domain)
            .bind(self.action)
            .bind(self.start)
            .bind(self.bucket)
            .bind(self.count)
    }
}
