"""Benchmark: the same round-robin IPD tournament in `society` and in the `axelrod` library.

Both play identical work: the same deterministic strategies, every pair once
(self-interactions included, as axelrod plays them), the same number of turns and
payoffs (R=3, S=0, T=5, P=1). `society` (its vectorised scripted engine,
`society.vector`, and the generic one) writes every decision and payoff to its SQLite
store with a checkpoint per round; axelrod keeps its interactions in a
temporary file and builds its result set. A second axelrod figure plays the same
matches with `axelrod.Match` alone (no result set), the leanest peer baseline.
Prints the wall times and the ratios.

    python bench/tournament.py [--turns 200] [--copies 1] [--repeat 3] [--skip-tournament]
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


def scenario(turns: int, copies: int = 1, engine: str = "auto") -> dict:
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
        "run": {"engine": engine},
    }


def run_society(turns: int, copies: int, out: Path, engine: str = "auto") -> dict[int, float]:
    """Play the tournament in society; scores per agent index without self-interactions."""
    return run_society_timed(turns, copies, out, engine)[0]


def run_society_timed(
    turns: int, copies: int, out: Path, engine: str = "auto"
) -> tuple[dict[int, float], float]:
    """`run_society`, and the seconds of its play loop alone (every step played and
    committed; the store's creation left out)."""
    import sqlite3

    from society.runner import start_run
    from society.scenario import resolve

    res = start_run(resolve(scenario(turns, copies, engine), "bench"), out, quiet=True)
    conn = sqlite3.connect(res.run_dir / "run.sqlite")
    rows = conn.execute(
        "SELECT agent_id, SUM(value) FROM events WHERE agent_id != partner_id GROUP BY agent_id"
    ).fetchall()
    conn.close()
    return {a: s for a, s in rows}, res.wall_s


def run_vector_steps(turns: int, copies: int) -> float:
    """Seconds of the vectorised engine's steps alone, rows built but not stored: what the
    store's commits add is the difference to the play loop's figure."""
    from society.scenario import resolve
    from society.vector import VectorEngine

    engine = VectorEngine(resolve(scenario(turns, copies, "vector"), "bench"))
    t0 = time.perf_counter()
    while not engine.done:
        engine.step()
        engine.checkpoint()
    return time.perf_counter() - t0


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
    ap.add_argument(
        "--skip-tournament", action="store_true", help="leave out axelrod's slow Tournament"
    )
    args = ap.parse_args()

    # Both libraries imported before timing: axelrod's import alone takes seconds.
    import axelrod  # noqa: F401

    import society.engine  # noqa: F401
    import society.runner  # noqa: F401

    t_soc, t_play, t_steps, t_gen, t_axl, t_match = [], [], [], [], [], []
    for k in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            s, play = run_society_timed(args.turns, args.copies, Path(tmp) / f"run{k}", "vector")
            t_soc.append(time.perf_counter() - t0)
            t_play.append(play)
            t_steps.append(run_vector_steps(args.turns, args.copies))
            t0 = time.perf_counter()
            g = run_society(args.turns, args.copies, Path(tmp) / f"gen{k}", "generic")
            t_gen.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        m = run_axelrod_matches(args.turns, args.copies)
        t_match.append(time.perf_counter() - t0)
        if not args.skip_tournament:
            t0 = time.perf_counter()
            a = run_axelrod(args.turns, args.copies)
            t_axl.append(time.perf_counter() - t0)
            assert a == m, f"axelrod's scores differ: {a} / {m}"
        assert s == g == m, f"scores differ: society {s} / generic {g} vs axelrod {m}"
    n = len(PAIRS) * args.copies
    matches = n * (n + 1) // 2
    med = statistics.median
    soc, play, gen, match = med(t_soc), med(t_play), med(t_gen), med(t_match)
    steps = med(t_steps)
    r = args.repeat
    print(f"tournament: {n} players, {matches} matches x {args.turns} turns (identical scores)")
    print(f"society vector : {soc:8.3f} s  (whole run: store created, every step committed)")
    print(f"  of which play: {play:8.3f} s  (the step loop: every step played and committed)")
    print(f"  steps alone  : {steps:8.3f} s  (the same steps, rows built, nothing stored)")
    print(f"society generic: {gen:8.3f} s  (run.engine=generic, whole run)")
    if t_axl:
        print(f"axelrod        : {med(t_axl):8.3f} s  (Tournament.play, incl. its result set)")
    print(f"axelrod        : {match:8.3f} s  (the same matches with Match.play only)")
    print(f"(medians of {r})")
    print(
        f"ratio axelrod Match / society: {match / soc:.2f}x whole run, {match / play:.2f}x "
        f"play loop, {match / steps:.2f}x steps without the store (>1 means society is "
        f"faster); vector / generic: {gen / soc:.2f}x whole run"
    )
    if t_axl:
        print(f"ratio axelrod Tournament / society: {med(t_axl) / soc:.2f}x")


if __name__ == "__main__":
    main()
