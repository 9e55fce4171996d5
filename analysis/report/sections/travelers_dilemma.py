"""Report section of the traveler's dilemma: claims (mean, normalised, at the Nash
equilibrium and at the maximum), payoffs and scores per group and strategy, tipping of
the mean claim; and the score tables of ``society show``.

The store holds one 'claim' decision per player and round (``value``: the claim) and one
'payoff' event (``value``: the payoff; ``data``: ``{"partner_claim": b}``). The bounds
``low`` and ``high`` come from the run's resolved game. The normalised claim is
``(claim - low) / (high - low)`` (0: the Nash equilibrium, 1: the maximum). The score is
``cooperation.agent_scores`` (sum of payoffs) and the invalid rate
``llm.llm_decisions``, as in the other sections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ... import cooperation, llm
from ...run import Run, group_keys
from ..document import Report, guarded
from ..generic import score_tables
from ..metrics import drift_section, influence_section, tipping_section

__all__ = ["bounds", "claim_stats", "claims", "payoff_stats", "report", "show"]

CLAIM = "claim"
PAYOFF = "payoff"
DEFAULT_LOW, DEFAULT_HIGH = 80, 200  # games.travelers.TravelersRules' defaults
MAX_GROUP_LINES = 12  # more groups than this: one society-wide mean-claim line

By = str | Sequence[str] | None


def bounds(run: Run) -> tuple[float, float]:
    """``(low, high)`` of the run's resolved game (the rules' defaults when absent)."""
    game = run.game or {}
    low = float(game.get("low", DEFAULT_LOW))
    high = float(game.get("high", DEFAULT_HIGH))
    if not high > low:
        raise ValueError(f"the game's claim range is empty: low={low}, high={high}")
    return low, high


def claims(run: Run) -> pd.DataFrame:
    """The 'claim' decisions with ``claim`` (the value), ``normalised``
    ((claim - low) / (high - low)), ``at_nash`` (claim == low) and ``at_max`` (== high)."""
    low, high = bounds(run)
    d = run.decisions
    c = d[d["kind"] == CLAIM]
    v = c["value"].to_numpy(dtype=float)
    return c.assign(
        claim=v,
        normalised=(v - low) / (high - low),
        at_nash=(v == low).astype(float),
        at_max=(v == high).astype(float),
    )


def claim_stats(run: Run, by: By = "round") -> pd.DataFrame:
    """Per ``by`` (None: all claims): ``claims``, ``mean_claim``, ``mean_normalised``,
    ``share_nash`` (share of claims at low) and ``share_max`` (at high)."""
    c = claims(run)
    cols = {
        "claims": ("claim", "size"),
        "mean_claim": ("claim", "mean"),
        "mean_normalised": ("normalised", "mean"),
        "share_nash": ("at_nash", "mean"),
        "share_max": ("at_max", "mean"),
    }
    keys = group_keys(c, by)
    if not keys:
        return c.assign(_all=0).groupby("_all").agg(**cols).reset_index(drop=True)
    return c.groupby(keys, observed=True, dropna=False).agg(**cols).reset_index()


def payoff_stats(run: Run, by: By = "round") -> pd.DataFrame:
    """Per ``by`` (None: all): ``payoffs`` (payoff events) and ``mean_payoff`` (per
    player and round)."""
    ev = run.events
    p = ev[ev["kind"] == PAYOFF] if len(ev) else ev
    cols = {"payoffs": ("value", "size"), "mean_payoff": ("value", "mean")}
    keys = group_keys(p, by)
    if not keys:
        return pd.DataFrame({"payoffs": [len(p)], "mean_payoff": [p["value"].mean()]})
    return p.groupby(keys, observed=True, dropna=False).agg(**cols).reset_index()


def _by_round(run: Run) -> pd.DataFrame:
    out = claim_stats(run, "round").merge(payoff_stats(run, "round"), on="round", how="left")
    return out.drop(columns=["payoffs"]).sort_values("round").reset_index(drop=True)


def _as_object(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    for c in cols:
        if c in df.columns:
            df[c] = df[c].astype(object)
    return df


def _by_strategy(run: Run) -> pd.DataFrame:
    keys = ["grp", "strategy"]
    s = _as_object(cooperation.strategy_scores(run), keys)
    c = _as_object(claim_stats(run, keys), keys)
    p = _as_object(payoff_stats(run, keys), keys).drop(columns=["payoffs"])
    inv = llm.llm_decisions(run, keys, kind=CLAIM)[[*keys, "invalid_rate"]]
    inv = _as_object(inv, keys)
    out = s.merge(c, on=keys, how="left").merge(p, on=keys, how="left")
    return out.merge(inv, on=keys, how="left")


def _claim_fig(run: Run, group: str | None) -> Any:
    from matplotlib.figure import Figure

    low, high = bounds(run)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    if group is None:
        df = claim_stats(run, "round")
        ax.plot(df["round"], df["mean_claim"], marker=".", label="all")
    else:
        df = claim_stats(run, ["round", group])
        for name, part in df.groupby(group, observed=True):
            ax.plot(part["round"], part["mean_claim"], marker=".", label=str(name))
    ax.axhline(low, color="grey", linestyle=":", linewidth=1)
    ax.axhline(high, color="grey", linestyle=":", linewidth=1)
    pad = 0.02 * (high - low)
    ax.set(xlabel="round", ylabel="mean claim", ylim=(low - pad, high + pad))
    ax.legend(fontsize="small")
    return fig


def report(rep: Report, run: Run) -> None:
    """Claims per round and per strategy, payoffs and scores, tipping, network."""
    sec = rep.section("Traveler's dilemma: claims")
    if not (run.decisions["kind"] == CLAIM).any():
        sec.notes.append("no 'claim' decisions in this run: nothing to measure yet")
        return
    rng = guarded(rep, sec, "claim range", lambda: bounds(run))
    if rng is None:
        return
    low, high = rng
    sec.notes.append(
        f"claims in [{low:g}, {high:g}]; Nash equilibrium: both claim {low:g}; normalised "
        f"claim = (claim − {low:g}) / ({high:g} − {low:g}), 0 at the equilibrium, 1 at the "
        "maximum"
    )
    overall = guarded(rep, sec, "claims (all)", lambda: claim_stats(run, None))
    if overall is not None and len(overall):
        row = overall.iloc[0]
        rep.figure("mean claim (all claims)", float(row["mean_claim"]))
        rep.figure("mean normalised claim (all claims)", float(row["mean_normalised"]))
        rep.figure("share of claims at the Nash equilibrium (low)", float(row["share_nash"]))
        rep.figure("share of claims at the maximum (high)", float(row["share_max"]))
    by_round = guarded(rep, sec, "claims per round", lambda: _by_round(run))
    if by_round is not None and len(by_round):
        rep.table(sec, "claims_by_round", "Claims and payoffs per round", by_round)
        last = by_round.iloc[-1]
        rep.figure("mean claim (last round)", float(last["mean_claim"]))
        rep.figure("mean normalised claim (last round)", float(last["mean_normalised"]))
    pay = guarded(rep, sec, "payoffs (all)", lambda: payoff_stats(run, None))
    if pay is not None and int(pay["payoffs"].iloc[0]):
        rep.figure("mean payoff per round", float(pay["mean_payoff"].iloc[0]))
    inv = guarded(rep, sec, "invalid claims", lambda: llm.llm_decisions(run, None, kind=CLAIM))
    if inv is not None and int(inv["decisions"].iloc[0]):
        rep.figure("LLM invalid claim rate", float(inv["invalid_rate"].iloc[0]))
    n_groups = run.agents["grp"].nunique() if len(run.agents) else 0
    group = "grp" if 1 < n_groups <= MAX_GROUP_LINES else None
    guarded(
        rep,
        sec,
        "claim plot",
        lambda: rep.image(
            sec,
            "claims_over_time",
            "Mean claim over rounds" + (" by group" if group else ""),
            _claim_fig(run, group),
        ),
    )

    sec = rep.section("Traveler's dilemma: strategies")
    sec.notes.append(
        "mean_score / total_score: sum of payoffs per agent (cooperation.agent_scores); "
        "mean_payoff: per player and round; invalid_rate: LLM claims answered by the "
        "fallback (analysis.llm)"
    )
    strat = guarded(rep, sec, "claims per strategy", lambda: _by_strategy(run))
    if strat is not None and len(strat):
        rep.table(
            sec,
            "claims_by_strategy",
            "Claims, payoffs and scores per group and strategy",
            strat,
        )
        best = strat.iloc[0]
        rep.figure("best strategy (mean score)", f"{best['strategy']} ({best['grp']})")

    sec = rep.section("Traveler's dilemma: convergence and tipping")
    if by_round is not None and len(by_round):
        series = by_round.set_index("round")["mean_claim"]
        tipping_section(rep, sec, series, "mean claim per round")
    drift_section(rep, sec, run, CLAIM)
    influence_section(rep, run)


def show(run: Run, top: int = 20) -> str:
    """Score tables with each agent's and strategy's mean claim and invalid rate."""
    if not (run.decisions["kind"] == CLAIM).any():
        return ""
    keys = ["grp", "strategy"]
    per_agent = claim_stats(run, "agent_id")[["agent_id", "claims", "mean_claim", "share_nash"]]
    inv = llm.llm_decisions(run, "agent_id", kind=CLAIM)[["agent_id", "invalid_rate"]]
    per_agent = per_agent.merge(
        inv.rename(columns={"invalid_rate": "invalid"}), on="agent_id", how="left"
    )
    per_agent["agent_id"] = per_agent["agent_id"].astype(np.int64)
    per_strategy = _as_object(claim_stats(run, keys), keys)[
        [*keys, "mean_claim", "share_nash", "share_max"]
    ]
    pay = _as_object(payoff_stats(run, keys), keys)[[*keys, "mean_payoff"]]
    per_strategy = per_strategy.merge(pay, on=keys, how="left")
    low, high = bounds(run)
    c = claim_stats(run, None).iloc[0]
    head = (
        f"traveler's dilemma: claims in [{low:g}, {high:g}], mean claim "
        f"{c['mean_claim']:.2f}, at the Nash equilibrium {c['share_nash']:.1%}, "
        f"at the maximum {c['share_max']:.1%}"
    )
    return head + "\n\n" + score_tables(run, top, per_agent, per_strategy)
