"""Rules of 2x2 games: presets, the 144 ordinal games and their families, repeated play."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import games
from games.ordinal import (
    FAMILIES,
    GAME_SETS,
    PAPER_FAMILIES,
    canonical_key,
    family_of,
    game_set,
    games_by_family,
    ordinal_families,
    ordinal_games,
)
from games.repeated import RepeatedGameRules
from games.twobytwo import (
    PRESETS,
    Game2x2,
    pareto_optimal,
    preset,
    pure_nash_equilibria,
)

# Every cell of every preset with default parameters: (a1, a2) -> (p1, p2).
EXPECTED_PRESETS = {
    "prisoners_dilemma": {(0, 0): (8, 8), (0, 1): (0, 10), (1, 0): (10, 0), (1, 1): (5, 5)},
    "prisoners_dilemma_classic": {(0, 0): (3, 3), (0, 1): (0, 5), (1, 0): (5, 0), (1, 1): (1, 1)},
    "battle_of_the_sexes": {(0, 0): (10, 7), (0, 1): (0, 0), (1, 0): (0, 0), (1, 1): (7, 10)},
    "stag_hunt": {(0, 0): (4, 4), (0, 1): (0, 3), (1, 0): (3, 0), (1, 1): (2, 2)},
    "chicken": {(0, 0): (3, 3), (0, 1): (1, 4), (1, 0): (4, 1), (1, 1): (0, 0)},
    "harmony": {(0, 0): (4, 4), (0, 1): (2, 3), (1, 0): (3, 2), (1, 1): (1, 1)},
}
CELLS = [(0, 0), (0, 1), (1, 0), (1, 1)]
PD_PATTERN = ((3, 3), (1, 4), (4, 1), (2, 2))  # ordinal ranks of the standard PD
# The family sizes in the published data of Akata et al. (2023, arXiv 2305.16867).
EXPECTED_FAMILY_COUNTS = {
    "win-win": 36,
    "prisoners_dilemma": 7,
    "unfair": 19,
    "cyclic": 18,
    "biased": 44,
    "second_best": 12,
    "tragic": 8,
}


# --- Game2x2 and presets ---------------------------------------------------------------


def test_package_exports():
    assert games.Game2x2 is Game2x2
    assert games.preset is preset
    assert games.PRESETS is PRESETS
    assert games.ordinal_games is ordinal_games
    assert games.RepeatedGameRules is RepeatedGameRules


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_preset_every_cell(name):
    game = preset(name)
    assert game.name == name
    for cell, expected in EXPECTED_PRESETS[name].items():
        assert game.payoff(*cell) == expected
        assert tuple(game.as_matrix()[cell]) == expected


def test_every_registered_preset_is_checked():
    assert set(PRESETS) == set(EXPECTED_PRESETS) | {"custom"}


@pytest.mark.parametrize("name", ["prisoners_dilemma", "stag_hunt", "chicken", "harmony"])
def test_strict_preset_family_matches_ordinal_rule(name):
    game = preset(name)
    assert game.family == family_of(game)


def test_battle_of_the_sexes_is_biased_and_mirrored():
    bos = preset("battle_of_the_sexes")
    assert bos.family == "biased"
    assert sorted(pure_nash_equilibria(bos)) == [(0, 0), (1, 1)]
    # Player 2 sees the mirror image: its favourite is option 1, paying 10/7 to it.
    seen = bos.for_player(1)
    assert seen.payoff(1, 1) == (10, 7)
    assert seen.payoff(0, 0) == (7, 10)


def test_preset_parameters_override():
    pd = preset("prisoners_dilemma", R=6, S=1, T=9, P=2)
    assert pd.payoff(0, 1) == (1, 9)
    assert preset("battle_of_the_sexes", high=5, low=3).payoff(1, 1) == (3, 5)


@pytest.mark.parametrize("name", ["prisoners_dilemma", "prisoners_dilemma_classic"])
def test_pd_inequalities(name):
    game = preset(name)
    (R, _), (S, T) = game.payoffs[0]
    (_, _), (P, _) = game.payoffs[1]
    assert T > R > P > S
    assert 2 * R > T + S
    assert pure_nash_equilibria(game) == [(1, 1)]
    assert (1, 1) not in pareto_optimal(game)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"R": 3, "S": 0, "T": 2, "P": 1}, "T > R > P > S"),
        ({"R": 3, "S": 1, "T": 5, "P": 0}, "T > R > P > S"),
        ({"R": 3, "S": 0, "T": 7, "P": 1}, "2R > T"),
    ],
)
def test_classic_pd_validation(params, match):
    with pytest.raises(ValueError, match=match):
        preset("prisoners_dilemma_classic", **params)


@pytest.mark.parametrize(
    "name, params",
    [
        ("battle_of_the_sexes", {"high": 5, "low": 7}),
        ("stag_hunt", {"R": 2, "T": 3}),
        ("chicken", {"P": 2}),
        ("harmony", {"T": 5}),
    ],
)
def test_preset_validation(name, params):
    with pytest.raises(ValueError, match=name.split("_")[0]):
        preset(name, **params)


def test_unknown_preset_lists_valid_names():
    with pytest.raises(KeyError, match="prisoners_dilemma"):
        preset("prisoner")
    with pytest.raises(ValueError, match="valid names"):
        preset("prisoner")
    with pytest.raises(ValueError, match="accepted: R, S, T, P"):
        preset("chicken", temptation=4)


def test_custom_from_nested_list():
    game = preset("custom", payoffs=[[[1, 2], [3, 4]], [[5, 6], [7, 8]]], name="mine")
    assert game.name == "mine"
    assert game.payoff(1, 0) == (5.0, 6.0)
    assert game.payoffs == (((1.0, 2.0), (3.0, 4.0)), ((5.0, 6.0), (7.0, 8.0)))


@pytest.mark.parametrize(
    "payoffs",
    [
        [[1, 2], [3, 4]],
        [[[1, 2], [3, 4]]],
        [[[1, 2], [3, 4]], [[5, 6], [7]]],
        [[[1, 2], [3, 4]], [[5, 6], [7, "x"]]],
        [[[1, 2], [3, 4]], [[5, 6], [7, float("nan")]]],
        "abcd",
    ],
)
def test_bad_shapes_raise(payoffs):
    with pytest.raises(ValueError, match="payoff"):
        Game2x2("bad", payoffs)


def test_bad_actions_and_players_raise():
    pd = preset("prisoners_dilemma")
    with pytest.raises(ValueError, match="a1"):
        pd.payoff(2, 0)
    with pytest.raises(ValueError, match="player"):
        pd.for_player(2)
    with pytest.raises(ValueError, match="player"):
        pd.max_payoff(3)


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_for_player_swaps_roles(name):
    game = preset(name)
    assert game.for_player(0) is game
    swapped = game.for_player(1)
    for a, b in CELLS:
        assert swapped.payoff(b, a) == game.payoff(a, b)[::-1]
    assert swapped.for_player(1) == game
    assert swapped.max_payoff(0) == game.max_payoff(1)
    assert swapped.min_payoff(1) == game.min_payoff(0)


def test_symmetry():
    for name in ["prisoners_dilemma", "prisoners_dilemma_classic", "stag_hunt", "chicken"]:
        game = preset(name)
        assert game.is_symmetric()
        assert game.for_player(1) == game
    assert not preset("battle_of_the_sexes").is_symmetric()


def test_max_min_payoff():
    pd = preset("prisoners_dilemma")
    assert (pd.max_payoff(), pd.min_payoff()) == (10, 0)
    bos = preset("battle_of_the_sexes")
    assert bos.max_payoff(1) == 10 and bos.min_payoff(1) == 0


def test_as_matrix_is_read_only():
    m = preset("prisoners_dilemma").as_matrix()
    assert m.shape == (2, 2, 2)
    with pytest.raises(ValueError):
        m[0, 0, 0] = 1


def test_dict_round_trip_through_json():
    for name in EXPECTED_PRESETS:
        game = preset(name)
        again = Game2x2.from_dict(json.loads(json.dumps(game.to_dict())))
        assert again == game
    with pytest.raises(ValueError, match="unknown"):
        Game2x2.from_dict({"name": "x", "payoffs": [], "colour": 1})
    with pytest.raises(ValueError, match="missing"):
        Game2x2.from_dict({"name": "x"})


def test_nash_and_pareto_helpers():
    assert sorted(pure_nash_equilibria(preset("chicken"))) == [(0, 1), (1, 0)]
    assert sorted(pure_nash_equilibria(preset("stag_hunt"))) == [(0, 0), (1, 1)]
    assert pareto_optimal(preset("stag_hunt")) == [(0, 0)]
    pennies = Game2x2("pennies", (((1, -1), (-1, 1)), ((-1, 1), (1, -1))))
    assert pure_nash_equilibria(pennies) == []
    assert len(pareto_optimal(pennies)) == 4


# --- The 144 ordinal games ---------------------------------------------------------------


def test_exactly_144_distinct_ordinal_games():
    all_games = ordinal_games()
    assert len(all_games) == 144
    keys = [canonical_key(g) for g in all_games]
    assert len(set(keys)) == 144
    assert len({g.name for g in all_games}) == 144
    for game in all_games:
        for player in (0, 1):
            assert sorted(game.payoffs[i][j][player] for i, j in CELLS) == [1, 2, 3, 4]
        assert game.name.startswith("rg_")
        assert game.family in FAMILIES


def test_ordinal_games_are_deterministic():
    assert [g.name for g in ordinal_games()] == [g.name for g in ordinal_games()]
    assert ordinal_games()[0].name == "rg_2134_4321"


def test_canonical_key_ignores_row_and_column_swaps_but_not_players():
    game = Game2x2("g", (((4, 1), (2, 3)), ((1, 2), (3, 4))))
    p = game.payoffs
    rows = Game2x2("r", (p[1], p[0]))
    cols = Game2x2("c", ((p[0][1], p[0][0]), (p[1][1], p[1][0])))
    assert canonical_key(rows) == canonical_key(game) == canonical_key(cols)
    assert canonical_key(game.for_player(1)) != canonical_key(game)
    # Only ordinal structure matters.
    assert canonical_key(preset("prisoners_dilemma")) == PD_PATTERN
    assert canonical_key(preset("prisoners_dilemma_classic")) == PD_PATTERN


def test_576_bimatrices_reduce_to_the_144_keys():
    import itertools

    keys = set()
    for p1 in itertools.permutations(range(1, 5)):
        for p2 in itertools.permutations(range(1, 5)):
            cells = list(zip(p1, p2, strict=True))
            keys.add(canonical_key(Game2x2("g", ((cells[0], cells[1]), (cells[2], cells[3])))))
    assert keys == {canonical_key(g) for g in ordinal_games()}


def test_family_counts():
    groups = games_by_family()
    assert tuple(groups) == FAMILIES
    counts = {f: len(gs) for f, gs in groups.items()}
    assert counts == EXPECTED_FAMILY_COUNTS
    assert sum(counts.values()) == 144
    assert all(counts.values())
    assert Counter(g.family for g in ordinal_games()) == Counter(EXPECTED_FAMILY_COUNTS)


def test_family_rule_agrees_with_equilibria():
    for game in ordinal_games():
        ne = pure_nash_equilibria(game)
        pays = {game.payoff(*c) for c in ne}
        if game.family == "cyclic":
            assert ne == []
        elif game.family == "win-win":
            assert (4, 4) in pays
        elif game.family == "second_best":
            assert len(ne) == 1 and pays == {(3, 3)}, game.name
        elif game.family == "tragic":
            assert len(ne) == 1 and pays <= {(3, 2), (2, 3)}, game.name
            assert len(pays) == 1


def test_second_best_and_tragic_split_the_single_equilibrium_games_short_of_the_best():
    # Every game whose equilibria all leave both players short of their best (no 4 for
    # anyone) is second-best or tragic, and the equilibrium's payoffs decide which.
    short = [
        g
        for g in ordinal_games()
        if pure_nash_equilibria(g)
        and all(max(g.payoff(*c)) < 4 for c in pure_nash_equilibria(g))
        and g.family != "prisoners_dilemma"
    ]
    assert len(short) == 20
    assert {g.family for g in short} == {"second_best", "tragic"}
    tragic = [g for g in short if g.family == "tragic"]
    assert sorted({g.payoff(*pure_nash_equilibria(g)[0]) for g in tragic}) == [(2, 3), (3, 2)]


def test_family_counts_of_the_authors_data():
    counts = {f: len(gs) for f, gs in ordinal_families().items()}
    assert counts == EXPECTED_FAMILY_COUNTS
    assert tuple(ordinal_families()) == FAMILIES
    assert PAPER_FAMILIES == tuple(f for f in FAMILIES if f != "tragic")


def test_named_game_sets():
    all_144 = game_set("all_144")
    assert len(all_144) == 144
    assert len({canonical_key(g) for g in all_144}) == 144
    assert [g.name for g in all_144] == [g.name for g in ordinal_games()]
    paper = game_set("paper_136")
    assert len(paper) == 136
    assert len({canonical_key(g) for g in paper}) == 136
    assert "tragic" not in {g.family for g in paper}
    assert {g.name for g in all_144} - {g.name for g in paper} == {
        g.name for g in game_set("tragic")
    }
    for family in FAMILIES:
        members = game_set(family)
        assert len(members) == EXPECTED_FAMILY_COUNTS[family]
        assert {g.family for g in members} == {family}
        assert [g.name for g in members] == [g.name for g in ordinal_families()[family]]
    assert set(GAME_SETS) == {"all_144", "paper_136", *FAMILIES}
    order = [g.name for g in ordinal_games()]
    for name in GAME_SETS:
        names = [g.name for g in game_set(name)]
        assert names == sorted(names, key=order.index)  # the ordinal_games order


def test_unknown_game_set_lists_valid_names():
    with pytest.raises(ValueError, match="unknown ordinal game set 'paper_144'") as err:
        game_set("paper_144")
    for name in GAME_SETS:
        assert name in str(err.value)


def test_pd_family_contains_standard_pd():
    pd_keys = {canonical_key(g) for g in games_by_family()["prisoners_dilemma"]}
    assert PD_PATTERN in pd_keys
    assert "rg_3142_3412" in {g.name for g in games_by_family()["prisoners_dilemma"]}


def test_family_of_rejects_ties():
    with pytest.raises(ValueError, match="tied"):
        family_of(preset("battle_of_the_sexes"))


# --- Repeated play -----------------------------------------------------------------------


def rules(**kw) -> RepeatedGameRules:
    return RepeatedGameRules(game=preset("prisoners_dilemma"), **kw)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"rounds": 0}, "rounds"),
        ({"rounds": 2.5}, "rounds"),
        ({"noise": -0.1}, "noise"),
        ({"noise": 1.5}, "noise"),
        ({"noise": float("nan")}, "noise"),
        ({"continuation": 0.0}, "continuation"),
        ({"continuation": 1.2}, "continuation"),
        ({"labels": ("J", "J")}, "differ"),
        ({"labels": ("J", "")}, "non-empty"),
        ({"labels": ("J",)}, "two"),
        ({"shuffle_options": "yes"}, "shuffle_options"),
    ],
)
def test_rules_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        rules(**kw)


def test_rules_defaults_and_labels():
    r = rules(labels=["A", "B"])
    assert r.rounds == 10 and r.noise == 0.0 and r.continuation is None
    assert r.labels == ("A", "B")
    assert r.label(1) == "B"
    assert rules().labels == ("J", "F")


def test_zero_noise_consumes_no_randomness():
    moves = np.array([0, 1, 1, 0], dtype=np.int8)
    rng = np.random.default_rng(7)
    out = rules().apply_noise(moves, rng)
    assert out is moves
    assert rng.random() == np.random.default_rng(7).random()


def test_full_noise_flips_everything():
    moves = np.array([0, 1, 1, 0, 0], dtype=np.int8)
    out = rules(noise=1.0).apply_noise(moves, np.random.default_rng(0))
    assert out.dtype == np.int8
    assert out.tolist() == [1, 0, 0, 1, 1]


def test_half_noise_flips_about_half():
    moves = np.zeros(20_000, dtype=np.int8)
    out = rules(noise=0.5).apply_noise(moves, np.random.default_rng(1))
    assert 0.48 < out.mean() < 0.52
    again = rules(noise=0.5).apply_noise(moves, np.random.default_rng(1))
    assert np.array_equal(out, again)


def test_noise_rejects_non_binary_moves():
    with pytest.raises(ValueError, match="0 and 1"):
        rules(noise=0.1).apply_noise(np.array([0, 2]), np.random.default_rng(0))


def test_payoffs_vec_matches_scalar_payoffs():
    for name in EXPECTED_PRESETS:
        r = RepeatedGameRules(game=preset(name))
        a1 = np.array([0, 0, 1, 1], dtype=np.int8)
        a2 = np.array([0, 1, 0, 1], dtype=np.int8)
        p1, p2 = r.payoffs_vec(a1, a2)
        assert list(zip(p1.tolist(), p2.tolist(), strict=True)) == [
            r.game.payoff(a, b) for a, b in CELLS
        ]


def test_match_length_fixed_without_continuation():
    rng = np.random.default_rng(3)
    assert rules(rounds=7).match_length(rng) == 7
    assert rules(rounds=7, continuation=1.0).match_length(rng) == 7
    assert rng.random() == np.random.default_rng(3).random()


def test_continuation_lengths():
    r = rules(rounds=10, continuation=0.8)
    rng = np.random.default_rng(11)
    lengths = np.array([r.match_length(rng) for _ in range(20_000)])
    assert lengths.min() >= 1 and lengths.max() <= 10
    assert lengths.max() == 10  # the cap is reached
    expected = (1 - 0.8**10) / 0.2
    assert r.expected_length() == pytest.approx(expected)
    assert lengths.mean() == pytest.approx(expected, abs=0.06)


def test_option_order():
    rng = np.random.default_rng(5)
    assert rules().option_order(rng) == (0, 1)
    assert rng.random() == np.random.default_rng(5).random()
    shuffled = rules(shuffle_options=True)
    orders = Counter(shuffled.option_order(rng) for _ in range(4000))
    assert set(orders) == {(0, 1), (1, 0)}
    assert 0.45 < orders[(0, 1)] / 4000 < 0.55


def test_score_max():
    pd = rules()
    # Against C the best reply pays 10 (defect), against D it pays 5.
    assert pd.score_max(np.array([0, 0, 1])) == 25.0
    assert pd.score_max(np.array([0, 0, 1]), player=1) == 25.0
    bos = RepeatedGameRules(game=preset("battle_of_the_sexes"))
    partner = np.array([0, 1, 0, 1])
    assert bos.score_max(partner, player=0) == 10 + 7 + 10 + 7
    assert bos.score_max(partner, player=1) == 7 + 10 + 7 + 10
    many = bos.score_max(np.array([[0, 0], [1, 1]]), player=0)
    assert many.tolist() == [20.0, 14.0]
