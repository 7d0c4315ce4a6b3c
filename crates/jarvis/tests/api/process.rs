//! Tests of the real `jarvis` binary: configuration errors, secrets, logging, shutdown.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use crate::helpers::*;

fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_bad_value_exits_non_zero_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, expected) in [
        (
            "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
            "abc",
            "invalid CIRCUIT_BREAKER_FAILURE_THRESHOLD=\"abc\": expected a whole number",
        ),
        (
            "PORT",
            "99999",
            "invalid PORT=\"99999\": expected a whole number from 0 to 65535",
        ),
        ("LOG_LEVEL", "shout", "invalid LOG_LEVEL=\"shout\""),
        (
            "CIRCUIT_BREAKER_ENABLED",
            "perhaps",
            "invalid CIRCUIT_BREAKER_ENABLED=\"perhaps\"",
        ),
    ] {
        let out = run_jarvis(&["serve"], &env_of(&[(var, value)]), dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value} was accepted");
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr.contains(expected), "{var}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    }
    // Production without a token refuses to start.
    let out = run_jarvis(
        &["serve"],
        &env_of(&[("NODE_ENV", "production")]),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing JARVIS_AUTH_TOKEN"));
}

#[test]
fn config_check_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let vars = env_of(&[
        (
            "DATABASE_URL",
            "postgres://app:pw-hunter2-pw@127.0.0.1:5432/jarvis",
        ),
        ("JARVIS_AUTH_TOKEN", "tok-hunter3-0123456789"),
        ("ANTHROPIC_API_KEY", "sk-ant-hunter4"),
    ]);
    let out = run_jarvis(&["config", "check"], &vars, dir.path());
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in ["pw-hunter2-pw", "tok-hunter3-0123456789", "sk-ant-hunter4"] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        view["store"]["url"],
        "postgres://app:***@127.0.0.1:5432/jarvis"
    );
    assert_eq!(view["authToken"], "***");
}

#[test]
fn an_unreachable_database_names_host_and_database_but_not_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens there
    let vars = env_of(&[
        (
            "DATABASE_URL",
            &format!("postgres://jarvis:pw-hunter5-pw@127.0.0.1:{port}/jarvisdb"),
        ),
        ("JARVIS_DB_CONNECT_TIMEOUT_MS", "600"),
        ("JARVIS_AUTH_TOKEN", TOKEN),
        (
            "JARVIS_LOG_DIR",
            &dir.path().join("logs").display().to_string(),
        ),
    ]);
    let out = run_jarvis(&["serve"], &vars, dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs = std::fs::read_to_string(dir.path().join("logs/jarvis-combined.log")).unwrap();
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.contains("jarvisdb"), "{stderr}");
    assert!(stderr.contains("attempt(s)"), "retried: {stderr}");
    for text in [&*stderr, &*stdout, &logs] {
        assert!(!text.contains("pw-hunter5-pw"), "password leaked: {text}");
    }
    // The retries were logged (and every one of those lines carries a correlation ID).
    assert!(logs.contains("PostgreSQL is not reachable yet"), "{logs}");
}

/// Every line has a correlation ID; a request's lines carry the caller's ID; a hostile header
/// value is replaced and never written.
#[tokio::test]
async fn every_log_line_carries_a_correlation_id() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let mut p = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    let r = client
        .get(p.url("/api/v1/unknown"))
        .header("x-correlation-id", "req-abc123xyz")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let hostile = "evil\"},{\"level\":\"ERROR\",\"message\":\"forged";
    let r = client
        .get(p.url("/health"))
        .header(
            "x-correlation-id",
            reqwest::header::HeaderValue::from_bytes(hostile.as_bytes()).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(20)).await.success());

    let lines = log_lines(&env.log_file());
    assert!(lines.len() >= 4, "{lines:?}");
    for line in &lines {
        for key in ["timestamp", "level", "message", "target", "correlationId"] {
            assert!(line.get(key).is_some(), "{key} missing: {line}");
        }
    }
    let ours: Vec<_> = lines
        .iter()
        .filter(|l| l["correlationId"] == "req-abc123xyz")
        .collect();
    let access = ours
        .iter()
        .find(|l| l["message"] == "request completed")
        .expect("access line");
    assert_eq!(access["status"], 404);
    assert_eq!(access["method"], "GET");
    assert_eq!(access["path"], "/api/v1/unknown");
    assert!(access["durationMs"].is_u64());
    let text = std::fs::read_to_string(env.log_file()).unwrap();
    assert!(!text.contains("forged"), "hostile header reached the log");
    assert!(text.contains("replaced an invalid X-Correlation-ID"));
    // Stdout carries the same JSON lines.
    assert!(p.stdout().contains("req-abc123xyz"));
}

/// SIGTERM while a request is in flight: the request finishes, then Jarvis exits 0.
/// `LOG_FORMAT=pretty` with stdout redirected to a file: readable lines, no colour codes.
#[tokio::test]
async fn pretty_logs_written_to_a_file_carry_no_colour_codes() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set("LOG_FORMAT", "pretty");
    let mut p = TestProcess::start(&env).await;
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(20)).await.success());
    let out = p.stdout();
    assert!(out.contains("shutdown requested"), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "ANSI escape codes in a file: {out:?}"
    );
    // Pretty, not JSON.
    assert!(!out.trim_start().starts_with('{'), "{out}");
}

#[tokio::test]
async fn sigterm_lets_a_slow_request_finish() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let mut p = TestProcess::start(&env).await;
    // A request whose body arrives slowly. `Expect: 100-continue` makes the server say when
    // its handler starts reading the body: from then on the request is in flight.
    let body = br#"{"url":"http://127.0.0.1:9/health"}"#;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "PUT /api/v1/services/slowsvc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut continued = Vec::new();
    while !continued.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).expect("100 Continue");
        continued.push(byte[0]);
    }
    let continued = String::from_utf8_lossy(&continued);
    assert!(continued.starts_with("HTTP/1.1 100"), "{continued}");
    stream.write_all(&body[..10]).unwrap();
    p.signal("TERM");
    eventually(Duration::from_secs(10), "the shutdown to begin", || async {
        p.stdout().contains("shutdown requested")
    })
    .await;
    // Shutting down, it waits for the request: it must not exit during this window.
    stays(
        Duration::from_millis(500),
        "jarvis stays up while a request is in flight",
        || {
            let running = p.child.try_wait().unwrap().is_none();
            async move { running }
        },
    )
    .await;
    stream.write_all(&body[10..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let status = p.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    // New connections are refused once it is gone.
    assert!(std::net::TcpStream::connect(("127.0.0.1", p.port)).is_err());
}

/// The EMF lines on stdout satisfy the specification's required fields, whatever the log level
/// and format: the alarms built on them must not go silent because the log was turned down
/// (issue 16).
#[tokio::test]
async fn emf_metric_lines_follow_the_specification() {
    for (level, format) in [("info", "json"), ("error", "json"), ("error", "pretty")] {
        emf_lines_at(level, format).await;
    }
}

async fn emf_lines_at(level: &str, format: &str) {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set("JARVIS_EMF_INTERVAL_MS", "150")
        .set("JARVIS_METRICS_NAMESPACE", "JarvisTest")
        .set("LOG_LEVEL", level)
        .set("LOG_FORMAT", format);
    let mut p = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        client.get(p.url("/health")).send().await.unwrap();
    }
    let emf_lines = |text: String| -> Vec<serde_json::Value> {
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l.get("_aws").is_some())
            .collect()
    };
    eventually(
        Duration::from_secs(10),
        &format!("two EMF lines on stdout at LOG_LEVEL={level} LOG_FORMAT={format}"),
        || {
            let n = emf_lines(p.stdout()).len();
            async move { n >= 2 }
        },
    )
    .await;
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(20)).await.success());
    let emf = emf_lines(p.stdout());
    // Their own writer: not in the log file (nor twice on stdout).
    assert!(
        !log_lines(&env.log_file())
            .iter()
            .any(|l| l.get("_aws").is_some()),
        "an EMF line in the log file"
    );
    for line in &emf {
        assert_eq!(line["message"], "metrics", "{line}");
        let aws = &line["_aws"];
        assert!(aws["Timestamp"].is_i64(), "{line}");
        let directives = aws["CloudWatchMetrics"]
            .as_array()
            .expect("CloudWatchMetrics");
        assert!(!directives.is_empty());
        for d in directives {
            assert_eq!(d["Namespace"], "JarvisTest");
            for set in d["Dimensions"].as_array().expect("Dimensions") {
                for dim in set.as_array().expect("a dimension set") {
                    assert!(
                        line.get(dim.as_str().unwrap()).is_some(),
                        "dimension value missing"
                    );
                }
            }
            let metrics = d["Metrics"].as_array().expect("Metrics");
            for m in metrics {
                let name = m["Name"].as_str().unwrap();
                assert!(
                    line[name].is_number(),
                    "{name} has no top-level value: {line}"
                );
            }
            let names: Vec<_> = metrics
                .iter()
                .map(|m| m["Name"].as_str().unwrap())
                .collect();
            for wanted in [
                "CircuitBreakersOpen",
                "CircuitStateChanges",
                "RejectedCalls",
                "TasksCompleted",
                "TaskFailureRate",
                "TaskDurationMs",
                "CostPerTask",
                "RequestLatencyMs",
                "ErrorRate",
                "PredictedTrips",
                "TasksPerHour",
                "QueuedTasks",
                "LogLinesError",
                "LogLinesWarn",
                "LogLinesInfo",
                "LogLinesDebug",
                "CorrelationCoverage",
            ] {
                assert!(names.contains(&wanted), "{wanted} missing");
            }
        }
        assert!(line.get("correlationId").is_some());
    }
}

// The files Jarvis writes are its own user's only (issue 17): the SQLite database and its WAL
// and shared-memory files, the development token, the log file, and the directories it made;
// a database file an older version left world-readable is narrowed when Jarvis opens it again.
#[cfg(unix)]
#[tokio::test]
async fn the_files_jarvis_writes_are_its_users_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let mut env = TestEnv::new(Backend::Sqlite).await;
    // No token configured: a development instance keeps the one it generates in a file.
    env.vars.remove("JARVIS_AUTH_TOKEN");
    let data = env.dir.path().join("data");
    let logs = env.dir.path().join("logs");
    let p = TestProcess::start(&env).await;
    let token = std::fs::read_to_string(data.join("dev-token")).unwrap();
    let (s, _) = json(
        reqwest::Client::new()
            .put(p.url("/api/v1/agents/files"))
            .bearer_auth(token.trim())
            .json(&serde_json::json!({"url": "http://127.0.0.1:9/run"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201);
    for dir in [&data, &logs] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    for file in [
        data.join("jarvis.db"),
        data.join("jarvis.db-wal"),
        data.join("jarvis.db-shm"),
        data.join("dev-token"),
        logs.join("jarvis-combined.log"),
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    p.signal("TERM");
    let mut p = p;
    p.wait_exit(Duration::from_secs(30)).await;

    // An older version's world-readable database is narrowed at the next start.
    std::fs::set_permissions(
        data.join("jarvis.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let p = TestProcess::start(&env).await;
    assert_eq!(mode(&data.join("jarvis.db")), 0o600);
    p.signal("TERM");
}
