//! Check history: results are queued off the check path and written in batches, with retention.
//!
//! A check hands its result to [`History::record`], which never waits: the result goes into a
//! bounded queue, and when the queue is full (the store is slow or down) it is dropped and
//! counted (`jarvis_health_history_dropped_total`) so memory stays bounded. One writer task
//! drains the queue into multi-row inserts at least every `JARVIS_HEALTH_HISTORY_FLUSH_MS`, and
//! deletes results older than the retention period every few minutes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::check::CheckResult;
use super::metrics::HealthMetrics;
use crate::store::Store;

/// Results waiting to be written, at most (about 200 bytes each).
const QUEUE: usize = 100_000;
/// Results per write (small enough that encoding one batch never holds a runtime thread long).
const BATCH: usize = 1_000;
/// How often old results are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// The sending side of the history: cheap to clone.
#[derive(Clone)]
pub struct History {
    tx: Option<mpsc::Sender<CheckResult>>,
    metrics: HealthMetrics,
}

impl History {
    /// Queues a result for writing; drops (and counts) it when the writer is behind.
    pub fn record(&self, result: CheckResult) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(result).is_err() {
            self.metrics.history_dropped.increment(1);
        }
    }
}

/// The writer task; [`HistoryWriter::stop`] writes what is queued and ends it.
pub struct HistoryWriter {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl HistoryWriter {
    /// Starts the writer. With `retention_hours == 0` history is off: nothing is queued or kept.
    pub fn start(
        store: Arc<dyn Store>,
        instance_id: String,
        retention_hours: u32,
        flush: Duration,
        metrics: HealthMetrics,
    ) -> (History, HistoryWriter) {
        let (stop, stopped) = watch::channel(false);
        if retention_hours == 0 {
            let history = History { tx: None, metrics };
            return (history, HistoryWriter { stop, task: None });
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let history = History {
            tx: Some(tx),
            metrics: metrics.clone(),
        };
        let retention = chrono::Duration::hours(i64::from(retention_hours));
        let task = tokio::spawn(write_loop(
            store,
            instance_id,
            rx,
            stopped,
            flush,
            retention,
            metrics,
        ));
        (
            history,
            HistoryWriter {
                stop,
                task: Some(task),
            },
        )
    }

    /// Writes what is queued, then ends the writer.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

async fn write_loop(
    store: Arc<dyn Store>,
    instance_id: String,
    mut rx: mpsc::Receiver<CheckResult>,
    mut stopped: watch::Receiver<bool>,
    flush: Duration,
    retention: chrono::Duration,
    metrics: HealthMetrics,
) {
    let mut batch: Vec<CheckResult> = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(flush);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first prune runs at start, then every PRUNE_EVERY.
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
                if batch.len() >= BATCH {
                    write(&*store, &instance_id, &mut batch, &metrics).await;
                }
            }
            _ = tick.tick() => {
                write(&*store, &instance_id, &mut batch, &metrics).await;
            }
            _ = prune.tick() => {
                let before = crate::store::now() - retention;
                match store.prune_health_checks(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "old health check results deleted"),
                    Err(e) => tracing::warn!(error = %e, "cannot delete old health check results"),
                }
            }
            _ = stopped.changed() => break,
        }
    }
    while let Ok(r) = rx.try_recv() {
        batch.push(r);
        if batch.len() >= BATCH {
            write(&*store, &instance_id, &mut batch, &metrics).await;
        }
    }
    write(&*store, &instance_id, &mut batch, &metrics).await;
}

async fn write(
    store: &dyn Store,
    instance_id: &str,
    batch: &mut Vec<CheckResult>,
    metrics: &HealthMetrics,
) {
    if batch.is_empty() {
        return;
    }
    match store.insert_health_checks(batch, instance_id).await {
        Ok(()) => metrics.history_written.increment(batch.len() as u64),
        Err(e) => {
            metrics.history_dropped.increment(batch.len() as u64);
            tracing::warn!(error = %e, lost = batch.len(), "cannot write health check results");
        }
    }
    batch.clear();
}
