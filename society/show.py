"""`society show`: the tables a researcher looks at first, straight from the run store.

Aggregates run in SQL so that a run of millions of decisions shows in seconds.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd

from society.errors import UserError
from society.store import DB_NAME


def _open(run_dir: Path) -> sqlite3.Connection:
    path = run_dir / DB_NAME if run_dir.is_dir() else run_dir
    if not path.exists():
        raise UserError(f"{run_dir}: no run store ({DB_NAME}) here")
    # as_uri() quotes '?', '#' and '%' in the path, which a bare "file:" URI would misread.
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _q(conn: sqlite3.Connection, sql: str) -> pd.DataFrame:
    return pd.read_sql_query(sql, conn)


def agent_table(conn: sqlite3.Connection) -> pd.DataFrame:
    """Per agent: total score (payoffs) and cooperation rate of its moves."""
    return _q(
        conn,
        """
        WITH pay AS (SELECT agent_id, SUM(value) AS score FROM events
                     WHERE kind = 'payoff' GROUP BY agent_id),
             mv AS (SELECT agent_id, AVG(value = 0) AS cooperation, COUNT(*) AS decisions,
                           AVG(valid = 0) AS invalid
                    FROM decisions WHERE kind = 'move' GROUP BY agent_id)
        SELECT a.agent_id, a.name, a.grp AS "group", a.strategy, a.model,
               COALESCE(pay.score, 0) AS score, mv.cooperation, mv.decisions, mv.invalid
        FROM agents a LEFT JOIN pay USING (agent_id) LEFT JOIN mv USING (agent_id)
        ORDER BY score DESC, a.agent_id
        """,
    )


def strategy_table(agents: pd.DataFrame) -> pd.DataFrame:
    """Per group/strategy: agents, mean and total score, cooperation rate."""
    g = agents.groupby(["group", "strategy"], dropna=False, sort=False)
    out = g.agg(
        agents=("agent_id", "count"),
        mean_score=("score", "mean"),
        total_score=("score", "sum"),
        cooperation=("cooperation", "mean"),
    )
    return out.sort_values("mean_score", ascending=False).reset_index()


def summary(conn: sqlite3.Connection) -> dict[str, object]:
    """Run-level figures: status, steps, decisions, decisions/s, LLM usage."""
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    steps, n_dec, wall = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(n_decisions), 0), COALESCE(SUM(wall_s), 0) FROM rounds"
    ).fetchone()
    out: dict[str, object] = {
        "name": meta.get("name"),
        "game": meta.get("game"),
        "seed": meta.get("seed"),
        "status": meta.get("status"),
        "steps": steps,
        "decisions": n_dec,
        "step time (s)": round(wall, 3),
        "decisions/s": round(n_dec / wall, 1) if wall else None,
    }
    calls, p_tok, c_tok, lat, invalid = conn.execute(
        "SELECT COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), AVG(latency_s), "
        "AVG(valid = 0) FROM llm_calls"
    ).fetchone()
    if calls:
        llm_dec, llm_invalid = conn.execute(
            "SELECT COUNT(*), AVG(valid = 0) FROM decisions WHERE source IN ('llm', 'fallback')"
        ).fetchone()
        out.update(
            {
                "llm calls": calls,
                "prompt tokens": p_tok,
                "completion tokens": c_tok,
                "mean call latency (s)": round(lat or 0, 3),
                "invalid replies": f"{(invalid or 0):.1%}",
                "llm decisions": llm_dec,
                "invalid decisions (fallback)": f"{(llm_invalid or 0):.1%}",
            }
        )
    if meta.get("error"):
        out["error"] = meta["error"]
    return out


def render(run_dir: str | Path, top: int = 20) -> str:
    """The text `society show` prints."""
    run_dir = Path(run_dir)
    conn = _open(run_dir)
    try:
        info = summary(conn)
        agents = agent_table(conn)
        parts = [f"run {run_dir}"]
        width = max(len(k) for k in info)
        parts += [f"  {k:<{width}}  {v}" for k, v in info.items()]
        if agents["decisions"].notna().any():
            strat = strategy_table(agents)
            parts += ["", "per strategy:", strat.to_string(index=False, float_format=_fmt)]
            shown = agents.head(top).drop(columns=["model"] if agents["model"].isna().all() else [])
            parts += [
                "",
                f"per agent (top {min(top, len(agents))} of {len(agents)} by score):",
                shown.to_string(index=False, float_format=_fmt),
            ]
        extra = _extra_sections(conn)
        if extra:
            parts += ["", extra]
        return "\n".join(parts)
    finally:
        conn.close()


def _extra_sections(conn: sqlite3.Connection) -> str:
    """Game-specific tables (the donor game adds its own through `society.show_donor`)."""
    kinds = {k for (k,) in conn.execute("SELECT DISTINCT kind FROM events")}
    if "donation" in kinds:
        from society.show_donor import donor_section

        return donor_section(conn)
    return ""


def _fmt(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 1000 else f"{x:.1f}"
