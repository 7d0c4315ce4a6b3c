//! The health monitor (`JARVIS_HEALTH_*`).

use std::time::Duration;

use super::setting::{settings, Default, Kind, Reader, Setting};
use super::ConfigError;

settings! {
    /// `JARVIS_HEALTH_MONITOR`.
    MONITOR = Setting {
        var: "JARVIS_HEALTH_MONITOR",
        kind: Kind::Bool,
        default: Default::Value("true"),
        view: "health.enabled",
        help: "whether this instance checks services",
        ..Setting::PLAIN
    };
    /// `JARVIS_HEALTH_CONCURRENCY`.
    CONCURRENCY = Setting {
        var: "JARVIS_HEALTH_CONCURRENCY",
        kind: Kind::Int { min: 1, max: 100_000 },
        default: Default::Value("1024"),
        view: "health.concurrency",
        help: "health checks in flight at once, at most",
        ..Setting::PLAIN
    };
    /// `JARVIS_HEALTH_ROUND_MS`.
    ROUND_MS = Setting {
        var: "JARVIS_HEALTH_ROUND_MS",
        kind: Kind::Int { min: 100, max: 3_600_000 },
        default: Default::Value("5000"),
        view: "health.round",
        help: "length of a monitoring round (one summary line, one `RoundReport`)",
        ..Setting::PLAIN
    };
    /// `JARVIS_HEALTH_RELOAD_MS`.
    RELOAD_MS = Setting {
        var: "JARVIS_HEALTH_RELOAD_MS",
        kind: Kind::Int { min: 100, max: 3_600_000 },
        default: Default::Value("10000"),
        view: "health.reload",
        help: "how often the service list is re-read from the store (changes through this \
               instance's API apply at once)",
        ..Setting::PLAIN
    };
    /// `JARVIS_HEALTH_HISTORY_RETENTION_HOURS`.
    HISTORY_RETENTION_HOURS = Setting {
        var: "JARVIS_HEALTH_HISTORY_RETENTION_HOURS",
        kind: Kind::Int { min: 0, max: 24 * 366 },
        default: Default::Value("24"),
        view: "health.historyRetentionHours",
        help: "how long check results are kept (0: not kept)",
        ..Setting::PLAIN
    };
    /// `JARVIS_HEALTH_HISTORY_FLUSH_MS`.
    HISTORY_FLUSH_MS = Setting {
        var: "JARVIS_HEALTH_HISTORY_FLUSH_MS",
        kind: Kind::Int { min: 10, max: 60_000 },
        default: Default::Value("1000"),
        view: "health.historyFlush",
        help: "the longest a check result waits before it is written",
        ..Setting::PLAIN
    };
    /// `JARVIS_HEALTH_UPTIME_SYNC_MS`.
    UPTIME_SYNC_MS = Setting {
        var: "JARVIS_HEALTH_UPTIME_SYNC_MS",
        kind: Kind::Int { min: 50, max: 3_600_000 },
        default: Default::Value("15000"),
        view: "health.uptimeSync",
        help: "how often uptime counts (5-minute and 1-hour buckets) are added to the store, and \
               with PostgreSQL the other instances' counts read back",
        ..Setting::PLAIN
    };
    /// `JARVIS_PREDICT_HORIZON_MS`.
    PREDICT_HORIZON_MS = Setting {
        var: "JARVIS_PREDICT_HORIZON_MS",
        kind: Kind::Int { min: 1_000, max: 3_600_000 },
        default: Default::Value("120000"),
        view: "health.predictHorizon",
        help: "how far ahead the trip forecast of each service looks: it warns when a circuit \
               trip within this time is more likely than not (bench/predict/README.md)",
        ..Setting::PLAIN
    };
}

/// Settings of the health monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Whether this instance checks services at all.
    pub enabled: bool,
    /// Checks in flight at once, at most.
    pub concurrency: usize,
    /// Length of a monitoring round (one summary, one log line).
    pub round: Duration,
    /// How often the service list is re-read from the store.
    pub reload: Duration,
    /// How long check results are kept (0: not kept).
    pub history_retention_hours: u32,
    /// The longest a result waits before it is written.
    pub history_flush: Duration,
    /// How often uptime counts are added to the store (and, with PostgreSQL, the other
    /// instances' counts read back).
    pub uptime_sync: Duration,
    /// How far ahead each service's trip forecast looks.
    pub predict_horizon: Duration,
}

impl HealthConfig {
    /// Reads the group.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<HealthConfig, ConfigError> {
        Ok(HealthConfig {
            enabled: r.get(&MONITOR)?,
            concurrency: r.get(&CONCURRENCY)?,
            round: r.get(&ROUND_MS)?,
            reload: r.get(&RELOAD_MS)?,
            history_retention_hours: r.get(&HISTORY_RETENTION_HOURS)?,
            history_flush: r.get(&HISTORY_FLUSH_MS)?,
            uptime_sync: r.get(&UPTIME_SYNC_MS)?,
            predict_horizon: r.get(&PREDICT_HORIZON_MS)?,
        })
    }
}

impl std::default::Default for HealthConfig {
    fn default() -> Self {
        HealthConfig::read(&mut Reader::defaults()).expect("the declared defaults are valid")
    }
}
