"""Rules of a finitely repeated 2x2 game between two players (protocols §2).

Pure: every random choice takes the caller's ``numpy.random.Generator``, and a rule that is
switched off (no noise, no continuation, no shuffling) draws nothing from it, so turning
an option off never shifts the random stream of the rest of a run.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

import numpy as np

from games.observation import RepeatedObservation
from games.protocol import Choice, Event, Game, Position, Turn
from games.twobytwo import Game2x2, _check_action, _check_player


def _check_moves(moves: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(moves)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{what} must be an integer array of 0/1, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{what} must contain only 0 and 1")
    return arr


@dataclass(frozen=True)
class RepeatedGameRules:
    """A stage game played repeatedly against the same partner, payoffs undiscounted.

    - ``rounds``: number of rounds (the cap when ``continuation`` is set).
    - ``noise``: each intended move is flipped with this probability (trembling hand).
    - ``continuation``: if set, after each round another follows with this probability,
      up to ``rounds`` rounds in all; ``None`` means exactly ``rounds`` rounds.
    - ``labels``: neutral names shown to LLMs for option 0 and option 1.
    - ``shuffle_options``: show the two options to each player in a random order per round.
    """

    game: Game2x2
    rounds: int = 10
    noise: float = 0.0
    continuation: float | None = None
    labels: tuple[str, str] = ("J", "F")
    shuffle_options: bool = False
    # Best own payoff against each partner move, per player: _best[player][partner_move].
    _best: np.ndarray = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.game, Game2x2):
            raise ValueError(f"game must be a Game2x2, got {type(self.game).__name__}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int | np.integer):
            raise ValueError(f"rounds must be an integer >= 1, got {self.rounds!r}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if isinstance(self.noise, bool) or not isinstance(self.noise, int | float):
            raise ValueError(f"noise must be a number in [0, 1], got {self.noise!r}")
        if not 0.0 <= self.noise <= 1.0:  # also rejects NaN
            raise ValueError(f"noise must be in [0, 1], got {self.noise}")
        if self.continuation is not None:
            c = self.continuation
            if isinstance(c, bool) or not isinstance(c, int | float) or not 0.0 < c <= 1.0:
                raise ValueError(f"continuation must be None or in (0, 1], got {c!r}")
        labels = self.labels
        if isinstance(labels, str) or len(labels) != 2:
            raise ValueError(f"labels must be two option names, got {labels!r}")
        if not all(isinstance(x, str) and x.strip() for x in labels):
            raise ValueError(f"labels must be non-empty strings, got {labels!r}")
        if labels[0] == labels[1]:
            raise ValueError(f"labels must differ, got {labels!r}")
        if not isinstance(self.shuffle_options, bool):
            raise ValueError(f"shuffle_options must be true or false, got {self.shuffle_options!r}")
        object.__setattr__(self, "rounds", int(self.rounds))
        object.__setattr__(self, "noise", float(self.noise))
        object.__setattr__(self, "labels", (labels[0], labels[1]))
        m = self.game.as_matrix()
        best = np.stack([m[:, :, 0].max(axis=0), m[:, :, 1].max(axis=1)])
        best.setflags(write=False)
        object.__setattr__(self, "_best", best)

    def apply_noise(self, moves: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Flip each intended move (0/1) independently with probability ``noise``.

        With ``noise == 0`` the input is returned as is and ``rng`` is not touched.
        """
        arr = _check_moves(moves, "moves")
        if self.noise == 0.0:
            return moves
        flips = rng.random(arr.shape) < self.noise
        return np.where(flips, 1 - arr, arr).astype(arr.dtype, copy=False)

    def payoffs_vec(self, a1: np.ndarray, a2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Payoffs to player 1 and player 2 for many simultaneous stage games at once."""
        x = _check_moves(a1, "a1")
        y = _check_moves(a2, "a2")
        m = self.game.as_matrix()
        return m[x, y, 0], m[x, y, 1]

    def match_length(self, rng: np.random.Generator) -> int:
        """Rounds this match lasts: ``rounds``, or geometric with the cap when continuing.

        ``P(length = k) = continuation**(k-1) * (1 - continuation)`` for ``k < rounds``.
        No randomness is used when ``continuation`` is None or 1.
        """
        c = self.continuation
        if c is None or c >= 1.0:
            return self.rounds
        return min(int(rng.geometric(1.0 - c)), self.rounds)

    def expected_length(self) -> float:
        """Mean of :meth:`match_length`: ``sum_{k<rounds} continuation**k``."""
        c = self.continuation
        if c is None or c >= 1.0:
            return float(self.rounds)
        return (1.0 - c**self.rounds) / (1.0 - c)

    def option_order(self, rng: np.random.Generator) -> tuple[int, int]:
        """Order in which the options are shown: (0, 1), or shuffled when ``shuffle_options``.

        Without shuffling no randomness is used.
        """
        if not self.shuffle_options:
            return (0, 1)
        return (0, 1) if rng.integers(2) == 0 else (1, 0)

    def score_max(self, partner_moves: np.ndarray, player: int = 0) -> float | np.ndarray:
        """Most points ``player`` could win against this sequence of partner moves.

        Each round counts the best own payoff given the partner's move (protocols §2 score
        metric: points won / this). The last axis is rounds; a 1-D input gives a float,
        a 2-D (matches, rounds) input an array of totals.
        """
        moves = _check_moves(partner_moves, "partner_moves")
        totals = self._best[_check_player(player)][moves].sum(axis=-1)
        return float(totals) if np.ndim(totals) == 0 else totals

    def label(self, action: int) -> str:
        """The neutral label of option ``action``."""
        return self.labels[_check_action(action, "action")]


# -- the game protocol ------------------------------------------------------------------
def _one_pair(
    pair: tuple[int, int], round_: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """The pairs of a one-match sub-game (:meth:`RepeatedGame.subgames`)."""
    return [pair]


MOVES = ("C", "D")  # how moves are recorded: option 0 is 'C', option 1 is 'D'


class RepeatedKind(StrEnum):
    """Decision and event kinds of the repeated game, as recorded in the run store."""

    MOVE = "move"
    PAYOFF = "payoff"


class RepeatedGame(Game):
    """Matches of a repeated 2x2 game in a population, played side by side in lockstep.

    Every pair the ``pairs`` function gives in a round plays one stage game per step. With
    ``static`` pairs (round-robin, network edges) each pair's history is one match of
    ``rules.match_length`` rounds (an Axelrod-style tournament); otherwise pairs are
    drawn every round and a pair that meets again continues its history. Turns come per
    pair, the row player first; a step's events are one payoff per turn, in turn order.

    The move histories are not part of the state: they grow every step and every played
    move is an event already, so :meth:`restore` rebuilds them from the events.
    """

    kind = "repeated_2x2"

    def __init__(
        self,
        rules: RepeatedGameRules,
        pairs: Callable[[int, np.random.Generator], list[tuple[int, int]]],
        *,
        static: bool,
        rng: np.random.Generator,
        reveal_rounds: bool = True,
        fallback: int = 1,
        fitness: str = "mean",
    ) -> None:
        self.rules = rules
        self.pairs = pairs
        self.static = static
        self.reveal_rounds = reveal_rounds
        self.fallback = fallback
        self.fitness_rule = fitness
        views = (rules.game, rules.game.for_player(1))  # the column player's view is swapped
        self.views = tuple(v.payoffs for v in views)
        self._payoffs = rules.game.as_matrix().tolist()  # [a][b] -> [row's, column's] (floats)
        self.spec = Choice(tuple(rules.labels))
        self.round = 0
        self.hist: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
        self.lengths: dict[tuple[int, int], int] = {}
        self._active: list[tuple[tuple[int, int], tuple[list[int], list[int]]]] = []
        # Static pairs shown in order: per match (length, (pair, history), turn_i, turn_j).
        self._matches: list[Any] | None = None
        self._shortest = 0
        self._all_turns: list[Turn] = []
        self._all_active: list[tuple[tuple[int, int], tuple[list[int], list[int]]]] = []
        if static:
            for pair in pairs(0, rng):
                self._open(pair, rng)

    def _open(self, pair: tuple[int, int], rng: np.random.Generator) -> None:
        self.hist[pair] = ([], [])
        self.lengths[pair] = self.rules.match_length(rng)

    @property
    def done(self) -> bool:
        if self.static:
            return all(len(h[0]) >= self.lengths[p] for p, h in self.hist.items())
        return self.round >= self.rules.rounds

    def total_steps(self) -> int | None:
        if self.static:
            return max(self.lengths.values(), default=0)
        return self.rules.rounds

    def position(self) -> Position:
        return Position(0, self.round)

    def pending(self, rng: np.random.Generator) -> list[Turn]:
        rules = self.rules
        if self.static and not rules.shuffle_options:  # fixed matches shown in order
            return self._static_turns(rng)
        rounds = rules.rounds if self.reveal_rounds else None
        view_i, view_j = self.views
        labels, spec, fallback = rules.labels, self.spec, self.fallback
        move = RepeatedKind.MOVE.value  # plain text: the store takes it at C speed
        shuffle = rules.shuffle_options
        hist, lengths = self.hist, self.lengths
        self._active = active = []
        turns: list[Turn] = []
        add = turns.append
        obs = partial(tuple.__new__, RepeatedObservation)  # C-speed construction
        turn = partial(tuple.__new__, Turn)
        plain = (0, 1)
        for k, pair in enumerate(self.pairs(self.round, rng)):
            h = hist.get(pair)
            if h is None:
                self._open(pair, rng)
                h = hist[pair]
            hi, hj = h
            if len(hi) >= lengths[pair]:
                continue
            active.append((pair, h))
            i, j = pair
            order_i = rules.option_order(rng) if shuffle else plain
            order_j = rules.option_order(rng) if shuffle else plain
            add(
                turn(
                    (
                        i,
                        j,
                        move,
                        obs((rounds, hi, hj, view_i, labels, order_i)),
                        spec,
                        fallback,
                        k,
                        False,
                    )
                )
            )
            add(
                turn(
                    (
                        j,
                        i,
                        move,
                        obs((rounds, hj, hi, view_j, labels, order_j)),
                        spec,
                        fallback,
                        k,
                        False,
                    )
                )
            )
        return turns

    def _static_turns(self, rng: np.random.Generator) -> list[Turn]:
        """The turns of fixed matches shown in order, built once and reused every step.

        A turn's observation holds its match's move lists, which `apply` extends in
        place, so the same turn is the current one each round; only matches that are
        over drop out (all at once when every match has the same length).
        """
        if self._matches is None:
            rounds = self.rules.rounds if self.reveal_rounds else None
            view_i, view_j = self.views
            labels, spec, fallback = self.rules.labels, self.spec, self.fallback
            move, plain = RepeatedKind.MOVE.value, (0, 1)
            obs = partial(tuple.__new__, RepeatedObservation)  # C-speed construction
            turn = partial(tuple.__new__, Turn)
            matches = []
            for k, pair in enumerate(self.pairs(self.round, rng)):
                i, j = pair
                h = self.hist[pair]
                hi, hj = h
                matches.append(
                    (
                        self.lengths[pair],
                        (pair, h),
                        turn((i, j, move, obs((rounds, hi, hj, view_i, labels, plain)), spec, fallback, k, False)),
                        turn((j, i, move, obs((rounds, hj, hi, view_j, labels, plain)), spec, fallback, k, False)),
                    )
                )  # fmt: skip
            self._matches = matches
            self._shortest = min((m[0] for m in matches), default=0)
            self._all_turns = [t for m in matches for t in m[2:]]
            self._all_active = [m[1] for m in matches]
        played = self.round  # static matches advance in lockstep from round 0
        if played < self._shortest:  # every match still running
            self._active = list(self._all_active)
            return list(self._all_turns)
        self._active = active = []
        turns: list[Turn] = []
        for length, entry, turn_i, turn_j in self._matches:
            if played < length:
                active.append(entry)
                turns.append(turn_i)
                turns.append(turn_j)
        return turns

    def apply(
        self, turns: Sequence[Turn], actions: Sequence[Any], rng: np.random.Generator
    ) -> list[Event]:
        rules = self.rules
        mine, theirs = actions[0::2], actions[1::2]  # turns come per pair, row player first
        if rules.noise:  # the same draws as before: one flip per row move, then per column move
            mine = rules.apply_noise(np.asarray(mine, dtype=np.int8), rng).tolist()
            theirs = rules.apply_noise(np.asarray(theirs, dtype=np.int8), rng).tolist()
        # Plain Python: a step's few thousand pairs cost less than numpy's conversions.
        pay, kind, code = self._payoffs, RepeatedKind.PAYOFF.value, MOVES
        ev = partial(tuple.__new__, Event)
        events: list[Event] = []
        add = events.append
        for ((i, j), (hi, hj)), a, b in zip(self._active, mine, theirs, strict=True):
            hi.append(a)
            hj.append(b)
            p_i, p_j = pay[a][b]
            add(ev((kind, i, j, code[a], p_i, None)))
            add(ev((kind, j, i, code[b], p_j, None)))
        self._active = []
        self.round += 1
        return events

    def subgames(self) -> dict[Hashable, Game] | None:
        """Each fixed match as a game of its own (keyed by its turns' ``instance``), when
        nothing is drawn during play: static pairs, no noise, no shuffled options (match
        lengths, continuation included, are drawn at setup and copied)."""
        rules = self.rules
        if not self.static or rules.noise or rules.shuffle_options:
            return None
        scratch = np.random.default_rng(0)  # static pairs and copied lengths draw nothing real
        out: dict[Hashable, Game] = {}
        for k, pair in enumerate(self.pairs(self.round, scratch)):
            hi, hj = self.hist[pair]
            sub = RepeatedGame(
                rules, partial(_one_pair, pair), static=True, rng=scratch,
                reveal_rounds=self.reveal_rounds, fallback=self.fallback,
                fitness=self.fitness_rule,
            )  # fmt: skip
            sub.hist = {pair: (list(hi), list(hj))}  # its own lists: it plays ahead alone
            sub.lengths = {pair: self.lengths[pair]}
            sub.round = self.round
            out[k] = sub
        return out

    def record(self, turn: Turn, action: Any) -> tuple[str | None, float | None, Any]:
        return MOVES[action], action, None

    def records(
        self, turns: Sequence[Turn], actions: Sequence[Any]
    ) -> tuple[Sequence[str | None], Sequence[float | None], Sequence[Any]]:
        return [MOVES[a] for a in actions], actions, [None] * len(actions)

    def fitness(self) -> dict[int, tuple[float, dict[str, Any] | None]]:
        """Per slot: mean payoff per round played (``fitness="mean"``) or the total.

        Computed from the played moves of every match, so nothing is accumulated per step.
        """
        total: dict[int, float] = {}
        count: dict[int, int] = {}
        for (i, j), (hi, hj) in self.hist.items():
            if not hi:
                continue
            pay_i, pay_j = self.rules.payoffs_vec(np.asarray(hi), np.asarray(hj))
            for slot, pay in ((i, pay_i), (j, pay_j)):
                total[slot] = total.get(slot, 0.0) + float(pay.sum())
                count[slot] = count.get(slot, 0) + len(hi)
        out: dict[int, tuple[float, dict[str, Any] | None]] = {}
        for slot in sorted(total):
            t, n = total[slot], count[slot]
            value = t / n if self.fitness_rule == "mean" else t
            out[slot] = (value, {"total": t, "rounds": n})
        return out

    def get_state(self) -> dict[str, Any]:
        lengths = None
        if not self.static or self.rules.continuation not in (None, 1.0):
            lengths = [[i, j, n] for (i, j), n in self.lengths.items()]
        return {"round": self.round, "lengths": lengths}

    def set_state(self, state: dict[str, Any]) -> None:
        self.round = int(state["round"])
        if state["lengths"] is not None:
            self.lengths = {(int(i), int(j)): int(n) for i, j, n in state["lengths"]}
        self.hist = {pair: ([], []) for pair in self.lengths}  # filled by `restore`
        self._matches = None

    def restore(self, steps: Iterable[Sequence[Event]]) -> None:
        """Rebuild the move histories from the committed events of this game.

        Each step's payoff events come in pairs: the row player's (i, j), then the column
        player's (j, i) — so self-play pairs (i, i) rebuild too.
        """
        code = {m: k for k, m in enumerate(MOVES)}
        for events in steps:
            payoffs = [e for e in events if e.kind == RepeatedKind.PAYOFF]
            for row, col in zip(payoffs[::2], payoffs[1::2], strict=True):
                h = self.hist[(int(row.agent), int(row.partner))]  # type: ignore[arg-type]
                h[0].append(code[str(row.action)])
                h[1].append(code[str(col.action)])
