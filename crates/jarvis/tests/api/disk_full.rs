//! The embedded store on a full disk: the data directory on a small tmpfs, submissions until
//! it is full, then space given back. Every task answered 2xx exists and finishes, every
//! attempt has its record, `/health` says `fail` while full and `pass` after, and the process
//! is never restarted.
//!
//! Mounting a tmpfs needs root (CI runs as root); without it the test fails with a message,
//! it never skips.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agent::{Behaviour, TestAgent};
use crate::helpers::*;
use serde_json::{json, Value};

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs (it needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `dir` with a ballast file until a write fails.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("ballast");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // Whatever is left below one chunk, byte by byte.
    while f.write_all(&[0u8]).is_ok() {}
    let _ = f.sync_all();
    path
}

async fn health(client: &reqwest::Client, p: &TestProcess) -> (u16, Value) {
    json(client.get(p.url("/health")).send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_no_acknowledged_task() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let data = env.dir.path().join("data");
    let _tmpfs = Tmpfs::mount(&data, "24m");
    env.set("JARVIS_HEALTH_MONITOR", "false")
        .set("JARVIS_TASK_LEASE_MS", "3000");
    let p = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    let (s, _) = health(&client, &p).await;
    assert_eq!(s, 200);

    // Some work before the disk fills, then the disk fills.
    let submit = |i: usize| {
        let client = client.clone();
        let url = p.url("/api/v1/tasks/batch");
        async move {
            let tasks: Vec<Value> = (0..50)
                .map(|j| json!({"domain": "noop", "action": "fill", "parameters": {"i": i, "j": j, "pad": "x".repeat(400)}}))
                .collect();
            let r = client
                .post(url)
                .bearer_auth(TOKEN)
                .json(&json!({"tasks": tasks}))
                .send()
                .await
                .unwrap();
            json(r).await
        }
    };
    let mut acknowledged: Vec<String> = Vec::new();
    for i in 0..5 {
        let (s, b) = submit(i).await;
        assert_eq!(s, 202, "{b}");
        for t in b["data"]["tasks"].as_array().unwrap() {
            acknowledged.push(t["taskId"].as_str().unwrap().to_string());
        }
    }
    // Attempts that finish while the disk is full: their records can go neither to the store
    // nor to the spool file (it is on the same disk), their settlements wait.
    let agent = TestAgent::start(Behaviour::Succeed).await;
    let r = client
        .put(p.url("/api/v1/agents/music"))
        .bearer_auth(TOKEN)
        .json(&json!({"url": agent.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let held: Vec<Value> = (0..8)
        .map(|i| json!({"domain": "music", "action": "held", "parameters": {"hold": true, "i": i}}))
        .collect();
    let r = client
        .post(p.url("/api/v1/tasks/batch"))
        .bearer_auth(TOKEN)
        .json(&json!({"tasks": held}))
        .send()
        .await
        .unwrap();
    let (s, b) = json(r).await;
    assert_eq!(s, 202, "{b}");
    for t in b["data"]["tasks"].as_array().unwrap() {
        acknowledged.push(t["taskId"].as_str().unwrap().to_string());
    }
    eventually(
        Duration::from_secs(20),
        "the held calls at the agent",
        || async { agent.calls().len() == 8 },
    )
    .await;
    let ballast = fill(&data);
    agent.release();
    let mut refused = 0;
    let mut full_code_seen = false;
    for i in 5..200 {
        let (s, b) = submit(i).await;
        match s {
            202 => {
                for t in b["data"]["tasks"].as_array().unwrap() {
                    acknowledged.push(t["taskId"].as_str().unwrap().to_string());
                }
            }
            503 => {
                refused += 1;
                assert_eq!(b["success"], false, "{b}");
                if b["error"]["code"] == "storage_full" {
                    full_code_seen = true;
                }
            }
            other => panic!("submission {i}: unexpected {other}: {b}"),
        }
        if refused >= 20 {
            break;
        }
    }
    assert!(
        refused >= 20,
        "the full disk refused submissions ({refused})"
    );
    assert!(full_code_seen, "a refusal said storage_full");
    let (s, b) = health(&client, &p).await;
    assert_eq!(s, 503, "/health fails while writes fail: {b}");
    let metrics = client
        .get(p.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("jarvis_history_memory_records 8"),
        "the held attempts' records wait in memory: {}",
        metrics
            .lines()
            .filter(|l| l.starts_with("jarvis_history"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(b["data"]["status"], "fail", "{b}");

    // Space comes back: everything recovers by itself.
    std::fs::remove_file(&ballast).unwrap();
    eventually(Duration::from_secs(30), "/health to pass again", || async {
        let (s, b) = health(&client, &p).await;
        s == 200 && b["data"]["status"] == "pass"
    })
    .await;
    let (s, b) = submit(1000).await;
    assert_eq!(s, 202, "submissions work again: {b}");
    for t in b["data"]["tasks"].as_array().unwrap() {
        acknowledged.push(t["taskId"].as_str().unwrap().to_string());
    }
    for id in &acknowledged {
        let task = eventually_some(
            Duration::from_secs(60),
            &format!("task {id} to succeed"),
            || async {
                let r = client
                    .get(p.url(&format!("/api/v1/tasks/{id}")))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap();
                let (s, t) = json(r).await;
                assert_ne!(s, 404, "acknowledged task {id} was not stored");
                (t["data"]["status"] == "succeeded").then(|| t["data"].clone())
            },
        )
        .await;
        let attempts = task["attempts"].as_u64().unwrap();
        eventually(
            Duration::from_secs(60),
            &format!("the records of task {id}"),
            || async {
                let r = client
                    .get(p.url(&format!("/api/v1/tasks/executions?taskId={id}&limit=100")))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap();
                let (_, b) = json(r).await;
                b["data"]["items"].as_array().map(|a| a.len() as u64) == Some(attempts)
            },
        )
        .await;
    }
    eprintln!(
        "{} tasks acknowledged, {refused} submissions refused while full",
        acknowledged.len()
    );
}

/// The log directory on a full disk: the lines that do not fit are lost, but none is cut in
/// two (a cut line used to run on into the first line written once there was space again, and
/// neither could be read: bench/chaos, disk-full-log), requests are answered meanwhile, and
/// logging resumes by itself once there is space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_disk_cuts_no_line() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let logs = env.dir.path().join("logs");
    let _tmpfs = Tmpfs::mount(&logs, "1m");
    env.set("JARVIS_HEALTH_MONITOR", "false");
    let mut p = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    let run = |i: usize, correlation: &'static str| {
        let client = client.clone();
        let url = p.url("/api/v1/execute?wait=true");
        async move {
            let r = client
                .post(url)
                .bearer_auth(TOKEN)
                .header("x-correlation-id", correlation)
                .json(&json!({"domain": "noop", "action": "log", "parameters": {"i": i}}))
                .send()
                .await
                .unwrap();
            json(r).await
        }
    };
    let ballast = fill(&logs);
    // While the disk is full: the lines fill what is left of the log file's last page, the one
    // that crosses its end does not fit, the rest are lost; every request is answered.
    for i in 0..50 {
        let (s, b) = run(i, "req-while-full").await;
        assert_eq!(s, 200, "{b}");
    }
    std::fs::remove_file(&ballast).unwrap();
    let (s, b) = run(50, "req-after-full").await;
    assert_eq!(s, 200, "{b}");
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(20)).await.success());

    let text = std::fs::read_to_string(env.log_file()).unwrap();
    for line in text.lines() {
        if let Err(e) = serde_json::from_str::<Value>(line) {
            panic!("a log line cut by the full disk ({e}): {line:?}");
        }
    }
    assert!(
        text.contains("\"correlationId\":\"req-after-full\""),
        "logging resumed once there was space"
    );
}
