"""The donor game's two schedules and the other choices where the paper's text and the
authors' notebook differ (protocols §1): fitness, advice scores, strategy extraction,
asking empty-handed donors, and the free-text "Justification/Answer" reply format."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import society.runner as runner
from agents.chat import ChatRequest
from agents.llm import InvalidReply
from agents.llm_donor import FALLBACK_STRATEGY, extract_strategy, parse_text_donation
from games.donor import (
    DonorAction,
    DonorGame,
    DonorPlay,
    DonorRules,
    make_schedule,
    reverse_schedule,
)
from society.engine import Engine
from society.errors import UserError
from society.scenario import load_scenario, validate_scenario
from tests.helpers import ROOT, assert_same_store
from tests.test_donor_sim import FakePool, q, run, scenario

CODE = DonorRules(schedule="code")


@pytest.fixture
def fake_backends():
    """Every LLM group served by an injected FakeBackend (as in test_donor_sim)."""
    state: dict = {"responder": None, "made": []}
    state["pool"] = FakePool(state)
    return state


def play_all(game: DonorGame) -> None:
    while not game.done:
        game.apply([DonorAction(o.donor_resources) for o in game.pending()])


def play_generation(play: DonorPlay, seed: int = 0) -> list[list[list[tuple[int, int]]]]:
    """Every donor gives everything; returns each game's schedule."""
    rng = np.random.default_rng(seed)
    schedules = []
    while not play.done:
        turns = play.pending(rng)
        if play.game is not None and play.game.round == 0:
            schedules.append(play.game.schedule)
        play.apply(turns, [DonorAction(t.observation.donor_resources) for t in turns], rng)
    return schedules


# --- the sanity figures ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_sanity_figures_both_schedules_exactly(seed: int) -> None:
    text = DonorGame(12, DonorRules(), np.random.default_rng(seed))
    code = DonorGame(12, CODE, np.random.default_rng(seed))
    play_all(text)
    play_all(code)
    assert sum(text.resources) / 12 == 30720
    assert sum(code.resources) / 12 == 15360
    # Round 7's donors gave everything in round 6: one doubling is lost, 30 * 2**10 each.
    assert sorted(code.resources) == [0.0] * 6 + [30720.0] * 6


def test_sanity_figure_code_schedule_second_game_and_fitness_rules() -> None:
    for fitness, expected in (("mean", 15360), ("last_game", 15360), ("twice_last_game", 30720)):
        play = DonorPlay(12, CODE, 2, fitness=fitness)
        play_generation(play)
        assert [sum(f) / 12 for f in play.finals] == [15360, 15360]
        fit = play.fitness()
        assert np.mean([v for v, _ in fit.values()]) == expected
        assert all(
            d["finals"] == [play.finals[0][k], play.finals[1][k]] for k, (_, d) in fit.items()
        )


def test_fitness_rules_by_hand() -> None:
    play = DonorPlay(2, DonorRules(rounds=1), 2, fitness="mean")
    play.finals = [[1.0, 5.0], [3.0, 9.0]]
    assert {k: v for k, (v, _) in play.fitness().items()} == {0: 2.0, 1: 7.0}
    play.fitness_rule = "last_game"
    assert {k: v for k, (v, _) in play.fitness().items()} == {0: 3.0, 1: 9.0}
    play.fitness_rule = "twice_last_game"
    assert {k: v for k, (v, _) in play.fitness().items()} == {0: 6.0, 1: 18.0}
    with pytest.raises(ValueError, match="fitness"):
        DonorPlay(2, DonorRules(rounds=1), fitness="best")  # type: ignore[arg-type]


def test_sanity_figures_through_the_runtime(tmp_path) -> None:
    for schedule, mean in (("text", 30720), ("code", 15360)):
        data = scenario([{"name": "all", "count": 12, "strategy": "donate_all"}], schedule=schedule)
        conn = run(data, tmp_path, name=schedule)
        fit = [v for (v,) in q(conn, "SELECT value FROM events WHERE kind = 'fitness'")]
        assert len(fit) == 12 and np.mean(fit) == mean
        per_game = q(
            conn,
            "SELECT json_extract(data, '$.game'), AVG(value) FROM events WHERE kind = 'resources' "
            "AND json_extract(data, '$.round_in_game') = 11 GROUP BY 1 ORDER BY 1",
        )
        assert per_game == [(0, float(mean)), (1, float(mean))]
    data = scenario([{"name": "all", "count": 12, "strategy": "donate_all"}], schedule="code",
                    fitness="twice_last_game")  # fmt: skip
    conn = run(data, tmp_path, name="code-fitness")
    fit = [v for (v,) in q(conn, "SELECT value FROM events WHERE kind = 'fitness'")]
    assert np.mean(fit) == 30720 and sorted(set(fit)) == [0.0, 61440.0]


# --- the code schedule's pairs ---------------------------------------------------------


def halves_of(schedule) -> tuple[set[int], set[int]]:
    return {d for d, _ in schedule[0]}, {r for _, r in schedule[0]}


def test_code_schedule_pair_multiset_twelve_agents() -> None:
    sched = make_schedule(12, CODE, np.random.default_rng(3))
    a, b = halves_of(sched)
    assert len(a) == len(b) == 6 and a | b == set(range(12))
    unordered = Counter(frozenset(p) for rnd in sched for p in rnd)
    ordered = Counter(p for rnd in sched for p in rnd)
    # Every opposite-half pair exactly twice, once in each direction; nothing else.
    assert unordered == Counter({frozenset((x, y)): 2 for x in a for y in b})
    assert ordered == Counter(
        {**{(x, y): 1 for x in a for y in b}, **{(y, x): 1 for x in a for y in b}}
    )
    # Six rounds apart: round r + 6 is round r reversed.
    for r in range(6):
        assert sched[r + 6] == sorted((y, x) for x, y in sched[r])
    # Who donates: A, B, A, B, A, B, then B, A, B, A, B, A (rounds 6 and 7 both B).
    donors = [{d for d, _ in rnd} for rnd in sched]
    assert donors == [a, b, a, b, a, b, b, a, b, a, b, a]
    assert all(
        len(rnd) == 6 and sorted(x for p in rnd for x in p) == list(range(12)) for rnd in sched
    )


def test_code_schedule_second_game_reverses_the_first() -> None:
    play = DonorPlay(12, CODE, 2)
    first, second = play_generation(play, seed=5)
    assert second == reverse_schedule(first)
    assert second != first
    both = Counter(p for s in (first, second) for rnd in s for p in rnd)
    a, b = halves_of(first)
    assert both == Counter(
        {**{(x, y): 2 for x in a for y in b}, **{(y, x): 2 for x in a for y in b}}
    )
    # A third game replays the first again (even games as the first, odd ones reversed).
    play3 = DonorPlay(12, CODE, 3)
    s1, s2, s3 = play_generation(play3, seed=5)
    assert s2 == reverse_schedule(s1) and s3 == s1


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), half=st.integers(1, 8), data=st.data())
def test_code_schedule_properties(seed: int, half: int, data) -> None:
    n = 2 * half
    rounds = data.draw(st.integers(1, n))
    sched = make_schedule(
        n, DonorRules(rounds=rounds, schedule="code"), np.random.default_rng(seed)
    )
    assert len(sched) == rounds
    a, b = halves_of(sched)
    ordered = [p for rnd in sched for p in rnd]
    assert len(set(ordered)) == len(ordered)  # no ordered pair twice (no_repeat="ordered")
    for rnd in sched:
        assert sorted(x for p in rnd for x in p) == list(range(n)) and rnd == sorted(rnd)
        donors = {d for d, _ in rnd}
        assert donors in (a, b)  # always a whole half donating to the other
    for r in range(max(0, rounds - half)):
        assert sched[r + half] == sorted((y, x) for x, y in sched[r])
    if rounds == n:
        assert Counter(frozenset(p) for p in ordered) == Counter(
            {frozenset((x, y)): 2 for x in a for y in b}
        )


def test_code_schedule_deterministic_and_checked() -> None:
    s1 = make_schedule(12, CODE, np.random.default_rng(9))
    assert s1 == make_schedule(12, CODE, np.random.default_rng(9))
    assert s1 != make_schedule(12, CODE, np.random.default_rng(10))
    with pytest.raises(ValueError, match="at most 12 rounds"):
        make_schedule(12, DonorRules(rounds=13, schedule="code"), np.random.default_rng(0))
    with pytest.raises(ValueError, match="unordered.*schedule='code'"):
        DonorRules(schedule="code", no_repeat="unordered")
    with pytest.raises(ValueError, match="schedule must be 'text' or 'code'"):
        DonorRules(schedule="notebook")  # type: ignore[arg-type]
    # The default schedule is untouched by the new field (same draws as before).
    assert DonorRules().schedule == "text"


def test_code_schedule_state_round_trip_between_games() -> None:
    rng = np.random.default_rng(2)
    a = DonorPlay(4, DonorRules(rounds=4, schedule="code"), 2)
    for _ in range(4):  # the whole first game
        turns = a.pending(rng)
        a.apply(turns, [DonorAction(0.5 * t.observation.donor_resources) for t in turns], rng)
    b = DonorPlay(4, DonorRules(rounds=4, schedule="code"), 2)
    b.set_state(json.loads(json.dumps(a.get_state())))
    assert b.first_schedule == a.first_schedule
    ta, tb = a.pending(rng), b.pending(np.random.default_rng(99))  # no draw needed
    assert a.game.schedule == b.game.schedule == reverse_schedule(a.first_schedule)
    assert [t.observation for t in ta] == [t.observation for t in tb]
    # The text schedule's state has no such part (checkpoints as before).
    assert "first_schedule" not in DonorPlay(4, DonorRules(rounds=4), 2).get_state()


@pytest.mark.parametrize("kill_after", [3, 6, 8])
def test_resume_is_identical_code_schedule(tmp_path, monkeypatch, fake_backends, kill_after):
    fake_backends["responder"] = text_reply(0.5)
    data = scenario(
        [
            {"name": "rand", "count": 2, "strategy": "random"},
            {"name": "llm", "count": 2, "kind": "llm"},
        ],
        generations=2, rounds=4, schedule="code", reply_format="text", fitness="twice_last_game",
        advice_scores=False, strategy_from="first", ask_when_empty=True,
    )  # fmt: skip
    data["backend"] = {"kind": "fake", "model": "fake"}
    sc = validate_scenario(data)
    run(data, tmp_path, "full", backends=fake_backends["pool"])
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
    runner.resume_run(tmp_path / "cut", quiet=True, backends=fake_backends["pool"])
    assert_same_store(tmp_path / "full", tmp_path / "cut")


def test_scenario_errors_name_the_field() -> None:
    bad = scenario([{"name": "a", "count": 4, "strategy": "donate_all"}], rounds=2,
                   schedule="code", no_repeat="unordered")  # fmt: skip
    with pytest.raises(UserError, match="unordered.*schedule='code'"):
        Engine(validate_scenario(bad))
    for field, value in (("schedule", "notebook"), ("fitness", "best"), ("reply_format", "xml"),
                         ("strategy_from", "middle")):  # fmt: skip
        data = scenario([{"name": "a", "count": 4, "strategy": "donate_all"}], **{field: value})
        with pytest.raises(UserError, match=f"game.*{field}"):
            validate_scenario(data)


def test_shipped_code_scenario_resolves_the_code_choices(tmp_path) -> None:
    path = ROOT / "scenarios" / "donor_game_code.yaml"
    sc = load_scenario(path)
    g = sc.game
    played = (g.schedule, g.fitness, g.advice_scores, g.strategy_from, g.ask_when_empty)
    assert played == ("code", "twice_last_game", False, "first", True)
    assert g.reply_format == "text"
    # The rest is donor_game.yaml's.
    base = load_scenario(ROOT / "scenarios" / "donor_game.yaml")
    same = ("endowment", "multiplier", "rounds", "trace_depth", "games_per_generation")
    assert all(getattr(g, k) == getattr(base.game, k) for k in same)
    assert sc.evolution == base.evolution
    short = ["game.rounds=4", "evolution.generations=1"]
    runner.start_run(load_scenario(path, short, backend="fake", model="fake"), tmp_path / "r",
                     quiet=True)  # fmt: skip
    conn = sqlite3.connect(tmp_path / "r" / "run.sqlite")
    (resolved,) = q(conn, "SELECT value FROM meta WHERE key = 'resolved_game'")[0]
    game = json.loads(resolved)
    assert (game["schedule"], game["fitness"], game["reply_format"]) == (
        "code", "twice_last_game", "text"
    )  # fmt: skip


# --- the free-text reply format ----------------------------------------------------------


def text_reply(fraction: float):
    """A fake LLM answering in the free-text format with ``fraction`` of its holdings."""

    def respond(request: ChatRequest) -> str:
        assert request.json_schema is None  # free text: nothing constrains the reply
        prompt = request.messages[-1]["content"]
        if "How many units do you give up" not in prompt:
            return "Thinking first. My strategy will be to give half. Then keep at it.\nDone."
        have = float(prompt.split("You currently have ")[1].split(" units")[0])
        return f"Justification:\nI follow my strategy.\n\nAnswer: {fraction * have:g}"

    return respond


def test_text_format_everyone_gives_all_gives_15360(tmp_path, fake_backends):
    fake_backends["responder"] = text_reply(1.0)
    data = scenario([{"name": "llm", "count": 12, "kind": "llm"}], schedule="code",
                    reply_format="text", ask_when_empty=True)  # fmt: skip
    data["backend"] = {"kind": "fake", "model": "fake"}
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    fit = [v for (v,) in q(conn, "SELECT value FROM events WHERE kind = 'fitness'")]
    assert np.mean(fit) == 15360
    assert q(conn, "SELECT DISTINCT source, valid FROM decisions WHERE kind = 'donate'") == [
        ("llm", 1)
    ]
    # Every donor asked, the empty-handed included (round 7 of each game: 6 of them).
    assert q(conn, "SELECT COUNT(*) FROM llm_calls WHERE purpose = 'donate'") == [(2 * 12 * 6,)]
    donate = json.loads(
        q(conn, "SELECT messages FROM llm_calls WHERE purpose='donate' LIMIT 1")[0][0]
    )
    assert (
        "Justification:" in donate[1]["content"]
        and "Answer: [the number of units" in donate[1]["content"]
    )
    assert "JSON" not in donate[1]["content"]
    reasoning = q(conn, "SELECT DISTINCT json_extract(data, '$.reasoning') FROM decisions "
                        "WHERE kind = 'donate'")  # fmt: skip
    assert reasoning == [("I follow my strategy.",)]


def test_text_format_invalid_replies_repaired_once_then_fall_back(tmp_path, fake_backends):
    def respond(request: ChatRequest) -> str:
        last = request.messages[-1]["content"]
        if "How many units" in request.messages[1]["content"]:
            return "I would give 5." if "not valid" not in last else "Answer: lots"
        return "My strategy will be to give."

    fake_backends["responder"] = respond
    data = scenario([{"name": "llm", "count": 4, "kind": "llm"}], rounds=2, reply_format="text")
    data["backend"] = {"kind": "fake", "model": "fake"}
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    assert q(conn, "SELECT DISTINCT value, valid, source FROM decisions WHERE kind='donate'") == [
        (0.0, 0, "fallback")
    ]
    assert q(conn, "SELECT purpose, COUNT(*) FROM llm_calls GROUP BY 1 ORDER BY 1") == [
        ("donate", 8), ("donate:repair", 8), ("strategy", 4)
    ]  # fmt: skip
    repair = json.loads(q(conn, "SELECT messages FROM llm_calls WHERE purpose='donate:repair' "
                                "LIMIT 1")[0][0])  # fmt: skip
    assert repair[-1]["content"].startswith('Your reply was not valid: no "Answer:" line.')
    assert "Answer: [the number of units you give up, from 0 to 10]" in repair[-1]["content"]


def test_text_format_repair_can_succeed(tmp_path, fake_backends):
    def respond(request: ChatRequest) -> str:
        if "How many units" in request.messages[1]["content"]:
            return "Answer: 3" if "not valid" in request.messages[-1]["content"] else "3 units"
        return "My strategy will be to give 3."

    fake_backends["responder"] = respond
    data = scenario([{"name": "llm", "count": 2, "kind": "llm"}], rounds=1, reply_format="text",
                    games_per_generation=1)  # fmt: skip
    data["backend"] = {"kind": "fake", "model": "fake"}
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    assert q(conn, "SELECT value, valid, source FROM decisions WHERE kind='donate'") == [
        (3.0, 1, "llm")
    ]


def test_text_format_with_punishment(tmp_path, fake_backends):
    def respond(request: ChatRequest) -> str:
        if "How many units" in request.messages[1]["content"]:
            return "Justification: they were stingy.\nAnswer: Punish, 2"
        return "My strategy will be to punish."

    fake_backends["responder"] = respond
    data = scenario([{"name": "llm", "count": 2, "kind": "llm"}], rounds=1, punishment=True,
                    reply_format="text", games_per_generation=1)  # fmt: skip
    data["backend"] = {"kind": "fake", "model": "fake"}
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    assert q(conn, "SELECT value, valid, json_extract(data, '$.punish') FROM decisions "
                   "WHERE kind='donate'") == [(2.0, 1, 1)]  # fmt: skip
    assert q(conn, "SELECT value FROM events WHERE kind='punishment'") == [(2.0,)]
    prompt = json.loads(q(conn, "SELECT messages FROM llm_calls WHERE purpose='donate'")[0][0])
    assert 'answer "Punish, x"' in prompt[1]["content"]
    assert "Answer: Donate, [units] or Punish, [units]" in prompt[1]["content"]


@pytest.mark.parametrize(
    "text, resources, punishment, expected",
    [
        ("Justification:\nI reciprocate.\n\nAnswer: 5", 10, False, (5.0, False, "I reciprocate.")),
        ("**Justification:** fair.\n**Answer:** 2.5 units", 10, False, (2.5, False, "fair.")),
        ("**Answer**: 7", 10, False, (7.0, False, None)),
        ("answer:\n\n  4\n", 10, False, (4.0, False, None)),
        ("Answer: Donate, 3", 10, True, (3.0, False, None)),
        ("Answer: punish, 1.5", 10, True, (1.5, True, None)),
        ("Answer: 4", 10, True, (4.0, False, None)),  # a bare number is a donation
        ("Answer: 1,000", 5000, False, (1000.0, False, None)),
        ("Answer: 50%", 10, False, (5.0, False, None)),
        ("Answer: 50% (5 units)", 10, False, (5.0, False, None)),
        ("Answer: I give 6 out of my 10 units", 10, False, (6.0, False, None)),
        ("Answer: everything", 8, False, (8.0, False, None)),
        ("Answer: nothing at all", 8, False, (0.0, False, None)),
        ("Answer: 10.0000000001", 10, False, (10.0, False, None)),
        (
            "Answer: 1\nOn second thought.\nAnswer: 2",
            10,
            False,
            (2.0, False, "Answer: 1 On second thought."),
        ),
        ("Justification: a\nJustification: b\nAnswer: 0", 10, False, (0.0, False, "b")),
        ("Justification: I share. Answer: 5", 10, False, (5.0, False, "I share.")),
        ("Let me see.\nThe answer is: 7", 10, False, (7.0, False, "Let me see.")),
        ("**Final answer:** 2", 10, False, (2.0, False, None)),
        ("It is 10.\n\nYour answer: 10", 10, False, (10.0, False, "It is 10.")),
        ("Answer: Agent 5 gets 3 units", 10, False, (3.0, False, None)),
        ("Answer: in round 2 I give 4", 10, False, (4.0, False, None)),
    ],
)
def test_parse_text_donation(text, resources, punishment, expected):
    out = parse_text_donation(text, resources, punishment)
    assert (out["amount"], out["punish"], out["reasoning"]) == expected


@pytest.mark.parametrize(
    "text, problem",
    [
        ("I give 5.", 'no "Answer:"'),
        ("Answer:", "nothing after"),
        ("Answer: lots", "no number"),
        ("Answer: all or nothing", "no number"),
        ("Answer: 11", r"outside \[0, 10\]"),
        ("Answer: -1", r"outside \[0, 10\]"),
        ("Answer: 120%", "outside 0..100%"),
        ("Answer: Punish, 2", "punishment is not allowed"),
        ("Answer: [the number of units you give up, from 0 to 10]", "placeholder"),
        ("", 'no "Answer:"'),
        ("The story justifies my answer:\nYou have 10 units.", 'no "Answer:"'),
        ("Here is a continuation of this answer:\nAgent 5 (10)", 'no "Answer:"'),
        ("The answer is: 15", r"outside \[0, 10\]"),
        ("Answer: Agent 3", "no number"),
    ],
)
def test_parse_text_donation_invalid(text, problem):
    with pytest.raises(InvalidReply, match=problem):
        parse_text_donation(text, 10, False)


# --- strategy extraction and advice --------------------------------------------------------


def test_extract_strategy_first_and_last():
    reply = "Think. My strategy will be to give half. Later: my strategy will be to give all."
    assert extract_strategy(reply) == ("My strategy will be to give all.", True)
    assert extract_strategy(reply, "last") == extract_strategy(reply)
    assert extract_strategy(reply, "first") == (
        "My strategy will be to give half. Later: my strategy will be to give all.",
        True,
    )
    assert extract_strategy("**My strategy will be**: share\n\nalways.", "first") == (
        "My strategy will be: share always.",
        True,
    )
    assert extract_strategy("No phrase. Last one!", "first") == ("Last one!", False)
    assert extract_strategy("My strategy will be", "first")[1] is False
    assert extract_strategy("", "first") == (FALLBACK_STRATEGY, False)
    with pytest.raises(ValueError, match="'last' or 'first'"):
        extract_strategy("x", "middle")  # type: ignore[arg-type]


@pytest.mark.parametrize("advice_scores", [True, False])
def test_advice_with_and_without_scores(tmp_path, fake_backends, advice_scores):
    fake_backends["responder"] = None
    data = scenario([{"name": "llm", "count": 4, "kind": "llm"}], generations=2, rounds=2,
                    advice_scores=advice_scores)  # fmt: skip
    data["backend"] = {"kind": "fake", "model": "fake"}
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    prompts = [
        json.loads(m)[1]["content"]
        for (m,) in q(conn, "SELECT messages FROM llm_calls WHERE purpose='strategy'")
    ]
    prompts = [p for p in prompts if "advice" in p]  # the second generation's newcomers
    assert len(prompts) == 2 and all("Modify this advice" in p for p in prompts)
    for p in prompts:
        assert ("score" in p) is advice_scores and ("final scores" in p) is advice_scores
        items = [ln for ln in p.split("\n") if ln.startswith("- Agent ")]
        assert len(items) == 2  # the two survivors
        assert all(("(score " in ln) is advice_scores for ln in items)
        assert all("My strategy will be" in ln for ln in items)


def test_strategy_from_first_through_the_runtime(tmp_path, fake_backends):
    fake_backends["responder"] = text_reply(0.0)
    data = scenario([{"name": "llm", "count": 2, "kind": "llm"}], rounds=1, strategy_from="first",
                    reply_format="text")  # fmt: skip
    data["backend"] = {"kind": "fake", "model": "fake"}
    conn = run(data, tmp_path, backends=fake_backends["pool"])
    assert q(conn, "SELECT DISTINCT action, valid FROM decisions WHERE kind='strategy'") == [
        ("My strategy will be to give half. Then keep at it. Done.", 1)
    ]
    donate = json.loads(q(conn, "SELECT messages FROM llm_calls WHERE purpose='donate'")[0][0])
    assert (
        "follow: My strategy will be to give half. Then keep at it. Done.\n" in donate[1]["content"]
    )
