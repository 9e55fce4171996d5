"""Report section of the drift dialogue: the D_t curve per condition with the pooled
D* and its interval, the fits per dialogue, the measures used, and the turns' texts.

Every figure comes from :mod:`analysis.dialogue` (definitions there).
"""

from __future__ import annotations

import math

import numpy as np

from ... import dialogue, llm
from ...run import Run
from ..document import Report, guarded

__all__ = ["report", "show"]


def report(rep: Report, run: Run) -> None:
    """D_t and D*, pooled and per dialogue, with and without reminders."""
    sec = rep.section("Drift dialogue: divergence from the goal-conditioned reference")
    if not (run.events["kind"] == dialogue.DRIFT).any():
        sec.notes.append("no 'drift' events in this run: nothing to measure yet")
        return
    game = run.game or {}
    sec.notes.append(
        f"{game.get('dialogues', '?')} dialogues of {game.get('turns', '?')} turns; "
        f"reminders at turns {game.get('reminders', [])} for "
        f"{game.get('reminded_dialogues', '?')} dialogues; measure {game.get('measure', '?')} "
        f"(top-{game.get('top_k', '?')}, {game.get('kl_support', '?')} support, floor "
        f"{game.get('kl_floor', '?')})"
    )
    sec.notes += [f"{k}: {v}" for k, v in dialogue.DEFINITIONS.items()]
    series = guarded(rep, sec, "drift series", lambda: dialogue.drift_series(run))
    if series is None or not len(series):
        return
    counts = series["measure"].value_counts()
    sec.notes.append(
        "measures used: " + ", ".join(f"{m} ({int(c)} turns)" for m, c in counts.items())
    )
    fits = guarded(rep, sec, "equilibria", lambda: dialogue.equilibria(run))
    if fits is not None and len(fits):
        pooled = fits[fits["scope"] == "pooled"]
        rep.table(sec, "drift_equilibria", "D* pooled over dialogues, per measure and condition",
                  pooled)  # fmt: skip
        for r in pooled.itertuples(index=False):
            label = f"D* ({r.measure}, {r.condition})"
            if isinstance(r.d_star, float) and math.isfinite(r.d_star):
                lo, hi = r.d_star_low, r.d_star_high
                ci = (
                    f" [{lo:.3g}, {hi:.3g}]"
                    if np.isfinite(lo) and np.isfinite(hi)
                    else " [unbounded]"
                )
                rep.figure(label, f"{r.d_star:.4g}{ci}")
                rep.figure(f"restoring force b ({r.measure}, {r.condition})", float(r.b))
            else:
                rep.figure(label, f"no fit ({r.note})")
        per = fits[fits["scope"] == "dialogue"]
        if len(per):
            rep.table(sec, "drift_equilibria_by_dialogue", "D* per dialogue", per)
    guarded(
        rep, sec, "drift plot",
        lambda: rep.image(sec, "drift_curve", "D_t per turn, D* and its interval",
                          dialogue.drift_figure(run, fits)),
    )  # fmt: skip
    rep.table(sec, "drift_series", "D_t per dialogue and turn", series)
    inv = guarded(rep, sec, "invalid replies", lambda: llm.llm_decisions(run, None, kind="reply"))
    if inv is not None and len(inv) and int(inv["decisions"].iloc[0]):
        rep.figure("LLM invalid reply rate", float(inv["invalid_rate"].iloc[0]))


def show(run: Run, top: int = 20) -> str:
    """The pooled D* per measure and condition."""
    if not (run.events["kind"] == dialogue.DRIFT).any():
        return ""
    fits = dialogue.equilibria(run, per_dialogue=False)
    lines = []
    for r in fits.itertuples(index=False):
        if isinstance(r.d_star, float) and math.isfinite(r.d_star):
            lines.append(
                f"drift dialogue ({r.measure}, {r.condition}): D* = {r.d_star:.4g} "
                f"[{r.d_star_low:.3g}, {r.d_star_high:.3g}], b = {r.b:.3g}, "
                f"{r.dialogues} dialogues, mean D_t {r.mean_D:.4g}"
            )
        else:
            lines.append(f"drift dialogue ({r.measure}, {r.condition}): no fit ({r.note})")
    return "\n".join(lines)
