"""The replay backend answers from a run store exactly as the run was answered."""

from __future__ import annotations

import json

import pytest

from agents.chat import ChatReply, ChatRequest
from society.backends import make_backend
from society.backends.base import BackendError
from society.backends.fake import FakeBackend
from society.backends.replay import ReplayBackend, record_key, request_key
from society.store import RunStore

SCHEMA = {"type": "object", "properties": {"choice": {"enum": ["J", "F"]}}, "required": ["choice"]}


def _req(i: int, *, seed: int | None = None, text: str | None = None, **kw) -> ChatRequest:
    return ChatRequest(
        messages=[
            {"role": "system", "content": "You play a repeated game."},
            {"role": "user", "content": text or f"Round {i}: pick J or F."},
        ],
        seed=seed if seed is not None else 100 + i,
        json_schema=SCHEMA,
        tags={"agent": i % 3, "round": i},
        **kw,
    )


def _row(call_id: int, r: ChatRequest, reply: ChatReply, logprobs=None) -> tuple:
    return (
        call_id, r.tags.get("round", 0), r.tags.get("agent"), "move", "fake", "fake-model",
        json.dumps(r.messages), json.dumps(r.params()), r.seed, reply.text, reply.text, 1,
        reply.error, reply.prompt_tokens, reply.completion_tokens, 0.01,
        json.dumps(logprobs) if logprobs is not None else None,
    )  # fmt: skip


def _record(run_dir, requests, replies, logprobs=None) -> None:
    with RunStore.in_dir(run_dir, create=True) as store:
        rows = [
            _row(i + 1, r, p, logprobs[i] if logprobs else None)
            for i, (r, p) in enumerate(zip(requests, replies, strict=True))
        ]
        store.commit_round((0, 0, 0, 0, len(rows), 0.1), llm_calls=rows)


def test_keys_agree_between_recording_and_replay():
    r = _req(1, temperature=0.3, stop=["\n"])
    assert request_key(r) == record_key(json.dumps(r.messages), json.dumps(r.params()))
    # canonical: key order and whitespace of the stored JSON do not matter
    params = json.dumps(dict(reversed(list(r.params().items()))), indent=2)
    assert request_key(r) == record_key(json.dumps(r.messages, indent=1), params)
    assert request_key(r) != request_key(_req(1, temperature=0.4, stop=["\n"]))


def test_replay_in_another_order_gives_identical_replies(tmp_path):
    requests = [_req(i) for i in range(8)]
    fake = FakeBackend("fake-model", responder=lambda r: json.dumps({"choice": "JF"[r.seed % 2]}))
    recorded = fake.generate(requests)
    logprobs = [[{"token": "J", "logprob": -0.1 * i, "top": {"J": -0.1 * i}}] for i in range(8)]
    _record(tmp_path, requests, recorded, logprobs)

    backend = make_backend("replay", "replay", run=tmp_path)
    order = [5, 2, 7, 0, 3, 6, 1, 4]
    replies = backend.generate([requests[i] for i in order])
    for i, reply in zip(order, replies, strict=True):
        assert reply.error is None
        assert reply.text == recorded[i].text
        assert reply.prompt_tokens == recorded[i].prompt_tokens
        assert reply.completion_tokens == recorded[i].completion_tokens
        assert reply.latency_s == 0
        assert reply.logprobs == logprobs[i]
    assert backend.remaining == 0
    assert backend.describe() == {"kind": "replay", "model": "fake-model", "run": str(tmp_path)}


def test_missing_request_is_a_per_request_error(tmp_path):
    requests = [_req(i) for i in range(2)]
    _record(tmp_path, requests, FakeBackend("fake-model").generate(requests))
    backend = ReplayBackend(run=tmp_path / "run.sqlite")
    other = _req(7, text="A prompt never asked")
    out = backend.generate([requests[1], other, _req(0, seed=999)])
    assert out[0].error is None and out[0].text
    assert out[1].text == "" and "no recorded reply" in out[1].error
    assert "agent=1" in out[1].error and "round=7" in out[1].error
    assert out[2].error  # same messages, other seed: not the same request when strict
    # asked once more than recorded
    again = backend.generate([requests[1]])[0]
    assert again.error and "used up" in again.error
    assert backend.misses == 3


def test_non_strict_falls_back_to_same_messages(tmp_path):
    requests = [_req(0)]
    _record(tmp_path, requests, [ChatReply(text='{"choice": "F"}')])
    backend = ReplayBackend(run=tmp_path, strict=False)
    out = backend.generate([_req(0, seed=5, temperature=0.1)])[0]
    assert out.error is None and out.text == '{"choice": "F"}'


def test_repeated_identical_prompt_replays_in_recorded_order(tmp_path):
    r = _req(3)
    texts = ['{"choice": "J"}', '{"choice": "F"}', '{"choice": "F"}', '{"choice": "J"}']
    _record(
        tmp_path, [r] * 4, [ChatReply(text=t, completion_tokens=k) for k, t in enumerate(texts)]
    )
    backend = ReplayBackend(run=tmp_path)
    first = backend.generate([r, r])
    second = backend.generate([r, r])
    assert [x.text for x in first + second] == texts
    assert [x.completion_tokens for x in first + second] == [0, 1, 2, 3]


def test_missing_run_is_a_backend_error(tmp_path):
    with pytest.raises(BackendError, match="no recorded run"):
        ReplayBackend(run=tmp_path / "nope")


def test_store_is_opened_read_only(tmp_path):
    requests = [_req(0)]
    _record(tmp_path, requests, FakeBackend("fake-model").generate(requests))
    db = tmp_path / "run.sqlite"
    before = db.read_bytes()
    ReplayBackend(run=tmp_path).generate(requests)
    assert db.read_bytes() == before
