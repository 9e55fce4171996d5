"""`society fork`: a new run from a committed step of an earlier one (society.fork)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from society.cli import main
from society.errors import UserError
from society.fork import fork_run, make_fork
from society.runner import start_run
from society.scenario import load_scenario
from society.sweep import load_sweep_file, run_sweep

ROOT = Path(__file__).resolve().parents[1]
IPD = ROOT / "scenarios" / "ipd_tournament.yaml"
IPD_LLM = ROOT / "scenarios" / "ipd_llm.yaml"


def rows(run_dir: Path, *, calls_timing: bool = False) -> dict[str, list[tuple]]:
    """Every row of a store but its timings (wall_s, call latency) and metadata."""
    conn = sqlite3.connect(run_dir / "run.sqlite")
    try:
        out = {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("agents", "decisions", "events")
        }
        out["rounds"] = [r[:-1] for r in conn.execute("SELECT * FROM rounds ORDER BY round")]
        cols = "id, round, agent_id, purpose, backend, model, messages, params, seed, reply, "
        cols += "parsed, valid, error, prompt_tokens, completion_tokens"
        if calls_timing:
            cols += ", latency_s"
        out["llm_calls"] = conn.execute(f"SELECT {cols} FROM llm_calls ORDER BY id").fetchall()
    finally:
        conn.close()
    return out


def meta(run_dir: Path) -> dict[str, str]:
    conn = sqlite3.connect(run_dir / "run.sqlite")
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    finally:
        conn.close()


def upto(table: list[tuple], step: int, col: int) -> list[tuple]:
    return [r for r in table if r[col] <= step]


ROUND_COL = {"decisions": 1, "events": 1, "rounds": 0, "llm_calls": 1}


@pytest.fixture(scope="module")
def ipd_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fork") / "orig"
    start_run(load_scenario(IPD, ["game.rounds=10"]), out, quiet=True)
    return out


@pytest.mark.parametrize("at", [0, 4, 9])
def test_fork_without_change_equals_the_original(ipd_run: Path, tmp_path: Path, at: int):
    # 9 is the last step (its checkpoint is stored); 0 and 4 are re-executed and checked.
    res = fork_run(ipd_run, at, out=tmp_path / "f", quiet=True)
    assert res.status == "finished"
    assert res.steps == 9 - at
    assert rows(tmp_path / "f") == rows(ipd_run)
    m = meta(tmp_path / "f")
    assert m["forked_from"] == str(ipd_run.resolve())
    assert m["forked_at"] == str(at)
    assert json.loads(m["fork_overrides"]) == []


def test_fork_with_a_change_differs_only_after_the_step(ipd_run: Path, tmp_path: Path):
    at = 4
    fork_run(ipd_run, at, ["game.noise=0.3"], tmp_path / "f", quiet=True)
    a, b = rows(ipd_run), rows(tmp_path / "f")
    for table, col in ROUND_COL.items():
        assert upto(b[table], at, col) == upto(a[table], at, col), table
    after = [r for r in b["events"] if r[1] > at]
    assert len(after) == len([r for r in a["events"] if r[1] > at])  # same matches, steps
    assert after != [r for r in a["events"] if r[1] > at]  # noise flipped some moves
    assert json.loads(meta(tmp_path / "f")["fork_overrides"]) == ["game.noise=0.3"]
    assert "noise: 0.3" in (tmp_path / "f" / "scenario.yaml").read_text()


def test_fork_killed_before_playing_resumes(ipd_run: Path, tmp_path: Path):
    # make_fork writes the store whole; `society resume` then plays it like any run.
    path = make_fork(ipd_run, 3, out=tmp_path / "f")
    assert meta(path)["status"] == "running"
    assert main(["resume", str(path), "-q"]) == 0
    assert rows(path) == rows(ipd_run)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "population.groups.tft.count=2"], "population.groups.tft.count"),
        (["--set", "seed=7"], "seed cannot change"),
        (["--set", "population.groups.tft.strategy=always_defect"], "strategy cannot change"),
        (["--set", "game.kind=donor"], "fork"),
        (["--set", "game.nosuch=1"], "game.nosuch"),
    ],
)
def test_fork_refuses_structural_changes(ipd_run, tmp_path, capsys, args, needle):
    code = main(["fork", str(ipd_run), "--at", "3", *args, "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f").exists()


def test_fork_step_out_of_range(ipd_run, tmp_path, capsys):
    assert main(["fork", str(ipd_run), "--at", "10", "--out", str(tmp_path / "f")]) == 2
    assert "committed steps 0..9" in capsys.readouterr().err
    assert main(["fork", str(tmp_path / "nothing"), "--at", "0"]) == 2


def test_fork_cli(ipd_run, tmp_path, capsys):
    out = tmp_path / "f"
    assert main(["fork", str(ipd_run), "--at", "6", "--set", "game.noise=0.1", "--out", str(out), "-q"]) == 0  # fmt: skip
    assert "run stored in" in capsys.readouterr().out
    assert meta(out)["status"] == "finished"


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fork-llm") / "orig"
    sc = load_scenario(IPD_LLM, ["game.rounds=4"], backend="fake")
    start_run(sc, out, quiet=True)
    return out


def test_fork_of_a_fake_llm_run(fake_run: Path, tmp_path: Path):
    original = rows(fake_run)
    assert original["llm_calls"], "the run has LLM calls"
    fork_run(fake_run, 1, out=tmp_path / "same", quiet=True)
    assert rows(tmp_path / "same") == original
    # Another temperature from step 2 on: the calls after step 1 carry it, the ones up to
    # step 1 are the original's.
    fork_run(fake_run, 1, ["population.groups.llm.temperature=0.1"], tmp_path / "t", quiet=True)
    calls = rows(tmp_path / "t")["llm_calls"]
    assert upto(calls, 1, 1) == upto(original["llm_calls"], 1, 1)
    later = [json.loads(c[7])["temperature"] for c in calls if c[1] > 1]
    assert later and set(later) == {0.1}


def test_fork_of_a_replay_run(fake_run: Path, tmp_path: Path):
    replayed = tmp_path / "replay"
    sc = load_scenario(IPD_LLM, ["game.rounds=4", f"backend.run={fake_run}"], backend="replay")
    start_run(sc, replayed, quiet=True)
    assert rows(replayed)["decisions"] == rows(fake_run)["decisions"]
    fork_run(replayed, 2, out=tmp_path / "f", quiet=True)
    assert rows(tmp_path / "f") == rows(replayed)


def test_fork_refuses_a_run_that_does_not_reproduce(fake_run: Path, tmp_path: Path):
    # A store whose recorded replies were edited: re-executing it gives other decisions,
    # so the state at the step is unknown and the fork is refused (never guessed).
    copy = tmp_path / "edited"
    copy.mkdir()
    (copy / "run.sqlite").write_bytes((fake_run / "run.sqlite").read_bytes())
    conn = sqlite3.connect(copy / "run.sqlite")
    with conn:
        conn.execute("UPDATE decisions SET action = 'X' WHERE round = 0 AND source = 'llm'")
    conn.close()
    with pytest.raises(UserError, match="does not reproduce its step 0"):
        make_fork(copy, 2, out=tmp_path / "f")


@pytest.mark.llm
@pytest.mark.slow
def test_fork_of_an_embedded_llm_run(embedded_gguf, tmp_path: Path):
    """A real llama.cpp run forked at step 0: the prefix is copied, the state re-executed
    from the recorded calls, and the fork plays on with the model."""
    orig = tmp_path / "orig"
    small = tmp_path / "small.yaml"  # one LLM agent, one partner: 3 calls in all
    small.write_text(
        "name: fork-llm\nseed: 3\nbackend: {kind: llamacpp, model: smollm2-135m}\n"
        "population:\n  groups:\n"
        "    - {name: llm, count: 1, kind: llm, temperature: 0.7, max_tokens: 12}\n"
        "    - {name: tft, count: 1, strategy: tit_for_tat}\n"
        "matching: {kind: round_robin}\n"
        "game: {kind: repeated_2x2, preset: prisoners_dilemma, rounds: 3}\n"
    )
    start_run(load_scenario(small), orig, quiet=True)
    fork_run(orig, 0, out=tmp_path / "f", quiet=True)
    a, b = rows(orig), rows(tmp_path / "f")
    for table, col in ROUND_COL.items():
        assert upto(b[table], 0, col) == upto(a[table], 0, col), table
    later = [c for c in b["llm_calls"] if c[1] > 0]
    assert later and {c[4] for c in later} == {"llamacpp"}
    # Same seed, same requests: the model answers the continued steps as it did.
    assert [c[9] for c in later] == [c[9] for c in a["llm_calls"] if c[1] > 0]
    assert b["decisions"] == a["decisions"]


def test_sweep_fork_at_shares_one_prefix(tmp_path: Path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        f"scenario: {IPD}\nset: {{game.rounds: 10}}\nfork_at: 4\ngrid: {{game.noise: [0.0, 0.2]}}\n"
    )
    sweep = load_sweep_file(spec)
    results = run_sweep(sweep, tmp_path / "sw", workers=1, quiet=True)
    assert {r["status"] for r in results.values()} == {"finished"}
    prefix = tmp_path / "sw" / "prefix"
    assert meta(prefix)["status"] == "prefix"
    assert len(rows(prefix)["rounds"]) == 5  # steps 0..4, computed once
    full = tmp_path / "full"
    start_run(load_scenario(IPD, ["game.rounds=10"]), full, quiet=True)
    p0, p1 = (tmp_path / "sw" / "points" / f"p000{k}" for k in (0, 1))
    assert rows(p0) == rows(full)  # noise 0 from step 5 on: the base run itself
    assert meta(p1)["forked_from"] == str(prefix.resolve())
    assert meta(p1)["forked_at"] == "4"
    fork_run(full, 4, ["game.noise=0.2"], tmp_path / "by-hand", quiet=True)
    assert rows(p1) == rows(tmp_path / "by-hand")
    # A fork_at sweep whose grid changes the structure is refused before anything runs.
    spec.write_text(f"scenario: {IPD}\nfork_at: 4\ngrid: {{seed: [1, 2]}}\n")
    with pytest.raises(UserError, match="seed cannot change"):
        load_sweep_file(spec)


def test_fork_of_a_fork(ipd_run: Path, tmp_path: Path):
    first = tmp_path / "first"
    fork_run(ipd_run, 5, ["game.noise=0.3"], first, quiet=True)
    # Up to its fork point a fork's steps are its parent's: they re-execute there.
    fork_run(first, 2, ["game.noise=0.0"], tmp_path / "second", quiet=True)
    assert rows(tmp_path / "second") == rows(ipd_run)
    fork_run(first, 9, out=tmp_path / "last", quiet=True)  # its own last checkpoint
    assert rows(tmp_path / "last") == rows(first)
    with pytest.raises(UserError, match="is itself a fork"):
        make_fork(first, 7, out=tmp_path / "mid")
