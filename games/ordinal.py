"""The 144 strictly ordinal 2x2 games (Robinson–Goforth topology) and their seven families.

Each player ranks the four outcomes 1 (worst) to 4 (best) without ties: 24 x 24 = 576
bimatrices. Relabelling a player's options (swapping rows, swapping columns) does not
change the game, so the 576 fall into 144 classes. Swapping the players is NOT used: a game
and its role-swapped twin are different games here, as in Robinson & Goforth (2005).

Families. Akata et al., "Playing repeated games with Large Language Models" (2023,
arXiv 2305.16867), label the 144 games in seven families (after Robinson & Goforth) in their
published data: win-win 36, Prisoner's Dilemma family 7, unfair 19, cyclic 18, biased 44,
second-best 12 and tragic 8. The paper reports on the first six, 136 games (1,224 plays =
9 model pairings x 136). The rule below, applied in order to the pure Nash equilibria (weak
inequalities, ordinal payoffs), gives exactly the family counts of the authors' data:

1. ``cyclic``: no pure equilibrium; best replies chase each other round the four cells.
2. ``win-win``: some equilibrium pays both players their best outcome, (4, 4).
3. ``prisoners_dilemma``: some equilibrium is Pareto-dominated by another outcome.
4. ``biased``: some equilibrium pays (4, 3) or (3, 4): one player gets its best, the
   other only its second best (battle of the sexes has two such equilibria).
5. ``unfair``: some equilibrium pays (4, 2) or (2, 4): one player gets its best, the
   other its second worst (includes chicken).
6. ``second_best``: the single equilibrium pays both players their second best, (3, 3).
7. ``tragic``: the single equilibrium pays (3, 2) or (2, 3): neither player gets its best
   and one only its second worst.

(The last two families always have exactly one pure equilibrium; the tests check it.)

Game sets. :func:`game_set` names the sets a study can sweep: ``"all_144"``,
``"paper_136"`` (every family but ``tragic``: the games Akata et al. report on) and each
family by name (see :func:`ordinal_families`); :func:`select_games` resolves what a
scenario's ``game.game_set`` names (sets, single games, presets; optionally a seeded
sample).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import cache

import numpy as np

from games.twobytwo import _CELLS, Game2x2, pareto_optimal, pure_nash_equilibria

FAMILIES: tuple[str, ...] = (
    "win-win",
    "prisoners_dilemma",
    "unfair",
    "cyclic",
    "biased",
    "second_best",
    "tragic",
)

# The families Akata et al. (2023) report on: all but ``tragic``.
PAPER_FAMILIES: tuple[str, ...] = FAMILIES[:-1]

GAME_SETS: tuple[str, ...] = ("all_144", "paper_136", *FAMILIES)

OrdinalKey = tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]


def _ranks(values: list[float]) -> list[int]:
    """Dense ranks, 1 for the smallest value; ties share a rank."""
    order = sorted(set(values))
    return [order.index(v) + 1 for v in values]


def _ordinal_cells(game: Game2x2) -> OrdinalKey:
    """The game's cells (00, 01, 10, 11) as (rank for player 1, rank for player 2)."""
    p = game.payoffs
    r1 = _ranks([p[i][j][0] for i, j in _CELLS])
    r2 = _ranks([p[i][j][1] for i, j in _CELLS])
    return tuple(zip(r1, r2, strict=True))  # type: ignore[return-value]


def _variants(cells: OrdinalKey) -> list[OrdinalKey]:
    """The four relabellings: identity, swap columns, swap rows, swap both."""
    grid = {c: cells[k] for k, c in enumerate(_CELLS)}
    out = []
    for r, c in _CELLS:
        out.append(tuple(grid[(i ^ r, j ^ c)] for i, j in _CELLS))
    return out  # type: ignore[return-value]


def _representative(cells: OrdinalKey) -> OrdinalKey:
    # Prefer the labelling with the jointly best outcome in cell (0, 0) (ties: the more even
    # split, then player 1's best), so option 0 reads as the "cooperative" option as in the
    # presets (cooperate, stag, swerve).
    return max(
        _variants(cells),
        key=lambda v: (v[0][0] + v[0][1], -abs(v[0][0] - v[0][1]), v[0][0], v),
    )


def canonical_key(game: Game2x2) -> OrdinalKey:
    """The ordinal pattern of ``game`` up to swapping rows and/or columns.

    Payoffs are replaced by each player's ranks (1 = worst), so any game with the same
    preference orderings (e.g. the 8/0/10/5 prisoner's dilemma and the 3/0/5/1 one) gets the
    same key. The key lists cells (0,0), (0,1), (1,0), (1,1) as (rank 1, rank 2) pairs in a
    fixed labelling. Swapping the players changes the key.
    """
    return _representative(_ordinal_cells(game))


def family_of(game: Game2x2) -> str:
    """The family of a strictly ordinal game (see the module docstring for the rule)."""
    cells = _ordinal_cells(game)
    for player in (0, 1):
        if sorted(c[player] for c in cells) != [1, 2, 3, 4]:
            raise ValueError(
                f"game {game.name!r} has tied payoffs for player {player + 1}; "
                "families are defined for strictly ordinal games only"
            )
    ranked = _game_from_cells(cells, "ranked")
    ne = pure_nash_equilibria(ranked)
    if not ne:
        return "cyclic"
    pays = {(int(ranked.payoffs[i][j][0]), int(ranked.payoffs[i][j][1])) for i, j in ne}
    if (4, 4) in pays:
        return "win-win"
    efficient = set(pareto_optimal(ranked))
    if any(cell not in efficient for cell in ne):
        return "prisoners_dilemma"
    if pays & {(4, 3), (3, 4)}:
        return "biased"
    if pays & {(4, 2), (2, 4)}:
        return "unfair"
    if pays == {(3, 3)}:
        return "second_best"
    return "tragic"


def _game_from_cells(cells: OrdinalKey, name: str, family: str | None = None) -> Game2x2:
    grid = {c: cells[k] for k, c in enumerate(_CELLS)}
    payoffs = tuple(tuple(grid[(i, j)] for j in (0, 1)) for i in (0, 1))
    return Game2x2(name=name, payoffs=payoffs, family=family)  # type: ignore[arg-type]


@cache
def _all_games() -> tuple[Game2x2, ...]:
    keys = set()
    for p1 in itertools.permutations((1, 2, 3, 4)):
        for p2 in itertools.permutations((1, 2, 3, 4)):
            keys.add(_representative(tuple(zip(p1, p2, strict=True))))  # type: ignore[arg-type]
    games = []
    for key in sorted(keys):
        row = "".join(str(c[0]) for c in key)
        col = "".join(str(c[1]) for c in key)
        game = _game_from_cells(key, f"rg_{row}_{col}")
        games.append(_game_from_cells(key, game.name, family_of(game)))
    return tuple(games)


def ordinal_games() -> list[Game2x2]:
    """All 144 ordinal games, sorted by canonical key, each with its ``family`` set.

    Names are ``rg_<p1 ranks>_<p2 ranks>`` with ranks listed for cells (0,0), (0,1), (1,0),
    (1,1); e.g. the prisoner's dilemma is ``rg_3142_3412``.
    """
    return list(_all_games())


def games_by_family() -> dict[str, list[Game2x2]]:
    """The 144 games grouped by family, keys in :data:`FAMILIES` order.

    Counts: win-win 36, prisoners_dilemma 7, unfair 19, cyclic 18, biased 44, second_best 12,
    tragic 8, as in Akata et al.'s data.
    """
    out: dict[str, list[Game2x2]] = {f: [] for f in FAMILIES}
    for game in _all_games():
        out[game.family or ""].append(game)
    return out


def ordinal_families() -> dict[str, list[Game2x2]]:
    """The seven families of the 144 games (the same as :func:`games_by_family`)."""
    return games_by_family()


def game_set(name: str) -> list[Game2x2]:
    """A named set of ordinal games, in :func:`ordinal_games` order.

    ``"all_144"``: every game; ``"paper_136"``: the 136 games of the six families that
    Akata et al. (2023) report on (all but ``tragic``); a family name (one of
    :data:`FAMILIES`): that family's games.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    if name == "all_144":
        return ordinal_games()
    if name == "paper_136":
        return [g for g in _all_games() if g.family in PAPER_FAMILIES]
    if name in FAMILIES:
        return [g for g in _all_games() if g.family == name]
    raise ValueError(f"unknown ordinal game set {name!r}; valid names: {', '.join(GAME_SETS)}")


def select_games(
    names: str | Sequence[str],
    sample: int | None = None,
    rng: np.random.Generator | None = None,
    per_family: bool = False,
) -> list[Game2x2]:
    """The stage games a sweep plays: a named set, or a list of names, optionally sampled.

    ``names`` is a game-set name (see :func:`game_set`) or a list whose entries are each a
    game-set name, one of the 144 games by name (``rg_...``) or a preset of
    :mod:`games.twobytwo` with its default payoffs (``battle_of_the_sexes``); duplicates
    are dropped, first occurrence kept. With ``sample``, that many games are drawn
    without replacement with ``rng`` (that many from each family with ``per_family``; a
    family with fewer games keeps them all) and kept in the set's order.

    Raises:
        ValueError: an unknown name, an empty list, or a sample larger than the set.
    """
    from games.twobytwo import PRESETS, preset

    entries = [names] if isinstance(names, str) else list(names)
    if not entries:
        raise ValueError("the game list is empty")
    by_name = {g.name: g for g in _all_games()}
    chosen: dict[str, Game2x2] = {}
    for entry in entries:
        if not isinstance(entry, str):
            raise ValueError(f"game names are strings, got {entry!r}")
        if entry in GAME_SETS:
            found = game_set(entry)
        elif entry in by_name:
            found = [by_name[entry]]
        elif entry in PRESETS and entry != "custom":
            found = [preset(entry)]
        else:
            raise ValueError(
                f"unknown game {entry!r}; expected a game set ({', '.join(GAME_SETS)}), "
                "an ordinal game name (rg_..., see games.ordinal_games()) or a preset"
            )
        for g in found:
            chosen.setdefault(g.name, g)
    games = list(chosen.values())
    if sample is None:
        return games
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise ValueError(f"sample must be a whole number >= 1, got {sample!r}")
    if rng is None:
        raise ValueError("sampling games needs a random generator (rng=)")
    if per_family:
        strata: dict[str | None, list[int]] = {}
        for k, g in enumerate(games):
            strata.setdefault(g.family, []).append(k)
        keep: list[int] = []
        for members in strata.values():  # families in order of first appearance
            n = min(sample, len(members))
            keep.extend(members[int(i)] for i in rng.choice(len(members), size=n, replace=False))
        return [games[k] for k in sorted(keep)]
    if sample > len(games):
        raise ValueError(f"sample {sample} is larger than the {len(games)} games of the set")
    picked = rng.choice(len(games), size=sample, replace=False)
    return [games[k] for k in sorted(int(i) for i in picked)]
