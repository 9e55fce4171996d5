"""Typed rows of the run store, one named tuple per table (fields = the table's columns).

Named tuples rather than dataclasses: a large run writes millions of rows, and a named
tuple goes to SQLite's ``executemany`` as it is, at the cost of a plain tuple.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Source(StrEnum):
    """Who produced a decision."""

    SCRIPTED = "scripted"  # a scripted policy
    LLM = "llm"  # a valid LLM reply
    FALLBACK = "fallback"  # an LLM reply invalid after one repair: the game's fallback
    FORCED = "forced"  # one legal action: the LLM was not asked


class LifeKind(StrEnum):
    """Decision and event kinds the runtime itself writes (generations, strategies)."""

    STRATEGY = "strategy"
    FITNESS = "fitness"
    SURVIVOR = "survivor"


class AgentRow(NamedTuple):
    """One agent that lived in the run."""

    agent_id: int
    name: str
    grp: str
    kind: str
    strategy: str | None
    params: str | None
    backend: str | None
    model: str | None
    persona: str | None
    generation: int
    parent_id: int | None
    born_round: int


class StepRow(NamedTuple):
    """One committed step of the event loop (table `rounds`)."""

    round: int
    generation: int
    game: int
    round_in_game: int
    n_decisions: int
    wall_s: float


class DecisionRow(NamedTuple):
    """One decision an agent made; ``data`` is JSON text (or None)."""

    round: int
    generation: int
    agent_id: int
    partner_id: int | None
    kind: str
    action: str | None
    value: float | None
    valid: int
    source: str
    llm_call_id: int | None
    data: str | None


class EventRow(NamedTuple):
    """One thing the game did; ``data`` is JSON text (or None)."""

    round: int
    generation: int
    kind: str
    agent_id: int | None
    partner_id: int | None
    action: str | None
    value: float | None
    data: str | None


class CallRow(NamedTuple):
    """One call to an LLM backend (replayable)."""

    id: int
    round: int
    agent_id: int | None
    purpose: str | None
    backend: str
    model: str
    messages: str
    params: str
    seed: int | None
    reply: str | None
    parsed: str | None
    valid: int
    error: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float | None
    logprobs: str | None
    endpoint: str | None = None  # the server that answered (backends with several)
