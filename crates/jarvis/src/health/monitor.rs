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
use super::spec::ServiceSpec;
use super::uptime::{Pending, Uptime, DAY_BUCKET, HOUR_BUCKET};
use crate::breakers::shared::BreakerSync;
use crate::config::HealthConfig;
use crate::correlation::CorrelationId;
use crate::metrics::Metrics;
use crate::store::{Backend, Store, UptimeCount};

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
                checker,
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
            }),
            running: Mutex::new(None),
        }
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

    /// The latest view of every monitored service, by name.
    pub fn services(&self) -> Vec<ServiceHealth> {
        let slots: Vec<Arc<Slot>> = self
            .inner
            .slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
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

/// Keeps one task per service in step with the store.
async fn supervise(inner: Arc<Inner>, history: History, mut stopped: watch::Receiver<bool>) {
    if inner.config.enabled {
        // Uptime counts kept from before this start (and other instances'), handed to each
        // service's slot when the first read of the list creates it.
        let mut seed = uptime_seed(&inner).await;
        let mut reload = tokio::time::interval(inner.config.reload);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The periodic poll reads only a fingerprint of the list; the whole list (thousands of
        // rows, decoded on a runtime thread) is read when it changed, after a local change, and
        // at least every FULL_RELOAD_EVERY polls as a safety net.
        const FULL_RELOAD_EVERY: u32 = 30;
        let mut known: Option<crate::store::ServicesFingerprint> = None;
        let mut polls_since_full = 0u32;
        loop {
            let local_change = tokio::select! {
                _ = reload.tick() => false,
                () = inner.changed.notified() => true,
                _ = stopped.changed() => break,
            };
            polls_since_full += 1;
            if local_change {
                // Coalesce a burst of API changes (a script deleting thousands of services)
                // into one read of the list.
                tokio::time::sleep(LOCAL_CHANGE_DEBOUNCE.min(inner.config.reload)).await;
                let _ = tokio::time::timeout(Duration::ZERO, inner.changed.notified()).await;
            }
            if !local_change && known.is_some() && polls_since_full < FULL_RELOAD_EVERY {
                match inner.store.services_fingerprint().await {
                    Ok(f) if Some(f) == known => continue,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the service list fingerprint");
                        continue;
                    }
                }
            }
            // Read before the list, so that a change made in between is seen next time.
            let fingerprint = inner.store.services_fingerprint().await.ok();
            match inner.store.list_services().await {
                Ok(specs) => {
                    known = fingerprint;
                    polls_since_full = 0;
                    apply(&inner, &history, specs, &mut seed);
                    seed = HashMap::new();
                    *inner.fingerprint.lock().unwrap_or_else(|e| e.into_inner()) = fingerprint;
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot read the service list; checking the services already known"
                ),
            }
        }
    } else {
        tracing::info!("health monitor disabled (JARVIS_HEALTH_MONITOR=false)");
        let _ = stopped.changed().await;
    }
    let slots = inner.slots.write().unwrap_or_else(|e| e.into_inner());
    inner.closed.store(true, Ordering::SeqCst);
    for slot in slots.values() {
        slot.stop();
    }
}

/// Starts, restarts and stops service tasks so that they match `specs`.
fn apply(
    inner: &Arc<Inner>,
    history: &History,
    specs: Vec<ServiceSpec>,
    seed: &mut HashMap<String, Vec<UptimeCount>>,
) {
    let mut slots = inner.slots.write().unwrap_or_else(|e| e.into_inner());
    let wanted: HashMap<&str, &ServiceSpec> = specs.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut gone = Vec::new();
    slots.retain(|name, slot| {
        let keep = wanted.contains_key(name.as_str());
        if !keep {
            slot.stop();
            tracing::info!(service = %name, "service no longer monitored");
            gone.push(name.clone());
        }
        keep
    });
    if let (false, Some(sync)) = (gone.is_empty(), inner.breaker_sync.get()) {
        // After the tasks are aborted, so that no check creates the breaker again.
        let sync = sync.clone();
        tokio::spawn(async move {
            for name in gone {
                sync.service_gone(&name).await;
            }
        });
    }
    for spec in &specs {
        upsert(
            inner,
            history,
            &mut slots,
            spec,
            seed.remove(spec.name.as_str()),
        );
    }
    inner.metrics.services.set(slots.len() as f64);
}

/// Puts `spec` in its slot and starts its task, unless the slot already checks exactly this
/// definition. A changed definition keeps what was seen under the old one and stops the old
/// task; a new service starts from `seed` (stored uptime counts), if any.
fn upsert(
    inner: &Arc<Inner>,
    history: &History,
    slots: &mut HashMap<String, Arc<Slot>>,
    spec: &ServiceSpec,
    seed: Option<Vec<UptimeCount>>,
) {
    let name = spec.name.as_str();
    let previous = slots.get(name).cloned();
    if previous.as_ref().is_some_and(|p| p.spec == *spec) {
        return;
    }
    let seen = match previous {
        Some(p) => {
            p.stop();
            std::mem::take(&mut *p.seen.lock().unwrap_or_else(|e| e.into_inner()))
        }
        None => {
            let mut seen = Seen::default();
            for c in seed.unwrap_or_default() {
                seen.uptime.set_stored(
                    c.width_s,
                    c.bucket_start.max(0) as u64,
                    c.up.max(0) as u64,
                    c.total.max(0) as u64,
                );
            }
            seen
        }
    };
    let slot = Arc::new(Slot {
        spec: spec.clone(),
        seen: Mutex::new(seen),
        task: Mutex::new(None),
    });
    slots.insert(name.to_string(), slot.clone());
    let task = tokio::spawn(run_service(inner.clone(), history.clone(), slot.clone()));
    *slot.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
    tracing::info!(
        service = name,
        url = %spec.url,
        interval_ms = spec.interval_ms,
        timeout_ms = spec.timeout_ms,
        critical = spec.critical,
        "service monitored"
    );
}

/// Checks one service on its interval until aborted.
async fn run_service(inner: Arc<Inner>, history: History, slot: Arc<Slot>) {
    let spec = &slot.spec;
    let kind = Kind::of(spec);
    let interval = Duration::from_millis(spec.interval_ms);
    let late_limit = interval / 2;
    let offset = rand::rng().random_range(0..interval.as_micros().max(1) as u64);
    let mut due = tokio::time::Instant::now() + Duration::from_micros(offset);
    let m = &inner.metrics;
    loop {
        tokio::time::sleep_until(due).await;
        let acquired = tokio::time::timeout_at(
            due + late_limit,
            inner.slots_semaphore.clone().acquire_owned(),
        )
        .await;
        let started = tokio::time::Instant::now();
        let lag = started.saturating_duration_since(due);
        match acquired {
            Ok(Ok(permit)) if lag <= late_limit => {
                m.lag(lag);
                m.in_flight.increment(1.0);
                let id = CorrelationId::generate("hc");
                // Boxed: the check's future is large (an HTTP exchange), and a sleeping task
                // should not carry it; with 20,000 services that is tens of MB.
                let result = Box::pin(inner.checker.check(spec, id)).await;
                m.in_flight.decrement(1.0);
                drop(permit);
                m.result(result.status, result.breaker_open, kind, started.elapsed());
                inner.round_result(&result);
                slot.record(&result);
                history.record(result);
            }
            Ok(Err(_closed)) => return,
            _ => {
                m.skipped_late.increment(1);
                inner.round.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
        due += interval;
        let now = tokio::time::Instant::now();
        if due < now {
            // The check outlasted the interval: the due times it covered are skipped, not
            // made late.
            let behind = now - due;
            let missed = (behind.as_nanos() / interval.as_nanos()) as u32 + 1;
            m.skipped_overrun.increment(u64::from(missed));
            inner
                .round
                .skipped
                .fetch_add(u64::from(missed), Ordering::Relaxed);
            due += interval * missed;
        }
    }
}

impl Inner {
    fn round_result(&self, result: &CheckResult) {
        let r = &self.round;
        if result.breaker_open {
            r.rejected.fetch_add(1, Ordering::Relaxed);
        } else {
            r.checks.fetch_add(1, Ordering::Relaxed);
            r.latency_sum_ms
                .fetch_add(result.latency_ms, Ordering::Relaxed);
            r.latency_max_ms
                .fetch_max(result.latency_ms, Ordering::Relaxed);
        }
    }
}

impl Slot {
    /// Stops the service's check task.
    fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }

    /// Keeps `result` as the latest, counts it for uptime and logs a change of status.
    fn record(&self, result: &CheckResult) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let before = seen.latest.as_ref().map(|r| r.status);
        let secs = result.timestamp.timestamp().max(0) as u64;
        seen.uptime.record(secs, result.status != Status::Down);
        if !result.breaker_open {
            seen.last_checked = Some(result.timestamp);
        }
        seen.latest = Some(result.clone());
        drop(seen);
        if before == Some(result.status) {
            return;
        }
        let span = tracing::info_span!(
            "health_check",
            correlation_id = %result.correlation_id.as_ref().map_or("", |c| c.as_str()),
            service = %self.spec.name,
        );
        let _entered = span.enter();
        let from = before.map_or("unknown", Status::as_str);
        if before.is_none() && result.status == Status::Up {
            // The first result of a healthy service is news to no one (thousands at start).
            tracing::debug!(message = %result.message, "service is up");
        } else if result.status == Status::Down {
            tracing::warn!(
                from,
                to = result.status.as_str(),
                critical = self.spec.critical,
                message = %result.message,
                latency_ms = result.latency_ms,
                "service is down"
            );
        } else {
            tracing::info!(
                from,
                to = result.status.as_str(),
                message = %result.message,
                latency_ms = result.latency_ms,
                "service status changed"
            );
        }
    }
}

/// How long uptime buckets are kept in the store: the day window and some slack.
const UPTIME_KEEP_SECS: u64 = 2 * 86_400;
/// How often old uptime buckets are deleted.
const UPTIME_PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// The stored uptime buckets of the last hour and day, by service (empty if the store cannot
/// be read: uptime then starts from this instance's own checks).
async fn uptime_seed(inner: &Inner) -> HashMap<String, Vec<UptimeCount>> {
    let now = unix_now() as i64;
    let since_5m = now - i64::from(HOUR_BUCKET) * 13;
    let since_1h = now - i64::from(DAY_BUCKET) * 25;
    let mut seed: HashMap<String, Vec<UptimeCount>> = HashMap::new();
    match inner.store.uptime_counts(since_5m, since_1h).await {
        Ok(counts) => {
            for c in counts {
                seed.entry(c.service.clone()).or_default().push(c);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read stored uptime; counting from now"),
    }
    seed
}

/// Adds this instance's uptime counts to the store every `JARVIS_HEALTH_UPTIME_SYNC_MS` (and
/// once more when stopped); with PostgreSQL, reads the current buckets of every instance back.
async fn sync_uptime(inner: Arc<Inner>, mut stopped: watch::Receiver<bool>) {
    if !inner.config.enabled {
        return;
    }
    let every = inner.config.uptime_sync;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => break,
        }
        inner.write_uptime().await;
        if inner.store.backend() == Backend::Postgres {
            inner.read_uptime().await;
        }
        if last_prune.is_none_or(|t| t.elapsed() >= UPTIME_PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            let before = unix_now().saturating_sub(UPTIME_KEEP_SECS) as i64;
            if let Err(e) = inner.store.prune_uptime(before).await {
                tracing::warn!(error = %e, "cannot delete old uptime counts");
            }
        }
    }
    inner.write_uptime().await;
}

impl Inner {
    fn all_slots(&self) -> Vec<Arc<Slot>> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Adds every service's pending uptime counts to the store; on failure they are kept for
    /// the next sync.
    async fn write_uptime(&self) {
        let mut taken: Vec<(Arc<Slot>, Vec<Pending>)> = Vec::new();
        for slot in self.all_slots() {
            let pending = slot
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .uptime
                .take_pending();
            if !pending.is_empty() {
                taken.push((slot, pending));
            }
        }
        if taken.is_empty() {
            return;
        }
        let counts: Vec<UptimeCount> = taken
            .iter()
            .flat_map(|(slot, pending)| {
                pending.iter().map(|p| UptimeCount {
                    service: slot.spec.name.to_string(),
                    width_s: p.width_s,
                    bucket_start: p.bucket_start as i64,
                    up: i64::from(p.up),
                    total: i64::from(p.total),
                })
            })
            .collect();
        if let Err(e) = self.store.add_uptime(&counts).await {
            tracing::warn!(error = %e, services = taken.len(), "cannot write uptime counts; keeping them for the next sync");
            for (slot, pending) in taken {
                slot.seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .uptime
                    .restore_pending(&pending);
            }
        }
    }

    /// Sets the current (and previous) buckets of every service to the stored counts of all
    /// instances plus this instance's pending ones.
    async fn read_uptime(&self) {
        let now = unix_now() as i64;
        let since_5m =
            now / i64::from(HOUR_BUCKET) * i64::from(HOUR_BUCKET) - i64::from(HOUR_BUCKET);
        let since_1h = now / i64::from(DAY_BUCKET) * i64::from(DAY_BUCKET) - i64::from(DAY_BUCKET);
        let counts = match self.store.uptime_counts(since_5m, since_1h).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read uptime counts");
                return;
            }
        };
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        for c in counts {
            if let Some(slot) = slots.get(&c.service) {
                slot.seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .uptime
                    .set_stored(
                        c.width_s,
                        c.bucket_start.max(0) as u64,
                        c.up.max(0) as u64,
                        c.total.max(0) as u64,
                    );
            }
        }
    }
}

/// Produces a report every round until stopped; also runs the metrics upkeep, which folds
/// recorded histogram samples into their buckets so memory does not grow between scrapes.
async fn rounds(inner: Arc<Inner>, mut stopped: watch::Receiver<bool>) {
    let length = inner.config.round;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + length, length);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut started_at = crate::store::now();
    let mut started = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        inner.registry.run_upkeep();
        if !inner.config.enabled {
            continue;
        }
        let report = inner.report(started_at, started.elapsed());
        started_at = crate::store::now();
        started = Instant::now();
        let span = tracing::info_span!("health_round", correlation_id = %report.correlation_id);
        async {
            tracing::info!(
                services = report.services,
                services_checked = report.services_checked,
                checks = report.checks,
                rejected = report.rejected,
                skipped = report.skipped,
                up = report.up,
                down = report.down,
                degraded = report.degraded,
                unknown = report.unknown,
                all_critical_up = report.all_critical_up,
                impact_score = report.impact_score,
                mean_latency_ms = report.mean_latency_ms,
                max_latency_ms = report.max_latency_ms,
                duration_ms = report.duration.as_millis() as u64,
                down_services = %report.down_services.join(","),
                "health round"
            );
            let sinks = inner
                .sinks
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for sink in sinks {
                sink.report(&report);
            }
        }
        .instrument(span)
        .await;
    }
}

impl Inner {
    /// Builds the report of the round that began at `started_at` and lasted `duration`.
    fn report(&self, started_at: DateTime<Utc>, duration: Duration) -> RoundReport {
        let r = &self.round;
        let checks = r.checks.swap(0, Ordering::Relaxed);
        let rejected = r.rejected.swap(0, Ordering::Relaxed);
        let skipped = r.skipped.swap(0, Ordering::Relaxed);
        let latency_sum = r.latency_sum_ms.swap(0, Ordering::Relaxed);
        let max_latency_ms = r.latency_max_ms.swap(0, Ordering::Relaxed);
        let slots: Vec<Arc<Slot>> = self
            .slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut tally = Tally::default();
        for slot in &slots {
            let seen = slot.seen.lock().unwrap_or_else(|e| e.into_inner());
            let latest = seen.latest.as_ref();
            tally.add(
                &slot.spec,
                latest.map(|l| l.status),
                latest.is_some_and(|l| l.timestamp >= started_at),
            );
        }
        tally.down_critical.sort();
        tally.down_other.sort();
        let mut down_services = tally.down_critical;
        down_services.append(&mut tally.down_other);
        down_services.truncate(20);
        RoundReport {
            correlation_id: CorrelationId::generate("hm"),
            started_at,
            duration,
            services: slots.len(),
            services_checked: tally.checked,
            checks,
            rejected,
            skipped,
            up: tally.up,
            down: tally.down,
            degraded: tally.degraded,
            unknown: tally.unknown,
            all_critical_up: tally.all_critical_up,
            impact_score: if tally.weight_total == 0.0 {
                100.0
            } else {
                (tally.weight_up * 10_000.0 / tally.weight_total).round() / 100.0
            },
            mean_latency_ms: latency_sum.checked_div(checks).unwrap_or(0),
            max_latency_ms,
            down_services,
        }
    }
}

/// Counting services by their latest status.
struct Tally {
    up: usize,
    down: usize,
    degraded: usize,
    unknown: usize,
    checked: usize,
    all_critical_up: bool,
    weight_up: f64,
    weight_total: f64,
    down_critical: Vec<String>,
    down_other: Vec<String>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            up: 0,
            down: 0,
            degraded: 0,
            unknown: 0,
            checked: 0,
            all_critical_up: true,
            weight_up: 0.0,
            weight_total: 0.0,
            down_critical: Vec::new(),
            down_other: Vec::new(),
        }
    }
}

impl Tally {
    fn add(&mut self, spec: &ServiceSpec, status: Option<Status>, checked_this_round: bool) {
        let weight = if spec.critical { 3.0 } else { 1.0 };
        self.weight_total += weight;
        if checked_this_round {
            self.checked += 1;
        }
        match status {
            Some(Status::Up) => {
                self.up += 1;
                self.weight_up += weight;
            }
            Some(Status::Degraded) => {
                self.degraded += 1;
                self.weight_up += weight / 2.0;
            }
            Some(Status::Down) => {
                self.down += 1;
                if spec.critical {
                    self.all_critical_up = false;
                    self.down_critical.push(spec.name.to_string());
                } else {
                    self.down_other.push(spec.name.to_string());
                }
            }
            None => {
                self.unknown += 1;
                if spec.critical {
                    self.all_critical_up = false;
                }
            }
        }
    }
}
