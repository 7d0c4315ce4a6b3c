//! The queue's attempt invariants under faults, with real processes: an instance SIGKILLed
//! while its agent calls are in flight (and, on PostgreSQL, the database gone for 8 s
//! meanwhile). Afterwards every task succeeded, the attempts add up to the history rows, no
//! attempt has two records, nothing ran again after its success was recorded, and no attempt
//! was spent without an agent call.

use std::collections::HashMap;
use std::time::Duration;

use crate::agent::{Behaviour, TestAgent};
use crate::helpers::*;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(90);

async fn api(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = client.request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    json(r.send().await.unwrap()).await
}

/// Registers `agent` as the HTTP agent of domain `music` through `base`.
async fn register_music_agent(client: &reqwest::Client, base: &str, agent: &TestAgent) {
    let (s, b) = api(
        client,
        reqwest::Method::PUT,
        format!("{base}/api/v1/agents/music"),
        Some(json!({"url": agent.url})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
}

/// Submits `n` tasks of a `music` agent in batches of 50 through `base`; returns their IDs.
async fn submit(client: &reqwest::Client, base: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for start in (0..n).step_by(50) {
        let tasks: Vec<Value> = (start..(start + 50).min(n))
            .map(|i| json!({"domain": "music", "action": "render", "parameters": {"i": i}, "maxAttempts": 10}))
            .collect();
        let (s, b) = api(
            client,
            reqwest::Method::POST,
            format!("{base}/api/v1/tasks/batch"),
            Some(json!({"tasks": tasks})),
        )
        .await;
        assert_eq!(s, 202, "{b}");
        for t in b["data"]["tasks"].as_array().unwrap() {
            ids.push(t["taskId"].as_str().unwrap().to_string());
        }
    }
    ids
}

/// Waits until every task succeeded and its records are all stored, then checks the
/// invariants against the agent's own count of calls per task.
async fn check_invariants(client: &reqwest::Client, base: &str, ids: &[String], agent: &TestAgent) {
    for id in ids {
        eventually_some(LIMIT, &format!("task {id} to succeed"), || async {
            let (_, t) = api(
                client,
                reqwest::Method::GET,
                format!("{base}/api/v1/tasks/{id}"),
                None,
            )
            .await;
            (t["data"]["status"] == "succeeded").then_some(())
        })
        .await;
    }
    // Every call the agent received, now that nothing runs any more.
    let mut calls: HashMap<String, usize> = HashMap::new();
    for c in agent.calls() {
        *calls
            .entry(c.body["taskId"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let mut total_attempts = 0u64;
    let mut total_records = 0u64;
    for id in ids {
        let task = eventually_some(LIMIT, &format!("task {id} to succeed"), || async {
            let (_, t) = api(
                client,
                reqwest::Method::GET,
                format!("{base}/api/v1/tasks/{id}"),
                None,
            )
            .await;
            (t["data"]["status"] == "succeeded").then(|| t["data"].clone())
        })
        .await;
        let attempts = task["attempts"].as_u64().unwrap();
        // The records of a task reach the store asynchronously: wait until they add up.
        let started = std::time::Instant::now();
        let records = loop {
            let (_, b) = api(
                client,
                reqwest::Method::GET,
                format!("{base}/api/v1/tasks/executions?taskId={id}&limit=100"),
                None,
            )
            .await;
            let items = b["data"]["items"].as_array().cloned().unwrap_or_default();
            if items.len() as u64 >= attempts || started.elapsed() > Duration::from_secs(30) {
                break items;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            records.len() as u64,
            attempts,
            "task {id}: one record per attempt: {records:?} (task {task})"
        );
        let mut numbers: Vec<u64> = records
            .iter()
            .map(|r| r["attempt"].as_u64().unwrap())
            .collect();
        numbers.sort_unstable();
        let expected: Vec<u64> = (1..=attempts).collect();
        assert_eq!(
            numbers, expected,
            "task {id}: attempts 1..={attempts}, none twice"
        );
        let successes: Vec<&Value> = records.iter().filter(|r| r["success"] == true).collect();
        assert_eq!(
            successes.len(),
            1,
            "task {id}: exactly one success: {records:?}"
        );
        assert_eq!(
            successes[0]["attempt"].as_u64().unwrap(),
            attempts,
            "task {id}: nothing ran after its success was recorded"
        );
        let called = calls.get(id).copied().unwrap_or(0) as u64;
        assert!(
            attempts <= called,
            "task {id}: {attempts} attempts but {called} agent calls (an attempt spent without a call): {records:?}"
        );
        total_attempts += attempts;
        total_records += records.len() as u64;
    }
    assert_eq!(total_attempts, total_records);
    eprintln!(
        "{} tasks: {total_attempts} attempts, {total_records} records, {} agent calls",
        ids.len(),
        agent.calls().len()
    );
}

/// Two instances on one PostgreSQL (reached through a proxy the test can cut); one is
/// SIGKILLed while its calls are in flight, then the database is unreachable for 8 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_and_outage_keep_one_record_per_attempt() {
    let mut env = TestEnv::new(Backend::Postgres).await;
    let (proxy, real) = env.database_behind_proxy().await;
    env.set("JARVIS_TASK_LEASE_MS", "2000")
        .set("JARVIS_CONCURRENCY", "8")
        .set("JARVIS_TASK_RETRY_BASE_MS", "20")
        .set("JARVIS_HEALTH_MONITOR", "false");
    let agent = TestAgent::start(Behaviour::Delay(Duration::from_millis(40))).await;
    let base_dir = env.dir.path().to_path_buf();
    env.set("JARVIS_INSTANCE_ID", "victim").set(
        "JARVIS_DATA_DIR",
        &base_dir.join("victim").display().to_string(),
    );
    let mut victim = TestProcess::start(&env).await;
    env.set("JARVIS_INSTANCE_ID", "survivor").set(
        "JARVIS_DATA_DIR",
        &base_dir.join("survivor").display().to_string(),
    );
    let survivor = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    register_music_agent(&client, &survivor.url(""), &agent).await;
    let ids = submit(&client, &survivor.url(""), 600).await;

    // Kill the victim while it has calls in flight.
    let db = sqlx::PgPool::connect(&real).await.unwrap();
    eventually_some(LIMIT, "calls in flight on the victim", || {
        let db = &db;
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM tasks WHERE status = 'running' AND locked_by = 'victim' \
                 AND called_at IS NOT NULL",
            )
            .fetch_one(db)
            .await
            .unwrap();
            (n >= 2).then_some(())
        }
    })
    .await;
    victim.signal("KILL");
    victim.wait_exit(Duration::from_secs(10)).await;
    // Then the database goes away for 8 s while the survivor works.
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(8)).await;
    proxy.restore();

    check_invariants(&client, &survivor.url(""), &ids, &agent).await;
    let interrupted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM task_history WHERE instance_id = 'victim' AND NOT success",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(
        interrupted >= 2,
        "the victim's calls in flight were recorded as interrupted"
    );
}

/// The embedded store: one instance SIGKILLed while its calls are in flight (with tasks
/// claimed ahead of its workers), then started again on the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_and_restart_keeps_one_record_per_attempt() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set("JARVIS_TASK_LEASE_MS", "2000")
        .set("JARVIS_CONCURRENCY", "10")
        .set("JARVIS_TASK_RETRY_BASE_MS", "20")
        .set("JARVIS_HEALTH_MONITOR", "false");
    let agent = TestAgent::start(Behaviour::Delay(Duration::from_millis(500))).await;
    let mut first = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    register_music_agent(&client, &first.url(""), &agent).await;
    let ids = submit(&client, &first.url(""), 60).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!agent.calls().is_empty(), "calls were in flight");
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10)).await;
    let again = TestProcess::start(&env).await;
    check_invariants(&client, &again.url(""), &ids, &agent).await;
}

/// `?wait=true` answered by an instance that does not run the task hears of its settlement
/// through the store (NOTIFY), not by polling: every answer comes well before the 500 ms
/// fallback poll could have fired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_on_another_instance_is_answered_at_once() {
    let mut env = TestEnv::new(Backend::Postgres).await;
    env.set("JARVIS_HEALTH_MONITOR", "false");
    let base_dir = env.dir.path().to_path_buf();
    env.set("JARVIS_WORKERS_ENABLED", "false").set(
        "JARVIS_DATA_DIR",
        &base_dir.join("api").display().to_string(),
    );
    let api_only = TestProcess::start(&env).await;
    env.set("JARVIS_WORKERS_ENABLED", "true").set(
        "JARVIS_DATA_DIR",
        &base_dir.join("worker").display().to_string(),
    );
    let _worker = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    let mut took = Vec::new();
    for i in 0..12 {
        let started = std::time::Instant::now();
        let (s, b) = api(
            &client,
            reqwest::Method::POST,
            api_only.url("/api/v1/execute?wait=true"),
            Some(json!({"domain": "noop", "action": "wait", "parameters": {"i": i}})),
        )
        .await;
        took.push(started.elapsed());
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["data"]["status"], "succeeded", "{b}");
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median < Duration::from_millis(150),
        "median {median:?} of {took:?}: the waiter was not told of the settlement"
    );
}
