"""A deterministic in-process backend for fast unit tests (never the only test of a feature)."""

from __future__ import annotations

import hashlib
import json
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
                )
            )
        return out
