//! The state every handler and background task shares ([`AppState`], built by `app`), and the
//! request counters the access-log middleware keeps for the EMF metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::breakers::shared::BreakerSync;
use crate::breakers::BreakerRegistry;
use crate::config::Config;
use crate::health::Monitor;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tasks::TaskQueue;

/// State shared by every handler and background task. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// Where everything is kept.
    pub store: Arc<dyn Store>,
    /// The tokens in force and the rate limits (`api::auth`).
    pub auth: Arc<crate::api::auth::Auth>,
    /// This instance's name (logs, history rows, breaker updates).
    pub instance_id: String,
    /// When the process started serving.
    pub started_at: Instant,
    /// Every named circuit breaker.
    pub breakers: Arc<BreakerRegistry>,
    /// The Prometheus registry.
    pub metrics: Arc<Metrics>,
    /// The health monitor (started by [`Application::run_until`]).
    pub health: Arc<Monitor>,
    /// The task queue and its workers.
    pub tasks: Arc<TaskQueue>,
    /// Keeps breaker state shared through the store.
    pub breaker_sync: Arc<BreakerSync>,
    /// The learner (recommendations, `useLearned`).
    pub learner: Arc<crate::learning::Learner>,
    /// Each domain's `useLearned` default, as its agent says (cached briefly).
    pub agent_defaults: Arc<crate::agents::AgentDefaults>,
    /// Requests served (for the EMF metrics).
    pub requests: Arc<RequestStats>,
    /// The scheduler of recurring tasks (told when a schedule changes through the API).
    pub scheduler: Arc<crate::schedules::Scheduler>,
    /// The AI gateway's providers (`/v1/*`).
    pub ai: Arc<crate::ai::Gateway>,
    /// The dashboard's sign-in sessions (the API accepts their cookie, `api::dashboard`).
    pub sessions: Arc<crate::dashboard::Sessions>,
    /// Records trace events (`GET /api/v1/traces/{id}`).
    pub traces: crate::trace::Tracer,
}

/// Requests served, counted by the access-log middleware.
#[derive(Debug, Default)]
pub struct RequestStats {
    count: AtomicU64,
    errors: AtomicU64,
    latency_ms: AtomicU64,
}

impl RequestStats {
    /// Counts one answered request.
    pub fn record(&self, status: u16, latency: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_ms
            .fetch_add(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// `(count, 5xx errors, summed latency ms)` since start.
    pub fn totals(&self) -> (u64, u64, u64) {
        (
            self.count.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.latency_ms.load(Ordering::Relaxed),
        )
    }
}
