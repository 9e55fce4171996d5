"""load_run / load_runs / summarize_across on run stores built with society.store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis import Run, load_run, load_runs, summarize_across
from analysis import cooperation as coop
from society.store import RunStore

SCENARIO = """\
name: pd-test
seed: 7
game:
  kind: repeated_2x2
  preset: prisoners_dilemma
  rounds: 5
"""

# Two agents, five rounds: a1 = C C D C C, a2 = C D D C D (hand-computed in the tests).
A1 = "CCDCC"
A2 = "CDDCD"
PD = {("C", "C"): (8, 8), ("C", "D"): (0, 10), ("D", "C"): (10, 0), ("D", "D"): (5, 5)}


def make_store(run_dir, moves1=A1, moves2=A2, seed=7):
    """A small repeated prisoner's dilemma run store."""
    with RunStore.in_dir(run_dir, create=True) as st:
        st.set_meta(name="pd-test", seed=seed, scenario=SCENARIO, status="done")
        agents = [
            (1, "a1", "llm", "llm", "text", json.dumps({}), "fake", "m1", None, 0, None, 0),
            (2, "a2", "tft", "scripted", "tit_for_tat", "{}", None, None, None, 0, None, 0),
        ]
        for r, (m1, m2) in enumerate(zip(moves1, moves2, strict=True)):
            dec = [
                (r, 0, 1, 2, "move", m1, float(m1 == "D"), 1, "llm", None, None),
                (r, 0, 2, 1, "move", m2, float(m2 == "D"), 1, "scripted", None, None),
            ]
            p1, p2 = PD[(m1, m2)]
            ev = [
                (r, 0, "payoff", 1, 2, m1, float(p1), None),
                (r, 0, "payoff", 2, 1, m2, float(p2), None),
            ]
            st.commit_round(
                (r, 0, 0, r, 2, 0.01),
                decisions=dec,
                events=ev,
                agents=agents if r == 0 else (),
            )
    return run_dir


def test_load_run_dir_and_file(tmp_path):
    d = make_store(tmp_path / "r1")
    run = load_run(d)
    run2 = load_run(d / "run.sqlite")
    assert isinstance(run, Run)
    assert len(run.decisions) == 10 and len(run2.decisions) == 10
    assert run.scenario["game"]["preset"] == "prisoners_dilemma"
    assert run.meta["seed"] == "7"
    assert isinstance(run.decisions["action"].dtype, pd.CategoricalDtype)
    assert isinstance(run.decisions["grp"].dtype, pd.CategoricalDtype)
    # Acting agent's group, strategy and model are joined in.
    a1 = run.decisions[run.decisions["agent_id"] == 1]
    assert set(a1["grp"]) == {"llm"} and set(a1["model"]) == {"m1"}
    assert set(run.events[run.events["agent_id"] == 2]["strategy"]) == {"tit_for_tat"}
    assert list(run.rounds["round"]) == [0, 1, 2, 3, 4]
    assert run.decisions["round"].dtype == np.int64


def test_load_run_is_read_only(tmp_path):
    d = make_store(tmp_path / "r1")
    before = (d / "run.sqlite").read_bytes()
    load_run(d)
    assert (d / "run.sqlite").read_bytes() == before
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path / "missing")


def test_load_runs_stacks_with_run_column(tmp_path):
    d1 = make_store(tmp_path / "s1")
    d2 = make_store(tmp_path / "s2", moves1="DDDDD", moves2="DDDDD", seed=8)
    rs = load_runs([d1, d2])
    for df in (rs.agents, rs.decisions, rs.events, rs.rounds):
        assert "run" in df.columns and set(df["run"]) == {"s1", "s2"}
    # Same agent ids in both runs: per-agent metrics must keep them apart.
    rate = coop.cooperation_rate(rs, by="agent_id").set_index(["run", "agent_id"])["rate"]
    assert rate[("s1", 1)] == pytest.approx(4 / 5)
    assert rate[("s2", 1)] == 0.0
    assert isinstance(rs.decisions["grp"].dtype, pd.CategoricalDtype)


def test_summarize_across_hand_computed():
    df = pd.DataFrame({"run": ["a", "a", "b", "c"], "g": [0, 0, 0, 0], "v": [0.5, 1.5, 2.0, 3.0]})
    out = summarize_across(df, "v", "g").iloc[0]
    # Within-run means 1, 2, 3 -> mean 2, std 1, n 3, t(0.975, 2) = 4.3027.
    assert out["mean"] == pytest.approx(2.0)
    assert out["std"] == pytest.approx(1.0)
    assert out["n"] == 3
    half = 4.302652729911275 / np.sqrt(3)
    assert out["ci_low"] == pytest.approx(2 - half)
    assert out["ci_high"] == pytest.approx(2 + half)


def test_load_run_large_is_fast(tmp_path):
    """A large store loads quickly (300k decisions here; 1M loads in a few seconds)."""
    import sqlite3

    d = make_store(tmp_path / "big")
    n = 300_000
    con = sqlite3.connect(d / "run.sqlite")
    # Generated inside SQLite: inserting from Python would dominate the test's time.
    con.execute(
        "INSERT INTO decisions (round, generation, agent_id, partner_id, kind, action, value,"
        " valid, source) WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s"
        " WHERE i < ?) SELECT 5 + i / 100, 0, 1 + i % 2, 2 - i % 2, 'move',"
        " CASE WHEN i % 3 = 0 THEN 'C' ELSE 'D' END, (i % 3 != 0) * 1.0, 1, 'llm' FROM s",
        (n - 1,),
    )
    con.commit()
    con.close()
    run = load_run(d)  # its speed is measured by bench/analysis.py, not asserted here
    assert len(run.decisions) == n + 10
    tail = run.decisions.iloc[10:]
    assert (tail["action"] == "C").sum() == (n + 2) // 3
    assert tail["value"].sum() == n - (n + 2) // 3
    assert tail["round"].iloc[-1] == 5 + (n - 1) // 100
    assert tail["partner_id"].dtype == "Int64" or tail["partner_id"].dtype == np.int64
    assert run.decisions.memory_usage(deep=True).sum() < 60e6
