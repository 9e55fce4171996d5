"""Checkpoints as versioned plain data (JSON), never pickle.

A run store may come from anyone (a colleague, a download): opening or resuming it must
never execute code. JSON decoding builds only dicts, lists, strings and numbers, and the
loader refuses anything that is not a checkpoint of a version it knows, with one line.
"""

from __future__ import annotations

import json
from typing import Any

from society.errors import UserError

FORMAT = "society.checkpoint"
VERSION = 1
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # one encoder: a checkpoint a step


def encode(state: dict[str, Any]) -> str:
    """The checkpoint text of a state (or a part of one) made of plain data."""
    return _ENCODER.encode({"format": FORMAT, "version": VERSION, "state": state})


def decode(raw: Any, where: str) -> dict[str, Any]:
    """The state of a checkpoint; `UserError` for anything else (nothing is executed)."""
    if isinstance(raw, bytes | memoryview):
        raw = bytes(raw)
        if raw[:1] == b"\x80":  # pickle's protocol marker: refused unread
            raise UserError(
                f"{where}: the checkpoint is a pickle (an older society store, or a foreign "
                "payload); it is not loaded, since unpickling can run arbitrary code"
            )
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{where}: the checkpoint is not JSON text; refusing it") from None
    if not isinstance(raw, str):
        raise UserError(f"{where}: the checkpoint is not JSON text; refusing it")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: the checkpoint is not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"{where}: the checkpoint is not a society checkpoint; refusing it")
    if doc.get("version") != VERSION:
        raise UserError(
            f"{where}: checkpoint version {doc.get('version')!r} is not supported "
            f"(this society reads version {VERSION})"
        )
    state = doc.get("state")
    if not isinstance(state, dict):
        raise UserError(f"{where}: the checkpoint holds no state")
    return state
