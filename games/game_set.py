"""A sweep over several stage games: every pair plays one repeated match per stage game.

Akata et al., "Playing repeated games with Large Language Models" (2023, arXiv
2305.16867), play every pairing on each of the 144 ordinal 2x2 games (Robinson & Goforth
2005). :class:`GameSetTournament` does that within one generation: the stage games are
played one after the other, each as a whole :class:`~games.repeated.RepeatedGame` (every
pair of the matching plays its match of that stage game, side by side), so a step belongs
to exactly one stage game and its :class:`~games.protocol.Position` ``game`` number is
the stage game's index in the set. The run store's ``rounds.game`` column therefore says
which stage game every decision and payoff belongs to.

Pure, like the rest of ``games``: the random draws are those of the stage games (match
lengths under continuation, option shuffles, noise), taken from the caller's generator in
play order. The state is the index of the stage game being played and the plain-data
state of every stage game begun; :meth:`restore` gives each stage game the committed
steps that were its own (each finished stage game took :meth:`RepeatedGame.total_steps`
steps), so a resumed run rebuilds every match history, and the fitness over all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from games.protocol import Event, Game, Position, Turn
from games.repeated import RepeatedGame, RepeatedGameRules

__all__ = ["GameSetTournament"]


class GameSetTournament(Game):
    """Stage games played in turn; within each, every pair plays one repeated match.

    ``rules`` holds one :class:`RepeatedGameRules` per stage game, in play order;
    ``pairs``, ``static``, ``reveal_rounds``, ``fallback`` and ``fitness`` are those of
    :class:`RepeatedGame`. Fitness is over every round of every stage game: the mean
    payoff per round played (``"mean"``) or the total.
    """

    kind = "repeated_2x2"

    def __init__(
        self,
        rules: Sequence[RepeatedGameRules],
        pairs: Callable[[int, np.random.Generator], list[tuple[int, int]]],
        *,
        static: bool,
        rng: np.random.Generator,
        reveal_rounds: bool = True,
        fallback: int = 1,
        fitness: str = "mean",
    ) -> None:
        if not rules:
            raise ValueError("a game set needs at least one stage game")
        self.rules = list(rules)
        self.pairs = pairs
        self.static = static
        self.reveal_rounds = reveal_rounds
        self.fallback = fallback
        self.fitness_rule = fitness
        self.index = 0
        self.games: list[RepeatedGame] = [self._new(0, rng)]
        self._skip_done(rng)

    def _new(self, k: int, rng: np.random.Generator) -> RepeatedGame:
        return RepeatedGame(
            self.rules[k], self.pairs, static=self.static, rng=rng,
            reveal_rounds=self.reveal_rounds, fallback=self.fallback, fitness=self.fitness_rule,
        )  # fmt: skip

    def _skip_done(self, rng: np.random.Generator) -> None:
        """Move on past stage games that are over (or have no match at all)."""
        while self.games[-1].done and self.index + 1 < len(self.rules):
            self.index += 1
            self.games.append(self._new(self.index, rng))

    @property
    def current(self) -> RepeatedGame:
        """The stage game being played."""
        return self.games[-1]

    @property
    def done(self) -> bool:
        return self.index + 1 >= len(self.rules) and self.current.done

    def total_steps(self) -> int | None:
        # Stage games not begun yet count their longest possible match.
        played = sum(g.total_steps() or 0 for g in self.games)
        return played + sum(r.rounds for r in self.rules[len(self.games) :])

    def position(self) -> Position:
        return Position(self.index, self.current.round)

    def pending(self, rng: np.random.Generator) -> list[Turn]:
        return self.current.pending(rng)

    def apply(
        self, turns: Sequence[Turn], actions: Sequence[Any], rng: np.random.Generator
    ) -> list[Event]:
        events = self.current.apply(turns, actions, rng)
        self._skip_done(rng)
        return events

    def record(self, turn: Turn, action: Any) -> tuple[str | None, float | None, Any]:
        return self.current.record(turn, action)

    def records(
        self, turns: Sequence[Turn], actions: Sequence[Any]
    ) -> tuple[Sequence[str | None], Sequence[float | None], Sequence[Any]]:
        return self.current.records(turns, actions)

    def fitness(self) -> dict[int, tuple[float, dict[str, Any] | None]]:
        """Per slot: mean payoff per round over every stage game (or the total)."""
        total: dict[int, float] = {}
        count: dict[int, int] = {}
        for game in self.games:
            for slot, (_, detail) in game.fitness().items():
                assert detail is not None
                total[slot] = total.get(slot, 0.0) + float(detail["total"])
                count[slot] = count.get(slot, 0) + int(detail["rounds"])
        out: dict[int, tuple[float, dict[str, Any] | None]] = {}
        for slot in sorted(total):
            t, n = total[slot], count[slot]
            value = t / n if self.fitness_rule == "mean" else t
            out[slot] = (value, {"total": t, "rounds": n, "stage_games": len(self.games)})
        return out

    def get_state(self) -> dict[str, Any]:
        return {"index": self.index, "games": [g.get_state() for g in self.games]}

    def set_state(self, state: dict[str, Any]) -> None:
        index, states = int(state["index"]), list(state["games"])
        if not 0 <= index < len(self.rules) or len(states) != index + 1:
            raise ValueError(
                f"game set state: stage game {index} of {len(self.rules)} with "
                f"{len(states)} stage game states"
            )
        scratch = np.random.default_rng(0)  # lengths come from the states, not from draws
        self.index = index
        self.games = [self._new(k, scratch) for k in range(index + 1)]
        for game, sub in zip(self.games, states, strict=True):
            game.set_state(sub)

    def restore(self, steps: Iterable[Sequence[Event]]) -> None:
        """Rebuild every stage game's match histories from this generation's steps.

        The steps come in play order; each finished stage game took its
        ``total_steps()`` steps (its longest match), the current one the rest.
        """
        todo = list(steps)
        start = 0
        for k, game in enumerate(self.games):
            n = (game.total_steps() or 0) if k < self.index else len(todo) - start
            game.restore(todo[start : start + n])
            start += n
