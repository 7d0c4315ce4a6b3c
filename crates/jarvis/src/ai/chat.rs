//! OpenAI's chat shapes as the translating providers see them: a caller's
//! `/v1/chat/completions` body parsed into [`ChatRequest`] (what `ai::anthropic` and
//! `ai::gemini` map to their wire formats), and the neutral answer they map back,
//! [`Completion`] (a whole answer) or [`ChunkWriter`] (a stream's `chat.completion.chunk`
//! events), written in OpenAI's shape.
//!
//! The OpenAI deployment never uses this module: its bodies pass through unparsed.

use serde_json::{json, Map, Value};

use super::AiError;

/// Output tokens asked for when the caller sets no `max_tokens`/`max_completion_tokens` and the
/// provider requires a number (Anthropic): 4096 is the largest every Claude model accepts.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `system`, or OpenAI's newer name for it, `developer`.
    System,
    /// `user`.
    User,
    /// `assistant`.
    Assistant,
    /// `tool`: the result of a tool call, answering `tool_call_id`.
    Tool,
}

/// One piece of a message's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text.
    Text(String),
    /// An image by URL: a `data:<media type>;base64,<data>` URL or an http(s) URL.
    Image(String),
}

/// A tool call the assistant made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// Its ID, which the `tool` message with its result quotes.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments, a JSON text (as OpenAI carries them).
    pub arguments: String,
}

impl ToolCall {
    /// The arguments as JSON (`{}` when empty), for providers that carry them as an object.
    pub fn input(&self) -> Result<Value, AiError> {
        if self.arguments.trim().is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        serde_json::from_str(&self.arguments).map_err(|_| {
            invalid(
                format!("the arguments of tool call '{}' are not JSON", self.id),
                "messages",
            )
        })
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its content, in order (empty for an assistant turn that only calls tools).
    pub content: Vec<Part>,
    /// The tool calls of an assistant message.
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the call it answers.
    pub tool_call_id: Option<String>,
}

impl Message {
    /// The message's text parts joined (images left out).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            if let Part::Text(t) = part {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(t);
            }
        }
        out
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Its parameters, a JSON Schema (an empty object schema when the caller gave none).
    pub parameters: Value,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// `auto`: the model decides.
    Auto,
    /// `none`: no tool call.
    None,
    /// `required`: some tool call.
    Required,
    /// `{"type": "function", "function": {"name"}}`: this one.
    Function(String),
}

/// The form of the answer (`response_format`).
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// `json_object`: JSON mode.
    JsonObject,
    /// `json_schema`: JSON following this schema.
    JsonSchema(Value),
}

/// A `/v1/chat/completions` body, parsed for translation.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The conversation, in order.
    pub messages: Vec<Message>,
    /// The functions offered.
    pub tools: Vec<Tool>,
    /// `tool_choice`.
    pub tool_choice: Option<ToolChoice>,
    /// `parallel_tool_calls`.
    pub parallel_tool_calls: Option<bool>,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// `stop`, as a list.
    pub stop: Vec<String>,
    /// `presence_penalty`.
    pub presence_penalty: Option<f64>,
    /// `frequency_penalty`.
    pub frequency_penalty: Option<f64>,
    /// `seed`.
    pub seed: Option<i64>,
    /// `response_format`.
    pub response_format: ResponseFormat,
    /// `user`.
    pub user: Option<String>,
    /// `stream`.
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with `usage` before `[DONE]`.
    pub include_usage: bool,
}

/// An invalid request, naming the field at fault.
pub(crate) fn invalid(message: impl Into<String>, param: &'static str) -> AiError {
    AiError::InvalidRequest {
        message: message.into(),
        param: Some(param),
    }
}

fn number(body: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, AiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(format!("{name} must be a number"), name)),
    }
}

impl ChatRequest {
    /// Parses a chat body. Fields a translating provider has no use for (`logit_bias`,
    /// `logprobs`, `store`, `metadata`, `service_tier`…) are ignored; what cannot be honoured
    /// (`n` other than 1, legacy `functions`, audio or file content) is refused.
    pub fn parse(body: &Value) -> Result<ChatRequest, AiError> {
        let Some(body) = body.as_object() else {
            return Err(AiError::InvalidRequest {
                message: "the body must be a JSON object".into(),
                param: None,
            });
        };
        let Some(raw) = body.get("messages").and_then(Value::as_array) else {
            return Err(invalid(
                "messages must be an array of {role, content} objects",
                "messages",
            ));
        };
        let messages = raw.iter().map(message).collect::<Result<Vec<_>, _>>()?;
        if body.get("functions").is_some() || body.get("function_call").is_some() {
            return Err(invalid(
                "functions and function_call are not translated: use tools and tool_choice",
                "functions",
            ));
        }
        if let Some(n) = body.get("n").filter(|n| !n.is_null()) {
            if n.as_u64() != Some(1) {
                return Err(invalid(
                    "only one choice (n = 1) is served for this provider",
                    "n",
                ));
            }
        }
        let tools = match body.get("tools") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list.iter().map(tool).collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("tools must be an array", "tools")),
        };
        let tool_choice = match body.get("tool_choice") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => {
                    return Err(invalid(
                        format!("tool_choice '{other}' is not one of auto, none, required"),
                        "tool_choice",
                    ))
                }
            }),
            Some(v) => match v["function"]["name"].as_str() {
                Some(name) => Some(ToolChoice::Function(name.to_string())),
                None => {
                    return Err(invalid(
                        "tool_choice must be auto, none, required or \
                         {\"type\": \"function\", \"function\": {\"name\": …}}",
                        "tool_choice",
                    ))
                }
            },
        };
        let max_tokens =
            match body
                .get("max_completion_tokens")
                .filter(|v| !v.is_null())
                .or_else(|| body.get("max_tokens").filter(|v| !v.is_null()))
            {
                None => None,
                Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                    invalid("max_tokens must be a positive integer", "max_tokens")
                })?),
            };
        let stop = match body.get("stop") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid("stop must be a string or strings", "stop"))?,
            Some(_) => return Err(invalid("stop must be a string or strings", "stop")),
        };
        let response_format = match body.get("response_format") {
            None | Some(Value::Null) => ResponseFormat::Text,
            Some(f) => match f["type"].as_str() {
                Some("text") => ResponseFormat::Text,
                Some("json_object") => ResponseFormat::JsonObject,
                Some("json_schema") => match f["json_schema"].get("schema") {
                    Some(schema) => ResponseFormat::JsonSchema(schema.clone()),
                    None => {
                        return Err(invalid(
                            "response_format json_schema needs json_schema.schema",
                            "response_format",
                        ))
                    }
                },
                _ => {
                    return Err(invalid(
                        "response_format.type must be text, json_object or json_schema",
                        "response_format",
                    ))
                }
            },
        };
        Ok(ChatRequest {
            messages,
            tools,
            tool_choice,
            parallel_tool_calls: body.get("parallel_tool_calls").and_then(Value::as_bool),
            max_tokens,
            temperature: number(body, "temperature")?,
            top_p: number(body, "top_p")?,
            stop,
            presence_penalty: number(body, "presence_penalty")?,
            frequency_penalty: number(body, "frequency_penalty")?,
            seed: body.get("seed").and_then(Value::as_i64),
            response_format,
            user: body.get("user").and_then(Value::as_str).map(str::to_string),
            stream: body.get("stream").and_then(Value::as_bool) == Some(true),
            include_usage: body
                .get("stream_options")
                .and_then(|o| o["include_usage"].as_bool())
                == Some(true),
        })
    }

    /// The name of the function a tool call ID belongs to, from the assistant messages
    /// before (Gemini's function responses are matched by name, OpenAI's by ID).
    pub fn tool_name(&self, call_id: &str) -> Option<&str> {
        self.messages
            .iter()
            .flat_map(|m| &m.tool_calls)
            .find(|c| c.id == call_id)
            .map(|c| c.name.as_str())
    }
}

fn message(raw: &Value) -> Result<Message, AiError> {
    let role = match raw["role"].as_str() {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        Some(other) => {
            return Err(invalid(
                format!(
                    "message role '{other}' is not translated: use system, developer, user, \
                     assistant or tool"
                ),
                "messages",
            ))
        }
        None => return Err(invalid("every message needs a role", "messages")),
    };
    let content = match &raw["content"] {
        Value::Null => Vec::new(),
        Value::String(s) => vec![Part::Text(s.clone())],
        Value::Array(parts) => parts.iter().map(part).collect::<Result<_, _>>()?,
        _ => {
            return Err(invalid(
                "message content must be a string or an array of parts",
                "messages",
            ))
        }
    };
    let tool_calls = match &raw["tool_calls"] {
        Value::Null => Vec::new(),
        Value::Array(calls) => calls
            .iter()
            .map(|c| {
                let f = &c["function"];
                match (c["id"].as_str(), f["name"].as_str()) {
                    (Some(id), Some(name)) => Ok(ToolCall {
                        id: id.to_string(),
                        name: name.to_string(),
                        arguments: f["arguments"].as_str().unwrap_or("{}").to_string(),
                    }),
                    _ => Err(invalid(
                        "every tool call needs an id and function.name",
                        "messages",
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(invalid("tool_calls must be an array", "messages")),
    };
    let tool_call_id = raw["tool_call_id"].as_str().map(str::to_string);
    if role == Role::Tool && tool_call_id.is_none() {
        return Err(invalid(
            "a tool message needs the tool_call_id it answers",
            "messages",
        ));
    }
    Ok(Message {
        role,
        content,
        tool_calls,
        tool_call_id,
    })
}

fn part(raw: &Value) -> Result<Part, AiError> {
    match raw["type"].as_str() {
        Some("text") => Ok(Part::Text(raw["text"].as_str().unwrap_or("").to_string())),
        Some("image_url") => {
            let url = raw["image_url"]["url"]
                .as_str()
                .or_else(|| raw["image_url"].as_str());
            url.map(|u| Part::Image(u.to_string()))
                .ok_or_else(|| invalid("an image_url part needs image_url.url", "messages"))
        }
        Some(other) => Err(invalid(
            format!("content parts of type '{other}' are not translated (text and image_url are)"),
            "messages",
        )),
        None => Err(invalid("every content part needs a type", "messages")),
    }
}

fn tool(raw: &Value) -> Result<Tool, AiError> {
    if raw["type"].as_str() != Some("function") {
        return Err(invalid(
            "only tools of type function are translated",
            "tools",
        ));
    }
    let f = &raw["function"];
    let Some(name) = f["name"].as_str() else {
        return Err(invalid("every tool needs function.name", "tools"));
    };
    Ok(Tool {
        name: name.to_string(),
        description: f["description"].as_str().map(str::to_string),
        parameters: match &f["parameters"] {
            Value::Null => json!({"type": "object", "properties": {}}),
            p => p.clone(),
        },
    })
}

/// A `data:<media type>;base64,<data>` URL split into media type and data.
pub fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}

/// Why the model stopped, in OpenAI's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// `stop`: a natural end or a stop sequence.
    Stop,
    /// `length`: the token limit.
    Length,
    /// `tool_calls`: the model called tools.
    ToolCalls,
    /// `content_filter`: the provider's safety system stopped it.
    ContentFilter,
}

impl FinishReason {
    /// OpenAI's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

/// Token usage in OpenAI's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Input tokens, cached ones included.
    pub prompt: u64,
    /// Output tokens, reasoning included.
    pub completion: u64,
    /// Input tokens read from the provider's cache, when it says.
    pub cached: Option<u64>,
    /// Output tokens spent on reasoning, when the provider says.
    pub reasoning: Option<u64>,
}

impl TokenUsage {
    /// OpenAI's `usage` object.
    pub fn to_openai(self) -> Value {
        let mut usage = json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        });
        if let Some(cached) = self.cached {
            usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
        }
        if let Some(reasoning) = self.reasoning {
            usage["completion_tokens_details"] = json!({"reasoning_tokens": reasoning});
        }
        usage
    }
}

/// A whole answer of a translating provider, to be written as OpenAI's `chat.completion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The provider's ID of the answer.
    pub id: String,
    /// The model that answered, as the provider names it.
    pub model: String,
    /// The text, when there is any.
    pub text: Option<String>,
    /// The tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Its tokens.
    pub usage: TokenUsage,
}

impl Completion {
    /// OpenAI's `chat.completion` object, created at `created` (Unix seconds).
    pub fn to_openai(&self, created: i64) -> Value {
        let mut message = json!({"role": "assistant", "content": self.text});
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(
                self.tool_calls
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "type": "function",
                               "function": {"name": c.name, "arguments": c.arguments}})
                    })
                    .collect(),
            );
        }
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": self.finish_reason.as_str(),
            }],
            "usage": self.usage.to_openai(),
        })
    }
}

/// The current time in Unix seconds (`created` of answers and chunks).
pub fn now_unix() -> i64 {
    crate::clock::now().timestamp()
}

/// A new ID for an answer or a tool call when the provider gives none.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Writes a translated stream's events as OpenAI's `chat.completion.chunk` server-sent events.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    /// The answer's ID (every chunk carries it).
    pub id: String,
    /// The model (every chunk carries it).
    pub model: String,
    created: i64,
    include_usage: bool,
}

impl ChunkWriter {
    /// A writer for one answer; `include_usage` adds the usage chunk before `[DONE]`.
    pub fn new(id: String, model: String, include_usage: bool) -> ChunkWriter {
        ChunkWriter {
            id,
            model,
            created: now_unix(),
            include_usage,
        }
    }

    fn write(&self, out: &mut Vec<u8>, choices: Value, usage: Option<Value>) {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(u) = usage {
            chunk["usage"] = u;
        }
        out.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut *out, &chunk).expect("a JSON value serializes");
        out.extend_from_slice(b"\n\n");
    }

    fn delta(&self, out: &mut Vec<u8>, delta: Value) {
        self.write(
            out,
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}]),
            None,
        );
    }

    /// The first chunk: the assistant's role.
    pub fn role(&self, out: &mut Vec<u8>) {
        self.delta(out, json!({"role": "assistant", "content": ""}));
    }

    /// A piece of text.
    pub fn text(&self, out: &mut Vec<u8>, text: &str) {
        self.delta(out, json!({"content": text}));
    }

    /// The start of tool call number `index` (0-based among this answer's tool calls).
    pub fn tool_start(&self, out: &mut Vec<u8>, index: usize, id: &str, name: &str) {
        self.delta(
            out,
            json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                   "function": {"name": name, "arguments": ""}}]}),
        );
    }

    /// A piece of tool call `index`'s arguments (a fragment of a JSON text).
    pub fn tool_arguments(&self, out: &mut Vec<u8>, index: usize, fragment: &str) {
        self.delta(
            out,
            json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
        );
    }

    /// The last chunk of the choice: why it stopped.
    pub fn finish(&self, out: &mut Vec<u8>, reason: FinishReason) {
        self.write(
            out,
            json!([{"index": 0, "delta": {}, "logprobs": null,
                    "finish_reason": reason.as_str()}]),
            None,
        );
    }

    /// The end: the usage chunk (when the caller asked for it), then `data: [DONE]`.
    pub fn done(&self, out: &mut Vec<u8>, usage: TokenUsage) {
        if self.include_usage {
            self.write(out, json!([]), Some(usage.to_openai()));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    /// An error the provider reported mid-stream, in OpenAI's error shape (OpenAI's SDKs
    /// raise it); no `[DONE]` follows.
    pub fn error(&self, out: &mut Vec<u8>, message: &str, code: &str) {
        out.extend_from_slice(b"data: ");
        let error = json!({"error": {"message": message, "type": "server_error",
                                     "param": null, "code": code}});
        serde_json::to_writer(&mut *out, &error).expect("a JSON value serializes");
        out.extend_from_slice(b"\n\n");
    }
}

/// OpenAI's error body for a provider's refusal (a 4xx): `{"error": {message, type, param,
/// code}}`, `type` following the status as in OpenAI's API.
pub fn error_body(status: u16, message: &str, code: &str) -> Vec<u8> {
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    };
    serde_json::to_vec(
        &json!({"error": {"message": message, "type": kind, "param": null,
                                         "code": code}}),
    )
    .expect("a JSON value serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_request_is_parsed() {
        let body = json!({
            "model": "anthropic/x",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1",
                    "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "max_tokens": 100, "max_completion_tokens": 50, "stop": "END",
            "temperature": 0.5, "stream": true, "stream_options": {"include_usage": true},
            "response_format": {"type": "json_object"}, "logit_bias": {"1": 2}
        });
        let r = ChatRequest::parse(&body).unwrap();
        assert_eq!(r.messages.len(), 4);
        assert_eq!(r.messages[0].role, Role::System);
        assert_eq!(
            r.messages[1].content,
            [
                Part::Text("hi".into()),
                Part::Image("data:image/png;base64,AAA".into())
            ]
        );
        assert_eq!(r.messages[2].tool_calls[0].arguments, "{\"a\":1}");
        assert_eq!(r.tool_name("c1"), Some("f"));
        assert_eq!(r.tools[0].parameters["type"], "object");
        assert_eq!(r.tool_choice, Some(ToolChoice::Function("f".into())));
        assert_eq!(r.max_tokens, Some(50), "max_completion_tokens wins");
        assert_eq!(r.stop, ["END"]);
        assert!(r.stream && r.include_usage);
        assert_eq!(r.response_format, ResponseFormat::JsonObject);
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_with_its_param() {
        for (body, param) in [
            (json!({"messages": "hi"}), "messages"),
            (
                json!({"messages": [{"role": "function", "content": "x"}]}),
                "messages",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages",
            ),
            (json!({"messages": [], "n": 2}), "n"),
            (
                json!({"messages": [], "tools": [{"type": "retrieval"}]}),
                "tools",
            ),
            (
                json!({"messages": [], "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (json!({"messages": [], "max_tokens": 0}), "max_tokens"),
            (json!({"messages": [], "stop": [1]}), "stop"),
            (json!({"messages": [], "temperature": "hot"}), "temperature"),
        ] {
            match ChatRequest::parse(&body) {
                Err(AiError::InvalidRequest { param: Some(p), .. }) => {
                    assert_eq!(p, param, "{body}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(ChatRequest::parse(&json!({"messages": [], "n": 1})).is_ok());
    }

    #[test]
    fn a_completion_is_written_in_openais_shape() {
        let c = Completion {
            id: "msg_1".into(),
            model: "m".into(),
            text: None,
            tool_calls: vec![ToolCall {
                id: "t1".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }],
            finish_reason: FinishReason::ToolCalls,
            usage: TokenUsage {
                prompt: 5,
                completion: 2,
                cached: Some(1),
                reasoning: None,
            },
        };
        let v = c.to_openai(7);
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "f"
        );
        assert_eq!(v["usage"]["total_tokens"], 7);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    }

    #[test]
    fn chunks_are_server_sent_events_ending_with_done() {
        let w = ChunkWriter::new("id1".into(), "m".into(), true);
        let mut out = Vec::new();
        w.role(&mut out);
        w.text(&mut out, "hi");
        w.finish(&mut out, FinishReason::Stop);
        w.done(
            &mut out,
            TokenUsage {
                prompt: 1,
                completion: 2,
                ..TokenUsage::default()
            },
        );
        let text = String::from_utf8(out).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 5, "{text}");
        let usage: Value = serde_json::from_str(&events[3]["data: ".len()..]).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 3);
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(events[4], "data: [DONE]");
    }

    #[test]
    fn data_urls_are_split() {
        assert_eq!(
            data_url("data:image/png;base64,QUJD"),
            Some(("image/png", "QUJD"))
        );
        assert_eq!(data_url("https://x/y.png"), None);
    }
}
