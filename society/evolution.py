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

Add a rule by subclassing `Selection` / `Inheritance` and registering it in `SELECTIONS` /
`INHERITANCES`; the simulation looks rules up by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
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
