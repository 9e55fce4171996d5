"""Matplotlib figures of the metrics (Agg backend: works headless, in CI and notebooks).

Each function returns a ``matplotlib.figure.Figure``; nothing is shown or saved here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are saved or shown by the caller

import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from . import convergence, cooperation  # noqa: E402
from .drift import EquilibriumFit  # noqa: E402
from .tipping import EarlyWarning  # noqa: E402

__all__ = [
    "cooperation_over_time",
    "resources_per_generation",
    "drift_curve",
    "early_warning_panel",
    "entropy_over_time",
    "network_snapshot",
]


def _fig(nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Figure, Any]:
    fig = Figure(figsize=kw.pop("figsize", (6.4, 4.0)), layout="constrained")
    return fig, fig.subplots(nrows, ncols, **kw)


def cooperation_over_time(obj: Any, time: str = "round", group: str | None = "grp") -> Figure:
    """Cooperation rate over ``time``, one line per ``group`` (None: the whole society)."""
    by = [time] if group is None else [time, group]
    df = cooperation.cooperation_rate(obj, by=by)
    fig, ax = _fig()
    if group is None:
        g = df.groupby(time)["rate"].mean()
        ax.plot(g.index, g.to_numpy(), marker=".", label="all")
    else:
        for name, part in df.groupby(group, observed=True):
            g = part.groupby(time)["rate"].mean()
            ax.plot(g.index, g.to_numpy(), marker=".", label=str(name))
    ax.set(xlabel=time, ylabel="cooperation rate", ylim=(-0.02, 1.02))
    ax.legend(fontsize="small")
    return fig


def resources_per_generation(obj: Any) -> Figure:
    """Mean final resources per generation (donor game), log scale when it spans decades."""
    df = cooperation.mean_resources(obj)
    fig, ax = _fig()
    keys = ["run"] if "run" in df.columns else []
    parts = df.groupby(keys, observed=True) if keys else [("", df)]
    for name, part in parts:
        ax.plot(part["generation"], part["mean_resources"], marker="o", label=str(name) or None)
    v = df["mean_resources"].to_numpy(dtype=float)
    if v.size and np.nanmin(v) > 0 and np.nanmax(v) / np.nanmin(v) > 100:
        ax.set_yscale("log")
    ax.set(xlabel="generation", ylabel="mean final resources")
    if keys:
        ax.legend(fontsize="small")
    return fig


def drift_curve(D: Sequence[float], fit: EquilibriumFit | None = None) -> Figure:
    """A drift series D_t with the fitted equilibrium D* as a dashed line."""
    from .drift import fit_equilibrium

    d = np.asarray(D, dtype=float)
    fit = fit or fit_equilibrium(d)
    fig, ax = _fig()
    ax.plot(np.arange(d.size), d, marker=".", label="D_t")
    if np.isfinite(fit.d_star):
        ax.axhline(fit.d_star, ls="--", color="k", label=f"D* = {fit.d_star:.3g} (b = {fit.b:.2g})")
    ax.set(xlabel="turn", ylabel="drift")
    ax.legend(fontsize="small")
    return fig


def early_warning_panel(ew: EarlyWarning, series: Sequence[float] | None = None) -> Figure:
    """The series with its trend, then each indicator with its Kendall tau and p-value."""
    ind = ew.indicators
    names = list(ew.table["indicator"])
    fig, axes = _fig(len(names) + 1, 1, sharex=True, figsize=(6.4, 1.8 * (len(names) + 1)))
    x = ind.index
    raw = ind["trend"] + ind["residual"] if series is None else pd.Series(series).to_numpy()
    axes[0].plot(x, raw, lw=0.8, label="series")
    axes[0].plot(x, ind["trend"], color="k", lw=1, label="trend")
    axes[0].legend(fontsize="small")
    for ax, row in zip(axes[1:], ew.table.itertuples(index=False), strict=True):
        ax.plot(x, ind[row.indicator])
        ax.set_ylabel(row.indicator)
        ax.set_title(f"tau = {row.tau:.2f}, p = {row.p_value:.3f}", fontsize="small", loc="left")
    axes[-1].set_xlabel("time")
    return fig


def entropy_over_time(obj: Any, tol: float = 0.05, by: str = "round") -> Figure:
    """Behavioural entropy per ``by`` with the time to convergence marked."""
    df = convergence.behavioural_entropy(obj, by=by)
    s = df.groupby(by)["entropy"].mean()
    conv = convergence.time_to_convergence(s, tol=tol)
    fig, ax = _fig()
    ax.plot(s.index, s.to_numpy(), marker=".")
    if conv.converged:
        ax.axvline(conv.time, ls="--", color="k", label=f"converged at {conv.time}")
        ax.legend(fontsize="small")
    ax.set(xlabel=by, ylabel="entropy (bits)")
    return fig


def network_snapshot(
    obj: Any,
    period: str | None = "generation",
    at: Any = None,
    weight: str = "count",
    seed: int = 0,
) -> Figure:
    """The interaction graph of one period, nodes sized by PageRank."""
    g = convergence.interaction_graph(obj, period=period, at=at, weight=weight)
    fig, ax = _fig(figsize=(5, 5))
    if g.number_of_nodes():
        pr = nx.pagerank(g, weight="weight")
        pos = nx.spring_layout(g, seed=seed)
        w = np.array([d["weight"] for *_, d in g.edges(data=True)], dtype=float)
        nx.draw_networkx(
            g,
            pos,
            ax=ax,
            node_size=[3000 * pr[n] for n in g.nodes],
            width=0.5 + 2 * w / w.max() if w.size and w.max() > 0 else 1.0,
            font_size=8,
            arrows=True,
        )
    ax.set_axis_off()
    ax.set_title(f"{period} = {at}" if at is not None else "all interactions", fontsize="small")
    return fig
