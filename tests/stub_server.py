"""A scripted OpenAI-compatible chat server on 127.0.0.1 for fault tests (stdlib asyncio).

It answers `POST /v1/chat/completions` like a well-behaved server: the reply text is the
fake backend's (a valid action picked from a hash of the messages, or one of a `choice`
request's options), so a run against it is deterministic. `fault` makes it misbehave,
one way per name in `FAULTS`, for the next `count` requests (None: until `heal()`):

- "http500": HTTP 500;  "http429": HTTP 429 with `Retry-After: retry_after`
- "timeout": no answer at all for `hang_s`;  "hang_after_headers": headers, then nothing
- "truncated": a body cut short of its Content-Length, then the connection closed
- "non_json": HTTP 200 with an HTML page;  "over_max_tokens": a reply of 200,000 characters
- "unparsable": a well-formed completion whose text is no action of the game
- "refused": the listening socket is closed (connections refused); `heal()` reopens it
  on the same port

Every request that reaches the server is counted in `requests` with the fault it got.
Raw HTTP/1.1 with `Connection: close`, so every attempt is one connection and a fault
can cut it at any byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from typing import Any

from agents.chat import ChatRequest
from society.backends.fake import _default_responder

FAULTS = (
    "http500",
    "http429",
    "timeout",
    "hang_after_headers",
    "truncated",
    "non_json",
    "over_max_tokens",
    "unparsable",
    "refused",
)


def request_of(body: dict[str, Any]) -> ChatRequest:
    """The ChatRequest a chat-completions body stands for (its schema or choice kept)."""
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
    choice = (body.get("structured_outputs") or {}).get("choice")
    return ChatRequest(
        messages=body["messages"],
        max_tokens=int(body.get("max_tokens") or 16),
        json_schema=schema,
        choice=tuple(choice) if choice else None,
    )


def completion(text: str, prompt_tokens: int = 20) -> bytes:
    """An OpenAI chat completion body holding `text`."""
    payload = {
        "id": "stub",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": max(1, len(text) // 4)},
    }
    return json.dumps(payload).encode()


class StubServer:
    """The server, run by an asyncio loop in a daemon thread; `close()` stops it."""

    def __init__(self, port: int = 0) -> None:
        self.fault: str | None = None
        self.count: int | None = None  # faulty requests left; None = until heal()
        self.retry_after = "1"
        self.hang_s = 5.0
        self.after = 0  # good answers left before the fault starts
        self.requests: list[dict[str, Any]] = []  # {"seed", "fault"} per request
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = port
        self._call(self._listen())
        self.url = f"http://127.0.0.1:{self.port}/v1"

    # -- control (from the test's thread) --------------------------------------------
    def set_fault(self, fault: str, count: int | None = None, *, after: int = 0) -> None:
        """Answer `after` more requests well, then misbehave as `fault` for `count`
        requests (None: until `heal()`)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self.fault, self.count, self.after = fault, count, after
        if fault == "refused" and after == 0:
            self._call(self._unlisten())

    def heal(self) -> None:
        """Behave again (and listen again, on the same port, after "refused")."""
        with self._lock:
            was, self.fault, self.count = self.fault, None, None
        if was == "refused" or self._server is None:
            self._call(self._listen())

    def faulty(self) -> int:
        """How many requests got a fault (refused connections never arrive: not counted)."""
        return sum(1 for r in self.requests if r["fault"])

    def close(self) -> None:
        """Stop listening, cut open connections, stop the loop."""
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    # -- the loop's side ----------------------------------------------------------------
    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._unlisten()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    def _take_fault(self) -> str | None:
        with self._lock:
            fault = self.fault
            if fault is None:
                return None
            if self.after > 0:
                self.after -= 1
                if self.after == 0 and fault == "refused" and self._server is not None:
                    # stop listening before this answer goes out: the next attempt is refused
                    self._server.close()
                    self._server = None
                return None
            if fault == "refused":
                return None
            if self.count is not None:
                self.count -= 1
                if self.count <= 0:
                    self.fault, self.count = None, None
            return fault

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = json.loads(await reader.readexactly(length)) if length else {}
        fault = self._take_fault()
        with self._lock:
            self.requests.append({"seed": body.get("seed"), "fault": fault})
        request = request_of(body)

        async def send(status: str, data: bytes, *, declared: int | None = None, **hdr: str):
            headers = {
                "Content-Type": "application/json",
                "Content-Length": str(len(data) if declared is None else declared),
                "Connection": "close",
                **hdr,
            }
            lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
            await writer.drain()

        if fault == "http500":
            await send("500 Internal Server Error", b'{"error": "engine overloaded"}')
        elif fault == "http429":
            await send(
                "429 Too Many Requests",
                b'{"error": "slow down"}',
                **{"Retry-After": self.retry_after},
            )
        elif fault == "timeout":
            await asyncio.sleep(self.hang_s)
        elif fault == "hang_after_headers":
            await send("200 OK", b"", declared=400)
            await asyncio.sleep(self.hang_s)
        elif fault == "truncated":
            data = completion(_default_responder(request))
            await send("200 OK", data[: len(data) // 2], declared=len(data))
        elif fault == "non_json":
            await send(
                "200 OK",
                b"<html><body>502 Bad Gateway</body></html>",
                **{"Content-Type": "text/html"},
            )
        elif fault == "over_max_tokens":
            await send("200 OK", completion("C" * 200_000))
        elif fault == "unparsable":
            digest = hashlib.sha256(json.dumps(body["messages"]).encode()).hexdigest()[:8]
            await send("200 OK", completion(f"As an assistant I would rather not say ({digest})."))
        else:
            await send("200 OK", completion(_default_responder(request)))


__all__ = ["FAULTS", "StubServer", "completion", "request_of"]
