"""Reading run stores into pandas.

The run store (one SQLite file per run, see ``society/store.py`` for the schema) is the
only thing this package reads: it never imports the runtime. ``load_run`` turns one store
into a :class:`Run` of DataFrames; ``load_runs`` stacks several runs (seeds, models) with a
``run`` column so every metric can group by run.

Two store formats are read into one shape. Format "2" has ``decisions.data`` (JSON of a
structured action) and the resolved game in meta ``resolved_game``; format "1" (no
``data`` column) kept a donation's JSON in ``action``: ``load_run`` moves it into
``data`` and sets ``action`` to 'give' / 'punish', as format 2 records it.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

__all__ = [
    "Run",
    "RunSet",
    "frame",
    "group_keys",
    "load_run",
    "load_runs",
    "summarize_across",
    "upgrade_decisions",
]

DB_NAME = "run.sqlite"

# Columns copied from `agents` onto decisions/events: the usual grouping keys.
AGENT_KEYS = ("grp", "strategy", "model")

_AGENT_DTYPES = {
    "agent_id": "int64",
    "generation": "int64",
    "born_round": "int64",
    "parent_id": "Int64",
    "grp": "category",
    "kind": "category",
    "backend": "category",
    "model": "category",
    "strategy": "category",
}
_DECISION_DTYPES = {
    "round": "int64",
    "generation": "int64",
    "agent_id": "int64",
    "partner_id": "Int64",
    "kind": "category",
    # 'C'/'D' (or repeated JSON / strategy texts): a categorical keeps 1M rows small.
    "action": "category",
    "value": "float64",
    "valid": "bool",
    "source": "category",
    "llm_call_id": "Int64",
    # JSON text of a structured action (donor game: amount, percent, punish) or missing.
    "data": "category",
}
_EVENT_DTYPES = {
    "round": "int64",
    "generation": "int64",
    "kind": "category",
    "agent_id": "Int64",
    "partner_id": "Int64",
    "action": "category",
    "value": "float64",
}
_LLM_DTYPES = {
    "id": "int64",
    "round": "int64",
    "agent_id": "Int64",
    "purpose": "category",
    "backend": "category",
    "model": "category",
    "valid": "bool",
    "seed": "Int64",
    "prompt_tokens": "Int64",
    "completion_tokens": "Int64",
    "latency_s": "float64",
}
_ROUND_DTYPES = {
    "round": "int64",
    "generation": "int64",
    "game": "int64",
    "round_in_game": "int64",
    "n_decisions": "int64",
    "wall_s": "float64",
}


@dataclass
class Run:
    """One run store as DataFrames.

    ``decisions`` and ``events`` carry the acting agent's ``grp``, ``strategy`` and
    ``model`` (categoricals) so cooperation by group or model needs no join.
    ``decisions.data`` is the JSON text of a structured action (a categorical; missing
    for plain actions such as 2x2 moves); ``cooperation.donations`` parses it.

    ``game`` is the resolved game (meta ``resolved_game``: kind, rules, payoffs, ...);
    for a store written before it was recorded (format "1"), the scenario's ``game``
    section as written. ``kind`` is the game kind (meta ``game``).
    """

    path: Path
    meta: dict[str, str]
    scenario: dict[str, Any]
    agents: pd.DataFrame
    decisions: pd.DataFrame
    events: pd.DataFrame
    llm_calls: pd.DataFrame
    rounds: pd.DataFrame
    label: str = ""
    game: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str | None:
        """The game kind: meta ``game``, else the resolved game's or the scenario's kind."""
        kind = self.meta.get("game") or self.game.get("kind")
        if not kind and isinstance(self.scenario.get("game"), dict):
            kind = self.scenario["game"].get("kind")
        return str(kind) if kind else None

    @property
    def format_version(self) -> str:
        """The store format (meta ``format_version``; "1" when the store predates it)."""
        return self.meta.get("format_version", "1")

    def __repr__(self) -> str:
        return (
            f"Run({self.label or self.path!s}: {len(self.agents)} agents, "
            f"{len(self.decisions)} decisions, {len(self.events)} events, "
            f"{len(self.llm_calls)} llm calls, {len(self.rounds)} rounds)"
        )


@dataclass
class RunSet:
    """Several runs stacked: the same frames as :class:`Run`, each with a ``run`` column.

    ``meta``, ``scenario`` and ``game`` are keyed by run label; ``runs`` keeps the single
    runs.
    """

    runs: list[Run]
    meta: dict[str, dict[str, str]]
    scenario: dict[str, dict[str, Any]]
    agents: pd.DataFrame
    decisions: pd.DataFrame
    events: pd.DataFrame
    llm_calls: pd.DataFrame
    rounds: pd.DataFrame
    labels: list[str] = field(default_factory=list)
    game: dict[str, dict[str, Any]] = field(default_factory=dict)


def _db_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / DB_NAME
    if not p.exists():
        raise FileNotFoundError(f"{path}: no run store (expected a run dir or a .sqlite file)")
    return p


def _read(conn: sqlite3.Connection, sql: str, dtypes: dict[str, str]) -> pd.DataFrame:
    return _fix_dtypes(pd.read_sql_query(sql, conn), dtypes)


def _fix_dtypes(df: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    for col, dt in dtypes.items():
        if col not in df.columns:
            continue
        if dt == "bool":
            df[col] = df[col].fillna(0).astype("int8").astype(bool)
        elif dt == "int64" and df[col].isna().any():
            df[col] = df[col].astype("Int64")
        else:
            df[col] = df[col].astype(dt)
    return df


_MAX_CASE = 64  # categoricals with more distinct values are fetched as text


def _parse_column(text: str | None, n: int) -> np.ndarray:
    """Parse one newline-joined column (empty lines = NULL) into float64."""
    if not text or not text.strip():
        return np.full(n, np.nan)
    col = pd.read_csv(
        io.StringIO(text),
        header=None,
        names=[0],  # with names, leading blank lines (NULLs) are rows, not a missing header
        skip_blank_lines=False,
        dtype="float64",
        engine="c",
    )
    out = col.iloc[:, 0].to_numpy(dtype="float64")
    if out.size < n:  # trailing NULLs end the text with blank lines read_csv may drop
        out = np.concatenate([out, np.full(n - out.size, np.nan)])
    return out


def _read_fast(
    conn: sqlite3.Connection,
    table: str,
    ints: Sequence[str] = (),
    floats: Sequence[str] = (),
    cats: Sequence[str] = (),
    texts: Sequence[str] = (),
) -> pd.DataFrame:
    """Read a large table column-wise, in id order, without a Python object per cell.

    SQLite joins each numeric column into one text (``group_concat``) that pandas' C
    parser reads; repeated strings come back as integer codes (a CASE over their
    distinct values). Fetching rows as tuples costs ~10x more for a million rows.
    All aggregates of one query see the rows in the same order; the ``id`` column is
    read too and the result sorted by it, so no ordering guarantee is relied upon.
    """
    # One cheap pass first: constant or all-NULL columns (generation in a 2x2 run,
    # llm_call_id of scripted agents) are filled in without being transferred.
    stats_sql = ", ".join(f"min({c}), max({c}), count({c})" for c in [*ints, *floats, *cats])
    stats = conn.execute(f"SELECT count(*), {stats_sql} FROM {table}").fetchone()
    n = int(stats[0])
    const: dict[str, Any] = {}
    for j, c in enumerate([*ints, *floats, *cats]):
        lo, hi, cnt = stats[1 + 3 * j : 4 + 3 * j]
        if cnt == 0:
            const[c] = None
        elif cnt == n and lo == hi:
            const[c] = lo
    exprs = ["group_concat(id, char(10))"]
    params: list[Any] = []
    ints_q = [c for c in ints if c not in const]
    floats_q = [c for c in floats if c not in const]
    for c in ints_q:
        exprs.append(f"group_concat(ifnull({c}, ''), char(10))")
    for c in floats_q:
        exprs.append(f"group_concat(ifnull(printf('%.17g', {c}), ''), char(10))")
    cat_values: dict[str, list[Any]] = {}
    as_text = list(texts)
    for c in cats:
        if c in const:
            continue
        vals = [
            r[0] for r in conn.execute(f"SELECT DISTINCT {c} FROM {table} WHERE {c} IS NOT NULL")
        ]
        if len(vals) > _MAX_CASE:
            as_text.append(c)
            continue
        cat_values[c] = vals
        when = " ".join(f"WHEN ? THEN {i}" for i in range(len(vals)))
        exprs.append(f"group_concat(CASE {c} {when} ELSE -1 END, char(10))")
        params += vals
    row = conn.execute(f"SELECT {', '.join(exprs)} FROM {table}", params).fetchone()
    cols = iter(row)
    ids = _parse_column(next(cols), n)
    data: dict[str, Any] = {}
    for c in ints_q:
        data[c] = _parse_column(next(cols), n)
    for c in floats_q:
        data[c] = _parse_column(next(cols), n)
    for c, vals in cat_values.items():
        codes = _parse_column(next(cols), n)
        codes = np.nan_to_num(codes, nan=-1).astype("int64")
        data[c] = pd.Categorical.from_codes(codes, categories=pd.Index(vals, dtype=object))
    for c, v in const.items():
        if c in cats:
            cat = pd.Index([] if v is None else [v], dtype=object)
            data[c] = pd.Categorical.from_codes(np.full(n, -1 if v is None else 0), categories=cat)
        else:
            data[c] = np.full(n, np.nan if v is None else float(v))
    data = {c: data[c] for c in [*ints, *floats, *cats] if c in data}
    order = np.argsort(ids, kind="stable") if n and np.any(np.diff(ids) < 0) else None
    df = pd.DataFrame(data)
    if order is not None:
        df = df.iloc[order].reset_index(drop=True)
    if as_text:
        sel = ", ".join(as_text)
        rows = conn.execute(f"SELECT {sel} FROM {table} ORDER BY id").fetchall()
        for j, c in enumerate(as_text):
            vals = [r[j] for r in rows]
            df[c] = pd.Categorical(vals) if c in cats else pd.Series(vals, dtype=object)
    for c in ints:
        v = df[c]
        df[c] = v.astype("Int64") if v.isna().any() else v.astype("int64")
    return df


def _parse_scenario(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _parse_game(meta: dict[str, str], scenario: dict[str, Any]) -> dict[str, Any]:
    """The resolved game of meta ``resolved_game``, else the scenario's game section."""
    text = meta.get("resolved_game")
    if text:
        try:
            game = json.loads(text)
        except ValueError:
            game = None
        if isinstance(game, dict):
            return game
    game = scenario.get("game")
    return dict(game) if isinstance(game, dict) else {}


def _json_object(text: Any) -> dict[str, Any] | None:
    """``text`` parsed as a JSON object, or None (not text, not JSON, not an object)."""
    if not isinstance(text, str):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def upgrade_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """Format-1 decisions (no ``data`` column) in the format-2 shape, in place.

    A format-1 'donate' decision held ``{"amount", "percent"[, "punish"]}`` as JSON in
    ``action``; format 2 records ``action`` 'give' or 'punish' and that JSON in ``data``.
    Other decisions get a missing ``data``. Work is per distinct action text, not per row.
    """
    n = len(decisions)
    if "data" in decisions.columns:
        return decisions
    empty = pd.Categorical.from_codes(np.full(n, -1), categories=pd.Index([], dtype=object))
    if n == 0 or "kind" not in decisions.columns or "action" not in decisions.columns:
        decisions["data"] = empty
        return decisions
    donate = (decisions["kind"] == "donate").to_numpy(dtype=bool)
    if not donate.any():
        decisions["data"] = empty
        return decisions
    act = decisions["action"]
    if not isinstance(act.dtype, pd.CategoricalDtype):
        act = act.astype("category")
    texts = list(act.cat.categories)
    codes = act.cat.codes.to_numpy()
    new_action: list[Any] = []
    new_data: list[str | None] = []
    for t in texts:
        obj = _json_object(t)
        if obj is None:
            new_action.append(t)
            new_data.append(None)
            continue
        data = {"amount": obj.get("amount"), "percent": obj.get("percent")}
        if "punish" in obj:
            data["punish"] = bool(obj["punish"])
        new_action.append("punish" if obj.get("punish") else "give")
        new_data.append(_dumps(data))
    # Only donate rows change; the same text elsewhere (a strategy text) is left alone.
    old = np.asarray(act.astype(object), dtype=object)
    fixed_action = np.array(new_action, dtype=object)
    fixed_data = np.array(new_data, dtype=object)
    valid = codes >= 0
    take = donate & valid
    action_out = old.copy()
    action_out[take] = fixed_action[codes[take]]
    data_out = np.full(n, None, dtype=object)
    data_out[take] = fixed_data[codes[take]]
    decisions["action"] = pd.Categorical(action_out)
    decisions["data"] = pd.Categorical(data_out)
    return decisions


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def _join_agent_keys(df: pd.DataFrame, agents: pd.DataFrame) -> pd.DataFrame:
    """Add the acting agent's grp/strategy/model by a vectorised lookup (no merge copy)."""
    if df.empty or agents.empty or "agent_id" not in df.columns:
        for k in AGENT_KEYS:
            df[k] = pd.Series(pd.Categorical([None] * len(df)), index=df.index)
        return df
    idx = pd.Index(agents["agent_id"].to_numpy())
    ids = df["agent_id"]
    codes = idx.get_indexer(ids.astype("float64").fillna(-1).to_numpy())
    for k in AGENT_KEYS:
        col = agents[k]
        if not isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype("category")
        src = col.cat.codes.to_numpy()
        new = np.where(codes >= 0, src[np.clip(codes, 0, None)], -1)
        df[k] = pd.Categorical.from_codes(new, dtype=col.dtype)
    return df


def load_run(path: str | Path) -> Run:
    """Load one run store (a run directory or its ``.sqlite`` file), read-only.

    Strings that repeat (kinds, actions, groups, models) become categoricals, so a run of
    a million decisions loads in seconds and stays small in memory. Stores of format "1"
    and "2" load to the same shape (see the module docstring).
    """
    db = _db_path(path)
    # mode=ro: analysis must never write to (or create) a run store, even while it runs.
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        agents = _read(conn, "SELECT * FROM agents ORDER BY agent_id", _AGENT_DTYPES)
        has_data = "data" in _columns(conn, "decisions")
        decisions = _read_fast(
            conn,
            "decisions",
            ints=("round", "generation", "agent_id", "partner_id", "valid", "llm_call_id"),
            floats=("value",),
            cats=("kind", "action", "source", *(("data",) if has_data else ())),
        )
        if not has_data:
            decisions = upgrade_decisions(decisions)
        decisions = _fix_dtypes(decisions, _DECISION_DTYPES)
        events = _read_fast(
            conn,
            "events",
            ints=("round", "generation", "agent_id", "partner_id"),
            floats=("value",),
            cats=("kind", "action"),
            texts=("data",),
        )
        events = _fix_dtypes(events, _EVENT_DTYPES)
        llm_calls = _read(conn, "SELECT * FROM llm_calls ORDER BY id", _LLM_DTYPES)
        rounds = _read(conn, "SELECT * FROM rounds ORDER BY round", _ROUND_DTYPES)
    finally:
        conn.close()
    decisions = _join_agent_keys(decisions, agents)
    events = _join_agent_keys(events, agents)
    run_dir = db.parent
    scenario = _parse_scenario(meta.get("scenario"))
    return Run(
        path=run_dir,
        meta=meta,
        scenario=scenario,
        agents=agents,
        decisions=decisions,
        events=events,
        llm_calls=llm_calls,
        rounds=rounds,
        label=meta.get("name") or run_dir.name,
        game=_parse_game(meta, scenario),
    )


def _labels(runs: Sequence[Run]) -> list[str]:
    """Unique labels: the run directory name, disambiguated by seed then by index."""
    base = [r.path.name if r.path.name else str(r.path) for r in runs]
    if len(set(base)) == len(base):
        return base
    out: list[str] = []
    seen: dict[str, int] = {}
    for b, r in zip(base, runs, strict=True):
        lab = f"{b}-seed{r.meta['seed']}" if "seed" in r.meta else b
        k = seen.get(lab, 0)
        seen[lab] = k + 1
        out.append(lab if k == 0 else f"{lab}-{k}")
    return out


def _stack(frames: list[pd.DataFrame], labels: list[str]) -> pd.DataFrame:
    parts = []
    for df, lab in zip(frames, labels, strict=True):
        df = df.copy()
        df.insert(0, "run", lab)
        parts.append(df)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    # Categoricals with different categories fall back to object on concat: re-encode.
    cats = {c for df in frames for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)}
    for c in cats | {"run"}:
        if c in out.columns:
            out[c] = out[c].astype("category")
    return out


def load_runs(paths: Iterable[str | Path | Run]) -> RunSet:
    """Load several runs and stack their frames with a ``run`` column (the run's label)."""
    runs = [p if isinstance(p, Run) else load_run(p) for p in paths]
    if not runs:
        raise ValueError("load_runs needs at least one run")
    labels = _labels(runs)
    for r, lab in zip(runs, labels, strict=True):
        r.label = lab
    return RunSet(
        runs=runs,
        meta={lab: r.meta for r, lab in zip(runs, labels, strict=True)},
        scenario={lab: r.scenario for r, lab in zip(runs, labels, strict=True)},
        agents=_stack([r.agents for r in runs], labels),
        decisions=_stack([r.decisions for r in runs], labels),
        events=_stack([r.events for r in runs], labels),
        llm_calls=_stack([r.llm_calls for r in runs], labels),
        rounds=_stack([r.rounds for r in runs], labels),
        labels=labels,
        game={lab: r.game for r, lab in zip(runs, labels, strict=True)},
    )


def frame(obj: Any, name: str) -> pd.DataFrame:
    """The frame ``name`` of a Run/RunSet, or ``obj`` itself when it is a DataFrame."""
    if isinstance(obj, pd.DataFrame):
        return obj
    df = getattr(obj, name, None)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a Run, RunSet or DataFrame, got {type(obj).__name__}")
    return df


def summarize_across(
    df: pd.DataFrame, value: str, by: str | Sequence[str] | None = None, *, level: float = 0.95
) -> pd.DataFrame:
    """Mean, std, n and a t confidence interval of ``value`` across runs, per ``by``.

    Rows are first averaged within each run (when a ``run`` column exists), so ``n``
    counts runs, not rows: seeds are the independent replicates.
    """
    from scipy import stats

    keys = [by] if isinstance(by, str) else list(by or [])
    if "run" in df.columns:
        df = df.groupby(["run", *keys], observed=True, dropna=False)[value].mean().reset_index()
    if keys:
        g = df.groupby(keys, observed=True, dropna=False)[value]
        out = g.agg(mean="mean", std="std", n="count").reset_index()
    else:
        v = df[value].dropna()
        out = pd.DataFrame({"mean": [v.mean()], "std": [v.std()], "n": [int(v.count())]})
    n = out["n"].to_numpy(dtype=float)
    sem = out["std"].to_numpy(dtype=float) / np.sqrt(np.where(n > 0, n, np.nan))
    with np.errstate(invalid="ignore"):
        tcrit = stats.t.ppf(0.5 + level / 2, np.where(n > 1, n - 1, np.nan))
    out["sem"] = sem
    out["ci_low"] = out["mean"] - tcrit * sem
    out["ci_high"] = out["mean"] + tcrit * sem
    return out


def iter_groups(
    df: pd.DataFrame, keys: Sequence[str]
) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """Each group of ``keys`` (sorted) as ({key: value}, rows); no keys: the whole frame."""
    if not keys:
        yield {}, df
        return
    for key, g in df.groupby(list(keys), observed=True, sort=True):
        yield dict(zip(keys, key, strict=True)), g


def group_keys(df: pd.DataFrame, by: str | Sequence[str] | None) -> list[str]:
    """``by`` as a list, with ``run`` in front when the frame stacks several runs.

    Agent ids repeat across runs, so every per-agent metric must group by run as well.
    """
    keys = [by] if isinstance(by, str) else list(by or [])
    if "run" in df.columns and "run" not in keys:
        keys = ["run", *keys]
    return keys
