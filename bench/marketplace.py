"""Benchmark: the marketplace simulator beside the raw backend on the same requests.

1. Plays a marketplace of LLM customers and LLM businesses through the whole simulator
   (prompts, schemas, batching, parsing, the market's rules, SQLite commits, checkpoints).
2. Reads back the exact requests it sent (``llm_calls``), in the batches it sent them (one
   per step and purpose), and sends them again straight to a fresh backend, timing only
   ``generate``.

Prints steps/s and decisions/s of the simulator and of the raw backend and their ratio
(goal >= 0.95 on a real backend, where the model's time dominates), and the wall time of
the run. ``--backend fake`` (the default) answers with a small protocol-playing responder
(search, write, read, pay; propose at list price), so the run measures the simulator's own
cost: a 100 x 300 market on the fake backend.

    python bench/marketplace.py                                   # 100 x 300, fake backend
    python bench/marketplace.py --backend llamacpp --customers 3 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from itertools import groupby
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.chat import ChatRequest  # noqa: E402

_PRICE = re.compile(r"^- (.+): (\d+\.\d\d)$", re.MULTILINE)


def play(req: ChatRequest) -> str:
    """A deterministic fake LLM that plays the marketplace protocol sensibly."""
    props = req.json_schema["properties"] if req.json_schema else {}
    if "kind" in props:  # a business: propose its first menu item at its list price
        item = props["items"]["items"]["properties"]["name"]["enum"][0]
        prices = dict(_PRICE.findall(req.messages[0]["content"]))
        price = float(prices.get(item, 1.0))
        line = {"name": item, "quantity": 1, "unit_price": price}
        return json.dumps({"kind": "proposal", "text": "Here is our offer.", "items": [line],
                           "total": price})  # fmt: skip
    empty = {"query": "", "page": 1, "to": "", "text": "", "proposal_id": ""}
    offers = [p for p in props.get("proposal_id", {}).get("enum", []) if p]
    known = [b for b in props.get("to", {}).get("enum", []) if b]
    prompt = req.messages[-1]["content"]
    if "payment accepted" in prompt:
        return json.dumps({**empty, "action": "end"})
    if offers:
        return json.dumps({**empty, "action": "pay", "proposal_id": offers[0]})
    wrote = prompt.count("you wrote to")
    if known and wrote < min(3, len(known)):
        return json.dumps({**empty, "action": "send_text", "to": known[wrote], "text": "An offer?"})
    if known:
        return json.dumps({**empty, "action": "check_messages"})
    return json.dumps({**empty, "action": "search", "query": "tacos and soup"})


def scenario(backend: dict, customers: int, businesses: int, rounds: int) -> dict:
    """LLM customers and LLM businesses, lexical search, bandwidth 10."""
    return {
        "name": "bench-marketplace",
        "seed": 7,
        "backend": backend,
        "population": {
            "groups": [
                {"name": "customers", "kind": "llm", "count": customers},
                {"name": "businesses", "kind": "llm", "count": businesses},
            ]
        },
        "game": {
            "kind": "marketplace",
            "customers": customers,
            "businesses": businesses,
            "rounds": rounds,
            "history": 6,
        },  # fmt: skip
    }


def recorded_batches(run_dir: Path) -> list[list[ChatRequest]]:
    """The simulator's requests in the batches it sent them: one per (step, purpose)."""
    conn = sqlite3.connect(run_dir / "run.sqlite")
    rows = conn.execute(
        "SELECT round, purpose, messages, params FROM llm_calls ORDER BY id"
    ).fetchall()
    conn.close()
    return [
        [ChatRequest.from_params(json.loads(c[2]), json.loads(c[3])) for c in group]
        for _, group in groupby(rows, key=lambda r: (r[0], r[1]))
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["fake", "llamacpp"], default="fake")
    ap.add_argument("--customers", type=int, default=100)
    ap.add_argument("--businesses", type=int, default=None, help="default: 3 per customer")
    ap.add_argument("--rounds", type=int, default=100, help="each customer's step budget")
    ap.add_argument("--repeat", type=int, default=3, help="alternating passes (median shown)")
    args = ap.parse_args()
    m = args.businesses or 3 * args.customers

    import society.engine  # noqa: F401  (imported before timing)
    from society.backends import make_backend
    from society.backends.fake import FakeBackend
    from society.runner import start_run
    from society.scenario import resolve

    cfg = {"kind": "llamacpp", "model": "smollm2-135m", "n_ctx": 4096}

    def backend():
        if args.backend == "fake":
            return FakeBackend("fake", responder=play)
        return make_backend("llamacpp", "smollm2-135m", n_ctx=4096)

    sc = resolve(scenario(cfg, args.customers, m, args.rounds), "bench")
    sim: list[float] = []
    raw: list[float] = []
    cpu: list[float] = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            b = backend()
            t0, c0 = time.perf_counter(), time.process_time()
            res = start_run(sc, Path(tmp) / "run", quiet=True, backends=b)
            sim.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            conn = sqlite3.connect(res.run_dir / "run.sqlite")
            (n_llm,) = conn.execute(
                "SELECT COUNT(*) FROM decisions WHERE source != 'scripted'"
            ).fetchone()
            (invalid,) = conn.execute("SELECT AVG(valid = 0) FROM decisions").fetchone()
            (paid,) = conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'payment'").fetchone()
            conn.close()
            batches = recorded_batches(res.run_dir)
            b.close()
        b = backend()
        t0 = time.perf_counter()
        for requests in batches:
            b.generate(requests)
        raw.append(time.perf_counter() - t0)
        b.close()
    steps = res.steps
    calls = sum(len(x) for x in batches)
    s, r = statistics.median(sim), statistics.median(raw)
    print(f"market {args.customers} x {m}, backend {args.backend}: {steps} steps, {n_llm} LLM "
          f"decisions, {calls} calls in {len(batches)} batches, {paid} payments, invalid "
          f"decisions {invalid or 0:.1%}")  # fmt: skip
    print(f"simulator : {s:8.3f} s  {steps / s:9.3g} steps/s  {n_llm / s:10.4g} decisions/s  "
          "(whole run: prompts, rules, store, checkpoints)")  # fmt: skip
    print(f"raw       : {r:8.3f} s  {steps / r:9.3g} steps/s  {n_llm / r:10.4g} decisions/s  "
          "(same requests, same batches)")  # fmt: skip
    print(f"ratio simulator/raw: {r / s:.3f} (median of {args.repeat}); wall time of the run: "
          f"{s:.2f} s ({statistics.median(cpu):.2f} s of CPU in this process)")  # fmt: skip


if __name__ == "__main__":
    main()
