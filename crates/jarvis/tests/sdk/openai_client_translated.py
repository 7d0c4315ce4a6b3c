"""The official `openai` Python client against Jarvis's translated providers (issue 14).

Run by `tests/api/ai_gemini.rs` with JARVIS_URL and JARVIS_TOKEN, against mock Anthropic and
Gemini servers behind Jarvis: for `anthropic/…` and `gemini/…`, a chat, a streamed chat with
usage, a chat with a tool call; a Gemini embeddings call (the client asks for base64 by
default and decodes it). The client parses every answer with its own types, so a shape Jarvis
gets wrong fails here. Exits non-zero on any error.
"""
import json
import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ["JARVIS_URL"] + "/v1",
    api_key=os.environ["JARVIS_TOKEN"],
    max_retries=0,
    timeout=30,
)

messages = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hi"},
]
tool = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

for model in ["anthropic/claude-test", "gemini/gemini-test"]:
    chat = client.chat.completions.create(model=model, messages=messages)
    assert chat.choices[0].message.content == "hello there", chat
    assert chat.choices[0].finish_reason == "stop", chat
    assert chat.usage.total_tokens == 10, chat.usage

    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == "hello there", (model, text)
    assert finish == "stop", (model, finish)
    assert usage is not None and usage.total_tokens == 10, (model, usage)

    with_tool = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[tool],
    )
    choice = with_tool.choices[0]
    assert choice.finish_reason == "tool_calls", (model, with_tool)
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather", call
    assert json.loads(call.function.arguments) == {"city": "Paris"}, call

embedding = client.embeddings.create(model="gemini/text-embedding-test", input="hello")
assert embedding.data[0].embedding == [0.25, -0.5], embedding

print("openai client on translated providers: ok")
