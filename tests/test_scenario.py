"""Scenario loading: schema errors name the file and field; overrides; flags."""

from __future__ import annotations

import pytest

from society.errors import UserError
from society.scenario import apply_override, load_scenario, resolve
from tests.helpers import ipd_scenario, write_scenario


def load(tmp_path, data, overrides=None, **kw):
    return load_scenario(write_scenario(tmp_path / "s.yaml", data), overrides, **kw)


def error_of(tmp_path, data, overrides=None, **kw) -> str:
    with pytest.raises(UserError) as info:
        load(tmp_path, data, overrides, **kw)
    msg = str(info.value)
    assert "\n" not in msg, "errors are one line"
    return msg


def test_valid_scenario_loads(tmp_path):
    sc = load(tmp_path, ipd_scenario())
    assert sc.population.size == 6
    assert sc.game.kind == "repeated_2x2" and sc.game.rounds == 20


def test_unknown_key_is_an_error_naming_file_and_path(tmp_path):
    data = ipd_scenario()
    data["game"]["roundz"] = 3
    msg = error_of(tmp_path, data)
    assert msg.startswith(str(tmp_path / "s.yaml"))
    assert "game.roundz" in msg and "unknown field" in msg


def test_unknown_top_level_key(tmp_path):
    data = ipd_scenario()
    data["populaton"] = {}
    assert "populaton: unknown field" in error_of(tmp_path, data)


def test_wrong_type_names_field_and_value(tmp_path):
    data = ipd_scenario()
    data["population"]["groups"][0]["count"] = "two"
    msg = error_of(tmp_path, data)
    assert "population.groups.0.count" in msg and "'two'" in msg


def test_out_of_range(tmp_path):
    msg = error_of(tmp_path, ipd_scenario(noise=1.5))
    assert "game.noise" in msg and "less than or equal to 1" in msg


def test_missing_required(tmp_path):
    data = ipd_scenario()
    del data["name"]
    assert "name: required field is missing" in error_of(tmp_path, data)


def test_unknown_game_kind(tmp_path):
    data = ipd_scenario()
    data["game"]["kind"] = "poker"
    assert "game" in error_of(tmp_path, data)


def test_scripted_group_needs_strategy(tmp_path):
    data = ipd_scenario()
    del data["population"]["groups"][0]["strategy"]
    assert "population.groups.0.strategy: required field is missing" in error_of(tmp_path, data)


def test_duplicate_group_names(tmp_path):
    data = ipd_scenario()
    data["population"]["groups"][1]["name"] = "tft"
    assert "unique" in error_of(tmp_path, data)


def test_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\npopulation: [\n")
    with pytest.raises(UserError, match=r"bad.yaml: invalid YAML at line"):
        load_scenario(path)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="cannot read scenario file"):
        load_scenario(tmp_path / "nope.yaml")


def test_set_overrides_nested_fields(tmp_path):
    sc = load(
        tmp_path,
        ipd_scenario(),
        ["game.rounds=50", "game.noise=0.05", "population.groups.1.count=3",
         "population.groups.rnd.strategy.p=0.2", "network.kind=ring"],
    )  # fmt: skip
    assert sc.game.rounds == 50 and sc.game.noise == 0.05
    assert sc.population.groups[1].count == 3
    assert sc.population.groups[2].strategy == {"name": "random", "p": 0.2}
    assert sc.network.kind == "ring"


def test_set_errors(tmp_path):
    assert "expected key.path=value" in error_of(tmp_path, ipd_scenario(), ["game.rounds"])
    assert "no item named 'zzz'" in error_of(
        tmp_path, ipd_scenario(), ["population.groups.zzz.count=1"]
    )
    assert "index out of range" in error_of(
        tmp_path, ipd_scenario(), ["population.groups.9.count=1"]
    )
    msg = error_of(tmp_path, ipd_scenario(), ["game.rounds=many"])
    assert "game.rounds" in msg


def test_seed_backend_model_flags_reach_every_llm_group(tmp_path):
    data = ipd_scenario()
    data["population"]["groups"].append({"name": "llm", "count": 1, "kind": "llm"})
    data["population"]["groups"].append(
        {"name": "big", "count": 1, "kind": "llm", "backend": {"kind": "llamacpp", "model": "a"}}
    )
    sc = load(tmp_path, data, seed=99, backend="openai", model="qwen")
    assert sc.seed == 99
    for g in sc.population.groups[-2:]:
        cfg = sc.group_backend(g)
        assert (cfg.kind, cfg.model) == ("openai", "qwen")


def test_replay_run_reaches_groups_with_their_own_backend(tmp_path):
    data = ipd_scenario()
    data["population"]["groups"].append(
        {"name": "big", "count": 1, "kind": "llm", "backend": {"kind": "openai", "model": "q"}}
    )
    sc = load(tmp_path, data, ["backend.run=runs/earlier"], backend="replay")
    cfg = sc.group_backend(sc.population.groups[-1])
    assert (cfg.kind, cfg.run, cfg.model) == ("replay", "runs/earlier", "q")


def test_apply_override_parses_yaml_values():
    data = {"a": {"b": 1}}
    apply_override(data, "a.c=[1, 2]")
    apply_override(data, "a.d=true")
    apply_override(data, "x.y=hello")
    assert data == {"a": {"b": 1, "c": [1, 2], "d": True}, "x": {"y": "hello"}}


def test_resolved_scenario_round_trips():
    sc = resolve(ipd_scenario(), "mem")
    import yaml

    again = resolve(yaml.safe_load(sc.to_yaml()), "mem")
    assert again == sc
