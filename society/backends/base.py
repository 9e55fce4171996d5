"""The one small interface every LLM backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from agents.chat import ChatReply, ChatRequest


class BackendError(RuntimeError):
    """A backend failed in a way the run cannot go on from (server gone, engine dead).

    The runner stops the run cleanly on it: committed rounds stay intact and
    `society resume` can continue once the cause is fixed.
    """


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
