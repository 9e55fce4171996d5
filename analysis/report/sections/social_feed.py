"""Report section of the social feed (protocols §10): activity per period; semantic
stabilisation and lexical turnover of posts and comments; individual inertia and pull;
consensus on the probe question; influence (PageRank of the comment-and-upvote graph per
period, top-3 share and persistence); the texts; and the text of ``society show``.

Every figure comes from :mod:`analysis.feed` (which reads :mod:`analysis.convergence`);
the invalid rate of LLM actions from ``llm.llm_decisions``, as in the other sections.
"""

from __future__ import annotations

from ... import feed, llm
from ...run import Run
from ..document import Report, guarded

__all__ = ["report", "show"]

K = 3  # the top-k of the influence concentration


def report(rep: Report, run: Run) -> None:
    """Activity, stabilisation, turnover, inertia, consensus, influence, texts."""
    sec = rep.section("Social feed: activity")
    if not (run.decisions["kind"] == "act").any():
        sec.notes.append("no 'act' decisions in this run: nothing to measure yet")
        return
    game = run.game or {}
    sec.notes.append(
        f"{game.get('agents', '?')} agents, {len(game.get('communities', []))} communities, "
        f"{game.get('periods', '?')} periods; ranking {game.get('ranking', '?')}, "
        f"feed of {game.get('feed_size', '?')} items"
    )
    act = guarded(rep, sec, "activity", lambda: feed.activity(run))
    if act is not None and len(act):
        rep.table(sec, "feed_activity", "Actions per period", act)
        rep.figure("posts (all periods)", int(act["post"].sum()))
        rep.figure("comments (all periods)", int(act["comment"].sum()))
        rep.figure("upvotes (all periods)", int(act["upvote"].sum()))
    inv = guarded(rep, sec, "invalid actions", lambda: llm.llm_decisions(run, None, kind="act"))
    if inv is not None and int(inv["decisions"].iloc[0]):
        rep.figure("LLM invalid action rate", float(inv["invalid_rate"].iloc[0]))

    sec = rep.section("Social feed: convergence of posts and comments")
    sec.notes += [f"{k}: {v}" for k, v in feed.DEFINITIONS.items()]
    stab = guarded(rep, sec, "stabilisation", lambda: feed.stabilisation(run))
    if stab is not None and len(stab):
        sec.notes.append(f"embedder: {stab['embedder'].iloc[0]}")
        rep.table(sec, "feed_stabilisation", "Semantic stabilisation and lexical turnover", stab)
        rep.figure(
            "within-period similarity (first period)", float(stab["within_similarity"].iloc[0])
        )
        rep.figure(
            "within-period similarity (last period)", float(stab["within_similarity"].iloc[-1])
        )
        guarded(
            rep, sec, "stabilisation plot",
            lambda: rep.image(sec, "feed_stabilisation", "Stabilisation and turnover per period",
                              feed.stabilisation_figure(stab)),
        )  # fmt: skip
    ine = guarded(rep, sec, "inertia", lambda: feed.inertia(run))
    if ine is not None and len(ine):
        rep.table(sec, "feed_inertia", "Individual inertia (drift) and pull per agent", ine)
        rep.figure("mean drift of agents", float(ine["drift"].mean()))
        rep.figure("mean pull toward the society", float(ine["pull"].mean()))

    con = guarded(rep, sec, "consensus", lambda: feed.consensus(run))
    if con is not None and len(con):
        rep.table(sec, "feed_consensus", "Consensus on the probe question", con)
        rep.figure("probe agreement (first)", float(con["agreement"].iloc[0]))
        rep.figure("probe agreement (last)", float(con["agreement"].iloc[-1]))

    sec = rep.section("Social feed: influence")
    inf = guarded(rep, sec, "influence", lambda: feed.influence(run, K))
    if inf is not None and len(inf):
        rep.table(sec, "feed_influence", f"Top-{K} PageRank share and persistence per period", inf)
        rep.figure(f"top-{K} PageRank share (first period)", float(inf["top_k_share"].iloc[0]))
        rep.figure(f"top-{K} PageRank share (last period)", float(inf["top_k_share"].iloc[-1]))
        guarded(
            rep, sec, "influence plot",
            lambda: rep.image(sec, "feed_influence", "PageRank concentration per period",
                              feed.influence_figure(inf, K)),
        )  # fmt: skip
    else:
        sec.notes.append("no comments or upvotes: no interaction graph")

    t = guarded(rep, sec, "texts", lambda: feed.texts(run))
    if t is not None and len(t):
        sec = rep.section("Social feed: posts and comments")
        sec.notes.append(
            f"{int((t['kind'] == 'post').sum())} posts and {int((t['kind'] == 'comment').sum())} "
            "comments (cut in the summary, in full in the CSV)"
        )
        rep.table(sec, "feed_texts", "Posts and comments", t)


def show(run: Run, top: int = 20) -> str:
    """Per period: actions, within-period similarity, birth rate and top-3 share."""
    if not (run.decisions["kind"] == "act").any():
        return ""
    act = feed.activity(run).set_index("period")
    stab = feed.stabilisation(run).set_index("period")
    inf = feed.influence(run, K).set_index("period")
    lines = ["social feed: period, posts, comments, upvotes, within similarity, birth, top-3 share"]
    for p, r in act.iterrows():
        w = stab["within_similarity"].get(p, float("nan")) if len(stab) else float("nan")
        b = stab["birth"].get(p, float("nan")) if len(stab) else float("nan")
        s = inf["top_k_share"].get(p, float("nan")) if len(inf) else float("nan")
        lines.append(
            f"  {p:>4}  {int(r['post']):>5}  {int(r['comment']):>5}  {int(r['upvote']):>5}"
            f"  {w:.3f}  {b:.3f}  {s:.3f}"
        )
    return "\n".join(lines[: top + 1])
