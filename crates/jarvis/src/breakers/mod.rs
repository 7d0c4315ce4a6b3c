//! Circuit breakers in the server: the named registry every outgoing call goes through.
//!
//! [`BreakerRegistry::breaker`] returns the breaker of a name, created on first use from the
//! `CIRCUIT_BREAKER_*` defaults and the config file's `[breakers.<name>]` overrides. Callers use
//! [`BreakerRegistry::acquire`], which also honours `CIRCUIT_BREAKER_ENABLED=false` (every call
//! passes through, and the API says so). The breaker itself is the `jarvis-breaker` library; this
//! module adds names, configuration, metrics and `jarvis breakers` (the API's view of a breaker
//! is `api::types::BreakerView`).

pub mod metrics;
pub mod shared;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jarvis_breaker::{Breaker, Classifier, Event, OwnedPermit, Rejected, Snapshot};

use crate::config::{BreakerDefaults, BreakerFileEntry};
use crate::names::Name;

pub use jarvis_breaker::{Origin, Outcome, State};

/// A breaker's change of state, as [`BreakerRegistry::subscribe`] tells it (the dashboard's live
/// events): transitions only, never calls, so a CLOSED breaker's fast path sends nothing.
#[derive(Debug, Clone)]
pub struct BreakerChange {
    /// The breaker's name.
    pub name: String,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// Calls, an operator, or another instance.
    pub origin: Origin,
    /// When this instance saw it.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The admission of one call: report its outcome, or drop it (counts as neither).
#[derive(Debug)]
pub struct Admission {
    permit: Option<OwnedPermit>,
}

impl Admission {
    /// The call succeeded.
    pub fn success(self) {
        if let Some(p) = self.permit {
            p.success();
        }
    }

    /// The call failed; `reason` becomes the breaker's `lastFailureReason`.
    pub fn failure(self, reason: impl fmt::Display) {
        if let Some(p) = self.permit {
            p.failure(reason);
        }
    }

    /// Reports an outcome, classified by the breaker's classifier (5xx, timeouts and
    /// connection errors are failures; 4xx and cancellations are not).
    pub fn record(self, outcome: Outcome, reason: impl fmt::Display) {
        if let Some(p) = self.permit {
            p.record(outcome, reason);
        }
    }

    /// Whether this is a half-open trial call.
    pub fn is_trial(&self) -> bool {
        self.permit.as_ref().is_some_and(|p| p.is_trial())
    }
}

/// Every named breaker of this instance.
pub struct BreakerRegistry {
    defaults: BreakerDefaults,
    overrides: BTreeMap<String, BreakerFileEntry>,
    breakers: RwLock<HashMap<String, Arc<Breaker>>>,
    metrics: Arc<metrics::BreakerMetrics>,
    /// Where state-relevant events go to be shared (see [`shared`]); `None`: not shared.
    sink: Option<tokio::sync::mpsc::UnboundedSender<shared::SyncEvent>>,
    /// Whether new breakers coordinate their half-open trials through the store.
    coordinated: AtomicBool,
    /// Every transition, for whoever subscribed (a send without receivers does nothing).
    changes: tokio::sync::broadcast::Sender<BreakerChange>,
}

impl BreakerRegistry {
    /// A registry with the given defaults and per-name overrides.
    pub fn new(
        defaults: BreakerDefaults,
        overrides: BTreeMap<String, BreakerFileEntry>,
        metrics: Arc<metrics::BreakerMetrics>,
    ) -> BreakerRegistry {
        BreakerRegistry {
            defaults,
            overrides,
            breakers: RwLock::new(HashMap::new()),
            metrics,
            sink: None,
            coordinated: AtomicBool::new(false),
            changes: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// Every transition of every breaker from now on (a receiver that falls more than 256
    /// behind is told it lagged).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<BreakerChange> {
        self.changes.subscribe()
    }

    /// Shares state: every breaker sends its state-relevant events to `sink`, and with
    /// `coordinated` its half-open trials wait for a cluster-wide lease.
    pub fn shared(
        mut self,
        sink: tokio::sync::mpsc::UnboundedSender<shared::SyncEvent>,
        coordinated: bool,
    ) -> BreakerRegistry {
        self.sink = Some(sink);
        self.coordinated = AtomicBool::new(coordinated);
        self
    }

    /// Turns coordinated trials on or off for breakers created from now on.
    pub fn set_coordinated(&self, coordinated: bool) {
        self.coordinated.store(coordinated, Ordering::Relaxed);
    }

    /// Every breaker.
    pub fn all(&self) -> Vec<Arc<Breaker>> {
        self.breakers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Whether breakers are on (`CIRCUIT_BREAKER_ENABLED`).
    pub fn enabled(&self) -> bool {
        self.defaults.enabled
    }

    /// The breaker of `name`, created on first use.
    pub fn breaker(&self, name: &Name) -> Arc<Breaker> {
        if let Some(b) = self.get(name.as_str()) {
            return b;
        }
        let mut all = self.breakers.write().unwrap_or_else(|e| e.into_inner());
        all.entry(name.as_str().to_string())
            .or_insert_with(|| Arc::new(self.build(name.as_str())))
            .clone()
    }

    /// The breaker of `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Breaker>> {
        self.breakers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Removes the breaker of `name` (its service was deleted): it is no longer listed, and the
    /// next use of the name creates a fresh CLOSED breaker. Callers holding the old breaker may
    /// finish their call; its events are then ignored, as no breaker of that name is known or
    /// the new one has another generation.
    pub fn remove(&self, name: &str) -> Option<Arc<Breaker>> {
        self.breakers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
    }

    /// Asks `name`'s breaker for permission to make one call. With breakers disabled every call
    /// is admitted and nothing is counted.
    pub fn acquire(&self, name: &Name) -> Result<Admission, Rejected> {
        // Created even when disabled, so the API lists it (and says breakers are off).
        let breaker = self.breaker(name);
        if !self.enabled() {
            return Ok(Admission { permit: None });
        }
        breaker
            .try_acquire_owned()
            .map(|p| Admission { permit: Some(p) })
    }

    /// Consecutive failures that open `name`'s circuit (its override, else the default); the
    /// breaker need not exist yet.
    pub fn failure_threshold(&self, name: &str) -> u32 {
        self.overrides
            .get(name)
            .and_then(|o| o.failure_threshold)
            .unwrap_or(self.defaults.failure_threshold)
    }

    /// Snapshots of every breaker, by name.
    pub fn snapshots(&self) -> Vec<Snapshot> {
        let mut snaps: Vec<Snapshot> = self.all().iter().map(|b| b.snapshot()).collect();
        snaps.sort_by(|a, b| a.name.cmp(&b.name));
        snaps
    }

    /// The metrics every breaker reports to.
    pub fn metrics(&self) -> &Arc<metrics::BreakerMetrics> {
        &self.metrics
    }

    fn build(&self, name: &str) -> Breaker {
        let o = self.overrides.get(name).cloned().unwrap_or_default();
        let metrics = self.metrics.clone();
        let sink = self.sink.clone();
        let changes = self.changes.clone();
        let mut builder = Breaker::builder(name)
            .failure_threshold(
                o.failure_threshold
                    .unwrap_or(self.defaults.failure_threshold),
            )
            .open_duration(Duration::from_millis(
                o.timeout_ms.unwrap_or(self.defaults.timeout_ms),
            ))
            .classifier(Classifier::default())
            .coordinated_trials(self.sink.is_some() && self.coordinated.load(Ordering::Relaxed))
            .listener(move |b: &Breaker, e: &Event| {
                on_event(&metrics, b, e);
                if let Event::Transition(t) = e {
                    if changes.receiver_count() > 0 {
                        let _ = changes.send(BreakerChange {
                            name: b.name().to_string(),
                            from: t.from,
                            to: t.to,
                            origin: t.origin,
                            at: crate::clock::now(),
                        });
                    }
                }
                if let Some(sink) = &sink {
                    if shares(e) {
                        // Unbounded and non-blocking: the listener must never wait.
                        let _ = sink.send(shared::SyncEvent {
                            name: b.name().to_string(),
                            event: *e,
                        });
                    }
                }
            });
        if let Some(n) = o.success_threshold {
            builder = builder.successes_to_close(n);
        }
        if let Some(n) = o.half_open_max_calls {
            builder = builder.half_open_max_trials(n);
        }
        match builder.build() {
            Ok(b) => b,
            Err(e) => {
                // The file was validated at start; fall back to the defaults rather than fail a
                // call because of a setting.
                tracing::error!(breaker = name, error = %e, "invalid breaker settings; using defaults");
                Breaker::new(name)
            }
        }
    }
}

/// Whether an event changes the shared state (rejections and remote echoes do not).
fn shares(e: &Event) -> bool {
    match e {
        Event::Rejected(_) => false,
        Event::Transition(t) => t.origin != jarvis_breaker::Origin::Remote,
        _ => true,
    }
}

/// Logs transitions and counts them; the listener must not block, and does not.
fn on_event(metrics: &metrics::BreakerMetrics, breaker: &Breaker, event: &Event) {
    if let Event::Transition(t) = event {
        metrics.transition(breaker.name(), t.from, t.to);
        let level_warn = t.to == State::Open;
        if level_warn {
            tracing::warn!(
                breaker = breaker.name(),
                from = t.from.as_str(),
                to = t.to.as_str(),
                origin = t.origin.as_str(),
                failure_count = t.consecutive_failures,
                open_for_ms = t.open_for.map(|d| d.as_millis() as u64),
                "circuit opened"
            );
        } else {
            tracing::info!(
                breaker = breaker.name(),
                from = t.from.as_str(),
                to = t.to.as_str(),
                origin = t.origin.as_str(),
                "circuit state changed"
            );
        }
    }
}
