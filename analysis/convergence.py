"""Convergence and socialisation: entropy, time to convergence, consensus, semantic
stabilisation, lexical turnover, individual inertia and influence (protocols §6)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from .drift import _WORD, Embedder, _cos, action_labels, default_embedder
from .run import frame, group_keys, iter_groups

__all__ = [
    "entropy",
    "behavioural_entropy",
    "ConvergenceTime",
    "time_to_convergence",
    "consensus",
    "strategy_consensus",
    "semantic_stabilisation",
    "ngrams",
    "lexical_turnover",
    "individual_inertia",
    "interaction_graph",
    "pagerank_table",
    "top_k_share",
    "influence",
]


def entropy(counts: Sequence[float] | np.ndarray, base: float = 2.0) -> float:
    """Shannon entropy of a count (or probability) vector, in units of ``base``
    (``scipy.stats.entropy``, which normalises the counts); 0 for an empty or all-zero
    vector (no decisions: nothing uncertain)."""
    from scipy.stats import entropy as shannon

    c = np.asarray(counts, dtype=float)
    c = c[c > 0]
    if c.size == 0:
        return 0.0
    return float(shannon(c, base=base))


def behavioural_entropy(
    obj: Any, by: str | Sequence[str] = "round", kind: str = "move", base: float = 2.0
) -> pd.DataFrame:
    """Shannon entropy of the action distribution per ``by`` (default: per round).
    Donations are binned into deciles of the percent given (see drift.action_labels)."""
    d = frame(obj, "decisions")
    d = d[d["kind"] == kind] if "kind" in d.columns else d
    d = d.assign(_a=action_labels(d, kind))
    keys = group_keys(d, by)
    counts = d.groupby([*keys, "_a"], observed=True).size().unstack(fill_value=0)
    out = pd.DataFrame(
        {
            "entropy": [entropy(r, base) for r in counts.to_numpy()],
            "n": counts.sum(axis=1).to_numpy(),
        },
        index=counts.index,
    )
    return out.reset_index()


@dataclass(frozen=True)
class ConvergenceTime:
    """First time after which the series stays within ``tol`` of ``value`` (its final
    value); ``converged`` False (and ``time`` None) if even the last step is outside."""

    time: Any
    index: int | None
    value: float
    tol: float
    converged: bool


def time_to_convergence(
    series: Sequence[float] | pd.Series, tol: float = 0.05, target: float | None = None
) -> ConvergenceTime:
    """First time t such that every later value lies within ±``tol`` of ``target``
    (default: the series' last value). The index of a pandas Series is the time axis."""
    s = pd.Series(series).dropna()
    x = s.to_numpy(dtype=float)
    if x.size == 0:
        return ConvergenceTime(None, None, float("nan"), tol, False)
    centre = float(x[-1] if target is None else target)
    outside = np.abs(x - centre) > tol
    if outside[-1]:
        return ConvergenceTime(None, None, centre, tol, False)
    # Last step outside the band; convergence starts right after it.
    last_out = np.flatnonzero(outside)
    i = int(last_out[-1] + 1) if last_out.size else 0
    return ConvergenceTime(s.index[i], i, centre, tol, True)


def consensus(answers: Sequence[Any]) -> float:
    """Pairwise agreement: share of pairs of agents that gave the same answer."""
    counts = np.array(list(Counter(answers).values()), dtype=float)
    n = counts.sum()
    if n < 2:
        return float("nan")
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def _mean_pairwise(v: np.ndarray) -> float:
    """Mean cosine similarity over distinct pairs of L2-normalised rows.

    The Gram matrix of normalised rows holds every pair's cosine at once. scipy's
    ``pdist(metric='cosine')`` is not used: it is undefined (NaN) for the zero row an
    empty text embeds to (lexical embedder), which this counts as similarity 0."""
    n = v.shape[0]
    if n < 2:
        return float("nan")
    s = v @ v.T
    return float((s.sum() - np.trace(s)) / (n * (n - 1)))


def strategy_consensus(
    texts: pd.DataFrame,
    by: str | Sequence[str] = "generation",
    text: str = "text",
    embedder: Embedder | None = None,
) -> pd.DataFrame:
    """Consensus of answers (e.g. strategy texts) per ``by``: exact pairwise agreement
    and, for free text, mean pairwise embedding similarity (``embedder`` column says which)."""
    emb = embedder or default_embedder()
    texts = texts.reset_index(drop=True)
    vecs = emb.embed(list(texts[text].astype(str)))
    keys = group_keys(texts, by)
    rows = []
    for labels, g in iter_groups(texts, keys):
        row = dict(labels)
        norm = g[text].astype(str).str.strip().str.lower()
        row.update(
            n=len(g),
            agreement=consensus(list(norm)),
            similarity=_mean_pairwise(vecs[g.index.to_numpy()]),
        )
        rows.append(row)
    out = pd.DataFrame(rows)
    out["embedder"] = emb.name
    return out


def semantic_stabilisation(
    texts: pd.DataFrame,
    period: str = "generation",
    text: str = "text",
    embedder: Embedder | None = None,
) -> pd.DataFrame:
    """Per period: mean pairwise similarity of its texts (``within_similarity``) and the
    cosine of its centroid with the previous period's (``centroid_similarity``)."""
    emb = embedder or default_embedder()
    texts = texts.reset_index(drop=True)
    vecs = emb.embed(list(texts[text].astype(str)))
    keys = group_keys(texts, [])
    rows = []
    for labels, gg in iter_groups(texts, keys):
        prev = None
        for t, g in gg.groupby(period, sort=True):
            v = vecs[g.index.to_numpy()]
            c = v.mean(axis=0)
            row = dict(labels)
            row.update({period: t, "n": len(g), "within_similarity": _mean_pairwise(v)})
            row["centroid_similarity"] = _cos(c, prev) if prev is not None else np.nan
            rows.append(row)
            prev = c
    out = pd.DataFrame(rows)
    out["embedder"] = emb.name
    return out


def ngrams(text: str, n: int = 1) -> set[str]:
    """The set of lower-cased word n-grams of ``text``."""
    w = _WORD.findall(str(text).lower())
    return {" ".join(w[i : i + n]) for i in range(len(w) - n + 1)}


def lexical_turnover(
    texts: pd.DataFrame, period: str = "generation", text: str = "text", n: int = 1
) -> pd.DataFrame:
    """Per period: ``birth`` = share of its n-gram types absent from the previous period;
    ``death`` = share of the previous period's types absent from this one (NaN for the
    first period)."""
    keys = group_keys(texts, [])
    rows = []
    for labels, gg in iter_groups(texts, keys):
        prev: set[str] | None = None
        for t, g in gg.groupby(period, sort=True):
            cur: set[str] = set().union(*(ngrams(x, n) for x in g[text]))
            row = dict(labels)
            row.update({period: t, "n_ngrams": len(cur)})
            if prev is None:
                row["birth"], row["death"] = np.nan, np.nan
            else:
                row["birth"] = len(cur - prev) / len(cur) if cur else np.nan
                row["death"] = len(prev - cur) / len(prev) if prev else np.nan
            rows.append(row)
            prev = cur
    return pd.DataFrame(rows)


def individual_inertia(
    texts: pd.DataFrame,
    time: str = "round",
    agent: str = "agent_id",
    text: str = "text",
    split: float = 0.5,
    embedder: Embedder | None = None,
) -> pd.DataFrame:
    """Per agent: ``drift`` = 1 − cos(early centroid, late centroid), where early/late are
    its texts before/after the ``split`` quantile of its own times, and ``pull`` = change
    of its similarity to the global centroid (late − early; positive = moved toward the
    society). The higher the drift, the lower the inertia."""
    emb = embedder or default_embedder()
    texts = texts.reset_index(drop=True)
    vecs = emb.embed(list(texts[text].astype(str)))
    g_all = vecs.mean(axis=0)
    keys = group_keys(texts, agent)
    rows = []
    for labels, g in iter_groups(texts, keys):
        g = g.sort_values(time, kind="stable")
        k = int(np.ceil(len(g) * split))
        if k < 1 or k >= len(g):
            continue  # needs at least one early and one late text
        early = vecs[g.index.to_numpy()[:k]].mean(axis=0)
        late = vecs[g.index.to_numpy()[k:]].mean(axis=0)
        row = dict(labels)
        row.update(
            n=len(g),
            drift=1 - _cos(early, late),
            sim_early=_cos(early, g_all),
            sim_late=_cos(late, g_all),
        )
        row["pull"] = row["sim_late"] - row["sim_early"]
        rows.append(row)
    out = pd.DataFrame(rows)
    out["embedder"] = emb.name
    return out


# -- influence ---------------------------------------------------------------------------


def _interactions(obj: Any, kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """Directed interactions (source, target, round, generation, weight value): with
    ``kinds``, the events of those kinds (agent → partner; e.g. a feed's comments and
    upvotes); else donations (donor → recipient, weight = amount) when the run has them,
    else decisions with a partner (agent → partner)."""
    ev = getattr(obj, "events", None)
    if kinds is not None:
        if not isinstance(ev, pd.DataFrame):
            raise ValueError("interactions by event kind need a run with events")
        e = ev[ev["kind"].isin(list(kinds))]
    elif isinstance(ev, pd.DataFrame) and (ev["kind"] == "donation").any():
        e = ev[ev["kind"] == "donation"]
    else:
        e = frame(obj, "decisions")
        e = e[e["kind"] != "strategy"] if "kind" in e.columns else e
    e = e[e["partner_id"].notna() & e["agent_id"].notna()]
    cols = [c for c in ("run", "round", "generation") if c in e.columns]
    out = e[cols].copy()
    out["source"] = e["agent_id"].astype("int64").to_numpy()
    out["target"] = e["partner_id"].astype("int64").to_numpy()
    out["value"] = e["value"].astype(float).fillna(0).to_numpy() if "value" in e else 1.0
    return out


def interaction_graph(
    obj: Any,
    period: str | None = None,
    at: Any = None,
    weight: str = "count",
    kinds: Sequence[str] | None = None,
) -> nx.DiGraph:
    """Directed interaction graph (edges donor → recipient or agent → partner).

    ``weight``: 'count' (number of interactions) or 'value' (sum of amounts). With
    ``period`` (e.g. 'generation') and ``at``, only that period's interactions.
    ``kinds``: read the events of these kinds as the edges (see ``_interactions``).
    """
    it = _interactions(obj, kinds)
    if period is not None and at is not None:
        it = it[it[period] == at]
    return _graph(it, weight)


def _graph(it: pd.DataFrame, weight: str) -> nx.DiGraph:
    """Directed source -> target graph of interactions, weighted by 'count' or 'value'."""
    agg = it.groupby(["source", "target"]).agg(count=("value", "size"), value=("value", "sum"))
    g = nx.DiGraph()
    g.add_weighted_edges_from((int(s), int(t), float(w)) for (s, t), w in agg[weight].items())
    return g


def top_k_share(scores: dict[Any, float] | pd.Series, k: int = 3) -> float:
    """Share of the total score held by the ``k`` highest-scoring nodes."""
    v = np.sort(np.asarray(list(dict(scores).values()), dtype=float))[::-1]
    return float(v[:k].sum() / v.sum()) if v.sum() > 0 else float("nan")


def pagerank_table(
    obj: Any,
    period: str = "generation",
    weight: str = "count",
    alpha: float = 0.85,
    kinds: Sequence[str] | None = None,
) -> pd.DataFrame:
    """PageRank of every agent in each period's interaction graph (long format);
    ``kinds``: the event kinds read as edges (default: donations or partnered decisions)."""
    it = _interactions(obj, kinds)
    keys = group_keys(it, period)
    rows = []
    for labels, part in iter_groups(it, keys):
        pr = nx.pagerank(_graph(part, weight), alpha=alpha, weight="weight")
        for node, score in pr.items():
            rows.append({**labels, "agent_id": node, "pagerank": score})
    return pd.DataFrame(rows)


def influence(
    obj: Any,
    period: str = "generation",
    k: int = 3,
    weight: str = "count",
    kinds: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per period: top-k PageRank concentration (``top_k_share``), the top agents, and
    ``persistence`` = Jaccard overlap of the top-k set with the previous period's.
    ``kinds``: the event kinds read as edges (see ``pagerank_table``)."""
    pr = pagerank_table(obj, period, weight, kinds=kinds)
    if pr.empty:
        return pd.DataFrame(columns=[period, "top_k_share", "top", "persistence"])
    keys = group_keys(pr, [])
    rows = []
    for labels, gg in iter_groups(pr, keys):
        prev: set[int] | None = None
        for t, g in gg.groupby(period, sort=True):
            g = g.sort_values(["pagerank", "agent_id"], ascending=[False, True])
            top = [int(a) for a in g["agent_id"].head(k)]
            row = dict(labels)
            row.update(
                {
                    period: t,
                    "top_k_share": top_k_share(
                        dict(zip(g["agent_id"], g["pagerank"], strict=True)), k
                    ),
                    "top": tuple(top),
                    "persistence": (len(prev & set(top)) / len(prev | set(top)))
                    if prev is not None
                    else np.nan,
                }
            )
            rows.append(row)
            prev = set(top)
    return pd.DataFrame(rows)
