"""Sizes bounded up front: the estimate against real runs, --dry-run, refusals, limits."""

from __future__ import annotations

import sqlite3

import pytest

from society.errors import UserError
from society.estimate import check, estimate, preflight
from society.runner import start_run
from society.scenario import load_scenario
from tests.helpers import ROOT, run_cli

SCENARIOS = ROOT / "scenarios"


def _measured(run_dir):
    conn = sqlite3.connect(run_dir / "run.sqlite")
    try:
        calls = conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0]
    finally:
        conn.close()
    return calls, (run_dir / "run.sqlite").stat().st_size


@pytest.mark.parametrize(
    ("name", "backend"),
    [
        ("ipd_tournament", None),
        ("donor_game_scripted", None),
        ("travelers_dilemma", None),
        ("marketplace_baselines", None),
        ("atp_diffusion", "fake"),
        ("ipd_llm", "fake"),
    ],
)
def test_estimate_within_a_factor_of_two_of_a_real_run(name, backend, tmp_path):
    scenario = load_scenario(SCENARIOS / f"{name}.yaml", backend=backend)
    _, est = preflight(scenario)
    result = start_run(scenario, tmp_path / "run", quiet=True)
    calls, store = _measured(tmp_path / "run")
    assert result.decisions / 2 <= est.decisions <= result.decisions * 2, (est, result)
    assert store / 2 <= est.store_bytes <= store * 2, (est.store_bytes, store)
    if calls:
        assert calls / 2 <= est.llm_calls <= calls * 2, (est.llm_calls, calls)
        assert est.prompt_tokens > 0 and est.completion_tokens > 0
    else:
        assert est.llm_calls == 0


def test_an_early_end_is_within_the_estimate(tmp_path):
    """A commons run ends early when the resource collapses (here after 7 of 36 steps):
    the estimate, from the season's length, is then an upper bound."""
    scenario = load_scenario(SCENARIOS / "commons_scripted.yaml")
    _, est = preflight(scenario)
    result = start_run(scenario, tmp_path / "run", quiet=True)
    assert result.decisions <= est.decisions
    assert _measured(tmp_path / "run")[1] <= est.store_bytes


def test_refused_through_the_python_front_door(tmp_path):
    scenario = load_scenario(
        SCENARIOS / "ipd_tournament.yaml", ["population.groups.0.count=1000000000000"]
    )
    with pytest.raises(UserError, match="too large to run.*--allow-large") as err:
        start_run(scenario, tmp_path / "run", quiet=True)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_limits_from_the_scenario_and_allow_large(tmp_path):
    path = SCENARIOS / "travelers_dilemma.yaml"
    scenario = load_scenario(path, ["run.limits.max_decisions=100"])
    with pytest.raises(UserError, match=r"decisions 240 > 100 \(run.limits.max_decisions\)"):
        start_run(scenario, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()
    result = start_run(scenario, tmp_path / "run", quiet=True, allow_large=True)
    assert result.decisions == 240


def test_limits_from_the_environment(monkeypatch):
    scenario = load_scenario(SCENARIOS / "travelers_dilemma.yaml")
    monkeypatch.setenv("SOCIETY_MAX_DECISIONS", "10")
    with pytest.raises(UserError, match="SOCIETY_MAX_DECISIONS"):
        check(scenario, preflight(scenario, allow_large=True)[0])
    monkeypatch.setenv("SOCIETY_MAX_DECISIONS", "ten")
    with pytest.raises(UserError, match="SOCIETY_MAX_DECISIONS: expected a number"):
        check(scenario)


def test_cost_from_configured_prices():
    scenario = load_scenario(
        SCENARIOS / "ipd_llm.yaml",
        ["backend.price_per_1k_prompt_tokens=0.5", "backend.price_per_1k_completion_tokens=2"],
        backend="fake",
    )
    engine, est = preflight(scenario)
    expected = est.prompt_tokens / 1000 * 0.5 + est.completion_tokens / 1000 * 2
    assert est.cost == pytest.approx(expected) and est.cost > 0
    assert "cost" in est.summary()
    # the prices are the estimate's: never passed to the backend
    assert "price_per_1k_prompt_tokens" not in scenario.backend.backend_options()
    assert estimate(load_scenario(SCENARIOS / "ipd_llm.yaml"), engine).cost is None


def test_dry_run_prints_the_estimate_and_creates_nothing(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("run", str(SCENARIOS / "ipd_tournament.yaml"), "--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "decisions          18,000" in proc.stdout
    assert "within the limits" in proc.stdout
    assert not out.exists()


def test_dry_run_of_a_run_beyond_the_limits(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "run", str(SCENARIOS / "donor_game_scripted.yaml"), "--dry-run", "--out", str(out),
        "--set", "game.games_per_generation=1000000000",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "beyond the limits" in proc.stdout and "--allow-large" in proc.stdout
    assert not out.exists()
