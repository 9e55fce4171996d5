"""Benchmark: prompt tokens computed with and without the shared-first prompt layout.

The prompts are the simulator's own: one step of the commons game (fishery framing)
played on the `fake` backend, every agent's harvest request recorded, (1) with the
shipped layout (the rules every agent shares first, the agent's name at the end of the
rules) and (2) the same prompts in the layout first shipped (the name opening the rules: "You
are {name}, one of ..."; `name_first`). Each set is sent as one batch through
the `Decider` (sorted by prefix, as a run sends it) to the embedded llama.cpp backend,
whose KV cache keeps the longest common prefix with the previous prompt
(`stats["prompt_tokens_evaluated"]`: the prompt tokens actually computed). The bench
prints both counts, the share saved (goal >= 40 %), and, as a second baseline, the
shipped layout sent in shuffled order (no prefix sort).

With ``--vllm`` the same three batches also go to the vLLM engine (the CPU build here,
a GPU build elsewhere), its automatic prefix cache reset before each; the tokens computed
are its prefix-cache queries minus hits (the ``vllm:prefix_cache_queries`` and
``vllm:prefix_cache_hits`` counters of ``LLM.get_metrics()``, in tokens).

    .venv/bin/python bench/prefix.py [--agents 8] [--vllm]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.chat import ChatRequest  # noqa: E402
from society.backends.llamacpp import LlamaCppBackend  # noqa: E402
from society.decide import Decider, Job  # noqa: E402
from society.runner import start_run  # noqa: E402
from society.scenario import load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def name_first(messages: list[dict]) -> list[dict]:
    """The same prompt in the layout first shipped: the name opened the rules ("You are
    {name}, one of ..."), the user message held no name line."""
    system, user = messages[0]["content"], messages[1]["content"]
    line, _, rest = user.partition("\n")
    name = line.removeprefix("Your name is ").removesuffix(".")
    old = system.replace("You are one of", f"You are {name}, one of", 1)
    return [{"role": "system", "content": old}, {"role": "user", "content": rest}]


def step_prompts(agents: int, tmp: Path, prompts: dict[str, str]) -> list[list[dict]]:
    """The first step's harvest prompts of a short commons run (fake backend)."""
    path = ROOT / "scenarios" / "commons_fishery.yaml"
    sc = load_scenario(path, ["game.months=1"], backend="fake", model="fake")
    groups = [g.model_copy(update={"count": agents}) for g in sc.population.groups[:1]]
    sc = sc.model_copy(
        update={
            "prompts": prompts,
            "population": sc.population.model_copy(update={"groups": groups}),
        }
    )
    run = tmp / f"run{len(list(tmp.iterdir()))}"
    start_run(sc, run, quiet=True)
    conn = sqlite3.connect(run / "run.sqlite")
    try:
        rows = conn.execute(
            "SELECT messages, purpose FROM llm_calls WHERE round = 0 ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    first = rows[0][1]
    return [json.loads(m) for m, p in rows if p == first]


def computed(backend: LlamaCppBackend, prompts: list[list[dict]], *, sort: bool) -> tuple[int, int]:
    """(prompt tokens, prompt tokens computed) of one batch through the Decider."""

    def job(k: int, messages: list[dict]) -> Job:
        def gen():
            return (yield ChatRequest(messages=messages, max_tokens=1, temperature=0.0, seed=k))

        return Job(k, "b", gen())

    decider = Decider({"b": backend}, base_seed=0)
    if not sort:  # the baseline: the batch as it comes, unsorted
        import society.decide as decide

        keep = decide._prefix_order
        decide._prefix_order = lambda reqs: list(range(len(reqs)))
    try:
        backend.clear_cache()  # each batch starts cold
        before = dict(backend.stats)
        decider.run([job(k, m) for k, m in enumerate(prompts)], 0)
    finally:
        if not sort:
            decide._prefix_order = keep
    total = backend.stats["prompt_tokens"] - before["prompt_tokens"]
    done = backend.stats["prompt_tokens_evaluated"] - before["prompt_tokens_evaluated"]
    return total, done


def _vllm_counters(llm: Any) -> tuple[float, float]:
    """(prefix-cache queries, hits) so far, in tokens, from the engine's metrics."""
    got = {m.name: m.value for m in llm.get_metrics() if hasattr(m, "value")}
    return got.get("vllm:prefix_cache_queries", 0.0), got.get("vllm:prefix_cache_hits", 0.0)


def computed_vllm(backend: Any, prompts: list[list[dict]], *, sort: bool) -> tuple[int, int]:
    """(prompt tokens, prompt tokens computed) of one batch through the Decider to vLLM."""
    llm = backend._llm
    llm.reset_prefix_cache()  # each batch starts cold
    q0, h0 = _vllm_counters(llm)
    order = list(range(len(prompts)))
    if sort:  # the order a run sends (the Decider sorts by prefix)
        from society.decide import _prefix_order

        order = _prefix_order([ChatRequest(messages=m) for m in prompts])
    backend.generate(
        [ChatRequest(messages=prompts[i], max_tokens=1, temperature=0.0, seed=i) for i in order]
    )
    q1, h1 = _vllm_counters(llm)
    return int(q1 - q0), int((q1 - q0) - (h1 - h0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--vllm", action="store_true", help="also measure the vLLM engine")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shared = step_prompts(args.agents, Path(tmp), {})
    old = [name_first(m) for m in shared]
    backend = LlamaCppBackend(prefix_cache=True)
    try:
        rows = {
            "shared-first, sorted": computed(backend, shared, sort=True),
            "name-first (old), sorted": computed(backend, old, sort=True),
        }
        shuffled = list(shared)
        random.Random(0).shuffle(shuffled)
        rows["shared-first, unsorted"] = computed(backend, shuffled, sort=False)
    finally:
        backend.close()
    print(f"commons (fishery), {args.agents} agents, one step's harvest prompts, llama.cpp:")
    for name, (total, done) in rows.items():
        print(f"  {name:26s} prompt tokens {total:6d}, computed {done:6d}")
    new_n, old_n = rows["shared-first, sorted"][1], rows["name-first (old), sorted"][1]
    print(
        f"  tokens computed: {new_n} vs {old_n} with the old layout: {1 - new_n / old_n:.0%} fewer"
    )
    if args.vllm:
        vllm_rows(shared, old, shuffled)


def vllm_rows(shared: list[list[dict]], old: list[list[dict]], shuffled: list[list[dict]]) -> None:
    """The same three batches on the vLLM engine (its prefix-cache counters)."""
    from society.backends.vllm import VLLMBackend

    backend = VLLMBackend(engine_kwargs={"disable_log_stats": False})
    try:
        rows = {
            "shared-first, sorted": computed_vllm(backend, shared, sort=True),
            "name-first (old), sorted": computed_vllm(backend, old, sort=True),
            "shared-first, unsorted": computed_vllm(backend, shuffled, sort=False),
        }
    finally:
        backend.close()
    print(f"vLLM {backend.describe().get('vllm', '')} prefix cache, same prompts:")
    for name, (total, done) in rows.items():
        print(f"  {name:26s} prompt tokens {total:6d}, computed {done:6d}")
    new, old_n = rows["shared-first, sorted"][1], rows["name-first (old), sorted"][1]
    print(f"  tokens computed: {new} vs {old_n} with the old layout: {1 - new / old_n:.0%} fewer")


if __name__ == "__main__":
    main()
