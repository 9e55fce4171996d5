"""The commons dilemma (after GovSim, Piatti et al. 2024): regrowth and collapse computed
by hand, the phases of a month, scripted references with known fates, the LLM policy's
prompts through the fake backend, resume identity, validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import society
from agents.commons import (
    LLMCommoner,
    clean_text,
    commons_policy_names,
    make_commons_policy,
)
from agents.prompts import Prompts, game_prompts
from games.commons import CommonsGame, CommonsRules
from games.protocol import Number, Text
from society.backends.fake import FakeBackend
from society.errors import UserError
from society.registry import game_kinds
from tests.helpers import query

ROOT = Path(__file__).resolve().parents[1]
RULES = CommonsRules()  # GovSim's lake: 100 tons, doubling, gone below 5


# -- the rules, by hand ---------------------------------------------------------------------
def test_regrowth_doubles_up_to_the_capacity():
    assert RULES.regrow(30) == 60
    assert RULES.regrow(50) == 100
    assert RULES.regrow(70) == 100  # capped
    assert CommonsRules(growth=1.5).regrow(40) == 60
    assert CommonsRules(growth=1).regrow(40) == 40  # no regrowth


@pytest.mark.parametrize(
    ("stock", "asked", "taken", "remaining", "collapsed", "next_stock"),
    [
        (100, [10] * 5, [10] * 5, 50, False, 100),  # the sustainable harvest
        (100, [12] * 5, [12] * 5, 40, False, 80),
        (80, [12] * 5, [12] * 5, 20, False, 40),
        (40, [12] * 5, [8] * 5, 0, True, 0),  # asks exceed the stock: shared in proportion
        (100, [19] * 5, [19] * 5, 5, False, 10),  # exactly the threshold left: alive
        (100, [19, 19, 19, 19, 20], [19, 19, 19, 19, 20], 4, True, 0),  # below it: collapse
        (100, [100, 0, 0, 0, 0], [100, 0, 0, 0, 0], 0, True, 0),
        (60, [30, 90], [15, 45], 0, True, 0),  # 60 shared 1:3
    ],
)
def test_settle_hand_computed(stock, asked, taken, remaining, collapsed, next_stock):
    out = RULES.settle(stock, asked)
    assert out.taken == pytest.approx(taken)
    assert out.remaining == pytest.approx(remaining)
    assert out.collapsed is collapsed
    assert out.next_stock == pytest.approx(next_stock)


def test_sustainable_share_and_maximum():
    assert RULES.sustainable_total(100) == 50  # 100 (1 - 1/2)
    assert RULES.sustainable_share(100, 5) == 10
    assert RULES.sustainable_total(60) == 30
    assert RULES.sustainable_total(8) == 3  # 8 - 5: the threshold binds before the half
    assert RULES.sustainable_total(5) == 0
    assert CommonsRules(growth=1).sustainable_total(100) == 0
    assert CommonsRules(growth=4).sustainable_total(100) == 75
    assert RULES.sustainable_max(12) == 600
    assert CommonsRules(initial=60).sustainable_max(12) == 360
    # Taking the sustainable total leaves the next stock exactly where it was.
    for h in (100.0, 60.0, 37.0, 12.0):
        out = RULES.settle(h, [RULES.sustainable_total(h)])
        assert out.next_stock == pytest.approx(h) and not out.collapsed


def test_max_take_is_the_stock_or_the_quota():
    assert RULES.max_take(100) == 100
    assert RULES.max_take(37.6) == 37  # whole numbers: floored
    assert CommonsRules(integer=False).max_take(37.6) == 37.6
    assert CommonsRules(max_harvest=15).max_take(100) == 15
    assert CommonsRules(max_harvest=15).max_take(12) == 12


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"capacity": 0}, "capacity"),
        ({"capacity": float("inf")}, "capacity"),
        ({"growth": 0.5}, "growth"),
        ({"threshold": 100}, "threshold"),
        ({"threshold": -1}, "threshold"),
        ({"initial": 3}, "initial"),
        ({"initial": 101}, "initial"),
        ({"max_harvest": 0}, "max_harvest"),
        ({"integer": 1}, "integer"),
    ],
)
def test_rules_validation(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        CommonsRules(**kwargs)


def test_settle_rejects_negative_asks():
    with pytest.raises(ValueError, match="asks"):
        RULES.settle(100, [5, -1])


# -- the game: phases, turns, events, state ---------------------------------------------------
def play(policies: list[Any], rules: CommonsRules = RULES, seed: int = 0, **kw: Any):
    """Play a commons with scripted policies (one per slot) to its end."""
    pols = [make_commons_policy(p) for p in policies]
    game = CommonsGame(rules, len(pols), **kw)
    rng = np.random.default_rng(seed)
    steps = []
    while not game.done:
        turns = game.pending(rng)
        acts = [t.spec.legalize(pols[t.agent].act(t, rng))[0] for t in turns]
        steps.append((turns, acts, game.apply(turns, acts, rng)))
    return game, steps


def stock_path(game: CommonsGame) -> list[float]:
    return [m["stock"] for m in game.played] + [game.stock]


def test_a_month_is_harvest_discussion_reflection():
    game = CommonsGame(RULES, 3, months=2, discussion_rounds=2)
    rng = np.random.default_rng(0)
    assert game.phases == ("harvest", "discuss", "discuss", "reflect")
    assert game.total_steps() == 8
    turns = game.pending(rng)
    assert [(t.agent, t.partner, t.purpose) for t in turns] == [
        (0, None, "harvest"), (1, None, "harvest"), (2, None, "harvest"),
    ]  # fmt: skip
    assert turns[0].spec == Number(0, 100, integer=True, field="amount")
    assert turns[0].fallback == 0
    obs = turns[1].observation
    assert (obs.phase, obs.month, obs.months, obs.stock, obs.share, obs.memory) == (
        "harvest", 1, 2, 100, 50 / 3, "",
    )  # fmt: skip
    events = game.apply(turns, [10, 20, 30], rng)
    assert [(e.kind, e.agent, e.value) for e in events[:3]] == [
        ("payoff", 0, 10.0), ("payoff", 1, 20.0), ("payoff", 2, 30.0),
    ]  # fmt: skip
    stock = events[3]
    assert (stock.kind, stock.agent, stock.value) == ("stock", None, 80.0)
    assert stock.data == {
        "month": 1, "stock": 100.0, "asked": 60.0, "taken": 60.0, "remaining": 40.0,
        "share": 50 / 3, "sustainable": 50.0, "collapsed": False,
    }  # fmt: skip
    # Discussion round 1: the harvest report, no messages yet; Text turns.
    turns = game.pending(rng)
    assert {t.purpose for t in turns} == {"message"} and isinstance(turns[0].spec, Text)
    obs = turns[2].observation
    assert obs.taken == (10, 20, 30) and obs.next_stock == 80 and obs.remaining == 40
    assert obs.messages == () and obs.discussion_round == 1 and obs.stock == 100
    assert game.apply(turns, ["a", "b", "c"], rng) == []
    # Round 2 sees round 1's messages; the reflection sees both rounds.
    turns = game.pending(rng)
    assert turns[0].observation.messages == ((0, "a"), (1, "b"), (2, "c"))
    assert turns[0].observation.discussion_round == 2
    game.apply(turns, ["d", "", "f"], rng)
    turns = game.pending(rng)
    assert {t.purpose for t in turns} == {"reflect"}
    assert [t.fallback for t in turns] == ["", "", ""]  # the unchanged (empty) memory
    assert len(turns[0].observation.messages) == 6
    game.apply(turns, ["m0", "m1", "m2"], rng)
    # Month 2: the new stock, the memories, the history of month 1; messages cleared.
    turns = game.pending(rng)
    obs = turns[1].observation
    assert (obs.month, obs.stock, obs.memory, obs.messages) == (2, 80, "m1", ())
    assert obs.history[0] == (1, 100, 60, 20, 40, 80)
    assert turns[1].spec.high == 80
    assert game.position().round_in_game == 1


def test_undisclosed_harvests_show_only_ones_own():
    game = CommonsGame(RULES, 3, disclose_harvests=False)
    rng = np.random.default_rng(0)
    game.apply(game.pending(rng), [1, 2, 3], rng)
    obs = [t.observation for t in game.pending(rng)]
    assert obs[0].taken == (1, None, None) and obs[2].taken == (None, None, 3)


def test_no_discussion_no_reflection():
    game, steps = play(["sustainable"] * 5, months=4, discussion_rounds=0, reflection=False)
    assert game.phases == ("harvest",)
    assert len(steps) == 4 and all(t[0].purpose == "harvest" for t, _, _ in steps)


def test_fallback_is_capped_at_the_stock():
    game = CommonsGame(CommonsRules(initial=40), 2, fallback=55.5)
    assert game.pending(np.random.default_rng(0))[0].fallback == 40
    game = CommonsGame(CommonsRules(integer=False), 2, fallback=7.5)
    assert game.pending(np.random.default_rng(0))[0].fallback == 7.5


def test_state_round_trips_as_json_mid_month():
    game = CommonsGame(RULES, 3, months=3)
    rng = np.random.default_rng(0)
    game.apply(game.pending(rng), [10, 20, 30], rng)
    game.apply(game.pending(rng), ["hi", "", "ok"], rng)
    state = json.loads(json.dumps(game.get_state()))
    copy = CommonsGame(RULES, 3, months=3)
    copy.set_state(state)
    assert copy.get_state() == game.get_state()
    assert [t.observation for t in copy.pending(rng)] == [t.observation for t in game.pending(rng)]
    assert (
        copy.fitness()
        == game.fitness()
        == {
            0: (10.0, {"total": 10.0, "months": 1}),
            1: (20.0, {"total": 20.0, "months": 1}),
            2: (30.0, {"total": 30.0, "months": 1}),
        }
    )
    with pytest.raises(ValueError, match="agents"):
        CommonsGame(RULES, 4).set_state(state)


# -- scripted references: known fates -----------------------------------------------------------
def test_sustainable_harvesters_keep_the_lake_for_twelve_months():
    game, steps = play(["sustainable"] * 5)
    assert not game.collapsed and len(game.played) == 12
    assert stock_path(game) == [100.0] * 13
    assert game.gains == [120.0] * 5
    assert len(steps) == 12 * 3


def test_greedy_harvesters_empty_the_lake_in_month_one():
    game, steps = play(["greedy"] * 5)
    assert game.collapsed and len(game.played) == 1 and len(steps) == 1  # no talk after it
    assert game.played[0]["asked"] == [100.0] * 5
    assert game.gains == [20.0] * 5  # 100 shared five ways
    assert game.done and game.stock == 0


def test_fixed_harvesters_collapse_in_month_three():
    # 5 x 12 a month: 100 -> 40 left -> 80 -> 20 left -> 40 -> asks 60 > 40: collapse.
    game, _ = play([{"name": "fixed", "amount": 12}] * 5)
    assert stock_path(game) == [100, 80, 40, 0]
    assert game.collapsed and game.gains == [32.0] * 5


def test_four_sustainable_and_one_fixed_thirty():
    game, _ = play(["sustainable"] * 4 + [{"name": "fixed", "amount": 30}])
    assert stock_path(game) == [100, 60, 12, 0]
    assert [m["asked"] for m in game.played] == [
        [10] * 4 + [30], [6] * 4 + [30], [1] * 4 + [12],  # the share at 12 is 1.2 -> 1
    ]  # fmt: skip
    assert game.gains == pytest.approx([16.75] * 4 + [69.0])  # month 3: 12 shared 1:1:1:1:12


def test_half_again_the_share_settles_at_a_low_stock():
    # 1.5 x the share, floored: 100 -> 75 taken -> 50; 50 -> 35 -> 30; 30 -> 20 -> 20;
    # 20 -> 15 -> 10; 10 -> 5 (share 1, 1.5 -> 1) -> 10: a poor lake that never dies.
    game, _ = play([{"name": "sustainable", "factor": 1.5}] * 5)
    assert stock_path(game)[:6] == [100, 50, 30, 20, 10, 10]
    assert not game.collapsed and len(game.played) == 12


def test_random_draws_one_integer_per_harvest():
    game, _ = play(["random"] * 2, months=3, seed=5)
    rng = np.random.default_rng(5)
    first = [float(rng.integers(0, 101)) for _ in range(2)]
    assert game.played[0]["asked"] == first
    again, _ = play(["random"] * 2, months=3, seed=5)
    assert again.get_state() == game.get_state()


def test_scripted_texts_state_the_month():
    game, steps = play(["sustainable", {"name": "fixed", "amount": 30}], months=1)
    (_, asked, _), (_, said, _), (_, memo, _) = steps
    assert asked == [25, 30]  # half of 100 shared by two; 55 taken, 45 left, 90 next
    assert said == [
        "I took 25 units; 90 units are there for next month. I will keep to my share of "
        "what grows back.",
        "I took 30 units; 90 units are there for next month. I will take the same amount "
        "every month.",
    ]
    assert memo[0] == (
        "Month 1: the stock was 100, I took 25, we took 55 that I know of, the stock is now 90."
    )
    assert game.memory == memo


def test_policy_specs_round_trip_and_errors():
    assert commons_policy_names() == ["fixed", "greedy", "random", "sustainable"]
    for name in commons_policy_names():
        policy = make_commons_policy(name)
        assert make_commons_policy(policy.spec()).spec() == policy.spec()
    assert make_commons_policy("sustainable").spec() == {"name": "sustainable", "factor": 1.0}
    with pytest.raises(ValueError, match="valid names: fixed, greedy, random, sustainable"):
        make_commons_policy("tit_for_tat")
    with pytest.raises(ValueError, match="'amount' must be a number >= 0"):
        make_commons_policy({"name": "fixed", "amount": -3})


# -- the LLM policy ------------------------------------------------------------------------------
def commoner(framing: str = "fishery", **kw: Any) -> LLMCommoner:
    return LLMCommoner(Prompts(defaults=game_prompts("commons")), framing=framing, **kw)


@pytest.mark.parametrize(
    ("framing", "words"),
    [
        ("fishery", ("fishermen", "100 tons of fish", "multiply by 2")),
        ("pasture", ("shepherds", "100 hectares of grass", "factor of 2")),
        ("pollution", ("factory owners", "100 units of pollution", "factor of 2")),
    ],
)
def test_framings_tell_the_same_rules(framing, words):
    game = CommonsGame(RULES, 5)
    obs = game.pending(np.random.default_rng(0))[0].observation
    system, user = (m["content"] for m in commoner(framing).messages(obs, "Agent 0", []))
    for w in (*words, "one of 5", "12 months", "5 "):
        assert w in system, (framing, w)
    # The rules are every agent's (shared first: the prefix cache); the name opens the user's.
    assert "Agent 0" not in system and user.startswith("Your name is Agent 0.\n")
    assert "month 1 of 12" in user and "from 0 to 100" in user and '{"amount": N}' in user


def test_prompts_carry_report_messages_memory_and_history():
    game = CommonsGame(RULES, 3, months=2)
    rng = np.random.default_rng(0)
    game.apply(game.pending(rng), [10, 20, 30], rng)
    names = ["Agent 0", "Agent 1", "Agent 2"]
    llm = commoner()
    talk = game.pending(rng)
    user = llm.messages(talk[0].observation, "Agent 0", names)[1]["content"]
    assert "You took 10 tons of fish." in user and "Agent 2 took 30 tons of fish." in user
    assert "40 tons of fish were left; next month there will be 80." in user
    assert "Nobody has spoken yet." in user
    game.apply(talk, ["Take 10 each.", "  ", "No."], rng)
    reflect = game.pending(rng)
    user = llm.messages(reflect[1].observation, "Agent 1", names)[1]["content"]
    assert "Agent 0 said: Take 10 each.\nAgent 2 said: No." in user
    game.apply(reflect, ["keep to 10", "x", "y"], rng)
    harvest = game.pending(rng)
    user = llm.messages(harvest[0].observation, "Agent 0", names)[1]["content"]
    assert user.startswith(
        "Your name is Agent 0.\nYour notes from earlier months: keep to 10\nIn month 1, the stock"
    )
    assert "everyone together took 60 (you took 10); 40 were left and it grew back to 80." in user
    hinted = commoner(universalization=True).messages(harvest[0].observation, "A", names)
    assert "at most 13.33 tons of fish this month" in hinted[1]["content"]  # 40 / 3


def test_clean_text():
    assert clean_text('  "We should  take\n10 each."  ', 100) == "We should take 10 each."
    assert clean_text("abcdef", 3) == "abc"


def test_unknown_framing():
    with pytest.raises(ValueError, match="^framing:"):
        commoner("ocean")


# -- full runs through the front door -------------------------------------------------------------
def scenario(groups: list[dict], **game: Any) -> dict[str, Any]:
    return {
        "name": "commons-test",
        "seed": 3,
        "population": {"groups": groups},
        "game": {"kind": "commons", **game},
    }


SUSTAINABLE = {"name": "s", "count": 4, "strategy": "sustainable"}
FIXED30 = {"name": "f", "count": 1, "strategy": {"name": "fixed", "amount": 30}}


def test_the_plugin_is_registered():
    kind = game_kinds()["commons"]
    assert kind.report == "commons" and kind.uses == frozenset()
    assert {"commons.fishery.system", "commons.harvest", "commons.reflect"} <= set(kind.prompts)


def test_shipped_scripted_scenario_collapses_in_month_three(tmp_path):
    result = society.run(ROOT / "scenarios" / "commons_scripted.yaml", out=tmp_path / "r")
    assert result.status == "finished"
    run = tmp_path / "r"
    kinds = dict(query(run, "SELECT kind, COUNT(*) FROM decisions GROUP BY kind"))
    assert kinds == {"harvest": 15, "message": 10, "reflect": 10}  # months 1, 2 talk
    stocks = query(run, "SELECT round, value, data FROM events WHERE kind='stock' ORDER BY id")
    assert [(r, v) for r, v, _ in stocks] == [(0, 60.0), (3, 12.0), (6, 0.0)]
    assert json.loads(stocks[-1][2])["collapsed"] is True
    totals = dict(query(run, "SELECT agent_id, SUM(value) FROM events WHERE kind='payoff' "
                        "GROUP BY agent_id"))  # fmt: skip
    assert totals == pytest.approx({0: 16.75, 1: 16.75, 2: 16.75, 3: 16.75, 4: 69.0})
    steps = query(run, "SELECT round, round_in_game, n_decisions FROM rounds ORDER BY round")
    assert [s[1] for s in steps] == [0, 0, 0, 1, 1, 1, 2]
    resolved = json.loads(query(run, "SELECT value FROM meta WHERE key='resolved_game'")[0][0])
    assert resolved["sustainable_max"] == 600 and resolved["sustainable_share"] == 10
    assert resolved["framing"] == "fishery" and resolved["months"] == 12


def test_evolution_over_commons(tmp_path):
    data = {**scenario([SUSTAINABLE, FIXED30], months=4), "evolution": {"generations": 3}}
    result = society.run(data, out=tmp_path / "r")
    assert result.status == "finished"
    fit = query(tmp_path / "r", "SELECT agent_id, value FROM events WHERE kind='fitness' "
                "AND generation=0 ORDER BY agent_id")  # fmt: skip
    assert fit == [(0, 16.75), (1, 16.75), (2, 16.75), (3, 16.75), (4, 69.0)]


def test_llm_turns_through_the_fake_backend(tmp_path):
    seen: list[Any] = []

    def responder(req):
        seen.append(req)
        if req.json_schema:
            return '{"amount": 7}'
        return "  Let us   take 10 each.\n"

    llm = {"name": "llm", "kind": "llm", "count": 2, "max_tokens": 16}
    data = scenario([llm, {"name": "s", "count": 1, "strategy": "sustainable"}], months=2)
    society.run(data, out=tmp_path / "r", backends=FakeBackend("fake", responder=responder))
    rows = query(
        tmp_path / "r",
        "SELECT d.kind, d.action, d.value, d.valid, d.source FROM decisions d "
        "JOIN agents a ON a.agent_id = d.agent_id WHERE a.grp = 'llm' ORDER BY d.id",
    )
    assert [r[0] for r in rows] == ["harvest"] * 2 + ["message"] * 2 + ["reflect"] * 2 + [
        "harvest"] * 2 + ["message"] * 2 + ["reflect"] * 2  # fmt: skip
    assert set(r for r in rows if r[0] == "harvest") == {("harvest", None, 7.0, 1, "llm")}
    assert {r[1] for r in rows if r[0] != "harvest"} == {"Let us take 10 each."}
    harvest = [r for r in seen if r.json_schema]
    # The turn's own schema: an integer in [0, 100] (the stock) for every backend.
    assert harvest[0].json_schema == Number(0, 100, integer=True, field="amount").json_schema()
    amount = harvest[0].json_schema["properties"]["amount"]
    assert (amount["minimum"], amount["maximum"]) == (0, 100)
    texts = [r for r in seen if not r.json_schema]
    assert texts and all(r.max_tokens == 80 for r in texts)
    month2 = [r for r in harvest if "month 2 of 2" in r.messages[1]["content"]]
    assert (
        month2
        and "Your notes from earlier months: Let us take 10 each."
        in (month2[0].messages[1]["content"])
    )
    purposes = {p for (p,) in query(tmp_path / "r", "SELECT purpose FROM llm_calls")}
    assert purposes == {"harvest", "message", "reflect"}


def test_invalid_asks_and_empty_texts_fall_back(tmp_path):
    def responder(req):
        return '{"amount": 500}' if req.json_schema else "   "

    llm = {"name": "llm", "kind": "llm", "count": 1, "max_tokens": 16}
    data = scenario([llm, {"name": "s", "count": 1, "strategy": "sustainable"}], months=1,
                    fallback_harvest=3, initial_memory="start")  # fmt: skip
    backend = FakeBackend("fake", responder=responder)
    society.run(data, out=tmp_path / "r", backends=backend)
    rows = query(tmp_path / "r", "SELECT kind, action, value, valid, source FROM decisions "
                 "WHERE agent_id = 0 ORDER BY id")  # fmt: skip
    assert rows == [
        ("harvest", None, 3.0, 0, "fallback"),
        ("message", "", None, 0, "fallback"),
        ("reflect", "start", None, 0, "fallback"),  # the memory stays
    ]
    assert backend.calls == 2 + 1 + 1  # a repair for the ask only


# -- resume and validation ---------------------------------------------------------------------
@pytest.mark.parametrize("cut", [1, 2, 5])
def test_interrupted_run_resumes_identically(tmp_path, monkeypatch, cut):
    groups = [
        {"name": "s", "count": 2, "strategy": {"name": "sustainable", "factor": 1.2}},
        {"name": "r", "count": 2, "strategy": "random"},
    ]
    data = scenario(groups, months=4, discussion_rounds=2, max_harvest=20)
    from tests.test_resume import interrupt_resume_compare  # the shared kill-and-resume check

    interrupt_resume_compare(data, cut, tmp_path, monkeypatch)


def test_interrupted_llm_run_resumes_identically(tmp_path, monkeypatch):
    """Memories and messages of LLM agents (fake backend) survive a resume mid-month."""
    llm = {"name": "llm", "kind": "llm", "count": 2, "max_tokens": 16}
    data = scenario([llm, SUSTAINABLE], months=3, max_harvest=10)
    data["backend"] = {"kind": "fake", "model": "fake"}
    from tests.test_resume import interrupt_resume_compare

    interrupt_resume_compare(data, 4, tmp_path, monkeypatch)


@pytest.mark.parametrize(
    ("game", "match"),
    [
        ({"collapse_threshold": 100}, r"game\.collapse_threshold: must lie in"),
        ({"initial_stock": 2}, r"game\.initial_stock: must lie in"),
        ({"initial_stock": 200}, r"game\.initial_stock:"),
        ({"growth": 0.5}, r"game\.growth"),
        ({"framing": "ocean"}, r"game\.framing: Input should be 'fishery'"),
        ({"months": 0}, r"game\.months"),
    ],
)
def test_validation_errors_name_the_field(tmp_path, game, match):
    with pytest.raises(UserError, match=match) as info:
        society.run(scenario([SUSTAINABLE], **game), out=tmp_path / "r")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "r" / "run.sqlite").exists()


def test_unknown_policy_is_a_user_error(tmp_path):
    groups = [{"name": "x", "strategy": "tit_for_tat"}]
    with pytest.raises(UserError, match="population.groups.x.strategy: unknown commons"):
        society.run(scenario(groups), out=tmp_path / "r")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n": 0}, "n"),
        ({"months": 0}, "months"),
        ({"discussion_rounds": -1}, "discussion_rounds"),
        ({"message_chars": 0}, "message_chars"),
        ({"fallback": -1}, "fallback"),
        ({"months": 2.5}, "months"),
    ],
)
def test_game_validation(kwargs, field):
    args = {"n": 3, **kwargs}
    n = args.pop("n")
    with pytest.raises(ValueError, match=f"^{field}:"):
        CommonsGame(RULES, n, **args)
