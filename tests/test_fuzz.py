"""Fuzzing the scenario front door: every case ends in exit 0 or one line with exit 2.

Cases are mutations of every shipped scenario (wrong types, out-of-range and absurd
values, missing and unknown keys, broken bytes, deep nesting, the same through --set and
--seed) and hypothesis-generated YAML and bytes. Most run in-process through
`society.cli.main` with stdout and stderr captured (an exception escaping main fails the
case); a handful run as real `society` processes. Cases that validate stop at
``--dry-run``, so no case runs unbounded, and each has a time limit (SIGALRM).
"""

from __future__ import annotations

import contextlib
import io
import random
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
from tests.helpers import ROOT, run_cli

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
    assert rc == 2, f"{label}: exit {rc}: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"{label}: {len(lines)} stderr lines: {err!r}"
    assert lines[0].startswith("society"), f"{label}: {lines[0]!r}"
    assert "unexpected error" not in lines[0], f"{label}: {lines[0]}"
    return rc


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
    tally = {"cases": 0, "exit 0": 0, "exit 2": 0}
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


def test_enough_cases(counts):
    """Runs after the cases above (file order): at least 1,000 cases per CI run."""
    if counts["cases"] == 0:
        pytest.skip("run with the whole file")
    assert counts["cases"] >= 1000, counts


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
