"""Metrics of the commons dilemma, read from the run store (after GovSim: Piatti et al.,
"Cooperate or Collapse", NeurIPS 2024).

The store holds, per month, one ``harvest`` decision per agent (``value``: the amount
asked), one ``payoff`` event per agent (``value``: the amount taken) and one ``stock``
event (``value``: the next month's stock; ``data``: ``month`` (1-based), ``stock``,
``asked``, ``taken``, ``remaining``, ``share`` (the sustainable share per agent),
``sustainable``, ``collapsed``); the resolved game holds ``months`` and
``sustainable_max``. Every figure is defined once here:

* **survival time**: months played before the resource collapsed, the collapsing month
  included (GovSim's ``max{t : h(t) > C}``); the whole season when it never collapsed;
* **survived**: the whole season played without a collapse;
* **total gain**: the sum of the amounts taken by all agents;
* **efficiency**: total gain over the sustainable maximum (the gain of taking the
  sustainable total every month from the starting stock), capped at 1 as in GovSim;
* **equality**: 1 − Gini of the agents' total gains (:func:`analysis.cooperation.gini`);
* **over-usage**: the share of harvest decisions asking for more than the month's
  sustainable share.

Each metric is per generation (one commons is played per generation).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from .cooperation import gini
from .run import Run

__all__ = [
    "DEFINITIONS",
    "EPS",
    "agent_stats",
    "harvests",
    "metrics",
    "months",
    "stock_figure",
    "sustainable_max",
    "texts",
]

HARVEST, PAYOFF, STOCK = "harvest", "payoff", "stock"
MESSAGE, REFLECT = "message", "reflect"
EPS = 1e-9  # an ask counts as over the share only beyond rounding
DEFINITIONS = {
    "survival_time": "months played before the collapse, the collapsing month included",
    "survived": "the whole season played without a collapse",
    "total_gain": "sum of the amounts taken",
    "efficiency": "total gain / sustainable maximum, capped at 1",
    "equality": "1 - Gini of the agents' total gains",
    "over_usage": "share of asks above the month's sustainable share",
}
_MONTH_COLS = ["month", "stock", "asked", "taken", "remaining", "share", "sustainable",
               "collapsed"]  # fmt: skip


def months(run: Run) -> pd.DataFrame:
    """One row per month played: ``generation``, ``round`` (the harvest step), ``month``,
    ``stock`` (at the start), ``asked`` and ``taken`` in all, ``remaining``,
    ``next_stock``, ``share``, ``sustainable``, ``collapsed``, and from the decisions
    ``asks`` (harvest decisions) and ``over_usage`` (share of them above ``share``)."""
    ev = run.events
    st = ev[ev["kind"] == STOCK] if len(ev) else ev
    rows = []
    for g, r, v, d in zip(st["generation"], st["round"], st["value"], st["data"], strict=True):
        data = json.loads(d) if isinstance(d, str) else {}
        rows.append({"generation": int(g), "round": int(r), **{k: data.get(k) for k in
                     _MONTH_COLS}, "next_stock": float(v)})  # fmt: skip
    cols = ["generation", "round", *_MONTH_COLS, "next_stock"]
    out = pd.DataFrame(rows, columns=cols)
    out["collapsed"] = out["collapsed"].astype(bool)
    for c in ("stock", "asked", "taken", "remaining", "share", "sustainable"):
        out[c] = out[c].astype(float)
    h = harvests(run, out)
    if len(h):
        per = h.groupby(["generation", "round"]).agg(
            asks=("ask", "size"), over_usage=("over", "mean")
        )
        out = out.merge(per.reset_index(), on=["generation", "round"], how="left")
    else:
        out["asks"] = 0
        out["over_usage"] = np.nan
    return out.sort_values(["generation", "round"]).reset_index(drop=True)


def harvests(run: Run, month_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """The harvest decisions with ``month``, ``ask`` (the value), ``share`` (the month's
    sustainable share), ``over`` (ask above it), ``taken`` (the agent's payoff that
    month) and the agent keys (``grp``, ``strategy``, ``model``)."""
    d = run.decisions
    h = d[d["kind"] == HARVEST].copy()
    m = month_rows if month_rows is not None else months(run)
    keys = ["generation", "round"]
    h = h.merge(m[[*keys, "month", "share"]], on=keys, how="left")
    h["ask"] = h["value"].astype(float)
    h["over"] = h["ask"] > h["share"] + EPS
    ev = run.events
    pay = ev[ev["kind"] == PAYOFF][[*keys, "agent_id", "value"]] if len(ev) else None
    if pay is not None and len(pay):
        pay = pay.rename(columns={"value": "taken"}).astype({"agent_id": "int64"})
        h = h.merge(pay, on=[*keys, "agent_id"], how="left")
    else:
        h["taken"] = np.nan
    return h.reset_index(drop=True)


def sustainable_max(run: Run) -> float:
    """The sustainable maximum of the run's resolved game (NaN when not recorded)."""
    value = (run.game or {}).get("sustainable_max")
    return float(value) if value is not None else float("nan")


def _season(run: Run) -> int | None:
    value = (run.game or {}).get("months")
    return int(value) if value is not None else None


def metrics(run: Run) -> pd.DataFrame:
    """Per generation: ``months_played``, ``survival_time``, ``collapsed``, ``survived``,
    ``total_gain``, ``sustainable_max``, ``efficiency``, ``equality``, ``over_usage``,
    ``agents`` and ``mean_gain`` (per agent); see the module docstring."""
    m = months(run)
    h = harvests(run, m)
    ev = run.events
    pay = ev[ev["kind"] == PAYOFF] if len(ev) else ev
    season, smax = _season(run), sustainable_max(run)
    rows: list[dict[str, Any]] = []
    for g, part in m.groupby("generation"):
        played = len(part)
        collapsed = bool(part["collapsed"].any())
        per_agent = pay[pay["generation"] == g].groupby("agent_id", observed=True)["value"].sum()
        total = float(per_agent.sum())
        asks = h[h["generation"] == g]
        rows.append(
            {
                "generation": int(g),
                "months_played": played,
                "survival_time": played,
                "collapsed": collapsed,
                "survived": (not collapsed) and (season is None or played >= season),
                "total_gain": total,
                "sustainable_max": smax,
                "efficiency": min(1.0, total / smax) if smax > 0 else float("nan"),
                "equality": 1.0 - gini(per_agent.to_numpy()) if len(per_agent) else np.nan,
                "over_usage": float(asks["over"].mean()) if len(asks) else float("nan"),
                "agents": len(per_agent),
                "mean_gain": float(per_agent.mean()) if len(per_agent) else float("nan"),
            }
        )
    cols = ["generation", "months_played", "survival_time", "collapsed", "survived",
            "total_gain", "sustainable_max", "efficiency", "equality", "over_usage", "agents",
            "mean_gain"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def agent_stats(run: Run) -> pd.DataFrame:
    """Per agent and generation: ``gain`` (total taken), ``mean_ask``, ``over_usage``
    (share of its asks above the share), ``asks``, with ``grp`` and ``strategy``; the
    highest gain first."""
    h = harvests(run)
    if not len(h):
        cols = ["generation", "agent_id", "grp", "strategy", "asks", "mean_ask", "gain",
                "over_usage"]  # fmt: skip
        return pd.DataFrame(columns=cols)
    h["grp"] = h["grp"].astype(object)
    h["strategy"] = h["strategy"].astype(object)
    out = h.groupby(["generation", "agent_id", "grp", "strategy"], dropna=False).agg(
        asks=("ask", "size"), mean_ask=("ask", "mean"), gain=("taken", "sum"),
        over_usage=("over", "mean"),
    )  # fmt: skip
    out = out.reset_index().sort_values(["generation", "gain", "agent_id"],
                                        ascending=[True, False, True])  # fmt: skip
    return out.reset_index(drop=True)


def texts(run: Run) -> pd.DataFrame:
    """The messages and memories written, in order: ``generation``, ``round``, ``month``
    (1-based), ``agent_id``, ``grp``, ``kind`` ('message' / 'reflect'), ``text``,
    ``valid``."""
    d = run.decisions
    t = d[d["kind"].isin([MESSAGE, REFLECT])].copy()
    t = t.merge(run.rounds[["round", "round_in_game"]], on="round", how="left")
    t["month"] = t["round_in_game"] + 1
    t["text"] = t["action"].astype(object)
    t["kind"] = t["kind"].astype(object)
    t["grp"] = t["grp"].astype(object)
    cols = ["generation", "round", "month", "agent_id", "grp", "kind", "text", "valid"]
    return t[cols].sort_values(["round", "agent_id"]).reset_index(drop=True)


def stock_figure(run: Run, month_rows: pd.DataFrame | None = None) -> Any:
    """A matplotlib Figure: the stock at the start of each month (one line per
    generation), the amount taken (bars), the collapse (a cross), the capacity and the
    collapse threshold (dotted)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    m = month_rows if month_rows is not None else months(run)
    game = run.game or {}
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    several = m["generation"].nunique() > 1
    for g, part in m.groupby("generation"):
        first = g == m["generation"].min()
        ax.plot(part["month"], part["stock"], marker="o",
                label=f"stock, generation {g}" if several else "stock")  # fmt: skip
        ax.bar(part["month"], part["taken"], alpha=0.3, width=0.6,
               label="taken" if first else None)  # fmt: skip
        gone = part[part["collapsed"]]
        if len(gone):
            ax.scatter(gone["month"], gone["stock"], marker="x", s=80, color="red",
                       label="collapse" if first else None, zorder=3)  # fmt: skip
    if "capacity" in game:
        ax.axhline(float(game["capacity"]), color="grey", linestyle=":", linewidth=1)
    if "collapse_threshold" in game:
        ax.axhline(float(game["collapse_threshold"]), color="red", linestyle=":", linewidth=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="month", ylabel="stock at the start of the month; taken")
    ax.legend(fontsize="small")
    return fig
