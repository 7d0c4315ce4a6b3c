//! Shared breaker state: one state for every instance, kept in the store.
//!
//! The in-process breaker stays the fast path. Its listener hands the *state-relevant* events
//! (a failure counted, the first success after failures, a half-open trial success, a local or
//! operator transition, a trial that is due) to a channel; one [`BreakerSync`] task per instance
//! turns them into store updates and applies what the store answers back:
//!
//! - **Counting**: failures from every instance add up in one row (`UPDATE … RETURNING`); the
//!   row opens the circuit when the threshold (and the quorum of distinct instances) is reached.
//!   A success anywhere resets the count.
//! - **Trials**: with PostgreSQL the breakers run with *coordinated trials*: when an open period
//!   ends, the instance that wins the lease row (`trial_holder`, `trial_expires_at`) runs the one
//!   half-open trial; the others keep rejecting until its outcome is known, or until the lease
//!   expires (a crashed holder does not block recovery).
//! - **Propagation**: every write bumps `version` and is announced with `NOTIFY`; instances apply
//!   newer versions only (`Breaker::apply_remote`), and reconcile periodically in case a
//!   notification was lost.
//! - **One clock**: open periods and leases are computed by the database's `now()`.
//! - **Outages**: when the store cannot be reached the breakers keep working on local state
//!   (trials are no longer coordinated), the degradation is logged once and shown by `/health`
//!   and `jarvis_breaker_store_degraded`; when the store answers again the breakers that changed
//!   meanwhile are written back and everything is reconciled.
//! - **Removal**: when a service is deleted its breaker is forgotten here and its row deleted;
//!   the deletion is announced like any change, and an instance that finds the row gone drops
//!   its local breaker too (and tells the health monitor to re-read the service list).
//! - **Quorum**: with `JARVIS_BREAKER_QUORUM=K > 1` the shared circuit opens only when failures
//!   came from at least K instances, and an instance that trips alone keeps its circuit open for
//!   itself without forcing it on the others (one bad node does not poison the rest).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use jarvis_breaker::{Breaker, Event, Origin, RemoteState, State, Transition};
use tokio::sync::{mpsc, watch};

use super::BreakerRegistry;
use crate::store::breaker_state::{BreakerRow, BreakerWrite, ChangeNote, FailureReport};
use crate::store::Store;

/// A breaker event on its way to the store.
#[derive(Debug, Clone)]
pub struct SyncEvent {
    /// The breaker's name.
    pub name: String,
    /// What happened.
    pub event: Event,
}

/// Settings of the shared state.
#[derive(Debug, Clone, Copy)]
pub struct SharedSettings {
    /// Whether trials are coordinated cluster-wide (PostgreSQL).
    pub coordinate: bool,
    /// Distinct instances whose failures it takes to open the shared circuit.
    pub quorum: u32,
    /// How long a trial lease lasts.
    pub lease: Duration,
    /// How often every row is re-read.
    pub reconcile_every: Duration,
}

/// Keeps this instance's breakers and the store's rows in agreement.
pub struct BreakerSync {
    store: Arc<dyn Store>,
    registry: Arc<BreakerRegistry>,
    instance: String,
    settings: SharedSettings,
    degraded: AtomicBool,
    /// Breakers whose changes could not be written while the store was away.
    dirty: Mutex<HashSet<String>>,
    /// Called with the name of a breaker another instance removed.
    removed_hooks: Mutex<Vec<RemovedHook>>,
    /// Breakers forgotten in the last [`TOMBSTONE`]: a failure of the deleted service that was
    /// already on its way to the store must not bring the row (and the breaker) back.
    forgotten: Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// How long a forgotten breaker's late events are ignored and its late rows deleted.
const TOMBSTONE: Duration = Duration::from_secs(5);

/// See [`BreakerSync::on_removed`].
type RemovedHook = Box<dyn Fn(&str) + Send + Sync>;

impl BreakerSync {
    /// A sync for `registry`'s breakers through `store`.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<BreakerRegistry>,
        instance: String,
        settings: SharedSettings,
    ) -> Arc<BreakerSync> {
        Arc::new(BreakerSync {
            store,
            registry,
            instance,
            settings,
            degraded: AtomicBool::new(false),
            dirty: Mutex::new(HashSet::new()),
            removed_hooks: Mutex::new(Vec::new()),
            forgotten: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Registers `hook`, called (on the sync task; it must not block) with the name of every
    /// breaker whose row another instance deleted.
    pub fn on_removed(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        self.removed_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(hook));
    }

    /// Forgets the breaker of a deleted service: it is removed here, its row is deleted, and
    /// every other instance drops it when it hears of the deletion; a service created again
    /// under the name starts with a fresh CLOSED breaker. A name that is also an agent's domain
    /// keeps its breaker (tasks of that domain still call through it). Returns whether the
    /// breaker was forgotten.
    pub async fn forget(&self, name: &str) -> Result<bool, crate::store::StoreError> {
        if self.store.get_agent(name).await?.is_some() {
            return Ok(false);
        }
        {
            let mut forgotten = self.forgotten.lock().unwrap_or_else(|e| e.into_inner());
            forgotten.retain(|_, at| at.elapsed() < TOMBSTONE);
            forgotten.insert(name.to_string(), std::time::Instant::now());
        }
        // Most breakers never had a row (one is written only once a call fails): then nothing
        // is written, which keeps bulk deletions cheap. A breaker this instance does not hold
        // (an API-only instance) may still have one.
        let stored = match self.registry.remove(name) {
            Some(b) => b.snapshot().remote_version.is_some(),
            None => self.store.breaker_row(name).await?.is_some(),
        };
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if stored {
            self.store.breaker_delete(name).await?;
            // A reconcile that read the row just before it was deleted may have applied it.
            self.registry.remove(name);
        }
        Ok(true)
    }

    /// Whether `name` was forgotten less than [`TOMBSTONE`] ago.
    fn is_forgotten(&self, name: &str) -> bool {
        self.forgotten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .is_some_and(|at| at.elapsed() < TOMBSTONE)
    }

    /// A row of a just-forgotten breaker (written by a late event, or read just before its
    /// deletion): deletes it again and drops the local breaker. Returns whether it was one.
    async fn drop_if_forgotten(&self, name: &str) -> bool {
        if !self.is_forgotten(name) {
            return false;
        }
        if let Err(e) = self.store.breaker_delete(name).await {
            tracing::warn!(breaker = name, error = %e, "cannot delete the row of a forgotten breaker");
        }
        self.registry.remove(name);
        true
    }

    /// The health monitor stopped checking `name` because its service is gone. On the
    /// instance that deleted it the breaker is already forgotten; elsewhere (or when a check
    /// raced with the deletion and created it again) it is forgotten now.
    pub async fn service_gone(&self, name: &str) {
        if self.registry.get(name).is_none() {
            return;
        }
        if let Err(e) = self.forget(name).await {
            tracing::warn!(breaker = name, error = %e, "cannot delete the breaker of a removed service");
        }
    }

    /// Whether the store is unreachable and breakers run on local state only.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Loads every stored breaker (at start, so an open circuit stays open across a restart).
    pub async fn load(&self) {
        match self.store.breaker_rows().await {
            Ok(rows) => {
                for row in &rows {
                    self.apply(row);
                }
                if !rows.is_empty() {
                    tracing::info!(breakers = rows.len(), "loaded shared breaker state");
                }
            }
            Err(e) => self.went_away(&e.to_string(), None),
        }
    }

    /// Runs until `shutdown` turns true: applies local events and change notes, reconciles
    /// periodically. Pending events are written before it returns.
    pub async fn run(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<SyncEvent>,
        mut notes: mpsc::UnboundedReceiver<ChangeNote>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.settings.reconcile_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut notes_open = true;
        loop {
            tokio::select! {
                biased;
                first = events.recv() => {
                    let Some(first) = first else { break };
                    let mut batch = vec![first];
                    while batch.len() < 512 {
                        match events.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    self.process(batch).await;
                }
                note = notes.recv(), if notes_open => match note {
                    Some(ChangeNote::Changed(name)) => self.refresh(&name).await,
                    Some(ChangeNote::Reconnected) => self.reconcile().await,
                    None => notes_open = false,
                },
                _ = tick.tick() => self.reconcile().await,
                _ = shutdown.changed() => {
                    let mut batch = Vec::new();
                    while let Ok(e) = events.try_recv() {
                        batch.push(e);
                    }
                    if !batch.is_empty() {
                        self.process(batch).await;
                    }
                    break;
                }
            }
        }
    }

    /// Writes a batch of local events, coalescing consecutive failures of one breaker.
    async fn process(&self, batch: Vec<SyncEvent>) {
        let mut i = 0;
        while i < batch.len() {
            let SyncEvent { name, event } = &batch[i];
            if let Event::FailureRecorded { generation, .. } = event {
                let mut generation = *generation;
                let mut count = 1u32;
                while i + 1 < batch.len()
                    && batch[i + 1].name == *name
                    && matches!(batch[i + 1].event, Event::FailureRecorded { .. })
                {
                    if let Event::FailureRecorded { generation: g, .. } = batch[i + 1].event {
                        generation = g;
                    }
                    count += 1;
                    i += 1;
                }
                self.failures(name, count, generation).await;
            } else {
                self.one(name, event).await;
            }
            i += 1;
        }
    }

    async fn failures(&self, name: &str, count: u32, generation: u64) {
        if self.is_forgotten(name) {
            return;
        }
        let Some(breaker) = self.registry.get(name) else {
            return;
        };
        let snapshot = breaker.snapshot();
        let (threshold, open_ms) = settings_of(&breaker);
        let report = FailureReport {
            name,
            count,
            instance: &self.instance,
            reason: snapshot.last_failure_reason.as_deref().unwrap_or("failure"),
            threshold,
            open_ms,
            quorum: self.settings.quorum,
        };
        match self.store.breaker_failures(&report).await {
            Ok(row) => {
                self.came_back().await;
                if !self.drop_if_forgotten(name).await {
                    self.apply_if_current(&breaker, generation, &row);
                }
            }
            Err(e) => self.went_away(&e.to_string(), Some(name)),
        }
    }

    async fn one(&self, name: &str, event: &Event) {
        if self.is_forgotten(name) {
            return;
        }
        let Some(breaker) = self.registry.get(name) else {
            return;
        };
        let result = match event {
            Event::FailuresReset { generation, .. } => self
                .store
                .breaker_success(name, &self.instance)
                .await
                .map(|row| {
                    if let Some(row) = row {
                        self.apply_if_current(&breaker, *generation, &row);
                    }
                }),
            Event::TrialSucceeded {
                half_open_successes,
                ..
            } => {
                let w = BreakerWrite {
                    name,
                    state: State::HalfOpen.as_str(),
                    forced: false,
                    open_ms: None,
                    consecutive_failures: 0,
                    half_open_successes: *half_open_successes,
                    instance: &self.instance,
                    lease_ms: Some(self.settings.lease.as_millis() as u64),
                    expected_version: None,
                };
                self.store.breaker_write(&w).await.map(|row| {
                    if let Some(row) = row {
                        breaker.set_remote_version(row.version);
                    }
                })
            }
            Event::Transition(t) if t.origin != Origin::Remote => {
                self.transition(&breaker, t).await
            }
            Event::TrialDue { generation } => self.trial_due(&breaker, *generation).await,
            _ => Ok(()),
        };
        match result {
            Ok(()) => {
                self.came_back().await;
                self.drop_if_forgotten(name).await;
            }
            Err(e) => {
                self.went_away(&e.to_string(), Some(name));
                if let Event::TrialDue { generation } = event {
                    // Never keep a circuit shut because the store is away: run the trial here.
                    breaker.grant_trial(*generation);
                }
            }
        }
    }

    async fn transition(
        &self,
        breaker: &Breaker,
        t: &Transition,
    ) -> Result<(), crate::store::StoreError> {
        if t.origin == Origin::Local
            && t.from == State::Closed
            && t.to == State::Open
            && self.settings.quorum > 1
        {
            // This instance tripped on its own failures; with a quorum the cluster decides from
            // the shared count instead, so the local trip stays local.
            return Ok(());
        }
        let w = BreakerWrite {
            name: breaker.name(),
            state: t.to.as_str(),
            forced: t.forced,
            open_ms: t.open_for.map(|d| d.as_millis() as u64),
            consecutive_failures: t.consecutive_failures,
            half_open_successes: t.half_open_successes,
            instance: &self.instance,
            lease_ms: (t.to == State::HalfOpen).then_some(self.settings.lease.as_millis() as u64),
            // Operators win; an instance's own transition is compare-and-set on what it saw.
            expected_version: if t.origin == Origin::Manual {
                None
            } else {
                breaker.snapshot().remote_version
            },
        };
        match self.store.breaker_write(&w).await? {
            Some(row) => self.apply_if_current(breaker, t.generation, &row),
            None => {
                // Another instance moved the row first: its state wins.
                if let Some(row) = self.store.breaker_row(breaker.name()).await? {
                    self.apply(&row);
                }
            }
        }
        Ok(())
    }

    async fn trial_due(
        &self,
        breaker: &Breaker,
        generation: u64,
    ) -> Result<(), crate::store::StoreError> {
        let lease = self.settings.lease.as_millis() as u64;
        match self
            .store
            .breaker_try_trial(breaker.name(), &self.instance, lease)
            .await?
        {
            (true, Some(row)) => {
                breaker.set_remote_version(row.version);
                if !breaker.grant_trial(generation) {
                    tracing::debug!(
                        breaker = breaker.name(),
                        "trial lease won but the breaker moved on"
                    );
                }
            }
            (_, Some(row)) => self.apply(&row),
            // Never stored (it opened while the store was away): nobody else can run a trial.
            (_, None) => {
                breaker.grant_trial(generation);
            }
        }
        Ok(())
    }

    /// Applies the row written for a local event, unless the breaker has moved on since the event
    /// (a later local change is still on its way to the store and must not be undone by this
    /// older answer); the row's version is recorded either way.
    fn apply_if_current(&self, breaker: &Breaker, generation: u64, row: &BreakerRow) {
        if breaker.generation() == generation {
            self.apply(row);
        } else {
            breaker.set_remote_version(row.version);
        }
    }

    /// Re-reads one row (after a notification).
    async fn refresh(&self, name: &str) {
        match self.store.breaker_row(name).await {
            Ok(Some(row)) => {
                self.came_back().await;
                if !self.drop_if_forgotten(name).await {
                    self.apply(&row);
                }
            }
            // Only a deletion announces a row that is gone: the service was removed.
            Ok(None) => {
                let removed = self.registry.remove(name).is_some();
                if removed {
                    tracing::info!(breaker = name, "breaker removed with its service");
                }
                let hooks = self.removed_hooks.lock().unwrap_or_else(|e| e.into_inner());
                for hook in hooks.iter() {
                    hook(name);
                }
            }
            Err(e) => self.went_away(&e.to_string(), None),
        }
    }

    /// Re-reads every row.
    pub async fn reconcile(&self) {
        match self.store.breaker_rows().await {
            Ok(rows) => {
                self.came_back().await;
                for row in &rows {
                    if !self.drop_if_forgotten(&row.name).await {
                        self.apply(row);
                    }
                }
            }
            Err(e) => self.went_away(&e.to_string(), None),
        }
    }

    /// Applies a stored row to the local breaker (creating it), unless it is older than what the
    /// breaker already has.
    fn apply(&self, row: &BreakerRow) {
        let Ok(name) = crate::names::Name::parse(&row.name) else {
            return;
        };
        let Some(state) = State::parse(&row.state) else {
            return;
        };
        let breaker = self.registry.breaker(&name);
        if state == State::HalfOpen && row.trial_holder.as_deref() == Some(self.instance.as_str()) {
            // Our own trial: the local breaker already runs it.
            breaker.set_remote_version(row.version);
            return;
        }
        let ms = |v: Option<i64>| v.map(|ms| Duration::from_millis(ms.max(0) as u64));
        let next_attempt_in = match state {
            State::Open => ms(row.next_attempt_in_ms),
            State::HalfOpen => ms(row.trial_expires_in_ms),
            State::Closed => None,
        };
        let remote = RemoteState {
            state,
            forced: row.forced,
            consecutive_failures: row.consecutive_failures,
            half_open_successes: row.half_open_successes,
            next_attempt_in,
            version: row.version,
        };
        breaker.apply_remote_at(remote, row.opened_at.map(SystemTime::from));
    }

    fn went_away(&self, error: &str, name: Option<&str>) {
        if let Some(name) = name {
            self.dirty
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string());
        }
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error,
                "the store is unreachable: circuit breakers run on local state until it returns"
            );
            for b in self.registry.all() {
                b.set_coordinated(false);
            }
            self.registry.set_coordinated(false);
            self.registry.metrics().degraded(true);
        }
    }

    async fn came_back(&self) {
        if !self.degraded.swap(false, Ordering::Relaxed) {
            return;
        }
        tracing::info!("the store is reachable again: writing back and reconciling breakers");
        self.registry.set_coordinated(self.settings.coordinate);
        for b in self.registry.all() {
            b.set_coordinated(self.settings.coordinate);
        }
        self.registry.metrics().degraded(false);
        let dirty: Vec<String> = self
            .dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for name in dirty {
            let Some(b) = self.registry.get(&name) else {
                continue;
            };
            let s = b.snapshot();
            let next = s
                .next_attempt_at
                .and_then(|t| t.duration_since(SystemTime::now()).ok());
            let w = BreakerWrite {
                name: &name,
                state: s.state.as_str(),
                forced: s.forced,
                open_ms: (s.state == State::Open && !s.forced)
                    .then(|| next.map_or(0, |d| d.as_millis() as u64)),
                consecutive_failures: s.failure_count,
                half_open_successes: s.success_count,
                instance: &self.instance,
                lease_ms: (s.state == State::HalfOpen)
                    .then_some(self.settings.lease.as_millis() as u64),
                expected_version: None,
            };
            match self.store.breaker_write(&w).await {
                Ok(Some(row)) => b.set_remote_version(row.version),
                Ok(None) => {}
                Err(e) => {
                    self.went_away(&e.to_string(), Some(&name));
                    return;
                }
            }
        }
    }
}

/// The threshold and open period a breaker was built with, for the shared row.
fn settings_of(breaker: &Breaker) -> (u32, u64) {
    let config = breaker.config();
    let threshold = match config.policy {
        jarvis_breaker::Policy::ConsecutiveFailures { threshold } => threshold,
        _ => u32::MAX,
    };
    (threshold, config.open_duration.as_millis() as u64)
}
