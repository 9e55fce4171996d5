"""Who plays whom each round: round-robin, random pairing, or along network edges.

A matcher returns pairs `(i, j)` with `i <= j` over agent indices. Static matchers
(round-robin, network) return the same pairs every round, so a pair's history is a
match in the Axelrod sense; random pairing draws a new perfect matching each round.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from society.config import MatchingConfig


class Matcher:
    """Base: `pairs(round, rng)` gives the pairs that play in that round."""

    static: bool = True

    def pairs(self, round_: int, rng: np.random.Generator) -> list[tuple[int, int]]:
        """Pairs playing this round."""
        raise NotImplementedError


class StaticMatcher(Matcher):
    """The same pairs every round (round-robin or the network's edges)."""

    def __init__(self, pairs: list[tuple[int, int]]) -> None:
        self._pairs = pairs

    def pairs(self, round_: int, rng: np.random.Generator) -> list[tuple[int, int]]:
        return self._pairs


class RandomMatcher(Matcher):
    """A fresh random perfect matching each round; with an odd count one agent sits out."""

    static = False

    def __init__(self, n: int) -> None:
        self.n = n

    def pairs(self, round_: int, rng: np.random.Generator) -> list[tuple[int, int]]:
        order = rng.permutation(self.n)
        out = []
        for k in range(0, self.n - 1, 2):
            a, b = int(order[k]), int(order[k + 1])
            out.append((a, b) if a < b else (b, a))
        out.sort()
        return out


def round_robin_pairs(n: int, self_play: bool = False) -> list[tuple[int, int]]:
    """Every unordered pair once (plus `(i, i)` when `self_play`)."""
    return [(i, j) for i in range(n) for j in range(i if self_play else i + 1, n)]


def build_matcher(cfg: MatchingConfig, graph: nx.Graph) -> Matcher:
    """The matcher for a scenario; `network` matching pairs along the graph's edges."""
    n = graph.number_of_nodes()
    kind = cfg.kind
    if kind == "auto":
        complete = graph.number_of_edges() == n * (n - 1) // 2
        kind = "round_robin" if complete else "network"
    if kind == "round_robin":
        return StaticMatcher(round_robin_pairs(n, cfg.self_play))
    if kind == "network":
        edges = sorted((min(a, b), max(a, b)) for a, b in graph.edges())
        return StaticMatcher(edges)
    return RandomMatcher(n)
