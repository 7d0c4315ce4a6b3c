//! Check history: results are queued off the check path and written in batches, with retention.
//!
//! A check hands its result to [`History::record`], which never waits: the result goes into a
//! queue bounded by bytes ([`QUEUE_BYTES`], each result counted with its strings), and when the
//! queue is full (the store is slow or down) it is dropped and counted
//! (`jarvis_health_history_dropped_total`) so memory stays bounded whatever the messages hold. One writer task
//! drains the queue into multi-row inserts at least every `JARVIS_HEALTH_HISTORY_FLUSH_MS`, and
//! deletes results older than the retention period every few minutes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::check::CheckResult;
use super::metrics::HealthMetrics;
use crate::store::Store;

/// Bytes of results waiting to be written, at most: about 60,000 typical results (3 s of
/// 20,000 checks/s), whatever their messages hold.
pub const QUEUE_BYTES: usize = 8 << 20;
/// Results per write (small enough that encoding one batch never holds a runtime thread long).
const BATCH: usize = 1_000;
/// How often old results are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// The sending side of the history: cheap to clone.
#[derive(Clone)]
pub struct History {
    tx: Option<mpsc::UnboundedSender<CheckResult>>,
    /// Bytes queued (see [`cost`]); the writer subtracts what it takes.
    queued: Arc<AtomicUsize>,
    metrics: HealthMetrics,
}

/// What a queued result holds in memory, approximately.
fn cost(r: &CheckResult) -> usize {
    std::mem::size_of::<CheckResult>()
        + r.message.capacity()
        + r.service.as_str().len()
        + r.correlation_id.as_ref().map_or(0, |c| c.as_str().len())
}

impl History {
    /// Queues a result for writing; drops (and counts) it when the writer is behind.
    pub fn record(&self, result: CheckResult) {
        let Some(tx) = &self.tx else { return };
        let bytes = cost(&result);
        if self.queued.fetch_add(bytes, Ordering::Relaxed) + bytes > QUEUE_BYTES {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
            self.metrics.history_dropped.increment(1);
            return;
        }
        if tx.send(result).is_err() {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
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
        let queued = Arc::new(AtomicUsize::new(0));
        if retention_hours == 0 {
            let history = History {
                tx: None,
                queued,
                metrics,
            };
            return (history, HistoryWriter { stop, task: None });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let history = History {
            tx: Some(tx),
            queued: queued.clone(),
            metrics: metrics.clone(),
        };
        let retention = chrono::Duration::hours(i64::from(retention_hours));
        let task = tokio::spawn(write_loop(
            store,
            instance_id,
            Queue { rx, queued },
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

/// The receiving side: results and the bytes they hold.
struct Queue {
    rx: mpsc::UnboundedReceiver<CheckResult>,
    queued: Arc<AtomicUsize>,
}

impl Queue {
    /// Takes up to `limit` results into `batch` (0: the senders are gone).
    async fn recv_many(&mut self, batch: &mut Vec<CheckResult>, limit: usize) -> usize {
        let from = batch.len();
        let n = self.rx.recv_many(batch, limit).await;
        self.taken(&batch[from..]);
        n
    }

    fn try_recv(&mut self) -> Option<CheckResult> {
        let r = self.rx.try_recv().ok()?;
        self.taken(std::slice::from_ref(&r));
        Some(r)
    }

    fn taken(&self, results: &[CheckResult]) {
        let bytes: usize = results.iter().map(cost).sum();
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
    }
}

async fn write_loop(
    store: Arc<dyn Store>,
    instance_id: String,
    mut rx: Queue,
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
                let before = crate::clock::now() - retention;
                match store.prune_health_checks(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "old health check results deleted"),
                    Err(e) => tracing::warn!(error = %e, "cannot delete old health check results"),
                }
            }
            _ = stopped.changed() => break,
        }
    }
    while let Some(r) = rx.try_recv() {
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
