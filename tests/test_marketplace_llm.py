"""The marketplace on the embedded model (SmolLM2-135M through llama.cpp): a 3/9 market
for a few steps, with LLM customers and LLM businesses beside scripted ones. Checks the
whole path: prompts, constrained decoding of the typed actions, parsing, recording, the
metrics read back from the store."""

from __future__ import annotations

import json

import pytest

import analysis
from analysis import marketplace as am
from society.runner import start_run
from society.scenario import load_scenario
from tests.helpers import ROOT, query

pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.llm, pytest.mark.slow]


def test_a_3x9_market_on_the_embedded_model(tmp_path):
    overrides = [
        "game.rounds=2",
        "population.groups=[{name: llm_customer, kind: llm, count: 1},"
        " {name: oracles, count: 2, strategy: optimal_customer},"
        " {name: businesses, kind: llm, count: 6}, {name: honest, count: 3, strategy: honest_business}]",
    ]
    sc = load_scenario(ROOT / "scenarios" / "marketplace_restaurants_3x9.yaml", overrides)
    res = start_run(sc, tmp_path / "run", quiet=True)
    assert res.status == "finished"
    run = analysis.load_run(res.run_dir)
    d = run.decisions
    llm = d[d["source"].isin(["llm", "fallback"])]
    # The LLM customer decided every step; the LLM business that the first oracle wrote
    # to (its best business is one of the customer's own three, slots 6..8) replied.
    shop = llm[llm["kind"] == "shop"]
    assert len(shop) == 2 and (shop["agent_id"] == 0).all()
    replies = llm[llm["kind"] == "reply"]
    assert len(replies) >= 1 and replies["agent_id"].between(6, 8).all()
    calls = query(res.run_dir, "SELECT purpose, params, reply, valid, backend FROM llm_calls")
    assert {c[4] for c in calls} == {"llamacpp"}
    schema = json.loads(next(c[1] for c in calls if c[0] == "shop"))["json_schema"]
    assert schema["properties"]["action"]["enum"] == [
        "search", "send_text", "check_messages", "pay", "end",
    ]  # fmt: skip
    # Constrained decoding: the replies are JSON objects of the schema.
    for purpose, _, reply, valid, _ in calls:
        if valid:
            obj = json.loads(reply)
            assert ("action" in obj) if purpose.startswith("shop") else ("kind" in obj)
    assert sum(c[3] for c in calls) / len(calls) >= 0.5
    s = am.market_summary(run).iloc[0]
    assert s["optimal_welfare"] > 0 and s["customers"] == 3 and s["businesses"] == 9
    assert am.invalid_rate(run) <= 0.5
