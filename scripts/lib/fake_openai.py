"""A minimal OpenAI-compatible upstream for scripts/schemathesis.sh.

Jarvis's `/v1/*` routes pass a call on to a provider; without one configured they answer 503
`provider_not_configured`, which is right but is a 5xx that would hide every real one. This
server stands in for OpenAI at OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 and answers like it:
`POST /v1/chat/completions` (also as server-sent events with "stream": true),
`POST /v1/embeddings`, `GET /v1/models`; a body OpenAI would refuse gets OpenAI's 400.

Usage: python fake_openai.py PORT_FILE   (binds 127.0.0.1:0 and writes the port to PORT_FILE)
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def refuse(message, param=None):
    return 400, {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }


def chat(body):
    if not isinstance(body, dict):
        return refuse("the body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return refuse("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return refuse("messages must be a non-empty array", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return refuse(f"messages[{i}].role is required", f"messages[{i}].role")
    return 200, {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def embeddings(body):
    if not isinstance(body, dict):
        return refuse("the body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return refuse("you must provide a model parameter", "model")
    given = body.get("input")
    texts = given if isinstance(given, list) else [given]
    if given is None or not texts:
        return refuse("input must be a string or an array", "input")
    return 200, {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
            for i in range(len(texts))
        ],
        "model": body["model"],
        "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self.answer(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "openai"}
                    ],
                },
            )
        else:
            self.answer(404, {"error": {"message": "no such route", "type": "invalid_request_error"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            self.answer(*refuse("the body is not JSON"))
            return
        if self.path == "/v1/chat/completions":
            status, answer = chat(body)
            if status == 200 and body.get("stream") is True:
                chunk = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": answer["created"],
                    "model": answer["model"],
                    "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}],
                }
                data = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.answer(status, answer)
        elif self.path == "/v1/embeddings":
            self.answer(*embeddings(body))
        else:
            self.answer(404, {"error": {"message": "no such route", "type": "invalid_request_error"}})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
