//! The health monitor: checks every service in the store on its interval, keeps the latest
//! result of each, and summarises each round for whoever listens.
//!
//! Scheduling. Each service has its own task that sleeps until the service is due (its first
//! check is at a random offset within one interval, so services added together do not all fire
//! at once), takes a slot from one semaphore (`JARVIS_HEALTH_CONCURRENCY`) and checks. A slow or
//! hanging service therefore only ever delays itself: its checks are bounded by its timeout, and
//! while one runs its next due times are skipped and counted (`overrun`). A check that cannot
//! start within half an interval of its due time (no free slot, or an overloaded runtime) is not
//! made late: it is skipped and counted (`late`), so overload sheds work instead of piling it
//! up, and memory stays bounded whatever the load.
//!
//! Services. Every instance checks every service in the store. Every `JARVIS_HEALTH_RELOAD_MS`
//! the monitor reads a fingerprint of the list (count, latest `updated_at`) and re-reads the list
//! only when it changed (and at least every 30 polls). A service created, replaced or deleted
//! through this instance's API is applied directly ([`Monitor::service_put`],
//! [`Monitor::service_removed`]), without reading the list: a script registering or deleting
//! thousands of services costs one small step each. A changed definition restarts that
//! service's task, keeping its latest result and uptime. A deleted service's breaker goes with
//! it ([`BreakerSync::forget`]).
//!
//! Uptime. Each slot counts its checks in [`Uptime`] buckets; a sync task adds them to the
//! store every `JARVIS_HEALTH_UPTIME_SYNC_MS` (and when stopped), the first read of the list
//! seeds new slots from the stored buckets, and with PostgreSQL the current buckets are read
//! back so that every instance shows the checks of all.
//!
//! Rounds. Every `JARVIS_HEALTH_ROUND_MS` the monitor builds a [`RoundReport`] (what was checked
//! during the round and the latest status of every service), logs it as one line and hands it
//! to every registered [`RoundSink`]. Task history (`system-health` / `monitor-services`) is
//! meant to be one such sink.
//!
//! Files: this one holds the monitor's state and its API; `supervisor` keeps one task per
//! service in step with the store, `service` is that task (its cadence decides when a check is
//! skipped as late or overrun), `uptime_sync` adds uptime counts to the store and reads them
//! back, `rounds` builds the per-round reports.

mod rounds;
mod service;
mod supervisor;
mod uptime_sync;

use rounds::rounds;
use service::run_service;
use supervisor::{supervise, upsert};
use uptime_sync::{sync_uptime, uptime_seed};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::check::{CheckResult, Checker, Kind, Status};
use super::history::{History, HistoryWriter};
use super::metrics::HealthMetrics;
use super::predict::{Change, DomainForecasts, ServiceForecast};
use super::spec::ServiceSpec;
use super::uptime::{Pending, Uptime, DAY_BUCKET, HOUR_BUCKET};
use crate::breakers::shared::BreakerSync;
use crate::config::HealthConfig;
use crate::correlation::CorrelationId;
use crate::metrics::Metrics;
use crate::store::{Backend, Store, UptimeCount};
use jarvis_learning::{Forecast, ForecastConfig};

/// How long the monitor waits after a change through the API before re-reading the list.
const LOCAL_CHANGE_DEBOUNCE: Duration = Duration::from_millis(100);

/// The summary of one monitoring round.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    /// The round's own correlation ID (`hm-…`), on its log line.
    pub correlation_id: CorrelationId,
    /// When the round began.
    pub started_at: DateTime<Utc>,
    /// How long the round lasted (about `JARVIS_HEALTH_ROUND_MS`).
    pub duration: Duration,
    /// Services monitored at the end of the round.
    pub services: usize,
    /// Services with at least one check result (called or refused by their circuit) during the
    /// round.
    pub services_checked: usize,
    /// Checks that called a service during the round.
    pub checks: u64,
    /// Checks refused by an open circuit during the round (the service was not called).
    pub rejected: u64,
    /// Checks skipped during the round (late or overrun).
    pub skipped: u64,
    /// Services whose latest result is up.
    pub up: usize,
    /// Services whose latest result is down.
    pub down: usize,
    /// Services whose latest result is degraded.
    pub degraded: usize,
    /// Services not checked yet.
    pub unknown: usize,
    /// Whether every critical service is up or degraded (the round's success).
    pub all_critical_up: bool,
    /// 0–100: the weighted share of healthy services (critical services weigh 3, degraded
    /// counts half); 100 with no services.
    pub impact_score: f64,
    /// Mean duration of the checks that called a service, ms.
    pub mean_latency_ms: u64,
    /// Longest of them, ms.
    pub max_latency_ms: u64,
    /// Names of services down, critical first, at most 20.
    pub down_services: Vec<String>,
    /// Services whose trip forecast warns at the end of the round.
    pub predicted_trips: usize,
}

/// Receives every round's report. Called on the monitor's round task: it must not block (send
/// to a channel or spawn). An `mpsc::Sender<RoundReport>` is a sink (a full channel drops the
/// report).
pub trait RoundSink: Send + Sync + 'static {
    /// One round finished.
    fn report(&self, report: &RoundReport);
}

impl RoundSink for tokio::sync::mpsc::Sender<RoundReport> {
    fn report(&self, report: &RoundReport) {
        if self.try_send(report.clone()).is_err() {
            tracing::warn!("round report dropped: its receiver is behind or gone");
        }
    }
}

/// What the API shows of one monitored service.
#[derive(Debug, Clone)]
pub struct ServiceHealth {
    /// The definition being checked.
    pub spec: ServiceSpec,
    /// The latest result, if any.
    pub latest: Option<CheckResult>,
    /// When the service was last actually called (checks refused by the circuit excluded).
    pub last_checked: Option<DateTime<Utc>>,
    /// Percent up over about the last hour.
    pub uptime_hour: Option<f64>,
    /// Percent up over about the last day.
    pub uptime_day: Option<f64>,
    /// The trip forecast after the latest check that called the service.
    pub prediction: Option<Forecast>,
}

/// One monitored service: its definition and what the checks found.
struct Slot {
    spec: ServiceSpec,
    seen: Mutex<Seen>,
    /// The service's check task, to stop it when the service is deleted.
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

#[derive(Default)]
struct Seen {
    latest: Option<CheckResult>,
    last_checked: Option<DateTime<Utc>>,
    uptime: Uptime,
    forecast: ServiceForecast,
}

/// Counts for the round in progress (swapped to zero at each round's end).
#[derive(Default)]
struct RoundCounters {
    checks: AtomicU64,
    rejected: AtomicU64,
    skipped: AtomicU64,
    latency_sum_ms: AtomicU64,
    latency_max_ms: AtomicU64,
}

struct Inner {
    store: Arc<dyn Store>,
    checker: Checker,
    config: HealthConfig,
    instance_id: String,
    metrics: HealthMetrics,
    registry: Arc<Metrics>,
    slots: RwLock<HashMap<String, Arc<Slot>>>,
    slots_semaphore: Arc<Semaphore>,
    changed: Notify,
    round: RoundCounters,
    sinks: RwLock<Vec<Arc<dyn RoundSink>>>,
    /// Told about services no longer monitored, so their breakers go with them.
    breaker_sync: std::sync::OnceLock<Arc<BreakerSync>>,
    /// The fingerprint of the service list as of the monitor's last full read.
    fingerprint: Mutex<Option<crate::store::ServicesFingerprint>>,
    /// Where checks send their results (set when the monitor starts).
    history: std::sync::OnceLock<History>,
    /// Set when the supervisor has stopped every task: no task may start after it.
    closed: std::sync::atomic::AtomicBool,
    /// Every change of a service's status, for whoever subscribed.
    changes: tokio::sync::broadcast::Sender<ServiceChange>,
    /// How each service's trip forecast smooths and warns.
    forecast: ForecastConfig,
    /// The agent domains' trip forecasts (fed by the history recorder).
    domains: Arc<DomainForecasts>,
}

/// A service's status changed (its latest check found another status than the one before),
/// as [`Monitor::subscribe`] tells it (the dashboard's live events).
#[derive(Debug, Clone)]
pub struct ServiceChange {
    /// The service's name.
    pub name: String,
    /// The status before (`None`: not checked before).
    pub from: Option<Status>,
    /// The check that changed it.
    pub result: CheckResult,
}

/// Background tasks of a started monitor.
struct Running {
    stop: watch::Sender<bool>,
    supervisor: JoinHandle<()>,
    rounds: JoinHandle<()>,
    writer: HistoryWriter,
    uptime_stop: watch::Sender<bool>,
    uptime: JoinHandle<()>,
}

/// The health monitor of one instance. Cheap to share (`Arc`).
pub struct Monitor {
    inner: Arc<Inner>,
    running: Mutex<Option<Running>>,
}

impl Monitor {
    /// A monitor, not started.
    pub fn new(
        store: Arc<dyn Store>,
        checker: Checker,
        config: HealthConfig,
        instance_id: String,
        registry: Arc<Metrics>,
    ) -> Monitor {
        let metrics = HealthMetrics::new(&registry);
        Monitor {
            inner: Arc::new(Inner {
                store,
                slots_semaphore: Arc::new(Semaphore::new(config.concurrency)),
                config,
                instance_id,
                metrics,
                registry,
                slots: RwLock::new(HashMap::new()),
                changed: Notify::new(),
                round: RoundCounters::default(),
                sinks: RwLock::new(Vec::new()),
                breaker_sync: std::sync::OnceLock::new(),
                fingerprint: Mutex::new(None),
                history: std::sync::OnceLock::new(),
                closed: std::sync::atomic::AtomicBool::new(false),
                changes: tokio::sync::broadcast::channel(256).0,
                forecast: super::predict::forecast_config(config.predict_horizon),
                domains: Arc::new(DomainForecasts::new(
                    checker.breakers().clone(),
                    super::predict::forecast_config(config.predict_horizon),
                )),
                checker,
            }),
            running: Mutex::new(None),
        }
    }

    /// Every change of a service's status from now on (a receiver that falls more than 256
    /// behind is told it lagged).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ServiceChange> {
        self.inner.changes.subscribe()
    }

    /// Adds a receiver of round reports (may be called before or after start).
    pub fn add_sink(&self, sink: Arc<dyn RoundSink>) {
        self.inner
            .sinks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink);
    }

    /// Forgets the breaker of every service that stops being monitored because it was removed
    /// (see [`BreakerSync::service_gone`]).
    pub fn forget_breakers_through(&self, sync: Arc<BreakerSync>) {
        let _ = self.inner.breaker_sync.set(sync);
    }

    /// A service was deleted through this instance's API: stops checking it at once, without
    /// re-reading the list. (A script deleting thousands of services one by one would otherwise
    /// make the monitor read the whole list again after every few deletions.)
    pub fn service_removed(&self, name: &str) {
        let removed = {
            let mut slots = self.inner.slots.write().unwrap_or_else(|e| e.into_inner());
            let removed = slots.remove(name);
            self.inner.metrics.services.set(slots.len() as f64);
            removed
        };
        if let Some(slot) = removed {
            slot.stop();
            tracing::info!(service = name, "service no longer monitored");
        }
    }

    /// A service was created or replaced through this instance's API: checks it (with the new
    /// definition) at once, without re-reading the list. Does nothing while the monitor is
    /// stopped or disabled.
    pub fn service_put(&self, spec: &ServiceSpec) {
        let inner = &self.inner;
        let Some(history) = inner.history.get() else {
            return;
        };
        if !inner.config.enabled {
            return;
        }
        let mut slots = inner.slots.write().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock the supervisor's final stop also takes.
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        upsert(inner, history, &mut slots, spec, None);
        inner.metrics.services.set(slots.len() as f64);
    }

    /// Re-reads the service list soon (after a change through the API).
    pub fn services_changed(&self) {
        self.inner.changed.notify_one();
    }

    /// Starts checking (unless `JARVIS_HEALTH_MONITOR=false`), the round task and the history
    /// writer. Must run inside a Tokio runtime; a second call does nothing.
    pub fn start(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.is_some() {
            return;
        }
        let inner = &self.inner;
        let (history, writer) = HistoryWriter::start(
            inner.store.clone(),
            inner.instance_id.clone(),
            if inner.config.enabled {
                inner.config.history_retention_hours
            } else {
                0
            },
            inner.config.history_flush,
            inner.metrics.clone(),
        );
        let (stop, stopped) = watch::channel(false);
        let _ = inner.history.set(history.clone());
        let supervisor = tokio::spawn(supervise(inner.clone(), history, stopped.clone()));
        let rounds = tokio::spawn(rounds(inner.clone(), stopped));
        let (uptime_stop, uptime_stopped) = watch::channel(false);
        let uptime = tokio::spawn(sync_uptime(inner.clone(), uptime_stopped));
        *running = Some(Running {
            stop,
            supervisor,
            rounds,
            writer,
            uptime_stop,
            uptime,
        });
    }

    /// Stops every check (in-flight checks are abandoned), writes the queued history and
    /// returns once all background tasks have ended.
    pub async fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(r) = running {
            let _ = r.stop.send(true);
            let _ = r.supervisor.await;
            let _ = r.rounds.await;
            // After the checks have stopped, so that the last counts are written.
            let _ = r.uptime_stop.send(true);
            let _ = r.uptime.await;
            r.writer.stop().await;
        }
    }

    /// The fingerprint of the service list the monitor last read in full (`None` before the
    /// first read, or when monitoring is off). When the store's fingerprint still equals it,
    /// [`Monitor::services`] is exactly the stored list.
    pub fn fingerprint(&self) -> Option<crate::store::ServicesFingerprint> {
        *self
            .inner
            .fingerprint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The agent domains' trip forecasts (the history recorder feeds them).
    pub fn domain_forecasts(&self) -> &Arc<DomainForecasts> {
        &self.inner.domains
    }

    /// Services and agent domains whose trip forecast warns now.
    pub fn predicted_trips(&self) -> usize {
        self.service_warnings() + self.inner.domains.warnings()
    }

    /// Services whose trip forecast warns now.
    fn service_warnings(&self) -> usize {
        self.inner
            .all_slots()
            .iter()
            .filter(|slot| {
                let seen = slot.seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.forecast.warning()
            })
            .count()
    }

    /// The latest view of every monitored service, by name.
    pub fn services(&self) -> Vec<ServiceHealth> {
        let slots = self.inner.all_slots();
        let now = unix_now();
        let mut all: Vec<ServiceHealth> = slots
            .iter()
            .map(|slot| {
                let seen = slot.seen.lock().unwrap_or_else(|e| e.into_inner());
                ServiceHealth {
                    spec: slot.spec.clone(),
                    latest: seen.latest.clone(),
                    last_checked: seen.last_checked,
                    uptime_hour: seen.uptime.hour(now),
                    uptime_day: seen.uptime.day(now),
                    prediction: seen.forecast.latest().cloned(),
                }
            })
            .collect();
        all.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        all
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
