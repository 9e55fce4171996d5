"""Answers from a recorded run: exact re-runs, and tests without any model.

Every call a run makes is recorded in its store's `llm_calls` table with `messages` as
`json.dumps(request.messages)` and `params` as `json.dumps(request.params())`. A replayed
request is looked up by `request_key(request)`, which equals `record_key(messages, params)`
of the row it was recorded as: the SHA-256 of the canonical JSON (sorted keys, compact
separators) of `[messages, params]`. Identical requests get their recorded replies in
recorded order (first in, first out per key), so a prompt asked twice is answered as it
was the first and the second time, whatever order the batch comes in.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from agents.chat import ChatReply, ChatRequest
from society.backends.base import Backend, BackendError

DB_NAME = "run.sqlite"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hash(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj`: a key independent of dict order."""
    return hashlib.sha256(_canonical(obj).encode("utf-8")).hexdigest()


def record_key(messages_json: str, params_json: str) -> str:
    """The replay key of a recorded `llm_calls` row (its `messages` and `params` columns)."""
    return _hash([json.loads(messages_json), json.loads(params_json)])


def request_key(request: ChatRequest) -> str:
    """The replay key of a request; equals `record_key` of the row it is recorded as."""
    # Round-trip through JSON so the key sees exactly what the store holds (tuples become
    # lists, ints stay ints, floats keep their repr).
    return record_key(json.dumps(request.messages), json.dumps(request.params()))


def _describe_tags(tags: dict[str, Any]) -> str:
    keys = ("agent", "agent_id", "round", "purpose")
    parts = [f"{k}={tags[k]}" for k in keys if k in tags]
    return f" ({', '.join(parts)})" if parts else ""


class ReplayBackend(Backend):
    """Serves the replies recorded in the run at `run` (a run directory or its run.sqlite).

    `strict=True`: a request is matched on its messages and all its parameters; one with no
    recorded reply left gets a per-request error naming its agent and round (from
    `request.tags`). `strict=False`: when the exact match fails, the request falls back to
    the next unused reply recorded for the same messages with other parameters (say, a
    changed temperature or max_tokens); only when that fails too does it get an error.
    Errors never raise: the runner records the decision as invalid. `misses` counts them.
    """

    kind = "replay"

    def __init__(self, model: str = "replay", *, run: str | Path, strict: bool = True, **options):
        super().__init__(model, **options)
        run_path = Path(run)
        db = run_path / DB_NAME if run_path.is_dir() else run_path
        if not db.is_file():
            raise BackendError(f"replay backend: no recorded run at {run_path} ({db} not found)")
        self.run_path = run_path
        self.db_path = db
        self.strict = strict
        self.misses = 0
        self.served = 0
        # Each recorded reply is one shared [reply, used] entry, queued under its exact key
        # and under the key of its messages alone (the non-strict fallback).
        self._queues: dict[str, deque[list[Any]]] = defaultdict(deque)
        self._by_messages: dict[str, deque[list[Any]]] = defaultdict(deque)
        self._models: list[str] = []
        self._load()

    def _load(self) -> None:
        try:
            conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise BackendError(f"replay backend: cannot open {self.db_path}: {exc}") from None
        try:
            rows = conn.execute(
                "SELECT model, messages, params, reply, error, prompt_tokens, "
                "completion_tokens, logprobs FROM llm_calls ORDER BY id"
            ).fetchall()
        except sqlite3.Error as exc:
            raise BackendError(f"replay backend: cannot read {self.db_path}: {exc}") from None
        finally:
            conn.close()
        models: dict[str, None] = {}
        for model, messages, params, reply, error, p_tok, c_tok, logprobs in rows:
            models.setdefault(model, None)
            entry: list[Any] = [
                ChatReply(
                    text=reply or "",
                    prompt_tokens=p_tok or 0,
                    completion_tokens=c_tok or 0,
                    latency_s=0.0,
                    logprobs=json.loads(logprobs) if logprobs else None,
                    finish_reason="replay",
                    error=error,
                ),
                False,
            ]
            self._queues[record_key(messages, params)].append(entry)
            self._by_messages[_hash(json.loads(messages))].append(entry)
        self._models = list(models)
        self.recorded = len(rows)

    @property
    def remaining(self) -> int:
        """Recorded replies not served yet."""
        return sum(1 for q in self._queues.values() for e in q if not e[1])

    @staticmethod
    def _pop(queue: deque[list[Any]] | None) -> ChatReply | None:
        while queue:
            entry = queue.popleft()
            if not entry[1]:
                entry[1] = True
                return entry[0]
        return None

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        out: list[ChatReply] = []
        for r in requests:
            key = request_key(r)
            reply = self._pop(self._queues.get(key))
            if reply is None and not self.strict:
                reply = self._pop(self._by_messages.get(_hash(r.messages)))
            if reply is not None:
                self.served += 1
                out.append(replace(reply))
                continue
            self.misses += 1
            what = "recorded replies used up" if key in self._queues else "no recorded reply"
            msg = f"replay: {what} for this request{_describe_tags(r.tags)} in {self.db_path}"
            out.append(ChatReply.failed(msg))
        return out

    def describe(self) -> dict[str, Any]:
        recorded = self._models
        model: Any = recorded[0] if len(recorded) == 1 else recorded or self.model
        return {"kind": self.kind, "model": model, "run": str(self.run_path)}
