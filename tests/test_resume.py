"""Resume after SIGKILL: the finished store equals an uninterrupted run's, row for row."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from society.errors import UserError
from society.runner import resume_run, start_run
from society.scenario import resolve
from tests.helpers import (
    ROOT,
    assert_same_store,
    cli_env,
    interrupt_after,
    run_cli,
    society_cmd,
    write_scenario,
)


def big_scenario() -> dict:
    # Stochastic strategies and noise, so that restoring the random generator matters.
    return {
        "name": "resume-test",
        "seed": 11,
        "population": {
            "groups": [
                {"name": "rnd", "count": 100, "strategy": {"name": "random", "p": 0.7}},
                {
                    "name": "gtft",
                    "count": 100,
                    "strategy": {"name": "generous_tft", "generosity": 0.3},
                },
                {"name": "wsls", "count": 100, "strategy": "win_stay_lose_shift"},
            ]
        },
        "network": {"kind": "small_world", "k": 4, "p": 0.2},
        "game": {"kind": "repeated_2x2", "rounds": 150, "noise": 0.05},
    }


def committed_rounds(run_dir: Path) -> int:
    db = run_dir / "run.sqlite"
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def kill_after(cmd: list[str], run_dir: Path, at_least: int) -> None:
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while committed_rounds(run_dir) < at_least:
        assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "run made no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_resume_after_sigkill_is_identical(tmp_path):
    scenario_file = write_scenario(tmp_path / "s.yaml", big_scenario())
    killed = tmp_path / "killed"
    kill_after(society_cmd("run", str(scenario_file), "--out", str(killed), "--quiet"), killed, 10)
    first = committed_rounds(killed)
    assert 10 <= first < 150
    # Kill the resumed run too, then finish it.
    kill_after(society_cmd("resume", str(killed), "--quiet"), killed, first + 10)
    assert committed_rounds(killed) < 150
    done = run_cli("resume", str(killed), "--quiet")
    assert done.returncode == 0, done.stderr
    assert committed_rounds(killed) == 150

    straight = tmp_path / "straight"
    start_run(resolve(big_scenario(), "s"), straight, quiet=True)
    assert_same_store(killed, straight)


def test_resume_errors(tmp_path):
    with pytest.raises(UserError, match="no run store"):
        resume_run(tmp_path)
    data = big_scenario()
    data["game"]["rounds"] = 2
    data["population"]["groups"] = data["population"]["groups"][:1]
    data["population"]["groups"][0]["count"] = 4
    data["network"] = {"kind": "complete"}
    start_run(resolve(data, "s"), tmp_path / "r", quiet=True)
    with pytest.raises(UserError, match="already finished"):
        resume_run(tmp_path / "r")


def test_resume_in_process_after_interrupted_loop(tmp_path, monkeypatch):
    """A run stopped between steps (not killed) resumes to the same store."""
    data = big_scenario()
    data["game"]["rounds"] = 12
    interrupt_resume_compare(data, 4, tmp_path, monkeypatch)


def interrupt_resume_compare(data: dict, cut: int, tmp_path: Path, monkeypatch) -> None:
    """Stop a run (KeyboardInterrupt) after `cut` committed steps, resume it, and check
    its store against an uninterrupted run's, row for row."""
    # This module's start_run: callers may patch it (e.g. to give the run a backend).
    interrupt_after(data, tmp_path / "cut", cut, monkeypatch, start=start_run)
    assert committed_rounds(tmp_path / "cut") == cut
    resume_run(tmp_path / "cut", quiet=True)
    start_run(resolve(data, "s"), tmp_path / "full", quiet=True)
    assert_same_store(tmp_path / "cut", tmp_path / "full")


@pytest.mark.parametrize(
    "extra",
    [
        {"matching": {"kind": "round_robin", "self_play": True}},
        {"matching": {"kind": "random"}},
        {"game": {"continuation": 0.8}},
        {"matching": {"kind": "round_robin"}, "game": {"continuation": 0.9, "noise": 0.2}},
    ],
    ids=["self_play", "random_pairs", "continuation", "round_robin_noisy"],
)
@pytest.mark.parametrize("cut", [1, 3, 7])
def test_move_histories_rebuilt_from_the_store(tmp_path, monkeypatch, extra, cut):
    """Histories are not in the checkpoint: resume rebuilds them from the payoff events."""
    data = {
        "name": "hist",
        "seed": 5,
        "population": {
            "groups": [
                {"name": "tft", "count": 2, "strategy": "tit_for_tat"},
                {"name": "wsls", "count": 2, "strategy": "win_stay_lose_shift"},
                {"name": "grim", "count": 1, "strategy": "grim_trigger"},
                {"name": "rnd", "count": 1, "strategy": {"name": "random", "p": 0.5}},
            ]
        },
        "game": {"kind": "repeated_2x2", "rounds": 10, "noise": 0.1, **extra.get("game", {})},
        **{k: v for k, v in extra.items() if k != "game"},
    }
    interrupt_resume_compare(data, cut, tmp_path, monkeypatch)
