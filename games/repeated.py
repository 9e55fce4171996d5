"""Rules of a finitely repeated 2x2 game between two players (protocols §2).

Pure: every random choice takes the caller's ``numpy.random.Generator``, and a rule that is
switched off (no noise, no continuation, no shuffling) draws nothing from it, so turning
an option off never shifts the random stream of the rest of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
