"""Scripted reference strategies for two-player repeated 2x2 games.

Moves are ints: ``C = 0`` (cooperate, option A) and ``D = 1`` (defect, option B).

Every strategy is a small class in the style of the Axelrod library: a registry ``name``, a
``classifier`` dict with Axelrod's keys, validated keyword parameters, and one method::

    move(my, their, rng) -> int

which returns the next move given both histories of the current match (``my[i]`` and
``their[i]`` are the moves of round ``i``; both have the length of the rounds already played).

Contract (the runtime relies on it):

- Stateless: everything is derived from the two histories, so one instance can play any
  number of partners at once and checkpointing needs nothing but the histories.
- Deterministic strategies never touch ``rng``. A stochastic strategy draws exactly one
  ``rng.random()`` per move when (and only when) that move needs randomness; e.g. ``random``
  with ``p=1`` or ``memory_one`` with all probabilities in {0, 1} draws nothing.
- ``move`` returns a plain ``int`` (0 or 1); histories may be lists, tuples or 1-d numpy
  arrays of 0/1 (ints, bools or numpy ints). Lists are the fast path.

``make_strategy`` builds a strategy from a spec: a name (``"tit_for_tat"``), a dict
(``{"name": "random", "p": 0.3}``) or ``"axelrod:<Player name or class name>"`` for any
strategy of the optional ``axelrod`` library (see ``agents.axelrod_adapter``).

This module does not import the runtime (``society``) and needs nothing beyond numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from agents.params import Param, Parameterised, parse_spec

if TYPE_CHECKING:
    from games.protocol import Turn

C, D = 0, 1

AXELROD_PREFIX = "axelrod:"

__all__ = [
    "AXELROD_PREFIX",
    "C",
    "D",
    "STRATEGIES",
    "Strategy",
    "make_strategy",
    "strategy_names",
]


def _classifier(memory_depth: float, stochastic: bool = False) -> dict[str, Any]:
    return {
        "memory_depth": memory_depth,
        "stochastic": stochastic,
        "makes_use_of": set(),
        "long_run_time": False,
        "inspects_source": False,
        "manipulates_source": False,
        "manipulates_state": False,
    }


CLASSIFIER_KEYS: tuple[str, ...] = tuple(_classifier(0))


class Strategy(Parameterised):
    """Base class of scripted strategies (see the module docstring for the contract)."""

    name: ClassVar[str] = "strategy"
    classifier: ClassVar[dict[str, Any]] = _classifier(float("inf"))

    @property
    def stochastic(self) -> bool:
        """Whether this instance (with its parameters) ever draws random numbers."""
        return bool(self.classifier["stochastic"])

    def move(self, my: Sequence[int], their: Sequence[int], rng: np.random.Generator) -> int:
        raise NotImplementedError

    def act(self, turn: Turn, rng: np.random.Generator) -> int:
        """The game protocol's scripted-policy call: this round's move in a match."""
        obs = turn[3]  # turn.observation (indexed: called for every scripted move)
        return self.move(obs[1], obs[2], rng)  # obs.my_moves, obs.their_moves

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.name}({args})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Strategy):
            return NotImplemented
        return self.name == other.name and self.params() == other.params()

    def __hash__(self) -> int:
        return hash((self.name, repr(sorted(self.params().items()))))


# --------------------------------------------------------------------------- deterministic


class AlwaysCooperate(Strategy):
    """Always C (option A)."""

    name = "always_cooperate"
    classifier = _classifier(0)

    def move(self, my, their, rng):
        return C


class AlwaysDefect(Strategy):
    """Always D (option B)."""

    name = "always_defect"
    classifier = _classifier(0)

    def move(self, my, their, rng):
        return D


class AlwaysA(AlwaysCooperate):
    """Always option A (0); the battle-of-the-sexes name of ``always_cooperate``."""

    name = "always_a"


class AlwaysB(AlwaysDefect):
    """Always option B (1); the battle-of-the-sexes name of ``always_defect``."""

    name = "always_b"


class TitForTat(Strategy):
    """C first, then copy the partner's last move (Axelrod's ``TitForTat``)."""

    name = "tit_for_tat"
    classifier = _classifier(1)

    def move(self, my, their, rng):
        return D if len(their) and their[-1] else C


class SuspiciousTitForTat(Strategy):
    """D first, then copy the partner's last move (Axelrod's ``SuspiciousTitForTat``)."""

    name = "suspicious_tft"
    classifier = _classifier(1)

    def move(self, my, their, rng):
        if not len(their):
            return D
        return D if their[-1] else C


class TitForTwoTats(Strategy):
    """Defect only after two consecutive partner defections (Axelrod's ``TitFor2Tats``)."""

    name = "tit_for_two_tats"
    classifier = _classifier(2)

    def move(self, my, their, rng):
        return D if len(their) >= 2 and their[-1] and their[-2] else C


class GrimTrigger(Strategy):
    """C until the partner defects once, then D forever (Axelrod's ``Grudger``).

    The trigger is the partner's history, not our own last move, so a move of ours that the
    runtime overrode (noise, invalid-reply fallback) does not pull it.
    """

    name = "grim_trigger"
    classifier = _classifier(float("inf"))

    def move(self, my, their, rng):
        if not len(their):
            return C
        if their[-1]:
            return D
        return D if D in their else C


class WinStayLoseShift(Strategy):
    """Pavlov: C first, then C iff both moves of the last round were equal.

    Equivalently: repeat the last move after the partner cooperated, switch after it
    defected (Axelrod's ``WinStayLoseShift``).
    """

    name = "win_stay_lose_shift"
    classifier = _classifier(1)

    def move(self, my, their, rng):
        if not len(my):
            return C
        return C if my[-1] == their[-1] else D


class Alternate(Strategy):
    """Play ``start`` first, then the opposite of our own last move.

    Like Axelrod's ``Alternator`` (which is ``alternate`` with ``start=0``) the schedule follows
    our own last move, so it stays an alternation even if the runtime overrode a move.
    """

    name = "alternate"
    classifier = _classifier(1)
    parameters = {"start": Param(C, "move", "first move: 0 (C / option A) or 1 (D / option B)")}
    start: int

    def move(self, my, their, rng):
        if not len(my):
            return self.start
        return C if my[-1] else D


class AlternateB(Alternate):
    """Alternate starting with option B (1): B, A, B, A, ... (battle of the sexes)."""

    name = "alternate_b"
    parameters = {}
    start = D


class DefectOnce(Strategy):
    """D in the first round, then C forever (Akata et al.'s "defect once then cooperate")."""

    name = "defect_once"
    classifier = _classifier(0)

    def move(self, my, their, rng):
        return C if len(my) else D


# ------------------------------------------------------------------------------ stochastic


def _draw(p: float, rng: np.random.Generator) -> int:
    """C with probability ``p``; draws one ``rng.random()`` only when 0 < p < 1."""
    if p >= 1.0:
        return C
    if p <= 0.0:
        return D
    return C if rng.random() < p else D


@dataclass(frozen=True)
class OptionalProbability(Param):
    """A probability parameter that may also be None (meaning: derived at play time)."""

    kind: str = "probability"

    def check(self, owner: str, name: str, value: Any) -> float | None:
        """``value`` as a float in [0, 1], None as None, or a ValueError naming both."""
        if value is None:
            return None
        return super().check(owner, name, value)


# (R, S, T, P) of the classic prisoner's dilemma, Axelrod's default game.
CLASSIC_PD_RSTP: tuple[float, float, float, float] = (3.0, 0.0, 5.0, 1.0)


def gtft_generosity(R: float, S: float, T: float, P: float) -> float:
    """Generous tit for tat's generosity for a game: Axelrod's ``GTFT`` formula.

    ``min(1 - (T - R) / (R - S), (R - P) / (T - P))`` (Nowak & Sigmund), as the axelrod
    library computes it from the match's game: 1/3 for R=3, S=0, T=5, P=1 and 0.6 for
    R=8, S=0, T=10, P=5. The formula is meant for prisoner's dilemmas (T > R > P > S); for
    other games the value is clipped to [0, 1] (e.g. 1, always forgive, in the stag hunt,
    where defecting against a cooperator does not pay) and a term whose denominator is zero
    is left out (no term left: 1).
    """
    terms = []
    if R != S:
        terms.append(1.0 - (T - R) / (R - S))
    if T != P:
        terms.append((R - P) / (T - P))
    return float(min(1.0, max(0.0, min(terms, default=1.0))))


def _rstp(payoffs: Any) -> tuple[float, float, float, float]:
    """(R, S, T, P) of a repeated game's own-view payoffs (``payoffs[mine][theirs]``)."""
    return (payoffs[0][0][0], payoffs[0][1][0], payoffs[1][0][0], payoffs[1][1][0])


CLASSIC_GENEROSITY = gtft_generosity(*CLASSIC_PD_RSTP)  # 1/3


class GenerousTitForTat(Strategy):
    """Tit for tat that cooperates after a partner defection with probability ``generosity``.

    By default (``generosity`` None) the generosity comes from the game, as in Axelrod's
    ``GTFT``: :func:`gtft_generosity` of the stage game's R, S, T, P, read from the
    observation's own-view payoffs when the runtime calls :meth:`act` (so each player of an
    asymmetric game uses its own payoffs). :meth:`move` alone does not see the game and uses
    the classic prisoner's dilemma's value, 1/3 (:data:`CLASSIC_GENEROSITY`). An explicit
    ``generosity`` overrides both.
    """

    name = "generous_tft"
    classifier = _classifier(1, stochastic=True)
    parameters = {
        "generosity": OptionalProbability(
            None,
            doc="probability of cooperating after a defection "
            "(null: from the game's payoffs, min(1 - (T-R)/(R-S), (R-P)/(T-P)))",
        )
    }
    generosity: float | None

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._by_game: dict[Any, float] = {}  # generosity per payoff table (a cache)
        self._last: tuple[Any, float] = (None, CLASSIC_GENEROSITY)  # the last table looked up

    @property
    def stochastic(self) -> bool:
        # From the game: the value is only known at play time, so it may draw.
        return self.generosity is None or 0.0 < self.generosity < 1.0

    def generosity_for(self, payoffs: Any = None) -> float:
        """The generosity played in a game with these own-view ``payoffs`` (None: unknown,
        the classic prisoner's dilemma's 1/3); an explicit ``generosity`` wins."""
        if self.generosity is not None:
            return self.generosity
        last, g = self._last
        if payoffs is last:  # the same table object as last time (one per game and side)
            return g
        if payoffs is None:
            return CLASSIC_GENEROSITY
        cached = self._by_game.get(payoffs)
        if cached is None:
            cached = self._by_game[payoffs] = gtft_generosity(*_rstp(payoffs))
        self._last = (payoffs, cached)
        return cached

    def move(self, my, their, rng):
        if not len(their) or not their[-1]:
            return C
        return _draw(self.generosity_for(), rng)

    def act(self, turn: Turn, rng: np.random.Generator) -> int:
        obs = turn[3]  # turn.observation: my_moves, their_moves, payoffs at 1, 2, 3
        their = obs[2]
        if not len(their) or not their[-1]:
            return C
        return _draw(self.generosity_for(obs[3]), rng)


class Random(Strategy):
    """C with probability ``p`` each round, independently (Axelrod's ``Random``)."""

    name = "random"
    classifier = _classifier(0, stochastic=True)
    parameters = {"p": Param(0.5, "probability", "probability of cooperating")}
    p: float

    @property
    def stochastic(self) -> bool:
        return 0.0 < self.p < 1.0

    def move(self, my, their, rng):
        return _draw(self.p, rng)


class MemoryOne(Strategy):
    """General memory-one strategy.

    ``p_cc``, ``p_cd``, ``p_dc``, ``p_dd`` are the probabilities of cooperating after the last
    round's (my move, their move); ``p_first`` the probability of cooperating in round one.
    With every probability in {0, 1} it is deterministic and never draws random numbers,
    e.g. tit for tat is ``(1, 0, 1, 0)`` and win-stay lose-shift ``(1, 0, 0, 1)``.
    """

    name = "memory_one"
    classifier = _classifier(1, stochastic=True)
    parameters = {
        "p_cc": Param(1.0, "probability", "P(C) after (C, C)"),
        "p_cd": Param(0.0, "probability", "P(C) after (C, D)"),
        "p_dc": Param(1.0, "probability", "P(C) after (D, C)"),
        "p_dd": Param(0.0, "probability", "P(C) after (D, D)"),
        "p_first": Param(1.0, "probability", "P(C) in the first round"),
    }
    p_cc: float
    p_cd: float
    p_dc: float
    p_dd: float
    p_first: float

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._table = (self.p_cc, self.p_cd, self.p_dc, self.p_dd)

    @property
    def stochastic(self) -> bool:
        return any(0.0 < p < 1.0 for p in self._params.values())

    def move(self, my, their, rng):
        if not len(my):
            return _draw(self.p_first, rng)
        return _draw(self._table[(2 if my[-1] else 0) + (1 if their[-1] else 0)], rng)


# -------------------------------------------------------------------------------- registry

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        AlwaysCooperate,
        AlwaysDefect,
        TitForTat,
        TitForTwoTats,
        SuspiciousTitForTat,
        GenerousTitForTat,
        GrimTrigger,
        WinStayLoseShift,
        Random,
        Alternate,
        DefectOnce,
        MemoryOne,
        AlwaysA,
        AlwaysB,
        AlternateB,
    )
}


def strategy_names() -> list[str]:
    """Registry names of the built-in strategies, sorted."""
    return sorted(STRATEGIES)


def make_strategy(spec: str | Mapping[str, Any] | Strategy) -> Strategy:
    """Build a strategy from a name, a ``{"name": ..., **params}`` dict, or an instance.

    ``"axelrod:<name>"`` (e.g. ``"axelrod:Tit For Tat"`` or ``"axelrod:TitForTat"``) wraps a
    strategy of the ``axelrod`` library; extra dict keys go to the adapter (``match_length``,
    ``game``) or to the Axelrod player's constructor.
    """
    if isinstance(spec, Strategy):
        return spec
    name, params = parse_spec(spec, "strategy")
    if name.startswith(AXELROD_PREFIX):
        from agents.axelrod_adapter import AxelrodStrategy  # lazy: axelrod is optional

        return AxelrodStrategy(name[len(AXELROD_PREFIX) :], **params)
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ValueError(
            f"unknown strategy {name!r}; valid names: {', '.join(strategy_names())}, "
            f"or '{AXELROD_PREFIX}<Name>' for any strategy of the axelrod library "
            f"(e.g. '{AXELROD_PREFIX}Tit For Tat')"
        )
    return cls(**params)
