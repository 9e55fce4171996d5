"""Scale: a large population of scripted strategies on a small-world network.

Runs the scenario through the normal runner (SQLite store, every step committed with its
checkpoint) and prints wall time, decisions/s, store size and peak memory (resident set,
from the OS). ``run.engine`` is ``auto`` by default, so a qualifying population is played
by the vectorised engine (`society.vector`); as the baseline, the same mix on a smaller
network is then played by the generic engine in the same process, and the ratio of the
two decisions/s figures is printed.

    python bench/scale.py [--agents 10000] [--rounds 100] [--k 4] [--engine auto]
                          [--baseline-agents 10000] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
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


def scenario(agents: int, rounds: int, k: int, engine: str = "auto") -> dict:
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
        # A million agents is past the default size limits: this run is meant to be large.
        "run": {
            "engine": engine,
            "limits": {"max_decisions": 1e12, "max_memory_gb": 1e3, "max_store_gb": 1e4},
        },
    }


def play(agents: int, rounds: int, k: int, engine: str, out: Path) -> tuple[int, float, int]:
    """(decisions, wall seconds, store bytes) of one run, store and WAL included."""
    from society.runner import start_run
    from society.scenario import resolve

    sc = resolve(scenario(agents, rounds, k, engine), "bench")
    t0 = time.perf_counter()
    res = start_run(sc, out, quiet=True)
    wall = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in out.iterdir() if f.name.startswith("run.sqlite"))
    return res.decisions, wall, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--engine", choices=["auto", "generic", "vector"], default="auto")
    ap.add_argument(
        "--baseline-agents", type=int, default=10_000, help="generic engine's run (0: none)"
    )
    ap.add_argument("--out", help="parent directory of the runs (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="society-scale-", dir=args.out))
    free = shutil.disk_usage(base).free
    print(f"free disk at {base}: {free / 1e9:.1f} GB")
    try:
        dec, wall, size = play(args.agents, args.rounds, args.k, args.engine, base / "main")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"agents {args.agents:,}, small world k={args.k}, {args.rounds} rounds")
        print(f"engine         : {args.engine}")
        print(f"decisions      : {dec:,} (and as many payoff events)")
        print(f"wall time      : {wall:.1f} s (build, play, store, checkpoints)")
        print(f"decisions/s    : {dec / wall:,.0f}")
        print(f"run store      : {size / 1e6:,.0f} MB ({size / max(dec, 1):.0f} B per decision)")
        print(f"peak memory    : {peak:,.0f} MB (max RSS of the process)")
        if args.baseline_agents:
            if not args.keep:
                shutil.rmtree(base / "main")
            b_dec, b_wall, _ = play(
                args.baseline_agents, args.rounds, args.k, "generic", base / "baseline"
            )
            print(
                f"baseline       : generic engine, {args.baseline_agents:,} agents: "
                f"{b_dec:,} decisions in {b_wall:.1f} s = {b_dec / b_wall:,.0f} decisions/s"
            )
            print(f"ratio          : {dec / wall / (b_dec / b_wall):.1f}x decisions/s")
    finally:
        if args.keep:
            print(f"runs kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)  # skip freeing the large heap object by object at exit


if __name__ == "__main__":
    main()
