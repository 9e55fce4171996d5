"""Two-player, two-option stage games and the presets the scenarios use.

Actions are the ints 0 and 1. Option 0 ("option A") is the cooperative option in every
preset (cooperate, stag, swerve, ...); option 1 ("option B") is the other one.
``payoffs[a1][a2] == (payoff to player 1, payoff to player 2)``. Players are indexed 0
(the row player) and 1 (the column player) in code.

Every number of a preset is a keyword parameter with the protocol's value as default, so a
scenario can change each of them.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Cell = tuple[float, float]
Row = tuple[Cell, Cell]
Payoffs = tuple[Row, Row]

_CELLS: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (1, 0), (1, 1))


def _as_payoffs(raw: Any) -> Payoffs:
    """Turn a nested sequence into the canonical tuple form, or raise a clear ValueError."""
    expected = "payoffs must be 2x2 cells of (payoff to player 1, payoff to player 2)"
    if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) != 2:
        raise ValueError(f"{expected}; got {raw!r}")
    rows = []
    for a1, row in enumerate(raw):
        if not isinstance(row, Sequence) or isinstance(row, str) or len(row) != 2:
            raise ValueError(f"{expected}; row {a1} is {row!r}")
        cells = []
        for a2, cell in enumerate(row):
            if not isinstance(cell, Sequence) or isinstance(cell, str) or len(cell) != 2:
                raise ValueError(f"{expected}; cell [{a1}][{a2}] is {cell!r}")
            pair = []
            for v in cell:
                if isinstance(v, bool) or not isinstance(v, int | float | np.number):
                    raise ValueError(f"payoff in cell [{a1}][{a2}] must be a number, got {v!r}")
                if not math.isfinite(float(v)):
                    raise ValueError(f"payoff in cell [{a1}][{a2}] must be finite, got {v!r}")
                pair.append(float(v))
            cells.append((pair[0], pair[1]))
        rows.append((cells[0], cells[1]))
    return (rows[0], rows[1])


def _check_action(a: int, who: str) -> int:
    if isinstance(a, bool) or not isinstance(a, int | np.integer) or a not in (0, 1):
        raise ValueError(f"{who} must be 0 or 1, got {a!r}")
    return int(a)


def _check_player(p: int) -> int:
    if isinstance(p, bool) or not isinstance(p, int | np.integer) or p not in (0, 1):
        raise ValueError(f"player must be 0 (row player) or 1 (column player), got {p!r}")
    return int(p)


@dataclass(frozen=True)
class Game2x2:
    """A 2x2 bimatrix game: ``payoffs[a1][a2] == (payoff to player 1, payoff to player 2)``.

    Nested lists are accepted and normalised to tuples of floats, so games built from YAML
    or JSON compare equal to games built in code.
    """

    name: str
    payoffs: Payoffs
    family: str | None = None
    description: str = ""
    # Cached (2, 2, 2) array for vectorised lookups; not part of identity.
    _matrix: np.ndarray = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"game name must be a non-empty string, got {self.name!r}")
        if self.family is not None and not isinstance(self.family, str):
            raise ValueError(f"game family must be a string or None, got {self.family!r}")
        if not isinstance(self.description, str):
            raise ValueError(f"game description must be a string, got {self.description!r}")
        object.__setattr__(self, "payoffs", _as_payoffs(self.payoffs))
        matrix = np.array(self.payoffs, dtype=np.float64)
        matrix.setflags(write=False)
        object.__setattr__(self, "_matrix", matrix)

    def payoff(self, a1: int, a2: int) -> tuple[float, float]:
        """Payoffs (player 1, player 2) when player 1 plays ``a1`` and player 2 plays ``a2``."""
        return self.payoffs[_check_action(a1, "a1")][_check_action(a2, "a2")]

    def for_player(self, p: int) -> Game2x2:
        """The game as seen by player ``p``: that player becomes the row player.

        For ``p == 0`` this is the game itself. For ``p == 1`` roles are swapped, so
        ``g.for_player(1).payoff(b, a) == g.payoff(a, b)[::-1]``.
        """
        if _check_player(p) == 0:
            return self
        swapped = tuple(
            tuple((self.payoffs[a2][a1][1], self.payoffs[a2][a1][0]) for a2 in (0, 1))
            for a1 in (0, 1)
        )
        return Game2x2(self.name, swapped, self.family, self.description)  # type: ignore[arg-type]

    def max_payoff(self, player: int = 0) -> float:
        """Largest payoff ``player`` can get in any cell."""
        p = _check_player(player)
        return max(self.payoffs[i][j][p] for i, j in _CELLS)

    def min_payoff(self, player: int = 0) -> float:
        """Smallest payoff ``player`` can get in any cell."""
        p = _check_player(player)
        return min(self.payoffs[i][j][p] for i, j in _CELLS)

    def is_symmetric(self) -> bool:
        """True when swapping the players' roles leaves the game unchanged."""
        return all(self.payoffs[i][j][0] == self.payoffs[j][i][1] for i, j in _CELLS)

    def as_matrix(self) -> np.ndarray:
        """Read-only float array ``m`` of shape (2, 2, 2) with ``m[a1, a2, player]``."""
        return self._matrix

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form; inverse of :meth:`from_dict`."""
        return {
            "name": self.name,
            "payoffs": [[list(cell) for cell in row] for row in self.payoffs],
            "family": self.family,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Game2x2:
        """Build a game from :meth:`to_dict`'s output (``family``/``description`` optional)."""
        if not isinstance(data, dict):
            raise ValueError(f"game must be a mapping, got {type(data).__name__}")
        unknown = set(data) - {"name", "payoffs", "family", "description"}
        if unknown:
            raise ValueError(f"unknown game field(s): {sorted(unknown)}")
        missing = {"name", "payoffs"} - set(data)
        if missing:
            raise ValueError(f"game is missing field(s): {sorted(missing)}")
        return cls(
            name=data["name"],
            payoffs=data["payoffs"],
            family=data.get("family"),
            description=data.get("description", ""),
        )


def pure_nash_equilibria(game: Game2x2) -> list[tuple[int, int]]:
    """Cells ``(a1, a2)`` where neither player gains by deviating alone (weak inequality)."""
    p = game.payoffs
    return [
        (i, j) for i, j in _CELLS if p[i][j][0] >= p[1 - i][j][0] and p[i][j][1] >= p[i][1 - j][1]
    ]


def pareto_optimal(game: Game2x2) -> list[tuple[int, int]]:
    """Cells that no other cell Pareto-dominates (at least as good for both, better for one)."""
    p = game.payoffs

    def dominates(d: tuple[int, int], c: tuple[int, int]) -> bool:
        x, y = p[d[0]][d[1]], p[c[0]][c[1]]
        return x[0] >= y[0] and x[1] >= y[1] and (x[0] > y[0] or x[1] > y[1])

    return [c for c in _CELLS if not any(dominates(d, c) for d in _CELLS if d != c)]


# ---------------------------------------------------------------------------------------
# Presets. Symmetric ones use the R/S/T/P convention with option 0 = cooperate:
# (C,C) -> R/R, (C,D) -> S/T, (D,C) -> T/S, (D,D) -> P/P.


def _symmetric(name: str, family: str, description: str, R: float, S: float, T: float, P: float):
    return Game2x2(
        name=name,
        payoffs=(((R, R), (S, T)), ((T, S), (P, P))),
        family=family,
        description=description,
    )


def prisoners_dilemma(R: float = 8.0, S: float = 0.0, T: float = 10.0, P: float = 5.0) -> Game2x2:
    """Prisoner's dilemma of Akata et al. (protocols §2): 8/8, 0/10, 10/0, 5/5 by default."""
    _check_pd(R, S, T, P)
    return _symmetric(
        "prisoners_dilemma",
        "prisoners_dilemma",
        "Option 0 cooperates, option 1 defects; defecting dominates, mutual cooperation pays more.",
        R,
        S,
        T,
        P,
    )


def prisoners_dilemma_classic(
    R: float = 3.0, S: float = 0.0, T: float = 5.0, P: float = 1.0
) -> Game2x2:
    """Axelrod's prisoner's dilemma: R=3, S=0, T=5, P=1 by default."""
    _check_pd(R, S, T, P)
    return _symmetric(
        "prisoners_dilemma_classic",
        "prisoners_dilemma",
        "Axelrod's payoffs; option 0 cooperates, option 1 defects.",
        R,
        S,
        T,
        P,
    )


def _check_pd(R: float, S: float, T: float, P: float) -> None:
    if not T > R > P > S:
        raise ValueError(
            f"a prisoner's dilemma needs T > R > P > S; got T={T}, R={R}, P={P}, S={S}"
        )
    # Without 2R > T + S, alternating exploitation beats mutual cooperation in repeated play.
    if not 2 * R > T + S:
        raise ValueError(f"a prisoner's dilemma needs 2R > T + S; got 2R={2 * R}, T+S={T + S}")


def battle_of_the_sexes(high: float = 10.0, low: float = 7.0, miss: float = 0.0) -> Game2x2:
    """Battle of the sexes (protocols §2): 10/7 on option 0, 7/10 on option 1, 0/0 on a mismatch.

    Option 0 is player 1's favourite, option 1 is player 2's.
    """
    if not high > low > miss:
        raise ValueError(
            f"battle of the sexes needs high > low > miss; got high={high}, low={low}, miss={miss}"
        )
    return Game2x2(
        name="battle_of_the_sexes",
        payoffs=(((high, low), (miss, miss)), ((miss, miss), (low, high))),
        family="biased",
        description="Coordinate on one option; option 0 is player 1's favourite, option 1 player 2's.",
    )


def stag_hunt(R: float = 4.0, S: float = 0.0, T: float = 3.0, P: float = 2.0) -> Game2x2:
    """Stag hunt: both stag 4/4, stag vs hare 0/3, hare vs stag 3/0, both hare 2/2.

    Option 0 hunts the stag. The defaults are strictly ordinal (R > T > P > S) so the game
    sits in one Robinson–Goforth class; ``T == P`` (hare pays the same whatever the other
    does, e.g. 3/3) is also accepted.
    """
    if not (R > T >= P > S):
        raise ValueError(f"a stag hunt needs R > T >= P > S; got R={R}, T={T}, P={P}, S={S}")
    return _symmetric(
        "stag_hunt",
        "win-win",
        "Hunting the stag together pays most, but hunting hare is safe.",
        R,
        S,
        T,
        P,
    )


def chicken(R: float = 3.0, S: float = 1.0, T: float = 4.0, P: float = 0.0) -> Game2x2:
    """Chicken (hawk-dove): both swerve 3/3, swerve vs straight 1/4, straight vs swerve 4/1,
    crash 0/0. Option 0 swerves."""
    if not T > R > S > P:
        raise ValueError(f"chicken needs T > R > S > P; got T={T}, R={R}, S={S}, P={P}")
    return _symmetric(
        "chicken",
        "unfair",
        "Going straight beats swerving unless both go straight and crash.",
        R,
        S,
        T,
        P,
    )


def harmony(R: float = 4.0, S: float = 2.0, T: float = 3.0, P: float = 1.0) -> Game2x2:
    """Harmony: both cooperate 4/4, C vs D 2/3, D vs C 3/2, both defect 1/1.

    Cooperating (option 0) strictly dominates, and mutual cooperation is best for both.
    """
    if not (R > T and S > P and R > S):
        raise ValueError(
            f"a harmony game needs R > T, S > P and R > S; got R={R}, S={S}, T={T}, P={P}"
        )
    return _symmetric(
        "harmony",
        "win-win",
        "Cooperating is best whatever the other does.",
        R,
        S,
        T,
        P,
    )


def custom(
    payoffs: Sequence[Sequence[Sequence[float]]],
    name: str = "custom",
    family: str | None = None,
    description: str = "",
) -> Game2x2:
    """A game from a nested list ``[[[p1, p2], [p1, p2]], [[p1, p2], [p1, p2]]]``."""
    return Game2x2(name=name, payoffs=payoffs, family=family, description=description)  # type: ignore[arg-type]


PRESETS: dict[str, Callable[..., Game2x2]] = {
    "prisoners_dilemma": prisoners_dilemma,
    "prisoners_dilemma_classic": prisoners_dilemma_classic,
    "battle_of_the_sexes": battle_of_the_sexes,
    "stag_hunt": stag_hunt,
    "chicken": chicken,
    "harmony": harmony,
    "custom": custom,
}


class UnknownPresetError(KeyError, ValueError):
    """An unknown preset name; both a KeyError and a ValueError so either catch works."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0]) if self.args else ""


def preset(name: str, /, **params: Any) -> Game2x2:
    """Build the preset ``name`` with its keyword parameters overridden by ``params``."""
    try:
        factory = PRESETS[name]
    except (KeyError, TypeError):
        raise UnknownPresetError(
            f"unknown 2x2 game preset {name!r}; valid names: {', '.join(sorted(PRESETS))}"
        ) from None
    signature = inspect.signature(factory)
    try:
        signature.bind(**params)
    except TypeError as exc:
        raise ValueError(
            f"bad parameters for 2x2 game preset {name!r} ({exc}); "
            f"accepted: {', '.join(signature.parameters)}"
        ) from None
    return factory(**params)
