//! Tasks across processes and outages: the correlation ID in the log, a worker killed with
//! SIGKILL, PostgreSQL cut off while records are written.

use std::time::Duration;

use crate::agent::{Behaviour, TestAgent};
use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(40);

/// Every line about a task carries the submitting request's correlation ID, in the order of
/// docs/api.md, Logs: received, created, executing, (agent call), completed with its duration.
#[tokio::test]
async fn a_task_logs_under_the_request_correlation_id() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let mut p = TestProcess::start(&env).await;
    let agent = TestAgent::start(Behaviour::Succeed).await;
    let client = reqwest::Client::new();
    let (s, _) = p.put_agent("music", json!({"url": agent.url})).await;
    assert_eq!(s, 201);
    let r = client
        .post(p.url("/api/v1/execute?wait=true"))
        .bearer_auth(TOKEN)
        .header("x-correlation-id", "req-abc123xyz")
        .json(&json!({"domain": "music", "action": "generate-beat"}))
        .send()
        .await
        .unwrap();
    let (s, body) = json(r).await;
    assert_eq!(s, 200, "{body}");
    let id = body["data"]["taskId"].as_str().unwrap().to_string();
    assert_eq!(
        agent.calls()[0].correlation_header.as_deref(),
        Some("req-abc123xyz")
    );
    // The history row carries it too (read before stopping: the recorder is asynchronous).
    let row = eventually_some(LIMIT, "the history row", || async {
        let (_, b) = p
            .api(
                Method::GET,
                &format!("/api/v1/tasks/executions?taskId={id}"),
                None,
            )
            .await;
        b["data"]["items"].get(0).cloned()
    })
    .await;
    assert_eq!(row["correlationId"], "req-abc123xyz");
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(20)).await.success());

    let lines = log_lines(&env.log_file());
    let about_task: Vec<&Value> = lines
        .iter()
        .filter(|l| l["taskId"] == id.as_str())
        .collect();
    assert!(!about_task.is_empty());
    for l in &about_task {
        assert_eq!(l["correlationId"], "req-abc123xyz", "{l}");
    }
    let ours: Vec<String> = lines
        .iter()
        .filter(|l| l["correlationId"] == "req-abc123xyz")
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect();
    let expected = [
        "task received",
        "task created",
        "executing task",
        "calling agent",
        "agent answered",
        "task completed",
    ];
    let mut at = 0;
    for m in &ours {
        if at < expected.len() && m == expected[at] {
            at += 1;
        }
    }
    assert_eq!(at, expected.len(), "sequence not found in {ours:?}");
    let done = lines
        .iter()
        .find(|l| l["correlationId"] == "req-abc123xyz" && l["message"] == "task completed")
        .unwrap();
    assert!(done["durationMs"].is_u64(), "{done}");
    assert_eq!(done["status"], "succeeded");
}

/// Two `jarvis serve` on one PostgreSQL; one is SIGKILLed while it holds running tasks; the
/// survivor finishes every task, the interrupted attempts counted and recorded.
#[tokio::test]
async fn a_killed_worker_loses_no_task() {
    let mut env = TestEnv::new(Backend::Postgres).await;
    env.set("JARVIS_TASK_LEASE_MS", "1000")
        .set("JARVIS_CONCURRENCY", "4")
        .set("JARVIS_QUEUE_PREFETCH", "0")
        .set("JARVIS_TASK_RETRY_BASE_MS", "20");
    let db_url = env.db.as_ref().unwrap().url.clone();
    let agent = TestAgent::start(Behaviour::Delay(Duration::from_millis(300))).await;
    env.set("JARVIS_INSTANCE_ID", "victim");
    let mut victim = TestProcess::start(&env).await;
    let (s, _) = victim.put_agent("music", json!({"url": agent.url})).await;
    assert_eq!(s, 201);
    let tasks: Vec<Value> = (0..24)
        .map(|i| json!({"domain": "music", "action": "x", "parameters": {"i": i}}))
        .collect();
    let batch = victim.submit_batch(json!(tasks)).await;
    let ids: Vec<String> = batch["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskId"].as_str().unwrap().to_string())
        .collect();

    let db = sqlx::PgPool::connect(&db_url).await.unwrap();
    let held: Vec<uuid::Uuid> = eventually_some(LIMIT, "running tasks on the victim", || {
        let db = &db;
        async move {
            let rows: Vec<uuid::Uuid> = sqlx::query_scalar(
                // Called: an attempt whose request had not gone out is given back instead.
                "SELECT id FROM tasks WHERE status = 'running' AND locked_by = 'victim' \
                 AND called_at IS NOT NULL",
            )
            .fetch_all(db)
            .await
            .unwrap();
            (rows.len() >= 2).then_some(rows)
        }
    })
    .await;
    victim.signal("KILL");
    victim.wait_exit(Duration::from_secs(10)).await;
    env.set("JARVIS_INSTANCE_ID", "survivor");
    let survivor = TestProcess::start(&env).await;

    for id in &ids {
        eventually(LIMIT, &format!("task {id} to succeed"), || async {
            let (_, t) = survivor
                .api(Method::GET, &format!("/api/v1/tasks/{id}"), None)
                .await;
            t["data"]["status"] == "succeeded"
        })
        .await;
    }
    // Nothing queued, running or waiting is left.
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status <> 'succeeded'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(left, 0);
    // Each interrupted task: attempts counted, the interrupted attempt in history, then success.
    for id in &held {
        let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
        assert!(attempts >= 2, "task {id}: {attempts} attempts");
        let rows = eventually_some(LIMIT, "the history of an interrupted task", || async {
            let (_, b) = survivor
                .api(
                    Method::GET,
                    &format!("/api/v1/tasks/executions?taskId={id}"),
                    None,
                )
                .await;
            let items = b["data"]["items"].as_array().cloned().unwrap_or_default();
            (items.len() >= 2 && items.iter().any(|r| r["success"] == true)).then_some(items)
        })
        .await;
        let lost = rows
            .iter()
            .find(|r| r["success"] == false)
            .unwrap_or_else(|| panic!("no interrupted attempt for {id}: {rows:?}"));
        assert_eq!(lost["instanceId"], "victim");
        assert!(
            lost["failureReason"]
                .as_str()
                .unwrap()
                .contains("stopped renewing its lease"),
            "{lost}"
        );
    }
    // Every task has a successful execution in history.
    let ok: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT task_id) FROM task_history WHERE success")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(ok, 24);
}

/// PostgreSQL becomes unreachable while attempts finish: their records go to the spool and
/// reach the store once it is back. Every record is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_record_is_lost_while_postgres_is_unreachable() {
    let mut env = TestEnv::new(Backend::Postgres).await;
    let (proxy, real) = env.database_behind_proxy().await;
    let data_dir = std::path::PathBuf::from(&env.vars["JARVIS_DATA_DIR"]);
    let app = TestApp::spawn_with(env).await;
    let agent = TestAgent::start(Behaviour::Succeed).await;
    let (s, _) = app.put_agent("music", json!({"url": agent.url})).await;
    assert_eq!(s, 201);
    const N: usize = 30;
    let tasks: Vec<Value> = (0..N)
        .map(|i| json!({"domain": "music", "action": "x", "parameters": {"hold": true, "i": i}}))
        .collect();
    app.submit_batch(json!(tasks)).await;
    // All N are claimed by this instance (prefetch), 10 are at the agent.
    eventually_some(LIMIT, "10 calls at the agent", || async {
        (agent.calls().len() >= 10).then_some(())
    })
    .await;
    proxy.cut();
    agent.release();
    eventually_some(LIMIT, "every task to reach the agent", || async {
        (agent.calls().len() == N).then_some(())
    })
    .await;
    let spool = data_dir.join("history-spool.jsonl");
    eventually_some(LIMIT, "records in the spool file", || async {
        let n = std::fs::read_to_string(&spool)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        (n == N).then_some(())
    })
    .await;
    proxy.restore();
    let db = sqlx::PgPool::connect(&real).await.unwrap();
    let rows = eventually_some(LIMIT, "every record in PostgreSQL", || {
        let db = &db;
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM task_history")
                .fetch_one(db)
                .await
                .unwrap();
            (n as usize >= N).then_some(n)
        }
    })
    .await;
    assert_eq!(
        rows as usize, N,
        "one record per agent call, none lost, none doubled"
    );
    assert_eq!(agent.calls().len(), N);
    eventually_some(LIMIT, "every task settled", || {
        let db = &db;
        async move {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'succeeded'")
                    .fetch_one(db)
                    .await
                    .unwrap();
            (n as usize == N).then_some(())
        }
    })
    .await;
    assert!(!spool.exists(), "the spool is emptied after replay");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("jarvis_history_records_total{result=\"replayed\"} 30"),
        "{metrics}"
    );
    app.stop().await;
}
