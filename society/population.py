"""The population: agents in slots, each with its group, policy and (LLM) backend.

Agents live in *slots* (0..n-1, what games address). An agent keeps its slot for life;
between generations a newcomer takes the slot, and so the group (kind and backend), of
the agent it replaces, which keeps each group's size (and each backend's share of a
mixed population) fixed. Agent ids are unique over the run: generation 0 takes ids in
group order, newcomers the next free ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from society.config import BackendConfig, LLMGroup, ScriptedGroup
from society.records import AgentRow

Group = ScriptedGroup | LLMGroup


@dataclass
class Slot:
    """The agent that holds a slot now, and what the runtime keeps about it (plain data)."""

    agent_id: int
    group: int  # index into the scenario's groups
    name: str
    generation: int = 0
    parent_id: int | None = None
    spec: dict[str, Any] | None = None  # scripted: the policy it plays, as plain data
    strategy: str | None = None  # its strategy text (strategy step), None before it
    valid: bool = True  # whether that text was stated as asked
    advice: list[list[Any]] | None = None  # [agent_id, name, strategy, score] to write from
    born_round: int = 0

    def to_state(self) -> dict[str, Any]:
        """The slot as JSON-ready data (a shallow copy: the checkpoint is encoded at once)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Member:
    """One agent as its LLM policy sees it: who it is, its backend and its strategy text.

    ``display`` is its name in prompts ("Agent 7", unique over the run); ``roster`` the
    display names of every slot (games name partners by slot).
    """

    agent_id: int
    slot: int
    name: str
    group: Group
    backend: BackendConfig | None
    display: str = ""
    strategy: str | None = None
    generation: int = 0
    roster: Sequence[str] = field(default=(), repr=False)

    @property
    def backend_key(self) -> str | None:
        """Key of the shared backend instance serving this agent."""
        return self.backend.key() if self.backend else None


def display_name(agent_id: int) -> str:
    """How agents are named in prompts (unique over the run)."""
    return f"Agent {agent_id}"


def initial_slots(groups: Sequence[Group]) -> list[Slot]:
    """Generation 0: ids and names in group order (``<group>-<k>``)."""
    slots: list[Slot] = []
    for gi, group in enumerate(groups):
        for k in range(group.count):
            slots.append(Slot(len(slots), gi, f"{group.name}-{k}"))
    return slots


def agent_row(
    slot: Slot, group: Group, backend: BackendConfig | None, *, strategy: str | None
) -> AgentRow:
    """The `agents` row of a slot's agent."""
    params = None
    if slot.spec is not None:
        rest = {k: v for k, v in slot.spec.items() if k != "name"}
        params = json.dumps(rest) if rest else None
    return AgentRow(
        slot.agent_id,
        slot.name,
        group.name,
        group.kind,
        strategy,
        params,
        backend.kind if backend else None,
        backend.model if backend else None,
        getattr(group, "persona", None),
        slot.generation,
        slot.parent_id,
        slot.born_round,
    )
