//! `GET /api/v1/traces/{correlationId}` and `jarvis trace`: one correlation ID's request, tasks,
//! attempts, agent and model calls and breaker decisions in time order, whole across instances
//! on PostgreSQL; W3C `traceparent` accepted and passed on to agents and model providers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};

use crate::ai_mock::{Answer, MockProvider};
use crate::both_backends;
use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(30);
/// The W3C specification's example: the trace ID every test checks for.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A fresh correlation ID for one test.
fn fresh_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// One request an agent received: its correlation ID and trace context.
#[derive(Debug, Clone)]
struct Received {
    correlation: Option<String>,
    traceparent: Option<String>,
}

/// A real HTTP agent on 127.0.0.1 that answers 503 to its first `fail_first` calls, then
/// succeeds, and keeps the headers of every call.
#[derive(Clone)]
struct FlakyAgent {
    port: u16,
    seen: Arc<Mutex<Vec<Received>>>,
}

async fn flaky_answer(
    State((seen, fail_first)): State<(Arc<Mutex<Vec<Received>>>, usize)>,
    headers: HeaderMap,
) -> axum::response::Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let n = {
        let mut seen = seen.lock().unwrap();
        seen.push(Received {
            correlation: header("x-correlation-id"),
            traceparent: header("traceparent"),
        });
        seen.len()
    };
    if n <= fail_first {
        (StatusCode::SERVICE_UNAVAILABLE, "down").into_response()
    } else {
        (StatusCode::OK, r#"{"success": true, "output": {"n": 1}}"#).into_response()
    }
}

impl FlakyAgent {
    async fn start(fail_first: usize) -> FlakyAgent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let app = axum::Router::new()
            .fallback(flaky_answer)
            .with_state((seen.clone(), fail_first));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FlakyAgent { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/run", self.port)
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

/// GET the trace of `id`: (status, body).
async fn trace(app: &TestApp, id: &str) -> (u16, Value) {
    json(app.get(&format!("/api/v1/traces/{id}")).await).await
}

/// Waits until the trace of `id` satisfies `done`, and returns its `data`.
async fn trace_until(app: &TestApp, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually_some(LIMIT, what, || async {
        let (s, body) = trace(app, id).await;
        (s == 200 && done(&body["data"])).then(|| body["data"].clone())
    })
    .await
}

fn events_of<'a>(data: &'a Value, kind: &str) -> Vec<&'a Value> {
    data["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

fn kinds(data: &Value, keep: &[&str]) -> Vec<String> {
    data["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .filter(|k| keep.contains(&k.as_str()))
        .collect()
}

// A task whose HTTP agent fails once then succeeds: the trace shows the request, the task's
// submission, both attempts with their agent calls, and its settlement, in that order; the
// agent received the request's correlation ID and a traceparent in the request's trace with a
// new span per call.
both_backends!(a_retried_task_is_traced_in_order, |backend| async move {
    let mut env = TestEnv::new(backend).await;
    env.set("JARVIS_TASK_RETRY_BASE_MS", "10");
    let app = TestApp::spawn_with(env).await;
    let agent = FlakyAgent::start(1).await;
    let (s, body) = app.put_agent("traced", json!({"url": agent.url()})).await;
    assert_eq!(s, 201, "{body}");
    let id = fresh_id("req-flaky");
    let response = app
        .client
        .post(app.url("/api/v1/execute?wait=true"))
        .bearer_auth(TOKEN)
        .header("x-correlation-id", &id)
        .header("traceparent", TRACEPARENT)
        .json(&json!({"domain": "traced", "action": "run", "maxAttempts": 3}))
        .send()
        .await
        .unwrap();
    let (s, task) = json(response).await;
    assert_eq!(s, 200, "{task}");
    assert_eq!(task["data"]["status"], "succeeded", "{task}");
    let task_id = task["data"]["taskId"].as_str().unwrap().to_string();

    let data = trace_until(&app, &id, "both attempts and the settlement", |d| {
        events_of(d, "attempt").len() == 2
            && events_of(d, "agent_call").len() == 2
            && events_of(d, "request").len() == 1
            && events_of(d, "task").len() == 2
    })
    .await;
    assert_eq!(data["correlationId"], id.as_str());
    assert_eq!(
        kinds(&data, &["request", "task", "attempt", "agent_call"]),
        [
            "request",
            "task",
            "attempt",
            "agent_call",
            "attempt",
            "agent_call",
            "task"
        ],
        "{data:#}"
    );
    let attempts = events_of(&data, "attempt");
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[1]["attempt"], 2);
    assert_eq!(attempts[1]["status"], "succeeded");
    let calls = events_of(&data, "agent_call");
    assert_eq!(calls[0]["status"], "HTTP 503", "{data:#}");
    assert_eq!(calls[1]["status"], "HTTP 200", "{data:#}");
    for e in attempts.iter().chain(&calls) {
        assert_eq!(e["taskId"], task_id.as_str());
    }
    let tasks = events_of(&data, "task");
    assert_eq!(tasks[0]["status"], "submitted");
    assert_eq!(tasks[1]["status"], "succeeded");
    let request = events_of(&data, "request")[0];
    assert_eq!(request["detail"]["traceId"], TRACE_ID);
    assert!(
        request["summary"]
            .as_str()
            .unwrap()
            .starts_with("POST /api/v1/execute"),
        "{request}"
    );
    let instance = app.state().instance_id.clone();
    assert_eq!(data["instances"], json!([instance]));
    // Times never go backwards.
    let times: Vec<&str> = data["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_str().unwrap())
        .collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        times.iter().map(|t| t.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // The agent got the ID and the caller's trace, with a span of Jarvis's own per call.
    let seen = agent.seen();
    assert_eq!(seen.len(), 2);
    let mut spans = Vec::new();
    for r in &seen {
        assert_eq!(r.correlation.as_deref(), Some(id.as_str()));
        let tp = r.traceparent.as_deref().expect("a traceparent");
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!(parts[1], TRACE_ID, "{tp}");
        assert_ne!(parts[2], "00f067aa0ba902b7", "a new span, not the caller's");
        spans.push(parts[2].to_string());
    }
    assert_ne!(spans[0], spans[1]);
    app.stop().await;
});

// A malformed traceparent is ignored (not an error): Jarvis starts a trace of its own, and the
// agent receives a valid one.
both_backends!(a_malformed_traceparent_is_ignored, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let agent = FlakyAgent::start(0).await;
    app.put_agent("traced", json!({"url": agent.url()})).await;
    let id = fresh_id("req-badtp");
    let response = app
        .client
        .post(app.url("/api/v1/execute?wait=true"))
        .bearer_auth(TOKEN)
        .header("x-correlation-id", &id)
        .header("traceparent", "00-not-a-trace-01")
        .json(&json!({"domain": "traced", "action": "run"}))
        .send()
        .await
        .unwrap();
    let (s, body) = json(response).await;
    assert_eq!(s, 200, "{body}");
    let seen = agent.seen();
    let tp = seen[0].traceparent.clone().expect("a traceparent");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(
        (parts.len(), parts[0], parts[1].len(), parts[2].len()),
        (4, "00", 32, 16),
        "{tp}"
    );
    let data = trace_until(&app, &id, "the request", |d| {
        !events_of(d, "request").is_empty()
    })
    .await;
    let request = events_of(&data, "request")[0];
    assert_eq!(request["detail"]["traceparent"], Value::Null);
    assert_eq!(request["detail"]["traceId"], parts[1]);
    app.stop().await;
});

// A task refused by its domain's OPEN circuit: the trace shows the breaker's rejection.
both_backends!(a_breaker_rejection_is_traced, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let agent = FlakyAgent::start(0).await;
    app.put_agent("guarded", json!({"url": agent.url()})).await;
    app.fail_calls("guarded", 5, "boom");
    eventually(LIMIT, "the circuit opens", || async {
        app.breaker("guarded").await["state"] == "OPEN"
    })
    .await;
    let id = fresh_id("req-open");
    let response = app
        .client
        .post(app.url("/api/v1/execute"))
        .bearer_auth(TOKEN)
        .header("x-correlation-id", &id)
        .json(&json!({"domain": "guarded", "action": "run"}))
        .send()
        .await
        .unwrap();
    let (s, body) = json(response).await;
    assert_eq!(s, 202, "{body}");
    let data = trace_until(&app, &id, "the rejection", |d| {
        events_of(d, "breaker")
            .iter()
            .any(|e| e["status"] == "rejected")
    })
    .await;
    let rejection = events_of(&data, "breaker")[0];
    assert!(
        rejection["summary"].as_str().unwrap().contains("guarded"),
        "{rejection}"
    );
    assert_eq!(rejection["taskId"], body["data"]["taskId"]);
    assert!(agent.seen().is_empty(), "the agent was never called");
    assert!(events_of(&data, "attempt").is_empty());
    app.stop().await;
});

// A chat completion through a mock provider: the trace shows the model call, and the provider
// received the correlation ID and a traceparent in the caller's trace.
both_backends!(
    a_gateway_call_is_traced_as_a_model_call,
    |backend| async move {
        let mock = MockProvider::start().await;
        mock.answer(
            "/chat/completions",
            Answer::Json(
                200,
                json!({"id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}),
            ),
        );
        let mut env = TestEnv::new(backend).await;
        env.set("OPENAI_API_KEY", crate::ai_mock::KEY)
            .set("OPENAI_BASE_URL", &mock.base_url());
        let app = TestApp::spawn_with(env).await;
        let id = fresh_id("req-model");
        let response = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(TOKEN)
            .header("x-correlation-id", &id)
            .header("traceparent", TRACEPARENT)
            .json(&json!({"model": "openai/gpt-4o-mini",
                      "messages": [{"role": "user", "content": "hello"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let data = trace_until(&app, &id, "the model call", |d| {
            !events_of(d, "model_call").is_empty() && !events_of(d, "request").is_empty()
        })
        .await;
        let call = events_of(&data, "model_call")[0];
        assert_eq!(call["status"], "200", "{call}");
        assert_eq!(call["detail"]["deployment"], "openai", "{call}");
        assert!(
            call["summary"].as_str().unwrap().contains("gpt-4o-mini"),
            "{call}"
        );
        assert_eq!(
            kinds(&data, &["request", "model_call"]),
            ["request", "model_call"]
        );
        let seen = mock.seen();
        let upstream = seen.last().unwrap();
        assert_eq!(upstream.header("x-correlation-id"), Some(id.as_str()));
        let tp = upstream
            .header("traceparent")
            .expect("a traceparent to the provider");
        assert_eq!(tp.split('-').nth(1), Some(TRACE_ID), "{tp}");
        assert_ne!(tp, TRACEPARENT, "a new span per outgoing call");
        app.stop().await;
    }
);

// An unknown ID is 404 trace_not_found, an ID Jarvis would never accept is 400.
both_backends!(unknown_and_invalid_ids_are_refused, |backend| async move {
    let app = TestApp::spawn(backend).await;
    assert_error(
        app.get(&format!("/api/v1/traces/{}", fresh_id("req-nothing")))
            .await,
        404,
        "trace_not_found",
    )
    .await;
    let long = "a".repeat(129);
    for bad in ["bad%20id", "%7B%22x%22%7D", long.as_str()] {
        assert_error(
            app.get(&format!("/api/v1/traces/{bad}")).await,
            400,
            "invalid_correlation_id",
        )
        .await;
    }
    // The token is required like everywhere under /api/v1.
    let s = app
        .client
        .get(app.url("/api/v1/traces/req-x"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 401);
    app.stop().await;
});

/// Two instances on one PostgreSQL database: what each did under one ID is in the trace that
/// either serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_is_whole_across_instances_on_postgres() {
    let mut env = TestEnv::new(Backend::Postgres).await;
    env.set("JARVIS_INSTANCE_ID", "trace-a");
    let a = TestApp::spawn_with(env).await;
    let mut env_b = a.env.another_instance();
    env_b.set("JARVIS_INSTANCE_ID", "trace-b");
    let b = TestApp::spawn_with(env_b).await;
    let agent = FlakyAgent::start(0).await;
    a.put_agent("traced", json!({"url": agent.url()})).await;
    let id = fresh_id("req-two");
    for (app, path) in [(&a, "/api/v1/execute"), (&b, "/api/v1/tasks?limit=1")] {
        let mut req = app
            .client
            .request(
                if path.starts_with("/api/v1/execute") {
                    reqwest::Method::POST
                } else {
                    reqwest::Method::GET
                },
                app.url(path),
            )
            .bearer_auth(TOKEN)
            .header("x-correlation-id", &id);
        if path.starts_with("/api/v1/execute") {
            req = req.json(&json!({"domain": "traced", "action": "run"}));
        }
        let s = req.send().await.unwrap().status().as_u16();
        assert!(s == 200 || s == 202, "{path}: {s}");
    }
    for app in [&a, &b] {
        let data = trace_until(app, &id, "both instances' requests", |d| {
            let instances: Vec<&str> = events_of(d, "request")
                .iter()
                .filter_map(|e| e["instance"].as_str())
                .collect();
            instances.contains(&"trace-a") && instances.contains(&"trace-b")
        })
        .await;
        let instances = data["instances"].as_array().unwrap();
        assert!(instances.contains(&json!("trace-a")), "{data:#}");
        assert!(instances.contains(&json!("trace-b")), "{data:#}");
    }
    b.stop().await;
    a.stop().await;
}

/// `jarvis trace <id>` prints the timeline: relative times, kinds, instances, summaries; an
/// unknown ID is an error with the API's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_the_timeline() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let agent = FlakyAgent::start(1).await;
    app.put_agent("traced", json!({"url": agent.url()})).await;
    let id = fresh_id("req-cli");
    let response = app
        .client
        .post(app.url("/api/v1/execute?wait=true"))
        .bearer_auth(TOKEN)
        .header("x-correlation-id", &id)
        .json(&json!({"domain": "traced", "action": "run", "maxAttempts": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    trace_until(&app, &id, "the request and both attempts", |d| {
        events_of(d, "attempt").len() == 2 && events_of(d, "request").len() == 1
    })
    .await;
    let vars: HashMap<String, String> = [
        ("JARVIS_AUTH_TOKEN".to_string(), TOKEN.to_string()),
        ("JARVIS_URL".to_string(), app.address.clone()),
    ]
    .into();
    let dir = app.env.dir.path().to_path_buf();
    let run = |args: Vec<String>| {
        let (vars, dir) = (vars.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_jarvis(&args, &vars, &dir)
        })
    };
    let out = run(vec!["trace".into(), id.clone()]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&id), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let find = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{stdout}"))
    };
    let request = find("request");
    let first = find("attempt 1 of traced/run failed");
    let second = find("attempt 2 of traced/run succeeded");
    assert!(request < first && first < second, "{stdout}");
    assert!(lines[request].contains("+0.000s"), "{stdout}");
    assert!(lines[first].contains(&app.state().instance_id), "{stdout}");
    assert!(stdout.contains("agent_call"), "{stdout}");

    let out = run(vec!["trace".into(), fresh_id("req-none")])
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("trace_not_found"), "{stderr}");
    app.stop().await;
}

/// One span an OTLP receiver got.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn otlp_traces(
    State(spans): State<Arc<Mutex<Vec<ReceivedSpan>>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-protobuf")
    );
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let mut got = spans.lock().unwrap();
    for rs in request.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                got.push(ReceivedSpan {
                    service: service.clone(),
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                });
            }
        }
    }
    (
        StatusCode::OK,
        [("content-type", "application/x-protobuf")],
        Vec::<u8>::new(),
    )
        .into_response()
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a real OTLP/HTTP receiver on 127.0.0.1, a
/// task submitted with a `traceparent` arrives as spans of the caller's trace: the request (a
/// child of the caller's span), the task attempt (a child of the request), the agent call (a
/// child of the attempt, with the span ID the agent received), as service `OTEL_SERVICE_NAME`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_in_the_callers_trace() {
    let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = axum::Router::new()
        .route("/v1/traces", axum::routing::post(otlp_traces))
        .with_state(spans.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, receiver).await;
    });
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        &format!("http://127.0.0.1:{port}"),
    )
    .set("OTEL_SERVICE_NAME", "jarvis-otlp-test");
    let app = TestApp::spawn_with(env).await;
    let agent = FlakyAgent::start(0).await;
    app.put_agent("traced", json!({"url": agent.url()})).await;
    let id = fresh_id("req-otlp");
    let response = app
        .client
        .post(app.url("/api/v1/execute?wait=true"))
        .bearer_auth(TOKEN)
        .header("x-correlation-id", &id)
        .header("traceparent", TRACEPARENT)
        .json(&json!({"domain": "traced", "action": "run"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let got = eventually_some(
        LIMIT,
        "the request, attempt and agent call spans",
        || async {
            let got: Vec<ReceivedSpan> = spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id == TRACE_ID)
                .cloned()
                .collect();
            let has = |n: &str| got.iter().any(|s| s.name == n);
            (has("request") && has("task attempt") && has("agent call")).then_some(got)
        },
    )
    .await;
    let one = |n: &str| got.iter().find(|s| s.name == n).unwrap().clone();
    let (request, attempt, call) = (one("request"), one("task attempt"), one("agent call"));
    assert!(request.service.contains("jarvis-otlp-test"), "{request:?}");
    assert_eq!(
        request.parent, "00f067aa0ba902b7",
        "the caller's span is the parent"
    );
    assert_eq!(attempt.parent, request.span_id, "{got:#?}");
    assert_eq!(call.parent, attempt.span_id, "{got:#?}");
    let sent = agent.seen()[0].traceparent.clone().unwrap();
    assert_eq!(sent, format!("00-{TRACE_ID}-{}-01", call.span_id));
    app.stop().await;
}

/// A real `jarvis serve` merges its own log lines of the ID into the trace (`log` events, with
/// the line as `detail`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instances_log_lines_are_in_the_trace() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let p = TestProcess::start(&env).await;
    let agent = FlakyAgent::start(0).await;
    let (s, body) = p.put_agent("traced", json!({"url": agent.url()})).await;
    assert_eq!(s, 201, "{body}");
    let id = fresh_id("req-logs");
    let client = reqwest::Client::new();
    let s = client
        .post(p.url("/api/v1/execute?wait=true"))
        .bearer_auth(TOKEN)
        .header("x-correlation-id", &id)
        .json(&json!({"domain": "traced", "action": "run"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 200);
    let data = eventually_some(
        LIMIT,
        "the log lines of the request and the task",
        || async {
            let (s, body) = p
                .api(reqwest::Method::GET, &format!("/api/v1/traces/{id}"), None)
                .await;
            let logs: Vec<String> = body["data"]["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["kind"] == "log")
                .map(|e| e["summary"].as_str().unwrap_or("").to_string())
                .collect();
            (s == 200
                && logs.iter().any(|m| m == "request completed")
                && logs.iter().any(|m| m == "agent answered"))
            .then_some(body["data"].clone())
        },
    )
    .await;
    let line = events_of(&data, "log")
        .into_iter()
        .find(|e| e["summary"] == "agent answered")
        .unwrap()
        .clone();
    assert_eq!(line["detail"]["correlationId"], id.as_str());
    assert_eq!(line["status"], "INFO");
    assert!(line["instance"].is_string(), "{line}");
}

// Tasks that have not run yet are in their submission's trace: the tasks table is not indexed
// by correlation ID, so the trace finds them through the submission's marker — one batch of
// three (one marker naming all three) and a single task, none due for an hour. The marker
// itself is not shown: each task appears once, as its submission.
both_backends!(
    tasks_that_have_not_run_are_in_the_trace,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let (s, body) = app
            .put_agent("later", json!({"url": "http://127.0.0.1:9/never"}))
            .await;
        assert_eq!(s, 201, "{body}");
        let run_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let batch_id = fresh_id("req-batch");
        let tasks: Vec<Value> = (0..3)
        .map(|i| json!({"domain": "later", "action": "wait", "parameters": {"i": i}, "runAt": run_at}))
        .collect();
        let response = app
            .client
            .post(app.url("/api/v1/tasks/batch"))
            .bearer_auth(TOKEN)
            .header("x-correlation-id", &batch_id)
            .json(&json!({ "tasks": tasks }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let data = trace_until(&app, &batch_id, "the batch's three tasks", |d| {
            events_of(d, "task").len() == 3
        })
        .await;
        let mut ids: Vec<&str> = events_of(&data, "task")
            .iter()
            .map(|e| e["taskId"].as_str().unwrap())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 3, "each task once: {data}");
        for e in events_of(&data, "task") {
            assert_eq!(e["status"], "submitted", "{e}");
            assert_eq!(e["detail"]["currentStatus"], "queued", "{e}");
        }

        let single_id = fresh_id("req-single");
        let response = app
            .client
            .post(app.url("/api/v1/tasks"))
            .bearer_auth(TOKEN)
            .header("x-correlation-id", &single_id)
            .json(&json!({"domain": "later", "action": "wait", "runAt": run_at}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let (_, body) = json(response).await;
        let task_id = body["data"]["taskId"].as_str().unwrap().to_string();
        let data = trace_until(&app, &single_id, "the single task", |d| {
            !events_of(d, "task").is_empty()
        })
        .await;
        let tasks = events_of(&data, "task");
        assert_eq!(tasks.len(), 1, "{data}");
        assert_eq!(tasks[0]["taskId"], task_id.as_str());
        app.stop().await;
    }
);
