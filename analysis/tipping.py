"""Tipping points: violation series, change points, early-warning indicators, spread.

Early warning follows protocols §7 (Boettiger, Ross & Hastings; Dakos et al. 2012):
indicators on a rolling window after Gaussian-kernel detrending, Kendall's tau of each
indicator over time, and significance from surrogate series (phase-randomised and fitted
AR(1)), never from the nominal p-value of tau. Indicators are reported, not a verdict:
not every regime shift shows critical slowing down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from .run import frame, group_keys

__all__ = [
    "violation_rate",
    "ChangePoint",
    "change_point",
    "binary_segmentation",
    "gaussian_detrend",
    "rolling_indicators",
    "kendall_tau",
    "ar1_surrogates",
    "phase_surrogates",
    "EarlyWarning",
    "early_warning",
    "Roc",
    "roc_auc",
    "adoption_spread",
]

INDICATORS = ("variance", "cv", "ar1", "skewness")

Behaviour = str | Sequence[str] | Callable[[pd.DataFrame], pd.Series]


def _shows(d: pd.DataFrame, behaviour: Behaviour) -> np.ndarray:
    if callable(behaviour):
        return np.asarray(behaviour(d), dtype=bool)
    wanted = [behaviour] if isinstance(behaviour, str) else list(behaviour)
    return d["action"].isin(wanted).to_numpy(dtype=bool)


def violation_rate(
    obj: Any,
    violating: Behaviour = "D",
    kind: str | None = "move",
    by: str | Sequence[str] = "round",
) -> pd.DataFrame:
    """Share of decisions that show ``violating`` (an action, several, or a predicate on
    the decisions frame) per ``by``: the defection / violation series of a run."""
    d = frame(obj, "decisions")
    if kind is not None and "kind" in d.columns:
        d = d[d["kind"] == kind]
    d = d.assign(violation=_shows(d, violating))
    keys = group_keys(d, by)
    return d.groupby(keys, observed=True)["violation"].agg(rate="mean", n="size").reset_index()


# -- change points ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangePoint:
    """A single shift: ``index`` is the first position of the new regime, ``round`` its
    label in the series' index; ``p_value`` from a permutation test of the max statistic
    (exchangeable under no change, so optimistic for autocorrelated series);
    ``ci`` a bootstrap 95% interval of the index."""

    index: int
    round: Any
    before: float
    after: float
    statistic: float
    p_value: float
    ci: tuple[int, int]
    model: str


def _split_stats(x: np.ndarray, model: str, min_size: int) -> np.ndarray:
    """Statistic of splitting before each position k (NaN where a side is too short)."""
    n = x.size
    k = np.arange(1, n)
    c = np.cumsum(x)[:-1]
    m1, m2 = c / k, (x.sum() - c) / (n - k)
    if model == "gaussian":
        # Between-segment sum of squares over the pooled variance: a mean-shift LR.
        stat = k * (n - k) / n * (m1 - m2) ** 2 / max(np.var(x), 1e-12)
    elif model == "bernoulli":

        def ll(p: np.ndarray, m: np.ndarray | float) -> np.ndarray:
            p = np.clip(p, 1e-12, 1 - 1e-12)
            return m * (p * np.log(p) + (1 - p) * np.log(1 - p))

        stat = 2 * (ll(m1, k) + ll(m2, n - k) - ll(np.array(x.mean()), n))
    else:
        raise ValueError("model must be 'gaussian' or 'bernoulli'")
    stat = np.where((k >= min_size) & (n - k >= min_size), stat, np.nan)
    return np.concatenate([[np.nan], stat])


def _best(x: np.ndarray, model: str, min_size: int) -> tuple[int, float]:
    s = _split_stats(x, model, min_size)
    if np.all(np.isnan(s)):
        return -1, float("nan")
    i = int(np.nanargmax(s))
    return i, float(s[i])


def change_point(
    series: Sequence[float] | pd.Series,
    model: str = "gaussian",
    n_perm: int = 200,
    n_boot: int = 200,
    min_size: int = 2,
    seed: int = 0,
) -> ChangePoint:
    """The single most likely shift in mean of ``series`` (Gaussian or Bernoulli model),
    with a permutation p-value and a bootstrap interval of its position."""
    s = pd.Series(series).dropna()
    x = s.to_numpy(dtype=float)
    if x.size < 2 * min_size:
        raise ValueError(f"series too short for a change point (n={x.size})")
    rng = np.random.default_rng(seed)
    i, stat = _best(x, model, min_size)
    null = np.array([_best(rng.permutation(x), model, min_size)[1] for _ in range(n_perm)])
    p = (1 + np.sum(null >= stat - 1e-12)) / (1 + n_perm)
    # Bootstrap: resample each regime within itself, re-locate the shift.
    a, b = x[:i], x[i:]
    locs = [
        _best(np.concatenate([rng.choice(a, a.size), rng.choice(b, b.size)]), model, min_size)[0]
        for _ in range(n_boot)
    ]
    lo, hi = np.percentile(locs, [2.5, 97.5]) if n_boot else (i, i)
    return ChangePoint(
        index=i,
        round=s.index[i],
        before=float(a.mean()),
        after=float(b.mean()),
        statistic=stat,
        p_value=float(p),
        ci=(int(np.floor(lo)), int(np.ceil(hi))),
        model=model,
    )


def binary_segmentation(
    series: Sequence[float] | pd.Series,
    model: str = "gaussian",
    alpha: float = 0.05,
    min_size: int = 5,
    max_changes: int = 5,
    n_perm: int = 200,
    seed: int = 0,
) -> list[ChangePoint]:
    """Several change points: split at the best shift while its permutation p < ``alpha``,
    then search each side. Indices refer to the whole series; sorted by position."""
    s = pd.Series(series).dropna()
    found: list[ChangePoint] = []
    todo = [(0, len(s))]
    while todo and len(found) < max_changes:
        lo, hi = todo.pop(0)
        if hi - lo < 2 * min_size:
            continue
        cp = change_point(s.iloc[lo:hi], model, n_perm, 0, min_size, seed + len(found))
        if cp.p_value >= alpha:
            continue
        k = lo + cp.index
        found.append(
            ChangePoint(k, s.index[k], cp.before, cp.after, cp.statistic, cp.p_value, (k, k), model)
        )
        todo += [(lo, k), (k, hi)]
    return sorted(found, key=lambda c: c.index)


# -- early-warning indicators ---------------------------------------------------------------------


@lru_cache(maxsize=16)
def _kernel(n: int, bandwidth: float) -> np.ndarray:
    t = np.arange(n)
    w = np.exp(-0.5 * ((t[:, None] - t[None, :]) / bandwidth) ** 2)
    return w / w.sum(axis=1, keepdims=True)


def gaussian_detrend(
    x: Sequence[float], bandwidth: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(trend, residuals): Nadaraya–Watson Gaussian-kernel smoothing with standard
    deviation ``bandwidth`` time steps (default 10% of the length, Dakos et al.)."""
    arr = np.asarray(x, dtype=float)
    bw = bandwidth if bandwidth is not None else max(0.1 * arr.size, 1.0)
    trend = _kernel(arr.size, float(bw)) @ arr
    return trend, arr - trend


def _indicators(raw: pd.DataFrame, resid: pd.DataFrame, window: int) -> dict[str, pd.DataFrame]:
    """Rolling indicators, column-wise (one column per series), NaN until the window fills."""
    roll = resid.rolling(window, min_periods=window)
    var = roll.var()
    mean_raw = raw.rolling(window, min_periods=window).mean().abs()
    # CV on the residuals is meaningless (mean ~ 0): scale by the raw level instead.
    cv = np.sqrt(var) / mean_raw.where(mean_raw > 0)
    ar1 = resid.rolling(window, min_periods=window - 1).corr(resid.shift(1))
    ar1 = ar1.where(var.notna())
    skew = roll.skew()
    return {"variance": var, "cv": cv, "ar1": ar1, "skewness": skew}


def rolling_indicators(
    series: Sequence[float] | pd.Series,
    window: int | float = 0.5,
    bandwidth: float | None = None,
    detrend: bool = True,
) -> pd.DataFrame:
    """Variance, coefficient of variation, lag-1 autocorrelation and skewness on a rolling
    window (an int, or a fraction of the length; default half) after Gaussian detrending."""
    s = pd.Series(series).dropna()
    x = s.to_numpy(dtype=float)
    w = _window(window, x.size)
    trend, resid = gaussian_detrend(x, bandwidth) if detrend else (np.zeros_like(x), x)
    ind = _indicators(pd.DataFrame({0: x}), pd.DataFrame({0: resid}), w)
    out = pd.DataFrame({k: v[0].to_numpy() for k, v in ind.items()}, index=s.index)
    out["trend"] = trend
    out["residual"] = resid
    return out


def _window(window: int | float, n: int) -> int:
    w = int(round(window * n)) if isinstance(window, float) and window <= 1 else int(window)
    if not 3 <= w <= n:
        raise ValueError(f"rolling window {w} must be between 3 and the series length {n}")
    return w


def kendall_tau(y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each column of ``y`` against time (row order); NaN rows are
    dropped per column."""
    y = np.asarray(y, dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    out = np.full(y.shape[1], np.nan)
    for j in range(y.shape[1]):
        v = y[:, j][np.isfinite(y[:, j])]
        m = v.size
        if m < 3:
            continue
        sgn = np.sign(v[None, :] - v[:, None])[np.triu_indices(m, 1)]
        n0 = m * (m - 1) / 2
        ties = np.sum(sgn == 0)
        denom = np.sqrt(n0 * (n0 - ties))
        out[j] = sgn.sum() / denom if denom > 0 else np.nan
    return out


def ar1_surrogates(resid: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` AR(1) series (columns) with the residuals' mean, variance and lag-1 coefficient."""
    r = np.asarray(resid, dtype=float)
    mu, sd = r.mean(), r.std()
    c = r - mu
    phi = float(np.clip(np.dot(c[1:], c[:-1]) / max(np.dot(c, c), 1e-12), -0.99, 0.99))
    eps_sd = sd * np.sqrt(1 - phi**2)
    out = np.empty((r.size, n))
    out[0] = rng.normal(0, sd, n)  # start from the stationary distribution
    e = rng.normal(0, eps_sd, (r.size, n))
    for t in range(1, r.size):
        out[t] = phi * out[t - 1] + e[t]
    return out + mu


def phase_surrogates(resid: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` phase-randomised series (columns): same power spectrum, random phases."""
    r = np.asarray(resid, dtype=float)
    f = np.fft.rfft(r - r.mean())
    phases = rng.uniform(0, 2 * np.pi, (f.size, n))
    phases[0] = 0  # keep the mean (DC) real
    if r.size % 2 == 0:
        phases[-1] = 0  # and the Nyquist term
    return np.fft.irfft(np.abs(f)[:, None] * np.exp(1j * phases), n=r.size, axis=0) + r.mean()


@dataclass(frozen=True, eq=False)
class EarlyWarning:
    """Early-warning indicators of one series.

    ``table``: one row per indicator with ``tau`` (Kendall's tau over time), ``p_ar1`` and
    ``p_phase`` (share of surrogates with tau ≥ observed, counting the observed series as
    one of them so p ≥ 1/(n+1)) and ``p_value`` (the larger of the two).
    ``indicators``: the rolling indicators per time step (plus trend and residual).
    """

    table: pd.DataFrame
    indicators: pd.DataFrame
    window: int
    bandwidth: float
    n_surrogates: int
    null_taus: dict[str, np.ndarray] = field(default_factory=dict)


def early_warning(
    series: Sequence[float] | pd.Series,
    window: int | float = 0.5,
    bandwidth: float | None = None,
    n_surrogates: int = 100,
    surrogates: Sequence[str] = ("ar1", "phase"),
    indicators: Sequence[str] = INDICATORS,
    seed: int = 0,
) -> EarlyWarning:
    """Rolling early-warning indicators, their Kendall's tau, and surrogate p-values.

    Surrogates are built from the residuals (AR(1) fitted to them, or phase-randomised),
    added back to the trend, and run through the same detrend → rolling → tau pipeline.
    """
    s = pd.Series(series).dropna()
    x = s.to_numpy(dtype=float)
    w = _window(window, x.size)
    bw = float(bandwidth if bandwidth is not None else max(0.1 * x.size, 1.0))
    ind = rolling_indicators(s, w, bw)
    tau = dict(zip(indicators, kendall_tau(ind[list(indicators)].to_numpy()), strict=True))
    rng = np.random.default_rng(seed)
    trend, resid = ind["trend"].to_numpy(), ind["residual"].to_numpy()
    makers = {"ar1": ar1_surrogates, "phase": phase_surrogates}
    pvals: dict[str, dict[str, float]] = {}
    null_taus: dict[str, np.ndarray] = {}
    for kind in surrogates:
        sur = trend[:, None] + makers[kind](resid, n_surrogates, rng)
        k = _kernel(x.size, bw)
        sres = sur - k @ sur
        sind = _indicators(pd.DataFrame(sur), pd.DataFrame(sres), w)
        for name in indicators:
            taus = kendall_tau(sind[name].to_numpy())
            null_taus[f"{kind}:{name}"] = taus
            ok = taus[np.isfinite(taus)]
            pvals.setdefault(name, {})[kind] = (1 + np.sum(ok >= tau[name])) / (1 + ok.size)
    rows = []
    for name in indicators:
        row = {"indicator": name, "tau": tau[name]}
        for kind in surrogates:
            row[f"p_{kind}"] = pvals[name][kind]
        row["p_value"] = max((pvals[name][k] for k in surrogates), default=np.nan)
        rows.append(row)
    return EarlyWarning(pd.DataFrame(rows), ind, w, bw, n_surrogates, null_taus)


# -- ROC ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Roc:
    """ROC curve (false/true positive rates at decreasing thresholds) and its AUC."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> Roc:
    """ROC of ``scores`` (higher = more likely positive, e.g. an indicator's tau) against
    ground-truth ``labels`` (True = a transition followed). AUC = Mann–Whitney U / (n₊n₋),
    ties counting one half."""
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        raise ValueError("roc_auc needs both positive and negative labels")
    ranks = rankdata(s)
    auc = (ranks[y].sum() - npos * (npos + 1) / 2) / (npos * nneg)
    thr = np.unique(s)[::-1]
    tpr = np.array([0.0, *[(s[y] >= t).mean() for t in thr]])
    fpr = np.array([0.0, *[(s[~y] >= t).mean() for t in thr]])
    return Roc(fpr=fpr, tpr=tpr, thresholds=np.concatenate([[np.inf], thr]), auc=float(auc))


# -- spread through the network ---------------------------------------------------------------------


def adoption_spread(
    obj: Any, behaviour: Behaviour = "D", kind: str | None = "move"
) -> pd.DataFrame:
    """Who first showed ``behaviour`` when, and from whom.

    For each agent that ever shows it: ``adopted_round`` (first round it did), and
    ``source_id``/``source_round``: the partner who most recently showed the behaviour *to
    this agent* (a decision with this agent as partner) strictly before adoption. Agents
    with no such exposure are ``seed``s (they adopted on their own).
    """
    d = frame(obj, "decisions")
    if kind is not None and "kind" in d.columns:
        d = d[d["kind"] == kind]
    d = d[_shows(d, behaviour)]
    run = ["run"] if "run" in d.columns else []
    first = d.groupby([*run, "agent_id"], observed=True)["round"].min().rename("adopted_round")
    adopt = first.reset_index().sort_values("adopted_round")
    exp = d[d["partner_id"].notna()][[*run, "round", "agent_id", "partner_id"]]
    exp = exp.rename(
        columns={"agent_id": "source_id", "partner_id": "agent_id", "round": "source_round"}
    )
    exp["agent_id"] = exp["agent_id"].astype("int64")
    exp = exp.sort_values("source_round")
    adopt["agent_id"] = adopt["agent_id"].astype("int64")
    if run:
        adopt["run"] = adopt["run"].astype(str)
        exp["run"] = exp["run"].astype(str)
    out = pd.merge_asof(
        adopt,
        exp,
        left_on="adopted_round",
        right_on="source_round",
        by=[*run, "agent_id"],
        allow_exact_matches=False,  # exposure must come strictly before adoption
        direction="backward",
    )
    out["seed"] = out["source_id"].isna()
    out["source_id"] = out["source_id"].astype("Int64")
    out["source_round"] = out["source_round"].astype("Int64")
    return out.sort_values([*run, "adopted_round", "agent_id"]).reset_index(drop=True)
