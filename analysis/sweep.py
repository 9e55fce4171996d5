"""Reading a sweep (``society sweep``): one frame, one row per point, and summaries.

``load_sweep(DIR)`` reads the sweep's index and each point's run store: the point's
parameters become columns (named by their field path, e.g. ``seed``, ``game.noise``),
then its status and run directory, then the run's headline metrics, computed by the same
``analysis`` functions the report and ``society show`` use (:func:`headline`).

``summarize_across(frame, by=..., metrics=...)`` averages metrics across the points of
each parameter setting (the seeds, by default): mean, std, n and a Student-t confidence
interval (``analysis.run.summarize_across`` per metric).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import cooperation
from . import run as run_mod
from .run import DB_NAME, Run, load_run

__all__ = ["INDEX_JSON", "headline", "load_sweep", "summarize_across"]

INDEX_JSON = "index.json"


def headline(run: Run) -> dict[str, float]:
    """A run's headline metrics, each from the function the report uses for it.

    Every run: ``steps``, ``decisions``, ``agents``, ``llm_calls`` and, with payoff
    events, ``mean_score`` (per agent, ``cooperation.agent_scores``). With LLM calls:
    ``invalid_decision_rate``. With 2x2 moves: ``cooperation_rate`` and
    ``mutual_cooperation_rate``. With donations: ``donation_fraction``. Commons:
    ``efficiency``, ``equality``, ``survival_time`` (means over generations). Marketplace:
    ``welfare_ratio``, ``needs_met`` (means over markets).
    """
    from .report.generic import run_summary

    s = run_summary(run)
    out: dict[str, float] = {
        "steps": float(s["steps"]),
        "decisions": float(s["decisions"]),
        "agents": float(s["agents"]),
        "llm_calls": float(s["llm_calls"]),
    }
    if s["llm_calls"]:
        out["invalid_decision_rate"] = float(s["invalid_decision_rate"])
    ev = run.events
    if len(ev) and (ev["kind"] == "payoff").any():
        out["mean_score"] = float(cooperation.agent_scores(run)["score"].mean())
    kinds = set(run.decisions["kind"].astype(str).unique()) if len(run.decisions) else set()
    if "move" in kinds:
        out["cooperation_rate"] = float(cooperation.cooperation_rate(run, by=None)["rate"].iloc[0])
        mutual = cooperation.mutual_cooperation_rate(run, by=None)
        if len(mutual):
            out["mutual_cooperation_rate"] = float(mutual["rate"].iloc[0])
    if "donate" in kinds:
        frac = cooperation.donation_fraction(run, by=None)["mean_fraction"].iloc[0]
        out["donation_fraction"] = float(frac)
    if run.kind == "commons":
        from . import commons

        m = commons.metrics(run)
        for col in ("efficiency", "equality", "survival_time"):
            out[col] = float(m[col].mean()) if len(m) else float("nan")
    if run.kind == "marketplace":
        from . import marketplace

        m = marketplace.market_summary(run)
        for col in ("welfare_ratio", "needs_met"):
            out[col] = float(m[col].mean()) if len(m) else float("nan")
    return out


def _cell(v: Any) -> Any:
    # A list or mapping value (a payoff table, a strategy spec) as its JSON text.
    return json.dumps(v, sort_keys=True) if isinstance(v, list | dict) else v


def load_sweep(path: str | Path) -> pd.DataFrame:
    """One row per point: ``id``, the parameters, ``status``, ``run_dir``, the metrics.

    Points without a run store yet (a sweep still running, or killed) have missing
    metrics. ``frame.attrs["params"]`` and ``frame.attrs["metrics"]`` name the columns.
    """
    root = Path(path)
    index = root / INDEX_JSON
    try:
        doc = json.loads(index.read_text())
        points = doc["points"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FileNotFoundError(f"{root}: not a sweep directory ({index}: {exc})") from None
    params = list(dict.fromkeys(k for p in points for k in p["params"]))
    rows: list[dict[str, Any]] = []
    metrics: dict[str, None] = {}
    for p in points:
        row: dict[str, Any] = {"id": p["id"]}
        row.update({k: _cell(p["params"].get(k)) for k in params})
        run_dir = root / p["run_dir"]
        row["run_dir"] = str(run_dir)
        row["status"] = "pending"
        if (run_dir / DB_NAME).exists():
            run = load_run(run_dir)
            row["status"] = run.meta.get("status", "?")
            values = headline(run)
            metrics.update(dict.fromkeys(values))
            row.update(values)
        rows.append(row)
    cols = ["id", *params, "status", "run_dir", *metrics]
    frame = pd.DataFrame(rows, columns=cols)
    frame.attrs["params"] = params
    frame.attrs["metrics"] = list(metrics)
    return frame


def summarize_across(
    df: pd.DataFrame,
    value: str | None = None,
    by: str | Sequence[str] | None = None,
    *,
    metrics: str | Sequence[str] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Mean, std, n, sem and a t confidence interval per ``by`` group.

    With ``value`` (a column): the summary of that column, as ``analysis.run``'s
    ``summarize_across`` (rows averaged within each run when a ``run`` column exists).
    With ``metrics`` (or neither, on a :func:`load_sweep` frame: all its metrics): one row
    per group and metric (a ``metric`` column). ``by`` defaults, on a sweep frame, to
    every parameter but ``seed``: the seeds are the replicates.
    """
    if value is not None and metrics is None:
        return run_mod.summarize_across(df, value, by, level=level)
    if metrics is None:
        metrics = list(df.attrs.get("metrics", []))
        if not metrics:
            raise ValueError("summarize_across: give metrics= (the frame names none)")
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [m for m in names if m not in df.columns]
    if missing:
        raise KeyError(f"summarize_across: no column {missing[0]!r}")
    if by is None:
        by = [p for p in df.attrs.get("params", []) if p != "seed"]
    keys = [by] if isinstance(by, str) else list(by)
    parts = []
    for m in names:
        part = run_mod.summarize_across(df[[*keys, m]], m, keys, level=level)
        part.insert(len(keys), "metric", m)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["n"] = out["n"].astype(np.int64)
    return out
