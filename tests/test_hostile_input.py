"""Each hostile input of issue 14, as a real `society run`: exit 2, one stderr line, no
traceback, no run directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, run_cli

IPD = ROOT / "scenarios" / "ipd_tournament.yaml"
DONOR = ROOT / "scenarios" / "donor_game_scripted.yaml"


def _refused(tmp_path: Path, *args: str, expect: str) -> str:
    out = tmp_path / "run"
    proc = run_cli("run", *args, "--out", str(out), "-q", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expect in lines[0], lines[0]
    assert not out.exists()
    return lines[0]


def _ipd(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(IPD.read_text())
    data.update(changes)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_binary_file(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    _refused(tmp_path, str(path), expect="not UTF-8 text")


def test_5000_nested_brackets(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 5000 + "]" * 5000)
    _refused(tmp_path, str(path), expect="nested deeper than")


def test_negative_seed_in_the_file(tmp_path):
    _refused(tmp_path, str(_ipd(tmp_path, seed=-5)), expect="seed")


def test_negative_seed_flag(tmp_path):
    _refused(tmp_path, str(IPD), "--seed", "-5", expect="seed: Input should be greater")


def test_seed_beyond_64_bits(tmp_path):
    _refused(tmp_path, str(IPD), "--seed", str(2**64), expect="seed")


def test_population_as_a_string(tmp_path):
    _refused(tmp_path, str(_ipd(tmp_path, population="ten agents")), expect="population")


def test_population_as_a_string_with_a_model_flag(tmp_path):
    # --model walks the groups: a string population once raised AttributeError here.
    path = _ipd(tmp_path, population="ten agents")
    _refused(tmp_path, str(path), "--model", "x", expect="population")


def test_group_count_of_10_to_the_12(tmp_path):
    line = _refused(
        tmp_path, str(IPD), "--set", "population.groups.0.count=1000000000000",
        expect="too large to run",
    )  # fmt: skip
    assert "--allow-large" in line and "decisions" in line


def test_huge_games_per_generation(tmp_path):
    line = _refused(
        tmp_path, str(DONOR), "--set", "game.games_per_generation=1000000000",
        expect="too large to run",
    )  # fmt: skip
    assert "--allow-large" in line


def test_alias_bomb(tmp_path):
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for k in range(1, 9):
        prev, cur = chr(ord("a") + k - 1), chr(ord("a") + k)
        lines.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    _refused(tmp_path, str(path), expect="aliases are expanded")


def test_python_object_tag(tmp_path):
    path = tmp_path / "tag.yaml"
    path.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    _refused(tmp_path, str(path), expect="could not determine a constructor")


def test_a_5000_digit_number(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(IPD.read_text().replace("seed: 1", "seed: " + "9" * 5000))
    _refused(tmp_path, str(path), expect="invalid YAML value")


@pytest.mark.parametrize("value", [".inf", ".nan", "1e400"])
def test_infinite_and_nan_numbers(tmp_path, value):
    _refused(tmp_path, str(IPD), "--set", f"game.noise={value}", expect="game.noise")


def test_bad_flag_is_one_line(tmp_path):
    _refused(tmp_path, str(IPD), "--seed", "abc", expect="invalid int value")


def test_bad_set_path(tmp_path):
    _refused(tmp_path, str(IPD), "--set", "game.rounds.x=1", expect="--set game.rounds")


def test_name_that_escapes_the_output_directory(tmp_path):
    _refused(tmp_path, str(_ipd(tmp_path, name="../../etc")), expect="name")
