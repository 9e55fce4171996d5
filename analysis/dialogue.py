"""The drift dialogue's runs: the per-turn divergence D_t and its equilibrium D*
(after Dongre et al. 2025, "Drift No More? Context Equilibria in Multi-Turn LLM
Interactions", arXiv 2510.07777).

The game records one ``drift`` event per dialogue and turn (``games.dialogue``): its
value is D_t, its action the measure (``kl_topk``: the top-k log-probability KL of the
test agent from the goal-conditioned reference; ``embedding``: 1 - cosine similarity of
the two replies' embeddings; ``none``: not measurable). :func:`equilibria` fits
ΔD_t = a + b·D_t (``analysis.drift.fit_equilibrium``) per dialogue and pooled over the
dialogues of each condition (with and without reminders), with Fieller's interval for
D* (``analysis.drift.d_star_interval``). One measure at a time: KL and embedding
distances are on different scales, so a pooled fit never mixes them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .drift import d_star_interval, fit_equilibrium
from .run import frame

__all__ = ["DEFINITIONS", "DRIFT", "drift_series", "equilibria", "drift_figure", "series_matrix"]

DRIFT = "drift"

DEFINITIONS = {
    "D_t": "divergence of the test agent's turn-t reply from the goal-conditioned "
    "reference's on the same history (measure: kl_topk in nats, or embedding = 1 - cos)",
    "D*": "equilibrium of the least-squares fit ΔD_t = a + b·D_t: D* = -a/b; b < 0 is a "
    "restoring force",
    "D* CI": "Fieller's 95% interval for -a/b (unbounded when b is not significant)",
}


def drift_series(obj: Any) -> pd.DataFrame:
    """One row per dialogue and turn: ``dialogue``, ``turn``, ``D`` (the divergence),
    ``measure``, ``reminded`` (a reminder came with this turn), ``condition``
    ('reminders' or 'none': whether the dialogue gets reminders), ``kl_first`` and
    ``positions`` (KL only), ``embedder`` (embedding only), and ``run`` for run sets."""
    ev = frame(obj, "events")
    ev = ev[ev["kind"] == DRIFT]
    cols = ["dialogue", "turn", "D", "measure", "reminded", "condition", "kl_first",
            "positions", "embedder"]  # fmt: skip
    rows = []
    has_run = "run" in ev.columns
    for r in ev.itertuples(index=False):
        data = json.loads(r.data) if isinstance(r.data, str) else {}
        row = {
            "dialogue": int(data.get("dialogue", -1)),
            "turn": int(data.get("turn", -1)),
            "D": float(r.value) if r.value is not None and not pd.isna(r.value) else math.nan,
            "measure": str(data.get("measure", r.action)),
            "reminded": bool(data.get("reminded", False)),
            "condition": str(data.get("condition", "none")),
            "kl_first": data.get("kl_first", math.nan),
            "positions": data.get("positions", 0),
            "embedder": data.get("embedder", ""),
        }
        if has_run:
            row["run"] = r.run
        rows.append(row)
    out = pd.DataFrame(rows, columns=(["run"] if has_run else []) + cols)
    keys = (["run"] if has_run else []) + ["dialogue", "turn"]
    return out.sort_values(keys).reset_index(drop=True)


def series_matrix(series: pd.DataFrame) -> dict[Any, np.ndarray]:
    """Each dialogue's D_t as an array indexed by turn (NaN where not measured)."""
    out = {}
    keys = ["run", "dialogue"] if "run" in series.columns else ["dialogue"]
    for key, g in series.groupby(keys, sort=True):
        turns = g["turn"].to_numpy(dtype=int)
        d = np.full(int(turns.max()) + 1, np.nan)
        d[turns] = g["D"].to_numpy(dtype=float)
        out[key if len(keys) > 1 else key[0]] = d
    return out


def _fit_row(D: Sequence[Any] | np.ndarray, **labels: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(labels)
    try:
        fit = fit_equilibrium(D)
        lo, hi = d_star_interval(D)
    except ValueError as exc:  # too few turns, or a constant series
        return {**row, "n": 0, "note": str(exc)}
    return {
        **row,
        "d_star": fit.d_star,
        "d_star_low": lo,
        "d_star_high": hi,
        "a": fit.a,
        "b": fit.b,
        "b_low": fit.b_ci[0],
        "b_high": fit.b_ci[1],
        "restoring": fit.restoring,
        "n": fit.n,
        "note": "",
    }


def _last_quarter(g: pd.DataFrame) -> float:
    """Mean D over the last quarter of the turns (at least the last turn)."""
    turns = int(g["turn"].max()) + 1
    return float(g.loc[g["turn"] >= turns - max(1, turns // 4), "D"].mean())


def equilibria(obj: Any, per_dialogue: bool = True) -> pd.DataFrame:
    """D* per measure and condition, pooled over the dialogues (``scope`` 'pooled') and,
    with ``per_dialogue``, per dialogue (``scope`` 'dialogue', ``dialogue`` set).

    Columns: ``scope``, ``measure``, ``condition``, ``dialogue``, ``d_star`` with
    ``d_star_low``/``d_star_high`` (Fieller), ``a``, ``b`` and its 95% interval,
    ``restoring``, ``n`` (pairs), ``mean_D`` (mean over all turns), ``last_D`` (mean of
    the last quarter of the turns), ``note`` (why a fit is missing).
    """
    s = drift_series(obj)
    s = s[s["measure"] != "none"]
    rows = []
    group_cols = (["run"] if "run" in s.columns else []) + ["measure", "condition"]
    for key, g in s.groupby(group_cols, sort=True):
        labels = dict(zip(group_cols, key, strict=True))
        mats = series_matrix(g)
        extra = {"mean_D": float(g["D"].mean()), "last_D": _last_quarter(g)}
        pooled = _fit_row(list(mats.values()), scope="pooled", dialogue=None, **labels)
        rows.append({**pooled, "dialogues": len(mats), **extra})
        if per_dialogue:
            for dkey, d in mats.items():
                did = dkey[-1] if isinstance(dkey, tuple) else dkey
                gd = g[g["dialogue"] == did]
                row = _fit_row(d, scope="dialogue", dialogue=int(did), **labels)
                extra = {"mean_D": float(gd["D"].mean()), "last_D": _last_quarter(gd)}
                rows.append({**row, "dialogues": 1, **extra})
    cols = [*group_cols[:-2], "scope", "measure", "condition", "dialogue", "dialogues",
            "d_star", "d_star_low", "d_star_high", "a", "b", "b_low", "b_high",
            "restoring", "n", "mean_D", "last_D", "note"]  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=cols)


def drift_figure(obj: Any, fits: pd.DataFrame | None = None) -> Any:
    """A matplotlib Figure: D_t per dialogue (thin lines), the mean over dialogues per
    condition (thick), reminder turns (dotted verticals) and each pooled D* (dashed)
    with its interval (a band, when bounded)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    s = drift_series(obj)
    s = s[s["measure"] != "none"]
    fits = fits if fits is not None else equilibria(obj, per_dialogue=False)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    colours = {"none": "tab:blue", "reminders": "tab:orange"}
    for (measure, cond), g in s.groupby(["measure", "condition"], sort=True):
        c = colours.get(str(cond), "tab:green")
        for _, gd in g.groupby("dialogue"):
            ax.plot(gd["turn"], gd["D"], color=c, alpha=0.25, linewidth=0.8)
        mean = g.groupby("turn")["D"].mean()
        ax.plot(mean.index, mean.to_numpy(), color=c, marker=".", linewidth=2,
                label=f"{cond}: mean D_t ({measure})")  # fmt: skip
        f = fits[(fits["scope"] == "pooled") & (fits["measure"] == measure)
                 & (fits["condition"] == cond)]  # fmt: skip
        if len(f) and np.isfinite(f["d_star"].iloc[0]):
            d, lo, hi = (float(f[k].iloc[0]) for k in ("d_star", "d_star_low", "d_star_high"))
            ax.axhline(d, color=c, linestyle="--", label=f"{cond}: D* = {d:.3g}")
            if np.isfinite(lo) and np.isfinite(hi):
                ax.axhspan(lo, hi, color=c, alpha=0.1)
    for t in sorted(set(s.loc[s["reminded"], "turn"])):
        ax.axvline(t, color="grey", linestyle=":", linewidth=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="turn", ylabel="drift D_t")
    ax.legend(fontsize="small")
    return fig
