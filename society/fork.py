"""Forks: a new run that starts from a committed step of an earlier one.

``fork_run(RUN, at=STEP, overrides)`` makes a run store whose rows up to step STEP are
the earlier run's (copied as stored), whose checkpoint is the simulation state after
that step, and whose scenario is the earlier one with the overrides applied; the fork
then continues like any resumed run (``society.runner.resume_run``), so the new settings
(an intervention, a reminder, another model) hold from step STEP + 1 on, and a fork
killed midway resumes as any run does.

The state after STEP: a store keeps the checkpoint of its last committed step only. A
fork at that step reads it; a fork at an earlier step re-executes the earlier run from
step 0 to STEP (the seed fixes every random choice, and its LLM calls are answered from
its own record by the replay backend), and checks that every re-executed step gives the
rows stored for it, so the state is the one the run had there, or the fork is refused.

Overrides that would contradict what is recorded (the seed, the game kind, the groups,
their sizes or scripted policies, the network) are refused with one line.

``play_until`` plays a scenario up to a step and stops there: the shared prefix of a
sweep's ``fork_at`` (``society.sweep``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from society.backends import Backend, BackendError
from society.backends.replay import ReplayBackend
from society.config import ScriptedGroup
from society.decide import Decider
from society.engine import Engine
from society.errors import UserError
from society.records import StepRow
from society.runner import (
    Backends,
    RunResult,
    backend_configs,
    open_backends,
    resume_run,
    run_meta,
)
from society.scenario import Scenario, resolve, validate_scenario
from society.store import DB_NAME, FORMAT_VERSION, LOCK_NAME, RunLock, RunStore

__all__ = [
    "ForkSource",
    "check_structure",
    "fork_run",
    "make_fork",
    "play_until",
    "read_source",
]

TABLES = ("agents", "llm_calls", "decisions", "events", "rounds")
# Meta that describes the earlier run's life, not the fork's: not copied.
_OWN_META = {
    "status", "created_at", "resumed_at", "finished_at", "error", "scenario",
    "resolved_game", "name", "seed", "game", "format_version", "society_version",
}  # fmt: skip
# llm_calls columns a re-execution must reproduce (backend, model, latency are the
# serving engine's, and the replay backend is not the engine the run had).
_CALL_COLS = ("id", "round", "agent_id", "purpose", "messages", "params", "seed", "reply")


@dataclass(frozen=True)
class ForkSource:
    """An earlier run as a fork reads it: its directory, scenario and last step."""

    run_dir: Path
    data: dict[str, Any]  # the resolved scenario as raw data (overrides apply to it)
    scenario: Scenario
    last_step: int  # last committed step (-1: none)
    checkpoint_step: int | None  # the step the stored checkpoint is of
    forked_from: str | None = None  # a fork: the run and step it was forked from
    forked_at: int | None = None


def _ro(db: Path) -> sqlite3.Connection:
    # Read-only: forking never writes to (or creates files next to) the earlier run.
    return sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)


def read_source(run_dir: str | Path) -> ForkSource:
    """The earlier run at ``run_dir``; `UserError` when it is not a run store to fork."""
    run_dir = Path(run_dir)
    db = run_dir / DB_NAME
    if not db.is_file():
        raise UserError(f"{run_dir}: no run store ({DB_NAME}) in this directory")
    try:
        conn = _ro(db)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            last = conn.execute("SELECT MAX(round) FROM rounds").fetchone()[0]
            row = conn.execute("SELECT round FROM checkpoints WHERE part = 'state'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise UserError(f"{db}: cannot read the run store ({exc})") from None
    version = meta.get("format_version", "1")
    if version != FORMAT_VERSION:
        raise UserError(f"{db}: run store format {version!r}; forks need format {FORMAT_VERSION!r}")
    text = meta.get("scenario")
    if text is None:
        raise UserError(f"{run_dir}: the run store has no scenario (not a society run?)")
    data = yaml.safe_load(text)
    scenario = validate_scenario(data, f"{run_dir}/scenario")
    forked_at = meta.get("forked_at")
    if forked_at is not None and not Path(meta.get("forked_from", "")).is_dir():
        forked_at = None  # the parent is gone: only the fork's own checkpoint can serve
    return ForkSource(
        run_dir, data, scenario, -1 if last is None else int(last),
        None if row is None else row[0], meta.get("forked_from"),
        None if forked_at is None else int(forked_at),
    )  # fmt: skip


def _structure(s: Scenario) -> dict[str, Any]:
    groups = []
    for g in s.population.groups:
        item: dict[str, Any] = {"name": g.name, "kind": g.kind, "count": g.count}
        if isinstance(g, ScriptedGroup):
            item["strategy"] = g.strategy
        groups.append(item)
    return {
        "seed": s.seed,
        "game.kind": s.game.kind,
        "population.groups": groups,
        "network": s.network.model_dump(mode="json"),
    }


def check_structure(before: Scenario, after: Scenario, where: str = "fork") -> None:
    """Refuse (one line) a fork scenario that changes what the recorded steps fixed.

    The seed (the random stream and the network come from it), the game kind, the groups
    (names, kinds, sizes, scripted policies: the recorded agents) and the network.
    """
    a, b = _structure(before), _structure(after)
    for key in a:
        if a[key] == b[key]:
            continue
        if key == "population.groups":
            for old, new in zip(a[key], b[key], strict=False):
                for field in ("name", "kind", "count", "strategy"):
                    if old.get(field) != new.get(field):
                        raise UserError(
                            f"{where}: population.groups.{old['name']}.{field} cannot change in a "
                            f"fork (the recorded agents have {old.get(field)!r}, the override "
                            f"gives {new.get(field)!r})"
                        )
            raise UserError(
                f"{where}: population.groups: a fork keeps the recorded groups "
                f"({len(a[key])} groups, the override gives {len(b[key])})"
            )
        raise UserError(
            f"{where}: {key} cannot change in a fork (it fixes what is already recorded: "
            f"{a[key]!r}, the override gives {b[key]!r})"
        )


def _norm(row: Sequence[Any]) -> tuple[Any, ...]:
    # SQLite stores NaN as NULL and a whole REAL as a float: compare as stored.
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in row)


def _rows_by_round(conn: sqlite3.Connection, table: str, cols: str, upto: int) -> dict:
    out: dict[int, list[tuple[Any, ...]]] = {}
    sql = f"SELECT round, {cols} FROM {table} WHERE round <= ? ORDER BY id"
    for row in conn.execute(sql, (upto,)):
        out.setdefault(row[0], []).append(_norm(row[1:]))
    return out


_DEC_COLS = "agent_id, partner_id, kind, action, value, valid, source, llm_call_id, data"
_EV_COLS = "kind, agent_id, partner_id, action, value, data"


def _replayed_state(src: ForkSource, step: int) -> dict[str, Any]:
    """The state after ``step``, by re-executing the earlier run from step 0 (verified).

    The steps of a fork up to its fork point are its parent's: they are re-executed there.
    """
    if src.forked_at is not None:
        if step > src.forked_at:
            raise UserError(
                f"fork --at {step}: {src.run_dir} is itself a fork (of step {src.forked_at}); "
                f"fork it at its last step ({src.checkpoint_step}), or at step "
                f"{src.forked_at} or earlier"
            )
        parent = read_source(src.forked_from or "")
        if step == parent.checkpoint_step:
            engine = Engine(parent.scenario)
            conn = _ro(parent.run_dir / DB_NAME)
            try:
                parts = dict(conn.execute("SELECT part, state FROM checkpoints").fetchall())
            finally:
                conn.close()
            engine.restore_checkpoint(parts, str(parent.run_dir / DB_NAME))
            return engine.get_state()
        return _replayed_state(parent, step)
    engine = Engine(src.scenario)
    keys = list(backend_configs(src.scenario))
    replay: Backend | None = None
    if keys:
        try:
            replay = ReplayBackend(run=src.run_dir, strict=True)
        except BackendError as exc:
            raise UserError(f"fork: {exc}") from None
    decider = Decider(
        dict.fromkeys(keys, replay) if replay is not None else {}, src.scenario.seed, 1
    )
    conn = _ro(src.run_dir / DB_NAME)
    try:
        decisions = _rows_by_round(conn, "decisions", _DEC_COLS, step)
        events = _rows_by_round(conn, "events", _EV_COLS, step)
        calls = _rows_by_round(conn, "llm_calls", ", ".join(_CALL_COLS), step)
    finally:
        conn.close()
    for k in range(step + 1):
        rec = engine.step(decider)
        # A call row: id, round, agent, purpose, backend, model, messages, params, seed, reply.
        got_calls = [_norm((*c[:4], *c[6:10])) for c in decider.take_calls()]
        same = (
            [_norm(d[2:]) for d in rec.decisions] == decisions.get(k, [])
            and [_norm(e[2:]) for e in rec.events] == events.get(k, [])
            and got_calls == calls.get(k, [])
        )
        if not same:
            raise UserError(
                f"fork: re-executing {src.run_dir} does not reproduce its step {k} (a run "
                f"made by another version of society?); fork it at its last step "
                f"({src.checkpoint_step}) instead"
            )
        if engine.done and k < step:
            raise UserError(f"fork --at {step}: the run ended at step {k}")
    return engine.get_state()


def make_fork(
    run_dir: str | Path,
    at: int,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    *,
    backend: str | None = None,
    model: str | None = None,
) -> Path:
    """Write the fork's store (rows up to ``at``, the state after it) and return its dir.

    The fork is built under a temporary name and renamed into place: it exists whole or
    not at all. It is not played; :func:`fork_run` plays it.
    """
    src = read_source(run_dir)
    if not 0 <= at <= src.last_step:
        raise UserError(
            f"fork --at {at}: {src.run_dir} has committed steps 0..{src.last_step}"
            if src.last_step >= 0
            else f"fork: {src.run_dir} has no committed step yet"
        )
    scenario = resolve(
        src.data, f"fork of {src.run_dir}", list(overrides), backend=backend, model=model
    )
    check_structure(src.scenario, scenario, "fork --set")
    engine = Engine(scenario)
    where = f"{src.run_dir}/{DB_NAME}"
    parts: dict[str, Any] = {}
    if at == src.checkpoint_step:
        conn = _ro(src.run_dir / DB_NAME)
        try:
            rows = conn.execute("SELECT part, round, state FROM checkpoints").fetchall()
        finally:
            conn.close()
        parts = {part: state for part, _, state in rows}
        if {part: rnd for part, rnd, _ in rows}.get("state") != at:
            parts = {}  # the run went on since it was read (it is running): re-execute
    if parts:
        engine.restore_checkpoint(parts, where)
    else:
        engine.set_state(_replayed_state(src, at))
    out = Path(out) if out is not None else _fork_dir(src.run_dir, at)
    if out.exists() and (not out.is_dir() or set(os.listdir(out)) - {LOCK_NAME}):
        raise UserError(f"--out {out}: the directory exists and is not empty")
    tmp = out.with_name(f".{out.name}.fork-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a fork killed while it was written
    text = scenario.to_yaml()
    meta = _fork_meta(src, at, overrides, scenario, engine, text)
    tmp.mkdir(parents=True)
    (tmp / "scenario.yaml").write_text(text)
    _write_store(tmp, src, at, meta, engine.checkpoint())
    if out.exists():  # empty but for a lock file (a sweep's point waiting for its turn)
        (out / LOCK_NAME).unlink(missing_ok=True)
        out.rmdir()
    os.replace(tmp, out)
    return out


def _fork_dir(run_dir: Path, at: int) -> Path:
    base = run_dir.parent / f"{run_dir.name}-fork{at}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def _fork_meta(
    src: ForkSource,
    at: int,
    overrides: Sequence[str],
    scenario: Scenario,
    engine: Engine,
    text: str,
) -> dict[str, str]:
    conn = _ro(src.run_dir / DB_NAME)
    try:
        old = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()
    meta = {k: v for k, v in old.items() if k not in _OWN_META and not k.startswith("forked_")}
    meta.update(
        run_meta(scenario, engine, text),
        forked_from=str(src.run_dir.resolve()),
        forked_from_name=old.get("name", ""),
        forked_at=str(at),
        fork_overrides=json.dumps(list(overrides)),
    )
    return meta


def _write_store(
    run_dir: Path, src: ForkSource, at: int, meta: dict[str, str], parts: dict[str, str]
) -> None:
    store = RunStore.in_dir(run_dir, create=True)
    conn = _ro(src.run_dir / DB_NAME)
    try:
        c = store.conn
        c.execute("BEGIN IMMEDIATE")
        for table in TABLES:
            cols = [r[1] for r in c.execute(f"PRAGMA table_info({table})")]
            src_cols = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            cols = [col for col in cols if col in src_cols]
            col_list = ", ".join(cols)
            key = "born_round" if table == "agents" else "round"
            order = "agent_id" if table == "agents" else ("round" if table == "rounds" else "id")
            rows = conn.execute(
                f"SELECT {col_list} FROM {table} WHERE {key} <= ? ORDER BY {order}", (at,)
            )
            c.executemany(
                f"INSERT INTO {table} ({col_list}) VALUES ({', '.join('?' * len(cols))})", rows
            )
        c.executemany(
            "INSERT OR REPLACE INTO checkpoints (part, round, state) VALUES (?, ?, ?)",
            [(part, at, state) for part, state in parts.items()],
        )
        c.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(meta.items()))
        c.execute("COMMIT")
    finally:
        conn.close()
        store.close()


def fork_run(
    run_dir: str | Path,
    at: int,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    *,
    backend: str | None = None,
    model: str | None = None,
    quiet: bool = False,
    backends: Backends = None,
) -> RunResult:
    """Fork the run at ``run_dir`` after step ``at`` with ``overrides`` and play it on."""
    path = make_fork(run_dir, at, overrides, out, backend=backend, model=model)
    return resume_run(path, quiet=quiet, backends=backends)


def play_until(
    scenario: Scenario, run_dir: str | Path, last_step: int, *, backends: Backends = None
) -> Path:
    """Play ``scenario`` into ``run_dir`` up to step ``last_step`` (inclusive) and stop.

    A store already there (a prefix killed midway) is continued from its checkpoint. The
    store ends with the checkpoint of ``last_step`` (or of the run's end, if sooner) and
    status 'prefix': forks from that step read it without re-executing anything.
    """
    run_dir = Path(run_dir)
    engine = Engine(scenario)
    if not (run_dir / DB_NAME).exists():
        text = scenario.to_yaml()
        tmp = run_dir.with_name(f".{run_dir.name}.prefix-tmp")
        if tmp.exists():
            shutil.rmtree(tmp)  # left by a prefix killed while it was created
        RunStore.in_dir(tmp, create=True, meta=run_meta(scenario, engine, text)).close()
        (tmp / "scenario.yaml").write_text(text)
        os.replace(tmp, run_dir)
    lock = RunLock(run_dir)  # one writer: a second sweep on the same directory is refused
    store = RunStore.in_dir(run_dir)
    try:
        saved = store.last_checkpoint()
        if saved is not None:
            engine.restore_checkpoint(saved[1], str(run_dir / DB_NAME))
            engine.restore(store)
        if engine.done or engine.step_no > last_step:
            return run_dir
        last_call = store.conn.execute("SELECT MAX(id) FROM llm_calls").fetchone()[0] or 0
        opened = open_backends(scenario, backends)
        decider = Decider(opened, scenario.seed, last_call + 1)
        try:
            while not engine.done and engine.step_no <= last_step:
                t0 = time.perf_counter()
                rec = engine.step(decider)
                wall = time.perf_counter() - t0
                store.commit_round(
                    StepRow(rec.round, rec.generation, rec.game, rec.round_in_game,
                            len(rec.decisions), wall),
                    decisions=rec.decisions, events=rec.events, llm_calls=decider.take_calls(),
                    agents=rec.agents, checkpoint=engine.checkpoint(),
                )  # fmt: skip
        except BackendError as exc:
            raise UserError(f"sweep prefix {run_dir} stopped: {exc}") from None
        finally:
            injected = {id(b) for b in _given(backends)}
            for b in {id(b): b for b in opened.values()}.values():
                if id(b) not in injected:
                    b.close()
        store.set_meta(status="prefix", prefix_until=str(last_step))
    finally:
        store.close()
        lock.release()
    return run_dir


def _given(backends: Backends) -> list[Backend]:
    if backends is None:
        return []
    if isinstance(backends, Backend):
        return [backends]
    return list(backends.values())
