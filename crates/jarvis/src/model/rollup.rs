//! Incremental statistics: what a batch of newly inserted records adds to the hourly rollups.
//!
//! The store keeps, per domain/action and hour, counts and sums, a log-bucketed duration
//! histogram and failure counts per fingerprint. Stats read those (a few thousand rows for a
//! month), never the raw history. Only records actually inserted are rolled up, in the same
//! transaction, so replaying a spool file never counts a record twice. The same counts and
//! histogram are also kept per minute (`task_stats_minute`, `task_duration_minute`, 48 hours)
//! for the analytics API's minute buckets.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::record::ExecutionRecord;

/// Growth factor of the duration buckets: a percentile is known within ±5%.
pub const BUCKET_GROWTH: f64 = 1.1;
/// The last bucket (durations beyond ~1.3 × 10^10 ms all land here).
pub const MAX_BUCKET: i16 = 250;

/// The histogram bucket of a duration: 0 for 0 ms, else `1 + floor(ln(ms) / ln(1.1))`.
pub fn bucket_of(duration_ms: u64) -> i16 {
    if duration_ms == 0 {
        return 0;
    }
    let b = 1.0 + ((duration_ms as f64).ln() / BUCKET_GROWTH.ln()).floor();
    (b as i64).clamp(1, MAX_BUCKET as i64) as i16
}

/// A representative duration of a bucket (its geometric middle), ms.
pub fn bucket_value(bucket: i16) -> f64 {
    if bucket <= 0 {
        return 0.0;
    }
    let lo = BUCKET_GROWTH.powi(bucket as i32 - 1);
    let hi = BUCKET_GROWTH.powi(bucket as i32);
    (lo * hi).sqrt()
}

/// The UTC day a time falls in.
pub fn day_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::days(1)).unwrap_or(t)
}

/// A stats range of whole hours split for reading the duration histogram: the whole UTC days
/// inside it come from the daily rollup (one row per bucket per day instead of 24), the hours
/// at its edges from the hourly one. Every interval is half-open `[from, to)`; an empty one
/// has `from >= to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeSplit {
    /// Hours before the first whole day.
    pub head: (DateTime<Utc>, DateTime<Utc>),
    /// Whole days (their start times).
    pub days: (DateTime<Utc>, DateTime<Utc>),
    /// Hours after the last whole day.
    pub tail: (DateTime<Utc>, DateTime<Utc>),
}

/// Splits the hours `since..=until` (hour starts, as `hour_of` gives them).
pub fn split_range(since: DateTime<Utc>, until: DateTime<Utc>) -> RangeSplit {
    let end = until + TimeDelta::hours(1);
    let first_day = if day_of(since) == since {
        since
    } else {
        day_of(since) + TimeDelta::days(1)
    };
    let last_day_end = day_of(end);
    if first_day < last_day_end {
        RangeSplit {
            head: (since, first_day),
            days: (first_day, last_day_end),
            tail: (last_day_end, end),
        }
    } else {
        RangeSplit {
            head: (since, end),
            days: (since, since),
            tail: (end, end),
        }
    }
}

/// The minute a time falls in.
pub fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::minutes(1)).unwrap_or(t)
}

/// The hour a time falls in.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// The width of an analytics series' points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Bucket {
    /// A minute (read from the minute rollups, kept 48 hours).
    Minute,
    /// An hour.
    Hour,
    /// A UTC day.
    Day,
}

impl Bucket {
    /// `minute`, `hour` or `day`.
    pub fn parse(s: &str) -> Option<Bucket> {
        match s {
            "minute" => Some(Bucket::Minute),
            "hour" => Some(Bucket::Hour),
            "day" => Some(Bucket::Day),
            _ => None,
        }
    }

    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Minute => "minute",
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }

    /// How long one point is.
    pub fn width(self) -> TimeDelta {
        match self {
            Bucket::Minute => TimeDelta::minutes(1),
            Bucket::Hour => TimeDelta::hours(1),
            Bucket::Day => TimeDelta::days(1),
        }
    }

    /// The start of the bucket `t` falls in.
    pub fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        t.duration_trunc(self.width()).unwrap_or(t)
    }

    /// The start of the first bucket at or after `t`.
    pub fn ceil(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let f = self.floor(t);
        if f == t {
            t
        } else {
            f.checked_add_signed(self.width()).unwrap_or(f)
        }
    }
}

/// Counts and sums of one domain/action/hour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourTotals {
    /// Attempts.
    pub total: i64,
    /// Successful attempts.
    pub succeeded: i64,
    /// Failed attempts.
    pub failed: i64,
    /// Sum of durations, ms.
    pub duration_sum_ms: i64,
    /// Sum of impact scores.
    pub impact_sum: f64,
    /// Attempts with an impact score.
    pub impact_count: i64,
    /// Sum of costs, USD.
    pub cost_sum_usd: f64,
    /// Attempts with a cost.
    pub cost_count: i64,
    /// Latest finish.
    pub last_executed_at: Option<DateTime<Utc>>,
}

/// One failure group's count in one hour, with its template and an example.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureCount {
    /// Normalised template (what is shown as the reason).
    pub template: String,
    /// One original message.
    pub example: String,
    /// How many.
    pub count: i64,
}

/// `(domain, action, hour)`.
pub type HourKey = (String, String, DateTime<Utc>);

/// What a batch adds to the rollups. Keys are sorted, so every writer locks rollup rows in the
/// same order (no deadlocks between instances).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollup {
    /// Totals per hour.
    pub totals: BTreeMap<HourKey, HourTotals>,
    /// Duration histogram counts per hour and bucket.
    pub durations: BTreeMap<(HourKey, i16), i64>,
    /// Failure counts per hour and fingerprint.
    pub failures: BTreeMap<(HourKey, String), FailureCount>,
    /// Totals per minute (keys carry the minute's start; impact is not kept per minute).
    pub minute_totals: BTreeMap<HourKey, HourTotals>,
    /// Duration histogram counts per minute and bucket.
    pub minute_durations: BTreeMap<(HourKey, i16), i64>,
}

impl Rollup {
    /// The duration histogram summed per UTC day (keys carry the day's start), for the daily
    /// rollup that long stats ranges read.
    pub fn daily_durations(&self) -> BTreeMap<(HourKey, i16), i64> {
        let mut daily = BTreeMap::new();
        for (((domain, action, hour), bucket), count) in &self.durations {
            *daily
                .entry(((domain.clone(), action.clone(), day_of(*hour)), *bucket))
                .or_insert(0) += count;
        }
        daily
    }

    /// The rollup of `records`.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a ExecutionRecord>) -> Rollup {
        let mut r = Rollup::default();
        for rec in records {
            r.add(rec);
        }
        r
    }

    /// Adds one record.
    pub fn add(&mut self, rec: &ExecutionRecord) {
        let key = (
            rec.domain.clone(),
            rec.action.clone(),
            hour_of(rec.finished_at),
        );
        let t = self.totals.entry(key.clone()).or_default();
        t.total += 1;
        if rec.success {
            t.succeeded += 1;
        } else {
            t.failed += 1;
        }
        t.duration_sum_ms += rec.duration_ms.min(i64::MAX as u64) as i64;
        if let Some(s) = rec.impact_score {
            t.impact_sum += s;
            t.impact_count += 1;
        }
        if let Some(c) = rec.cost_usd {
            t.cost_sum_usd += c;
            t.cost_count += 1;
        }
        t.last_executed_at = Some(match t.last_executed_at {
            Some(l) if l > rec.finished_at => l,
            _ => rec.finished_at,
        });
        *self
            .durations
            .entry((key.clone(), bucket_of(rec.duration_ms)))
            .or_default() += 1;
        let minute = (
            rec.domain.clone(),
            rec.action.clone(),
            minute_of(rec.finished_at),
        );
        let m = self.minute_totals.entry(minute.clone()).or_default();
        m.total += 1;
        if rec.success {
            m.succeeded += 1;
        } else {
            m.failed += 1;
        }
        m.duration_sum_ms += rec.duration_ms.min(i64::MAX as u64) as i64;
        if let Some(c) = rec.cost_usd {
            m.cost_sum_usd += c;
            m.cost_count += 1;
        }
        *self
            .minute_durations
            .entry((minute, bucket_of(rec.duration_ms)))
            .or_default() += 1;
        if !rec.success {
            let reason = rec.failure_reason.as_deref().unwrap_or("unknown failure");
            let group = rec
                .failure_group
                .clone()
                .unwrap_or_else(|| jarvis_learning::fingerprint(reason).to_string());
            let entry = self
                .failures
                .entry((key, group))
                .or_insert_with(|| FailureCount {
                    template: jarvis_learning::normalize(reason),
                    example: reason.chars().take(500).collect(),
                    count: 0,
                });
            entry.count += 1;
        }
    }

    /// Whether there is nothing to add.
    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }
}

#[cfg(test)]
mod tests {
    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_split_into_whole_days_and_edge_hours() {
        // 3 days and a bit: hours before the first midnight, two whole days, hours after.
        let s = split_range(at("2026-11-01T20:00:00Z"), at("2026-11-04T05:00:00Z"));
        assert_eq!(
            s.head,
            (at("2026-11-01T20:00:00Z"), at("2026-11-02T00:00:00Z"))
        );
        assert_eq!(
            s.days,
            (at("2026-11-02T00:00:00Z"), at("2026-11-04T00:00:00Z"))
        );
        assert_eq!(
            s.tail,
            (at("2026-11-04T00:00:00Z"), at("2026-11-04T06:00:00Z"))
        );
        // Exactly whole days: empty edges.
        let s = split_range(at("2026-11-02T00:00:00Z"), at("2026-11-03T23:00:00Z"));
        assert_eq!(s.head.0, s.head.1);
        assert_eq!(
            s.days,
            (at("2026-11-02T00:00:00Z"), at("2026-11-04T00:00:00Z"))
        );
        assert_eq!(s.tail.0, s.tail.1);
        // Within one day (or across one midnight without a whole day): hours only.
        for (a, b) in [
            ("2026-11-02T03:00:00Z", "2026-11-02T09:00:00Z"),
            ("2026-11-02T03:00:00Z", "2026-11-03T09:00:00Z"),
        ] {
            let s = split_range(at(a), at(b));
            assert_eq!(s.head, (at(a), at(b) + TimeDelta::hours(1)));
            assert!(s.days.0 >= s.days.1 && s.tail.0 >= s.tail.1);
        }
    }

    #[test]
    fn buckets_round_to_their_width() {
        let t = at("2026-11-02T13:45:30.5Z");
        assert_eq!(Bucket::Minute.floor(t), at("2026-11-02T13:45:00Z"));
        assert_eq!(Bucket::Minute.ceil(t), at("2026-11-02T13:46:00Z"));
        assert_eq!(Bucket::Hour.floor(t), at("2026-11-02T13:00:00Z"));
        assert_eq!(Bucket::Hour.ceil(t), at("2026-11-02T14:00:00Z"));
        assert_eq!(Bucket::Day.floor(t), at("2026-11-02T00:00:00Z"));
        assert_eq!(Bucket::Day.ceil(t), at("2026-11-03T00:00:00Z"));
        // A bound on a bucket's start stays where it is.
        let h = at("2026-11-02T13:00:00Z");
        assert_eq!((Bucket::Hour.floor(h), Bucket::Hour.ceil(h)), (h, h));
        for b in [Bucket::Minute, Bucket::Hour, Bucket::Day] {
            assert_eq!(Bucket::parse(b.as_str()), Some(b));
        }
        assert_eq!(Bucket::parse("week"), None);
        assert_eq!(Bucket::parse("Hour"), None);
    }

    #[test]
    fn records_are_rolled_up_per_minute_too() {
        use crate::model::record::ExecutionRecord;
        let rec = |finished: &str, success: bool, ms: u64| ExecutionRecord {
            record_id: uuid::Uuid::now_v7(),
            task_id: uuid::Uuid::now_v7(),
            domain: "d".into(),
            action: "a".into(),
            attempt: 1,
            parameters: serde_json::json!({}),
            learned_parameters: None,
            success,
            duration_ms: ms,
            impact_score: None,
            failure_reason: (!success).then(|| "boom".to_string()),
            failure_group: None,
            cost_usd: Some(0.5),
            correlation_id: None,
            instance_id: None,
            started_at: at(finished),
            finished_at: at(finished),
            timed_out: false,
            model_call: None,
        };
        let records = [
            rec("2026-11-02T13:45:01Z", true, 10),
            rec("2026-11-02T13:45:59Z", false, 20),
            rec("2026-11-02T13:46:00Z", true, 10),
        ];
        let r = Rollup::of(&records);
        let key = |m: &str| ("d".to_string(), "a".to_string(), at(m));
        let first = &r.minute_totals[&key("2026-11-02T13:45:00Z")];
        assert_eq!((first.total, first.succeeded, first.failed), (2, 1, 1));
        assert_eq!(first.duration_sum_ms, 30);
        assert_eq!(r.minute_totals[&key("2026-11-02T13:46:00Z")].total, 1);
        assert_eq!(r.totals[&key("2026-11-02T13:00:00Z")].total, 3);
        let minute_counts: i64 = r.minute_durations.values().sum();
        assert_eq!(minute_counts, 3);
        assert_eq!(
            r.minute_durations[&(key("2026-11-02T13:45:00Z"), bucket_of(10))],
            1
        );
    }

    #[test]
    fn daily_durations_sum_the_hours_of_a_day() {
        let mut r = Rollup::default();
        let key = |h: &str| (("d".to_string(), "a".to_string(), at(h)), 7i16);
        r.durations.insert(key("2026-11-02T01:00:00Z"), 3);
        r.durations.insert(key("2026-11-02T23:00:00Z"), 4);
        r.durations.insert(key("2026-11-03T00:00:00Z"), 5);
        let daily = r.daily_durations();
        assert_eq!(daily.len(), 2);
        assert_eq!(daily[&key("2026-11-02T00:00:00Z")], 7);
        assert_eq!(daily[&key("2026-11-03T00:00:00Z")], 5);
    }
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_within_five_percent() {
        let mut last = 0;
        for ms in [0u64, 1, 2, 3, 10, 11, 100, 1_000, 30_000, 3_600_000] {
            let b = bucket_of(ms);
            assert!(b >= last, "{ms}");
            last = b;
            if ms > 0 {
                let v = bucket_value(b);
                assert!((v - ms as f64).abs() / (ms as f64) <= 0.1, "{ms} -> {v}");
            }
        }
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(u64::MAX), MAX_BUCKET);
    }
}
