"""The run store: one SQLite database per run, the single source of truth.

Every round is written in one transaction together with a checkpoint of the
whole simulation state, so a run killed at any moment resumes from its last
committed round. `analysis.load_run` reads these tables; the schema below is
the contract between the runtime and the analysis package.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from society.errors import UserError
from society.records import AgentRow, CallRow, DecisionRow, EventRow, StepRow

try:  # POSIX; elsewhere runs are not locked (see RunLock)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

FORMAT_VERSION = "2"  # 2: decisions.data, JSON checkpoints, meta resolved_game
DB_NAME = "run.sqlite"
LOCK_NAME = "run.lock"


class StoreError(UserError):
    """A run store that cannot be used: not SQLite, damaged, of another format, not
    writable, full, or in use by another process. One line naming the path."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class RunLock:
    """An exclusive OS lock (``flock``) on ``RUN_DIR/run.lock``, held while a process
    writes the run. The kernel drops it when the process dies, however it dies, so a
    killed run never blocks a later ``society resume``; a live one refuses a second."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._file: IO[str] | None = None
        try:
            f = open(self.path, "a+")  # noqa: SIM115 (held until release)
        except OSError as exc:
            raise StoreError(
                f"{run_dir}: cannot write in the run directory ({exc.strerror or exc})"
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                holder = f.read().strip() or "?"
                f.close()
                raise StoreError(
                    f"{run_dir}: the run is in use by another society process (pid {holder}); "
                    "wait for it to end or stop it, then `society resume` it"
                ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        """Drop the lock (closing the file releases the flock)."""
        if self._file is not None:
            self._file.close()
            self._file = None


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- One row per agent that ever lived in the run (agent_id unique over the run).
CREATE TABLE IF NOT EXISTS agents (
    agent_id    INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    grp         TEXT NOT NULL,          -- population group
    kind        TEXT NOT NULL,          -- 'scripted' | 'llm'
    strategy    TEXT,                   -- strategy name, or strategy text of an LLM agent
    params      TEXT,                   -- JSON
    backend     TEXT,
    model       TEXT,
    persona     TEXT,
    generation  INTEGER NOT NULL DEFAULT 0,
    parent_id   INTEGER,                -- lineage: whose advice / strategy it descends from
    born_round  INTEGER NOT NULL DEFAULT 0
);
-- One row per committed step of the event loop.
CREATE TABLE IF NOT EXISTS rounds (
    round          INTEGER PRIMARY KEY, -- global step counter, from 0
    generation     INTEGER NOT NULL DEFAULT 0,
    game           INTEGER NOT NULL DEFAULT 0,
    round_in_game  INTEGER NOT NULL DEFAULT 0,
    n_decisions    INTEGER NOT NULL,
    wall_s         REAL NOT NULL        -- time the step took (differs between reruns)
);
-- One row per decision an agent made.
CREATE TABLE IF NOT EXISTS decisions (
    id           INTEGER PRIMARY KEY,
    round        INTEGER NOT NULL,
    generation   INTEGER NOT NULL DEFAULT 0,
    agent_id     INTEGER NOT NULL,
    partner_id   INTEGER,
    kind         TEXT NOT NULL,         -- 'move' (2x2), 'donate', 'strategy', ...
    action       TEXT,                  -- 2x2: 'C' (option 0) or 'D' (option 1); donor: give/punish; text
    value        REAL,                  -- 2x2: option index; donor game: amount given
    valid        INTEGER NOT NULL DEFAULT 1,
    source       TEXT NOT NULL,         -- 'scripted' | 'llm' | 'fallback' | 'forced' (one legal action)
    llm_call_id  INTEGER,
    data         TEXT                   -- JSON details of a structured action, or NULL
);
-- What the game master did with the decisions: payoffs, donations, resources.
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    round       INTEGER NOT NULL,
    generation  INTEGER NOT NULL DEFAULT 0,
    kind        TEXT NOT NULL,          -- 'payoff', 'donation', 'punishment', 'resources', ...
    agent_id    INTEGER,
    partner_id  INTEGER,
    action      TEXT,                   -- 2x2: the move actually played (after noise)
    value       REAL,                   -- payoff, amount, resources
    data        TEXT                    -- JSON details, or NULL
);
-- Every call to an LLM backend, replayable.
CREATE TABLE IF NOT EXISTS llm_calls (
    id                 INTEGER PRIMARY KEY,
    round              INTEGER NOT NULL,
    agent_id           INTEGER,
    purpose            TEXT,            -- 'move', 'predict', 'strategy', 'repair', ...
    backend            TEXT NOT NULL,
    model              TEXT NOT NULL,
    messages           TEXT NOT NULL,   -- JSON list of {role, content}
    params             TEXT NOT NULL,   -- JSON sampling parameters (incl. schema)
    seed               INTEGER,
    reply              TEXT,
    parsed             TEXT,            -- JSON of the parsed action, NULL if invalid
    valid              INTEGER NOT NULL,
    error              TEXT,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    latency_s          REAL,
    logprobs           TEXT,            -- JSON or NULL
    endpoint           TEXT             -- the server that answered (openai backend), or NULL
);
-- The latest checkpoint only, as versioned JSON (never pickle: opening a store from
-- elsewhere must not run code). Part 'state' is written with every step; a large part
-- that changes rarely (the population's slots) is its own row, rewritten when it changes.
CREATE TABLE IF NOT EXISTS checkpoints (
    part   TEXT PRIMARY KEY,
    round  INTEGER NOT NULL,           -- the step after which the part was written
    state  TEXT NOT NULL
);
"""
# No secondary indexes: every reader here loads whole tables in id order (analysis.load_run,
# resume), and keeping an index on `round` current cost a quarter of a fast run's commits.
# Ad-hoc SQL over a large store can add one: CREATE INDEX decisions_round ON decisions(round).

AGENT_COLS = AgentRow._fields
DECISION_COLS = DecisionRow._fields
EVENT_COLS = EventRow._fields
LLM_CALL_COLS = CallRow._fields
ROUND_COLS = StepRow._fields


def _insert_sql(table: str, cols: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


# Built once: a step commits several statements and a fast run commits thousands of steps.
_INSERT_AGENTS = _insert_sql("agents", AGENT_COLS)
_INSERT_CALLS = _insert_sql("llm_calls", LLM_CALL_COLS)
# Call rows without `endpoint`: rows built before it existed, and stores made before it.
_INSERT_CALLS_NO_ENDPOINT = _insert_sql("llm_calls", LLM_CALL_COLS[:-1])
_INSERT_DECISIONS = _insert_sql("decisions", DECISION_COLS)
_INSERT_DECISIONS_NO_DATA = _insert_sql("decisions", DECISION_COLS[:-1])
_INSERT_EVENTS = _insert_sql("events", EVENT_COLS)
_INSERT_STEP = _insert_sql("rounds", ROUND_COLS)
_LAST, _BUT_LAST = itemgetter(-1), itemgetter(slice(None, -1))  # at C speed, per row


_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"


def _meta_rows(**items: Any) -> list[tuple[str, str]]:
    """Meta rows: values as text, non-strings as JSON."""
    return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in items.items()]


class RunStore:
    """Read/write access to one run's SQLite database.

    Rows are the named tuples of `society.records` (or plain tuples in their order).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = False,
        meta: Mapping[str, Any] | None = None,
        check: bool = False,
    ) -> None:
        """Open a store; ``create`` makes a new one (with ``meta``), atomically when the
        file does not exist yet: it appears whole, schema and metadata, or not at all, so a
        run killed while it starts never leaves a store that cannot be resumed.

        An existing store must be a readable SQLite file of :data:`FORMAT_VERSION`, else
        :class:`StoreError`; ``check`` also runs SQLite's ``quick_check`` over every page
        (before a run appends to it). A refused store is left as it was.
        """
        self.path = Path(path)
        if not create and not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no run store here")
        fresh = create and not self.path.exists()
        if fresh:
            self._create(meta or {})
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None)
            if not create:
                self._check_existing(check)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: every commit is atomic and survives a killed process (SIGKILL);
            # only an OS crash or power loss may drop the last few commits (never corrupt).
            # FULL would fsync every round and dominate the cost of fast scripted runs.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            if create and not fresh:  # a fresh store has its schema and meta already
                self.conn.executescript(SCHEMA)
                self.set_meta(format_version=FORMAT_VERSION, **(meta or {}))
        except sqlite3.Error as exc:
            if hasattr(self, "conn"):
                self.conn.close()
            raise StoreError(f"{self.path}: cannot use the run store ({_one_line(exc)})") from None

    def _create(self, meta: Mapping[str, Any]) -> None:
        """Build the store under a temporary name, then rename it into place (atomic)."""
        tmp = self.path.with_name(self.path.name + ".new")
        try:
            tmp.unlink(missing_ok=True)  # left by a process killed while it created one
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                # One transaction, no syncs: the file is not the store until it is renamed.
                conn.execute("PRAGMA synchronous=OFF")
                conn.executescript(f"BEGIN;\n{SCHEMA}\nCOMMIT;")
                with conn:
                    conn.execute("BEGIN")
                    conn.executemany(_SET_META, _meta_rows(format_version=FORMAT_VERSION, **meta))
            finally:
                conn.close()
            os.replace(tmp, self.path)
        except (OSError, sqlite3.Error) as exc:
            tmp.unlink(missing_ok=True)
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else _one_line(exc)
            raise StoreError(f"{self.path}: cannot create the run store ({why})") from None

    def _check_existing(self, full: bool) -> None:
        """Refuse (StoreError) a file that is not a whole society store of this format."""
        try:
            rows = self.conn.execute("SELECT key, value FROM meta").fetchall()
            if full:
                problems = [r[0] for r in self.conn.execute("PRAGMA quick_check").fetchall()]
                if problems != ["ok"]:
                    raise sqlite3.DatabaseError(f"damaged: {problems[0]}")
        except sqlite3.Error as exc:
            raise StoreError(
                f"{self.path}: not a readable society run store ({_one_line(exc)}); "
                "it is left untouched"
            ) from None
        version = dict(rows).get("format_version", "1")
        if version != FORMAT_VERSION:
            raise StoreError(
                f"{self.path}: run store format {version!r}; this society writes format "
                f"{FORMAT_VERSION!r} only, so it cannot continue this run (it is left untouched)"
            )

    @classmethod
    def in_dir(
        cls,
        run_dir: str | Path,
        *,
        create: bool = False,
        meta: Mapping[str, Any] | None = None,
        check: bool = False,
    ) -> RunStore:
        """Open (or create) `run_dir/run.sqlite` (see the constructor)."""
        run_dir = Path(run_dir)
        if create:
            run_dir.mkdir(parents=True, exist_ok=True)
        return cls(run_dir / DB_NAME, create=create, meta=meta, check=check)

    # -- metadata -------------------------------------------------------------
    def set_meta(self, **items: Any) -> None:
        """Set metadata keys (values stored as text; non-strings as JSON)."""
        with self.conn:
            self.conn.executemany(_SET_META, _meta_rows(**items))

    def meta(self) -> dict[str, str]:
        """All metadata as text."""
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    # -- writing ------------------------------------------------------------
    def commit_round(
        self,
        round_row: tuple,
        *,
        decisions: Iterable[tuple] = (),
        events: Iterable[tuple] = (),
        llm_calls: Iterable[tuple] = (),
        agents: Iterable[tuple] = (),
        checkpoint: Mapping[str, str] | None = None,
    ) -> None:
        """Write one round and its checkpoint atomically: all of it or none of it."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            # Plain tuples: sqlite3 binds an exact tuple faster than a named tuple.
            if agents:
                c.executemany(_INSERT_AGENTS, map(tuple, agents))
            if llm_calls:
                calls = [tuple(r) for r in llm_calls]
                if self._calls_have_endpoint() and all(len(r) == len(LLM_CALL_COLS) for r in calls):
                    c.executemany(_INSERT_CALLS, calls)
                else:
                    short = [r[: len(LLM_CALL_COLS) - 1] for r in calls]
                    c.executemany(_INSERT_CALLS_NO_ENDPOINT, short)
            rows = decisions if isinstance(decisions, list) else list(decisions)
            if list(map(_LAST, rows)).count(None) == len(rows):  # no data: one column less
                c.executemany(_INSERT_DECISIONS_NO_DATA, map(_BUT_LAST, rows))
            else:
                c.executemany(_INSERT_DECISIONS, map(tuple, rows))
            c.executemany(_INSERT_EVENTS, map(tuple, events))
            c.execute(_INSERT_STEP, tuple(round_row))
            if checkpoint:
                c.executemany(
                    "INSERT OR REPLACE INTO checkpoints (part, round, state) VALUES (?, ?, ?)",
                    [(part, round_row[0], text) for part, text in checkpoint.items()],
                )
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:  # SQLite may have rolled back already (e.g. disk full)
                c.execute("ROLLBACK")
            raise

    def _calls_have_endpoint(self) -> bool:
        """Whether `llm_calls` has the `endpoint` column (stores made before it lack it)."""
        if not hasattr(self, "_has_endpoint"):
            cols = {r[1] for r in self.conn.execute("PRAGMA table_info(llm_calls)")}
            self._has_endpoint = "endpoint" in cols
        return self._has_endpoint

    # -- reading ------------------------------------------------------------
    def last_checkpoint(self) -> tuple[int, dict[str, Any]] | None:
        """(round of part 'state', {part: raw text}) of the latest checkpoint, or None."""
        rows = self.conn.execute("SELECT part, round, state FROM checkpoints").fetchall()
        parts = {part: state for part, _, state in rows}
        rounds = {part: rnd for part, rnd, _ in rows}
        return (rounds["state"], parts) if "state" in parts else None

    def count(self, table: str) -> int:
        """Number of rows in a table."""
        return self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close.

        The file is left in rollback-journal mode, so that a closed store can be read
        where nothing can be written (a read-only directory, an archive): a WAL-mode
        file needs a writable ``-shm`` beside it even to be read. Reopening sets WAL again.
        """
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error:
            pass  # a full disk or a read-only directory: the WAL keeps every commit
        finally:
            self.conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
