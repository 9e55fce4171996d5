"""Rules of one donor game: pairing, resources, traces, punishment, validation."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from games.donor import (
    DonorAction,
    DonorEvent,
    DonorGame,
    DonorRules,
    InvalidAction,
    TraceEntry,
    clamp_action,
    make_schedule,
    max_rounds,
    validate_action,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def play_all(game: DonorGame, fraction: float = 1.0) -> None:
    while not game.done:
        game.apply([DonorAction(fraction * o.donor_resources) for o in game.pending()])


def fixed_game(n: int, schedule: list[list[tuple[int, int]]], **rules) -> DonorGame:
    """A game with a hand-written schedule (bypassing the random construction)."""
    return DonorGame(n, DonorRules(rounds=len(schedule), **rules), schedule=schedule)


# --- sanity figures -------------------------------------------------------------------


def test_everyone_donates_everything_defaults_gives_30720() -> None:
    game = DonorGame(12, DonorRules(), rng(42))
    play_all(game)
    assert sum(game.resources) / 12 == 30720
    # Six agents hold everything, six hold nothing: 30 * 2**11 each.
    assert sorted(game.resources) == [0.0] * 6 + [61440.0] * 6


@pytest.mark.parametrize(
    "multiplier, expected_mean",
    [
        # Round 1: recipient 10 + m*10; afterwards a recipient (who just gave all) gets
        # m * the donor's holdings. Final holders: 10(1+m) m^11, mean half that.
        (1.5, 25 * 1.5**11 / 2),  # 1081.219482421875
        (3.0, 40 * 3**11 / 2),  # 3,542,940
        (2.0, 30720.0),
    ],
)
def test_multiplier_sanity_numbers(multiplier: float, expected_mean: float) -> None:
    game = DonorGame(12, DonorRules(multiplier=multiplier), rng(1))
    play_all(game)
    assert sum(game.resources) / 12 == pytest.approx(expected_mean, rel=1e-12)
    assert expected_mean in (1081.219482421875, 3542940.0, 30720.0)


def test_half_donations_by_hand() -> None:
    # 2 agents, 3 rounds, everyone gives half, multiplier 3.
    # r1: 0->1: 0 gives 5: (5, 25); r2: 1->0 gives 12.5: (42.5, 12.5);
    # r3: 0->1 gives 21.25: (21.25, 76.25).
    game = fixed_game(2, [[(0, 1)], [(1, 0)], [(0, 1)]], multiplier=3.0)
    play_all(game, fraction=0.5)
    assert game.resources == [21.25, 76.25]
    assert [e.amount for e in game.history] == [5, 12.5, 21.25]
    assert all(e.percent == 50 for e in game.history)


# --- pairing --------------------------------------------------------------------------


def check_schedule(schedule, n: int, rules: DonorRules) -> None:
    assert len(schedule) == rules.rounds
    seen_ordered: set[tuple[int, int]] = set()
    seen_unordered: set[frozenset[int]] = set()
    for r, pairs in enumerate(schedule):
        assert len(pairs) == n // 2
        people = [a for p in pairs for a in p]
        assert sorted(people) == list(range(n)), "every agent in exactly one pair"
        if r > 0:
            prev_recipients = {b for _, b in schedule[r - 1]}
            assert {a for a, _ in pairs} == prev_recipients, "roles alternate"
        for d, rec in pairs:
            assert (d, rec) not in seen_ordered
            seen_ordered.add((d, rec))
            if rules.no_repeat == "unordered":
                assert frozenset((d, rec)) not in seen_unordered
            seen_unordered.add(frozenset((d, rec)))


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    half=st.integers(1, 20),
    data=st.data(),
)
def test_schedule_properties_ordered(seed: int, half: int, data) -> None:
    n = 2 * half
    rounds = data.draw(st.integers(1, n))
    rules = DonorRules(rounds=rounds)
    check_schedule(make_schedule(n, rules, rng(seed)), n, rules)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), half=st.integers(1, 20), data=st.data())
def test_schedule_properties_unordered(seed: int, half: int, data) -> None:
    n = 2 * half
    rounds = data.draw(st.integers(1, half))
    rules = DonorRules(rounds=rounds, no_repeat="unordered")
    check_schedule(make_schedule(n, rules, rng(seed)), n, rules)


def test_default_schedule_twelve_agents() -> None:
    rules = DonorRules()
    schedule = make_schedule(12, rules, rng(7))
    check_schedule(schedule, 12, rules)
    # With 12 rounds each agent gives to each of the 6 agents of the other half once.
    for agent in range(12):
        given_to = [r for pairs in schedule for d, r in pairs if d == agent]
        assert len(given_to) == 6 and len(set(given_to)) == 6


def test_unordered_infeasible_raises() -> None:
    rules = DonorRules(no_repeat="unordered")  # 12 rounds, but only 6 partners
    with pytest.raises(ValueError, match="unordered.*at most 6 rounds"):
        make_schedule(12, rules, rng())
    with pytest.raises(ValueError, match="at most 6 rounds"):
        DonorGame(12, rules, rng())


def test_unordered_feasible_case() -> None:
    rules = DonorRules(rounds=6, no_repeat="unordered")
    schedule = make_schedule(12, rules, rng(3))
    check_schedule(schedule, 12, rules)
    for agent in range(12):
        partners = [b if a == agent else a for p in schedule for a, b in p if agent in (a, b)]
        assert len(partners) == 6 and len(set(partners)) == 6


def test_ordered_too_many_rounds_raises() -> None:
    assert max_rounds(12, "ordered") == 12
    assert max_rounds(12, "unordered") == 6
    with pytest.raises(ValueError, match="at most 12 rounds"):
        make_schedule(12, DonorRules(rounds=13), rng())


@pytest.mark.parametrize("n", [0, 1, 3, 11, -2])
def test_odd_or_tiny_n_raises(n: int) -> None:
    with pytest.raises(ValueError, match="even number"):
        make_schedule(n, DonorRules(rounds=1), rng())


def test_schedule_deterministic_and_seed_dependent() -> None:
    a = make_schedule(12, DonorRules(), rng(5))
    b = make_schedule(12, DonorRules(), rng(5))
    c = make_schedule(12, DonorRules(), rng(6))
    assert a == b
    assert a != c
    g1, g2 = DonorGame(12, DonorRules(), rng(9)), DonorGame(12, DonorRules(), rng(9))
    play_all(g1, 0.3)
    play_all(g2, 0.3)
    assert g1.history == g2.history


def test_schedule_is_fast() -> None:
    rules = DonorRules()
    make_schedule(12, rules, rng())  # warm-up
    t = time.perf_counter()
    for s in range(50):
        make_schedule(12, rules, rng(s))
    assert (time.perf_counter() - t) / 50 < 0.010
    check_schedule(make_schedule(200, DonorRules(), rng()), 200, DonorRules())


def test_schedule_mostly_avoids_immediate_give_back() -> None:
    # Where feasible (n=12, 6 rounds) the schedule never has b->a right after a->b.
    for s in range(30):
        sch = make_schedule(12, DonorRules(rounds=6), rng(s))
        for r in range(1, 6):
            prev = set(sch[r - 1])
            assert not any((b, a) in prev for a, b in sch[r])


# --- traces ---------------------------------------------------------------------------

# Six agents, four rounds; amounts chosen so every step is distinguishable.
SCHEDULE = [
    [(0, 1), (2, 3), (4, 5)],
    [(1, 2), (3, 4), (5, 0)],
    [(0, 3), (2, 5), (4, 1)],
    [(1, 0), (3, 2), (5, 4)],
]


def test_trace_against_history() -> None:
    game = fixed_game(6, SCHEDULE)
    # Round 1: 0 gives 10 (100%), 2 gives 5 (50%), 4 gives 0.
    game.apply([DonorAction(10), DonorAction(5), DonorAction(0)])
    # Holdings: 0:0 1:30 2:5 3:20 4:10 5:10
    assert game.resources == [0, 30, 5, 20, 10, 10]
    # Round 2: 1 gives 3 (10% of 30) to 2, 3 gives 20 (100%) to 4, 5 gives 2.5 (25%) to 0.
    assert [(o.donor, o.recipient) for o in game.pending()] == SCHEDULE[1]
    obs = game.pending()
    # Donor 1 sees recipient 2's trace: 2 gave 5 (50%) to 3 in round 1; 3 never donated before.
    assert obs[0].recipient_trace == (TraceEntry(2, 3, 1, 5.0, 50.0, False),)
    game.apply([DonorAction(3), DonorAction(20), DonorAction(2.5)])
    # Holdings: 0:5 1:27 2:11 3:0 4:50 5:7.5
    assert game.resources == [5, 27, 11, 0, 50, 7.5]
    # Round 3 pairs: 0->3, 2->5, 4->1.
    obs = {o.donor: o for o in game.pending()}
    # 0 looks at 3: 3 gave 20 to 4 in round 2, then 4 in round 1 gave 0 to 5; 5 had no turn before.
    assert obs[0].recipient_trace == (
        TraceEntry(3, 4, 2, 20.0, 100.0, False),
        TraceEntry(4, 5, 1, 0.0, 0.0, False),
    )
    # 4 looks at 1: 1 gave 3 (10%) to 2 in r2; 2 gave 5 (50%) to 3 in r1.
    assert obs[4].recipient_trace == (
        TraceEntry(1, 2, 2, 3.0, 10.0, False),
        TraceEntry(2, 3, 1, 5.0, 50.0, False),
    )
    # Round 3: 0 gives 5 (100%) to 3, 2 gives 0 to 5, 4 gives 25 (50%) to 1.
    game.apply([DonorAction(5), DonorAction(0), DonorAction(25)])
    # Round 4 pair 1->0: trace of 0 = 0 gave 5 to 3 (r3); 3 gave 20 to 4 (r2); 4 gave 0 to 5 (r1).
    full = game.trace(0, 3)
    assert full == [
        TraceEntry(0, 3, 3, 5.0, 100.0, False),
        TraceEntry(3, 4, 2, 20.0, 100.0, False),
        TraceEntry(4, 5, 1, 0.0, 0.0, False),
    ]
    assert game.trace(0, 1) == full[:1]
    assert game.trace(0, 2) == full[:2]
    assert game.trace(0, 10) == full  # chain ends: 5 had no donor turn before round 1
    assert game.trace(0, 0) == []
    # The observation uses rules.trace_depth (default 3).
    obs = {o.donor: o for o in game.pending()}
    assert obs[1].recipient_trace == tuple(full)
    # Every trace entry is a recorded event.
    events = {(e.donor, e.recipient, e.round): e for e in game.history}
    for entry in full:
        e = events[(entry.donor, entry.recipient, entry.round)]
        assert (e.amount, e.percent, e.punished) == (entry.amount, entry.percent, entry.punished)


def test_explicit_schedule_checked() -> None:
    with pytest.raises(ValueError, match="2 rounds"):
        DonorGame(2, DonorRules(rounds=3), schedule=[[(0, 1)], [(1, 0)]])
    with pytest.raises(ValueError, match="one pair"):
        DonorGame(4, DonorRules(rounds=1), schedule=[[(0, 1), (1, 2)]])
    with pytest.raises(ValueError, match="rng or an explicit schedule"):
        DonorGame(4, DonorRules(rounds=1))


def test_trace_respects_rules_depth() -> None:
    game = fixed_game(6, SCHEDULE, trace_depth=1)
    for _ in range(3):
        game.apply([DonorAction(o.donor_resources / 2) for o in game.pending()])
    assert all(len(o.recipient_trace) == 1 for o in game.pending())


def test_trace_before_any_round_is_empty() -> None:
    game = DonorGame(12, DonorRules(), rng())
    assert all(o.recipient_trace == () for o in game.pending())
    assert all(o.round == 1 for o in game.pending())


def test_real_schedule_traces_chain_through_history() -> None:
    game = DonorGame(12, DonorRules(), rng(11))
    gen = np.random.default_rng(0)
    while not game.done:
        obs = game.pending()
        for o in obs:
            trace = o.recipient_trace
            if trace:
                assert trace[0].donor == o.recipient
            for a, b in zip(trace, trace[1:], strict=False):
                assert b.donor == a.recipient and b.round < a.round
            assert len(trace) <= 3
        game.apply([DonorAction(gen.uniform(0, o.donor_resources)) for o in obs])


# --- punishment -----------------------------------------------------------------------


def test_punishment_cost_fine_and_floor() -> None:
    game = fixed_game(4, [[(0, 1), (2, 3)], [(1, 0), (3, 2)]], punishment=True)
    # 0 punishes 1 with 3: 0 -> 7, 1 -> 10 - 6 = 4. 2 punishes 3 with 8: 2 -> 2, 3 -> max(0, 10-16).
    ev = game.apply([DonorAction(3, punish=True), DonorAction(8, punish=True)])
    assert game.resources == [7, 4, 2, 0]
    assert ev[0] == DonorEvent(1, 0, 1, 3.0, 30.0, True, 6.0, 10, 7, 10, 4)
    assert ev[1].fine == 10 and ev[1].recipient_after == 0  # only what it held is removed
    assert game.trace(0, 1)[0].punished
    # The punished (now donor) 1 gives 4 to 0 (a gift, with the multiplier).
    game.apply([DonorAction(4), DonorAction(0)])
    assert game.resources == [15, 0, 2, 0]


def test_punishment_ratio_configurable() -> None:
    game = fixed_game(2, [[(0, 1)]], punishment=True, punishment_cost=2.0, punishment_fine=3.0)
    game.apply([DonorAction(4, punish=True)])  # removes 3/2 * 4 = 6
    assert game.resources == [6, 4]


def test_observation_carries_rules() -> None:
    rules = DonorRules(multiplier=3.0, punishment=True)
    obs = DonorGame(12, rules, rng()).pending()[0]
    assert obs.punishment_allowed and obs.rules is rules and obs.multiplier == 3.0
    assert obs.donor_resources == obs.recipient_resources == 10


# --- action validation ----------------------------------------------------------------


def test_validate_action() -> None:
    rules = DonorRules()
    assert validate_action(DonorAction(4), 10, rules) == DonorAction(4)
    assert validate_action(DonorAction(10 + 1e-12), 10, rules).amount == 10
    with pytest.raises(InvalidAction, match="negative"):
        validate_action(DonorAction(-1), 10, rules)
    with pytest.raises(InvalidAction, match="exceeds"):
        validate_action(DonorAction(10.5), 10, rules)
    with pytest.raises(InvalidAction, match="finite"):
        validate_action(DonorAction(float("nan")), 10, rules)
    with pytest.raises(InvalidAction, match="not allowed"):
        validate_action(DonorAction(1, punish=True), 10, rules)
    assert validate_action(DonorAction(1, True), 10, DonorRules(punishment=True)).punish


def test_clamp_action() -> None:
    rules = DonorRules()
    assert clamp_action(DonorAction(4), 10, rules) == (DonorAction(4), False)
    assert clamp_action(DonorAction(-3), 10, rules) == (DonorAction(0.0), True)
    assert clamp_action(DonorAction(12), 10, rules) == (DonorAction(10.0), True)
    assert clamp_action(DonorAction(float("inf")), 10, rules) == (DonorAction(10.0), True)
    assert clamp_action(DonorAction(float("nan")), 10, rules) == (DonorAction(0.0), True)
    assert clamp_action(DonorAction(5, punish=True), 10, rules) == (DonorAction(0.0), True)
    p = DonorRules(punishment=True)
    assert clamp_action(DonorAction(50, punish=True), 10, p) == (DonorAction(10.0, True), True)


def test_apply_rejects_invalid_and_leaves_state() -> None:
    game = DonorGame(4, DonorRules(rounds=4), rng())
    with pytest.raises(InvalidAction, match="round 1, donor"):
        game.apply([DonorAction(1), DonorAction(11)])
    assert game.round == 0 and game.resources == [10.0] * 4 and game.history == []
    with pytest.raises(ValueError, match="expected 2 actions"):
        game.apply([DonorAction(1)])
    with pytest.raises(InvalidAction, match="not allowed"):
        game.apply([DonorAction(1, punish=True), DonorAction(0)])


def test_zero_holdings_percent_is_zero_and_game_over() -> None:
    game = fixed_game(2, [[(0, 1)], [(0, 1)]])
    game.apply([DonorAction(10)])
    (ev,) = game.apply([DonorAction(0)])
    assert ev.percent == 0 and ev.donor_before == 0
    assert game.done
    with pytest.raises(RuntimeError, match="over"):
        game.pending()


@pytest.mark.parametrize(
    "field, value",
    [
        ("endowment", -1),
        ("multiplier", float("nan")),
        ("rounds", 0),
        ("rounds", 2.5),
        ("trace_depth", -1),
        ("punishment", 1),
        ("punishment_cost", 0),
        ("punishment_fine", -2),
        ("no_repeat", "never"),
    ],
)
def test_rules_validation_names_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=f"DonorRules.{field}"):
        DonorRules(**{field: value})


# --- checkpointing ----------------------------------------------------------------------


def test_pickle_and_state_dict_round_trip() -> None:
    game = DonorGame(12, DonorRules(punishment=True), rng(4))
    for _ in range(5):
        game.apply([DonorAction(o.donor_resources * 0.4) for o in game.pending()])
    for copy in (pickle.loads(pickle.dumps(game)), DonorGame.from_state(game.state_dict())):
        assert copy.pending() == game.pending()
        assert copy.history == game.history and copy.resources == game.resources
        play_all(copy, 0.7)
        ref = pickle.loads(pickle.dumps(game))
        play_all(ref, 0.7)
        assert copy.resources == ref.resources
