"""The repeated-game simulation through the runner: scores, records, determinism."""

from __future__ import annotations

import pytest

from society.errors import UserError
from society.runner import start_run
from society.scenario import resolve
from tests.helpers import assert_same_store, ipd_scenario, query


def run(tmp_path, data, name="r"):
    return start_run(resolve(data, "test"), tmp_path / name, quiet=True)


def test_two_strategies_known_scores(tmp_path):
    data = {
        "name": "duel",
        "population": {
            "groups": [
                {"name": "tft", "strategy": "tit_for_tat"},
                {"name": "alld", "strategy": "always_defect"},
            ]
        },
        "game": {"kind": "repeated_2x2", "preset": "prisoners_dilemma", "rounds": 10},
    }
    res = run(tmp_path, data)
    # protocols §2 PD: TFT is exploited once (0 vs 10), then mutual defection (5/5) x 9.
    scores = dict(query(res.run_dir, "SELECT agent_id, SUM(value) FROM events GROUP BY agent_id"))
    assert scores == {0: 45.0, 1: 55.0}
    moves = query(res.run_dir, "SELECT action FROM decisions WHERE agent_id = 0 ORDER BY round")
    assert [m for (m,) in moves] == ["C"] + ["D"] * 9
    assert res.steps == 10 and res.decisions == 20


def test_store_contents(tmp_path):
    res = run(tmp_path, ipd_scenario())
    d = res.run_dir
    assert (d / "scenario.yaml").exists()
    assert query(d, "SELECT COUNT(*) FROM agents") == [(6,)]
    assert query(d, "SELECT COUNT(*) FROM rounds") == [(20,)]
    assert query(d, "SELECT COUNT(*) FROM decisions") == [(15 * 2 * 20,)]
    assert query(d, "SELECT value FROM meta WHERE key = 'status'") == [("finished",)]
    # Each decision has a payoff event for the same agent, partner and round.
    assert query(d, "SELECT COUNT(*) FROM events WHERE kind = 'payoff'") == [(600,)]
    (strategy,) = query(d, "SELECT strategy FROM agents WHERE agent_id = 3")[0]
    assert strategy == "random"


def test_same_seed_same_run_different_seed_different_run(tmp_path):
    a = run(tmp_path, ipd_scenario(), "a").run_dir
    b = run(tmp_path, ipd_scenario(), "b").run_dir
    assert_same_store(a, b)
    other = ipd_scenario()
    other["seed"] = 8
    c = run(tmp_path, other, "c").run_dir
    assert query(a, "SELECT action FROM decisions") != query(c, "SELECT action FROM decisions")


def test_noise_flips_played_moves_not_intended_ones(tmp_path):
    data = ipd_scenario(noise=0.2)
    data["population"]["groups"] = [{"name": "allc", "count": 2, "strategy": "always_cooperate"}]
    d = run(tmp_path, data).run_dir
    assert query(d, "SELECT DISTINCT action FROM decisions") == [("C",)]
    flipped = query(d, "SELECT AVG(action = 'D') FROM events")[0][0]
    assert 0.05 < flipped < 0.4


def test_continuation_ends_matches_early(tmp_path):
    d = run(tmp_path, ipd_scenario(continuation=0.8, rounds=50)).run_dir
    per_pair = query(
        d, "SELECT COUNT(*) FROM events WHERE agent_id < partner_id GROUP BY agent_id, partner_id"
    )
    lengths = [n for (n,) in per_pair]
    assert min(lengths) >= 1 and max(lengths) <= 50 and len(set(lengths)) > 1


def test_self_play_and_network_matching(tmp_path):
    data = ipd_scenario()
    data["matching"] = {"kind": "round_robin", "self_play": True}
    d = run(tmp_path, data, "sp").run_dir
    assert query(d, "SELECT COUNT(*) FROM events WHERE agent_id = partner_id AND round = 0") == [
        (12,)
    ]
    data = ipd_scenario()
    data["network"] = {"kind": "ring", "k": 2}
    d = run(tmp_path, data, "ring").run_dir
    assert query(d, "SELECT COUNT(DISTINCT partner_id) FROM decisions WHERE agent_id = 0") == [(2,)]


def test_random_matching(tmp_path):
    data = ipd_scenario()
    data["matching"] = {"kind": "random"}
    d = run(tmp_path, data).run_dir
    assert query(d, "SELECT COUNT(*) FROM decisions WHERE round = 0") == [(6,)]
    assert query(d, "SELECT COUNT(*) FROM rounds") == [(20,)]


def test_presets_and_ordinal_games(tmp_path):
    d = run(tmp_path, ipd_scenario(preset="battle_of_the_sexes"), "bos").run_dir
    assert query(d, "SELECT MAX(value) FROM events") == [(10.0,)]
    d = run(tmp_path, ipd_scenario(ordinal="rg_3142_3412"), "ord").run_dir
    assert query(d, "SELECT MAX(value) FROM events") == [(4.0,)]


def test_score_vs_max_reads_the_ordinal_game_from_the_store(tmp_path):
    from analysis import load_run
    from analysis.cooperation import score_vs_max

    data = {
        "name": "ord",
        "population": {
            "groups": [
                {"name": "allc", "strategy": "always_cooperate"},
                {"name": "alld", "strategy": "always_defect"},
            ]
        },
        "game": {"kind": "repeated_2x2", "ordinal": "rg_3142_3412", "rounds": 5},
    }
    out = score_vs_max(load_run(run(tmp_path, data).run_dir), by="grp").set_index("grp")
    # Against a defector the cooperator wins 1 per round where defecting would win 2;
    # the defector wins 4, the most it can.
    assert out.loc["allc", ["won", "max_achievable"]].tolist() == [5.0, 10.0]
    assert out.loc["alld", ["won", "max_achievable"]].tolist() == [20.0, 20.0]


@pytest.mark.parametrize(
    "game, expected",
    [
        ({"preset": "poker"}, "game.preset"),
        ({"ordinal": "rg_nope"}, "game.ordinal: unknown ordinal game"),
        ({"preset": "prisoners_dilemma_classic", "params": {"T": 1}}, "game.preset"),
    ],
)
def test_bad_game_content_is_a_user_error(tmp_path, game, expected):
    with pytest.raises(UserError, match=expected):
        run(tmp_path, ipd_scenario(**game))


def test_unknown_strategy_is_a_user_error(tmp_path):
    data = ipd_scenario()
    data["population"]["groups"][0]["strategy"] = "tit_for_what"
    with pytest.raises(UserError, match=r"population.groups.tft.strategy: .*tit_for_what"):
        run(tmp_path, data)


def test_existing_run_dir_is_refused(tmp_path):
    run(tmp_path, ipd_scenario(), "x")
    with pytest.raises(UserError, match="a run already exists there"):
        run(tmp_path, ipd_scenario(), "x")
