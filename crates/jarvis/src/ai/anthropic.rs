//! Anthropic's Messages API, translated both ways: OpenAI chat requests to
//! `POST {ANTHROPIC_BASE_URL}/v1/messages` (headers `x-api-key` and
//! `anthropic-version: 2023-06-01`), its answers, stream events and errors back to OpenAI's
//! shapes. Anthropic has no embeddings.
//!
//! What maps to what:
//! - `system`/`developer` messages → `system` (joined with blank lines); `user`/`assistant`
//!   keep their roles; consecutive messages of one role become one turn, as Anthropic wants
//!   turns to alternate.
//! - assistant `tool_calls` → `tool_use` blocks (arguments parsed into `input`); `tool`
//!   messages → `tool_result` blocks in a user turn; `tools` → `tools` with `input_schema`;
//!   `tool_choice` auto/required/none/function → `auto`/`any`/`none`/`tool`, and
//!   `parallel_tool_calls: false` → `disable_parallel_tool_use`.
//! - `max_tokens` (required by Anthropic) defaults to [`DEFAULT_MAX_TOKENS`]; `stop` →
//!   `stop_sequences`; `temperature`, `top_p`; `user` → `metadata.user_id`.
//! - `stop_reason`: `end_turn`, `stop_sequence`, `pause_turn` → `stop`; `max_tokens` → `length`;
//!   `tool_use` → `tool_calls`; `refusal` → `content_filter`.
//! - usage: `prompt_tokens` = `input_tokens` + cache reads + cache writes (OpenAI counts cached
//!   input in the prompt), `completion_tokens` = `output_tokens`.
//!
//! JSON mode (`response_format` other than `text`) has no counterpart and is refused.

use serde_json::{json, Map, Value};

use super::chat::{
    data_url, invalid, new_id, ChatRequest, ChunkWriter, Completion, FinishReason, Part, Role,
    TokenUsage, ToolChoice, DEFAULT_MAX_TOKENS,
};
use super::sse::{SseEvent, StreamFault, StreamTranslator};
use super::{AiError, ModelEntry};

/// The API version sent in `anthropic-version`.
pub const API_VERSION: &str = "2023-06-01";

/// The Messages API body for `request`, to `model`.
pub fn messages_request(request: &ChatRequest, model: &str) -> Result<Value, AiError> {
    if request.response_format != super::chat::ResponseFormat::Text {
        return Err(invalid(
            "response_format json_object/json_schema (JSON mode) is not available for \
             anthropic/ models: ask for JSON in the prompt, or use a tool",
            "response_format",
        ));
    }
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in &request.messages {
        let (role, blocks) = match m.role {
            Role::System => {
                system.push(m.text());
                continue;
            }
            Role::User => ("user", content_blocks(&m.content)?),
            Role::Assistant => {
                let mut blocks: Vec<Value> = content_blocks(&m.content)?
                    .into_iter()
                    .filter(|b| b["text"].as_str() != Some(""))
                    .collect();
                for call in &m.tool_calls {
                    let input = call.input()?;
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name,
                                       "input": input}));
                }
                ("assistant", blocks)
            }
            Role::Tool => {
                let content: Value = match m.content.as_slice() {
                    [Part::Text(t)] => Value::String(t.clone()),
                    parts => Value::Array(content_blocks(parts)?),
                };
                (
                    "user",
                    vec![json!({"type": "tool_result",
                                "tool_use_id": m.tool_call_id, "content": content})],
                )
            }
        };
        match turns.last_mut() {
            Some((last, previous)) if *last == role => previous.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, blocks)| json!({"role": role, "content": blocks}))
        .collect();
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert(
        "max_tokens".into(),
        json!(request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop));
    }
    if let Some(user) = &request.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                let mut tool = json!({"name": t.name, "input_schema": t.parameters});
                if let Some(d) = &t.description {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    let mut choice = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(ToolChoice::Function(name)) => Some(json!({"type": "tool", "name": name})),
    };
    if request.parallel_tool_calls == Some(false) && !request.tools.is_empty() {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if let Some(c) = choice {
        body.insert("tool_choice".into(), c);
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(body))
}

fn content_blocks(parts: &[Part]) -> Result<Vec<Value>, AiError> {
    parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => Ok(json!({"type": "text", "text": t})),
            Part::Image(url) => {
                if let Some((media_type, data)) = data_url(url) {
                    Ok(json!({"type": "image", "source": {"type": "base64",
                              "media_type": media_type, "data": data}}))
                } else if url.starts_with("https://") || url.starts_with("http://") {
                    Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
                } else {
                    Err(invalid(
                        "an image_url must be a data: URL (base64) or an http(s) URL",
                        "messages",
                    ))
                }
            }
        })
        .collect()
}

/// OpenAI's finish reason for Anthropic's `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        // end_turn, stop_sequence, pause_turn, or none given.
        _ => FinishReason::Stop,
    }
}

/// OpenAI's usage for Anthropic's `usage` (of a message, or of a stream's events combined).
pub fn usage(u: &Value) -> TokenUsage {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let cached = u["cache_read_input_tokens"].as_u64();
    TokenUsage {
        prompt: n("input_tokens") + n("cache_creation_input_tokens") + n("cache_read_input_tokens"),
        completion: n("output_tokens"),
        cached,
        reasoning: None,
    }
}

/// A Messages API answer as a [`Completion`]. Text blocks are joined; `thinking` blocks are
/// left out.
pub fn completion(answer: &Value, model: &str) -> Result<Completion, String> {
    let Some(blocks) = answer["content"].as_array() else {
        return Err("the answer has no content array".into());
    };
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => text
                .get_or_insert_with(String::new)
                .push_str(block["text"].as_str().unwrap_or("")),
            Some("tool_use") => tool_calls.push(super::chat::ToolCall {
                id: block["id"].as_str().unwrap_or("").to_string(),
                name: block["name"].as_str().unwrap_or("").to_string(),
                arguments: serde_json::to_string(&block["input"]).unwrap_or_else(|_| "{}".into()),
            }),
            _ => {}
        }
    }
    Ok(Completion {
        id: answer["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| new_id("msg_")),
        model: answer["model"].as_str().unwrap_or(model).to_string(),
        text,
        tool_calls,
        finish_reason: finish_reason(answer["stop_reason"].as_str()),
        usage: usage(&answer["usage"]),
    })
}

/// An Anthropic error body (`{"type": "error", "error": {"type", "message"}}`) as OpenAI's
/// error body with the same status; `code` is Anthropic's error type.
pub fn error(status: u16, body: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("the anthropic provider refused the request (HTTP {status})"));
    let code = v["error"]["type"].as_str().unwrap_or("anthropic_error");
    super::chat::error_body(status, &message, code)
}

/// `GET /v1/models`'s answer (`{"data": [{"id", "created_at", "display_name"}]}`) as model
/// entries named `anthropic/<id>`.
pub fn models(answer: &Value) -> Result<Vec<ModelEntry>, String> {
    let Some(data) = answer["data"].as_array() else {
        return Err("GET /v1/models has no data array".into());
    };
    Ok(data
        .iter()
        .filter_map(|m| {
            let id = m["id"].as_str()?;
            Some(ModelEntry {
                id: format!("anthropic/{id}"),
                created: m["created_at"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.timestamp()),
                owned_by: Some("anthropic".into()),
            })
        })
        .collect())
}

/// Anthropic's stream events (`message_start`, `content_block_start`/`_delta`/`_stop`,
/// `message_delta`, `message_stop`, `ping`, `error`) as OpenAI chunks.
#[derive(Debug, Default)]
pub struct Translator {
    /// Content block index → tool call index, for the blocks that are tool calls.
    tools: Vec<(u64, usize)>,
    usage: Value,
    finish: Option<FinishReason>,
    stopped: bool,
}

impl Translator {
    fn tool_index(&self, block: u64) -> Option<usize> {
        self.tools
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, i)| *i)
    }
}

fn fault(message: impl Into<String>, code: &str) -> StreamFault {
    StreamFault {
        message: message.into(),
        code: code.into(),
    }
}

impl StreamTranslator for Translator {
    fn event(
        &mut self,
        w: &ChunkWriter,
        event: &SseEvent,
        out: &mut Vec<u8>,
    ) -> Result<(), StreamFault> {
        let v: Value = serde_json::from_str(&event.data).map_err(|_| {
            fault(
                "the anthropic provider sent a stream event that is not JSON",
                "upstream_bad_answer",
            )
        })?;
        match v["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let message = &v["message"];
                self.usage = message["usage"].clone();
                w.role(out);
            }
            "content_block_start" => {
                let block = &v["content_block"];
                match block["type"].as_str() {
                    Some("tool_use") => {
                        let index = self.tools.len();
                        self.tools
                            .push((v["index"].as_u64().unwrap_or(u64::MAX), index));
                        w.tool_start(
                            out,
                            index,
                            block["id"].as_str().unwrap_or(""),
                            block["name"].as_str().unwrap_or(""),
                        );
                    }
                    Some("text") => {
                        if let Some(t) = block["text"].as_str().filter(|t| !t.is_empty()) {
                            w.text(out, t);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = &v["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => w.text(out, delta["text"].as_str().unwrap_or("")),
                    Some("input_json_delta") => {
                        let fragment = delta["partial_json"].as_str().unwrap_or("");
                        if let (Some(i), false) = (
                            v["index"].as_u64().and_then(|b| self.tool_index(b)),
                            fragment.is_empty(),
                        ) {
                            w.tool_arguments(out, i, fragment);
                        }
                    }
                    // thinking_delta, signature_delta: reasoning is not passed on.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = v["usage"].as_object() {
                    for (k, n) in u {
                        if !n.is_null() {
                            self.usage[k] = n.clone();
                        }
                    }
                }
                let reason = finish_reason(v["delta"]["stop_reason"].as_str());
                self.finish = Some(reason);
                w.finish(out, reason);
            }
            "message_stop" => {
                if self.finish.is_none() {
                    self.finish = Some(FinishReason::Stop);
                    w.finish(out, FinishReason::Stop);
                }
                self.stopped = true;
                w.done(out, usage(&self.usage));
            }
            "error" => {
                return Err(fault(
                    format!(
                        "the anthropic provider failed mid-stream: {}",
                        v["error"]["message"].as_str().unwrap_or("no message")
                    ),
                    v["error"]["type"].as_str().unwrap_or("upstream_error"),
                ))
            }
            // ping, content_block_stop, and event types added later.
            _ => {}
        }
        Ok(())
    }

    fn usage(&self) -> TokenUsage {
        usage(&self.usage)
    }

    fn end(&mut self, _: &ChunkWriter, _: &mut Vec<u8>) -> Result<(), StreamFault> {
        if self.stopped {
            Ok(())
        } else {
            Err(fault(
                "the anthropic provider ended the stream before message_stop",
                "upstream_stream_incomplete",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> ChatRequest {
        ChatRequest::parse(&body).unwrap()
    }

    #[test]
    fn a_conversation_with_system_tools_and_results_is_translated() {
        let r = request(json!({
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": "use metric units"},
                {"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "toolu_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function",
                     "function": {"name": "get_time", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "noon"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "description": "weather", "parameters": {"type": "object",
                "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required", "parallel_tool_calls": false,
            "stop": ["END"], "temperature": 0.2, "top_p": 0.9, "user": "u1"
        }));
        let body = messages_request(&r, "claude-x").unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-x",
                "max_tokens": DEFAULT_MAX_TOKENS,
                "system": "be brief\n\nuse metric units",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "weather in Paris?"}]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                         "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"}]}
                ],
                "tools": [{"name": "get_weather", "description": "weather",
                           "input_schema": {"type": "object",
                                            "properties": {"city": {"type": "string"}}}}],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
                "stop_sequences": ["END"],
                "temperature": 0.2,
                "top_p": 0.9,
                "metadata": {"user_id": "u1"}
            })
        );
    }

    #[test]
    fn tool_choices_max_tokens_images_and_json_mode() {
        let base = json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}],
            "max_tokens": 10, "stream": true,
            "tools": [{"type": "function", "function": {"name": "f"}}]});
        for (choice, expected) in [
            (json!("auto"), json!({"type": "auto"})),
            (json!("none"), json!({"type": "none"})),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                json!({"type": "tool", "name": "f"}),
            ),
        ] {
            let mut b = base.clone();
            b["tool_choice"] = choice;
            let body = messages_request(&request(b), "m").unwrap();
            assert_eq!(body["tool_choice"], expected);
            assert_eq!(body["max_tokens"], 10);
            assert_eq!(body["stream"], true);
            assert_eq!(
                body["messages"][0]["content"],
                json!([
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "QUJD"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
                ])
            );
        }
        let mut b = base.clone();
        b["response_format"] = json!({"type": "json_object"});
        assert!(matches!(
            messages_request(&request(b), "m"),
            Err(AiError::InvalidRequest {
                param: Some("response_format"),
                ..
            })
        ));
        let bad_args = json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "a",
            "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]});
        assert!(messages_request(&request(bad_args), "m").is_err());
    }

    #[test]
    fn answers_stop_reasons_and_usage_are_translated() {
        let answer = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x-2025",
            "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "toolu_9", "name": "get_weather",
                         "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4,
                      "cache_creation_input_tokens": 2}
        });
        let c = completion(&answer, "m").unwrap();
        assert_eq!(c.id, "msg_1");
        assert_eq!(c.model, "claude-x-2025");
        assert_eq!(c.text.as_deref(), Some("Let me check."));
        assert_eq!(c.tool_calls[0].id, "toolu_9");
        assert_eq!(c.tool_calls[0].arguments, "{\"city\":\"Paris\"}");
        assert_eq!(c.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            c.usage,
            TokenUsage {
                prompt: 16,
                completion: 5,
                cached: Some(4),
                reasoning: None
            }
        );
        for (reason, expected) in [
            (Some("end_turn"), FinishReason::Stop),
            (Some("stop_sequence"), FinishReason::Stop),
            (Some("max_tokens"), FinishReason::Length),
            (Some("tool_use"), FinishReason::ToolCalls),
            (Some("refusal"), FinishReason::ContentFilter),
            (None, FinishReason::Stop),
        ] {
            assert_eq!(finish_reason(reason), expected, "{reason:?}");
        }
        assert!(completion(&json!({"type": "message"}), "m").is_err());
    }

    #[test]
    fn errors_keep_the_status_and_anthropics_type() {
        let body = error(
            429,
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "slow down", "type": "rate_limit_error",
                             "param": null, "code": "rate_limit_error"}})
        );
        let v: Value = serde_json::from_slice(&error(404, b"not json")).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("404"));
    }

    #[test]
    fn a_stream_with_text_and_a_tool_call_becomes_openai_chunks() {
        let w = ChunkWriter::new("msg_1".into(), "claude-x".into(), true);
        let mut t = Translator::default();
        let mut out = Vec::new();
        let events = [
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x",
                   "usage": {"input_tokens": 12, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": "Checking"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block":
                   {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "input_json_delta", "partial_json": ""}}),
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use",
                   "stop_sequence": null}, "usage": {"output_tokens": 30}}),
            json!({"type": "message_stop"}),
        ];
        for e in events {
            let event = SseEvent {
                event: e["type"].as_str().map(str::to_string),
                data: e.to_string(),
            };
            t.event(&w, &event, &mut out).unwrap();
        }
        t.end(&w, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let chunks: Vec<Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
        assert_eq!(deltas[0]["role"], "assistant");
        assert_eq!(deltas[1]["content"], "Checking");
        assert_eq!(deltas[2]["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(
            deltas[2]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        let args: String = deltas[3..5]
            .iter()
            .map(|d| {
                d["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(args, "{\"city\": \"Paris\"}");
        assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks[6]["usage"]["prompt_tokens"], 12);
        assert_eq!(chunks[6]["usage"]["completion_tokens"], 30);
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"));
    }

    #[test]
    fn a_stream_error_or_early_end_is_a_fault() {
        let w = ChunkWriter::new("m".into(), "m".into(), false);
        let mut t = Translator::default();
        let mut out = Vec::new();
        let error = SseEvent {
            event: Some("error".into()),
            data: json!({"type": "error", "error": {"type": "overloaded_error",
                         "message": "Overloaded"}})
            .to_string(),
        };
        let f = t.event(&w, &error, &mut out).unwrap_err();
        assert_eq!(f.code, "overloaded_error");
        assert!(f.message.contains("Overloaded"));
        assert!(Translator::default().end(&w, &mut out).is_err());
    }

    #[test]
    fn models_are_listed_with_the_prefix() {
        let list = models(&json!({"data": [{"type": "model", "id": "claude-x",
            "display_name": "Claude X", "created_at": "2025-02-19T00:00:00Z"}],
            "has_more": false}))
        .unwrap();
        assert_eq!(list[0].id, "anthropic/claude-x");
        assert_eq!(list[0].created, Some(1_739_923_200));
        assert_eq!(list[0].owned_by.as_deref(), Some("anthropic"));
    }
}
