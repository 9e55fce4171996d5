"""A reduced commons on the embedded model (SmolLM2-135M): LLM agents harvest under the
turn's schema, talk and write their memories; the run is measured by analysis.commons."""

from __future__ import annotations

import json

import pytest

import analysis
from analysis import commons
from society.runner import start_run
from society.scenario import load_scenario
from tests.helpers import ROOT, query

pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.llm, pytest.mark.slow]


def test_a_month_of_the_shipped_fishery_on_the_embedded_model(tmp_path):
    # The shipped scenario, reduced: 1 LLM agent and a sustainable harvester, one month,
    # a quota of 10 (so the lake cannot collapse before the talk), short texts: 3 calls.
    overrides = [
        "population.groups=[{name: llm, count: 1, kind: llm, max_tokens: 24}, "
        "{name: s, count: 1, strategy: sustainable}]",
        "game.months=1",
        "game.max_harvest=10",
        "game.text_max_tokens=16",
    ]
    sc = load_scenario(ROOT / "scenarios" / "commons_fishery.yaml", overrides)
    res = start_run(sc, tmp_path / "run", quiet=True)
    assert res.status == "finished"
    run_dir = res.run_dir
    rows = query(
        run_dir,
        "SELECT kind, action, value, valid, source, llm_call_id FROM decisions "
        "WHERE agent_id = 0 ORDER BY id",
    )
    assert [r[0] for r in rows] == ["harvest", "message", "reflect"]
    for kind, action, value, valid, source, call in rows:
        assert call is not None and source in ("llm", "fallback")
        if kind == "harvest":  # constrained decoding: a whole number in [0, 10]
            assert valid == 1 and source == "llm" and value == int(value) and 0 <= value <= 10
        else:
            assert (valid == 1) == bool(action) and len(action) <= 500
    system = json.loads(query(run_dir, "SELECT messages FROM llm_calls LIMIT 1")[0][0])[0]
    assert "fishermen" in system["content"] and "100 tons" in system["content"]
    m = commons.metrics(analysis.load_run(run_dir)).iloc[0]
    assert m["survival_time"] == 1 and not m["collapsed"] and m["survived"]
    asked = [v for k, _, v, *_ in rows if k == "harvest"]
    # The scripted one takes its quota (its share, 50 / 2 = 25, is above it).
    assert m["total_gain"] == pytest.approx(sum(asked) + 10)
