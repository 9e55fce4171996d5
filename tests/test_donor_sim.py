"""The donor game with cultural evolution through the runtime (fast: scripted + FakeBackend)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import society.runner as runner
from agents.chat import ChatRequest
from agents.llm_donor import FALLBACK_STRATEGY, extract_strategy
from analysis.report import show as render
from society.backends.fake import FakeBackend
from society.engine import Engine
from society.errors import UserError
from society.evolution import (
    AdviceInheritance,
    CopyInheritance,
    FitnessProportional,
    SurvivorInfo,
    TopFraction,
    make_inheritance,
    make_selection,
)
from society.scenario import validate_scenario
from tests.helpers import assert_same_store


def scenario(groups, *, generations=1, **game):
    data = {
        "name": "donor-test",
        "seed": 7,
        "population": {"groups": groups},
        "game": {"kind": "donor", **game},
        "evolution": {"generations": generations},
    }
    return data


def give_max(request: ChatRequest) -> str:
    """A fake LLM that gives everything it holds (and writes a proper strategy)."""
    if not request.json_schema:
        return "Let me think. My strategy will be to give everything. Done."
    top = request.json_schema["properties"]["amount"]["maximum"]
    return json.dumps({"reasoning": "give all", "amount": top})


class FakePool(dict):
    """Injected backends: a FakeBackend per backend key, made on first use, all kept."""

    def __init__(self, state: dict) -> None:
        super().__init__()
        self.state = state

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> FakeBackend:
        model = json.loads(key)["model"] if key.startswith("{") else key
        b = self[key] = FakeBackend(model, responder=self.state["responder"])
        self.state["made"].append(b)
        return b


@pytest.fixture
def fake_backends():
    """Every LLM group served by an injected FakeBackend; `responder` is settable."""
    state: dict = {"responder": None, "made": []}
    state["pool"] = FakePool(state)
    return state


def run(data, tmp_path: Path, name="run", backends=None) -> sqlite3.Connection:
    sc = validate_scenario(data)
    runner.start_run(sc, tmp_path / name, quiet=True, backends=backends)
    return sqlite3.connect(tmp_path / name / "run.sqlite")


def q(conn, sql, *args):
    return conn.execute(sql, args).fetchall()


# --- the sanity figure ---------------------------------------------------------------


def test_everyone_donates_all_scripted_gives_30720(tmp_path):
    conn = run(scenario([{"name": "all", "count": 12, "strategy": "donate_all"}]), tmp_path)
    fit = [v for (v,) in q(conn, "SELECT value FROM events WHERE kind = 'fitness'")]
    assert len(fit) == 12 and np.mean(fit) == 30720
    # Per game, from the resources at the end of the last round.
    per_game = q(
        conn,
        "SELECT json_extract(data, '$.game'), AVG(value) FROM events WHERE kind = 'resources' "
        "AND json_extract(data, '$.round_in_game') = 11 GROUP BY 1 ORDER BY 1",
    )
    assert per_game == [(0, 30720.0), (1, 30720.0)]
    assert q(conn, "SELECT COUNT(*) FROM decisions WHERE kind = 'donate'") == [(2 * 12 * 6,)]
    assert q(conn, "SELECT COUNT(*) FROM rounds") == [(1 + 2 * 12,)]


def test_everyone_donates_all_llm_gives_30720_in_batches(tmp_path, fake_backends):
    fake_backends["responder"] = give_max
    data = scenario([{"name": "llm", "count": 12, "kind": "llm"}])
    data["backend"] = {"kind": "fake", "model": "fake"}
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    fit = [v for (v,) in q(conn, "SELECT value FROM events WHERE kind = 'fitness'")]
    assert np.mean(fit) == 30720
    assert q(conn, "SELECT DISTINCT source, valid FROM decisions WHERE kind = 'donate'") == [
        ("llm", 1)
    ]
    (backend,) = fake_backends["made"]
    # One batch of 12 strategies, then one batch of 6 donors per round.
    assert backend.batches == [12] + [6] * 24
    strategies = q(conn, "SELECT action, valid, source FROM decisions WHERE kind = 'strategy'")
    assert strategies == [("My strategy will be to give everything.", 1, "llm")] * 12


def give_all_of_the_endowment(request: ChatRequest) -> str:
    """Gives everything when holding exactly the endowment (10), otherwise nothing."""
    if not request.json_schema:
        return "My strategy will be to give once."
    top = request.json_schema["properties"]["amount"]["maximum"]
    return json.dumps({"reasoning": "once", "amount": top if top == 10 else 0})


@pytest.mark.parametrize("ask_when_empty", [False, True])
def test_donors_holding_nothing_are_not_asked(tmp_path, fake_backends, ask_when_empty):
    # Round 1 donors give all (then hold 0); round 2 donors give nothing back; so round 3's
    # donors hold nothing: their only legal answer is 0.
    fake_backends["responder"] = give_all_of_the_endowment
    data = scenario([{"name": "llm", "count": 4, "kind": "llm"}], rounds=4,
                    games_per_generation=1, ask_when_empty=ask_when_empty)  # fmt: skip
    data["backend"] = {"kind": "fake", "model": "fake"}
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    (backend,) = fake_backends["made"]
    third = q(conn, "SELECT DISTINCT source, value, valid FROM decisions "
                    "WHERE kind = 'donate' AND round = 3")  # fmt: skip
    if ask_when_empty:
        assert backend.batches == [4, 2, 2, 2, 2]
        assert third == [("llm", 0.0, 1)]
    else:
        assert backend.batches == [4, 2, 2, 2]
        assert third == [("forced", 0.0, 1)]
        assert q(conn, "SELECT COUNT(*) FROM llm_calls WHERE round = 3") == [(0,)]


def test_rounds_not_revealed_and_prompt_contents(tmp_path, fake_backends):
    fake_backends["responder"] = give_max
    data = scenario([{"name": "llm", "count": 4, "kind": "llm"}], rounds=4, trace_depth=2)
    data["backend"] = {"kind": "fake", "model": "fake"}
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    msgs = [json.loads(m) for (m,) in q(conn, "SELECT messages FROM llm_calls")]
    text = " ".join(m["content"] for ms in msgs for m in ms)
    assert "4 rounds" not in text and "lasts" not in text
    donate = [
        ms[1]["content"]
        for (ms,) in ((json.loads(m),) for (m,) in q(conn, "SELECT messages FROM llm_calls"))
        if "How many units do you give up" in ms[1]["content"]
    ]
    assert "This is generation 1. It is now round 1." in donate[0]
    assert "no information yet" in donate[0]
    assert any("It is now round 3." in d and "% of their resources to Agent" in d for d in donate)


# --- selection and inheritance -----------------------------------------------------


def test_top_fraction_keeps_top_half_and_breaks_ties_with_rng():
    fit = {0: 5.0, 1: 9.0, 2: 1.0, 3: 7.0, 4: 3.0, 5: 8.0}
    assert sorted(TopFraction().select(fit, np.random.default_rng(0), 0.5)) == [1, 3, 5]
    tied = dict.fromkeys(range(12), 10.0)
    picks = [
        tuple(sorted(TopFraction().select(tied, np.random.default_rng(s), 0.5))) for s in range(20)
    ]
    assert all(len(p) == 6 for p in picks)
    assert picks[3] == tuple(
        sorted(TopFraction().select(tied, np.random.default_rng(3), 0.5))
    )  # seeded
    assert len(set(picks)) > 1  # not always the lowest ids
    # A tie at the boundary: the top one always kept, one of the three tied 5s.
    fit2 = {0: 5.0, 1: 5.0, 2: 9.0, 3: 5.0}
    seen = {
        tuple(sorted(TopFraction().select(fit2, np.random.default_rng(s), 0.5))) for s in range(30)
    }
    assert seen == {(0, 2), (1, 2), (2, 3)}


def test_fitness_proportional_selection():
    fit = {0: 0.0, 1: 100.0, 2: 0.0, 3: 100.0}
    for s in range(10):
        assert sorted(FitnessProportional().select(fit, np.random.default_rng(s), 0.5)) == [1, 3]
    zeros = dict.fromkeys(range(6), 0.0)
    assert len(FitnessProportional().select(zeros, np.random.default_rng(0), 0.5)) == 3


def test_inheritance_plans():
    surv = [SurvivorInfo(4, "A4", "s4", 10.0), SurvivorInfo(2, "A2", "s2", 30.0)]
    plans = AdviceInheritance().plan(surv, 3, np.random.default_rng(0))
    assert [p.parent_id for p in plans] == [2, 2, 2]
    assert [a.agent_id for a in plans[0].advice] == [2, 4] and plans[0].copy is None
    copies = CopyInheritance().plan(surv, 200, np.random.default_rng(0))
    counts = {2: 0, 4: 0}
    for p in copies:
        assert p.copy is not None and p.copy.agent_id == p.parent_id
        counts[p.parent_id] += 1
    assert counts[2] > counts[4] > 0  # proportional to 30 : 10


def test_unknown_rules_are_clear_errors():
    with pytest.raises(ValueError, match="unknown selection rule 'best'.*top_fraction"):
        make_selection("best")
    with pytest.raises(ValueError, match="unknown inheritance rule 'dna'.*advice"):
        make_inheritance("dna")
    data = scenario([{"name": "a", "count": 4, "strategy": "donate_all"}], rounds=4)
    data["evolution"]["selection"] = "best"
    with pytest.raises(UserError, match="evolution.selection"):
        Engine(validate_scenario(data))
    odd = scenario([{"name": "a", "count": 5, "strategy": "donate_all"}], rounds=4)
    with pytest.raises(UserError, match="even number"):
        Engine(validate_scenario(odd))


def test_llm_inheritance_rows_and_advice(tmp_path, fake_backends):
    fake_backends["responder"] = None  # default: amounts from the prompt hash
    data = scenario([{"name": "llm", "count": 4, "kind": "llm"}], generations=3, rounds=4)
    data["backend"] = {"kind": "fake", "model": "fake"}
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    agents = q(conn, "SELECT agent_id, generation, parent_id, born_round FROM agents ORDER BY 1")
    assert len(agents) == 4 + 2 + 2
    assert [a[1] for a in agents] == [0] * 4 + [1] * 2 + [2] * 2
    assert all(a[2] is None for a in agents[:4])
    for gen in (0, 1):
        best = q(
            conn,
            "SELECT agent_id FROM events WHERE kind = 'survivor' AND generation = ? "
            "AND json_extract(data, '$.rank') = 0",
            gen,
        )[0][0]
        newcomers = [a for a in agents if a[1] == gen + 1]
        assert {a[2] for a in newcomers} == {best}
        # Born at the strategy step of their generation: 1 + 2 games x 4 rounds per generation.
        assert {a[3] for a in newcomers} == {(gen + 1) * 9}
        survivors = {
            a
            for (a,) in q(
                conn, "SELECT agent_id FROM events WHERE kind='survivor' AND generation=?", gen
            )
        }
        alive_next = {
            a
            for (a,) in q(
                conn, "SELECT agent_id FROM events WHERE kind='strategy' AND generation=?", gen + 1
            )
        }
        assert survivors < alive_next and len(alive_next) == 4
    # Strategies stored per agent per generation; only newcomers write (LLM calls).
    assert q(conn, "SELECT generation, COUNT(*) FROM events WHERE kind='strategy' GROUP BY 1") == [
        (0, 4), (1, 4), (2, 4)
    ]  # fmt: skip
    assert q(conn, "SELECT generation, COUNT(*) FROM decisions WHERE kind='strategy' GROUP BY 1") == [
        (0, 4), (1, 2), (2, 2)
    ]  # fmt: skip
    # The newcomers' strategy prompt shows the survivors' strategies with their scores.
    prompts = [
        json.loads(m)[1]["content"]
        for (m,) in q(conn, "SELECT messages FROM llm_calls WHERE purpose='strategy' AND round=9")
    ]
    assert len(prompts) == 2 and all("score" in p and "generation 0" not in p for p in prompts)
    assert all("Modify this advice" in p for p in prompts)


def test_copy_inheritance_copies_text(tmp_path, fake_backends):
    fake_backends["responder"] = None
    data = scenario([{"name": "llm", "count": 4, "kind": "llm"}], generations=2, rounds=2)
    data["backend"] = {"kind": "fake", "model": "fake"}
    data["evolution"]["inheritance"] = "copy"
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    assert q(conn, "SELECT COUNT(*) FROM llm_calls WHERE purpose='strategy'") == [(4,)]
    for _aid, parent, text in q(
        conn, "SELECT agent_id, parent_id, strategy FROM agents WHERE generation = 1"
    ):
        (ptext,) = q(conn, "SELECT strategy FROM agents WHERE agent_id = ?", parent)[0]
        assert text == ptext


def test_scripted_newcomers_imitate_survivors(tmp_path):
    data = scenario(
        [
            {"name": "gen", "count": 2, "strategy": "donate_all"},
            {"name": "stingy", "count": 2, "strategy": "always_defect"},
        ],
        generations=2,
        rounds=4,
    )
    conn = run(data, tmp_path)
    new = q(conn, "SELECT grp, strategy, parent_id FROM agents WHERE generation = 1 ORDER BY 1")
    best = q(conn, "SELECT agent_id FROM events WHERE kind='survivor' AND generation=0 "
             "AND json_extract(data, '$.rank') = 0")[0][0]  # fmt: skip
    (best_strategy,) = q(conn, "SELECT strategy FROM agents WHERE agent_id = ?", best)[0]
    assert len(new) == 2 and all(s == best_strategy and p == best for _, s, p in new)


# --- punishment, fallbacks, mixed populations ---------------------------------------


def test_punishment_events_and_accounting(tmp_path):
    data = scenario(
        [
            {"name": "pun", "count": 2, "strategy": {"name": "punisher", "fraction": 0.5}},
            {"name": "def", "count": 2, "strategy": "always_defect"},
        ],
        rounds=4,
        punishment=True,
    )
    conn = run(data, tmp_path)
    pun = q(conn, "SELECT agent_id, partner_id, value, data FROM events WHERE kind='punishment'")
    assert pun, "punishers meet defectors' traces and punish"
    for _, _, amount, data_json in pun:
        d = json.loads(data_json)
        assert d["donor_after"] == pytest.approx(d["donor_before"] - amount)
        assert d["fine"] == pytest.approx(min(d["recipient_before"], 2 * amount))
        assert d["recipient_after"] == pytest.approx(d["recipient_before"] - d["fine"])
    acts = q(conn, "SELECT action, data FROM decisions WHERE kind='donate'")
    assert sum(json.loads(d)["punish"] for _, d in acts) == len(pun)
    assert sum(a == "punish" for a, _ in acts) == len(pun)
    for _, _, amount, data_json in q(
        conn, "SELECT agent_id, partner_id, value, data FROM events WHERE kind='donation'"
    ):
        d = json.loads(data_json)
        assert d["recipient_after"] == pytest.approx(d["recipient_before"] + 2 * amount)


def test_llm_punishment_schema(tmp_path, fake_backends):
    def punish(request: ChatRequest) -> str:
        if not request.json_schema:
            return "My strategy will be to punish."
        assert "punish" in request.json_schema["properties"]
        top = request.json_schema["properties"]["amount"]["maximum"]
        return json.dumps({"reasoning": "x", "amount": top / 2, "punish": True})

    fake_backends["responder"] = punish
    # Round 2's donors were fined down to 0; ask them anyway so every donor answers.
    data = scenario([{"name": "llm", "count": 4, "kind": "llm"}], rounds=2, punishment=True,
                    ask_when_empty=True)  # fmt: skip
    data["backend"] = {"kind": "fake", "model": "fake"}
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    assert q(conn, "SELECT COUNT(*) FROM events WHERE kind='punishment'") == [(2 * 2 * 2,)]
    system = json.loads(q(conn, "SELECT messages FROM llm_calls LIMIT 1")[0][0])[0]["content"]
    assert "others may punish you too" in system


def test_invalid_replies_fall_back_to_zero(tmp_path, fake_backends):
    fake_backends["responder"] = lambda r: "I give 5" if r.json_schema else "no strategy here"
    data = scenario([{"name": "llm", "count": 4, "kind": "llm"}], rounds=2)
    data["backend"] = {"kind": "fake", "model": "fake"}
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    assert q(conn, "SELECT DISTINCT value, valid, source FROM decisions WHERE kind='donate'") == [
        (0.0, 0, "fallback")
    ]
    # One repair per donation.
    assert q(conn, "SELECT purpose, COUNT(*) FROM llm_calls GROUP BY 1 ORDER BY 1") == [
        ("donate", 8), ("donate:repair", 8), ("strategy", 4)
    ]  # fmt: skip
    assert q(
        conn, "SELECT DISTINCT action, valid, source FROM decisions WHERE kind='strategy'"
    ) == [("no strategy here", 0, "fallback")]
    out = render(tmp_path / "run")
    assert "100.0%" in out and "donor game per generation" in out


def test_extract_strategy():
    assert extract_strategy("Think... My strategy will be to give 50%. Then more.") == (
        "My strategy will be to give 50%.",
        True,
    )
    assert extract_strategy("**My strategy will be** to give 0.5 units\nbye")[0] == (
        "My strategy will be to give 0.5 units"
    )
    assert extract_strategy("my strategy will be to share") == (
        "My strategy will be to share",
        True,
    )
    assert extract_strategy("First. Second sentence!") == ("Second sentence!", False)
    assert extract_strategy("  ") == (FALLBACK_STRATEGY, False)


def test_mixed_population_two_backends(tmp_path, fake_backends):
    fake_backends["responder"] = give_max
    data = scenario(
        [
            {"name": "a", "count": 4, "kind": "llm", "backend": {"kind": "fake", "model": "fa"}},
            {"name": "b", "count": 4, "kind": "llm", "backend": {"kind": "fake", "model": "fb"}},
            {"name": "s", "count": 4, "strategy": "image_scoring"},
        ],
        generations=2,
        rounds=4,
    )
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    assert len(fake_backends["made"]) == 2
    models = dict(q(conn, "SELECT grp, model FROM agents WHERE kind='llm' GROUP BY grp"))
    assert models == {"a": "fa", "b": "fb"}
    # Newcomers keep the group (and backend) of the agent they replace.
    sizes = q(
        conn,
        "SELECT e.generation, a.grp, COUNT(*) FROM events e JOIN agents a USING (agent_id) "
        "WHERE e.kind='strategy' GROUP BY 1, 2",
    )
    assert sizes == [(0, "a", 4), (0, "b", 4), (0, "s", 4), (1, "a", 4), (1, "b", 4), (1, "s", 4)]


# --- determinism and resume ---------------------------------------------------------


@pytest.mark.parametrize("kill_after", [1, 13, 14, 27, 38])
def test_resume_is_identical(tmp_path, monkeypatch, fake_backends, kill_after):
    data = scenario(
        [
            {"name": "rand", "count": 2, "strategy": "random"},
            {"name": "img", "count": 2, "strategy": "image_scoring"},
            {"name": "llm", "count": 2, "kind": "llm"},
        ],
        generations=3,
        rounds=6,
    )
    data["backend"] = {"kind": "fake", "model": "fake"}
    sc = validate_scenario(data)
    full = run(data, tmp_path, "full", backends=fake_backends["pool"])
    assert q(full, "SELECT COUNT(*) FROM rounds") == [(3 * (1 + 2 * 6),)]

    real_step = Engine.step
    calls = {"n": 0}

    def flaky(self, decider):
        if calls["n"] == kill_after:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_step(self, decider)

    monkeypatch.setattr(Engine, "step", flaky)
    with pytest.raises(KeyboardInterrupt):
        runner.start_run(sc, tmp_path / "cut", quiet=True, backends=fake_backends["pool"])
    monkeypatch.setattr(Engine, "step", real_step)
    partial = sqlite3.connect(tmp_path / "cut" / "run.sqlite")
    assert q(partial, "SELECT COUNT(*) FROM rounds") == [(kill_after,)]
    partial.close()
    runner.resume_run(tmp_path / "cut", quiet=True, backends=fake_backends["pool"])
    assert_same_store(tmp_path / "full", tmp_path / "cut")


def test_state_round_trip_mid_game():
    data = scenario([{"name": "r", "count": 4, "strategy": "random"}], generations=2, rounds=4)
    sc = validate_scenario(data)
    a, b = Engine(sc), Engine(sc)
    from society.decide import Decider

    d = Decider({}, 0)
    for _ in range(3):
        a.step(d)
    b.set_state(json.loads(json.dumps(a.get_state())))  # as a checkpoint holds it
    while not a.done:
        assert a.step(d) == b.step(d)
    assert b.done and a.total_steps == 2 * (1 + 2 * 4)


def test_scripted_ten_generations_is_fast(tmp_path):
    import time

    sc = validate_scenario(
        __import__("yaml").safe_load(Path("scenarios/donor_game_scripted.yaml").read_text())
    )
    t0 = time.perf_counter()
    runner.start_run(sc, tmp_path / "s", quiet=True)
    assert time.perf_counter() - t0 < 30
    conn = sqlite3.connect(tmp_path / "s" / "run.sqlite")
    assert q(conn, "SELECT COUNT(DISTINCT generation) FROM events WHERE kind='survivor'") == [(10,)]
    assert q(conn, "SELECT COUNT(*) FROM events WHERE kind='survivor'") == [(60,)]
