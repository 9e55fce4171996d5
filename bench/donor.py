"""Benchmark: the donor-game protocol on the embedded model vs the raw backend, same run.

1. Runs the donor game with cultural evolution through the simulator (`start_run`) on the
   scenario's backend (default: the embedded llama.cpp SmolLM2-135M).
2. Takes every prompt the simulator sent (the `llm_calls` table: messages, sampling
   parameters, seed, schema) and sends them straight to a fresh backend of the same kind
   with `Backend.generate`, in the same batches (one batch per step and call stage, as
   the `Decider` sent them).
3. Prints decisions/s of both and their ratio (simulator / raw: 1.0 means no overhead),
   the share of identical replies (same seeds), and the wall time of one generation.
4. Prints the donation invalid rate (decisions that fell back after the one repair) and
   why replies failed, first asks and repairs apart: no JSON object (e.g. cut off by
   `max_tokens`), amount not a number, amount out of range, other. Since donations are
   bounded in the grammar itself (`games.protocol.number_schema`), "out of range" cannot
   occur on a grammar-constrained backend.

`--no-raw` skips step 2 (half the time; invalid rates only), `--keep DIR` keeps the run.

Default size is reduced (4 agents, 4 rounds, 1 game, 1 generation) so that it finishes in
a few minutes on 2 CPU cores; `--full` plays one generation of the paper's size
(12 agents, 2 games of 12 rounds), the unit the issue asks to time.

    python bench/donor.py                 # reduced
    python bench/donor.py --full          # one full generation of the paper's protocol
    python bench/donor.py --agents 6 --rounds 6 --generations 2 --backend llamacpp
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.llm_throughput import recorded_batches  # noqa: E402
from society.backends import make_backend  # noqa: E402
from society.config import LLMGroup  # noqa: E402
from society.runner import start_run  # noqa: E402
from society.scenario import load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CAUSES = ("valid", "no JSON object", "amount not a number", "amount out of range", "other")


def reply_cause(reply: str | None, schema: dict | None) -> str:
    """Why a donation reply is (in)valid, judged from its text and the request's schema
    (``schema["properties"]["amount"]["maximum"]`` is the donor's resources)."""
    from agents.llm import InvalidReply, parse_json_object

    try:
        obj = parse_json_object(reply or "")
    except InvalidReply:
        return "no JSON object"
    amount = obj.get("amount")
    if isinstance(amount, str):
        try:
            amount = float(amount.strip())
        except ValueError:
            return "amount not a number"
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return "amount not a number"
    top = ((schema or {}).get("properties", {}).get("amount") or {}).get("maximum")
    if top is not None and not 0 <= amount <= float(top) + 1e-9:
        return "amount out of range"
    return "valid" if isinstance(obj.get("punish", False), bool) else "other"


def reply_causes(db: Path) -> dict[str, Counter[str]]:
    """Per call purpose ('donate', 'donate:repair'), how many replies had each cause."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT purpose, reply, params FROM llm_calls WHERE purpose LIKE 'donate%'"
    ).fetchall()
    conn.close()
    out: dict[str, Counter[str]] = {}
    for purpose, reply, params in rows:
        schema = json.loads(params).get("json_schema")
        out.setdefault(purpose, Counter())[reply_cause(reply, schema)] += 1
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "donor_game.yaml"))
    ap.add_argument("--full", action="store_true", help="one generation of the paper's size")
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--games", type=int, default=1)
    ap.add_argument("--generations", type=int, default=1)
    ap.add_argument("--backend", default=None, help="backend kind (default: the scenario's)")
    ap.add_argument("--model", default=None, help="model (default: the scenario's)")
    ap.add_argument("--set", action="append", default=[], help="extra scenario overrides")
    ap.add_argument("--no-raw", action="store_true", help="skip the raw-backend replay")
    ap.add_argument("--keep", default=None, help="keep the run in this directory")
    args = ap.parse_args(argv)
    if args.full:
        args.agents, args.rounds, args.games = 12, 12, 2
    overrides = [
        f"population.groups.0.count={args.agents}",
        f"game.rounds={args.rounds}",
        f"game.games_per_generation={args.games}",
        f"evolution.generations={args.generations}",
        *args.set,
    ]
    sc = load_scenario(args.scenario, overrides, backend=args.backend, model=args.model)
    group = sc.population.groups[0]
    if not isinstance(group, LLMGroup):
        ap.error(f"{args.scenario}: the first group must be an LLM group")
    cfg = sc.group_backend(group)
    print(
        f"donor-game bench: {args.agents} agents, {args.games} game(s) x {args.rounds} rounds, "
        f"{args.generations} generation(s); backend {cfg.kind}/{cfg.model}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.keep) if args.keep else Path(tmp) / "run"
        t0 = time.perf_counter()
        result = start_run(sc, run_dir, quiet=True)
        total = time.perf_counter() - t0
        conn = sqlite3.connect(run_dir / "run.sqlite")
        steps = conn.execute("SELECT SUM(wall_s) FROM rounds").fetchone()[0]
        per_gen = conn.execute(
            "SELECT generation, SUM(wall_s) FROM rounds GROUP BY generation"
        ).fetchall()
        n_dec = conn.execute(
            "SELECT COUNT(*) FROM decisions WHERE llm_call_id IS NOT NULL"
        ).fetchone()[0]
        n_don, invalid = conn.execute(
            "SELECT COUNT(*), AVG(valid = 0) FROM decisions "
            "WHERE kind='donate' AND llm_call_id IS NOT NULL"
        ).fetchone()
        conn.close()
        causes = reply_causes(run_dir / "run.sqlite")
        batches = recorded_batches(run_dir)
    n_calls = sum(len(requests) for requests, _ in batches)
    print(f"  run wall time (incl. model load): {total:.1f}s; status {result.status}")
    print(f"  LLM decisions: {n_dec} ({n_calls} calls in {len(batches)} batches)")
    print(f"  donation invalid rate (fallback): {invalid or 0:.1%} of {n_don} LLM donations")
    for purpose in sorted(causes):
        counts = causes[purpose]
        shown = ", ".join(f"{c} {counts[c]}" for c in CAUSES if counts[c])
        print(f"  {purpose} replies ({sum(counts.values())}): {shown}")
    print(f"  simulator: {steps:.1f}s stepping -> {n_dec / steps:.3f} decisions/s")
    for gen, wall in per_gen:
        print(f"  generation {gen + 1}: {wall:.1f}s wall")
    if args.no_raw:
        return 0
    backend = make_backend(cfg.kind, cfg.model, **cfg.backend_options())
    try:
        backend.generate(batches[0][0][:1])  # warm-up (not timed)
        raw = 0.0
        same = 0
        completion = 0
        for requests, recorded in batches:
            t = time.perf_counter()
            replies = backend.generate(requests)
            raw += time.perf_counter() - t
            same += sum(r.text == text for r, text in zip(replies, recorded, strict=True))
            completion += sum(r.completion_tokens for r in replies)
    finally:
        backend.close()
    sim_rate = n_dec / steps
    raw_rate = n_dec / raw
    print(f"  raw backend, same prompts and batches: {raw:.1f}s -> {raw_rate:.3f} decisions/s")
    print(f"  ratio simulator/raw: {sim_rate / raw_rate:.3f}")
    print(f"  identical replies on replay: {same}/{n_calls}; raw completion tokens {completion}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
