//! Google's Gemini API, translated both ways: OpenAI chat requests to
//! `POST {GEMINI_BASE_URL}/v1beta/models/{model}:generateContent` (streamed:
//! `:streamGenerateContent?alt=sse`), embeddings to `:embedContent` (one input) or
//! `:batchEmbedContents` (several), `GET /v1beta/models` for the list. The key travels in the
//! `x-goog-api-key` header, never in the URL (URLs end up in logs).
//!
//! What maps to what:
//! - `system`/`developer` messages → `systemInstruction`; `user` → role `user`, `assistant` →
//!   role `model`; consecutive messages of one role become one turn.
//! - assistant `tool_calls` → `functionCall` parts; `tool` messages → `functionResponse` parts
//!   (named after the call they answer; a result that is a JSON object is the `response`,
//!   anything else is `{"content": <result>}`); `tools` → `tools[0].functionDeclarations`
//!   (`$schema` and `additionalProperties`, which Gemini's schema refuses, removed);
//!   `tool_choice` auto/none/required/function → `toolConfig.functionCallingConfig.mode`
//!   `AUTO`/`NONE`/`ANY` (+ `allowedFunctionNames`).
//! - `generationConfig`: `temperature`, `topP`, `maxOutputTokens`, `stopSequences`, `seed`,
//!   `presencePenalty`, `frequencyPenalty`; JSON mode → `responseMimeType: application/json`
//!   (with `json_schema`, also `responseJsonSchema`).
//! - `finishReason`: `STOP` → `stop` (`tool_calls` when the answer calls functions),
//!   `MAX_TOKENS` → `length`, `SAFETY`, `RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`,
//!   `SPII`, `IMAGE_SAFETY` (and a prompt blocked by `promptFeedback`) → `content_filter`,
//!   anything else → `stop`.
//! - `usageMetadata`: `promptTokenCount` → `prompt_tokens`, `candidatesTokenCount` +
//!   `thoughtsTokenCount` → `completion_tokens` (the thoughts also as `reasoning_tokens`),
//!   `cachedContentTokenCount` → `cached_tokens`.
//!
//! Gemini gives function calls no ID (or an optional one): Jarvis makes `call_<random>` IDs.
//! A function call's `thoughtSignature` (thinking models sign their calls, and Gemini 3
//! refuses a conversation whose calls come back unsigned) rides in the ID, after
//! [`SIGNATURE_SEPARATOR`], since OpenAI's clients send tool call IDs back verbatim; it is put
//! back on the `functionCall` part when the call returns in a later request.

/// Separates a tool call ID from the Gemini thought signature it carries (`~` is not in the
/// signatures' base64 alphabet).
pub const SIGNATURE_SEPARATOR: &str = "~sig~";

use serde_json::{json, Map, Value};

use super::chat::{
    data_url, invalid, new_id, ChatRequest, ChunkWriter, Completion, FinishReason, Part,
    ResponseFormat, Role, TokenUsage, ToolCall, ToolChoice,
};
use super::sse::{SseEvent, StreamFault, StreamTranslator};
use super::{AiError, ModelEntry};

/// The model's path segment: Gemini's model IDs (`gemini-2.0-flash`, `models/…` accepted),
/// refused when they hold anything that would change the URL's path.
pub fn model_path(model: &str) -> Result<&str, AiError> {
    let model = model.strip_prefix("models/").unwrap_or(model);
    if model.is_empty()
        || !model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(invalid(
            format!(
                "'{model}' is not a Gemini model ID (letters, digits, '-', '.', '_'), \
                 e.g. gemini/gemini-2.0-flash"
            ),
            "model",
        ));
    }
    Ok(model)
}

/// The `generateContent` body for `request`.
pub fn generate_request(request: &ChatRequest) -> Result<Value, AiError> {
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in &request.messages {
        let (role, parts) = match m.role {
            Role::System => {
                system.push(json!({"text": m.text()}));
                continue;
            }
            Role::User => ("user", parts(&m.content)?),
            Role::Assistant => {
                let mut out: Vec<Value> = parts(&m.content)?
                    .into_iter()
                    .filter(|p| p["text"].as_str() != Some(""))
                    .collect();
                for call in &m.tool_calls {
                    let args = call.input()?;
                    let mut part = json!({"functionCall": {"name": call.name, "args": args}});
                    if let Some((_, signature)) = call.id.split_once(SIGNATURE_SEPARATOR) {
                        part["thoughtSignature"] = json!(signature);
                    }
                    out.push(part);
                }
                ("model", out)
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or_default();
                let Some(name) = request.tool_name(id) else {
                    return Err(invalid(
                        format!(
                            "the tool message answers '{id}', which no assistant tool call \
                             before it made (Gemini matches results to calls by name)"
                        ),
                        "messages",
                    ));
                };
                let text = m.text();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(o)) => Value::Object(o),
                    _ => json!({"content": text}),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
        };
        match turns.last_mut() {
            Some((last, previous)) if *last == role => previous.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    let mut body = Map::new();
    body.insert(
        "contents".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(role, parts)| json!({"role": role, "parts": parts}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                let mut d = json!({"name": t.name, "parameters": schema(&t.parameters)});
                if let Some(desc) = &t.description {
                    d["description"] = json!(desc);
                }
                d
            })
            .collect();
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    if let Some(choice) = &request.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Function(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
    }
    let mut config = Map::new();
    let mut set = |k: &str, v: Value| {
        config.insert(k.into(), v);
    };
    if let Some(t) = request.temperature {
        set("temperature", json!(t));
    }
    if let Some(p) = request.top_p {
        set("topP", json!(p));
    }
    if let Some(n) = request.max_tokens {
        set("maxOutputTokens", json!(n));
    }
    if !request.stop.is_empty() {
        set("stopSequences", json!(request.stop));
    }
    if let Some(s) = request.seed {
        set("seed", json!(s));
    }
    if let Some(p) = request.presence_penalty {
        set("presencePenalty", json!(p));
    }
    if let Some(p) = request.frequency_penalty {
        set("frequencyPenalty", json!(p));
    }
    match &request.response_format {
        ResponseFormat::Text => {}
        ResponseFormat::JsonObject => set("responseMimeType", json!("application/json")),
        ResponseFormat::JsonSchema(s) => {
            set("responseMimeType", json!("application/json"));
            set("responseJsonSchema", s.clone());
        }
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(body))
}

fn parts(content: &[Part]) -> Result<Vec<Value>, AiError> {
    content
        .iter()
        .map(|p| match p {
            Part::Text(t) => Ok(json!({"text": t})),
            Part::Image(url) => match data_url(url) {
                Some((mime, data)) => Ok(json!({"inlineData": {"mimeType": mime, "data": data}})),
                None => Err(invalid(
                    "images for gemini/ models must be data: URLs (base64)",
                    "messages",
                )),
            },
        })
        .collect()
}

/// A tool's JSON Schema without the keywords Gemini's schema refuses.
fn schema(s: &Value) -> Value {
    match s {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "$schema" | "additionalProperties"))
                .map(|(k, v)| (k.clone(), schema(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(schema).collect()),
        other => other.clone(),
    }
}

/// OpenAI's finish reason for Gemini's `finishReason`.
pub fn finish_reason(reason: Option<&str>, called_functions: bool) -> FinishReason {
    match reason {
        Some("MAX_TOKENS") => FinishReason::Length,
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => FinishReason::ContentFilter,
        _ if called_functions => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// OpenAI's usage for Gemini's `usageMetadata`.
pub fn usage(u: &Value) -> TokenUsage {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let thoughts = u["thoughtsTokenCount"].as_u64();
    TokenUsage {
        prompt: n("promptTokenCount"),
        completion: n("candidatesTokenCount") + thoughts.unwrap_or(0),
        cached: u["cachedContentTokenCount"].as_u64(),
        reasoning: thoughts,
    }
}

/// The text and function calls of a response's first candidate (thought parts left out).
fn candidate_parts(response: &Value) -> (Option<String>, Vec<ToolCall>) {
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    let parts = response["candidates"][0]["content"]["parts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for p in parts {
        if p["thought"].as_bool() == Some(true) {
            continue;
        }
        if let Some(t) = p["text"].as_str() {
            text.get_or_insert_with(String::new).push_str(t);
        } else if let Some(call) = p.get("functionCall") {
            let mut id = call["id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| new_id("call_"));
            if let Some(signature) = p["thoughtSignature"].as_str() {
                id.push_str(SIGNATURE_SEPARATOR);
                id.push_str(signature);
            }
            calls.push(ToolCall {
                id,
                name: call["name"].as_str().unwrap_or("").to_string(),
                arguments: serde_json::to_string(call.get("args").unwrap_or(&json!({})))
                    .unwrap_or_else(|_| "{}".into()),
            });
        }
    }
    (text, calls)
}

/// Why a response has no candidate: a blocked prompt (`promptFeedback.blockReason`).
fn blocked(response: &Value) -> bool {
    response["candidates"]
        .as_array()
        .is_none_or(|c| c.is_empty())
        && response["promptFeedback"]["blockReason"].is_string()
}

/// A `generateContent` answer as a [`Completion`].
pub fn completion(answer: &Value, model: &str) -> Result<Completion, String> {
    if !answer.is_object() {
        return Err("the answer is not an object".into());
    }
    let (text, tool_calls) = candidate_parts(answer);
    let finish_reason = if blocked(answer) {
        FinishReason::ContentFilter
    } else {
        finish_reason(
            answer["candidates"][0]["finishReason"].as_str(),
            !tool_calls.is_empty(),
        )
    };
    Ok(Completion {
        id: answer["responseId"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| new_id("chatcmpl-")),
        model: answer["modelVersion"].as_str().unwrap_or(model).to_string(),
        text,
        tool_calls,
        finish_reason,
        usage: usage(&answer["usageMetadata"]),
    })
}

/// A Gemini error body (`{"error": {"code", "message", "status"}}`) as OpenAI's error body
/// with the same status; `code` is Gemini's `status` in lower case (`invalid_argument`).
pub fn error(status: u16, body: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("the gemini provider refused the request (HTTP {status})"));
    let code = v["error"]["status"]
        .as_str()
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "gemini_error".into());
    super::chat::error_body(status, &message, &code)
}

/// `GET /v1beta/models`'s answer (`{"models": [{"name": "models/…", …}]}`) as model entries
/// named `gemini/<id>`.
pub fn models(answer: &Value) -> Result<Vec<ModelEntry>, String> {
    let Some(list) = answer["models"].as_array() else {
        // An empty list is answered as `{}`.
        return if answer.is_object() {
            Ok(Vec::new())
        } else {
            Err("GET /v1beta/models is not a model list".into())
        };
    };
    Ok(list
        .iter()
        .filter_map(|m| {
            let name = m["name"].as_str()?;
            Some(ModelEntry {
                id: format!("gemini/{}", name.strip_prefix("models/").unwrap_or(name)),
                created: None,
                owned_by: Some("google".into()),
            })
        })
        .collect())
}

/// What the caller's `input` of an embeddings request is for Gemini: one text or several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbeddingInput {
    /// One string: `embedContent`.
    One(String),
    /// An array of strings: `batchEmbedContents`.
    Many(Vec<String>),
}

/// Reads an OpenAI embeddings body's `input` (text; token arrays are refused) and
/// `dimensions`.
pub fn embedding_input(body: &Value) -> Result<(EmbeddingInput, Option<u64>), AiError> {
    let input = match &body["input"] {
        Value::String(s) => EmbeddingInput::One(s.clone()),
        Value::Array(list) if !list.is_empty() => EmbeddingInput::Many(
            list.iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    invalid(
                        "input must be a string or an array of strings for gemini/ models \
                         (token arrays are not translated)",
                        "input",
                    )
                })?,
        ),
        _ => {
            return Err(invalid(
                "input must be a non-empty string or array of strings",
                "input",
            ))
        }
    };
    Ok((input, body["dimensions"].as_u64()))
}

/// The `embedContent` or `batchEmbedContents` body.
pub fn embedding_request(input: &EmbeddingInput, model: &str, dimensions: Option<u64>) -> Value {
    let one = |text: &str| {
        let mut r = json!({"model": format!("models/{model}"),
                           "content": {"parts": [{"text": text}]}});
        if let Some(d) = dimensions {
            r["outputDimensionality"] = json!(d);
        }
        r
    };
    match input {
        EmbeddingInput::One(text) => one(text),
        EmbeddingInput::Many(texts) => {
            json!({"requests": texts.iter().map(|t| one(t)).collect::<Vec<_>>()})
        }
    }
}

/// The vectors of an `embedContent` (`{"embedding": {"values"}}`) or `batchEmbedContents`
/// (`{"embeddings": [{"values"}]}`) answer.
pub fn embedding_vectors(answer: &Value) -> Result<Vec<Vec<f64>>, String> {
    let read = |e: &Value| -> Option<Vec<f64>> {
        e["values"].as_array()?.iter().map(Value::as_f64).collect()
    };
    if let Some(list) = answer["embeddings"].as_array() {
        list.iter()
            .map(|e| read(e).ok_or_else(|| "an embedding has no values".to_string()))
            .collect()
    } else {
        read(&answer["embedding"])
            .map(|v| vec![v])
            .ok_or_else(|| "the answer has no embedding".into())
    }
}

/// Gemini's stream (`data: <GenerateContentResponse>` events, no end event) as OpenAI
/// chunks: text parts as content deltas, each function call as one tool call chunk with its
/// whole arguments, the finish reason when a candidate has one, usage from the last
/// `usageMetadata`.
#[derive(Debug, Default)]
pub struct Translator {
    started: bool,
    tool_calls: usize,
    finish: Option<FinishReason>,
    usage: Value,
}

impl StreamTranslator for Translator {
    fn event(
        &mut self,
        w: &ChunkWriter,
        event: &SseEvent,
        out: &mut Vec<u8>,
    ) -> Result<(), StreamFault> {
        let v: Value = serde_json::from_str(&event.data).map_err(|_| StreamFault {
            message: "the gemini provider sent a stream event that is not JSON".into(),
            code: "upstream_bad_answer".into(),
        })?;
        if let Some(e) = v.get("error") {
            return Err(StreamFault {
                message: format!(
                    "the gemini provider failed mid-stream: {}",
                    e["message"].as_str().unwrap_or("no message")
                ),
                code: e["status"]
                    .as_str()
                    .map(str::to_ascii_lowercase)
                    .unwrap_or_else(|| "upstream_error".into()),
            });
        }
        if !self.started {
            self.started = true;
            w.role(out);
        }
        if v["usageMetadata"].is_object() {
            self.usage = v["usageMetadata"].clone();
        }
        let (text, calls) = candidate_parts(&v);
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            w.text(out, &t);
        }
        for call in calls {
            w.tool_start(out, self.tool_calls, &call.id, &call.name);
            w.tool_arguments(out, self.tool_calls, &call.arguments);
            self.tool_calls += 1;
        }
        let reason = v["candidates"][0]["finishReason"].as_str();
        if self.finish.is_none() && (reason.is_some() || blocked(&v)) {
            let r = if blocked(&v) {
                FinishReason::ContentFilter
            } else {
                finish_reason(reason, self.tool_calls > 0)
            };
            self.finish = Some(r);
            w.finish(out, r);
        }
        Ok(())
    }

    fn usage(&self) -> TokenUsage {
        usage(&self.usage)
    }

    fn end(&mut self, w: &ChunkWriter, out: &mut Vec<u8>) -> Result<(), StreamFault> {
        if !self.started {
            w.role(out);
        }
        if self.finish.is_none() {
            let r = if self.tool_calls > 0 {
                FinishReason::ToolCalls
            } else {
                FinishReason::Stop
            };
            w.finish(out, r);
        }
        w.done(out, usage(&self.usage));
        Ok(())
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
                {"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 18}"},
                {"role": "assistant", "content": "18C"},
                {"role": "user", "content": "thanks"},
                {"role": "assistant", "tool_calls": [{"id": "call_2", "type": "function",
                     "function": {"name": "get_time", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_2", "content": "noon"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "description": "weather", "parameters": {"type": "object",
                "$schema": "http://json-schema.org/draft-07/schema#",
                "additionalProperties": false,
                "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "stop": "END", "seed": 7,
            "response_format": {"type": "json_object"}
        }));
        let body = generate_request(&r).unwrap();
        assert_eq!(
            body,
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "weather in Paris?"}]},
                    {"role": "model", "parts": [
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}}]},
                    {"role": "model", "parts": [{"text": "18C"}]},
                    {"role": "user", "parts": [{"text": "thanks"}]},
                    {"role": "model", "parts": [
                        {"functionCall": {"name": "get_time", "args": {}}}]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "get_time",
                                              "response": {"content": "noon"}}}]}
                ],
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "tools": [{"functionDeclarations": [{"name": "get_weather",
                    "description": "weather", "parameters": {"type": "object",
                    "properties": {"city": {"type": "string"}}}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                    "allowedFunctionNames": ["get_weather"]}},
                "generationConfig": {"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 64,
                    "stopSequences": ["END"], "seed": 7,
                    "responseMimeType": "application/json"}
            })
        );
    }

    #[test]
    fn a_tool_result_for_an_unknown_call_and_bad_model_ids_are_refused() {
        let r = request(json!({"messages": [
            {"role": "tool", "tool_call_id": "nope", "content": "x"}]}));
        assert!(generate_request(&r).is_err());
        assert_eq!(
            model_path("models/gemini-2.0-flash").unwrap(),
            "gemini-2.0-flash"
        );
        for bad in ["", "../x", "a:b", "a?key=1", "a/b"] {
            assert!(model_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_finish_reasons_and_usage_are_translated() {
        let answer = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "thinking...", "thought": true},
                {"text": "Let me "}, {"text": "check."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5,
                              "thoughtsTokenCount": 3, "totalTokenCount": 18},
            "modelVersion": "gemini-2.0-flash-001", "responseId": "r1"
        });
        let c = completion(&answer, "m").unwrap();
        assert_eq!(c.id, "r1");
        assert_eq!(c.model, "gemini-2.0-flash-001");
        assert_eq!(c.text.as_deref(), Some("Let me check."));
        assert_eq!(c.tool_calls[0].name, "get_weather");
        assert_eq!(c.tool_calls[0].arguments, "{\"city\":\"Paris\"}");
        assert!(c.tool_calls[0].id.starts_with("call_"));
        assert_eq!(c.finish_reason, FinishReason::ToolCalls);
        assert_eq!(c.usage.prompt, 10);
        assert_eq!(c.usage.completion, 8);
        assert_eq!(c.usage.reasoning, Some(3));
        for (reason, expected) in [
            ("STOP", FinishReason::Stop),
            ("MAX_TOKENS", FinishReason::Length),
            ("SAFETY", FinishReason::ContentFilter),
            ("RECITATION", FinishReason::ContentFilter),
            ("OTHER", FinishReason::Stop),
        ] {
            assert_eq!(finish_reason(Some(reason), false), expected, "{reason}");
        }
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}});
        let c = completion(&blocked, "m").unwrap();
        assert_eq!(c.finish_reason, FinishReason::ContentFilter);
        assert_eq!(c.text, None);
    }

    #[test]
    fn a_function_calls_thought_signature_travels_in_its_id_and_comes_back() {
        let answer = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2lnbmF0dXJl"}]},
            "finishReason": "STOP"}]});
        let c = completion(&answer, "m").unwrap();
        let id = &c.tool_calls[0].id;
        assert!(
            id.starts_with("call_") && id.ends_with("~sig~c2lnbmF0dXJl"),
            "{id}"
        );
        let r = request(json!({"messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [{"id": id, "type": "function",
                "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": id, "content": "done"}]}));
        let body = generate_request(&r).unwrap();
        assert_eq!(
            body["contents"][1]["parts"][0],
            json!({"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2lnbmF0dXJl"})
        );
        assert_eq!(
            body["contents"][2]["parts"][0]["functionResponse"]["name"],
            "f"
        );
    }

    #[test]
    fn embeddings_one_and_many() {
        let (input, dims) = embedding_input(&json!({"input": "hi", "dimensions": 8})).unwrap();
        assert_eq!(
            embedding_request(&input, "text-embedding-004", dims),
            json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": "hi"}]},
                   "outputDimensionality": 8})
        );
        let (input, _) = embedding_input(&json!({"input": ["a", "b"]})).unwrap();
        assert_eq!(
            embedding_request(&input, "e", None)["requests"][1],
            json!({"model": "models/e", "content": {"parts": [{"text": "b"}]}})
        );
        assert!(embedding_input(&json!({"input": [1, 2]})).is_err());
        assert!(embedding_input(&json!({"input": []})).is_err());
        assert_eq!(
            embedding_vectors(&json!({"embedding": {"values": [0.5, 1.0]}})).unwrap(),
            [vec![0.5, 1.0]]
        );
        assert_eq!(
            embedding_vectors(&json!({"embeddings": [{"values": [1.0]}, {"values": [2.0]}]}))
                .unwrap(),
            [vec![1.0], vec![2.0]]
        );
    }

    #[test]
    fn errors_keep_the_status_and_geminis_status_name() {
        let body = error(
            400,
            br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#,
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "API key not valid.", "type": "invalid_request_error",
                             "param": null, "code": "invalid_argument"}})
        );
    }

    #[test]
    fn a_stream_becomes_openai_chunks_ending_with_done() {
        let w = ChunkWriter::new("r".into(), "gemini-x".into(), true);
        let mut t = Translator::default();
        let mut out = Vec::new();
        for e in [
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}],
                   "usageMetadata": {"promptTokenCount": 4}}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"},
                   {"functionCall": {"name": "f", "args": {"a": 1}}}]},
                   "finishReason": "STOP"}],
                   "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6}}),
        ] {
            let event = SseEvent {
                event: None,
                data: e.to_string(),
            };
            t.event(&w, &event, &mut out).unwrap();
        }
        t.end(&w, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let chunks: Vec<Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let delta = |i: usize| &chunks[i]["choices"][0]["delta"];
        assert_eq!(delta(0)["role"], "assistant");
        assert_eq!(delta(1)["content"], "Hel");
        assert_eq!(delta(2)["content"], "lo");
        assert_eq!(delta(3)["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(
            delta(4)["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks[6]["usage"]["total_tokens"], 10);
        assert_eq!(chunks.len(), 7);
    }
}
