"""Out-of-order stepping (`run.stepping: out_of_order`): each match of a tournament
advances as its own replies arrive, and the store is exactly lockstep's."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.stub_server import StubServer
from games.repeated import RepeatedGame
from society.runner import start_run
from society.scenario import resolve
from tests.helpers import assert_same_store, query
from tests.test_resume import interrupt_resume_compare


def tournament(stepping: str, backend: dict[str, Any], **game: Any) -> dict[str, Any]:
    """LLM players and scripted ones in a round-robin repeated PD."""
    return {
        "name": "ooo",
        "seed": 4,
        "run": {"stepping": stepping},
        "backend": backend,
        "population": {
            "groups": [
                {"name": "llm", "kind": "llm", "count": 4},
                {"name": "tft", "count": 1, "strategy": "tit_for_tat"},
                {"name": "wsls", "count": 1, "strategy": "win_stay_lose_shift"},
            ]
        },
        "game": {"kind": "repeated_2x2", "rounds": 5, **game},
    }


def both(tmp_path: Path, data_of: Any) -> tuple[Path, Path]:
    out = []
    for stepping in ("lockstep", "out_of_order"):
        run = tmp_path / stepping
        start_run(resolve(data_of(stepping), "s"), run, quiet=True)
        out.append(run)
    return out[0], out[1]


def random_delay(body: dict[str, Any]) -> float:
    """0-40 ms, heavy-tailed, fixed by the prompt (not by arrival order)."""
    h = hashlib.sha256(json.dumps(body["messages"]).encode()).digest()
    return 0.04 * (h[0] / 255) ** 3


def openai(url: str) -> dict[str, Any]:
    return {"kind": "openai", "base_url": url, "model": "stub", "max_concurrency": 16}


@pytest.mark.parametrize(
    "game",
    [{}, {"continuation": 0.8}, {"noise": 0.1}],
    ids=["plain", "continuation", "noise_falls_back_to_lockstep"],
)
def test_fake_backend_store_equals_lockstep(tmp_path, game):
    lock, ooo = both(tmp_path, lambda s: tournament(s, {"kind": "fake"}, **game))
    assert_same_store(lock, ooo)
    assert query(ooo, "SELECT COUNT(*) FROM llm_calls")[0][0] > 0


def test_stub_server_with_random_latency_store_equals_lockstep(tmp_path):
    with StubServer(random_delay) as srv:
        lock, ooo = both(tmp_path, lambda s: tournament(s, openai(srv.url)))
    assert_same_store(lock, ooo)  # call ids too: recorded in lockstep order at commit


def test_random_scripted_policy_falls_back_to_lockstep(tmp_path):
    """A scripted policy that draws randomness cannot run ahead: the game goes lockstep."""

    def data(stepping: str) -> dict[str, Any]:
        d = tournament(stepping, {"kind": "fake"})
        d["population"]["groups"][1]["strategy"] = {"name": "random", "p": 0.5}
        return d

    lock, ooo = both(tmp_path, data)
    assert_same_store(lock, ooo)


def test_instances_play_the_games_turns():
    """The protocol's contract, checked directly: each match's sub-game gives the turns
    the tournament gives that match, step after step."""
    from games.repeated import RepeatedGameRules
    from games.twobytwo import preset

    rules = RepeatedGameRules(preset("prisoners_dilemma_classic"), rounds=3)
    pairs = [(0, 1), (0, 2), (1, 2)]
    rng = np.random.default_rng(0)
    game = RepeatedGame(rules, lambda r, g: pairs, static=True, rng=rng)
    subs = game.subgames()
    assert subs is not None and sorted(subs) == [0, 1, 2]
    for step in range(3):
        turns = game.pending(rng)
        acts = [(t.agent + step) % 2 for t in turns]
        for key, sub in subs.items():
            mine = [(t, a) for t, a in zip(turns, acts, strict=True) if t.instance == key]
            sub_turns = sub.pending(rng)
            assert [(t.agent, t.partner, t.purpose, t.observation) for t in sub_turns] == [
                (t.agent, t.partner, t.purpose, t.observation) for t, _ in mine
            ]
            sub.apply(sub_turns, [a for _, a in mine], rng)
        game.apply(turns, acts, rng)
    assert game.done and all(s.done for s in subs.values())
    noisy = RepeatedGame(
        RepeatedGameRules(preset("prisoners_dilemma_classic"), noise=0.1),
        lambda r, g: pairs, static=True, rng=rng,
    )  # fmt: skip
    assert noisy.subgames() is None  # noise draws during play: not independent


def test_a_slow_match_does_not_hold_back_the_others(tmp_path):
    """Requests of the 'slow' group's agents take 0.3 s, the others 5 ms. Out of order,
    the fast agents' match plays its last round before any slow request of round 2 is
    answered; in lockstep that cannot happen (every round waits for the slowest)."""

    def delay(body: dict[str, Any]) -> float:
        return 0.3 if "patient" in body["messages"][0]["content"] else 0.005

    def data(stepping: str, url: str) -> dict[str, Any]:
        return {
            "name": "pace",
            "seed": 2,
            "run": {"stepping": stepping},
            "backend": openai(url),
            "population": {
                "groups": [
                    {"name": "slow", "kind": "llm", "count": 2, "persona": "You are patient."},
                    {"name": "fast", "kind": "llm", "count": 2},
                ]
            },
            "game": {"kind": "repeated_2x2", "rounds": 4},
        }

    def first_end(log: list, slow: bool, round_: int) -> float:
        return min(
            end
            for _, _, end, body in log
            if ("patient" in body["messages"][0]["content"]) == slow
            and f"playing round {round_}." in body["messages"][-1]["content"]
        )

    ends = {}
    with StubServer(delay) as srv:  # one server: the calls record its URL
        for stepping in ("lockstep", "out_of_order"):
            srv.log.clear()
            start_run(resolve(data(stepping, srv.url), "s"), tmp_path / stepping, quiet=True)
            ends[stepping] = (first_end(srv.log, False, 4), first_end(srv.log, True, 2))
    fast_last, slow_second = ends["out_of_order"]
    assert fast_last < slow_second, ends
    fast_last, slow_second = ends["lockstep"]
    assert fast_last > slow_second, ends
    assert_same_store(tmp_path / "lockstep", tmp_path / "out_of_order")


@pytest.mark.parametrize("cut", [1, 3])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, cut):
    """Stopped after `cut` committed steps while later rounds are in flight, resumed: the
    store equals an uninterrupted run's (the uncommitted rounds are asked again)."""
    with StubServer(random_delay) as srv:
        data = tournament("out_of_order", openai(srv.url), rounds=6)
        interrupt_resume_compare(data, cut, tmp_path, monkeypatch)
        lock = tmp_path / "lock"
        start_run(resolve(tournament("lockstep", openai(srv.url), rounds=6), "s"), lock, quiet=True)
    assert_same_store(tmp_path / "cut", lock)


@pytest.mark.llm
@pytest.mark.slow
def test_real_llama_server_store_equals_lockstep(tmp_path, embedded_gguf):
    """Against llama-cpp-python's server (seeded sampling): the same store both ways."""
    from tests.servers import free_port, start_llama_server, stop

    port = free_port()
    proc = start_llama_server(embedded_gguf, port, tmp_path / "server.log")
    try:
        backend = {
            "kind": "openai",
            "base_url": f"http://127.0.0.1:{port}/v1",
            "model": "smollm2",
            "max_concurrency": 4,
        }

        def data(stepping: str) -> dict[str, Any]:
            d = tournament(stepping, backend, rounds=2)
            d["population"]["groups"][0]["count"] = 2
            d["population"]["groups"][0]["max_tokens"] = 12
            return d

        lock, ooo = both(tmp_path, data)
    finally:
        stop(proc)
    assert_same_store(lock, ooo)
