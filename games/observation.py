"""What a player of a repeated 2x2 game sees when it must choose (pure data)."""

from __future__ import annotations

from typing import NamedTuple


class RepeatedObservation(NamedTuple):
    """One player's view of its match before choosing in round `round` (1-based).

    Moves are option indices (0 = option A, the cooperative one by convention);
    `payoffs[a][b]` is (own payoff, other's payoff) when this player picks `a` and
    the other picks `b`. `order` is the order in which the options are shown
    (shuffled per round when the scenario asks for it). A named tuple: a tournament
    builds one per match side and reuses it while the match lasts: the move lists grow
    in place, and `round` is read from them.
    """

    rounds: int | None  # None when the match length is not revealed
    my_moves: list[int]
    their_moves: list[int]
    payoffs: tuple[tuple[tuple[float, float], tuple[float, float]], ...]
    labels: tuple[str, str]
    order: tuple[int, int] = (0, 1)

    @property
    def round(self) -> int:
        """The round about to be played (1-based): one more than the rounds played."""
        return len(self.my_moves) + 1

    def payoff(self, mine: int, theirs: int) -> tuple[float, float]:
        """(own, other's) points for one pair of choices."""
        return self.payoffs[mine][theirs]
