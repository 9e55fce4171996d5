"""Benchmark: the embedded llama.cpp backend with and without prompt-prefix reuse.

Two backends on the same GGUF, `prefix_cache=True` (the default) and `prefix_cache=False`
(every prompt evaluated from scratch, in the same canonical chunks), answer the same
batches; the two modes alternate batch by batch (the machine is shared: interleaving
spreads the load on both alike). Each timed batch starts with a cold cache. Prints wall
time, prompt tokens/s, the ratio, and whether both modes gave the same replies (they
must: same text and same log-probabilities).

1. `shared`: 12 requests sharing a ~300-token system message, short user messages.
2. `repeated`: the simulator's repeated prisoner's dilemma prompts (rules as system
   message, history + question as user message; options shown in either order), one
   batch per round, 6 matches x 2 LLM players.

    .venv/bin/python bench/llamacpp_prefix.py [--reps 3] [--rounds 4]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.chat import ChatRequest  # noqa: E402
from agents.llm_player import LLMPlayer  # noqa: E402
from agents.prompts import Prompts  # noqa: E402
from games.observation import RepeatedObservation  # noqa: E402
from society.backends.llamacpp import LlamaCppBackend  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {"choice": {"enum": ["J", "F"]}},
    "required": ["choice"],
}
PD = (((8.0, 8.0), (0.0, 10.0)), ((10.0, 0.0), (5.0, 5.0)))


def shared_batch(n: int = 12) -> list[ChatRequest]:
    rules = " ".join(
        f"Rule {i}: if you choose Option J and the other player chooses Option F in round "
        f"{i}, you win {i % 7} points and the other player wins {(3 * i) % 11} points."
        for i in range(1, 11)
    )
    system = {"role": "system", "content": "You are playing a game repeatedly. " + rules}
    return [
        ChatRequest(
            messages=[system, {"role": "user", "content": f"Table {i}: choose J or F."}],
            seed=i,
            temperature=0.7,
            max_tokens=16,
            json_schema=SCHEMA,
        )
        for i in range(n)
    ]


def repeated_batches(rounds: int, matches: int = 6) -> list[list[ChatRequest]]:
    prompts = Prompts()
    player = LLMPlayer(prompts, max_tokens=16)
    rng = random.Random(5)
    moves = {(m, s): [] for m in range(matches) for s in range(2)}
    batches = []
    for rnd in range(1, rounds + 1):
        batch = []
        for m in range(matches):
            for side in range(2):
                order = (0, 1) if rng.random() < 0.5 else (1, 0)
                obs = RepeatedObservation(
                    rounds=rounds,
                    my_moves=moves[m, side],
                    their_moves=moves[m, 1 - side],
                    payoffs=PD,
                    labels=("J", "F"),
                    order=order,
                )
                first, second = (obs.labels[i] for i in order)
                history = player.history(obs)
                question = prompts.render(
                    "repeated.question", round=rnd, first=first, second=second
                )
                batch.append(
                    ChatRequest(
                        messages=[
                            {"role": "system", "content": player.system_prompt(obs)},
                            {
                                "role": "user",
                                "content": (f"{history}\n" if history else "") + question,
                            },
                        ],
                        seed=1000 * rnd + 10 * m + side,
                        temperature=0.7,
                        max_tokens=16,
                        json_schema=SCHEMA,
                    )
                )
        batches.append(batch)
        for m in range(matches):
            for side in range(2):
                moves[m, side] = [*moves[m, side], rng.randrange(2)]
    return batches


def timed(backend: LlamaCppBackend, batch: list[ChatRequest]) -> tuple[float, list]:
    backend.clear_cache()
    t0 = time.perf_counter()
    replies = backend.generate(batch)
    return time.perf_counter() - t0, replies


def compare(name: str, batches: list[list[ChatRequest]], on, off, reps: int) -> None:
    walls = {True: [], False: []}
    same = True
    for rep in range(reps):
        total = {True: 0.0, False: 0.0}
        got = {}
        for mode in (True, False) if rep % 2 == 0 else (False, True):
            backend = on if mode else off
            outs = []
            for batch in batches:
                wall, replies = timed(backend, batch)
                total[mode] += wall
                outs += [(r.text, json.dumps(r.logprobs), r.error) for r in replies]
            got[mode] = outs
        same &= got[True] == got[False]
        for mode in walls:
            walls[mode].append(total[mode])
    n_req = sum(len(b) for b in batches)
    prompt_tokens = PROMPT_TOKENS[name]
    print(
        f"\n{name}: {len(batches)} batch(es), {n_req} requests, {prompt_tokens} prompt tokens, reps={reps}"
    )
    for mode, label in ((False, "from scratch "), (True, "prefix reuse ")):
        med = statistics.median(walls[mode])
        print(
            f"  {label}: median wall {med:7.2f} s  ({', '.join(f'{w:.2f}' for w in walls[mode])})"
            f"  {prompt_tokens / med:7.1f} prompt tok/s  {n_req / med:5.2f} req/s"
        )
    ratios = [a / b for a, b in zip(walls[False], walls[True], strict=True)]
    best = min(walls[False]) / min(walls[True])
    print(
        f"  speedup (from scratch / reuse): median of paired reps {statistics.median(ratios):.2f}x"
        f" ({', '.join(f'{r:.2f}' for r in ratios)}), best-of {best:.2f}x   same replies: {same}"
    )


PROMPT_TOKENS: dict[str, int] = {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    on = LlamaCppBackend(prefix_cache=True)
    off = LlamaCppBackend(prefix_cache=False)
    print(f"model {on.gguf.name}, n_threads={on.n_threads}")
    try:
        cases = {"shared": [shared_batch()], "repeated": repeated_batches(args.rounds)}
        for name, batches in cases.items():
            on.generate([r for b in batches for r in b][:1])  # warm-up (both engines)
            off.generate([r for b in batches for r in b][:1])
            before = dict(on.stats)
            for b in batches:
                on.clear_cache()
                on.generate(b)
            PROMPT_TOKENS[name] = on.stats["prompt_tokens"] - before["prompt_tokens"]
            evaluated = on.stats["prompt_tokens_evaluated"] - before["prompt_tokens_evaluated"]
            print(
                f"[{name}] with reuse {evaluated} of {PROMPT_TOKENS[name]} prompt tokens are "
                f"evaluated ({evaluated / PROMPT_TOKENS[name]:.0%})"
            )
            compare(name, batches, on, off, args.reps)
    finally:
        on.close()
        off.close()


if __name__ == "__main__":
    main()
