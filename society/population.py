"""The population: agents in group order, with the backend that serves each LLM agent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from society.scenario import BackendConfig, GroupConfig, Scenario


@dataclass(frozen=True)
class Member:
    """One agent slot: its id, name and group; `backend` is set for LLM agents."""

    agent_id: int
    name: str
    group: GroupConfig
    backend: BackendConfig | None

    @property
    def is_llm(self) -> bool:
        """Whether an LLM decides for this agent."""
        return self.group.kind == "llm"

    @property
    def backend_key(self) -> str | None:
        """Key of the shared backend instance serving this agent."""
        return self.backend.key() if self.backend else None


def build_members(scenario: Scenario, first_id: int = 0) -> list[Member]:
    """All agents of the scenario's groups, ids assigned in group order from `first_id`."""
    members = []
    agent_id = first_id
    for group in scenario.population.groups:
        backend = scenario.group_backend(group) if group.kind == "llm" else None
        for k in range(group.count):
            members.append(Member(agent_id, f"{group.name}-{k}", group, backend))
            agent_id += 1
    return members


def backend_configs(members: list[Member]) -> dict[str, BackendConfig]:
    """The distinct backends the population needs, by key."""
    return {m.backend_key: m.backend for m in members if m.backend is not None}


def agent_row(
    member: Member,
    *,
    strategy: str | None,
    params: dict[str, Any] | None = None,
    generation: int = 0,
    parent_id: int | None = None,
    born_round: int = 0,
) -> tuple:
    """A row of the `agents` table for this member."""
    group = member.group
    return (
        member.agent_id,
        member.name,
        group.name,
        group.kind,
        strategy,
        json.dumps(params) if params else None,
        member.backend.kind if member.backend else None,
        member.backend.model if member.backend else None,
        group.persona,
        generation,
        parent_id,
        born_round,
    )
