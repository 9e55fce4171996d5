"""Report parts that several games share: tipping (change point, early warning), the
drift equilibrium of a decision series, and the interaction network with influence.

Game section modules (``analysis.report.sections``) call these; each guards its metrics
so a metric that cannot run on a run adds a note instead of stopping the report.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import convergence, drift, tipping
from ..run import Run
from .document import Report, Section, guarded

__all__ = ["bin_series", "drift_section", "influence_section", "tipping_section"]

# Guards: below these lengths a metric is not meaningful and its section says so.
MIN_EARLY_WARNING = 40  # points in the series (rolling window = half of it)
MAX_EARLY_WARNING = 300  # longer series are averaged into this many bins (tau is O(n^2))
MIN_CHANGE_POINT = 10
MAX_CHANGE_POINT = 300  # longer series are binned: each permutation's search is O(n^2)
MIN_DRIFT_FIT = 20  # rounds needed for a sliding-window drift series and its D* fit
MAX_NETWORK_DRAW = 2000  # edges: a larger interaction graph is tabulated, not drawn


def bin_series(s: pd.Series, max_len: int) -> tuple[pd.Series, int]:
    """Average a long series into at most ``max_len`` consecutive bins (index: bin start)."""
    if len(s) <= max_len:
        return s, 1
    width = math.ceil(len(s) / max_len)
    pos = np.arange(len(s)) // width
    binned = s.groupby(pos).mean()
    binned.index = s.index.to_numpy()[::width][: len(binned)]
    return binned, width


def tipping_section(rep: Report, sec: Section, series: pd.Series, label: str) -> None:
    """Change point and early-warning indicators of ``series`` (named ``label``) in ``sec``."""
    from .. import plots as figs

    n = len(series)
    if n >= MIN_CHANGE_POINT:
        binned, cp_width = bin_series(series, MAX_CHANGE_POINT)
        cp = guarded(rep, sec, "change point", lambda: tipping.change_point(binned))
        if cp is not None:
            per = f" (on bins of {cp_width} rounds)" if cp_width > 1 else ""
            sec.notes.append(
                f"change point of the {label}{per}: at {cp.round} (95% CI of the position "
                f"{cp.ci[0]}..{cp.ci[1]}), mean {cp.before:.3g} before, {cp.after:.3g} after, "
                f"permutation p = {cp.p_value:.3g}"
            )
            rep.figure("change point (round)", cp.round)
            rep.figure("change point p-value", cp.p_value)
    else:
        sec.notes.append(
            f"change point: skipped (the {label} has {n} points; needs {MIN_CHANGE_POINT})"
        )
    if n < MIN_EARLY_WARNING:
        sec.notes.append(
            f"early warning: skipped (the {label} has {n} points; rolling indicators "
            f"and their Kendall tau need at least {MIN_EARLY_WARNING})"
        )
        return
    s, width = bin_series(series, MAX_EARLY_WARNING)
    if width > 1:
        sec.notes.append(
            f"early warning computed on the {label} averaged over bins of {width} rounds "
            f"({len(s)} points)"
        )
    ew = guarded(rep, sec, "early warning", lambda: tipping.early_warning(s, n_surrogates=100))
    if ew is None:
        return
    sec.notes.append(
        f"early-warning indicators (rolling window {ew.window}, Gaussian detrending in the "
        f"{ew.detrend} convention, bandwidth {ew.bandwidth:.3g}); p-values from "
        f"{ew.n_surrogates} AR(1) and phase-randomised surrogates. Indicators, not a verdict."
    )
    rep.table(sec, "early_warning", f"Early-warning indicators of the {label}", ew.table)
    for row in ew.table.itertuples(index=False):
        rep.figure(
            f"early warning: Kendall tau of {row.indicator} (p)",
            f"{row.tau:.3g} ({row.p_value:.3g})",
        )
    guarded(
        rep,
        sec,
        "early-warning plot",
        lambda: rep.image(
            sec, "early_warning", "Early-warning panel", figs.early_warning_panel(ew, s)
        ),
    )


def drift_section(rep: Report, sec: Section, run: Run, kind: str) -> None:
    """Behavioural drift of the ``kind`` decisions and its equilibrium D* in ``sec``."""
    from .. import plots as figs

    d = run.decisions
    sub = d[d["kind"] == kind]
    n_rounds = int(sub["round"].nunique()) if len(sub) else 0
    if n_rounds < MIN_DRIFT_FIT:
        sec.notes.append(
            f"drift equilibrium: skipped ({n_rounds} rounds of '{kind}' decisions; the "
            f"sliding-window drift series needs at least {MIN_DRIFT_FIT})"
        )
        return
    window = max(3, n_rounds // 10)

    def series() -> pd.DataFrame:
        return drift.action_drift(sub, by="kind", window=window, kind=kind)

    ad = guarded(rep, sec, "behavioural drift", series)
    if ad is None or ad.empty:
        return
    rep.table(
        sec,
        "behavioural_drift",
        f"Behavioural drift per round (TV distance, window {window}, vs the first window)",
        ad,
    )
    D = ad.sort_values("round")["distance"].to_numpy(dtype=float)
    fit = guarded(rep, sec, "drift equilibrium fit", lambda: drift.fit_equilibrium(D))
    if fit is None:
        return
    sec.notes.append(
        f"drift equilibrium (ΔD = a + b·D): D* = {fit.d_star:.3g}, b = {fit.b:.3g} "
        f"(95% CI {fit.b_ci[0]:.3g}..{fit.b_ci[1]:.3g}), restoring force: "
        f"{'yes' if fit.restoring else 'no'}, n = {fit.n}"
    )
    rep.figure("drift equilibrium D*", fit.d_star)
    guarded(
        rep,
        sec,
        "drift plot",
        lambda: rep.image(
            sec, "drift_curve", "Behavioural drift with D*", figs.drift_curve(D, fit)
        ),
    )


def influence_section(rep: Report, run: Run) -> None:
    """The "Interaction network and influence" section: PageRank shares, the graph."""
    from .. import plots as figs

    sec = rep.section("Interaction network and influence")
    inf = guarded(rep, sec, "influence", lambda: convergence.influence(run, "generation", k=3))
    if inf is not None and len(inf):
        rep.table(sec, "influence", "Top-3 PageRank share and persistence per generation", inf)
        rep.figure("top-3 PageRank share (last generation)", float(inf["top_k_share"].iloc[-1]))
    gens = run.rounds["generation"] if len(run.rounds) else pd.Series([0])
    last = int(gens.max())
    d = run.decisions
    edges = guarded(rep, sec, "edges", lambda: n_edges(d[d["generation"] == last]))
    if edges is None:
        return
    if edges > MAX_NETWORK_DRAW:
        sec.notes.append(
            f"network snapshot: not drawn ({edges} distinct edges in generation {last}; "
            f"drawn up to {MAX_NETWORK_DRAW})"
        )
        return
    guarded(
        rep,
        sec,
        "network plot",
        lambda: rep.image(
            sec,
            "network",
            f"Interaction graph of generation {last} (node size: PageRank)",
            figs.network_snapshot(run, "generation", last),
        ),
    )


def n_edges(d: pd.DataFrame) -> int:
    """Distinct directed (agent, partner) edges among decisions with a partner."""
    d = d[d["partner_id"].notna()]
    if d.empty:
        return 0
    a = d["agent_id"].to_numpy(dtype=np.int64)
    b = d["partner_id"].to_numpy(dtype=np.int64)
    return int(np.unique(a * (int(b.max()) + 1) + b).size)
