"""Kills at any instant in every game: SIGKILL a real `society run` (or `society resume`)
process at seeded random instants over the run's duration, resume it, and compare.

Every game kind registered in `society.registry` at test time is covered (a kind with no
small scenario below fails, naming itself). After each kill, whatever the store holds
must be exactly the uninterrupted run's first committed steps (rows of whole steps, no
more, no less); at the end of each chain of kills and resumes the store equals the
uninterrupted run's row for row (timings aside).

Starting a Python interpreter costs more than a small run, so most processes come from a
*zygote*: one interpreter that has imported society once and forks a child per command;
the child runs the CLI's `main(argv)` exactly as `python -m society.cli` does and is
SIGKILLed like any process. A few kills per game also go to freshly started
`python -m society.cli run` processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from society.registry import game_kinds
from tests.helpers import (
    COMPARED_TABLES,
    ROOT,
    assert_same_store,
    cli_env,
    query,
    run_cli,
    society_cmd,
    table_rows,
    write_scenario,
)

KILLS_PER_KIND = 20
FAKE = {"kind": "fake", "model": "fake"}


def _scenario(kind: str, variant: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"kill-{kind}-{variant}", "seed": 3, "backend": FAKE, **body}


# Small scenarios, one or more per game kind: LLM groups on the fake backend where the game
# has LLM agents, stochastic scripted policies, and generations where the game evolves (so
# kills land on strategy steps and generation boundaries too).
KILL_SCENARIOS: dict[str, list[dict[str, Any]]] = {
    "repeated_2x2": [
        _scenario("repeated_2x2", "evolving", {
            "population": {"groups": [
                {"name": "rnd", "count": 4, "strategy": {"name": "random", "p": 0.6}},
                {"name": "gtft", "count": 4,
                 "strategy": {"name": "generous_tft", "generosity": 0.3}},
            ]},
            "game": {"kind": "repeated_2x2", "rounds": 40, "noise": 0.05},
            "evolution": {"generations": 3},
        }),
        _scenario("repeated_2x2", "llm", {
            "population": {"groups": [
                {"name": "llm", "kind": "llm", "count": 2},
                {"name": "tft", "count": 2, "strategy": "tit_for_tat"},
            ]},
            "game": {"kind": "repeated_2x2", "rounds": 15, "noise": 0.1},
        }),
    ],
    "donor": [
        _scenario("donor", "llm", {
            "population": {"groups": [{"name": "llm", "kind": "llm", "count": 6}]},
            "game": {"kind": "donor", "rounds": 5},
            "evolution": {"generations": 3},
        }),
    ],
    "travelers_dilemma": [
        _scenario("travelers_dilemma", "mixed", {
            "population": {"groups": [
                {"name": "llm", "kind": "llm", "count": 2},
                {"name": "rnd", "count": 3, "strategy": "random"},
                {"name": "br", "count": 2, "strategy": "best_response"},
            ]},
            "matching": {"kind": "round_robin"},
            "game": {"kind": "travelers_dilemma", "rounds": 8},
        }),
    ],
    "atp_exploration": [
        _scenario("atp_exploration", "llm", {
            "population": {"groups": [{"name": "llm", "kind": "llm", "count": 1}]},
            "game": {"kind": "atp_exploration", "variants": 2, "rounds": 4, "window": 3},
        }),
    ],
    "atp_diffusion": [
        _scenario("atp_diffusion", "mixed", {
            "population": {"groups": [
                {"name": "llm", "kind": "llm", "count": 3},
                {"name": "c", "count": 2, "strategy": "always_collective"},
            ]},
            "network": {"kind": "complete"},
            "game": {"kind": "atp_diffusion", "thresholds": [2, 4], "rounds": 3},
        }),
    ],
    "commons": [
        _scenario("commons", "mixed", {
            "population": {"groups": [
                {"name": "llm", "kind": "llm", "count": 2},
                {"name": "s", "count": 2, "strategy": "sustainable"},
            ]},
            "game": {"kind": "commons", "months": 8, "max_harvest": 3,
                     "discussion_rounds": 1},
        }),
    ],
    "marketplace": [
        _scenario("marketplace", "mixed", {
            "population": {"groups": [
                {"name": "cust", "kind": "llm", "count": 2},
                {"name": "oracle", "count": 1, "strategy": "optimal_customer"},
                {"name": "llmb", "kind": "llm", "count": 3},
                {"name": "honest", "count": 6, "strategy": "honest_business"},
            ]},
            "game": {"kind": "marketplace", "domain": "restaurants", "customers": 3,
                     "businesses": 9, "rounds": 8, "repeats": 2},
        }),
    ],
    "drift_dialogue": [
        _scenario("drift_dialogue", "mixed", {
            "population": {"groups": [
                {"name": "test", "kind": "llm", "count": 2},
                {"name": "user", "count": 1, "strategy": "scripted_user"},
                {"name": "reference", "kind": "llm", "count": 1},
            ]},
            "game": {"kind": "drift_dialogue", "turns": 5, "measure": "embedding",
                     "embedder": "lexical"},
        }),
    ],
    "social_feed": [
        _scenario("social_feed", "mixed", {
            "population": {"groups": [
                {"name": "llm", "kind": "llm", "count": 2},
                {"name": "rnd", "count": 4, "strategy": "random"},
                {"name": "cp", "count": 2, "strategy": "copy_top"},
            ]},
            "game": {"kind": "social_feed", "periods": 8, "communities": [
                {"name": "a", "topic": "cats", "seeds": ["cats are great"]},
                {"name": "b", "topic": "dogs"},
            ]},
        }),
    ],
}  # fmt: skip


# -- the zygote ---------------------------------------------------------------------------
def _zygote_main() -> None:  # pragma: no cover (runs in the zygote process)
    """Read JSON commands on stdin; fork a child per `start`, answer on stdout."""
    import traceback

    import analysis.report  # noqa: F401  (imported once, before any fork)
    import society.cli
    import society.runner  # noqa: F401
    from society.engine import Engine
    from society.scenario import load_scenario

    children: dict[int, float] = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "warm":  # build each game once: its lazy imports happen here
            for path in cmd["files"]:
                Engine(load_scenario(path))
            print(json.dumps({"ok": True}), flush=True)
        elif cmd["op"] == "start":
            t0 = time.monotonic()
            pid = os.fork()
            if pid == 0:
                fd = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                try:
                    rc = society.cli.main(cmd["argv"])
                except SystemExit as exc:
                    rc = exc.code if isinstance(exc.code, int) else 1
                except BaseException:
                    traceback.print_exc()
                    rc = 99
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(rc)
            children[pid] = t0
            print(json.dumps({"pid": pid}), flush=True)
        elif cmd["op"] == "reap":
            pid = cmd["pid"]
            _, status = os.waitpid(pid, 0)
            elapsed = time.monotonic() - children.pop(pid)
            rc = os.waitstatus_to_exitcode(status)
            print(json.dumps({"rc": rc, "elapsed": elapsed}), flush=True)


def _wait_for_lock(lock: Path, pid: int) -> float | None:
    """The monotonic time at which `pid` is seen holding `lock` (its pid is written there
    once the flock is taken); None if the child ends (or 30 s pass) first."""
    t0 = time.monotonic()
    stat = Path(f"/proc/{pid}/stat")
    while time.monotonic() - t0 < 30:
        try:
            if lock.read_text().strip() == str(pid):
                return time.monotonic()
        except OSError:
            pass
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        except OSError:
            return None
        time.sleep(0.0005)
    return None


class Zygote:
    """The test's side of the zygote: start a CLI command, kill it at an instant, reap."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tests.test_kills import _zygote_main; _zygote_main()"],
            cwd=ROOT, env=cli_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def _ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the zygote died"
        return json.loads(line)

    def warm(self, files: list[Path]) -> None:
        self._ask(op="warm", files=[str(f) for f in files])

    def run(
        self, argv: list[str], kill_at: float | None = None, anchor: Path | None = None
    ) -> tuple[int, float, float | None]:
        """Run `society ARGV` in a forked child; SIGKILL it `kill_at` seconds after the
        fork, or with `anchor` (a run directory) after the child took the run's lock,
        i.e. once it starts writing (unless it ended before). Returns (exit code, -9 if
        killed; seconds from fork to exit; seconds from fork to the lock, if seen)."""
        t0 = time.monotonic()
        pid = self._ask(op="start", argv=argv, log=str(self.log))["pid"]
        locked = None
        if anchor is not None:
            seen = _wait_for_lock(anchor / "run.lock", pid)
            locked = None if seen is None else seen - t0
        if kill_at is not None:
            start = t0 if locked is None else t0 + locked
            time.sleep(max(0.0, kill_at - (time.monotonic() - start)))
            os.kill(pid, signal.SIGKILL)  # a child that already ended is a zombie: no-op
        out = self._ask(op="reap", pid=pid)
        return out["rc"], out["elapsed"], locked

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory) -> Iterator[Zygote]:
    log = tmp_path_factory.mktemp("zygote") / "children.log"
    z = Zygote(log)
    try:
        yield z
    finally:
        z.close()


# -- checks -------------------------------------------------------------------------------
def committed_steps(run_dir: Path) -> int | None:
    """Committed steps of a run directory's store, None when it has no store."""
    if not (run_dir / "run.sqlite").exists():
        return None
    return query(run_dir, "SELECT COUNT(*) FROM rounds")[0][0]


def assert_whole_steps(killed: Path, straight: Path, full: dict[str, list[tuple]]) -> int:
    """The killed store holds exactly the uninterrupted run's first n steps; returns n."""
    n = committed_steps(killed)
    assert n is not None
    meta = dict(query(killed, "SELECT key, value FROM meta"))
    assert {"scenario", "format_version", "status"} <= set(meta), sorted(meta)
    for table in COMPARED_TABLES:
        rows = table_rows(killed, table)
        if table == "agents":
            expected = full[table][: len(rows)]
        else:
            col = "round"
            (m,) = query(straight, f"SELECT COUNT(*) FROM {table} WHERE {col} < ?", n)[0]
            expected = full[table][:m]
        assert rows == expected, f"{killed}: {table} after a kill at step {n} is not a prefix"
    return n


def scenario_files(kind: str, tmp: Path) -> list[Path]:
    if kind not in KILL_SCENARIOS:
        pytest.fail(f"game kind {kind!r} has no small scenario in tests/test_kills.py")
    return [write_scenario(tmp / f"{data['name']}.yaml", data) for data in KILL_SCENARIOS[kind]]


def kill_chain(
    z: Zygote,
    scenario: Path,
    run_dir: Path,
    span: tuple[float, float],
    rng: np.random.Generator,
    straight: Path,
    full: dict[str, list[tuple]],
) -> list[int | None]:
    """Kill `society run`, then each `society resume`, at random instants (span: the
    run's seconds from fork, and from taking its lock, to its end) until one runs to its end; check every kill's store. Returns, for each kill, the
    steps its store held (None: killed before the store existed)."""
    kills: list[int | None] = []
    for _ in range(200):
        if committed_steps(run_dir) is None:  # killed before the store appeared: start again
            argv = ["run", str(scenario), "--out", str(run_dir), "--quiet"]
        else:
            argv = ["resume", str(run_dir), "--quiet"]
        # Most kills land while the process writes (after it took the run's lock: store
        # creation, restore, steps, closing); one in four anywhere from its fork on.
        if rng.random() < 0.25:
            rc, _, _ = z.run(argv, kill_at=float(rng.uniform(0, span[0])))
        else:
            rc, _, _ = z.run(argv, kill_at=float(rng.uniform(0, span[1])), anchor=run_dir)
        if rc == 0:
            assert_same_store(run_dir, straight)
            return kills
        assert rc == -signal.SIGKILL, (
            f"`society {' '.join(argv)}` exited {rc}: {z.log.read_text()[-3000:]}"
        )
        kills.append(committed_steps(run_dir))
        if kills[-1] is not None:
            assert_whole_steps(run_dir, straight, full)
            if query(run_dir, "SELECT value FROM meta WHERE key = 'status'") == [("finished",)]:
                assert_same_store(run_dir, straight)  # killed while it closed: nothing to resume
                return kills
    raise AssertionError("a run never got to its end")


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(game_kinds()))
def test_kills_at_random_instants_resume_identically(kind, zygote, tmp_path):
    files = scenario_files(kind, tmp_path)
    zygote.warm(files)
    rng = np.random.default_rng(sorted(game_kinds()).index(kind) + 1000)
    kills: list[int | None] = []
    chains = 0
    spans: dict[Path, tuple[float, float]] = {}
    for k in range(KILLS_PER_KIND * 4):
        scenario = files[k % len(files)]
        straight = tmp_path / f"straight-{scenario.stem}"
        if not straight.exists():
            # Its duration in a fresh fork (setup, store creation, every step, closing).
            rc, total, locked = zygote.run(
                ["run", str(scenario), "--out", str(straight), "--quiet"], anchor=straight
            )
            assert rc == 0, zygote.log.read_text()[-3000:]
            spans[scenario] = (total, total - (locked or 0.0))
        span = spans[scenario]
        full = {t: table_rows(straight, t) for t in COMPARED_TABLES}
        run_dir = tmp_path / f"k{k}"
        kills += kill_chain(zygote, scenario, run_dir, span, rng, straight, full)
        chains += 1
        shutil.rmtree(run_dir)
        if len(kills) >= KILLS_PER_KIND:
            break
    assert len(kills) >= KILLS_PER_KIND, f"only {len(kills)} kills landed in {chains} runs"
    total = committed_steps(straight)
    where = {
        "before the store": sum(n is None for n in kills),
        "before step 1": kills.count(0),
        "mid-run": sum(n is not None and 0 < n < (total or 0) for n in kills),
        "after the last step": kills.count(total),
    }
    print(f"{kind}: {len(kills)} kills in {chains} runs ({where}), every store identical")


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(game_kinds()))
def test_a_fresh_interpreter_killed_after_its_first_step_resumes(kind, tmp_path):
    """A real `python -m society.cli run`, killed as soon as a step is committed."""
    scenario = scenario_files(kind, tmp_path)[0]
    straight = tmp_path / "straight"
    assert run_cli("run", str(scenario), "--out", str(straight), "--quiet").returncode == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        society_cmd("run", str(scenario), "--out", str(killed), "--quiet"), cwd=ROOT,
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if (killed / "run.sqlite").exists():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait()
    assert proc.stderr is not None
    if proc.returncode == 0:
        pytest.skip("the run ended before the kill (machine too fast for this scenario)")
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    proc.stderr.close()
    full = {t: table_rows(straight, t) for t in COMPARED_TABLES}
    assert_whole_steps(killed, straight, full)
    done = run_cli("resume", str(killed), "--quiet")
    assert done.returncode == 0, done.stderr
    assert_same_store(killed, straight)


def _timed_run(argv: list[str], run_dir: Path, kill_after: float | None = None):
    """A fresh `python -m society.cli ARGV`; returns (exit code, seconds from the store
    appearing to the exit, seconds from the start to the store appearing). With
    `kill_after`, SIGKILL it that long after the store (or, for a resume, the process)
    appears."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        society_cmd(*argv), cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    while proc.poll() is None and not (run_dir / "run.sqlite").exists():
        time.sleep(0.002)
    seen = time.monotonic()
    if kill_after is not None:
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    rc = proc.wait()
    return rc, time.monotonic() - max(seen, t0), seen - t0


EMBEDDED_KILLS = 3


@pytest.mark.llm
@pytest.mark.slow
def test_kills_on_the_embedded_model_resume_identically(embedded_gguf, tmp_path):
    """One real `society run` on the embedded llama.cpp model, then each `society resume`
    of it, killed at seeded random instants within the steps it has left (a resume's
    instant counts from its start: interpreter and model load, then its steps), until it
    has been killed at least three times; then resumed to the end. Every killed store holds whole
    steps of the uninterrupted run, and the final store equals it row for row."""
    data = {
        "name": "kill-embedded",
        "seed": 5,
        # Two threads: llama.cpp's default (half the CPUs) crawls on a busy machine.
        "backend": {"kind": "llamacpp", "model": "smollm2-135m", "n_ctx": 1024,
                    "n_threads": 2},
        "population": {"groups": [{"name": "llm", "kind": "llm", "count": 2, "max_tokens": 8}]},
        "game": {"kind": "repeated_2x2", "rounds": 4},
    }  # fmt: skip
    scenario = write_scenario(tmp_path / "s.yaml", data)
    straight = tmp_path / "straight"
    rc, loop, startup = _timed_run(
        ["run", str(scenario), "--out", str(straight), "--quiet"], straight
    )
    assert rc == 0
    full = {t: table_rows(straight, t) for t in COMPARED_TABLES}
    total = committed_steps(straight) or 1
    rng = np.random.default_rng(77)
    killed = tmp_path / "killed"
    instants: list[float] = []
    held: list[int | None] = []
    for _attempt in range(12):
        if len(instants) >= EMBEDDED_KILLS:
            break
        argv = ["run", str(scenario), "--out", str(killed), "--quiet"]
        wait = 0.0  # `run`: from its store appearing (the model is loaded before it)
        if (killed / "run.sqlite").exists():
            argv = ["resume", str(killed), "--quiet"]
            wait = startup  # `resume`: from its start; it loads the model first
        # Somewhere in the steps this process has left to play (a resume starts after
        # the committed ones), at a seeded random instant.
        left = 1 - (committed_steps(killed) or 0) / total
        at = wait + float(rng.uniform(0.15, 0.75)) * left * loop
        rc, _, _ = _timed_run(argv, killed, kill_after=at)
        if rc == 0:  # ended before its kill: start the chain again from scratch
            assert_same_store(killed, straight)
            shutil.rmtree(killed)
            instants, held = [], []
            continue
        assert rc == -signal.SIGKILL, rc
        instants.append(at)
        held.append(committed_steps(killed))
        if held[-1] is not None:
            assert_whole_steps(killed, straight, full)
    assert len(instants) >= EMBEDDED_KILLS, f"only {len(instants)} kills landed in a chain"
    assert len(set(instants)) == len(instants)
    if committed_steps(killed) is None:  # the last kill came before the store existed
        done = run_cli("run", str(scenario), "--out", str(killed), "--quiet")
        assert done.returncode == 0, done.stderr
    elif query(killed, "SELECT value FROM meta WHERE key = 'status'") != [("finished",)]:
        done = run_cli("resume", str(killed), "--quiet")
        assert done.returncode == 0, done.stderr
    assert_same_store(killed, straight)
    print(f"embedded: {len(instants)} kills at {[round(t, 2) for t in instants]} s, "
          f"stores holding {held} steps; loop {loop:.1f} s; resumed identically")  # fmt: skip
