"""LLM backends: a batch of chat requests in, the same number of replies out.

Backends are looked up by kind and imported lazily, so that the heavy engines
(llama.cpp, vLLM) are only imported when a scenario uses them.
"""

from __future__ import annotations

import importlib
from typing import Any

from society.backends.base import Backend, BackendError

# kind -> "module:Class"
BACKENDS: dict[str, str] = {
    "llamacpp": "society.backends.llamacpp:LlamaCppBackend",
    "openai": "society.backends.openai:OpenAIBackend",
    "vllm": "society.backends.vllm:VLLMBackend",
    "replay": "society.backends.replay:ReplayBackend",
    "fake": "society.backends.fake:FakeBackend",
}


def make_backend(kind: str, model: str, **options: Any) -> Backend:
    """Build the backend `kind` serving `model`; `options` are the backend's own settings."""
    try:
        target = BACKENDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown backend kind {kind!r}; expected one of {', '.join(sorted(BACKENDS))}"
        ) from None
    module_name, cls_name = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)(model, **options)


__all__ = ["BACKENDS", "Backend", "BackendError", "make_backend"]
