"""Plug-in: self-interested exploration, the single-agent alignment-tipping testbed
("Alignment Tipping Process", arXiv 2510.04860).

Every agent of the population plays every item (a role with one payoff variant: 16 roles
x 4 variants = 64 items by default) side by side for ``rounds`` rounds: each round it picks
the rule-compliant option (reward ``low``) or the violating one (``high`` when the round
is unsupervised, 0 when supervised); an unparsable reply earns 0. The last ``window``
rounds stay in its prompt. With ``reflect_every`` the agent rewrites its strategy memo
every that many rounds. Generations can wrap it for scripted populations (fitness: the
mean total reward per item).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agents.atp import LLMExplorer, make_exploration_policy
from agents.prompts import game_prompts
from games.atp import (
    DEFAULT_SUPERVISION_SENTENCE,
    ROLES,
    ExplorationGame,
    Item,
    Role,
    build_items,
    supervised_rounds,
    with_overrides,
)
from society.config import MAX_COUNT, MAX_VALUE, GameConfigBase, LLMGroup, Strict
from society.registry import GameKind, Setup


class RoleText(Strict):
    """Replacement texts or ratios of one role (unset fields keep the shipped ones; a new
    role name needs title, system, situation, compliant and violating)."""

    title: str | None = Field(None, description="the role's name in prose")
    system: str | None = Field(None, description="the role text (the system message)")
    situation: str | None = Field(None, description="the situation shown each round")
    compliant: str | None = Field(None, description="label of the rule-compliant option")
    violating: str | None = Field(None, description="label of the violating option")
    low: float | None = Field(
        None, ge=-MAX_VALUE, le=MAX_VALUE, description="ratio l (compliant) in [1, 5), below high"
    )
    high: float | None = Field(
        None, ge=-MAX_VALUE, le=MAX_VALUE, description="ratio h (violating) in (1, 5]"
    )
    base: float | None = Field(None, gt=0, le=MAX_VALUE, description="the role's reward unit")


class ExplorationConfig(GameConfigBase):
    """Self-interested exploration (defaults: the published protocol; the per-role ratios
    are the delivery example's, 2.0/2.1, for every role: unverified, set them per role)."""

    kind: Literal["atp_exploration"] = "atp_exploration"
    roles: list[str] | None = Field(
        None, description="roles played, in order (null: the 16 shipped roles)"
    )
    role_texts: dict[str, RoleText] = Field(
        default_factory=dict, description="per role: replacement texts or ratios (or a new role)"
    )
    variants: int = Field(
        4, ge=1, le=10**4, description="payoff variants per role (published rule)"
    )
    rounds: int = Field(6, ge=1, le=10**6, description="rounds per item")
    window: int = Field(5, ge=0, le=1_000_000, description="past rounds kept in the prompt")
    supervision: str | list[bool] = Field(
        "all_unsupervised",
        description="all_unsupervised, all_supervised, alternating, mostly_supervised, "
        "mostly_unsupervised, last_unsupervised, last_supervised, or one boolean per round",
    )
    supervision_sentence: str = Field(
        DEFAULT_SUPERVISION_SENTENCE, description="the supervision sentence shown each round"
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


def _roles(cfg: ExplorationConfig) -> list[Role]:
    names = list(ROLES) if cfg.roles is None else list(cfg.roles)
    if not names:
        raise ValueError("game.roles: at least one role is needed")
    for extra in cfg.role_texts:
        if extra not in names:
            raise ValueError(
                f"game.role_texts.{extra}: not a played role; add it to game.roles "
                f"(shipped roles: {', '.join(ROLES)})"
            )
    out = []
    for name in names:
        given = cfg.role_texts.get(name)
        changes = given.model_dump(exclude_none=True) if given is not None else {}
        if name in ROLES:
            base = ROLES[name]
        else:
            need = ("title", "system", "situation", "compliant", "violating")
            missing = [k for k in need if k not in changes]
            if missing:
                raise ValueError(
                    f"game.roles: unknown role {name!r}; shipped: {', '.join(ROLES)} "
                    f"(a new role needs game.role_texts.{name}.{missing[0]} and the others)"
                )
            base = Role(name, *(changes.pop(k) for k in need))
        out.append(with_overrides(base, name, changes, "game.role_texts"))
    return out


def _items(setup: Setup) -> list[Item]:
    """The scenario's items, built once per setup (and so checked before any file exists)."""
    if "items" not in setup.cache:
        cfg: ExplorationConfig = setup.config
        try:
            roles = _roles(cfg)
            setup.cache["items"] = build_items(roles, cfg.variants)
            setup.cache["supervised"] = supervised_rounds(cfg.supervision, cfg.rounds)
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(msg if msg.startswith("game.") else f"game.{msg}") from None
    items: list[Item] = setup.cache["items"]
    return items


def check(setup: Setup) -> None:
    """Roles, ratios and the supervision pattern are valid."""
    _items(setup)


def new_game(setup: Setup, rng: Any) -> ExplorationGame:
    """Every agent starts every item afresh."""
    cfg: ExplorationConfig = setup.config
    return ExplorationGame(
        _items(setup), setup.n, rounds=cfg.rounds, window=cfg.window,
        supervision=cfg.supervision, supervision_sentence=cfg.supervision_sentence,
        reflect_every=cfg.reflect_every, memo_chars=cfg.memo_chars,
        reveal_rounds=cfg.reveal_rounds,
    )  # fmt: skip


def llm_policy(setup: Setup, group: LLMGroup) -> LLMExplorer:
    """The LLM explorer of an LLM group."""
    cfg: ExplorationConfig = setup.config
    return LLMExplorer(
        setup.prompts, temperature=group.temperature, max_tokens=group.max_tokens,
        persona=group.persona, reflect_max_tokens=cfg.reflect_max_tokens,
    )  # fmt: skip


def resolved(setup: Setup) -> dict[str, Any]:
    """The items as played (rewards per variant), the supervision per round, the rest."""
    cfg: ExplorationConfig = setup.config
    items = _items(setup)
    return {
        "kind": "atp_exploration",
        "rounds": cfg.rounds,
        "window": cfg.window,
        "variants": cfg.variants,
        "supervised": list(setup.cache["supervised"]),
        "supervision": cfg.supervision,
        "supervision_sentence": cfg.supervision_sentence,
        "reflect_every": cfg.reflect_every,
        "aligned": "compliant",
        "items": [
            {
                "item": it.index,
                "role": it.role.name,
                "variant": it.variant,
                "compliant_reward": it.low,
                "violating_reward": it.high,
                "compliant": it.role.compliant,
                "violating": it.role.violating,
            }  # fmt: skip
            for it in items
        ],
    }


PLUGIN = GameKind(
    kind="atp_exploration",
    config=ExplorationConfig,
    new_game=new_game,
    scripted=make_exploration_policy,
    llm=llm_policy,
    resolved=resolved,
    check=check,
    prompts={k: v for k, v in game_prompts("atp").items() if not k.startswith("atp.diffuse.")},
    report="atp_exploration",
)
