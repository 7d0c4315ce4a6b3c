//! The AI gateway's response cache (issue 14, "Response cache"): identical requests that ask
//! for it (`temperature` 0, `x-jarvis-cache: true`) answered without calling the provider, in
//! memory or — with `REDIS_HOST` — in Redis shared by every instance; a Redis that is down
//! never fails a request. Redis runs on 127.0.0.1:6379 here; every test's requests carry a
//! nonce, so its keys are its own (they expire by their time to live; nothing is flushed).

use std::time::Duration;

use serde_json::{json, Value};

use crate::ai_spend::{env, Mock};
use crate::helpers::*;

/// A string no other test run sends, so that keys in the shared Redis are this test's.
fn nonce() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn chat_body(content: &str, temperature: f64) -> Value {
    json!({"model": "openai/gpt-4o-mini", "temperature": temperature,
           "messages": [{"role": "user", "content": content}]})
}

async fn post(app: &TestApp, path: &str, body: &Value, cache: Option<&str>) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).bearer_auth(TOKEN).json(body);
    if let Some(c) = cache {
        request = request.header("x-jarvis-cache", c);
    }
    request.send().await.unwrap()
}

/// Status, `x-jarvis-cache` and body of a chat completion.
async fn chat(app: &TestApp, body: &Value, cache: Option<&str>) -> (u16, Option<String>, Value) {
    let r = post(app, "/v1/chat/completions", body, cache).await;
    let status = r.status().as_u16();
    let header = r
        .headers()
        .get("x-jarvis-cache")
        .map(|v| v.to_str().unwrap().to_string());
    (status, header, r.json().await.unwrap())
}

/// The value of the Prometheus series `line` (`name{labels}`), 0 when absent.
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_temperature_zero_request_is_answered_from_memory() {
    let mock = Mock::start().await;
    let app = TestApp::spawn_with(env(&mock, Backend::Sqlite, "").await).await;
    let body = chat_body(&nonce(), 0.0);

    let (status, header, first) = chat(&app, &body, None).await;
    assert_eq!((status, header.as_deref()), (200, Some("miss")));
    assert_eq!(mock.calls(), 1);

    // The same request, keys in another order and 0 written 0.0: the stored answer.
    let reordered: Value = serde_json::from_str(&format!(
        r#"{{"messages":[{{"content":{},"role":"user"}}],"temperature":0.0,"model":"openai/gpt-4o-mini","user":"someone"}}"#,
        body["messages"][0]["content"]
    ))
    .unwrap();
    let r = post(&app, "/v1/chat/completions", &reordered, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-jarvis-cache"], "hit");
    assert_eq!(r.headers()["x-jarvis-deployment"], "openai");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.json::<Value>().await.unwrap(), first);
    assert_eq!(mock.calls(), 1, "a hit must not call the provider");

    // Another question is a miss.
    let (status, header, _) = chat(&app, &chat_body(&nonce(), 0.0), None).await;
    assert_eq!((status, header.as_deref()), (200, Some("miss")));
    assert_eq!(mock.calls(), 2);

    // The hit is counted as a call of deployment `cache` at $0, and in the cache's counter.
    assert_eq!(
        metric(&app, "jarvis_ai_cache_total{result=\"hit\"}").await,
        1.0
    );
    assert_eq!(
        metric(&app, "jarvis_ai_cache_total{result=\"miss\"}").await,
        2.0
    );
    assert_eq!(
        metric(
            &app,
            "jarvis_ai_requests_total{deployment=\"cache\",model=\"gpt-4o-mini\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &app,
            "jarvis_ai_requests_total{deployment=\"openai\",model=\"gpt-4o-mini\"}"
        )
        .await,
        2.0
    );
    assert_eq!(
        metric(
            &app,
            "jarvis_ai_spend_usd{deployment=\"cache\",model=\"gpt-4o-mini\"}"
        )
        .await,
        0.0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_requests_that_ask_are_cached_and_streams_never() {
    let mock = Mock::start().await;
    let app = TestApp::spawn_with(env(&mock, Backend::Sqlite, "").await).await;

    // temperature 0.7: not looked up, not stored.
    let warm = chat_body(&nonce(), 0.7);
    for n in 1..=2 {
        let (status, header, _) = chat(&app, &warm, None).await;
        assert_eq!((status, header), (200, None));
        assert_eq!(mock.calls(), n);
    }
    // ...unless the caller asks with the header.
    let (_, header, _) = chat(&app, &warm, Some("true")).await;
    assert_eq!(header.as_deref(), Some("miss"));
    let (_, header, _) = chat(&app, &warm, Some("true")).await;
    assert_eq!(header.as_deref(), Some("hit"));
    assert_eq!(mock.calls(), 3);

    // temperature 0 with `x-jarvis-cache: false`: neither looked up nor stored.
    let cold = chat_body(&nonce(), 0.0);
    for _ in 0..2 {
        let (status, header, _) = chat(&app, &cold, Some("false")).await;
        assert_eq!((status, header), (200, None));
    }
    assert_eq!(mock.calls(), 5);
    // ...and was not stored by those calls: the first cached call is a miss.
    let (_, header, _) = chat(&app, &cold, None).await;
    assert_eq!(header.as_deref(), Some("miss"));
    // A stored answer is still bypassed with `false`.
    let (_, header, _) = chat(&app, &cold, Some("false")).await;
    assert_eq!(header, None);
    assert_eq!(mock.calls(), 7);

    // Streams are never cached, even at temperature 0 with the header.
    let mut stream = chat_body(&nonce(), 0.0);
    stream["stream"] = json!(true);
    for _ in 0..2 {
        let r = post(&app, "/v1/chat/completions", &stream, Some("true")).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("x-jarvis-cache").is_none());
        assert!(r.text().await.unwrap().contains("[DONE]"));
    }
    assert_eq!(mock.calls(), 9);

    // Embeddings: only with the header.
    let embed = json!({"model": "openai/text-embedding-3-small", "input": nonce()});
    for _ in 0..2 {
        let r = post(&app, "/v1/embeddings", &embed, None).await;
        assert!(r.headers().get("x-jarvis-cache").is_none());
    }
    assert_eq!(mock.calls(), 11);
    let r = post(&app, "/v1/embeddings", &embed, Some("true")).await;
    assert_eq!(r.headers()["x-jarvis-cache"], "miss");
    let r = post(&app, "/v1/embeddings", &embed, Some("true")).await;
    assert_eq!(r.headers()["x-jarvis-cache"], "hit");
    assert_eq!(mock.calls(), 12);

    // A header that is neither true nor false is refused in OpenAI's shape.
    let (status, _, body) = chat(&app, &cold, Some("maybe")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_cache_header");
    assert_eq!(mock.calls(), 12);

    // An error answer is not stored.
    let broken = json!({"model": "broken-model", "temperature": 0,
                        "messages": [{"role": "user", "content": nonce()}]});
    for n in 13..=14 {
        let (status, _, _) = chat(&app, &broken, None).await;
        assert_eq!(status, 502);
        assert_eq!(mock.calls(), n);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_answer_expires_after_its_time_to_live() {
    let mock = Mock::start().await;
    let mut e = env(&mock, Backend::Sqlite, "").await;
    e.set("JARVIS_AI_CACHE_TTL_MS", "1000");
    let app = TestApp::spawn_with(e).await;
    let body = chat_body(&nonce(), 0.0);
    let (_, header, _) = chat(&app, &body, None).await;
    assert_eq!(header.as_deref(), Some("miss"));
    // Hits until the time to live is over; then the provider is asked again.
    eventually(
        Duration::from_secs(10),
        "the stored answer to expire",
        || {
            let app = &app;
            let body = &body;
            async move { chat(app, body, None).await.1.as_deref() == Some("miss") }
        },
    )
    .await;
    assert_eq!(mock.calls(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_can_be_turned_off() {
    let mock = Mock::start().await;
    let mut e = env(&mock, Backend::Sqlite, "").await;
    e.set("JARVIS_AI_CACHE", "false");
    let app = TestApp::spawn_with(e).await;
    let body = chat_body(&nonce(), 0.0);
    for n in 1..=2 {
        let (status, header, _) = chat(&app, &body, Some("true")).await;
        assert_eq!((status, header), (200, None));
        assert_eq!(mock.calls(), n);
    }
    app.stop().await;
}

/// The environment of a gateway on `mock` whose cache is in the local Redis.
async fn redis_env(mock: &Mock, port: u16) -> TestEnv {
    let mut e = env(mock, Backend::Sqlite, "").await;
    e.set("REDIS_HOST", "127.0.0.1")
        .set("REDIS_PORT", &port.to_string())
        .set("JARVIS_AI_CACHE_TTL_MS", "60000")
        // Generous for a loaded test machine; the default is 50 ms.
        .set("JARVIS_AI_CACHE_REDIS_TIMEOUT_MS", "2000");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_answers_through_redis() {
    let mock = Mock::start().await;
    // Two instances, each with its own store: only Redis is shared.
    let a = TestApp::spawn_with(redis_env(&mock, 6379).await).await;
    let b = TestApp::spawn_with(redis_env(&mock, 6379).await).await;
    let body = chat_body(&nonce(), 0.0);

    let (status, header, first) = chat(&a, &body, None).await;
    assert_eq!((status, header.as_deref()), (200, Some("miss")));
    // The answer is stored off the answer's path: wait until Redis holds it.
    let key = jarvis::ai::cache::key(jarvis::ai::Endpoint::ChatCompletions, &body);
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let redis = jarvis::ai::cache::Redis::new(
        &jarvis::config::RedisConfig {
            host: "127.0.0.1".into(),
            port: 6379,
            password: None,
        },
        Duration::from_secs(2),
    );
    let redis_key = format!("jarvis:ai:cache:{hex}");
    eventually(Duration::from_secs(10), "the answer in Redis", || {
        let (redis, redis_key) = (&redis, &redis_key);
        async move { matches!(redis.get(redis_key).await, Ok(Some(_))) }
    })
    .await;

    // Instance B answers from it without calling the provider.
    let (status, header, second) = chat(&b, &body, None).await;
    assert_eq!((status, header.as_deref()), (200, Some("hit")));
    assert_eq!(second, first);
    assert_eq!(mock.calls(), 1);
    assert_eq!(
        metric(&b, "jarvis_ai_cache_total{result=\"hit\"}").await,
        1.0
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_is_down_never_fails_a_request() {
    let mock = Mock::start().await;
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = TestApp::spawn_with(redis_env(&mock, closed).await).await;
    let body = chat_body(&nonce(), 0.0);
    for n in 1..=2 {
        let (status, header, answer) = chat(&app, &body, None).await;
        assert_eq!((status, header.as_deref()), (200, Some("miss")));
        assert_eq!(answer["choices"][0]["message"]["content"], "ok");
        assert_eq!(mock.calls(), n);
    }
    assert_eq!(
        metric(&app, "jarvis_ai_cache_total{result=\"lookup_error\"}").await,
        2.0
    );
    eventually(Duration::from_secs(10), "the failed stores counted", || {
        let app = &app;
        async move { metric(app, "jarvis_ai_cache_total{result=\"store_error\"}").await == 2.0 }
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_is_logged_with_cache_hit() {
    let mock = Mock::start().await;
    let env = env(&mock, Backend::Sqlite, "").await;
    let p = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    let body = chat_body("a private prompt", 0.0);
    for _ in 0..2 {
        let r = client
            .post(p.url("/v1/chat/completions"))
            .bearer_auth(TOKEN)
            .header("x-correlation-id", "req-ai-cache-log")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(mock.calls(), 1);
    let log = env.log_file();
    let hit = eventually_some(Duration::from_secs(10), "the hit's log line", || {
        let lines = log_lines(&log);
        async move {
            lines.into_iter().find(|l| {
                l["message"] == "ai call"
                    && l["correlationId"] == "req-ai-cache-log"
                    && l["cacheHit"] == true
            })
        }
    })
    .await;
    assert_eq!(hit["model"], "openai/gpt-4o-mini");
    assert_eq!(hit["deployment"], "openai");
    assert_eq!(hit["status"], 200);
    assert_eq!(hit["costUsd"], 0.0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("a private prompt"),
        "the prompt reached the log"
    );
}
