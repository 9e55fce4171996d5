"""Shared helpers for the tests: building scenarios and comparing run stores."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Axelrod's classifier keys, which every strategy (built-in or adapted) must carry.
AXELROD_CLASSIFIER_KEYS = frozenset(
    {
        "memory_depth",
        "stochastic",
        "makes_use_of",
        "long_run_time",
        "inspects_source",
        "manipulates_source",
        "manipulates_state",
    }
)


def society_cmd(*args: str) -> list[str]:
    """The `society` command line of this checkout (works without installing it)."""
    return [sys.executable, "-m", "society.cli", *args]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a `society` subprocess: this checkout first on PYTHONPATH."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_cli(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run `society ARGS` from the repository root and capture its output."""
    return subprocess.run(
        society_cmd(*args), cwd=ROOT, env=cli_env(**env), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


# Columns that measure time and so differ between two runs of the same scenario.
TIMING_COLUMNS = {"rounds": "wall_s", "llm_calls": "latency_s"}
COMPARED_TABLES = ("agents", "rounds", "decisions", "events", "llm_calls")


def write_scenario(path: Path, data: dict[str, Any]) -> Path:
    """Write a scenario dict as YAML and return its path."""
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def query(run_dir: Path, sql: str, *args: Any) -> list[tuple]:
    """The rows of one SQL query on a run's store."""
    conn = sqlite3.connect(run_dir / "run.sqlite")
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def table_rows(run_dir: Path, table: str) -> list[tuple]:
    """All rows of a table, timing columns blanked, in primary-key order."""
    conn = sqlite3.connect(run_dir / "run.sqlite")
    try:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        skip = TIMING_COLUMNS.get(table)
        keep = [c for c in cols if c != skip]
        return conn.execute(f"SELECT {', '.join(keep)} FROM {table} ORDER BY rowid").fetchall()
    finally:
        conn.close()


def assert_same_store(a: Path, b: Path) -> None:
    """The two runs hold identical rows (timings aside) in every table."""
    for table in COMPARED_TABLES:
        ra, rb = table_rows(a, table), table_rows(b, table)
        assert len(ra) == len(rb), f"{table}: {len(ra)} rows vs {len(rb)}"
        for i, (x, y) in enumerate(zip(ra, rb, strict=True)):
            assert x == y, f"{table} row {i}: {x} != {y}"


def ipd_scenario(**game: Any) -> dict[str, Any]:
    """A small round-robin IPD among classic strategies."""
    return {
        "name": "ipd-test",
        "seed": 7,
        "population": {
            "groups": [
                {"name": "tft", "count": 2, "strategy": "tit_for_tat"},
                {"name": "alld", "count": 1, "strategy": "always_defect"},
                {"name": "rnd", "count": 2, "strategy": {"name": "random", "p": 0.6}},
                {"name": "grim", "count": 1, "strategy": "grim_trigger"},
            ]
        },
        "game": {
            "kind": "repeated_2x2",
            "preset": "prisoners_dilemma_classic",
            "rounds": 20,
            **game,
        },
    }


def drive(gen: Any, replies: list[str]) -> tuple[list[Any], Any]:
    """Feed replies to an LLM policy's request generator; return (requests, outcome)."""
    from agents.chat import ChatReply

    requests = [next(gen)]
    try:
        for text in replies:
            requests.append(gen.send(ChatReply(text=text)))
    except StopIteration as stop:
        return requests, stop.value
    raise AssertionError(f"generator wants more than {len(replies)} replies")


def interrupt_after(
    data: dict[str, Any], run_dir: Path, cut: int, monkeypatch: Any, start: Any = None
) -> None:
    """Start the scenario `data` into `run_dir` (with `start`, default `start_run`) and
    stop it (KeyboardInterrupt) after `cut` committed steps, as a user's Ctrl-C would:
    the run is left resumable."""
    import pytest

    import society.runner as runner
    from society.scenario import resolve

    start = start or runner.start_run

    real = runner.RunStore.commit_round
    calls = {"n": 0}

    def flaky(self: Any, *a: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == cut + 1:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(runner.RunStore, "commit_round", flaky)
        with pytest.raises(KeyboardInterrupt):
            start(resolve(data, "s"), run_dir, quiet=True)
