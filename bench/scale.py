"""Scale: a 10,000-agent population of scripted strategies on a small-world network.

Runs the scenario through the normal runner (SQLite store, a checkpoint per round) and
prints wall time, decisions/s, store size and peak memory (resident set, from the OS).

    python bench/scale.py [--agents 10000] [--rounds 100] [--k 4]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIX = [
    ("tit_for_tat", 0.25),
    ("win_stay_lose_shift", 0.2),
    ({"name": "generous_tft", "generosity": 0.2}, 0.2),
    ("grim_trigger", 0.1),
    ({"name": "random", "p": 0.5}, 0.15),
    ("always_defect", 0.1),
]


def scenario(agents: int, rounds: int, k: int) -> dict:
    """A mixed population on a connected Watts-Strogatz small world."""
    counts = [int(agents * share) for _, share in MIX]
    counts[0] += agents - sum(counts)
    groups = [
        {"name": f"g{i}", "count": n, "strategy": strat}
        for i, ((strat, _), n) in enumerate(zip(MIX, counts, strict=True))
    ]
    return {
        "name": "scale",
        "seed": 0,
        "population": {"groups": groups},
        "network": {"kind": "small_world", "k": k, "p": 0.1},
        "game": {"kind": "repeated_2x2", "preset": "prisoners_dilemma", "rounds": rounds},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--keep", help="keep the run in this directory")
    args = ap.parse_args()

    from society.runner import start_run
    from society.scenario import resolve

    sc = resolve(scenario(args.agents, args.rounds, args.k), "bench")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep) if args.keep else Path(tmp) / "run"
        t0 = time.perf_counter()
        res = start_run(sc, out, quiet=True)
        wall = time.perf_counter() - t0
        size = (out / "run.sqlite").stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"agents {args.agents}, small world k={args.k}, {args.rounds} rounds")
    print(f"decisions      : {res.decisions:,}")
    print(f"wall time      : {wall:.1f} s (build, play, store, checkpoints)")
    print(f"decisions/s    : {res.decisions / wall:,.0f}")
    print(f"run store      : {size / 1e6:.0f} MB")
    print(f"peak memory    : {peak:.0f} MB (max RSS)")


if __name__ == "__main__":
    main()
