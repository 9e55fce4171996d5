"""The one small interface every LLM backend implements."""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from agents.chat import ChatReply, ChatRequest


class BackendError(RuntimeError):
    """A backend failed in a way the run cannot go on from (server gone, engine dead).

    The runner stops the run cleanly on it: committed rounds stay intact and
    `society resume` can continue once the cause is fixed.
    """


def derived_seed(request: ChatRequest) -> int:
    """A seed fixed by the request's content, for requests that carry none."""
    blob = json.dumps([request.messages, request.params()], sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:4], "little")


def choice_grammar(options: Sequence[str]) -> str:
    """A GBNF grammar (llama.cpp) whose only sentences are the given strings.

    Used for `ChatRequest.choice`: the reply is exactly one option, e.g. a one-token
    option label. Quotes, backslashes and line breaks are escaped in the literals.
    """
    if not options:
        raise ValueError("choice_grammar needs at least one option")

    def literal(text: str) -> str:
        esc = text.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + esc.replace("\n", "\\n").replace("\r", "\\r") + '"'

    return "root ::= " + " | ".join(literal(o) for o in options)


def finite_logprob(x: float | None) -> float:
    """Log-probabilities as finite floats (JSON has no -inf): -inf becomes -1e30."""
    if x is None or not math.isfinite(x):
        return -1e30
    return float(x)


def openai_logprobs(chat_logprobs: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """OpenAI chat `logprobs` ({"content": [...]}) to `ChatReply.logprobs`.

    Each entry becomes `{"token": str, "logprob": float, "top": {token: logprob}}`;
    shared by the llama.cpp and OpenAI backends, which both answer in the OpenAI format.
    """
    if not chat_logprobs:
        return None
    content = chat_logprobs.get("content")
    if content is None:
        return None
    out = []
    for item in content:
        top: dict[str, float] = {}
        for alt in item.get("top_logprobs") or ():
            top.setdefault(alt["token"], finite_logprob(alt["logprob"]))
        out.append({"token": item["token"], "logprob": finite_logprob(item["logprob"]), "top": top})
    return out


class Backend(ABC):
    """A batch of chat requests in, the same number of replies out, in order.

    Implementations send the whole batch at once where the engine allows it
    (one `LLM.chat` call for vLLM, concurrent HTTP requests for OpenAI servers).
    A failure of a single request is reported in that reply's `error`; a failure
    of the backend as a whole raises `BackendError`.
    """

    kind: str = "base"

    def __init__(self, model: str, **options: Any) -> None:
        self.model = model
        self.options = options

    @abstractmethod
    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        """Answer every request; `len(result) == len(requests)`."""

    @property
    def supports_schema(self) -> bool:
        """Whether replies are constrained to `ChatRequest.json_schema`."""
        return True

    def describe(self) -> dict[str, Any]:
        """What is recorded about this backend in the run store (never secrets)."""
        return {"kind": self.kind, "model": self.model}

    def close(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing
        """Release engines, sessions and servers."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
