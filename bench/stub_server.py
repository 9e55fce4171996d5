"""A local OpenAI-compatible stub server with controlled latency (tests and benchmarks).

It answers `/v1/chat/completions` as the `fake` backend would answer the same request
(a valid reply picked from the hash of the messages: a schema's enum value, a `choice`
option), after a delay chosen per request by a function of the request body. So a run
against it records the same decisions as one on the `fake` backend, and its timing is
whatever the delay function says: fixed per prompt (tests of pacing) or drawn from a
heavy-tailed distribution fitted to recorded calls (`bench/async_steps.py`).

At most ``slots`` requests are served at once (a server's parallel slots); the others
wait. Every request is logged: (arrival, start, end, body).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agents.chat import ChatRequest
from society.backends.fake import _default_responder

Delay = Callable[[dict[str, Any]], float]


def _request_of(body: dict[str, Any]) -> ChatRequest:
    """The `ChatRequest` the openai backend sent (messages, schema, choice)."""
    fmt = body.get("response_format") or {}
    schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema")
    choice = (body.get("structured_outputs") or {}).get("choice")
    return ChatRequest(
        messages=body["messages"],
        json_schema=schema,
        choice=tuple(choice) if choice else None,
        max_tokens=int(body.get("max_tokens") or 16),
    )


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) drops simultaneous connections: the client's TCP
    # retry then costs a second, which would swamp the latencies under test.
    request_queue_size = 1024


class StubServer:
    """The stub on 127.0.0.1 (a free port), in a background thread; use as a context."""

    def __init__(self, delay: Delay, *, slots: int = 64) -> None:
        self.delay = delay
        self.log: list[tuple[float, float, float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(slots)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # /v1/models: the server is up
                self._send({"object": "list", "data": [{"id": "stub", "object": "model"}]})

            def do_POST(self) -> None:
                arrival = time.perf_counter()
                size = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(size))
                with stub._slots:
                    start = time.perf_counter()
                    time.sleep(max(0.0, float(stub.delay(body))))
                    text = _default_responder(_request_of(body))
                    end = time.perf_counter()
                with stub._lock:
                    stub.log.append((arrival, start, end, body))
                words = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
                self._send(
                    {
                        "id": "stub",
                        "object": "chat.completion",
                        "model": body.get("model", "stub"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": words,
                            "completion_tokens": len(text.split()),
                            "total_tokens": words + len(text.split()),
                        },
                    }
                )

            def _send(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
