"""Plug-in: the donor game with cultural evolution (protocols §1; Vallinder & Hughes,
arXiv 2412.10270).

A generation plays ``games_per_generation`` donor games of ``rounds`` rounds among the
same agents (resources and traces reset between games). Every generation starts with a
strategy step: new LLM agents write their strategy (from the rules, and after the first
generation from the survivors' strategies and scores: the advice inheritance), scripted
agents state theirs. Fitness is the mean final resources over the games.

Where the paper's text and the authors' published notebook differ (protocols §1), a field
chooses, the text's choice being the default:

=================  =======================================  ================================
field              the paper's text (default)               the authors' code
=================  =======================================  ================================
``schedule``       ``text``: a fresh random pairing each    ``code``: halves; every opposite-
                   round, roles alternating, no ordered     half pair meets twice a game,
                   pair twice (sanity figure 30,720)        once each way, n/2 rounds apart;
                                                            game 2 reversed (15,360)
``fitness``        ``mean`` of the games' final resources   ``twice_last_game`` (2 x game 2's
                                                            final resources); ``last_game``
                                                            is game 2 alone
``advice_scores``  ``true``: survivors' strategies with     ``false``: the strategies alone
                   their scores
``strategy_from``  ``last``: the last "My strategy will     ``first``: everything after the
                   be" sentence                             first "My strategy will be"
``ask_when_empty`` ``false``: a donor holding nothing       ``true``: it is asked anyway
                   gives 0 unasked (recorded 'forced')
``reply_format``   ``json``: a JSON object, schema-         ``text``: free text, a
                   constrained (the project's choice;       "Justification:" then an
                   the text names no format)                "Answer:" line
=================  =======================================  ================================

``scenarios/donor_game_code.yaml`` plays every one of the code's choices.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agents.donors import make_donor_strategy
from agents.llm_donor import LLMDonor
from agents.prompts import game_prompts
from games.donor import DonorPlay, DonorRules, max_rounds
from society.config import MAX_COUNT, MAX_VALUE, GameConfigBase, LLMGroup
from society.registry import GameKind, Setup


class DonorConfig(GameConfigBase):
    """The iterated donor game of protocols §1 (one generation plays `games_per_generation`)."""

    kind: Literal["donor"] = "donor"
    endowment: float = Field(
        10, gt=0, le=MAX_VALUE, description="units each agent starts a game with"
    )
    multiplier: float = Field(
        2.0, gt=0, le=MAX_VALUE, description="the recipient gets multiplier x the gift"
    )
    rounds: int = Field(12, ge=1, le=MAX_COUNT, description="rounds per game")
    trace_depth: int = Field(
        3, ge=0, le=1_000_000, description="entries of the recipient's trace shown"
    )
    games_per_generation: int = Field(2, ge=1, le=MAX_COUNT, description="games per generation")
    punishment: bool = Field(False, description="donors may spend units punishing instead")
    punishment_cost: float = Field(
        1.0, gt=0, le=MAX_VALUE, description="cost side of the cost:fine ratio"
    )
    punishment_fine: float = Field(
        2.0, gt=0, le=MAX_VALUE, description="fine side of the cost:fine ratio"
    )
    no_repeat: Literal["ordered", "unordered"] = Field(
        "ordered", description="which pairs may not repeat within a game"
    )
    reveal_rounds: bool = Field(
        False, description="tell agents the number of rounds (the paper does not)"
    )
    ask_when_empty: bool = Field(
        False,
        description="ask LLM donors who hold nothing (else recorded as 'forced', giving 0); "
        "the authors' code asks them",
    )
    schedule: Literal["text", "code"] = Field(
        "text",
        description="pairing schedule: 'text' (the paper's text: a fresh random pairing "
        "each round, roles alternating, no ordered pair twice) or 'code' (the authors' "
        "notebook: two halves, every opposite-half pair meets twice per game, once each "
        "way, n/2 rounds apart; the second game replays the first reversed)",
    )
    fitness: Literal["mean", "last_game", "twice_last_game"] = Field(
        "mean",
        description="an agent's fitness: 'mean' of its final resources over the games (the "
        "paper's text), 'last_game' (the last game's final resources only) or "
        "'twice_last_game' (the authors' code: 2 x the final resources of game 2)",
    )
    advice_scores: bool = Field(
        True,
        description="newcomers' advice lists the survivors' strategies with their scores "
        "(the paper's text); false: without scores (the authors' code)",
    )
    strategy_from: Literal["last", "first"] = Field(
        "last",
        description="the strategy taken from a reply: 'last' (the last sentence starting "
        "with the phrase 'My strategy will be') or 'first' (everything after the first "
        "'My strategy will be', the authors' code)",
    )
    reply_format: Literal["json", "text"] = Field(
        "json",
        description="a donation reply: 'json' (a schema-constrained JSON object with "
        "reasoning and amount) or 'text' (free text: a 'Justification:' line, then "
        "'Answer: <units>' or, with punishment, 'Answer: Donate, x' / 'Punish, x'; the "
        "authors' code)",
    )
    strategy_max_tokens: int = Field(
        256, ge=16, le=1_000_000, description="token budget of a strategy"
    )
    donation_max_tokens: int = Field(
        160, ge=16, le=1_000_000, description="token budget of a donation"
    )
    reasoning_chars: int = Field(
        300, ge=0, le=1_000_000, description="reasoning length asked before the amount"
    )


def _rules(setup: Setup) -> DonorRules:
    if "rules" not in setup.cache:
        cfg: DonorConfig = setup.config
        try:
            setup.cache["rules"] = DonorRules(
                endowment=float(cfg.endowment),
                multiplier=float(cfg.multiplier),
                rounds=cfg.rounds,
                trace_depth=cfg.trace_depth,
                punishment=cfg.punishment,
                punishment_cost=float(cfg.punishment_cost),
                punishment_fine=float(cfg.punishment_fine),
                no_repeat=cfg.no_repeat,
                schedule=cfg.schedule,
            )
        except ValueError as exc:
            raise ValueError(f"game: {exc}") from None
    return setup.cache["rules"]


def check(setup: Setup) -> None:
    """An even population of at least 2, and rounds the pairing rule allows."""
    n, cfg = setup.n, setup.config
    if n < 2 or n % 2:
        raise ValueError(f"population: the donor game needs an even number of agents >= 2, got {n}")
    if cfg.schedule == "code" and cfg.no_repeat == "unordered":
        _rules(setup)  # raises: the code's schedule repeats every unordered pair
    limit = max_rounds(n, cfg.no_repeat)
    if cfg.rounds > limit:
        raise ValueError(
            f"game.rounds: {cfg.rounds} rounds with {n} agents and no_repeat="
            f"{cfg.no_repeat!r} is impossible (at most {limit}; see games.donor.DonorRules)"
        )
    _rules(setup)


def new_game(setup: Setup, rng: Any) -> DonorPlay:
    """The donor games of one generation."""
    cfg: DonorConfig = setup.config
    return DonorPlay(
        setup.n, _rules(setup), cfg.games_per_generation,
        ask_when_empty=cfg.ask_when_empty, fitness=cfg.fitness,
    )  # fmt: skip


def llm_policy(setup: Setup, group: LLMGroup) -> LLMDonor:
    """The LLM donor of an LLM group (strategy writing and donations)."""
    cfg: DonorConfig = setup.config
    return LLMDonor(
        setup.prompts, _rules(setup), temperature=group.temperature,
        strategy_max_tokens=cfg.strategy_max_tokens, donation_max_tokens=cfg.donation_max_tokens,
        reasoning_chars=cfg.reasoning_chars, survivors=setup.scenario.evolution.survivors,
        reveal_rounds=cfg.reveal_rounds, persona=group.persona,
        reply_format=cfg.reply_format, advice_scores=cfg.advice_scores,
        strategy_from=cfg.strategy_from,
    )  # fmt: skip


def resolved(setup: Setup) -> dict[str, Any]:
    """The donor game's rules as played."""
    r = _rules(setup)
    return {
        "kind": "donor",
        "endowment": r.endowment,
        "multiplier": r.multiplier,
        "rounds": r.rounds,
        "trace_depth": r.trace_depth,
        "games_per_generation": setup.config.games_per_generation,
        "punishment": r.punishment,
        "punishment_cost": r.punishment_cost,
        "punishment_fine": r.punishment_fine,
        "schedule": r.schedule,
        "no_repeat": r.no_repeat,
        "fitness": setup.config.fitness,
        "advice_scores": setup.config.advice_scores,
        "strategy_from": setup.config.strategy_from,
        "ask_when_empty": setup.config.ask_when_empty,
        "reply_format": setup.config.reply_format,
    }


PLUGIN = GameKind(
    kind="donor",
    config=DonorConfig,
    new_game=new_game,
    scripted=make_donor_strategy,
    llm=llm_policy,
    resolved=resolved,
    check=check,
    prompts=game_prompts("donor"),
    ignores=frozenset({"max_tokens"}),
    strategy_step=True,
    report="donor",
)
