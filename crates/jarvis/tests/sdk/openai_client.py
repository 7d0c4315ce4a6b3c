"""The official `openai` Python client against Jarvis's AI gateway (issue 14's acceptance).

Run by `tests/api/ai.rs` with JARVIS_URL (the gateway) and JARVIS_TOKEN (its bearer token, given
to the client as its API key), against a mock OpenAI server behind Jarvis: a chat, a streamed
chat, a chat with a tool, an embeddings call and the model list. Exits non-zero on any error.
"""
import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ["JARVIS_URL"] + "/v1",
    api_key=os.environ["JARVIS_TOKEN"],
    max_retries=0,
    timeout=30,
)

chat = client.chat.completions.create(
    model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
)
assert chat.choices[0].message.content == "hello there", chat
assert chat.usage.total_tokens == 10, chat.usage

stream = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
)
parts = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
assert parts == "part-0part-1part-2", parts

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
with_tool = client.chat.completions.create(
    model="openai/gpt-4o-mini",
    messages=[{"role": "user", "content": "weather in Paris?"}],
    tools=[tool],
    tool_choice="auto",
)
assert with_tool.choices[0].finish_reason == "stop", with_tool

embedding = client.embeddings.create(model="openai/text-embedding-3-small", input="hello")
assert embedding.data[0].embedding == [0.25, -0.5], embedding

models = [m.id for m in client.models.list()]
assert "openai/gpt-4o-mini" in models, models

print("openai client: ok")
