//! Recurring tasks: schedules that submit a task at every tick of a cron expression (with a
//! time zone) or of a fixed period, exactly once per tick across all instances.
//!
//! - [`spec`]: the definition ([`ScheduleInput`] validated into a [`ScheduleSpec`]), tick
//!   arithmetic ([`Timing`]), the missed-tick policy ([`Missed`]) and what one pass does with a
//!   due schedule ([`TickPlan`]).
//! - [`scheduler`]: the loop every instance runs ([`Scheduler`]): sleep until the earliest
//!   tick, submit it with an idempotency key derived from the tick, claim it with a
//!   compare-and-swap on the schedule's `next_run_at`.
//! - [`cli`]: `jarvis schedules …` against a running server.
//!
//! Schedules come from `PUT /api/v1/schedules/{name}` and from `[schedules.<name>]` tables of
//! the config file (written to the store at start). They are kept in the store
//! (`store::schedules`), so every instance sees the same ones.

mod rows;
pub mod scheduler;
pub use crate::model::schedule as spec;

pub use scheduler::Scheduler;
pub use spec::{Missed, Schedule, ScheduleError, ScheduleInput, ScheduleSpec, TickPlan, Timing};
