//! What AI calls cost and the budgets that hold them (issue 14, "Cost and budgets"): every
//! call through `/v1/*` priced from its usage and rolled up per hour, model, deployment,
//! domain and token in the store; budgets refusing calls before they reach the provider, across
//! restarts and across instances; `/api/v1/ai/*` and `jarvis ai`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

/// A mock OpenAI: every chat answer uses `PROMPT` prompt and `COMPLETION` completion tokens;
/// the model `broken-model` answers 500; `/v1/models` lists one model (not counted as a call).
#[derive(Clone)]
pub struct Mock {
    calls: Arc<AtomicUsize>,
    last: Arc<Mutex<Value>>,
    pub port: u16,
}

pub const PROMPT: u64 = 1_000;
pub const COMPLETION: u64 = 500;

impl Mock {
    pub async fn start() -> Mock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mock = Mock {
            calls: Arc::new(AtomicUsize::new(0)),
            last: Arc::new(Mutex::new(Value::Null)),
            port: listener.local_addr().unwrap().port(),
        };
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(mock.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        mock
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The body of the last counted call.
    pub fn last(&self) -> Value {
        self.last.lock().unwrap().clone()
    }
}

async fn answer(State(mock): State<Mock>, uri: Uri, body: Bytes) -> Response {
    if uri.path() == "/v1/models" {
        return axum::Json(json!({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "system"}
        ]}))
        .into_response();
    }
    mock.calls.fetch_add(1, Ordering::SeqCst);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    *mock.last.lock().unwrap() = body.clone();
    if body["model"] == "broken-model" {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": {"message": "boom", "type": "server_error"}})),
        )
            .into_response();
    }
    let usage = json!({"prompt_tokens": PROMPT, "completion_tokens": COMPLETION,
                       "total_tokens": PROMPT + COMPLETION});
    if uri.path() == "/v1/chat/completions" && body["stream"] == true {
        let events = format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"hi\"}}}}]}}\n\n\
             data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{usage}}}\n\n\
             data: [DONE]\n\n"
        );
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(events))
            .unwrap();
    }
    axum::Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "ok"}}],
        "usage": usage
    }))
    .into_response()
}

/// The environment of a gateway on `mock` with `config` as its config file.
pub async fn env(mock: &Mock, backend: Backend, config: &str) -> TestEnv {
    let mut env = TestEnv::new(backend).await;
    let file = env.dir.path().join("jarvis.toml");
    std::fs::write(&file, config).unwrap();
    env.set("JARVIS_CONFIG", &file.display().to_string())
        .set("OPENAI_API_KEY", "sk-test-spend")
        .set(
            "OPENAI_BASE_URL",
            &format!("http://127.0.0.1:{}/v1", mock.port),
        );
    env
}

async fn chat(app: &TestApp, model: &str, domain: Option<&str>, stream: bool) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .json(&json!({"model": model, "stream": stream,
                      "messages": [{"role": "user", "content": "hi"}]}));
    if let Some(d) = domain {
        request = request.header("x-jarvis-domain", d);
    }
    request.send().await.unwrap()
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// gpt-4o-mini's list price: $0.15 / $0.60 per million tokens.
pub const CALL_COST: f64 = (PROMPT as f64 * 0.15 + COMPLETION as f64 * 0.60) / 1e6;

both_backends!(
    every_call_is_priced_and_rolled_up_by_model_domain_and_token,
    every_call_is_priced_and_rolled_up_by_model_domain_and_token
);
async fn every_call_is_priced_and_rolled_up_by_model_domain_and_token(backend: Backend) {
    let mock = Mock::start().await;
    let app = TestApp::spawn_with(env(&mock, backend, "").await).await;
    for _ in 0..2 {
        let r = chat(&app, "openai/gpt-4o-mini", Some("research"), false).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    // A stream is priced from its last event's usage.
    let r = chat(&app, "openai/gpt-4o-mini", Some("research"), true).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    // No domain, and a failed call: counted as a request and an error, at no cost.
    let r = chat(&app, "gpt-4o-mini", None, false).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let r = chat(&app, "openai/broken-model", Some("research"), false).await;
    assert_eq!(r.status(), 502);

    let by_domain = eventually_some(
        Duration::from_secs(10),
        "the usage to be flushed",
        || async {
            let u = app.data("/api/v1/ai/usage?by=domain").await;
            (u["total"]["requests"] == 5).then_some(u)
        },
    )
    .await;
    let rows = by_domain["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{by_domain}");
    let (none, research) = (&rows[0], &rows[1]);
    assert_eq!(none["key"], "");
    assert_eq!(none["requests"], 1);
    assert!(
        approx(none["costUsd"].as_f64().unwrap(), CALL_COST),
        "{none}"
    );
    assert_eq!(research["key"], "research");
    assert_eq!(research["requests"], 4);
    assert_eq!(research["errors"], 1);
    assert_eq!(research["promptTokens"], 3 * PROMPT);
    assert_eq!(research["completionTokens"], 3 * COMPLETION);
    assert!(
        approx(research["costUsd"].as_f64().unwrap(), 3.0 * CALL_COST),
        "{research}"
    );
    assert!(approx(
        by_domain["total"]["costUsd"].as_f64().unwrap(),
        4.0 * CALL_COST
    ));

    // By model: the name the caller used.
    let by_model = app.data("/api/v1/ai/usage?by=model").await;
    let keys: Vec<&str> = by_model["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["gpt-4o-mini", "openai/broken-model", "openai/gpt-4o-mini"]
    );
    // By token: its fingerprint, never the token.
    let by_token = app.data("/api/v1/ai/usage?by=token").await;
    assert_eq!(
        by_token["rows"][0]["key"],
        jarvis::ai::spend::token_id(TOKEN)
    );
    assert!(!by_token.to_string().contains(TOKEN));
    // By deployment and by hour.
    let by_deployment = app.data("/api/v1/ai/usage?by=deployment").await;
    assert_eq!(by_deployment["rows"][0]["key"], "openai");
    assert_eq!(by_deployment["rows"][0]["requests"], 5);
    let by_hour = app.data("/api/v1/ai/usage?by=hour").await;
    let hour = by_hour["rows"][0]["key"].as_str().unwrap();
    assert!(hour.ends_with(":00:00Z"), "{by_hour}");
    // A range before the calls holds none of them.
    let before = app
        .data("/api/v1/ai/usage?since=2020-01-01&until=2020-01-02")
        .await;
    assert_eq!(before["rows"], json!([]));
    assert_eq!(before["total"]["requests"], 0);
    // Prometheus: per deployment and provider model.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "jarvis_ai_requests_total{deployment=\"openai\",model=\"gpt-4o-mini\"} 4",
        "jarvis_ai_errors_total{deployment=\"openai\",model=\"broken-model\"} 1",
        "jarvis_ai_tokens_total{deployment=\"openai\",model=\"gpt-4o-mini\",kind=\"prompt\"} 4000",
        "jarvis_ai_tokens_total{deployment=\"openai\",model=\"gpt-4o-mini\",kind=\"completion\"} 2000",
        "jarvis_ai_call_duration_seconds_count{deployment=\"openai\",model=\"gpt-4o-mini\"} 4",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    let spend_line = metrics
        .lines()
        .find(|l| l.starts_with("jarvis_ai_spend_usd{deployment=\"openai\",model=\"gpt-4o-mini\"}"))
        .unwrap_or_else(|| panic!("no spend line:\n{metrics}"));
    let spend: f64 = spend_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(approx(spend, 4.0 * CALL_COST), "{spend_line}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_queries_that_make_no_sense_are_refused() {
    let mock = Mock::start().await;
    let app = TestApp::spawn_with(env(&mock, Backend::Sqlite, "").await).await;
    for (query, says) in [
        ("by=colour", "by: \"colour\" is not model"),
        ("since=yesterday", "since:"),
        (
            "since=2026-12-02&until=2026-12-01",
            "until: must be after since",
        ),
        ("group=model", "unknown field"),
    ] {
        let (s, body) = json(app.get(&format!("/api/v1/ai/usage?{query}")).await).await;
        assert_eq!(s, 400, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message}");
    }
    // A domain header that is not a name is refused in OpenAI's shape, before any call.
    let r = chat(&app, "gpt-4o-mini", Some("../etc"), false).await;
    let (s, body) = json(r).await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_domain");
    assert_eq!(mock.calls(), 0);
    app.stop().await;
}

/// One call costs $1 (1,000 prompt tokens at $1,000 per million); research may spend $1.50 a
/// day, so the second call is the last one to go out.
pub const BUDGETED: &str = r#"
[ai.prices."openai/gpt-4o-mini"]
inputPerMillion = 1000
outputPerMillion = 0

[[ai.budgets]]
domain = "research"
dailyUsd = 1.5
"#;

both_backends!(
    a_spent_budget_refuses_calls_before_they_reach_the_provider,
    a_spent_budget_refuses_calls_before_they_reach_the_provider
);
async fn a_spent_budget_refuses_calls_before_they_reach_the_provider(backend: Backend) {
    let mock = Mock::start().await;
    let app = TestApp::spawn_with(env(&mock, backend, BUDGETED).await).await;
    for _ in 0..2 {
        let r = chat(&app, "openai/gpt-4o-mini", Some("research"), false).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let r = chat(&app, "openai/gpt-4o-mini", Some("research"), false).await;
    let (s, body) = json(r).await;
    assert_eq!(s, 429, "{body}");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("daily AI budget of domain research is spent ($2.0000 of $1.5000)"),
        "{message}"
    );
    assert_eq!(mock.calls(), 2, "the refused call reached nobody");
    // Streams and embeddings are held too; other domains and calls without one are not.
    assert_eq!(
        chat(&app, "openai/gpt-4o-mini", Some("research"), true)
            .await
            .status(),
        429
    );
    assert_eq!(
        chat(&app, "openai/gpt-4o-mini", Some("music"), false)
            .await
            .status(),
        200
    );
    assert_eq!(
        chat(&app, "openai/gpt-4o-mini", None, false).await.status(),
        200
    );
    let budgets = app.data("/api/v1/ai/budgets").await;
    assert_eq!(budgets.as_array().unwrap().len(), 1, "{budgets}");
    let b = &budgets[0];
    assert_eq!(b["scope"], "domain research");
    assert_eq!(b["dailyUsd"], 1.5);
    assert!(approx(b["spentTodayUsd"].as_f64().unwrap(), 2.0), "{b}");
    assert!(approx(b["spentThisMonthUsd"].as_f64().unwrap(), 2.0), "{b}");
    assert_eq!(b["exhausted"], true);

    // After a restart the spend is read back before the first call: still refused.
    let env = app.stop_keep_env().await;
    let calls = mock.calls();
    let app = TestApp::spawn_with(env).await;
    assert_eq!(
        chat(&app, "openai/gpt-4o-mini", Some("research"), false)
            .await
            .status(),
        429
    );
    assert_eq!(mock.calls(), calls);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_holds_across_instances_sharing_postgresql() {
    let mock = Mock::start().await;
    let a = TestApp::spawn_with(env(&mock, Backend::Postgres, BUDGETED).await).await;
    let b = TestApp::spawn_with(a.env.another_instance()).await;
    // Two dollars spent on instance A...
    for _ in 0..2 {
        assert_eq!(
            chat(&a, "openai/gpt-4o-mini", Some("research"), false)
                .await
                .status(),
            200
        );
    }
    // ...hold instance B within its next flush (one second).
    eventually(
        Duration::from_secs(10),
        "instance B to see A's spend",
        || async {
            let budgets = b.data("/api/v1/ai/budgets").await;
            budgets[0]["exhausted"] == true
        },
    )
    .await;
    let calls = mock.calls();
    assert_eq!(
        chat(&b, "openai/gpt-4o-mini", Some("research"), false)
            .await
            .status(),
        429
    );
    assert_eq!(mock.calls(), calls);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_budget_or_price_is_refused_at_start_naming_the_key() {
    let cases = [
        (
            "[[ai.budgets]]\ndomain = \"a\"\ntoken = \"tok-1\"\ndailyUsd = 1\n",
            "ai.budgets[0]: give domain or token, not both",
        ),
        (
            "[[ai.budgets]]\ndomain = \"a\"\n",
            "ai.budgets[0]: give dailyUsd, monthlyUsd or both",
        ),
        (
            "[[ai.budgets]]\nmonthlyUsd = -2\n",
            "ai.budgets[0]: monthlyUsd must be a number of dollars, 0 or more",
        ),
        (
            "[ai.prices.\"gpt-4o\"]\ninputPerMillion = 1\n",
            "ai.prices.\"gpt-4o\": expected \"provider/model\" with provider openai",
        ),
        (
            "[ai.prices.\"openai/x\"]\ninputPerMillion = -1\n",
            "prices must be dollars per million tokens",
        ),
        (
            "[ai.prices.\"openai/x\"]\ninput = 1\n",
            "unknown field `input`",
        ),
    ];
    for (text, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jarvis.toml");
        std::fs::write(&file, text).unwrap();
        let vars = [("JARVIS_CONFIG".to_string(), file.display().to_string())].into();
        let err = jarvis::config::Config::from_env_map(&vars, None)
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"))
            .to_string();
        assert!(err.contains(says), "{text}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jarvis_ai_prints_usage_budgets_and_prices() {
    let mock = Mock::start().await;
    let app = TestApp::spawn_with(env(&mock, Backend::Sqlite, BUDGETED).await).await;
    assert_eq!(
        chat(&app, "openai/gpt-4o-mini", Some("research"), false)
            .await
            .status(),
        200
    );
    eventually(
        Duration::from_secs(10),
        "the usage to be flushed",
        || async { app.data("/api/v1/ai/usage").await["total"]["requests"] == 1 },
    )
    .await;
    let vars = [
        ("JARVIS_URL".to_string(), app.address.clone()),
        ("JARVIS_AUTH_TOKEN".to_string(), TOKEN.to_string()),
    ]
    .into();
    let run = |args: &[&str]| {
        let out = run_jarvis(args, &vars, app.env.dir.path());
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let usage = run(&["ai", "usage", "--by", "domain"]);
    let lines: Vec<&str> = usage.lines().collect();
    assert!(
        lines[0].starts_with("DOMAIN") && lines[0].contains("COST USD"),
        "{usage}"
    );
    assert!(
        lines[1].starts_with("research") && lines[1].contains("1.000000"),
        "{usage}"
    );
    assert!(lines[2].starts_with("total"), "{usage}");
    // `jarvis ai` alone is the usage by model.
    assert!(run(&["ai"]).starts_with("MODEL"));
    let budgets = run(&["ai", "budgets"]);
    assert!(
        budgets.contains("domain research") && budgets.contains("1.50"),
        "{budgets}"
    );
    let prices = run(&["ai", "prices"]);
    assert!(
        prices
            .lines()
            .any(|l| l.starts_with("openai/gpt-4o-mini ") && l.contains("1000")),
        "{prices}"
    );
    let json: Value = serde_json::from_str(&run(&["ai", "usage", "--json"])).unwrap();
    assert_eq!(json["by"], "model");
    assert_eq!(json["total"]["requests"], 1);
    let models = run(&["ai", "models"]);
    assert!(models.starts_with("MODEL"), "{models}");
    app.stop().await;
}
