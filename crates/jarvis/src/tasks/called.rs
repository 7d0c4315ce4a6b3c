//! Marks attempts as called, durably and in batches, once their request reached the agent.
//!
//! A claimed attempt is only spent once its agent may have been reached. When a worker's
//! request to an HTTP agent has gone out, it hands the attempt to [`CallMarks::mark`] and goes
//! on waiting for the answer; a background task writes the marks that piled up meanwhile in one
//! statement (`tasks.called_at`). If the instance dies before a mark is stored, the reclaimer
//! finds none and gives the attempt back instead of recording an interruption (the agent may
//! have the request: delivery is at least once, and attempts never exceed agent calls); if it
//! dies after, the attempt counts and is recorded once (by its holder, or as interrupted by the
//! reclaimer). The worker never waits for a mark: its record and settlement may land before
//! or after it, and a mark that arrives after the settlement matches nothing (the attempt
//! number and holder are part of it).
//!
//! Built-in agents run inside the process and die with it, so their attempts are not marked:
//! an instance killed mid-run gives them back.

use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::store::{self, Store};

/// Most marks in one statement.
const MARK_BATCH: usize = 2_000;

/// The handle workers mark their attempts through. Cheap to clone.
#[derive(Clone)]
pub struct CallMarks {
    tx: mpsc::UnboundedSender<(Uuid, u32)>,
}

impl CallMarks {
    /// Starts the background writer for `instance`.
    pub fn start(
        store: Arc<dyn Store>,
        instance: String,
    ) -> (CallMarks, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = tokio::spawn(run(store, instance, rx));
        (CallMarks { tx }, handle)
    }

    /// Queues the mark of attempt `attempt` of task `id`. Never blocks.
    pub fn mark(&self, id: Uuid, attempt: u32) {
        let _ = self.tx.send((id, attempt));
    }
}

async fn run(
    store: Arc<dyn Store>,
    instance: String,
    mut rx: mpsc::UnboundedReceiver<(Uuid, u32)>,
) {
    let mut failures = 0u32;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MARK_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        // Not retried: a mark matters only until the attempt is settled, and an instance
        // that cannot reach the store keeps its attempts (it settles them once it can).
        match store.mark_called(&instance, &batch, store::now()).await {
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                if failures == 1 || failures % 100 == 0 {
                    tracing::warn!(error = %e, attempts = batch.len(), failures, "cannot mark attempts as called");
                }
            }
        }
    }
}
