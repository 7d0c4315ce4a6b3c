//! Tasks end to end: a real HTTP agent on 127.0.0.1, the real server, both backends.

use std::time::{Duration, Instant};

use crate::agent::{Behaviour, TestAgent};
use crate::both_backends;
use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(20);

async fn register(app: &TestApp, domain: &str, agent: &TestAgent) {
    let (s, body) = app
        .put_agent(domain, json!({"url": agent.url, "timeoutMs": 5000}))
        .await;
    assert!(s == 200 || s == 201, "{body}");
}

async fn submit(app: &TestApp, body: Value) -> (u16, Value) {
    json(app.send_json(Method::POST, "/api/v1/execute", &body).await).await
}

async fn until_status(app: &TestApp, id: &str, status: &str) -> Value {
    eventually_some(LIMIT, &format!("task {id} to be {status}"), || async {
        let t = app.task(id).await;
        (t["status"] == status).then_some(t)
    })
    .await
}

async fn executions(app: &TestApp, query: &str) -> Vec<Value> {
    let (s, body) = json(app.get(&format!("/api/v1/tasks/executions?{query}")).await).await;
    assert_eq!(s, 200, "{body}");
    body["data"]["items"].as_array().unwrap().clone()
}

/// Waits for the `n` history rows of a task (the recorder is asynchronous), oldest first.
async fn history_of(app: &TestApp, id: &str, n: usize) -> Vec<Value> {
    let mut rows = app.history_rows(id, n).await;
    rows.reverse();
    assert_eq!(rows.len(), n, "{rows:?}");
    rows
}

/// Submits a task that the agent holds until released and waits until it is at the agent (the
/// first call); returns its ID.
async fn hold_the_agent(app: &TestApp, agent: &TestAgent) -> String {
    let (s, b) = submit(
        app,
        json!({"domain": "music", "action": "x", "parameters": {"hold": true}}),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    eventually(LIMIT, "the held task at the agent", || async {
        !agent.calls().is_empty()
    })
    .await;
    b["data"]["taskId"].as_str().unwrap().to_string()
}

fn ms(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str().unwrap().parse().unwrap()
}

async fn app_with(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
    let mut env = TestEnv::new(backend).await;
    env.set("JARVIS_TASK_RETRY_BASE_MS", "40");
    for (k, v) in vars {
        env.set(k, v);
    }
    TestApp::spawn_with(env).await
}

both_backends!(
    a_task_succeeds_through_an_http_agent,
    |backend| async move {
        let app = app_with(backend, &[]).await;
        let agent = TestAgent::start(Behaviour::Succeed).await;
        register(&app, "music", &agent).await;
        let r = app
            .client
            .post(app.url("/api/v1/execute?wait=true"))
            .bearer_auth(TOKEN)
            .header("x-correlation-id", "req-success01")
            .json(
                &json!({"domain": "music", "action": "generate-beat", "parameters": {"bpm": 120}}),
            )
            .send()
            .await
            .unwrap();
        let (s, body) = json(r).await;
        assert_eq!(s, 200, "{body}");
        let t = &body["data"];
        assert_eq!(t["status"], "succeeded");
        assert_eq!(t["attempts"], 1);
        assert_eq!(t["correlationId"], "req-success01");
        assert_eq!(t["result"], json!({"echo": {"bpm": 120}}));
        assert!(t["durationMs"].is_u64());
        // The agent protocol, exactly.
        let calls = agent.calls();
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        assert_eq!(call.correlation_header.as_deref(), Some("req-success01"));
        let mut keys: Vec<&String> = call.body.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "action",
                "attempt",
                "correlationId",
                "domain",
                "parameters",
                "taskId"
            ]
        );
        assert_eq!(call.body["taskId"], t["taskId"]);
        assert_eq!(call.body["attempt"], 1);
        assert_eq!(call.body["correlationId"], "req-success01");
        // History row with the correlation ID, and stats.
        let id = t["taskId"].as_str().unwrap();
        let rows = history_of(&app, id, 1).await;
        assert_eq!(rows[0]["correlationId"], "req-success01");
        assert_eq!(rows[0]["success"], true);
        assert_eq!(rows[0]["impactScore"], 80.0);
        let (_, stats) = json(
            app.get("/api/v1/tasks/history?domain=music&action=generate-beat")
                .await,
        )
        .await;
        let st = &stats["data"];
        assert_eq!(st["total"], 1, "{st}");
        assert_eq!(st["successRate"], 1.0);
        assert_eq!(st["avgImpactScore"], 80.0);
        assert_eq!(st["totalCostUsd"], 0.01);
        assert_eq!(st["optimalParameters"], json!({"bpm": 120}));
        assert!(st["lastExecutedAt"].is_string());
        assert!(st["p95DurationMs"].is_u64());
        app.stop().await;
    }
);

both_backends!(failures_are_retried_with_backoff, |backend| async move {
    let app = app_with(backend, &[]).await;
    let agent = TestAgent::start(Behaviour::Fail("render failed after".into())).await;
    register(&app, "music", &agent).await;
    let (s, body) = submit(
        &app,
        json!({"domain": "music", "action": "render", "maxAttempts": 3}),
    )
    .await;
    assert_eq!(s, 202, "{body}");
    let id = body["data"]["taskId"].as_str().unwrap().to_string();
    let t = until_status(&app, &id, "failed").await;
    assert_eq!(t["attempts"], 3);
    assert!(t["error"]
        .as_str()
        .unwrap()
        .starts_with("render failed after"));
    let calls = agent.calls();
    assert_eq!(calls.len(), 3);
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c.body["attempt"], i as u64 + 1);
    }
    // Exponential backoff with equal jitter: at least base/2, then base (40 ms base).
    let gap1 = calls[1].at - calls[0].at;
    let gap2 = calls[2].at - calls[1].at;
    assert!(gap1 >= Duration::from_millis(20), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(40), "{gap2:?}");
    let rows = history_of(&app, &id, 3).await;
    let attempts: Vec<u64> = rows
        .iter()
        .map(|r| r["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(rows.iter().all(|r| r["success"] == false));
    // The three messages differ in their numbers but form one failure group.
    let (_, stats) = json(
        app.get("/api/v1/tasks/history?domain=music&action=render")
            .await,
    )
    .await;
    let reasons = stats["data"]["commonFailureReasons"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert_eq!(reasons[0]["count"], 3);
    assert_eq!(reasons[0]["reason"], "render failed after <num> ms");
    assert_eq!(stats["data"]["failed"], 3);
    app.stop().await;
});

both_backends!(a_slow_agent_times_out, |backend| async move {
    let app = app_with(backend, &[]).await;
    let agent = TestAgent::start(Behaviour::Delay(Duration::from_secs(3))).await;
    register(&app, "slow", &agent).await;
    let started = std::time::Instant::now();
    let (s, body) = json(
        app.send_json(
            Method::POST,
            "/api/v1/execute?wait=true",
            &json!({"domain": "slow", "action": "x", "timeoutMs": 200, "maxAttempts": 1}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["status"], "failed");
    assert_eq!(body["data"]["error"], "agent timed out after 200 ms");
    assert!(started.elapsed() < Duration::from_secs(2));
    app.stop().await;
});

both_backends!(an_open_circuit_spends_no_attempts, |backend| async move {
    let app = app_with(
        backend,
        &[
            ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "2"),
            ("CIRCUIT_BREAKER_TIMEOUT_MS", "1500"),
            ("JARVIS_TASK_RETRY_BASE_MS", "10"),
        ],
    )
    .await;
    let agent = TestAgent::start(Behaviour::Status(503)).await;
    register(&app, "flaky", &agent).await;
    let (_, body) = submit(
        &app,
        json!({"domain": "flaky", "action": "x", "maxAttempts": 5}),
    )
    .await;
    let id = body["data"]["taskId"].as_str().unwrap().to_string();
    // Two 503s open the circuit; the task then waits without spending attempts.
    let t = until_status(&app, &id, "waiting").await;
    assert_eq!(t["attempts"], 2, "{t}");
    assert!(t["error"].as_str().unwrap().contains("OPEN"), "{t}");
    let (_, b) = json(app.get("/api/v1/circuit-breakers/flaky").await).await;
    assert_eq!(b["data"]["flaky"]["state"], "OPEN");
    agent.set(Behaviour::Succeed);
    let t = until_status(&app, &id, "succeeded").await;
    // The trial call after the open period is attempt 3; nothing was called in between.
    assert_eq!(t["attempts"], 3, "{t}");
    let calls = agent.calls();
    assert_eq!(calls.len(), 3);
    let quiet = calls[2].at - calls[1].at;
    assert!(
        quiet >= Duration::from_millis(1300),
        "called while OPEN: {quiet:?}"
    );
    let (_, b) = json(app.get("/api/v1/circuit-breakers/flaky").await).await;
    assert_ne!(b["data"]["flaky"]["state"], "OPEN");
    // History holds exactly the attempts made.
    history_of(&app, &id, 3).await;
    app.stop().await;
});

both_backends!(
    a_wait_ends_at_once_when_the_task_cannot_start_before_it,
    |backend| async move {
        let app = app_with(
            backend,
            &[
                ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "1"),
                ("CIRCUIT_BREAKER_TIMEOUT_MS", "60000"),
                ("JARVIS_TASK_RETRY_BASE_MS", "10"),
            ],
        )
        .await;
        let fine = TestAgent::start(Behaviour::Succeed).await;
        register(&app, "fine", &fine).await;
        // Due in a minute: a 20 s wait could see nothing change, so it answers at once.
        let later = (chrono::Utc::now() + chrono::TimeDelta::seconds(60)).to_rfc3339();
        let started = Instant::now();
        let (s, body) = json(
            app.send_json(
                Method::POST,
                "/api/v1/execute?wait=true&waitMs=20000",
                &json!({"domain": "fine", "action": "x", "runAt": later}),
            )
            .await,
        )
        .await;
        assert_eq!(s, 202, "{body}");
        assert_eq!(body["data"]["status"], "queued", "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(fine.calls().is_empty());
        // Due within the wait: it waits, and answers the finished task.
        let soon = (chrono::Utc::now() + chrono::TimeDelta::milliseconds(700)).to_rfc3339();
        let (s, body) = json(
            app.send_json(
                Method::POST,
                "/api/v1/execute?wait=true&waitMs=20000",
                &json!({"domain": "fine", "action": "x", "runAt": soon}),
            )
            .await,
        )
        .await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["data"]["status"], "succeeded", "{body}");
        // A refusal opens the circuit for a minute; the task's next attempt waits for it, so
        // the wait answers the waiting task instead of holding the request for 20 s.
        let flaky = TestAgent::start(Behaviour::Status(503)).await;
        register(&app, "flaky", &flaky).await;
        let started = Instant::now();
        let (s, body) = json(
            app.send_json(
                Method::POST,
                "/api/v1/execute?wait=true&waitMs=20000",
                &json!({"domain": "flaky", "action": "x", "maxAttempts": 3}),
            )
            .await,
        )
        .await;
        assert_eq!(s, 202, "{body}");
        assert_eq!(body["data"]["status"], "waiting", "{body}");
        assert!(
            body["data"]["error"].as_str().unwrap().contains("OPEN"),
            "{body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(flaky.calls().len(), 1);
        app.stop().await;
    }
);

both_backends!(
    idempotency_keys_return_the_same_task,
    |backend| async move {
        let app = app_with(backend, &[]).await;
        let body = json!({"domain": "noop", "action": "x", "idempotencyKey": "order-42"});
        let (s1, b1) = submit(&app, body.clone()).await;
        let (s2, b2) = submit(&app, body.clone()).await;
        assert_eq!(s1, 202, "{b1}");
        assert_eq!(s2, 200, "{b2}");
        assert_eq!(b1["data"]["taskId"], b2["data"]["taskId"]);
        assert_eq!(b2["data"]["duplicate"], true);
        // In a batch too, also against itself.
        let (s, b) = json(
        app.send_json(
            Method::POST,
            "/api/v1/tasks/batch",
            &json!({"tasks": [body.clone(), {"domain": "noop", "action": "x", "idempotencyKey": "k2"},
                              {"domain": "noop", "action": "x", "idempotencyKey": "k2"}]}),
        )
        .await,
    )
    .await;
        assert_eq!(s, 202, "{b}");
        let ts = b["data"]["tasks"].as_array().unwrap();
        assert_eq!(ts[0]["taskId"], b1["data"]["taskId"]);
        assert_eq!(ts[1]["taskId"], ts[2]["taskId"]);
        assert_eq!(b["data"]["created"], 1);
        let id = b1["data"]["taskId"].as_str().unwrap();
        until_status(&app, id, "succeeded").await;
        app.stop().await;
    }
);

both_backends!(tasks_can_be_cancelled, |backend| async move {
    let app = app_with(backend, &[]).await;
    let agent = TestAgent::start(Behaviour::Succeed).await;
    register(&app, "music", &agent).await;
    // A running task.
    let running = hold_the_agent(&app, &agent).await;
    let (s, c) = json(
        app.send_json(
            Method::DELETE,
            &format!("/api/v1/tasks/{running}"),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["data"]["status"], "cancelled");
    // A delayed one, cancelled before it runs: never called.
    let later = (chrono::Utc::now() + chrono::TimeDelta::seconds(2)).to_rfc3339();
    let (_, b) = submit(
        &app,
        json!({"domain": "music", "action": "y", "runAt": later}),
    )
    .await;
    let delayed = b["data"]["taskId"].as_str().unwrap().to_string();
    let (s, _) = json(
        app.send_json(
            Method::DELETE,
            &format!("/api/v1/tasks/{delayed}"),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200);
    agent.release();
    // Cancelling again: 409; an unknown task: 404.
    let r = app
        .send_json(
            Method::DELETE,
            &format!("/api/v1/tasks/{delayed}"),
            &json!({}),
        )
        .await;
    assert_error(r, 409, "already_finished").await;
    let r = app
        .send_json(
            Method::DELETE,
            &format!("/api/v1/tasks/{}", uuid::Uuid::new_v4()),
            &json!({}),
        )
        .await;
    assert_error(r, 404, "not_found").await;
    // The stopped attempt is recorded; the task stays cancelled; the delayed one never ran.
    let rows = history_of(&app, &running, 1).await;
    assert_eq!(rows[0]["success"], false);
    // Until well past its time, it stays cancelled (and, below, uncalled): a window to let pass.
    let run_at = ms(&app.task(&delayed).await["runAt"]);
    let window = (run_at + chrono::TimeDelta::milliseconds(500) - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    stays(window, "the delayed task stays cancelled", || async {
        app.task(&delayed).await["status"] == "cancelled"
    })
    .await;
    assert_eq!(app.task(&running).await["status"], "cancelled");
    assert_eq!(agent.calls().len(), 1);
    app.stop().await;
});

both_backends!(a_delayed_task_runs_at_its_time, |backend| async move {
    let app = app_with(backend, &[]).await;
    let agent = TestAgent::start(Behaviour::Succeed).await;
    register(&app, "music", &agent).await;
    let run_at = chrono::Utc::now() + chrono::TimeDelta::milliseconds(800);
    let (s, b) = submit(
        &app,
        json!({"domain": "music", "action": "x", "runAt": run_at.to_rfc3339()}),
    )
    .await;
    assert_eq!(s, 202);
    assert_eq!(b["data"]["status"], "queued");
    let id = b["data"]["taskId"].as_str().unwrap().to_string();
    let t = until_status(&app, &id, "succeeded").await;
    assert!(ms(&t["startedAt"]) >= run_at, "{t}");
    app.stop().await;
});

both_backends!(higher_priorities_run_first, |backend| async move {
    let app = app_with(
        backend,
        &[("JARVIS_CONCURRENCY", "1"), ("JARVIS_QUEUE_PREFETCH", "0")],
    )
    .await;
    let agent = TestAgent::start(Behaviour::Succeed).await;
    register(&app, "music", &agent).await;
    let blocker = hold_the_agent(&app, &agent).await;
    let mut ids = Vec::new();
    for p in [1, 10, 5, -3] {
        let (_, b) = submit(
            &app,
            json!({"domain": "music", "action": "x", "priority": p, "parameters": {"p": p}}),
        )
        .await;
        ids.push(b["data"]["taskId"].as_str().unwrap().to_string());
    }
    agent.release();
    for id in &ids {
        until_status(&app, id, "succeeded").await;
    }
    until_status(&app, &blocker, "succeeded").await;
    let order: Vec<i64> = agent.calls()[1..]
        .iter()
        .map(|c| c.body["parameters"]["p"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [10, 5, 1, -3]);
    app.stop().await;
});

// "Nothing was stored" is a store behaviour: both backends.
both_backends!(
    bad_submissions_name_the_field_and_store_nothing,
    |backend| async move {
        let app = app_with(backend, &[]).await;
        for (body, code, starts) in [
            (
                json!({"action": "x"}),
                "invalid_task",
                "domain: is required",
            ),
            (
                json!({"domain": "a/b", "action": "x"}),
                "invalid_task",
                "domain: ",
            ),
            (
                json!({"domain": "d", "action": "x", "parameters": "no"}),
                "invalid_task",
                "parameters: must be a JSON object",
            ),
            (
                json!({"domain": "d", "action": "x", "priority": 2_000_000}),
                "invalid_task",
                "priority: ",
            ),
            (
                json!({"domain": "d", "action": "x", "runAt": "soon"}),
                "invalid_task",
                "runAt: ",
            ),
            (
                json!({"domain": "d", "action": "x", "parameters": {"big": "x".repeat(70_000)}}),
                "invalid_task",
                "parameters: is ",
            ),
        ] {
            let (s, b) = submit(&app, body).await;
            assert_eq!(s, 400, "{b}");
            assert_eq!(b["error"]["code"], code);
            assert!(
                b["error"]["message"].as_str().unwrap().starts_with(starts),
                "{b}"
            );
        }
        let r = app
            .send_json(
                Method::POST,
                "/api/v1/execute",
                &json!({"domain": "d", "action": "x", "bogus": 1}),
            )
            .await;
        let b = assert_error(r, 400, "invalid_body").await;
        assert!(b["error"]["message"].as_str().unwrap().contains("bogus"));
        let r = app
            .send_json(
                Method::POST,
                "/api/v1/tasks/batch",
                &json!({"tasks": [{"domain": "d", "action": "x"}, {"domain": "d"}]}),
            )
            .await;
        let b = assert_error(r, 400, "invalid_task").await;
        assert_eq!(b["error"]["message"], "tasks[1].action: is required");
        let many: Vec<Value> = (0..1001)
            .map(|_| json!({"domain": "d", "action": "x"}))
            .collect();
        let r = app
            .send_json(Method::POST, "/api/v1/tasks/batch", &json!({"tasks": many}))
            .await;
        assert_error(r, 400, "invalid_task").await;
        assert_error(app.get("/api/v1/tasks/not-a-uuid").await, 400, "invalid_id").await;
        assert_error(
            app.get("/api/v1/tasks/history?domain=d").await,
            400,
            "invalid_query",
        )
        .await;
        assert_error(
            app.get("/api/v1/tasks/executions?cursor=abc").await,
            400,
            "invalid_query",
        )
        .await;
        // Nothing was stored.
        let (_, b) = json(app.get("/api/v1/tasks").await).await;
        assert_eq!(b["data"], json!({"items": [], "nextCursor": null}));
        app.stop().await;
    }
);

both_backends!(executions_page_with_a_cursor, |backend| async move {
    let app = app_with(backend, &[]).await;
    let tasks: Vec<Value> = (0..25)
        .map(|i| json!({"domain": "noop", "action": if i % 5 == 0 { "odd" } else { "even" }}))
        .collect();
    app.submit_batch(json!(tasks)).await;
    eventually_some(LIMIT, "25 records", || async {
        (executions(&app, "limit=1000").await.len() == 25).then_some(())
    })
    .await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, b) = json(
            app.get(&format!(
                "/api/v1/tasks/executions?domain=noop&action=even&limit=7&cursor={cursor}"
            ))
            .await,
        )
        .await;
        let items = b["data"]["items"].as_array().unwrap().clone();
        seen.extend(items.iter().map(|i| i["id"].as_i64().unwrap()));
        match b["data"]["nextCursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 20);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    app.stop().await;
});
