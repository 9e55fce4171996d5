"""Sweeping a game set: every pair plays one match per stage game, game after game.

The named sets and seeded samples (games.ordinal.select_games), the tournament of stage
games (games.game_set), the scenario fields, resume row for row, evolution over the sum of
the stage games, and the analysis per stage game and family (both score normalisations).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import analysis
from analysis import cooperation as coop
from games.game_set import GameSetTournament
from games.ordinal import GAME_SETS, select_games
from games.repeated import RepeatedGame, RepeatedGameRules
from games.twobytwo import preset
from society.errors import UserError
from society.matching import round_robin_pairs
from society.runner import start_run
from society.scenario import resolve
from tests.helpers import query
from tests.test_resume import interrupt_resume_compare


# -- naming and sampling the games ----------------------------------------------------------
def test_named_sets_lists_and_presets():
    assert len(select_games("all_144")) == 144 and len(select_games("paper_136")) == 136
    assert Counter(g.family for g in select_games("paper_136"))["tragic"] == 0
    both = select_games(["cyclic", "tragic", "cyclic", "rg_3142_3412", "battle_of_the_sexes"])
    assert len(both) == 18 + 8 + 1 + 1  # duplicates dropped
    assert [g.name for g in both[-2:]] == ["rg_3142_3412", "battle_of_the_sexes"]
    assert both[-1].payoffs == preset("battle_of_the_sexes").payoffs
    for name in GAME_SETS:
        assert select_games(name)
    for bad in ("all_145", ["cyclic", "nope"], []):
        with pytest.raises(ValueError):
            select_games(bad)


def test_samples_are_seeded_and_in_set_order():
    a = select_games("all_144", 10, np.random.default_rng([5, 144]))
    b = select_games("all_144", 10, np.random.default_rng([5, 144]))
    c = select_games("all_144", 10, np.random.default_rng([6, 144]))
    assert [g.name for g in a] == [g.name for g in b] != [g.name for g in c]
    order = [g.name for g in select_games("all_144")]
    assert [order.index(g.name) for g in a] == sorted(order.index(g.name) for g in a)
    strata = select_games("all_144", 3, np.random.default_rng(1), per_family=True)
    assert Counter(g.family for g in strata) == dict.fromkeys(
        ["win-win", "prisoners_dilemma", "unfair", "cyclic", "biased", "second_best", "tragic"], 3
    )
    with pytest.raises(ValueError, match="larger than the 8 games"):
        select_games("tragic", 9, np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs a random generator"):
        select_games("tragic", 2)


# -- the tournament of stage games -----------------------------------------------------------
def _play(game, n_slots: int, rng) -> list[list]:
    """Play a game to its end with every slot choosing option (slot + step) % 2."""
    steps = []
    step = 0
    while not game.done:
        turns = game.pending(rng)
        steps.append(game.apply(turns, [(t.agent + step) % 2 for t in turns], rng))
        step += 1
    return steps


def test_stage_games_in_turn_and_fitness_over_all_of_them():
    games = select_games(["rg_3142_3412", "battle_of_the_sexes", "rg_4321_4321"])
    rules = [RepeatedGameRules(g, rounds=3) for g in games]
    pairs = round_robin_pairs(3)
    sweep = GameSetTournament(
        rules, lambda r, rng: pairs, static=True, rng=np.random.default_rng(0)
    )
    assert sweep.total_steps() == 9
    positions = []
    rng = np.random.default_rng(1)
    step = 0
    while not sweep.done:
        positions.append((sweep.position().game, sweep.position().round_in_game))
        turns = sweep.pending(rng)
        assert len(turns) == 2 * len(pairs)
        sweep.apply(turns, [(t.agent + step) % 2 for t in turns], rng)
        step += 1
    assert positions == [(k, r) for k in range(3) for r in range(3)]
    # the same moves played game by game in separate RepeatedGames: the same fitness
    totals: dict[int, float] = {}
    for k, r in enumerate(rules):
        single = RepeatedGame(r, lambda _, rng: pairs, static=True, rng=np.random.default_rng(0))
        for s in range(3):
            turns = single.pending(rng)
            single.apply(turns, [(t.agent + 3 * k + s) % 2 for t in turns], rng)
        for slot, (_, detail) in single.fitness().items():
            totals[slot] = totals.get(slot, 0.0) + detail["total"]
    fit = sweep.fitness()
    for slot, total in totals.items():
        assert fit[slot][1]["total"] == pytest.approx(total)
        assert fit[slot][0] == pytest.approx(total / (3 * 3 * 2))  # 2 partners, 9 rounds
    state = json.loads(json.dumps(sweep.get_state()))
    assert state["index"] == 2 and len(state["games"]) == 3


def test_bad_state_and_empty_set():
    rules = [RepeatedGameRules(preset("prisoners_dilemma"), rounds=2)]
    with pytest.raises(ValueError, match="at least one stage game"):
        GameSetTournament([], lambda r, g: [(0, 1)], static=True, rng=np.random.default_rng(0))
    sweep = GameSetTournament(
        rules, lambda r, g: [(0, 1)], static=True, rng=np.random.default_rng(0)
    )
    with pytest.raises(ValueError, match="stage game 3 of 1"):
        sweep.set_state({"index": 3, "games": [{}]})


# -- in a scenario -------------------------------------------------------------------------
def sweep_scenario(**game) -> dict:
    return {
        "name": "sweep",
        "seed": 9,
        "population": {
            "groups": [
                {"name": "tft", "count": 2, "strategy": "tit_for_tat"},
                {"name": "alld", "count": 1, "strategy": "always_defect"},
                {"name": "rnd", "count": 1, "strategy": {"name": "random", "p": 0.5}},
            ]
        },
        "matching": {"kind": "round_robin"},
        "game": {"kind": "repeated_2x2", "game_set": "paper_136", "sample": 4, "rounds": 3, **game},
    }


def test_every_pair_plays_every_stage_game_and_the_store_says_which(tmp_path):
    start_run(resolve(sweep_scenario(), "s"), tmp_path / "r", quiet=True)
    (text,) = query(tmp_path / "r", "SELECT value FROM meta WHERE key = 'resolved_game'")[0]
    resolved = json.loads(text)
    assert resolved["payoffs"] is None and resolved["game_set"] == "paper_136"
    stages = resolved["games"]
    expected = select_games("paper_136", 4, np.random.default_rng([9, 144]))
    assert [s["name"] for s in stages] == [g.name for g in expected]
    assert [s["game"] for s in stages] == [0, 1, 2, 3]
    rows = query(
        tmp_path / "r",
        "SELECT r.game, d.agent_id, d.partner_id, COUNT(*) FROM decisions d"
        " JOIN rounds r ON r.round = d.round GROUP BY r.game, d.agent_id, d.partner_id",
    )
    assert len(rows) == 4 * 12 and {n for *_, n in rows} == {3}  # 6 pairs x 2 sides, 3 rounds
    # every payoff is the stage game's own
    events = query(
        tmp_path / "r",
        "SELECT r.game, e.agent_id, e.partner_id, e.action, e.value, e.round FROM events e"
        " JOIN rounds r ON r.round = e.round WHERE e.kind = 'payoff' ORDER BY e.id",
    )
    move = {(rnd, a, b): act for _, a, b, act, _, rnd in events}
    for k, a, b, act, value, rnd in events:
        m = np.array(stages[k]["payoffs"])
        mine, theirs = "CD".index(act), "CD".index(move[(rnd, b, a)])
        want = m[mine, theirs, 0] if a < b else m[theirs, mine, 1]
        assert value == want


def test_scenario_errors_name_the_field():
    for game, msg in (
        ({"game_set": "nope"}, "game.game_set: unknown game 'nope'"),
        ({"game_set": "tragic", "sample": 9}, "game.sample: sample 9 is larger"),
        (
            {"game_set": "tragic", "sample": None, "ordinal": "rg_3142_3412"},
            "game.ordinal: set either",
        ),
        ({"game_set": "tragic", "sample": None, "preset": "stag_hunt"}, "game.preset: set either"),
    ):
        with pytest.raises(UserError, match=msg):
            start_run(resolve(sweep_scenario(**game), "s"), "/nonexistent/never", quiet=True)
    for field, value in (("sample", 3), ("sample_per_family", True)):
        data = sweep_scenario(game_set=None, sample=None)
        data["game"][field] = value
        with pytest.raises(UserError, match=f"game.{field}: only read with game.game_set"):
            start_run(resolve(data, "s"), "/nonexistent/never", quiet=True)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"matching": {"kind": "random"}},
        {"game": {"continuation": 0.7, "noise": 0.1}},
        {"game": {"shuffle_options": True}},
    ],
    ids=["round_robin", "random_pairs", "continuation_noise", "shuffled"],
)
@pytest.mark.parametrize("cut", [2, 5])
def test_sweep_resumes_row_for_row(tmp_path, monkeypatch, extra, cut):
    data = sweep_scenario(**extra.get("game", {}))
    data.update({k: v for k, v in extra.items() if k != "game"})
    interrupt_resume_compare(data, cut, tmp_path, monkeypatch)


def test_sweep_evolves_and_resumes_across_generations(tmp_path, monkeypatch):
    data = sweep_scenario(sample=3, rounds=2, continuation=0.8)
    data["evolution"] = {"generations": 3, "survivors": 0.5}
    interrupt_resume_compare(data, 7, tmp_path, monkeypatch)
    fitness = query(
        tmp_path / "full", "SELECT agent_id, value, data FROM events WHERE kind = 'fitness'"
    )
    assert len(fitness) == 3 * 4
    assert all(json.loads(d)["stage_games"] == 3 for *_, d in fitness)


# -- analysis --------------------------------------------------------------------------------
def test_cooperation_and_scores_per_stage_game_and_family(tmp_path):
    data = sweep_scenario(game_set=["rg_3142_3412", "battle_of_the_sexes"], sample=None)
    run = analysis.load_run(start_run(resolve(data, "s"), tmp_path / "r", quiet=True).run_dir)
    stages = coop.stage_games(run)
    assert stages[["game", "stage", "family"]].values.tolist() == [
        [0, "rg_3142_3412", "prisoners_dilemma"],
        [1, "battle_of_the_sexes", "biased"],
    ]
    by_family = coop.cooperation_rate(run, "family").set_index("family")
    m = coop.moves(run)
    for fam in ("prisoners_dilemma", "biased"):
        assert by_family.loc[fam, "rate"] == m[m["family"] == fam]["coop"].mean()
        assert by_family.loc[fam, "n"] == 6 * 2 * 3
    # scores by hand, stage game by stage game
    ev = run.events[run.events["kind"] == "payoff"].merge(run.rounds[["round", "game"]], on="round")
    act = {(r.round, r.agent_id, r.partner_id): "CD".index(r.action) for r in ev.itertuples()}
    for k, normalisation in ((0, "partner"), (1, "partner"), (0, "game_max"), (1, "game_max")):
        M = np.array(stages["payoffs"][k])
        sub = ev[ev["game"] == k]
        won = best = 0.0
        for r in sub.itertuples():
            theirs = act[(r.round, r.partner_id, r.agent_id)]
            row = r.agent_id < r.partner_id
            own = [M[a, theirs, 0] if row else M[theirs, a, 1] for a in (0, 1)]
            won += r.value
            best += max(own) if normalisation == "partner" else M.max()
        out = coop.score_vs_max(run, by="stage", normalisation=normalisation).set_index("stage")
        assert out.loc[stages["stage"][k], "score"] == pytest.approx(won / best)
    with pytest.raises(ValueError, match="sweeps 2 stage games"):
        coop.payoff_matrix(run)
    with pytest.raises(ValueError, match="normalisation"):
        coop.score_vs_max(run, normalisation="max")


def test_report_breaks_the_sweep_down(tmp_path):
    from analysis.report import analyze

    run_dir = start_run(resolve(sweep_scenario(), "s"), tmp_path / "r", quiet=True).run_dir
    analyze(run_dir, tmp_path / "rep")
    for name in (
        "cooperation_by_family.csv",
        "cooperation_by_stage_game.csv",
        "score_vs_game_max.csv",
    ):
        assert (tmp_path / "rep" / name).exists()
    text = (tmp_path / "rep" / "summary.md").read_text()
    assert "Repeated game: stage games" in text and "score vs game max (society)" in text


def test_runs_with_different_samples_stack(tmp_path):
    dirs = []
    for seed in (1, 2):
        data = {**sweep_scenario(sample=3), "seed": seed}
        dirs.append(start_run(resolve(data, "s"), tmp_path / f"r{seed}", quiet=True).run_dir)
    rs = analysis.load_runs(dirs)
    stages = coop.stage_games(rs)
    assert stages.groupby("run", observed=True).size().tolist() == [3, 3]
    by_stage = coop.cooperation_rate(rs, "stage")
    for lab, run in zip(rs.labels, rs.runs, strict=True):
        mine = by_stage[by_stage["run"] == lab].set_index("stage")["rate"]
        assert (
            mine.to_dict()
            == coop.cooperation_rate(run, "stage").set_index("stage")["rate"].to_dict()
        )
    scores = coop.score_vs_max(rs, by="family")
    assert set(scores["run"]) == set(rs.labels)
