"""Plug-in: finitely repeated 2x2 games in a population (protocols §2; Akata et al.).

Every pair the matcher forms plays one stage game per step; with round-robin or network
matching each pair's history is one match, so a scenario is an Axelrod-style tournament
whose matches are played side by side (which lets every LLM decision of a round go to the
backend as one batch). Generations wrap it like Axelrod's ``MoranProcess`` wraps matches:
fitness is each agent's mean payoff per round (or its total), and scripted newcomers copy
(and may mutate) the policies of the selected.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agents.llm_player import LLMPlayer
from agents.prompts import game_prompts
from agents.strategies import make_strategy
from games.ordinal import ordinal_games
from games.repeated import MOVES, RepeatedGame, RepeatedGameRules
from games.twobytwo import Game2x2, custom, preset
from society.config import GameConfigBase, LLMGroup
from society.matching import build_matcher
from society.registry import GameKind, Setup


class Repeated2x2Config(GameConfigBase):
    """A finitely repeated 2x2 normal-form game (protocols §2)."""

    kind: Literal["repeated_2x2"] = "repeated_2x2"
    preset: str = Field("prisoners_dilemma", description="named stage game (games.twobytwo)")
    params: dict[str, float] = Field(
        default_factory=dict, description="preset parameters (e.g. R, T)"
    )
    payoffs: list[list[list[float]]] | None = Field(
        None, description="custom payoffs [[(p1,p2),(p1,p2)],[...]] instead of a preset"
    )
    ordinal: str | None = Field(None, description="one of the 144 ordinal games, by name")
    rounds: int = Field(10, ge=1, description="rounds per match (the cap with continuation)")
    noise: float = Field(0.0, ge=0, le=1, description="probability a move is flipped")
    continuation: float | None = Field(
        None, gt=0, le=1, description="probability of another round (geometric length)"
    )
    labels: tuple[str, str] = Field(("J", "F"), description="option names shown to LLMs")
    shuffle_options: bool = Field(False, description="show the options in random order")
    fallback: int = Field(
        1, ge=0, le=1,
        description="option recorded for an LLM reply invalid after one repair (1: defect)",
    )  # fmt: skip
    reveal_rounds: bool = Field(True, description="tell LLM agents how long a match lasts")
    memory: int | None = Field(
        None, ge=1, description="LLM agents see only the last `memory` rounds (None: all)"
    )
    predict_first: bool = Field(
        False, description="LLM agents predict the partner's move before choosing"
    )
    fitness: Literal["mean", "total"] = Field(
        "mean", description="evolution: mean payoff per round played, or the total"
    )


def build_game(cfg: Repeated2x2Config) -> Game2x2:
    """The stage game named by the scenario: custom payoffs, an ordinal game, or a preset."""
    if cfg.ordinal is not None and cfg.payoffs is None:
        games = {g.name: g for g in ordinal_games()}
        if cfg.ordinal not in games:
            raise ValueError(
                f"game.ordinal: unknown ordinal game {cfg.ordinal!r} "
                f"(names look like {next(iter(games))}; see games.ordinal_games())"
            )
        return games[cfg.ordinal]
    field = "game.payoffs" if cfg.payoffs is not None else "game.preset"
    try:
        if cfg.payoffs is not None:
            return custom(cfg.payoffs, name="custom")
        return preset(cfg.preset, **cfg.params)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{field}: {str(exc).strip(chr(39))}") from None


def build_rules(cfg: Repeated2x2Config) -> RepeatedGameRules:
    """The repeated-game rules of the scenario."""
    game = build_game(cfg)
    try:
        return RepeatedGameRules(
            game=game,
            rounds=cfg.rounds,
            noise=cfg.noise,
            continuation=cfg.continuation,
            labels=(cfg.labels[0], cfg.labels[1]),
            shuffle_options=cfg.shuffle_options,
        )
    except ValueError as exc:
        raise ValueError(f"game: {exc}") from None


def _rules(setup: Setup) -> RepeatedGameRules:
    """The scenario's rules, built once per setup (and so checked before any file exists)."""
    if "rules" not in setup.cache:
        setup.cache["rules"] = build_rules(setup.config)
    return setup.cache["rules"]


def new_game(setup: Setup, rng: Any) -> RepeatedGame:
    """A fresh tournament: every pair of the matcher starts a new match."""
    assert setup.graph is not None
    matcher = build_matcher(setup.scenario.matching, setup.graph)
    cfg: Repeated2x2Config = setup.config
    return RepeatedGame(
        _rules(setup), matcher.pairs, static=matcher.static, rng=rng,
        reveal_rounds=cfg.reveal_rounds, fallback=cfg.fallback, fitness=cfg.fitness,
    )  # fmt: skip


def llm_policy(setup: Setup, group: LLMGroup) -> LLMPlayer:
    """The Akata-style LLM player of an LLM group."""
    cfg: Repeated2x2Config = setup.config
    return LLMPlayer(
        setup.prompts, temperature=group.temperature, max_tokens=group.max_tokens,
        persona=group.persona, memory=cfg.memory, predict_first=cfg.predict_first,
    )  # fmt: skip


def resolved(setup: Setup) -> dict[str, Any]:
    """The stage game as played: payoffs (row player, column player), labels, rules."""
    rules = _rules(setup)
    return {
        "kind": "repeated_2x2",
        "name": rules.game.name,
        "payoffs": [[list(cell) for cell in row] for row in rules.game.payoffs],
        "labels": list(rules.labels),
        "actions": list(MOVES),
        "rounds": rules.rounds,
        "noise": rules.noise,
        "continuation": rules.continuation,
    }


PLUGIN = GameKind(
    kind="repeated_2x2",
    config=Repeated2x2Config,
    new_game=new_game,
    scripted=make_strategy,
    llm=llm_policy,
    resolved=resolved,
    check=_rules,
    prompts=game_prompts("repeated"),
    uses=frozenset({"network", "matching"}),
    report="repeated_2x2",
)
