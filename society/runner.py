"""The event loop's driver: step the engine, commit each step with a checkpoint, resume.

A step's rows and the checkpoint of the state after it are written in one SQLite
transaction, so a run killed at any moment (SIGKILL included) has a store that
ends on a whole step, and `resume_run` continues from exactly there. The rows of
a resumed run are identical to those of an uninterrupted one.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm import tqdm

from society import __version__
from society.backends import Backend, BackendError, make_backend
from society.config import BackendConfig, LLMGroup
from society.decide import Decider
from society.engine import Engine
from society.errors import UserError
from society.records import StepRow
from society.scenario import Scenario, validate_scenario
from society.store import DB_NAME, RunStore

#: Backends given by the caller instead of built from the scenario: one instance for every
#: LLM group, or a mapping from a group's backend key (``BackendConfig.key()``) or name.
Backends = Backend | Mapping[str, Backend] | None


@dataclass(frozen=True)
class RunResult:
    """What a finished (or stopped) run reports."""

    run_dir: Path
    steps: int
    decisions: int
    wall_s: float
    status: str


def backend_configs(scenario: Scenario) -> dict[str, tuple[str, BackendConfig]]:
    """The distinct engines the LLM groups need: key -> (first group's name, config)."""
    out: dict[str, tuple[str, BackendConfig]] = {}
    for g in scenario.population.groups:
        if isinstance(g, LLMGroup):
            cfg = scenario.group_backend(g)
            out.setdefault(cfg.key(), (g.name, cfg))
    return out


def open_backends(scenario: Scenario, given: Backends = None) -> dict[str, Backend]:
    """One backend instance per distinct backend config of the LLM groups.

    ``given`` injects instances (tests, notebooks, a shared engine): a single backend
    serves every group; a mapping is looked up by backend key, then by group name.
    Injected backends are the caller's: the run does not close them.
    """
    backends: dict[str, Backend] = {}
    try:
        for key, (group, cfg) in backend_configs(scenario).items():
            if isinstance(given, Backend):
                backends[key] = given
            elif given is not None and (key in given or group in given):
                backends[key] = given[key] if key in given else given[group]
            else:
                backends[key] = make_backend(cfg.kind, cfg.model, **cfg.backend_options())
    except (ValueError, ImportError, FileNotFoundError, TypeError, BackendError) as exc:
        _close(backends, given)
        raise UserError(f"backend: {exc}") from None
    return backends


def _close(backends: dict[str, Backend], given: Backends) -> None:
    injected = (
        {id(given)} if isinstance(given, Backend) else {id(b) for b in (given or {}).values()}
    )
    for b in {id(b): b for b in backends.values()}.values():
        if id(b) not in injected:
            b.close()


def new_run_dir(scenario: Scenario, base: str | Path | None = None) -> Path:
    """A fresh directory `runs/<name>-<timestamp>-s<seed>` (suffixed if taken)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = Path(base or scenario.output.dir)
    path = root / f"{scenario.name}-{stamp}-s{scenario.seed}"
    k = 1
    while path.exists():
        k += 1
        path = root / f"{scenario.name}-{stamp}-s{scenario.seed}-{k}"
    return path


def start_run(
    scenario: Scenario,
    run_dir: str | Path | None = None,
    *,
    quiet: bool = False,
    backends: Backends = None,
) -> RunResult:
    """Create the run directory and store, then play the scenario to the end."""
    engine = Engine(scenario)  # validates the scenario's content before any file exists
    run_dir = Path(run_dir) if run_dir else new_run_dir(scenario)
    if (run_dir / DB_NAME).exists():
        raise UserError(f"--out {run_dir}: a run already exists there (use `society resume`)")
    # Engines start before any file is written: a backend that cannot start leaves no run.
    given = backends
    opened = open_backends(scenario, given)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = scenario.to_yaml()
    (run_dir / "scenario.yaml").write_text(text)
    store = RunStore.in_dir(run_dir, create=True)
    store.set_meta(
        name=scenario.name,
        seed=str(scenario.seed),
        game=scenario.game.kind,
        resolved_game=json.dumps(engine.kind.resolved(engine.setup)),
        scenario=text,
        status="running",
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        society_version=__version__,
    )
    return _play(engine, store, run_dir, opened, given, quiet=quiet, next_call_id=1)


def read_scenario(store: RunStore, run_dir: Path) -> Scenario:
    """The resolved scenario a run was started with."""
    text = store.meta().get("scenario")
    if text is None:
        raise UserError(f"{run_dir}: the run store has no scenario (not a society run?)")
    return validate_scenario(yaml.safe_load(text), f"{run_dir}/scenario")


def resume_run(run_dir: str | Path, *, quiet: bool = False, backends: Backends = None) -> RunResult:
    """Continue a killed or stopped run from its last committed step."""
    run_dir = Path(run_dir)
    if not (run_dir / DB_NAME).exists():
        raise UserError(f"{run_dir}: no run store ({DB_NAME}) in this directory")
    store = RunStore.in_dir(run_dir)
    meta = store.meta()
    if meta.get("status") == "finished":
        store.close()
        raise UserError(f"{run_dir}: this run already finished; nothing to resume")
    try:
        scenario = read_scenario(store, run_dir)
        engine = Engine(scenario)
        saved = store.last_checkpoint()
        if saved is not None:
            engine.restore_checkpoint(saved[1], f"{run_dir}/{DB_NAME}")
            engine.restore(store)
        last_call = store.conn.execute("SELECT MAX(id) FROM llm_calls").fetchone()[0] or 0
        opened = open_backends(scenario, backends) if not engine.done else {}
    except UserError:
        store.close()
        raise
    store.set_meta(
        status="running", resumed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    return _play(engine, store, run_dir, opened, backends, quiet=quiet, next_call_id=last_call + 1)


def _play(
    engine: Engine,
    store: RunStore,
    run_dir: Path,
    backends: dict[str, Backend],
    given: Backends,
    *,
    quiet: bool,
    next_call_id: int,
) -> RunResult:
    scenario = engine.scenario
    decider = Decider(backends, scenario.seed, next_call_id)
    steps = decisions = 0
    t_start = time.perf_counter()
    bar = tqdm(
        # Only on a terminal: a redrawn bar is noise in CI logs and files.
        total=engine.total_steps, disable=quiet or not sys.stderr.isatty(), delay=1.0,
        unit="step", file=sys.stderr,
        desc=scenario.name, dynamic_ncols=True,
    )  # fmt: skip
    status = "finished"
    # A step makes hundreds of thousands of short-lived tuples and no reference cycles:
    # the collector's frequent full passes over the (large, long-lived) game state would
    # cost more than the step itself. Freeze what exists and collect less often.
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        while not engine.done:
            t0 = time.perf_counter()
            rec = engine.step(decider)
            wall = time.perf_counter() - t0
            state = engine.checkpoint()
            store.commit_round(
                StepRow(
                    rec.round,
                    rec.generation,
                    rec.game,
                    rec.round_in_game,
                    len(rec.decisions),
                    wall,
                ),  # fmt: skip
                decisions=rec.decisions,
                events=rec.events,
                llm_calls=decider.take_calls(),
                agents=rec.agents,
                checkpoint=state,
            )
            steps += 1
            decisions += len(rec.decisions)
            bar.update(1)
    except BackendError as exc:
        status = "stopped"
        store.set_meta(status=status, error=str(exc))
        committed = store.count("rounds")
        raise UserError(
            f"run stopped: {exc}. {committed} step(s) committed and intact in {run_dir}; "
            f"continue with: society resume {run_dir}"
        ) from None
    except KeyboardInterrupt:
        status = "interrupted"
        store.set_meta(status=status)
        raise
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        bar.close()
        _close(backends, given)
        if status != "finished":
            store.close()
    store.set_meta(
        status="finished", finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    store.close()
    return RunResult(run_dir, steps, decisions, time.perf_counter() - t_start, status)
