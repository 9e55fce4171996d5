"""Exhaustive tests of the scripted reference strategies (agents.strategies)."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.strategies import (
    CLASSIC_GENEROSITY,
    STRATEGIES,
    C,
    D,
    Strategy,
    gtft_generosity,
    make_strategy,
    strategy_names,
)
from games.observation import RepeatedObservation
from games.protocol import Turn
from games.twobytwo import Game2x2, preset
from tests.helpers import AXELROD_CLASSIFIER_KEYS, ROOT

DETERMINISTIC = [
    "always_cooperate",
    "always_defect",
    "always_a",
    "always_b",
    "tit_for_tat",
    "suspicious_tft",
    "tit_for_two_tats",
    "grim_trigger",
    "win_stay_lose_shift",
    "alternate",
    "alternate_b",
    "defect_once",
]
STOCHASTIC = ["generous_tft", "random", "memory_one"]  # stochastic with their defaults,
# except memory_one whose defaults are tit for tat (all probabilities 0/1)


class NoRandom:
    """An rng that fails the test if a deterministic strategy touches it."""

    def __getattr__(self, name):
        raise AssertionError(f"deterministic strategy used rng.{name}")


def play_against(strategy: Strategy, opponent: list[int], rng=None) -> list[int]:
    """The moves of ``strategy`` against a fixed sequence of partner moves."""
    rng = NoRandom() if rng is None else rng
    my: list[int] = []
    their: list[int] = []
    for o in opponent:
        my.append(strategy.move(my, their, rng))
        their.append(o)
    return my


def seq(s: str) -> list[int]:
    return [C if ch == "C" else D for ch in s]


OPP1 = seq("CDCCDDC")
OPP2 = seq("DDCDCCDDDC")

# Expected moves written out by hand against OPP1 and OPP2.
EXPECTED = {
    "always_cooperate": ("CCCCCCC", "CCCCCCCCCC"),
    "always_a": ("CCCCCCC", "CCCCCCCCCC"),
    "always_defect": ("DDDDDDD", "DDDDDDDDDD"),
    "always_b": ("DDDDDDD", "DDDDDDDDDD"),
    "tit_for_tat": ("CCDCCDD", "CDDCDCCDDD"),
    "suspicious_tft": ("DCDCCDD", "DDDCDCCDDD"),
    "tit_for_two_tats": ("CCCCCCD", "CCDCCCCCDD"),
    "grim_trigger": ("CCDDDDD", "CDDDDDDDDD"),
    "win_stay_lose_shift": ("CCDDDCD", "CDCCDDDCDC"),
    "alternate": ("CDCDCDC", "CDCDCDCDCD"),
    "alternate_b": ("DCDCDCD", "DCDCDCDCDC"),
    "defect_once": ("DCCCCCC", "DCCCCCCCCC"),
}

PARAM_EXPECTED = [
    ({"name": "alternate", "start": D}, "DCDCDCD", "DCDCDCDCDC"),
    ({"name": "alternate", "start": C}, "CDCDCDC", "CDCDCDCDCD"),
    # memory_one defaults are tit for tat
    ({"name": "memory_one"}, "CCDCCDD", "CDDCDCCDDD"),
    ({"name": "memory_one", "p_cc": 1, "p_cd": 0, "p_dc": 0, "p_dd": 1}, "CCDDDCD", "CDCCDDDCDC"),
    (
        {"name": "memory_one", "p_cc": 0, "p_cd": 0, "p_dc": 0, "p_dd": 0, "p_first": 1},
        "CDDDDDD",
        "CDDDDDDDDD",
    ),
    (
        {"name": "memory_one", "p_cc": 1, "p_cd": 1, "p_dc": 1, "p_dd": 1, "p_first": 0},
        "DCCCCCC",
        "DCCCCCCCCC",
    ),
    ({"name": "generous_tft", "generosity": 0.0}, "CCDCCDD", "CDDCDCCDDD"),
    ({"name": "generous_tft", "generosity": 1.0}, "CCCCCCC", "CCCCCCCCCC"),
    ({"name": "random", "p": 1.0}, "CCCCCCC", "CCCCCCCCCC"),
    ({"name": "random", "p": 0.0}, "DDDDDDD", "DDDDDDDDDD"),
]


def test_registry_is_complete():
    assert set(STRATEGIES) == set(DETERMINISTIC) | set(STOCHASTIC)
    assert strategy_names() == sorted(STRATEGIES)
    for name, cls in STRATEGIES.items():
        assert cls.name == name
        assert issubclass(cls, Strategy)


def test_expected_covers_every_deterministic_strategy():
    assert set(EXPECTED) == set(DETERMINISTIC)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_moves_against_fixed_sequences(name):
    exp1, exp2 = EXPECTED[name]
    strategy = make_strategy(name)
    assert play_against(strategy, OPP1) == seq(exp1)
    assert play_against(strategy, OPP2) == seq(exp2)


@pytest.mark.parametrize("spec,exp1,exp2", PARAM_EXPECTED, ids=lambda x: repr(x))
def test_parametrised_deterministic_moves(spec, exp1, exp2):
    strategy = make_strategy(spec)
    assert not strategy.stochastic
    assert play_against(strategy, OPP1) == seq(exp1)
    assert play_against(strategy, OPP2) == seq(exp2)


@pytest.mark.parametrize(
    "name,first",
    [
        ("always_cooperate", C),
        ("always_defect", D),
        ("always_a", C),
        ("always_b", D),
        ("tit_for_tat", C),
        ("suspicious_tft", D),
        ("tit_for_two_tats", C),
        ("grim_trigger", C),
        ("win_stay_lose_shift", C),
        ("alternate", C),
        ("alternate_b", D),
        ("defect_once", D),
        ("generous_tft", C),
        ("memory_one", C),
    ],
)
def test_first_move(name, first):
    assert make_strategy(name).move([], [], NoRandom()) == first


def test_memory_one_first_move_parameter():
    assert make_strategy({"name": "memory_one", "p_first": 0}).move([], [], NoRandom()) == D
    rng = np.random.default_rng(0)
    firsts = [
        make_strategy({"name": "memory_one", "p_first": 0.25}).move([], [], rng)
        for _ in range(4000)
    ]
    assert abs(firsts.count(C) / 4000 - 0.25) < 0.03


def test_grim_trigger_never_forgives():
    grim = make_strategy("grim_trigger")
    opp = seq("CCCD") + [C] * 30
    assert play_against(grim, opp) == seq("CCCC") + [D] * 30


def test_grim_trigger_ignores_its_own_overridden_moves():
    # The runtime may override a move (noise, fallback); the trigger is the partner only.
    grim = make_strategy("grim_trigger")
    assert grim.move([D, C], [C, C], NoRandom()) == C
    assert grim.move([C, C, C], [C, D, C], NoRandom()) == D


def test_alternate_follows_own_last_move():
    alt = make_strategy("alternate")
    assert alt.move([C, C], [C, C], NoRandom()) == D
    assert alt.move([C, D], [C, C], NoRandom()) == C


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_strategies_consume_no_randomness(name):
    rng = np.random.default_rng(123)
    before = rng.bit_generator.state
    strategy = make_strategy(name)
    play_against(strategy, OPP1, rng)
    play_against(strategy, OPP2, rng)
    assert rng.bit_generator.state == before
    assert strategy.classifier["stochastic"] is False
    assert strategy.stochastic is False


@pytest.mark.parametrize("name", DETERMINISTIC + STOCHASTIC)
def test_returns_plain_int_for_any_history_type(name):
    strategy = make_strategy(name)
    rng = np.random.default_rng(1)
    for my, their in [
        ([C, D, D], [D, C, D]),
        ((C, D, D), (D, C, D)),
        (np.array([C, D, D]), np.array([D, C, D])),
        ([False, True, True], [True, False, True]),
        ([], []),
    ]:
        m = strategy.move(my, their, rng)
        assert type(m) is int
        assert m in (C, D)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_history_type_does_not_change_moves(name):
    strategy = make_strategy(name)
    my, their = seq("CDDCD"), seq("DDCCD")
    for k in range(len(my) + 1):
        ref = strategy.move(my[:k], their[:k], NoRandom())
        assert strategy.move(tuple(my[:k]), tuple(their[:k]), NoRandom()) == ref
        assert strategy.move(np.array(my[:k]), np.array(their[:k]), NoRandom()) == ref
        assert strategy.move([bool(x) for x in my[:k]], [bool(x) for x in their[:k]], None) == ref


histories = st.integers(min_value=0, max_value=30).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from([C, D]), min_size=n, max_size=n),
        st.lists(st.sampled_from([C, D]), min_size=n, max_size=n),
    )
)


@settings(max_examples=200, deadline=None)
@given(histories)
def test_property_deterministic_moves_are_valid_and_draw_nothing(h):
    my, their = h
    for name in DETERMINISTIC:
        assert make_strategy(name).move(my, their, NoRandom()) in (C, D)


@settings(max_examples=200, deadline=None)
@given(histories, st.lists(st.sampled_from([C, D]), min_size=1, max_size=30))
def test_property_memory_depth_is_honoured(h, prefix):
    """A strategy of finite memory depth m ignores everything but the last m rounds."""
    my, their = h
    for name in DETERMINISTIC:
        strategy = make_strategy(name)
        depth = strategy.classifier["memory_depth"]
        if math.isinf(depth) or len(my) < max(depth, 1):
            continue
        # replace everything before the last `depth` rounds by an arbitrary (non-empty) past
        k = len(my) - depth
        my2 = prefix + my[k:]
        their2 = prefix[::-1] + their[k:]
        assert strategy.move(my2, their2, NoRandom()) == strategy.move(my, their, NoRandom())


@settings(max_examples=200, deadline=None)
@given(histories)
def test_property_memory_one_tables_match_named_strategies(h):
    my, their = h
    pairs = [
        ({"p_cc": 1, "p_cd": 0, "p_dc": 1, "p_dd": 0}, "tit_for_tat"),
        ({"p_cc": 1, "p_cd": 0, "p_dc": 0, "p_dd": 1}, "win_stay_lose_shift"),
        ({"p_cc": 1, "p_cd": 1, "p_dc": 1, "p_dd": 1}, "always_cooperate"),
        ({"p_cc": 0, "p_cd": 0, "p_dc": 0, "p_dd": 0, "p_first": 0}, "always_defect"),
        ({"p_cc": 1, "p_cd": 0, "p_dc": 1, "p_dd": 0, "p_first": 0}, "suspicious_tft"),
    ]
    for params, name in pairs:
        m1 = make_strategy({"name": "memory_one", **params})
        assert not m1.stochastic
        assert m1.move(my, their, NoRandom()) == make_strategy(name).move(my, their, NoRandom())
    assert make_strategy({"name": "generous_tft", "generosity": 0}).move(
        my, their, NoRandom()
    ) == make_strategy("tit_for_tat").move(my, their, NoRandom())


def test_stateless_one_instance_many_partners():
    strategy = make_strategy("tit_for_two_tats")
    matches = [([], [], OPP1), ([], [], OPP2), ([], [], seq("DDDDDDD"))]
    for r in range(7):
        for my, their, opp in matches:
            my.append(strategy.move(my, their, NoRandom()))
            their.append(opp[r])
    assert matches[0][0] == play_against(make_strategy("tit_for_two_tats"), OPP1)
    assert matches[1][0] == play_against(make_strategy("tit_for_two_tats"), OPP2[:7])
    assert matches[2][0] == seq("CCDDDDD")


# ------------------------------------------------------------------------------ stochastic


def test_random_frequency_close_to_p():
    rng = np.random.default_rng(2024)
    for p in (0.1, 0.3, 0.5, 0.9):
        strategy = make_strategy({"name": "random", "p": p})
        assert strategy.stochastic
        moves = [strategy.move([], [], rng) for _ in range(20000)]
        assert abs(moves.count(C) / 20000 - p) < 0.02


def test_random_default_p_is_half():
    assert make_strategy("random").p == 0.5
    assert make_strategy("random").params() == {"p": 0.5}


def test_generous_tft_frequency_and_draws_only_after_defection():
    strategy = make_strategy({"name": "generous_tft", "generosity": 0.3})
    assert strategy.stochastic and strategy.generosity == 0.3
    rng = np.random.default_rng(7)
    before = rng.bit_generator.state
    for _ in range(100):
        assert strategy.move([C], [C], rng) == C
        assert strategy.move([], [], rng) == C
    assert rng.bit_generator.state == before
    moves = [strategy.move([C], [D], rng) for _ in range(20000)]
    assert abs(moves.count(C) / 20000 - 0.3) < 0.02


def _turn(my, their, payoffs):
    """A repeated-game turn for ``act``: the player's histories and own-view payoffs."""
    obs = RepeatedObservation(None, my, their, payoffs, ("J", "F"))
    return Turn(0, 1, "move", obs, None, C)


def test_generous_tft_default_generosity_comes_from_the_game():
    # Default None: Axelrod's GTFT formula on the game's payoffs at play time (the
    # default was a fixed 0.1 before; the spec now says "from the game").
    s = make_strategy("generous_tft")
    assert s.params() == {"generosity": None} and s.generosity is None
    assert s.stochastic
    assert make_strategy(s.spec()) == s
    assert CLASSIC_GENEROSITY == pytest.approx(1 / 3)
    assert s.generosity_for() == CLASSIC_GENEROSITY  # no game known: classic PD
    for game, expected in [
        (preset("prisoners_dilemma_classic"), 1 / 3),  # R3 S0 T5 P1
        (preset("prisoners_dilemma"), 0.6),  # R8 S0 T10 P5: min(0.75, 0.6)
        (preset("prisoners_dilemma", R=3, S=0, T=4, P=1), 2 / 3),  # min(2/3, 2/3)
        (preset("chicken"), 0.5),  # min(1 - 1/2, 3/4)
        (preset("stag_hunt"), 1.0),  # clipped: min(1.25, 2)
        (preset("battle_of_the_sexes"), 0.0),  # clipped: (R-P)/(T-P) = 3/-7
    ]:
        assert s.generosity_for(game.payoffs) == pytest.approx(expected), game.name
    assert gtft_generosity(3, 0, 5, 1) == CLASSIC_GENEROSITY
    assert gtft_generosity(2, 2, 2, 2) == 1.0  # every term undefined
    assert gtft_generosity(3, 3, 5, 1) == pytest.approx(2 / 4)  # R == S: one term left


def test_generous_tft_explicit_generosity_overrides_the_game():
    s = make_strategy({"name": "generous_tft", "generosity": 0.1})
    assert s.params() == {"generosity": 0.1}
    assert s.generosity_for() == 0.1
    assert s.generosity_for(preset("prisoners_dilemma").payoffs) == 0.1


@pytest.mark.parametrize(
    "game, expected",
    [("prisoners_dilemma_classic", 1 / 3), ("prisoners_dilemma", 0.6), ("stag_hunt", 1.0)],
)
def test_generous_tft_act_uses_the_observed_payoffs(game, expected):
    s = make_strategy("generous_tft")
    payoffs = preset(game).payoffs
    rng = np.random.default_rng(8)
    before = rng.bit_generator.state
    assert s.act(_turn([], [], payoffs), rng) == C
    assert s.act(_turn([D], [C], payoffs), rng) == C
    assert rng.bit_generator.state == before  # no draw after a partner's C
    n = 20000
    moves = [s.act(_turn([C], [D], payoffs), rng) for _ in range(n)]
    assert abs(moves.count(C) / n - expected) < 0.02
    # act and move agree draw for draw once the generosity is the same
    fixed = make_strategy({"name": "generous_tft", "generosity": s.generosity_for(payoffs)})
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    for my, their in [([C], [D]), ([D, C], [C, D]), ([C, C], [D, C])] * 50:
        assert s.act(_turn(my, their, payoffs), a) == fixed.move(my, their, b)


def test_generous_tft_act_per_game_and_per_side():
    # One instance, several games and both sides of an asymmetric one: each table gets its
    # own value (the cache is keyed by the payoff table, not by the last game only).
    s = make_strategy("generous_tft")
    classic, pd = preset("prisoners_dilemma_classic"), preset("prisoners_dilemma")
    asym = Game2x2("asym", (((3, 8), (0, 10)), ((5, 0), (1, 5))))
    for _ in range(3):
        assert s.generosity_for(classic.payoffs) == pytest.approx(1 / 3)
        assert s.generosity_for(pd.payoffs) == pytest.approx(0.6)
        assert s.generosity_for(asym.payoffs) == pytest.approx(1 / 3)  # row: R3 S0 T5 P1
        assert s.generosity_for(asym.for_player(1).payoffs) == pytest.approx(0.6)
        # an equal table built anew (e.g. after a resume) gives the same value
        again = tuple(tuple(tuple(c) for c in row) for row in pd.payoffs)
        assert s.generosity_for(again) == pytest.approx(0.6)
    # the cache is not part of the strategy's identity
    assert s == make_strategy("generous_tft")
    assert pickle.loads(pickle.dumps(s)) == s


def test_generous_tft_none_is_validated_like_a_probability_otherwise():
    assert make_strategy({"name": "generous_tft", "generosity": None}).generosity is None
    for bad in (-0.1, 1.5, "0.3", True, float("nan")):
        with pytest.raises(ValueError, match="'generosity' must be a probability"):
            make_strategy({"name": "generous_tft", "generosity": bad})


def test_memory_one_frequencies_per_state():
    probs = {"p_cc": 0.9, "p_cd": 0.2, "p_dc": 0.6, "p_dd": 0.4}
    strategy = make_strategy({"name": "memory_one", **probs})
    assert strategy.stochastic
    rng = np.random.default_rng(11)
    for (mine, theirs), key in [
        ((C, C), "p_cc"),
        ((C, D), "p_cd"),
        ((D, C), "p_dc"),
        ((D, D), "p_dd"),
    ]:
        moves = [strategy.move([C, mine], [D, theirs], rng) for _ in range(10000)]
        assert abs(moves.count(C) / 10000 - probs[key]) < 0.025, key


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "random", "p": 0.3},
        {"name": "generous_tft", "generosity": 0.4},
        {"name": "memory_one", "p_cc": 0.9, "p_cd": 0.1, "p_dc": 0.5, "p_dd": 0.5, "p_first": 0.5},
    ],
)
def test_stochastic_exactly_one_draw_per_move_and_seed_determinism(spec):
    strategy = make_strategy(spec)
    opp = [D, C] * 50  # every memory_one state and every GTFT branch occurs

    rng1, rng2 = np.random.default_rng(5), np.random.default_rng(5)
    moves1 = play_against(strategy, opp, rng1)
    moves2 = play_against(make_strategy(spec), opp, rng2)
    assert moves1 == moves2
    assert moves1 != play_against(strategy, opp, np.random.default_rng(6))

    # count draws: the strategy's rng must end where a twin rng ends after k random() calls
    rng = np.random.default_rng(99)
    my, their = [], []
    for o in opp:
        twin = np.random.default_rng(99)
        twin.bit_generator.state = rng.bit_generator.state
        my.append(strategy.move(my, their, rng))
        needs = strategy.name != "generous_tft" or (their and their[-1] == D)
        if needs:
            twin.random()
        assert rng.bit_generator.state == twin.bit_generator.state
        their.append(o)


def test_degenerate_probabilities_draw_nothing():
    rng = np.random.default_rng(3)
    before = rng.bit_generator.state
    for spec in [
        {"name": "random", "p": 1},
        {"name": "random", "p": 0},
        {"name": "generous_tft", "generosity": 0},
        {"name": "generous_tft", "generosity": 1},
        {"name": "memory_one", "p_cc": 0, "p_cd": 1, "p_dc": 1, "p_dd": 0, "p_first": 0},
    ]:
        strategy = make_strategy(spec)
        assert not strategy.stochastic
        play_against(strategy, OPP2, rng)
    assert rng.bit_generator.state == before


# ------------------------------------------------------------------------- classifiers etc.


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_classifier_keys(name):
    cls = STRATEGIES[name]
    assert set(cls.classifier) == AXELROD_CLASSIFIER_KEYS
    depth = cls.classifier["memory_depth"]
    assert (isinstance(depth, int) and depth >= 0) or depth == float("inf")
    assert isinstance(cls.classifier["stochastic"], bool)
    assert isinstance(cls.classifier["makes_use_of"], set)
    for key in ("long_run_time", "inspects_source", "manipulates_source", "manipulates_state"):
        assert cls.classifier[key] is False
    assert cls.classifier["stochastic"] == (name in ("random", "generous_tft", "memory_one"))


def test_memory_depths():
    depths = {name: cls.classifier["memory_depth"] for name, cls in STRATEGIES.items()}
    assert depths["always_cooperate"] == depths["always_defect"] == depths["defect_once"] == 0
    assert depths["tit_for_tat"] == depths["win_stay_lose_shift"] == depths["memory_one"] == 1
    assert depths["tit_for_two_tats"] == 2
    assert depths["grim_trigger"] == float("inf")


# --------------------------------------------------------------------- parameter validation


@pytest.mark.parametrize(
    "spec,needle",
    [
        ({"name": "random", "p": 1.5}, "'p' must be a probability in [0, 1]"),
        ({"name": "random", "p": -0.1}, "'p' must be a probability in [0, 1]"),
        ({"name": "random", "p": float("nan")}, "'p' must be a probability in [0, 1]"),
        ({"name": "random", "p": "0.5"}, "'p' must be a probability in [0, 1]"),
        ({"name": "random", "p": True}, "'p' must be a probability in [0, 1]"),
        ({"name": "random", "p": None}, "'p' must be a probability in [0, 1]"),
        ({"name": "generous_tft", "generosity": 2}, "'generosity' must be a probability"),
        ({"name": "memory_one", "p_dc": 1.01}, "'p_dc' must be a probability"),
        ({"name": "memory_one", "p_first": -1}, "'p_first' must be a probability"),
        ({"name": "alternate", "start": 2}, "'start' must be a move, 0 (C / option A) or 1"),
        ({"name": "alternate", "start": "C"}, "'start' must be a move"),
        ({"name": "alternate", "start": True}, "'start' must be a move"),
        (
            {"name": "tit_for_tat", "p": 0.5},
            "tit_for_tat: unknown parameter(s) 'p'; expected: none",
        ),
        ({"name": "random", "q": 0.5}, "random: unknown parameter(s) 'q'; expected: p"),
        ({"name": "alternate_b", "start": 0}, "unknown parameter(s) 'start'"),
    ],
)
def test_parameter_validation(spec, needle):
    with pytest.raises(ValueError) as err:
        make_strategy(spec)
    assert needle in str(err.value)


def test_direct_construction_validates_too():
    with pytest.raises(ValueError, match="'p' must be a probability"):
        STRATEGIES["random"](p=3)
    assert STRATEGIES["random"](p=0.25).p == 0.25


def test_numpy_parameters_are_accepted_and_normalised():
    s = make_strategy({"name": "random", "p": np.float32(0.5)})
    assert type(s.p) is float
    a = make_strategy({"name": "alternate", "start": np.int64(1)})
    assert type(a.start) is int and a.start == D


# ---------------------------------------------------------------------------- make_strategy


def test_make_strategy_by_name_and_dict():
    assert type(make_strategy("tit_for_tat")) is STRATEGIES["tit_for_tat"]
    r = make_strategy({"name": "random", "p": 0.3})
    assert r.p == 0.3 and r.params() == {"p": 0.3}
    assert make_strategy(r) is r


def test_make_strategy_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        make_strategy("tit_for_three_tats")
    msg = str(err.value)
    assert "'tit_for_three_tats'" in msg
    for name in STRATEGIES:
        assert name in msg
    assert "axelrod:" in msg


@pytest.mark.parametrize("spec", [{"p": 0.3}, {"name": 3}, 3, None, ["tit_for_tat"]])
def test_make_strategy_bad_specs(spec):
    with pytest.raises(ValueError):
        make_strategy(spec)


def test_make_strategy_axelrod_without_library(monkeypatch):
    monkeypatch.setitem(sys.modules, "axelrod", None)
    monkeypatch.delitem(sys.modules, "agents.axelrod_adapter", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'society\[axelrod\]'"):
        make_strategy("axelrod:TitForTat")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_spec_round_trip_and_repr(name):
    s = make_strategy(name)
    again = make_strategy(s.spec())
    assert again == s and hash(again) == hash(s)
    assert repr(s).startswith(f"{name}(")
    assert make_strategy({"name": "random", "p": 0.3}) != make_strategy(
        {"name": "random", "p": 0.4}
    )


def test_repr():
    assert repr(make_strategy("tit_for_tat")) == "tit_for_tat()"
    assert repr(make_strategy({"name": "random", "p": 0.3})) == "random(p=0.3)"
    assert repr(make_strategy("alternate")) == "alternate(start=0)"


@pytest.mark.parametrize(
    "spec",
    sorted(STRATEGIES)
    + [{"name": "random", "p": 0.3}, {"name": "memory_one", "p_cd": 0.3, "p_first": 0.2}],
    ids=str,
)
def test_pickle_round_trip(spec):
    s = make_strategy(spec)
    s2 = pickle.loads(pickle.dumps(s))
    assert s2 == s and type(s2) is type(s) and s2.params() == s.params()
    opp = OPP1 + OPP2
    assert play_against(s2, opp, np.random.default_rng(4)) == play_against(
        s, opp, np.random.default_rng(4)
    )


def test_agents_package_does_not_import_the_runtime():
    code = (
        "import sys, agents, agents.strategies\n"
        "bad = [m for m in sys.modules if m == 'society' or m.startswith('society.')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(ROOT))
