"""A reduced donor-game run with cultural evolution on the embedded model (real LLM)."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from analysis.report import show as render
from society.runner import start_run
from society.scenario import load_scenario

pytestmark = [pytest.mark.llm, pytest.mark.slow]


def test_reduced_donor_run_on_embedded_model(tmp_path, embedded_gguf):
    pytest.importorskip("llama_cpp")
    sc = load_scenario(
        "scenarios/donor_game.yaml",
        [
            "population.groups.llm.count=4",
            "evolution.generations=2",
            "game.rounds=4",
            "game.games_per_generation=1",
            # Smaller budgets keep CI time down; the prompts and schema are the protocol's.
            "game.strategy_max_tokens=96",
            "game.donation_max_tokens=96",
            "game.reasoning_chars=120",
        ],
    )
    t0 = time.perf_counter()
    result = start_run(sc, tmp_path / "run", quiet=True)
    wall = time.perf_counter() - t0
    assert result.status == "finished"
    conn = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    donations = conn.execute(
        "SELECT data, value, valid, source, llm_call_id FROM decisions WHERE kind='donate'"
    ).fetchall()
    assert len(donations) == 2 * 4 * 2  # generations x rounds x donors per round
    for data, value, valid, source, call_id in donations:
        # A donor holding nothing is not asked (its only legal answer is 0).
        assert (call_id is None) == (source == "forced")
        assert (valid, source) in ((1, "llm"), (0, "fallback"), (1, "forced"))
        if source == "forced":
            assert value == 0.0
        if not valid:
            assert value == 0.0  # the documented fallback
        assert json.loads(data)["amount"] == value
    # Amounts never exceed what the donor held; exactly the empty-handed donors were forced.
    empty = 0
    for (data,) in conn.execute("SELECT data FROM events WHERE kind='donation'"):
        d = json.loads(data)
        assert d["donor_after"] >= 0 and d["percent"] <= 100 + 1e-9
        empty += d["donor_before"] == 0
    assert empty == sum(1 for d in donations if d[3] == "forced")
    strategies = conn.execute(
        "SELECT generation, COUNT(*) FROM events WHERE kind='strategy' GROUP BY 1"
    ).fetchall()
    assert strategies == [(0, 4), (1, 4)]
    assert conn.execute("SELECT COUNT(*) FROM agents WHERE generation = 1").fetchone() == (2,)
    invalid = sum(1 for d in donations if not d[2]) / len(donations)
    bad_strat = conn.execute(
        "SELECT AVG(valid = 0) FROM decisions WHERE kind='strategy'"
    ).fetchone()[0]
    print(
        f"\nreduced donor run: {wall:.1f}s wall, donation invalid rate {invalid:.1%}, "
        f"strategy invalid rate {bad_strat:.1%}"
    )
    print(render(tmp_path / "run"))


def test_free_text_replies_on_embedded_model(tmp_path, embedded_gguf):
    """The authors' choices (scenarios/donor_game_code.yaml) on the real model: free-text
    "Justification/Answer" replies are read or recorded invalid with the fallback."""
    pytest.importorskip("llama_cpp")
    sc = load_scenario(
        "scenarios/donor_game_code.yaml",
        [
            "population.groups.llm.count=4",
            "evolution.generations=1",
            "game.rounds=2",
            "game.games_per_generation=1",
            "game.strategy_max_tokens=64",
            "game.donation_max_tokens=64",
        ],
    )
    result = start_run(sc, tmp_path / "run", quiet=True)
    assert result.status == "finished"
    conn = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    donations = conn.execute(
        "SELECT value, valid, source FROM decisions WHERE kind='donate'"
    ).fetchall()
    assert len(donations) == 2 * 2  # rounds x donors per round, every donor asked
    assert all((valid, source) in ((1, "llm"), (0, "fallback")) for _, valid, source in donations)
    assert all(value == 0.0 for value, valid, _ in donations if not valid)
    calls = conn.execute("SELECT params, purpose FROM llm_calls").fetchall()
    assert all(json.loads(p)["json_schema"] is None for p, _ in calls)  # free text throughout
    invalid = sum(1 for d in donations if not d[1]) / len(donations)
    print(f"\nfree-text donor run: donation invalid rate {invalid:.1%}")
