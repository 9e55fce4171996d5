"""Cross-check against a peer: early-warning indicators in ewstools and in analysis.tipping.

ewstools (Bury, "ewstools: A Python package for early warning signals of bifurcations in
time series data", JOSS 2023) and ``analysis.tipping`` run on the same synthetic series: a
rising AR(1) (critical slowing down, φ from 0.1 to 0.95) and a stationary one (φ = 0.5),
400 points each, rolling window of 200 points.

What must agree, and within what:

* with ``detrend='ewstools'`` (ewstools' Gaussian filter and bandwidth convention), the
  trend, residuals, rolling variance, lag-1 autocorrelation, skewness and coefficient of
  variation agree to 1e-10 and Kendall's tau of each to 1e-12: the same computation;
* fed ewstools' residuals, the project's indicators give ewstools' tau to 1e-12;
* with the default ``detrend='nadaraya_watson'`` (σ = 40 steps against ewstools' 29.6,
  and no reflection at the ends) the residuals differ, and so does tau: measured here,
  by 0.003 (variance) and 0.0004 (ar1) on the rising series, 0.11 and 0.04 on the
  stationary one; the test bounds each difference at 0.15 and states that the trend of
  the rising series is found either way (tau > 0.9 in both);
* R's earlywarnings convention (``detrend='earlywarnings'``, default bandwidth
  bw.nrd0 → σ = 11.5 steps) moves tau further: 0.35 (variance) on the stationary series.

ewstools' coefficient of variation divides by the signed mean of the state in the window;
the project by its absolute value: the same on these series (their level is 10).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ewstools")

import ewstools  # noqa: E402

from analysis import tipping  # noqa: E402

N, WINDOW = 400, 200
EWS = {"variance": "variance", "ar1": "ac1", "skewness": "skew", "cv": "cv"}


def ar1(phis: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(len(phis))
    for t in range(1, len(phis)):
        x[t] = phis[t] * x[t - 1] + rng.normal()
    return x + 10


SERIES = {
    "rising": ar1(np.linspace(0.1, 0.95, N), 2),
    "stationary": ar1(np.full(N, 0.5), 102),
}


def run_ewstools(x: np.ndarray, bandwidth: float = 0.2) -> ewstools.TimeSeries:
    ts = ewstools.TimeSeries(data=pd.Series(x))
    ts.detrend(method="Gaussian", bandwidth=bandwidth)
    ts.compute_var(rolling_window=WINDOW)
    ts.compute_auto(rolling_window=WINDOW, lag=1)
    ts.compute_skew(rolling_window=WINDOW)
    ts.compute_cv(rolling_window=WINDOW)
    ts.compute_ktau()
    return ts


@pytest.fixture(scope="module", params=sorted(SERIES))
def case(request: pytest.FixtureRequest) -> tuple[str, np.ndarray, ewstools.TimeSeries]:
    x = SERIES[request.param]
    return request.param, x, run_ewstools(x)


def test_ewstools_detrending_reproduces_ewstools(case) -> None:
    _, x, ts = case
    ind = tipping.rolling_indicators(x, WINDOW, bandwidth=0.2, detrend="ewstools")
    assert np.allclose(ind["trend"], ts.state["smoothing"], rtol=0, atol=1e-10)
    assert np.allclose(ind["residual"], ts.state["residuals"], rtol=0, atol=1e-10)
    for ours, theirs in EWS.items():
        a, b = ind[ours].to_numpy(), ts.ews[theirs].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), ours
        assert np.allclose(a, b, rtol=0, atol=1e-10, equal_nan=True), ours
    tau = tipping.kendall_tau(ind[list(EWS)].to_numpy())
    for (ours, theirs), t in zip(EWS.items(), tau, strict=True):
        assert t == pytest.approx(ts.ktau[theirs], abs=1e-12), ours


def test_same_residuals_give_ewstools_tau(case) -> None:
    """The rolling indicators alone, on ewstools' own residuals."""
    _, _, ts = case
    resid = ts.state["residuals"].to_numpy()
    ind = tipping.rolling_indicators(resid, WINDOW, detrend=False)
    tau = tipping.kendall_tau(ind[["variance", "ar1", "skewness"]].to_numpy())
    for name, t in zip(("variance", "ac1", "skew"), tau, strict=True):
        assert t == pytest.approx(ts.ktau[name], abs=1e-12), name


def test_default_detrending_differs_by_a_bounded_amount(case) -> None:
    """Nadaraya–Watson, σ = 10% of the length (the default) against ewstools' default."""
    name, x, ts = case
    ind = tipping.rolling_indicators(x, WINDOW)
    both = tipping.kendall_tau(ind[["variance", "ar1"]].to_numpy())
    tau = dict(zip(("variance", "ar1"), both, strict=True))
    diff = {k: abs(tau[k] - ts.ktau[EWS[k]]) for k in tau}
    assert max(diff.values()) < 0.15, diff
    assert diff["variance"] > 1e-3  # a real difference, not the same computation
    if name == "rising":
        assert min(tau.values()) > 0.9 and min(ts.ktau[k] for k in ("variance", "ac1")) > 0.9


def test_earlywarnings_convention_moves_tau_further() -> None:
    x = SERIES["stationary"]
    ts = run_ewstools(x)
    ind = tipping.rolling_indicators(x, WINDOW, detrend="earlywarnings")
    tau = tipping.kendall_tau(ind[["variance"]].to_numpy())[0]
    assert 0.2 < abs(tau - ts.ktau["variance"]) < 0.5


def test_early_warning_with_ewstools_detrending_matches_its_tau() -> None:
    """The whole pipeline (surrogates included) reports ewstools' tau for the series."""
    x = SERIES["rising"]
    ts = run_ewstools(x)
    ew = tipping.early_warning(x, WINDOW, bandwidth=0.2, n_surrogates=19, detrend="ewstools")
    t = ew.table.set_index("indicator")["tau"]
    for ours, theirs in EWS.items():
        assert t[ours] == pytest.approx(ts.ktau[theirs], abs=1e-12), ours
    assert ew.sigma == pytest.approx(0.25 / 0.675 * 0.2 * N)
