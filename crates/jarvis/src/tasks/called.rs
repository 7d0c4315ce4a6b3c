//! Marks attempts as called, durably and in batches, once their request reached the agent.
//!
//! A claimed attempt is only spent once its agent may have been reached. When a worker's
//! request to an HTTP agent has gone out, it hands the attempt to [`CallMarks::mark`] and goes
//! on waiting for the answer; a background task writes the marks of the attempts still waiting
//! after [`MARK_AFTER`] in one statement (`tasks.called_at`), and an attempt answered sooner
//! ([`CallMarks::answered`]) is never written at all: its record and settlement say everything.
//! If the instance dies before a mark is stored, the reclaimer finds none and gives the attempt
//! back instead of recording an interruption (the agent may have the request: delivery is at
//! least once, and attempts never exceed agent calls); if it dies after, the attempt counts and
//! is recorded once (by its holder, or as interrupted by the reclaimer). The worker never waits
//! for a mark, and a mark that arrives after the settlement matches nothing (the attempt number
//! and holder are part of it).
//!
//! Built-in agents run inside the process and die with it, so their attempts are not marked:
//! an instance killed mid-run gives them back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::Store;

/// An attempt answered within this long after its request went out is never marked: an
/// instance dying in that window gives it back. (Most agent calls of a busy queue are shorter;
/// marking each was a tenth of the HTTP-agent throughput, bench/queue/README.md.)
pub const MARK_AFTER: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Pending {
    since: Mutex<HashMap<(Uuid, u32), Instant>>,
    wake: Notify,
}

/// The handle workers mark their attempts through. Cheap to clone.
#[derive(Clone)]
pub struct CallMarks {
    pending: Arc<Pending>,
}

impl CallMarks {
    /// Starts the background writer for `instance`.
    pub fn start(
        store: Arc<dyn Store>,
        instance: String,
    ) -> (CallMarks, tokio::task::JoinHandle<()>) {
        let pending = Arc::new(Pending::default());
        let handle = tokio::spawn(run(store, instance, pending.clone()));
        (CallMarks { pending }, handle)
    }

    /// The request of attempt `attempt` of task `id` went out. Never blocks.
    pub fn mark(&self, id: Uuid, attempt: u32) {
        let was_empty = {
            let mut since = self.pending.since.lock().unwrap_or_else(|e| e.into_inner());
            let was_empty = since.is_empty();
            since.insert((id, attempt), Instant::now());
            was_empty
        };
        if was_empty {
            self.pending.wake.notify_one();
        }
    }

    /// The attempt has its answer (or gave up): a mark not written yet never will be.
    pub fn answered(&self, id: Uuid, attempt: u32) {
        self.pending
            .since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(id, attempt));
    }
}

async fn run(store: Arc<dyn Store>, instance: String, pending: Arc<Pending>) {
    let mut failures = 0u32;
    loop {
        let (due, next) = {
            let mut since = pending.since.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let due: Vec<(Uuid, u32)> = since
                .iter()
                .filter(|(_, at)| now.duration_since(**at) >= MARK_AFTER)
                .map(|(k, _)| *k)
                .collect();
            for k in &due {
                since.remove(k);
            }
            let next = since.values().min().map(|at| *at + MARK_AFTER);
            (due, next)
        };
        if !due.is_empty() {
            // Not retried: a mark matters only until the attempt is settled, and an instance
            // that cannot reach the store keeps its attempts (it settles them once it can).
            match store
                .mark_called(&instance, &due, crate::clock::now())
                .await
            {
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures % 100 == 0 {
                        tracing::warn!(error = %e, attempts = due.len(), failures, "cannot mark attempts as called");
                    }
                }
            }
            continue;
        }
        match next {
            Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
            None => pending.wake.notified().await,
        }
    }
}
