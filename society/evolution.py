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

Imitation rules for any population (they choose who is replaced *and* by whose copy):
- ``fermi`` (pairwise comparison, Traulsen, Pacheco & Nowak 2006): every agent a, in slot
  order, picks a model b uniformly among the others and adopts b's policy with probability
  ``1 / (1 + exp(-beta * (f_b - f_a)))``; all from the same fitness (synchronous).
- ``moran`` (birth-death, as Axelrod's ``MoranProcess``): one agent reproduces, drawn with
  probability proportional to fitness; one agent, drawn uniformly, dies and is replaced by
  the reproducer's copy (nothing changes when it is the reproducer itself).

Mutation: a scripted newcomer takes, with probability ``mutation``, a policy drawn
uniformly from ``mutation_pool`` instead of its parent's.

`Evolution.next_generation` applies the configured rules to a population of any game; add
a rule by subclassing `Selection` / `Inheritance` and registering it in `SELECTIONS` /
`INHERITANCES`, or by adding an imitation rule to `IMITATIONS`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Evolution",
    "GenerationOutcome",
    "IMITATIONS",
    "Individual",
    "Newcomer",
    "fermi_probability",
    "make_evolution",
    "INHERITANCES",
    "SELECTIONS",
    "AdviceInheritance",
    "CopyInheritance",
    "FitnessProportional",
    "Inheritance",
    "Plan",
    "Selection",
    "SurvivorInfo",
    "TopFraction",
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
    """The selection rule registered as ``name``."""
    try:
        return SELECTIONS[name]()
    except KeyError:
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
    """One agent of the generation that just ended, as evolution sees it."""

    slot: int
    agent_id: int
    name: str  # display name used in prompts
    llm: bool
    strategy: str  # LLM: its strategy text; scripted: a sentence or its policy name
    spec: dict | None  # scripted: its policy as plain data; None for LLM agents
    fitness: float
    valid: bool = True


@dataclass(frozen=True)
class Newcomer:
    """Who takes a slot in the next generation, and what it starts from."""

    slot: int
    parent_id: int | None
    spec: dict | None = None  # scripted: the policy it plays
    copy_text: str | None = None  # LLM under 'copy': the strategy text it takes
    copy_valid: bool = True
    advice: tuple[Individual, ...] | None = None  # LLM under 'advice': write from these
    mutated: bool = False


@dataclass(frozen=True)
class GenerationOutcome:
    """The survivors (best first) and one newcomer per replaced slot (in slot order)."""

    survivors: list[int]
    newcomers: list[Newcomer]


def fermi_probability(f_focal: float, f_model: float, beta: float) -> float:
    """Probability that the focal agent adopts the model's policy (stable for any size)."""
    x = beta * (f_model - f_focal)
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


IMITATIONS = ("fermi", "moran")


class Evolution:
    """The rules between two generations: selection, inheritance and mutation."""

    def __init__(
        self,
        selection: str = "top_fraction",
        inheritance: str = "advice",
        survivors: float = 0.5,
        beta: float = 1.0,
        mutation: float = 0.0,
        mutation_pool: Sequence[dict] = (),
    ) -> None:
        if selection not in SELECTIONS and selection not in IMITATIONS:
            names = ", ".join([*sorted(SELECTIONS), *IMITATIONS])
            raise ValueError(
                f"evolution.selection: unknown selection rule {selection!r}; expected one of {names}"
            )
        self.selection = selection
        self.select = make_selection(selection) if selection in SELECTIONS else None
        self.inherit = make_inheritance(inheritance)
        if not (isinstance(beta, int | float) and beta >= 0 and math.isfinite(beta)):
            raise ValueError(f"evolution.beta: must be a number >= 0, got {beta!r}")
        if not (isinstance(mutation, int | float) and 0 <= mutation <= 1):
            raise ValueError(f"evolution.mutation: must be in [0, 1], got {mutation!r}")
        if mutation > 0 and not mutation_pool:
            raise ValueError("evolution.mutation_pool: mutation needs policies to draw from")
        self.survivors = survivors
        self.beta = float(beta)
        self.mutation = float(mutation)
        self.pool = [dict(p) for p in mutation_pool]

    def next_generation(
        self,
        population: Sequence[Individual],
        rng: np.random.Generator,
        default_spec: Callable[[int], dict | None] | None = None,
    ) -> GenerationOutcome:
        """Who survives and who replaces the others (population given in slot order)."""
        if self.select is not None:
            outcome = self._select_and_inherit(population, rng, default_spec)
        elif self.selection == "fermi":
            outcome = self._imitate(population, self._fermi(population, rng))
        else:
            outcome = self._imitate(population, self._moran(population, rng))
        return self._mutate(outcome, rng)

    def _select_and_inherit(
        self,
        population: Sequence[Individual],
        rng: np.random.Generator,
        default_spec: Callable[[int], dict | None] | None,
    ) -> GenerationOutcome:
        # The draws, in order: selection, LLM newcomers' plans, scripted newcomers' plans.
        assert self.select is not None
        fitness = {p.agent_id: p.fitness for p in population}
        survivors = self.select.select(fitness, rng, self.survivors)
        by_id = {p.agent_id: p for p in population}
        infos = [
            SurvivorInfo(a, by_id[a].name, by_id[a].strategy, by_id[a].fitness) for a in survivors
        ]
        alive = set(survivors)
        dead = [p for p in population if p.agent_id not in alive]
        dead_llm = [p for p in dead if p.llm]
        dead_scripted = [p for p in dead if not p.llm]
        plans_llm = self.inherit.plan(infos, len(dead_llm), rng)
        scripted_infos = [i for i in infos if not by_id[i.agent_id].llm]
        plans_scripted = self.inherit.plan(scripted_infos, len(dead_scripted), rng)
        out: dict[int, Newcomer] = {}
        for p, plan in zip(dead_llm, plans_llm, strict=True):
            if plan.copy is not None:
                src = by_id[plan.copy.agent_id]
                out[p.slot] = Newcomer(
                    p.slot, plan.parent_id, copy_text=src.strategy, copy_valid=src.valid
                )
            else:
                advice = tuple(by_id[a.agent_id] for a in plan.advice)
                out[p.slot] = Newcomer(p.slot, plan.parent_id, advice=advice)
        for p, plan in zip(dead_scripted, plans_scripted, strict=True):
            if plan.parent_id is not None:
                spec = by_id[plan.parent_id].spec
            else:
                spec = default_spec(p.slot) if default_spec else p.spec
            out[p.slot] = Newcomer(
                p.slot, plan.parent_id, spec=None if spec is None else dict(spec)
            )
        return GenerationOutcome(survivors, [out[k] for k in sorted(out)])

    def _fermi(self, population: Sequence[Individual], rng: np.random.Generator) -> dict[int, int]:
        """slot -> the slot whose policy it adopts (synchronous, one revision each)."""
        n = len(population)
        adopt: dict[int, int] = {}
        if n < 2:
            return adopt
        for a in range(n):
            b = int(rng.integers(n - 1))
            b += b >= a  # uniform among the others
            p = fermi_probability(population[a].fitness, population[b].fitness, self.beta)
            if rng.random() < p:
                adopt[a] = b
        return adopt

    def _moran(self, population: Sequence[Individual], rng: np.random.Generator) -> dict[int, int]:
        """One birth-death event: the dying slot -> the reproducer's slot."""
        n = len(population)
        p = _weights(np.array([x.fitness for x in population]))
        parent = int(rng.choice(n, p=p))
        dies = int(rng.integers(n))
        return {} if dies == parent else {dies: parent}

    def _imitate(
        self, population: Sequence[Individual], adopt: dict[int, int]
    ) -> GenerationOutcome:
        newcomers = []
        for slot in sorted(adopt):
            model = population[adopt[slot]]
            if not population[slot].llm:
                spec = None if model.spec is None else dict(model.spec)
                newcomers.append(Newcomer(slot, model.agent_id, spec=spec))
            elif self.inherit.name == "copy":
                newcomers.append(
                    Newcomer(slot, model.agent_id, copy_text=model.strategy, copy_valid=model.valid)
                )
            else:
                newcomers.append(Newcomer(slot, model.agent_id, advice=(model,)))
        kept = [p for p in population if p.slot not in adopt]
        survivors = [p.agent_id for p in sorted(kept, key=lambda p: -p.fitness)]
        return GenerationOutcome(survivors, newcomers)

    def _mutate(self, outcome: GenerationOutcome, rng: np.random.Generator) -> GenerationOutcome:
        if self.mutation <= 0:
            return outcome  # draws nothing: without mutation the random stream is unchanged
        out = []
        for nc in outcome.newcomers:
            if nc.spec is not None and rng.random() < self.mutation:
                spec = dict(self.pool[int(rng.integers(len(self.pool)))])
                nc = Newcomer(nc.slot, nc.parent_id, spec=spec, mutated=True)
            out.append(nc)
        return GenerationOutcome(outcome.survivors, out)


def make_evolution(**options: object) -> Evolution:
    """The evolution rules of a scenario's ``evolution`` section (ValueError names the field)."""
    return Evolution(**options)  # type: ignore[arg-type]
