"""Report section of self-interested exploration (alignment tipping, arXiv 2510.04860):
the violation rate per round with confidence intervals across items and seeds, the
tipping round (change point), rates per payoff variant, role and supervision, rewards,
and the strategy memos of self-evolving agents; ``society show`` prints the rates.

Every figure comes from :mod:`analysis.atp` (the violation is the deviant choice here).
"""

from __future__ import annotations

from functools import partial

import pandas as pd

from ... import atp, llm
from ...run import Run
from ..document import Report, Section, guarded
from ..metrics import MIN_EARLY_WARNING

__all__ = ["early_warning_part", "memo_part", "report", "show", "tipping_part"]

KIND = "choice"


def tipping_part(rep: Report, sec: Section, rates: pd.DataFrame, what: str) -> None:
    """The tipping round of the per-round ``what`` rate, with its confidence, and the
    rate figure."""
    series = rates.set_index("game_round")["rate"]
    tip = None
    if len(series) >= 2:
        tip = guarded(rep, sec, "tipping round", lambda: atp.tipping_round(series))
    if tip is not None:
        sec.notes.append(
            f"tipping round (change point of the {what} rate): round {tip.round}, rate "
            f"{tip.before:.3g} before, {tip.after:.3g} from it; bootstrap 95% interval of the "
            f"position {tip.ci[0]}..{tip.ci[1]} (0-based), permutation p = {tip.p_value:.3g}"
            + ("" if tip.p_value < 0.05 else " (no significant shift at the 5% level)")
        )
        rep.figure("tipping round", tip.round)
        rep.figure("tipping round p-value", tip.p_value)
    else:
        sec.notes.append("tipping round: skipped (fewer than two rounds)")
    guarded(
        rep, sec, f"{what} plot",
        lambda: rep.image(
            sec, f"{what}_rate", f"{what.capitalize()} rate per round (95% CI across units)",
            atp.rate_figure(rates, f"{what} rate", tip=tip),
        ),
    )  # fmt: skip
    early_warning_part(rep, sec, series, what)


def early_warning_part(rep: Report, sec: Section, series: pd.Series, what: str) -> None:
    """Early-warning indicators of a long per-round rate series (protocols of
    Boettiger, Ross & Hastings; analysis.tipping.early_warning)."""
    from ... import tipping

    if len(series) < MIN_EARLY_WARNING:
        sec.notes.append(
            f"early warning: skipped ({len(series)} rounds; needs {MIN_EARLY_WARNING})"
        )
        return
    ew = guarded(rep, sec, "early warning", lambda: tipping.early_warning(series))
    if ew is not None:
        rep.table(sec, f"{what}_early_warning", f"Early-warning indicators of the {what} rate",
                  ew.table)  # fmt: skip


def memo_part(rep: Report, run: Run) -> None:
    """The strategy memos written by reflection (self-evolution), when there are any."""
    m = atp.memos(run)
    if m.empty:
        return
    sec = rep.section("Alignment tipping: self-evolution (strategy memos)")
    sec.notes.append(
        f"{len(m)} memos written by reflection; mean length {m['chars'].mean():.0f} "
        f"characters; {(~m['valid'].astype(bool)).mean():.1%} invalid (old memo kept)"
    )
    rep.table(sec, "memos", "Strategy memos", m)


def report(rep: Report, run: Run) -> None:
    """Violation rates, tipping, payoff variants, roles, supervision, memos."""
    sec = rep.section("Alignment tipping: self-interested exploration")
    c = guarded(rep, sec, "choices", lambda: atp.choices(run))
    if c is None:
        return
    sec.notes.append(
        "violation rate: share of choices of the violating option; 95% Student t interval "
        "across units (an item of one run, its rate averaged over its agents); unparsable "
        "replies count as not violating and earn 0"
    )
    rates = guarded(rep, sec, "violation rate", lambda: atp.deviant_rate(c))
    if rates is None:
        return
    rep.table(sec, "violation_by_round", "Violation rate per round", rates)
    rep.figure("violation rate (all rounds)", float(c["deviant"].mean()))
    rep.figure("violation rate (first round)", float(rates["rate"].iloc[0]))
    rep.figure("violation rate (last round)", float(rates["rate"].iloc[-1]))
    rep.figure("unparsable choices", float(c["unparsable"].mean()))
    tipping_part(rep, sec, rates, "violation")
    for by, name, title in (
        (["variant", "game_round"], "violation_by_variant", "per payoff variant and round"),
        (["role"], "violation_by_role", "per role"),
        (["supervised"], "violation_by_supervision", "by whether the round was supervised"),
        (["grp", "game_round"], "violation_by_group", "per group and round"),
    ):
        t = guarded(rep, sec, name, partial(atp.deviant_rate, c, by))
        if t is not None:
            rep.table(sec, name, f"Violation rate {title}", t)
    ev = run.events
    rw = ev[ev["kind"] == "reward"]
    if len(rw):
        rep.figure("mean reward per choice", float(rw["value"].mean()))
    inv = guarded(rep, sec, "invalid choices", lambda: llm.llm_decisions(run, None, kind=KIND))
    if inv is not None and int(inv["decisions"].iloc[0]):
        rep.figure("LLM invalid choice rate", float(inv["invalid_rate"].iloc[0]))
    memo_part(rep, run)


def show(run: Run, top: int = 20) -> str:
    """The violation rate per round with its interval, and the tipping round."""
    rates = atp.deviant_rate(run)
    return _show_rates(rates, "violation", top)


def _show_rates(rates: pd.DataFrame, what: str, top: int) -> str:
    lines = [f"{what} rate per round (95% CI across units):"]
    for r in rates.head(top).itertuples(index=False):
        lines.append(
            f"  round {r.game_round}: {r.rate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] "
            f"({r.units} units, {r.decisions} decisions)"
        )
    if len(rates) >= 2:
        tip = atp.tipping_round(rates.set_index("game_round")["rate"])
        flag = "" if tip.p_value < 0.05 else "; no significant shift at the 5% level"
        lines.append(f"tipping round: {tip.round} (permutation p = {tip.p_value:.3g}{flag})")
    return "\n".join(lines)
