"""Tipping points: violation series, change points, early-warning indicators, spread.

Early warning follows Boettiger, Ross & Hastings ("Early warning signals: the charted and
uncharted territories", Theoretical Ecology 2013) and Dakos et al. (2012): indicators on a
rolling window after Gaussian-kernel detrending, Kendall's tau of each indicator over time,
and significance from surrogate series (phase-randomised and fitted AR(1)), never from the
nominal p-value of tau. Indicators are reported, not a verdict: not every regime shift
shows critical slowing down.

The statistics come from the field's libraries: Kendall's tau, the Mann–Whitney AUC,
Gaussian filtering and AR(1) filtering from scipy, rolling moments from pandas, change
points from ruptures. The detrending conventions of ewstools and of R's earlywarnings are
available by name (:data:`DETRENDS`); ``tests/test_ewstools_crosscheck.py`` runs ewstools
on the same series. ewstools itself is not the engine here: it holds one series per object
and computes the autocorrelation with a Python-level rolling ``apply``, too slow for the
hundreds of surrogate series each p-value needs.
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
    "bic_penalty",
    "MODELS",
    "DETRENDS",
    "DEFAULT_DETREND",
    "detrend_sigma",
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
    label in the series' index; ``statistic`` the split's gain in the segment cost (see
    :func:`change_point`); ``p_value`` from a permutation test of the max statistic
    (exchangeable under no change, so optimistic for autocorrelated series; NaN when a
    penalty, not a test, decided the split); ``ci`` a bootstrap 95% interval of the index."""

    index: int
    round: Any
    before: float
    after: float
    statistic: float
    p_value: float
    ci: tuple[int, int]
    model: str


MODELS = ("gaussian", "bernoulli")


@lru_cache(maxsize=1)
def _bernoulli_cost_class() -> type:
    """A ruptures segment cost: the negative Bernoulli log-likelihood of a 0/1 segment,
    m·(H(p̂)) in nats with H the binary entropy (``scipy.special.entr``). ruptures ships
    Gaussian (l2, normal) costs but none for binary data."""
    from ruptures.base import BaseCost
    from scipy.special import entr

    class CostBernoulli(BaseCost):
        model = "bernoulli"
        min_size = 1

        def fit(self, signal: np.ndarray) -> CostBernoulli:
            self.signal = np.asarray(signal, dtype=float).reshape(-1, 1)
            self._ones = np.concatenate([[0.0], np.cumsum(self.signal[:, 0])])
            return self

        def error(self, start: int, end: int) -> float:
            m = end - start
            p = (self._ones[end] - self._ones[start]) / m
            return float(m * (entr(p) + entr(1 - p)))

    return CostBernoulli


def _segmenter(model: str, min_size: int) -> Any:
    """The ruptures estimator that locates the best single split exactly: KernelCPD with
    the linear kernel (the least-squares, l2, cost; exact dynamic programme, compiled) for
    'gaussian'; Binseg scanning every split with the Bernoulli cost for 'bernoulli'."""
    import ruptures as rpt

    if model == "gaussian":
        return rpt.KernelCPD(kernel="linear", min_size=min_size)
    if model == "bernoulli":
        return rpt.Binseg(custom_cost=_bernoulli_cost_class()(), min_size=min_size, jump=1)
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


def _scale(x: np.ndarray, model: str) -> float:
    """Divisor turning a cost gain into the statistic: the pooled variance (Gaussian, so
    the gain is the between-segment sum of squares over the variance, a mean-shift
    likelihood ratio) or 1/2 (Bernoulli: twice the log-likelihood gain)."""
    return max(float(np.var(x)), 1e-12) if model == "gaussian" else 0.5


def _best(x: np.ndarray, model: str, min_size: int) -> tuple[int, float]:
    """Position and statistic of the best single split of ``x`` (ruptures); among exactly
    equal splits the earliest (KernelCPD's choice; Binseg takes the latest, so the
    Bernoulli scan runs on the reversed series, whose cost is the same). Splits of 0/1
    data can tie in their counts; rounding of the costs then decides."""
    rev = model == "bernoulli"
    algo = _segmenter(model, min_size).fit(x[::-1] if rev else x)
    b = int(algo.predict(n_bkps=1)[0])
    gain = algo.cost.error(0, x.size) - algo.cost.error(0, b) - algo.cost.error(b, x.size)
    return (x.size - b if rev else b), float(gain) / _scale(x, model)


def change_point(
    series: Sequence[float] | pd.Series,
    model: str = "gaussian",
    n_perm: int = 200,
    n_boot: int = 200,
    min_size: int = 2,
    seed: int = 0,
) -> ChangePoint:
    """The single most likely shift in mean of ``series``, with a permutation p-value and
    a bootstrap interval of its position.

    The split is located by ruptures (Truong, Oudre & Vayatis, "Selective review of
    offline change point detection methods", Signal Processing 2020): for
    ``model='gaussian'`` the least-squares (l2) cost, solved exactly by ``KernelCPD``
    with the linear kernel; for ``'bernoulli'`` (0/1 series) the Bernoulli
    log-likelihood cost, every split scanned by ``Binseg``. Each side keeps at least
    ``min_size`` points. ``statistic``: the cost gain of the split, over the series'
    variance (Gaussian: the between-segment sum of squares over the pooled variance) or
    doubled (Bernoulli: the likelihood-ratio statistic). No penalty is involved: the
    shift is tested by permuting the series ``n_perm`` times (p counts the observed
    series among the permutations) and located within ``n_boot`` bootstrap resamples of
    each regime. Among exactly equal splits the earliest is taken.
    Each location costs O(n²) (Gaussian, compiled) or n Python-level cost evaluations
    (Bernoulli): with the default 400 resamples, about 0.5 s at n = 300 and 10–15 s at
    n = 1500; bin a long series first when that matters.
    """
    s = pd.Series(series).dropna()
    x = s.to_numpy(dtype=float)
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
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


def bic_penalty(series: Sequence[float] | pd.Series, model: str = "gaussian") -> float:
    """The Schwarz (BIC) penalty per change point, in units of the segment cost.

    A change adds two parameters (its position and the new level), each costing log n on
    the −2·log-likelihood scale. The Gaussian cost is a sum of squares, i.e. σ²·(−2 log L)
    up to a constant, so the penalty is 2·σ̂²·log n with σ̂ the noise level estimated from
    first differences (σ̂ = MAD(Δx)/√2, normal-consistent, robust to the shifts
    themselves; the standard deviation of Δx/√2 when the MAD is 0). The Bernoulli cost is
    −log L, so its penalty is log n.
    """
    from scipy.stats import median_abs_deviation

    x = pd.Series(series).dropna().to_numpy(dtype=float)
    n = x.size
    if model == "bernoulli":
        return float(np.log(n))
    if model != "gaussian":
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    dx = np.diff(x)
    sigma = float(median_abs_deviation(dx, scale="normal")) / np.sqrt(2)
    if sigma == 0:
        sigma = float(np.std(dx)) / np.sqrt(2)
    return float(2 * max(sigma**2, 1e-12) * np.log(n))


def binary_segmentation(
    series: Sequence[float] | pd.Series,
    model: str = "gaussian",
    alpha: float = 0.05,
    min_size: int = 5,
    max_changes: int = 5,
    n_perm: int = 200,
    seed: int = 0,
    penalty: float | str | None = None,
) -> list[ChangePoint]:
    """Several change points by binary segmentation (Scott & Knott 1974; Vostrikova 1981).

    Two stopping rules. Default (``penalty=None``): split a segment at its best shift
    (located by ruptures, see :func:`change_point`) while that shift's permutation
    p < ``alpha``, then search each side, segments taken first in, first out. With
    ``penalty`` (a number in cost units, or ``'bic'`` for :func:`bic_penalty`): ruptures'
    ``Binseg`` on the same cost (l2 for 'gaussian', Bernoulli for 'bernoulli'; every
    split admissible, ``jump=1``) splits while the best gain exceeds the penalty; then
    ``p_value`` is NaN and ``statistic``, ``before`` and ``after`` refer to the segment
    between the neighbouring change points. At most ``max_changes`` either way (the
    first ones found). Indices refer to the whole series; sorted by position.
    """
    s = pd.Series(series).dropna()
    if penalty is not None:
        return _penalised_segmentation(s, model, min_size, max_changes, penalty)
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


def _penalised_segmentation(
    s: pd.Series, model: str, min_size: int, max_changes: int, penalty: float | str
) -> list[ChangePoint]:
    import ruptures as rpt

    x = s.to_numpy(dtype=float)
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if isinstance(penalty, str):
        if penalty != "bic":
            raise ValueError(f"penalty must be a number or 'bic', got {penalty!r}")
        pen = bic_penalty(x, model)
    else:
        pen = float(penalty)
    if x.size < 2 * min_size:
        return []
    cost = rpt.costs.CostL2() if model == "gaussian" else _bernoulli_cost_class()()
    algo = rpt.Binseg(custom_cost=cost, min_size=min_size, jump=1).fit(x)
    bkps = algo.predict(pen=pen)
    if len(bkps) - 1 > max_changes:  # Binseg adds splits best first: keep the first ones
        bkps = algo.predict(n_bkps=max_changes)
    edges = [0, *bkps]
    out = []
    for lo, k, hi in zip(edges[:-2], edges[1:-1], edges[2:], strict=True):
        gain = algo.cost.error(lo, hi) - algo.cost.error(lo, k) - algo.cost.error(k, hi)
        out.append(
            ChangePoint(
                index=k,
                round=s.index[k],
                before=float(x[lo:k].mean()),
                after=float(x[k:hi].mean()),
                statistic=float(gain) / _scale(x[lo:hi], model),
                p_value=float("nan"),
                ci=(k, k),
                model=model,
            )
        )
    return out


# -- early-warning indicators ---------------------------------------------------------------------

#: Gaussian-kernel detrending conventions, by the tool whose convention each follows.
DETRENDS = ("nadaraya_watson", "ewstools", "earlywarnings")
DEFAULT_DETREND = "nadaraya_watson"
_QUARTILE = 0.3706506  # R's ksmooth: σ = 0.3706506·bandwidth puts the quartiles at ±bw/4
_EWSTOOLS_QUARTILE = 0.25 / 0.675  # ewstools' rounding of the same constant


def detrend_sigma(n: int, detrend: str = DEFAULT_DETREND, bandwidth: float | None = None) -> float:
    """Standard deviation, in time steps, of the Gaussian kernel that the ``detrend``
    convention uses on a series of ``n`` points with its ``bandwidth`` parameter
    (see :func:`gaussian_detrend` for each convention's units and default)."""
    if detrend == "nadaraya_watson":
        sigma = float(bandwidth) if bandwidth is not None else max(0.1 * n, 1.0)
    elif detrend == "ewstools":
        bw = 0.2 if bandwidth is None else float(bandwidth)
        sigma = _EWSTOOLS_QUARTILE * (bw * n if 0 < bw <= 1 else bw)
    elif detrend == "earlywarnings":
        if bandwidth is None:  # generic_ews: round(bw.nrd0(timeindex))
            from scipy.stats import iqr

            t = np.arange(1, n + 1, dtype=float)
            spread = min(float(np.std(t, ddof=1)), float(iqr(t)) / 1.34) if n > 1 else 0.0
            points = round(0.9 * spread * n**-0.2)
        else:  # generic_ews: round(length(Y) * bandwidth / 100), a percent of the length
            points = round(n * float(bandwidth) / 100)
        sigma = _QUARTILE * points
    else:
        raise ValueError(f"detrend must be one of {DETRENDS}, got {detrend!r}")
    if not sigma > 0:
        raise ValueError(f"Gaussian detrending needs a positive bandwidth (got {bandwidth!r})")
    return float(sigma)


def gaussian_detrend(
    x: Sequence[float] | np.ndarray,
    bandwidth: float | None = None,
    convention: str = DEFAULT_DETREND,
) -> tuple[np.ndarray, np.ndarray]:
    """(trend, residuals) of Gaussian-kernel smoothing along the first axis (a 2-D ``x``
    is smoothed column by column), in one of three conventions (:data:`DETRENDS`):

    * ``'nadaraya_watson'`` (default): the Nadaraya–Watson kernel average (Dakos et al.
      2012, "Methods for detecting early warnings of critical transitions in time series
      illustrated using simulated ecological data", PLoS ONE 7:e41010) with kernel
      standard deviation ``bandwidth`` time steps (default 10% of the length), every
      point weighted (no cut-off); near the ends the weights are renormalised over the
      points that exist, so nothing is reflected or padded.
    * ``'ewstools'``: as ``ewstools.TimeSeries.detrend(method='Gaussian')`` (Bury,
      ewstools, JOSS 2023): ``scipy.ndimage`` Gaussian filter, σ = (0.25/0.675)·bw with
      bw = ``bandwidth``·n when ``bandwidth`` ≤ 1 else ``bandwidth`` points (default
      0.2), cut at 4σ, the series reflected at both ends.
    * ``'earlywarnings'``: as R's ``earlywarnings::generic_ews(detrending='gaussian')``
      (Dakos et al. 2012), i.e. ``stats::ksmooth(kernel='normal')``: a Nadaraya–Watson
      average with σ = 0.3706506·bw (quartiles at ±bw/4), points within 4σ only, and
      bw = round(n·``bandwidth``/100), ``bandwidth`` a percent of the length (default:
      round(bw.nrd0(1..n)), as generic_ews does without one).

    All three are computed with ``scipy.ndimage.gaussian_filter1d``; the Nadaraya–Watson
    ones as the ratio of the filtered series to the filtered indicator of the points
    (zero outside), which is the kernel-weighted mean.
    """
    from scipy.ndimage import gaussian_filter1d

    arr = np.asarray(x, dtype=float)
    n = arr.shape[0]
    sigma = detrend_sigma(n, convention, bandwidth)
    if convention == "ewstools":
        trend = gaussian_filter1d(arr, sigma, axis=0, mode="reflect", truncate=4.0)
    else:
        radius = n - 1 if convention == "nadaraya_watson" else int(np.floor(4 * sigma))
        radius = max(min(radius, n - 1), 0)
        kw: dict[str, Any] = {"mode": "constant", "cval": 0.0, "radius": radius}
        num = gaussian_filter1d(arr, sigma, axis=0, **kw)
        den = gaussian_filter1d(np.ones(n), sigma, **kw)
        trend = num / (den[:, None] if arr.ndim == 2 else den)
    return trend, arr - trend


def _indicators(raw: pd.DataFrame, resid: pd.DataFrame, window: int) -> dict[str, pd.DataFrame]:
    """Rolling indicators, column-wise (one column per series), NaN until the window fills.

    Each value at t describes the window of the ``window`` points ending at t: variance
    (ddof 1) and skewness of the residuals (pandas' rolling moments); lag-1
    autocorrelation = Pearson correlation of the window's consecutive pairs (its
    ``window − 1`` pairs, as ``pandas.Series.autocorr`` on the window: the ewstools
    definition); coefficient of variation = residual standard deviation over the
    absolute mean of the raw series in the window.
    """
    roll = resid.rolling(window, min_periods=window)
    var = roll.var()
    mean_raw = raw.rolling(window, min_periods=window).mean().abs()
    # CV on the residuals is meaningless (mean ~ 0): scale by the raw level instead.
    cv = np.sqrt(var) / mean_raw.where(mean_raw > 0)
    # The window's w-1 consecutive pairs end at t: a rolling correlation over w-1 rows.
    ar1 = resid.rolling(window - 1, min_periods=window - 1).corr(resid.shift(1))
    ar1 = ar1.where(var.notna())
    skew = roll.skew()
    return {"variance": var, "cv": cv, "ar1": ar1, "skewness": skew}


def _detrend_name(detrend: bool | str) -> str | None:
    if detrend is True:
        return DEFAULT_DETREND
    if detrend is False or detrend == "none":
        return None
    if detrend not in DETRENDS:
        raise ValueError(f"detrend must be a bool, 'none' or one of {DETRENDS}")
    return str(detrend)


def rolling_indicators(
    series: Sequence[float] | pd.Series,
    window: int | float = 0.5,
    bandwidth: float | None = None,
    detrend: bool | str = True,
) -> pd.DataFrame:
    """Variance, coefficient of variation, lag-1 autocorrelation and skewness on a rolling
    window (an int, or a fraction of the length rounded to the nearest point, where
    ewstools truncates: pass an int to match it exactly; default half) after Gaussian
    detrending: ``detrend`` names the convention
    (:func:`gaussian_detrend`; True = the default 'nadaraya_watson', False or 'none' =
    no detrending), ``bandwidth`` is in that convention's units."""
    s = pd.Series(series).dropna()
    x = s.to_numpy(dtype=float)
    w = _window(window, x.size)
    name = _detrend_name(detrend)
    trend, resid = gaussian_detrend(x, bandwidth, name) if name else (np.zeros_like(x), x)
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
    """Kendall's tau-b (``scipy.stats.kendalltau``) of each column of ``y`` against time
    (row order); NaN rows are dropped per column, and a column with fewer than 3 finite
    values (or a constant one) gives NaN."""
    from scipy.stats import kendalltau

    y = np.asarray(y, dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    out = np.full(y.shape[1], np.nan)
    for j in range(y.shape[1]):
        v = y[:, j][np.isfinite(y[:, j])]
        if v.size >= 3:
            out[j] = kendalltau(np.arange(v.size), v).statistic
    return out


def ar1_surrogates(resid: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` AR(1) series (columns) with the residuals' mean, variance and lag-1 coefficient
    (the Yule–Walker estimate), each started from the stationary distribution and run
    through ``scipy.signal.lfilter``."""
    from scipy.signal import lfilter

    r = np.asarray(resid, dtype=float)
    mu, sd = r.mean(), r.std()
    c = r - mu
    phi = float(np.clip(np.dot(c[1:], c[:-1]) / max(np.dot(c, c), 1e-12), -0.99, 0.99))
    eps_sd = sd * np.sqrt(1 - phi**2)
    out = np.empty((r.size, n))
    out[0] = rng.normal(0, sd, n)  # start from the stationary distribution
    e = rng.normal(0, eps_sd, (r.size, n))
    if r.size > 1:
        out[1:] = lfilter([1.0], [1.0, -phi], e[1:], axis=0, zi=phi * out[:1])[0]
    return out + mu


def phase_surrogates(resid: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` phase-randomised series (columns): same power spectrum, random phases
    (Theiler et al. 1992, "Testing for nonlinearity in time series: the method of
    surrogate data", Physica D 58)."""
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
    ``bandwidth``: the detrending kernel's bandwidth in time steps, in the convention's
    own terms (Nadaraya–Watson: σ; ewstools and earlywarnings: the quartile bandwidth);
    ``sigma``: the kernel's standard deviation in time steps; ``detrend``: the convention.
    """

    table: pd.DataFrame
    indicators: pd.DataFrame
    window: int
    bandwidth: float
    n_surrogates: int
    null_taus: dict[str, np.ndarray] = field(default_factory=dict)
    detrend: str = DEFAULT_DETREND
    sigma: float = float("nan")


def early_warning(
    series: Sequence[float] | pd.Series,
    window: int | float = 0.5,
    bandwidth: float | None = None,
    n_surrogates: int = 100,
    surrogates: Sequence[str] = ("ar1", "phase"),
    indicators: Sequence[str] = INDICATORS,
    seed: int = 0,
    detrend: str = DEFAULT_DETREND,
) -> EarlyWarning:
    """Rolling early-warning indicators, their Kendall's tau, and surrogate p-values.

    ``detrend`` names the Gaussian detrending convention and ``bandwidth`` is in its
    units (:func:`gaussian_detrend`). The default, 'nadaraya_watson', is the kernel
    average Dakos et al. (2012) describe, with the bandwidth stated directly as the
    kernel's standard deviation and no reflected or cut-off edges; it is also what this
    function computed before the conventions were named, so earlier reports stay
    comparable. 'ewstools' and 'earlywarnings' reproduce those tools' detrending. Their
    defaults smooth less (on 400 points σ = 29.6 and 11.5 steps against 40), which moves
    Kendall's tau by up to about 0.35 on the same series (a stationary AR(1) of 400
    points); with the same detrending, ewstools' tau is reproduced exactly. Surrogates
    are built from the residuals (AR(1) fitted to them, or phase-randomised), added back
    to the trend, and run through the same detrend → rolling → tau pipeline.
    """
    s = pd.Series(series).dropna()
    x = s.to_numpy(dtype=float)
    w = _window(window, x.size)
    if detrend not in DETRENDS:
        raise ValueError(f"detrend must be one of {DETRENDS}, got {detrend!r}")
    sigma = detrend_sigma(x.size, detrend, bandwidth)
    bw = (
        sigma
        if detrend == "nadaraya_watson"
        else sigma / (_EWSTOOLS_QUARTILE if detrend == "ewstools" else _QUARTILE)
    )
    ind = rolling_indicators(s, w, bandwidth, detrend)
    tau = dict(zip(indicators, kendall_tau(ind[list(indicators)].to_numpy()), strict=True))
    rng = np.random.default_rng(seed)
    trend, resid = ind["trend"].to_numpy(), ind["residual"].to_numpy()
    makers = {"ar1": ar1_surrogates, "phase": phase_surrogates}
    pvals: dict[str, dict[str, float]] = {}
    null_taus: dict[str, np.ndarray] = {}
    for kind in surrogates:
        sur = trend[:, None] + makers[kind](resid, n_surrogates, rng)
        _, sres = gaussian_detrend(sur, bandwidth, detrend)
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
    return EarlyWarning(pd.DataFrame(rows), ind, w, bw, n_surrogates, null_taus, detrend, sigma)


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
    ground-truth ``labels`` (True = a transition followed). AUC = the Mann–Whitney U of the
    positives (``scipy.stats.mannwhitneyu``) over n₊n₋, ties counting one half (Hanley &
    McNeil 1982). The curve has one point per distinct score, plus (0, 0)."""
    from scipy.stats import mannwhitneyu

    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        raise ValueError("roc_auc needs both positive and negative labels")
    auc = mannwhitneyu(s[y], s[~y], method="asymptotic").statistic / (npos * nneg)
    thr = np.unique(s)[::-1]
    # Scores at or above each threshold: count below it in the sorted scores.
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    tpr = np.concatenate([[0.0], (npos - np.searchsorted(pos, thr, side="left")) / npos])
    fpr = np.concatenate([[0.0], (nneg - np.searchsorted(neg, thr, side="left")) / nneg])
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
