"""Analysis: the time and peak memory of `society analyze` on a 1,000,000-decision run.

Writes a synthetic repeated-game run store (``--agents`` agents randomly paired every
round in a prisoner's dilemma, one decision and one payoff event per agent per round,
cooperation propensities that drift so the series has structure), then measures, each
in a fresh Python process so the peak resident memory is the step's own:

* baseline: ``analysis.load_run`` alone (reading the store into pandas);
* report: ``analysis.report.analyze`` (load + every metric, CSV tables, PNG plots,
  summary pages).

and prints both, and the ratio report / baseline.

    python bench/analysis.py [--decisions 1000000] [--agents 1000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GROUPS = [  # (group, strategy label, base cooperation propensity)
    ("tft", "tit_for_tat", 0.8),
    ("wsls", "win_stay_lose_shift", 0.7),
    ("gtft", "generous_tft", 0.85),
    ("grim", "grim_trigger", 0.6),
    ("random", "random", 0.5),
    ("defector", "always_defect", 0.05),
]
PAYOFF = {("C", "C"): 3.0, ("C", "D"): 0.0, ("D", "C"): 5.0, ("D", "D"): 1.0}
RESOLVED_GAME = {  # what the runtime records in meta `resolved_game` (store format 2)
    "kind": "repeated_2x2",
    "name": "prisoners_dilemma_classic",
    "payoffs": [[[3.0, 3.0], [0.0, 5.0]], [[5.0, 0.0], [1.0, 1.0]]],
    "labels": ["J", "F"],
    "actions": ["C", "D"],
    "noise": 0.0,
    "continuation": None,
}
SCENARIO = """\
name: bench-analysis
seed: 0
population:
  groups:
{groups}
matching: {{kind: random}}
game:
  kind: repeated_2x2
  preset: prisoners_dilemma_classic
  rounds: {rounds}
"""


def build_store(run_dir: Path, decisions: int, agents: int, seed: int = 0) -> int:
    """Write a synthetic repeated-game run store; returns the number of decisions."""
    from society.store import RunStore

    agents -= agents % 2  # perfect pairing
    rounds = max(1, decisions // agents)
    rng = np.random.default_rng(seed)
    grp_of = np.arange(agents) % len(GROUPS)
    base = np.array([g[2] for g in GROUPS])[grp_of]
    counts = np.bincount(grp_of, minlength=len(GROUPS))
    groups = "\n".join(
        f"    - {{name: {g}, count: {int(n)}, strategy: {s}}}"
        for (g, s, _), n in zip(GROUPS, counts, strict=True)
    )
    store = RunStore.in_dir(run_dir, create=True)
    store.conn.execute("PRAGMA synchronous=OFF")  # a benchmark fixture, not a real run
    store.set_meta(
        name="bench-analysis",
        seed="0",
        game="repeated_2x2",
        scenario=SCENARIO.format(groups=groups, rounds=rounds),
        resolved_game=json.dumps({**RESOLVED_GAME, "rounds": rounds}),
        status="finished",
    )
    agent_rows = [
        (int(i), f"{GROUPS[g][0]}-{i}", GROUPS[g][0], "scripted", GROUPS[g][1], "{}")
        + (None, None, None, 0, None, 0)
        for i, g in enumerate(grp_of)
    ]
    # A slow wave in the society's mood plus a late collapse: structure for the metrics.
    t = np.arange(rounds)
    mood = 0.1 * np.sin(2 * np.pi * t / max(rounds / 3, 1)) - 0.3 * (t > 0.8 * rounds)
    acts = np.array(["C", "D"])
    batch = max(1, 200_000 // agents)  # rounds per transaction
    for r0 in range(0, rounds, batch):
        rs = range(r0, min(r0 + batch, rounds))
        dec, ev = [], []
        for r in rs:
            perm = rng.permutation(agents)
            partner = np.empty(agents, dtype=np.int64)
            partner[perm[0::2]] = perm[1::2]
            partner[perm[1::2]] = perm[0::2]
            p = np.clip(base + mood[r], 0.0, 1.0)
            move = acts[(rng.random(agents) >= p).astype(int)]
            pmove = move[partner]
            pay = [PAYOFF[a, b] for a, b in zip(move.tolist(), pmove.tolist(), strict=True)]
            ids, pids, mv = range(agents), partner.tolist(), move.tolist()
            dec += [
                (r, 0, i, j, "move", m, 0.0 if m == "C" else 1.0, 1, "scripted", None, None)
                for i, j, m in zip(ids, pids, mv, strict=True)
            ]
            ev += [
                (r, 0, "payoff", i, j, m, v, None)
                for i, j, m, v in zip(ids, pids, mv, pay, strict=True)
            ]
        last = rs[-1]
        # Intermediate rounds of the batch: their `rounds` rows (written before the
        # commit of the batch's last round, which carries its decisions and events).
        store.conn.executemany(
            "INSERT INTO rounds VALUES (?, 0, 0, ?, ?, 0.001)",
            [(r, r, agents) for r in rs[:-1]],
        )
        store.commit_round(
            (last, 0, 0, last, agents, 0.001),
            decisions=dec,
            events=ev,
            agents=agent_rows if r0 == 0 else (),
        )
    store.close()
    return rounds * agents


def _measure(what: str, run_dir: str, out: str) -> None:
    """Child process: time one step and print JSON with its wall time and peak RSS."""
    t0 = time.perf_counter()
    if what == "load":
        from analysis import load_run

        run = load_run(run_dir)
        n = len(run.decisions)
    else:
        from analysis.report import analyze

        analyze(run_dir, out)
        n = -1
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    print(json.dumps({"wall_s": wall, "peak_mb": peak, "rows": n}))


def _child(what: str, run_dir: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--measure", what, str(run_dir), str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit(f"{what} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decisions", type=int, default=1_000_000)
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--keep", metavar="DIR", help="write the store (and report) here and keep it")
    ap.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        _measure(*args.measure)
        return
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        run_dir, out = base / "run", base / "report"
        t0 = time.perf_counter()
        n = build_store(run_dir, args.decisions, args.agents)
        t_build = time.perf_counter() - t0
        size = (run_dir / "run.sqlite").stat().st_size
        load = _child("load", run_dir, out)
        rep = _child("analyze", run_dir, out)
        print(f"run store      : {n:,} decisions + {n:,} payoff events, {args.agents} agents, "
              f"{size / 1e6:.0f} MB (written in {t_build:.1f} s)")  # fmt: skip
        print(f"baseline       : load_run {load['wall_s']:.2f} s, "
              f"peak memory {load['peak_mb']:.0f} MB")  # fmt: skip
        print(f"full report    : analyze  {rep['wall_s']:.2f} s, "
              f"peak memory {rep['peak_mb']:.0f} MB")  # fmt: skip
        print(f"ratio          : report / load_run = {rep['wall_s'] / load['wall_s']:.2f}x time, "
              f"{rep['peak_mb'] / load['peak_mb']:.2f}x peak memory")  # fmt: skip
        print(f"decisions/s    : {n / rep['wall_s']:,.0f} through the full report")
        about = (out / "summary.md").read_text().split("## About this report")[-1].strip()
        print("report says    :", about.replace("\n", " "))


if __name__ == "__main__":
    main()
