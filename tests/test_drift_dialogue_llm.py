"""The drift dialogue on the embedded model (llama.cpp, SmolLM2-135M): real top-k
log-probabilities come back, and each turn's recorded KL is the top-k KL of the two
recorded calls."""

from __future__ import annotations

import json
import math

import pytest

import analysis
from analysis import dialogue as adlg
from games.dialogue import reply_kl
from society.runner import start_run
from society.scenario import load_scenario
from tests.helpers import ROOT

pytestmark = [pytest.mark.llm, pytest.mark.slow]


def test_reduced_llm_run_records_real_logprob_kl(tmp_path):
    overrides = [
        "game.turns=2",
        "game.reminders=[1]",
        "population.groups.test.count=2",
        "population.groups.test.max_tokens=12",
        "population.groups.user.max_tokens=12",
        "population.groups.reference.max_tokens=12",
    ]
    sc = load_scenario(ROOT / "scenarios" / "drift_dialogue.yaml", overrides)
    start_run(sc, tmp_path / "run", quiet=True)
    run = analysis.load_run(tmp_path / "run")
    s = adlg.drift_series(run)
    assert len(s) == 4 and set(s["measure"]) == {"kl_topk"}
    assert all(math.isfinite(d) and d >= 0 for d in s["D"])
    calls = run.llm_calls
    scored = calls[calls["purpose"].isin(["reply", "reference"])]
    assert len(scored) == 8 and scored["logprobs"].notna().all()
    first = json.loads(scored["logprobs"].iloc[0])
    assert first and all(1 <= len(e["top"]) <= 5 for e in first)
    assert all(lp <= 1e-6 for e in first for lp in e["top"].values())
    # Each turn's D_t is reply_kl of that dialogue's recorded reply and reference calls.
    game = run.game
    for (rnd, dlg), row in s.set_index(["turn", "dialogue"]).iterrows():
        step = scored[scored["round"] == scored["round"].unique()[rnd]]
        q, p = (json.loads(step["logprobs"].iloc[2 * dlg + k]) for k in (0, 1))
        mean, _, n = reply_kl(q, p, positions=game["kl_positions"], support=game["kl_support"],
                              floor=game["kl_floor"])  # fmt: skip
        assert row["D"] == pytest.approx(mean, rel=1e-9) and row["positions"] == n
    # The reminder reached the test agents' prompts at turn 1, and only then.
    replies = calls[calls["purpose"] == "reply"]
    last = [
        json.loads(m)[-1]["content"]
        for m in replies[replies["round"] == replies["round"].max()]["messages"]
    ]
    assert all("Reminder of your task" in c for c in last)
    assert s[s["turn"] == 1]["reminded"].all() and not s[s["turn"] == 0]["reminded"].any()
