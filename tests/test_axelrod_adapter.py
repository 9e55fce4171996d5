"""The axelrod adapter reproduces axelrod's own matches; our native strategies match theirs."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

axl = pytest.importorskip("axelrod")

from agents.axelrod_adapter import AxelrodStrategy, axelrod_player_class  # noqa: E402
from agents.strategies import C, D, Strategy, make_strategy  # noqa: E402
from tests.helpers import AXELROD_CLASSIFIER_KEYS  # noqa: E402

pytestmark = pytest.mark.axelrod

warnings.filterwarnings("ignore", module="axelrod")


def play(s1: Strategy, s2: Strategy, turns: int, seed: int = 0) -> list[tuple[int, int]]:
    """Play two strategies for ``turns`` rounds the way the runtime does (one list each)."""
    rng = np.random.default_rng(seed)
    h1: list[int] = []
    h2: list[int] = []
    for _ in range(turns):
        a = s1.move(h1, h2, rng)
        b = s2.move(h2, h1, rng)
        h1.append(a)
        h2.append(b)
    return list(zip(h1, h2, strict=True))


def axl_match(p1, p2, turns: int) -> list[tuple[int, int]]:
    result = axl.Match((p1, p2), turns=turns).play()
    return [(a.value, b.value) for a, b in result]


ADAPTED = [
    "TitForTat",
    "Grudger",
    "TitFor2Tats",
    "WinStayLoseShift",
    "Suspicious Tit For Tat",
    "Alternator",
    "FirstByTidemanAndChieruzzi",
    "Adaptive",
    "Bully",
    "Prober",
    "GoByMajority",
    "FirstByDavis",
    "Cycler CCD",
    "SecondByGrofman",
    "FirstByNydegger",
]
OPPONENTS = [
    axl.Cooperator,
    axl.Defector,
    axl.TitForTat,
    axl.Alternator,
    axl.SuspiciousTitForTat,
    axl.CyclerCCD,
    axl.Adaptive,
    axl.Prober,
    axl.FirstByShubik,
]


def test_all_adapted_and_opponents_are_deterministic():
    for name in ADAPTED:
        assert not AxelrodStrategy(name).stochastic
    for cls in OPPONENTS:
        assert not axl.Classifiers["stochastic"](cls())


@pytest.mark.parametrize("name", ADAPTED)
@pytest.mark.parametrize("opponent", OPPONENTS, ids=lambda c: c.__name__)
def test_adapter_reproduces_axelrod_match(name, opponent):
    turns = 50
    ours = AxelrodStrategy(name, match_length=turns)
    theirs = AxelrodStrategy(opponent, match_length=turns)
    expected = axl_match(ours.player_class(), opponent(), turns)
    assert play(ours, theirs, turns) == expected


@pytest.mark.parametrize("name", ADAPTED)
def test_adapter_self_play_with_one_instance(name):
    """One instance plays both sides at once: the cache keys keep the two matches apart."""
    turns = 40
    s = AxelrodStrategy(name, match_length=turns)
    cls = axelrod_player_class(name)
    assert play(s, s, turns) == axl_match(cls(), cls(), turns)


# Native strategy -> axelrod equivalent.
EQUIVALENTS = [
    ("tit_for_tat", axl.TitForTat),
    ("grim_trigger", axl.Grudger),
    ("tit_for_two_tats", axl.TitFor2Tats),
    ("win_stay_lose_shift", axl.WinStayLoseShift),
    ("always_cooperate", axl.Cooperator),
    ("always_defect", axl.Defector),
    ("always_a", axl.Cooperator),
    ("always_b", axl.Defector),
    ("alternate", axl.Alternator),
    ("suspicious_tft", axl.SuspiciousTitForTat),
    ({"name": "memory_one", "p_cc": 1, "p_cd": 0, "p_dc": 0, "p_dd": 1}, axl.WinStayLoseShift),
    ({"name": "generous_tft", "generosity": 0}, axl.TitForTat),
    ({"name": "random", "p": 1}, axl.Cooperator),
]
NATIVE_OPPONENTS = OPPONENTS + [
    axl.Grudger,
    axl.TitFor2Tats,
    axl.WinStayLoseShift,
    axl.FirstByTidemanAndChieruzzi,
    axl.Bully,
    axl.GoByMajority,
    axl.CyclerDC,
    axl.CyclerCCCD,
    axl.SecondByTidemanAndChieruzzi,
    axl.FirstByDowning,
]


class NativeAsAxelrod(axl.Player):
    """Wraps one of our strategies as an axelrod player (independent of the adapter)."""

    name = "native"
    classifier = {"stochastic": False, "memory_depth": float("inf")}

    def __init__(self, spec=None) -> None:
        super().__init__()
        self.spec = spec
        self.native = make_strategy(spec)

    def strategy(self, opponent):
        my = [a.value for a in self.history]
        their = [a.value for a in opponent.history]
        return (axl.Action.C, axl.Action.D)[self.native.move(my, their, None)]


@pytest.mark.parametrize("spec,equivalent", EQUIVALENTS, ids=str)
@pytest.mark.parametrize("opponent", NATIVE_OPPONENTS, ids=lambda c: c.__name__)
def test_native_matches_axelrod_equivalent(spec, equivalent, opponent):
    turns = 100
    expected = axl_match(equivalent(), opponent(), turns)
    # 1. inside an axelrod Match, through a thin wrapper
    assert axl_match(NativeAsAxelrod(spec), opponent(), turns) == expected
    # 2. against the adapted opponent, the way the runtime plays
    assert play(make_strategy(spec), AxelrodStrategy(opponent, match_length=turns), turns) == (
        expected
    )


def test_alternate_b_is_alternator_shifted():
    turns = 30
    moves = play(make_strategy("alternate_b"), make_strategy("axelrod:Cooperator"), turns)
    assert [m for m, _ in moves] == [D, C] * (turns // 2)


# ---------------------------------------------------------------------------- cache misses


def _moves_with_copies(strategy, opponent_moves):
    """Every call gets fresh copies of the histories: every call is a cache miss."""
    my: list[int] = []
    their: list[int] = []
    for o in opponent_moves:
        my.append(strategy.move(tuple(my), list(their), None))
        their.append(o)
    return my


OPP_SEQ = [C, D, C, C, D, D, C, D, D, D, C, C, C, D, C] * 3


@pytest.mark.parametrize("name", ADAPTED)
def test_cache_miss_gives_the_same_moves(name):
    s = AxelrodStrategy(name, match_length=len(OPP_SEQ))
    my: list[int] = []
    their: list[int] = []
    for o in OPP_SEQ:
        my.append(s.move(my, their, None))
        their.append(o)
    ref = my
    assert _moves_with_copies(AxelrodStrategy(name, match_length=len(OPP_SEQ)), OPP_SEQ) == ref
    # cache cleared every other round
    s = AxelrodStrategy(name, match_length=len(OPP_SEQ))
    my, their = [], []
    for i, o in enumerate(OPP_SEQ):
        if i % 2:
            s._cache.clear()
        my.append(s.move(my, their, None))
        their.append(o)
    assert my == ref


@pytest.mark.parametrize("name", ["TitForTat", "FirstByTidemanAndChieruzzi", "Adaptive", "Prober"])
def test_pickle_round_trip_mid_match(name):
    turns = 40
    s1 = AxelrodStrategy(name, match_length=turns)
    s2 = AxelrodStrategy("Cycler CCD")
    expected = play(s1, s2, turns)

    s1 = AxelrodStrategy(name, match_length=turns)
    h1: list[int] = []
    h2: list[int] = []
    for t in range(turns):
        if t == 17:  # checkpoint and resume: the cache is gone, histories survive
            blob = pickle.dumps((s1, h1, h2))
            s1, h1, h2 = pickle.loads(blob)
            assert s1._cache == {}
        a = s1.move(h1, h2, None)
        b = s2.move(h2, h1, None)
        h1.append(a)
        h2.append(b)
    assert list(zip(h1, h2, strict=True)) == expected


def test_pickle_keeps_identity_and_params():
    s = make_strategy({"name": "axelrod:GTFT", "p": 0.2, "match_length": 10, "game": [8, 0, 10, 5]})
    s.move([], [], np.random.default_rng(0))
    assert s._cache
    s2 = pickle.loads(pickle.dumps(s))
    assert s2 == s
    assert s2.name == "axelrod:GTFT"
    assert s2.params() == {"match_length": 10, "game": [8.0, 0.0, 10.0, 5.0], "p": 0.2}
    assert make_strategy(s2.spec()) == s


def test_id_reuse_with_different_history_is_detected():
    s = AxelrodStrategy("Grudger")
    my, their = [C, C, D], [C, D, D]
    assert s.move(my, their, None) == D
    # same list object, rewritten (as if its id were reused by another match)
    my[:] = [C, C, C]
    their[:] = [C, C, C]
    assert s.move(my, their, None) == C
    my[:] = []
    their[:] = []
    assert s.move(my, their, None) == C


def test_repeated_call_for_same_round_is_idempotent():
    s = AxelrodStrategy("Random")
    rng = np.random.default_rng(0)
    my: list[int] = [C]
    their: list[int] = [D]
    first = s.move(my, their, rng)
    state = rng.bit_generator.state
    for _ in range(5):
        assert s.move(my, their, rng) == first
    assert rng.bit_generator.state == state


def test_override_of_own_move_is_followed():
    """If the runtime plays a different move than the one returned, the player sees it."""
    s = AxelrodStrategy("Alternator")
    my: list[int] = []
    their: list[int] = []
    assert s.move(my, their, None) == C
    my.append(D)  # overridden
    their.append(C)
    assert s.move(my, their, None) == C  # Alternator flips its own last move


def test_cache_is_bounded():
    s = AxelrodStrategy("TitForTat")
    s.cache_size = 8
    lists = [([], []) for _ in range(20)]
    for my, their in lists:
        s.move(my, their, None)
    assert len(s._cache) <= 8
    for my, their in lists:  # evicted entries rebuild transparently
        assert s.move(my, their, None) == C


# ---------------------------------------------------------------------------- stochastic


def test_stochastic_player_is_seeded_from_rng_one_draw_per_move():
    spec = {"name": "axelrod:Random", "p": 0.3}
    s = make_strategy(spec)
    assert s.stochastic and s.classifier["stochastic"] is True
    opp = make_strategy("tit_for_tat")
    a = play(s, opp, 200, seed=1)
    b = play(make_strategy(spec), opp, 200, seed=1)
    assert a == b
    assert a != play(make_strategy(spec), opp, 200, seed=2)
    coop = [m for m, _ in play(s, opp, 5000, seed=3)]
    assert abs(coop.count(C) / 5000 - 0.3) < 0.03

    rng = np.random.default_rng(9)
    twin = np.random.default_rng(9)
    my: list[int] = []
    their: list[int] = []
    for _ in range(20):
        my.append(s.move(my, their, rng))
        twin.random()
        assert rng.bit_generator.state == twin.bit_generator.state
        their.append(C)


def test_stochastic_player_resume_is_identical():
    """Moves depend on the rng passed, not on the cache: a resumed run equals a straight one."""
    spec = {"name": "axelrod:GTFT"}
    opp = [C, D, D, C, D] * 10
    rng = np.random.default_rng(5)
    s = make_strategy(spec)
    my: list[int] = []
    their: list[int] = []
    for o in opp:
        my.append(s.move(my, their, rng))
        their.append(o)

    rng = np.random.default_rng(5)
    s = make_strategy(spec)
    my2: list[int] = []
    their2: list[int] = []
    for t, o in enumerate(opp):
        if t == 23:
            s, my2, their2, rng = pickle.loads(pickle.dumps((s, my2, their2, rng)))
        my2.append(s.move(my2, their2, rng))
        their2.append(o)
    assert my2 == my


def test_deterministic_adapter_consumes_no_randomness():
    rng = np.random.default_rng(1)
    before = rng.bit_generator.state
    play(AxelrodStrategy("Adaptive"), AxelrodStrategy("Prober"), 30, seed=1)
    s = AxelrodStrategy("TitForTat")
    s.move([C, D], [D, D], rng)
    assert rng.bit_generator.state == before


# ---------------------------------------------------------------------------- construction


@pytest.mark.parametrize("name", ["Tit For Tat", "TitForTat", "tit for tat", axl.TitForTat])
def test_lookup_by_name_or_class_name(name):
    s = make_strategy(f"axelrod:{name}") if isinstance(name, str) else AxelrodStrategy(name)
    assert s.name == "axelrod:Tit For Tat"
    assert s.player_class is axl.TitForTat
    assert repr(s) == "axelrod:Tit For Tat()"


def test_classifier_copied_from_axelrod():
    s = make_strategy("axelrod:FirstByTidemanAndChieruzzi")
    assert s.classifier["memory_depth"] == float("inf")
    assert s.classifier["makes_use_of"] == {"length", "game"}
    assert s.classifier["stochastic"] is False
    assert set(s.classifier) >= AXELROD_CLASSIFIER_KEYS
    assert make_strategy("axelrod:Random").classifier["stochastic"] is True
    assert make_strategy({"name": "axelrod:Random", "p": 1}).stochastic is False


def test_game_and_length_reach_the_player():
    s = make_strategy({"name": "axelrod:TitForTat", "match_length": 10, "game": [8, 0, 10, 5]})
    s.move([], [], None)
    (entry,) = s._cache.values()
    assert entry.player.match_attributes["length"] == 10
    assert entry.player.match_attributes["game"].RPST() == (8, 5, 0, 10)  # (R, P, S, T)


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("axelrod:No Such Strategy", "unknown axelrod strategy 'No Such Strategy'"),
        ("axelrod:TitForTatt", "did you mean"),
        ({"name": "axelrod:TitForTat", "bogus": 1}, "bad player parameters"),
        ({"name": "axelrod:TitForTat", "match_length": 0}, "'match_length' must be a positive int"),
        ({"name": "axelrod:TitForTat", "match_length": 2.5}, "'match_length'"),
        ({"name": "axelrod:TitForTat", "game": [1, 2, 3]}, "'game' must be four payoffs"),
        ({"name": "axelrod:TitForTat", "game": "abcd"}, "'game' must be four payoffs"),
        ("axelrod:Darwin", "is not supported"),
    ],
)
def test_construction_errors(spec, needle):
    with pytest.raises(ValueError) as err:
        make_strategy(spec)
    assert needle in str(err.value)


class _Peeker(axl.Player):
    name = "Peeker"
    classifier = {"stochastic": False, "memory_depth": 0, "inspects_source": True}

    def strategy(self, opponent):  # pragma: no cover
        return axl.Action.C


def test_players_that_inspect_the_opponent_are_refused():
    with pytest.raises(ValueError, match="inspects_source"):
        AxelrodStrategy(_Peeker)
    with pytest.raises(ValueError, match="not an axelrod.Player subclass"):
        AxelrodStrategy(int)


def test_history_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="histories differ in length"):
        AxelrodStrategy("TitForTat").move([C], [], None)
