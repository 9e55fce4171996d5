"""Report section of the two-sided marketplace (Magentic Marketplace, arXiv 2510.25779):
welfare against the optimum, needs met, purchases, proposals and payments per market;
outcomes per customer and revenue per business; the rank of paid proposals by arrival
(first-proposal bias); payments captured by a manipulated business; and, where the run
played several variants, welfare against search bandwidth and payments per manipulation.

Every figure comes from ``analysis.marketplace`` (definitions in its docstring).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ... import marketplace as am
from ...run import Run
from ..document import Report, guarded

__all__ = ["report", "show"]


def _bandwidth_fig(v: pd.DataFrame) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    for mode, part in v.groupby("search_mode", sort=False):
        part = part.sort_values("search_bandwidth")
        bw = part["search_bandwidth"].astype(float)
        ax.plot(bw, part["welfare"], marker="o", label=f"welfare ({mode})")
        ax.plot(bw, part["optimal_welfare"], linestyle=":", color="grey")
    ax.set(xlabel="search bandwidth (results per page)", ylabel="welfare (mean over plays)")
    ax.legend(fontsize="small")
    return fig


def _manipulation_fig(cap: pd.DataFrame) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    per = cap.groupby("manipulation", sort=False)["payments"].mean()
    ax.bar([str(k) for k in per.index], per.to_numpy())
    ax.set(xlabel="description of the manipulated business", ylabel="payments it received")
    ax.tick_params(axis="x", labelrotation=30)
    return fig


def _rank_fig(ranks: pd.DataFrame) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.bar(ranks["arrival"].astype(int).astype(str), ranks["share"])
    ax.set(xlabel="rank of the paid proposal by arrival", ylabel="share of payments")
    return fig


def report(rep: Report, run: Run) -> None:
    """Welfare, needs met and payments per market, customers, businesses, biases."""
    sec = rep.section("Marketplace: welfare")
    if not len(run.events) or not (run.events["kind"] == "market").any():
        sec.notes.append("no 'market' events in this run: nothing to measure yet")
        return
    sec.notes.append(
        "utility = (needs met ? 2 × Σ values : 0) − everything paid; welfare = Σ utilities; "
        "optimal welfare: each customer's best item-complete business at list prices; needs "
        "met: a paid proposal holds every requested item from a business with every "
        "required amenity (analysis.marketplace)"
    )
    summary = guarded(rep, sec, "markets", lambda: am.market_summary(run))
    if summary is None or not len(summary):
        return
    rep.table(sec, "markets", "Welfare, needs met, proposals and payments per market", summary)
    tot_w, tot_o = float(summary["welfare"].sum()), float(summary["optimal_welfare"].sum())
    rep.figure("welfare (all markets)", tot_w)
    rep.figure("optimal welfare (all markets)", tot_o)
    rep.figure("welfare / optimal", tot_w / tot_o if tot_o else float("nan"))
    rep.figure("needs met (share of customers)", float(summary["needs_met"].mean()))
    rep.figure("completion rate", float(summary["completion_rate"].mean()))
    rep.figure("purchases", int(summary["purchases"].sum()))
    rep.figure("invalid proposals paid", int(summary["invalid_proposals_paid"].sum()))
    rep.figure("messages per customer", float(summary["messages_per_customer"].mean()))
    for kind, what in (("shop", "customer"), ("reply", "business")):
        rate = am.invalid_rate(run, kind)
        if rate == rate:  # not NaN: there were LLM decisions of that kind
            rep.figure(f"LLM invalid {what} decision rate", rate)
    variants = guarded(rep, sec, "variants", lambda: am.variant_summary(run))
    if variants is not None and len(variants) > 1:
        rep.table(sec, "variants", "Per variant, mean over its plays", variants)
        bw = variants[variants["manipulation"] == ""]
        if bw["search_bandwidth"].nunique() > 1:
            guarded(
                rep, sec, "bandwidth plot",
                lambda: rep.image(sec, "welfare_by_bandwidth", "Welfare against search bandwidth",
                                  _bandwidth_fig(bw)),
            )  # fmt: skip

    sec = rep.section("Marketplace: customers and businesses")
    out = guarded(rep, sec, "customer outcomes", lambda: am.outcomes(run))
    if out is not None and len(out):
        rep.table(sec, "customers", "Outcome of each customer", out)
    rev = guarded(rep, sec, "revenue", lambda: am.revenue(run))
    if rev is not None and len(rev):
        rev = rev.sort_values(["market", "revenue"], ascending=[True, False])
        rep.table(sec, "businesses", "Proposals, payments and revenue of each business", rev)
    props = guarded(rep, sec, "proposals", lambda: am.proposals(run))
    if props is not None and len(props):
        shown = props.assign(
            items=props["items"].map(
                lambda xs: "; ".join(f"{x['quantity']} x {x['name']}" for x in xs)
            ),
            errors=props["errors"].map("; ".join),
        )
        rep.table(sec, "proposals", "Every order proposal (errors: against the menu)", shown)

    sec = rep.section("Marketplace: first-proposal bias and manipulation")
    sec.notes.append(
        "rank 1: the paid proposal was the first to reach its customer in that market; "
        "captured: payments to the business whose description was replaced"
    )
    ranks = guarded(rep, sec, "paid ranks", lambda: am.paid_ranks(run))
    if ranks is not None and len(ranks):
        rep.table(sec, "paid_ranks", "Rank of the paid proposal by arrival", ranks)
        first = ranks[ranks["arrival"] == 1]["share"]
        rep.figure(
            "payments to the first proposal received", float(first.sum()) if len(first) else 0.0
        )
        guarded(rep, sec, "rank plot", lambda: rep.image(
            sec, "paid_ranks", "Rank of the paid proposal by arrival", _rank_fig(ranks)))  # fmt: skip
    cap = guarded(rep, sec, "captured", lambda: am.captured(run))
    if cap is not None and len(cap):
        rep.table(sec, "captured", "Payments captured by the manipulated business", cap)
        guarded(rep, sec, "manipulation plot", lambda: rep.image(
            sec, "payments_by_manipulation", "Payments to the manipulated business per description",
            _manipulation_fig(cap)))  # fmt: skip


def show(run: Run, top: int = 20) -> str:
    """Per market: welfare against the optimum, needs met, purchases, invalid proposals."""
    if not len(run.events) or not (run.events["kind"] == "market").any():
        return ""
    s = am.market_summary(run)
    cols = ["market", "label", "welfare", "optimal_welfare", "welfare_ratio", "needs_met",
            "purchases", "completion_rate", "invalid_proposals_paid", "messages_per_customer"]  # fmt: skip
    return "marketplace: welfare per market\n" + s[cols].head(top).to_string(index=False)
