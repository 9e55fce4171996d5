"""Tipping: violation series, change points, early warning with surrogates, ROC, spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import tipping


def ar1(phis, seed, sd=1.0):
    rng = np.random.default_rng(seed)
    x = np.zeros(len(phis))
    for t in range(1, len(phis)):
        x[t] = phis[t] * x[t - 1] + rng.normal(0, sd)
    return x + 10


def test_violation_rate_per_round():
    d = pd.DataFrame({"round": [1, 1, 2, 2], "kind": "move", "action": ["C", "D", "D", "D"]})
    out = tipping.violation_rate(d).set_index("round")["rate"]
    assert list(out) == [0.5, 1.0]
    custom = tipping.violation_rate(d, violating=lambda f: f["action"] == "C")
    assert list(custom["rate"]) == [0.5, 0.0]


def test_change_point_gaussian_planted():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 60), rng.normal(1.5, 1, 60)])
    cp = tipping.change_point(pd.Series(x, index=range(100, 220)), n_perm=99, n_boot=99)
    assert abs(cp.index - 60) <= 4 and abs(cp.round - 160) <= 4
    assert cp.p_value < 0.05 and cp.after > cp.before
    assert cp.ci[0] <= cp.index <= cp.ci[1]


def test_change_point_bernoulli_planted_and_null():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.random(50) < 0.1, rng.random(50) < 0.7]).astype(float)
    cp = tipping.change_point(x, model="bernoulli", n_perm=99, n_boot=50)
    assert abs(cp.index - 50) <= 5 and cp.p_value < 0.05
    null = tipping.change_point(rng.random(100) < 0.3, model="bernoulli", n_perm=99, n_boot=0)
    assert null.p_value > 0.05


def test_binary_segmentation_two_shifts():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 0.5, 40), rng.normal(3, 0.5, 40), rng.normal(0, 0.5, 40)])
    cps = tipping.binary_segmentation(x, n_perm=49)
    assert [c.index for c in cps] == pytest.approx([40, 80], abs=3)


def test_kendall_tau_matches_scipy():
    assert tipping.kendall_tau(np.array([1.0, 2, 3]))[0] == pytest.approx(1.0)
    assert tipping.kendall_tau(np.array([3.0, 2, 1]))[0] == pytest.approx(-1.0)
    y = np.random.default_rng(0).normal(size=50)
    y[5] = y[6]  # a tie
    assert tipping.kendall_tau(y)[0] == pytest.approx(stats.kendalltau(np.arange(50), y)[0])


def test_surrogates_preserve_their_statistics():
    rng = np.random.default_rng(0)
    x = ar1(np.full(2000, 0.7), 0) - 10
    s = tipping.ar1_surrogates(x, 20, rng)
    lag1 = np.mean([np.corrcoef(c[1:], c[:-1])[0, 1] for c in s.T])
    assert lag1 == pytest.approx(0.7, abs=0.05)
    p = tipping.phase_surrogates(x, 3, rng)
    assert np.allclose(np.abs(np.fft.rfft(p[:, 0])), np.abs(np.fft.rfft(x)), atol=1e-6)


def test_rolling_indicators_and_detrend():
    x = np.linspace(0, 10, 100)
    trend, resid = tipping.gaussian_detrend(x, bandwidth=5)
    assert np.allclose(trend[25:75], x[25:75], atol=1e-3)  # linear interior is kept
    ind = tipping.rolling_indicators(ar1(np.full(200, 0.8), 3), window=0.5)
    assert ind["variance"].iloc[:99].isna().all() and ind["variance"].iloc[99:].notna().all()
    assert set(tipping.INDICATORS) <= set(ind.columns)
    with pytest.raises(ValueError):
        tipping.rolling_indicators(np.arange(10.0), window=2)


def test_early_warning_rising_ar1_is_significant():
    """Critical slowing down: phi rises 0.1 -> 0.95; variance and AR(1) rise significantly."""
    x = ar1(np.linspace(0.1, 0.95, 400), seed=2)
    ew = tipping.early_warning(x, n_surrogates=99, seed=2)
    t = ew.table.set_index("indicator")
    assert t.loc["ar1", "tau"] > 0.5 and t.loc["variance", "tau"] > 0.5
    assert t.loc["ar1", "p_value"] < 0.05 and t.loc["variance", "p_value"] < 0.05
    assert {"p_ar1", "p_phase"} <= set(t.columns)
    assert ew.window == 200


def test_early_warning_stationary_ar1_is_not():
    x = ar1(np.full(400, 0.5), seed=102)
    ew = tipping.early_warning(x, n_surrogates=99, seed=2)
    assert (ew.table["p_value"] > 0.05).all()


def test_roc_auc_hand_computed():
    r = tipping.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert r.auc == pytest.approx(0.75)
    assert tipping.roc_auc([1, 2, 3, 4], [0, 0, 1, 1]).auc == 1.0
    assert tipping.roc_auc([4, 3, 2, 1], [0, 0, 1, 1]).auc == 0.0
    assert r.tpr[-1] == 1.0 and r.fpr[-1] == 1.0
    with pytest.raises(ValueError):
        tipping.roc_auc([1, 2], [1, 1])


def test_adoption_spread_chain():
    rows = [
        (1, 1, 2, "D"),
        (1, 2, 1, "C"),  # 1 defects on 2 first
        (1, 4, 3, "D"),
        (1, 3, 4, "C"),  # 4 defects on its own too
        (2, 2, 3, "D"),
        (2, 3, 2, "C"),  # 2 adopts at round 2, exposed by 1 at round 1
        (3, 3, 5, "D"),
        (3, 5, 3, "C"),  # 3 exposed by 4 (round 1) and 2 (round 2)
    ]
    d = pd.DataFrame(rows, columns=["round", "agent_id", "partner_id", "action"]).assign(
        kind="move"
    )
    out = tipping.adoption_spread(d).set_index("agent_id")
    assert out.loc[1, "seed"] and out.loc[4, "seed"]
    assert out.loc[2, "adopted_round"] == 2 and out.loc[2, "source_id"] == 1
    assert out.loc[3, "source_id"] == 2 and out.loc[3, "source_round"] == 2  # most recent
    assert 5 not in out.index


# -- library-backed statistics against hand-computed references ----------------------------


def _scan_split(x, model, min_size):
    """Reference: every split's statistic by cumulative sums (the project's former scan)."""
    n = x.size
    k = np.arange(1, n)
    c = np.cumsum(x)[:-1]
    m1, m2 = c / k, (x.sum() - c) / (n - k)
    if model == "gaussian":
        stat = k * (n - k) / n * (m1 - m2) ** 2 / max(np.var(x), 1e-12)
    else:

        def ll(p, m):
            p = np.clip(p, 1e-12, 1 - 1e-12)
            return m * (p * np.log(p) + (1 - p) * np.log(1 - p))

        stat = 2 * (ll(m1, k) + ll(m2, n - k) - ll(np.array(x.mean()), n))
    stat = np.where((k >= min_size) & (n - k >= min_size), stat, np.nan)
    return np.concatenate([[np.nan], stat])


@pytest.mark.parametrize("model", ["gaussian", "bernoulli"])
def test_ruptures_split_matches_the_exhaustive_scan(model):
    """ruptures (KernelCPD l2 / Binseg Bernoulli) finds an optimal split with the scan's
    statistic on 80 random series, and the scan's own (first) argmax whenever no other
    split comes within 1e-9. On 0/1 data different splits can tie exactly in counts;
    which of them wins then depends on the rounding of the costs, in ruptures as in the
    scan. The Bernoulli statistic differs by < 1e-8: the scan clips p to
    [1e-12, 1 − 1e-12], scipy's entr takes 0·log 0 = 0 exactly."""
    rng = np.random.default_rng(7)
    ties = 0
    for _ in range(80):
        n = int(rng.integers(12, 120))
        k = int(rng.integers(3, n - 3))
        if model == "gaussian":
            x = np.concatenate([rng.normal(0, 1, k), rng.normal(rng.normal(), 1, n - k)])
        else:
            x = np.concatenate([rng.random(k) < rng.random(), rng.random(n - k) < 0.5])
            x = x.astype(float)
        x = rng.permutation(x) if rng.random() < 0.3 else x
        scan = _scan_split(x, model, 2)
        best = np.nanmax(scan)
        got_k, got_stat = tipping._best(x, model, 2)
        assert got_stat == pytest.approx(best, rel=1e-8, abs=1e-8)
        assert scan[got_k] == pytest.approx(best, rel=1e-8, abs=1e-8)
        near = np.flatnonzero(scan >= best - 1e-9)
        if near.size == 1:
            assert got_k == near[0]
        ties += near.size > 1
    assert ties < 20  # most series have a unique best split


def test_change_point_statistic_hand_computed():
    x = np.array([0.0, 0, 0, 0, 2, 2, 2, 2])
    cp = tipping.change_point(x, n_perm=19, n_boot=0)
    # between-segment SS = 4·4/8·(0−2)² = 8, pooled variance 1: statistic 8
    assert cp.index == 4 and cp.statistic == pytest.approx(8.0)
    assert cp.before == 0 and cp.after == 2 and cp.ci == (4, 4)
    with pytest.raises(ValueError):
        tipping.change_point(x, model="poisson")


def test_bic_penalty_hand_computed():
    x = np.random.default_rng(8).normal(0, 2, 50)
    dx = np.diff(x)
    mad = np.median(np.abs(dx - np.median(dx))) * 1.482602218505602  # 1/Φ⁻¹(3/4)
    assert tipping.bic_penalty(x) == pytest.approx(2 * (mad / np.sqrt(2)) ** 2 * np.log(50))
    assert tipping.bic_penalty(x, "bernoulli") == pytest.approx(np.log(50))
    # Differences with MAD 0 fall back to their standard deviation.
    steps = np.array([0.0, 1, 0, 1, 0, 1, 5, 6, 5, 6])
    want = 2 * np.std(np.diff(steps)) ** 2 / 2 * np.log(10)
    assert tipping.bic_penalty(steps) == pytest.approx(want)


def test_binary_segmentation_with_a_penalty():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 0.5, 40), rng.normal(3, 0.5, 40), rng.normal(0, 0.5, 40)])
    cps = tipping.binary_segmentation(x, penalty="bic")
    assert [c.index for c in cps] == pytest.approx([40, 80], abs=3)
    assert all(np.isnan(c.p_value) for c in cps)
    assert cps[0].before == pytest.approx(x[: cps[0].index].mean())
    assert cps[0].after == pytest.approx(x[cps[0].index : cps[1].index].mean())
    # A penalty larger than any gain finds nothing; max_changes caps the number found.
    assert tipping.binary_segmentation(x, penalty=1e9) == []
    assert len(tipping.binary_segmentation(x, penalty=1e-3, max_changes=3)) == 3
    b = np.concatenate([rng.random(60) < 0.1, rng.random(60) < 0.8]).astype(float)
    cpb = tipping.binary_segmentation(b, model="bernoulli", penalty="bic")
    assert [c.index for c in cpb] == pytest.approx([60], abs=4)
    with pytest.raises(ValueError):
        tipping.binary_segmentation(x, penalty="aic")


def test_kendall_tau_drops_nan_and_short_columns():
    y = np.array([[1.0, np.nan, 5], [np.nan, 1, 5], [2, 2, 5], [3, np.nan, 5], [2.5, np.nan, 5]])
    tau = tipping.kendall_tau(y)
    assert tau[0] == pytest.approx(stats.kendalltau([0, 1, 2, 3], [1, 2, 3, 2.5])[0])
    assert np.isnan(tau[1]) and np.isnan(tau[2])  # two points; a constant column
    # tau-b by hand: concordant minus discordant pairs over √(n0·(n0 − ties in y)).
    v = np.array([3.0, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    sgn = np.sign(v[None, :] - v[:, None])[np.triu_indices(v.size, 1)]
    n0 = v.size * (v.size - 1) / 2
    want = sgn.sum() / np.sqrt(n0 * (n0 - np.sum(sgn == 0)))
    assert tipping.kendall_tau(v)[0] == pytest.approx(want)


def test_nadaraya_watson_detrend_is_the_kernel_average():
    """The default detrending against the explicit kernel-weighted mean (every point)."""
    x = np.random.default_rng(3).normal(size=60).cumsum()
    t = np.arange(60)
    w = np.exp(-0.5 * ((t[:, None] - t[None, :]) / 6.0) ** 2)
    trend, resid = tipping.gaussian_detrend(x, 6.0)
    assert np.allclose(trend, (w @ x) / w.sum(axis=1), atol=1e-12)
    assert np.allclose(resid, x - trend)
    both = np.column_stack([x, 2 * x])
    assert np.allclose(tipping.gaussian_detrend(both, 6.0)[0][:, 1], 2 * trend)


def test_earlywarnings_detrend_is_ksmooth():
    """R's ksmooth(kernel='normal', bandwidth=bw): σ = 0.3706506·bw, points within 4σ,
    weighted mean; generic_ews takes bw = round(n·bandwidth/100) (percent) or, by
    default, round(bw.nrd0(1..n))."""
    x = np.random.default_rng(4).normal(size=120).cumsum()
    bw = round(120 * 10 / 100)  # bandwidth=10 (%)
    sd = 0.3706506 * bw
    want = np.empty(120)
    for j in range(120):
        d = np.abs(np.arange(120) - j)
        w = np.where(d <= 4 * sd, np.exp(-0.5 * (d / sd) ** 2), 0.0)
        want[j] = (w * x).sum() / w.sum()
    trend, _ = tipping.gaussian_detrend(x, 10, "earlywarnings")
    assert np.allclose(trend, want, atol=1e-12)
    # bw.nrd0(1:400) = 0.9 · min(sd, IQR/1.34) · 400^(-1/5) = 31.37, rounded to 31.
    nrd0 = 0.9 * min(np.std(np.arange(1, 401), ddof=1), 199.5 / 1.34) * 400**-0.2
    assert round(nrd0) == 31
    assert tipping.detrend_sigma(400, "earlywarnings") == pytest.approx(0.3706506 * 31)
    assert tipping.detrend_sigma(400, "ewstools") == pytest.approx(0.25 / 0.675 * 80)
    assert tipping.detrend_sigma(400, "ewstools", 25) == pytest.approx(0.25 / 0.675 * 25)
    assert tipping.detrend_sigma(400) == 40.0
    with pytest.raises(ValueError):
        tipping.detrend_sigma(400, "loess")
    with pytest.raises(ValueError):
        tipping.detrend_sigma(5, "earlywarnings", 1)  # round(0.05) = 0 points


def test_lag1_autocorrelation_is_the_windows_own():
    """ar1 at t is the Pearson correlation of the window's w−1 consecutive pairs, as
    ewstools (pandas' autocorr on the window). The former definition paired the window's
    first point with the one before the window (w pairs): on the rising AR(1) of
    test_early_warning_rising_ar1_is_significant that moved the ar1 tau by 0.0016–0.007."""
    x = ar1(np.full(120, 0.6), 9)
    ind = tipping.rolling_indicators(x, window=40, detrend=False)
    for t in (39, 70, 119):
        win = x[t - 39 : t + 1]
        assert ind["ar1"].iloc[t] == pytest.approx(np.corrcoef(win[1:], win[:-1])[0, 1])
        assert ind["variance"].iloc[t] == pytest.approx(np.var(win, ddof=1))
        assert ind["skewness"].iloc[t] == pytest.approx(stats.skew(win, bias=False))
    assert ind["ar1"].iloc[:39].isna().all()


def test_ar1_surrogates_follow_the_recursion():
    """lfilter against the explicit recursion x_t = φ·x_{t−1} + e_t on the same draws."""
    r = ar1(np.full(300, 0.4), 1) - 10
    got = tipping.ar1_surrogates(r, 4, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    c = r - r.mean()
    phi = np.dot(c[1:], c[:-1]) / np.dot(c, c)
    want = np.empty((300, 4))
    want[0] = rng.normal(0, r.std(), 4)
    e = rng.normal(0, r.std() * np.sqrt(1 - phi**2), (300, 4))
    for t in range(1, 300):
        want[t] = phi * want[t - 1] + e[t]
    assert np.allclose(got, want + r.mean(), atol=1e-12)


def test_early_warning_records_its_detrending():
    x = ar1(np.linspace(0.1, 0.9, 200), seed=4)
    ew = tipping.early_warning(x, n_surrogates=19, detrend="ewstools")
    assert ew.detrend == "ewstools" and ew.bandwidth == pytest.approx(40.0)
    assert ew.sigma == pytest.approx(0.25 / 0.675 * 40)
    default = tipping.early_warning(x, n_surrogates=19)
    assert default.detrend == "nadaraya_watson" and default.bandwidth == default.sigma == 20.0
    with pytest.raises(ValueError):
        tipping.early_warning(x, detrend="linear")
    with pytest.raises(ValueError):
        tipping.rolling_indicators(x, detrend="linear")


def test_roc_auc_ties_against_the_pair_count():
    """AUC = P(score₊ > score₋) + ½·P(tie), counted over every (positive, negative) pair."""
    rng = np.random.default_rng(6)
    s = rng.integers(0, 4, 40).astype(float)
    y = rng.random(40) < 0.4
    pos, neg = s[y][:, None], s[~y][None, :]
    want = ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)
    r = tipping.roc_auc(s, y)
    assert r.auc == pytest.approx(want)
    assert np.trapezoid(r.tpr, r.fpr) == pytest.approx(want)  # the curve's area agrees
    assert list(r.thresholds[1:]) == sorted(set(s), reverse=True)


def test_roc_matches_scikit_learn():
    """An independent implementation, where installed (it comes with the embeddings extra)."""
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(11)
    s = np.round(rng.normal(size=60), 1)
    y = rng.random(60) < 0.3
    r = tipping.roc_auc(s, y)
    assert r.auc == pytest.approx(skm.roc_auc_score(y, s))
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    assert np.allclose(r.fpr, fpr) and np.allclose(r.tpr, tpr)
