"""Any OpenAI-compatible chat server: `vllm serve`, llama.cpp's servers, hosted APIs.

A batch is sent as concurrent HTTP requests (at most `max_concurrency` in flight) over
one or several endpoints (`base_url` may be a list: requests are spread round-robin).
Only `httpx` is needed, not the `openai` package.

Structured output (`structured`): servers disagree on how a JSON schema is passed.

- `"json_schema"`: `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`,
  the OpenAI format; vLLM and llama.cpp's C++ `llama-server` enforce it.
- `"json_object"`: `{"type": "json_object", "schema": ...}`, the only form that
  llama-cpp-python's server (`python -m llama_cpp.server`, 0.3.x) accepts: it answers
  `json_schema` with HTTP 500 "Input should be 'text' or 'json_object'". vLLM accepts this
  form too but ignores the schema (it then only guarantees some JSON object).
- `"auto"` (default): `json_schema` first; an endpoint that rejects it with an error
  naming `response_format` is switched to `json_object` for the rest of the run (the
  request is resent at once, costing no retry). So the default enforces the schema on
  vLLM, llama-cpp-python's server and llama-server alike.
- `"none"`: no `response_format`; replies are validated (and repaired) by the agent.

A `choice` request (the reply is exactly one of a few strings, e.g. an option label) is
sent with both server-specific constraints: `structured_outputs: {"choice": [...]}`
(vLLM) and `grammar` (a GBNF grammar: llama.cpp's servers); each server ignores the
other's field. With `"auto"`, an endpoint that rejects them (a hosted API: HTTP 400
naming the field) is switched to unconstrained choices (the reply then validated by the
agent, within its `max_tokens`) and the request resent at once; `"none"` never sends
them.

Failures: connection errors, timeouts, HTTP 429 and 5xx are retried with exponential
backoff (`backoff_s * 2**attempt`, times a jitter in [1, 1.5) drawn from a seeded
`random.Random`, so a run's waits are reproducible); a connection error or timeout moves
the retry to the next endpoint. Other 4xx fail that request alone (`ChatReply.error`),
as do 429/5xx once the retries are spent. When a request cannot reach any server after
all its retries, `generate` raises `BackendError` and the runner stops the run cleanly.

The API key is read from the environment variable named by `api_key_env` and sent as
`Authorization: Bearer ...`; it never appears in `describe()`, in errors or in logs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

from agents.chat import ChatReply, ChatRequest
from society.backends.base import Backend, BackendError, choice_grammar, openai_logprobs

log = logging.getLogger(__name__)

STRUCTURED_MODES = ("auto", "json_schema", "json_object", "none")
RETRY_STATUS = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))


class _Unreachable(Exception):
    """Every attempt of one request failed to get any HTTP answer."""


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OpenAIBackend(Backend):
    """Concurrent, retrying client of OpenAI-compatible `/chat/completions` endpoints."""

    kind = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | list[str] = "http://127.0.0.1:8000/v1",
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout_s: float = 120,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        structured: str = "auto",
        seed: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(model, **options)
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls or not all(isinstance(u, str) and u.strip() for u in urls):
            raise ValueError(
                f"openai backend: base_url must be a URL or a list of URLs, got {base_url!r}"
            )
        self.base_urls = [u.strip().rstrip("/") for u in urls]
        if structured not in STRUCTURED_MODES:
            raise ValueError(
                f"openai backend: structured={structured!r}; expected one of {', '.join(STRUCTURED_MODES)}"
            )
        if max_concurrency < 1:
            raise ValueError("openai backend: max_concurrency must be at least 1")
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = float(backoff_s)
        self.structured = structured
        self.seed = seed
        # per endpoint: the response_format style in use ("json_schema" | "json_object")
        self._style = {
            u: ("json_schema" if structured == "auto" else structured) for u in self.base_urls
        }
        # per endpoint: whether choice requests carry their constraint
        self._choice = {u: structured != "none" for u in self.base_urls}
        self._next_url = 0  # round-robin position, kept across batches
        self._key = os.environ.get(api_key_env) or None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    # -- public ---------------------------------------------------------------
    @property
    def supports_schema(self) -> bool:
        return self.structured != "none"

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model,
            "base_urls": list(self.base_urls),
            "structured": self.structured,
        }

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        if not requests:
            return []
        with self._lock:
            loop = self._ensure_loop()
            start = self._next_url
            self._next_url = (start + len(requests)) % len(self.base_urls)
            future = asyncio.run_coroutine_threadsafe(self._batch(list(requests), start), loop)
            try:
                return future.result()
            except KeyboardInterrupt:
                future.cancel()
                raise

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None:
                return
            if self._client is not None:
                client = self._client
                try:
                    asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=5)
                except Exception:  # best effort
                    pass
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(timeout=5)
            loop.close()
            self._loop = self._thread = self._client = None

    # -- event loop in a daemon thread ------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """A persistent loop (and connection pool) that works from sync code and notebooks."""
        if self._loop is not None:
            return self._loop
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_forever, name="society-openai-backend", daemon=True
        )
        thread.start()
        self._loop, self._thread = loop, thread
        return loop

    def _get_client(self) -> Any:
        if self._client is None:
            import httpx

            headers = {"Content-Type": "application/json"}
            if self._key:
                headers["Authorization"] = f"Bearer {self._key}"
            self._client = httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(self.timeout_s),
                limits=httpx.Limits(
                    max_connections=self.max_concurrency,
                    max_keepalive_connections=self.max_concurrency,
                ),
            )
        return self._client

    # -- requests ---------------------------------------------------------------
    def _redact(self, text: str) -> str:
        if self._key and self._key in text:
            text = text.replace(self._key, "***")
        return text

    def _body(self, r: ChatRequest, style: str, choice: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": r.messages,
            "temperature": r.temperature,
            "top_p": r.top_p,
            "max_tokens": r.max_tokens,
        }
        if r.seed is not None:
            body["seed"] = r.seed
        if r.stop:
            body["stop"] = list(r.stop)
        if r.choice:
            if choice:
                body["structured_outputs"] = {"choice": list(r.choice)}
                body["grammar"] = choice_grammar(r.choice)
        elif r.json_schema and style == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "action", "schema": r.json_schema, "strict": True},
            }
        elif r.json_schema and style == "json_object":
            body["response_format"] = {"type": "json_object", "schema": r.json_schema}
        if r.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = r.logprobs
        return body

    def _delay(self, r: ChatRequest, index: int, attempt: int, retry_after: str | None) -> float:
        rng = random.Random(f"{self.seed}:{r.seed}:{index}:{attempt}")
        delay = self.backoff_s * (2**attempt) * (1.0 + 0.5 * rng.random())
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), 60.0))
            except ValueError:
                pass
        return delay

    async def _batch(self, requests: list[ChatRequest], start: int) -> list[ChatReply]:
        import httpx

        client = self._get_client()
        sem = asyncio.Semaphore(self.max_concurrency)
        n = len(self.base_urls)

        async def one(i: int, r: ChatRequest) -> ChatReply:
            async with sem:
                return await self._one(client, httpx, r, i, (start + i) % n)

        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(one(i, r)) for i, r in enumerate(requests)]
        except* _Unreachable as group:
            raise BackendError(str(group.exceptions[0])) from None
        return [t.result() for t in tasks]

    async def _one(
        self, client: Any, httpx: Any, r: ChatRequest, index: int, url_i: int
    ) -> ChatReply:
        t0 = time.perf_counter()
        attempt = 0
        last = ""
        while True:
            url = self.base_urls[url_i]
            style = self._style[url]
            retry_after = None
            try:
                body = self._body(r, style, self._choice[url])
                resp = await client.post(f"{url}/chat/completions", json=body)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                kind = (
                    "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
                )
                detail = self._redact(str(exc))
                last = (
                    f"{kind}: {type(exc).__name__}: {detail}"
                    if detail
                    else f"{kind}: {type(exc).__name__}"
                )
                if attempt >= self.max_retries:
                    raise _Unreachable(
                        _one_line(
                            f"openai backend: cannot reach {url}: {last} "
                            f"(after {attempt + 1} attempts)"
                        )
                    ) from None
                url_i = (url_i + 1) % len(self.base_urls)  # fail over to the next endpoint
            else:
                if resp.status_code == 200:
                    return self._reply(resp, url, time.perf_counter() - t0)
                text = self._redact(resp.text)  # some servers echo the credentials
                if (
                    self.structured == "auto"
                    and style == "json_schema"
                    and r.json_schema
                    and resp.status_code in (400, 422, 500)
                    and "response_format" in text
                ):
                    log.info("openai backend: %s rejects json_schema; using json_object", url)
                    self._style[url] = "json_object"
                    continue  # resend at once, not a retry
                if (
                    self.structured == "auto"
                    and r.choice
                    and self._choice[url]
                    and resp.status_code in (400, 422)
                    and ("grammar" in text or "structured_outputs" in text)
                ):
                    log.info("openai backend: %s rejects choice constraints; sending none", url)
                    self._choice[url] = False
                    continue  # resend at once, not a retry
                last = f"HTTP {resp.status_code} from {url}: {_one_line(text)}"
                if resp.status_code not in RETRY_STATUS or attempt >= self.max_retries:
                    return ChatReply.failed(f"openai: {last}", time.perf_counter() - t0)
                retry_after = resp.headers.get("retry-after")
            delay = self._delay(r, index, attempt, retry_after)
            log.debug("openai backend: retry %d in %.2fs (%s)", attempt + 1, delay, last)
            await asyncio.sleep(delay)
            attempt += 1

    def _reply(self, resp: Any, url: str, latency: float) -> ChatReply:
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = (choice.get("message") or {}).get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return ChatReply.failed(
                f"openai: malformed reply from {url}: {type(exc).__name__}: "
                f"{_one_line(self._redact(resp.text), 200)}",
                latency,
            )
        usage = data.get("usage") or {}
        return ChatReply(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_s=latency,
            logprobs=openai_logprobs(choice.get("logprobs")),
            finish_reason=choice.get("finish_reason"),
        )


__all__ = ["OpenAIBackend", "STRUCTURED_MODES"]
