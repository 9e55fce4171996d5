"""Resolving LLM decisions: every ready request of a step goes to its backend as one batch.

Each LLM decision is a generator (see `agents.llm`) that yields `ChatRequest`s.
The decider drives all of a step's generators in lockstep: it gathers the
requests that are ready, groups them by backend, sends each group as one batch,
hands every reply back to its generator, and repeats until all have returned.
No agent waits for an unrelated agent beyond the batch it is in. Every call is
recorded as a row of the `llm_calls` table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agents.chat import ChatReply, ChatRequest
from society.backends.base import Backend

if TYPE_CHECKING:
    from society.population import Member


def derive_seed(base_seed: int, *parts: Any) -> int:
    """A stable 31-bit sampling seed from the scenario seed and the request's identity."""
    text = json.dumps([base_seed, *parts], separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass
class Job:
    """One agent's decision in flight: which backend serves it and its generator."""

    agent_id: int
    backend_key: str
    gen: Generator[ChatRequest, ChatReply, Any]
    result: Any = None
    last_call_id: int | None = None
    pending: ChatRequest | None = None
    n_calls: int = 0

    @classmethod
    def for_member(cls, member: Member, gen: Generator[ChatRequest, ChatReply, Any]) -> Job:
        """The job of an LLM member's decision; its backend key picks the batch it joins."""
        if member.backend_key is None:
            raise ValueError(f"agent {member.name!r} has no LLM backend")
        return cls(member.agent_id, member.backend_key, gen)


class Decider:
    """Drives LLM decision generators, batching requests per backend and recording calls."""

    def __init__(self, backends: dict[str, Backend], base_seed: int, next_call_id: int = 1) -> None:
        self.backends = backends
        self.base_seed = base_seed
        self.next_call_id = next_call_id
        self.calls: list[tuple] = []  # llm_calls rows not yet committed

    def take_calls(self) -> list[tuple]:
        """The recorded call rows since the last take (the runner commits them)."""
        calls, self.calls = self.calls, []
        return calls

    def run(self, jobs: list[Job], round_: int) -> None:
        """Drive every job to completion; each job's `result` holds its return value."""
        active = []
        for job in jobs:
            self._advance(job, None, first=True)
            if job.pending is not None:
                active.append(job)
        while active:
            by_backend: dict[str, list[Job]] = {}
            for job in active:
                by_backend.setdefault(job.backend_key, []).append(job)
            for key, group in by_backend.items():
                backend = self.backends[key]
                requests = [self._seeded(job, round_) for job in group]
                replies = backend.generate(requests)
                if len(replies) != len(requests):
                    raise RuntimeError(
                        f"backend {backend.kind} returned {len(replies)} replies for {len(requests)} requests"
                    )
                desc = backend.describe()  # once per batch: it holds for every call in it
                served_by = (desc.get("kind", backend.kind), str(desc.get("model", backend.model)))
                for job, request, reply in zip(group, requests, replies, strict=True):
                    self._advance(job, reply, first=False)
                    self._record(job, request, reply, served_by, round_)
            active = [job for job in active if job.pending is not None]

    def _seeded(self, job: Job, round_: int) -> ChatRequest:
        request = job.pending
        assert request is not None
        if request.seed is None:
            # Derived from the request's identity, not from batch order: the same
            # decision gets the same seed whatever else is in the batch.
            request.seed = derive_seed(
                self.base_seed, round_, job.agent_id, request.tags.get("partner"),
                request.tags.get("purpose"), job.n_calls,
            )  # fmt: skip
        job.n_calls += 1
        return request

    def _advance(self, job: Job, reply: ChatReply | None, *, first: bool) -> None:
        try:
            if first or reply is None:
                job.pending = next(job.gen)
            else:
                job.pending = job.gen.send(reply)
        except StopIteration as stop:
            job.pending = None
            job.result = stop.value

    def _record(
        self,
        job: Job,
        request: ChatRequest,
        reply: ChatReply,
        served_by: tuple[str, str],
        round_: int,
    ) -> None:
        call_id = self.next_call_id
        self.next_call_id += 1
        job.last_call_id = call_id
        self.calls.append(
            (
                call_id,
                round_,
                job.agent_id,
                request.tags.get("purpose"),
                *served_by,
                json.dumps(request.messages),
                json.dumps(request.params()),
                request.seed,
                reply.text,
                None if reply.parsed is None else json.dumps(reply.parsed),
                int(bool(reply.valid)),
                reply.error,
                reply.prompt_tokens,
                reply.completion_tokens,
                reply.latency_s,
                None if reply.logprobs is None else json.dumps(reply.logprobs),
            )
        )
