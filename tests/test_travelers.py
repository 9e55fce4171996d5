"""The traveler's dilemma (Basu 1994; Capra, Goeree, Gomez & Holt 1999): rules, scripted
policies ("against X it plays Y"), full runs, evolution, the LLM policy, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import society
from agents.prompts import Prompts, game_prompts
from agents.travelers import (
    LLMTraveler,
    make_travelers_policy,
    travelers_policy_names,
)
from games.protocol import Turn
from games.travelers import TravelersGame, TravelersObservation, TravelersRules, payoffs
from society.backends.fake import FakeBackend
from society.errors import UserError
from society.registry import game_kinds
from tests.helpers import query

RULES = TravelersRules()  # Capra et al.: 80..200, R = 5


# -- the payoff rule ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (100, 150, (105.0, 95.0)),  # a < b: both get 100, the lower claimant +5, the other -5
        (150, 100, (95.0, 105.0)),  # a > b
        (120, 120, (120.0, 120.0)),  # equal claims pay the claim
        (80, 200, (85.0, 75.0)),  # the extremes
        (199, 200, (204.0, 194.0)),  # undercutting by one pays
        (200, 200, (200.0, 200.0)),
    ],
)
def test_payoffs_hand_computed(a, b, expected):
    assert payoffs(a, b, RULES) == expected


def test_payoffs_with_a_large_reward():
    rules = TravelersRules(80, 200, reward=80)
    assert payoffs(100, 101, rules) == (180.0, 20.0)
    assert payoffs(200, 80, rules) == (0.0, 160.0)


def test_payoffs_vectorised():
    a = np.array([100, 150, 120, 80])
    b = np.array([150, 100, 120, 200])
    pa, pb = payoffs(a, b, RULES)
    np.testing.assert_array_equal(pa, [105, 95, 120, 85])
    np.testing.assert_array_equal(pb, [95, 105, 120, 75])
    # Agrees with the scalar rule everywhere on a grid, and is symmetric.
    grid = np.arange(80, 201, 7)
    x, y = np.meshgrid(grid, grid)
    px, py = payoffs(x, y, RULES)
    for i, j in [(0, 0), (3, 5), (17, 2), (9, 9)]:
        assert (px[i, j], py[i, j]) == payoffs(int(x[i, j]), int(y[i, j]), RULES)
    np.testing.assert_array_equal(px, py.T)


@pytest.mark.parametrize("bad", [79, 201, 100.5])
def test_payoffs_reject_illegal_claims(bad):
    with pytest.raises(ValueError, match="claims a"):
        payoffs(bad, 100, RULES)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"low": 200, "high": 80}, "low"),
        ({"low": 100, "high": 100}, "low"),
        ({"low": 80.5}, "low"),
        ({"high": "200"}, "high"),
        ({"low": True}, "low"),
        ({"reward": 0}, "reward"),
        ({"reward": -5}, "reward"),
        ({"reward": float("nan")}, "reward"),
    ],
)
def test_rules_validation(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        TravelersRules(**kwargs)


# -- scripted policies: "against X it plays Y" ----------------------------------------------
def versus(
    policy: Any, opponent: Any, rounds: int = 5, rules: TravelersRules = RULES, seed: int = 0
) -> list[int]:
    """The claims ``policy`` makes in one match against ``opponent`` (through the game)."""
    me, them = make_travelers_policy(policy), make_travelers_policy(opponent)
    rng = np.random.default_rng(seed)
    game = TravelersGame(rules, lambda r, g: [(0, 1)], static=True, rng=rng, rounds=rounds)
    while not game.done:
        turns = game.pending(rng)
        actions = [t.spec.legalize((me if t.agent == 0 else them).act(t, rng))[0] for t in turns]
        game.apply(turns, actions, rng)
    return game.hist[(0, 1)][0]


VERSUS = [
    ("always_max", "always_min", [200] * 5),
    ("always_max", "best_response", [200] * 5),
    ("always_min", "always_max", [80] * 5),
    ("always_min", "random", [80] * 5),
    ("best_response", "always_max", [200, 199, 199, 199, 199]),
    ("best_response", "always_min", [200, 80, 80, 80, 80]),
    ("best_response", "best_response", [200, 199, 198, 197, 196]),
    ({"name": "best_response", "first": 150}, "always_max", [150, 199, 199, 199, 199]),
    ({"name": "best_response", "first": 81}, "best_response", [81, 199, 80, 197, 80]),
    ("always_min", {"name": "best_response", "params": {"first": 100}}, [80] * 5),
]


@pytest.mark.parametrize(("policy", "opponent", "expected"), VERSUS)
def test_versus(policy, opponent, expected):
    assert versus(policy, opponent) == expected


def test_best_response_never_goes_below_low():
    rules = TravelersRules(10, 12, reward=2)
    assert versus("best_response", "best_response", 4, rules) == [12, 11, 10, 10]
    assert versus({"name": "best_response", "first": 5}, "always_max", 2, rules) == [10, 11]


def test_random_draws_one_uniform_integer_per_claim():
    claims = versus("random", "always_max", rounds=50, seed=3)
    rng = np.random.default_rng(3)
    assert claims == [int(rng.integers(80, 201)) for _ in range(50)]
    assert all(80 <= c <= 200 for c in claims)
    assert versus("random", "always_max", rounds=50, seed=3) == claims  # reproducible
    assert versus("random", "always_max", rounds=50, seed=4) != claims


def test_policy_specs_round_trip_and_errors():
    assert travelers_policy_names() == ["always_max", "always_min", "best_response", "random"]
    for name in travelers_policy_names():
        policy = make_travelers_policy(name)
        again = make_travelers_policy(policy.spec())
        assert again.spec() == policy.spec()
        assert make_travelers_policy(policy) is policy
    assert make_travelers_policy("best_response").spec() == {
        "name": "best_response",
        "first": None,
    }
    with pytest.raises(ValueError, match="valid names: always_max, always_min, best_response"):
        make_travelers_policy("tit_for_tat")
    with pytest.raises(ValueError, match="unknown parameter"):
        make_travelers_policy({"name": "always_max", "p": 0.5})
    with pytest.raises(ValueError, match="whole-number claim"):
        make_travelers_policy({"name": "best_response", "first": 100.5})


# -- the game ---------------------------------------------------------------------------------
def test_game_state_round_trips_as_json():
    rng = np.random.default_rng(1)
    pairs = [(0, 1), (0, 2), (1, 2)]
    game = TravelersGame(RULES, lambda r, g: pairs, static=True, rng=rng, rounds=4)
    turns = game.pending(rng)
    assert [(t.agent, t.partner, t.purpose, t.instance) for t in turns[:2]] == [
        (0, 1, "claim", 0),
        (1, 0, "claim", 0),
    ]
    assert turns[0].spec.json_schema()["properties"]["claim"] == {
        "type": "integer",
        "minimum": 80,
        "maximum": 200,
        "enum": list(range(80, 201)),
    }
    assert turns[0].fallback == 200
    events = game.apply(turns, [100, 150, 200, 200, 80, 90], rng)
    assert [(e.kind, e.agent, e.partner, e.action, e.value, e.data) for e in events[:2]] == [
        ("payoff", 0, 1, "100", 105.0, {"partner_claim": 150}),
        ("payoff", 1, 0, "150", 95.0, {"partner_claim": 100}),
    ]
    assert game.record(turns[0], 100) == ("100", 100.0, None)
    state = json.loads(json.dumps(game.get_state()))
    copy = TravelersGame(RULES, lambda r, g: pairs, static=True, rng=rng, rounds=4)
    copy.set_state(state)
    assert copy.get_state() == game.get_state()
    assert copy.position() == game.position() and copy.total_steps() == 4
    obs = copy.pending(rng)[0].observation
    assert obs == TravelersObservation(2, 4, (100,), (150,), (105.0,), RULES)
    assert copy.fitness() == game.fitness()
    assert game.fitness()[0] == ((105.0 + 200.0) / 2, {"total": 305.0, "rounds": 2})


def test_fallback_and_hidden_rounds():
    rng = np.random.default_rng(0)
    game = TravelersGame(
        RULES, lambda r, g: [(0, 1)], static=True, rng=rng, reveal_rounds=False, fallback=90
    )
    turn = game.pending(rng)[0]
    assert turn.fallback == 90 and turn.observation.rounds is None
    with pytest.raises(ValueError, match="outside"):
        TravelersGame(RULES, lambda r, g: [(0, 1)], static=True, rng=rng, fallback=300)


def test_the_plugin_is_registered():
    kind = game_kinds()["travelers_dilemma"]
    assert kind.uses == frozenset({"network", "matching"})
    assert kind.report == "travelers_dilemma"
    assert {"travelers.system", "travelers.question", "repair"} <= set(kind.prompts)


# -- full runs through the front door -----------------------------------------------------------
def scenario(groups: list[dict], **game: Any) -> dict[str, Any]:
    """A small round-robin traveler's dilemma scenario."""
    return {
        "name": "td-test",
        "seed": 3,
        "population": {"groups": groups},
        "matching": {"kind": "round_robin"},
        "game": {"kind": "travelers_dilemma", "rounds": 6, **game},
    }


SCRIPTED = [
    {"name": "max", "strategy": "always_max"},
    {"name": "min", "strategy": "always_min"},
    {"name": "br", "strategy": "best_response"},
    {"name": "rnd", "strategy": "random"},
]


def test_min_against_max_scores_exactly(tmp_path):
    data = scenario(SCRIPTED[:2], reward=5, rounds=7)
    result = society.run(data, out=tmp_path / "r")
    assert result.status == "finished"
    run = tmp_path / "r"
    claims = query(run, "SELECT agent_id, kind, action, value, source FROM decisions")
    assert len(claims) == 14
    assert {c[1] for c in claims} == {"claim"} and {c[4] for c in claims} == {"scripted"}
    assert {(c[0], c[2], c[3]) for c in claims} == {(0, "200", 200.0), (1, "80", 80.0)}
    totals = dict(
        query(run, "SELECT agent_id, SUM(value) FROM events WHERE kind='payoff' GROUP BY agent_id")
    )
    assert totals == {0: 7 * (80 - 5), 1: 7 * (80 + 5)}
    (data_json,) = query(run, "SELECT data FROM events WHERE agent_id = 0 LIMIT 1")[0]
    assert json.loads(data_json) == {"partner_claim": 80}
    resolved = json.loads(query(run, "SELECT value FROM meta WHERE key='resolved_game'")[0][0])
    assert resolved == {"kind": "travelers_dilemma", "low": 80, "high": 200, "reward": 5.0,
                        "rounds": 7}  # fmt: skip


def test_shipped_scripted_scenario_runs(tmp_path):
    path = Path(__file__).resolve().parents[1] / "scenarios" / "travelers_dilemma.yaml"
    result = society.run(path, out=tmp_path / "r")
    assert result.status == "finished"
    (n,) = query(tmp_path / "r", "SELECT COUNT(*) FROM decisions")[0]
    assert n == 6 * 2 * 20  # 6 pairs, 2 claims each, 20 rounds


def test_evolution_records_fitness_and_survivors(tmp_path):
    groups = [{**g, "count": 2} for g in SCRIPTED]
    data = {**scenario(groups), "evolution": {"generations": 3, "selection": "moran"}}
    result = society.run(data, out=tmp_path / "r")
    assert result.status == "finished"
    run = tmp_path / "r"
    kinds = dict(query(run, "SELECT kind, COUNT(*) FROM events GROUP BY kind"))
    assert kinds["fitness"] == 3 * 8
    assert kinds["survivor"] >= 3
    generations = [g for (g,) in query(run, "SELECT DISTINCT generation FROM decisions")]
    assert sorted(generations) == [0, 1, 2]
    # Fitness is the mean payoff per round, read back from the payoff events.
    fit = query(run, "SELECT agent_id, value FROM events WHERE kind='fitness' AND generation=0")
    for agent, value in fit:
        (mean,) = query(
            run,
            "SELECT AVG(value) FROM events WHERE kind='payoff' AND generation=0 AND agent_id=?",
            agent,
        )[0]
        assert value == pytest.approx(mean)


# -- the LLM policy ----------------------------------------------------------------------------
LLM_GROUP = {"name": "llm", "kind": "llm", "count": 2, "max_tokens": 24}


def test_llm_claims_through_the_fake_backend(tmp_path):
    seen: list[Any] = []

    def responder(req):
        seen.append(req)
        return '{"claim": 150}'

    data = scenario([LLM_GROUP, SCRIPTED[0], SCRIPTED[1]], rounds=3)
    society.run(data, out=tmp_path / "r", backends=FakeBackend("fake", responder=responder))
    run = tmp_path / "r"
    rows = query(
        run,
        "SELECT d.action, d.value, d.valid, d.source, d.llm_call_id FROM decisions d "
        "JOIN agents a ON a.agent_id = d.agent_id WHERE a.grp = 'llm'",
    )
    assert len(rows) == 2 * 3 * 3  # two LLM agents, three partners each, three rounds
    assert {r[:4] for r in rows} == {("150", 150.0, 1, "llm")}
    assert all(r[4] is not None for r in rows)
    # The prompt states the rules and, after round one, the match so far.
    req = seen[0]
    assert req.json_schema["properties"]["claim"] == {
        "type": "integer",
        "minimum": 80,
        "maximum": 200,
        "enum": list(range(80, 201)),
    }
    system = req.messages[0]["content"]
    assert "from 80 to 200" in system and "5 points more" in system and "3 rounds" in system
    later = [r for r in seen if "In round 2" in r.messages[-1]["content"]]
    assert later and "you claimed 150" in later[0].messages[-1]["content"]


def test_out_of_range_reply_is_repaired_once_then_falls_back(tmp_path):
    data = scenario([LLM_GROUP, SCRIPTED[1]], rounds=2, fallback=100)
    backend = FakeBackend("fake", responder=lambda req: '{"claim": 500}')
    society.run(data, out=tmp_path / "r", backends=backend)
    run = tmp_path / "r"
    rows = query(
        run,
        "SELECT d.action, d.value, d.valid, d.source FROM decisions d "
        "JOIN agents a ON a.agent_id = d.agent_id WHERE a.grp = 'llm'",
    )
    assert len(rows) == 2 * 2 * 2
    assert set(rows) == {("100", 100.0, 0, "fallback")}
    assert backend.calls == 2 * len(rows)  # the question and one repair each
    purposes = {p for (p,) in query(run, "SELECT purpose FROM llm_calls")}
    assert purposes == {"claim", "claim:repair"}


def test_llm_prompt_without_revealed_rounds():
    prompts = Prompts(defaults=game_prompts("travelers"))
    player = LLMTraveler(prompts, persona="You are careful.")
    obs = TravelersObservation(2, None, (120,), (130,), (125.0,), TravelersRules(reward=20))
    messages = player.messages(obs)
    assert messages[0]["content"].startswith("You are careful.")
    assert "rounds in total" not in messages[0]["content"]
    assert "20 points more" in messages[0]["content"]
    assert messages[1]["content"].startswith(
        "In round 1, you claimed 120 and the other player claimed 130. Thus, you won 125 points."
    )
    turn = Turn(0, 1, "claim", obs, TravelersGame(
        obs.rules, lambda r, g: [], static=True, rng=np.random.default_rng(0)
    ).spec, 200)  # fmt: skip
    gen = player.answer(turn, None, {"agent": 0})
    request = next(gen)
    assert request.tags == {"agent": 0, "purpose": "claim"}


# -- resume and validation ---------------------------------------------------------------------
@pytest.mark.parametrize("matching", ["round_robin", "random"])
@pytest.mark.parametrize("cut", [1, 4])
def test_interrupted_run_resumes_identically(tmp_path, monkeypatch, matching, cut):
    groups = [{**g, "count": 2} for g in SCRIPTED]
    data = scenario(groups, rounds=8)
    data["matching"] = {"kind": matching}
    from tests.test_resume import interrupt_resume_compare  # the shared kill-and-resume check

    interrupt_resume_compare(data, cut, tmp_path, monkeypatch)


def test_interrupted_evolving_run_resumes_identically(tmp_path, monkeypatch):
    groups = [{**g, "count": 2} for g in SCRIPTED]
    data = {**scenario(groups, rounds=3), "evolution": {"generations": 3, "selection": "moran"}}
    from tests.test_resume import interrupt_resume_compare

    interrupt_resume_compare(data, 4, tmp_path, monkeypatch)


@pytest.mark.parametrize(
    ("game", "match"),
    [
        ({"low": 200, "high": 80}, r"game\.low: .*game\.high"),
        ({"low": 100, "high": 100}, r"game\.low: .*game\.high"),
        ({"fallback": 20}, r"game\.fallback:"),
    ],
)
def test_validation_errors_name_the_field(tmp_path, game, match):
    with pytest.raises(UserError, match=match) as info:
        society.run(scenario(SCRIPTED[:2], **game), out=tmp_path / "r")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "r" / "run.sqlite").exists()


def test_unknown_policy_is_a_user_error(tmp_path):
    groups = [{"name": "x", "strategy": "tit_for_tat"}, SCRIPTED[0]]
    with pytest.raises(UserError, match="population.groups.x.strategy: unknown travelers"):
        society.run(scenario(groups), out=tmp_path / "r")
