"""Benchmark: the same round-robin IPD tournament in `society` and in the `axelrod` library.

Both play identical work: the same deterministic strategies, every pair once
(self-interactions included, as axelrod plays them), the same number of turns and
payoffs (R=3, S=0, T=5, P=1). `society` writes every decision and payoff to its
SQLite store with a checkpoint per round; axelrod keeps its interactions in a
temporary file and builds its result set. A second axelrod figure plays the same
matches with `axelrod.Match` alone (no result set), the leanest peer baseline.
Prints the wall times and the ratios.

    python bench/tournament.py [--turns 200] [--copies 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (society strategy, axelrod player class name): deterministic pairs that play alike.
PAIRS = [
    ("always_cooperate", "Cooperator"),
    ("always_defect", "Defector"),
    ("tit_for_tat", "TitForTat"),
    ("tit_for_two_tats", "TitFor2Tats"),
    ("grim_trigger", "Grudger"),
    ("win_stay_lose_shift", "WinStayLoseShift"),
    ("alternate", "Alternator"),
    ("suspicious_tft", "SuspiciousTitForTat"),
]


def scenario(turns: int, copies: int = 1) -> dict:
    """The tournament as a society scenario (self-play on, to match axelrod's work)."""
    groups = [
        {"name": f"{name}-{c}" if copies > 1 else name, "count": 1, "strategy": name}
        for c in range(copies)
        for name, _ in PAIRS
    ]
    return {
        "name": "bench-tournament",
        "seed": 0,
        "population": {"groups": groups},
        "matching": {"kind": "round_robin", "self_play": True},
        "game": {"kind": "repeated_2x2", "preset": "prisoners_dilemma_classic", "rounds": turns},
    }


def run_society(turns: int, copies: int, out: Path) -> dict[int, float]:
    """Play the tournament in society; scores per agent index without self-interactions."""
    import sqlite3

    from society.runner import start_run
    from society.scenario import resolve

    res = start_run(resolve(scenario(turns, copies), "bench"), out, quiet=True)
    conn = sqlite3.connect(res.run_dir / "run.sqlite")
    rows = conn.execute(
        "SELECT agent_id, SUM(value) FROM events WHERE agent_id != partner_id GROUP BY agent_id"
    ).fetchall()
    conn.close()
    return {a: s for a, s in rows}


def run_axelrod(turns: int, copies: int) -> dict[int, float]:
    """Play the tournament in axelrod; total scores per player index (its `scores`)."""
    import axelrod as axl

    players = [getattr(axl, cls)() for _ in range(copies) for _, cls in PAIRS]
    tournament = axl.Tournament(
        players, turns=turns, repetitions=1, game=axl.Game(r=3, s=0, t=5, p=1)
    )
    results = tournament.play(progress_bar=False, processes=1)
    return {i: float(s[0]) for i, s in enumerate(results.scores)}


def run_axelrod_matches(turns: int, copies: int) -> dict[int, float]:
    """The same matches played with `axelrod.Match` directly: no result-set analysis."""
    import axelrod as axl

    players = [getattr(axl, cls)() for _ in range(copies) for _, cls in PAIRS]
    game = axl.Game(r=3, s=0, t=5, p=1)
    scores = dict.fromkeys(range(len(players)), 0.0)
    for i in range(len(players)):
        for j in range(i, len(players)):
            match = axl.Match((players[i].clone(), players[j].clone()), turns=turns, game=game)
            match.play()
            if i != j:
                a, b = match.final_score()
                scores[i] += a
                scores[j] += b
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--copies", type=int, default=1, help="copies of each strategy")
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions (median shown)")
    args = ap.parse_args()

    # Both libraries imported before timing: axelrod's import alone takes seconds.
    import axelrod  # noqa: F401

    import society.engine  # noqa: F401
    import society.runner  # noqa: F401

    t_soc, t_axl, t_match = [], [], []
    for k in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            s = run_society(args.turns, args.copies, Path(tmp) / f"run{k}")
            t_soc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        a = run_axelrod(args.turns, args.copies)
        t_axl.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        m = run_axelrod_matches(args.turns, args.copies)
        t_match.append(time.perf_counter() - t0)
        assert s == a == m, f"scores differ: society {s} vs axelrod {a} / {m}"
    n = len(PAIRS) * args.copies
    matches = n * (n + 1) // 2
    soc, axl_, match = (
        statistics.median(t_soc),
        statistics.median(t_axl),
        statistics.median(t_match),
    )
    print(f"tournament: {n} players, {matches} matches x {args.turns} turns (identical scores)")
    print(f"society  : {soc:8.3f} s  (median of {args.repeat}; includes the SQLite store)")
    print(
        f"axelrod  : {axl_:8.3f} s  (Tournament.play, incl. its result set; median of {args.repeat})"
    )
    print(
        f"axelrod  : {match:8.3f} s  (the same matches with Match.play only; median of {args.repeat})"
    )
    print(
        f"ratio axelrod/society: {axl_ / soc:.2f}x tournament, {match / soc:.2f}x matches only "
        "(>1 means society is faster)"
    )


if __name__ == "__main__":
    main()
