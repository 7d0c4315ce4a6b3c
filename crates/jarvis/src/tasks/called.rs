//! Marks attempts as called, durably and in batches, before their agent is called.
//!
//! A claimed attempt is only spent once its agent may have been reached. The worker asks
//! [`CallMarks::mark`] just before it calls an HTTP agent; the mark (`tasks.called_at`) is
//! committed before the answer comes back. If the instance dies before that, the reclaimer
//! finds no mark and gives the attempt back instead of recording an interruption; if it dies
//! after, the attempt counts and is recorded once (by its holder, or as interrupted by the
//! reclaimer). Marks that pile up while one is written go out together in the next statement,
//! so the cost is one round trip per batch, not per attempt.
//!
//! Built-in agents run inside the process and die with it, so their attempts are not marked:
//! an instance killed mid-run gives them back.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::store::{self, Store};

/// Most marks in one statement.
const MARK_BATCH: usize = 2_000;

/// What became of a mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marked {
    /// Stored: the agent may be called.
    Held,
    /// The task is no longer held by this instance at this attempt (cancelled, reclaimed):
    /// its agent must not be called.
    Lost,
    /// The store could not be reached: the attempt is given back, its agent not called.
    StoreError(String),
}

struct Request {
    id: Uuid,
    attempt: u32,
    reply: oneshot::Sender<Marked>,
}

/// The handle workers mark their attempts through. Cheap to clone.
#[derive(Clone)]
pub struct CallMarks {
    tx: mpsc::UnboundedSender<Request>,
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

    /// Marks attempt `attempt` of task `id` as called; waits until that is stored.
    pub async fn mark(&self, id: Uuid, attempt: u32) -> Marked {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request { id, attempt, reply }).is_err() {
            return Marked::StoreError("the queue is shutting down".into());
        }
        rx.await
            .unwrap_or_else(|_| Marked::StoreError("the queue is shutting down".into()))
    }
}

async fn run(store: Arc<dyn Store>, instance: String, mut rx: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MARK_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let attempts: Vec<(Uuid, u32)> = batch.iter().map(|r| (r.id, r.attempt)).collect();
        match store.mark_called(&instance, &attempts, store::now()).await {
            Ok(held) => {
                let held: std::collections::HashSet<Uuid> = held.into_iter().collect();
                for r in batch {
                    let m = if held.contains(&r.id) {
                        Marked::Held
                    } else {
                        Marked::Lost
                    };
                    let _ = r.reply.send(m);
                }
            }
            Err(e) => {
                let e = e.to_string();
                for r in batch {
                    let _ = r.reply.send(Marked::StoreError(e.clone()));
                }
            }
        }
    }
}
