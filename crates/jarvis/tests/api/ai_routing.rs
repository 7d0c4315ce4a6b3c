//! Model groups (`[ai.models.<group>]`) against mock providers on 127.0.0.1: fallback along a
//! group on a 5xx, a timeout, a refused connection and a stream cut before its first byte; an
//! OPEN deployment skipped without a call; a 429 cooling a deployment down without a breaker
//! failure; the retry budget; fallback groups; a 4xx returned without fallback; the
//! `x-jarvis-deployment` and `x-jarvis-fallbacks` headers; usage counted per deployment; and
//! `config check` refusing a wrong group; `/api/v1/ai/models/{group}` stored and served by
//! every instance.

use std::time::Duration;

use serde_json::{json, Value};

use crate::ai_mock::{Answer, MockProvider};
use crate::both_backends;
use crate::helpers::*;

/// The key variable the groups name (`keyEnv`), and its value.
const KEY_VAR: &str = "ROUTING_TEST_API_KEY";
const KEY: &str = "route-test-KEEP-THIS-SECRET-93ab";

/// An OpenAI chat answer saying `text`, with usage.
fn completion(text: &str) -> Answer {
    Answer::Json(
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
        }),
    )
}

fn failure(status: u16) -> Answer {
    Answer::Json(
        status,
        json!({"error": {"message": format!("mock says {status}"), "type": "x"}}),
    )
}

/// A TOML deployment entry for an OpenAI-compatible server at `base` (`http://…`).
fn openai_at(base: &str, model: &str) -> String {
    format!(
        r#"{{ provider = "openai", model = "{model}", baseUrl = "{base}/v1", keyEnv = "{KEY_VAR}" }}"#
    )
}

/// A base URL nothing listens on.
async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// The environment of a Jarvis (SQLite) with `config` as its config file and the groups' key
/// set.
async fn gateway_env(config: &str) -> TestEnv {
    gateway_env_on(Backend::Sqlite, config).await
}

async fn gateway_env_on(backend: Backend, config: &str) -> TestEnv {
    let mut env = TestEnv::new(backend).await;
    let file = env.dir.path().join("jarvis.toml");
    std::fs::write(&file, config).unwrap();
    env.set("JARVIS_CONFIG", &file.display().to_string())
        .set(KEY_VAR, KEY);
    env
}

/// Jarvis in this process on [`gateway_env`].
async fn gateway(config: &str) -> TestApp {
    TestApp::spawn_with(gateway_env(config).await).await
}

async fn chat(app: &TestApp, model: &str, stream: bool) -> reqwest::Response {
    chat_at(&app.url("/v1/chat/completions"), model, stream).await
}

async fn chat_at(url: &str, model: &str, stream: bool) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(TOKEN)
        .json(&json!({"model": model, "stream": stream,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Checks who answered and after how many fallbacks; returns the answer's text.
async fn answered_by(r: reqwest::Response, deployment: &str, fallbacks: u32) -> String {
    let status = r.status().as_u16();
    let by = header(&r, "x-jarvis-deployment").map(str::to_string);
    let n = header(&r, "x-jarvis-fallbacks").map(str::to_string);
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(by.as_deref(), Some(deployment), "{text}");
    assert_eq!(n, Some(fallbacks.to_string()), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_falls_back_to_the_next_deployment_which_is_counted_and_priced() {
    let (a, b) = (MockProvider::start().await, MockProvider::start().await);
    a.answer("/chat/completions", failure(503));
    b.answer("/chat/completions", completion("from b"));
    let app = gateway(&format!(
        "[ai.models.smart]\ndeployments = [{}, {}]\n",
        openai_at(&a.base_url(), "gpt-4o"),
        openai_at(&b.base_url(), "gpt-4o-mini"),
    ))
    .await;

    let text = answered_by(chat(&app, "smart", false).await, "smart-2", 1).await;
    assert!(text.contains("from b"), "{text}");
    assert_eq!(a.seen().len(), 1);
    let seen = b.seen();
    assert_eq!(seen.len(), 1);
    // Each deployment gets its own model name and the group's key.
    assert_eq!(a.seen()[0].body["model"], "gpt-4o");
    assert_eq!(seen[0].body["model"], "gpt-4o-mini");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    // The failed deployment's breaker counted the failure; the other's did not.
    crate::ai_mock::failures_become(&app, "ai-smart-1", 1).await;
    assert_eq!(app.breaker("ai-smart-2").await["failureCount"], 0);

    // Both calls are counted under the deployment that made them, priced at its model.
    let usage = eventually_some(
        Duration::from_secs(10),
        "the usage to be flushed",
        || async {
            let u = app.data("/api/v1/ai/usage?by=deployment").await;
            (u["total"]["requests"] == 2).then_some(u)
        },
    )
    .await;
    let rows = usage["rows"].as_array().unwrap();
    let row = |key: &str| {
        rows.iter()
            .find(|r| r["key"] == key)
            .unwrap_or_else(|| panic!("no {key}: {usage}"))
            .clone()
    };
    let (first, second) = (row("smart-1"), row("smart-2"));
    assert_eq!(first["errors"], 1, "{usage}");
    assert_eq!(second["errors"], 0, "{usage}");
    assert_eq!(second["promptTokens"], 1000, "{usage}");
    // gpt-4o-mini's list price: $0.15 in, $0.60 out per million tokens.
    let cost = second["costUsd"].as_f64().unwrap();
    assert!((cost - 0.00045).abs() < 1e-9, "{usage}");
    let by_model = app.data("/api/v1/ai/usage?by=model").await;
    assert_eq!(by_model["rows"][0]["key"], "smart", "{by_model}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_a_refused_connection_and_a_stream_cut_before_its_first_byte_fall_back() {
    let (hang, cut, ok) = (
        MockProvider::start().await,
        MockProvider::start().await,
        MockProvider::start().await,
    );
    hang.answer("/chat/completions", Answer::Hang);
    // A 200 whose body breaks before any byte of it arrived.
    cut.answer("/chat/completions", Answer::SseCut(vec![]));
    ok.answer("/chat/completions", completion("from ok"));
    ok.answer_if(
        "/chat/completions",
        "/stream",
        json!(true),
        Answer::Sse(vec![
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\
             \"delta\":{\"content\":\"streamed by ok\"}}]}\n\n"
                .into(),
            "data: [DONE]\n\n".into(),
        ]),
    );
    let refused = refused_url().await;
    let app = gateway(&format!(
        "[ai.models.slow]\ndeployments = [{}, {}]\ntimeoutMs = 300\n\n\
         [ai.models.gone]\ndeployments = [{}, {}]\n\n\
         [ai.models.cut]\ndeployments = [{}, {}]\n",
        openai_at(&hang.base_url(), "m"),
        openai_at(&ok.base_url(), "m"),
        openai_at(&refused, "m"),
        openai_at(&ok.base_url(), "m2"),
        openai_at(&cut.base_url(), "m"),
        openai_at(&ok.base_url(), "m3"),
    ))
    .await;

    let started = std::time::Instant::now();
    answered_by(chat(&app, "slow", false).await, "slow-2", 1).await;
    // The group's 300 ms, not JARVIS_AI_TIMEOUT_MS (10 minutes).
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(hang.seen().len(), 1);
    crate::ai_mock::failures_become(&app, "ai-slow-1", 1).await;

    answered_by(chat(&app, "gone", false).await, "gone-2", 1).await;
    crate::ai_mock::failures_become(&app, "ai-gone-1", 1).await;

    let text = answered_by(chat(&app, "cut", true).await, "cut-2", 1).await;
    assert!(text.contains("streamed by ok"), "{text}");
    assert_eq!(cut.seen().len(), 1);
    crate::ai_mock::failures_become(&app, "ai-cut-1", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_deployment_is_skipped_without_a_call_and_a_4xx_is_returned_without_fallback() {
    let (a, b) = (MockProvider::start().await, MockProvider::start().await);
    a.answer("/chat/completions", completion("from a"));
    b.answer("/chat/completions", completion("from b"));
    let app = gateway(&format!(
        "[ai.models.pair]\ndeployments = [{}, {}]\n\n\
         [ai.models.strict]\ndeployments = [{}, {}]\n\n\
         [ai.models.lone]\ndeployments = [{}]\n\n\
         [ai.models.keyless]\ndeployments = [{{ provider = \"openai\", model = \"m\", \
         keyEnv = \"ROUTING_MISSING_API_KEY\" }}]\n",
        openai_at(&a.base_url(), "m"),
        openai_at(&b.base_url(), "m"),
        openai_at(&a.base_url(), "bad-model"),
        openai_at(&b.base_url(), "m"),
        openai_at(&b.base_url(), "lone-model"),
    ))
    .await;
    // Every deployment OPEN: 503 circuit_open, nothing sent.
    app.fail_calls("ai-lone-1", 5, "test outage");
    let r = chat(&app, "lone", false).await;
    assert_eq!(header(&r, "x-jarvis-deployment"), Some("lone-1"));
    assert!(header(&r, "retry-after").is_some());
    crate::ai_mock::openai_error(r, 503, "circuit_open").await;
    assert!(b.seen().is_empty(), "no call reaches an OPEN deployment");
    // No key for any deployment: 503 naming the variable.
    let r = chat(&app, "keyless", false).await;
    let error = crate::ai_mock::openai_error(r, 503, "no_deployment_available").await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("ROUTING_MISSING_API_KEY"),
        "{error}"
    );
    // The first deployment answers while its breaker is closed...
    answered_by(chat(&app, "pair", false).await, "pair-1", 0).await;
    assert_eq!(a.seen().len(), 1);
    // ...and is passed over, with no call reaching it, once it is OPEN.
    app.fail_calls("ai-pair-1", 5, "test outage");
    assert_eq!(app.breaker("ai-pair-1").await["state"], "OPEN");
    for _ in 0..3 {
        answered_by(chat(&app, "pair", false).await, "pair-2", 1).await;
    }
    assert_eq!(a.seen().len(), 1, "no call reaches an OPEN deployment");
    assert_eq!(b.seen().len(), 3);

    // A 4xx other than 429 is the caller's answer: no fallback.
    a.answer_if(
        "/chat/completions",
        "/model",
        json!("bad-model"),
        Answer::Json(
            400,
            json!({"error": {"message": "no such model", "type": "invalid_request_error"}}),
        ),
    );
    let r = chat(&app, "strict", false).await;
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "x-jarvis-deployment"), Some("strict-1"));
    assert_eq!(header(&r, "x-jarvis-fallbacks"), Some("0"));
    assert_eq!(b.seen().len(), 3, "no fallback after a 400");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_cools_the_deployment_down_without_a_breaker_failure() {
    let (a, b) = (MockProvider::start().await, MockProvider::start().await);
    // The mock's 429 says `retry-after: 7`.
    a.answer("/chat/completions", failure(429));
    b.answer("/chat/completions", completion("from b"));
    let app = gateway(&format!(
        "[ai.models.pair]\ndeployments = [{}, {}]\n\n\
         [ai.models.solo]\ndeployments = [{}]\n",
        openai_at(&a.base_url(), "m"),
        openai_at(&b.base_url(), "m"),
        openai_at(&a.base_url(), "solo-model"),
    ))
    .await;
    answered_by(chat(&app, "pair", false).await, "pair-2", 1).await;
    assert_eq!(a.seen().len(), 1);
    // The second request does not call the cooling deployment.
    answered_by(chat(&app, "pair", false).await, "pair-2", 1).await;
    assert_eq!(a.seen().len(), 1, "a cooling deployment is not called");
    assert_eq!(b.seen().len(), 2);
    let breaker = app.breaker("ai-pair-1").await;
    assert_eq!(breaker["failureCount"], 0, "{breaker}");
    assert_eq!(breaker["state"], "CLOSED", "{breaker}");

    // A group with nothing but a rate-limited deployment: the provider's 429 passes through,
    // then Jarvis answers 429 itself, without a call, until the cooldown ends.
    let r = chat(&app, "solo", false).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("7"));
    assert_eq!(a.seen().len(), 2);
    let r = chat(&app, "solo", false).await;
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=7).contains(&retry), "{retry}");
    let error = crate::ai_mock::openai_error(r, 429, "deployments_cooling").await;
    assert_eq!(error["type"], "rate_limit_error");
    assert!(
        error["message"].as_str().unwrap().contains("solo"),
        "{error}"
    );
    assert_eq!(a.seen().len(), 2, "no call while cooling");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_bounds_fallbacks_and_says_so_in_the_log() {
    let (a, b) = (MockProvider::start().await, MockProvider::start().await);
    a.answer("/chat/completions", failure(500));
    b.answer("/chat/completions", completion("from b"));
    // No share of requests, 0.2 retries a second: two retries in the 10 s window. A real
    // process, whose log file the test reads.
    let env = gateway_env(&format!(
        "[ai.models.tight]\ndeployments = [{}, {}]\n\
         retryBudgetPercent = 0\nretryBudgetMinPerSecond = 0.2\n",
        openai_at(&a.base_url(), "m"),
        openai_at(&b.base_url(), "m"),
    ))
    .await;
    let p = TestProcess::start(&env).await;
    let url = p.url("/v1/chat/completions");
    answered_by(chat_at(&url, "tight", false).await, "tight-2", 1).await;
    answered_by(chat_at(&url, "tight", false).await, "tight-2", 1).await;
    // The budget is spent: the first deployment's failure is the answer.
    let r = chat_at(&url, "tight", false).await;
    assert_eq!(header(&r, "x-jarvis-deployment"), Some("tight-1"));
    let error = crate::ai_mock::openai_error(r, 502, "upstream_error").await;
    assert!(
        error["message"].as_str().unwrap().contains("HTTP 500"),
        "{error}"
    );
    assert_eq!(a.seen().len(), 3);
    assert_eq!(b.seen().len(), 2, "no retry beyond the budget");
    let log = env.log_file();
    eventually(Duration::from_secs(10), "the retry budget log line", || {
        let lines = log_lines(&log);
        async move {
            let budget = lines
                .iter()
                .any(|l| l["message"] == "retry budget exhausted" && l["group"] == "tight");
            // The two requests that fell back say so, with who answered.
            let fallbacks = lines
                .iter()
                .filter(|l| {
                    l["message"] == "ai fallback"
                        && l["group"] == "tight"
                        && l["deployment"] == "tight-2"
                        && l["fallbacks"] == 1
                })
                .count();
            budget && fallbacks == 2
        }
    })
    .await;
    // The key is in no log line.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(KEY), "the key in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_falls_back_to_its_fallback_group_across_providers() {
    let (a, claude) = (MockProvider::start().await, MockProvider::start().await);
    a.answer("/chat/completions", failure(502));
    claude.answer(
        "/v1/messages",
        Answer::Json(
            200,
            json!({"id": "msg_1", "type": "message", "role": "assistant",
                   "model": "claude-3-5-haiku-latest",
                   "content": [{"type": "text", "text": "from claude"}],
                   "stop_reason": "end_turn", "stop_sequence": null,
                   "usage": {"input_tokens": 10, "output_tokens": 5}}),
        ),
    );
    let app = gateway(&format!(
        "[ai.models.main]\ndeployments = [{}]\nfallbacks = [\"backup\"]\n\n\
         [ai.models.backup]\ndeployments = [{{ name = \"claude-backup\", provider = \"anthropic\", \
         model = \"claude-3-5-haiku-latest\", baseUrl = \"{}\", keyEnv = \"{KEY_VAR}\" }}]\n",
        openai_at(&a.base_url(), "m"),
        claude.base_url(),
    ))
    .await;
    let text = answered_by(chat(&app, "main", false).await, "claude-backup", 1).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "from claude", "{v}");
    assert_eq!(claude.seen()[0].header("x-api-key"), Some(KEY));
    assert_eq!(claude.seen()[0].body["model"], "claude-3-5-haiku-latest");
    // GET /v1/models lists the groups (no provider key is set, so nothing else).
    let (status, list) = json(app.get("/v1/models").await).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["backup", "main"], "{list}");
    assert_eq!(list["data"][0]["owned_by"], "jarvis");
    // The breaker of a named deployment is named after it.
    assert_eq!(app.breaker("ai-claude-backup").await["failureCount"], 0);
    crate::ai_mock::failures_become(&app, "ai-main-1", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_refuses_a_wrong_model_group() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[ai.models.a]\ndeployments = [{ provider = \"openai\", model = \"m\" }]\n\
             fallbacks = [\"b\"]\n[ai.models.b]\n\
             deployments = [{ provider = \"openai\", model = \"m\" }]\nfallbacks = [\"a\"]\n",
            "the fallbacks go round in a circle (a -> b -> a)",
        ),
        (
            "[ai.models.a]\ndeployments = [{ provider = \"cohere\", model = \"m\" }]\n",
            "ai.models.a.deployments[0].provider: unknown provider \"cohere\"",
        ),
    ];
    for (text, says) in cases {
        let file = dir.path().join("jarvis.toml");
        std::fs::write(&file, text).unwrap();
        let vars = [("JARVIS_CONFIG".to_string(), file.display().to_string())].into();
        let out = run_jarvis(&["config", "check"], &vars, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {text}");
        assert!(stderr.contains(says), "{text}: {stderr}");
    }
}

both_backends!(
    model_groups_put_through_the_api_are_stored_and_served,
    model_groups_put_through_the_api_are_stored_and_served
);
async fn model_groups_put_through_the_api_are_stored_and_served(backend: Backend) {
    let (a, b) = (MockProvider::start().await, MockProvider::start().await);
    a.answer("/chat/completions", failure(500));
    b.answer("/chat/completions", completion("from b"));
    // The config file's group is written to the store at start.
    let env = gateway_env_on(
        backend,
        &format!(
            "[ai.models.base]\ndeployments = [{}]\n",
            openai_at(&b.base_url(), "base-model")
        ),
    )
    .await;
    let app = TestApp::spawn_with(env).await;
    let base = app.data("/api/v1/ai/models/base").await;
    assert_eq!(base["deployments"][0]["model"], "base-model", "{base}");

    let group = json!({
        "deployments": [
            {"provider": "openai", "model": "m", "baseUrl": format!("{}/v1", a.base_url()),
             "keyEnv": KEY_VAR},
        ],
        "fallbacks": ["base"],
        "timeoutMs": 2000
    });
    let r = app
        .send_json(reqwest::Method::PUT, "/api/v1/ai/models/api-group", &group)
        .await;
    let (status, body) = json(r).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["fallbacks"], json!(["base"]), "{body}");
    let r = app
        .send_json(reqwest::Method::PUT, "/api/v1/ai/models/api-group", &group)
        .await;
    assert_eq!(r.status(), 200);
    // Served at once by the instance that took it: the first deployment fails, the fallback
    // group answers.
    answered_by(chat(&app, "api-group", false).await, "base-1", 1).await;
    assert_eq!(a.seen().len(), 1);
    let listed = app.data("/api/v1/ai/models").await;
    assert_eq!(
        listed.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["api-group", "base"],
        "{listed}"
    );

    // Another instance on the same database serves it too.
    if backend == Backend::Postgres {
        let other = TestApp::spawn_with(app.env.another_instance()).await;
        answered_by(chat(&other, "api-group", false).await, "base-1", 1).await;
        other.stop().await;
    }

    // Refused with the config file's messages.
    for (body, says) in [
        (
            json!({"deployments": [{"provider": "openai", "model": "m"}], "fallbacks": ["nope"]}),
            "unknown fallback group",
        ),
        (json!({"deployments": []}), "at least one deployment"),
        (
            json!({"deployments": [{"provider": "openai", "model": "m", "keyEnv": "DATABASE_URL"}]}),
            "keyEnv",
        ),
        (
            json!({"deployments": [{"provider": "openai", "model": "m"}], "fallbacks": ["api-group"]}),
            // base -> api-group -> base
            "go round in a circle",
        ),
    ] {
        let r = app
            .send_json(reqwest::Method::PUT, "/api/v1/ai/models/base", &body)
            .await;
        let (status, answer) = json(r).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.to_string().contains(says), "{body}: {answer}");
    }
    let r = app
        .send_json(
            reqwest::Method::PUT,
            "/api/v1/ai/models/x",
            &json!({"deployments": [{"provider": "openai", "model": "m", "key": "sk-1"}]}),
        )
        .await;
    assert_eq!(r.status(), 400);

    // A group another falls back to is not removed; once free it is.
    let r = app
        .client
        .delete(app.url("/api/v1/ai/models/base"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    for name in ["api-group", "base"] {
        let r = app
            .client
            .delete(app.url(&format!("/api/v1/ai/models/{name}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{name}");
    }
    let r = app.get("/api/v1/ai/models/api-group").await;
    assert_eq!(r.status(), 404);
    // No longer a group: a bare OpenAI model name, and no OpenAI key is set.
    let calls = a.seen().len();
    let r = chat(&app, "api-group", false).await;
    assert_eq!(r.status(), 503);
    assert_eq!(a.seen().len(), calls);
}
