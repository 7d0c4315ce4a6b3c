//! Agents: who runs a task of a domain. An HTTP agent is a URL that speaks the agent protocol
//! (docs/api.md, Agent protocol); it is registered in the config file or with
//! `PUT /api/v1/agents/{domain}` and kept in the store so every instance uses the same one.
//!
//! An agent can make learned parameters the default of its domain (`useLearned`): a task of the
//! domain submitted without `useLearned` then gets them, one with `"useLearned": false` does not.
//! Submission reads that flag, and whether the domain has an agent at all (a task for a domain
//! without one is refused unless it asks to wait for one), through [`AgentDefaults`], a small
//! cache (never a store read per submitted task).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{Store, StoreError};

pub use crate::model::agent::{AgentInput, AgentSpec, DEFAULT_TIMEOUT_MS};

/// How long a domain's `useLearned` default is reused before the store is asked again. Changes
/// through this instance's API apply at once (the entry is dropped); changes made through
/// another instance reach this one within this time.
pub const DEFAULTS_TTL: Duration = Duration::from_secs(2);

/// Most domains [`AgentDefaults`] remembers at once.
const MAX_DEFAULTS: usize = 10_000;

/// How long "no agent for this domain" is remembered: submissions to a domain without an agent
/// are refused (422), so a registration made through another instance must be seen quickly.
pub const MISSING_TTL: Duration = Duration::from_millis(200);

/// What submission needs to know of each domain's HTTP agent: whether there is one, and its
/// `useLearned` default (false without an agent). Cached for [`DEFAULTS_TTL`] (a missing agent
/// for [`MISSING_TTL`]) so that submission reads the store at most once per domain and TTL,
/// not once per task.
pub struct AgentDefaults {
    ttl: Duration,
    inner: Mutex<DefaultsInner>,
}

#[derive(Default)]
struct DefaultsInner {
    /// Bumped by every invalidation: a read that started before one must not store its answer
    /// (it may predate the change).
    generation: u64,
    /// Per domain: when it was read, and the agent's `useLearned` (`None`: no agent).
    entries: HashMap<String, (Instant, Option<bool>)>,
}

impl Default for AgentDefaults {
    fn default() -> Self {
        AgentDefaults::new(DEFAULTS_TTL)
    }
}

impl AgentDefaults {
    /// An empty cache whose entries live `ttl` (entries for a missing agent at most
    /// [`MISSING_TTL`]).
    pub fn new(ttl: Duration) -> AgentDefaults {
        AgentDefaults {
            ttl,
            inner: Mutex::new(DefaultsInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DefaultsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ttl_of(&self, entry: Option<bool>) -> Duration {
        match entry {
            Some(_) => self.ttl,
            None => self.ttl.min(MISSING_TTL),
        }
    }

    /// The HTTP agent of `domain` as submission sees it: `Some(useLearned)` when one is
    /// registered, `None` when not. From the cache while fresh, else from the store (one
    /// read). When the store cannot be read, a stale entry is used if there is one.
    pub async fn agent(&self, store: &dyn Store, domain: &str) -> Result<Option<bool>, StoreError> {
        let (generation, stale) = {
            let inner = self.lock();
            match inner.entries.get(domain) {
                Some((at, entry)) if at.elapsed() < self.ttl_of(*entry) => return Ok(*entry),
                entry => (inner.generation, entry.map(|(_, e)| *e)),
            }
        };
        let entry = match store.get_agent(domain).await {
            Ok(agent) => agent.map(|a| a.use_learned),
            Err(e) => return stale.ok_or(e),
        };
        let mut inner = self.lock();
        if inner.generation == generation {
            if inner.entries.len() >= MAX_DEFAULTS {
                // Submissions name any domain they like: the map must not grow without bound.
                let ttl = self.ttl;
                inner.entries.retain(|_, (at, _)| at.elapsed() < ttl);
                if inner.entries.len() >= MAX_DEFAULTS {
                    inner.entries.clear();
                }
            }
            inner
                .entries
                .insert(domain.to_string(), (Instant::now(), entry));
        }
        Ok(entry)
    }

    /// Whether tasks of `domain` get learned parameters by default (false without an agent);
    /// see [`AgentDefaults::agent`].
    pub async fn use_learned(&self, store: &dyn Store, domain: &str) -> Result<bool, StoreError> {
        Ok(self.agent(store, domain).await?.unwrap_or(false))
    }

    /// Forgets `domain` (its agent was replaced or removed through this instance).
    pub fn invalidate(&self, domain: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.remove(domain);
    }
}
