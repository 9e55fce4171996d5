"""Plug-in: the repeated traveler's dilemma in a population (Basu 1994; Capra, Goeree,
Gomez & Holt 1999).

Every pair the matcher forms plays one stage game per step: both claim a whole number in
``[low, high]``, both get the lower claim, the lower claimant ``reward`` more and the
higher ``reward`` less. With round-robin or network matching each pair's history is one
match of ``rounds`` rounds (a tournament played side by side, so every LLM claim of a
round goes to the backend as one batch). Generations wrap it: fitness is each agent's
mean payoff per round, and scripted newcomers copy (and may mutate) the selected policies.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agents.prompts import game_prompts
from agents.travelers import LLMTraveler, make_travelers_policy
from games.travelers import TravelersGame, TravelersRules
from society.config import MAX_COUNT, MAX_VALUE, GameConfigBase, LLMGroup
from society.matching import build_matcher
from society.registry import GameKind, Setup


class TravelersConfig(GameConfigBase):
    """The repeated traveler's dilemma (defaults: Capra et al. 1999, claims 80..200, R=5)."""

    kind: Literal["travelers_dilemma"] = "travelers_dilemma"
    low: int = Field(80, ge=-MAX_COUNT, le=MAX_COUNT, description="lowest claim allowed")
    high: int = Field(
        200, ge=-MAX_COUNT, le=MAX_COUNT, description="highest claim allowed (must exceed low)"
    )
    reward: float = Field(
        5,
        gt=0,
        le=MAX_VALUE,
        description="R: the lower claimant gets R more, the higher claimant R less",
    )
    rounds: int = Field(10, ge=1, le=MAX_COUNT, description="rounds per match")
    fallback: int | None = Field(
        None,
        ge=-MAX_COUNT,
        le=MAX_COUNT,
        description="claim recorded for an LLM reply invalid after one repair (null: high)",
    )
    reveal_rounds: bool = Field(True, description="tell LLM agents how long a match lasts")


def _rules(setup: Setup) -> TravelersRules:
    """The scenario's rules, built once per setup (and so checked before any file exists)."""
    if "rules" not in setup.cache:
        cfg: TravelersConfig = setup.config
        if cfg.low >= cfg.high:
            raise ValueError(
                f"game.low: must be less than game.high, got game.low={cfg.low} "
                f"and game.high={cfg.high}"
            )
        try:
            rules = TravelersRules(low=cfg.low, high=cfg.high, reward=cfg.reward)
        except ValueError as exc:
            raise ValueError(f"game.{exc}") from None
        if cfg.fallback is not None and not rules.low <= cfg.fallback <= rules.high:
            raise ValueError(
                f"game.fallback: must be a claim in [{rules.low}, {rules.high}], got {cfg.fallback}"
            )
        setup.cache["rules"] = rules
    return setup.cache["rules"]


def check(setup: Setup) -> None:
    """The rules are valid (low < high, reward > 0, fallback in range)."""
    _rules(setup)


def new_game(setup: Setup, rng: Any) -> TravelersGame:
    """A fresh tournament: every pair of the matcher starts a new match."""
    assert setup.graph is not None
    matcher = build_matcher(setup.scenario.matching, setup.graph)
    cfg: TravelersConfig = setup.config
    return TravelersGame(
        _rules(setup), matcher.pairs, static=matcher.static, rng=rng, rounds=cfg.rounds,
        reveal_rounds=cfg.reveal_rounds, fallback=cfg.fallback,
    )  # fmt: skip


def llm_policy(setup: Setup, group: LLMGroup) -> LLMTraveler:
    """The LLM traveler of an LLM group."""
    return LLMTraveler(
        setup.prompts, temperature=group.temperature, max_tokens=group.max_tokens,
        persona=group.persona,
    )  # fmt: skip


def resolved(setup: Setup) -> dict[str, Any]:
    """The rules as played."""
    rules = _rules(setup)
    return {
        "kind": "travelers_dilemma",
        "low": rules.low,
        "high": rules.high,
        "reward": rules.reward,
        "rounds": setup.config.rounds,
    }


PLUGIN = GameKind(
    kind="travelers_dilemma",
    config=TravelersConfig,
    new_game=new_game,
    scripted=make_travelers_policy,
    llm=llm_policy,
    resolved=resolved,
    check=check,
    prompts=game_prompts("travelers"),
    uses=frozenset({"network", "matching"}),
    report="travelers_dilemma",
)
