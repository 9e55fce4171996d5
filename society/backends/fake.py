"""A deterministic in-process backend for fast unit tests (never the only test of a feature)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from agents.chat import ChatReply, ChatRequest
from society.backends.base import Backend

Responder = Callable[[ChatRequest], str]


def _default_responder(request: ChatRequest) -> str:
    """Answer schema requests with a valid JSON object picked from the request's hash
    (and `choice` requests with one of their options)."""
    digest = hashlib.sha256(json.dumps(request.messages, sort_keys=True).encode()).digest()
    if request.choice:
        return request.choice[digest[0] % len(request.choice)]
    schema = request.json_schema
    if not schema:
        return "My strategy will be to cooperate with those who cooperate."
    out: dict[str, Any] = {}
    for i, (name, prop) in enumerate(schema.get("properties", {}).items()):
        byte = digest[i % len(digest)]
        if "enum" in prop:
            out[name] = prop["enum"][byte % len(prop["enum"])]
        elif prop.get("type") in ("number", "integer") or "maximum" in prop:
            # a bounded number: a JSON number, or a numeric string (games.protocol.number_schema)
            lo = prop.get("minimum", 0)
            hi = prop.get("maximum", lo + 10)
            val = lo + (hi - lo) * (byte / 255)
            num = int(val) if prop.get("type") == "integer" else round(val, 2)
            out[name] = str(num) if prop.get("type") == "string" else num
        else:
            out[name] = "ok"
    return json.dumps(out)


#: Tokens the fake backend's log-probabilities are spread over.
_FAKE_VOCAB = ("the", "a", "to", "and", "of", "I", "you", "it", "is", "we", "so", "ok")


def fake_logprobs(request: ChatRequest, text: str) -> list[dict[str, Any]] | None:
    """Deterministic top-k log-probabilities for ``text`` (None unless asked for).

    One entry per whitespace token of the reply: the sampled token first, with the
    other ``request.logprobs - 1`` tokens drawn from a small vocabulary; their weights
    come from the hash of the messages and the position, so two different prompts get
    different distributions and the same prompt always the same ones.
    """
    k = request.logprobs
    if not k:
        return None
    base = json.dumps(request.messages, sort_keys=True)
    out = []
    for pos, token in enumerate(text.split() or [""]):
        digest = hashlib.sha256(f"{base}|{pos}".encode()).digest()
        others = [t for t in _FAKE_VOCAB if t != token]
        start = digest[0] % len(others)
        names = [token] + [others[(start + j) % len(others)] for j in range(k - 1)]
        weights = [1.0 + digest[1 + j] for j in range(len(names))]
        weights[0] += 256.0  # the sampled token is the likeliest
        total = sum(weights) * (1.0 + digest[20] / 1024)  # some mass left outside the top-k
        top = {t: math.log(w / total) for t, w in zip(names, weights, strict=True)}
        out.append({"token": token, "logprob": top[token], "top": top})
    return out


class FakeBackend(Backend):
    """Answers from a Python function (default: a valid reply derived from the prompt hash)."""

    kind = "fake"

    def __init__(self, model: str = "fake", responder: Responder | None = None, **options: Any):
        super().__init__(model, **options)
        self.responder = responder or _default_responder
        self.calls = 0
        self.batches: list[int] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        self.batches.append(len(requests))
        out = []
        for r in requests:
            self.calls += 1
            text = self.responder(r)
            out.append(
                ChatReply(
                    text=text,
                    prompt_tokens=sum(len(m["content"].split()) for m in r.messages),
                    completion_tokens=len(text.split()),
                    finish_reason="stop",
                    logprobs=fake_logprobs(r, text),
                )
            )
        return out
