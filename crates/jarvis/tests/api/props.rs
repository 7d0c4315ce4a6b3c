//! Property test of the HTTP layer: whatever a caller sends — any route, method, path segment,
//! query string, header (token, correlation ID, `traceparent`, content type, idempotency key,
//! session cookie) and body (malformed JSON, unknown fields, wrong types, huge numbers, any
//! bytes) — Jarvis answers below 500, on SQLite and on PostgreSQL.
//!
//! The requests go over real HTTP to a `TestApp` (so hyper's and axum's own parsing is part of
//! what is checked). The seed is fixed (a run is reproducible); a failure found once is kept
//! as a named regression test below. Unit-level properties of the parsers themselves are in
//! `src/props.rs`.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{Map, Value};

use crate::both_backends;
use crate::helpers::*;

/// Requests per backend.
const CASES: u32 = 300;

/// One generated request.
#[derive(Debug, Clone)]
struct Call {
    method: reqwest::Method,
    path: String,
    query: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
}

const ROUTES: &[&str] = &[
    "/health",
    "/metrics",
    "/api/v1/services",
    "/api/v1/services/{name}",
    "/api/v1/health/services",
    "/api/v1/health/services/{name}/history",
    "/api/v1/circuit-breakers",
    "/api/v1/circuit-breakers/{name}",
    "/api/v1/circuit-breakers/{name}/{word}",
    "/api/v1/execute",
    "/api/v1/tasks",
    "/api/v1/tasks/batch",
    "/api/v1/tasks/history",
    "/api/v1/tasks/recommendations",
    "/api/v1/tasks/executions",
    "/api/v1/tasks/{id}",
    "/api/v1/tasks/{id}/retry",
    "/api/v1/schedules",
    "/api/v1/schedules/{name}",
    "/api/v1/schedules/{name}/pause",
    "/api/v1/schedules/{name}/resume",
    "/api/v1/ai/usage",
    "/api/v1/ai/budgets",
    "/api/v1/ai/prices",
    "/api/v1/ai/models",
    "/api/v1/ai/models/{name}",
    "/api/v1/analytics/tasks",
    "/api/v1/analytics/overview",
    "/api/v1/analytics/breakers",
    "/api/v1/analytics/services",
    "/api/v1/traces/{id}",
    "/api/v1/alerts",
    "/api/v1/alerts/silences",
    "/api/v1/alerts/silences/{id}",
    "/api/v1/alerts/notifications",
    "/api/v1/agents",
    "/api/v1/agents/{name}",
    "/api/v1/openapi.json",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/models",
    "/",
    "/ui/login",
    "/ui/logout",
    "/ui/session",
    "/ui/{name}",
    "/{name}",
];

/// Field names the handlers read (and a few they do not).
const KEYS: &[&str] = &[
    "domain", "action", "parameters", "useLearned", "timeoutMs", "maxAttempts", "priority",
    "runAt", "idempotencyKey", "waitForAgent", "tasks", "url", "intervalMs", "critical",
    "expectedStatus", "method", "expectBody", "degradedLatencyMs", "healthUrl", "cron",
    "everyMs", "timezone", "task", "paused", "missed", "catchUpLimit", "model", "messages",
    "role", "content", "stream", "max_tokens", "input", "deployments", "weight", "fallbacks",
    "matchers", "rule", "service", "until", "comment", "reason", "token", "password", "extra",
];

const WORDS: &[&str] = &[
    "system-health", "monitor-services", "svc", "http://127.0.0.1:9/x", "https://127.0.0.1:9",
    "http://169.254.169.254/latest", "file:///etc/passwd", "* * * * *", "@hourly", "UTC",
    "catchUp", "skip", "2026-12-06T10:00:00Z", "9999-12-31T23:59:59Z", "2026-12-06",
    "openai/gpt-4o", "anthropic/claude-x", "gemini/gemini-x", "user", "open", "close", "reset",
    "", " ", "\u{0}", "é", "🦀", "..", ".", "null",
];

const QUERY_KEYS: &[&str] = &[
    "domain", "action", "since", "until", "limit", "offset", "status", "name", "service",
    "breaker", "state", "window", "bucket", "cursor", "before", "after", "from", "to", "model",
    "group", "kind", "level", "q", "page", "per_page", "order",
];

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<String>(),
        3 => "[ -~]{0,30}",
        2 => proptest::sample::select(WORDS).prop_map(str::to_string),
        1 => "[a-zA-Z0-9._-]{60,70}",
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Value::from),
        proptest::sample::select(vec![0i64, -1, 1, 1000, 3_600_000, i64::MAX, i64::MIN])
            .prop_map(Value::from),
    ]
    .boxed()
}

fn json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => number(),
        3 => text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            1 => proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            3 => proptest::collection::vec(
                (
                    prop_oneof![5 => proptest::sample::select(KEYS).prop_map(str::to_string), 1 => text()],
                    inner,
                ),
                0..7,
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// Percent-encodes everything but unreserved characters.
fn encode(raw: &str) -> String {
    let mut out = String::new();
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn segment() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,10}",
        2 => Just(uuid::Uuid::now_v7().to_string()),
        2 => text().prop_map(|t| encode(&t)),
        1 => proptest::sample::select(vec![
            "..", ".", "%2e%2e", "%00", "%zz", "a%2Fb", "system-health", "open", "close",
            "reset", "login", "app.js", "index.html",
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

fn query() -> BoxedStrategy<String> {
    let pair = (
        prop_oneof![5 => proptest::sample::select(QUERY_KEYS).prop_map(str::to_string), 1 => text()],
        prop_oneof![
            3 => text(),
            2 => number().prop_map(|n| n.to_string()),
            1 => Just("2026-12-06".to_string()),
        ],
    )
        .prop_map(|(k, v)| format!("{}={}", encode(&k), encode(&v)));
    prop_oneof![
        3 => Just(String::new()),
        4 => proptest::collection::vec(pair, 1..4).prop_map(|p| p.join("&")),
        1 => proptest::sample::select(vec![
            "%zz", "a=%", "==", "&&", "limit=99999999999999999999", "since=+262143-01-01",
            "wait=true&waitMs=1", "wait=true&waitMs=0", "wait=maybe", "waitMs=-1",
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

fn headers() -> BoxedStrategy<Vec<(&'static str, String)>> {
    let auth = prop_oneof![
        6 => Just(format!("Bearer {TOKEN}")),
        1 => Just(String::new()),
        1 => text().prop_map(|t| format!("Bearer {t}")),
        1 => text(),
        1 => Just(format!("bearer  {TOKEN} ")),
    ];
    let optional = |name: &'static str, value: BoxedStrategy<String>| {
        prop_oneof![2 => Just(None), 1 => value.prop_map(move |v| Some((name, v)))]
    };
    (
        auth,
        prop_oneof![
            4 => Just("application/json".to_string()),
            1 => text(),
            1 => Just("application/json; charset=latin1".to_string()),
        ],
        optional("x-correlation-id", text()),
        optional("x-request-id", text()),
        optional(
            "traceparent",
            prop_oneof![
                text(),
                "00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]",
                "[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}-[ -~]{0,8}",
            ]
            .boxed(),
        ),
        optional("idempotency-key", text()),
        optional("cookie", text().prop_map(|t| format!("jarvis_session={t}")).boxed()),
        optional("x-jarvis-csrf", text()),
        optional("origin", text()),
        optional("accept", text()),
    )
        .prop_map(|(auth, ct, a, b, c, d, e, f, g, h)| {
            let mut out = vec![("authorization", auth), ("content-type", ct)];
            out.extend([a, b, c, d, e, f, g, h].into_iter().flatten());
            out
        })
        .boxed()
}

fn body() -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        2 => Just(None),
        6 => json().prop_map(|v| Some(serde_json::to_vec(&v).unwrap())),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Some),
        1 => proptest::sample::select(vec![
            "{", "[", "{\"domain\":", "1e999", "-1e999", "{\"timeoutMs\": 1e400}",
            "{\"priority\": 99999999999999999999999}", "\"\\ud800\"", "{\"a\":\"\\u0000\"}",
            "{\"domain\":\"a\",\"action\":\"b\",\"parameters\":{\"x\":\"\\u0000\"}}",
            "{\"tasks\": [{}, {\"domain\": 1}]}", "null", "true", "",
        ])
        .prop_map(|s| Some(s.as_bytes().to_vec())),
        1 => Just(Some(format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes())),
    ]
    .boxed()
}

fn call() -> BoxedStrategy<Call> {
    (
        proptest::sample::select(vec![
            reqwest::Method::GET,
            reqwest::Method::POST,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
            reqwest::Method::PATCH,
            reqwest::Method::HEAD,
            reqwest::Method::OPTIONS,
        ]),
        proptest::sample::select(ROUTES),
        segment(),
        segment(),
        query(),
        headers(),
        body(),
    )
        .prop_map(|(method, route, a, b, query, headers, body)| {
            let path = route
                .replacen("{name}", &a, 1)
                .replacen("{id}", &a, 1)
                .replacen("{word}", &b, 1);
            Call {
                method,
                path,
                query,
                headers,
                body,
            }
        })
        .boxed()
}

/// Sends `call`; `Err` when the answer is a 5xx.
async fn send(app: &TestApp, client: &reqwest::Client, call: &Call) -> Result<u16, String> {
    let mut url = app.url(&call.path);
    if !call.query.is_empty() {
        url = format!("{url}?{}", call.query);
    }
    let mut req = client.request(call.method.clone(), &url);
    for (name, value) in &call.headers {
        // Values a client cannot send (control characters) are left out.
        if let Ok(v) = reqwest::header::HeaderValue::from_str(value) {
            req = req.header(*name, v);
        }
    }
    if let Some(body) = &call.body {
        req = req.body(body.clone());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        // A URL reqwest refuses to build is not a request Jarvis saw.
        Err(e) if e.is_builder() => return Ok(0),
        Err(e) => return Err(format!("no answer: {e}")),
    };
    let status = resp.status().as_u16();
    if status >= 500 {
        let text = resp.text().await.unwrap_or_default();
        return Err(format!("{status}: {text}"));
    }
    Ok(status)
}

/// Runs the property on a fresh application of `backend`.
async fn no_request_gets_a_5xx(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let handle = tokio::runtime::Handle::current();
    let runner_app = app.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            rng_seed: RngSeed::Fixed(0x4a41_5256_4953),
            failure_persistence: None,
            // Shrinking re-sends requests; a few hundred steps find the small case.
            max_shrink_iters: 300,
            ..Config::default()
        });
        runner.run(&call(), |c| {
            handle
                .block_on(send(&runner_app, &client, &c))
                .map(|_| ())
                .map_err(TestCaseError::fail)
        })
    })
    .await
    .unwrap();
    if let Err(e) = result {
        panic!("{e}");
    }
}

both_backends!(http_no_request_gets_a_5xx, |backend| async move {
    no_request_gets_a_5xx(backend).await
});

// Regressions: the failing cases the property found, kept by name.
