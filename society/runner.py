"""The event loop's driver: step the simulation, commit each step with a checkpoint, resume.

A step's rows and the checkpoint of the state after it are written in one SQLite
transaction, so a run killed at any moment (SIGKILL included) has a store that
ends on a whole step, and `resume_run` continues from exactly there. The rows of
a resumed run are identical to those of an uninterrupted one.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm import tqdm

from society import __version__
from society.backends import Backend, BackendError, make_backend
from society.decide import Decider
from society.errors import UserError
from society.population import backend_configs, build_members
from society.scenario import Scenario, validate_scenario
from society.sims.base import Simulation
from society.store import DB_NAME, RunStore

SIMULATIONS: dict[str, str] = {
    "repeated_2x2": "society.sims.repeated:RepeatedGameSim",
    "donor": "society.sims.donor:DonorSim",
}


@dataclass(frozen=True)
class RunResult:
    """What a finished (or stopped) run reports."""

    run_dir: Path
    steps: int
    decisions: int
    wall_s: float
    status: str


def build_simulation(scenario: Scenario) -> Simulation:
    """The simulation for the scenario's game kind."""
    module_name, cls_name = SIMULATIONS[scenario.game.kind].split(":")
    return getattr(importlib.import_module(module_name), cls_name)(scenario)


def open_backends(scenario: Scenario) -> dict[str, Backend]:
    """One backend instance per distinct backend config of the LLM groups."""
    backends: dict[str, Backend] = {}
    try:
        for key, cfg in backend_configs(build_members(scenario)).items():
            backends[key] = make_backend(cfg.kind, cfg.model, **cfg.backend_options())
    except (ValueError, ImportError, FileNotFoundError, TypeError, BackendError) as exc:
        for b in backends.values():
            b.close()
        raise UserError(f"backend: {exc}") from None
    return backends


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
    scenario: Scenario, run_dir: str | Path | None = None, *, quiet: bool = False
) -> RunResult:
    """Create the run directory and store, then play the scenario to the end."""
    sim = build_simulation(scenario)  # validates the scenario's content before any file exists
    run_dir = Path(run_dir) if run_dir else new_run_dir(scenario)
    if (run_dir / DB_NAME).exists():
        raise UserError(f"--out {run_dir}: a run already exists there (use `society resume`)")
    # Engines start before any file is written: a backend that cannot start leaves no run.
    backends = open_backends(scenario)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = scenario.to_yaml()
    (run_dir / "scenario.yaml").write_text(text)
    store = RunStore.in_dir(run_dir, create=True)
    store.set_meta(
        name=scenario.name,
        seed=str(scenario.seed),
        game=scenario.game.kind,
        scenario=text,
        status="running",
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        society_version=__version__,
    )
    return _play(sim, scenario, store, run_dir, backends, quiet=quiet, next_call_id=1)


def read_scenario(store: RunStore, run_dir: Path) -> Scenario:
    """The resolved scenario a run was started with."""
    text = store.meta().get("scenario")
    if text is None:
        raise UserError(f"{run_dir}: the run store has no scenario (not a society run?)")
    return validate_scenario(yaml.safe_load(text), f"{run_dir}/scenario")


def resume_run(run_dir: str | Path, *, quiet: bool = False) -> RunResult:
    """Continue a killed or stopped run from its last committed step."""
    run_dir = Path(run_dir)
    if not (run_dir / DB_NAME).exists():
        raise UserError(f"{run_dir}: no run store ({DB_NAME}) in this directory")
    store = RunStore.in_dir(run_dir)
    meta = store.meta()
    if meta.get("status") == "finished":
        store.close()
        raise UserError(f"{run_dir}: this run already finished; nothing to resume")
    scenario = read_scenario(store, run_dir)
    sim = build_simulation(scenario)
    checkpoint = store.last_checkpoint()
    if checkpoint is not None:
        sim.set_state(pickle.loads(checkpoint[1]))
        sim.restore(store)
    last_call = store.conn.execute("SELECT MAX(id) FROM llm_calls").fetchone()[0] or 0
    try:
        backends = open_backends(scenario) if not sim.done else {}
    except UserError:
        store.close()
        raise
    store.set_meta(
        status="running", resumed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    return _play(sim, scenario, store, run_dir, backends, quiet=quiet, next_call_id=last_call + 1)


def _play(
    sim: Simulation,
    scenario: Scenario,
    store: RunStore,
    run_dir: Path,
    backends: dict[str, Backend],
    *,
    quiet: bool,
    next_call_id: int,
) -> RunResult:
    decider = Decider(backends, scenario.seed, next_call_id)
    steps = decisions = 0
    t_start = time.perf_counter()
    bar = tqdm(
        # Only on a terminal: a redrawn bar is noise in CI logs and files.
        total=sim.total_steps, disable=quiet or not sys.stderr.isatty(), delay=1.0,
        unit="step", file=sys.stderr,
        desc=scenario.name, dynamic_ncols=True,
    )  # fmt: skip
    status = "finished"
    try:
        while not sim.done:
            t0 = time.perf_counter()
            rec = sim.step(decider)
            wall = time.perf_counter() - t0
            state = pickle.dumps(sim.get_state(), protocol=pickle.HIGHEST_PROTOCOL)
            store.commit_round(
                (rec.round, rec.generation, rec.game, rec.round_in_game, len(rec.decisions), wall),
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
        bar.close()
        for backend in backends.values():
            backend.close()
        if status != "finished":
            store.close()
    store.set_meta(
        status="finished", finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    store.close()
    return RunResult(run_dir, steps, decisions, time.perf_counter() - t_start, status)
