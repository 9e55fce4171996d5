"""Several endpoints behind one `openai` backend: least outstanding, fail-over, cool-down,
the endpoint recorded per call; stub servers (tests/stub_server.py) and, marked `llm`,
two real llama.cpp servers on 127.0.0.1 with one killed mid-run."""

from __future__ import annotations

import threading
import time

import pytest

from agents.chat import ChatRequest
from analysis import load_run
from analysis.llm import call_stats
from society.backends.endpoints import EndpointPool
from society.backends.openai import OpenAIBackend
from society.errors import UserError
from society.runner import start_run
from society.scenario import resolve
from tests.helpers import query, table_rows
from tests.stub_server import StubServer


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _pool(n: int = 3, cooldown_s: float = 10.0) -> tuple[EndpointPool, Clock]:
    clock = Clock()
    urls = [f"http://h{i}/v1" for i in range(n)]
    return EndpointPool(
        urls, style="json_schema", choice=True, cooldown_s=cooldown_s, clock=clock
    ), clock


# -- the pool's rule -------------------------------------------------------------------------
def test_least_outstanding_with_ties_taking_turns():
    pool, _ = _pool(3)
    a, b, c = pool.endpoints
    assert [pool.pick().url for _ in range(4)] == [a.url, b.url, c.url, a.url]
    a.outstanding, b.outstanding, c.outstanding = 2, 0, 1
    assert pool.pick() is b
    b.outstanding = 5
    assert pool.pick() is c


def test_failed_endpoint_cools_down_then_comes_back():
    pool, clock = _pool(2, cooldown_s=10)
    a, b = pool.endpoints
    pool.failed(a, "refused", "connection failed")
    assert all(pool.pick() is b for _ in range(3))  # down: no new requests
    clock.t += 9.9
    assert pool.pick() is b
    clock.t += 0.2
    assert {pool.pick().url for _ in range(2)} == {a.url, b.url}  # up again, takes turns
    assert a.errors == {"refused": 1} and a.failures == 1


def test_retry_after_longer_than_the_cool_down_wins():
    pool, clock = _pool(2, cooldown_s=1)
    a, b = pool.endpoints
    pool.failed(a, "http 429", "slow down", down_s=30)
    clock.t += 5
    assert pool.pick() is b


def test_avoid_and_every_endpoint_down():
    pool, clock = _pool(2, cooldown_s=10)
    a, b = pool.endpoints
    assert pool.pick(avoid={a.url}) is b
    pool.failed(b, "timeout", "t")
    assert pool.pick(avoid={a.url}) is a  # nothing else is up: the avoided one
    clock.t += 1
    pool.failed(a, "timeout", "t")
    assert pool.all_down()
    assert pool.pick() is b  # every one down: the one back first
    pool.succeeded(b)
    assert not pool.all_down() and pool.pick() is b


# -- stub servers ------------------------------------------------------------------------------
@pytest.fixture
def stubs():
    pair = [StubServer(), StubServer()]
    yield pair
    for s in pair:
        s.close()


def _req(i: int) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": f"say {i}"}], seed=i, max_tokens=8)


def test_dead_endpoint_is_failed_over_and_left_alone_while_cooling(stubs):
    a, b = stubs
    b.set_fault("refused")
    backend = OpenAIBackend(
        "m", base_url=[a.url, b.url], max_concurrency=2, backoff_s=0.01, cooldown_s=60
    )
    try:
        replies = backend.generate([_req(i) for i in range(6)])
        replies += backend.generate([_req(i) for i in range(6, 12)])
        stats = backend.stats()
    finally:
        backend.close()
    assert all(r.error is None and r.endpoint == a.url for r in replies)
    # at most the two first requests in flight tried b; none after it was marked down
    assert 1 <= stats[b.url]["errors"]["refused"] <= 2 and stats[a.url]["served"] == 12
    assert backend.waits == []  # failed over at once: no backoff while a was up


def test_endpoint_back_after_its_cool_down(stubs):
    a, b = stubs
    b.set_fault("http500")
    backend = OpenAIBackend("m", base_url=[a.url, b.url], max_concurrency=1, cooldown_s=0.3)
    try:
        first = backend.generate([_req(i) for i in range(4)])
        b.heal()
        time.sleep(0.35)
        second = backend.generate([_req(i) for i in range(4, 8)])
    finally:
        backend.close()
    assert {r.endpoint for r in first} == {a.url}
    assert {r.endpoint for r in second} == {a.url, b.url}
    assert b.faulty() == 1


def _scenario(urls, rounds: int = 3, **backend) -> dict:
    return {
        "name": "endpoints",
        "seed": 4,
        "backend": {"kind": "openai", "model": "m", "base_url": urls, **backend},
        "population": {
            "groups": [
                {"name": "llm", "count": 2, "kind": "llm", "max_tokens": 16},
                {"name": "alld", "count": 1, "strategy": "always_defect"},
                {"name": "allc", "count": 1, "strategy": "always_cooperate"},
            ]
        },
        "matching": {"kind": "round_robin"},
        "game": {"kind": "repeated_2x2", "preset": "prisoners_dilemma", "rounds": rounds},
    }


def test_run_records_the_endpoint_of_every_call(stubs, tmp_path):
    a, b = stubs
    sc = resolve(_scenario([a.url, b.url], max_concurrency=4), "t")
    start_run(sc, tmp_path / "two", quiet=True)
    one = resolve(_scenario(a.url), "t")
    start_run(one, tmp_path / "one", quiet=True)
    endpoints = [e for (e,) in query(tmp_path / "two", "SELECT endpoint FROM llm_calls")]
    assert set(endpoints) == {a.url, b.url} and len(endpoints) == 6 * 3  # 6 LLM decisions a round
    per = call_stats(load_run(tmp_path / "two"), by="endpoint")
    assert per["calls"].sum() == len(endpoints) and set(per["endpoint"]) == {a.url, b.url}
    # which server answered changes nothing else (the stubs answer alike)
    assert table_rows(tmp_path / "two", "decisions") == table_rows(tmp_path / "one", "decisions")


@pytest.mark.parametrize(
    ("urls", "needle"),
    [([], "base_url"), (["http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1"], "same URL"),
     (["ftp://x"], "http://")],
)  # fmt: skip
def test_bad_base_url_lists_are_one_line_errors(urls, needle, tmp_path):
    with pytest.raises(UserError, match=needle) as info:
        start_run(resolve(_scenario(urls), "t"), tmp_path / "run", quiet=True)
    assert "\n" not in str(info.value) and not (tmp_path / "run").exists()


def test_cooldown_is_bounded_in_the_scenario():
    with pytest.raises(UserError, match="cooldown_s"):
        resolve(_scenario("http://127.0.0.1:1/v1", cooldown_s=-1), "t")


# -- two real llama.cpp servers, one killed mid-run ------------------------------------------
@pytest.mark.llm
@pytest.mark.slow
def test_run_completes_on_the_survivor_of_two_llama_cpp_servers(embedded_gguf, tmp_path):
    pytest.importorskip("llama_cpp.server.app")
    from tests.servers import free_port, kill, start_llama_server, stop

    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}/v1" for p in ports]
    servers = [start_llama_server(embedded_gguf, p, tmp_path / f"s{p}.log") for p in ports]
    data = _scenario(urls, rounds=4, max_concurrency=2, max_retries=3, timeout_s=60)
    data["backend"]["model"] = "smollm2-135m"
    data["population"]["groups"][0]["count"] = 1
    sc = resolve(data, "t")
    cfg = sc.group_backend(sc.population.groups[0])
    backend = OpenAIBackend(cfg.model, **cfg.backend_options())
    killed_after: list[int] = []

    def killer() -> None:  # SIGKILL the second server once it has answered a call
        deadline = time.monotonic() + 300
        while backend.stats()[urls[1]]["served"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        killed_after.append(sum(s["served"] for s in backend.stats().values()))
        kill(servers[1])

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        res = start_run(sc, tmp_path / "run", quiet=True, backends=backend)
        stats = backend.stats()
    finally:
        thread.join()
        backend.close()
        stop(servers[0])
        if servers[1].poll() is None:
            kill(servers[1])
    assert res.status == "finished"
    calls = query(tmp_path / "run", "SELECT endpoint, error, valid FROM llm_calls ORDER BY id")
    assert {e for e, _, _ in calls} == set(urls)  # both served calls
    assert all(err is None for _, err, _ in calls)  # none lost to the kill
    # after the kill (and the requests then in flight) only the survivor answered
    assert {e for e, _, _ in calls[killed_after[0] + 2 :]} <= {urls[0]}
    assert sum(stats[urls[1]]["errors"].values()) >= 1
    assert query(tmp_path / "run", "SELECT COUNT(*) FROM rounds") == [(4,)]
