"""Plug-in: a commons dilemma (after GovSim: Piatti et al., "Cooperate or Collapse",
NeurIPS 2024).

The whole population shares one resource (a fishery, a pasture or a river's capacity to
absorb pollution): each month is a harvest step (every agent asks for an amount,
privately), ``discussion_rounds`` discussion steps (every agent writes a message that the
others read in the next phase) and a reflection step (every agent rewrites its memory).
The stock regrows by ``growth`` up to ``capacity``; below ``collapse_threshold`` after a
harvest it is gone for good and the run ends. Generations may wrap it (scripted groups
only): fitness is each agent's total gain.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agents.commons import LLMCommoner, make_commons_policy
from agents.prompts import game_prompts
from games.commons import CommonsGame, CommonsRules
from society.config import MAX_COUNT, MAX_VALUE, GameConfigBase, LLMGroup
from society.registry import GameKind, Setup


class CommonsConfig(GameConfigBase):
    """A commons dilemma (defaults: GovSim's fishery, a lake of 100 tons that doubles,
    gone below 5 tons, 12 months)."""

    kind: Literal["commons"] = "commons"
    framing: Literal["fishery", "pasture", "pollution"] = Field(
        "fishery", description="the story told to LLM agents (the rules are the same)"
    )
    capacity: float = Field(100, gt=0, le=MAX_VALUE, description="the most the resource can hold")
    initial_stock: float | None = Field(
        None,
        ge=-MAX_VALUE,
        le=MAX_VALUE,
        description="stock of the first month (null: the capacity)",
    )
    growth: float = Field(
        2.0,
        ge=1,
        le=MAX_VALUE,
        description="what is left after a harvest is multiplied by this (capped)",
    )
    collapse_threshold: float = Field(
        5, ge=0, le=MAX_VALUE, description="less than this left after a harvest: collapse, for good"
    )
    months: int = Field(12, ge=1, le=MAX_COUNT, description="months of the season")
    integer: bool = Field(True, description="harvests are whole numbers")
    max_harvest: float | None = Field(
        None,
        gt=0,
        le=MAX_VALUE,
        description="the most one agent may ask in a month (null: the whole stock)",
    )
    discussion_rounds: int = Field(
        1, ge=0, le=MAX_COUNT, description="discussion steps per month (0: no discussion)"
    )
    reflection: bool = Field(True, description="a reflection step ends every month")
    disclose_harvests: bool = Field(
        True, description="the discussion shows every agent's take (else only one's own)"
    )
    universalization: bool = Field(
        False, description="tell LLM agents the sustainable share at each harvest"
    )
    fallback_harvest: float = Field(
        0, ge=0, le=MAX_VALUE, description="amount recorded for an LLM ask invalid after one repair"
    )
    message_chars: int = Field(300, ge=1, le=1_000_000, description="longest message kept")
    memory_chars: int = Field(500, ge=1, le=1_000_000, description="longest memory text kept")
    text_max_tokens: int = Field(
        80, ge=1, le=1_000_000, description="token budget of a message or memory"
    )
    initial_memory: str = Field("", description="every agent's memory text at the start")


def _rules(setup: Setup) -> CommonsRules:
    """The scenario's rules, built once per setup (and so checked before any file exists)."""
    if "rules" not in setup.cache:
        cfg: CommonsConfig = setup.config
        names = {"threshold": "collapse_threshold", "initial": "initial_stock"}
        try:
            rules = CommonsRules(
                capacity=cfg.capacity, growth=cfg.growth, threshold=cfg.collapse_threshold,
                initial=cfg.initial_stock, integer=cfg.integer, max_harvest=cfg.max_harvest,
            )  # fmt: skip
        except ValueError as exc:
            field, _, rest = str(exc).partition(":")
            raise ValueError(f"game.{names.get(field, field)}:{rest}") from None
        setup.cache["rules"] = rules
    return setup.cache["rules"]


def check(setup: Setup) -> None:
    """The rules are valid (threshold below capacity, initial stock within range)."""
    _rules(setup)


def new_game(setup: Setup, rng: Any) -> CommonsGame:
    """A fresh commons at its starting stock."""
    cfg: CommonsConfig = setup.config
    return CommonsGame(
        _rules(setup), setup.n, months=cfg.months, discussion_rounds=cfg.discussion_rounds,
        reflection=cfg.reflection, disclose_harvests=cfg.disclose_harvests,
        message_chars=cfg.message_chars, memory_chars=cfg.memory_chars,
        fallback=cfg.fallback_harvest, memory=cfg.initial_memory,
    )  # fmt: skip


def llm_policy(setup: Setup, group: LLMGroup) -> LLMCommoner:
    """The LLM commoner of an LLM group."""
    cfg: CommonsConfig = setup.config
    return LLMCommoner(
        setup.prompts, framing=cfg.framing, temperature=group.temperature,
        max_tokens=group.max_tokens, text_max_tokens=cfg.text_max_tokens,
        universalization=cfg.universalization, persona=group.persona,
    )  # fmt: skip


def resolved(setup: Setup) -> dict[str, Any]:
    """The rules as played, with the reference figures the analysis reads
    (``sustainable_total`` at the starting stock and ``sustainable_max`` over the months)."""
    rules, cfg = _rules(setup), setup.config
    return {
        "kind": "commons",
        "framing": cfg.framing,
        "agents": setup.n,
        "capacity": rules.capacity,
        "initial_stock": rules.start,
        "growth": rules.growth,
        "collapse_threshold": rules.threshold,
        "months": cfg.months,
        "integer": rules.integer,
        "max_harvest": rules.max_harvest,
        "discussion_rounds": cfg.discussion_rounds,
        "reflection": cfg.reflection,
        "disclose_harvests": cfg.disclose_harvests,
        "universalization": cfg.universalization,
        "sustainable_total": rules.sustainable_total(rules.start),
        "sustainable_share": rules.sustainable_share(rules.start, setup.n),
        "sustainable_max": rules.sustainable_max(cfg.months),
    }


PLUGIN = GameKind(
    kind="commons",
    config=CommonsConfig,
    new_game=new_game,
    scripted=make_commons_policy,
    llm=llm_policy,
    resolved=resolved,
    check=check,
    prompts=game_prompts("commons"),
    report="commons",
)
