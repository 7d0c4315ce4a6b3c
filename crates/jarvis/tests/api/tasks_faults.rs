//! The queue's attempt invariants under faults, with real processes: an instance SIGKILLed
//! while its agent calls are in flight (and, on PostgreSQL, the database gone for 8 s
//! meanwhile). Afterwards every task succeeded, the attempts add up to the history rows, no
//! attempt has two records, nothing ran again after its success was recorded, and no attempt
//! was spent without an agent call.

use std::collections::HashMap;
use std::time::Duration;

use crate::agent::{Behaviour, TestAgent};
use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(90);

/// Registers `agent` as the HTTP agent of domain `music` through `p`.
async fn register_music_agent(p: &TestProcess, agent: &TestAgent) {
    let (s, b) = p.put_agent("music", json!({"url": agent.url})).await;
    assert_eq!(s, 201, "{b}");
}

/// Submits `n` tasks of a `music` agent in batches of 50 through `p`; returns their IDs.
async fn submit(p: &TestProcess, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for start in (0..n).step_by(50) {
        let tasks: Vec<Value> = (start..(start + 50).min(n))
            .map(|i| json!({"domain": "music", "action": "render", "parameters": {"i": i}, "maxAttempts": 10}))
            .collect();
        let batch = p.submit_batch(json!(tasks)).await;
        for t in batch["tasks"].as_array().unwrap() {
            ids.push(t["taskId"].as_str().unwrap().to_string());
        }
    }
    ids
}

/// Waits until every task succeeded and its records are all stored, then checks the
/// invariants against the agent's own count of calls per task.
async fn check_invariants(p: &TestProcess, ids: &[String], agent: &TestAgent) {
    let mut tasks = Vec::with_capacity(ids.len());
    for id in ids {
        tasks.push(
            eventually_some(LIMIT, &format!("task {id} to succeed"), || async {
                let (_, t) = p
                    .api(Method::GET, &format!("/api/v1/tasks/{id}"), None)
                    .await;
                (t["data"]["status"] == "succeeded").then(|| t["data"].clone())
            })
            .await,
        );
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
    for (id, task) in ids.iter().zip(&tasks) {
        let attempts = task["attempts"].as_u64().unwrap();
        // The records of a task reach the store asynchronously: wait until they add up.
        let records = eventually_some(
            Duration::from_secs(30),
            &format!("{attempts} records of task {id}"),
            || async {
                let (_, b) = p
                    .api(
                        Method::GET,
                        &format!("/api/v1/tasks/executions?taskId={id}&limit=100"),
                        None,
                    )
                    .await;
                let items = b["data"]["items"].as_array().cloned().unwrap_or_default();
                (items.len() as u64 >= attempts).then_some(items)
            },
        )
        .await;
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

/// Waits until `instance` has at least two agent calls in flight (running tasks it holds whose
/// request went out).
async fn calls_in_flight(db: &sqlx::PgPool, instance: &str) {
    eventually(LIMIT, &format!("calls in flight on {instance}"), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasks WHERE status = 'running' AND locked_by = $1 \
             AND called_at IS NOT NULL",
        )
        .bind(instance)
        .fetch_one(db)
        .await
        .unwrap();
        n >= 2
    })
    .await
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
    // Calls long enough that the ones seen in flight are still in flight when the SIGKILL
    // lands, also on a loaded machine (with 40 ms they sometimes finished in between, and the
    // victim had nothing left to be interrupted).
    let agent = TestAgent::start(Behaviour::Delay(Duration::from_millis(150))).await;
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
    register_music_agent(&survivor, &agent).await;
    let ids = submit(&survivor, 600).await;

    // Kill the victim while it has calls in flight.
    let db = sqlx::PgPool::connect(&real).await.unwrap();
    calls_in_flight(&db, "victim").await;
    victim.signal("KILL");
    victim.wait_exit(Duration::from_secs(10)).await;
    // Then the database goes away for 8 s while the survivor has calls in flight. The 8 s are
    // the outage itself (a deliberate window), not a wait for an event.
    calls_in_flight(&db, "survivor").await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(8)).await;
    proxy.restore();

    check_invariants(&survivor, &ids, &agent).await;
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

/// Starts an instance on the embedded store of `env` (concurrency 10), submits `n` tasks of a
/// 500 ms agent, and SIGKILLs it once the first round was answered: the next calls are in
/// flight and more tasks are claimed ahead of the workers. Returns the task IDs and the agent.
async fn sqlite_killed_mid_call(env: &mut TestEnv, n: usize) -> (Vec<String>, TestAgent) {
    env.set("JARVIS_CONCURRENCY", "10")
        .set("JARVIS_TASK_RETRY_BASE_MS", "20")
        .set("JARVIS_HEALTH_MONITOR", "false");
    let agent = TestAgent::start(Behaviour::Delay(Duration::from_millis(500))).await;
    let mut first = TestProcess::start(env).await;
    register_music_agent(&first, &agent).await;
    let ids = submit(&first, n).await;
    eventually(
        LIMIT,
        "calls after the first round was answered",
        || async { agent.calls().len() > 10 },
    )
    .await;
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10)).await;
    (ids, agent)
}

/// The embedded store: one instance SIGKILLed while its calls are in flight (with tasks
/// claimed ahead of its workers), then started again on the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_and_restart_keeps_one_record_per_attempt() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set("JARVIS_TASK_LEASE_MS", "2000");
    let (ids, agent) = sqlite_killed_mid_call(&mut env, 60).await;
    let again = TestProcess::start(&env).await;
    check_invariants(&again, &ids, &agent).await;
}

/// The embedded store with the default lease (30 s): started again after a SIGKILL, `serve`
/// holds the data directory's lock, so the tasks the dead process left running are taken back
/// at once, not when their leases expire, with the same invariants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart_takes_back_the_dead_process_tasks_at_once() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let (ids, agent) = sqlite_killed_mid_call(&mut env, 40).await;
    // Down for a while: an interrupted attempt's duration must not count the downtime.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted = std::time::Instant::now();
    let again = TestProcess::start(&env).await;
    check_invariants(&again, &ids, &agent).await;
    let took = restarted.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the tasks left running took {took:?} to finish: they waited for their 30 s leases"
    );
    let said = log_lines(&env.log_file()).into_iter().any(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("took back the tasks a previous process"))
    });
    assert!(said, "the restart said what it took back");
    // The calls in flight at the kill were interrupted; their records say how they were found.
    let (_, b) = again
        .api(
            Method::GET,
            "/api/v1/tasks/executions?success=false&limit=100",
            None,
        )
        .await;
    let interrupted: Vec<&Value> = b["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["failureReason"]
                .as_str()
                .is_some_and(|m| m.contains("interrupted"))
        })
        .collect();
    for r in &interrupted {
        // The holder was last known alive at its last lease renewal (< 2 s into the run).
        assert!(
            r["durationMs"].as_u64().unwrap() < 2_500,
            "an interrupted attempt counted the downtime: {r}"
        );
    }
    let reasons: Vec<&str> = interrupted
        .iter()
        .filter_map(|r| r["failureReason"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("taken back when serve started again")),
        "no interrupted record says it was taken back at the restart: {reasons:?}"
    );
}

/// A restart after SIGKILL serves the API while it takes back what the dead process left: the
/// take-back first stores the dead process's history spool, which after a long outage can take
/// seconds, and only the workers wait for it. `/health` answers before the take-back ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart_serves_the_api_while_it_takes_back() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let (ids, agent) = sqlite_killed_mid_call(&mut env, 20).await;
    // The spool a crash during a long outage leaves (100,000 records of earlier tasks).
    let data = std::path::PathBuf::from(&env.vars["JARVIS_DATA_DIR"]);
    let at = chrono::Utc::now() - chrono::TimeDelta::minutes(5);
    let mut spool = String::new();
    for _ in 0..100_000 {
        let record = success_record("spooled", "run", at, 3);
        spool.push_str(&serde_json::to_string(&record).unwrap());
        spool.push('\n');
    }
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join(jarvis::history::recorder::SPOOL_FILE))
        .and_then(|mut f| f.write_all(spool.as_bytes()))
        .unwrap();
    let again = TestProcess::start(&env).await;
    let healthy_at = chrono::Utc::now();
    check_invariants(&again, &ids, &agent).await;
    let took_back_at = log_lines(&env.log_file())
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("took back the tasks a previous process"))
        })
        .filter_map(|l| l["timestamp"].as_str().map(str::to_string))
        .next_back()
        .expect("the restart said what it took back");
    let took_back_at = chrono::DateTime::parse_from_rfc3339(&took_back_at).unwrap();
    assert!(
        healthy_at < took_back_at,
        "/health answered at {healthy_at}, only after the take-back ended at {took_back_at}"
    );
    let (_, b) = again
        .api(
            Method::GET,
            "/api/v1/tasks/executions?domain=spooled&limit=1",
            None,
        )
        .await;
    assert_eq!(b["data"]["items"].as_array().map(Vec::len), Some(1), "{b}");
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
