"""Rules of the traveler's dilemma, repeated between pairs of a population.

Basu (1994, "The Traveler's Dilemma: Paradoxes of Rationality", AER 84(2)) posed the
game; Capra, Goeree, Gomez & Holt (1999, "Anomalous Behavior in a Traveler's Dilemma?",
AER 89(3)) ran it in the laboratory with claims in [80, 200] and rewards R in
{5, 10, 20, 25, 50, 80}. Two players each claim a whole number in ``[low, high]``. Both
receive the lower claim; when the claims differ, the lower claimant gets ``R`` more and
the higher claimant ``R`` less; equal claims pay each player their claim. Undercutting
the partner's claim by one always pays, so the unique Nash equilibrium is ``low`` for
both, whatever ``R``; yet people claim near ``high`` when ``R`` is small and near ``low``
when ``R`` is large (Capra et al.).

Pure: no I/O; randomness only through the caller's ``numpy.random.Generator`` (the
rules themselves draw nothing; a random matcher may).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, overload

import numpy as np

from games.protocol import Event, Game, Number, Position, Turn

__all__ = [
    "TravelersGame",
    "TravelersKind",
    "TravelersObservation",
    "TravelersRules",
    "payoffs",
]


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


@dataclass(frozen=True)
class TravelersRules:
    """Claims are whole numbers in ``[low, high]``; ``reward`` is Basu's ``R`` (> 0).

    Defaults are those of Capra et al. (1999): claims 80..200 and R = 5.

    Raises:
        ValueError: ``low``/``high`` not integers, ``low >= high``, or ``reward`` not a
            finite number > 0. Each message starts with the field's name.
    """

    low: int = 80
    high: int = 200
    reward: float = 5

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if not _is_int(value):
                raise ValueError(f"{name}: must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.low >= self.high:
            raise ValueError(
                f"low: must be less than high, got low={self.low} and high={self.high}"
            )
        r = self.reward
        if (
            isinstance(r, bool)
            or not isinstance(r, int | float | np.integer | np.floating)
            or not math.isfinite(r)
            or r <= 0
        ):
            raise ValueError(f"reward: must be a number > 0, got {r!r}")
        object.__setattr__(self, "reward", int(r) if _is_int(r) else float(r))

    def check_claim(self, claim: Any) -> int:
        """``claim`` as an int, or a ValueError when it is not a whole number in range."""
        if isinstance(claim, bool) or not isinstance(claim, int | float | np.integer | np.floating):
            raise ValueError(f"a claim must be a whole number, got {claim!r}")
        if not (math.isfinite(claim) and claim == int(claim)):
            raise ValueError(f"a claim must be a whole number, got {claim!r}")
        if not self.low <= claim <= self.high:
            raise ValueError(f"claim {claim!r} is outside [{self.low}, {self.high}]")
        return int(claim)


@overload
def payoffs(a: int, b: int, rules: TravelersRules) -> tuple[float, float]: ...
@overload
def payoffs(
    a: np.ndarray, b: np.ndarray, rules: TravelersRules
) -> tuple[np.ndarray, np.ndarray]: ...
def payoffs(a: Any, b: Any, rules: TravelersRules) -> tuple[Any, Any]:
    """Payoffs of claims ``a`` and ``b`` (player A's, player B's).

    Both get ``min(a, b)``; when ``a < b``, A gets ``R`` more and B ``R`` less (and the
    other way round); equal claims pay the claim. Scalars give two floats; arrays
    (broadcast together) give two float arrays.

    Raises:
        ValueError: a claim that is not a whole number in ``[low, high]``.
    """
    x = np.asarray(a)
    y = np.asarray(b)
    for arr, what in ((x, "a"), (y, "b")):
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"claims {what} must be numbers, got dtype {arr.dtype}")
        if arr.size:
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
                raise ValueError(f"claims {what} must be whole numbers")
            if arr.min() < rules.low or arr.max() > rules.high:
                raise ValueError(f"claims {what} must lie in [{rules.low}, {rules.high}]")
    low = np.minimum(x, y).astype(float)
    bonus = rules.reward * np.sign(y - x).astype(float)  # +R for the lower claimant A
    pa, pb = low + bonus, low - bonus
    if pa.ndim == 0:
        return float(pa), float(pb)
    return pa, pb


class TravelersObservation(NamedTuple):
    """One player's view of its match before claiming in round ``round`` (1-based).

    ``rounds`` is the match length, or None when it is not revealed. The histories hold
    one entry per past round of this match: own claims, the partner's, own payoffs.
    """

    round: int
    rounds: int | None
    my_claims: tuple[int, ...]
    their_claims: tuple[int, ...]
    my_payoffs: tuple[float, ...]
    rules: TravelersRules


class TravelersKind(StrEnum):
    """Decision and event kinds of the traveler's dilemma, as recorded in the run store."""

    CLAIM = "claim"
    PAYOFF = "payoff"


Pair = tuple[int, int]


class TravelersGame(Game):
    """Matches of a repeated traveler's dilemma, played side by side in lockstep.

    Every pair the ``pairs`` callable gives in a round plays one stage game per step.
    With ``static`` pairs (round-robin, network edges) the pairs are fixed at the start
    and each plays one match of ``rounds`` rounds; otherwise pairs are drawn every round
    (``rounds`` rounds in all) and a pair that meets again continues its history. Turns
    come per pair, the lower slot first; a step's events are one ``payoff`` per turn, in
    turn order (action: the claim as text, value: the payoff, data: the partner's claim).

    The state holds the histories and the points, as plain JSON data.
    """

    kind = "travelers_dilemma"

    def __init__(
        self,
        rules: TravelersRules,
        pairs: Callable[[int, np.random.Generator], list[Pair]],
        *,
        static: bool,
        rng: np.random.Generator,
        rounds: int = 10,
        reveal_rounds: bool = True,
        fallback: int | None = None,
    ) -> None:
        if not _is_int(rounds) or rounds < 1:
            raise ValueError(f"rounds: must be an integer >= 1, got {rounds!r}")
        self.rules = rules
        self.pairs = pairs
        self.static = static
        self.rounds = int(rounds)
        self.reveal_rounds = reveal_rounds
        self.fallback = rules.high if fallback is None else rules.check_claim(fallback)
        self.spec = Number(rules.low, rules.high, integer=True, field="claim")
        self.round = 0
        # pair -> (claims of pair[0], claims of pair[1], payoffs of pair[0], of pair[1])
        self.hist: dict[Pair, tuple[list[int], list[int], list[float], list[float]]] = {}
        self.points: dict[int, list[float]] = {}  # slot -> [total payoff, rounds played]
        self._active: list[Pair] = []
        if static:
            for pair in pairs(0, rng):
                self.hist[pair] = ([], [], [], [])

    @property
    def done(self) -> bool:
        return self.round >= self.rounds

    def total_steps(self) -> int | None:
        return self.rounds

    def position(self) -> Position:
        return Position(0, self.round)

    def pending(self, rng: np.random.Generator) -> list[Turn]:
        rules, spec, fallback = self.rules, self.spec, self.fallback
        shown = self.rounds if self.reveal_rounds else None
        pairs = list(self.hist) if self.static else self.pairs(self.round, rng)
        self._active = pairs
        turns: list[Turn] = []
        for k, pair in enumerate(pairs):
            h = self.hist.setdefault(pair, ([], [], [], []))
            i, j = pair
            r = len(h[0]) + 1
            ci, cj, pi, pj = tuple(h[0]), tuple(h[1]), tuple(h[2]), tuple(h[3])
            obs_i = TravelersObservation(r, shown, ci, cj, pi, rules)
            obs_j = TravelersObservation(r, shown, cj, ci, pj, rules)
            turns.append(Turn(i, j, TravelersKind.CLAIM, obs_i, spec, fallback, k))
            turns.append(Turn(j, i, TravelersKind.CLAIM, obs_j, spec, fallback, k))
        return turns

    def apply(
        self, turns: Sequence[Turn], actions: Sequence[Any], rng: np.random.Generator
    ) -> list[Event]:
        claims = np.asarray(actions, dtype=np.int64).reshape(-1, 2)
        pay_a, pay_b = payoffs(claims[:, 0], claims[:, 1], self.rules)
        events: list[Event] = []
        points = self.points
        for pair, (a, b), pa, pb in zip(
            self._active, claims.tolist(), pay_a.tolist(), pay_b.tolist(), strict=True
        ):
            i, j = pair
            h = self.hist[pair]
            h[0].append(a)
            h[1].append(b)
            h[2].append(pa)
            h[3].append(pb)
            events.append(Event(TravelersKind.PAYOFF, i, j, str(a), pa, {"partner_claim": b}))
            events.append(Event(TravelersKind.PAYOFF, j, i, str(b), pb, {"partner_claim": a}))
            for slot, pay in ((i, pa), (j, pb)):
                acc = points.setdefault(slot, [0.0, 0])
                acc[0] += pay
                acc[1] += 1
        self._active = []
        self.round += 1
        return events

    def record(self, turn: Turn, action: Any) -> tuple[str | None, float | None, Any]:
        """A claim is stored as its text and its value."""
        return str(action), float(action), None

    def fitness(self) -> dict[int, tuple[float, dict[str, Any] | None]]:
        """Per slot: the mean payoff per round played (detail: total and rounds)."""
        return {
            slot: (total / n, {"total": total, "rounds": int(n)})
            for slot, (total, n) in sorted(self.points.items())
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "matches": [[i, j, *(list(x) for x in h)] for (i, j), h in self.hist.items()],
            "points": [[slot, total, int(n)] for slot, (total, n) in self.points.items()],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.round = int(state["round"])
        self.hist = {
            (int(i), int(j)): (
                [int(x) for x in ci],
                [int(x) for x in cj],
                [float(x) for x in pi],
                [float(x) for x in pj],
            )  # fmt: skip
            for i, j, ci, cj, pi, pj in state["matches"]
        }
        self.points = {int(s): [float(t), int(n)] for s, t, n in state["points"]}
        self._active = []
