//! `anthropic/<model>` on the AI gateway against a mock Messages API on 127.0.0.1: the
//! translation both ways (system prompt, tools, tool results, stop reasons, usage), streamed
//! events to OpenAI chunks, errors in OpenAI's shape without the key, the `ai-anthropic`
//! breaker, and no embeddings.

use std::time::Duration;

use serde_json::{json, Value};

use crate::ai_mock::*;
use crate::helpers::*;

async fn gateway(mock: &MockProvider) -> TestApp {
    jarvis_with(&[
        ("ANTHROPIC_API_KEY", KEY),
        ("ANTHROPIC_BASE_URL", &mock.base_url()),
    ])
    .await
}

fn message(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_01", "type": "message", "role": "assistant",
        "model": "claude-test-20250101", "content": content,
        "stop_reason": stop_reason, "stop_sequence": null,
        "usage": {"input_tokens": 21, "output_tokens": 9, "cache_read_input_tokens": 4}
    })
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_with_a_tool_call_and_its_result_is_translated_both_ways() {
    let mock = MockProvider::start().await;
    let app = gateway(&mock).await;
    mock.answer(
        "/v1/messages",
        Answer::Json(
            200,
            message(
                json!([{"type": "text", "text": "Let me look."},
                       {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                        "input": {"city": "Paris"}}]),
                "tool_use",
            ),
        ),
    );
    let first = json!({
        "model": "anthropic/claude-test",
        "messages": [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "Weather in Paris?"}],
        "tools": [weather_tool()],
        "tool_choice": "auto",
        "temperature": 0.3,
        "stop": ["\n\nHuman:"]
    });
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .header("x-correlation-id", "req-anthropic-1")
        .json(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-jarvis-deployment"], "anthropic");
    let (s, body) = json(r).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "claude-test-20250101");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Let me look.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    // Cached input is part of OpenAI's prompt count.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 25, "completion_tokens": 9, "total_tokens": 34,
               "prompt_tokens_details": {"cached_tokens": 4}})
    );

    let seen = mock.seen();
    assert_eq!(seen.len(), 1);
    let call_in = &seen[0];
    assert_eq!(
        (call_in.method.as_str(), call_in.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(call_in.header("x-api-key"), Some(KEY));
    assert_eq!(call_in.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        call_in.header("authorization"),
        None,
        "the key only in x-api-key"
    );
    assert_eq!(call_in.header("x-correlation-id"), Some("req-anthropic-1"));
    assert_eq!(
        call_in.body,
        json!({
            "model": "claude-test",
            "max_tokens": 4096,
            "system": "You are terse.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}],
            "tools": [{"name": "get_weather", "description": "The weather in a city",
                       "input_schema": {"type": "object",
                                        "properties": {"city": {"type": "string"}},
                                        "required": ["city"]}}],
            "tool_choice": {"type": "auto"},
            "temperature": 0.3,
            "stop_sequences": ["\n\nHuman:"]
        })
    );

    // The caller sends the tool's result back, with the assistant turn as the answer had it.
    mock.answer(
        "/v1/messages",
        Answer::Json(
            200,
            message(
                json!([{"type": "text", "text": "18 degrees"}]),
                "max_tokens",
            ),
        ),
    );
    let mut second = first.clone();
    second["max_tokens"] = json!(50);
    second["messages"].as_array_mut().unwrap().extend([
        choice["message"].clone(),
        json!({"role": "tool", "tool_call_id": "toolu_01", "content": "18C, sunny"}),
    ]);
    let (s, body) = json(post(&app, "/v1/chat/completions", &second).await).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "18 degrees");
    assert!(
        body["choices"][0]["message"].get("tool_calls").is_none(),
        "{body}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let sent = &mock.seen()[1].body;
    assert_eq!(sent["max_tokens"], 50);
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                 "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C, sunny"}]}
        ])
    );
    // A successful call is a success for the breaker of the deployment.
    eventually(Duration::from_secs(5), "ai-anthropic counts", || async {
        app.breaker("ai-anthropic").await["successes"] == 2
    })
    .await;
    app.stop().await;
}

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn stream_events() -> Vec<String> {
    vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_s",
            "type": "message", "role": "assistant", "content": [], "model": "claude-test",
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "Checking "}}),
        ),
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "now."}}),
        ),
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_s", "name": "get_weather",
                              "input": {}}}),
        ),
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Pa"}}),
        ),
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "ris\"}"}}),
        ),
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        event(
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 17}}),
        ),
        event("message_stop", json!({"type": "message_stop"})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_chat_arrives_as_openai_chunks_ending_with_done() {
    let mock = MockProvider::start().await;
    let app = gateway(&mock).await;
    mock.answer("/v1/messages", Answer::Sse(stream_events()));
    let r = post(
        &app,
        "/v1/chat/completions",
        &json!({"model": "anthropic/claude-test", "stream": true,
                "stream_options": {"include_usage": true}, "tools": [weather_tool()],
                "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-jarvis-deployment"], "anthropic");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (chunks, done) = read_sse(r).await;
    assert!(done, "the stream ends with [DONE]: {chunks:?}");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(streamed_text(&chunks), "Checking now.");
    let tool_deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(tool_deltas[0]["id"], "toolu_s");
    assert_eq!(tool_deltas[0]["function"]["name"], "get_weather");
    let arguments: String = tool_deltas
        .iter()
        .map(|d| d["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, "{\"city\": \"Paris\"}");
    assert!(tool_deltas.iter().all(|d| d["index"] == 0));
    let finishes: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str().map(|_| c))
        .collect();
    assert_eq!(finishes.len(), 1);
    assert_eq!(finishes[0]["choices"][0]["finish_reason"], "tool_calls");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 30, "completion_tokens": 17, "total_tokens": 47})
    );
    let seen = &mock.seen()[0];
    assert_eq!(seen.body["stream"], true);
    assert_eq!(seen.header("accept"), Some("text/event-stream"));
    eventually(
        Duration::from_secs(5),
        "the stream counts as a success",
        || async { app.breaker("ai-anthropic").await["successes"] == 1 },
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_have_openais_shape_without_the_key_and_a_5xx_is_a_breaker_failure() {
    let mock = MockProvider::start().await;
    let app = gateway(&mock).await;
    let chat = json!({"model": "anthropic/claude-test",
                      "messages": [{"role": "user", "content": "hi"}]});

    // A refusal that echoes the key: the status kept, OpenAI's shape, the key redacted.
    mock.answer(
        "/v1/messages",
        Answer::Json(
            401,
            json!({"type": "error", "error": {"type": "authentication_error",
                   "message": format!("invalid x-api-key {KEY}")}}),
        ),
    );
    let r = post(&app, "/v1/chat/completions", &chat).await;
    assert_eq!(r.headers()["x-jarvis-deployment"], "anthropic");
    let error = openai_error(r, 401, "authentication_error").await;
    assert_eq!(error["type"], "authentication_error");
    assert!(
        error["message"].as_str().unwrap().contains("[redacted]"),
        "{error}"
    );

    // The same for a streamed request: the refusal is not a stream.
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    openai_error(
        post(&app, "/v1/chat/completions", &streamed).await,
        401,
        "authentication_error",
    )
    .await;

    // 429: its Retry-After passed on; the breaker neither fails nor resets.
    mock.answer(
        "/v1/messages",
        Answer::Json(
            429,
            json!({"type": "error", "error": {"type": "rate_limit_error",
                   "message": "Number of requests has exceeded your rate limit"}}),
        ),
    );
    let r = post(&app, "/v1/chat/completions", &chat).await;
    assert_eq!(r.headers()["retry-after"], "7");
    let error = openai_error(r, 429, "rate_limit_error").await;
    assert_eq!(error["type"], "rate_limit_error");

    // 529 overloaded: a 502 in OpenAI's shape quoting Anthropic's message, a breaker failure.
    mock.answer(
        "/v1/messages",
        Answer::Json(
            529,
            json!({"type": "error", "error": {"type": "overloaded_error",
                   "message": "Overloaded"}}),
        ),
    );
    let error = openai_error(
        post(&app, "/v1/chat/completions", &chat).await,
        502,
        "upstream_error",
    )
    .await;
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("529") && message.contains("Overloaded"),
        "{message}"
    );
    failures_become(&app, "ai-anthropic", 1).await;

    // An error event mid-stream: the caller gets OpenAI's error event and no [DONE]; the
    // breaker a failure.
    let mut events = stream_events()[..4].to_vec();
    events.push(event(
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    mock.answer("/v1/messages", Answer::Sse(events));
    let r = post(&app, "/v1/chat/completions", &streamed).await;
    assert_eq!(r.status(), 200);
    let (chunks, done) = read_sse(r).await;
    assert!(!done, "no [DONE] after an error: {chunks:?}");
    assert_eq!(streamed_text(&chunks), "Checking ");
    let last = chunks.last().unwrap();
    assert_eq!(last["error"]["code"], "overloaded_error", "{last}");
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Overloaded"));
    failures_become(&app, "ai-anthropic", 2).await;

    // A stream that ends cleanly but before message_stop is incomplete: an error event, no
    // [DONE], a breaker failure.
    mock.answer("/v1/messages", Answer::Sse(stream_events()[..5].to_vec()));
    let (chunks, done) = read_sse(post(&app, "/v1/chat/completions", &streamed).await).await;
    assert!(!done, "{chunks:?}");
    assert_eq!(
        chunks.last().unwrap()["error"]["code"],
        "upstream_stream_incomplete"
    );
    failures_become(&app, "ai-anthropic", 3).await;
    app.stop().await;
}

/// A real process with debug logging: the `ai call` lines of translated calls carry the
/// tokens the provider counted (streamed ones too), and neither the key nor the prompt is
/// in the log, even when the provider echoes the key in its errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_has_the_translated_tokens_and_never_the_key_or_the_prompt() {
    let mock = MockProvider::start().await;
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set("ANTHROPIC_API_KEY", KEY)
        .set("ANTHROPIC_BASE_URL", &mock.base_url())
        .set("LOG_LEVEL", "debug");
    let p = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    let send = |body: Value| {
        client
            .post(p.url("/v1/chat/completions"))
            .bearer_auth(TOKEN)
            .header("x-correlation-id", "req-anthropic-log")
            .json(&body)
            .send()
    };
    let chat = json!({"model": "anthropic/claude-test",
                      "messages": [{"role": "user", "content": "a private prompt"}]});
    mock.answer(
        "/v1/messages",
        Answer::Json(
            200,
            message(json!([{"type": "text", "text": "ok"}]), "end_turn"),
        ),
    );
    assert_eq!(send(chat.clone()).await.unwrap().status(), 200);
    mock.answer("/v1/messages", Answer::Sse(stream_events()));
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let r = send(streamed).await.unwrap();
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    for status in [401, 500] {
        mock.answer(
            "/v1/messages",
            Answer::Json(
                status,
                json!({"type": "error", "error": {"type": "authentication_error",
                       "message": format!("invalid x-api-key: {KEY}")}}),
            ),
        );
        let text = send(chat.clone()).await.unwrap().text().await.unwrap();
        assert!(!text.contains(KEY) && text.contains("[redacted]"), "{text}");
    }

    let log = env.log_file();
    let lines = eventually_some(Duration::from_secs(10), "the calls' log lines", || {
        let lines = log_lines(&log);
        async move {
            let calls: Vec<Value> = lines
                .into_iter()
                .filter(|l| l["message"] == "ai call" && l["correlationId"] == "req-anthropic-log")
                .collect();
            (calls.len() >= 4).then_some(calls)
        }
    })
    .await;
    let whole = &lines[0];
    assert_eq!(whole["deployment"], "anthropic");
    assert_eq!(whole["model"], "anthropic/claude-test");
    assert_eq!(whole["promptTokens"], 25);
    assert_eq!(whole["completionTokens"], 9);
    let streamed = &lines[1];
    assert_eq!(streamed["stream"], true);
    assert_eq!(streamed["outcome"], "answered");
    assert_eq!(streamed["totalTokens"], 47);
    assert_eq!(lines[3]["status"], 500);

    let text = std::fs::read_to_string(&log).unwrap() + &p.stdout() + &p.stderr();
    assert!(!text.contains(KEY), "the key reached the log");
    assert!(
        !text.contains("a private prompt"),
        "the prompt reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_answers_503_without_calling_anthropic() {
    let mock = MockProvider::start().await;
    let app = gateway(&mock).await;
    app.fail_calls("ai-anthropic", 5, "HTTP 500");
    assert_eq!(app.breaker("ai-anthropic").await["state"], "OPEN");
    for stream in [false, true] {
        let r = post(
            &app,
            "/v1/chat/completions",
            &json!({"model": "anthropic/claude-test", "stream": stream,
                    "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert!(r.headers().contains_key("retry-after"));
        assert_eq!(r.headers()["x-jarvis-deployment"], "anthropic");
        let error = openai_error(r, 503, "circuit_open").await;
        assert!(
            error["message"].as_str().unwrap().contains("ai-anthropic"),
            "{error}"
        );
    }
    // The only deployment's list call is refused by the breaker too.
    openai_error(app.get("/v1/models").await, 503, "circuit_open").await;
    assert!(mock.seen().is_empty(), "no request reached the provider");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_json_mode_and_a_missing_key_are_clear_400s_and_503s() {
    let mock = MockProvider::start().await;
    let app = gateway(&mock).await;
    let error = openai_error(
        post(
            &app,
            "/v1/embeddings",
            &json!({"model": "anthropic/claude-test", "input": "hello"}),
        )
        .await,
        400,
        "unsupported_by_provider",
    )
    .await;
    assert_eq!(error["param"], "model");
    assert!(
        error["message"].as_str().unwrap().contains("embeddings"),
        "{error}"
    );
    let error = openai_error(
        post(
            &app,
            "/v1/chat/completions",
            &json!({"model": "anthropic/claude-test", "response_format": {"type": "json_object"},
                    "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(error["param"], "response_format");
    assert!(mock.seen().is_empty());
    app.stop().await;

    // Without ANTHROPIC_API_KEY: 503 naming it.
    let app = jarvis_with(&[]).await;
    let error = openai_error(
        post(
            &app,
            "/v1/chat/completions",
            &json!({"model": "anthropic/claude-test", "messages": []}),
        )
        .await,
        503,
        "provider_not_configured",
    )
    .await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("ANTHROPIC_API_KEY"),
        "{error}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translated_calls_are_counted_and_priced_like_openais() {
    let mock = MockProvider::start().await;
    let app = gateway(&mock).await;
    mock.answer(
        "/v1/messages",
        Answer::Json(
            200,
            message(json!([{"type": "text", "text": "Hi."}]), "end_turn"),
        ),
    );
    // claude-3-5-haiku: $0.80 / $4 per million tokens; the whole answer counts 21 + 4 cached
    // prompt tokens (OpenAI's prompt_tokens include cached ones) and 9 completion tokens.
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .header("x-jarvis-domain", "research")
        .json(&json!({"model": "anthropic/claude-3-5-haiku-20241022",
                      "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A translated stream counts what its events counted (30 in, 17 out).
    mock.answer("/v1/messages", Answer::Sse(stream_events()));
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .header("x-jarvis-domain", "research")
        .json(
            &json!({"model": "anthropic/claude-3-5-haiku-20241022", "stream": true,
                      "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();
    let usage = eventually_some(Duration::from_secs(10), "the usage flush", || async {
        let u = app.data("/api/v1/ai/usage?by=deployment").await;
        (u["total"]["requests"] == 2).then_some(u)
    })
    .await;
    let row = &usage["rows"][0];
    assert_eq!(row["key"], "anthropic");
    assert_eq!(row["errors"], 0);
    let (prompt, completion) = (
        row["promptTokens"].as_u64().unwrap(),
        row["completionTokens"].as_u64().unwrap(),
    );
    assert_eq!((prompt, completion), (25 + 30, 9 + 17), "{usage}");
    let expected = (prompt as f64 * 0.80 + completion as f64 * 4.0) / 1e6;
    assert!(
        (row["costUsd"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{usage}"
    );
    app.stop().await;
}
