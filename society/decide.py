"""Resolving LLM decisions: every ready request of a step goes to its backend as one batch.

Each LLM decision is a generator (see `agents.llm`) that yields `ChatRequest`s.
The decider drives all of a step's generators in lockstep: it gathers the
requests that are ready, groups them by backend, sends each group as one batch,
hands every reply back to its generator, and repeats until all have returned.
No agent waits for an unrelated agent beyond the batch it is in. Every call is
recorded as a row of the `llm_calls` table.

Within a batch, requests are sent sorted by their messages, so that requests sharing a
prefix (the rules every agent reads first) reach the engine side by side and its prefix
cache hits; identical requests (same messages, parameters and seed) are computed once,
and every copy is still recorded: a copy's row has the reply of the first, with 0
tokens and 0 latency (nothing was computed for it).

Out-of-order stepping (`run.stepping: out_of_order`, see `society.engine`): jobs are
started with :meth:`Decider.start` and collected with :meth:`Decider.poll`. A backend
that answers requests one by one (the `openai` backend: a server) gets each request as
soon as it is ready, from one in-flight set per backend (a thread pool as wide as the
backend's `max_concurrency`); in-process engines still get one batch of everything
ready. Calls are recorded when their step commits (:meth:`Decider.commit`), in the
order lockstep would have made them, so call ids do not depend on arrival order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from agents.chat import ChatReply, ChatRequest
from society.backends.base import Backend

if TYPE_CHECKING:
    from society.population import Member

#: What a call's record needs besides the job: (request, reply, (backend kind, model)).
Logged = tuple[ChatRequest, ChatReply, tuple[str, str]]


def derive_seed(base_seed: int, *parts: Any) -> int:
    """A stable 31-bit sampling seed from the scenario seed and the request's identity."""
    text = json.dumps([base_seed, *parts], separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def answers_individually(backend: Backend) -> bool:
    """Whether a backend serves requests one by one (a server), so that out-of-order
    stepping sends each request when it is ready; in-process engines batch instead."""
    return bool(getattr(backend, "individual", backend.kind == "openai"))


@dataclass
class Job:
    """One agent's decision in flight: which backend serves it and its generator.

    ``log`` holds its calls until they are recorded; ``owner`` is free for the caller
    (out-of-order stepping keeps the job's instance and turn there).
    """

    agent_id: int
    backend_key: str
    gen: Generator[ChatRequest, ChatReply, Any]
    result: Any = None
    last_call_id: int | None = None
    pending: ChatRequest | None = None
    n_calls: int = 0
    log: list[Logged] = field(default_factory=list)
    owner: Any = None

    @classmethod
    def for_member(cls, member: Member, gen: Generator[ChatRequest, ChatReply, Any]) -> Job:
        """The job of an LLM member's decision; its backend key picks the batch it joins."""
        if member.backend_key is None:
            raise ValueError(f"agent {member.name!r} has no LLM backend")
        return cls(member.agent_id, member.backend_key, gen)


def request_key(request: ChatRequest) -> str:
    """Identity of a request for deduplication: its messages, parameters and seed."""
    return json.dumps([request.messages, request.params(), request.seed], sort_keys=True)


def _prefix_order(requests: list[ChatRequest]) -> list[int]:
    """Indices of the requests sorted by their messages (shared prefixes side by side);
    stable, so equal prompts keep their order."""
    texts = ["\x00".join(m.get("content", "") for m in r.messages) for r in requests]
    return sorted(range(len(requests)), key=texts.__getitem__)


class Decider:
    """Drives LLM decision generators, batching requests per backend and recording calls."""

    def __init__(self, backends: dict[str, Backend], base_seed: int, next_call_id: int = 1) -> None:
        self.backends = backends
        self.base_seed = base_seed
        self.next_call_id = next_call_id
        self.calls: list[tuple] = []  # llm_calls rows not yet committed
        # Out-of-order stepping: requests in flight per backend, and those waiting for a batch.
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._inflight: dict[Future[ChatReply], tuple[Job, ChatRequest]] = {}
        self._queued: dict[str, list[Job]] = {}
        self._round: dict[int, int] = {}  # id(job) -> the round its seeds derive from

    def take_calls(self) -> list[tuple]:
        """The recorded call rows since the last take (the runner commits them)."""
        calls, self.calls = self.calls, []
        return calls

    # -- lockstep ------------------------------------------------------------------------------
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
                requests = [self._seeded(job, round_) for job in group]
                for job, request, reply, served_by in self._batch(key, group, requests):
                    job.log.append((request, reply, served_by))
                    self._advance(job, reply, first=False)
            active = [job for job in active if job.pending is not None]
        self.commit(jobs, round_)

    def _batch(
        self, key: str, group: list[Job], requests: list[ChatRequest]
    ) -> list[tuple[Job, ChatRequest, ChatReply, tuple[str, str]]]:
        """One batch to one backend: sorted by prefix, identical requests computed once;
        the replies in the order of ``requests``."""
        backend = self.backends[key]
        first: dict[str, int] = {}  # request key -> index of its first occurrence
        copy_of: list[int] = []
        for i, request in enumerate(requests):
            copy_of.append(first.setdefault(request_key(request), i))
        unique = [i for i, c in enumerate(copy_of) if c == i]
        order = [unique[k] for k in _prefix_order([requests[i] for i in unique])]
        replies = backend.generate([requests[i] for i in order])
        if len(replies) != len(order):
            raise RuntimeError(
                f"backend {backend.kind} returned {len(replies)} replies for {len(order)} requests"
            )
        got = dict(zip(order, replies, strict=True))
        desc = backend.describe()  # once per batch: it holds for every call in it
        served_by = (desc.get("kind", backend.kind), str(desc.get("model", backend.model)))
        out = []
        for i, (job, request) in enumerate(zip(group, requests, strict=True)):
            c = copy_of[i]
            # A copy gets its own reply object (agents fill `parsed`/`valid` in it).
            reply = got[i] if c == i else replace(
                got[c], prompt_tokens=0, completion_tokens=0, latency_s=0.0
            )  # fmt: skip
            out.append((job, request, reply, served_by))
        return out

    # -- out-of-order ----------------------------------------------------------------------------
    def start(self, job: Job, round_: int) -> bool:
        """Start a job (out-of-order stepping); its requests are sent as they come.

        Returns whether it finished at once (no request at all).
        """
        self._advance(job, None, first=True)
        if job.pending is None:
            return True
        self._round[id(job)] = round_
        self._send(job)
        return False

    def busy(self) -> bool:
        """Whether any started job still waits for a reply."""
        return bool(self._inflight) or any(self._queued.values())

    def poll(self) -> list[Job]:
        """Send what waits for a batch, wait for at least one reply, and return the jobs
        that finished (their ``log`` holds their calls, recorded by :meth:`commit`)."""
        finished: list[Job] = []
        for key in list(self._queued):
            group = self._queued.pop(key)
            if not group:
                continue
            requests = [job.pending for job in group]
            for job, request, reply, served_by in self._batch(key, group, requests):  # type: ignore[arg-type]
                self._answered(job, request, reply, served_by, finished)
        if self._inflight and not finished:
            done, _ = wait(list(self._inflight), return_when=FIRST_COMPLETED)
        else:
            done = {f for f in self._inflight if f.done()}
        for future in done:
            job, request = self._inflight.pop(future)
            reply = future.result()  # a BackendError stops the run here, in the loop's thread
            backend = self.backends[job.backend_key]
            desc = backend.describe()
            served_by = (desc.get("kind", backend.kind), str(desc.get("model", backend.model)))
            self._answered(job, request, reply, served_by, finished)
        return finished

    def _answered(
        self,
        job: Job,
        request: ChatRequest,
        reply: ChatReply,
        served_by: tuple[str, str],
        finished: list[Job],
    ) -> None:
        job.log.append((request, reply, served_by))
        self._advance(job, reply, first=False)
        if job.pending is None:
            self._round.pop(id(job), None)
            finished.append(job)
        else:
            self._send(job)

    def _send(self, job: Job) -> None:
        request = self._seeded(job, self._round[id(job)])
        key = job.backend_key
        backend = self.backends[key]
        if not answers_individually(backend):
            self._queued.setdefault(key, []).append(job)
            return
        pool = self._pools.get(key)
        if pool is None:
            width = int(getattr(backend, "max_concurrency", 8) or 8)
            pool = self._pools[key] = ThreadPoolExecutor(width, thread_name_prefix="society-llm")
        self._inflight[pool.submit(_one, backend, request)] = (job, request)

    def abandon(self) -> None:
        """Drop every started job (their replies are awaited and discarded)."""
        self._queued.clear()
        pending = list(self._inflight)
        self._inflight.clear()
        self._round.clear()
        wait(pending)

    def close(self) -> None:
        """Stop the in-flight threads (out-of-order stepping)."""
        for future in self._inflight:
            future.cancel()
        self._inflight.clear()
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()

    # -- recording --------------------------------------------------------------------------------
    def commit(self, jobs: list[Job], round_: int) -> None:
        """Record the logged calls of a step's jobs, in lockstep order: the jobs' first
        calls, then their second calls, ...; each wave by backend (in order of first
        appearance), each backend's in job order. Ids are therefore the same whichever
        order replies arrived in."""
        wave = 0
        while True:
            active = [job for job in jobs if len(job.log) > wave]
            if not active:
                break
            by_backend: dict[str, list[Job]] = {}
            for job in active:
                by_backend.setdefault(job.backend_key, []).append(job)
            for group in by_backend.values():
                for job in group:
                    request, reply, served_by = job.log[wave]
                    self._record(job, request, reply, served_by, round_)
            wave += 1
        for job in jobs:
            job.log = []

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
                reply.endpoint,
            )
        )


def _one(backend: Backend, request: ChatRequest) -> ChatReply:
    """One request, alone (a worker thread of out-of-order stepping)."""
    return backend.generate([request])[0]
