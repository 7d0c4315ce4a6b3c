//! The recorder: execution records are written in batches, off the hot path, and never lost.
//!
//! [`Recorder::record`] only queues the record (it never waits and never fails). One background
//! task takes whatever has accumulated (up to [`MAX_BATCH`]) and writes it with one
//! `insert_history` call, so batches grow with load and add no delay when idle. When the store
//! cannot take a batch, the batch is appended to a local spool file (JSON lines, fsynced) under
//! the data directory, and so is every later batch until the spool has been replayed into the
//! store. Replaying is idempotent: each record carries its own `record_id`, which the store
//! keeps unique, so a batch written twice (a timeout after a commit, a crash during replay) is
//! stored once. A record the store refuses outright (not an outage) is moved to
//! `history-spool.rejected.jsonl` with an error line rather than blocking the spool forever.
//!
//! When neither the store nor the spool file can take a batch (the disk is full), the records
//! stay in memory (at most [`MEMORY_LIMIT`], counted in `jarvis_history_memory_records`) and
//! are retried every [`REPLAY_EVERY`], first into the store, then into the spool.
//!
//! The learner sees each record once it is stored (written, or replayed from a spool, also
//! one left by an earlier run), so what it learns is what the history holds.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::record::ExecutionRecord;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Most records in one write.
pub const MAX_BATCH: usize = 2_000;
/// How often a non-empty spool is retried.
const REPLAY_EVERY: Duration = Duration::from_millis(500);
/// A write that takes longer than this is treated as failed (and spooled; replay is idempotent).
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// Batches of at least this many records are written as two halves, in two concurrent
/// transactions. The history insert is CPU-bound on one PostgreSQL backend (index maintenance);
/// two let it use two cores. Their rollup upserts meet on the same rows, and both take them
/// table by table in key order, so the second waits for the first's commit and never
/// deadlocks. If one half fails the whole batch goes to the spool; replaying it stores the
/// other half's records once, since `record_id` is unique. (On SQLite the halves simply take
/// turns on the single writer.)
const SPLIT_AT: usize = 1_000;
/// Most records kept in memory when neither the store nor the spool file takes them; beyond
/// that the oldest are dropped (counted as `dropped`, logged).
pub const MEMORY_LIMIT: usize = 200_000;
/// The spool file's name in the data directory.
pub const SPOOL_FILE: &str = "history-spool.jsonl";

/// Names of the history metrics.
pub mod names {
    /// Counter: records by what became of them (written, spooled, replayed, rejected).
    pub const RECORDS: &str = "jarvis_history_records_total";
    /// Gauge: records waiting in the local spool file.
    pub const SPOOLED: &str = "jarvis_history_spool_records";
    /// Gauge: records held in memory because neither the store nor the spool took them.
    pub const MEMORY: &str = "jarvis_history_memory_records";
    /// Histogram: duration of one batch write, seconds.
    pub const WRITE: &str = "jarvis_history_write_duration_seconds";
}

enum Msg {
    Record(Box<ExecutionRecord>),
    Flush(oneshot::Sender<()>),
    Stop,
}

/// Something that wants every batch of records the recorder stores (the learner). Called from
/// the recorder's background task once a batch is in the store: it must not block.
pub trait BatchObserver: Send + Sync {
    /// Sees one stored batch (each record once, unless a write that timed out after its
    /// commit is written again).
    fn observe(&self, records: &[ExecutionRecord]);
}

/// Several observers (the learner, the agent domains' trip forecasts), each given every batch.
impl BatchObserver for Vec<Arc<dyn BatchObserver>> {
    fn observe(&self, records: &[ExecutionRecord]) {
        for observer in self {
            observer.observe(records);
        }
    }
}

/// The handle through which tasks hand over their records. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Msg>,
    /// Records queued so far. Counted under this lock together with the send, so that a count
    /// read anywhere covers every record queued before it, in the channel's order.
    queued: Arc<std::sync::Mutex<u64>>,
    /// Records the writer has finished with (stored, spooled or kept in memory), in the order
    /// they were queued.
    processed: watch::Receiver<u64>,
}

/// The background writer's join handle; [`RecorderTask::stop`] drains and flushes it.
pub struct RecorderTask {
    handle: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Starts the writer. `spool_dir` holds the spool file (created when first needed); a
    /// spool left by an earlier run is replayed first.
    pub fn start(
        store: Arc<dyn Store>,
        spool_dir: &Path,
        metrics: Arc<Metrics>,
    ) -> (Recorder, RecorderTask) {
        Recorder::start_observed(store, spool_dir, metrics, None)
    }

    /// [`Recorder::start`], handing every batch to `observer` as well.
    pub fn start_observed(
        store: Arc<dyn Store>,
        spool_dir: &Path,
        metrics: Arc<Metrics>,
        observer: Option<Arc<dyn BatchObserver>>,
    ) -> (Recorder, RecorderTask) {
        metrics.describe(
            names::RECORDS,
            None,
            "Execution records by outcome: written, spooled, replayed, rejected.",
        );
        metrics.describe(
            names::SPOOLED,
            None,
            "Execution records waiting in the local spool file for the store.",
        );
        metrics.describe(
            names::MEMORY,
            None,
            "Execution records held in memory because neither the store nor the spool file took them.",
        );
        metrics.describe(
            names::WRITE,
            Some(metrics::Unit::Seconds),
            "Duration of one batched history write.",
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let (processed_tx, processed) = watch::channel(0);
        let writer = Writer {
            store,
            spool: Spool::new(spool_dir.join(SPOOL_FILE)),
            metrics,
            observer,
            processed: processed_tx,
        };
        let handle = tokio::spawn(writer.run(rx));
        (
            Recorder {
                tx,
                queued: Arc::new(std::sync::Mutex::new(0)),
                processed,
            },
            RecorderTask { handle },
        )
    }

    /// Queues a record. Never blocks, never fails (after shutdown the record is logged).
    pub fn record(&self, record: ExecutionRecord) {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        let sent = self.tx.send(Msg::Record(Box::new(record)));
        *queued += 1;
        drop(queued);
        if let Err(mpsc::error::SendError(Msg::Record(r))) = sent {
            tracing::error!(
                record_id = %r.record_id,
                task_id = %r.task_id,
                "execution record after the recorder stopped; not stored"
            );
        }
    }

    /// How many records were queued so far (a mark for [`Recorder::written`]).
    pub fn queued(&self) -> u64 {
        *self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the writer is done with the first `mark` records queued ([`queued`]): they
    /// are in the store or the spool file (or, when neither takes them, held in memory, as
    /// after a [`flush`]). Unlike a flush, it does not wait for records queued after the mark,
    /// nor for a batch of its own: a caller that must not get ahead of the records (the
    /// settler: a settled task has its record) waits only as long as needed. Returns at once
    /// when the writer is gone.
    ///
    /// [`queued`]: Recorder::queued
    /// [`flush`]: Recorder::flush
    pub async fn written(&self, mark: u64) {
        let mut processed = self.processed.clone();
        let _ = processed.wait_for(|&n| n >= mark).await;
    }

    /// Waits until every record queued before this call is in the store or the spool file.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

impl RecorderTask {
    /// Flushes everything queued so far (to the store, else the spool) and stops the writer.
    /// Records queued afterwards are logged as lost, so stop the producers first.
    pub async fn stop(self, recorder: Recorder) {
        recorder.flush().await;
        let _ = recorder.tx.send(Msg::Stop);
        let _ = self.handle.await;
    }
}

struct Writer {
    store: Arc<dyn Store>,
    spool: Spool,
    metrics: Arc<Metrics>,
    observer: Option<Arc<dyn BatchObserver>>,
    /// Tells [`Recorder::written`] how many records, in queue order, are done with.
    processed: watch::Sender<u64>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut last_replay = Instant::now() - REPLAY_EVERY;
        self.spool.count_existing();
        self.gauge();
        loop {
            let first = if self.spool.pending > 0 || !self.spool.memory.is_empty() {
                match tokio::time::timeout(REPLAY_EVERY, rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        self.replay().await;
                        last_replay = Instant::now();
                        continue;
                    }
                }
            } else {
                rx.recv().await
            };
            let Some(first) = first else { break };
            let mut batch = Vec::new();
            let mut flushes = Vec::new();
            let mut stopping = false;
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m {
                    Msg::Record(r) => batch.push(*r),
                    Msg::Flush(f) => flushes.push(f),
                    Msg::Stop => {
                        stopping = true;
                        break;
                    }
                }
                if batch.len() >= MAX_BATCH {
                    break;
                }
                next = rx.try_recv().ok();
            }
            if (self.spool.pending > 0 || !self.spool.memory.is_empty())
                && last_replay.elapsed() >= REPLAY_EVERY
            {
                self.replay().await;
                last_replay = Instant::now();
            }
            if !batch.is_empty() {
                let n = batch.len() as u64;
                self.write(batch).await;
                self.processed.send_modify(|done| *done += n);
            }
            if !flushes.is_empty() && (self.spool.pending > 0 || !self.spool.memory.is_empty()) {
                // A flush (shutdown) gives the spool one more chance to reach the store.
                self.replay().await;
                last_replay = Instant::now();
            }
            for f in flushes {
                let _ = f.send(());
            }
            if stopping {
                break;
            }
        }
        if !self.spool.memory.is_empty() {
            tracing::error!(
                records = self.spool.memory.len(),
                "history records held in memory could not be stored nor spooled; they are lost"
            );
        }
        if self.spool.pending > 0 {
            tracing::warn!(
                records = self.spool.pending,
                spool = %self.spool.path.display(),
                "history records remain in the spool file; they are written at the next start"
            );
        }
    }

    fn gauge(&self) {
        self.metrics
            .gauge(names::SPOOLED, &[])
            .set(self.spool.pending as f64);
        self.metrics
            .gauge(names::MEMORY, &[])
            .set(self.spool.memory.len() as f64);
    }

    fn observe(&self, records: &[ExecutionRecord]) {
        if let Some(observer) = &self.observer {
            observer.observe(records);
        }
    }

    fn count(&self, result: &'static str, n: usize) {
        if n > 0 {
            self.metrics
                .counter(names::RECORDS, &[("result", result)])
                .increment(n as u64);
        }
    }

    async fn insert(&self, batch: &[ExecutionRecord]) -> Result<u64, StoreError> {
        let started = Instant::now();
        let write = async {
            if batch.len() >= SPLIT_AT {
                let (a, b) = batch.split_at(batch.len() / 2);
                let (a, b) =
                    tokio::join!(self.store.insert_history(a), self.store.insert_history(b));
                Ok(a? + b?)
            } else {
                self.store.insert_history(batch).await
            }
        };
        let result = match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} s",
                WRITE_TIMEOUT.as_secs()
            ))),
        };
        self.metrics
            .histogram(names::WRITE, &[])
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn write(&mut self, batch: Vec<ExecutionRecord>) {
        if self.spool.pending == 0 && self.spool.memory.is_empty() {
            match self.insert(&batch).await {
                Ok(_) => {
                    self.count("written", batch.len());
                    self.observe(&batch);
                    return;
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        records = batch.len(),
                        spool = %self.spool.path.display(),
                        "cannot write execution records; keeping them in the local spool file"
                    );
                }
            }
        }
        self.keep(batch);
    }

    /// Spools `batch` (after whatever memory holds), or, when even that fails, keeps it in
    /// memory.
    fn keep(&mut self, batch: Vec<ExecutionRecord>) {
        let n = batch.len();
        match self.spool.append(&batch) {
            Ok(()) => self.count("spooled", n),
            Err(e) => {
                // Nowhere durable is left: keep them in memory and try again shortly.
                tracing::error!(
                    error = %e,
                    records = n,
                    in_memory = self.spool.memory.len() + n,
                    "cannot write the history spool file; keeping the records in memory"
                );
                self.spool.memory.extend(batch);
                let over = self.spool.memory.len().saturating_sub(MEMORY_LIMIT);
                if over > 0 {
                    self.spool.memory.drain(..over);
                    self.count("dropped", over);
                    tracing::error!(
                        records = over,
                        limit = MEMORY_LIMIT,
                        "history records dropped: memory limit reached with no store and no spool"
                    );
                }
            }
        }
        self.gauge();
    }

    /// Writes the spool into the store. Stops at the first outage; keeps the file until every
    /// record is stored (or rejected).
    async fn replay(&mut self) {
        if !self.spool.memory.is_empty() {
            let held = std::mem::take(&mut self.spool.memory);
            match self.insert(&held).await {
                Ok(_) => {
                    self.count("written", held.len());
                    self.observe(&held);
                    tracing::info!(
                        records = held.len(),
                        "history records held in memory stored"
                    );
                    self.gauge();
                }
                Err(_) => {
                    // Still no store: perhaps the spool file can take them now.
                    self.keep(held);
                    return;
                }
            }
        }
        if self.spool.pending == 0 {
            return;
        }
        let records = match self.spool.read_all() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the history spool file");
                return;
            }
        };
        let mut rejected = Vec::new();
        // Records of the file stored by an earlier, interrupted replay are skipped (the file
        // only grows while it is pending), so the learner sees each once.
        let done = self.spool.replayed.min(records.len());
        for chunk in records[done..].chunks(MAX_BATCH) {
            match self.insert(chunk).await {
                Ok(_) => {
                    self.observe(chunk);
                    self.spool.replayed += chunk.len();
                }
                Err(e) if e.is_transient() => return,
                Err(e) => {
                    tracing::warn!(error = %e, "a spooled batch was refused; retrying record by record");
                    for r in chunk {
                        match self.insert(std::slice::from_ref(r)).await {
                            Ok(_) => self.observe(std::slice::from_ref(r)),
                            Err(e) if e.is_transient() => return,
                            Err(e) => rejected.push((r.clone(), e.to_string())),
                        }
                    }
                    self.spool.replayed += chunk.len();
                }
            }
        }
        if !rejected.is_empty() {
            if let Err(e) = self.spool.reject(&rejected) {
                tracing::error!(error = %e, "cannot write the rejected-records file");
                return;
            }
            self.count("rejected", rejected.len());
        }
        let n = records.len();
        if let Err(e) = self.spool.clear() {
            tracing::error!(error = %e, "cannot empty the history spool file");
            return;
        }
        self.count("replayed", n - rejected.len());
        tracing::info!(
            records = n,
            rejected = rejected.len(),
            "history spool replayed into the store"
        );
        self.gauge();
    }
}

/// The spool file (plus, if even the file cannot be written, records kept in memory).
struct Spool {
    path: PathBuf,
    pending: usize,
    /// How many of the file's first records a replay already stored.
    replayed: usize,
    memory: Vec<ExecutionRecord>,
}

impl Spool {
    fn new(path: PathBuf) -> Spool {
        Spool {
            path,
            pending: 0,
            replayed: 0,
            memory: Vec::new(),
        }
    }

    fn count_existing(&mut self) {
        if let Ok(f) = std::fs::File::open(&self.path) {
            self.pending = std::io::BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter(|l| !l.trim().is_empty())
                .count();
            if self.pending > 0 {
                tracing::info!(
                    records = self.pending,
                    spool = %self.path.display(),
                    "found history records spooled by an earlier run; replaying them"
                );
            }
        }
    }

    fn append(&mut self, batch: &[ExecutionRecord]) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            crate::files::create_dir(dir)?;
        }
        let mut text = Vec::with_capacity(batch.len() * 400);
        for r in self.memory.iter().chain(batch) {
            serde_json::to_writer(&mut text, r)?;
            text.push(b'\n');
        }
        let mut f = crate::files::open_append(&self.path)?;
        f.write_all(&text)?;
        f.sync_data()?;
        self.pending += self.memory.len() + batch.len();
        self.memory.clear();
        Ok(())
    }

    fn read_all(&self) -> std::io::Result<Vec<ExecutionRecord>> {
        let f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for line in std::io::BufReader::new(f).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(r) => out.push(r),
                // Only a line torn by a crash mid-write can fail to parse; its batch was not
                // acknowledged as spooled, so nothing acknowledged is lost.
                Err(e) => tracing::warn!(error = %e, "skipping a torn line in the history spool"),
            }
        }
        Ok(out)
    }

    fn reject(&self, rejected: &[(ExecutionRecord, String)]) -> std::io::Result<()> {
        let mut path = self.path.clone().into_os_string();
        path.push(".rejected");
        let mut f = crate::files::open_append(&PathBuf::from(path))?;
        for (r, error) in rejected {
            let line = serde_json::json!({ "record": r, "error": error });
            writeln!(f, "{line}")?;
        }
        f.sync_data()
    }

    fn clear(&mut self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.pending = 0;
        self.replayed = 0;
        Ok(())
    }
}
