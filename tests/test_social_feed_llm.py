"""A reduced social feed on the embedded model (SmolLM2-135M): LLM agents act through the
turn's JSON schema (llama.cpp grammar), answer the probe among its options, and the run is
read by analysis.feed."""

from __future__ import annotations

import json

import pytest

import analysis
from analysis import feed as af
from analysis.drift import LexicalEmbedder
from society.runner import start_run
from society.scenario import load_scenario
from tests.helpers import ROOT, query

pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.llm, pytest.mark.slow]


def test_a_period_of_the_shipped_feed_on_the_embedded_model(tmp_path):
    # The shipped scenario, reduced: 2 LLM agents (one per community and persona), one
    # period with the probe: 4 calls (plus any repair), short budgets.
    overrides = [
        "population.groups.gardeners.count=1",
        "population.groups.coders.count=1",
        "population.groups.gardeners.max_tokens=48",
        "population.groups.coders.max_tokens=48",
        "game.periods=1",
        "game.text_chars=80",
        "game.probe.max_tokens=8",
    ]
    sc = load_scenario(ROOT / "scenarios" / "social_feed.yaml", overrides)
    res = start_run(sc, tmp_path / "run", quiet=True)
    assert res.status == "finished"
    rows = query(
        res.run_dir,
        "SELECT round, agent_id, kind, action, valid, source, data FROM decisions ORDER BY id",
    )
    assert [(r[0], r[2]) for r in rows] == [(0, "act"), (0, "act"), (0, "probe"), (0, "probe")]
    acts = ("post", "comment", "upvote", "follow", "nothing")
    for _, _, kind, action, valid, source, data in rows:
        assert source in ("llm", "fallback")
        if kind == "probe":  # an enumerated option: the grammar allows nothing else
            assert valid == 1 and action in ("outdoors", "indoors")
        else:
            assert action in acts
            d = json.loads(data)
            if action in ("post", "comment"):
                assert d["text"] and len(d["text"]) <= 80
    valid_acts = [r for r in rows if r[2] == "act" and r[4] == 1]
    assert valid_acts  # constrained decoding: the acts parse (an illegal one is repaired once)
    system = json.loads(query(res.run_dir, "SELECT messages FROM llm_calls LIMIT 1")[0][0])[0]
    assert "gardening" in system["content"] and "online forum" in system["content"]
    run = analysis.load_run(res.run_dir)
    assert list(af.consensus(run)["period"]) == [0]
    stab = af.stabilisation(run, LexicalEmbedder())
    posts = [r for r in rows if r[3] in ("post", "comment")]
    assert int(stab["n"].sum()) == len(posts)
