"""The parts of the report and of ``society show`` that every game has.

Opening a run (with one-line errors), the run-level figures (one definition, shown by both
``show`` and the report), the overview and LLM-calls sections, and the score tables.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd

from .. import cooperation, llm
from ..run import DB_NAME, Run, load_run
from .document import Report, guarded, short

__all__ = [
    "ReportError",
    "llm_section",
    "open_run",
    "overview_section",
    "run_summary",
    "score_tables",
    "summary_text",
]


class ReportError(ValueError):
    """A run that cannot be reported: missing, not a run store, unreadable, or a report
    directory that cannot be made. The message is one line naming the path."""


def open_run(run_dir: str | Path) -> Run:
    """Load a run for a report, turning every way it can fail into :class:`ReportError`."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ReportError(f"{run_dir}: no such run directory (no run store to read)")
    db = run_dir / DB_NAME if run_dir.is_dir() else run_dir
    if not db.exists():
        raise ReportError(f"{run_dir}: no run store ({DB_NAME}) in this directory")
    try:
        run = load_run(run_dir)
    except (sqlite3.Error, FileNotFoundError, KeyError, ValueError) as exc:
        raise ReportError(f"{run_dir}: cannot read the run store ({exc})") from None
    if run.format_version not in READ_FORMATS:
        raise ReportError(
            f"{run_dir}: run store format {run.format_version!r}; this society reads "
            f"formats {', '.join(READ_FORMATS)}"
        )
    return run


READ_FORMATS = ("1", "2")  # the store formats load_run reads (society.store.FORMAT_VERSION)


# -- run-level figures --------------------------------------------------------------------


def run_summary(run: Run) -> dict[str, Any]:
    """The run-level figures, each computed once: identity, size, speed, LLM usage.

    Keys: name, game, seed, status, agents, decisions, steps, generations, wall_s,
    decisions_per_s, llm_calls, and with LLM calls prompt_tokens, completion_tokens,
    latency_mean_s, invalid_reply_rate, llm_decisions, invalid_decision_rate (see
    ``analysis.llm`` for the two invalid rates); error when the run stopped on one.
    """
    meta = run.meta
    steps = len(run.rounds)
    wall = float(run.rounds["wall_s"].sum()) if steps else 0.0
    n_dec = len(run.decisions)
    out: dict[str, Any] = {
        "name": meta.get("name") or run.label,
        "game": run.kind,
        "seed": meta.get("seed"),
        "status": meta.get("status"),
        "agents": len(run.agents),
        "decisions": n_dec,
        "steps": steps,
        "generations": int(run.rounds["generation"].nunique()) if steps else 0,
        "wall_s": wall,
        "decisions_per_s": n_dec / wall if wall else None,
        "llm_calls": len(run.llm_calls),
    }
    if len(run.llm_calls):
        calls = llm.call_stats(run, None).iloc[0]
        dec = llm.llm_decisions(run, None).iloc[0]
        out.update(
            prompt_tokens=int(calls["prompt_tokens"]),
            completion_tokens=int(calls["completion_tokens"]),
            latency_mean_s=float(calls["latency_mean_s"]),
            invalid_reply_rate=float(calls["invalid_rate"]),
            llm_decisions=int(dec["decisions"]),
            invalid_decision_rate=float(dec["invalid_rate"]),
        )
    if meta.get("error"):
        out["error"] = meta["error"]
    return out


def _pct(x: Any) -> str:
    return "-" if x is None or pd.isna(x) else f"{x:.1%}"


def summary_text(run: Run) -> list[str]:
    """The run-level lines of ``society show`` (from :func:`run_summary`)."""
    s = run_summary(run)
    rate = s["decisions_per_s"]
    info: dict[str, Any] = {
        "name": s["name"],
        "game": s["game"],
        "seed": s["seed"],
        "status": s["status"],
        "steps": s["steps"],
        "decisions": s["decisions"],
        "step time (s)": round(s["wall_s"], 3),
        "decisions/s": None if rate is None else round(rate, 1),
    }
    if s["llm_calls"]:
        info.update(
            {
                "llm calls": s["llm_calls"],
                "prompt tokens": s["prompt_tokens"],
                "completion tokens": s["completion_tokens"],
                "mean call latency (s)": round(s["latency_mean_s"], 3),
                "invalid replies": _pct(s["invalid_reply_rate"]),
                "llm decisions": s["llm_decisions"],
                "invalid decisions (fallback)": _pct(s["invalid_decision_rate"]),
            }
        )
    if "error" in s:
        info["error"] = s["error"]
    width = max(len(k) for k in info)
    return [f"  {k:<{width}}  {v}" for k, v in info.items()]


def _fmt(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 1000 else f"{x:.1f}"


def score_tables(
    run: Run,
    top: int = 20,
    per_agent: pd.DataFrame | None = None,
    per_strategy: pd.DataFrame | None = None,
) -> str:
    """``society show``'s score tables: per group/strategy, then the top agents by score.

    Scores come from ``cooperation.agent_scores`` / ``strategy_scores``; ``per_agent``
    (keyed by ``agent_id``) and ``per_strategy`` (keyed by ``grp``, ``strategy``) add a
    game's columns, e.g. the cooperation rate. Without them every agent gets its number
    of decisions and the invalid rate of its LLM decisions.
    """
    agents = cooperation.agent_scores(run)
    if per_agent is None:
        n = run.decisions.groupby("agent_id", observed=True).size().rename("decisions")
        inv = llm.llm_decisions(run, "agent_id").set_index("agent_id")["invalid_rate"]
        per_agent = pd.concat([n, inv.rename("invalid")], axis=1).reset_index()
    agents = agents.merge(per_agent, on="agent_id", how="left")
    strat = cooperation.strategy_scores(run)
    if per_strategy is not None:
        strat = strat.merge(per_strategy, on=["grp", "strategy"], how="left")
    strat = strat.rename(columns={"grp": "group"})
    agents = agents.rename(columns={"grp": "group"})
    if "model" in agents.columns and agents["model"].isna().all():
        agents = agents.drop(columns=["model"])
    shown = agents.head(top)
    kw: dict[str, Any] = {"index": False, "float_format": _fmt, "na_rep": "-"}
    return "\n".join(
        [
            "per strategy:",
            strat.to_string(**kw),
            "",
            f"per agent (top {min(top, len(agents))} of {len(agents)} by score):",
            shown.to_string(**kw),
        ]
    )


# -- report sections ----------------------------------------------------------------------


def overview_section(rep: Report, run: Run) -> None:
    """The "Run" section and the run-level key figures."""
    sec = rep.section("Run")
    s = run_summary(run)
    d = run.decisions
    rep.figure("run", run.label)
    rep.figure("game", s["game"] or "?")
    rep.figure("seed", s["seed"] or "")
    rep.figure("status", s["status"] or "")
    rep.figure("agents", s["agents"])
    rep.figure("decisions", s["decisions"])
    rep.figure("rounds (steps)", s["steps"])
    if s["steps"]:
        rep.figure("generations", s["generations"])
        rep.figure("simulation wall time (s)", s["wall_s"])
    rep.figure("LLM calls", s["llm_calls"])
    sec.notes.append(f"run directory: {run.path}")
    if run.scenario.get("description"):
        sec.notes.append(f"scenario: {run.scenario['description']}")
    if s.get("error"):
        sec.notes.append(f"the run stopped on an error: {s['error']}")
    if len(d):
        t = d.groupby(["kind", "source"], observed=True).agg(
            decisions=("round", "size"), valid=("valid", "mean")
        )
        rep.table(sec, "decisions_by_kind", "Decisions by kind and source", t.reset_index())
    if len(run.agents):
        a = run.agents.groupby(["grp", "kind"], observed=True).agg(
            agents=("agent_id", "size"),
            strategy=("strategy", lambda v: short(v.iloc[0], 40)),
            generations=("generation", "nunique"),
        )
        rep.table(sec, "agents_by_group", "Agents by group", a.reset_index())


def llm_section(rep: Report, run: Run) -> None:
    """The "LLM calls" section: calls, invalid replies, tokens, latency, fallbacks."""
    sec = rep.section("LLM calls")
    c = run.llm_calls
    if c.empty:
        sec.notes.append("no LLM calls: every agent in this run is scripted")
        return
    s = run_summary(run)
    sec.notes.append(
        "invalid reply rate: share of LLM calls (repairs included) whose reply was not a "
        "legal action; invalid decision rate: share of LLM decisions answered by the "
        "game's fallback after one repair"
    )
    t = guarded(rep, sec, "LLM calls per model", lambda: llm.call_stats(run))
    if t is not None:
        rep.table(sec, "llm_by_model", "LLM calls per model: invalid rate, tokens, latency", t)
    rep.figure("LLM invalid reply rate", s["invalid_reply_rate"])
    rep.figure("LLM invalid decision rate", s["invalid_decision_rate"])
    rep.figure("LLM mean latency (s)", s["latency_mean_s"])
    rep.figure("tokens (prompt + completion)", s["prompt_tokens"] + s["completion_tokens"])
    if "purpose" in c.columns:
        p = llm.call_stats(run, ["model", "purpose"])[["model", "purpose", "calls", "invalid_rate"]]
        rep.table(sec, "llm_by_purpose", "LLM calls per model and purpose", p)
    f = llm.llm_decisions(run, ["model", "kind"])
    if len(f) and f["decisions"].sum():
        rep.table(sec, "llm_decisions", "LLM decisions: fallbacks and invalid actions", f)


def about_section(rep: Report, run_dir: Path, total_s: float, load_s: float) -> None:
    """The closing section: how long the report took and its slowest parts."""
    sec = rep.section("About this report")
    sec.notes.append(
        f"computed in {total_s:.2f} s (loading the run store: {load_s:.2f} s) from {run_dir}"
    )
    slow = sorted(rep.timings.items(), key=lambda kv: -kv[1])[:5]
    sec.notes.append("slowest parts: " + ", ".join(f"{k} {v:.2f} s" for k, v in slow))
