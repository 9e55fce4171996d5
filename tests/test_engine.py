"""The game protocol and the one loop: specs, the schema built from the registry, safe
checkpoints, typed records, evolution around the repeated game, the Python front door."""

from __future__ import annotations

import json
import pickle
import sqlite3

import numpy as np
import pytest

import society
from games.protocol import Choice, IllegalAction, Number, Text
from society.backends.fake import FakeBackend
from society.engine import Engine
from society.errors import UserError
from society.records import DecisionRow, EventRow
from society.registry import game_kinds
from society.scenario import resolve
from society.store import DECISION_COLS, EVENT_COLS
from tests.helpers import assert_same_store, ipd_scenario, query, run_cli, write_scenario

# -- action specs --------------------------------------------------------------------------


def test_choice_spec():
    spec = Choice(("J", "F"))
    assert spec.json_schema()["properties"]["choice"]["enum"] == ["J", "F"]
    assert spec.legalize(1) == (1, False)
    assert spec.check(np.int64(0)) == 0
    for bad in (2, -1, True, "J", 0.0):
        with pytest.raises(IllegalAction):
            spec.check(bad)
    with pytest.raises(ValueError):
        Choice(("A", "A"))


def test_legalize_all_checks_many_values_like_legalize():
    spec = Choice(("J", "F"))
    assert spec.legalize_all([0, 1, 1]) == ([0, 1, 1], [False, False, False])
    assert spec.legalize_all([0, np.int64(1)]) == ([0, 1], [False, False])
    with pytest.raises(IllegalAction):
        spec.legalize_all([0, 2])
    assert Number(0, 10).legalize_all([3, 12]) == ([3.0, 10.0], [False, True])


def test_number_spec_bounds_in_schema_and_clamping():
    spec = Number(80, 200, integer=True, field="claim")
    prop = spec.json_schema()["properties"]["claim"]
    assert prop == {"type": "integer", "minimum": 80, "maximum": 200, "enum": [*range(80, 201)]}
    assert spec.check(150) == 150 and spec.check(150.0) == 150
    with pytest.raises(IllegalAction, match="outside"):
        spec.check(201)
    with pytest.raises(IllegalAction, match="whole"):
        spec.check(100.5)
    assert spec.legalize(500) == (200, True)
    assert spec.legalize(float("nan")) == (80, True)
    assert Number(0, 1).legalize(0.25) == (0.25, False)


def test_text_spec():
    spec = Text(max_chars=5)
    assert spec.check("abcdefg") == "abcde"
    with pytest.raises(IllegalAction):
        spec.check(3)


# -- the registry and the schema built from it -------------------------------------------------


def test_every_game_is_registered_once_with_its_parts():
    kinds = game_kinds()
    assert {"repeated_2x2", "donor"} <= set(kinds)
    for kind, reg in kinds.items():
        assert reg.config.model_fields["kind"].default == kind
        assert reg.report, f"{kind} names its report section"


def error(data: dict) -> str:
    with pytest.raises(UserError) as err:
        Engine(resolve(data, "s.yaml"))
    return str(err.value)


def donor(**extra) -> dict:
    return {
        "name": "d",
        "population": {"groups": [{"name": "a", "count": 4, "strategy": "donate_all"}]},
        "game": {"kind": "donor", "rounds": 2},
        **extra,
    }


def test_fields_the_game_ignores_are_errors():
    assert error(donor(network={"kind": "ring"})) == (
        "s.yaml: network: the donor game does not use a network (remove it)"
    )
    assert "matching: the donor game does not use a matching" in error(
        donor(matching={"kind": "random"})
    )
    llm = donor()
    llm["population"]["groups"] = [{"name": "l", "count": 2, "kind": "llm", "max_tokens": 9}]
    assert "population.groups.0.max_tokens: the donor game's LLM agents do not read" in error(llm)
    scripted_temp = ipd_scenario()
    scripted_temp["population"]["groups"][0]["temperature"] = 0.3
    assert "population.groups.0.temperature: unknown field" in error(scripted_temp)


def test_evolving_llm_agents_of_a_game_without_strategy_text_is_an_error():
    data = ipd_scenario(rounds=3)
    data["population"]["groups"].append({"name": "l", "kind": "llm"})
    data["evolution"] = {"generations": 2}
    assert "LLM group 'l' cannot inherit" in error(data)


def test_schema_command_lists_fields_with_descriptions():
    res = run_cli("schema")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "game.trace_depth: int = 3  -- entries of the recipient's trace shown" in out
    assert "# game (kind: repeated_2x2)" in out and "# game (kind: donor)" in out
    assert "population.groups[].temperature" in out
    one = run_cli("schema", "donor").stdout
    assert "# game (kind: repeated_2x2)" not in one
    bad = run_cli("schema", "chess")
    assert bad.returncode == 2 and "unknown game 'chess'" in bad.stderr


# -- typed records -----------------------------------------------------------------------------


def test_rows_are_typed_and_the_store_has_the_resolved_game(tmp_path):
    assert DECISION_COLS == DecisionRow._fields and DECISION_COLS[-1] == "data"
    assert EVENT_COLS == EventRow._fields
    engine = Engine(resolve(ipd_scenario(rounds=2), "t"))
    from society.decide import Decider

    rec = engine.step(Decider({}, 0))
    assert all(isinstance(d, DecisionRow) for d in rec.decisions)
    assert rec.decisions[0].kind == "move" and rec.decisions[0].source == "scripted"
    res = society.run(ipd_scenario(rounds=2), out=tmp_path / "r")
    (meta,) = query(res.run_dir, "SELECT value FROM meta WHERE key = 'resolved_game'")[0]
    game = json.loads(meta)
    assert game["payoffs"] == [[[3, 3], [0, 5]], [[5, 0], [1, 1]]]
    assert game["labels"] == ["J", "F"] and game["actions"] == ["C", "D"]
    (version,) = query(res.run_dir, "SELECT value FROM meta WHERE key = 'format_version'")[0]
    assert version == "2"


def test_donations_store_structured_data_not_json_in_action(tmp_path):
    res = society.run(donor(), out=tmp_path / "d")
    rows = query(res.run_dir, "SELECT action, value, data FROM decisions WHERE kind='donate'")
    assert {a for a, _, _ in rows} == {"give"}
    for _, value, data in rows:
        d = json.loads(data)
        assert d["amount"] == value and 0 <= d["percent"] <= 100


# -- safe checkpoints -------------------------------------------------------------------------


class Boom:
    def __reduce__(self):
        return (print, ("PWNED",))


def test_hostile_checkpoint_payload_is_refused(tmp_path, capfd):
    data = ipd_scenario(rounds=5)
    res = society.run(data, out=tmp_path / "r")
    db = res.run_dir / "run.sqlite"
    conn = sqlite3.connect(db)
    (good,) = conn.execute("SELECT state FROM checkpoints WHERE part = 'state'").fetchone()
    conn.execute("UPDATE meta SET value = 'running' WHERE key = 'status'")
    conn.execute("UPDATE checkpoints SET state = ? WHERE part = 'state'", (pickle.dumps(Boom()),))
    conn.commit()
    conn.close()
    with pytest.raises(UserError, match="checkpoint is a pickle.*not loaded"):
        society.resume(res.run_dir)
    assert "PWNED" not in capfd.readouterr().out
    cli = run_cli("resume", str(res.run_dir))
    assert cli.returncode == 2 and "PWNED" not in cli.stdout
    assert len(cli.stderr.strip().splitlines()) == 1 and "pickle" in cli.stderr
    for payload, needle in [(b"{not json", "not valid JSON"), ('{"a": 1}', "not a society")]:
        conn = sqlite3.connect(db)
        conn.execute("UPDATE checkpoints SET state = ? WHERE part = 'state'", (payload,))
        conn.commit()
        conn.close()
        with pytest.raises(UserError, match=needle):
            society.resume(res.run_dir)
    # Every part is checked, not only the one written each step.
    conn = sqlite3.connect(db)
    conn.execute("UPDATE checkpoints SET state = ? WHERE part = 'state'", (good,))
    conn.execute("UPDATE checkpoints SET state = ? WHERE part = 'slots'", (pickle.dumps(Boom()),))
    conn.commit()
    conn.close()
    with pytest.raises(UserError, match="pickle"):
        society.resume(res.run_dir)


def test_checkpoint_is_versioned_json(tmp_path):
    res = society.run(ipd_scenario(rounds=3), out=tmp_path / "r")
    parts = dict(query(res.run_dir, "SELECT part, state FROM checkpoints"))
    assert set(parts) == {"state", "slots"}
    for text in parts.values():
        doc = json.loads(text)
        assert doc["format"] == "society.checkpoint" and doc["version"] == 1
    assert set(json.loads(parts["state"])["state"]) >= {"rng", "step", "game"}
    # The slots part is written when the slots change, not every step.
    assert query(res.run_dir, "SELECT part, round FROM checkpoints ORDER BY part") == [
        ("slots", 0),
        ("state", 2),
    ]


# -- the Python front door and injected backends ------------------------------------------------


def test_front_door_runs_paths_dicts_and_overrides(tmp_path):
    path = write_scenario(tmp_path / "s.yaml", ipd_scenario())
    a = society.run(path, out=tmp_path / "a", overrides=["game.rounds=4"])
    assert a.steps == 4 and a.status == "finished"
    b = society.run(society.load_scenario(path, ["game.rounds=4"]), out=tmp_path / "b")
    assert_same_store(a.run_dir, b.run_dir)


def test_injected_backend_serves_every_llm_group_and_is_not_closed(tmp_path):
    backend = FakeBackend("fake", responder=lambda r: '{"choice": "J"}')
    closed = []
    backend.close = lambda: closed.append(True)  # type: ignore[method-assign]
    data = ipd_scenario(rounds=2)
    data["population"]["groups"].append({"name": "l", "count": 2, "kind": "llm"})
    res = society.run(data, out=tmp_path / "r", backends=backend)
    llm = query(res.run_dir, "SELECT DISTINCT action, source FROM decisions "
                "WHERE agent_id IN (SELECT agent_id FROM agents WHERE kind = 'llm')")  # fmt: skip
    assert llm == [("C", "llm")] and backend.calls > 0 and not closed


def test_prediction_is_kept_as_decision_data(tmp_path):
    def answer(request):
        field = next(iter(request.json_schema["properties"]))
        return json.dumps({field: "F" if field == "prediction" else "J"})

    data = ipd_scenario(rounds=2, predict_first=True)
    data["population"]["groups"] = [
        {"name": "l", "kind": "llm"},
        {"name": "d", "strategy": "always_defect"},
    ]
    res = society.run(data, out=tmp_path / "r", backends=FakeBackend("f", responder=answer))
    rows = query(res.run_dir, "SELECT action, data FROM decisions WHERE agent_id = 0")
    assert [(a, json.loads(d)) for a, d in rows] == [("C", {"prediction": 1})] * 2


# -- evolution around the repeated game ------------------------------------------------------


def evolving(selection: str, **evo) -> dict:
    data = ipd_scenario(rounds=6, noise=0.05)
    data["evolution"] = {"generations": 4, "selection": selection, "inheritance": "copy", **evo}
    return data


@pytest.mark.parametrize("selection", ["top_fraction", "fitness_proportional", "fermi", "moran"])
def test_a_repeated_2x2_population_evolves(tmp_path, selection):
    res = society.run(evolving(selection, mutation=0.2), out=tmp_path / "r")
    d = res.run_dir
    assert query(d, "SELECT COUNT(DISTINCT generation) FROM rounds") == [(4,)]
    assert res.steps == 4 * 6
    # Every generation records everyone's fitness: the mean payoff per round played.
    fit = query(d, "SELECT generation, agent_id, value, data FROM events WHERE kind = 'fitness'")
    assert len(fit) == 4 * 6
    for g, aid, value, data in fit:
        (total,) = query(d, "SELECT SUM(value) FROM events WHERE kind = 'payoff' AND "
                         "generation = ? AND agent_id = ?", g, aid)[0]  # fmt: skip
        assert value == pytest.approx(total / json.loads(data)["rounds"])
    # Newcomers carry their parent and the policy they copied (or mutated to).
    born = query(d, "SELECT generation, parent_id, strategy FROM agents WHERE generation > 0")
    assert all(parent is not None for _, parent, _ in born)
    if selection != "moran":  # one birth-death event a generation may keep the same policy
        assert born


def test_evolving_population_resumes_identically(tmp_path, monkeypatch):
    from tests.test_resume import interrupt_resume_compare

    for cut in (5, 6, 13):  # mid-generation, at a generation's end, in a later one
        interrupt_resume_compare(
            evolving("fermi", mutation=0.1), cut, tmp_path / str(cut), monkeypatch
        )
