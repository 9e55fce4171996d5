"""Benchmark: LLM decisions/s through the simulator vs straight through the backend.

1. Runs a repeated-game scenario (LLM agents vs scripted partners) through the whole
   simulator: prompts, batching, parsing, recording, SQLite commits and checkpoints.
2. Reads back the exact requests the simulator sent (from `llm_calls`), grouped in the
   batches it sent them in, and sends them again straight to the backend, timing only
   `generate`.
Prints decisions/s of both and the ratio simulator/raw (goal >= 0.9).

llamacpp and openai: each side builds its own backend, so both include one model load.
vllm: ONE engine is started before timing and serves every pass (an engine start is
30 s to minutes and would swamp the figure); its prefix cache is reset before each pass
so that no pass reuses another's KV blocks. vLLM starts worker processes, hence the
`__main__` guard below.

    python bench/llm_throughput.py --backend llamacpp [--rounds 3] [--llm 2]
    python bench/llm_throughput.py --backend openai     # starts llama.cpp's server on 127.0.0.1
    python bench/llm_throughput.py --backend vllm       # CPU: the converted embedded model
    # one GPU (see docs/gpu.md): a bigger model and population, batch cap and memory share
    python bench/llm_throughput.py --backend vllm --model Qwen/Qwen2.5-1.5B-Instruct \
        --llm 64 --rounds 5 --max-num-seqs 256 --gpu-memory-utilization 0.85
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from itertools import groupby
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.chat import ChatRequest  # noqa: E402
from society.backends import make_backend  # noqa: E402


def scenario(backend: dict, rounds: int, llm: int) -> dict:
    """LLM agents plus four scripted partners, round-robin, protocols §2 PD."""
    return {
        "name": "bench-llm",
        "seed": 3,
        "backend": backend,
        "population": {
            "groups": [
                {"name": "llm", "count": llm, "kind": "llm", "max_tokens": 16},
                {"name": "allc", "strategy": "always_cooperate"},
                {"name": "alld", "strategy": "always_defect"},
                {"name": "tft", "strategy": "tit_for_tat"},
                {"name": "once", "strategy": "defect_once"},
            ]
        },
        "game": {"kind": "repeated_2x2", "preset": "prisoners_dilemma", "rounds": rounds},
    }


def recorded_batches(run_dir: Path) -> list[tuple[list[ChatRequest], list[str]]]:
    """The simulator's requests and recorded reply texts, in the batches it sent them.

    The Decider sends one batch per step and call stage, and a stage is a purpose
    (e.g. "donate", then "donate:repair"), so a batch is one (round, purpose).
    """
    conn = sqlite3.connect(run_dir / "run.sqlite")
    rows = conn.execute(
        "SELECT round, purpose, messages, params, reply FROM llm_calls ORDER BY id"
    ).fetchall()
    conn.close()
    batches = []
    for _, group in groupby(rows, key=lambda r: (r[0], r[1])):
        calls = list(group)
        requests = [ChatRequest.from_params(json.loads(c[2]), json.loads(c[3])) for c in calls]
        batches.append((requests, [c[4] for c in calls]))
    return batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["llamacpp", "openai", "vllm"], default="llamacpp")
    ap.add_argument("--model", default="smollm2-135m", help="model name or path (vllm: HF name)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--llm", type=int, default=2, help="number of LLM agents")
    ap.add_argument("--repeat", type=int, default=3, help="alternating passes (median shown)")
    ap.add_argument("--max-model-len", type=int, default=2048, help="vllm: context length")
    ap.add_argument("--max-num-seqs", type=int, default=None, help="vllm: sequences per step")
    ap.add_argument(
        "--gpu-memory-utilization", type=float, default=None, help="vllm: share of GPU memory"
    )
    ap.add_argument(
        "--no-enforce-eager", action="store_true", help="vllm: capture CUDA graphs (GPU)"
    )
    args = ap.parse_args()

    # Imported before timing, so that the first simulator pass does not pay for them
    # while the raw passes never do.
    import society.engine  # noqa: F401
    from society.models import resolve_gguf
    from society.runner import start_run
    from society.scenario import resolve

    server = None
    shared = None  # vllm: the one engine every pass uses
    backend_cfg: dict = {"kind": "llamacpp", "model": args.model}
    if args.backend == "llamacpp":
        import llama_cpp  # noqa: F401
    elif args.backend == "openai":
        from tests.servers import free_port, start_llama_server, stop

        port = free_port()
        log = Path(tempfile.mkdtemp()) / "server.log"
        server = start_llama_server(resolve_gguf(args.model), port, log)
        backend_cfg = {"kind": "openai", "model": args.model,
                       "base_url": f"http://127.0.0.1:{port}/v1"}  # fmt: skip
    else:
        engine_kwargs = {
            k: v
            for k, v in (
                ("max_num_seqs", args.max_num_seqs),
                ("gpu_memory_utilization", args.gpu_memory_utilization),
            )
            if v is not None
        }
        backend_cfg = {"kind": "vllm", "model": args.model, "max_model_len": args.max_model_len,
                       "enforce_eager": not args.no_enforce_eager,
                       "options": {"engine_kwargs": engine_kwargs}}  # fmt: skip
    sc = resolve(scenario(backend_cfg, args.rounds, args.llm), "bench")
    cfg = sc.group_backend(sc.population.groups[0])  # the LLM group's backend, as run
    if args.backend == "vllm":
        t0 = time.perf_counter()
        shared = make_backend(cfg.kind, cfg.model, **cfg.backend_options())
        print(f"vllm engine started in {time.perf_counter() - t0:.1f} s: {shared.describe()}")

    def fresh_backend():  # the raw side's backend: a new one, or the shared engine
        if shared is None:
            return make_backend(cfg.kind, cfg.model, **cfg.backend_options())
        shared._llm.reset_prefix_cache()  # type: ignore[attr-defined]
        return shared

    sim_walls, raw_walls = [], []
    try:
        # Alternate simulator and raw passes so that a change in machine load hits both.
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                if shared is not None:
                    shared._llm.reset_prefix_cache()  # type: ignore[attr-defined]
                t0 = time.perf_counter()
                res = start_run(sc, Path(tmp) / "run", quiet=True, backends=shared)
                sim_walls.append(time.perf_counter() - t0)
                conn = sqlite3.connect(res.run_dir / "run.sqlite")
                (n_llm,) = conn.execute(
                    "SELECT COUNT(*) FROM decisions WHERE source != 'scripted'"
                ).fetchone()
                (invalid,) = conn.execute("SELECT AVG(valid = 0) FROM llm_calls").fetchone()
                conn.close()
                batches = recorded_batches(res.run_dir)
            t0 = time.perf_counter()
            backend = fresh_backend()
            for requests, _ in batches:
                backend.generate(requests)
            raw_walls.append(time.perf_counter() - t0)
            if shared is None:
                backend.close()
    finally:
        if server is not None:
            stop(server)
        if shared is not None:
            shared.close()

    calls = sum(len(requests) for requests, _ in batches)
    sim_wall, raw_wall = statistics.median(sim_walls), statistics.median(raw_walls)
    sim_rate, raw_rate = n_llm / sim_wall, n_llm / raw_wall
    pairs = ", ".join(f"{r / s:.3f}" for s, r in zip(sim_walls, raw_walls, strict=True))
    print(f"backend {args.backend} ({args.model}): {n_llm} LLM decisions, {calls} calls in "
          f"{len(batches)} batches, invalid replies {invalid or 0:.1%}")  # fmt: skip
    print(
        f"simulator : {sim_wall:8.2f} s  {sim_rate:7.3f} decisions/s (whole run: store, checkpoints)"
    )
    print(
        f"raw       : {raw_wall:8.2f} s  {raw_rate:7.3f} decisions/s (same requests, same batches)"
    )
    print(
        f"ratio simulator/raw: {sim_rate / raw_rate:.3f} (median of {args.repeat}; per pass: {pairs})"
    )


if __name__ == "__main__":
    main()
