"""Every scenario shipped in scenarios/ loads and plays to the end (shortened, fake LLM)."""

from __future__ import annotations

import sqlite3

import pytest

from society.runner import start_run
from society.scenario import load_scenario
from tests.helpers import ROOT

SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))


def shorter(path) -> list[str]:
    """Overrides that shorten any game's scenario (by the fields its config has)."""
    sc = load_scenario(path)
    fields = type(sc.game).model_fields
    out = [
        f"game.{k}={v}"
        for k, v in (("rounds", 4), ("games_per_generation", 1), ("periods", 3), ("turns", 4))
        if k in fields
    ]
    if sc.evolution.generations > 2:
        out.append("evolution.generations=2")
    return out


def test_the_protocol_scenarios_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert {
        "ipd_tournament",
        "ipd_llm",
        "donor_game",
        "donor_game_punishment",
        "donor_game_multiplier_1.5",
        "donor_game_multiplier_3",
        "donor_game_trace_1",
        "donor_game_trace_2",
        "donor_game_mixed",
        "donor_game_scripted",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenario_runs(path, tmp_path):
    sc = load_scenario(path, shorter(path), backend="fake", model="fake")
    result = start_run(sc, tmp_path / "run", quiet=True)
    assert result.status == "finished"
    conn = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    try:
        (n,) = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()
    finally:
        conn.close()
    assert n > 0
