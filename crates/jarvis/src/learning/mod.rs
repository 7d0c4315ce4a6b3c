//! Learning from history, in the server: the learner state per domain/action kept in the store
//! and shared by every instance, recommendations, learned parameters and timeouts for tasks that
//! ask for them (`"useLearned": true`), and the warning for a timeout that is too short. The
//! estimators themselves are the `jarvis-learning` library; this module feeds it and stores
//! what it returns.
//!
//! # How the state is kept and shared
//!
//! ```text
//! recorder batch ─► Learner::observe (local delta per domain/action, in memory)
//!                        │ every flush interval (JARVIS_LEARNING_FLUSH_MS, default 1 s)
//!                        ▼
//!   learning_state row: read (state, version) ─► merge(delta) ─► UPDATE … WHERE version = v
//!                        ▲                                        (conflict: read again, retry)
//! recommend / choose ────┘ cached for one flush interval, plus this instance's unflushed and
//!                            in-flight deltas (a cache miss reads the store between flushes)
//! ```
//!
//! Why one row per domain/action with optimistic concurrency, rather than per-instance delta
//! rows merged by a periodic job:
//! * a read is one row and needs no merging on the read path (recommendations and every
//!   `useLearned` submission read it), and there is no compaction job to run or to fail;
//! * writes are few — one per domain/action per instance per flush interval, whatever the task
//!   rate — so conflicts are rare and a retry costs one more read;
//! * the merge runs in Jarvis with the library's exact `Aggregates::merge`, so neither backend
//!   needs JSON merge logic in SQL, and SQLite and PostgreSQL share the code.
//!
//! A delta that cannot be written (store unreachable) stays in memory and is merged into the
//! next flush; only a crash loses the last interval's delta (the history rows themselves are
//! never lost; the learner is an estimate built from them).
//!
//! # What is learned
//!
//! Every attempt the recorder hands over, except attempts stopped by Jarvis (cancellation,
//! shutdown, a lost lease) and attempts that never reached an agent: those say nothing about the
//! parameters. Only parameters that are real choices are counted — see [`rules`].
//! A run counts as timed out when Jarvis cut it off (`agent timed out after …`).
//!
//! # Choosing (`useLearned`)
//!
//! The parameters a caller left out are filled with the library's `choose` (factored Thompson
//! sampling with an exploration share, `JARVIS_LEARNING_EXPLORATION`, default 0.05); given
//! values are never touched. Without a search space (`[learning.spaces."domain/action"]` in
//! the config file) only values seen before can be chosen. When the caller gave no
//! `timeoutMs`, the learned timeout for the chosen parameters applies once it is known. The task
//! records in `learnedParameters` which values were learned (with the probability each was
//! chosen with, whether it was an exploration step, among how many candidates), which names
//! were given, and the learned timeout; the same object is kept in every history row of the
//! task, so policies can be evaluated offline (inverse propensity weighting).

pub mod rules;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jarvis_learning::{
    choose, recommend, timeout_warning, Aggregates, Execution, LearningConfig, Recommendation,
    RecommendationSource, TimeoutWarning,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::LearningSettings;
use crate::history::recorder::BatchObserver;
use crate::history::ExecutionRecord;
use crate::store::{Store, StoreError};
use crate::tasks::NewTask;

/// Timeout warnings are logged at most this often per domain/action.
const WARN_EVERY: Duration = Duration::from_secs(300);
/// Attempts of one optimistic write before giving up until the next flush.
const WRITE_ATTEMPTS: usize = 8;

/// The stored state of one domain/action (the `learning_state.state` JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LearnerState {
    /// The library's aggregates.
    pub aggregates: Aggregates,
    /// Parameters found not to be choices (too many distinct values); never counted again.
    pub ignored: BTreeSet<String>,
}

impl LearnerState {
    /// Drops everything about `names` from `aggregates`.
    fn strip(aggregates: &mut Aggregates, names: &BTreeSet<String>) {
        if names.is_empty() {
            return;
        }
        aggregates
            .parameters
            .retain(|name, _| !names.contains(name));
        aggregates
            .combinations
            .retain(|key, _| key.pairs().iter().all(|(name, _)| !names.contains(name)));
    }

    /// Merges a delta in, then applies the cardinality rule ([`rules::MAX_DISTINCT_VALUES`]).
    fn absorb(&mut self, delta: &Aggregates) {
        let mut delta = delta.clone();
        Self::strip(&mut delta, &self.ignored);
        self.aggregates.merge(&delta);
        let too_many: BTreeSet<String> = self
            .aggregates
            .parameters
            .iter()
            .filter(|(_, values)| values.len() >= rules::MAX_DISTINCT_VALUES)
            .map(|(name, _)| name.clone())
            .collect();
        if !too_many.is_empty() {
            tracing::info!(
                parameters = ?too_many,
                "parameters with too many distinct values are not choices; no longer learned"
            );
            Self::strip(&mut self.aggregates, &too_many);
            self.ignored.extend(too_many);
        }
    }
}

/// A recommendation as the API shows it (read back by `jarvis tasks recommend`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationView {
    /// The domain.
    pub domain: String,
    /// The action.
    pub action: String,
    /// What the library recommends (`parameters`, `timeoutMs`, `confidence`, `basedOnRuns`,
    /// `alternatives`, `source`, `estimates`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub recommendation: Recommendation,
    /// The timeout in force when a task gives none (the agent's).
    pub configured_timeout_ms: u64,
    /// Set when the configured timeout cuts off runs that would have succeeded.
    #[schema(value_type = Option<Object>)]
    pub timeout_warning: Option<TimeoutWarning>,
    /// Parameters not learned because they have too many distinct values.
    pub ignored_parameters: Vec<String>,
    /// The exploration share `useLearned` submissions use.
    pub exploration_share: f64,
}

type Key = (String, String);

struct Cached {
    state: Arc<LearnerState>,
    fetched: Instant,
}

/// The learner of one instance. Cheap to share (`Arc`).
pub struct Learner {
    store: Arc<dyn Store>,
    settings: LearningSettings,
    instance: String,
    /// Lock order wherever more than one is held: `cache`, `in_flight`, `pending`.
    pending: Mutex<HashMap<Key, Aggregates>>,
    /// Deltas taken from `pending` by the flush in progress, until the state that includes them
    /// is in `cache` (swapped under both locks), so a reader never misses nor double-counts them.
    in_flight: Mutex<HashMap<Key, Aggregates>>,
    cache: Mutex<HashMap<Key, Cached>>,
    warned: Mutex<HashMap<Key, Instant>>,
    rng: Mutex<StdRng>,
    flushing: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the learner takes from one execution record; `None` for attempts that say nothing
/// about the parameters (stopped by Jarvis, or no agent reached).
pub fn execution_of(record: &ExecutionRecord, ignored: &BTreeSet<String>) -> Option<Execution> {
    let reason = record.failure_reason.as_deref().unwrap_or("");
    if !record.success {
        let stopped = reason.starts_with("attempt ")
            && (reason.contains(" stopped:") || reason.contains(" interrupted:"));
        let no_agent = reason.starts_with("no agent is registered")
            || reason.starts_with("cannot look up the agent");
        if stopped || no_agent {
            return None;
        }
    }
    Some(Execution {
        parameters: rules::choices(&record.parameters, ignored),
        success: record.success,
        duration_ms: record.duration_ms,
        impact_score: record.impact_score,
        failure_reason: record.failure_reason.clone(),
        cost_usd: record.cost_usd,
        // Set by the queue when it cut the attempt off; a failure whose text merely says
        // "timed out" (an agent's own reason) is not a timeout of Jarvis's.
        timed_out: !record.success && record.timed_out,
    })
}

impl Learner {
    /// A learner over `store`.
    pub fn new(store: Arc<dyn Store>, settings: LearningSettings, instance: &str) -> Arc<Learner> {
        Arc::new(Learner {
            store,
            settings,
            instance: instance.to_string(),
            pending: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashMap::new()),
            rng: Mutex::new(StdRng::from_os_rng()),
            flushing: tokio::sync::Mutex::new(()),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &LearningSettings {
        &self.settings
    }

    /// The library configuration for one domain/action: the defaults, the settings, and its
    /// search space if the config file declares one.
    pub fn config_for(&self, domain: &str, action: &str) -> LearningConfig {
        let file = &self.settings.file;
        let mut config = LearningConfig {
            exploration_share: self.settings.exploration,
            min_runs: self.settings.min_runs,
            ..LearningConfig::default()
        };
        if let Some(w) = file.impact_weight {
            config.impact_weight = w;
        }
        if let Some(t) = file.cost_tolerance {
            config.cost_tolerance = t;
        }
        if let Some(min) = file.timeout_min_ms {
            config.timeout.min_ms = min;
        }
        if let Some(max) = file.timeout_max_ms {
            config.timeout.max_ms = max;
        }
        if let Some(space) = file.spaces.get(&format!("{domain}/{action}")) {
            config.search_space = space.clone();
        }
        config
    }

    /// Folds execution records into this instance's deltas (no I/O; the recorder calls this
    /// from its background task).
    pub fn observe(&self, records: &[ExecutionRecord]) {
        let ignored: HashMap<Key, BTreeSet<String>> = {
            let cache = lock(&self.cache);
            cache
                .iter()
                .filter(|(_, c)| !c.state.ignored.is_empty())
                .map(|(k, c)| (k.clone(), c.state.ignored.clone()))
                .collect()
        };
        let none = BTreeSet::new();
        let mut pending = lock(&self.pending);
        for record in records {
            let key = (record.domain.clone(), record.action.clone());
            let Some(execution) = execution_of(record, ignored.get(&key).unwrap_or(&none)) else {
                continue;
            };
            pending.entry(key).or_default().observe(&execution);
        }
    }

    /// Merges every pending delta into the store. A delta that cannot be written is kept for
    /// the next flush.
    pub async fn flush(&self) {
        let _one_at_a_time = self.flushing.lock().await;
        let deltas: Vec<(Key, Aggregates)> = {
            let mut in_flight = lock(&self.in_flight);
            let mut pending = lock(&self.pending);
            let deltas: Vec<(Key, Aggregates)> = pending.drain().collect();
            for (key, delta) in &deltas {
                in_flight.insert(key.clone(), delta.clone());
            }
            deltas
        };
        for (key, delta) in deltas {
            match self.write(&key, &delta).await {
                Ok(state) => {
                    {
                        let mut cache = lock(&self.cache);
                        let mut in_flight = lock(&self.in_flight);
                        cache.insert(
                            key.clone(),
                            Cached {
                                state: state.clone(),
                                fetched: Instant::now(),
                            },
                        );
                        in_flight.remove(&key);
                    }
                    self.warn_if_timeout_too_short(&key, &state).await;
                }
                Err(e) => {
                    tracing::warn!(
                        domain = %key.0,
                        action = %key.1,
                        error = %e,
                        "cannot store the learner state; keeping the results for the next flush"
                    );
                    let mut in_flight = lock(&self.in_flight);
                    let mut pending = lock(&self.pending);
                    in_flight.remove(&key);
                    pending.entry(key).or_default().merge(&delta);
                }
            }
        }
    }

    async fn write(&self, key: &Key, delta: &Aggregates) -> Result<Arc<LearnerState>, StoreError> {
        for _ in 0..WRITE_ATTEMPTS {
            let (mut state, expected) = self.load(key).await?;
            state.absorb(delta);
            let value = serde_json::to_value(&state)
                .map_err(|e| StoreError::Other(format!("learner state: {e}")))?;
            let runs = state.aggregates.total.runs as i64;
            if self
                .store
                .put_learning_state(&key.0, &key.1, &value, runs, expected, &self.instance)
                .await?
            {
                return Ok(Arc::new(state));
            }
        }
        Err(StoreError::Other(format!(
            "the learner state of {}/{} changed {WRITE_ATTEMPTS} times while merging",
            key.0, key.1
        )))
    }

    async fn load(&self, key: &Key) -> Result<(LearnerState, Option<i64>), StoreError> {
        match self.store.learning_state(&key.0, &key.1).await? {
            None => Ok((LearnerState::default(), None)),
            Some(row) => {
                let state: LearnerState = serde_json::from_value(row.state).map_err(|e| {
                    StoreError::Other(format!(
                        "the stored learner state of {}/{} cannot be read: {e}",
                        key.0, key.1
                    ))
                })?;
                Ok((state, Some(row.version)))
            }
        }
    }

    /// The current state of a domain/action: the shared state (cached for one flush interval)
    /// plus what this instance has not flushed yet.
    pub async fn state(&self, domain: &str, action: &str) -> Result<LearnerState, StoreError> {
        let key = (domain.to_string(), action.to_string());
        {
            let cache = lock(&self.cache);
            if let Some(c) = cache
                .get(&key)
                .filter(|c| c.fetched.elapsed() < self.settings.flush)
            {
                // The cached state, plus what a flush is writing right now (it leaves
                // `in_flight` in the same step as it replaces the cache), plus what is pending.
                let mut state = (*c.state).clone();
                if let Some(delta) = lock(&self.in_flight).get(&key) {
                    state.absorb(delta);
                }
                if let Some(delta) = lock(&self.pending).get(&key) {
                    state.absorb(delta);
                }
                return Ok(state);
            }
        }
        // Read the stored state while no flush is in progress: a flush that had taken deltas
        // from `pending` but not yet committed them made the stored state plus `pending` miss
        // them, and the reader cached that for a whole interval (a learner seemed to forget
        // its last runs; seen as a flaky test under load).
        let _no_flush = self.flushing.lock().await;
        let (loaded, _) = self.load(&key).await?;
        let loaded = Arc::new(loaded);
        let mut state = (*loaded).clone();
        let mut cache = lock(&self.cache);
        cache.insert(
            key.clone(),
            Cached {
                state: loaded,
                fetched: Instant::now(),
            },
        );
        if let Some(delta) = lock(&self.pending).get(&key) {
            state.absorb(delta);
        }
        Ok(state)
    }

    /// The timeout in force for a domain when a task gives none: its HTTP agent's, else the
    /// built-in default.
    async fn configured_timeout(&self, domain: &str) -> u64 {
        match self.store.get_agent(domain).await {
            Ok(Some(agent)) => agent.timeout_ms,
            _ => crate::agents::DEFAULT_TIMEOUT_MS,
        }
    }

    /// The recommendation of a domain/action, with the timeout warning.
    pub async fn recommend(
        &self,
        domain: &str,
        action: &str,
    ) -> Result<RecommendationView, StoreError> {
        let state = self.state(domain, action).await?;
        let config = self.config_for(domain, action);
        let recommendation = recommend(&state.aggregates, &config);
        let configured_timeout_ms = self.configured_timeout(domain).await;
        let warning = timeout_warning(&state.aggregates, configured_timeout_ms, &config.timeout);
        Ok(RecommendationView {
            domain: domain.to_string(),
            action: action.to_string(),
            recommendation,
            configured_timeout_ms,
            timeout_warning: warning,
            ignored_parameters: state.ignored.into_iter().collect(),
            exploration_share: self.settings.exploration,
        })
    }

    /// The learned optimal parameters of a domain/action, or `None` while there is too little
    /// data (the caller falls back to something simpler).
    pub async fn optimal_parameters(
        &self,
        domain: &str,
        action: &str,
    ) -> Result<Option<(Map<String, Value>, f64, u64)>, StoreError> {
        let state = self.state(domain, action).await?;
        let r = recommend(&state.aggregates, &self.config_for(domain, action));
        Ok(
            (r.source != RecommendationSource::InsufficientData && !r.parameters.is_empty())
                .then_some((r.parameters, r.confidence, r.based_on_runs)),
        )
    }

    /// Fills the parameters the task leaves out with learned values, and its timeout with the
    /// learned one when it has none; records what was learned in `learned_parameters`.
    pub async fn apply(&self, task: &mut NewTask) -> Result<(), StoreError> {
        let (domain, action) = (task.domain.as_str(), task.action.as_str());
        let state = self.state(domain, action).await?;
        let config = self.config_for(domain, action);
        // The learner sees only the given values that are choices (an id given alongside
        // would otherwise make every learned timeout unknown); everything given is kept.
        let given = task.parameters.as_object().cloned().unwrap_or_default();
        let given_choices = rules::choices(&task.parameters, &state.ignored);
        let choice = {
            let mut rng = lock(&self.rng);
            choose(&state.aggregates, &given_choices, &config, &mut *rng)
        };
        let mut parameters = given.clone();
        for (name, learned) in &choice.learned {
            parameters.insert(name.clone(), learned.value.clone());
        }
        let given_names: Vec<&String> = given.keys().collect();
        let learned_timeout = if task.timeout_ms.is_none() {
            choice
                .timeout_ms
                .map(|t| t.clamp(1, crate::tasks::input::MAX_TIMEOUT_MS))
        } else {
            None
        };
        let values: Map<String, Value> = choice
            .learned
            .iter()
            .map(|(name, l)| {
                (
                    name.clone(),
                    json!({
                        "value": l.value,
                        "probability": l.probability,
                        "explored": l.explored,
                        "candidates": l.candidates,
                    }),
                )
            })
            .collect();
        let probability = choice.probability();
        let learned_text = Value::Object(values.clone()).to_string();
        tracing::info!(
            learned = %learned_text,
            given = ?given_names,
            probability,
            learned_timeout_ms = learned_timeout,
            based_on_runs = state.aggregates.total.runs,
            "learned parameters chosen"
        );
        task.learned_parameters = Some(json!({
            "parameters": values,
            "given": given_names,
            "timeoutMs": learned_timeout,
            "probability": probability,
            "explorationShare": self.settings.exploration,
            "basedOnRuns": state.aggregates.total.runs,
        }));
        task.parameters = Value::Object(parameters);
        if learned_timeout.is_some() {
            task.timeout_ms = learned_timeout;
        }
        Ok(())
    }

    async fn warn_if_timeout_too_short(&self, key: &Key, state: &LearnerState) {
        if lock(&self.warned)
            .get(key)
            .is_some_and(|at| at.elapsed() < WARN_EVERY)
        {
            return;
        }
        let config = self.config_for(&key.0, &key.1);
        let configured = self.configured_timeout(&key.0).await;
        if let Some(w) = timeout_warning(&state.aggregates, configured, &config.timeout) {
            tracing::warn!(
                domain = %key.0,
                action = %key.1,
                configured_timeout_ms = w.configured_ms,
                learned_timeout_ms = w.learned_ms,
                timed_out_runs = w.timed_out_runs,
                timed_out_share = w.timed_out_share,
                successful_above_share = w.successful_above_share,
                warning = %w.message,
                "the configured timeout cuts off runs that would have succeeded"
            );
            lock(&self.warned).insert(key.clone(), Instant::now());
        }
    }

    /// Flushes every flush interval until `stop` fires, then once more.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.flush) => self.flush().await,
                _ = stop.changed() => {
                    self.flush().await;
                    return;
                }
            }
        }
    }
}

impl BatchObserver for Learner {
    fn observe(&self, records: &[ExecutionRecord]) {
        Learner::observe(self, records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_learning::aggregates::CombinationKey;

    fn record(parameters: Value, success: bool, reason: Option<&str>) -> ExecutionRecord {
        let now = crate::clock::now();
        ExecutionRecord {
            record_id: uuid::Uuid::now_v7(),
            task_id: uuid::Uuid::now_v7(),
            domain: "music".into(),
            action: "beat".into(),
            attempt: 1,
            parameters,
            learned_parameters: None,
            success,
            duration_ms: 100,
            impact_score: None,
            failure_reason: reason.map(str::to_string),
            failure_group: None,
            cost_usd: None,
            correlation_id: None,
            instance_id: None,
            started_at: now,
            finished_at: now,
            timed_out: false,
            model_call: None,
        }
    }

    #[test]
    fn stopped_attempts_are_not_learned_and_timeouts_are_marked() {
        let none = BTreeSet::new();
        let stopped = record(
            json!({"genre": "pop"}),
            false,
            Some("attempt 2 interrupted: instance a stopped renewing its lease"),
        );
        assert!(execution_of(&stopped, &none).is_none());
        let mut timed_out = record(
            json!({"genre": "pop", "userId": "u-1"}),
            false,
            Some("agent timed out after 30000 ms"),
        );
        // The text alone is not a timeout: an agent may say so of its own work.
        assert!(!execution_of(&timed_out, &none).unwrap().timed_out);
        timed_out.timed_out = true;
        let e = execution_of(&timed_out, &none).unwrap();
        assert!(e.timed_out);
        assert_eq!(Value::Object(e.parameters), json!({"genre": "pop"}));
    }

    #[test]
    fn high_cardinality_parameters_are_dropped_and_stay_dropped() {
        let mut state = LearnerState::default();
        let mut delta = Aggregates::new();
        for i in 0..rules::MAX_DISTINCT_VALUES {
            delta.observe(
                &execution_of(
                    &record(
                        json!({"genre": "pop", "prompt": format!("p{i}")}),
                        true,
                        None,
                    ),
                    &BTreeSet::new(),
                )
                .unwrap(),
            );
        }
        state.absorb(&delta);
        assert!(state.ignored.contains("prompt"));
        assert!(!state.aggregates.parameters.contains_key("prompt"));
        assert!(state.aggregates.parameters.contains_key("genre"));
        assert!(state
            .aggregates
            .combinations
            .keys()
            .all(|k: &CombinationKey| !k.as_str().contains("prompt")));
        // A later delta with the parameter does not bring it back.
        let mut again = Aggregates::new();
        again.observe(
            &execution_of(
                &record(json!({"prompt": "p1"}), true, None),
                &BTreeSet::new(),
            )
            .unwrap(),
        );
        state.absorb(&again);
        assert!(!state.aggregates.parameters.contains_key("prompt"));
        assert_eq!(
            state.aggregates.total.runs,
            rules::MAX_DISTINCT_VALUES as u64 + 1
        );
    }
}
