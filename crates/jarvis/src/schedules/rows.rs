//! A schedule to and from its store row: the row keeps the definition as given (the task's
//! JSON without its null members) and where the schedule is; reading it back validates it
//! again.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::spec::{refuse, Missed, Schedule, ScheduleError, ScheduleSpec, Timing};
use crate::model::task_input::TaskInput;
use crate::names::Name;
use crate::store::ScheduleRow;

impl ScheduleSpec {
    /// The row to store: `next_run_at` is the first tick after `now` (none while paused).
    pub fn to_row(&self, now: DateTime<Utc>) -> ScheduleRow {
        let (cron, every_ms, timezone) = match &self.timing {
            Timing::Cron { expr, tz, .. } => (Some(expr.clone()), None, tz.name().to_string()),
            Timing::Every { ms } => (None, Some(*ms as i64), "UTC".to_string()),
        };
        ScheduleRow {
            name: self.name.to_string(),
            cron,
            every_ms,
            timezone,
            task: sqlx::types::Json(compact(
                serde_json::to_value(&self.task).unwrap_or(Value::Null),
            )),
            paused: self.paused,
            missed: self.missed.as_str().to_string(),
            catch_up_limit: self.catch_up_limit as i32,
            next_run_at: if self.paused {
                None
            } else {
                self.timing.next_after(now)
            },
            last_run_at: None,
            last_task_id: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl Schedule {
    /// Reads a stored row back (validated again: a row is only trusted as far as it parses).
    pub fn from_row(row: ScheduleRow) -> Result<Schedule, ScheduleError> {
        let name = Name::parse(&row.name).map_err(|e| refuse("name", e.to_string()))?;
        let timing = Timing::parse(
            row.cron.as_deref(),
            row.every_ms.map(|v| v.max(0) as u64),
            row.cron.is_some().then_some(row.timezone.as_str()),
        )?;
        let task: TaskInput = serde_json::from_value(row.task.0)
            .map_err(|e| refuse("task", format!("stored task does not parse: {e}")))?;
        let missed = Missed::parse(&row.missed)
            .ok_or_else(|| refuse("missed", format!("unknown policy {:?}", row.missed)))?;
        Ok(Schedule {
            spec: ScheduleSpec {
                name,
                timing,
                task,
                paused: row.paused,
                missed,
                catch_up_limit: row.catch_up_limit.max(1) as u32,
            },
            next_run_at: row.next_run_at,
            last_run_at: row.last_run_at,
            last_task_id: row.last_task_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// An object without its null members (the stored task is what was given).
fn compact(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    }
}
