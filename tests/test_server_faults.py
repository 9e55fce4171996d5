"""Server faults against a local stub server (tests/stub_server.py) on 127.0.0.1.

Each fault starts mid-run, after the first step's calls were answered well. A fault that
lasts gets its bounded retries (counted at the server and in the backend's stats), then
the run stops cleanly: status "stopped", the committed step intact (equal to the same
step of an uninterrupted run), and a one-line message naming `society resume RUN_DIR`.
Once the server behaves, the resumed run equals the uninterrupted one row for row. A
fault that passes within the retries leaves the run as if it had never happened. An
unparsable action is no backend fault: the agent's repair and fallback path answers it
and the invalid-reply rate is recorded.
"""

from __future__ import annotations

import threading

import pytest

from analysis import load_run
from analysis.llm import call_stats
from society.backends import make_backend
from society.errors import UserError
from society.runner import resume_run, start_run
from society.scenario import resolve
from tests.helpers import assert_same_store, query, run_cli, table_rows, write_scenario
from tests.stub_server import StubServer

MAX_RETRIES = 2
ATTEMPTS = MAX_RETRIES + 1
CALLS_PER_STEP = 2  # one LLM agent in two matches
# the fault's name at the stub -> the kind the backend counts it as
KINDS = {
    "http500": "http 500",
    "http429": "http 429",
    "timeout": "timeout",
    "hang_after_headers": "timeout",
    "truncated": "broken",
    "non_json": "malformed",
    "over_max_tokens": "over max_tokens",
    "refused": "refused",
}


def scenario(url: str, rounds: int = 3) -> dict:
    return {
        "name": "faults",
        "seed": 11,
        "backend": {
            "kind": "openai",
            "model": "stub-model",
            "base_url": url,
            "max_concurrency": 1,  # one request at a time: retry counts are exact
            "max_retries": MAX_RETRIES,
            "timeout_s": 0.5,
            "backoff_s": 0.01,
            "retry_after_cap_s": 0.2,
        },
        "population": {
            "groups": [
                {"name": "llm", "count": 1, "kind": "llm", "max_tokens": 16},
                {"name": "alld", "count": 1, "strategy": "always_defect"},
                {"name": "allc", "count": 1, "strategy": "always_cooperate"},
            ]
        },
        "matching": {"kind": "round_robin"},
        "game": {"kind": "repeated_2x2", "preset": "prisoners_dilemma", "rounds": rounds},
    }


@pytest.fixture
def stub():
    s = StubServer()
    s.hang_s = 2.0
    yield s
    s.close()


@pytest.fixture
def reference(stub, tmp_path):
    """The uninterrupted run against the well-behaved stub (same URL, so same rows)."""
    sc = resolve(scenario(stub.url), "t")
    start_run(sc, tmp_path / "ref", quiet=True)
    stub.requests.clear()
    return sc, tmp_path / "ref"


def _backend(sc):
    cfg = sc.group_backend(sc.population.groups[0])
    return make_backend(cfg.kind, cfg.model, **cfg.backend_options())


@pytest.mark.parametrize("fault", sorted(KINDS))
def test_lasting_fault_stops_cleanly_and_resumes(fault, stub, reference, tmp_path):
    sc, ref = reference
    run = tmp_path / "run"
    stub.set_fault(fault, after=CALLS_PER_STEP)  # step 1 answered, then the fault
    backend = _backend(sc)
    try:
        with pytest.raises(UserError) as info:
            start_run(sc, run, quiet=True, backends=backend)
        stats = backend.stats()[stub.url]
        waits = list(backend.waits)
    finally:
        backend.close()
    msg = str(info.value)
    assert "\n" not in msg and msg.endswith(f"continue with: society resume {run}")
    assert "1 step(s) committed" in msg
    # bounded retries: exactly ATTEMPTS attempts of the first failing request
    assert stats["errors"] == {KINDS[fault]: ATTEMPTS}
    assert stats["served"] == CALLS_PER_STEP
    assert stub.faulty() == (0 if fault == "refused" else ATTEMPTS)
    assert len(waits) == MAX_RETRIES
    if fault == "http429":  # Retry-After: 1, capped at retry_after_cap_s
        assert waits == [0.2, 0.2]
    else:
        assert all(0.01 <= w < 0.01 * 2**MAX_RETRIES * 1.5 for w in waits)
    # the committed step is intact and the run is marked stopped
    assert query(run, "SELECT value FROM meta WHERE key = 'status'") == [("stopped",)]
    for table in ("rounds", "decisions", "llm_calls"):
        got = table_rows(run, table)
        assert got == table_rows(ref, table)[: len(got)]
    assert len(table_rows(run, "rounds")) == 1
    # the server behaves again: resume completes, equal to the uninterrupted run
    stub.heal()
    res = resume_run(run, quiet=True)
    assert res.status == "finished"
    assert_same_store(ref, run)


@pytest.mark.parametrize("fault", sorted(set(KINDS) - {"refused"}))
def test_passing_fault_is_absorbed_by_the_retries(fault, stub, reference, tmp_path):
    sc, ref = reference
    stub.set_fault(fault, count=MAX_RETRIES, after=CALLS_PER_STEP)
    backend = _backend(sc)
    try:
        res = start_run(sc, tmp_path / "run", quiet=True, backends=backend)
        stats = backend.stats()[stub.url]
    finally:
        backend.close()
    assert res.status == "finished"
    assert stats["errors"] == {KINDS[fault]: MAX_RETRIES} and stub.faulty() == MAX_RETRIES
    assert_same_store(ref, tmp_path / "run")


def test_refused_until_the_server_comes_back(stub, reference, tmp_path):
    sc, ref = reference
    stub.set_fault("refused", after=CALLS_PER_STEP)
    backend = make_backend(
        "openai", "stub-model", base_url=stub.url, max_concurrency=1, max_retries=6, backoff_s=0.1
    )
    # the server comes back 0.25 s after it stopped listening (retries wait 0.1, 0.2, ...)
    timer = threading.Timer(0.25, stub.heal)
    watcher = threading.Thread(target=lambda: _when(lambda: stub.requests, timer.start))
    watcher.start()
    try:
        res = start_run(sc, tmp_path / "run", quiet=True, backends=backend)
        errors = backend.stats()[stub.url]["errors"]
    finally:
        backend.close()
        watcher.join()
        timer.cancel()
    assert res.status == "finished" and 1 <= errors["refused"] <= 6
    assert_same_store(ref, tmp_path / "run")


def _when(cond, then, limit_s: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + limit_s
    while len(cond()) < CALLS_PER_STEP and time.monotonic() < deadline:
        time.sleep(0.005)
    then()


def test_unparsable_action_goes_through_repair_and_fallback(stub, reference, tmp_path):
    sc, ref = reference
    stub.set_fault("unparsable", after=CALLS_PER_STEP)
    res = start_run(sc, tmp_path / "run", quiet=True)
    run = tmp_path / "run"
    assert res.status == "finished"  # no backend fault: nothing retried, nothing stopped
    assert stub.faulty() == len(stub.requests) - CALLS_PER_STEP > 0
    calls = query(run, "SELECT round, valid, error FROM llm_calls ORDER BY id")
    assert all(error is None for *_, error in calls)
    assert [v for r, v, _ in calls if r == 0] == [1] * CALLS_PER_STEP
    assert all(v == 0 for r, v, _ in calls if r > 0)
    sources = query(run, "SELECT round, source FROM decisions WHERE agent_id = 0 ORDER BY id")
    assert {s for r, s in sources if r > 0} == {"fallback"}
    # the invalid-reply rate is a recorded metric
    stats = call_stats(load_run(run), by=None)
    invalid = sum(1 for _, v, _ in calls if v == 0) / len(calls)
    assert stats["invalid_rate"].iloc[0] == pytest.approx(invalid) and invalid > 0.5
    # the well-answered step is the uninterrupted run's
    assert table_rows(run, "llm_calls")[:CALLS_PER_STEP] == table_rows(ref, "llm_calls")[:2]


@pytest.mark.slow
def test_cli_stops_with_one_line_and_exit_2_then_resumes(stub, tmp_path):
    path = write_scenario(tmp_path / "s.yaml", scenario(stub.url))
    run = tmp_path / "run"
    stub.set_fault("http500", after=CALLS_PER_STEP)
    out = run_cli("run", str(path), "--out", str(run), "--quiet")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert "HTTP 500" in lines[0] and f"society resume {run}" in lines[0]
    stub.heal()
    out = run_cli("resume", str(run), "--quiet")
    assert out.returncode == 0, out.stderr
    assert query(run, "SELECT value FROM meta WHERE key = 'status'") == [("finished",)]


def test_body_over_max_reply_bytes_is_a_fault_not_buffered(stub):
    from agents.chat import ChatRequest
    from society.backends.base import BackendError
    from society.backends.openai import OpenAIBackend

    stub.set_fault("over_max_tokens")  # a 200 kB body
    b = OpenAIBackend("m", base_url=stub.url, max_reply_bytes=4096, max_retries=1, backoff_s=0)
    try:
        with pytest.raises(BackendError, match=r"over 4096 bytes \(after 2 attempts\)$"):
            b.generate([ChatRequest(messages=[{"role": "user", "content": "hi"}], seed=1)])
        assert b.stats()[stub.url]["errors"] == {"too large": 2}
    finally:
        b.close()


def test_retry_after_forms():
    from society.backends.openai import parse_retry_after

    assert parse_retry_after("3") == 3.0 and parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("-4") == 0.0
