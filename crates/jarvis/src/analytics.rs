//! Analytics: time series of task runs per domain/action (minute, hour or day points with
//! success rate, p50/p95 duration and cost per task, plus failure groups), the overview of
//! every domain/action, breaker transitions and service uptime/latency series.
//!
//! Everything is computed from rollups the store keeps in the same transaction as what they
//! count (`task_stats_*`, `task_duration_*`, `task_failure_hourly`, `health_uptime`,
//! `breaker_transitions`), never from a scan of `task_history` or `health_checks`: an answer
//! costs the rollup rows of its range, whatever the number of records. This module turns what
//! the store sums up into points (every bucket of the range, empty ones included), and runs
//! the retention of the minute rollups and of breaker transitions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::history::stats::percentile;
use crate::model::rollup::{hour_of, Bucket, HourTotals};
use crate::store::analytics::{OverviewRaw, SeriesQuery, SeriesRaw, TransitionRow, UptimeHourRow};
use crate::store::{Store, StoreError};

/// Most points one series may have.
pub const MAX_POINTS: i64 = 1_440;
/// Failure groups a series shows at most.
pub const TOP_FAILURES: u32 = 10;
/// Domain/action pairs an overview shows at most.
pub const OVERVIEW_LIMIT: u32 = 1_000;
/// How long the minute rollups are kept.
pub const MINUTE_RETENTION: TimeDelta = TimeDelta::hours(48);

/// A range the caller gave that cannot be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RangeError {
    /// `since` is not before `until`.
    #[error("since must be before until (after rounding to whole {0}s: {1} to {2})")]
    Empty(&'static str, DateTime<Utc>, DateTime<Utc>),
    /// Too many points.
    #[error("{points} {bucket} points from {since} to {until}; at most {max}: narrow the range or use a wider bucket")]
    TooManyPoints {
        /// Points the range has.
        points: i64,
        /// The bucket.
        bucket: &'static str,
        /// From.
        since: DateTime<Utc>,
        /// To.
        until: DateTime<Utc>,
        /// [`MAX_POINTS`].
        max: i64,
    },
}

/// `t - d`, or the earliest time there is (a caller's `until` of year 0 must not panic).
fn earlier(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The range of a series when the caller gives no `since`: an hour of minutes, a day of
/// hours, 30 days.
pub fn default_span(bucket: Bucket) -> TimeDelta {
    match bucket {
        Bucket::Minute => TimeDelta::hours(1),
        Bucket::Hour => TimeDelta::hours(24),
        Bucket::Day => TimeDelta::days(30),
    }
}

/// The half-open range `[from, to)` of whole buckets a series covers: `since` rounded down to
/// its bucket, `until` (default `now`) rounded up (so the bucket it falls in is included), at
/// most [`MAX_POINTS`] buckets.
pub fn series_range(
    bucket: Bucket,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), RangeError> {
    let to = bucket.ceil(until.unwrap_or(now));
    let from = bucket.floor(since.unwrap_or_else(|| earlier(to, default_span(bucket))));
    if from >= to {
        return Err(RangeError::Empty(bucket.as_str(), from, to));
    }
    let points = (to - from).num_seconds() / bucket.width().num_seconds();
    if points > MAX_POINTS {
        return Err(RangeError::TooManyPoints {
            points,
            bucket: bucket.as_str(),
            since: from,
            until: to,
            max: MAX_POINTS,
        });
    }
    Ok((from, to))
}

/// One point of a task series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// The bucket's start.
    pub at: DateTime<Utc>,
    /// Attempts that finished in the bucket.
    pub total: i64,
    /// Of which succeeded.
    pub succeeded: i64,
    /// Of which failed.
    pub failed: i64,
    /// `succeeded / total`; null without runs.
    pub success_rate: Option<f64>,
    /// Mean duration, ms.
    pub avg_duration_ms: Option<u64>,
    /// Median duration, ms (within 5 %).
    pub p50_duration_ms: Option<u64>,
    /// 95th percentile, ms (within 5 %).
    pub p95_duration_ms: Option<u64>,
    /// Reported cost over attempts.
    pub cost_per_task_usd: Option<f64>,
}

/// A failure group of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureGroup {
    /// The stable fingerprint of the group.
    pub group: String,
    /// The normalised reason.
    pub template: String,
    /// One original message.
    pub example: String,
    /// Failed attempts in the range (counted per hour: the hours the range touches).
    pub count: i64,
}

/// `GET /api/v1/analytics/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskSeries {
    /// The domain, or null for all.
    pub domain: Option<String>,
    /// The action, or null for all (of the domain).
    pub action: Option<String>,
    /// `minute`, `hour` or `day`.
    pub bucket: String,
    /// The first bucket's start.
    pub since: DateTime<Utc>,
    /// The end of the last bucket (excluded).
    pub until: DateTime<Utc>,
    /// One per bucket, oldest first, empty buckets included.
    pub points: Vec<Point>,
    /// The most frequent failure groups, most frequent first.
    pub failure_groups: Vec<FailureGroup>,
}

fn point(at: DateTime<Utc>, t: &HourTotals, durations: &[(i16, i64)]) -> Point {
    let histogram_total: i64 = durations.iter().map(|(_, n)| n).sum();
    Point {
        at,
        total: t.total,
        succeeded: t.succeeded,
        failed: t.failed,
        success_rate: (t.total > 0).then(|| t.succeeded as f64 / t.total as f64),
        avg_duration_ms: (t.total > 0)
            .then(|| (t.duration_sum_ms as f64 / t.total as f64).round() as u64),
        p50_duration_ms: percentile(durations, histogram_total, 50.0),
        p95_duration_ms: percentile(durations, histogram_total, 95.0),
        cost_per_task_usd: (t.total > 0).then(|| t.cost_sum_usd / t.total as f64),
    }
}

fn add(into: &mut HourTotals, t: &HourTotals) {
    into.total += t.total;
    into.succeeded += t.succeeded;
    into.failed += t.failed;
    into.duration_sum_ms += t.duration_sum_ms;
    into.cost_sum_usd += t.cost_sum_usd;
    into.cost_count += t.cost_count;
}

/// The points of `[from, to)` from what the store summed up: every bucket, the stored periods
/// folded into their bucket (hours into days), empty buckets with zero runs.
pub fn points(
    bucket: Bucket,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    raw: &SeriesRaw,
) -> Vec<Point> {
    let mut totals: BTreeMap<DateTime<Utc>, HourTotals> = BTreeMap::new();
    for (at, t) in &raw.totals {
        add(totals.entry(bucket.floor(*at)).or_default(), t);
    }
    let mut durations: BTreeMap<DateTime<Utc>, Vec<(i16, i64)>> = BTreeMap::new();
    for (at, b, n) in &raw.durations {
        durations
            .entry(bucket.floor(*at))
            .or_default()
            .push((*b, *n));
    }
    for d in durations.values_mut() {
        d.sort_unstable();
    }
    let empty = HourTotals::default();
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        out.push(point(
            at,
            totals.get(&at).unwrap_or(&empty),
            durations.get(&at).map(Vec::as_slice).unwrap_or(&[]),
        ));
        match at.checked_add_signed(bucket.width()) {
            Some(next) => at = next,
            None => break,
        }
    }
    out
}

/// A task series: `domain`/`action` (an action only with its domain; without a domain, the
/// `system-*` domains only with `include_system`), `[from, to)` whole buckets (see
/// [`series_range`]).
pub async fn task_series(
    store: &dyn Store,
    (domain, action): (Option<String>, Option<String>),
    include_system: bool,
    bucket: Bucket,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<TaskSeries, StoreError> {
    let raw = store
        .task_series(&SeriesQuery {
            domain: domain.clone(),
            action: action.clone(),
            bucket,
            from,
            to,
            top_failures: TOP_FAILURES,
            include_system,
        })
        .await?;
    Ok(TaskSeries {
        points: points(bucket, from, to, &raw),
        failure_groups: raw
            .failures
            .into_iter()
            .map(|(group, f)| FailureGroup {
                group,
                template: f.template,
                example: f.example,
                count: f.count,
            })
            .collect(),
        domain,
        action,
        bucket: bucket.as_str().to_string(),
        since: from,
        until: to,
    })
}

/// The figures of the whole overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverviewTotals {
    /// Attempts.
    pub total: i64,
    /// Of which succeeded.
    pub succeeded: i64,
    /// Of which failed.
    pub failed: i64,
    /// `succeeded / total`; null without runs.
    pub success_rate: Option<f64>,
    /// Sum of reported costs.
    pub cost_usd: f64,
}

/// One domain/action of the overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverviewItem {
    /// The domain.
    pub domain: String,
    /// The action.
    pub action: String,
    /// Attempts.
    pub total: i64,
    /// Of which succeeded.
    pub succeeded: i64,
    /// Of which failed.
    pub failed: i64,
    /// `succeeded / total`.
    pub success_rate: Option<f64>,
    /// Mean duration, ms.
    pub avg_duration_ms: Option<u64>,
    /// 95th percentile, ms (within 5 %).
    pub p95_duration_ms: Option<u64>,
    /// Sum of reported costs.
    pub cost_usd: f64,
    /// When the latest attempt finished.
    pub last_executed_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/analytics/overview` and `GET /api/v1/tasks/history` without a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// As asked, or null (from the first record).
    pub since: Option<DateTime<Utc>>,
    /// As asked, or null (to now).
    pub until: Option<DateTime<Utc>>,
    /// All items together.
    pub totals: OverviewTotals,
    /// Every domain/action with runs in the range, by domain then action.
    pub items: Vec<OverviewItem>,
}

fn overview_item(raw: OverviewRaw) -> OverviewItem {
    let t = &raw.totals;
    let histogram_total: i64 = raw.durations.iter().map(|(_, n)| n).sum();
    OverviewItem {
        total: t.total,
        succeeded: t.succeeded,
        failed: t.failed,
        success_rate: (t.total > 0).then(|| t.succeeded as f64 / t.total as f64),
        avg_duration_ms: (t.total > 0)
            .then(|| (t.duration_sum_ms as f64 / t.total as f64).round() as u64),
        p95_duration_ms: percentile(&raw.durations, histogram_total, 95.0),
        cost_usd: t.cost_sum_usd,
        last_executed_at: t.last_executed_at,
        domain: raw.domain,
        action: raw.action,
    }
}

/// The overview from what the store summed up.
pub fn overview_of(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    raw: Vec<OverviewRaw>,
) -> Overview {
    let items: Vec<OverviewItem> = raw.into_iter().map(overview_item).collect();
    let (total, succeeded, failed, cost_usd) =
        items.iter().fold((0, 0, 0, 0.0), |(t, s, f, c), i| {
            (t + i.total, s + i.succeeded, f + i.failed, c + i.cost_usd)
        });
    Overview {
        since,
        until,
        totals: OverviewTotals {
            total,
            succeeded,
            failed,
            success_rate: (total > 0).then(|| succeeded as f64 / total as f64),
            cost_usd,
        },
        items,
    }
}

/// The hours `[from, to)` of an overview: from the hour of `since` to the end of the hour of
/// `until` (the rollups count whole hours), everything when unset.
pub fn overview_hours(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let from = since.map(hour_of).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    // Without `until`, a day past now: records of an instance whose clock runs ahead count.
    let end = hour_of(until.unwrap_or(now + TimeDelta::days(1)));
    let to = end.checked_add_signed(TimeDelta::hours(1)).unwrap_or(end);
    (from, to)
}

/// Every domain/action's figures over `since`..`until` (whole hours).
pub async fn overview(
    store: &dyn Store,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    include_system: bool,
) -> Result<Overview, StoreError> {
    let (from, to) = overview_hours(since, until, crate::clock::now());
    if from >= to {
        return Ok(overview_of(since, until, Vec::new()));
    }
    let raw = store
        .task_overview(from, to, include_system, OVERVIEW_LIMIT)
        .await?;
    Ok(overview_of(since, until, raw))
}

/// One breaker transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// When (the database's clock).
    pub at: DateTime<Utc>,
    /// The breaker.
    pub breaker: String,
    /// `CLOSED`, `OPEN` or `HALF_OPEN`.
    pub from: String,
    /// `CLOSED`, `OPEN` or `HALF_OPEN`.
    pub to: String,
    /// The instance that made it.
    pub instance: Option<String>,
    /// Why.
    pub reason: String,
}

/// `GET /api/v1/analytics/breakers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakerTransitions {
    /// From (included).
    pub since: DateTime<Utc>,
    /// To (excluded).
    pub until: DateTime<Utc>,
    /// Newest first.
    pub transitions: Vec<Transition>,
}

impl From<TransitionRow> for Transition {
    fn from(r: TransitionRow) -> Transition {
        Transition {
            at: DateTime::from_timestamp_millis(r.at_ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            breaker: r.breaker,
            from: r.from_state,
            to: r.to_state,
            instance: r.instance,
            reason: r.reason,
        }
    }
}

/// The range of a transition listing: `until` (default now, excluded), `since` (default a
/// day before `until`).
pub fn transitions_range(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), RangeError> {
    // A millisecond past now, so that a transition made this millisecond is included.
    let to = until.unwrap_or(now + TimeDelta::milliseconds(1));
    let from = since.unwrap_or_else(|| earlier(to, TimeDelta::hours(24)));
    if from >= to {
        return Err(RangeError::Empty("millisecond", from, to));
    }
    Ok((from, to))
}

/// Breaker transitions in `[from, to)`, newest first, at most `limit`.
pub async fn breaker_transitions(
    store: &dyn Store,
    breaker: Option<&str>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    limit: u32,
) -> Result<BreakerTransitions, StoreError> {
    let rows = store
        .breaker_transitions(
            breaker,
            from.timestamp_millis(),
            to.timestamp_millis(),
            limit,
        )
        .await?;
    Ok(BreakerTransitions {
        since: from,
        until: to,
        transitions: rows.into_iter().map(Transition::from).collect(),
    })
}

/// One point of a service's series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePoint {
    /// The bucket's start.
    pub at: DateTime<Utc>,
    /// Checks made (by every instance).
    pub checks: i64,
    /// Of which found the service up or degraded.
    pub up: i64,
    /// `up / checks` in percent (two decimals); null without checks.
    pub uptime_pct: Option<f64>,
    /// Mean latency of the checks that reached the service, ms; null without any.
    pub avg_latency_ms: Option<f64>,
}

/// One service's series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSeries {
    /// The service.
    pub name: String,
    /// One per bucket, oldest first, empty buckets included.
    pub points: Vec<ServicePoint>,
}

/// `GET /api/v1/analytics/services`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicesSeries {
    /// The first bucket's start.
    pub since: DateTime<Utc>,
    /// The end of the last bucket (excluded).
    pub until: DateTime<Utc>,
    /// `hour` or `day`.
    pub bucket: String,
    /// By name.
    pub services: Vec<ServiceSeries>,
}

/// Service series from the stored hours (sorted by service, then time): every bucket of
/// `[from, to)` per service; `name` is listed even without counts.
pub fn service_points(
    bucket: Bucket,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    name: Option<&str>,
    rows: &[UptimeHourRow],
) -> Vec<ServiceSeries> {
    // service -> bucket start -> (checks, up, latency sum, latency count)
    let mut by: BTreeMap<&str, BTreeMap<DateTime<Utc>, [i64; 4]>> = BTreeMap::new();
    if let Some(n) = name {
        by.entry(n).or_default();
    }
    for r in rows {
        let at = DateTime::from_timestamp(r.bucket_start, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let c = by
            .entry(r.service.as_str())
            .or_default()
            .entry(bucket.floor(at))
            .or_default();
        c[0] += r.total;
        c[1] += r.up;
        c[2] += r.latency_sum_ms;
        c[3] += r.latency_count;
    }
    by.into_iter()
        .map(|(service, counts)| {
            let mut points = Vec::new();
            let mut at = from;
            while at < to {
                let [checks, up, lat_sum, lat_n] = counts.get(&at).copied().unwrap_or_default();
                points.push(ServicePoint {
                    at,
                    checks,
                    up,
                    uptime_pct: (checks > 0)
                        .then(|| (up as f64 * 10_000.0 / checks as f64).round() / 100.0),
                    avg_latency_ms: (lat_n > 0)
                        .then(|| (lat_sum as f64 * 10.0 / lat_n as f64).round() / 10.0),
                });
                match at.checked_add_signed(bucket.width()) {
                    Some(next) => at = next,
                    None => break,
                }
            }
            ServiceSeries {
                name: service.to_string(),
                points,
            }
        })
        .collect()
}

/// Uptime and latency series of one service or all, `[from, to)` whole buckets.
pub async fn service_series(
    store: &dyn Store,
    name: Option<&str>,
    bucket: Bucket,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<ServicesSeries, StoreError> {
    let rows = store
        .uptime_hours(name, from.timestamp(), to.timestamp())
        .await?;
    Ok(ServicesSeries {
        since: from,
        until: to,
        bucket: bucket.as_str().to_string(),
        services: service_points(bucket, (from, to), name, &rows),
    })
}

/// Deletes minute rollups older than [`MINUTE_RETENTION`] and breaker transitions older than
/// `transitions` (kept forever when `None`), every `every`, until `stop` fires.
pub async fn retention_loop(
    store: Arc<dyn Store>,
    transitions: Option<Duration>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let now = crate::clock::now();
        let transitions_before = transitions.map(|keep| {
            (now - TimeDelta::from_std(keep).unwrap_or(TimeDelta::days(36_500))).timestamp_millis()
        });
        match store
            .prune_analytics(now - MINUTE_RETENTION, transitions_before)
            .await
        {
            Ok(n) if n > 0 => tracing::debug!(deleted = n, "analytics retention removed old rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "analytics retention: cannot delete old rows"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rollup::bucket_of;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_are_whole_buckets_with_defaults_and_a_cap() {
        let now = at("2026-12-06T15:47:30Z");
        // Defaults: the bucket now falls in is the last one.
        assert_eq!(
            series_range(Bucket::Minute, None, None, now),
            Ok((at("2026-12-06T14:48:00Z"), at("2026-12-06T15:48:00Z")))
        );
        assert_eq!(
            series_range(Bucket::Hour, None, None, now),
            Ok((at("2026-12-05T16:00:00Z"), at("2026-12-06T16:00:00Z")))
        );
        assert_eq!(
            series_range(Bucket::Day, None, None, now),
            Ok((at("2026-11-07T00:00:00Z"), at("2026-12-07T00:00:00Z")))
        );
        // Given bounds round outwards to whole buckets.
        assert_eq!(
            series_range(
                Bucket::Hour,
                Some(at("2026-12-06T10:30:00Z")),
                Some(at("2026-12-06T12:00:00Z")),
                now
            ),
            Ok((at("2026-12-06T10:00:00Z"), at("2026-12-06T12:00:00Z")))
        );
        // Empty and reversed ranges.
        let same = at("2026-12-06T10:00:00Z");
        assert!(matches!(
            series_range(Bucket::Hour, Some(same), Some(same), now),
            Err(RangeError::Empty(..))
        ));
        assert!(series_range(Bucket::Hour, Some(now), Some(same), now).is_err());
        // The ends of time do not overflow.
        let first = DateTime::<Utc>::MIN_UTC;
        let last = DateTime::<Utc>::MAX_UTC;
        assert!(series_range(Bucket::Day, None, Some(first), now).is_err());
        assert!(series_range(Bucket::Day, Some(last), None, now).is_err());
        let _ = overview_hours(Some(first), Some(last), now);
        assert!(transitions_range(None, Some(first), now).is_err());
        // 1,440 points is the most.
        let day_of_minutes = series_range(
            Bucket::Minute,
            Some(at("2026-12-05T00:00:00Z")),
            Some(at("2026-12-06T00:00:00Z")),
            now,
        );
        assert!(day_of_minutes.is_ok());
        let too_many = series_range(
            Bucket::Minute,
            Some(at("2026-12-05T00:00:00Z")),
            Some(at("2026-12-06T00:01:00Z")),
            now,
        );
        assert!(
            matches!(
                too_many,
                Err(RangeError::TooManyPoints { points: 1441, .. })
            ),
            "{too_many:?}"
        );
    }

    fn totals(total: i64, succeeded: i64, duration_sum_ms: i64, cost: f64) -> HourTotals {
        HourTotals {
            total,
            succeeded,
            failed: total - succeeded,
            duration_sum_ms,
            cost_sum_usd: cost,
            ..HourTotals::default()
        }
    }

    #[test]
    fn points_fill_every_bucket_and_fold_hours_into_days() {
        let raw = SeriesRaw {
            totals: vec![
                (at("2026-12-01T01:00:00Z"), totals(3, 2, 300, 0.3)),
                (at("2026-12-01T05:00:00Z"), totals(1, 1, 100, 0.1)),
                (at("2026-12-03T00:00:00Z"), totals(4, 0, 40, 0.0)),
            ],
            durations: vec![
                (at("2026-12-01T00:00:00Z"), bucket_of(100), 4),
                (at("2026-12-03T00:00:00Z"), bucket_of(10), 4),
            ],
            failures: vec![],
        };
        let p = points(
            Bucket::Day,
            at("2026-12-01T00:00:00Z"),
            at("2026-12-04T00:00:00Z"),
            &raw,
        );
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].total, p[0].succeeded, p[0].failed), (4, 3, 1));
        assert_eq!(p[0].success_rate, Some(0.75));
        assert_eq!(p[0].avg_duration_ms, Some(100));
        let p50 = p[0].p50_duration_ms.unwrap();
        assert!((95..=105).contains(&p50), "{p50}");
        assert!((p[0].cost_per_task_usd.unwrap() - 0.1).abs() < 1e-9);
        // The empty day is there, with no rates.
        assert_eq!(p[1].at, at("2026-12-02T00:00:00Z"));
        assert_eq!(
            (p[1].total, p[1].success_rate, p[1].p95_duration_ms),
            (0, None, None)
        );
        assert_eq!(p[2].success_rate, Some(0.0));
        assert_eq!(p[2].avg_duration_ms, Some(10));
    }

    #[test]
    fn percentiles_of_a_point_come_from_its_histogram() {
        // 90 fast runs (10 ms) and 10 slow ones (1000 ms): p50 fast, p95 slow.
        let raw = SeriesRaw {
            totals: vec![(
                at("2026-12-01T10:07:00Z"),
                totals(100, 100, 90 * 10 + 10 * 1000, 0.0),
            )],
            durations: vec![
                (at("2026-12-01T10:07:00Z"), bucket_of(1000), 10),
                (at("2026-12-01T10:07:00Z"), bucket_of(10), 90),
            ],
            failures: vec![],
        };
        let p = points(
            Bucket::Minute,
            at("2026-12-01T10:06:00Z"),
            at("2026-12-01T10:08:00Z"),
            &raw,
        );
        assert_eq!(p[0].total, 0);
        let (p50, p95) = (p[1].p50_duration_ms.unwrap(), p[1].p95_duration_ms.unwrap());
        assert!((9..=11).contains(&p50), "{p50}");
        assert!((950..=1050).contains(&p95), "{p95}");
        assert_eq!(p[1].avg_duration_ms, Some(109));
    }

    #[test]
    fn overview_totals_add_up_the_items() {
        let item = |d: &str, t: HourTotals| OverviewRaw {
            domain: d.into(),
            action: "a".into(),
            durations: vec![(bucket_of(100), t.total)],
            totals: t,
        };
        let o = overview_of(
            None,
            None,
            vec![
                item("x", totals(3, 3, 300, 1.5)),
                item("y", totals(1, 0, 100, 0.5)),
            ],
        );
        assert_eq!(
            o.totals,
            OverviewTotals {
                total: 4,
                succeeded: 3,
                failed: 1,
                success_rate: Some(0.75),
                cost_usd: 2.0
            }
        );
        assert_eq!(o.items[1].success_rate, Some(0.0));
        assert!(o.items[0].p95_duration_ms.is_some());
        let empty = overview_of(None, None, vec![]);
        assert_eq!((empty.totals.total, empty.totals.success_rate), (0, None));
    }

    #[test]
    fn service_points_fold_hours_and_list_a_named_service_without_counts() {
        let row = |s: &str, at: &str, up, total, lat, n| UptimeHourRow {
            service: s.into(),
            bucket_start: at.parse::<DateTime<Utc>>().unwrap().timestamp(),
            up,
            total,
            latency_sum_ms: lat,
            latency_count: n,
        };
        let rows = [
            row("api", "2026-12-01T01:00:00Z", 9, 10, 100, 10),
            row("api", "2026-12-01T02:00:00Z", 10, 10, 300, 10),
        ];
        let range = (at("2026-12-01T00:00:00Z"), at("2026-12-02T00:00:00Z"));
        let s = service_points(Bucket::Day, range, None, &rows);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].points.len(), 1);
        let p = &s[0].points[0];
        assert_eq!(
            (p.checks, p.up, p.uptime_pct, p.avg_latency_ms),
            (20, 19, Some(95.0), Some(20.0))
        );
        let s = service_points(Bucket::Hour, range, Some("db"), &rows);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].name, "db");
        assert_eq!(s[1].points.len(), 24);
        assert!(s[1]
            .points
            .iter()
            .all(|p| p.checks == 0 && p.uptime_pct.is_none()));
        assert_eq!(s[0].points[1].uptime_pct, Some(90.0));
    }
}
