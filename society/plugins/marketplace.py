"""Plug-in: the two-sided agentic marketplace (Magentic Marketplace: Bansal et al., arXiv
2510.25779, and its published code).

The first ``customers`` agents of the population are customers, the next ``businesses``
agents businesses (each group wholly one or the other). The market's data is generated
from the seed (``domain``, sizes) or loaded from a directory in the published format
(``data_dir``). Customers search, write, read their messages, pay proposals and end;
businesses reply with texts or order proposals. ``markets`` plays several variants of the
market one after another with the same agents (search bandwidths, modes, a manipulated
description, fixed rating orders), each ``repeats`` times: the consideration-set,
position-bias and manipulation experiments are single runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from agents.marketplace import LLMMarketplace, make_marketplace_policy
from agents.prompts import game_prompts
from games.marketplace.data import Dataset, generate, load_dir, manipulation_text
from games.marketplace.game import MarketGame, MarketRules, MarketSetup
from games.marketplace.search import MODES, Embedder
from society.config import MAX_COUNT, MAX_SEED, GameConfigBase, LLMGroup, ScriptedGroup, Strict
from society.registry import GameKind, Setup

SearchMode = Literal["simple", "filtered", "lexical", "optimal", "embedding"]
assert set(SearchMode.__args__) == set(MODES)  # type: ignore[attr-defined]


class MarketVariant(Strict):
    """One market of the run; unset fields keep the game's settings."""

    label: str = Field(min_length=1, description="name of the variant (reports group by it)")
    search_mode: SearchMode | None = Field(None, description="search mode of this market")
    search_bandwidth: int | None = Field(
        None, ge=1, le=10**5, description="results per search page"
    )
    manipulation: str | None = Field(
        None,
        description="replace one business's description: control, authority, social_proof, "
        "loss_aversion, prompt_injection_basic or prompt_injection_strong",
    )
    manipulated: int | None = Field(
        None, ge=0, le=MAX_COUNT, description="index of the business whose description is replaced"
    )
    ratings: list[float] | None = Field(
        None, description="ratings of the businesses in order (e.g. 1e-9 apart: a fixed order)"
    )


class MarketplaceConfig(GameConfigBase):
    """The two-sided marketplace (defaults: the paper's lexical search, bandwidth 10)."""

    kind: Literal["marketplace"] = "marketplace"
    domain: Literal["restaurants", "contractors"] = Field(
        "restaurants", description="vocabulary of generated data"
    )
    customers: int = Field(
        3, ge=1, le=10**5, description="customers (the first agents of the population)"
    )
    businesses: int | None = Field(
        None, ge=1, le=10**5, description="businesses (the next agents); default 3 per customer"
    )
    data_dir: str | None = Field(
        None, description="load the market from a directory in the published YAML format"
    )
    data_seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="seed of generated data (default: the seed)"
    )
    search_mode: SearchMode = Field("lexical", description="how search ranks businesses")
    search_bandwidth: int = Field(10, ge=1, le=10**5, description="results per search page (limit)")
    rounds: int = Field(
        100, ge=1, le=10**6, description="each customer's step budget (the paper: 100)"
    )
    history: int | None = Field(
        None,
        ge=0,
        le=1_000_000,
        description="past steps shown to LLM customers (null: all, as published)",
    )
    max_pages: int = Field(
        10, ge=1, le=10**5, description="highest result page a search may ask for"
    )
    text_chars: int = Field(
        160, ge=10, le=1_000_000, description="longest text message (characters)"
    )
    query_chars: int = Field(
        60, ge=5, le=1_000_000, description="longest search query (characters)"
    )
    max_items: int = Field(5, ge=1, le=10**4, description="most lines of an LLM's order proposal")
    customer_max_tokens: int = Field(
        200, ge=16, le=1_000_000, description="token budget of a customer step"
    )
    business_max_tokens: int = Field(
        320, ge=16, le=1_000_000, description="token budget of a business reply"
    )
    manipulated: int = Field(
        0, ge=0, le=MAX_COUNT, description="default business whose description is replaced"
    )
    markets: list[MarketVariant] = Field(
        default_factory=list, description="variants played one after another (empty: one market)"
    )
    repeats: int = Field(1, ge=1, le=10**6, description="plays of each variant")


def _dataset(setup: Setup) -> Dataset:
    if "dataset" not in setup.cache:
        cfg: MarketplaceConfig = setup.config
        if cfg.data_dir is not None:
            path = Path(cfg.data_dir)
            try:
                ds = load_dir(path, cfg.domain if "domain" in cfg.model_fields_set else None)
            except ValueError as exc:
                raise ValueError(f"game.data_dir: {exc}") from None
            for name, n in (("customers", len(ds.customers)), ("businesses", len(ds.businesses))):
                if name in cfg.model_fields_set and getattr(cfg, name) != n:
                    raise ValueError(f"game.{name}: {getattr(cfg, name)} but {path} holds {n}")
        else:
            seed = setup.scenario.seed if cfg.data_seed is None else cfg.data_seed
            rng = np.random.default_rng([seed, 0x6D61726B])  # apart from the run's generator
            try:
                ds = generate(cfg.domain, cfg.customers, cfg.businesses, rng)
            except ValueError as exc:
                raise ValueError(f"game.{exc}") from None
        setup.cache["dataset"] = ds
    return setup.cache["dataset"]


def _markets(setup: Setup) -> list[MarketSetup]:
    if "markets" not in setup.cache:
        cfg: MarketplaceConfig = setup.config
        ds = _dataset(setup)
        variants = cfg.markets or [MarketVariant(label="market")]
        out = []
        for k, v in enumerate(variants):
            data: Dataset = ds
            info: dict[str, Any] = {}
            if v.ratings is not None:
                if len(v.ratings) != len(ds.businesses):
                    raise ValueError(
                        f"game.markets.{k}.ratings: {len(v.ratings)} ratings for "
                        f"{len(ds.businesses)} businesses"
                    )
                for j, r in enumerate(v.ratings):
                    data = data.with_business(j, rating=float(r))
                info["ratings"] = [float(r) for r in v.ratings]
            if v.manipulation is not None:
                j = cfg.manipulated if v.manipulated is None else v.manipulated
                if j >= len(ds.businesses):
                    raise ValueError(
                        f"game.markets.{k}.manipulated: no business {j} (there are {len(ds.businesses)})"
                    )
                try:
                    text = manipulation_text(v.manipulation, ds.businesses[j].name, ds.word)
                except ValueError as exc:
                    raise ValueError(f"game.markets.{k}.{exc}") from None
                data = data.with_business(j, description=text)
                info.update(manipulation=v.manipulation, manipulated=ds.businesses[j].id)
            out.append(
                MarketSetup(
                    v.label, data, v.search_mode or cfg.search_mode,
                    v.search_bandwidth or cfg.search_bandwidth, info,
                )
            )  # fmt: skip
        labels = [m.label for m in out]
        if len(set(labels)) != len(labels):
            raise ValueError(f"game.markets: labels must be unique, got {labels}")
        setup.cache["markets"] = out
    return setup.cache["markets"]


def _embedder(setup: Setup) -> Any:
    if "embedder" not in setup.cache:
        modes = {m.search_mode for m in _markets(setup)}
        emb = None
        if "embedding" in modes:
            try:
                emb = Embedder()
            except ImportError as exc:
                raise ValueError(f"game.search_mode: {exc}") from None
        setup.cache["embedder"] = emb
    return setup.cache["embedder"]


def _rules(setup: Setup) -> MarketRules:
    cfg: MarketplaceConfig = setup.config
    return MarketRules(
        max_steps=cfg.rounds, max_pages=cfg.max_pages, text_chars=cfg.text_chars,
        query_chars=cfg.query_chars, max_items=cfg.max_items,
    )  # fmt: skip


def check(setup: Setup) -> None:
    """Population = customers + businesses, each group on one side with a policy of that
    side; the data and the variants build."""
    ds = _dataset(setup)
    n, m = len(ds.customers), len(ds.businesses)
    if setup.n != n + m:
        raise ValueError(
            f"population: the market has {n} customers and {m} businesses, so it needs "
            f"{n + m} agents (customers first), got {setup.n}"
        )
    start = 0
    for g in setup.scenario.population.groups:
        end = start + g.count
        if start < n < end:
            raise ValueError(
                f"population.groups.{g.name}: a group is all customers or all businesses "
                f"(the first {n} agents are customers; this group spans agents {start}..{end - 1})"
            )
        if isinstance(g, ScriptedGroup):
            role = "customer" if start < n else "business"
            try:
                policy = make_marketplace_policy(g.strategy)
            except ValueError as exc:
                raise ValueError(f"population.groups.{g.name}.strategy: {exc}") from None
            if policy.role != role:
                raise ValueError(
                    f"population.groups.{g.name}.strategy: {policy.name} is a {policy.role} "
                    f"policy, but this group's agents are {role}s"
                )
        start = end
    _markets(setup)
    _embedder(setup)


def new_game(setup: Setup, rng: np.random.Generator) -> MarketGame:
    """The run's markets, played one after another."""
    cfg: MarketplaceConfig = setup.config
    return MarketGame(
        _markets(setup), _rules(setup), repeats=cfg.repeats, embedder=_embedder(setup)
    )


def llm_policy(setup: Setup, group: LLMGroup) -> LLMMarketplace:
    """The LLM customer or business of an LLM group (by the turn it answers)."""
    cfg: MarketplaceConfig = setup.config
    return LLMMarketplace(
        setup.prompts, temperature=group.temperature,
        customer_max_tokens=cfg.customer_max_tokens,
        business_max_tokens=cfg.business_max_tokens, history=cfg.history,
        persona=group.persona,
    )  # fmt: skip


def resolved(setup: Setup) -> dict[str, Any]:
    """The market as played (the data itself is in the run's first events)."""
    cfg: MarketplaceConfig = setup.config
    ds = _dataset(setup)
    return {
        "kind": "marketplace",
        "domain": ds.domain,
        "customers": len(ds.customers),
        "businesses": len(ds.businesses),
        "data": cfg.data_dir
        or f"generated (seed {setup.scenario.seed if cfg.data_seed is None else cfg.data_seed})",
        "rounds": cfg.rounds,
        "repeats": cfg.repeats,
        "markets": [
            {
                "label": m.label,
                "search_mode": m.search_mode,
                "search_bandwidth": m.search_bandwidth,
                **m.info,
            }
            for m in _markets(setup)
        ],  # fmt: skip
    }


PLUGIN = GameKind(
    kind="marketplace",
    config=MarketplaceConfig,
    new_game=new_game,
    scripted=make_marketplace_policy,
    llm=llm_policy,
    resolved=resolved,
    check=check,
    prompts=game_prompts("marketplace"),
    ignores=frozenset({"max_tokens"}),
    evolves=False,
    report="marketplace",
)

__all__ = ["PLUGIN", "MarketVariant", "MarketplaceConfig"]
