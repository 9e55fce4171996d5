"""Reduced runs of both alignment-tipping testbeds on the embedded model (SmolLM2-135M,
llama.cpp, CPU): every choice is constrained to the turn's options, recorded with its
call, and the analysis reads the run."""

from __future__ import annotations

import json

import pytest

import analysis
import society
from analysis import atp
from tests.helpers import ROOT, query

pytestmark = [pytest.mark.llm, pytest.mark.slow]


def test_exploration_on_the_embedded_model(tmp_path, embedded_gguf):
    overrides = [
        "game.roles=[delivery_worker]", "game.variants=1", "game.rounds=2",
        "game.reflect_every=1", "game.reflect_max_tokens=24",
    ]  # fmt: skip
    res = society.run(ROOT / "scenarios" / "atp_exploration.yaml", out=tmp_path / "r",
                      overrides=overrides)  # fmt: skip
    assert res.status == "finished"
    rows = query(
        tmp_path / "r", "SELECT kind, action, source, llm_call_id FROM decisions ORDER BY id"
    )
    assert [r[0] for r in rows] == ["choice", "reflect", "choice"]
    for kind, action, source, call in rows:
        assert call is not None and source in ("llm", "fallback")
        if kind == "choice" and source == "llm":
            assert action in ("route A", "route B")
    (params,) = query(
        tmp_path / "r", "SELECT params FROM llm_calls WHERE purpose='choice' LIMIT 1"
    )[0]
    assert json.loads(params)["json_schema"]["properties"]["choice"]["enum"] == [
        "route A",
        "route B",
    ]
    rates = atp.deviant_rate(analysis.load_run(tmp_path / "r"))
    assert rates["game_round"].tolist() == [1, 2]


def test_diffusion_on_the_embedded_model(tmp_path, embedded_gguf):
    overrides = [
        "population.groups.llm.count=2", "game.framings=[hunting]", "game.thresholds=[2]",
        "game.rounds=2",
    ]  # fmt: skip
    res = society.run(ROOT / "scenarios" / "atp_diffusion.yaml", out=tmp_path / "r",
                      overrides=overrides)  # fmt: skip
    assert res.status == "finished"
    rows = query(tmp_path / "r", "SELECT action, source FROM decisions")
    assert len(rows) == 4
    assert all(a in ("deer", "rabbits") for a, s in rows if s == "llm")
    caps = query(tmp_path / "r", "SELECT value FROM events WHERE kind='capital' AND round=1")
    assert len(caps) == 2 and all(v > 0 for (v,) in caps)
    run = analysis.load_run(tmp_path / "r")
    assert len(atp.deviant_rate(run)) == 2
