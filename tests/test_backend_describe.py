"""What each backend records about itself (`describe()`) and the run's meta holds: engine
and version, device, batch invariance, so that a rerun can tell whether it should be
identical. Backends that run here: openai (against a stub server), llamacpp (`llm`),
vllm's CPU engine (`vllm`, slow); the batch-invariance flag is read from vLLM's own env."""

from __future__ import annotations

import json

import pytest

from society.runner import resume_run, start_run
from society.scenario import resolve
from tests.helpers import query
from tests.stub_server import StubServer


def _scenario(backend: dict, rounds: int = 2) -> dict:
    return {
        "name": "describe",
        "seed": 2,
        "backend": backend,
        "population": {
            "groups": [
                {"name": "llm", "count": 1, "kind": "llm", "max_tokens": 8},
                {"name": "alld", "count": 1, "strategy": "always_defect"},
            ]
        },
        "game": {"kind": "repeated_2x2", "preset": "prisoners_dilemma", "rounds": rounds},
    }


def _meta(run_dir, key: str) -> dict:
    ((text,),) = query(run_dir, "SELECT value FROM meta WHERE key = ?", key)
    return json.loads(text)


def test_openai_describe_is_in_the_meta_and_resume_adds_its_own(tmp_path):
    import httpx

    stub = StubServer()
    try:
        data = _scenario({"kind": "openai", "model": "m", "base_url": stub.url, "max_retries": 0})
        sc = resolve(data, "t")
        stub.set_fault("http500", after=1)
        with pytest.raises(Exception, match="society resume"):
            start_run(sc, tmp_path / "run", quiet=True)
        stub.heal()
        resume_run(tmp_path / "run", quiet=True)
    finally:
        stub.close()
    (desc,) = _meta(tmp_path / "run", "backends").values()
    assert desc["kind"] == "openai" and desc["base_urls"] == [stub.url]
    assert desc["client"] == f"httpx {httpx.__version__}" and desc["device"] == "remote"
    assert desc["batch_invariant"] is None  # the servers decide; unknown to the client
    assert desc["retries"]["max_retries"] == 0
    assert _meta(tmp_path / "run", "resumed_backends") == _meta(tmp_path / "run", "backends")


@pytest.mark.llm
def test_llamacpp_describe_names_version_device_and_invariance():
    llama_cpp = pytest.importorskip("llama_cpp")
    from society.backends import make_backend

    with make_backend("llamacpp", "smollm2-135m") as b:
        desc = json.loads(json.dumps(b.describe()))
    assert desc["kind"] == "llamacpp" and desc["llama_cpp"] == llama_cpp.__version__
    assert desc["device"] == "cpu" and desc["batch_invariant"] is True
    assert desc["gguf"].endswith(".gguf") and desc["prefix_cache"] is True


@pytest.mark.slow  # importing vllm takes 10-20 s on 2 cores
def test_vllm_batch_invariance_follows_its_env(monkeypatch):
    pytest.importorskip("vllm")
    from society.backends.vllm import _batch_invariant, _device

    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "1")
    assert _batch_invariant() is True
    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "0")
    assert _batch_invariant() is False
    monkeypatch.delenv("VLLM_BATCH_INVARIANT")
    assert _batch_invariant() is False
    import torch

    assert _device(True) == {"device": "cpu", "torch": torch.__version__}


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_describe_on_the_cpu_engine(embedded_gguf):
    pytest.importorskip("vllm")
    import torch
    import vllm

    from society.backends.vllm import VLLMBackend
    from society.convert import convert_gguf_to_hf

    convert_gguf_to_hf("smollm2-135m")
    b = VLLMBackend("smollm2-135m", enforce_eager=True, max_model_len=512)
    try:
        d = b.describe()
    finally:
        b.close()
    assert d["vllm"] == vllm.__version__ and d["torch"] == torch.__version__
    assert d["on_cpu"] is True and d["device"] == "cpu" and d["batch_invariant"] is False
    assert d["engine_args"]["enable_prefix_caching"] is True
    json.dumps(d)
