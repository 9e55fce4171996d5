"""A real OpenAI-compatible server for the tests: llama-cpp-python's, on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llama_server(gguf, port: int, log_path) -> subprocess.Popen:
    """Start `python -m llama_cpp.server` on 127.0.0.1:port; return once /v1/models answers."""
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
    ]  # fmt: skip
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            raise RuntimeError(f"llama_cpp.server exited: {open(log_path).read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError(
        f"llama_cpp.server did not answer within 90 s: {open(log_path).read()[-2000:]}"
    )


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server (kill it if it does not stop within 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.log.close()  # type: ignore[attr-defined]


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the server at once (a crash, not a shutdown) and reap it."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.log.close()  # type: ignore[attr-defined]
