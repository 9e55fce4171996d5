"""Benchmark: the social feed at 1,000 agents x 10 periods beside two baselines.

1. Plays ``scenarios/social_feed_1000.yaml`` (1,000 LLM agents, 20 communities, 10
   periods, a probe every 5) through the whole simulator on the fake backend (feeds,
   ranking, prompts, schemas, parsing and repairs, batching, SQLite commits,
   checkpoints) and prints the wall time and decisions/s.
2. Reads back the exact requests it sent (``llm_calls``) in the batches it sent them (one
   per step and purpose) and sends them again straight to a fresh fake backend, timing
   only ``generate``: the raw backend on identical prompts. Prints the ratio.
3. The ranking alone: one period of feed reads for 1,000 agents over a feed holding P
   posts and over one holding 2P, timed and counted in heap operations (``RankIndex``).
   A ranking linear in the posts per read would double; the ratio stays near 1.

    python bench/feed.py                 # defaults: the shipped scenario, P = 20,000
    python bench/feed.py --posts 50000 --repeat 3
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.marketplace import recorded_batches  # noqa: E402  (the same reader)
from games.feed import FeedGame  # noqa: E402


def filled_game(n: int, posts: int, communities: int, seed: int) -> FeedGame:
    """A feed of ``n`` agents in ``communities`` communities already holding ``posts``
    posts (spread over 10 earlier periods, with upvotes), as after a long run."""
    rng = np.random.default_rng(seed)
    members = [[int(c) for c in rng.choice(communities, 2, replace=False)] for _ in range(n)]
    follows = [[int(f) for f in rng.choice(n, 3, replace=False)] for _ in range(n)]
    g = FeedGame(
        n, periods=20, communities=[f"c{i}" for i in range(communities)],
        topics=[""] * communities, members=members, follows=follows, feed_size=8, per_source=4,
    )  # fmt: skip
    authors = rng.integers(0, n, posts)
    for i, a in enumerate(authors):
        g._add(int(a), members[int(a)][0], -1, int(i * 10 // posts), f"post {i}")
    for p in rng.integers(0, posts, posts // 4):  # upvotes re-key posts: stale heap entries
        g.score[int(p)] += 1
        g._index(int(p))
    g.period = 10
    return g


def ranking_cost(n: int, posts: int, communities: int, seed: int) -> tuple[float, int]:
    """Wall time and heap operations of one period of feed reads by all ``n`` agents
    (after a period of reads and ``n / 4`` upvotes, as in a run)."""
    g = filled_game(n, posts, communities, seed)
    for k in range(n):  # an earlier period's reads: the fill's stale entries are dropped
        g.feed(k)
    g._cache = {}
    rng = np.random.default_rng(seed + 1)
    for p in rng.integers(0, posts, n // 4):  # this period's upvotes: as many for P and 2P
        g.score[int(p)] += 1
        g._index(int(p))
    ops0 = g.ops
    t0 = time.perf_counter()
    for k in range(n):
        g.feed(k)
    return time.perf_counter() - t0, g.ops - ops0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "social_feed_1000.yaml"))
    ap.add_argument("--posts", type=int, default=20_000, help="P of the ranking comparison")
    ap.add_argument("--repeat", type=int, default=3, help="passes (median shown)")
    args = ap.parse_args()

    import society.engine  # noqa: F401  (imported before timing)
    from society.backends.fake import FakeBackend
    from society.runner import start_run
    from society.scenario import load_scenario

    sc = load_scenario(args.scenario)
    sim: list[float] = []
    raw: list[float] = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = start_run(sc, Path(tmp) / "run", quiet=True, backends=FakeBackend("fake"))
            sim.append(time.perf_counter() - t0)
            conn = sqlite3.connect(res.run_dir / "run.sqlite")
            (decisions,) = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()
            (invalid,) = conn.execute("SELECT AVG(valid = 0) FROM decisions").fetchone()
            (posts,) = conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'post'").fetchone()
            conn.close()
            batches = recorded_batches(res.run_dir)
        b = FakeBackend("fake")
        t0 = time.perf_counter()
        for requests in batches:
            b.generate(requests)
        raw.append(time.perf_counter() - t0)
    calls = sum(len(x) for x in batches)
    t_sim, t_raw = statistics.median(sim), statistics.median(raw)
    agents = sc.population.size
    periods = sc.game.periods  # type: ignore[attr-defined]
    print(
        f"social feed: {agents} agents x {periods} periods, fake backend, median of {args.repeat}"
    )
    print(
        f"  simulator   {t_sim:8.2f} s  {decisions / t_sim:10.0f} decisions/s  "
        f"({decisions} decisions, {calls} LLM calls, {posts} posts, invalid {invalid:.3f})"
    )
    print(f"  raw backend {t_raw:8.2f} s  {calls / t_raw:10.0f} calls/s  (the same requests)")
    print(f"  ratio simulator / raw backend (time): {t_sim / t_raw:.1f}x")

    p = args.posts
    one = [ranking_cost(agents, p, 20, 1) for _ in range(args.repeat)]
    two = [ranking_cost(agents, 2 * p, 20, 1) for _ in range(args.repeat)]
    t1, t2 = statistics.median(t for t, _ in one), statistics.median(t for t, _ in two)
    o1, o2 = one[0][1], two[0][1]
    print(f"ranking: one period of feed reads by {agents} agents")
    print(f"  P = {p:>7} posts  {t1 * 1e3:8.1f} ms  {o1:>8} heap operations")
    print(f"  2P = {2 * p:>6} posts  {t2 * 1e3:8.1f} ms  {o2:>8} heap operations")
    print(
        f"  ratio 2P / P: time {t2 / t1:.2f}, operations {o2 / o1:.2f} "
        "(a scan of all posts per read would be 2.00)"
    )


if __name__ == "__main__":
    main()
