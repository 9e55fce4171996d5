"""Fuzzing the scenario front door: every case ends in exit 0 or one line with exit 2.

Cases are mutations of every shipped scenario (wrong types, out-of-range and absurd
values, missing and unknown keys, broken bytes, deep nesting, the same through --set and
--seed) and hypothesis-generated YAML and bytes. Most run in-process through
`society.cli.main` with stdout and stderr captured (an exception escaping main fails the
case); a handful run as real `society` processes. Cases that validate stop at
``--dry-run``, so no case runs unbounded, and each has a time limit (SIGALRM).

Sweep files (hand-made ones and mutations of the shipped sweep and of small valid ones:
wrong types, non-list grid values, unknown field paths, grid and points, empty and huge
grids, broken bytes, deep nesting, absent base scenarios, bad values inside points) go
through `society sweep --workers 1`, which has no dry run: the valid ones run on tiny
bases, to exit 0 with every point finished.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from society.cli import main
from tests.helpers import ROOT, run_cli, write_scenario

SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
CASE_LIMIT_S = 10.0
MUTATIONS_PER_SCENARIO = 13  # x every shipped scenario, + --set cases, + hypothesis cases
ABSURD: list[Any] = [
    -1, 0, 1, -5, 0.5, 1.5, 10**12, 10**30, 2**63, -(2**63), 1e308, -1e308,
    float("nan"), float("inf"), "", "x" * 2000, "7", [], {}, None, True, [1, [2, [3]]],
    {"kind": "nope"}, {"name": "x", "count": 2}, "!!python/object:os.system",
]  # fmt: skip


class CaseTimeout(BaseException):  # noqa: N818 - not an Exception: `main` must not catch it
    """A case ran past its time limit."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def _alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"case ran past {seconds} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _run_main(argv: list[str]) -> tuple[int, str, str]:
    """`society ARGV` in-process: exit status, stdout, stderr (argparse's exit included)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse: a bad flag
            rc = exc.code if isinstance(exc.code, int) else 2
    return rc, out.getvalue(), err.getvalue()


def check_case(argv: list[str], out_dir: Path, label: str) -> int:
    """Run one case and check the contract; returns its exit status."""
    t0 = time.perf_counter()
    try:
        with _time_limit(CASE_LIMIT_S):
            rc, out, err = _run_main([*argv, "--dry-run", "--out", str(out_dir)])
    except CaseTimeout:
        pytest.fail(f"{label}: ran past {CASE_LIMIT_S} s")
    elapsed = time.perf_counter() - t0
    assert elapsed < CASE_LIMIT_S, f"{label}: {elapsed:.1f} s"
    assert not out_dir.exists(), f"{label}: --dry-run created {out_dir}"
    assert "Traceback" not in err, f"{label}: {err}"
    if rc == 0:
        assert "estimate" in out, f"{label}: exit 0 without an estimate: {out!r}"
        return rc
    assert_one_line(rc, err, label)
    return rc


def assert_one_line(rc: int, err: str, label: str) -> None:
    """Exit 2 and one line on stderr, society's own (not an unexpected exception's)."""
    assert rc == 2, f"{label}: exit {rc}: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"{label}: {len(lines)} stderr lines: {err!r}"
    assert lines[0].startswith("society"), f"{label}: {lines[0]!r}"
    assert "unexpected error" not in lines[0], f"{label}: {lines[0]}"


# -- mutations of the shipped scenarios ------------------------------------------------------
def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a scenario's data (mapping keys and list indices)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


def mutate(data: dict[str, Any], rng: random.Random) -> tuple[str, bytes | None, Any]:
    """One mutation of a scenario: (what was done, raw bytes or None, the mutated data)."""
    data = yaml.safe_load(yaml.safe_dump(data))  # a deep copy
    paths = _paths(data)
    op = rng.choice(
        ["value", "value", "value", "value", "delete", "unknown", "deep", "bytes", "swap"]
    )
    path = rng.choice(paths)
    parent, key = _get(data, path[:-1]), path[-1]
    if op == "value":
        parent[key] = rng.choice(ABSURD)
    elif op == "delete":
        del parent[key]
    elif op == "unknown":
        target = _get(data, path[:-1]) if isinstance(parent, dict) else data
        target[f"bogus_{rng.randrange(100)}"] = rng.choice(ABSURD)
    elif op == "deep":  # written as text: PyYAML's own dumper recurses on deep data
        parent[key] = "__DEEP__"
        depth = rng.choice([10, 60, 70, 500, 5000])
        text = yaml.safe_dump(data, sort_keys=False).replace(
            "__DEEP__", "[" * depth + "1" + "]" * depth
        )
        return f"deep{depth}:{'.'.join(map(str, path))}", text.encode(), None
    elif op == "swap":  # a value of the right shape moved to the wrong place
        other = _get(data, rng.choice(paths))
        parent[key] = yaml.safe_load(yaml.safe_dump(other))
    else:
        raw = bytearray(yaml.safe_dump(data, sort_keys=False).encode())
        how = rng.choice(["flip", "truncate", "insert", "nul"])
        pos = rng.randrange(len(raw))
        if how == "flip":
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif how == "truncate":
            del raw[pos:]
        elif how == "insert":
            raw[pos:pos] = rng.choice([b"\xff\xfe", b": : :", b"\t", b"&a *a", b"[{", b"'"])
        else:
            raw[pos:pos] = b"\x00"
        return f"bytes:{how}@{pos}", bytes(raw), None
    return f"{op}:{'.'.join(map(str, path))}", None, data


def _write(path: Path, raw: bytes | None, data: Any) -> None:
    if raw is None:
        raw = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
    path.write_bytes(raw)


@pytest.fixture(scope="module")
def counts() -> Iterator[dict[str, int]]:
    tally = {"cases": 0, "exit 0": 0, "exit 2": 0, "sweep cases": 0}
    yield tally
    print(f"\nfuzz: {tally}")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_mutations_of_shipped_scenarios(scenario, tmp_path, counts):
    base = yaml.safe_load(scenario.read_text())
    assert check_case(["run", str(scenario)], tmp_path / "run", scenario.stem) == 0
    rng = random.Random(f"fuzz-{scenario.stem}")
    for k in range(MUTATIONS_PER_SCENARIO):
        what, raw, data = mutate(base, rng)
        path = tmp_path / f"case{k}.yaml"
        _write(path, raw, data)
        rc = check_case(["run", str(path)], tmp_path / "run", f"{scenario.stem} {what}")
        counts["cases"] += 1
        counts[f"exit {rc}"] += 1


SET_VALUES = ["-1", "0", "1e999", "10**12", "1000000000000", "[", "{a: 1}", "[[[[[[]]]]]]", "",
              "null", "true", "x", "!!python/object:os.system {}", "'", "0.5", "-0.5", "*a"]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_set_and_seed_flags(scenario, tmp_path, counts):
    base = yaml.safe_load(scenario.read_text())
    rng = random.Random(f"set-{scenario.stem}")
    paths = [".".join(map(str, p)) for p in _paths(base)]
    cases = [["--seed", rng.choice(["-5", "0", str(2**63), str(2**63 - 1), "x", "1e3"])]]
    cases += [["--set", rng.choice(["", "=", "a..b=1", "seed", "game.kind=nope"])]]
    cases += [["--set", f"{rng.choice(paths)}={rng.choice(SET_VALUES)}"] for _ in range(5)]
    cases += [["--set", f"{rng.choice(paths)}.x.y=1"], ["--set", "population.groups.99.count=1"]]
    for args in cases:
        rc = check_case(["run", str(scenario), *args], tmp_path / "run", f"{scenario.stem} {args}")
        counts["cases"] += 1
        counts[f"exit {rc}"] += 1


# -- generated ------------------------------------------------------------------------------
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(["repeated_2x2", "donor", "llm", "scripted", "tit_for_tat", "fake"]),
)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    ["name", "seed", "population", "game", "evolution", "network", "matching", "backend",
     "prompts", "output", "run", "description", "groups", "kind", "count", "strategy", "x"]
)  # fmt: skip
_scenario_like = st.fixed_dictionaries(
    {
        "name": st.one_of(st.just("fuzz"), _scalars),
        "population": st.one_of(
            st.fixed_dictionaries(
                {"groups": st.lists(st.dictionaries(_keys, _values, max_size=5), max_size=3)}
            ),
            _values,
        ),
        "game": st.one_of(st.dictionaries(_keys, _values, max_size=5), _values),
    },
    optional={"seed": _values, "evolution": _values, "backend": _values, "run": _values},
)


@settings(
    max_examples=200, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(data=_scenario_like)
def test_generated_scenarios(data, tmp_path, counts):
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    rc = check_case(["run", str(path)], tmp_path / "run", f"generated {data!r:.200}")
    counts["cases"] += 1
    counts[f"exit {rc}"] += 1


@settings(
    max_examples=100, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(raw=st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_generated_bytes(raw, tmp_path, counts):
    path = tmp_path / "bytes.yaml"
    path.write_bytes(raw)
    rc = check_case(["run", str(path)], tmp_path / "run", f"bytes {raw[:60]!r}")
    counts["cases"] += 1
    counts[f"exit {rc}"] += 1


# -- sweep files ----------------------------------------------------------------------------
# `society sweep` has no dry run: a sweep file that validates runs every point, so the bases
# are tiny (a few decisions a point) and each case has the same time limit.
SHIPPED_SWEEP = ROOT / "scenarios" / "sweeps" / "ipd_seeds.yaml"
SWEEP_MUTATIONS = 110  # of the shipped sweep and of small valid ones, + the hand-made cases
MIN_SWEEP_CASES = 150
REFUSE_QUICKLY_S = 3.0  # a grid of 10^9 points is counted, never expanded
TINY: dict[str, Any] = {
    "name": "fuzz-tiny", "seed": 1,
    "population": {"groups": [
        {"name": "tft", "count": 1, "strategy": "tit_for_tat"},
        {"name": "rnd", "count": 1, "strategy": {"name": "random", "p": 0.5}},
    ]},
    "game": {"kind": "repeated_2x2", "rounds": 3},
}  # fmt: skip


def check_sweep_case(sweep: Path, out_dir: Path, label: str) -> tuple[int, str, float]:
    """`society sweep SWEEP --workers 1` in-process: exit 0 with every point finished, or
    exit 2 and one line with nothing created. Returns (exit, stderr, seconds)."""
    argv = ["sweep", str(sweep), "--out", str(out_dir), "--workers", "1", "--quiet"]
    t0 = time.perf_counter()
    try:
        with _time_limit(CASE_LIMIT_S):
            rc, out, err = _run_main(argv)
    except CaseTimeout:
        pytest.fail(f"{label}: ran past {CASE_LIMIT_S} s")
    elapsed = time.perf_counter() - t0
    assert elapsed < CASE_LIMIT_S, f"{label}: {elapsed:.1f} s"
    assert "Traceback" not in err, f"{label}: {err}"
    if rc == 0:
        index = json.loads((out_dir / "index.json").read_text())
        statuses = [p["status"] for p in index["points"]]
        assert statuses and set(statuses) == {"finished"}, f"{label}: {statuses}"
        assert " 0 not finished" in out, f"{label}: {out!r}"
        shutil.rmtree(out_dir)
        return rc, err, elapsed
    assert_one_line(rc, err, label)
    assert not out_dir.exists(), f"{label}: refused, yet {out_dir} was created: {err}"
    return rc, err, elapsed


def _huge_grid(points_log10: int) -> dict[str, list[int]]:
    """A grid of 10^points_log10 points: that many keys of ten values each."""
    return {f"game.k{i}": list(range(10)) for i in range(points_log10)}


def hand_made_sweeps(tmp: Path) -> list[tuple[str, Any]]:
    """(label, data or raw bytes) of small hand-made sweep files, most of them wrong; the
    scenario files they name are written into `tmp`."""
    tiny = write_scenario(tmp / "tiny.yaml", TINY)
    (tmp / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01" * 50)
    (tmp / "invalid.yaml").write_text("name: bad\npopulation: 3\ngame: {kind: nope}\n")
    (tmp / "deep.yaml").write_text("name: d\ngame: " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp / "empty.yaml").write_text("")
    (tmp / "a_sweep.yaml").write_text(f"scenario: {tiny}\ngrid: {{seed: [1]}}\n")
    sc = str(tiny)
    grid = {"seed": [1, 2]}
    bad: list[tuple[str, Any]] = [
        ("valid grid", {"scenario": sc, "grid": grid}),
        ("valid points", {"scenario": sc, "points": [{"seed": 1}, {"seed": 2, "game.rounds": 2}]}),
        ("valid set", {"scenario": sc, "set": {"game.rounds": 1}, "grid": {"game.noise": [0, 0.1]}}),
        ("valid empty point", {"scenario": sc, "name": "n", "points": [{}]}),
        ("valid group by name", {"scenario": sc, "grid": {"population.groups.tft.count": [1, 2]}}),
        ("valid fork_at", {"scenario": sc, "fork_at": 1, "grid": {"game.noise": [0.0, 0.1]}}),
        ("valid relative path", {"scenario": "tiny.yaml", "points": [{"seed": 3}]}),
        ("shipped, moved away from its base", yaml.safe_load(SHIPPED_SWEEP.read_text())),
        ("scenario: int", {"scenario": 5, "grid": grid}),
        ("scenario: list", {"scenario": [sc], "grid": grid}),
        ("scenario: mapping", {"scenario": {"path": sc}, "grid": grid}),
        ("scenario: empty", {"scenario": "", "grid": grid}),
        ("scenario: null", {"scenario": None, "grid": grid}),
        ("scenario: missing", {"grid": grid}),
        ("scenario: absent file", {"scenario": str(tmp / "nowhere.yaml"), "grid": grid}),
        ("scenario: a directory", {"scenario": str(tmp), "grid": grid}),
        ("scenario: binary", {"scenario": "binary.yaml", "grid": grid}),
        ("scenario: invalid", {"scenario": "invalid.yaml", "grid": grid}),
        ("scenario: deep", {"scenario": "deep.yaml", "grid": grid}),
        ("scenario: empty file", {"scenario": "empty.yaml", "grid": grid}),
        ("scenario: a sweep file", {"scenario": "a_sweep.yaml", "grid": grid}),
        ("scenario: NUL", {"scenario": "tiny\x00.yaml", "grid": grid}),
        ("scenario: long name", {"scenario": "x" * 5000, "grid": grid}),
        ("grid: scalar value", {"scenario": sc, "grid": {"seed": 3}}),
        ("grid: string value", {"scenario": sc, "grid": {"seed": "1, 2"}}),
        ("grid: mapping value", {"scenario": sc, "grid": {"seed": {"a": 1}}}),
        ("grid: null value", {"scenario": sc, "grid": {"seed": None}}),
        ("grid: a list", {"scenario": sc, "grid": [1, 2]}),
        ("grid: a string", {"scenario": sc, "grid": "seed"}),
        ("grid: empty", {"scenario": sc, "grid": {}}),
        ("grid: empty list", {"scenario": sc, "grid": {"seed": []}}),
        ("grid: one empty list", {"scenario": sc, "grid": {"seed": [1], "game.rounds": []}}),
        ("grid: int key", {"scenario": sc, "grid": {1: [1]}}),
        ("grid: empty key", {"scenario": sc, "grid": {"": [1]}}),
        ("grid: dots key", {"scenario": sc, "grid": {"..": [1]}}),
        ("grid: unknown path", {"scenario": sc, "grid": {"game.nosuch": [1]}}),
        ("grid: unknown top key", {"scenario": sc, "grid": {"nosuch": [1]}}),
        ("grid: path past a value", {"scenario": sc, "grid": {"game.rounds.x.y": [1]}}),
        ("grid: group index", {"scenario": sc, "grid": {"population.groups.99.count": [1]}}),
        ("grid: bad values", {"scenario": sc, "grid": {"seed": [1, "x", None]}}),
        ("grid: nested lists", {"scenario": sc, "grid": {"seed": [[1], [2]]}}),
        ("grid: negative seed", {"scenario": sc, "grid": {"seed": [-5]}}),
        ("grid: absurd rounds", {"scenario": sc, "grid": {"game.rounds": [3, 10**12]}}),
        ("grid: absurd count", {"scenario": sc, "grid": {"population.groups.0.count": [10**12]}}),
        ("grid: zero count", {"scenario": sc, "grid": {"population.groups.0.count": [0]}}),
        ("grid: nan noise", {"scenario": sc, "grid": {"game.noise": [float("nan")]}}),
        ("grid: game kind", {"scenario": sc, "grid": {"game.kind": ["nope", "donor"]}}),
        ("grid: 10^5 points", {"scenario": sc, "grid": _huge_grid(5)}),
        ("grid: 10^9 points", {"scenario": sc, "grid": _huge_grid(9)}),
        ("grid: 10^12 points", {"scenario": sc, "grid": _huge_grid(12)}),
        ("grid: 10^40 points", {"scenario": sc, "grid": _huge_grid(40)}),
        ("grid: 20,000 seeds", {"scenario": sc, "grid": {"seed": list(range(20_000))}}),
        ("points: 20,000", {"scenario": sc, "points": [{"seed": k} for k in range(20_000)]}),
        ("grid and points", {"scenario": sc, "grid": grid, "points": [{"seed": 1}]}),
        ("neither grid nor points", {"scenario": sc}),
        ("grid: null", {"scenario": sc, "grid": None}),
        ("points: empty", {"scenario": sc, "points": []}),
        ("points: scalar", {"scenario": sc, "points": 3}),
        ("points: a mapping", {"scenario": sc, "points": {"seed": 1}}),
        ("points: scalars", {"scenario": sc, "points": [1, 2]}),
        ("points: lists", {"scenario": sc, "points": [[1]]}),
        ("points: int key", {"scenario": sc, "points": [{1: 2}]}),
        ("points: empty key", {"scenario": sc, "points": [{"": 2}]}),
        ("points: dots key", {"scenario": sc, "points": [{"...": 2}]}),
        ("points: unknown path", {"scenario": sc, "points": [{"game.nosuch": 1}]}),
        ("points: negative seed", {"scenario": sc, "points": [{"seed": -5}]}),
        ("points: seed 2^64", {"scenario": sc, "points": [{"seed": 2**64}]}),
        ("points: absurd rounds", {"scenario": sc, "points": [{"game.rounds": 10**12}]}),
        ("points: float rounds", {"scenario": sc, "points": [{"game.rounds": 1.5}]}),
        ("points: string rounds", {"scenario": sc, "points": [{"game.rounds": "many"}]}),
        ("points: infinite noise", {"scenario": sc, "points": [{"game.noise": float("inf")}]}),
        ("points: game kind", {"scenario": sc, "points": [{"game.kind": "nope"}]}),
        ("points: groups a string", {"scenario": sc, "points": [{"population.groups": "x"}]}),
        ("points: the second bad", {"scenario": sc, "points": [{"seed": 1}, {"seed": "x"}]}),
        ("points: huge strategy", {"scenario": sc, "points": [{"population.groups.0.strategy": "x" * 5000}]}),
        ("set: a list", {"scenario": sc, "set": [1], "grid": grid}),
        ("set: a string", {"scenario": sc, "set": "game.rounds=2", "grid": grid}),
        ("set: null", {"scenario": sc, "set": None, "grid": grid}),
        ("set: unknown path", {"scenario": sc, "set": {"nosuch.x": 1}, "grid": grid}),
        ("set: absurd rounds", {"scenario": sc, "set": {"game.rounds": 10**12}, "grid": grid}),
        ("set: absurd games", {"scenario": sc, "set": {"evolution.generations": 10**9}, "grid": grid}),
        ("set: bad backend", {"scenario": sc, "set": {"backend.kind": "nope"}, "grid": grid}),
        ("fork_at: -1", {"scenario": sc, "fork_at": -1, "grid": grid}),
        ("fork_at: string", {"scenario": sc, "fork_at": "x", "grid": grid}),
        ("fork_at: float", {"scenario": sc, "fork_at": 1.5, "grid": grid}),
        ("fork_at: 10^30", {"scenario": sc, "fork_at": 10**30, "grid": {"game.noise": [0, 0.1]}}),
        ("fork_at: past the end", {"scenario": sc, "fork_at": 50, "grid": {"game.noise": [0, 0.1]}}),
        ("fork_at: over seeds", {"scenario": sc, "fork_at": 1, "grid": grid}),
        ("name: empty", {"scenario": sc, "name": "", "grid": grid}),
        ("name: int", {"scenario": sc, "name": 3, "grid": grid}),
        ("name: list", {"scenario": sc, "name": ["a"], "grid": grid}),
        ("unknown key", {"scenario": sc, "grid": grid, "workers": 3}),
        ("top: a list", [sc, grid]),
        ("top: a string", sc),
        ("top: an int", 7),
        ("top: null", None),
    ]  # fmt: skip
    ok = f"scenario: {sc}\ngrid: {{seed: [1, 2]}}\n".encode()
    raw: list[tuple[str, Any]] = [
        ("bytes: empty", b""),
        ("bytes: binary", b"\xff\xfe\x00\x01" * 64),
        ("bytes: NUL", ok.replace(b"grid", b"gr\x00id")),
        ("bytes: BOM", b"\xef\xbb\xbf" + ok),
        ("bytes: truncated", ok[: len(ok) - 5]),
        ("bytes: bad UTF-8", ok + b"name: \xc3\x28\n"),
        ("bytes: tabs", ok.replace(b"  ", b"\t")),
        ("bytes: unclosed", ok + b"points: [{seed: 1\n"),
        ("bytes: duplicate key", ok + b"grid: {seed: [3]}\n"),
        ("bytes: python tag", ok + b"set: !!python/object/apply:os.system [ls]\n"),
        ("bytes: alias bomb", b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
         + b"".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n".encode()
                    for p, c in zip("abcdefgh", "bcdefghi", strict=True))
         + f"scenario: {sc}\ngrid: {{seed: *i}}\n".encode()),
        ("bytes: 5,000 brackets", f"scenario: {sc}\ngrid: {{seed: ".encode()
         + b"[" * 5000 + b"]" * 5000 + b"}\n"),
        ("bytes: deep mappings", f"scenario: {sc}\nset: ".encode() + b"{a: " * 200 + b"1"
         + b"}" * 200 + b"\ngrid: {seed: [1]}\n"),
        ("bytes: 2 MB", ok + b"# " + b"x" * (2 << 20) + b"\n"),
        ("bytes: huge integer", ok.replace(b"[1, 2]", b"[" + b"9" * 5000 + b"]")),
    ]  # fmt: skip
    return bad + raw


def _small_valid(tmp: Path) -> list[dict[str, Any]]:
    """Valid sweep files to mutate: the shipped one on its base (cut to 2 rounds a
    match), and small ones on the tiny base."""
    shipped = yaml.safe_load(SHIPPED_SWEEP.read_text())
    shipped["scenario"] = str((SHIPPED_SWEEP.parent / shipped["scenario"]).resolve())
    shipped["set"] = {**shipped.get("set", {}), "game.rounds": 2}
    tiny = str(write_scenario(tmp / "tiny.yaml", TINY))
    return [
        shipped,
        {"scenario": tiny, "set": {"game.rounds": 2}, "grid": {"seed": [1, 2], "game.noise": [0.0, 0.1]}},
        {"scenario": tiny, "points": [{"seed": 4}, {"seed": 5, "population.groups.tft.count": 2}]},
        {"scenario": tiny, "fork_at": 1, "points": [{"game.noise": 0.0}, {"game.noise": 0.2}]},
    ]  # fmt: skip


def mutate_sweep(data: dict[str, Any], rng: random.Random) -> tuple[str, bytes | None, Any]:
    """One mutation of a sweep file: a sweep-specific one (grid values, field paths, both
    grid and points, sizes) or any of the scenario mutations."""
    data = yaml.safe_load(yaml.safe_dump(data))
    op = rng.choice(["generic"] * 5 + ["scalar", "path", "both", "grow", "point"])
    if op == "generic":
        return mutate(data, rng)
    pts = data.get("points") or [{}]
    grid = data.get("grid") or {"seed": [1]}
    if op == "scalar":  # a grid value that is not a list
        key = rng.choice(list(grid))
        data["grid"] = {**grid, key: rng.choice(ABSURD[:12] + ["1, 2", None, {"a": [1]}])}
        data.pop("points", None)
    elif op == "path":  # an unknown or malformed field path, in set:, grid: or points:
        path = rng.choice(["game.nosuch", "nosuch", "", ".", "a..b", "game.rounds.x",
                           "population.groups.7.count", "population.groups.nope.count",
                           "seed.0", "game", "population"])  # fmt: skip
        where = rng.choice(["set", "grid", "points"])
        if where == "set":
            data["set"] = {**(data.get("set") or {}), path: 1}
        elif where == "grid":
            data["grid"] = {**grid, path: [1]}
            data.pop("points", None)
        else:
            data["points"] = [*pts, {path: 1}]
            data.pop("grid", None)
    elif op == "both":
        data["grid"], data["points"] = grid, pts
    elif op == "grow":  # more points than a sweep may have, counted before any is made
        data["grid"] = {**grid, **_huge_grid(rng.choice([5, 7, 9, 11]))}
        data.pop("points", None)
    else:  # an absurd value inside a point
        key = rng.choice(["seed", "game.rounds", "game.noise", "population.groups.0.count",
                          "evolution.generations", "game.kind", "backend"])  # fmt: skip
        data["points"] = [*pts, {key: rng.choice(ABSURD)}]
        data.pop("grid", None)
    return op, None, data


def _write_sweep(path: Path, case: Any) -> None:
    if isinstance(case, bytes):
        path.write_bytes(case)
    else:
        _write(path, None, case)


def test_sweep_files(tmp_path, counts):
    """Hand-made and mutated sweep files through `society sweep`: each one exit 0 with
    every point finished, or one line and exit 2 with nothing created; huge grids are
    refused at once, with their size."""
    tally = {"exit 0": 0, "exit 2": 0}
    cases: list[tuple[str, Any]] = hand_made_sweeps(tmp_path)
    rng = random.Random("fuzz-sweep")
    bases = _small_valid(tmp_path)
    for k in range(SWEEP_MUTATIONS):
        what, raw, data = mutate_sweep(bases[k % len(bases)], rng)
        cases.append((f"mutation {k} of base {k % len(bases)}: {what}", raw or data))
    for k, (label, case) in enumerate(cases):
        path = tmp_path / f"sweep{k}.yaml"
        _write_sweep(path, case)
        rc, err, elapsed = check_sweep_case(path, tmp_path / f"out{k}", label)
        if label.startswith("valid"):
            assert rc == 0, f"{label}: {err}"
        if label.startswith(("grid: 10^", "grid: 20,000", "points: 20,000")):
            assert rc == 2 and "points" in err and "more than" in err, f"{label}: {err}"
        if label.startswith("grid: 10^"):  # counted, not expanded (nor parsed at length)
            assert elapsed < REFUSE_QUICKLY_S, f"{label}: refused after {elapsed:.1f} s"
        if "absurd rounds" in label:
            assert rc == 2 and "too large to run" in err and "estimate" in err, f"{label}: {err}"
        tally[f"exit {rc}"] += 1
        counts["cases"] += 1
        counts["sweep cases"] += 1
        counts[f"exit {rc}"] += 1
    assert len(cases) >= MIN_SWEEP_CASES
    # Both outcomes occur: the contract is tested on sweeps that run as well as refused ones.
    assert tally["exit 0"] >= 10 and tally["exit 2"] >= 100, tally
    print(f"\nsweep fuzz: {len(cases)} files, {tally}")


def test_enough_cases(counts):
    """Runs after the cases above (file order): at least 1,000 cases per CI run, at least
    150 of them sweep files."""
    if counts["cases"] == 0:
        pytest.skip("run with the whole file")
    assert counts["cases"] >= 1000, counts
    assert counts["sweep cases"] >= MIN_SWEEP_CASES, counts


# -- real processes --------------------------------------------------------------------------
@pytest.mark.slow
def test_a_few_cases_as_real_processes(tmp_path):
    """The same contract through the `society` console entry (startup, stdio, exit)."""
    rng = random.Random("subprocess")
    for scenario in rng.sample(SCENARIOS, 4):
        what, raw, data = mutate(yaml.safe_load(scenario.read_text()), rng)
        path = tmp_path / f"{scenario.stem}.yaml"
        _write(path, raw, data)
        out = tmp_path / "run"
        proc = run_cli("run", str(path), "--dry-run", "--out", str(out), timeout=60)
        assert "Traceback" not in proc.stderr, (what, proc.stderr)
        assert not out.exists()
        if proc.returncode == 0:
            assert "estimate" in proc.stdout
        else:
            assert proc.returncode == 2, (what, proc.stderr)
            assert len(proc.stderr.strip().splitlines()) == 1, (what, proc.stderr)
