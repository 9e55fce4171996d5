"""Convergence: entropy, time to convergence, consensus, stabilisation, turnover, influence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import convergence as conv
from analysis.drift import LexicalEmbedder

LEX = LexicalEmbedder()


def test_entropy_known_values():
    assert conv.entropy([1, 1]) == pytest.approx(1.0)
    assert conv.entropy([5, 0]) == 0.0
    assert conv.entropy([1, 1, 1, 1]) == pytest.approx(2.0)
    assert conv.entropy([1, 1], base=np.e) == pytest.approx(np.log(2))


def test_entropy_is_scipys_against_the_formula():
    """scipy.stats.entropy against −Σ p·log p / log base written out, on random counts."""
    for c in np.random.default_rng(0).integers(0, 9, (30, 6)):
        p = c[c > 0] / c.sum()
        assert conv.entropy(c, base=3) == pytest.approx(-(p * np.log(p)).sum() / np.log(3))
    assert conv.entropy([]) == 0.0 and conv.entropy([0, 0]) == 0.0


def test_behavioural_entropy_per_round():
    d = pd.DataFrame({"round": [0, 0, 1, 1], "kind": "move", "action": ["C", "D", "C", "C"]})
    out = conv.behavioural_entropy(d).set_index("round")["entropy"]
    assert out.loc[0] == pytest.approx(1.0) and out.loc[1] == 0.0


def test_time_to_convergence():
    s = pd.Series([0.5, 0.2, 0.9, 0.95, 0.97, 0.96], index=[10, 11, 12, 13, 14, 15])
    c = conv.time_to_convergence(s, tol=0.05)
    assert c.converged and c.index == 3 and c.time == 13 and c.value == pytest.approx(0.96)
    c2 = conv.time_to_convergence([0.0, 1.0, 0.0, 1.0], tol=0.1, target=0.5)
    assert not c2.converged and c2.time is None
    assert conv.time_to_convergence([1, 1, 1]).index == 0


def test_consensus_pairwise_agreement():
    assert conv.consensus(["a", "a", "b"]) == pytest.approx(1 / 3)
    assert conv.consensus(["a", "a", "a"]) == 1.0
    assert conv.consensus(["a", "b", "c"]) == 0.0


def test_strategy_consensus_and_stabilisation():
    t = pd.DataFrame(
        {
            "generation": [0, 0, 1, 1],
            "text": ["give half", "keep everything", "give half", "Give half"],
        }
    )
    c = conv.strategy_consensus(t, embedder=LEX).set_index("generation")
    assert c.loc[0, "agreement"] == 0.0 and c.loc[1, "agreement"] == 1.0
    assert c.loc[1, "similarity"] == pytest.approx(1.0)
    assert set(c["embedder"]) == {"lexical-tfidf"}
    t2 = pd.DataFrame(
        {"generation": [0, 0, 1, 1, 2, 2], "text": ["a b", "a b", "a b", "a b", "x y", "x y"]}
    )
    s = conv.semantic_stabilisation(t2, embedder=LEX).set_index("generation")
    assert s.loc[1, "centroid_similarity"] == pytest.approx(1.0)
    assert s.loc[2, "centroid_similarity"] < 0.5
    assert s.loc[0, "within_similarity"] == pytest.approx(1.0)


def test_lexical_turnover_hand_made():
    t = pd.DataFrame({"generation": [0, 1, 1], "text": ["a b c", "b c", "d e"]})
    out = conv.lexical_turnover(t).set_index("generation")
    assert out.loc[1, "birth"] == pytest.approx(2 / 4)  # d, e new among b, c, d, e
    assert out.loc[1, "death"] == pytest.approx(1 / 3)  # a gone of a, b, c
    assert np.isnan(out.loc[0, "birth"])
    bi = conv.lexical_turnover(t, n=2).set_index("generation")
    assert bi.loc[1, "birth"] == pytest.approx(1 / 2)  # "d e" new, "b c" kept
    assert bi.loc[1, "death"] == pytest.approx(1 / 2)  # "a b" gone


def test_individual_inertia():
    t = pd.DataFrame(
        {
            "agent_id": [1, 1, 1, 1, 2, 2, 2, 2],
            "round": [0, 1, 2, 3] * 2,
            "text": ["cooperate always"] * 4
            + ["cooperate always"] * 2
            + ["defect now", "defect now"],
        }
    )
    out = conv.individual_inertia(t, embedder=LEX).set_index("agent_id")
    assert out.loc[1, "drift"] == pytest.approx(0.0, abs=1e-12)
    assert out.loc[2, "drift"] > 0.5
    assert "pull" in out.columns and set(out["embedder"]) == {"lexical-tfidf"}


def _star(center, leaves, generation):
    return [
        {
            "round": generation,
            "generation": generation,
            "agent_id": leaf,
            "partner_id": center,
            "kind": "move",
            "value": 1.0,
        }
        for leaf in leaves
    ]


def test_pagerank_concentration_on_star():
    d = pd.DataFrame(_star(0, [1, 2, 3, 4, 5], 0))
    pr = conv.pagerank_table(d).set_index("agent_id")["pagerank"]
    # Leaves l, centre c: c = 5.25 l and 5 l + c = 1 -> c = 21/41.
    assert pr[0] == pytest.approx(21 / 41, abs=1e-6)
    assert conv.top_k_share(pr, 1) == pytest.approx(21 / 41, abs=1e-6)
    g = conv.interaction_graph(d)
    assert g.number_of_edges() == 5 and g[1][0]["weight"] == 1.0


def test_influence_persistence():
    rows = _star(0, [1, 2, 3, 4], 0) + _star(0, [1, 2, 3, 4], 1) + _star(5, [1, 2, 3, 4], 2)
    out = conv.influence(pd.DataFrame(rows), k=1).set_index("generation")
    assert out.loc[0, "top"] == (0,) and out.loc[2, "top"] == (5,)
    assert out.loc[1, "persistence"] == 1.0 and out.loc[2, "persistence"] == 0.0
    assert np.isnan(out.loc[0, "persistence"])


def test_interaction_graph_uses_donations():
    ev = pd.DataFrame(
        {
            "round": [0, 1],
            "generation": [0, 0],
            "kind": ["donation"] * 2,
            "agent_id": [1, 1],
            "partner_id": [2, 2],
            "value": [3.0, 4.0],
        }
    )

    class R:
        events = ev
        decisions = pd.DataFrame()

    g = conv.interaction_graph(R(), weight="value")
    assert g[1][2]["weight"] == 7.0
    assert conv.interaction_graph(R())[1][2]["weight"] == 2.0
