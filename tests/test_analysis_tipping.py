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
