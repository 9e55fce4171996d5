"""Networks and matching: who meets whom."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from society.config import MatchingConfig, NetworkConfig
from society.errors import UserError
from society.matching import build_matcher, round_robin_pairs
from society.network import build_network


def test_round_robin_pairs():
    assert round_robin_pairs(3) == [(0, 1), (0, 2), (1, 2)]
    assert round_robin_pairs(2, self_play=True) == [(0, 0), (0, 1), (1, 1)]
    assert len(round_robin_pairs(10)) == 45


@pytest.mark.parametrize(
    "cfg, n, edges",
    [
        (NetworkConfig(kind="complete"), 6, 15),
        (NetworkConfig(kind="ring", k=2), 10, 10),
        (NetworkConfig(kind="ring", k=4), 10, 20),
        (NetworkConfig(kind="small_world", k=4, p=0.2), 50, 100),
        (NetworkConfig(kind="scale_free", m=2), 30, 56),
        (NetworkConfig(kind="grid", rows=3), 12, 17),
    ],
)
def test_network_kinds(cfg, n, edges):
    g = build_network(cfg, n, seed=1)
    assert sorted(g.nodes) == list(range(n))
    assert g.number_of_edges() == edges


def test_random_networks_follow_the_seed():
    cfg = NetworkConfig(kind="small_world", k=4, p=0.3)
    a, b = build_network(cfg, 40, 5), build_network(cfg, 40, 5)
    c = build_network(cfg, 40, 6)
    assert sorted(a.edges) == sorted(b.edges)
    assert sorted(a.edges) != sorted(c.edges)


def test_edgelist(tmp_path):
    f = tmp_path / "g.txt"
    f.write_text("# a triangle and a tail\n0 1\n1 2\n2 0\n2,3\n")
    g = build_network(NetworkConfig(kind="edgelist", path=str(f)), 5, 0)
    assert g.number_of_edges() == 4 and 4 in g.nodes
    f.write_text("0 9\n")
    with pytest.raises(UserError, match="g.txt:1: agent index out of range"):
        build_network(NetworkConfig(kind="edgelist", path=str(f)), 5, 0)
    f.write_text("zero one\n")
    with pytest.raises(UserError, match="expected two agent indices"):
        build_network(NetworkConfig(kind="edgelist", path=str(f)), 5, 0)
    with pytest.raises(UserError, match="cannot read"):
        build_network(NetworkConfig(kind="edgelist", path=str(tmp_path / "no")), 5, 0)


def test_network_errors():
    with pytest.raises(UserError, match="network.k"):
        build_network(NetworkConfig(kind="ring", k=6), 5, 0)
    with pytest.raises(UserError, match="network.rows"):
        build_network(NetworkConfig(kind="grid", rows=5), 12, 0)


def test_auto_matching_uses_round_robin_on_complete_and_edges_otherwise():
    rng = np.random.default_rng(0)
    complete = build_matcher(MatchingConfig(), nx.complete_graph(4))
    assert complete.pairs(0, rng) == round_robin_pairs(4)
    ring = build_matcher(MatchingConfig(), nx.cycle_graph(5))
    assert ring.pairs(0, rng) == [(0, 1), (0, 4), (1, 2), (2, 3), (3, 4)]


def test_random_matching_is_a_perfect_matching_each_round():
    m = build_matcher(MatchingConfig(kind="random"), nx.complete_graph(7))
    rng = np.random.default_rng(3)
    seen = set()
    for r in range(20):
        pairs = m.pairs(r, rng)
        flat = [a for p in pairs for a in p]
        assert len(pairs) == 3 and len(set(flat)) == 6  # one of 7 sits out
        assert all(a < b for a, b in pairs)
        seen.update(pairs)
    assert len(seen) > 10  # partners change between rounds
