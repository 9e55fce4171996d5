"""Runs with real LLM backends: the embedded model, replay, a real server killed mid-run.

Scenarios are tiny (an LLM agent, a few rounds) so that the suite stays inside CI's time
on 2 cores; they exercise the whole path: prompts, constrained decoding, parsing,
recording, batching, stopping cleanly and resuming.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from society.runner import start_run
from society.scenario import resolve
from tests.helpers import ROOT, cli_env, query, run_cli, society_cmd, table_rows, write_scenario
from tests.servers import start_llama_server, stop

pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.llm, pytest.mark.slow]


def llm_scenario(rounds: int = 3, **game) -> dict:
    return {
        "name": "llm-test",
        "seed": 5,
        "backend": {"kind": "llamacpp", "model": "smollm2-135m"},
        "population": {
            "groups": [
                {"name": "llm", "count": 1, "kind": "llm", "max_tokens": 16},
                {"name": "alld", "count": 1, "strategy": "always_defect"},
                {"name": "allc", "count": 1, "strategy": "always_cooperate"},
            ]
        },
        "matching": {"kind": "round_robin"},
        "game": {
            "kind": "repeated_2x2",
            "preset": "prisoners_dilemma",
            "rounds": rounds,
            **game,
        },  # fmt: skip
    }


def test_llm_agent_plays_on_the_embedded_model(tmp_path):
    res = start_run(resolve(llm_scenario(), "t"), tmp_path / "run", quiet=True)
    d = res.run_dir
    # One LLM agent in two matches x 3 rounds: 6 decisions, each from a real call.
    llm = query(d, "SELECT source, valid, llm_call_id, action FROM decisions WHERE agent_id = 0")
    assert len(llm) == 6
    for source, valid, call_id, action in llm:
        assert source in ("llm", "fallback") and call_id is not None
        assert action in ("C", "D") and valid == (source == "llm")
    calls = query(d, "SELECT messages, params, reply, parsed, valid, prompt_tokens, completion_tokens, "
                    "latency_s, backend, model, seed FROM llm_calls ORDER BY id")  # fmt: skip
    assert len(calls) >= 6
    messages, params, reply, parsed, valid, p_tok, c_tok, latency, backend, model, seed = calls[-1]
    system = json.loads(messages)[0]["content"]
    # protocols §2: the rules state every payoff; the history lists earlier rounds.
    assert "you win 8 points and the other player wins 8 points" in system
    assert "you win 0 points and the other player wins 10 points" in system
    user = json.loads(messages)[-1]["content"]
    assert "In round 1, you chose Option" in user and "You are currently playing round 3" in user
    assert json.loads(params)["json_schema"]["properties"]["choice"]["enum"] == ["J", "F"]
    assert backend == "llamacpp" and model == "smollm2-135m" and seed is not None
    assert p_tok > 100 and c_tok > 0 and latency > 0
    # Constrained decoding: the embedded model's replies parse.
    valid_share = sum(c[4] for c in calls) / len(calls)
    assert valid_share == 1.0, [c[2] for c in calls]
    assert json.loads(parsed)["choice"] in ("J", "F")


def test_replay_reproduces_the_run(tmp_path):
    first = start_run(resolve(llm_scenario(predict_first=True), "t"), tmp_path / "a", quiet=True)
    data = llm_scenario(predict_first=True)
    data["backend"] = {"kind": "replay", "run": str(first.run_dir)}
    again = start_run(resolve(data, "t"), tmp_path / "b", quiet=True)
    for table in ("decisions", "events", "rounds"):
        assert table_rows(first.run_dir, table) == table_rows(again.run_dir, table)
    cols = "round, agent_id, purpose, messages, params, seed, reply, parsed, valid"
    assert query(first.run_dir, f"SELECT {cols} FROM llm_calls") == query(
        again.run_dir, f"SELECT {cols} FROM llm_calls"
    )
    purposes = {p for (p,) in query(first.run_dir, "SELECT purpose FROM llm_calls")}
    assert {"predict", "move"} <= purposes
    assert query(again.run_dir, "SELECT DISTINCT backend FROM llm_calls") == [("replay",)]


def test_server_killed_mid_run_then_resumed(tmp_path, embedded_gguf, free_port):
    """A mixed society: one LLM group on a real OpenAI-compatible server, one in-process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    data = llm_scenario(rounds=8)
    data["population"]["groups"][0]["backend"] = {
        "kind": "openai", "model": "smollm2-135m", "base_url": url,
        "max_retries": 1, "timeout_s": 60, "options": {"backoff_s": 0.05},
    }  # fmt: skip
    data["population"]["groups"].append(
        {"name": "local", "count": 1, "kind": "llm", "max_tokens": 16}
    )
    scenario_file = write_scenario(tmp_path / "s.yaml", data)
    run_dir = tmp_path / "run"
    server = start_llama_server(embedded_gguf, port, tmp_path / "server1.log")
    proc = subprocess.Popen(
        society_cmd("run", str(scenario_file), "--out", str(run_dir), "--quiet"),
        cwd=ROOT, env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        import time

        deadline = time.monotonic() + 600
        while (
            not (run_dir / "run.sqlite").exists()
            or query(run_dir, "SELECT COUNT(*) FROM rounds")[0][0] < 2
        ):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        stop(server)  # the server dies mid-run
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "run stopped" in err and "society resume" in err
    committed = query(run_dir, "SELECT COUNT(*) FROM rounds")[0][0]
    assert 2 <= committed < 8
    before = table_rows(run_dir, "decisions")
    assert query(run_dir, "SELECT value FROM meta WHERE key='status'") == [("stopped",)]

    server = start_llama_server(embedded_gguf, port, tmp_path / "server2.log")
    try:
        res = run_cli("resume", str(run_dir), "--quiet", timeout=900)
    finally:
        stop(server)
    assert res.returncode == 0, res.stderr
    assert query(run_dir, "SELECT COUNT(*) FROM rounds") == [(8,)]
    after = table_rows(run_dir, "decisions")
    assert after[: len(before)] == before  # committed rounds untouched
    backends = dict(query(run_dir, "SELECT agent_id, backend FROM agents WHERE kind = 'llm'"))
    assert sorted(backends.values()) == ["llamacpp", "openai"]
    per_backend = dict(query(run_dir, "SELECT backend, COUNT(*) FROM llm_calls GROUP BY backend"))
    assert per_backend["openai"] > 0 and per_backend["llamacpp"] > 0
