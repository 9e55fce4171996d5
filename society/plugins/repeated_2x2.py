"""Plug-in: finitely repeated 2x2 games in a population (protocols §2; Akata et al.).

Every pair the matcher forms plays one stage game per step; with round-robin or network
matching each pair's history is one match, so a scenario is an Axelrod-style tournament
whose matches are played side by side (which lets every LLM decision of a round go to the
backend as one batch). Generations wrap it like Axelrod's ``MoranProcess`` wraps matches:
fitness is each agent's mean payoff per round (or its total), and scripted newcomers copy
(and may mutate) the policies of the selected.

A scenario can sweep a set of stage games (``game_set``: the 144 ordinal games of
Robinson & Goforth, the 136 that Akata et al. (2023, arXiv 2305.16867) report on, a family,
or a list; optionally a seeded ``sample``): every pair of the matching then plays one
match per stage game, stage game after stage game (``games.game_set``), and the step's
``game`` number in the store is the stage game's index in the resolved game's ``games``.
The LLM player's protocol options (``prompt_format``, ``answer``, ``shuffle_scope``) are
those of the authors' published code beside the defaults (see ``agents.llm_player``).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from agents.llm_player import LLMPlayer
from agents.prompts import game_prompts
from agents.strategies import make_strategy
from games.game_set import GameSetTournament
from games.ordinal import ordinal_games, select_games
from games.repeated import MOVES, RepeatedGame, RepeatedGameRules
from games.twobytwo import Game2x2, custom, preset
from society.config import MAX_COUNT, GameConfigBase, LLMGroup
from society.estimate import Size, pair_count
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
    game_set: str | list[str] | None = Field(
        None,
        description=(
            "sweep several stage games, one match per pair and game, game after game: a set "
            "(all_144, paper_136 or a family: win-win, prisoners_dilemma, unfair, cyclic, "
            "biased, second_best, tragic) or a list of sets, ordinal names (rg_...) and "
            "presets; instead of preset/ordinal/payoffs"
        ),
    )
    sample: int | None = Field(
        None,
        ge=1,
        le=MAX_COUNT,
        description="game_set: play this many of its games, drawn from the seed",
    )
    sample_per_family: bool = Field(
        False, description="game_set: draw `sample` games from each family instead"
    )
    rounds: int = Field(
        10, ge=1, le=MAX_COUNT, description="rounds per match (the cap with continuation)"
    )
    noise: float = Field(0.0, ge=0, le=1, description="probability a move is flipped")
    continuation: float | None = Field(
        None, gt=0, le=1, description="probability of another round (geometric length)"
    )
    labels: tuple[str, str] = Field(("J", "F"), description="option names shown to LLMs")
    shuffle_options: bool = Field(False, description="show the options in random order")
    shuffle_scope: Literal["options", "question"] = Field(
        "options",
        description=(
            "what shuffle_options reorders for LLM agents: the rules and the question, or "
            "only the final question (the rules in fixed order, as Akata et al.'s code)"
        ),
    )
    prompt_format: Literal["system_user", "single_message"] = Field(
        "system_user",
        description=(
            "LLM prompt: rules as system message and history + question as user message, "
            "or all in one user message (as Akata et al.'s code)"
        ),
    )
    answer: Literal["json", "label"] = Field(
        "json",
        description=(
            "LLM reply: a JSON object {choice: label}, or the bare option label after "
            "'A: Option' (the paper's one-token answer), constrained by the backend"
        ),
    )
    label_temperature: float | None = Field(
        0.0,
        ge=0,
        le=2,
        description=(
            "answer=label: sampling temperature of LLM agents (0, as the paper; null: "
            "each group's temperature)"
        ),
    )
    fallback: int = Field(
        1, ge=0, le=1,
        description="option recorded for an LLM reply invalid after one repair (1: defect)",
    )  # fmt: skip
    reveal_rounds: bool = Field(True, description="tell LLM agents how long a match lasts")
    memory: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="LLM agents see only the last `memory` rounds (None: all)",
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


SAMPLE_STREAM = 144  # mixed into the seed for the sample of a game set (own stream)


def stage_games(cfg: Repeated2x2Config, seed: int) -> list[Game2x2]:
    """The stage games of a ``game_set`` sweep, in play order (a seeded sample if asked)."""
    if cfg.game_set is None:
        raise ValueError("game.game_set: not set")
    if cfg.ordinal is not None or cfg.payoffs is not None:
        which = "ordinal" if cfg.ordinal is not None else "payoffs"
        raise ValueError(f"game.{which}: set either game.game_set or game.{which}, not both")
    if cfg.params or cfg.preset != "prisoners_dilemma":
        raise ValueError("game.preset: set either game.game_set or game.preset/params, not both")
    rng = np.random.default_rng([seed, SAMPLE_STREAM]) if cfg.sample is not None else None
    try:
        return select_games(cfg.game_set, cfg.sample, rng, per_family=cfg.sample_per_family)
    except ValueError as exc:
        field = "game.sample" if str(exc).startswith("sample") else "game.game_set"
        raise ValueError(f"{field}: {exc}") from None


def build_rules(cfg: Repeated2x2Config, game: Game2x2 | None = None) -> RepeatedGameRules:
    """The repeated-game rules of the scenario (of ``game`` when given: a sweep's stage
    game)."""
    if game is None:
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
    """The scenario's rules, built once per setup (and so checked before any file exists);
    a sweep's first stage game."""
    return _rule_set(setup)[0]


def _rule_set(setup: Setup) -> list[RepeatedGameRules]:
    """The rules of every stage game played (one unless the scenario sweeps a game set)."""
    if "rules" not in setup.cache:
        cfg: Repeated2x2Config = setup.config
        if cfg.game_set is None:
            if cfg.sample is not None or cfg.sample_per_family:
                which = "sample" if cfg.sample is not None else "sample_per_family"
                raise ValueError(
                    f"game.{which}: only read with game.game_set (set it or remove this)"
                )
            setup.cache["rules"] = [build_rules(cfg)]
        else:
            games = stage_games(cfg, setup.scenario.seed)
            setup.cache["rules"] = [build_rules(cfg, g) for g in games]
    return setup.cache["rules"]


def estimate(setup: Setup) -> Size:
    """Sizes from the rules and the matching alone (a tournament step can hold millions
    of turns: the generic probe would build one). A match with continuation c lasts
    (1 - c**rounds) / (1 - c) rounds on average."""
    pairs = pair_count(setup.scenario, setup.n)
    rule_set = _rule_set(setup)
    steps = sum(r.rounds for r in rule_set)
    played = 0.0
    for r in rule_set:
        c = r.continuation
        played += r.rounds if c is None or c >= 1 else (1 - c**r.rounds) / (1 - c)
    return Size(steps=steps, turns_per_step=2 * pairs * played / steps, peak_turns=2 * pairs)


def new_game(setup: Setup, rng: Any) -> RepeatedGame | GameSetTournament:
    """A fresh tournament: every pair of the matcher starts a new match (one per stage
    game of a game set)."""
    assert setup.graph is not None
    matcher = build_matcher(setup.scenario.matching, setup.graph)
    cfg: Repeated2x2Config = setup.config
    if cfg.game_set is not None:
        return GameSetTournament(
            _rule_set(setup), matcher.pairs, static=matcher.static, rng=rng,
            reveal_rounds=cfg.reveal_rounds, fallback=cfg.fallback, fitness=cfg.fitness,
        )  # fmt: skip
    return RepeatedGame(
        _rules(setup), matcher.pairs, static=matcher.static, rng=rng,
        reveal_rounds=cfg.reveal_rounds, fallback=cfg.fallback, fitness=cfg.fitness,
    )  # fmt: skip


def llm_policy(setup: Setup, group: LLMGroup) -> LLMPlayer:
    """The Akata-style LLM player of an LLM group (label answers at `label_temperature`)."""
    cfg: Repeated2x2Config = setup.config
    temperature = group.temperature
    if cfg.answer == "label" and cfg.label_temperature is not None:
        temperature = cfg.label_temperature
    return LLMPlayer(
        setup.prompts, temperature=temperature, max_tokens=group.max_tokens,
        persona=group.persona, memory=cfg.memory, predict_first=cfg.predict_first,
        prompt_format=cfg.prompt_format, answer=cfg.answer, shuffle=cfg.shuffle_scope,
    )  # fmt: skip


def resolved(setup: Setup) -> dict[str, Any]:
    """The stage game as played: payoffs (row player, column player), labels, rules; for
    a game set, every stage game in play order under ``games`` (``payoffs`` is null)."""
    cfg: Repeated2x2Config = setup.config
    if cfg.game_set is not None:
        rule_set = _rule_set(setup)
        first = rule_set[0]
        return {
            "kind": "repeated_2x2",
            "name": "game_set",
            "payoffs": None,
            "game_set": cfg.game_set,
            "sample": cfg.sample,
            "games": [
                {
                    "game": k,
                    "name": r.game.name,
                    "family": r.game.family,
                    "payoffs": [[list(cell) for cell in row] for row in r.game.payoffs],
                }
                for k, r in enumerate(rule_set)
            ],
            "labels": list(first.labels),
            "actions": list(MOVES),
            "rounds": first.rounds,
            "noise": first.noise,
            "continuation": first.continuation,
        }
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
    check=_rule_set,
    prompts=game_prompts("repeated"),
    uses=frozenset({"network", "matching"}),
    report="repeated_2x2",
    estimate=estimate,
)
