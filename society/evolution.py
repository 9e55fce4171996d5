"""Evolution between generations: who survives (selection) and what newcomers start from
(inheritance). Both are pluggable and know nothing of the game that produced the fitness.

Selection (`EvolutionConfig.selection`):
- ``top_fraction`` (default, the paper's): the best ``round(fraction * n)`` agents by
  fitness survive; ties are broken by the seeded generator (a random key per agent), so
  the choice is reproducible from the scenario seed and unbiased by agent id.
- ``fitness_proportional``: survivors drawn without replacement with probability
  proportional to fitness (negative fitness counts as 0; all zero: uniform).

Inheritance (`EvolutionConfig.inheritance`) plans, for each newcomer, its parent and what
it starts from:
- ``advice`` (default, the paper's): every newcomer writes its own strategy from the rules
  plus *all* survivors' strategies with their scores, and is asked to improve on them.
  Lineage: ``parent_id`` is the best-scoring survivor whose advice it got (ties: the
  survivor listed first, i.e. the higher-ranked by the selection's order).
- ``copy``: a newcomer copies the strategy of one survivor drawn fitness-proportionally
  (``parent_id`` = that survivor); no LLM call is needed.

With these two rules LLM newcomers inherit from *all* survivors, scripted newcomers from
the scripted survivors only (a scripted slot cannot play a text); a scripted newcomer with
no scripted survivor to inherit from gets its group's own policy (parent ``None``).

Imitation rules (`EvolutionConfig.selection` too; they choose who is replaced *and* by
whose copy, so ``survivors`` does not apply):
- ``fermi`` (pairwise comparison, Traulsen, Pacheco & Nowak 2006): every agent a, in slot
  order, picks a model b uniformly among the others and adopts b's policy with probability
  ``1 / (1 + exp(-beta * (f_b - f_a)))`` (`fermi_probability`); every decision is made
  from the fitness of the generation that ended (synchronous). An adopter is replaced by a
  newcomer with parent b.
- ``moran`` (birth-death, as Axelrod's ``MoranProcess``): one event a generation. One agent
  reproduces, drawn with probability proportional to fitness (as ``copy`` weighs it); one
  agent, drawn uniformly among all (the reproducer included), dies and is replaced by the
  reproducer's copy; nothing changes when the reproducer draws itself.

A replaced scripted agent takes its parent's policy; a replaced LLM agent takes the
parent's strategy text under ``copy`` and writes its own from the parent's alone under
``advice``. As above, a scripted slot only takes a scripted agent's policy: in a population
mixing both kinds, a scripted agent under ``fermi`` picks its model among the other
scripted agents only, and under ``moran`` an LLM reproducer's copy replaces an agent drawn
among the LLM agents only. In a population of one kind both rules are exactly as stated.

Mutation (`EvolutionConfig.mutation`, any rule): each scripted newcomer, with probability
``mutation``, plays a policy drawn uniformly from ``mutation_pool`` instead of its
parent's (it keeps its parent as lineage); LLM newcomers never mutate.

`Evolution.next_generation` applies the configured rules to a population of any game. Add
a rule by subclassing `Selection` / `Inheritance` and registering it in `SELECTIONS` /
`INHERITANCES`, or by registering a function in `IMITATIONS`.
"""

from __future__ import annotations

import copy
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = [
    "IMITATIONS",
    "INHERITANCES",
    "SELECTIONS",
    "AdviceInheritance",
    "CopyInheritance",
    "Evolution",
    "FitnessProportional",
    "GenerationOutcome",
    "Individual",
    "Inheritance",
    "Newcomer",
    "Plan",
    "Selection",
    "SurvivorInfo",
    "TopFraction",
    "fermi_probability",
    "make_evolution",
    "make_inheritance",
    "make_selection",
    "n_survivors",
]


def n_survivors(n: int, fraction: float) -> int:
    """How many of ``n`` agents survive: ``round(fraction * n)``, at least 1, at most n."""
    return max(1, min(n, int(round(fraction * n))))


def _weights(values: np.ndarray) -> np.ndarray:
    w = np.clip(np.asarray(values, dtype=float), 0.0, None)
    w[~np.isfinite(w)] = 0.0
    total = w.sum()
    if total <= 0:
        return np.full(len(w), 1.0 / len(w))
    # A tiny floor keeps zero-fitness agents drawable when more must be drawn than there
    # are positive weights (sampling without replacement).
    w = w + total * 1e-12
    return w / w.sum()


class Selection(ABC):
    """Picks the survivors of a generation from everyone's fitness."""

    name: str = ""

    @abstractmethod
    def select(
        self, fitness: Mapping[int, float], rng: np.random.Generator, fraction: float
    ) -> list[int]:
        """The surviving agent ids, best first (in the rule's own ranking)."""


class TopFraction(Selection):
    """The top ``fraction`` by fitness; ties broken by a random key from ``rng``."""

    name = "top_fraction"

    def select(
        self, fitness: Mapping[int, float], rng: np.random.Generator, fraction: float
    ) -> list[int]:
        ids = sorted(fitness)
        keep = n_survivors(len(ids), fraction)
        values = np.array([fitness[i] for i in ids], dtype=float)
        tiebreak = rng.random(len(ids))
        order = np.lexsort((tiebreak, -values))  # by fitness desc, then random key
        return [ids[k] for k in order[:keep]]


class FitnessProportional(Selection):
    """Survivors drawn without replacement, with probability proportional to fitness."""

    name = "fitness_proportional"

    def select(
        self, fitness: Mapping[int, float], rng: np.random.Generator, fraction: float
    ) -> list[int]:
        ids = sorted(fitness)
        keep = n_survivors(len(ids), fraction)
        p = _weights(np.array([fitness[i] for i in ids]))
        picked = rng.choice(len(ids), size=keep, replace=False, p=p)
        # Report best first, like TopFraction (stable on ties by draw order).
        chosen = [ids[k] for k in picked.tolist()]
        return sorted(chosen, key=lambda a: -fitness[a])


@dataclass(frozen=True)
class SurvivorInfo:
    """What inheritance may use of a survivor: id, name, strategy text, fitness."""

    agent_id: int
    name: str
    strategy: str
    fitness: float


@dataclass(frozen=True)
class Plan:
    """A newcomer's start: its parent, and either advice to write from or a strategy to copy.

    ``advice`` (survivors, best first) means the newcomer writes its own strategy with
    them as advice; ``copy`` means it takes that survivor's strategy as is.
    """

    parent_id: int | None
    advice: tuple[SurvivorInfo, ...] = ()
    copy: SurvivorInfo | None = None


class Inheritance(ABC):
    """Plans what each newcomer starts from, given the survivors."""

    name: str = ""

    @abstractmethod
    def plan(
        self, survivors: Sequence[SurvivorInfo], newcomers: int, rng: np.random.Generator
    ) -> list[Plan]:
        """One plan per newcomer; ``survivors`` are given best first."""


class AdviceInheritance(Inheritance):
    """All survivors' strategies with scores as advice; parent = the best-scoring survivor."""

    name = "advice"

    def plan(
        self, survivors: Sequence[SurvivorInfo], newcomers: int, rng: np.random.Generator
    ) -> list[Plan]:
        if not survivors:
            return [Plan(None) for _ in range(newcomers)]
        ranked = tuple(sorted(survivors, key=lambda s: -s.fitness))  # stable: keeps ties' order
        return [Plan(ranked[0].agent_id, advice=ranked) for _ in range(newcomers)]


class CopyInheritance(Inheritance):
    """Copy a survivor's strategy, the survivor drawn fitness-proportionally per newcomer."""

    name = "copy"

    def plan(
        self, survivors: Sequence[SurvivorInfo], newcomers: int, rng: np.random.Generator
    ) -> list[Plan]:
        if not survivors:
            return [Plan(None) for _ in range(newcomers)]
        p = _weights(np.array([s.fitness for s in survivors]))
        picks = rng.choice(len(survivors), size=newcomers, replace=True, p=p).tolist()
        return [Plan(survivors[k].agent_id, copy=survivors[k]) for k in picks]


SELECTIONS: dict[str, type[Selection]] = {
    cls.name: cls for cls in (TopFraction, FitnessProportional)
}
INHERITANCES: dict[str, type[Inheritance]] = {
    cls.name: cls for cls in (AdviceInheritance, CopyInheritance)
}


def make_selection(name: str) -> Selection:
    """The selection rule registered as ``name`` (the imitation rules, which replace agents
    themselves, are not `Selection` rules: `make_evolution` takes every name)."""
    try:
        return SELECTIONS[name]()
    except KeyError:
        if name in IMITATIONS:
            raise ValueError(
                f"evolution.selection: {name!r} is an imitation rule, not a survivor "
                "selection; build it with make_evolution"
            ) from None
        raise ValueError(
            f"evolution.selection: unknown selection rule {name!r}; "
            f"expected one of {', '.join(sorted(SELECTIONS))}"
        ) from None


def make_inheritance(name: str) -> Inheritance:
    """The inheritance rule registered as ``name``."""
    try:
        return INHERITANCES[name]()
    except KeyError:
        raise ValueError(
            f"evolution.inheritance: unknown inheritance rule {name!r}; "
            f"expected one of {', '.join(sorted(INHERITANCES))}"
        ) from None


# -- evolution for any game ---------------------------------------------------------------
@dataclass(frozen=True)
class Individual:
    """One agent of the generation that just ended, as evolution sees it.

    Attributes:
        slot: its position in the population (stable across generations).
        agent_id: its agent id.
        name: the display name prompts use for it, e.g. ``"Agent 7"``.
        llm: True for an LLM agent (its strategy is its text), False for a scripted one.
        strategy: an LLM agent's strategy text; a scripted agent's sentence or policy name
            (what LLM newcomers get as advice or copy).
        spec: a scripted agent's policy as plain data (``{"name": "tit_for_tat"}``,
            ``{"name": "random", "p": 0.3}``); None for an LLM agent.
        fitness: its fitness in the generation that ended.
        valid: whether an LLM agent's strategy text was valid.
    """

    slot: int
    agent_id: int
    name: str
    llm: bool
    strategy: str
    spec: dict[str, Any] | None
    fitness: float
    valid: bool = True


@dataclass(frozen=True)
class Newcomer:
    """Who takes a slot in the next generation, and what it starts from.

    Attributes:
        slot: the slot it takes (the replaced agent's).
        parent_id: the agent it inherits from (None: a scripted newcomer with no scripted
            survivor to inherit from, which plays its group's own policy).
        spec: a scripted newcomer's policy (its parent's, or a mutant's); None for LLM.
        copy_text: an LLM newcomer under ``copy``: the strategy text it takes as is.
        copy_valid: whether that text was valid.
        advice: an LLM newcomer under ``advice``: the agents (best first) whose strategies
            and scores it writes its own from.
        mutated: whether ``spec`` was drawn from the mutation pool.
    """

    slot: int
    parent_id: int | None
    spec: dict[str, Any] | None = None
    copy_text: str | None = None
    copy_valid: bool = True
    advice: tuple[Individual, ...] | None = None
    mutated: bool = False


@dataclass(frozen=True)
class GenerationOutcome:
    """What `Evolution.next_generation` decided.

    Attributes:
        survivors: the agent ids kept, best first (ranked as the rule ranks them).
        newcomers: one per replaced slot, in slot order.
    """

    survivors: list[int]
    newcomers: list[Newcomer]


def fermi_probability(f_focal: float, f_model: float, beta: float) -> float:
    """The Fermi rule: the probability ``1 / (1 + exp(-beta * (f_model - f_focal)))`` that
    the focal agent adopts the model's policy. Never overflows: only ``exp`` of a
    non-positive number is taken (large differences give exactly 0.0 or 1.0)."""
    x = beta * (f_model - f_focal)
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


#: An imitation rule: from the population (slot order), the generator and ``beta``, the
#: replaced agents, as ``{index of the replaced agent: index of its parent}``.
Imitation = Callable[[Sequence[Individual], np.random.Generator, float], dict[int, int]]


def _fermi(
    population: Sequence[Individual], rng: np.random.Generator, beta: float
) -> dict[int, int]:
    """Synchronous pairwise comparison. Draws, for each agent in slot order: its model
    (``rng.integers``), then whether it adopts (``rng.random``); none for an agent with no
    possible model."""
    n = len(population)
    everyone = list(range(n))
    scripted = [k for k in everyone if not population[k].llm]
    adopt: dict[int, int] = {}
    for a in range(n):
        pool = everyone if population[a].llm else scripted  # sorted, and holds a itself
        if len(pool) < 2:
            continue
        j = int(rng.integers(len(pool) - 1))
        b = pool[j + (pool[j] >= a)]  # uniform among the pool but a
        p = fermi_probability(population[a].fitness, population[b].fitness, beta)
        if rng.random() < p:
            adopt[a] = b
    return adopt


def _moran(
    population: Sequence[Individual], rng: np.random.Generator, beta: float
) -> dict[int, int]:
    """One birth-death event. Draws: the reproducer (one ``rng.random``, exactly as
    ``rng.choice(n, p=_weights(fitness))`` would), then the one to die (``rng.integers``)."""
    n = len(population)
    cdf = np.cumsum(_weights(np.array([x.fitness for x in population], dtype=float)))
    parent = min(n - 1, int(np.searchsorted(cdf / cdf[-1], rng.random(), side="right")))
    if population[parent].llm and not all(x.llm for x in population):
        # A scripted slot cannot take an LLM agent's copy: it replaces an LLM agent.
        llm = [k for k in range(n) if population[k].llm]
        dies = llm[int(rng.integers(len(llm)))]
    else:
        dies = int(rng.integers(n))
    return {} if dies == parent else {dies: parent}


IMITATIONS: dict[str, Imitation] = {"fermi": _fermi, "moran": _moran}


def _number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Evolution:
    """The rules between two generations: selection (or imitation), inheritance, mutation.

    Args:
        selection: ``top_fraction``, ``fitness_proportional``, ``fermi`` or ``moran``.
        inheritance: ``advice`` or ``copy`` (what LLM newcomers start from; for
            ``top_fraction`` / ``fitness_proportional`` also how parents are chosen).
        survivors: ``top_fraction`` / ``fitness_proportional``: the fraction kept, in (0, 1].
        beta: ``fermi``: the intensity of selection, >= 0 (0: a coin flip).
        mutation: the probability, in [0, 1], that a scripted newcomer mutates.
        mutation_pool: the policies (specs) a mutant draws from, uniformly; needed when
            ``mutation > 0``.

    Raises:
        ValueError: a bad value; the message names the field (``evolution.<field>: ...``).
    """

    def __init__(
        self,
        selection: str = "top_fraction",
        inheritance: str = "advice",
        survivors: float = 0.5,
        beta: float = 1.0,
        mutation: float = 0.0,
        mutation_pool: Sequence[dict[str, Any]] = (),
    ) -> None:
        if selection not in SELECTIONS and selection not in IMITATIONS:
            raise ValueError(
                f"evolution.selection: unknown selection rule {selection!r}; "
                f"expected one of {', '.join(sorted([*SELECTIONS, *IMITATIONS]))}"
            )
        self.selection = selection
        self._select = make_selection(selection) if selection in SELECTIONS else None
        self._imitate = IMITATIONS.get(selection)
        self.inheritance = inheritance
        self._inherit = make_inheritance(inheritance)
        if not (_number(survivors) and 0 < survivors <= 1):
            raise ValueError(
                f"evolution.survivors: expected a fraction in (0, 1], got {survivors!r}"
            )
        if not (_number(beta) and 0 <= beta < math.inf):
            raise ValueError(f"evolution.beta: expected a finite number >= 0, got {beta!r}")
        if not (_number(mutation) and 0 <= mutation <= 1):
            raise ValueError(
                f"evolution.mutation: expected a probability in [0, 1], got {mutation!r}"
            )
        for spec in mutation_pool:
            if not isinstance(spec, Mapping):
                raise ValueError(
                    f"evolution.mutation_pool: expected policy specs (mappings), got {spec!r}"
                )
        if mutation > 0 and not mutation_pool:
            raise ValueError(
                "evolution.mutation_pool: empty, but mutation > 0 needs policies to draw from"
            )
        self.survivors = float(survivors)
        self.beta = float(beta)
        self.mutation = float(mutation)
        self.mutation_pool: tuple[dict[str, Any], ...] = tuple(
            copy.deepcopy(dict(s)) for s in mutation_pool
        )

    def next_generation(
        self,
        population: Sequence[Individual],
        rng: np.random.Generator,
        default_spec: Callable[[int], dict[str, Any] | None] | None = None,
    ) -> GenerationOutcome:
        """Who survives the generation that ended and who takes the other slots.

        Args:
            population: everyone, in slot order, with the fitness of the generation.
            rng: the run's generator. Draws, in order, the rule's: ``top_fraction`` /
                ``fitness_proportional``: the selection's, then the LLM newcomers'
                plans, then the scripted newcomers' plans (as the donor game always
                did); ``fermi``: per agent in slot order its model (``rng.integers``)
                and whether it adopts (``rng.random``); ``moran``: the reproducer (one
                ``rng.random``) and the one to die (``rng.integers``). Then, only when
                ``mutation > 0``, per scripted newcomer in slot order one ``rng.random``
                and, if it mutates, one ``rng.integers`` for the policy.
            default_spec: a scripted slot's group policy, for a scripted newcomer with no
                scripted parent (without it, the replaced agent's own policy).
        """
        if not population:
            return GenerationOutcome([], [])
        if self._select is not None:
            outcome = self._select_and_inherit(population, rng, default_spec)
        else:
            assert self._imitate is not None
            adopt = self._imitate(population, rng, self.beta)
            outcome = self._replace(population, adopt, default_spec)
        return self._mutate(population, outcome, rng)

    def _select_and_inherit(
        self,
        population: Sequence[Individual],
        rng: np.random.Generator,
        default_spec: Callable[[int], dict[str, Any] | None] | None,
    ) -> GenerationOutcome:
        # The draws, in order: selection, LLM newcomers' plans, scripted newcomers' plans.
        assert self._select is not None
        fitness = {p.agent_id: p.fitness for p in population}
        survivors = self._select.select(fitness, rng, self.survivors)
        by_id = {p.agent_id: p for p in population}
        infos = [
            SurvivorInfo(a, by_id[a].name, by_id[a].strategy, by_id[a].fitness) for a in survivors
        ]
        alive = set(survivors)
        dead = [p for p in population if p.agent_id not in alive]
        dead_llm = [p for p in dead if p.llm]
        dead_scripted = [p for p in dead if not p.llm]
        plans_llm = self._inherit.plan(infos, len(dead_llm), rng)
        scripted_infos = [i for i in infos if not by_id[i.agent_id].llm]
        plans_scripted = self._inherit.plan(scripted_infos, len(dead_scripted), rng)
        out: list[Newcomer] = []
        for p, plan in zip(dead_llm, plans_llm, strict=True):
            if plan.copy is not None:
                src = by_id[plan.copy.agent_id]
                out.append(
                    Newcomer(p.slot, plan.parent_id, copy_text=src.strategy, copy_valid=src.valid)
                )
            else:
                advice = tuple(by_id[a.agent_id] for a in plan.advice)
                out.append(Newcomer(p.slot, plan.parent_id, advice=advice or None))
        for p, plan in zip(dead_scripted, plans_scripted, strict=True):
            if plan.parent_id is not None:
                spec = by_id[plan.parent_id].spec
            else:
                spec = _own_spec(p, default_spec)
            out.append(Newcomer(p.slot, plan.parent_id, spec=copy.deepcopy(spec)))
        return GenerationOutcome(survivors, sorted(out, key=lambda nc: nc.slot))

    def _replace(
        self,
        population: Sequence[Individual],
        adopt: Mapping[int, int],
        default_spec: Callable[[int], dict[str, Any] | None] | None,
    ) -> GenerationOutcome:
        """Newcomers for the agents an imitation rule replaced (index -> parent's index)."""
        out: list[Newcomer] = []
        for k in sorted(adopt):
            me, model = population[k], population[adopt[k]]
            if not me.llm:
                spec = model.spec if model.spec is not None else _own_spec(me, default_spec)
                out.append(Newcomer(me.slot, model.agent_id, spec=copy.deepcopy(spec)))
            elif self._inherit.name == "copy":
                out.append(
                    Newcomer(
                        me.slot, model.agent_id, copy_text=model.strategy, copy_valid=model.valid
                    )
                )
            else:
                out.append(Newcomer(me.slot, model.agent_id, advice=(model,)))
        kept = [p for k, p in enumerate(population) if k not in adopt]
        survivors = [p.agent_id for p in sorted(kept, key=lambda p: -p.fitness)]  # stable
        return GenerationOutcome(survivors, sorted(out, key=lambda nc: nc.slot))

    def _mutate(
        self, population: Sequence[Individual], outcome: GenerationOutcome, rng: np.random.Generator
    ) -> GenerationOutcome:
        if self.mutation <= 0:
            return outcome  # draws nothing: without mutation the random stream is unchanged
        llm = {p.slot: p.llm for p in population}
        out = []
        for nc in outcome.newcomers:
            if not llm[nc.slot] and rng.random() < self.mutation:
                spec = self.mutation_pool[int(rng.integers(len(self.mutation_pool)))]
                nc = replace(nc, spec=copy.deepcopy(spec), mutated=True)
            out.append(nc)
        return GenerationOutcome(outcome.survivors, out)


def _own_spec(
    me: Individual, default_spec: Callable[[int], dict[str, Any] | None] | None
) -> dict[str, Any] | None:
    return default_spec(me.slot) if default_spec is not None else me.spec


def make_evolution(
    selection: str = "top_fraction",
    inheritance: str = "advice",
    survivors: float = 0.5,
    beta: float = 1.0,
    mutation: float = 0.0,
    mutation_pool: Sequence[dict[str, Any]] = (),
) -> Evolution:
    """The evolution rules of a scenario's ``evolution`` section (see `Evolution`).

    Raises:
        ValueError: a bad name or value, the field named, e.g. ``evolution.selection:
            unknown selection rule 'x'; expected one of fermi, fitness_proportional, ...``.
    """
    return Evolution(selection, inheritance, survivors, beta, mutation, mutation_pool)
