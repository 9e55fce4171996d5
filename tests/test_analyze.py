"""`society analyze` and `society show`: the reports of real runs made in-process from
shipped scenarios (``analysis.report``; the run stores may be of format 1 or 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")

from analysis import cooperation, load_run  # noqa: E402
from analysis.report import ReportError, analyze, show  # noqa: E402
from society.runner import start_run  # noqa: E402
from society.scenario import load_scenario  # noqa: E402
from tests.helpers import run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


def _run(tmp: Path, name: str, overrides: list[str]) -> Path:
    run_dir = tmp / name
    start_run(load_scenario(SCENARIOS / f"{name}.yaml", overrides), run_dir, quiet=True)
    return run_dir


@pytest.fixture(scope="module")
def ipd_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("ipd"), "ipd_tournament", ["game.rounds=30"])


@pytest.fixture(scope="module")
def ipd_long_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("ipd_long"), "ipd_tournament", ["game.rounds=60"])


@pytest.fixture(scope="module")
def donor_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(
        tmp_path_factory.mktemp("donor"), "donor_game_scripted", ["evolution.generations=3"]
    )


def _key(md: str, name: str) -> str:
    """The value of a key figure in summary.md."""
    m = re.search(rf"^\| {re.escape(name)} \| (.*?) \|$", md, re.M)
    assert m, f"key figure {name!r} not in the summary"
    return m.group(1)


def test_repeated_game_report(ipd_run: Path) -> None:
    rep = analyze(ipd_run)
    out = rep.out
    assert out == ipd_run / "report" and rep.summary_md == out / "summary.md"
    for f in (
        "summary.md",
        "summary.html",
        "cooperation_by_round.csv",
        "cooperation_by_group.csv",
        "conditional_cooperation.csv",
        "score_vs_max.csv",
        "entropy_by_round.csv",
        "influence.csv",
        "cooperation_over_time.png",
        "entropy.png",
        "drift_curve.png",
        "network.png",
    ):
        assert (out / f).stat().st_size > 0, f
    md = (out / "summary.md").read_text()
    run = load_run(ipd_run)
    rate = cooperation.cooperation_rate(run, None)["rate"].iloc[0]
    assert float(_key(md, "cooperation rate (all moves)")) == pytest.approx(rate, abs=1e-3)
    assert _key(md, "decisions") == str(len(run.decisions)) == "2700"
    assert _key(md, "rounds (steps)") == "30"
    # 30 rounds is too short for early warning: skipped with a note, not a crash.
    assert "early warning: skipped" in md and "need at least 40" in md
    assert "change point of the cooperation rate per round" in md
    assert "D* =" in md
    # Reciprocity per strategy: TFT copies the partner's last move exactly.
    cond = pd.read_csv(out / "conditional_cooperation.csv").set_index("strategy")
    assert cond.loc["tit_for_tat", "p_c_after_c"] == 1.0
    assert cond.loc["tit_for_tat", "p_c_after_d"] == 0.0
    assert cond.loc["always_defect", "retaliation"] == 1.0
    score = pd.read_csv(out / "score_vs_max.csv").set_index("grp")
    assert score.loc["defector", "score"] == pytest.approx(1.0)
    html = (out / "summary.html").read_text()
    assert '<img src="cooperation_over_time.png"' in html and "<table>" in html
    assert "![Cooperation rate over rounds by group](cooperation_over_time.png)" in md


def test_repeated_game_early_warning_when_long_enough(ipd_long_run: Path, tmp_path: Path) -> None:
    out = analyze(ipd_long_run, tmp_path / "rep").out
    md = (out / "summary.md").read_text()
    assert "early warning: skipped" not in md
    ew = pd.read_csv(out / "early_warning.csv")
    assert set(ew["indicator"]) == {"variance", "cv", "ar1", "skewness"}
    assert ((ew["p_value"] > 0) & (ew["p_value"] <= 1)).all()
    assert (out / "early_warning.png").exists()
    assert "early warning: Kendall tau of ar1" in md


def test_donor_game_report(donor_run: Path, tmp_path: Path) -> None:
    out = analyze(donor_run, tmp_path / "donor-report").out
    for f in (
        "donation_by_generation.csv",
        "resources_by_generation.csv",
        "survival_by_group.csv",
        "gini_by_generation.csv",
        "strategy_drift.csv",
        "resources_per_generation.png",
        "donation_fraction.png",
        "strategy_drift.png",
        "summary.html",
    ):
        assert (out / f).stat().st_size > 0, f
    md = (out / "summary.md").read_text()
    run = load_run(donor_run)
    frac = cooperation.donation_fraction(run, "generation")
    assert len(frac) == 3
    last = float(_key(md, "donation fraction (last generation)"))
    assert last == pytest.approx(frac["mean_fraction"].iloc[-1], abs=1e-3)
    res = cooperation.mean_resources(run)
    got = float(_key(md, "mean final resources (last generation)").replace(",", ""))
    assert got == pytest.approx(res["mean_resources"].iloc[-1], rel=1e-3)
    assert _key(md, "generations") == "3"
    surv = pd.read_csv(out / "survival_by_group.csv")
    assert surv["survivors"].sum() > 0
    # The embedder is named wherever semantic drift is reported.
    drift = pd.read_csv(out / "strategy_drift.csv")
    emb = drift["embedder"].iloc[0]
    assert emb in md and "embedder:" in md
    assert "Gini (last generation)" in md
    assert "no LLM calls" in md


def test_cli_analyze(ipd_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-report"
    res = run_cli("analyze", str(ipd_run), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert str(out) in res.stdout
    assert (out / "summary.md").exists() and (out / "summary.html").exists()

    missing = tmp_path / "no-such-run"
    res = run_cli("analyze", str(missing), timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-run" in lines[0] and "Traceback" not in res.stderr


def test_missing_or_empty_run(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no such run directory"):
        analyze(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no run store"):
        analyze(tmp_path / "empty")
    with pytest.raises(ReportError, match="no run store"):
        show(tmp_path / "empty")


def test_tiny_run_does_not_crash(tmp_path: Path) -> None:
    """Two rounds: most sections are skipped with a note, the pages are still written."""
    run_dir = _run(tmp_path, "ipd_tournament", ["game.rounds=2"])
    out = analyze(run_dir).out
    md = (out / "summary.md").read_text()
    assert "change point: skipped" in md
    assert "drift equilibrium: skipped" in md
    assert (out / "summary.html").exists()


def test_show_and_report_give_the_same_figures(ipd_run: Path, donor_run: Path) -> None:
    """`society show` and the report read each figure from the same analysis function."""
    run = load_run(ipd_run)
    text = show(ipd_run)
    assert "per strategy:" in text and "per agent (top 10 of 10 by score):" in text
    coop = cooperation.cooperation_rate(run, ["grp", "strategy"]).set_index("strategy")["rate"]
    scores = cooperation.strategy_scores(run).set_index("strategy")
    line = next(ln for ln in text.splitlines() if " tit_for_tat " in ln).split()
    assert float(line[-1]) == pytest.approx(coop["tit_for_tat"], abs=1e-3)
    assert float(line[3]) == pytest.approx(scores.loc["tit_for_tat", "mean_score"], abs=1e-3)

    run = load_run(donor_run)
    text = show(donor_run)
    frac = cooperation.donation_fraction(run, "generation")
    table = text.split("donor game per generation:")[1].splitlines()[2:5]
    shown = [float(row.split()[2]) for row in table]
    assert shown == pytest.approx(list(100 * frac["mean_fraction"]), abs=0.05)
    assert "a punishment gives nothing and counts as 0" in text
