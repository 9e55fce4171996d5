"""Plug-in: the multi-turn drift dialogue (after Dongre et al. 2025, "Drift No More?
Context Equilibria in Multi-Turn LLM Interactions", arXiv 2510.07777).

Three groups play it: the test agents (one per dialogue: ``game.test_group``), the user
simulators and the goal-conditioned references (``game.user_group``,
``game.reference_group``: one agent per dialogue, or one agent serving every
dialogue). Each turn the user simulator writes, then the test agent replies while the
reference answers the same history with the goal restated; the game records the
turn's divergence D_t (top-k log-probability KL, or embedding distance when the
backend returns no log-probabilities). ``games.dialogue`` holds the rules and the KL's
definition; ``analysis.dialogue`` fits D* per dialogue and pooled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.dialogue import LLMDialogue, dialogue_prompts, make_dialogue_policy
from games.dialogue import DialogueGame, Goal
from society.config import GameConfigBase, LLMGroup
from society.registry import GameKind, Setup


class GoalConfig(BaseModel):
    """One goal: the test agent's task and persona, who the user is, the opening."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=2000, description="what the test agent is to do")
    persona: str = Field("", max_length=1000, description="who the test agent is")
    user: str = Field("", max_length=1000, description="who the simulated user is")
    opening: str = Field(
        "", max_length=2000, description="the user's first message (empty: the simulator writes it)"
    )


DEFAULT_GOALS = [
    GoalConfig(
        task="Help the user plan a week of cheap vegetarian dinners.",
        persona="a friendly cook who answers briefly",
        user="You want cheap vegetarian dinner ideas but you often change the subject.",
        opening="Hi! I need ideas for cheap vegetarian dinners this week.",
    ),
    GoalConfig(
        task="Teach the user the basics of saving money each month.",
        persona="a patient money coach",
        user="You want to save money but you like to talk about holidays and gadgets.",
        opening="Hello, I never manage to save any money. Can you help?",
    ),
    GoalConfig(
        task="Help the user prepare for a job interview as a nurse.",
        persona="a calm career adviser",
        user="You have a nursing interview soon and you are nervous and easily distracted.",
        opening="I have an interview for a nursing job next week and I'm nervous.",
    ),
]


class DialogueConfig(GameConfigBase):
    """A multi-turn drift dialogue: goal-holding test agents talk with user simulators
    while a goal-conditioned reference scores every turn."""

    kind: Literal["drift_dialogue"] = "drift_dialogue"
    turns: int = Field(20, ge=1, le=1000, description="turns per dialogue (T)")
    test_group: str = Field(
        "test", min_length=1, description="group of the test agents (one per dialogue)"
    )
    user_group: str = Field(
        "user", min_length=1, description="group of the user simulators (1 or one per dialogue)"
    )
    reference_group: str = Field(
        "reference", min_length=1, description="group of the references (1 or one per dialogue)"
    )
    goals: list[GoalConfig] = Field(
        default_factory=lambda: list(DEFAULT_GOALS), min_length=1,
        description="goals given to the dialogues in turn (dialogue i gets goal i mod len)",
    )  # fmt: skip
    reminders: list[int] = Field(
        default_factory=list,
        description="turns (0-based) whose user message comes with a goal reminder",
    )
    reminder_every: int | None = Field(
        None, ge=1, le=1000, description="also remind every k turns (turns k, 2k, ...)"
    )
    reminder_share: float = Field(
        1.0,
        ge=0,
        le=1,
        description="share of the dialogues that get the reminders (the first ones)",
    )
    measure: Literal["auto", "kl", "embedding"] = Field(
        "auto",
        description="auto: top-k KL when log-probabilities come back, else embedding distance",
    )
    top_k: int = Field(5, ge=1, le=20, description="log-probabilities asked per token")
    kl_positions: int = Field(
        8, ge=1, le=256, description="most token positions a turn's KL averages"
    )
    kl_support: Literal["union", "shared"] = Field(
        "union", description="support of the top-k KL (union with an epsilon floor, or shared)"
    )
    kl_floor: float = Field(
        1e-6, gt=0, le=0.01, description="probability given to a token missing from one top-k"
    )
    message_chars: int = Field(600, ge=1, le=20000, description="longest message kept")
    embedder: Literal["auto", "minilm", "lexical"] = Field(
        "auto", description="embedder of the fallback distance (auto: MiniLM when installed)"
    )

    @model_validator(mode="after")
    def _reminders_in_range(self) -> DialogueConfig:
        bad = [r for r in self.reminders if not 0 <= r < self.turns]
        if bad:
            raise ValueError(f"reminders: turns must lie in 0..{self.turns - 1}, got {bad}")
        return self


def _layout(setup: Setup) -> dict[str, list[int]]:
    """Each dialogue's slots by role, from the groups in population order."""
    if "layout" in setup.cache:
        return setup.cache["layout"]
    cfg: DialogueConfig = setup.config
    slots: dict[str, list[int]] = {}
    start = 0
    for g in setup.scenario.population.groups:
        slots[g.name] = list(range(start, start + g.count))
        start += g.count
    roles = {"test": cfg.test_group, "user": cfg.user_group, "reference": cfg.reference_group}
    for role, name in roles.items():
        if name not in slots:
            raise ValueError(
                f"game.{role}_group: no population group named {name!r}; groups: {sorted(slots)}"
            )
    if len(set(roles.values())) < 3:
        raise ValueError(
            "game.test_group, user_group, reference_group: three different groups needed"
        )
    n = len(slots[cfg.test_group])
    out = {"test": slots[cfg.test_group]}
    for role in ("user", "reference"):
        have = slots[roles[role]]
        if len(have) not in (1, n):
            raise ValueError(
                f"population.groups.{roles[role]}.count: expected 1 or {n} (the dialogues), got {len(have)}"
            )
        out[role] = have * n if len(have) == 1 else have
    if len(slots) != 3:
        raise ValueError(
            f"population.groups: expected exactly the three groups {sorted(roles.values())}, "
            f"got {sorted(slots)}"
        )
    setup.cache["layout"] = out
    return out


def _reminder_turns(cfg: DialogueConfig) -> list[int]:
    turns = set(cfg.reminders)
    if cfg.reminder_every:
        turns |= set(range(cfg.reminder_every, cfg.turns, cfg.reminder_every))
    return sorted(turns)


def check(setup: Setup) -> None:
    """The groups named by the game exist and have fitting sizes."""
    _layout(setup)


class _LazyEmbedder:
    """The fallback embedder, loaded on first use (a KL-only run never loads a model)."""

    def __init__(self, which: str) -> None:
        self.which = which
        self._emb: Any = None

    def _get(self) -> Any:
        if self._emb is None:
            from analysis.drift import LexicalEmbedder, MiniLMEmbedder, default_embedder

            if self.which == "lexical":
                self._emb = LexicalEmbedder()
            elif self.which == "minilm":
                self._emb = MiniLMEmbedder()
            else:
                self._emb = default_embedder()
        return self._emb

    @property
    def name(self) -> str:
        return str(self._get().name)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._get().embed(list(texts)))


def _embedder(setup: Setup) -> _LazyEmbedder:
    if "embedder" not in setup.cache:
        setup.cache["embedder"] = _LazyEmbedder(setup.config.embedder)
    return setup.cache["embedder"]


def new_game(setup: Setup, rng: Any) -> DialogueGame:
    """Every dialogue at turn 0 (goals dealt in order)."""
    cfg: DialogueConfig = setup.config
    lay = _layout(setup)
    n = len(lay["test"])
    goals = [Goal(**cfg.goals[i % len(cfg.goals)].model_dump()) for i in range(n)]
    emb = _embedder(setup)
    return DialogueGame(
        goals, test=lay["test"], user=lay["user"], reference=lay["reference"],
        turns=cfg.turns, reminders=_reminder_turns(cfg),
        reminded=range(round(cfg.reminder_share * n)), measure=cfg.measure,
        positions=cfg.kl_positions, support=cfg.kl_support, floor=cfg.kl_floor,
        max_chars=cfg.message_chars, embed=emb, embedder=cfg.embedder,
    )  # fmt: skip


def llm_policy(setup: Setup, group: LLMGroup) -> LLMDialogue:
    """The LLM policy of a group (its role comes with each turn's observation)."""
    cfg: DialogueConfig = setup.config
    return LLMDialogue(
        setup.prompts, temperature=group.temperature, max_tokens=group.max_tokens,
        top_k=None if cfg.measure == "embedding" else cfg.top_k,
    )  # fmt: skip


def resolved(setup: Setup) -> dict[str, Any]:
    """The dialogue as played: roles, turns, reminders, the measure and its settings."""
    cfg: DialogueConfig = setup.config
    lay = _layout(setup)
    n = len(lay["test"])
    return {
        "kind": "drift_dialogue",
        "dialogues": n,
        "turns": cfg.turns,
        "test_group": cfg.test_group,
        "user_group": cfg.user_group,
        "reference_group": cfg.reference_group,
        "reminders": _reminder_turns(cfg),
        "reminded_dialogues": round(cfg.reminder_share * n),
        "measure": cfg.measure,
        "top_k": cfg.top_k,
        "kl_positions": cfg.kl_positions,
        "kl_support": cfg.kl_support,
        "kl_floor": cfg.kl_floor,
        "embedder": cfg.embedder,
        "goals": [g.model_dump() for g in cfg.goals],
    }


PLUGIN = GameKind(
    kind="drift_dialogue",
    config=DialogueConfig,
    new_game=new_game,
    scripted=make_dialogue_policy,
    llm=llm_policy,
    resolved=resolved,
    check=check,
    prompts=dialogue_prompts(),
    ignores=frozenset({"persona"}),
    evolves=False,
    report="drift_dialogue",
)
