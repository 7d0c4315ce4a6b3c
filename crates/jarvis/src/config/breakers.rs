//! Circuit breakers: the defaults of every breaker and the shared-state settings.

use std::time::Duration;

use serde::Serialize;

use super::setting::{settings, Default, Kind, Reader, Setting};
use super::ConfigError;

settings! {
    /// `CIRCUIT_BREAKER_ENABLED`.
    ENABLED = Setting {
        var: "CIRCUIT_BREAKER_ENABLED",
        kind: Kind::Bool,
        default: Default::Value("true"),
        view: "circuitBreakers.enabled",
        help: "breakers on; off: every call passes, uncounted",
        ..Setting::PLAIN
    };
    /// `CIRCUIT_BREAKER_FAILURE_THRESHOLD` (also the range of `[breakers.<name>]
    /// failureThreshold`).
    FAILURE_THRESHOLD = Setting {
        var: "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
        kind: Kind::Int { min: 1, max: 1_000 },
        default: Default::Value("5"),
        view: "circuitBreakers.failureThreshold",
        help: "consecutive failures that open a circuit",
        ..Setting::PLAIN
    };
    /// `CIRCUIT_BREAKER_TIMEOUT_MS` (also the range of `[breakers.<name>] timeoutMs`).
    TIMEOUT_MS = Setting {
        var: "CIRCUIT_BREAKER_TIMEOUT_MS",
        kind: Kind::Int { min: 1, max: 86_400_000 },
        default: Default::Value("60000"),
        view: "circuitBreakers.timeoutMs",
        help: "how long a circuit stays open before a trial call",
        ..Setting::PLAIN
    };
    /// `JARVIS_BREAKER_QUORUM`.
    QUORUM = Setting {
        var: "JARVIS_BREAKER_QUORUM",
        kind: Kind::Int { min: 1, max: 1_000 },
        default: Default::Value("1"),
        view: "breakerQuorum",
        help: "shared breakers: distinct instances whose failures it takes to open a circuit for \
               all (raise it to 2+ when one bad node must not open circuits for the rest, e.g. a \
               node with a broken network path)",
        ..Setting::PLAIN
    };
    /// `JARVIS_BREAKER_LEASE_MS`.
    LEASE_MS = Setting {
        var: "JARVIS_BREAKER_LEASE_MS",
        kind: Kind::Int { min: 100, max: 3_600_000 },
        default: Default::Value("30000"),
        view: "breakerLeaseMs",
        help: "shared breakers: how long the instance running a half-open trial holds it; a \
               crashed holder blocks recovery at most this long",
        ..Setting::PLAIN
    };
    /// `JARVIS_BREAKER_RECONCILE_MS`.
    RECONCILE_MS = Setting {
        var: "JARVIS_BREAKER_RECONCILE_MS",
        kind: Kind::Int { min: 50, max: 3_600_000 },
        default: Default::Value("5000"),
        view: "breakerReconcileMs",
        help: "shared breakers: how often every breaker row is re-read (in case a notification \
               was lost)",
        ..Setting::PLAIN
    };
}

/// Defaults for every circuit breaker (the `CIRCUIT_BREAKER_*` variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerDefaults {
    /// `CIRCUIT_BREAKER_ENABLED`: when false every call passes through.
    pub enabled: bool,
    /// `CIRCUIT_BREAKER_FAILURE_THRESHOLD`: consecutive failures that open a circuit.
    pub failure_threshold: u32,
    /// `CIRCUIT_BREAKER_TIMEOUT_MS`: how long a circuit stays open before a trial call.
    pub timeout_ms: u64,
}

impl std::default::Default for BreakerDefaults {
    fn default() -> Self {
        BreakerSettings::default().defaults
    }
}

/// Everything about breakers: the defaults of each, and how instances share their state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// The defaults of every breaker (`[breakers.<name>]` in the config file overrides them).
    pub defaults: BreakerDefaults,
    /// Shared state: distinct instances whose failures open a shared circuit.
    pub quorum: u32,
    /// Shared state: how long a half-open trial lease lasts.
    pub lease: Duration,
    /// Shared state: how often every row is re-read.
    pub reconcile: Duration,
}

impl BreakerSettings {
    /// Reads the group.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<BreakerSettings, ConfigError> {
        Ok(BreakerSettings {
            defaults: BreakerDefaults {
                enabled: r.get(&ENABLED)?,
                failure_threshold: r.get(&FAILURE_THRESHOLD)?,
                timeout_ms: r.get(&TIMEOUT_MS)?,
            },
            quorum: r.get(&QUORUM)?,
            lease: r.get(&LEASE_MS)?,
            reconcile: r.get(&RECONCILE_MS)?,
        })
    }
}

impl std::default::Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings::read(&mut Reader::defaults()).expect("the declared defaults are valid")
    }
}
