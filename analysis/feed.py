"""Reading a social-feed run (protocols §10) into protocols §6's convergence metrics.

Posts and comments (events ``post`` and ``comment``, their text in ``data``) are the
texts; comments and upvotes (events ``comment``, ``upvote``: agent → the post's author)
are the directed edges of the interaction graph; the answers to the probe (decisions
``probe``) measure consensus. One step of the loop is one period, so a period is the
store's ``round``. Every metric is one function of :mod:`analysis.convergence`; this
module only selects what it reads:

* :func:`stabilisation`: semantic stabilisation (within-period similarity, centroid
  similarity with the previous period) beside lexical turnover (births, deaths);
* :func:`inertia`: per-agent drift and pull toward the society;
* :func:`consensus`: agreement of the probe's answers per probe period;
* :func:`influence`: PageRank per period, top-k share and persistence of the top set.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from . import convergence
from .drift import Embedder, default_embedder
from .run import Run

__all__ = [
    "DEFINITIONS",
    "EDGE_KINDS",
    "activity",
    "consensus",
    "inertia",
    "influence",
    "influence_figure",
    "stabilisation",
    "stabilisation_figure",
    "texts",
]

POST, COMMENT, UPVOTE, FOLLOW, PERIOD, PROBE = (
    "post", "comment", "upvote", "follow", "period", "probe",
)  # fmt: skip
#: Event kinds read as the interaction graph's edges (protocols §10: replies and upvotes).
EDGE_KINDS = (COMMENT, UPVOTE)

DEFINITIONS = {
    "within_similarity": "mean pairwise cosine of the period's post and comment embeddings",
    "centroid_similarity": "cosine of the period's centroid with the previous period's",
    "birth / death": "share of the period's word types absent from the previous period / "
    "share of the previous period's types absent from this one",
    "agreement": "share of pairs of agents giving the same answer to the probe",
    "top_k_share": "share of the period's PageRank held by its k highest agents "
    "(graph: comments and upvotes, author of the post as target)",
    "persistence": "Jaccard overlap of the top-k set with the previous period's",
}


def _data(col: pd.Series) -> list[dict[str, Any]]:
    return [json.loads(x) if isinstance(x, str) else {} for x in col]


def texts(run: Run, seeds: bool = False) -> pd.DataFrame:
    """Posts and comments, one row each: ``period``, ``agent_id``, ``grp``, ``kind``
    ('post' or 'comment'), ``post`` (its id), ``parent`` (the commented post),
    ``community`` and ``text``. Seed posts (period -1, written by the scenario) only
    with ``seeds``."""
    ev = run.events
    e = ev[ev["kind"].isin([POST, COMMENT])]
    data = _data(e["data"])
    out = pd.DataFrame(
        {
            "period": [int(d.get("period", -1)) for d in data],
            "agent_id": e["agent_id"].astype("int64").to_numpy(),
            "grp": e["grp"].astype(str).to_numpy() if "grp" in e else "",
            "kind": e["kind"].astype(str).to_numpy(),
            "post": [int(d["post"]) for d in data],
            "parent": [d.get("parent") for d in data],
            "community": [d.get("community") for d in data],
            "text": [str(d.get("text", "")) for d in data],
            "seed": [bool(d.get("seed", False)) for d in data],
        }
    )
    if not seeds:
        out = out[~out["seed"]]
    return out.drop(columns="seed").reset_index(drop=True)


def stabilisation(run: Run, embedder: Embedder | None = None, n: int = 1) -> pd.DataFrame:
    """Per period: ``within_similarity``, ``centroid_similarity`` (semantic
    stabilisation) and ``birth``, ``death`` of word ``n``-grams (lexical turnover), with
    the number of texts; the ``embedder`` column names the embedding used."""
    t = texts(run)
    if t.empty:
        return pd.DataFrame(columns=["period", "n", "within_similarity",
                                     "centroid_similarity", "birth", "death"])  # fmt: skip
    emb = embedder or default_embedder()
    sem = convergence.semantic_stabilisation(t, period="period", embedder=emb)
    lex = convergence.lexical_turnover(t, period="period", n=n)
    return sem.merge(lex, on="period", how="outer")


def inertia(run: Run, embedder: Embedder | None = None) -> pd.DataFrame:
    """Per agent with texts early and late: ``drift`` (1 − cos of its early and late
    centroids) and ``pull`` (change of its similarity to the society's centroid)."""
    t = texts(run)
    if t.empty:
        return pd.DataFrame(columns=["agent_id", "n", "drift", "pull"])
    return convergence.individual_inertia(t, time="period", embedder=embedder)


def answers(run: Run) -> pd.DataFrame:
    """The probe's answers: ``period``, ``agent_id``, ``grp``, ``answer``, ``valid``."""
    d = run.decisions
    p = d[d["kind"] == PROBE]
    return pd.DataFrame(
        {
            "period": p["round"].astype("int64").to_numpy(),
            "agent_id": p["agent_id"].astype("int64").to_numpy(),
            "grp": p["grp"].astype(str).to_numpy() if "grp" in p else "",
            "answer": p["action"].astype(str).to_numpy(),
            "valid": p["valid"].to_numpy(),
        }
    )


def consensus(run: Run, embedder: Embedder | None = None) -> pd.DataFrame:
    """Per probe period: ``agreement`` (pairwise, on the answers as given, normalised
    in case), ``majority`` (the most common answer) and its ``majority_share``; for
    free-text answers also their mean pairwise embedding ``similarity``."""
    a = answers(run)
    if a.empty:
        return pd.DataFrame(columns=["period", "n", "agreement", "majority", "majority_share"])
    free = not (run.game or {}).get("probe", {}) or not run.game["probe"].get("options")
    if free:
        out = convergence.strategy_consensus(a, by="period", text="answer", embedder=embedder)
    else:
        rows = [
            {"period": t, "n": len(g), "agreement": convergence.consensus(list(g["answer"]))}
            for t, g in a.groupby("period", sort=True)
        ]
        out = pd.DataFrame(rows)
    top = a.groupby("period", sort=True)["answer"].agg(
        lambda s: s.value_counts().sort_index().sort_values(ascending=False, kind="stable").index[0]
    )
    share = a.groupby("period", sort=True)["answer"].agg(
        lambda s: float(s.value_counts().max() / len(s))
    )
    out["majority"] = out["period"].map(top)
    out["majority_share"] = out["period"].map(share)
    return out


def influence(run: Run, k: int = 3) -> pd.DataFrame:
    """Per period: the top-``k`` PageRank share of the comment-and-upvote graph, the top
    agents and the persistence of the top set (``analysis.convergence.influence``)."""
    inf = convergence.influence(run, period="round", k=k, kinds=EDGE_KINDS)
    return inf.rename(columns={"round": "period"})


def pagerank(run: Run) -> pd.DataFrame:
    """PageRank of every agent in each period's comment-and-upvote graph (long)."""
    pr = convergence.pagerank_table(run, period="round", kinds=EDGE_KINDS)
    return pr.rename(columns={"round": "period"})


def activity(run: Run) -> pd.DataFrame:
    """Per period: how many agents posted, commented, upvoted, followed or did nothing,
    the actions without effect, and the posts so far."""
    ev = run.events
    e = ev[ev["kind"] == PERIOD]
    rows = [
        {**d, "posts_so_far": int(v)} for d, v in zip(_data(e["data"]), e["value"], strict=True)
    ]
    return pd.DataFrame(rows)


def stabilisation_figure(stab: pd.DataFrame) -> Any:
    """Semantic stabilisation and lexical turnover over periods (two panels)."""
    from .plots import _fig

    fig, (ax1, ax2) = _fig(1, 2, figsize=(9, 3.6))
    x = stab["period"].to_numpy()
    ax1.plot(x, stab["within_similarity"], marker="o", label="within period")
    ax1.plot(x, stab["centroid_similarity"], marker="s", label="centroid vs previous")
    ax1.set_xlabel("period")
    ax1.set_ylabel("cosine similarity")
    ax1.legend(fontsize="small")
    ax2.plot(x, stab["birth"], marker="o", label="birth")
    ax2.plot(x, stab["death"], marker="s", label="death")
    ax2.set_xlabel("period")
    ax2.set_ylabel("share of word types")
    ax2.legend(fontsize="small")
    return fig


def influence_figure(inf: pd.DataFrame, k: int = 3) -> Any:
    """Top-k PageRank share and persistence of the top set over periods."""
    from .plots import _fig

    fig, ax = _fig()
    x = inf["period"].to_numpy()
    ax.plot(x, inf["top_k_share"].astype(float), marker="o", label=f"top-{k} PageRank share")
    ax.plot(x, inf["persistence"].astype(float), marker="s", label="persistence (Jaccard)")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("period")
    ax.legend(fontsize="small")
    return fig


def summary(run: Run, embedder: Embedder | None = None, k: int = 3) -> dict[str, float]:
    """Key figures: first and last period's within-period similarity, the last
    centroid similarity, mean birth rate, first and last top-k share, last agreement."""
    stab = stabilisation(run, embedder)
    inf = influence(run, k)
    con = consensus(run, embedder)
    out: dict[str, float] = {}
    if len(stab):
        w = stab["within_similarity"].astype(float)
        out["within_similarity_first"] = float(w.iloc[0])
        out["within_similarity_last"] = float(w.iloc[-1])
        out["centroid_similarity_last"] = float(stab["centroid_similarity"].iloc[-1])
        out["birth_mean"] = (
            float(np.nanmean(stab["birth"].astype(float))) if len(stab) > 1 else np.nan
        )
    if len(inf):
        out["top_k_share_first"] = float(inf["top_k_share"].iloc[0])
        out["top_k_share_last"] = float(inf["top_k_share"].iloc[-1])
    if len(con):
        out["agreement_first"] = float(con["agreement"].iloc[0])
        out["agreement_last"] = float(con["agreement"].iloc[-1])
    return out
