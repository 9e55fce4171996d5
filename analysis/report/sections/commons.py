"""Report section of the commons dilemma: survival time, total gain, efficiency,
equality and over-usage per generation; the stock month by month (with a plot); gains
and asks per agent and group; the discussion messages and memories written; and the
text of ``society show``.

Every figure comes from :mod:`analysis.commons` (definitions there); the invalid rate of
LLM harvests from ``llm.llm_decisions``, as in the other sections.
"""

from __future__ import annotations

from ... import commons, llm
from ...run import Run
from ..document import Report, guarded
from ..generic import score_tables

__all__ = ["report", "show"]


def report(rep: Report, run: Run) -> None:
    """Commons metrics, the stock month by month, agents and groups, the texts."""
    sec = rep.section("Commons: survival and use of the resource")
    if not (run.decisions["kind"] == commons.HARVEST).any():
        sec.notes.append("no 'harvest' decisions in this run: nothing to measure yet")
        return
    game = run.game or {}
    sec.notes.append(
        f"framing {game.get('framing', '?')}; capacity {game.get('capacity', '?')}, "
        f"growth x{game.get('growth', '?')}, collapse below "
        f"{game.get('collapse_threshold', '?')}, {game.get('months', '?')} months; "
        f"sustainable maximum {game.get('sustainable_max', '?')}"
    )
    sec.notes += [f"{k}: {v}" for k, v in commons.DEFINITIONS.items()]
    met = guarded(rep, sec, "commons metrics", lambda: commons.metrics(run))
    if met is not None and len(met):
        rep.table(sec, "commons_by_generation", "Commons metrics per generation", met)
        last = met.iloc[-1]
        where = " (last generation)" if len(met) > 1 else ""
        rep.figure(f"survival time (months){where}", int(last["survival_time"]))
        rep.figure(f"collapsed{where}", bool(last["collapsed"]))
        rep.figure(f"total gain{where}", float(last["total_gain"]))
        rep.figure(f"efficiency{where}", float(last["efficiency"]))
        rep.figure(f"equality (1 - Gini){where}", float(last["equality"]))
        rep.figure(f"over-usage{where}", float(last["over_usage"]))
        if len(met) > 1:
            rep.figure("survival rate (generations)", float(met["survived"].mean()))
    m = guarded(rep, sec, "months", lambda: commons.months(run))
    if m is not None and len(m):
        rep.table(sec, "commons_by_month", "The stock month by month", m)
        guarded(
            rep, sec, "stock plot",
            lambda: rep.image(sec, "commons_stock", "Stock and harvest per month",
                              commons.stock_figure(run, m)),
        )  # fmt: skip
    inv = guarded(
        rep, sec, "invalid harvests", lambda: llm.llm_decisions(run, None, kind=commons.HARVEST)
    )
    if inv is not None and int(inv["decisions"].iloc[0]):
        rep.figure("LLM invalid harvest rate", float(inv["invalid_rate"].iloc[0]))

    sec = rep.section("Commons: agents")
    sec.notes.append(
        "gain: total taken; mean_ask: mean amount asked; over_usage: share of the agent's "
        "asks above the month's sustainable share"
    )
    agents = guarded(rep, sec, "agents", lambda: commons.agent_stats(run))
    if agents is not None and len(agents):
        rep.table(sec, "commons_by_agent", "Gains and asks per agent", agents)
        by_grp = agents.groupby(["generation", "grp", "strategy"], dropna=False).agg(
            agents=("agent_id", "size"), mean_gain=("gain", "mean"),
            mean_ask=("mean_ask", "mean"), over_usage=("over_usage", "mean"),
        )  # fmt: skip
        rep.table(sec, "commons_by_group", "Gains and asks per group", by_grp.reset_index())

    t = guarded(rep, sec, "texts", lambda: commons.texts(run))
    if t is not None and len(t):
        sec = rep.section("Commons: discussion and memories")
        sec.notes.append(
            f"{int((t['kind'] == commons.MESSAGE).sum())} messages and "
            f"{int((t['kind'] == commons.REFLECT).sum())} memories written (cut in the summary, "
            "in full in the CSV)"
        )
        rep.table(sec, "commons_texts", "Messages and memories", t)


def show(run: Run, top: int = 20) -> str:
    """The commons metrics per generation, then the gain tables per agent and strategy."""
    if not (run.decisions["kind"] == commons.HARVEST).any():
        return ""
    met = commons.metrics(run)
    lines = []
    for r in met.itertuples(index=False):
        fate = "collapsed" if r.collapsed else ("survived" if r.survived else "running")
        lines.append(
            f"commons, generation {r.generation}: {fate}, survival time {r.survival_time} "
            f"month{'' if r.survival_time == 1 else 's'}, total gain {r.total_gain:g}, efficiency {r.efficiency:.3f}, equality "
            f"{r.equality:.3f}, over-usage {r.over_usage:.3f}"
        )
    stats = commons.agent_stats(run)
    per_agent = stats.groupby("agent_id").agg(
        asks=("asks", "sum"), mean_ask=("mean_ask", "mean"), over_usage=("over_usage", "mean")
    )
    return "\n".join(lines) + "\n\n" + score_tables(run, top, per_agent.reset_index())
