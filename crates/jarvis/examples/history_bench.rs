//! History recording throughput: N execution records through the real [`Recorder`] into the
//! PostgreSQL at `DATABASE_URL` (batched inserts plus rollups), timed from the first record
//! handed over to the moment every record is committed. Used by `bench/history/run.sh`.
//!
//! `cargo run --release -p jarvis --example history_bench -- <records>`
//!
//! With `HISTORY_BENCH_SQLITE=<file>` instead of `DATABASE_URL`, the same into the embedded
//! SQLite store at that file (created if missing).
//!
//! `… -- <records> retention`: first stores `<records>` records that finished 40 days ago
//! (untimed), then records `<records>` new ones while the retention job's statement
//! (`purge_history`, chunks of 10,000, as `history::retention_loop` runs it) deletes the old
//! ones as fast as it can: prints the recording rate under retention and the deletion rate.
//! Retention keeps up with ingest when it deletes at least as fast as records arrive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jarvis::history::{ExecutionRecord, Recorder};
use jarvis::store::Store;
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let store: Arc<dyn Store> = match std::env::var("HISTORY_BENCH_SQLITE") {
        Ok(file) => Arc::new(jarvis::store::sqlite::SqliteStore::open(file.as_ref()).await?),
        Err(_) => {
            let url = std::env::var("DATABASE_URL").map_err(|_| {
                anyhow::anyhow!("DATABASE_URL (or HISTORY_BENCH_SQLITE) is required")
            })?;
            let url = jarvis::config::DatabaseUrl::parse(&url).map_err(|e| anyhow::anyhow!(e))?;
            Arc::new(
                jarvis::store::postgres::PostgresStore::connect(&url, Duration::from_secs(10))
                    .await?,
            )
        }
    };
    store.migrate().await?;
    let spool = tempfile_dir();
    let (recorder, task) = Recorder::start(
        store.clone(),
        &spool,
        Arc::new(jarvis::metrics::Metrics::new()),
    );
    let retention = std::env::args().nth(2).as_deref() == Some("retention");
    let now = jarvis::store::now();
    if retention {
        let old = now - chrono::TimeDelta::days(40);
        for r in make(n, old) {
            recorder.record(r);
        }
        recorder.flush().await;
        let stored = store.count_executions(None).await?;
        anyhow::ensure!(stored as usize == n, "preload: {stored} of {n} stored");
    }
    let records = make(n, now);
    let purge = retention.then(|| {
        let store = store.clone();
        tokio::spawn(async move {
            let cutoff = jarvis::store::now() - chrono::TimeDelta::days(30);
            let started = Instant::now();
            let mut deleted = 0u64;
            loop {
                let d = store.purge_history(cutoff, 10_000).await?;
                deleted += d;
                if d < 10_000 {
                    break;
                }
            }
            Ok::<_, jarvis::store::StoreError>((deleted, started.elapsed()))
        })
    });
    let started = Instant::now();
    for r in records {
        recorder.record(r);
    }
    recorder.flush().await;
    let elapsed = started.elapsed();
    if let Some(purge) = purge {
        let (deleted, took) = purge.await??;
        let stored = store.count_executions(None).await?;
        task.stop(recorder).await;
        anyhow::ensure!(deleted as usize == n, "retention deleted {deleted} of {n}");
        anyhow::ensure!(
            stored as usize == n,
            "expected {n} records left, found {stored}"
        );
        println!(
            "{}",
            json!({
                "records": n,
                "recordingSeconds": elapsed.as_secs_f64(),
                "recordsPerSecUnderRetention": (n as f64 / elapsed.as_secs_f64()).round(),
                "deleted": deleted,
                "deletingSeconds": took.as_secs_f64(),
                "deletedPerSec": (deleted as f64 / took.as_secs_f64()).round(),
            })
        );
        return Ok(());
    }
    let stored = store.count_executions(None).await?;
    task.stop(recorder).await;
    if stored as usize != n {
        anyhow::bail!("expected {n} records in the store, found {stored}");
    }
    println!(
        "{}",
        json!({"records": n, "seconds": elapsed.as_secs_f64(), "recordsPerSec": (n as f64 / elapsed.as_secs_f64()).round()})
    );
    Ok(())
}

/// `n` records that finished at `at`, as the queue writes them (10 % failures).
fn make(n: usize, at: chrono::DateTime<chrono::Utc>) -> Vec<ExecutionRecord> {
    (0..n)
        .map(|i| {
            let r = ExecutionRecord {
                record_id: uuid::Uuid::now_v7(),
                task_id: uuid::Uuid::now_v7(),
                domain: format!("domain{}", i % 4),
                action: format!("action{}", i % 3),
                attempt: 1,
                parameters: json!({"i": i % 100, "genre": "jazz"}),
                learned_parameters: None,
                success: i % 10 != 0,
                duration_ms: (i % 500) as u64,
                impact_score: Some((i % 100) as f64),
                failure_reason: None,
                failure_group: None,
                cost_usd: Some(0.001),
                correlation_id: Some(format!("req-bench{i}")),
                instance_id: Some("bench".into()),
                started_at: at,
                finished_at: at,
                timed_out: false,
                model_call: None,
            };
            if i % 10 == 0 {
                r.with_failure(&format!("timeout after {} ms", 30_000 + i % 97))
            } else {
                r
            }
        })
        .collect()
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("jarvis-history-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
