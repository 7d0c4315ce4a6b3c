//! The AI gateway (`/v1/*`) with the OpenAI provider against a mock OpenAI-compatible server
//! on 127.0.0.1: forwarding, streaming passthrough, embeddings, the model list, the
//! `ai-openai` breaker, OpenAI-shaped errors, and the key kept out of logs. The translated
//! providers are `ai_anthropic` and `ai_gemini`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

/// The key the tests give Jarvis: distinctive, so a leak is found by a plain search.
const KEY: &str = "sk-test-KEEP-THIS-SECRET-7f3a9c";

/// How the mock answers.
#[derive(Clone, Debug)]
enum Upstream {
    /// Like OpenAI.
    Normal,
    /// Every request: this status and body.
    Status(u16, Value),
    /// Never answers.
    Hang,
    /// A stream that sends one event, then breaks the connection.
    CutStream,
}

/// One request the mock received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    correlation: Option<String>,
    body: Value,
}

struct MockInner {
    mode: Mutex<Upstream>,
    seen: Mutex<Vec<Seen>>,
    /// Lets a stream go on after its first chunk.
    release: tokio::sync::Notify,
}

/// A mock OpenAI-compatible server: `/v1/chat/completions` (JSON and SSE), `/v1/embeddings`,
/// `/v1/models`, and failure modes.
#[derive(Clone)]
struct MockOpenAi {
    inner: Arc<MockInner>,
    port: u16,
}

impl MockOpenAi {
    async fn start() -> MockOpenAi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mock = MockOpenAi {
            inner: Arc::new(MockInner {
                mode: Mutex::new(Upstream::Normal),
                seen: Mutex::new(Vec::new()),
                release: tokio::sync::Notify::new(),
            }),
            port,
        };
        let app = axum::Router::new()
            .fallback(mock_handle)
            .with_state(mock.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        mock
    }

    /// The base URL, as `OPENAI_BASE_URL` takes it.
    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn set(&self, mode: Upstream) {
        *self.inner.mode.lock().unwrap() = mode;
    }

    fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    fn release_stream(&self) {
        self.inner.release.notify_one();
    }
}

async fn mock_handle(
    State(mock): State<MockOpenAi>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    mock.inner.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        authorization: header("authorization"),
        correlation: header("x-correlation-id"),
        body: body.clone(),
    });
    let mode = mock.inner.mode.lock().unwrap().clone();
    match mode {
        Upstream::Status(code, answer) => {
            let mut r = (StatusCode::from_u16(code).unwrap(), axum::Json(answer)).into_response();
            if code == 429 {
                r.headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("7"));
            }
            return r;
        }
        Upstream::CutStream => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
            let release = mock.clone();
            tokio::spawn(async move {
                let _ = tx.send(Ok(chunk(0))).await;
                release.inner.release.notified().await;
                let _ = tx
                    .send(Err(std::io::Error::other("the provider went away")))
                    .await;
            });
            let events = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            return Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(events))
                .unwrap();
        }
        Upstream::Hang => return std::future::pending::<Response>().await,
        Upstream::Normal => {}
    }
    match uri.path() {
        "/v1/chat/completions" if body["stream"] == true => sse(mock.clone()),
        "/v1/chat/completions" => (
            [("x-ratelimit-remaining-requests", "99"), ("openai-processing-ms", "5")],
            axum::Json(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hello there"}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
            })),
        )
            .into_response(),
        "/v1/embeddings" => axum::Json(json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
            "model": body["model"],
            "usage": {"prompt_tokens": 2, "total_tokens": 2}
        }))
        .into_response(),
        "/v1/models" => axum::Json(json!({
            "object": "list",
            "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 1_700_000_000, "owned_by": "system"},
                {"id": "text-embedding-3-small", "object": "model", "created": 1_700_000_001, "owned_by": "system"}
            ]
        }))
        .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn chunk(i: usize) -> Bytes {
    Bytes::from(format!(
        "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"part-{i}\"}}}}]}}\n\n"
    ))
}

/// An SSE answer: the first chunk at once, the rest only after the test releases it (so a
/// test can see the first chunk arrive while the mock still holds the others).
fn sse(mock: MockOpenAi) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(8);
    tokio::spawn(async move {
        let _ = tx.send(Ok(chunk(0))).await;
        mock.inner.release.notified().await;
        for i in 1..3 {
            let _ = tx.send(Ok(chunk(i))).await;
        }
        let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// Jarvis (SQLite) with `OPENAI_API_KEY` and `OPENAI_BASE_URL` pointing at `mock`.
async fn gateway(mock: &MockOpenAi, backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut env = TestEnv::new(backend).await;
    env.set("OPENAI_API_KEY", KEY)
        .set("OPENAI_BASE_URL", &mock.base_url());
    for (k, v) in extra {
        env.set(k, v);
    }
    TestApp::spawn_with(env).await
}

async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.send_json(reqwest::Method::POST, path, body).await
}

/// Checks an OpenAI-shaped error answer (`{"error": {message, type, param, code}}`, nothing
/// else) and returns its `error`.
async fn openai_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let (s, body) = json(response).await;
    assert_eq!(s, status, "{body}");
    let obj = body.as_object().expect("an object");
    assert_eq!(obj.len(), 1, "only `error`: {body}");
    let error = &body["error"];
    for key in ["message", "type", "param", "code"] {
        assert!(error.get(key).is_some(), "{key} missing: {body}");
    }
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        body.get("success").is_none(),
        "not the Jarvis envelope: {body}"
    );
    error.clone()
}

fn breaker_failures(view: &Value) -> u64 {
    view["failureCount"].as_u64().unwrap_or(0)
}

/// Waits until the breaker `ai-openai` counts `n` consecutive failures.
async fn failures_become(app: &TestApp, n: u64) {
    eventually(
        Duration::from_secs(5),
        &format!("ai-openai to count {n} failures"),
        || async { breaker_failures(&app.breaker("ai-openai").await) == n },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_completion_is_forwarded_with_the_model_rewritten_and_the_key_sent_upstream() {
    let mock = MockOpenAi::start().await;
    let app = gateway(&mock, Backend::Sqlite, &[]).await;
    let request = json!({
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "lookup",
                   "parameters": {"type": "object", "properties": {}}}}],
        "response_format": {"type": "json_object"},
        "temperature": 0
    });
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .header("x-correlation-id", "req-ai-chat-1")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-jarvis-deployment"], "openai");
    assert_eq!(r.headers()["x-correlation-id"], "req-ai-chat-1");
    // The provider's rate-limit headers reach the caller's client.
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "99");
    assert_eq!(r.headers()["openai-processing-ms"], "5");
    let (s, body) = json(r).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "hello there");
    assert_eq!(
        body["model"], "gpt-4o-mini",
        "the provider's answer, as it came"
    );
    assert_eq!(body["usage"]["total_tokens"], 10);

    let seen = mock.seen();
    assert_eq!(seen.len(), 1);
    let call = &seen[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, "/v1/chat/completions");
    assert_eq!(
        call.authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(call.correlation.as_deref(), Some("req-ai-chat-1"));
    let mut expected = request.clone();
    expected["model"] = json!("gpt-4o-mini");
    assert_eq!(call.body, expected, "forwarded as is, model rewritten");

    // A bare name is OpenAI's, forwarded unchanged.
    let (s, body) = json(
        post(
            &app,
            "/v1/chat/completions",
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(mock.seen()[1].body["model"], "gpt-4o");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_chat_is_passed_through_chunk_by_chunk_in_order() {
    let mock = MockOpenAi::start().await;
    let app = gateway(&mock, Backend::Sqlite, &[]).await;
    let mut r = post(
        &app,
        "/v1/chat/completions",
        &json!({"model": "openai/gpt-4o-mini", "stream": true,
                "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-jarvis-deployment"], "openai");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // The first event arrives while the mock still holds the rest: nothing is buffered.
    let mut got = String::new();
    while !got.contains("part-0") {
        let next = tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .expect("the first event arrives before the stream ends")
            .unwrap()
            .expect("more body");
        got.push_str(std::str::from_utf8(&next).unwrap());
    }
    assert!(!got.contains("part-1"), "{got}");
    mock.release_stream();
    while let Some(next) = tokio::time::timeout(Duration::from_secs(10), r.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        got.push_str(std::str::from_utf8(&next).unwrap());
    }
    let at = |s: &str| got.find(s).unwrap_or_else(|| panic!("{s} missing: {got}"));
    assert!(
        at("part-0") < at("part-1") && at("part-1") < at("part-2"),
        "{got}"
    );
    assert!(at("part-2") < at("data: [DONE]"), "{got}");
    assert_eq!(got.matches("data: ").count(), 4, "{got}");
    assert_eq!(mock.seen()[0].body["stream"], true);
    // A stream that ended cleanly is a success for the breaker.
    eventually(
        Duration::from_secs(5),
        "the breaker counts the stream",
        || async { app.breaker("ai-openai").await["successes"] == 1 },
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_are_forwarded_to_the_provider() {
    let mock = MockOpenAi::start().await;
    let app = gateway(&mock, Backend::Sqlite, &[]).await;
    let r = post(
        &app,
        "/v1/embeddings",
        &json!({"model": "openai/text-embedding-3-small", "input": "hello"}),
    )
    .await;
    assert_eq!(r.headers()["x-jarvis-deployment"], "openai");
    let (s, body) = json(r).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"][0]["embedding"], json!([0.25, -0.5]));
    let seen = mock.seen();
    assert_eq!(seen[0].path, "/v1/embeddings");
    assert_eq!(
        seen[0].body,
        json!({"model": "text-embedding-3-small", "input": "hello"})
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_the_providers_models_under_the_openai_prefix() {
    let mock = MockOpenAi::start().await;
    let app = gateway(&mock, Backend::Sqlite, &[]).await;
    let (s, body) = json(app.get("/v1/models").await).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["openai/gpt-4o-mini", "openai/text-embedding-3-small"]);
    assert_eq!(body["data"][0]["object"], "model");
    assert_eq!(body["data"][0]["created"], 1_700_000_000);
    assert_eq!(body["data"][0]["owned_by"], "system");
    let seen = mock.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_5xx_is_a_502_and_a_breaker_failure_a_429_is_neither_a_4xx_a_success() {
    let mock = MockOpenAi::start().await;
    let app = gateway(&mock, Backend::Sqlite, &[]).await;
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});

    mock.set(Upstream::Status(
        500,
        json!({"error": {"message": "the engine exploded", "type": "server_error",
                         "param": null, "code": null}}),
    ));
    let r = post(&app, "/v1/chat/completions", &chat).await;
    assert_eq!(r.headers()["x-jarvis-deployment"], "openai");
    let error = openai_error(r, 502, "upstream_error").await;
    assert_eq!(error["type"], "server_error");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 500") && message.contains("the engine exploded"),
        "{message}"
    );
    // The breaker's counts also travel through the store (shared with other instances), so
    // they are read as they settle.
    failures_become(&app, 1).await;
    let view = app.breaker("ai-openai").await;
    assert!(
        view["lastFailureReason"].as_str().unwrap().contains("500"),
        "{view}"
    );

    // 429: passed on, and the breaker neither fails nor resets.
    let limited = json!({"error": {"message": "Rate limit reached", "type": "requests",
                                   "param": null, "code": "rate_limit_exceeded"}});
    mock.set(Upstream::Status(429, limited.clone()));
    let r = post(&app, "/v1/chat/completions", &chat).await;
    assert_eq!(
        r.headers()["retry-after"],
        "7",
        "the provider's Retry-After is passed on"
    );
    let (s, body) = json(r).await;
    assert_eq!((s, &body), (429, &limited));
    stays(
        Duration::from_millis(500),
        "a 429 neither fails nor resets",
        || async { breaker_failures(&app.breaker("ai-openai").await) == 1 },
    )
    .await;

    // A 4xx is the caller's problem: it counts as a success (the failure streak ends).
    mock.set(Upstream::Status(
        400,
        json!({"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": null}}),
    ));
    let (s, _) = json(post(&app, "/v1/chat/completions", &chat).await).await;
    assert_eq!(s, 400);
    failures_become(&app, 0).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_4xx_is_passed_through_with_its_status_and_openai_error_body() {
    let mock = MockOpenAi::start().await;
    let app = gateway(&mock, Backend::Sqlite, &[]).await;
    let refusal = json!({"error": {
        "message": "This model's maximum context length is 8192 tokens.",
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}});
    mock.set(Upstream::Status(400, refusal.clone()));
    let r = post(
        &app,
        "/v1/chat/completions",
        &json!({"model": "openai/gpt-4o-mini", "messages": []}),
    )
    .await;
    assert_eq!(r.headers()["x-jarvis-deployment"], "openai");
    let (s, body) = json(r).await;
    assert_eq!((s, body), (400, refusal.clone()));
    // The same through a streamed request: the error is not a stream.
    let (s, body) = json(
        post(
            &app,
            "/v1/chat/completions",
            &json!({"model": "openai/gpt-4o-mini", "messages": [], "stream": true}),
        )
        .await,
    )
    .await;
    assert_eq!((s, body), (400, refusal));
    app.stop().await;
}

both_backends!(
    an_open_breaker_answers_503_without_calling_the_provider,
    |backend| async move {
        let mock = MockOpenAi::start().await;
        let app = gateway(&mock, backend, &[]).await;
        app.fail_calls("ai-openai", 5, "HTTP 500");
        assert_eq!(app.breaker("ai-openai").await["state"], "OPEN");
        let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
        for (path, body) in [
            ("/v1/chat/completions", chat.clone()),
            (
                "/v1/embeddings",
                json!({"model": "text-embedding-3-small", "input": "x"}),
            ),
        ] {
            let r = post(&app, path, &body).await;
            assert!(r.headers().contains_key("retry-after"));
            assert_eq!(r.headers()["x-jarvis-deployment"], "openai");
            let error = openai_error(r, 503, "circuit_open").await;
            assert!(
                error["message"].as_str().unwrap().contains("ai-openai"),
                "{error}"
            );
        }
        let mut streamed = chat.clone();
        streamed["stream"] = json!(true);
        openai_error(
            post(&app, "/v1/chat/completions", &streamed).await,
            503,
            "circuit_open",
        )
        .await;
        openai_error(app.get("/v1/models").await, 503, "circuit_open").await;
        assert!(mock.seen().is_empty(), "no request reached the provider");
        assert!(
            app.breaker("ai-openai").await["rejectedCalls"]
                .as_u64()
                .unwrap()
                >= 4
        );
        app.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_times_out_or_refuses_connections_is_a_breaker_failure() {
    let mock = MockOpenAi::start().await;
    mock.set(Upstream::Hang);
    let app = gateway(
        &mock,
        Backend::Sqlite,
        &[
            ("JARVIS_AI_TIMEOUT_MS", "300"),
            ("JARVIS_AI_FIRST_BYTE_TIMEOUT_MS", "300"),
        ],
    )
    .await;
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let error = openai_error(
        post(&app, "/v1/chat/completions", &chat).await,
        504,
        "upstream_timeout",
    )
    .await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("JARVIS_AI_TIMEOUT_MS"),
        "{error}"
    );
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let error = openai_error(
        post(&app, "/v1/chat/completions", &streamed).await,
        504,
        "upstream_timeout",
    )
    .await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("JARVIS_AI_FIRST_BYTE_TIMEOUT_MS"),
        "{error}"
    );
    failures_become(&app, 2).await;
    app.stop().await;

    // Nothing listening: 502, a failure.
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set("OPENAI_API_KEY", KEY).set(
        "OPENAI_BASE_URL",
        &format!("http://127.0.0.1:{}/v1", closed_port()),
    );
    let app = TestApp::spawn_with(env).await;
    let error = openai_error(
        post(&app, "/v1/chat/completions", &chat).await,
        502,
        "upstream_unreachable",
    )
    .await;
    assert!(!error["message"].as_str().unwrap().contains(KEY));
    failures_become(&app, 1).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_the_gateway_answers_an_error_naming_openai_api_key() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for r in [
        post(
            &app,
            "/v1/chat/completions",
            &json!({"model": "gpt-4o-mini", "messages": []}),
        )
        .await,
        post(
            &app,
            "/v1/embeddings",
            &json!({"model": "openai/x", "input": "x"}),
        )
        .await,
        app.get("/v1/models").await,
    ] {
        let error = openai_error(r, 503, "provider_not_configured").await;
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("OPENAI_API_KEY"),
            "{error}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_providers_unknown_prefixes_and_bad_models_are_refused_without_a_call() {
    let mock = MockOpenAi::start().await;
    let app = gateway(&mock, Backend::Sqlite, &[]).await;
    // Known providers without their key: 503 naming the variable to set.
    for (model, var) in [
        ("anthropic/claude-3-5-sonnet", "ANTHROPIC_API_KEY"),
        ("gemini/gemini-2.0-flash", "GEMINI_API_KEY"),
    ] {
        let r = post(
            &app,
            "/v1/chat/completions",
            &json!({"model": model, "messages": []}),
        )
        .await;
        let error = openai_error(r, 503, "provider_not_configured").await;
        assert!(error["message"].as_str().unwrap().contains(var), "{error}");
    }
    for (model, code) in [
        ("mistral/large", "unknown_provider"),
        ("openai/", "invalid_model"),
    ] {
        let r = post(
            &app,
            "/v1/chat/completions",
            &json!({"model": model, "messages": []}),
        )
        .await;
        let error = openai_error(r, 400, code).await;
        assert_eq!(error["param"], "model", "{error}");
        assert_eq!(error["type"], "invalid_request_error");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("openai/<model>") && message.contains("gemini/<model>"),
            "{error}"
        );
    }
    let error = openai_error(
        post(&app, "/v1/chat/completions", &json!({"messages": []})).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(error["param"], "model");
    assert!(mock.seen().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_bearer_token_answers_401_in_openais_shape() {
    let mock = MockOpenAi::start().await;
    let app = gateway(&mock, Backend::Sqlite, &[]).await;
    let chat = json!({"model": "gpt-4o-mini", "messages": []});
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("www-authenticate"));
    let error = openai_error(r, 401, "unauthorized").await;
    assert_eq!(error["type"], "authentication_error");
    let r = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    openai_error(r, 401, "unauthorized").await;
    assert!(mock.seen().is_empty());
    // /api/v1 keeps the Jarvis envelope.
    let r = app
        .client
        .get(app.url("/api/v1/tasks"))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "unauthorized").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_an_oversized_body_and_unknown_routes_answer_in_openais_shape() {
    let mock = MockOpenAi::start().await;
    let app = gateway(
        &mock,
        Backend::Sqlite,
        &[("JARVIS_BODY_LIMIT_BYTES", "2048")],
    )
    .await;
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    let error = openai_error(r, 400, "malformed_json").await;
    assert!(
        error["message"].as_str().unwrap().contains("line 1"),
        "{error}"
    );

    // Announced by Content-Length: answered before the body is sent (a client pushing the
    // whole body may see the connection close before it reads the answer).
    let head = format!(
        "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = crate::registry::raw_request(app.port, &head).await;
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(body.get("success").is_none(), "{body}");
    // Without a Content-Length (chunked), cut while reading: the same answer. Its own client:
    // the server closes that connection, which must not be pooled.
    let chunks = futures_util::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1024]))),
    );
    let r = reqwest::Client::new()
        .post(app.url("/v1/embeddings"))
        .bearer_auth(TOKEN)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(r) = r {
        openai_error(r, 413, "payload_too_large").await;
    }

    openai_error(app.get("/v1/completions").await, 404, "not_found").await;
    let r = app.get("/v1/chat/completions").await;
    assert!(r.headers().contains_key("allow"));
    openai_error(r, 405, "method_not_allowed").await;
    assert!(mock.seen().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_key_is_never_in_a_log_line_or_an_error() {
    let mock = MockOpenAi::start().await;
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set("OPENAI_API_KEY", KEY)
        .set("OPENAI_BASE_URL", &mock.base_url())
        .set("LOG_LEVEL", "debug");
    let p = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    let send = |body: Value| {
        client
            .post(p.url("/v1/chat/completions"))
            .bearer_auth(TOKEN)
            .header("x-correlation-id", "req-ai-keytest")
            .json(&body)
            .send()
    };
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a private prompt"}]});
    let r = send(chat.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    // A provider that echoes the key in its errors (4xx passed on, 5xx quoted).
    let mut answers = Vec::new();
    for status in [401, 500] {
        mock.set(Upstream::Status(
            status,
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}"),
                             "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
        ));
        let r = send(chat.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), if status == 401 { 401 } else { 502 });
        answers.push(r.text().await.unwrap());
    }
    for answer in &answers {
        assert!(!answer.contains(KEY), "the key in an answer: {answer}");
        assert!(answer.contains("[redacted]"), "{answer}");
    }

    let log = env.log_file();
    let lines = eventually_some(Duration::from_secs(10), "the call's log line", || {
        let lines = log_lines(&log);
        async move {
            let calls: Vec<Value> = lines
                .into_iter()
                .filter(|l| l["message"] == "ai call" && l["correlationId"] == "req-ai-keytest")
                .collect();
            (calls.len() >= 3).then_some(calls)
        }
    })
    .await;
    let ok = &lines[0];
    assert_eq!(ok["model"], "gpt-4o-mini");
    assert_eq!(ok["deployment"], "openai");
    assert_eq!(ok["status"], 200);
    assert!(ok["latencyMs"].is_u64(), "{ok}");
    assert_eq!(ok["promptTokens"], 7);
    assert_eq!(ok["completionTokens"], 3);
    assert_eq!(ok["totalTokens"], 10);
    assert_eq!(lines[2]["status"], 500);

    let text = std::fs::read_to_string(&log).unwrap() + &p.stdout() + &p.stderr();
    assert!(!text.contains(KEY), "the key reached the log");
    assert!(
        !text.contains("a private prompt"),
        "the prompt reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_provider_cuts_ends_cut_for_the_caller_and_is_a_breaker_failure() {
    let mock = MockOpenAi::start().await;
    mock.set(Upstream::CutStream);
    // The cut comes after the first event was passed on (a cut before it is a 502).
    let app = gateway(&mock, Backend::Sqlite, &[]).await;
    let mut r = post(
        &app,
        "/v1/chat/completions",
        &json!({"model": "gpt-4o-mini", "stream": true, "messages": []}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut got = String::new();
    while !got.contains("part-0") {
        let c = tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .unwrap()
            .unwrap()
            .expect("the first event");
        got.push_str(std::str::from_utf8(&c).unwrap());
    }
    mock.release_stream();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .unwrap()
        {
            Ok(Some(c)) => got.push_str(std::str::from_utf8(&c).unwrap()),
            Ok(None) => break "clean",
            Err(_) => break "cut",
        }
    };
    assert!(got.contains("part-0"), "{got}");
    assert_eq!(
        ended, "cut",
        "the caller sees the stream break, not a clean end: {got}"
    );
    assert!(!got.contains("[DONE]"));
    eventually(
        Duration::from_secs(5),
        "the cut counts as a failure",
        || async { breaker_failures(&app.breaker("ai-openai").await) == 1 },
    )
    .await;
    app.stop().await;
}

/// The official `openai` Python client (PyPI, installed into `.tools/py` by
/// `scripts/ensure-tools.sh`) completes a chat, a streamed chat, a chat with a tool, an
/// embeddings call and the model list through Jarvis (`tests/sdk/openai_client.py`); the tool
/// reached the provider as the client sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_client_works_through_the_gateway() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = repo.join(".tools/py/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/ensure-tools.sh (it installs the openai client)",
        python.display()
    );
    let mock = MockOpenAi::start().await;
    // The streamed chat's later chunks flow at once (one permit for the one stream).
    mock.release_stream();
    let app = gateway(&mock, Backend::Sqlite, &[]).await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/openai_client.py");
    let address = app.address.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .env("JARVIS_URL", address)
            .env("JARVIS_TOKEN", TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the openai client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = mock.seen();
    let chats: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path == "/v1/chat/completions")
        .collect();
    assert_eq!(chats.len(), 3, "three chats reached the provider");
    assert_eq!(chats[1].body["stream"], true);
    assert_eq!(
        chats[2].body["tools"][0]["function"]["name"], "get_weather",
        "the tool was passed through"
    );
    assert!(chats.iter().all(|c| c.body["model"] == "gpt-4o-mini"));
    assert!(seen.iter().any(|s| s.path == "/v1/embeddings"));
    app.stop().await;
}
