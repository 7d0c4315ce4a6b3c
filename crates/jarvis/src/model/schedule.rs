//! A schedule's definition, validated field by field: when it ticks (a cron expression in a
//! time zone, or every N milliseconds), the task each tick submits, pause, and what happens to
//! ticks that fell due while no instance was running (the missed-tick policy).
//!
//! Tick times are the same on every instance, whoever computes them: cron ticks are the
//! expression's matches in its time zone (whole seconds), `everyMs` ticks are the multiples of
//! `everyMs` since the Unix epoch (`everyMs: 60000` ticks at every whole UTC minute). That is
//! what lets each tick carry a stable idempotency key, `schedule:<name>:<tick RFC 3339>`.

use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::{Deserialize, Serialize};

use super::task::NewTask;
use super::task_input::TaskInput;
use crate::names::Name;

/// The shortest accepted `everyMs`: ticks more often than once a second are refused (the
/// scheduler claims each tick with a store round trip).
pub const MIN_EVERY_MS: u64 = 1_000;
/// The longest accepted `everyMs` (366 days).
pub const MAX_EVERY_MS: u64 = 366 * 86_400_000;
/// Default `catchUpLimit`.
pub const DEFAULT_CATCH_UP_LIMIT: u32 = 10;
/// Largest `catchUpLimit`.
pub const MAX_CATCH_UP_LIMIT: u32 = 1_000;
/// With `missed: "skip"`, the latest due tick still runs when it is at most this late (a
/// restart a few seconds after an hourly tick runs it; one after minutes does not).
pub const ON_TIME_GRACE: TimeDelta = TimeDelta::seconds(60);
/// Due ticks counted one by one at most (for the `missed` figure after a long downtime of a
/// frequent cron schedule); beyond it the figure is a lower bound.
const MAX_COUNTED: u64 = 10_000;

/// What happens to ticks that fell due while no scheduler ran them (all instances down, or the
/// store unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Missed {
    /// Missed ticks submit nothing; the latest one still runs when it is at most
    /// [`ON_TIME_GRACE`] late; the schedule carries on with the next tick in the future.
    #[default]
    Skip,
    /// The most recent `catchUpLimit` due ticks are submitted (oldest first), older ones are
    /// skipped; then the schedule carries on.
    CatchUp,
}

impl Missed {
    /// The stored and shown form.
    pub fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::CatchUp => "catchUp",
        }
    }

    /// The inverse of `as_str`.
    pub fn parse(raw: &str) -> Option<Missed> {
        match raw {
            "skip" => Some(Missed::Skip),
            "catchUp" => Some(Missed::CatchUp),
            _ => None,
        }
    }
}

/// The body of `PUT /api/v1/schedules/{name}` and a `[schedules.<name>]` table of the config
/// file. Unknown fields are refused.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(examples(json!({"everyMs": 60000, "task": {"domain": "noop", "action": "report"}})))]
pub struct ScheduleInput {
    /// A cron expression: 5 fields (minute granularity) or 6 (with seconds first); POSIX
    /// weekdays (0 or 7 Sunday), names (`MON`, `JAN`), `L`, `#`, `W`, `@hourly` and the like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Or: a tick every this many ms (at least [`MIN_EVERY_MS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    /// IANA time zone of the cron expression (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The task each tick submits (`runAt` and `idempotencyKey` are set by the scheduler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskInput>,
    /// Paused schedules submit nothing (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// The missed-tick policy (default `skip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<Missed>,
    /// With `catchUp`: how many of the most recent missed ticks are submitted (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_limit: Option<u32>,
}

/// A refused field of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScheduleError {
    /// The field as the caller wrote it (`cron`, `task.maxAttempts`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

pub(crate) fn refuse(field: &str, message: impl Into<String>) -> ScheduleError {
    ScheduleError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// When a schedule ticks.
#[derive(Debug, Clone)]
pub enum Timing {
    /// Matches of a cron expression in a time zone.
    Cron {
        /// The expression as given (trimmed).
        expr: String,
        /// The parsed expression.
        cron: Box<Cron>,
        /// Its time zone.
        tz: chrono_tz::Tz,
    },
    /// Multiples of `ms` since the Unix epoch.
    Every {
        /// The period in ms.
        ms: u64,
    },
}

impl Timing {
    /// Validates the timing fields: exactly one of `cron` and `everyMs`.
    pub fn parse(
        cron: Option<&str>,
        every_ms: Option<u64>,
        timezone: Option<&str>,
    ) -> Result<Timing, ScheduleError> {
        let tz = match timezone {
            None => chrono_tz::Tz::UTC,
            Some(raw) => chrono_tz::Tz::from_str(raw.trim()).map_err(|_| {
                refuse(
                    "timezone",
                    format!("{raw:?} is not a known IANA time zone (such as UTC or Europe/Paris)"),
                )
            })?,
        };
        match (cron, every_ms) {
            (Some(_), Some(_)) => Err(refuse("cron", "give either cron or everyMs, not both")),
            (None, None) => Err(refuse(
                "cron",
                "one of cron (an expression) or everyMs (a period) is required",
            )),
            (None, Some(ms)) => {
                if timezone.is_some() {
                    return Err(refuse(
                        "timezone",
                        "only applies to cron (everyMs ticks are multiples of everyMs since the \
                         Unix epoch)",
                    ));
                }
                if !(MIN_EVERY_MS..=MAX_EVERY_MS).contains(&ms) {
                    return Err(refuse(
                        "everyMs",
                        format!("must be from {MIN_EVERY_MS} to {MAX_EVERY_MS} (got {ms})"),
                    ));
                }
                Ok(Timing::Every { ms })
            }
            (Some(raw), None) => {
                let expr = raw.trim();
                let fields = expr.split_whitespace().count();
                if !expr.starts_with('@') && !(5..=6).contains(&fields) {
                    return Err(refuse(
                        "cron",
                        format!(
                            "{raw:?} has {fields} fields; expected 5 (minute hour day month \
                             weekday) or 6 (with seconds first)"
                        ),
                    ));
                }
                let parsed = CronParser::builder()
                    .seconds(Seconds::Optional)
                    .year(Year::Disallowed)
                    .build()
                    .parse(expr)
                    .map_err(|e| {
                        refuse("cron", format!("{raw:?} is not a cron expression: {e}"))
                    })?;
                let timing = Timing::Cron {
                    expr: expr.to_string(),
                    cron: Box::new(parsed),
                    tz,
                };
                if timing.next_after(crate::clock::now()).is_none() {
                    return Err(refuse("cron", format!("{raw:?} never matches")));
                }
                Ok(timing)
            }
        }
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Every { ms } => {
                let ms = *ms as i64;
                let k = t.timestamp_millis().div_euclid(ms) + 1;
                DateTime::from_timestamp_millis(k.checked_mul(ms)?)
            }
            Timing::Cron { cron, tz, .. } => {
                let mut from = t;
                // Whole seconds: croner may start from `t` truncated to the second.
                for _ in 0..3 {
                    let next = cron
                        .find_next_occurrence(&from.with_timezone(tz), false)
                        .ok()?
                        .with_timezone(&Utc);
                    if next > t {
                        return Some(next);
                    }
                    from = next;
                }
                None
            }
        }
    }

    /// The latest tick at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Every { ms } => {
                let ms = *ms as i64;
                let k = t.timestamp_millis().div_euclid(ms);
                DateTime::from_timestamp_millis(k.checked_mul(ms)?)
            }
            Timing::Cron { cron, tz, .. } => {
                let prev = cron
                    .find_previous_occurrence(&t.with_timezone(tz), true)
                    .ok()?
                    .with_timezone(&Utc);
                if prev <= t {
                    Some(prev)
                } else {
                    self.before(prev)
                }
            }
        }
    }

    /// The latest tick strictly before `t`.
    fn before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Every { .. } => self.latest_at_or_before(t - TimeDelta::milliseconds(1)),
            Timing::Cron { cron, tz, .. } => {
                let prev = cron
                    .find_previous_occurrence(&t.with_timezone(tz), false)
                    .ok()?
                    .with_timezone(&Utc);
                (prev < t).then_some(prev)
            }
        }
    }

    /// Ticks in `[from, to]` (both on the grid), counted up to [`MAX_COUNTED`].
    fn count(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
        if to < from {
            return 0;
        }
        match self {
            Timing::Every { ms } => {
                let span = (to - from).num_milliseconds().max(0) as u64;
                span / ms + 1
            }
            Timing::Cron { .. } => {
                let mut n = 1;
                let mut t = to;
                while n < MAX_COUNTED {
                    match self.before(t) {
                        Some(p) if p >= from => {
                            n += 1;
                            t = p;
                        }
                        _ => break,
                    }
                }
                n
            }
        }
    }
}

/// What one scheduler pass does with a schedule whose tick `due` has come.
#[derive(Debug, Clone, PartialEq)]
pub struct TickPlan {
    /// Ticks to submit, oldest first.
    pub run: Vec<DateTime<Utc>>,
    /// Due ticks that are not submitted (the missed-tick policy).
    pub missed: u64,
    /// The first tick after now: the schedule's new `next_run_at`.
    pub next: Option<DateTime<Utc>>,
}

/// A validated schedule definition.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// Its name.
    pub name: Name,
    /// When it ticks.
    pub timing: Timing,
    /// The task each tick submits, as given (validated).
    pub task: TaskInput,
    /// Whether it is paused.
    pub paused: bool,
    /// The missed-tick policy.
    pub missed: Missed,
    /// With `catchUp`, the most recent due ticks submitted at most.
    pub catch_up_limit: u32,
}

impl ScheduleInput {
    /// Validates the input; `now` is used to check the task (as if submitted now).
    pub fn into_spec(self, name: Name, now: DateTime<Utc>) -> Result<ScheduleSpec, ScheduleError> {
        let timing = Timing::parse(
            self.cron.as_deref(),
            self.every_ms,
            self.timezone.as_deref(),
        )?;
        let task = self
            .task
            .ok_or_else(|| refuse("task", "is required (the task each tick submits)"))?;
        if task.run_at.is_some() {
            return Err(refuse(
                "task.runAt",
                "is set by the scheduler (each task runs at its tick)",
            ));
        }
        if task.idempotency_key.is_some() {
            return Err(refuse(
                "task.idempotencyKey",
                "is set by the scheduler (schedule:<name>:<tick>)",
            ));
        }
        let missed = self.missed.unwrap_or_default();
        let catch_up_limit = self.catch_up_limit.unwrap_or(DEFAULT_CATCH_UP_LIMIT);
        if !(1..=MAX_CATCH_UP_LIMIT).contains(&catch_up_limit) {
            return Err(refuse(
                "catchUpLimit",
                format!("must be from 1 to {MAX_CATCH_UP_LIMIT}"),
            ));
        }
        if self.catch_up_limit.is_some() && missed != Missed::CatchUp {
            return Err(refuse(
                "catchUpLimit",
                "only applies with \"missed\": \"catchUp\"",
            ));
        }
        let spec = ScheduleSpec {
            name,
            timing,
            task,
            paused: self.paused.unwrap_or(false),
            missed,
            catch_up_limit,
        };
        // The task is checked now, exactly as each tick will build it.
        spec.new_task(now, "sched-check", now)?;
        Ok(spec)
    }
}

impl ScheduleSpec {
    /// The idempotency key of the task of `tick`.
    pub fn tick_key(&self, tick: DateTime<Utc>) -> String {
        tick_key(self.name.as_str(), tick)
    }

    /// The task of `tick`, validated like a submission (`TaskInput::validate`), with the
    /// tick's idempotency key.
    pub fn new_task(
        &self,
        tick: DateTime<Utc>,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<NewTask, ScheduleError> {
        let mut input = self.task.clone();
        input.idempotency_key = Some(self.tick_key(tick));
        input
            .validate("task.", correlation_id, now)
            .map_err(|e| ScheduleError {
                field: e.field,
                message: e.message,
            })
    }

    /// Whether the tasks ask for learned parameters (`None`: as the domain's agent says).
    pub fn use_learned(&self) -> Option<bool> {
        self.task.use_learned
    }

    /// What to do at `now` with the due tick `due` (see [`Missed`]).
    pub fn plan(&self, due: DateTime<Utc>, now: DateTime<Utc>) -> TickPlan {
        let next = self.timing.next_after(now);
        let latest = match self.timing.latest_at_or_before(now) {
            Some(l) if l >= due => l,
            // `due` is later than every tick up to now (it was not on the grid): nothing due.
            _ => {
                return TickPlan {
                    run: Vec::new(),
                    missed: 0,
                    next,
                }
            }
        };
        let limit = match self.missed {
            Missed::Skip => 1,
            Missed::CatchUp => self.catch_up_limit as usize,
        };
        let mut run = Vec::with_capacity(limit.min(16));
        let mut t = Some(latest);
        while let Some(tick) = t.filter(|t| *t >= due) {
            if run.len() >= limit {
                break;
            }
            run.push(tick);
            t = self.timing.before(tick);
        }
        run.reverse();
        if self.missed == Missed::Skip && now - latest > ON_TIME_GRACE {
            run.clear();
        }
        let total = self.timing.count(due, latest);
        TickPlan {
            missed: total.saturating_sub(run.len() as u64),
            run,
            next,
        }
    }

    /// `n` ticks from `first` on (`first` included), for showing.
    pub fn upcoming(&self, first: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = vec![first];
        while out.len() < n {
            match out.last().and_then(|t| self.timing.next_after(*t)) {
                Some(t) => out.push(t),
                None => break,
            }
        }
        out
    }
}

/// The idempotency key of the task of a schedule's tick.
pub fn tick_key(name: &str, tick: DateTime<Utc>) -> String {
    format!(
        "schedule:{name}:{}",
        tick.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

/// A schedule as stored: its definition and where it is.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The definition.
    pub spec: ScheduleSpec,
    /// The next tick to submit; `None` while paused.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The latest tick submitted.
    pub last_run_at: Option<DateTime<Utc>>,
    /// The task of that tick.
    pub last_task_id: Option<String>,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When it was last changed by a person (not by ticks).
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn spec(body: Value) -> Result<ScheduleSpec, ScheduleError> {
        let input: ScheduleInput = serde_json::from_value(body).unwrap();
        input.into_spec(Name::parse("s").unwrap(), crate::clock::now())
    }

    fn err(body: Value) -> String {
        spec(body).unwrap_err().to_string()
    }

    #[test]
    fn refusals_name_the_field() {
        let task = json!({"domain": "noop", "action": "a"});
        assert!(err(json!({"task": task})).starts_with("cron: one of cron"));
        assert!(
            err(json!({"cron": "* * * * *", "everyMs": 1000, "task": task}))
                .starts_with("cron: give either")
        );
        assert!(
            err(json!({"everyMs": 999, "task": task})).starts_with("everyMs: must be from 1000")
        );
        assert!(err(json!({"cron": "* * * *", "task": task}))
            .starts_with("cron: \"* * * *\" has 4 fields"));
        assert!(err(json!({"cron": "61 * * * *", "task": task}))
            .starts_with("cron: \"61 * * * *\" is not"));
        assert!(
            err(json!({"cron": "* * * * *", "timezone": "Mars/Base", "task": task}))
                .starts_with("timezone: \"Mars/Base\" is not a known")
        );
        assert!(err(json!({"everyMs": 1000})).starts_with("task: is required"));
        assert!(err(json!({"everyMs": 1000, "task": {"domain": "noop"}}))
            .starts_with("task.action: is required"));
        assert!(err(
            json!({"everyMs": 1000, "task": {"domain": "noop", "action": "a", "maxAttempts": 0}})
        )
        .starts_with("task.maxAttempts: must be"));
        assert!(err(json!({"everyMs": 1000, "task": {"domain": "noop", "action": "a", "runAt": "2030-01-01T00:00:00Z"}}))
            .starts_with("task.runAt:"));
        assert!(err(
            json!({"everyMs": 1000, "task": task, "missed": "catchUp", "catchUpLimit": 0})
        )
        .starts_with("catchUpLimit: must be"));
        assert!(
            err(json!({"everyMs": 1000, "task": task, "catchUpLimit": 3}))
                .starts_with("catchUpLimit: only applies")
        );
        assert!(err(json!({"cron": "0 0 30 2 *", "task": task})).contains("never matches"));
        assert!(
            err(json!({"everyMs": 1000, "timezone": "UTC", "task": task}))
                .starts_with("timezone: only applies to cron")
        );
    }

    #[test]
    fn every_ms_ticks_on_multiples_since_the_epoch() {
        let timing = Timing::parse(None, Some(60_000), None).unwrap();
        assert_eq!(
            timing.next_after(t("2026-01-01T10:00:00Z")),
            Some(t("2026-01-01T10:01:00Z"))
        );
        assert_eq!(
            timing.next_after(t("2026-01-01T10:00:59.999Z")),
            Some(t("2026-01-01T10:01:00Z"))
        );
        assert_eq!(
            timing.latest_at_or_before(t("2026-01-01T10:00:00Z")),
            Some(t("2026-01-01T10:00:00Z"))
        );
        assert_eq!(
            timing.before(t("2026-01-01T10:00:00Z")),
            Some(t("2026-01-01T09:59:00Z"))
        );
    }

    #[test]
    fn cron_uses_posix_weekdays_seconds_and_time_zones() {
        // 1-5 is Monday to Friday. 2026-01-02 is a Friday.
        let timing = Timing::parse(Some("0 9 * * 1-5"), None, None).unwrap();
        assert_eq!(
            timing.next_after(t("2026-01-02T09:00:00Z")),
            Some(t("2026-01-05T09:00:00Z"))
        );
        assert_eq!(
            timing.latest_at_or_before(t("2026-01-04T12:00:00.5Z")),
            Some(t("2026-01-02T09:00:00Z"))
        );
        // Six fields: seconds first; sub-second starting points.
        let timing = Timing::parse(Some("*/10 * * * * *"), None, None).unwrap();
        assert_eq!(
            timing.next_after(t("2026-01-01T00:00:00.300Z")),
            Some(t("2026-01-01T00:00:10Z"))
        );
        assert_eq!(
            timing.latest_at_or_before(t("2026-01-01T00:00:09.900Z")),
            Some(t("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            timing.before(t("2026-01-01T00:00:00Z")),
            Some(t("2025-12-31T23:59:50Z"))
        );
        // 09:00 in Paris is 08:00 UTC in winter.
        let timing = Timing::parse(Some("0 9 * * *"), None, Some("Europe/Paris")).unwrap();
        assert_eq!(
            timing.next_after(t("2026-01-01T00:00:00Z")),
            Some(t("2026-01-01T08:00:00Z"))
        );
        assert!(Timing::parse(Some("@hourly"), None, None).is_ok());
    }

    #[test]
    fn dst_changes_tick_once() {
        // 02:30 in Paris: skipped on 2026-03-29 (ticks at the change, 03:00 CEST), twice on
        // 2026-10-25 (ticks once, the first time). Forward and backward walks agree.
        let timing = Timing::parse(Some("30 2 * * *"), None, Some("Europe/Paris")).unwrap();
        let walk = |from: &str| {
            let mut x = t(from);
            (0..4)
                .map(|_| {
                    x = timing.next_after(x).unwrap();
                    x
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            walk("2026-03-27T12:00:00Z"),
            [
                t("2026-03-28T01:30:00Z"),
                t("2026-03-29T01:00:00Z"),
                t("2026-03-30T00:30:00Z"),
                t("2026-03-31T00:30:00Z")
            ]
        );
        let autumn = walk("2026-10-23T12:00:00Z");
        assert_eq!(
            autumn,
            [
                t("2026-10-24T00:30:00Z"),
                t("2026-10-25T00:30:00Z"),
                t("2026-10-26T01:30:00Z"),
                t("2026-10-27T01:30:00Z")
            ]
        );
        let mut back = Vec::new();
        let mut x = t("2026-10-27T12:00:00Z");
        for _ in 0..4 {
            x = timing
                .latest_at_or_before(x - TimeDelta::seconds(1))
                .unwrap();
            back.push(x);
        }
        back.reverse();
        assert_eq!(back, autumn);
    }

    fn with(missed: Value) -> ScheduleSpec {
        let mut body = json!({"everyMs": 60_000, "task": {"domain": "noop", "action": "a"}});
        body.as_object_mut()
            .unwrap()
            .extend(missed.as_object().unwrap().clone());
        spec(body).unwrap()
    }

    #[test]
    fn plans_follow_the_missed_tick_policy() {
        let skip = with(json!({}));
        // On time: the due tick runs.
        let p = skip.plan(t("2026-01-01T10:00:00Z"), t("2026-01-01T10:00:00.200Z"));
        assert_eq!(p.run, [t("2026-01-01T10:00:00Z")]);
        assert_eq!((p.missed, p.next), (0, Some(t("2026-01-01T10:01:00Z"))));
        // Down for ten minutes, back 30 s after a tick: that tick runs, nine are missed.
        let p = skip.plan(t("2026-01-01T10:00:00Z"), t("2026-01-01T10:09:30Z"));
        assert_eq!(p.run, [t("2026-01-01T10:09:00Z")]);
        assert_eq!(p.missed, 9);
        assert_eq!(p.next, Some(t("2026-01-01T10:10:00Z")));
        // Back more than the grace after the latest tick: nothing runs.
        let hourly =
            spec(json!({"cron": "0 * * * *", "task": {"domain": "noop", "action": "a"}})).unwrap();
        let p = hourly.plan(t("2026-01-01T05:00:00Z"), t("2026-01-01T10:30:00Z"));
        assert!(p.run.is_empty());
        assert_eq!(p.missed, 6);
        assert_eq!(p.next, Some(t("2026-01-01T11:00:00Z")));

        let catch_up = with(json!({"missed": "catchUp", "catchUpLimit": 3}));
        let p = catch_up.plan(t("2026-01-01T10:00:00Z"), t("2026-01-01T10:09:30Z"));
        assert_eq!(
            p.run,
            [
                t("2026-01-01T10:07:00Z"),
                t("2026-01-01T10:08:00Z"),
                t("2026-01-01T10:09:00Z")
            ]
        );
        assert_eq!(p.missed, 7);
        let p = catch_up.plan(t("2026-01-01T10:08:00Z"), t("2026-01-01T10:09:30Z"));
        assert_eq!(p.run.len(), 2);
        assert_eq!(p.missed, 0);
        // A due time that is not on the grid yet: nothing.
        let p = catch_up.plan(t("2026-01-01T10:09:40Z"), t("2026-01-01T10:09:30Z"));
        assert!(p.run.is_empty());
    }

    #[test]
    fn keys_and_rows() {
        let s = with(json!({}));
        assert_eq!(
            s.tick_key(t("2026-01-01T10:00:00Z")),
            "schedule:s:2026-01-01T10:00:00.000Z"
        );
        let row = s.to_row(t("2026-01-01T10:00:00.5Z"));
        assert_eq!(row.next_run_at, Some(t("2026-01-01T10:01:00Z")));
        assert_eq!(row.task.0, json!({"domain": "noop", "action": "a"}));
        let back = Schedule::from_row(row).unwrap();
        assert_eq!(back.spec.missed, Missed::Skip);
        assert_eq!(
            s.upcoming(t("2026-01-01T10:01:00Z"), 3),
            [
                t("2026-01-01T10:01:00Z"),
                t("2026-01-01T10:02:00Z"),
                t("2026-01-01T10:03:00Z")
            ]
        );
    }
}
