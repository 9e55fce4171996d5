"""The drift dialogue: the top-k KL against hand-computed distributions, the embedding
fallback, the synthetic drift process's known D* (and reminders lowering it), config
errors, resume and replay identity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import analysis
from agents.dialogue import REFERENCE_DIST, SyntheticDrift, make_dialogue_policy, mixture_for_kl
from analysis import dialogue as adlg
from analysis.drift import LexicalEmbedder, d_star_interval, fit_equilibrium
from games.dialogue import DialogueGame, Goal, Utterance, reply_divergence, reply_kl, topk_kl
from games.protocol import IllegalAction
from society.errors import UserError
from society.runner import start_run
from society.scenario import load_scenario, resolve
from tests.helpers import ROOT, assert_same_store, query, table_rows
from tests.test_resume import interrupt_resume_compare

LOG = math.log


# -- the KL on the top-k support ----------------------------------------------------------
def test_topk_kl_union_with_floor_by_hand():
    q = {"a": LOG(0.6), "b": LOG(0.4)}
    p = {"a": LOG(0.5), "b": LOG(0.3), "c": LOG(0.2)}
    eps = 1e-6
    # By hand: q on {a, b, c} is (0.6, 0.4, eps) renormalised; p is (0.5, 0.3, 0.2).
    z = 1.0 + eps
    qs = [0.6 / z, 0.4 / z, eps / z]
    ps = [0.5, 0.3, 0.2]
    expected = sum(x * math.log(x / y) for x, y in zip(qs, ps, strict=True))
    assert topk_kl(q, p, floor=eps) == pytest.approx(expected, rel=1e-12)
    # The floor is what keeps KL(p || q) finite: c is missing from q's top-k.
    back = sum(y * math.log(y / x) for x, y in zip(qs, ps, strict=True))
    assert topk_kl(p, q, floor=eps) == pytest.approx(back, rel=1e-12)
    assert back > 2.0  # 0.2·log(0.2/1e-6) dominates


def test_topk_kl_shared_support_by_hand():
    q = {"a": LOG(0.6), "b": LOG(0.4)}
    p = {"a": LOG(0.5), "b": LOG(0.3), "c": LOG(0.2)}
    # Shared {a, b}: q = (0.6, 0.4); p renormalised = (0.625, 0.375).
    expected = 0.6 * math.log(0.6 / 0.625) + 0.4 * math.log(0.4 / 0.375)
    assert topk_kl(q, p, support="shared") == pytest.approx(expected, rel=1e-12)
    # Disjoint supports fall back to the union.
    assert topk_kl({"x": 0.0}, {"y": 0.0}, support="shared") == pytest.approx(
        topk_kl({"x": 0.0}, {"y": 0.0})
    )
    assert topk_kl(q, q) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="support"):
        topk_kl(q, p, support="tail")
    with pytest.raises(ValueError, match="floor"):
        topk_kl(q, p, floor=0.0)


def _entry(token: str, dist: dict[str, float]) -> dict:
    top = {t: LOG(v) for t, v in dist.items()}
    return {"token": token, "logprob": top[token], "top": top}


def test_reply_kl_stops_after_the_first_differing_token():
    d1 = {"x": 0.7, "y": 0.3}
    d2 = {"x": 0.4, "y": 0.6}
    q = [_entry("x", d1), _entry("x", d1), _entry("y", d2), _entry("x", d1)]
    p = [_entry("x", d2), _entry("x", d1), _entry("x", d1), _entry("x", d2)]
    k12 = 0.7 * LOG(0.7 / 0.4) + 0.3 * LOG(0.3 / 0.6)
    k21 = 0.4 * LOG(0.4 / 0.7) + 0.6 * LOG(0.6 / 0.3)
    mean, first, n = reply_kl(q, p)
    # Positions 0, 1 agree on the sampled token; position 2 differs and is the last.
    assert n == 3
    assert first == pytest.approx(k12)
    assert mean == pytest.approx((k12 + 0.0 + k21) / 3)
    assert reply_kl(q, p, positions=1)[2] == 1
    assert reply_kl([], p)[2] == 0


def test_reply_divergence_labels_the_measure():
    lp = [_entry("x", {"x": 0.5, "y": 0.5})]
    v, d = reply_divergence({"text": "a", "logprobs": lp}, {"text": "b", "logprobs": lp})
    assert v == pytest.approx(0.0) and d["measure"] == "kl_topk"
    v, d = reply_divergence({"text": "a", "logprobs": None}, {"text": "b", "logprobs": lp})
    assert v is None and d["measure"] == "embedding"
    v, d = reply_divergence({"text": "a", "logprobs": lp}, {"text": "b", "logprobs": lp},
                            measure="embedding")  # fmt: skip
    assert d["measure"] == "embedding"
    v, d = reply_divergence({"text": "a", "logprobs": None}, {"text": "b"}, measure="kl")
    assert v is None and d["measure"] == "none"


def test_utterance_spec():
    spec = Utterance(max_chars=5)
    assert spec.check("hello world") == {"text": "hello", "logprobs": None}
    assert spec.check({"text": "hi", "logprobs": []})["logprobs"] == []
    with pytest.raises(IllegalAction):
        spec.check(3)
    with pytest.raises(IllegalAction):
        spec.check({"text": "x", "logprobs": "no"})


# -- the synthetic process ---------------------------------------------------------------------
def test_mixture_hits_the_target_kl():
    for target in (0.0, 0.3, 1.5, 4.0):
        q = mixture_for_kl(target)
        got = topk_kl({t: LOG(v) for t, v in q.items()},
                      {t: LOG(v) for t, v in REFERENCE_DIST.items()})  # fmt: skip
        assert got == pytest.approx(target, abs=1e-9)
    with pytest.raises(ValueError, match="target KL"):
        mixture_for_kl(20.0)


def test_synthetic_process_noise_free_path():
    pol = SyntheticDrift(d_star=2.0, tau=4.0, noise=0.0, relief=0.0)
    rng = np.random.default_rng(0)
    d, path = None, []
    for _ in range(12):
        d = pol.next_drift(d, False, rng)
        path.append(d)
    t = np.arange(1, 13)
    assert np.allclose(path, 2.0 * (1 - np.exp(-t / 4.0)))
    with pytest.raises(ValueError, match="d_star"):
        make_dialogue_policy({"name": "synthetic_drift", "d_star": -1})
    with pytest.raises(ValueError, match="valid names"):
        make_dialogue_policy("nope")


def _scripted(tmp_path, *overrides: str):
    sc = load_scenario(ROOT / "scenarios" / "drift_dialogue_scripted.yaml", list(overrides))
    start_run(sc, tmp_path / "run", quiet=True)
    return analysis.load_run(tmp_path / "run")


def test_fit_recovers_known_d_star_and_reminders_lower_it(tmp_path):
    run = _scripted(tmp_path)
    fits = adlg.equilibria(run)
    pooled = fits[fits["scope"] == "pooled"].set_index("condition")
    none, rem = pooled.loc["none"], pooled.loc["reminders"]
    assert none["measure"] == "kl_topk" and none["dialogues"] == 4
    # The process's equilibrium without reminders is 1.5: inside Fieller's interval.
    assert none["d_star_low"] <= 1.5 <= none["d_star_high"]
    assert abs(none["d_star"] - 1.5) < 0.1
    assert none["b"] == pytest.approx(-(1 - math.exp(-1 / 3)), abs=0.06)
    assert none["restoring"]
    # Reminders (relief 0.5 every 4 turns) lower the fitted D*, clear of the intervals.
    assert rem["d_star"] < none["d_star"] - 0.3
    assert rem["d_star_high"] < none["d_star_low"]
    # Per dialogue too: every reminded dialogue's D* is below every unreminded one's.
    per = fits[fits["scope"] == "dialogue"]
    assert (
        per[per["condition"] == "reminders"]["d_star"].max()
        < per[per["condition"] == "none"]["d_star"].min()
    )
    # The first turn is D_1 = D*(1 - e^{-1/3}) + noise (from D_0 = 0).
    s = adlg.drift_series(run)
    first = s[s["turn"] == 0]["D"]
    assert abs(first.mean() - 1.5 * (1 - math.exp(-1 / 3))) < 0.1


def test_reminders_lower_d_star_without_noise(tmp_path):
    run = _scripted(tmp_path, "population.groups.test.strategy.noise=0.0", "game.turns=30")
    fits = adlg.equilibria(run, per_dialogue=False).set_index("condition")
    assert fits.loc["none", "d_star"] == pytest.approx(1.5, abs=1e-6)
    assert fits.loc["reminders", "d_star"] < 1.3


def test_d_star_interval_is_fieller():
    rng = np.random.default_rng(3)
    d, series = 0.0, []
    for _ in range(200):
        d = d + 0.3 * (2.0 - d) + 0.05 * rng.standard_normal()
        series.append(d)
    fit = fit_equilibrium(series)
    lo, hi = d_star_interval(series)
    assert lo < fit.d_star < hi and lo < 2.0 < hi
    # No restoring force (a random walk): the interval is unbounded.
    walk = np.cumsum(rng.standard_normal(30))
    lo, hi = d_star_interval(walk)
    assert (lo, hi) == (-math.inf, math.inf) or hi - lo > 0
    with pytest.raises(ValueError, match="level"):
        d_star_interval(series, level=1.5)


# -- the embedding fallback ----------------------------------------------------------------------
def _game(embed, measure="auto") -> DialogueGame:
    return DialogueGame([Goal("help", opening="hi")], test=[0], user=[1], reference=[2],
                        turns=2, measure=measure, embed=embed, embedder="fallback")  # fmt: skip


def test_embedding_distance_when_no_logprobs():
    emb = LexicalEmbedder()
    game = _game(emb.embed)
    rng = np.random.default_rng(0)
    turns = game.pending(rng)
    assert [t.purpose for t in turns] == ["reply", "reference"]
    a, b = "cheap vegetarian dinners with lentils", "football results from yesterday"
    events = game.apply(turns, [{"text": a, "logprobs": None}, {"text": b, "logprobs": None}], rng)
    (ev,) = events
    v = emb.embed([a, b])
    assert ev.action == "embedding" and ev.data["embedder"] == "fallback"
    assert ev.value == pytest.approx(1 - float(v[0] @ v[1]) / (np.linalg.norm(v[0]) *
                                                                np.linalg.norm(v[1])))  # fmt: skip
    assert 0 < ev.value <= 2.0  # 1 - cos lies in [0, 2]
    # Identical replies: distance 0.
    turns = game.pending(rng)
    assert [t.purpose for t in turns] == ["user"]
    game.apply(turns, ["more please"], rng)
    turns = game.pending(rng)
    (ev,) = game.apply(turns, ["same text", "same text"], rng)
    assert ev.value == pytest.approx(0.0, abs=1e-9) and game.done
    assert game.get_state()["history"][0][0] == ["user", "hi"]


def test_no_embedder_records_none():
    game = _game(None)
    rng = np.random.default_rng(0)
    (ev,) = game.apply(game.pending(rng), ["a", "b"], rng)
    assert ev.action == "none" and ev.value is None


@pytest.mark.slow
def test_minilm_fallback_in_a_run(tmp_path):
    """measure: embedding on the fake backend: every turn labelled embedding with MiniLM."""
    sc = load_scenario(ROOT / "scenarios" / "drift_dialogue.yaml",
                       ["game.turns=3", "game.measure=embedding",
                        "population.groups.test.count=2"],
                       backend="fake", model="fake")  # fmt: skip
    start_run(sc, tmp_path / "run", quiet=True)
    s = adlg.drift_series(analysis.load_run(tmp_path / "run"))
    assert len(s) == 6 and set(s["measure"]) == {"embedding"}
    assert set(s["embedder"]) == {"all-MiniLM-L6-v2"}
    # The fake backend answers every prompt alike: the replies match, distance 0.
    assert np.allclose(s["D"], 0.0, atol=1e-6)
    # No log-probabilities were asked for.
    assert (
        query(tmp_path / "run", "SELECT COUNT(*) FROM llm_calls WHERE logprobs IS NOT NULL")[0][0]
        == 0
    )


# -- runs on the fake backend: batching, KL from logprobs, reminders -------------------------------
def _fake(tmp_path, *overrides: str, name: str = "run"):
    sc = load_scenario(ROOT / "scenarios" / "drift_dialogue_reminders.yaml",
                       ["game.turns=4", *overrides], backend="fake", model="fake")  # fmt: skip
    start_run(sc, tmp_path / name, quiet=True)
    return tmp_path / name


def test_fake_run_records_kl_from_logprobs(tmp_path):
    run_dir = _fake(tmp_path)
    run = analysis.load_run(run_dir)
    s = adlg.drift_series(run)
    assert len(s) == 16 and set(s["measure"]) == {"kl_topk"}
    assert (s["D"] > 0).all()
    # The event's KL is reply_kl of the two recorded calls' logprobs.
    calls = run.llm_calls
    r0 = calls[(calls["round"] == 0)]
    tags = [json.loads(m) for m in r0["messages"]]
    assert len(r0) == 8  # 4 replies + 4 references, one batch
    # dialogue 0's reply and reference are the first two calls of the step
    q, p = json.loads(r0["logprobs"].iloc[0]), json.loads(r0["logprobs"].iloc[1])
    mean, _, _ = reply_kl(q, p, positions=8)
    assert s.loc[(s["dialogue"] == 0) & (s["turn"] == 0), "D"].iloc[0] == pytest.approx(mean)
    assert "Your task" in tags[1][-1]["content"]  # the reference's goal restated
    assert all(len(e["top"]) <= 5 for e in q)
    # Reminders every 3 turns: turn 3's reply prompt carries the reminder.
    replies = calls[calls["purpose"] == "reply"]
    late = [
        json.loads(m)[-1]["content"]
        for m in replies[replies["round"] == replies["round"].max()]["messages"]
    ]
    assert all("Reminder of your task" in c for c in late)
    early = [json.loads(m)[-1]["content"] for m in replies[replies["round"] == 0]["messages"]]
    assert not any("Reminder" in c for c in early)
    # One batch per backend per step: 4 user messages, then 8 replies.
    sizes = query(run_dir, "SELECT round, COUNT(*) FROM llm_calls GROUP BY round ORDER BY round")
    assert [n for _, n in sizes] == [8, 4, 8, 4, 8, 4, 8]


def test_report_section(tmp_path):
    run_dir = _fake(tmp_path, "game.turns=6")
    out = tmp_path / "rep"
    from analysis.report import analyze

    analyze(run_dir, out)
    text = (out / "summary.md").read_text()
    assert "Drift dialogue" in text and "D* (kl_topk, reminders)" in text
    assert (out / "drift_curve.png").stat().st_size > 0
    assert (out / "drift_equilibria.csv").exists()


@pytest.mark.parametrize(
    "override, match",
    [
        ("game.user_group=nobody", "game.user_group: no population group named 'nobody'"),
        ("population.groups.user.count=3", "population.groups.user.count: expected 1 or 4"),
        ("game.reminders=[12]", "reminders"),
        ("game.top_k=50", "top_k"),
        ("game.kl_floor=0.5", "kl_floor"),
        ("population.groups.test.persona=x", "persona"),
    ],
)
def test_bad_config_is_a_user_error(override, match):
    with pytest.raises(UserError, match=match):
        sc = load_scenario(ROOT / "scenarios" / "drift_dialogue.yaml", [override],
                           backend="fake", model="fake")  # fmt: skip
        from society.engine import Engine

        Engine(sc)


# -- identity: resume and replay ---------------------------------------------------------------------
def _data(**game) -> dict:
    return {
        "name": "dd",
        "seed": 9,
        "backend": {"kind": "fake", "model": "fake"},
        "population": {"groups": [
            {"name": "test", "count": 3, "kind": "llm"},
            {"name": "user", "count": 1, "strategy": {"name": "scripted_user", "off_topic": 0.5}},
            {"name": "reference", "count": 1, "kind": "llm"},
        ]},
        "game": {"kind": "drift_dialogue", "turns": 5, "reminders": [2], **game},
    }  # fmt: skip


@pytest.mark.parametrize("cut", [1, 4, 7])
def test_resume_gives_the_same_store(tmp_path, monkeypatch, cut):
    interrupt_resume_compare(_data(), cut, tmp_path, monkeypatch)


def test_resume_scripted_synthetic(tmp_path, monkeypatch):
    import yaml  # the shipped scripted scenario, shortened

    data = yaml.safe_load((ROOT / "scenarios" / "drift_dialogue_scripted.yaml").read_text())
    data["game"]["turns"] = 10
    interrupt_resume_compare(data, 7, tmp_path, monkeypatch)


def test_resume_with_embedding_measure(tmp_path, monkeypatch):
    interrupt_resume_compare(_data(measure="embedding", embedder="lexical"), 3, tmp_path,
                             monkeypatch)  # fmt: skip


def test_replay_gives_the_same_decisions_and_events(tmp_path):
    first = tmp_path / "first"
    start_run(resolve(_data(), "s"), first, quiet=True)
    data = _data()
    data["backend"] = {"kind": "replay", "model": "fake", "run": str(first)}
    again = tmp_path / "again"
    start_run(resolve(data, "s"), again, quiet=True)
    for table in ("decisions", "events"):
        assert table_rows(first, table) == table_rows(again, table)
    sql = "SELECT reply, logprobs FROM llm_calls ORDER BY id"
    assert query(first, sql) == query(again, sql)
    # and a second identical run is the same store
    start_run(resolve(_data(), "s"), tmp_path / "twice", quiet=True)
    assert_same_store(first, tmp_path / "twice")


@pytest.mark.slow
def test_resume_after_sigkill_is_identical(tmp_path):
    """Killed (SIGKILL) mid-run, resumed: the store equals an uninterrupted run's."""
    import yaml

    from society.runner import resume_run
    from tests.helpers import society_cmd, write_scenario
    from tests.test_resume import committed_rounds, kill_after

    data = yaml.safe_load((ROOT / "scenarios" / "drift_dialogue_scripted.yaml").read_text())
    data["population"]["groups"][0]["count"] = 300
    data["game"]["turns"] = 12
    path = write_scenario(tmp_path / "s.yaml", data)
    killed = tmp_path / "killed"
    kill_after(society_cmd("run", str(path), "--out", str(killed), "--quiet"), killed, 4)
    assert 4 <= committed_rounds(killed) < 23
    resume_run(killed, quiet=True)
    assert committed_rounds(killed) == 23
    start_run(resolve(data, "s"), tmp_path / "straight", quiet=True)
    assert_same_store(killed, tmp_path / "straight")
