//! `gemini/<model>` on the AI gateway against a mock Gemini API on 127.0.0.1: the
//! translation both ways (system instruction, function calls and responses, JSON mode,
//! finish reasons, usage), the streamed `:streamGenerateContent?alt=sse` to OpenAI chunks,
//! embeddings (one and a batch, float and base64), errors in OpenAI's shape without the key,
//! the `ai-gemini` breaker, and `GET /v1/models` over every provider.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::ai_mock::*;
use crate::helpers::*;

async fn gateway(mock: &MockProvider) -> TestApp {
    jarvis_with(&[
        ("GEMINI_API_KEY", KEY),
        ("GEMINI_BASE_URL", &mock.base_url()),
    ])
    .await
}

const GENERATE: &str = "/v1beta/models/gemini-test:generateContent";
const STREAM: &str = "/v1beta/models/gemini-test:streamGenerateContent";

fn candidate(parts: Value, finish: &str) -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts},
                        "finishReason": finish, "index": 0}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 6,
                          "totalTokenCount": 18},
        "modelVersion": "gemini-test-001",
        "responseId": "resp-1"
    })
}

/// The key never travels in the URL (URLs get logged), only in `x-goog-api-key`.
fn assert_key_in_header_only(seen: &Seen) {
    assert_eq!(seen.header("x-goog-api-key"), Some(KEY));
    assert_eq!(seen.header("authorization"), None);
    assert!(
        !seen.query.as_deref().unwrap_or("").contains(KEY) && !seen.path.contains(KEY),
        "the key in the URL: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_with_a_function_call_and_its_response_is_translated_both_ways() {
    let mock = MockProvider::start().await;
    let app = gateway(&mock).await;
    mock.answer(
        GENERATE,
        Answer::Json(
            200,
            candidate(
                json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]),
                "STOP",
            ),
        ),
    );
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"], "additionalProperties": false}}}]);
    let first = json!({
        "model": "gemini/gemini-test",
        "messages": [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "Weather in Paris?"}],
        "tools": tools,
        "tool_choice": "required",
        "temperature": 0.3, "top_p": 0.8, "max_tokens": 100, "stop": "END"
    });
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .header("x-correlation-id", "req-gemini-1")
        .json(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-jarvis-deployment"], "gemini");
    let (s, body) = json(r).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gemini-test-001");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let id = call["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("call_"), "{id}");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18})
    );

    let seen = mock.seen();
    let call_in = &seen[0];
    assert_eq!(
        (call_in.method.as_str(), call_in.path.as_str()),
        ("POST", GENERATE)
    );
    assert_key_in_header_only(call_in);
    assert_eq!(call_in.header("x-correlation-id"), Some("req-gemini-1"));
    assert_eq!(
        call_in.body,
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}],
            "systemInstruction": {"parts": [{"text": "You are terse."}]},
            "tools": [{"functionDeclarations": [{"name": "get_weather",
                "description": "The weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
            "generationConfig": {"temperature": 0.3, "topP": 0.8, "maxOutputTokens": 100,
                                 "stopSequences": ["END"]}
        })
    );

    // The function's result goes back as a functionResponse named after the call; JSON mode
    // asks for JSON.
    mock.answer(
        GENERATE,
        Answer::Json(
            200,
            candidate(json!([{"text": "{\"temp\": 18}"}]), "MAX_TOKENS"),
        ),
    );
    let mut second = first.clone();
    second.as_object_mut().unwrap().remove("tool_choice");
    second["response_format"] = json!({"type": "json_object"});
    second["messages"].as_array_mut().unwrap().extend([
        choice["message"].clone(),
        json!({"role": "tool", "tool_call_id": id, "content": "{\"celsius\": 18}"}),
    ]);
    let (s, body) = json(post(&app, "/v1/chat/completions", &second).await).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "{\"temp\": 18}");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let sent = &mock.seen()[1].body;
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"celsius": 18}}}]}
        ])
    );
    assert_eq!(
        sent["generationConfig"]["responseMimeType"],
        "application/json"
    );

    // A safety stop is OpenAI's content_filter.
    mock.answer(GENERATE, Answer::Json(200, candidate(json!([]), "SAFETY")));
    let (_, body) = json(post(&app, "/v1/chat/completions", &first).await).await;
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_chat_arrives_as_openai_chunks_ending_with_done() {
    let mock = MockProvider::start().await;
    let app = gateway(&mock).await;
    // Gemini ends its events with \r\n\r\n and sends no end event.
    let events: Vec<String> = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}}],
               "usageMetadata": {"promptTokenCount": 5}}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ", world"}]}}],
               "usageMetadata": {"promptTokenCount": 5}}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "!"}]},
                               "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 4,
                                 "totalTokenCount": 9}}),
    ]
    .iter()
    .map(|e| format!("data: {e}\r\n\r\n"))
    .collect();
    mock.answer(STREAM, Answer::Sse(events));
    let r = post(
        &app,
        "/v1/chat/completions",
        &json!({"model": "gemini/gemini-test", "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-jarvis-deployment"], "gemini");
    let (chunks, done) = read_sse(r).await;
    assert!(done, "{chunks:?}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(streamed_text(&chunks), "Hello, world!");
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["stop"]);
    assert_eq!(
        chunks.last().unwrap()["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})
    );
    let seen = &mock.seen()[0];
    assert_eq!(seen.path, STREAM);
    assert_eq!(seen.query.as_deref(), Some("alt=sse"));
    assert_key_in_header_only(seen);
    eventually(
        Duration::from_secs(5),
        "the stream counts as a success",
        || async { app.breaker("ai-gemini").await["successes"] == 1 },
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_one_and_a_batch_in_openais_shape_float_and_base64() {
    let mock = MockProvider::start().await;
    let app = gateway(&mock).await;
    mock.answer(
        "/v1beta/models/text-embedding-test:embedContent",
        Answer::Json(200, json!({"embedding": {"values": [0.25, -0.5, 1.0]}})),
    );
    mock.answer(
        "/v1beta/models/text-embedding-test:batchEmbedContents",
        Answer::Json(
            200,
            json!({"embeddings": [{"values": [0.5, 0.0]}, {"values": [-1.0, 2.0]}]}),
        ),
    );
    let r = post(
        &app,
        "/v1/embeddings",
        &json!({"model": "gemini/text-embedding-test", "input": "hello", "dimensions": 3}),
    )
    .await;
    assert_eq!(r.headers()["x-jarvis-deployment"], "gemini");
    let (s, body) = json(r).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "text-embedding-test");
    assert_eq!(
        body["data"],
        json!([{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 1.0]}])
    );
    assert!(body["usage"]["prompt_tokens"].is_u64());
    let seen = mock.seen();
    assert_key_in_header_only(&seen[0]);
    assert_eq!(
        seen[0].body,
        json!({"model": "models/text-embedding-test",
               "content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 3})
    );

    // A batch, as base64 (what OpenAI's SDKs ask for by default): little-endian f32s.
    let (s, body) = json(
        post(
            &app,
            "/v1/embeddings",
            &json!({"model": "gemini/text-embedding-test", "input": ["a", "b"],
                    "encoding_format": "base64"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let decoded: Vec<Vec<f32>> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            base64::engine::general_purpose::STANDARD
                .decode(d["embedding"].as_str().unwrap())
                .unwrap()
                .chunks(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect()
        })
        .collect();
    assert_eq!(decoded, [vec![0.5, 0.0], vec![-1.0, 2.0]]);
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(
        mock.seen()[1].body["requests"],
        json!([{"model": "models/text-embedding-test", "content": {"parts": [{"text": "a"}]}},
               {"model": "models/text-embedding-test", "content": {"parts": [{"text": "b"}]}}])
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_have_openais_shape_and_the_breaker_counts_5xx_and_skips_when_open() {
    let mock = MockProvider::start().await;
    let app = gateway(&mock).await;
    let chat = json!({"model": "gemini/gemini-test",
                      "messages": [{"role": "user", "content": "hi"}]});
    mock.answer(
        GENERATE,
        Answer::Json(
            400,
            json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                   "message": format!("API key not valid: {KEY}")}}),
        ),
    );
    let r = post(&app, "/v1/chat/completions", &chat).await;
    assert_eq!(r.headers()["x-jarvis-deployment"], "gemini");
    let error = openai_error(r, 400, "invalid_argument").await;
    assert_eq!(error["type"], "invalid_request_error");
    assert!(
        error["message"].as_str().unwrap().contains("[redacted]"),
        "{error}"
    );

    // A model ID that would change the URL is refused before any call.
    openai_error(
        post(
            &app,
            "/v1/chat/completions",
            &json!({"model": "gemini/../../x", "messages": []}),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(mock.seen().len(), 1);

    mock.answer(
        GENERATE,
        Answer::Json(
            503,
            json!({"error": {"code": 503, "status": "UNAVAILABLE",
                   "message": "The model is overloaded."}}),
        ),
    );
    let error = openai_error(
        post(&app, "/v1/chat/completions", &chat).await,
        502,
        "upstream_error",
    )
    .await;
    assert!(
        error["message"].as_str().unwrap().contains("overloaded"),
        "{error}"
    );
    failures_become(&app, "ai-gemini", 1).await;

    // A stream the provider cuts: the caller's stream breaks (no [DONE]), a breaker failure.
    mock.answer(
        STREAM,
        Answer::SseCut(vec![format!(
            "data: {}\r\n\r\n",
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}]})
        )]),
    );
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let mut r = post(&app, "/v1/chat/completions", &streamed).await;
    assert_eq!(r.status(), 200);
    let mut got = String::new();
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
    assert_eq!(ended, "cut", "{got}");
    assert!(got.contains("Hel") && !got.contains("[DONE]"), "{got}");
    failures_become(&app, "ai-gemini", 2).await;

    // OPEN: nothing reaches the provider.
    app.fail_calls("ai-gemini", 3, "HTTP 500");
    assert_eq!(app.breaker("ai-gemini").await["state"], "OPEN");
    let before = mock.seen().len();
    for (path, body) in [
        ("/v1/chat/completions", chat.clone()),
        ("/v1/chat/completions", streamed.clone()),
        (
            "/v1/embeddings",
            json!({"model": "gemini/text-embedding-test", "input": "x"}),
        ),
    ] {
        let r = post(&app, path, &body).await;
        assert!(r.headers().contains_key("retry-after"));
        let error = openai_error(r, 503, "circuit_open").await;
        assert!(
            error["message"].as_str().unwrap().contains("ai-gemini"),
            "{error}"
        );
    }
    assert_eq!(
        mock.seen().len(),
        before,
        "no call reached an OPEN deployment"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_every_provider_and_leaves_out_one_whose_list_fails() {
    let openai = MockProvider::start().await;
    let anthropic = MockProvider::start().await;
    let gemini = MockProvider::start().await;
    openai.answer(
        "/v1/models",
        Answer::Json(
            200,
            json!({"object": "list", "data": [{"id": "gpt-test", "object": "model",
                   "created": 1_700_000_000, "owned_by": "system"}]}),
        ),
    );
    anthropic.answer(
        "/v1/models",
        Answer::Json(
            200,
            json!({"data": [{"type": "model", "id": "claude-test",
                   "display_name": "Claude Test", "created_at": "2025-02-19T00:00:00Z"}],
                   "has_more": false, "first_id": "claude-test", "last_id": "claude-test"}),
        ),
    );
    gemini.answer(
        "/v1beta/models",
        Answer::Json(
            200,
            json!({"models": [{"name": "models/gemini-test", "displayName": "Gemini Test",
                   "supportedGenerationMethods": ["generateContent"]}]}),
        ),
    );
    let app = jarvis_with(&[
        ("OPENAI_API_KEY", KEY),
        ("OPENAI_BASE_URL", &format!("{}/v1", openai.base_url())),
        ("ANTHROPIC_API_KEY", KEY),
        ("ANTHROPIC_BASE_URL", &anthropic.base_url()),
        ("GEMINI_API_KEY", KEY),
        ("GEMINI_BASE_URL", &gemini.base_url()),
    ])
    .await;
    let r = app.get("/v1/models").await;
    assert_eq!(
        r.headers()["x-jarvis-deployment"],
        "openai, anthropic, gemini"
    );
    assert!(!r.headers().contains_key("x-jarvis-unlisted"));
    let (s, body) = json(r).await;
    assert_eq!(s, 200, "{body}");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "openai/gpt-test",
            "anthropic/claude-test",
            "gemini/gemini-test"
        ]
    );
    assert_eq!(body["data"][1]["created"], 1_739_923_200);
    assert_eq!(body["data"][1]["owned_by"], "anthropic");
    assert_eq!(body["data"][2]["owned_by"], "google");
    let a = &anthropic.seen()[0];
    assert_eq!(a.header("x-api-key"), Some(KEY));
    assert_eq!(a.header("anthropic-version"), Some("2023-06-01"));
    assert_key_in_header_only(&gemini.seen()[0]);

    // Anthropic's list fails: the others are still listed, and the answer says what is missing.
    anthropic.answer(
        "/v1/models",
        Answer::Json(
            500,
            json!({"type": "error", "error": {"type": "api_error",
                                 "message": "boom"}}),
        ),
    );
    let r = app.get("/v1/models").await;
    assert_eq!(r.headers()["x-jarvis-unlisted"], "anthropic");
    assert_eq!(r.headers()["x-jarvis-deployment"], "openai, gemini");
    let (s, body) = json(r).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2, "{body}");
    app.stop().await;
}

/// The official `openai` Python client (in `.tools/py`, from `scripts/ensure-tools.sh`)
/// parses what Jarvis makes of Anthropic's and Gemini's answers with its own types: a chat, a
/// streamed chat with usage and a tool call for each, and Gemini embeddings in the client's
/// default base64 encoding (`tests/sdk/openai_client_translated.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_client_works_with_anthropic_and_gemini_models() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = repo.join(".tools/py/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/ensure-tools.sh (it installs the openai client)",
        python.display()
    );
    let anthropic = MockProvider::start().await;
    let stream_event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    anthropic.answer_if(
        "/v1/messages",
        "/stream",
        json!(true),
        Answer::Sse(vec![
            stream_event(
                "message_start",
                json!({"type": "message_start", "message": {
                "id": "msg_s", "type": "message", "role": "assistant", "content": [],
                "model": "claude-test", "usage": {"input_tokens": 7, "output_tokens": 1}}}),
            ),
            stream_event(
                "content_block_start",
                json!({"type": "content_block_start",
                "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            stream_event(
                "content_block_delta",
                json!({"type": "content_block_delta",
                "index": 0, "delta": {"type": "text_delta", "text": "hello"}}),
            ),
            stream_event(
                "content_block_delta",
                json!({"type": "content_block_delta",
                "index": 0, "delta": {"type": "text_delta", "text": " there"}}),
            ),
            stream_event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            stream_event(
                "message_delta",
                json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
            ),
            stream_event("message_stop", json!({"type": "message_stop"})),
        ]),
    );
    let message = |content: Value, stop: &str| {
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
               "content": content, "stop_reason": stop, "stop_sequence": null,
               "usage": {"input_tokens": 7, "output_tokens": 3}})
    };
    anthropic.answer_if(
        "/v1/messages",
        "/tools/0/name",
        json!("get_weather"),
        Answer::Json(
            200,
            message(
                json!([{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                        "input": {"city": "Paris"}}]),
                "tool_use",
            ),
        ),
    );
    anthropic.answer(
        "/v1/messages",
        Answer::Json(
            200,
            message(json!([{"type": "text", "text": "hello there"}]), "end_turn"),
        ),
    );

    let gemini = MockProvider::start().await;
    let usage = json!({"promptTokenCount": 7, "candidatesTokenCount": 3, "totalTokenCount": 10});
    gemini.answer(
        ":streamGenerateContent",
        Answer::Sse(vec![
            format!(
                "data: {}\r\n\r\n",
                json!({"candidates": [{"content": {"role": "model",
                "parts": [{"text": "hello"}]}}]})
            ),
            format!(
                "data: {}\r\n\r\n",
                json!({"candidates": [{"content": {"role": "model",
                "parts": [{"text": " there"}]}, "finishReason": "STOP"}],
                "usageMetadata": usage})
            ),
        ]),
    );
    gemini.answer_if(
        ":generateContent",
        "/tools/0/functionDeclarations/0/name",
        json!("get_weather"),
        Answer::Json(
            200,
            json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall":
                   {"name": "get_weather", "args": {"city": "Paris"}}}]},
                   "finishReason": "STOP"}], "usageMetadata": usage}),
        ),
    );
    gemini.answer(
        ":generateContent",
        Answer::Json(
            200,
            json!({"candidates": [{"content": {"role": "model", "parts":
                   [{"text": "hello there"}]}, "finishReason": "STOP"}],
                   "usageMetadata": usage}),
        ),
    );
    gemini.answer(
        ":embedContent",
        Answer::Json(200, json!({"embedding": {"values": [0.25, -0.5]}})),
    );
    let app = jarvis_with(&[
        ("ANTHROPIC_API_KEY", KEY),
        ("ANTHROPIC_BASE_URL", &anthropic.base_url()),
        ("GEMINI_API_KEY", KEY),
        ("GEMINI_BASE_URL", &gemini.base_url()),
    ])
    .await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk/openai_client_translated.py");
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
    // Every call the client made reached a provider: three chats each, one embedding.
    assert_eq!(anthropic.seen().len(), 3);
    assert_eq!(gemini.seen().len(), 4);
    app.stop().await;
}
