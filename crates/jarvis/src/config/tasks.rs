//! The task queue, its workers and the execution history.

use super::setting::{settings, Default, FileKey, Kind, Reader, Setting};
use super::ConfigError;

settings! {
    /// `JARVIS_CONCURRENCY`.
    CONCURRENCY = Setting {
        var: "JARVIS_CONCURRENCY",
        kind: Kind::Int { min: 1, max: 10_000 },
        default: Default::Value("10"),
        file: Some(FileKey { table: "server", key: "concurrency", get: |f| f.server.concurrency.map(Into::into) }),
        view: "concurrency",
        help: "task attempts run at once by this instance",
        ..Setting::PLAIN
    };
    /// `JARVIS_WORKERS_ENABLED`.
    WORKERS_ENABLED = Setting {
        var: "JARVIS_WORKERS_ENABLED",
        kind: Kind::Bool,
        default: Default::Value("true"),
        view: "tasks.workersEnabled",
        help: "`false`: this instance only serves the API, claims no task",
        ..Setting::PLAIN
    };
    /// `JARVIS_TASK_LEASE_MS`.
    LEASE_MS = Setting {
        var: "JARVIS_TASK_LEASE_MS",
        kind: Kind::Int { min: 300, max: 3_600_000 },
        default: Default::Value("30000"),
        view: "tasks.leaseMs",
        help: "how long a claimed task is held without renewal (renewed every third); a task \
               whose worker died runs again after it",
        ..Setting::PLAIN
    };
    /// `JARVIS_QUEUE_PREFETCH`.
    PREFETCH = Setting {
        var: "JARVIS_QUEUE_PREFETCH",
        kind: Kind::Int { min: 0, max: 10_000 },
        default: Default::Value("1000"),
        view: "tasks.prefetch",
        help: "tasks claimed ahead of free workers (bigger batches: faster on a backlog; smaller: \
               fairer priorities across instances)",
        ..Setting::PLAIN
    };
    /// `JARVIS_QUEUE_POLL_MS`.
    POLL_MS = Setting {
        var: "JARVIS_QUEUE_POLL_MS",
        kind: Kind::Int { min: 10, max: 60_000 },
        default: Default::Value("1000"),
        view: "tasks.pollMs",
        help: "longest idle wait between looks at the queue (LISTEN/NOTIFY and local submissions \
               wake workers at once)",
        ..Setting::PLAIN
    };
    /// `JARVIS_TASK_RETRY_BASE_MS`.
    RETRY_BASE_MS = Setting {
        var: "JARVIS_TASK_RETRY_BASE_MS",
        kind: Kind::Int { min: 1, max: 3_600_000 },
        default: Default::Value("1000"),
        view: "tasks.retryBaseMs",
        help: "retry backoff before the second attempt: base × 2^(attempt−1), capped by \
               `JARVIS_TASK_RETRY_MAX_MS`, half of it random (equal jitter)",
        ..Setting::PLAIN
    };
    /// `JARVIS_TASK_RETRY_MAX_MS`.
    RETRY_MAX_MS = Setting {
        var: "JARVIS_TASK_RETRY_MAX_MS",
        kind: Kind::Int { min: 1, max: 86_400_000 },
        default: Default::Value("300000"),
        view: "tasks.retryMaxMs",
        help: "longest retry backoff; at least `JARVIS_TASK_RETRY_BASE_MS`",
        ..Setting::PLAIN
    };
    /// `JARVIS_HISTORY_RETENTION_DAYS`.
    HISTORY_RETENTION_DAYS = Setting {
        var: "JARVIS_HISTORY_RETENTION_DAYS",
        kind: Kind::Int { min: 0, max: 36_500 },
        default: Default::Value("90"),
        view: "tasks.historyRetentionDays",
        help: "execution records older than this are deleted, hourly (0 keeps them)",
        ..Setting::PLAIN
    };
}

/// Settings of the task queue, workers and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSettings {
    /// Task attempts run at once by this instance.
    pub concurrency: u32,
    /// Whether this instance runs tasks (false: API only).
    pub workers_enabled: bool,
    /// How long a claim holds without renewal; a task whose worker died is claimed again after
    /// this. Renewed every third of it.
    pub lease_ms: u64,
    /// Tasks claimed ahead of free workers (one claim fetches a batch; higher is faster on a
    /// backlog, lower is fairer between instances and priorities).
    pub prefetch: u32,
    /// Longest idle wait between looks at the queue (wake-ups by `LISTEN/NOTIFY` and by the
    /// instance's own submissions are immediate).
    pub poll_ms: u64,
    /// Backoff before the second attempt; doubles per attempt.
    pub retry_base_ms: u64,
    /// Longest backoff.
    pub retry_max_ms: u64,
    /// Execution records older than this are deleted (0: keep).
    pub history_retention_days: u32,
}

impl TaskSettings {
    /// Reads the group; the longest backoff may not be shorter than the first.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<TaskSettings, ConfigError> {
        let tasks = TaskSettings {
            concurrency: r.get(&CONCURRENCY)?,
            workers_enabled: r.get(&WORKERS_ENABLED)?,
            lease_ms: r.get(&LEASE_MS)?,
            prefetch: r.get(&PREFETCH)?,
            poll_ms: r.get(&POLL_MS)?,
            retry_base_ms: r.get(&RETRY_BASE_MS)?,
            retry_max_ms: r.get(&RETRY_MAX_MS)?,
            history_retention_days: r.get(&HISTORY_RETENTION_DAYS)?,
        };
        if tasks.retry_max_ms < tasks.retry_base_ms {
            return Err(ConfigError::Invalid {
                var: RETRY_MAX_MS.var.into(),
                value: format!("{:?}", tasks.retry_max_ms.to_string()),
                expected: format!("at least {} ({})", RETRY_BASE_MS.var, tasks.retry_base_ms),
            });
        }
        Ok(tasks)
    }
}

impl std::default::Default for TaskSettings {
    fn default() -> Self {
        TaskSettings::read(&mut Reader::defaults()).expect("the declared defaults are valid")
    }
}
