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
import os
import re
import sqlite3
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from tqdm import tqdm

from society import __version__
from society.backends import Backend, BackendError, make_backend
from society.config import BackendConfig, LLMGroup
from society.decide import Decider
from society.engine import Engine
from society.errors import UserError
from society.estimate import preflight
from society.records import StepRow
from society.scenario import Scenario, validate_scenario
from society.store import DB_NAME, RunLock, RunStore, StoreError
from society.vector import make_engine  # run.engine: generic, or vectorised when it qualifies

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


_SECRET_WORDS = ("key", "token", "secret", "password", "authorization", "bearer")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def refuse_secrets(scenario: Scenario) -> None:
    """Refuse a scenario that holds a credential (UserError naming the field, never the
    value): the scenario is stored in the run (meta, scenario.yaml) and shared with it.
    A key belongs in an environment variable, named by ``backend.api_key_env``."""
    where = {"backend": scenario.backend} | {
        f"population.groups.{group}.backend": cfg
        for group, cfg in backend_configs(scenario).values()
    }
    fix = "put the key in an environment variable and give its name in api_key_env"
    for path, cfg in where.items():
        if cfg.api_key_env is not None and not _ENV_NAME.fullmatch(cfg.api_key_env):
            raise UserError(
                f"{path}.api_key_env: expected the *name* of an environment variable "
                f"(letters, digits, _), not a key; {fix}"
            )
        for name in cfg.options:
            if any(w in name.lower() for w in _SECRET_WORDS):
                raise UserError(
                    f"{path}.options.{name}: credentials are not written in scenarios (the "
                    f"scenario is stored with the run); {fix}"
                )
        urls = [cfg.base_url] if isinstance(cfg.base_url, str) else cfg.base_url or []
        if any("@" in urlsplit(u).netloc for u in urls):
            raise UserError(
                f"{path}.base_url: a URL with a user name or password would be stored with the "
                f"run; {fix}"
            )


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


def run_meta(scenario: Scenario, engine: Engine, text: str) -> dict[str, str]:
    """The meta every new store starts with: what ran, from which scenario, when, by which
    version (status `running` until the run ends)."""
    return dict(
        name=scenario.name,
        seed=str(scenario.seed),
        game=scenario.game.kind,
        resolved_game=json.dumps(engine.kind.resolved(engine.setup)),
        scenario=text,
        status="running",
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        society_version=__version__,
    )


def start_run(
    scenario: Scenario,
    run_dir: str | Path | None = None,
    *,
    quiet: bool = False,
    backends: Backends = None,
    allow_large: bool = False,
) -> RunResult:
    """Create the run directory and store, then play the scenario to the end.

    Before any file exists the run is estimated (`society.estimate`): beyond the limits
    it is refused with one line, unless ``allow_large``."""
    refuse_secrets(scenario)  # before anything is written: the scenario goes into the store
    # Builds the engine (validating the scenario's content) and bounds the run's size.
    engine, _ = preflight(scenario, allow_large=allow_large, run_dir=run_dir, build=make_engine)
    run_dir = Path(run_dir) if run_dir else new_run_dir(scenario)
    if (run_dir / DB_NAME).exists():
        raise UserError(f"--out {run_dir}: a run already exists there (use `society resume`)")
    # Engines start before any file is written: a backend that cannot start leaves no run.
    given = backends
    opened = open_backends(scenario, given)
    lock: RunLock | None = None
    try:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"--out {run_dir}: cannot create the run directory ({exc.strerror or exc})"
            ) from None
        lock = RunLock(run_dir)
        if (run_dir / DB_NAME).exists():  # made by another process since the check above
            raise UserError(f"--out {run_dir}: a run already exists there (use `society resume`)")
        text = scenario.to_yaml()
        # The store appears whole with its metadata (atomic): a run killed while it starts
        # leaves either no store (start it again) or one that `society resume` continues.
        store = RunStore.in_dir(
            run_dir,
            create=True,
            meta=dict(
                run_meta(scenario, engine, text),
                # engine, version, device, batch invariance: can a rerun be identical?
                backends=_describe(opened),
            ),
        )
        _write_atomic(run_dir / "scenario.yaml", text, store)
    except BaseException:
        _close(opened, given)
        if lock is not None:
            lock.release()
        raise
    return _play(engine, store, run_dir, opened, given, quiet=quiet, next_call_id=1, lock=lock)


def _describe(backends: Mapping[str, Backend]) -> str:
    """The backends' `describe()` as JSON, for the run's meta (never secrets)."""
    return json.dumps({k: b.describe() for k, b in backends.items()}, sort_keys=True, default=str)


def _write_atomic(path: Path, text: str, store: RunStore) -> None:
    """Write a file whole or not at all (a copy of what the store's meta holds)."""
    tmp = path.with_name(path.name + ".new")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        store.close()
        raise StoreError(f"{path}: cannot write ({exc.strerror or exc})") from None


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
        hint = ""
        if (run_dir / "scenario.yaml").exists():  # killed before its store was made
            hint = (
                f"; the run was stopped before it started: start it again with "
                f"society run {run_dir / 'scenario.yaml'} --out {run_dir}"
            )
        raise UserError(f"{run_dir}: no run store ({DB_NAME}) in this directory{hint}")
    lock = RunLock(run_dir)  # before the store is read: a second resume is refused here
    store: RunStore | None = None
    try:
        # check: every page is read once, so a damaged store is refused before it is appended to
        store = RunStore.in_dir(run_dir, check=True)
        meta = store.meta()
        if meta.get("status") == "finished":
            raise UserError(f"{run_dir}: this run already finished; nothing to resume")
        scenario = read_scenario(store, run_dir)
        engine = make_engine(scenario)
        saved = store.last_checkpoint()
        if saved is not None:
            engine.restore_checkpoint(saved[1], f"{run_dir}/{DB_NAME}")
            engine.restore(store)
        last_call = store.conn.execute("SELECT MAX(id) FROM llm_calls").fetchone()[0] or 0
        opened = open_backends(scenario, backends) if not engine.done else {}
        store.set_meta(
            status="running",
            resumed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            resumed_backends=_describe(opened),
        )
    except sqlite3.Error as exc:
        _abandon(store, lock)
        raise StoreError(f"{run_dir}/{DB_NAME}: cannot resume from the run store ({exc})") from None
    except BaseException:
        _abandon(store, lock)
        raise
    return _play(
        engine, store, run_dir, opened, backends, quiet=quiet, next_call_id=last_call + 1,
        lock=lock,
    )  # fmt: skip


def _abandon(store: RunStore | None, lock: RunLock) -> None:
    if store is not None:
        store.close()
    lock.release()


def _play(
    engine: Engine,
    store: RunStore,
    run_dir: Path,
    backends: dict[str, Backend],
    given: Backends,
    *,
    quiet: bool,
    next_call_id: int,
    lock: RunLock | None = None,
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
        _try_meta(store, status=status, error=str(exc))
        committed = store.count("rounds")
        raise UserError(
            f"run stopped: {exc}. {committed} step(s) committed and intact in {run_dir}; "
            f"continue with: society resume {run_dir}"
        ) from None
    except sqlite3.Error as exc:
        # Disk full, directory made read-only, I/O error: the failed step was rolled back;
        # every step before it is committed.
        status = "stopped"
        _try_meta(store, status=status, error=f"run store: {exc}")
        raise StoreError(
            f"run stopped: cannot write the run store {run_dir / DB_NAME} ({exc}). "
            f"{_committed(store)} step(s) committed and intact; free space or fix "
            f"permissions, then continue with: society resume {run_dir}"
        ) from None
    except KeyboardInterrupt:
        status = "interrupted"
        _try_meta(store, status=status)
        raise
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        bar.close()
        decider.close()  # out-of-order stepping's request threads, if any
        _close(backends, given)
        if status != "finished":
            store.close()
            if lock is not None:
                lock.release()
    try:
        store.set_meta(
            status="finished", finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        )
    except sqlite3.Error as exc:
        raise StoreError(
            f"{run_dir / DB_NAME}: every step is committed but the run could not be marked "
            f"finished ({exc}); `society resume {run_dir}` finishes it"
        ) from None
    finally:
        store.close()
        if lock is not None:
            lock.release()
    return RunResult(run_dir, steps, decisions, time.perf_counter() - t_start, status)


def _try_meta(store: RunStore, **items: str) -> None:
    """Record how a run ended, if the store still takes writes (it may be full)."""
    try:
        store.set_meta(**items)
    except sqlite3.Error:
        pass


def _committed(store: RunStore) -> int | str:
    try:
        return store.count("rounds")
    except sqlite3.Error:
        return "all earlier"
