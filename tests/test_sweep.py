"""`society sweep`: points of a grid as runs (in-process and on a real local Ray),
resume after a SIGKILL, and `analysis.load_sweep` / `summarize_across`."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis import load_sweep, summarize_across
from society.cli import main
from society.runner import start_run
from society.scenario import load_scenario
from society.sweep import _wait_unlocked, load_sweep_file, point_status, run_sweep
from tests.test_fork import rows

ROOT = Path(__file__).resolve().parents[1]
IPD = ROOT / "scenarios" / "ipd_tournament.yaml"


def sweep_file(tmp_path: Path, body: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"scenario: {IPD}\n{body}")
    return path


def test_grid_product_expands(tmp_path: Path):
    sw = load_sweep_file(
        sweep_file(tmp_path, "set: {game.rounds: 5}\ngrid:\n  seed: [1, 2, 3]\n  game.noise: [0.0, 0.1]\n")
    )  # fmt: skip
    assert [p.params for p in sw.points] == [
        {"seed": s, "game.noise": n} for s in (1, 2, 3) for n in (0.0, 0.1)
    ]
    assert [p.id for p in sw.points] == [f"p000{k}" for k in range(6)]
    assert sw.points[1].overrides(sw.spec.set) == ["game.rounds=5", "seed=1", "game.noise=0.1"]
    sc = sw.scenario(sw.points[5])
    assert (sc.seed, sc.game.noise, sc.game.rounds) == (3, 0.1, 5)
    pts = load_sweep_file(
        sweep_file(tmp_path, "points:\n  - {seed: 4}\n  - {seed: 5, game.rounds: 7}\n")
    )
    assert [p.params for p in pts.points] == [{"seed": 4}, {"seed": 5, "game.rounds": 7}]


def test_shipped_sweep_loads():
    sw = load_sweep_file(ROOT / "scenarios" / "sweeps" / "ipd_seeds.yaml")
    assert len(sw.points) == 6 and sw.scenario().name == "ipd-tournament"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("grid: {game.nosuch: [1, 2]}\n", "game.nosuch"),
        ("grid: {}\n", "grid: is empty"),
        ("grid: {seed: []}\n", "grid.seed: empty list"),
        ("grid: {seed: [1]}\npoints: [{seed: 2}]\n", "either grid: or points:"),
        ("grid: {seed: 3}\n", "grid.seed"),
        ("name: x\n", "no points"),
        ("grid: {seed: [1]}\nworkers: 3\n", "workers: unknown field"),
        ("grid: {game.rounds: [0]}\n", "game.rounds"),
        # A point too large: the way to go ahead that `society sweep` has (no --allow-large).
        ("grid: {game.rounds: [1000000000]}\n", "Raise run.limits in the sweep's set:"),
    ],
)
def test_bad_sweep_files(tmp_path: Path, capsys, body: str, needle: str):
    path = sweep_file(tmp_path, body)
    assert main(["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_missing_scenario(tmp_path: Path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("grid: {seed: [1]}\n")
    assert main(["sweep", str(path), "--workers", "1"]) == 2
    assert "scenario: is missing" in capsys.readouterr().err
    path.write_text("scenario: nowhere.yaml\ngrid: {seed: [1]}\n")
    assert main(["sweep", str(path), "--workers", "1"]) == 2
    assert "nowhere.yaml not found" in capsys.readouterr().err


GRID = "set: {game.rounds: 5}\ngrid:\n  game.noise: [0.0, 0.1]\n  seed: [1, 2, 3]\n"


@pytest.fixture(scope="module")
def done_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 6-point grid run in this process (--workers 1)."""
    tmp = tmp_path_factory.mktemp("sweep")
    out = tmp / "out"
    assert (
        main(["sweep", str(sweep_file(tmp, GRID)), "--workers", "1", "--out", str(out), "-q"]) == 0
    )
    return out


def test_in_process_sweep_equals_single_runs(done_sweep: Path, tmp_path: Path):
    frame = load_sweep(done_sweep)
    assert list(frame["status"]) == ["finished"] * 6
    for k, (noise, seed) in enumerate([(n, s) for n in (0.0, 0.1) for s in (1, 2, 3)]):
        ref = tmp_path / f"ref{k}"
        over = ["game.rounds=5", f"game.noise={noise}", f"seed={seed}"]
        start_run(load_scenario(IPD, over), ref, quiet=True)
        assert rows(done_sweep / "points" / f"p000{k}") == rows(ref)
    index = (done_sweep / "index.csv").read_text().splitlines()
    assert index[0] == "id,game.noise,seed,run_dir,status,error"
    assert index[1] == "p0000,0.0,1,points/p0000,finished,"


def test_rerun_skips_finished_points(done_sweep: Path, capsys):
    before = (done_sweep / "points" / "p0000" / "run.sqlite").stat().st_mtime_ns
    spec = done_sweep / "sweep.yaml"  # the copy the sweep keeps
    assert main(["sweep", str(spec), "--workers", "1", "--out", str(done_sweep)]) == 0
    assert "6 already finished" in capsys.readouterr().out
    assert (done_sweep / "points" / "p0000" / "run.sqlite").stat().st_mtime_ns == before


def test_another_sweep_in_the_same_directory_is_refused(done_sweep: Path, tmp_path, capsys):
    other = sweep_file(tmp_path, "grid: {seed: [9]}\n")
    assert main(["sweep", str(other), "--workers", "1", "--out", str(done_sweep)]) == 2
    assert "holds another sweep" in capsys.readouterr().err


def _score(run_dir: Path) -> float:
    conn = sqlite3.connect(run_dir / "run.sqlite")
    try:
        total = conn.execute("SELECT SUM(value) FROM events WHERE kind = 'payoff'").fetchone()[0]
        agents = conn.execute("SELECT COUNT(*) FROM agents").fetchone()[0]
    finally:
        conn.close()
    return total / agents


def test_load_sweep_and_summarize_across_by_hand(done_sweep: Path):
    frame = load_sweep(done_sweep)
    assert frame.attrs["params"] == ["game.noise", "seed"]
    assert {"mean_score", "cooperation_rate", "steps"} <= set(frame.attrs["metrics"])
    scores = [_score(done_sweep / "points" / f"p000{k}") for k in range(6)]
    assert list(frame["mean_score"]) == pytest.approx(scores)
    out = summarize_across(frame, metrics=["mean_score"])  # by: every parameter but seed
    assert list(out["game.noise"]) == [0.0, 0.1]
    t975_2 = 4.302652729911275  # Student t, 0.975 quantile, 2 degrees of freedom
    for row, part in zip(out.itertuples(), (scores[:3], scores[3:]), strict=True):
        mean = sum(part) / 3
        sd = (sum((x - mean) ** 2 for x in part) / 2) ** 0.5
        assert row.n == 3 and row.mean == pytest.approx(mean) and row.std == pytest.approx(sd)
        assert row.ci_low == pytest.approx(mean - t975_2 * sd / np.sqrt(3))
        assert row.ci_high == pytest.approx(mean + t975_2 * sd / np.sqrt(3))
    both = summarize_across(frame, by="game.noise", metrics=["mean_score", "cooperation_rate"])
    assert list(both["metric"]) == ["mean_score"] * 2 + ["cooperation_rate"] * 2
    assert list(both["n"]) == [3, 3, 3, 3]


def test_more_workers_without_ray_is_one_line(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    path = sweep_file(tmp_path, "set: {game.rounds: 3}\ngrid: {seed: [1]}\n")
    assert main(["sweep", str(path), "--workers", "2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "society[sweep]" in err and len(err.strip().splitlines()) == 1
    assert main(["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "o"), "-q"]) == 0


@pytest.mark.slow
def test_local_ray_sweep(done_sweep: Path, tmp_path: Path):
    """Two Ray workers on a real local Ray: the same stores as the in-process sweep."""
    out = tmp_path / "ray"
    results = run_sweep(load_sweep_file(sweep_file(tmp_path, GRID)), out, workers=2, quiet=True)
    assert len(results) == 6 and {r["status"] for r in results.values()} == {"finished"}
    for k in range(6):
        assert rows(out / "points" / f"p000{k}") == rows(done_sweep / "points" / f"p000{k}")


def _rounds(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_killed_sweep_resumes_to_the_same_stores(tmp_path: Path, workers: int):
    """SIGKILL of `society sweep` (in-process, or the driver of a local Ray), then the
    same command again: the stores equal those of an uninterrupted sweep."""
    body = "set: {game.rounds: 1500}\ngrid: {seed: [1, 2, 3]}\n"
    spec = sweep_file(tmp_path, body)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "society.cli", "sweep", str(spec), "--workers", str(workers)]
    # Its own session: Ray's helper processes, which outlive a killed driver, are ended
    # with it below (by this process group's id).
    proc = subprocess.Popen(
        [*cmd, "--out", str(out), "-q"], cwd=ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        first = out / "points" / "p0000" / "run.sqlite"
        while _rounds(first) < 100:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "the sweep did not start"
            time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    points = [out / "points" / f"p000{k}" for k in range(3)]
    for p in points:  # a Ray worker may write on for a moment after its driver died
        _wait_unlocked(p)
    statuses = [point_status(p) for p in points]
    assert statuses[2] != "finished", statuses  # killed mid-way
    if workers == 1:  # no Ray worker wrote on after the kill: p0000 is partial
        assert statuses[0] == "running" and 100 <= _rounds(points[0] / "run.sqlite") < 1500
    assert main(["sweep", str(spec), "--workers", "1", "--out", str(out), "-q"]) == 0
    ref = tmp_path / "ref"
    assert main(["sweep", str(spec), "--workers", "1", "--out", str(ref), "-q"]) == 0
    for k in range(3):
        assert rows(out / "points" / f"p000{k}") == rows(ref / "points" / f"p000{k}")
    assert load_sweep(out)["status"].tolist() == ["finished"] * 3
