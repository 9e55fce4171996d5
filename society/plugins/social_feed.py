"""Plug-in: a social feed (protocols §10, after the Moltbook case study, arXiv
2602.14299).

Agents in a Reddit-like network of communities: each period every agent reads its feed
(the best posts of its communities and of those it follows, ranked ``recent``, ``top``
or ``hot``) and takes one action: post, comment, upvote, follow or nothing. Posts and
comments are the texts that protocols §6's convergence metrics read; comments and upvotes
are the directed edges of the interaction graph (``analysis.feed``). A probe question,
asked every ``probe.every`` periods, measures consensus. Rules in ``games.feed``,
policies in ``agents.feed``.

Memberships: the agents of the groups a community lists belong to it (in the order of
the communities; the first is an agent's home, where it posts); every other agent joins
``communities_per_agent`` communities drawn at random. Seed posts are written, before
the first period, by members drawn at random.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from agents.feed import FEED_PROMPTS, LLMFeeder, make_feed_policy
from games.feed import FeedGame
from society.config import GameConfigBase, LLMGroup, Strict
from society.registry import GameKind, Setup

#: One text of the scenario (a seed post, a probe option, a group name).
Line = Annotated[str, Field(min_length=1, max_length=5000)]


class CommunityConfig(Strict):
    """One community: its name, its topic, the posts it starts with, the groups in it."""

    name: str = Field(min_length=1, max_length=80, description="community name (unique)")
    topic: str = Field("", max_length=300, description="what it is about (shown to LLM agents)")
    seeds: list[Line] = Field(
        default_factory=list,
        max_length=10_000,
        description="posts that exist before the first period",
    )
    groups: list[Line] = Field(
        default_factory=list,
        max_length=10_000,
        description="population groups whose agents all belong to it",
    )


class ProbeConfig(Strict):
    """A question every agent answers every ``every`` periods (consensus)."""

    question: str = Field(min_length=1, max_length=500, description="the probe question")
    options: list[Line] = Field(
        default_factory=list,
        max_length=100,
        description="the answers to choose from (empty: a free-text answer)",
    )
    every: int = Field(
        2, ge=1, le=10_000, description="asked in periods 0, k, 2k, ... and the last"
    )
    max_tokens: int = Field(32, ge=1, le=1024, description="token budget of an LLM's answer")
    chars: int = Field(200, ge=1, le=2000, description="longest free-text answer kept")

    @model_validator(mode="after")
    def _distinct(self) -> ProbeConfig:
        if len(set(self.options)) != len(self.options) or any(not o.strip() for o in self.options):
            raise ValueError(f"options must be distinct and non-empty, got {self.options!r}")
        return self


class SocialFeedConfig(GameConfigBase):
    """A social feed of communities over ``periods`` periods."""

    kind: Literal["social_feed"] = "social_feed"
    periods: int = Field(10, ge=1, le=100_000, description="periods; each agent acts once a period")
    communities: list[CommunityConfig] = Field(
        min_length=1, max_length=100_000, description="the communities"
    )
    communities_per_agent: int = Field(
        1, ge=1, le=1000, description="communities of an agent whose group no community lists"
    )
    initial_follows: int = Field(
        0, ge=0, le=10_000, description="agents each agent follows at the start (at random)"
    )
    ranking: Literal["recent", "top", "hot"] = Field(
        "hot", description="recent: newest first; top: most upvoted; hot: upvotes decayed by age"
    )
    hot_decay: float = Field(
        2.0, gt=0, le=1e6, description="hot: periods of age that cost a factor 10 in upvotes"
    )
    feed_size: int = Field(8, ge=1, le=200, description="items in a feed")
    per_source: int = Field(
        5, ge=1, le=200, description="items from one community or followee at most"
    )
    comments_shown: int = Field(2, ge=0, le=20, description="latest replies shown with an item")
    text_chars: int = Field(280, ge=1, le=5000, description="longest post or comment kept")
    probe: ProbeConfig | None = Field(None, description="the consensus probe (null: none)")

    @model_validator(mode="after")
    def _unique(self) -> SocialFeedConfig:
        names = [c.name for c in self.communities]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"communities: names must be unique, repeated: {dup}")
        if self.communities_per_agent > len(self.communities):
            raise ValueError(
                f"communities_per_agent: {self.communities_per_agent} is more than the "
                f"{len(self.communities)} communities"
            )
        return self


def _group_of_slots(setup: Setup) -> list[str]:
    return [g.name for g in setup.scenario.population.groups for _ in range(g.count)]


def check(setup: Setup) -> None:
    """Communities name existing groups; follows fit the population."""
    cfg: SocialFeedConfig = setup.config
    groups = {g.name for g in setup.scenario.population.groups}
    for k, c in enumerate(cfg.communities):
        unknown = sorted(set(c.groups) - groups)
        if unknown:
            raise ValueError(
                f"game.communities.{k}.groups: unknown group(s) {unknown}; "
                f"the population has {sorted(groups)}"
            )
    if cfg.initial_follows > setup.n - 1:
        raise ValueError(
            f"game.initial_follows: {cfg.initial_follows} is more than the {setup.n - 1} "
            "other agents"
        )


def new_game(setup: Setup, rng: Any) -> FeedGame:
    """A fresh feed: memberships, initial follows and seed authors drawn from ``rng``."""
    cfg: SocialFeedConfig = setup.config
    n, m = setup.n, len(cfg.communities)
    slot_groups = _group_of_slots(setup)
    members: list[list[int]] = []
    for k in range(n):
        listed = [i for i, c in enumerate(cfg.communities) if slot_groups[k] in c.groups]
        if not listed:
            listed = [int(i) for i in rng.choice(m, cfg.communities_per_agent, replace=False)]
        members.append(listed)
    follows: list[list[int]] = []
    for k in range(n):
        if cfg.initial_follows:
            others = rng.choice(n - 1, cfg.initial_follows, replace=False)
            follows.append([int(o) + (o >= k) for o in others])
        else:
            follows.append([])
    seeds = []
    for i, c in enumerate(cfg.communities):
        inside = [k for k in range(n) if i in members[k]] or list(range(n))
        for text in c.seeds:
            seeds.append((i, inside[int(rng.integers(0, len(inside)))], text))
    probe = cfg.probe
    return FeedGame(
        n, periods=cfg.periods, communities=[c.name for c in cfg.communities],
        topics=[c.topic for c in cfg.communities], members=members, follows=follows,
        seeds=seeds, ranking=cfg.ranking, feed_size=cfg.feed_size, per_source=cfg.per_source,
        hot_decay=cfg.hot_decay, comments_shown=cfg.comments_shown, text_chars=cfg.text_chars,
        probe_every=probe.every if probe else 0, question=probe.question if probe else "",
        options=probe.options if probe else (), probe_chars=probe.chars if probe else 200,
    )  # fmt: skip


def llm_policy(setup: Setup, group: LLMGroup) -> LLMFeeder:
    """The LLM member of an LLM group (its persona put before the rules)."""
    cfg: SocialFeedConfig = setup.config
    return LLMFeeder(
        setup.prompts, temperature=group.temperature, max_tokens=group.max_tokens,
        probe_max_tokens=cfg.probe.max_tokens if cfg.probe else 32, persona=group.persona,
    )  # fmt: skip


def resolved(setup: Setup) -> dict[str, Any]:
    """The feed as played (the analysis reads ``periods`` and the probe's options)."""
    cfg: SocialFeedConfig = setup.config
    return {
        "kind": "social_feed",
        "agents": setup.n,
        **cfg.model_dump(mode="json", exclude={"kind"}),
    }


PLUGIN = GameKind(
    kind="social_feed",
    config=SocialFeedConfig,
    new_game=new_game,
    scripted=make_feed_policy,
    llm=llm_policy,
    resolved=resolved,
    check=check,
    prompts=FEED_PROMPTS,
    evolves=False,
    report="social_feed",
)
