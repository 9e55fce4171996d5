"""The vectorised scripted engine (`society.vector`): the generic engine's store, row for
row; resume after an interruption or a kill; which runs qualify; axelrod's outcomes."""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

import society.vector as vector
from agents.strategies import STRATEGIES, make_strategy
from society.engine import Engine
from society.errors import UserError
from society.runner import resume_run, start_run
from society.scenario import resolve
from tests.helpers import ROOT, assert_same_store, run_cli, society_cmd, write_scenario
from tests.test_resume import committed_rounds, interrupt_resume_compare, kill_after

EVERY = [
    {"name": "tft", "count": 2, "strategy": "tit_for_tat"},
    {"name": "stft", "count": 1, "strategy": "suspicious_tft"},
    {"name": "tf2t", "count": 1, "strategy": "tit_for_two_tats"},
    {"name": "grim", "count": 1, "strategy": "grim_trigger"},
    {"name": "wsls", "count": 1, "strategy": "win_stay_lose_shift"},
    {"name": "gtft", "count": 1, "strategy": "generous_tft"},  # generosity from the game
    {"name": "gtft3", "count": 1, "strategy": {"name": "generous_tft", "generosity": 0.3}},
    {"name": "rnd", "count": 1, "strategy": {"name": "random", "p": 0.4}},
    {"name": "alt", "count": 1, "strategy": "alternate"},
    {"name": "altb", "count": 1, "strategy": "alternate_b"},
    {"name": "once", "count": 1, "strategy": "defect_once"},
    {"name": "allc", "count": 1, "strategy": "always_cooperate"},
    {"name": "alld", "count": 1, "strategy": "always_defect"},
    {"name": "m1", "count": 1, "strategy": {"name": "memory_one", "p_cc": 0.9, "p_dd": 0.2}},
    {"name": "m1d", "count": 1, "strategy": {"name": "memory_one", "p_first": 0, "p_dc": 0}},
]


def every_strategy(**extra: Any) -> dict[str, Any]:
    game = {"kind": "repeated_2x2", "rounds": 12, **extra.pop("game", {})}
    groups = copy.deepcopy(EVERY)
    return {"name": "every", "seed": 4, "population": {"groups": groups}, "game": game, **extra}


def tournament_yaml() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "scenarios" / "ipd_tournament.yaml").read_text())
    data["game"]["rounds"] = 40
    return data


SCENARIOS = {
    "ipd_tournament.yaml": tournament_yaml,
    "small_world_noise": lambda: every_strategy(
        network={"kind": "small_world", "k": 4, "p": 0.3}, game={"noise": 0.1}
    ),
    "continuation_self_play": lambda: every_strategy(
        matching={"kind": "round_robin", "self_play": True}, game={"continuation": 0.85}
    ),
    # An asymmetric stage game: generous tit for tat's generosity differs per side.
    "asymmetric_ring": lambda: every_strategy(
        network={"kind": "ring", "k": 4},
        game={"payoffs": [[[3, 2], [0, 6]], [[5, 0], [1, 1]]], "noise": 0.05},
    ),
    "battle_of_the_sexes": lambda: every_strategy(game={"preset": "battle_of_the_sexes"}),
}


def with_engine(data: dict[str, Any], engine: str) -> dict[str, Any]:
    data = copy.deepcopy(data)
    data.setdefault("run", {})["engine"] = engine
    return data


def checkpoints(run_dir: Path) -> list[tuple]:
    conn = sqlite3.connect(run_dir / "run.sqlite")
    try:
        return conn.execute("SELECT part, round, state FROM checkpoints ORDER BY part").fetchall()
    finally:
        conn.close()


def resolved_game(run_dir: Path) -> str:
    conn = sqlite3.connect(run_dir / "run.sqlite")
    try:
        return conn.execute("SELECT value FROM meta WHERE key = 'resolved_game'").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_store_as_the_generic_engine(tmp_path, name):
    """Every row of every table (timings aside), the checkpoints and the resolved game are
    the generic engine's, random strategies and noise included (the same draws)."""
    data = SCENARIOS[name]()
    generic = resolve(with_engine(data, "generic"), "g")
    vec = resolve(with_engine(data, "vector"), "v")
    assert type(vector.make_engine(generic)) is Engine
    assert type(vector.make_engine(vec)) is vector.VectorEngine
    start_run(generic, tmp_path / "g", quiet=True)
    res = start_run(vec, tmp_path / "v", quiet=True)
    assert res.decisions > 0
    assert_same_store(tmp_path / "g", tmp_path / "v")
    assert checkpoints(tmp_path / "g") == checkpoints(tmp_path / "v")
    assert resolved_game(tmp_path / "g") == resolved_game(tmp_path / "v")


def test_auto_picks_the_vector_engine_only_when_it_qualifies():
    assert type(vector.make_engine(resolve(tournament_yaml(), "t"))) is vector.VectorEngine
    data = tournament_yaml()
    data["matching"] = {"kind": "random"}
    assert type(vector.make_engine(resolve(data, "t"))) is Engine


def _llm_group(d: dict[str, Any]) -> None:
    d["population"]["groups"].append({"name": "llm", "kind": "llm", "backend": {"kind": "fake"}})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_llm_group, "is an LLM group"),
        pytest.param(
            lambda d: d["population"]["groups"].append(
                {"name": "ax", "strategy": "axelrod:Tit For Tat"}
            ),
            "not vectorisable",
            marks=[pytest.mark.axelrod, pytest.mark.slow],  # the generic engine imports axelrod
        ),
        (lambda d: d.update(matching={"kind": "random"}), "matching.kind is random"),
        (lambda d: d.update(evolution={"generations": 2}), "evolution.generations"),
        (lambda d: d["game"].update(shuffle_options=True), "shuffle_options"),
        (
            lambda d: d["game"].update(game_set=["prisoners_dilemma", "stag_hunt"]),
            "game_set",
        ),
    ],
    ids=["llm", "axelrod", "random_matching", "evolution", "shuffle", "game_set"],
)
def test_what_does_not_qualify(change, reason):
    data = every_strategy()
    change(data)
    scenario = resolve(data, "s")
    why = vector.disqualified(scenario)
    assert why is not None and reason in why
    assert type(vector.make_engine(scenario)) is Engine  # auto: the generic engine
    with pytest.raises(UserError, match=r"^run\.engine: vector needs .*" + reason):
        vector.make_engine(resolve(with_engine(data, "vector"), "s"))


def test_other_games_do_not_qualify():
    data = yaml.safe_load((ROOT / "scenarios" / "donor_game_scripted.yaml").read_text())
    assert "not repeated_2x2" in vector.disqualified(resolve(data, "d"))


def test_every_registered_strategy_but_none_is_vectorised():
    """A new strategy class fails here until it is compiled (or known not to be)."""
    payoffs = (((3, 3), (0, 5)), ((5, 0), (1, 1)))
    for name in STRATEGIES:
        assert vector.compile_strategy(make_strategy(name), payoffs) is not None, name


def test_vector_on_a_run_that_does_not_qualify_is_one_line_exit_2(tmp_path):
    data = every_strategy(matching={"kind": "random"}, run={"engine": "vector"})
    path = write_scenario(tmp_path / "s.yaml", data)
    out = run_cli("run", str(path), "--out", str(tmp_path / "r"))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "run.engine: vector needs" in lines[0]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "r" / "run.sqlite").exists()


@pytest.mark.parametrize("cut", [1, 5])
def test_interrupted_run_resumes_to_the_generic_store(tmp_path, monkeypatch, cut):
    """Stopped after `cut` committed steps and resumed by the vector engine: the store of
    an uninterrupted generic run."""
    data = with_engine(SCENARIOS["continuation_self_play"](), "vector")
    interrupt_resume_compare(data, cut, tmp_path, monkeypatch)  # both runs vectorised
    start_run(resolve(with_engine(data, "generic"), "g"), tmp_path / "generic", quiet=True)
    assert_same_store(tmp_path / "cut", tmp_path / "generic")


def test_generic_engine_resumes_a_vector_run(tmp_path, monkeypatch):
    """The checkpoints are the generic engine's format: it continues a vectorised run."""
    import society.runner as runner

    data = SCENARIOS["small_world_noise"]()
    real = runner.RunStore.commit_round
    calls = {"n": 0}

    def flaky(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    monkeypatch.setattr(runner.RunStore, "commit_round", flaky)
    with pytest.raises(KeyboardInterrupt):
        start_run(resolve(data, "s"), tmp_path / "cut", quiet=True)  # auto: vectorised
    monkeypatch.setattr(runner.RunStore, "commit_round", real)
    monkeypatch.setattr(vector, "chosen", lambda scenario: False)  # resume: generic engine
    resume_run(tmp_path / "cut", quiet=True)
    monkeypatch.undo()
    start_run(resolve(data, "s"), tmp_path / "full", quiet=True)
    assert_same_store(tmp_path / "cut", tmp_path / "full")
    # The last state is the same; part 'slots' is rewritten by a generic resume (its round).
    assert checkpoints(tmp_path / "cut")[1] == checkpoints(tmp_path / "full")[1]


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_store(tmp_path):
    """A `society run` killed (SIGKILL) mid-run, then `society resume`: the same store."""
    data = every_strategy(
        network={"kind": "small_world", "k": 6, "p": 0.2}, game={"rounds": 300, "noise": 0.05}
    )
    data["population"]["groups"] = [{**g, "count": 20} for g in EVERY]
    path = write_scenario(tmp_path / "s.yaml", with_engine(data, "vector"))
    kill_after(society_cmd("run", str(path), "--out", str(tmp_path / "cut")), tmp_path / "cut", 20)
    done = committed_rounds(tmp_path / "cut")
    assert 20 <= done < 300
    out = run_cli("resume", str(tmp_path / "cut"))
    assert out.returncode == 0, out.stderr
    start_run(resolve(with_engine(data, "generic"), "g"), tmp_path / "full", quiet=True)
    assert_same_store(tmp_path / "cut", tmp_path / "full")


@pytest.mark.axelrod
def test_match_outcomes_agree_with_axelrod(tmp_path):
    """Each deterministic pair's moves, as the vector engine plays them, are axelrod's."""
    axl = pytest.importorskip("axelrod")
    from bench.tournament import PAIRS

    turns = 30
    groups = [{"name": name, "count": 1, "strategy": name} for name, _ in PAIRS]
    data = {
        "name": "axl",
        "seed": 0,
        "population": {"groups": groups},
        "matching": {"kind": "round_robin", "self_play": True},
        "game": {"kind": "repeated_2x2", "preset": "prisoners_dilemma_classic", "rounds": turns},
        "run": {"engine": "vector"},
    }
    start_run(resolve(data, "a"), tmp_path / "r", quiet=True)
    conn = sqlite3.connect(tmp_path / "r" / "run.sqlite")
    rows = conn.execute(
        "SELECT round, agent_id, partner_id, action FROM events ORDER BY id"
    ).fetchall()
    conn.close()
    ours: dict[tuple[int, int], list[str]] = {}
    for _, a, b, action in rows:  # self-play (a, a): row player's event, then column's
        ours.setdefault((a, b), []).append(action)
    game = axl.Game(r=3, s=0, t=5, p=1)
    for i, (_, cls_i) in enumerate(PAIRS):
        for j, (_, cls_j) in enumerate(PAIRS):
            if j < i:
                continue
            match = axl.Match(
                (getattr(axl, cls_i)(), getattr(axl, cls_j)()), turns=turns, game=game
            )
            played = match.play()
            mine = [str(a) for a, _ in played]
            theirs = [str(b) for _, b in played]
            if i == j:
                seen = ours[(i, i)]
                assert seen[0::2] == mine and seen[1::2] == theirs, (cls_i, cls_j)
            else:
                assert ours[(i, j)] == mine, (cls_i, cls_j)
                assert ours[(j, i)] == theirs, (cls_i, cls_j)
