//! Jarvis: a control plane for autonomous agents and the services they depend on.
//!
//! Code map (one line per module; `ARCHITECTURE.md` has the bird's-eye view):
//!
//! - [`agents`]: HTTP agents, one per domain.
//! - [`alerts`]: alert rules (circuit opened, predicted trip, failure rate, SLO burn rates),
//!   episodes and silences in the store, webhook notifications from an outbox.
//! - [`analytics`]: time series of task runs, the overview, breaker transitions and service
//!   uptime/latency, all from rollups (`/api/v1/analytics/*`).
//! - [`auth`]: API tokens with roles (`read`, `operate`, `admin`), from the environment, the
//!   config file and a tokens file, kept as hashes and reloaded on SIGHUP and a timer.
//! - [`app`]: builds the application from a [`config::Config`] and runs it with graceful shutdown.
//! - [`api`]: the HTTP API (routes, envelope, auth and correlation middleware). Only this module
//!   knows about HTTP and JSON shapes; [`api::types`] holds the views that the CLI subcommands
//!   read back.
//! - [`breakers`]: the registry of named circuit breakers (the `jarvis-breaker` library) and
//!   their metrics.
//! - [`cli`]: the command line (`serve`, `migrate`, `config check`, `health`, `healthcheck`, `tasks`, …).
//! - [`client`]: a small client of a running Jarvis's API, for CLI subcommands.
//! - [`clock`]: injected time (the breaker crate's `Clock`), so engines' decisions are tested
//!   on a manual clock.
//! - [`dashboard`]: the web dashboard's embedded files and sign-in sessions (its routes are
//!   `api::dashboard`).
//! - [`config`]: environment variables and `jarvis.toml`, validated once at start.
//! - [`history`]: execution records, the batched recorder with its spool, rollups, stats.
//! - [`correlation`]: correlation IDs, taken from callers or generated, carried across work.
//! - [`emf`]: CloudWatch Embedded Metric Format lines in the log (the alarms' metrics).
//! - [`files`]: the files Jarvis writes are its own user's only (`0600`, directories `0700`).
//! - [`health`]: monitored services: definitions, checks through breakers, the scheduler,
//!   aggregation, history and per-round reports.
//! - [`learning`]: the learner state per domain/action shared through the store,
//!   recommendations, learned parameters and timeouts (`useLearned`), timeout warnings.
//! - [`model`]: the plain domain types the store keeps (services, check results, agents,
//!   tasks, execution records, rollups); they depend on nothing above them.
//! - [`metrics`]: the Prometheus registry of an instance (`GET /metrics`).
//! - [`schedules`]: recurring tasks (cron with a time zone, or a period), one task per tick
//!   across all instances, the missed-tick policy, `jarvis schedules`.
//! - [`resolver`]: DNS for outbound calls, without link-local and cloud metadata addresses.
//! - [`names`]: validated names of services, agents, breakers, domains and actions.
//! - [`secrets`]: secrets read from AWS Secrets Manager at start (`JARVIS_SECRETS_PREFIX`).
//! - [`store`]: the storage trait and its SQLite (embedded) and PostgreSQL (shared) backends.
//! - [`tasks`]: the durable queue, workers, retries, leases, agents (built-in and HTTP).
//! - [`telemetry`]: JSON log lines with a correlation ID on every line, to stdout and a file.
//! - [`timeparse`]: the `since`/`until` a caller gives (RFC 3339, or a date), for the API and
//!   the CLI alike.

/// Writes a line to standard error, like `eprintln!`, but never panics: a message that cannot
/// be written (stderr a pipe nobody reads any more) is dropped instead of ending the process
/// with a panic.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod agents;
pub mod ai;
pub mod alerts;
pub mod analytics;
pub mod api;
pub mod app;
pub mod auth;
pub mod breakers;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod correlation;
pub mod dashboard;
pub mod emf;
pub mod files;
pub mod health;
pub mod history;
pub mod learning;
pub mod metrics;
pub mod model;
pub mod names;
pub mod resolver;
pub mod schedules;
pub mod secrets;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod timeparse;
pub mod trace;

#[cfg(test)]
mod props;
