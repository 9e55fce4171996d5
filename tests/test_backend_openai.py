"""The OpenAI-compatible backend against a real server (llama-cpp-python's) and a local stub.

All traffic goes to 127.0.0.1. The stub (`http.server`) records headers and answers from
a script (status codes, delays) to test retries, endpoints and the API key.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents.chat import ChatRequest
from society.backends import make_backend
from society.backends.base import BackendError
from society.backends.openai import OpenAIBackend
from tests.servers import start_llama_server as _start_llama_server
from tests.servers import stop as _stop

SCHEMA = {
    "type": "object",
    "properties": {"choice": {"enum": ["J", "F"]}},
    "required": ["choice"],
}
KEY = "sk-test-very-secret-4242"
KEY_ENV = "SOCIETY_TEST_OPENAI_KEY"
CANNED = '{"choice": "J"}'


def _req(i: int = 0, **kw) -> ChatRequest:
    kw.setdefault("max_tokens", 16)
    kw.setdefault("temperature", 0.7)
    return ChatRequest(
        messages=[
            {"role": "system", "content": "You play a repeated game. Reply in JSON."},
            {"role": "user", "content": f"Round {i}: choose J or F."},
        ],
        seed=i,
        **kw,
    )


# -- a scripted stub server ---------------------------------------------------------------
class Stub:
    """A local OpenAI-ish server: `script` is consumed one entry per request.

    An entry is an HTTP status (200 answers the canned completion), or ("sleep", s) to
    answer 200 after s seconds; an empty script answers 200. `by_seed` maps a request's
    seed to its status instead, for batches whose requests arrive in any order.
    """

    def __init__(self) -> None:
        self.script: list = []
        self.by_seed: dict[int, int] = {}
        self.seen: list[dict] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.seen.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    if body.get("seed") in stub.by_seed:
                        action = stub.by_seed[body["seed"]]
                    else:
                        action = stub.script.pop(0) if stub.script else 200
                if isinstance(action, tuple):
                    time.sleep(action[1])
                    action = 200
                if action == 200:
                    payload = {
                        "choices": [
                            {
                                "message": {"role": "assistant", "content": CANNED},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 5},
                    }
                else:
                    # An error body that echoes the credentials, as some proxies do.
                    payload = {
                        "error": f"status {action}; you sent {self.headers.get('Authorization')}"
                    }
                data = json.dumps(payload).encode()
                self.send_response(action)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if action == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


@pytest.fixture
def stub2():
    s = Stub()
    yield s
    s.close()


def _backend(url, **kw) -> OpenAIBackend:
    kw.setdefault("backoff_s", 0.001)
    kw.setdefault("timeout_s", 5)
    return OpenAIBackend("stub-model", base_url=url, **kw)


# -- stub tests -----------------------------------------------------------------------------
def test_api_key_is_sent_and_never_shown(stub, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    stub.by_seed = {0: 200, 1: 400}  # concurrent requests: keyed by seed, not arrival
    b = _backend(stub.url, api_key_env=KEY_ENV)
    ok, bad = b.generate([_req(0), _req(1)])
    assert ok.error is None and ok.text == CANNED
    assert (ok.prompt_tokens, ok.completion_tokens) == (11, 5)
    assert all(s["headers"]["Authorization"] == f"Bearer {KEY}" for s in stub.seen)
    assert bad.error and "HTTP 400" in bad.error
    assert KEY not in bad.error and "***" in bad.error
    assert KEY not in json.dumps(b.describe()) and KEY not in repr(vars(b).get("options"))
    desc = b.describe()
    assert {k: desc[k] for k in ("kind", "model", "base_urls", "structured")} == {
        "kind": "openai",
        "model": "stub-model",
        "base_urls": [stub.url],
        "structured": "auto",
    }
    b.close()


def test_no_key_no_authorization_header(stub, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    b = _backend(stub.url, api_key_env=KEY_ENV)
    assert b.generate([_req()])[0].error is None
    assert "Authorization" not in stub.seen[0]["headers"]
    b.close()


def test_request_body(stub):
    b = _backend(stub.url, structured="json_schema")
    b.generate([_req(3, json_schema=SCHEMA, logprobs=2, stop=["\n"], top_p=0.9)])
    body = stub.seen[0]["body"]
    assert stub.seen[0]["path"] == "/v1/chat/completions"
    assert body["model"] == "stub-model" and body["seed"] == 3 and body["stop"] == ["\n"]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.7, 0.9, 16)
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "action", "schema": SCHEMA, "strict": True},
    }
    b.close()
    b = _backend(stub.url, structured="json_object")
    b.generate([_req(json_schema=SCHEMA)])
    assert stub.seen[1]["body"]["response_format"] == {"type": "json_object", "schema": SCHEMA}
    b.close()


def test_retries_500_and_429_then_succeeds(stub):
    stub.script = [500, 429, 503, 200]
    b = _backend(stub.url, max_retries=4)
    (reply,) = b.generate([_req()])
    assert reply.error is None and reply.text == CANNED
    assert len(stub.seen) == 4
    b.close()


def test_4xx_is_not_retried(stub):
    stub.script = [400]
    b = _backend(stub.url, max_retries=4)
    (reply,) = b.generate([_req()])
    assert reply.text == "" and "HTTP 400" in reply.error
    assert len(stub.seen) == 1
    b.close()


def test_5xx_exhausted_is_a_backend_error(stub):
    stub.script = [502] * 3
    b = _backend(stub.url, max_retries=2)
    with pytest.raises(
        BackendError, match=r"no usable reply from .*: HTTP 502: .*\(after 3 attempts\)$"
    ):
        b.generate([_req()])
    assert len(stub.seen) == 3
    assert b.generate([_req()])[0].error is None  # the backend goes on working
    b.close()


def test_timeouts_are_retried(stub):
    stub.script = [("sleep", 1.0), 200]
    b = _backend(stub.url, timeout_s=0.3, max_retries=2)
    (reply,) = b.generate([_req()])
    assert reply.error is None and len(stub.seen) == 2
    b.close()


def test_requests_spread_over_base_urls_and_record_the_endpoint(stub, stub2):
    b = _backend([stub.url, stub2.url], max_concurrency=4)
    replies = b.generate([_req(i) for i in range(8)])
    assert all(r.error is None for r in replies)
    # least outstanding: neither endpoint takes more than its share of what is in flight
    assert len(stub.seen) + len(stub2.seen) == 8 and min(len(stub.seen), len(stub2.seen)) >= 2
    served = {s["body"]["seed"]: stub.url for s in stub.seen}
    served |= {s["body"]["seed"]: stub2.url for s in stub2.seen}
    assert [r.endpoint for r in replies] == [served[i] for i in range(8)]
    # idle endpoints take turns across batches
    assert {b.generate([_req(9)])[0].endpoint, b.generate([_req(10)])[0].endpoint} == {
        stub.url,
        stub2.url,
    }
    b.close()


def test_failover_to_a_live_endpoint(stub, free_port):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    b = _backend([dead, stub.url], max_retries=2)
    replies = b.generate([_req(i) for i in range(4)])
    assert all(r.error is None for r in replies)
    assert len(stub.seen) == 4
    b.close()


def test_unreachable_server_is_a_backend_error(free_port, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    url = f"http://127.0.0.1:{free_port()}/v1"
    b = _backend(url, api_key_env=KEY_ENV, max_retries=2)
    with pytest.raises(BackendError) as info:
        b.generate([_req(i) for i in range(3)])
    msg = str(info.value)
    assert msg.startswith(f"openai backend: cannot reach {url}: ")
    assert "\n" not in msg and KEY not in msg and "3 attempts" in msg
    b.close()


def test_generate_works_repeatedly_and_inside_a_running_loop(stub):
    import asyncio

    b = _backend(stub.url)
    for _ in range(3):
        assert b.generate([_req(), _req(1)])[1].error is None

    async def from_async_code():  # as in a notebook, where a loop is already running
        return b.generate([_req(2)])

    assert asyncio.run(from_async_code())[0].error is None
    assert b.generate([]) == []
    b.close()
    b.close()


def test_bad_options():
    with pytest.raises(ValueError, match="structured"):
        OpenAIBackend("m", structured="xml")
    with pytest.raises(ValueError, match="base_url"):
        OpenAIBackend("m", base_url=[])


# -- a real llama-cpp-python server -----------------------------------------------------------


@pytest.fixture(scope="module")
def llama_server(embedded_gguf, free_port, tmp_path_factory):
    pytest.importorskip("llama_cpp.server.app")
    port = free_port()
    proc = _start_llama_server(embedded_gguf, port, tmp_path_factory.mktemp("srv") / "log")
    yield f"http://127.0.0.1:{port}/v1"
    _stop(proc)


@pytest.mark.llm
def test_schema_batch_on_llama_cpp_server(llama_server):
    b = make_backend("openai", "smollm2-135m", base_url=llama_server, max_concurrency=3)
    replies = b.generate([_req(i, json_schema=SCHEMA, max_tokens=24) for i in range(3)])
    for r in replies:
        assert r.error is None, r.error
        assert json.loads(r.text)["choice"] in ("J", "F")
        assert r.prompt_tokens > 10 and r.completion_tokens > 0 and r.latency_s > 0
    # llama-cpp-python's server rejects json_schema; "auto" switched to json_object
    assert b._style[llama_server] == "json_object"
    b.close()


@pytest.mark.llm
def test_logprobs_and_two_urls_on_llama_cpp_server(llama_server):
    b = OpenAIBackend(
        # the same server twice is refused; a second URL nothing answers is failed over
        "smollm2-135m",
        base_url=[llama_server + "/", llama_server.replace("127.0.0.1", "127.0.0.2")],
        structured="json_object",
    )
    replies = b.generate([_req(i, json_schema=SCHEMA, logprobs=2) for i in range(2)])
    for r in replies:
        assert r.error is None, r.error
        assert json.loads(r.text)["choice"] in ("J", "F")
        assert r.logprobs and {"token", "logprob", "top"} <= set(r.logprobs[0])
        assert "".join(t["token"] for t in r.logprobs) == r.text
    b.close()


@pytest.mark.llm
def test_killed_server_is_a_backend_error(embedded_gguf, free_port, tmp_path):
    port = free_port()
    proc = _start_llama_server(embedded_gguf, port, tmp_path / "log")
    url = f"http://127.0.0.1:{port}/v1"
    b = OpenAIBackend("smollm2-135m", base_url=url, max_retries=2, backoff_s=0.01)
    try:
        assert b.generate([_req(max_tokens=4)])[0].error is None
    finally:
        _stop(proc)
    with pytest.raises(BackendError, match=f"^openai backend: cannot reach {url}: ") as info:
        b.generate([_req(i, max_tokens=4) for i in range(3)])
    assert "\n" not in str(info.value)
    b.close()
