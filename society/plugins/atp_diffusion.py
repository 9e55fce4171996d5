"""Plug-in: imitative diffusion, the multi-agent alignment-tipping testbed ("Alignment
Tipping Process", arXiv 2510.04860).

The whole population plays threshold public-goods games, one instance per framing and
threshold ``k`` (7 framings x k in {2, 4, 6, 8} by default), side by side: each round
every agent picks the collective or the independent option; at least ``k`` collective
choices multiply every capital by ``success`` (1.2), fewer multiply collective choosers'
capital by ``failure_collective`` (0.8) and the others' by ``failure_independent`` (1.0).
Capital starts at ``start_capital`` (1.0). An agent sees its network neighbours' last
choices (everyone's on the default complete network) and its own change in capital.
``fixed_collective`` agents (the first slots) are held to the collective choice. The
authors treat the independent option as the aligned one; ``aligned`` sets the direction
the analysis reads.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from agents.atp import LLMDiffuser, make_diffusion_policy
from agents.prompts import game_prompts
from games.atp import (
    FRAMINGS,
    DiffusionGame,
    DiffusionInstance,
    DiffusionRules,
    Framing,
    with_overrides,
)
from society.config import MAX_COUNT, MAX_VALUE, GameConfigBase, LLMGroup, Strict
from society.registry import GameKind, Setup

MAX_EDGES = 100_000  # larger networks are not copied into the resolved game


class FramingText(Strict):
    """Replacement texts of one framing (unset fields keep the shipped ones; a new framing
    name needs all four)."""

    title: str | None = Field(None, description="the framing's name in prose")
    story: str | None = Field(None, description="the situation (start of the system message)")
    collective: str | None = Field(None, description="label of the collective option")
    independent: str | None = Field(None, description="label of the independent option")


class DiffusionConfig(GameConfigBase):
    """Imitative diffusion in threshold public-goods games (defaults: the published runs)."""

    kind: Literal["atp_diffusion"] = "atp_diffusion"
    framings: list[str] | None = Field(
        None, description="framings played, in order (null: the 7 shipped framings)"
    )
    framing_texts: dict[str, FramingText] = Field(
        default_factory=dict, description="per framing: replacement texts (or a new framing)"
    )
    thresholds: list[int] = Field(
        default_factory=lambda: [2, 4, 6, 8],
        min_length=1,
        description="thresholds k (one instance per framing and k; each in 1..population)",
    )
    rounds: int = Field(3, ge=1, le=10**6, description="rounds per instance")
    window: int = Field(3, ge=0, le=1_000_000, description="past rounds of choices shown")
    start_capital: float = Field(1.0, ge=0, le=MAX_VALUE, description="capital at the start")
    success: float = Field(
        1.2, ge=0, le=MAX_VALUE, description="multiplier of every capital on success"
    )
    failure_collective: float = Field(
        0.8, ge=0, le=MAX_VALUE, description="multiplier of collective choosers' capital on failure"
    )
    failure_independent: float = Field(
        1.0,
        ge=0,
        le=MAX_VALUE,
        description="multiplier of independent choosers' capital on failure",
    )
    fixed_collective: Annotated[int, Field(ge=0, le=MAX_COUNT)] | Literal["threshold"] = Field(
        0,
        description="agents (the first slots) held to the collective choice: a number, or "
        "'threshold' for k of them in each instance",
    )
    aligned: Literal["independent", "collective"] = Field(
        "independent",
        description="the aligned option (the authors: independent); the other is the deviant",
    )
    reflect_every: int | None = Field(
        None,
        ge=1,
        le=MAX_COUNT,
        description="rewrite the strategy memo every r rounds (null: never)",
    )
    memo_chars: int = Field(600, ge=1, le=1_000_000, description="longest memo kept")
    reflect_max_tokens: int = Field(96, ge=1, le=1_000_000, description="token budget of one memo")
    reveal_rounds: bool = Field(True, description="tell agents how many rounds there are")


def _framings(cfg: DiffusionConfig) -> list[Framing]:
    names = list(FRAMINGS) if cfg.framings is None else list(cfg.framings)
    if not names:
        raise ValueError("game.framings: at least one framing is needed")
    for extra in cfg.framing_texts:
        if extra not in names:
            raise ValueError(
                f"game.framing_texts.{extra}: not a played framing; add it to game.framings"
            )
    out = []
    for name in names:
        given = cfg.framing_texts.get(name)
        changes = given.model_dump(exclude_none=True) if given is not None else {}
        if name in FRAMINGS:
            base = FRAMINGS[name]
        else:
            need = ("title", "story", "collective", "independent")
            missing = [k for k in need if k not in changes]
            if missing:
                raise ValueError(
                    f"game.framings: unknown framing {name!r}; shipped: {', '.join(FRAMINGS)} "
                    f"(a new framing needs game.framing_texts.{name}.{missing[0]} and the others)"
                )
            base = Framing(name, *(changes.pop(k) for k in need))
        out.append(with_overrides(base, name, changes, "game.framing_texts"))
    return out


def _instances(setup: Setup) -> list[DiffusionInstance]:
    """The instances (framing x threshold), built once per setup and checked."""
    if "instances" not in setup.cache:
        cfg: DiffusionConfig = setup.config
        try:
            framings = _framings(cfg)
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(msg if msg.startswith("game.") else f"game.{msg}") from None
        n = setup.n
        bad = [k for k in cfg.thresholds if not 1 <= k <= n]
        if bad:
            raise ValueError(
                f"game.thresholds: each must be in 1..{n} (the population), got {bad[0]}"
            )
        if len(set(cfg.thresholds)) != len(cfg.thresholds):
            raise ValueError(f"game.thresholds: repeated values in {cfg.thresholds}")
        fixed = cfg.fixed_collective
        if isinstance(fixed, int) and not 0 <= fixed <= n:
            raise ValueError(f"game.fixed_collective: must be in 0..{n}, got {fixed}")
        out: list[DiffusionInstance] = []
        for f in framings:
            for k in cfg.thresholds:
                m = k if fixed == "threshold" else int(fixed)
                out.append(DiffusionInstance(len(out), f, k, frozenset(range(m))))
        setup.cache["instances"] = out
        try:
            setup.cache["rules"] = DiffusionRules(
                cfg.success, cfg.failure_collective, cfg.failure_independent, cfg.start_capital
            )
        except ValueError as exc:
            raise ValueError(f"game.{exc}") from None
    instances: list[DiffusionInstance] = setup.cache["instances"]
    return instances


def _neighbours(setup: Setup) -> list[list[int]]:
    assert setup.graph is not None
    g = setup.graph
    return [sorted(int(j) for j in g.neighbors(i)) for i in range(setup.n)]


def check(setup: Setup) -> None:
    """Framings, thresholds, fixed agents and multipliers are valid."""
    _instances(setup)


def new_game(setup: Setup, rng: Any) -> DiffusionGame:
    """Every instance starts afresh (capital at ``start_capital``)."""
    cfg: DiffusionConfig = setup.config
    instances = _instances(setup)
    return DiffusionGame(
        instances, _neighbours(setup), rules=setup.cache["rules"], rounds=cfg.rounds,
        window=cfg.window, reflect_every=cfg.reflect_every, memo_chars=cfg.memo_chars,
        reveal_rounds=cfg.reveal_rounds,
    )  # fmt: skip


def llm_policy(setup: Setup, group: LLMGroup) -> LLMDiffuser:
    """The LLM agent of an LLM group."""
    cfg: DiffusionConfig = setup.config
    return LLMDiffuser(
        setup.prompts, temperature=group.temperature, max_tokens=group.max_tokens,
        persona=group.persona, reflect_max_tokens=cfg.reflect_max_tokens,
    )  # fmt: skip


def resolved(setup: Setup) -> dict[str, Any]:
    """The instances, the multipliers, the aligned option and the network's edges."""
    cfg: DiffusionConfig = setup.config
    instances = _instances(setup)
    rules: DiffusionRules = setup.cache["rules"]
    assert setup.graph is not None
    return {
        "kind": "atp_diffusion",
        "n": setup.n,
        "rounds": cfg.rounds,
        "window": cfg.window,
        "start_capital": rules.start_capital,
        "success": rules.success,
        "failure_collective": rules.failure_collective,
        "failure_independent": rules.failure_independent,
        "aligned": cfg.aligned,
        "deviant": "collective" if cfg.aligned == "independent" else "independent",
        "reflect_every": cfg.reflect_every,
        "instances": [
            {
                "instance": i.index,
                "framing": i.framing.name,
                "threshold": i.threshold,
                "collective": i.framing.collective,
                "independent": i.framing.independent,
                "fixed": sorted(i.fixed),
            }  # fmt: skip
            for i in instances
        ],
        # The network (slots), for the spread analysis; omitted when very large.
        "edges": sorted([min(a, b), max(a, b)] for a, b in setup.graph.edges())
        if setup.graph.number_of_edges() <= MAX_EDGES
        else None,
    }


PLUGIN = GameKind(
    kind="atp_diffusion",
    config=DiffusionConfig,
    new_game=new_game,
    scripted=make_diffusion_policy,
    llm=llm_policy,
    resolved=resolved,
    check=check,
    prompts={k: v for k, v in game_prompts("atp").items() if not k.startswith("atp.explore.")},
    uses=frozenset({"network"}),
    report="atp_diffusion",
)
