//! A mock model provider on 127.0.0.1 for the translated providers' tests (`ai_anthropic`,
//! `ai_gemini`): it records what it receives (method, path, query, headers, JSON body) and
//! answers each path with what the test set: JSON with a status, server-sent events (sent as
//! separate chunks), events then a cut connection, or nothing at all.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::helpers::*;

/// The key the tests give Jarvis: distinctive, so a leak is found by a plain search.
pub const KEY: &str = "prov-test-KEEP-THIS-SECRET-51d2e8";

/// How the mock answers a path.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This status and JSON body (a 429 also carries `retry-after: 7`).
    Json(u16, Value),
    /// 200 `text/event-stream`: these raw events, one chunk each.
    Sse(Vec<String>),
    /// These events, then the connection breaks.
    SseCut(Vec<String>),
    /// No answer at all (the request is held until the test ends).
    Hang,
}

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// When an answer applies: the path's end, and optionally a value at a JSON pointer of the
/// body.
type Route = (String, Option<(String, Value)>);

struct Inner {
    answers: Mutex<Vec<(Route, Answer)>>,
    seen: Mutex<Vec<Seen>>,
}

/// The mock provider.
#[derive(Clone)]
pub struct MockProvider {
    inner: Arc<Inner>,
    pub port: u16,
}

impl MockProvider {
    pub async fn start() -> MockProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mock = MockProvider {
            inner: Arc::new(Inner {
                answers: Mutex::new(Vec::new()),
                seen: Mutex::new(Vec::new()),
            }),
            port,
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(mock.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        mock
    }

    /// `http://127.0.0.1:<port>` (the providers' base URLs have no path).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers requests whose path ends with `path_end` with `answer` (replacing an earlier
    /// answer for the same ending).
    pub fn answer(&self, path_end: &str, answer: Answer) {
        self.route((path_end.to_string(), None), answer);
    }

    /// Answers requests whose path ends with `path_end` and whose body has `value` at
    /// `pointer` with `answer` (before the answers without a condition).
    pub fn answer_if(&self, path_end: &str, pointer: &str, value: Value, answer: Answer) {
        self.route(
            (path_end.to_string(), Some((pointer.to_string(), value))),
            answer,
        );
    }

    fn route(&self, route: Route, answer: Answer) {
        let mut answers = self.inner.answers.lock().unwrap();
        answers.retain(|(r, _)| *r != route);
        answers.push((route, answer));
        // Conditional answers first, so that they win over the plain answer of their path.
        answers.sort_by_key(|((_, condition), _)| condition.is_none());
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }
}

async fn handle(
    State(mock): State<MockProvider>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    mock.inner.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers,
        body: body.clone(),
    });
    let answer = mock
        .inner
        .answers
        .lock()
        .unwrap()
        .iter()
        .find(|((p, condition), _)| {
            uri.path().ends_with(p.as_str())
                && condition
                    .as_ref()
                    .is_none_or(|(pointer, value)| body.pointer(pointer) == Some(value))
        })
        .map(|(_, a)| a.clone());
    match answer {
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"message": "no such mock route"}})),
        )
            .into_response(),
        Some(Answer::Json(status, v)) => {
            let mut r = (StatusCode::from_u16(status).unwrap(), axum::Json(v)).into_response();
            if status == 429 {
                r.headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("7"));
            }
            r
        }
        Some(Answer::Sse(events)) => sse(events, false),
        Some(Answer::SseCut(events)) => sse(events, true),
        Some(Answer::Hang) => {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

fn sse(events: Vec<String>, cut: bool) -> Response {
    use futures_util::StreamExt;
    let items = futures_util::stream::iter(
        events
            .into_iter()
            .map(|e| Ok::<_, std::io::Error>(Bytes::from(e))),
    );
    // The cut comes a moment after the events, as a provider that goes away mid-answer: the
    // events have left by then.
    let cut = futures_util::stream::once(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        Err(std::io::Error::other("the provider went away"))
    })
    .filter(move |_| std::future::ready(cut));
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(items.chain(cut)))
        .unwrap()
}

/// Jarvis (SQLite) with `vars` set (and no other provider key).
pub async fn jarvis_with(vars: &[(&str, &str)]) -> TestApp {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    for (k, v) in vars {
        env.set(k, v);
    }
    TestApp::spawn_with(env).await
}

pub async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.send_json(reqwest::Method::POST, path, body).await
}

/// Checks an OpenAI-shaped error answer (`{"error": {message, type, param, code}}`, nothing
/// else) and returns its `error`.
pub async fn openai_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let (s, body) = json(response).await;
    assert_eq!(s, status, "{body}");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "only `error`: {body}"
    );
    let error = &body["error"];
    for key in ["message", "type", "param", "code"] {
        assert!(error.get(key).is_some(), "{key} missing: {body}");
    }
    assert_eq!(error["code"], code, "{body}");
    assert!(
        !body.to_string().contains(KEY),
        "the key in an error: {body}"
    );
    error.clone()
}

/// Reads a whole SSE answer: the JSON of every `data:` event before `[DONE]`, and whether
/// `[DONE]` came (last).
pub async fn read_sse(response: reqwest::Response) -> (Vec<Value>, bool) {
    let text = response.text().await.unwrap();
    let mut chunks = Vec::new();
    let mut done = false;
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let data = event
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not an OpenAI data event: {event:?} in {text}"));
        assert!(!done, "nothing after [DONE]: {text}");
        if data == "[DONE]" {
            done = true;
        } else {
            chunks.push(serde_json::from_str(data).unwrap());
        }
    }
    (chunks, done)
}

/// The content deltas of chunks, joined.
pub fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// Waits until breaker `name` counts `n` consecutive failures (the count also travels
/// through the store, so it is read as it settles).
pub async fn failures_become(app: &TestApp, name: &str, n: u64) {
    eventually(
        std::time::Duration::from_secs(5),
        &format!("{name} to count {n} failures"),
        || async {
            app.breaker(name).await["failureCount"]
                .as_u64()
                .unwrap_or(0)
                == n
        },
    )
    .await;
}
