"""Plain data passed between agents and LLM backends.

Agents build `ChatRequest`s and read `ChatReply`s; the runtime's backends
(`society.backends`) turn requests into replies. Kept free of any runtime import
so that `agents` stays independent of `society`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The sampling parameters, in the order they are recorded (replay keys hash that JSON).
_PARAM_FIELDS = ("temperature", "max_tokens", "seed", "top_p", "stop", "json_schema", "logprobs")


@dataclass(slots=True)
class ChatRequest:
    """One chat completion asked of a backend.

    `json_schema`, when set, asks the backend to constrain the reply to that schema
    (vLLM structured outputs, llama.cpp grammars, OpenAI `response_format`).
    `logprobs`, when set, asks for that many top log-probabilities per token.
    `choice`, when set, asks the backend to constrain the whole reply to exactly one of
    these strings (a bare label, no JSON: llama.cpp grammars, vLLM structured outputs'
    `choice`); it takes precedence over `json_schema`. It is recorded with the sampling
    parameters only when set, so requests without it keep their replay keys and seeds.
    """

    messages: list[dict[str, str]]
    temperature: float = 0.7
    max_tokens: int = 128
    seed: int | None = None
    json_schema: dict[str, Any] | None = None
    logprobs: int | None = None
    top_p: float = 1.0
    stop: list[str] | None = None
    choice: tuple[str, ...] | None = None
    # Free-form tags that travel with the request into the record (agent, round, purpose).
    tags: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, messages: list[dict[str, str]], params: dict[str, Any]) -> ChatRequest:
        """Rebuild a request from its messages and `params()`, as the run store records them."""
        choice = params.get("choice")
        return cls(
            messages=messages,
            choice=tuple(choice) if choice else None,
            **{k: params[k] for k in _PARAM_FIELDS if k in params},
        )

    def params(self) -> dict[str, Any]:
        """Sampling parameters as recorded in the run store, in `_PARAM_FIELDS` order."""
        out = {k: getattr(self, k) for k in _PARAM_FIELDS}
        if self.choice is not None:
            out["choice"] = list(self.choice)
        return out


@dataclass(slots=True)
class ChatReply:
    """A backend's answer to one `ChatRequest`.

    `error` is set (and `text` empty) when the backend failed for this request
    after its retries; the agent then records the decision as invalid.
    `logprobs` is a list with one entry per generated token:
    `{"token": str, "logprob": float, "top": {token: logprob}}`.
    `endpoint` names the server that answered, where a backend has several.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    logprobs: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    error: str | None = None
    # Filled by the agent that reads the reply (not by the backend): the parsed
    # action as JSON-ready data, and whether it was valid.
    parsed: Any = None
    valid: bool | None = None
    # The server that answered (a base URL), for backends with several endpoints; None
    # for in-process engines. Recorded in the store's `llm_calls.endpoint`.
    endpoint: str | None = None

    @classmethod
    def failed(cls, error: str, latency_s: float = 0.0) -> ChatReply:
        """The reply to a request the backend could not answer: no text, the error kept."""
        return cls(text="", latency_s=latency_s, error=error, finish_reason="error")
