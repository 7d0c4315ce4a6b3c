//! History recording throughput: N execution records through the real [`Recorder`] into the
//! PostgreSQL at `DATABASE_URL` (batched inserts plus rollups), timed from the first record
//! handed over to the moment every record is committed. Used by `bench/history/run.sh`.
//!
//! `cargo run --release -p jarvis --example history_bench -- <records>`

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
    let url =
        std::env::var("DATABASE_URL").map_err(|_| anyhow::anyhow!("DATABASE_URL is required"))?;
    let url = jarvis::config::DatabaseUrl::parse(&url).map_err(|e| anyhow::anyhow!(e))?;
    let store: Arc<dyn Store> = Arc::new(
        jarvis::store::postgres::PostgresStore::connect(&url, Duration::from_secs(10)).await?,
    );
    store.migrate().await?;
    let spool = tempfile_dir();
    let (recorder, task) = Recorder::start(
        store.clone(),
        &spool,
        Arc::new(jarvis::metrics::Metrics::new()),
    );
    let now = jarvis::store::now();
    let records: Vec<ExecutionRecord> = (0..n)
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
                started_at: now,
                finished_at: now,
                timed_out: false,
            };
            if i % 10 == 0 {
                r.with_failure(&format!("timeout after {} ms", 30_000 + i % 97))
            } else {
                r
            }
        })
        .collect();
    let started = Instant::now();
    for r in records {
        recorder.record(r);
    }
    recorder.flush().await;
    let elapsed = started.elapsed();
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

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("jarvis-history-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
