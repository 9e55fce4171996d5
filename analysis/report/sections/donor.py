"""Report section of the donor game: donations, resources, inequality, selection,
strategy texts, convergence and tipping; and the per-generation table of ``society show``.

The donation fraction has one definition, ``cooperation.donation_fraction`` (see
``cooperation.DONATION_DEFINITION``): the share of the donor's holdings given, averaged
over every donor turn, fallbacks included, a punishment counting as 0. The report, the
show table ("donation %") and the notebooks all read it there; likewise the mean final
resources (``cooperation.mean_resources``) and the invalid rate (``llm.llm_decisions``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ... import convergence, cooperation, drift, llm
from ...run import Run
from ..document import Report, guarded
from ..metrics import influence_section, tipping_section

__all__ = ["report", "show"]


def report(rep: Report, run: Run) -> None:
    """Donations and resources, selection, strategy texts, convergence and tipping."""
    from ... import plots as figs

    sec = rep.section("Donor game: donations and resources")
    sec.notes.append(f"donation fraction: {cooperation.DONATION_DEFINITION}")
    played = protocol_choices(run.game)
    if played:
        sec.notes.append(f"protocol choices (the paper's text unless marked 'code'): {played}")
    frac = guarded(
        rep, sec, "donation fraction", lambda: cooperation.donation_fraction(run, "generation")
    )
    if frac is not None and len(frac):
        rep.table(sec, "donation_by_generation", "Mean fraction donated per generation", frac)
        rep.figure("donation fraction (first generation)", float(frac["mean_fraction"].iloc[0]))
        rep.figure("donation fraction (last generation)", float(frac["mean_fraction"].iloc[-1]))
        if frac["punishments"].sum():
            rep.figure("punishments (all generations)", int(frac["punishments"].sum()))
            rep.figure("punishment rate (last generation)", float(frac["punish_rate"].iloc[-1]))
    fg = guarded(
        rep,
        sec,
        "donation fraction per group",
        lambda: cooperation.donation_fraction(run, ["generation", "grp"]),
    )
    if fg is not None and len(fg):
        rep.table(sec, "donation_by_group", "Mean fraction donated per generation and group", fg)
    res = guarded(rep, sec, "resources", lambda: cooperation.mean_resources(run))
    if res is not None and len(res):
        rep.table(sec, "resources_by_generation", "Mean final resources per generation", res)
        rep.figure("mean final resources (first generation)", float(res["mean_resources"].iloc[0]))
        rep.figure("mean final resources (last generation)", float(res["mean_resources"].iloc[-1]))
        guarded(
            rep,
            sec,
            "resources plot",
            lambda: rep.image(
                sec,
                "resources_per_generation",
                "Mean final resources per generation",
                figs.resources_per_generation(run),
            ),
        )
    if frac is not None and len(frac):
        guarded(
            rep,
            sec,
            "donation plot",
            lambda: rep.image(
                sec, "donation_fraction", "Donation fraction per generation", _donation_fig(fg)
            ),
        )
    gi = guarded(rep, sec, "gini", lambda: cooperation.gini_by(run, "auto", by="generation"))
    if gi is not None and len(gi):
        rep.table(sec, "gini_by_generation", "Inequality (Gini) per generation", gi)
        rep.figure("Gini (last generation)", float(gi["gini"].iloc[-1]))

    sec = rep.section("Donor game: selection")
    surv = guarded(rep, sec, "survival", lambda: cooperation.survival_by_group(run))
    if surv is not None and len(surv):
        rep.table(sec, "survival_by_group", "Survivors per generation and group", surv)
        tot = surv.groupby("grp", observed=True)[["n", "survivors"]].sum()
        tot["fraction"] = tot["survivors"] / tot["n"].replace(0, np.nan)
        best = tot["fraction"].idxmax() if tot["fraction"].notna().any() else None
        if best is not None:
            rep.figure("group surviving most often", f"{best} ({tot.loc[best, 'fraction']:.0%})")
    elif surv is not None:
        sec.notes.append("survival: no selection events in this run (one generation?)")

    sec = rep.section("Donor game: strategy texts")
    texts = guarded(rep, sec, "strategy texts", lambda: drift.strategy_texts(run))
    if texts is not None and texts["generation"].nunique() >= 2:
        emb = drift.default_embedder()
        sd = guarded(
            rep,
            sec,
            "semantic drift",
            lambda: drift.semantic_drift(texts, time="generation", embedder=emb),
        )
        if sd is not None and len(sd):
            sec.notes.append(
                f"semantic drift = 1 − cosine between each generation's centroid of strategy "
                f"texts and the first (or previous) generation's; embedder: {emb.name} "
                f"({emb.kind}{', word/character overlap, not meaning' if emb.kind == 'lexical' else ''})"
            )
            rep.table(sec, "strategy_drift", "Semantic drift of strategy texts", sd)
            rep.figure(
                f"strategy-text drift from generation 0 (last, {emb.name})",
                float(sd["drift_from_first"].iloc[-1]),
            )
            guarded(
                rep,
                sec,
                "strategy drift plot",
                lambda: rep.image(
                    sec, "strategy_drift", "Strategy-text drift", _text_drift_fig(sd, emb)
                ),
            )
        cons = guarded(
            rep,
            sec,
            "strategy consensus",
            lambda: convergence.strategy_consensus(texts, "generation", embedder=emb),
        )
        if cons is not None and len(cons):
            rep.table(sec, "strategy_consensus", "Consensus of strategy texts per generation", cons)
    elif texts is not None:
        sec.notes.append("semantic drift: skipped (strategy texts from fewer than 2 generations)")

    sec = rep.section("Donor game: convergence and tipping")
    ent = guarded(
        rep,
        sec,
        "entropy",
        lambda: convergence.behavioural_entropy(run, by="generation", kind="donate"),
    )
    if ent is not None and len(ent):
        rep.table(sec, "entropy_by_generation", "Entropy of donation deciles per generation", ent)
    per_round = guarded(rep, sec, "donation per round", lambda: _donation_per_round(run))
    if per_round is not None and len(per_round):
        tipping_section(rep, sec, per_round, "mean donation fraction per round")
    influence_section(rep, run)


# The game options where the paper's text and the authors' notebook differ (protocols §1):
# option -> its value in the authors' code (society.plugins.donor documents each).
CODE_CHOICES: dict[str, Any] = {
    "schedule": "code",
    "fitness": "twice_last_game",
    "advice_scores": False,
    "strategy_from": "first",
    "ask_when_empty": True,
    "reply_format": "text",
}


def protocol_choices(game: dict[str, Any]) -> str:
    """The resolved game's text-or-code options as one line, the code's marked; empty for
    runs recorded before the options existed (they played the text's choices)."""
    parts = []
    for key, code in CODE_CHOICES.items():
        if key in game:
            value = game[key]
            mark = " (code)" if value == code else ""
            parts.append(f"{key}={value}{mark}")
    return ", ".join(parts)


def _donation_per_round(run: Run) -> pd.Series:
    return cooperation.donation_fraction(run, "round").set_index("round")["mean_fraction"]


def _donation_fig(fg: pd.DataFrame | None) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    if fg is not None:
        for name, part in fg.groupby("grp", observed=True):
            ax.plot(part["generation"], part["mean_fraction"], marker="o", label=str(name))
        ax.legend(fontsize="small")
    ax.set(xlabel="generation", ylabel="mean fraction donated", ylim=(-0.02, 1.02))
    return fig


def _text_drift_fig(sd: pd.DataFrame, emb: Any) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.plot(sd["generation"], sd["drift_from_first"], marker="o", label="from generation 0")
    ax.plot(sd["generation"], sd["drift_from_prev"], marker="s", label="from previous")
    ax.set(xlabel="generation", ylabel=f"1 − cosine ({emb.name}, {emb.kind})")
    ax.legend(fontsize="small")
    return fig


# -- society show ---------------------------------------------------------------------------


def per_generation(run: Run) -> pd.DataFrame:
    """``society show``'s donor table: one row per generation (1-based, as agents see them).

    ``mean final resources`` (``cooperation.mean_resources``), ``donation %`` (100 x
    ``cooperation.donation_fraction``'s ``mean_fraction``), ``invalid`` (the invalid rate
    of the LLM donation decisions, ``llm.llm_decisions``), ``punishments`` and the
    ``survivors`` by group (LLM agents) or by the policy they play (scripted agents).
    """
    res = cooperation.mean_resources(run)[["generation", "mean_resources"]]
    frac = cooperation.donation_fraction(run, "generation")[
        ["generation", "mean_fraction", "punishments"]
    ]
    inv = llm.llm_decisions(run, "generation", kind="donate")[["generation", "invalid_rate"]]
    out = res.merge(frac, on="generation", how="outer").merge(inv, on="generation", how="left")
    out = out.sort_values("generation").reset_index(drop=True)
    ev = run.events
    surv = ev[ev["kind"] == "survivor"].drop_duplicates(["generation", "agent_id"])
    by_gen: dict[int, str] = {}
    if len(surv):
        kind = run.agents.set_index("agent_id")["kind"].astype(object)
        scripted = surv["agent_id"].map(kind).eq("scripted").to_numpy()
        label = np.where(scripted, surv["strategy"].astype(object), surv["grp"].astype(object))
        counts = (
            pd.DataFrame({"generation": surv["generation"].to_numpy(), "g": label})
            .groupby(["generation", "g"])
            .size()
        )
        for (gen, grp), n in counts.items():
            part = f"{grp}:{n}"
            by_gen[int(gen)] = f"{by_gen[int(gen)]}, {part}" if int(gen) in by_gen else part
    punish = out["punishments"].fillna(0).astype("int64")
    return pd.DataFrame(
        {
            "generation": out["generation"].astype("int64") + 1,
            "mean final resources": out["mean_resources"].astype(float),
            "donation %": 100.0 * out["mean_fraction"].astype(float),
            "invalid": out["invalid_rate"].astype(float),
            "punishments": punish,
            "survivors": [by_gen.get(int(g), "") for g in out["generation"]],
        }
    )


def best_strategy(run: Run, width: int = 300) -> str | None:
    """The strategy text of the fittest agent of the last generation (truncated)."""
    ev = run.events
    fit = ev[ev["kind"] == "fitness"]
    if fit.empty:
        return None
    last = fit[fit["generation"] == fit["generation"].max()]
    best = last.sort_values(["value", "agent_id"], ascending=[False, True]).iloc[0]
    aid, gen = int(best["agent_id"]), int(best["generation"])
    text = None
    for frame, kind in ((ev, "strategy"), (run.decisions, "strategy")):
        rows = frame[(frame["kind"] == kind) & (frame["agent_id"] == aid)]
        rows = rows[rows["generation"] == gen]
        if len(rows) and isinstance(rows["action"].iloc[0], str):
            text = rows["action"].iloc[0]
            break
    strategy = text or "(no strategy text)"
    if len(strategy) > width:
        strategy = strategy[: width - 1] + "…"
    agent = run.agents.set_index("agent_id").loc[aid]
    return (
        f"best of generation {gen + 1}: {agent['name']} ({agent['grp']}), "
        f"fitness {float(best['value']):.1f}:\n  {strategy}"
    )


def show(run: Run, top: int = 20) -> str:
    """The donor-game block of ``society show``: the per-generation table, the best text."""
    table = per_generation(run)
    parts = ["donor game per generation:"]
    if len(table):
        parts.append(
            table.to_string(
                index=False,
                na_rep="-",
                formatters={
                    "mean final resources": lambda x: "-" if pd.isna(x) else f"{x:,.1f}",
                    "donation %": lambda x: "-" if pd.isna(x) else f"{x:.1f}",
                    "invalid": lambda x: "-" if pd.isna(x) else f"{x:.1%}",
                },
            )
        )
        parts.append(f"donation %: {cooperation.DONATION_DEFINITION}")
    best = best_strategy(run)
    if best:
        parts += ["", best]
    return "\n".join(parts)
