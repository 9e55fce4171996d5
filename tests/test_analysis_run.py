"""load_run / load_runs / summarize_across on run stores written here with sqlite3, in
both store formats (1: donor actions as JSON in ``action``; 2: ``decisions.data`` and meta
``resolved_game``), so these tests need nothing of the runtime."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis import Run, load_run, load_runs, summarize_across
from analysis import cooperation as coop
from analysis.run import upgrade_decisions

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
PD_MATRIX = [[[8, 8], [0, 10]], [[10, 0], [5, 5]]]

_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE agents (
    agent_id INTEGER PRIMARY KEY, name TEXT NOT NULL, grp TEXT NOT NULL, kind TEXT NOT NULL,
    strategy TEXT, params TEXT, backend TEXT, model TEXT, persona TEXT,
    generation INTEGER NOT NULL DEFAULT 0, parent_id INTEGER,
    born_round INTEGER NOT NULL DEFAULT 0);
CREATE TABLE rounds (
    round INTEGER PRIMARY KEY, generation INTEGER NOT NULL DEFAULT 0,
    game INTEGER NOT NULL DEFAULT 0, round_in_game INTEGER NOT NULL DEFAULT 0,
    n_decisions INTEGER NOT NULL, wall_s REAL NOT NULL);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY, round INTEGER NOT NULL, generation INTEGER NOT NULL DEFAULT 0,
    agent_id INTEGER NOT NULL, partner_id INTEGER, kind TEXT NOT NULL, action TEXT,
    value REAL, valid INTEGER NOT NULL DEFAULT 1, source TEXT NOT NULL,
    llm_call_id INTEGER{data});
CREATE TABLE events (
    id INTEGER PRIMARY KEY, round INTEGER NOT NULL, generation INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL, agent_id INTEGER, partner_id INTEGER, action TEXT, value REAL,
    data TEXT);
CREATE TABLE llm_calls (
    id INTEGER PRIMARY KEY, round INTEGER NOT NULL, agent_id INTEGER, purpose TEXT,
    backend TEXT NOT NULL, model TEXT NOT NULL, messages TEXT NOT NULL, params TEXT NOT NULL,
    seed INTEGER, reply TEXT, parsed TEXT, valid INTEGER NOT NULL, error TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, latency_s REAL, logprobs TEXT);
CREATE TABLE checkpoints (id INTEGER PRIMARY KEY CHECK (id = 1), round INTEGER NOT NULL,
    state TEXT NOT NULL);
"""


def _j(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def write_store(
    run_dir: Path,
    fmt: int,
    meta: dict[str, Any],
    agents: list[tuple],
    rounds: list[tuple],
    decisions: list[dict[str, Any]],
    events: list[tuple],
    llm_calls: list[tuple] = (),
    resolved_game: dict[str, Any] | None = None,
) -> Path:
    """Write a run store of format ``fmt`` (1 or 2) with sqlite3 alone.

    ``decisions`` are dicts of the columns (``data`` a dict or None, format 2 only: in
    format 1 a 'donate' decision's ``action`` must already hold its JSON).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(run_dir / "run.sqlite")
    con.executescript(_TABLES.format(data=", data TEXT" if fmt == 2 else ""))
    items = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    if fmt == 2:
        items["format_version"] = "2"
        if resolved_game is not None:
            items["resolved_game"] = json.dumps(resolved_game)
    con.executemany("INSERT INTO meta VALUES (?, ?)", items.items())
    con.executemany(f"INSERT INTO agents VALUES ({', '.join('?' * 12)})", agents)
    con.executemany("INSERT INTO rounds VALUES (?, ?, ?, ?, ?, ?)", rounds)
    cols = ["round", "generation", "agent_id", "partner_id", "kind", "action", "value"]
    cols += ["valid", "source", "llm_call_id"] + (["data"] if fmt == 2 else [])
    rows = []
    for d in decisions:
        d = {"partner_id": None, "value": None, "valid": 1, "source": "scripted",
             "llm_call_id": None, "data": None, **d}  # fmt: skip
        d["data"] = None if d["data"] is None else _j(d["data"])
        rows.append(tuple(d[c] for c in cols))
    con.executemany(
        f"INSERT INTO decisions ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows
    )
    con.executemany(
        "INSERT INTO events (round, generation, kind, agent_id, partner_id, action, value, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        events,
    )
    con.executemany(f"INSERT INTO llm_calls VALUES ({', '.join('?' * 17)})", llm_calls)
    con.commit()
    con.close()
    return run_dir


def make_store(run_dir, moves1=A1, moves2=A2, seed=7, fmt=2, resolved=True, payoffs=PD_MATRIX):
    """A small repeated prisoner's dilemma run store (agent 1 an LLM, agent 2 TFT)."""
    agents = [
        (1, "a1", "llm", "llm", "text", _j({}), "fake", "m1", None, 0, None, 0),
        (2, "a2", "tft", "scripted", "tit_for_tat", "{}", None, None, None, 0, None, 0),
    ]
    dec, ev, rounds = [], [], []
    for r, (m1, m2) in enumerate(zip(moves1, moves2, strict=True)):
        base = {"round": r, "generation": 0, "kind": "move"}
        dec.append({**base, "agent_id": 1, "partner_id": 2, "action": m1,
                    "value": float(m1 == "D"), "source": "llm"})  # fmt: skip
        dec.append({**base, "agent_id": 2, "partner_id": 1, "action": m2,
                    "value": float(m2 == "D")})  # fmt: skip
        p1, p2 = PD[(m1, m2)]
        ev += [
            (r, 0, "payoff", 1, 2, m1, float(p1), None),
            (r, 0, "payoff", 2, 1, m2, float(p2), None),
        ]
        rounds.append((r, 0, 0, r, 2, 0.01))
    game = {"kind": "repeated_2x2", "name": "prisoners_dilemma", "payoffs": payoffs,
            "labels": ["J", "F"], "actions": ["C", "D"], "rounds": len(moves1), "noise": 0.0,
            "continuation": None}  # fmt: skip
    meta = {"name": "pd-test", "seed": seed, "game": "repeated_2x2", "scenario": SCENARIO,
            "status": "finished"}  # fmt: skip
    return write_store(
        run_dir, fmt, meta, agents, rounds, dec, ev, resolved_game=game if resolved else None
    )


DONOR_SCENARIO = """\
name: donor-test
seed: 3
game: {kind: donor, endowment: 10, multiplier: 2, rounds: 2, punishment: true}
"""
DONOR_GAME = {"kind": "donor", "endowment": 10.0, "multiplier": 2.0, "rounds": 2,
              "trace_depth": 3, "games_per_generation": 1, "punishment": True,
              "punishment_cost": 1.0, "punishment_fine": 2.0}  # fmt: skip
# (generation, round, donor, recipient, amount, percent, punish, source, valid)
DONATIONS = [
    (0, 0, 1, 2, 5.0, 50.0, False, "llm", 1),
    (0, 0, 3, 4, 2.0, 20.0, True, "llm", 1),
    (0, 1, 2, 1, 0.0, 0.0, False, "fallback", 0),
    (0, 1, 4, 3, 10.0, 100.0, False, "scripted", 1),
    (1, 2, 1, 3, 4.0, 40.0, True, "llm", 1),
    (1, 2, 2, 4, 3.0, 30.0, False, "llm", 1),
    (1, 3, 3, 1, 1.0, 10.0, False, "scripted", 1),
    (1, 3, 4, 2, 6.0, 60.0, False, "scripted", 1),
]


def make_donor_store(run_dir: Path, fmt: int = 2) -> Path:
    """A two-generation donor game with punishment: two LLM and two scripted donors."""
    agents = [
        (1, "llm-1", "llm", "llm", "Give half.", None, "fake", "m", None, 0, None, 0),
        (2, "llm-2", "llm", "llm", "<b>Give</b> | little", None, "fake", "m", None, 0, None, 0),
        (3, "is-3", "scorer", "scripted", "image_scoring", None, None, None, None, 0, None, 0),
        (4, "fx-4", "fixed", "scripted", "fixed", None, None, None, None, 0, None, 0),
    ]
    dec, ev = [], []
    for gen, r, donor, rec, amount, pct, punish, source, valid in DONATIONS:
        data = {"amount": amount, "percent": pct, "punish": punish}
        row = {"round": r, "generation": gen, "agent_id": donor, "partner_id": rec,
               "kind": "donate", "value": amount, "source": source, "valid": valid}  # fmt: skip
        if fmt == 2:
            row.update(action="punish" if punish else "give", data=data)
        else:
            row.update(action=json.dumps(data))
        dec.append(row)
        kind = "punishment" if punish else "donation"
        ev.append((r, gen, kind, donor, rec, None, amount, _j({"percent": pct})))
    for r in range(4):
        for a in range(1, 5):
            ev.append((r, r // 2, "resources", a, None, None, 10.0 + a + r, None))
    for gen in (0, 1):
        for a in range(1, 5):
            ev.append((2 * gen + 1, gen, "fitness", a, None, None, 10.0 + a, None))
        for a in (3, 4):
            ev.append((2 * gen + 1, gen, "survivor", a, None, None, None, None))
    for a in (1, 2):
        dec.append({"round": 0, "generation": 0, "agent_id": a, "kind": "strategy",
                    "action": agents[a - 1][4], "source": "llm"})  # fmt: skip
        ev.append((0, 0, "strategy", a, None, agents[a - 1][4], None, None))
    rounds = [(r, r // 2, 0, r % 2, 4, 0.02) for r in range(4)]
    calls = [
        (i, 0, 1, "donate", "fake", "m", "[]", "{}", None, "x", None, int(i != 2), None, 10, 2,
         0.1, None)
        for i in range(1, 5)
    ]  # fmt: skip
    meta = {"name": "donor-test", "seed": 3, "game": "donor", "scenario": DONOR_SCENARIO,
            "status": "finished"}  # fmt: skip
    return write_store(run_dir, fmt, meta, agents, rounds, dec, ev, calls, DONOR_GAME)


@pytest.mark.parametrize("fmt", [1, 2])
def test_load_run_dir_and_file(tmp_path, fmt):
    d = make_store(tmp_path / "r1", fmt=fmt)
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


@pytest.mark.parametrize("kind", ["repeated", "donor"])
def test_format_1_and_2_load_to_the_same_frames(tmp_path, kind):
    make = make_store if kind == "repeated" else make_donor_store
    old, new = load_run(make(tmp_path / "v1", fmt=1)), load_run(make(tmp_path / "v2", fmt=2))
    assert old.format_version == "1" and new.format_version == "2"
    for name in ("agents", "decisions", "events", "llm_calls", "rounds"):
        a, b = getattr(old, name), getattr(new, name)
        # Categories may be listed in another order: compare the values.
        a = a.apply(lambda c: c.astype(object) if isinstance(c.dtype, pd.CategoricalDtype) else c)
        b = b.apply(lambda c: c.astype(object) if isinstance(c.dtype, pd.CategoricalDtype) else c)
        pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=name)
    assert "data" in old.decisions.columns and "data" in new.decisions.columns


def test_donor_decisions_shape(tmp_path):
    run = load_run(make_donor_store(tmp_path / "r", fmt=1))
    don = run.decisions[run.decisions["kind"] == "donate"]
    assert list(don["action"].astype(str)) == ["punish" if d[6] else "give" for d in DONATIONS]
    assert json.loads(don["data"].iloc[1]) == {"amount": 2.0, "percent": 20.0, "punish": True}
    # Non-donate rows keep their text and get no data (a JSON-looking strategy too).
    strat = run.decisions[run.decisions["kind"] == "strategy"]
    assert list(strat["action"].astype(str)) == ["Give half.", "<b>Give</b> | little"]
    assert strat["data"].isna().all()
    moves = load_run(make_store(tmp_path / "m", fmt=1)).decisions
    assert moves["data"].isna().all() and set(moves["action"]) == {"C", "D"}


def test_upgrade_decisions_leaves_format_2_alone():
    df = pd.DataFrame(
        {"kind": ["donate", "move"], "action": ["give", "C"], "data": ['{"percent":5}', None]}
    )
    assert upgrade_decisions(df) is df and list(df["action"]) == ["give", "C"]
    old = pd.DataFrame(
        {"kind": ["donate", "strategy"], "action": ['{"amount":1,"percent":10}'] * 2}
    )
    new = upgrade_decisions(old)
    assert list(new["action"].astype(str)) == ["give", '{"amount":1,"percent":10}']
    assert new["data"].iloc[0] == '{"amount":1,"percent":10}' and pd.isna(new["data"].iloc[1])


def test_resolved_game_on_the_run(tmp_path):
    new = load_run(make_store(tmp_path / "v2"))
    assert new.game["payoffs"] == PD_MATRIX and new.game["name"] == "prisoners_dilemma"
    assert new.kind == "repeated_2x2"
    old = load_run(make_store(tmp_path / "v1", fmt=1))
    assert old.game == {"kind": "repeated_2x2", "preset": "prisoners_dilemma", "rounds": 5}
    rs = load_runs([new, old])
    assert rs.game[rs.labels[0]]["payoffs"] == PD_MATRIX


def test_payoff_matrix_reads_the_resolved_game_first(tmp_path):
    # The stored scenario names the preset (8/0/10/5); a resolved game (here made to
    # differ: 3/0/5/1) is what was played, and it wins over rebuilding from the scenario.
    classic = [[[3, 3], [0, 5]], [[5, 0], [1, 1]]]
    new = load_run(make_store(tmp_path / "v2", payoffs=classic))
    assert coop.payoff_matrix(new).tolist() == classic
    old = load_run(make_store(tmp_path / "v1", fmt=1))  # rebuilt from the scenario's preset
    assert coop.payoff_matrix(old).tolist() == PD_MATRIX
    no_key = load_run(make_store(tmp_path / "v2-old", resolved=False))
    assert coop.payoff_matrix(no_key).tolist() == PD_MATRIX
    # score_vs_max's maximum comes from the resolved matrix: 5 per round is the best reply
    # to C, 1 to D (against a2 = C D D C D: 5 + 1 + 1 + 5 + 1).
    s = coop.score_vs_max(new, by="agent_id").set_index("agent_id")
    assert s.loc[1, "max_achievable"] == 13


def test_donation_fraction_counts_a_punishment_as_nothing_given(tmp_path):
    run = load_run(make_donor_store(tmp_path / "r"))
    frac = coop.donation_fraction(run, "generation").set_index("generation")
    # gen 0: 50, (punish) 0, 0, 100 -> 37.5 %; gen 1: (punish) 0, 30, 10, 60 -> 25 %.
    assert frac.loc[0, "mean_fraction"] == pytest.approx(0.375)
    assert frac.loc[1, "mean_fraction"] == pytest.approx(0.25)
    assert frac.loc[0, "mean_amount"] == pytest.approx((5 + 0 + 0 + 10) / 4)
    assert list(frac["punishments"]) == [1, 1] and list(frac["n"]) == [4, 4]
    assert frac.loc[1, "punish_rate"] == pytest.approx(0.25)
    total = coop.donation_fraction(run, None).iloc[0]
    assert total["mean_fraction"] == pytest.approx(0.3125) and total["punishments"] == 2
    don = coop.donations(run)
    assert list(don["percent"])[:2] == [50.0, 20.0]  # what was spent, punishing or not
    assert list(don["fraction"])[:2] == [0.5, 0.0]  # what was given
    assert "counts as 0" in coop.donation_fraction.__doc__ and "counts as 0" in (
        coop.DONATION_DEFINITION
    )
