"""Any OpenAI-compatible chat server: `vllm serve`, llama.cpp's servers, hosted APIs.

A batch is sent as concurrent HTTP requests (at most `max_concurrency` in flight) over
one or several endpoints (see "Endpoints" below). Only `httpx` is needed, not the
`openai` package.

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

Endpoints: `base_url` may be a list of URLs (several `vllm serve` instances, one per
GPU, or any mix of servers). Before each attempt the request goes to the endpoint with the
fewest requests in flight among those that are up (`society.backends.endpoints`); each
reply records the endpoint that served it (`ChatReply.endpoint`, the store's
`llm_calls.endpoint`).

Faults: a connection refused or reset, a timeout (`timeout_s` bounds the whole attempt,
so a server that sends its headers and then hangs, or trickles its body, is cut off too),
HTTP 429 and 5xx, a truncated body, a body that is not an OpenAI chat completion (not
JSON, no `choices`), a body over `max_reply_bytes`, and a reply far over the request's
`max_tokens` (a server that ignores the limit) are all faults of the endpoint. The
endpoint is marked down for `cooldown_s` (or the server's Retry-After, if longer) and the
attempt is retried: at once on another endpoint that is up and that this request has
not failed on, otherwise after an exponential backoff (`backoff_s * 2**k`, at most
`max_backoff_s`, times a jitter in [1, 1.5) drawn from a `random.Random` seeded by the
backend's seed, the request's seed and the attempt, so a run's waits are reproducible and
never touch the simulation's own random streams), and never sooner than the server's
Retry-After (capped at `retry_after_cap_s`). After `max_retries` retries `generate` raises
`BackendError`: the runner stops the run with every committed step intact and says how
to resume. A 4xx other than 429 is the request's own fault (a prompt over the context,
say): it fails that request alone (`ChatReply.error`), as before. A reply whose *text*
is not a valid action is no fault of the server: it is returned as is and the agent's
repair and fallback path handles it (the invalid-reply rate is in `llm_calls.valid`).
`stats()` counts replies and failed attempts per endpoint and kind; `waits` lists the
backoff delays slept (both for tests and post-mortems).

The API key is read from the environment variable named by `api_key_env` and sent as
`Authorization: Bearer ...`; it never appears in `describe()`, in errors or in logs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.chat import ChatReply, ChatRequest
from society.backends.base import Backend, BackendError, choice_grammar, openai_logprobs
from society.backends.endpoints import Endpoint, EndpointPool

log = logging.getLogger(__name__)

STRUCTURED_MODES = ("auto", "json_schema", "json_object", "none")
RETRY_STATUS = frozenset({429}) | frozenset(range(500, 600))
MAX_REPLY_BYTES = 8 << 20
"""Largest response body read (8 MiB: a chat reply with top-20 logprobs of 2,000 tokens
is under 2 MiB); a longer one is a fault, not buffered whole."""


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def max_reply_chars(max_tokens: int) -> int:
    """The longest reply text believable for `max_tokens` tokens (no BPE token of the
    usual vocabularies is anywhere near 32 characters); beyond it the server ignored
    `max_tokens`."""
    return 64 + 32 * max(1, int(max_tokens))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    base = time.time() if now is None else now
    return max(0.0, when.timestamp() - base)


class _Unreachable(Exception):
    """A request spent its retries without a usable reply."""


@dataclass
class _Fault:
    """One failed attempt: its kind ('refused', 'timeout', 'http 503', ...) and detail."""

    kind: str
    detail: str
    retry_after: float | None = None


class _Resend:
    """The endpoint rejected a constraint style; resend at once (not a retry)."""


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
        max_backoff_s: float = 30.0,
        retry_after_cap_s: float = 60.0,
        cooldown_s: float = 30.0,
        max_reply_bytes: int = MAX_REPLY_BYTES,
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
        cleaned = [u.strip().rstrip("/") for u in urls]
        for u in cleaned:
            if not u.startswith(("http://", "https://")):
                raise ValueError(
                    f"openai backend: base_url {u!r} must start with http:// or https://"
                )
        if len(set(cleaned)) != len(cleaned):
            raise ValueError(f"openai backend: base_url lists the same URL twice: {cleaned}")
        if structured not in STRUCTURED_MODES:
            raise ValueError(
                f"openai backend: structured={structured!r}; expected one of {', '.join(STRUCTURED_MODES)}"
            )
        if max_concurrency < 1:
            raise ValueError("openai backend: max_concurrency must be at least 1")
        for name, value in (
            ("timeout_s", timeout_s),
            ("backoff_s", backoff_s),
            ("max_backoff_s", max_backoff_s),
            ("retry_after_cap_s", retry_after_cap_s),
            ("cooldown_s", cooldown_s),
        ):
            if not 0 <= float(value) <= 86_400:
                raise ValueError(f"openai backend: {name}={value!r}; expected 0 to 86400 seconds")
        if float(timeout_s) <= 0:
            raise ValueError("openai backend: timeout_s must be above 0")
        if int(max_reply_bytes) < 1024:
            raise ValueError("openai backend: max_reply_bytes must be at least 1024")
        self.base_urls = cleaned
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.retry_after_cap_s = float(retry_after_cap_s)
        self.cooldown_s = float(cooldown_s)
        self.max_reply_bytes = int(max_reply_bytes)
        self.structured = structured
        self.seed = seed
        self.pool = EndpointPool(
            self.base_urls,
            style="json_schema" if structured == "auto" else structured,
            choice=structured != "none",
            cooldown_s=self.cooldown_s,
        )
        self.waits: list[float] = []  # backoff delays slept, in order
        self._key = os.environ.get(api_key_env) or None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    # -- public ---------------------------------------------------------------
    @property
    def supports_schema(self) -> bool:
        return self.structured != "none"

    @property
    def _style(self) -> dict[str, str]:
        """The response_format style in use per endpoint (read by tests)."""
        return {e.url: e.style for e in self.pool.endpoints}

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per endpoint: replies served, failed attempts (by kind), requests in flight."""
        return self.pool.stats()

    def describe(self) -> dict[str, Any]:
        """Kind, model, endpoints and the retry settings; the engine behind the URLs is
        the servers' (a `vllm serve` records nothing here: start it with
        VLLM_BATCH_INVARIANT=1 and say so in the scenario's name or notes)."""
        import httpx

        return {
            "kind": self.kind,
            "model": self.model,
            "base_urls": list(self.base_urls),
            "structured": self.structured,
            "client": f"httpx {httpx.__version__}",
            "device": "remote",
            "batch_invariant": None,  # decided by each server, unknown to the client
            "retries": {
                "max_retries": self.max_retries,
                "backoff_s": self.backoff_s,
                "timeout_s": self.timeout_s,
                "cooldown_s": self.cooldown_s,
            },
        }

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        if not requests:
            return []
        with self._lock:  # only the loop's creation; calls from several threads overlap
            loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._batch(list(requests)), loop)
        try:
            while True:
                try:
                    return future.result(timeout=0.5)
                except TimeoutError:
                    if future.done():  # the batch itself raised TimeoutError
                        raise
                    # Closed from another thread (a run ending while out-of-order calls
                    # are in flight): the loop is gone and this future would never end.
                    if self._loop is not loop:
                        future.cancel()
                        raise BackendError(
                            "openai backend: closed while a request was in flight"
                        ) from None
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

    def _delay(self, r: ChatRequest, index: int, attempt: int, retry_after: float | None) -> float:
        # A private generator: waits are reproducible and the simulation's streams untouched.
        rng = random.Random(f"{self.seed}:{r.seed}:{index}:{attempt}")
        delay = min(self.backoff_s * (2**attempt), self.max_backoff_s)
        delay *= 1.0 + 0.5 * rng.random()
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_cap_s))
        return delay

    async def _batch(self, requests: list[ChatRequest]) -> list[ChatReply]:
        import httpx

        client = self._get_client()
        sem = asyncio.Semaphore(self.max_concurrency)

        async def one(i: int, r: ChatRequest) -> ChatReply:
            async with sem:
                return await self._one(client, httpx, r, i)

        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(one(i, r)) for i, r in enumerate(requests)]
        except* _Unreachable as group:
            raise BackendError(str(group.exceptions[0])) from None
        return [t.result() for t in tasks]

    async def _one(self, client: Any, httpx: Any, r: ChatRequest, index: int) -> ChatReply:
        t0 = time.perf_counter()
        attempt = 0  # failed attempts so far
        failed_on: set[str] = set()
        while True:
            ep = self.pool.pick(avoid=failed_on)
            ep.outstanding += 1
            try:
                outcome = await self._attempt(client, httpx, r, ep, t0)
            finally:
                ep.outstanding -= 1
            if isinstance(outcome, ChatReply):
                return outcome
            if isinstance(outcome, _Resend):
                continue
            self.pool.failed(ep, outcome.kind, outcome.detail, down_s=outcome.retry_after)
            failed_on.add(ep.url)
            if attempt >= self.max_retries:
                verb = (
                    "cannot reach"
                    if outcome.kind in ("refused", "timeout")
                    else "no usable reply from"
                )
                where = f" on {len(failed_on)} endpoints" if len(failed_on) > 1 else ""
                raise _Unreachable(  # the detail clipped, the attempt count always shown
                    f"openai backend: {verb} {ep.url}: {_one_line(outcome.detail, 200)} "
                    f"(after {attempt + 1} attempts{where})"
                )
            attempt += 1
            if not self.pool.all_down(avoid=failed_on):
                log.debug(
                    "openai backend: %s failed (%s); trying another endpoint",
                    ep.url,
                    outcome.detail,
                )
                continue  # fail over at once: another endpoint is up
            delay = self._delay(r, index, attempt - 1, outcome.retry_after)
            self.waits.append(delay)
            log.debug("openai backend: retry %d in %.2fs (%s)", attempt, delay, outcome.detail)
            await asyncio.sleep(delay)

    async def _attempt(
        self, client: Any, httpx: Any, r: ChatRequest, ep: Endpoint, t0: float
    ) -> ChatReply | _Fault | _Resend:
        """One POST to `ep`: a reply (possibly a per-request error), a fault, or a resend."""
        url = ep.url
        style = ep.style
        body = self._body(r, style, ep.choice)
        try:
            # The deadline covers the whole exchange: headers, then a body that may hang.
            async with asyncio.timeout(self.timeout_s):
                async with client.stream("POST", f"{url}/chat/completions", json=body) as resp:
                    data = bytearray()
                    async for chunk in resp.aiter_bytes():
                        data += chunk
                        if len(data) > self.max_reply_bytes:
                            return _Fault(
                                "too large",
                                f"reply body over {self.max_reply_bytes} bytes",
                            )
                    status, headers = resp.status_code, resp.headers
        except (TimeoutError, httpx.TimeoutException) as exc:
            return _Fault("timeout", f"timed out after {self.timeout_s:g} s: {type(exc).__name__}")
        except httpx.TransportError as exc:
            kind = "refused" if isinstance(exc, httpx.ConnectError) else "broken"
            detail = self._redact(str(exc))
            label = "connection failed" if kind == "refused" else "connection broken"
            return _Fault(
                kind, f"{label}: {type(exc).__name__}" + (f": {detail}" if detail else "")
            )
        text = self._redact(bytes(data).decode("utf-8", errors="replace"))
        if status == 200:
            return self._reply(text, r, ep, time.perf_counter() - t0)
        if (
            self.structured == "auto"
            and style == "json_schema"
            and r.json_schema
            and status in (400, 422, 500)
            and "response_format" in text
        ):
            log.info("openai backend: %s rejects json_schema; using json_object", url)
            ep.style = "json_object"
            return _Resend()
        if (
            self.structured == "auto"
            and r.choice
            and ep.choice
            and status in (400, 422)
            and ("grammar" in text or "structured_outputs" in text)
        ):
            log.info("openai backend: %s rejects choice constraints; sending none", url)
            ep.choice = False
            return _Resend()
        if status in RETRY_STATUS:
            retry_after = parse_retry_after(headers.get("retry-after"))
            return _Fault(f"http {status}", f"HTTP {status}: {_one_line(text)}", retry_after)
        last = f"HTTP {status} from {url}: {_one_line(text)}"
        ep.served += 1  # the server answered; the request itself was refused
        reply = ChatReply.failed(f"openai: {last}", time.perf_counter() - t0)
        reply.endpoint = url
        return reply

    def _reply(self, text: str, r: ChatRequest, ep: Endpoint, latency: float) -> ChatReply | _Fault:
        try:
            data = json.loads(text)
            choice = data["choices"][0]
            content = (choice.get("message") or {}).get("content") or ""
            if not isinstance(content, str):
                raise TypeError(f"content is {type(content).__name__}")
            logprobs = openai_logprobs(choice.get("logprobs"))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            return _Fault(
                "malformed",
                f"malformed reply: {type(exc).__name__}: {_one_line(text, 200)}",
            )
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        completion_tokens = _int(usage.get("completion_tokens"))
        if (
            len(content) > max_reply_chars(r.max_tokens)
            or completion_tokens > 2 * r.max_tokens + 16
        ):
            return _Fault(
                "over max_tokens",
                f"a reply of {len(content)} characters, {completion_tokens} tokens "
                f"for max_tokens={r.max_tokens}: the server ignores max_tokens",
            )
        self.pool.succeeded(ep)
        return ChatReply(
            text=content,
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=completion_tokens,
            latency_s=latency,
            logprobs=logprobs,
            finish_reason=choice.get("finish_reason"),
            endpoint=ep.url,
        )


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


__all__ = ["OpenAIBackend", "STRUCTURED_MODES", "max_reply_chars", "parse_retry_after"]
