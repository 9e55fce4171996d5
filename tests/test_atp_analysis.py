"""Analysis of alignment-tipping runs: rates with intervals across items and seeds, the
tipping round of a scenario whose tipping round is known in advance, the spread of the
deviant choice (who adopted when, after whom), the direction of 'aligned', the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import analysis
import society
from analysis import atp
from analysis.report import analyze, sections, show
from tests.helpers import ROOT

KNOWN = ROOT / "scenarios" / "atp_diffusion_known_tipping.yaml"


def run_known(tmp_path: Path, *overrides: str, name: str = "k") -> analysis.Run:
    society.run(KNOWN, out=tmp_path / name, overrides=list(overrides))
    return analysis.load_run(tmp_path / name)


def test_sections_are_found_by_kind():
    assert {"atp_exploration", "atp_diffusion"} <= set(sections.kinds())


def test_known_tipping_round_is_detected(tmp_path):
    run = run_known(tmp_path)
    rates = atp.deviant_rate(run)
    assert rates["rate"].tolist() == pytest.approx([0] * 5 + [0.25] + [1.0] * 6)
    tip = atp.tipping_round(run)
    assert tip.round == 7  # announced in the scenario file
    assert tip.p_value < 0.01
    assert tip.before == pytest.approx(0.25 / 6) and tip.after == pytest.approx(1.0)
    # The tipping round moves with the seeds' switch round, as the scenario says.
    later = run_known(tmp_path, "population.groups.seed.strategy.round=9", name="k9")
    assert atp.tipping_round(later).round == 10


def test_aligned_direction_is_a_setting(tmp_path):
    run = run_known(tmp_path, "game.aligned=collective")
    rates = atp.deviant_rate(run)  # deviant = independent now
    assert rates["rate"].tolist() == pytest.approx([1.0] * 5 + [0.75] + [0.0] * 6)
    assert run.game["deviant"] == "independent"


def test_spread_on_a_ring_who_adopted_when_after_whom(tmp_path):
    # Slot 0 turns collective in round 3; conditional cooperators (threshold 0.5, two
    # neighbours each) follow one ring step per round.
    data: dict[str, Any] = {
        "name": "ring",
        "seed": 1,
        "population": {"groups": [
            {"name": "seed", "strategy": {"name": "switch_at", "round": 3}},
            {"name": "cc", "count": 5, "strategy": {"name": "conditional", "threshold": 0.5}},
        ]},
        "network": {"kind": "ring", "k": 2},
        "game": {"kind": "atp_diffusion", "framings": ["team_project"], "thresholds": [3],
                 "rounds": 7},
    }  # fmt: skip
    society.run(data, out=tmp_path / "r")
    spread = atp.adoptions(analysis.load_run(tmp_path / "r"))
    got = {int(r.agent_id): (int(r.adopted_round), r.sources) for r in spread.itertuples()}
    assert got == {0: (3, ""), 1: (4, "0"), 5: (4, "0"), 2: (5, "1"), 4: (5, "5"), 3: (6, "2 4")}
    assert spread.set_index("agent_id").loc[0, "seed"]
    assert spread["exposed"].eq(2).all()


def test_intervals_across_items_and_seeds(tmp_path):
    # Two seeds of a 2-role exploration: violators in half of the units.
    def one(seed: int) -> Path:
        data = {
            "name": "x", "seed": seed,
            "population": {"groups": [
                {"name": "v", "strategy": "always_violate"},
                {"name": "c", "strategy": "always_comply"},
            ]},
            "game": {"kind": "atp_exploration", "roles": ["baker", "chef"], "variants": 2,
                     "rounds": 2},
        }  # fmt: skip
        out = tmp_path / f"s{seed}"
        society.run(data, out=out)
        return out

    rs = analysis.load_runs([one(1), one(2)])
    rates = atp.deviant_rate(rs)
    assert rates["units"].tolist() == [8, 8]  # 4 items x 2 runs
    assert rates["rate"].tolist() == pytest.approx([0.5, 0.5])  # each unit: 1 of 2 agents
    assert rates["ci_low"].tolist() == pytest.approx([0.5, 0.5])  # no spread across units
    by = atp.deviant_rate(rs, ["grp", "game_round"])
    assert by.set_index(["grp", "game_round"])["rate"].to_dict() == {
        ("c", 1): 0.0, ("c", 2): 0.0, ("v", 1): 1.0, ("v", 2): 1.0
    }  # fmt: skip


def test_t_interval_matches_a_hand_computation():
    c = pd.DataFrame({
        "generation": 0, "unit": [0, 1, 2, 3], "game_round": 1,
        "deviant": [True, False, True, True], "unparsable": False,
    })  # fmt: skip
    from scipy import stats

    rates = atp.deviant_rate(c)
    sem = pd.Series([1.0, 0.0, 1.0, 1.0]).std() / 2
    half = stats.t.ppf(0.975, 3) * sem
    assert rates["rate"].iloc[0] == pytest.approx(0.75)
    assert rates["ci_low"].iloc[0] == pytest.approx(max(0.0, 0.75 - half))
    assert rates["ci_high"].iloc[0] == pytest.approx(min(1.0, 0.75 + half))


def test_memos_table(tmp_path):
    data = {
        "name": "m", "seed": 1,
        "population": {"groups": [{"name": "w", "strategy": "win_stay_lose_shift"}]},
        "game": {"kind": "atp_exploration", "roles": ["library"], "variants": 1, "rounds": 4,
                 "reflect_every": 2},
    }  # fmt: skip
    society.run(data, out=tmp_path / "r")
    m = atp.memos(analysis.load_run(tmp_path / "r"))
    assert m[["agent_id", "unit", "after_round"]].values.tolist() == [[0, 0, 2]]
    assert m["text"].iloc[0].startswith("Repeat the last choice")


def test_reports_and_show(tmp_path):
    run_known(tmp_path)
    rep = analyze(tmp_path / "k", tmp_path / "rep")
    text = rep.summary_md.read_text()
    assert "| tipping round | 7 |" in text
    assert "Alignment tipping: spread through the network" in text
    assert (tmp_path / "rep" / "deviant_by_round.csv").exists()
    assert (tmp_path / "rep" / "collective_rate.png").exists()
    adoptions = pd.read_csv(tmp_path / "rep" / "adoptions.csv")
    assert len(adoptions) == 8 and adoptions["seed"].sum() == 2
    out = show(tmp_path / "k")
    assert "round 7: 1.000" in out and "tipping round: 7" in out

    data = {
        "name": "x", "seed": 1,
        "population": {"groups": [{"name": "s", "strategy": {"name": "switch_at", "round": 3}}]},
        "game": {"kind": "atp_exploration", "roles": ["sales", "chef"], "rounds": 6},
    }  # fmt: skip
    society.run(data, out=tmp_path / "x")
    rep = analyze(tmp_path / "x", tmp_path / "xrep")
    text = rep.summary_md.read_text()
    assert "| tipping round | 3 |" in text and "| violation rate (last round) | 1 |" in text
    by_variant = pd.read_csv(tmp_path / "xrep" / "violation_by_variant.csv")
    assert len(by_variant) == 4 * 6
