"""The donor-game section of `society show`: one line per generation, then the best strategy.

Columns: mean final resources per game (mean over agents and games of the resources an
agent holds at the end of a game, i.e. the mean fitness; 30,720 when everyone gives
everything under the defaults), mean donation % (over every 'donate' decision, fallbacks
included; a punishment counts as 0% given), invalid rate (LLM donation decisions recorded
as invalid / fallback), punishments, and the survivors of the generation by group (LLM
agents) or by the policy they play (scripted agents, whose newcomers imitate survivors).
Generations are shown 1-based, as agents see them.
"""

from __future__ import annotations

import json
import sqlite3

import pandas as pd


def _per_generation(conn: sqlite3.Connection) -> pd.DataFrame:
    fit = pd.read_sql_query(
        "SELECT generation, AVG(value) AS mean_final, COUNT(*) AS agents "
        "FROM events WHERE kind = 'fitness' GROUP BY generation",
        conn,
    )
    dec = pd.read_sql_query(
        """
        SELECT generation, action, value, valid, source FROM decisions WHERE kind = 'donate'
        """,
        conn,
    )
    rows = []
    for gen, d in dec.groupby("generation", sort=True):
        acts = [json.loads(a) for a in d["action"]]
        pct = [0.0 if a.get("punish") else float(a.get("percent", 0.0)) for a in acts]
        llm = d[d["source"].isin(["llm", "fallback"])]
        rows.append(
            {
                "generation": int(gen),
                "donation %": sum(pct) / len(pct) if pct else float("nan"),
                "invalid": float((llm["valid"] == 0).mean()) if len(llm) else float("nan"),
                "punishments": sum(1 for a in acts if a.get("punish")),
            }
        )
    out = pd.DataFrame(rows, columns=["generation", "donation %", "invalid", "punishments"])
    out = fit.merge(out, on="generation", how="outer") if len(fit) else out.assign(mean_final=None)
    surv = conn.execute(
        "SELECT e.generation, CASE WHEN a.kind = 'scripted' THEN a.strategy ELSE a.grp END AS g, "
        "COUNT(*) FROM events e JOIN agents a USING (agent_id) "
        "WHERE e.kind = 'survivor' GROUP BY e.generation, g ORDER BY e.generation, g"
    ).fetchall()
    by_gen: dict[int, list[str]] = {}
    for gen, grp, count in surv:
        by_gen.setdefault(int(gen), []).append(f"{grp}:{count}")
    out["survivors"] = [", ".join(by_gen.get(int(g), [])) for g in out["generation"]]
    out["generation"] = out["generation"].astype(int) + 1
    out["invalid"] = ["-" if pd.isna(x) else f"{x:.1%}" for x in out["invalid"]]
    cols = ["generation", "mean_final", "donation %", "invalid", "punishments", "survivors"]
    out = out.rename(columns={"mean_final": "mean final resources"})
    cols[1] = "mean final resources"
    return out[cols].sort_values("generation")


def best_strategy(conn: sqlite3.Connection, width: int = 300) -> str | None:
    """The strategy text of the fittest agent of the last generation (truncated)."""
    row = conn.execute(
        """
        SELECT f.agent_id, f.value, f.generation, a.name, a.grp FROM events f
        JOIN agents a USING (agent_id)
        WHERE f.kind = 'fitness' AND f.generation = (SELECT MAX(generation) FROM events
                                                     WHERE kind = 'fitness')
        ORDER BY f.value DESC, f.agent_id LIMIT 1
        """
    ).fetchone()
    if row is None:
        return None
    aid, value, gen, name, grp = row
    text = conn.execute(
        "SELECT action FROM events WHERE kind = 'strategy' AND agent_id = ? AND generation = ?",
        (aid, gen),
    ).fetchone()
    strategy = (text[0] if text else None) or "(no strategy text)"
    if len(strategy) > width:
        strategy = strategy[: width - 1] + "…"
    return f"best of generation {gen + 1}: {name} ({grp}), fitness {value:.1f}:\n  {strategy}"


def donor_section(conn: sqlite3.Connection) -> str:
    """The text block `society show` prints for a donor-game run."""
    table = _per_generation(conn)
    parts = ["donor game per generation:"]
    if len(table):
        parts.append(
            table.to_string(
                index=False,
                formatters={
                    "mean final resources": lambda x: f"{x:,.1f}",
                    "donation %": lambda x: f"{x:.1f}",
                },
            )
        )
    best = best_strategy(conn)
    if best:
        parts += ["", best]
    return "\n".join(parts)
