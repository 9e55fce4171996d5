"""API keys never reach the run store, its files, the report or the output.

A real `society run` talks to an OpenAI-compatible stub on 127.0.0.1 with a key from the
environment (the server sees it, so it was really used); a second stub answers errors
that echo the Authorization header back, the way some proxies do. Every byte of the run
directory, of the report and of the captured stdout/stderr is then searched for the key.
Keys written into a scenario are refused before anything is stored."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import run_cli, write_scenario

KEY = "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
ENV = "SOCIETY_TEST_API_KEY"


class Stub(ThreadingHTTPServer):
    """`/v1/chat/completions`: valid replies, or (echo) a 500 that quotes the request's
    Authorization header. Records the headers it saw."""

    daemon_threads = True

    def __init__(self, echo: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.echo = echo
        self.auth: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: Stub

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        auth = self.headers.get("Authorization", "")
        self.server.auth.append(auth)
        if self.server.echo:
            self._send(500, {"error": {"message": f"upstream refused credentials {auth!r}"}})
            return
        self._send(200, {
            "id": "x", "object": "chat.completion", "model": body.get("model", "m"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": _content(body)}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        })  # fmt: skip

    def _send(self, status: int, doc: dict) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _content(body: dict) -> str:
    """A reply that fits the request's JSON schema (first enum value, lowest number)."""
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or {}
    out = {}
    for name, prop in schema.get("properties", {}).items():
        if "enum" in prop:
            out[name] = prop["enum"][0]
        elif prop.get("type") in ("number", "integer"):
            out[name] = prop.get("minimum", 0)
        else:
            out[name] = "ok"
    return json.dumps(out) if schema else "C"


@pytest.fixture
def stub(request) -> Iterator[Stub]:
    server = Stub(echo=request.param == "echo")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def scenario(url: str, **backend) -> dict:
    return {
        "name": "secrets",
        "seed": 4,
        "backend": {
            "kind": "openai", "model": "stub-model", "base_url": url, "api_key_env": ENV,
            "max_retries": 1, "timeout_s": 5, **backend,
        },
        "population": {"groups": [
            {"name": "llm", "kind": "llm", "count": 2, "max_tokens": 16},
            {"name": "tft", "count": 2, "strategy": "tit_for_tat"},
        ]},
        "game": {"kind": "repeated_2x2", "rounds": 3},
    }  # fmt: skip


def files_holding(root: Path, secret: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


@pytest.mark.slow
@pytest.mark.parametrize("stub", ["ok", "echo"], indirect=True)
def test_the_key_reaches_the_server_and_nothing_else(stub, tmp_path):
    url = f"http://127.0.0.1:{stub.server_address[1]}/v1"
    spec = write_scenario(tmp_path / "s.yaml", scenario(url))
    run_dir = tmp_path / "run"
    env = {ENV: KEY}
    outputs = [run_cli("run", str(spec), "--out", str(run_dir), **env)]
    assert stub.auth and all(a == f"Bearer {KEY}" for a in stub.auth)  # the key was used
    if stub.echo:  # the run stops after its retries: one line, then resume (stops again)
        assert outputs[0].returncode == 2, outputs[0].stderr
        assert "society resume" in outputs[0].stderr
        outputs.append(run_cli("resume", str(run_dir), **env))
        assert outputs[-1].returncode == 2
    else:
        assert outputs[0].returncode == 0, outputs[0].stderr
    outputs += [run_cli("show", str(run_dir), **env), run_cli("analyze", str(run_dir), **env)]
    assert outputs[-1].returncode == 0, outputs[-1].stderr
    secret = KEY.encode()
    assert files_holding(run_dir, secret) == []  # store, WAL, scenario copy, report
    for out in outputs:
        assert KEY not in out.stdout and KEY not in out.stderr, out.stderr
    stored = list(run_dir.rglob("*"))
    assert any(p.name == "summary.html" for p in stored)
    if stub.echo:  # the error was recorded, with the key masked
        assert "***" in " ".join(o.stderr for o in outputs)


@pytest.mark.parametrize(
    ("backend", "field"),
    [
        ({"options": {"api_key": KEY}}, "backend.options.api_key"),
        ({"options": {"Authorization": f"Bearer {KEY}"}}, "backend.options.Authorization"),
        ({"api_key_env": KEY}, "backend.api_key_env"),
        ({"base_url": f"http://user:{KEY}@127.0.0.1:9/v1"}, "backend.base_url"),
    ],
    ids=["options_api_key", "options_header", "key_as_env_name", "url_password"],
)
def test_a_key_written_into_the_scenario_is_refused_unstored(backend, field, tmp_path):
    spec = write_scenario(tmp_path / "s.yaml", scenario("http://127.0.0.1:9/v1", **backend))
    run_dir = tmp_path / "run"
    out = run_cli("run", str(spec), "--out", str(run_dir))
    assert out.returncode == 2, out.stderr
    line = out.stderr.strip()
    assert "\n" not in line and field in line and "environment variable" in line, line
    assert KEY not in out.stderr + out.stdout
    assert not run_dir.exists()
