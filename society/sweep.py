"""Sweeps: one scenario over a grid of settings, each point one run, as Ray tasks.

A sweep file names a base scenario and the points to run::

    scenario: ../ipd_tournament.yaml       # relative to the sweep file
    set: {game.rounds: 20}                 # optional: overrides of every point
    grid:                                  # the product of the lists ...
      seed: [1, 2, 3]
      game.noise: [0.0, 0.05]
    # points: [{seed: 1}, {seed: 2, game.noise: 0.1}]   # ... or the points themselves
    # fork_at: 9    # points differ only after step 9: they fork from one shared prefix

Each point is the base scenario with its overrides, exactly as ``society run --set``
applies them; it runs into ``OUT/points/pNNNN`` with its own store. ``OUT/index.json``
and ``OUT/index.csv`` list every point: id, parameters, run directory, status. Run the
same command again on the same ``--out`` and the sweep resumes: finished points are
skipped, partial ones resumed from their last committed step (``resume_run``).

Points run as Ray tasks (``pip install 'society[sweep]'``): a local Ray with ``--workers``
CPUs, or an existing cluster (``--address``; its nodes must see the sweep directory).
``--workers 1`` runs the points one after the other in this process, Ray or not.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from society.config import Strict
from society.errors import UserError
from society.estimate import preflight
from society.scenario import (
    Scenario,
    format_validation_error,
    load_scenario,
    read_scenario_text,
    resolve,
    safe_load,
)
from society.store import DB_NAME
from society.vector import make_engine

__all__ = [
    "INDEX_CSV",
    "INDEX_JSON",
    "Point",
    "Sweep",
    "SweepFile",
    "load_sweep_file",
    "point_status",
    "run_point",
    "run_sweep",
]

INDEX_JSON = "index.json"
INDEX_CSV = "index.csv"
SWEEP_COPY = "sweep.yaml"
PREFIX_DIR = "prefix"
# `society sweep` has no --allow-large: a point's limits are raised in the sweep's set:.
_GO_AHEAD = "Raise run.limits in the sweep's set: to go ahead"
MAX_POINTS = 10_000  # a grid larger than this is a typo, not an experiment (each is checked)


class SweepFile(Strict):
    """The sweep file's schema (unknown keys are errors)."""

    scenario: str = Field(min_length=1, description="base scenario, relative to the sweep file")
    name: str | None = Field(None, min_length=1, description="sweep name (default: file stem)")
    set: dict[str, Any] = Field(
        default_factory=dict, description="overrides of every point: field path -> value"
    )
    grid: dict[str, list[Any]] | None = Field(
        None, description="field path -> list of values; the points are their product"
    )
    points: list[dict[str, Any]] | None = Field(
        None, description="the points as override mappings (field path -> value)"
    )
    fork_at: int | None = Field(
        None, ge=0, description="the points differ only after this step: fork from one prefix"
    )

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if grid is None:
            return grid
        if not grid:
            raise ValueError("grid: is empty (give field paths with lists of values)")
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid.{key}: empty list (give at least one value)")
        return grid

    @field_validator("points")
    @classmethod
    def _points(cls, points: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if points is not None and not points:
            raise ValueError("points: is empty (give at least one override mapping)")
        return points

    @model_validator(mode="after")
    def _one_of(self) -> SweepFile:
        if self.grid is not None and self.points is not None:
            raise ValueError("give either grid: or points:, not both")
        if self.grid is None and self.points is None:
            raise ValueError("no points: give a grid: of field paths to lists, or points:")
        return self


@dataclass(frozen=True)
class Point:
    """One run of the sweep: its id, its parameters (field path -> value), its directory."""

    id: str
    params: dict[str, Any]
    run_dir: str  # relative to the sweep directory

    def overrides(self, base: dict[str, Any]) -> list[str]:
        """The ``--set`` assignments of this point (the sweep's ``set:`` first)."""
        return [_assignment(k, v) for k, v in {**base, **self.params}.items()]


@dataclass
class Sweep:
    """A validated sweep file: the base scenario's path and the expanded points."""

    path: Path
    spec: SweepFile
    scenario_path: Path
    points: list[Point] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The sweep's name (``name:``, else the sweep file's stem)."""
        return self.spec.name or self.path.stem

    def scenario(self, point: Point | None = None) -> Scenario:
        """The scenario of a point (``None``: the base with ``set:`` only)."""
        return load_scenario(self.scenario_path, (point or _BASE).overrides(self.spec.set))


_BASE = Point("base", {}, "")


def _assignment(key: str, value: Any) -> str:
    # JSON is YAML: the value reaches the scenario exactly as the sweep file gave it.
    return f"{key}={json.dumps(value)}"


def expand(spec: SweepFile) -> list[dict[str, Any]]:
    """The points' parameters: the grid's product (first key varies slowest) or points."""
    if spec.points is not None:
        if len(spec.points) > MAX_POINTS:
            raise UserError(f"points: {len(spec.points)} (more than {MAX_POINTS}); split the sweep")
        return [dict(p) for p in spec.points]
    assert spec.grid is not None
    keys = list(spec.grid)
    n = 1
    for values in spec.grid.values():
        n *= len(values)
    if n > MAX_POINTS:
        raise UserError(f"grid: {n} points (more than {MAX_POINTS}); split the sweep")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*spec.grid.values())]


def load_sweep_file(path: str | Path) -> Sweep:
    """Read and validate a sweep file and every point's scenario (`UserError`, one line)."""
    path = Path(path)
    if not _is_file(path):
        raise UserError(f"{path}: cannot read sweep file (no such file)")
    # Bounded as a scenario is: size, UTF-8, nesting, aliases (one line, never a traceback).
    data = safe_load(read_scenario_text(path), str(path))
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with scenario: and grid: or points:")
    if "scenario" not in data:
        raise UserError(f"{path}: scenario: is missing (the base scenario's path)")
    try:
        spec = SweepFile.model_validate(data)
    except ValidationError as err:
        raise UserError(format_validation_error(str(path), err)) from None
    for k, p in enumerate(spec.points or []):
        for key in p:
            if not isinstance(key, str) or not key.strip("."):
                raise UserError(f"{path}: points.{k}: {key!r} is not a field path")
    scenario_path = path.parent / spec.scenario
    if not _is_file(scenario_path):
        raise UserError(
            f"{path}: scenario: {spec.scenario:.200} not found (looked at {scenario_path!s:.300})"
        )
    scenario_path = scenario_path.resolve()
    params = expand(spec)
    width = max(4, len(str(len(params) - 1)))
    points = [Point(f"p{k:0{width}d}", p, f"points/p{k:0{width}d}") for k, p in enumerate(params)]
    sweep = Sweep(path, spec, scenario_path, points)
    try:
        base = sweep.scenario()  # the set: overrides alone
    except UserError as exc:
        raise UserError(f"{path}: set: {exc}") from None
    if spec.fork_at is not None:  # past the base run's end: refused before its prefix is played
        _, est = preflight(base, go_ahead=_GO_AHEAD)
        if est.steps_known and spec.fork_at >= est.steps:
            raise UserError(
                f"{path}: fork_at: {spec.fork_at}: the base run has {est.steps} steps "
                f"(0 to {est.steps - 1}); fork earlier"
            )
    raw = safe_load(read_scenario_text(scenario_path), str(scenario_path))  # read once
    for point in points:
        try:
            scenario = resolve(raw, str(scenario_path), point.overrides(spec.set))
            # Sized before any point runs: a point too large is refused here, not mid-sweep.
            preflight(scenario, build=make_engine, go_ahead=_GO_AHEAD)
        except UserError as exc:
            raise UserError(f"{path}: point {point.id} ({_describe(point)}): {exc}") from None
        if spec.fork_at is not None:
            from society.fork import check_structure

            check_structure(base, scenario, f"{path}: fork_at: point {point.id}")
    return sweep


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte
        return False


def _describe(point: Point) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in point.params.items()) or "no overrides"


# -- one point -----------------------------------------------------------------------------


def point_status(run_dir: Path) -> str:
    """'pending' (no store), 'finished', or the store's status ('running' = partial, ...)."""
    import sqlite3

    db = run_dir / DB_NAME
    if not db.is_file():
        return "pending"
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'status'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return "unreadable"
    return str(row[0]) if row else "pending"


def run_point(
    scenario_path: str,
    overrides: list[str],
    run_dir: str,
    fork: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """Run (or resume, or skip) one point; what happened, as plain data (a Ray result).

    ``fork``: (prefix run directory, step): the point forks from that run's step.
    """
    from society.runner import resume_run, start_run

    path = Path(run_dir)
    t0 = time.perf_counter()
    try:
        _wait_unlocked(path)
        status = point_status(path)
        if status == "finished":
            return {"status": "finished", "skipped": True, "error": None, "wall_s": 0.0}
        if (path / DB_NAME).exists():
            result = resume_run(path, quiet=True)
        elif fork is not None:
            from society.fork import fork_run

            result = fork_run(fork[0], fork[1], overrides, path, quiet=True)
        else:
            result = start_run(load_scenario(scenario_path, overrides), path, quiet=True)
    except UserError as exc:
        return {"status": "failed", "skipped": False, "error": str(exc), "wall_s": 0.0}
    return {
        "status": result.status,
        "skipped": False,
        "error": None,
        "steps": result.steps,
        "decisions": result.decisions,
        "wall_s": time.perf_counter() - t0,
    }


def _wait_unlocked(run_dir: Path, timeout_s: float = 120.0) -> None:
    """Wait while another process holds the point's run lock.

    A Ray worker of a killed sweep may go on writing its point for a few seconds before
    Ray stops it; the resumed sweep waits for it rather than failing the point.
    """
    from society.store import RunLock, StoreError

    if not run_dir.is_dir():
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            RunLock(run_dir).release()
            return
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# -- the sweep ------------------------------------------------------------------------------


def default_out(sweep: Sweep) -> Path:
    """``<base scenario's output.dir>/sweeps/<sweep name>``: running again resumes it."""
    return Path(sweep.scenario().output.dir) / "sweeps" / sweep.name


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def _index_rows(sweep: Sweep, out: Path, results: dict[str, dict[str, Any]]) -> list[dict]:
    rows = []
    for p in sweep.points:
        r = results.get(p.id, {})
        rows.append(
            {
                "id": p.id,
                "params": p.params,
                "run_dir": p.run_dir,
                # A point run now reports its status; the others are read once, at start.
                "status": r["status"] if "status" in r else point_status(out / p.run_dir),
                "error": r.get("error"),
            }
        )
    return rows


def write_index(sweep: Sweep, out: Path, results: dict[str, dict[str, Any]]) -> None:
    """``index.json`` (the whole sweep) and ``index.csv`` (one row per point)."""
    rows = _index_rows(sweep, out, results)
    doc = {
        "sweep": sweep.name,
        "sweep_file": str(sweep.path.resolve()),
        "scenario": str(sweep.scenario_path),
        "set": sweep.spec.set,
        "fork_at": sweep.spec.fork_at,
        "prefix": PREFIX_DIR if sweep.spec.fork_at is not None else None,
        "points": rows,
    }
    _write_atomic(out / INDEX_JSON, json.dumps(doc, indent=1, default=str) + "\n")
    keys = list(dict.fromkeys(k for p in sweep.points for k in p.params))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", *keys, "run_dir", "status", "error"])
    for row in rows:
        vals = [json.dumps(row["params"][k]) if k in row["params"] else "" for k in keys]
        w.writerow([row["id"], *vals, row["run_dir"], row["status"], row["error"] or ""])
    _write_atomic(out / INDEX_CSV, buf.getvalue())


def _check_same_sweep(sweep: Sweep, out: Path) -> None:
    """A directory holding another sweep's points is refused, not mixed into."""
    index = out / INDEX_JSON
    if not index.exists():
        if out.exists() and any(out.iterdir()):
            raise UserError(f"--out {out}: the directory exists and holds no sweep index")
        return
    try:
        doc = json.loads(index.read_text())
        before = [(p["id"], p["params"]) for p in doc["points"]]
        same_base = doc.get("set") == sweep.spec.set and doc.get("fork_at") == sweep.spec.fork_at
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{index}: not a readable sweep index") from None
    now = [(p.id, json.loads(json.dumps(p.params, default=str))) for p in sweep.points]
    if before != now or not same_base or doc.get("scenario") != str(sweep.scenario_path):
        raise UserError(
            f"--out {out}: holds another sweep (its points or base differ from {sweep.path}); "
            "give another --out"
        )


def run_sweep(
    sweep: Sweep,
    out: Path,
    *,
    workers: int | None = None,
    address: str | None = None,
    quiet: bool = False,
) -> dict[str, dict[str, Any]]:
    """Run every point not finished yet; return each point's result, by id.

    ``workers`` (default: the machine's CPUs) Ray workers on a local Ray, or tasks in
    flight on the cluster at ``address``; ``workers=1`` without ``address``: in-process.
    """
    _check_same_sweep(sweep, out)
    if workers is None and address is None:
        workers = os.cpu_count() or 1
    in_process = workers == 1 and address is None
    if not in_process:
        _ray()  # without Ray: one line naming the extra, before anything is written
    out.mkdir(parents=True, exist_ok=True)
    from society.store import RunLock

    lock = RunLock(out)  # one driver per sweep directory
    try:
        copy = out / SWEEP_COPY
        if not copy.exists():
            _write_atomic(copy, sweep.path.read_text())
        results: dict[str, dict[str, Any]] = {
            p.id: {"status": point_status(out / p.run_dir), "skipped": True, "error": None}
            for p in sweep.points
        }
        write_index(sweep, out, results)
        todo = [p for p in sweep.points if results[p.id]["status"] != "finished"]
        fork = None
        if sweep.spec.fork_at is not None and todo:
            from society.fork import play_until

            prefix = out / PREFIX_DIR
            play_until(sweep.scenario(), prefix, sweep.spec.fork_at)
            fork = (str(prefix), _prefix_step(prefix, sweep.spec.fork_at))
        base = str(sweep.scenario_path)
        tasks = [(p, (base, p.overrides(sweep.spec.set), str(out / p.run_dir), fork)) for p in todo]
        if in_process:
            runner: Callable[..., Iterator[tuple[Point, dict[str, Any]]]] = _in_process
        else:
            runner = _on_ray
        bar = _bar(len(sweep.points), len(sweep.points) - len(todo), quiet)
        try:
            for point, result in runner(tasks, workers, address):
                results[point.id] = result
                write_index(sweep, out, results)
                bar.update(1)
        finally:
            bar.close()
        write_index(sweep, out, results)
        return results
    finally:
        lock.release()


def _prefix_step(prefix: Path, want: int) -> int:
    import sqlite3

    conn = sqlite3.connect(f"{(prefix / DB_NAME).resolve().as_uri()}?mode=ro", uri=True)
    try:
        last = conn.execute("SELECT MAX(round) FROM rounds").fetchone()[0]
    finally:
        conn.close()
    if last is None or last < want:
        raise UserError(f"fork_at: {want}: the base run ends at step {last} (fork earlier)")
    return int(last)


def _bar(total: int, done: int, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, initial=done, unit="point", desc="sweep", file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(), dynamic_ncols=True,
    )  # fmt: skip


def _in_process(
    tasks: list[tuple[Point, tuple]], workers: int | None, address: str | None
) -> Iterator[tuple[Point, dict[str, Any]]]:
    for point, args in tasks:
        yield point, run_point(*args)


RAY_ENV = {
    # No usage statistics, no dashboard, no log deduplication: a sweep talks to no one.
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
}


def _ray() -> Any:
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import ray
    except ImportError:
        raise UserError(
            "--workers > 1 and --address need Ray: pip install 'society[sweep]' "
            "(or run with --workers 1, in this process)"
        ) from None
    return ray


def _on_ray(
    tasks: list[tuple[Point, tuple]], workers: int | None, address: str | None
) -> Iterator[tuple[Point, dict[str, Any]]]:
    ray = _ray()
    if not tasks:
        return
    kw: dict[str, Any] = {
        "include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
    }  # fmt: skip
    if address is None:
        # Local: bound to loopback, with exactly `workers` CPUs.
        kw.update(num_cpus=workers, _node_ip_address="127.0.0.1")
    else:
        kw["address"] = address
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(**kw)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UserError(f"--address {address}: cannot reach Ray ({exc})") from None
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_point)
        # In flight at once: the local Ray's CPUs, or --workers (default: the cluster's CPUs).
        limit = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        pending: dict[Any, Point] = {}
        queue = list(tasks)
        while queue or pending:
            while queue and len(pending) < limit:
                point, args = queue.pop(0)
                pending[remote.remote(*args)] = point
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                point = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # a worker that died: the point stays partial
                    result = {
                        "status": "failed",
                        "skipped": False,
                        "error": f"Ray task failed: {exc}",
                    }
                yield point, result
    finally:
        if started:
            ray.shutdown()
