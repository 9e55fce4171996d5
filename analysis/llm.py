"""LLM usage: calls, tokens, latency, invalid replies and fallback decisions.

Two invalid rates, each defined once here (``society show`` and the report both call
these functions):

* the **invalid reply rate** (:func:`call_stats`): the share of LLM calls (repairs
  included) whose reply did not parse into a legal action;
* the **invalid decision rate** (:func:`llm_decisions`): the share of decisions asked of
  an LLM (``source`` 'llm' or 'fallback') recorded as invalid, i.e. answered by the
  game's fallback after one repair. Scripted and forced decisions are not LLM decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .run import frame, group_keys

__all__ = ["LLM_SOURCES", "call_stats", "llm_decisions"]

By = str | Sequence[str] | None

LLM_SOURCES = ("llm", "fallback")  # decision sources that went through an LLM


def _p95(v: pd.Series) -> float:
    v = v.dropna()
    return float(np.percentile(v, 95)) if len(v) else float("nan")


def call_stats(obj: Any, by: By = ("backend", "model")) -> pd.DataFrame:
    """Per ``by`` (None: the whole run): ``calls``, ``invalid_rate`` (share of calls whose
    reply was invalid), token sums, mean completion tokens and latency (mean, p50, p95)."""
    c = frame(obj, "llm_calls")
    keys = group_keys(c, by)
    cols = {
        "calls": ("id", "size"),
        "invalid_rate": ("valid", lambda v: 1.0 - float(np.mean(v)) if len(v) else np.nan),
        "prompt_tokens": ("prompt_tokens", "sum"),
        "completion_tokens": ("completion_tokens", "sum"),
        "mean_completion_tokens": ("completion_tokens", "mean"),
        "latency_mean_s": ("latency_s", "mean"),
        "latency_p50_s": ("latency_s", "median"),
        "latency_p95_s": ("latency_s", _p95),
    }
    if not keys:
        if c.empty:
            return _empty(cols)
        return c.assign(_all=0).groupby("_all").agg(**cols).reset_index(drop=True)
    return c.groupby(keys, observed=True).agg(**cols).reset_index()


def _empty(cols: dict[str, Any]) -> pd.DataFrame:
    row = dict.fromkeys(cols, np.nan)
    row.update(calls=0, prompt_tokens=0, completion_tokens=0)
    return pd.DataFrame([row])


def llm_decisions(obj: Any, by: By = ("model", "kind"), kind: str | None = None) -> pd.DataFrame:
    """Per ``by`` (None: the whole run), over the decisions an LLM was asked for
    (``source`` in :data:`LLM_SOURCES`; only decisions of ``kind`` when given):
    ``decisions``, ``fallback_rate`` (answered by the game's fallback) and
    ``invalid_rate`` (recorded as invalid)."""
    d = frame(obj, "decisions")
    d = d[d["source"].isin(LLM_SOURCES)]
    if kind is not None:
        d = d[d["kind"] == kind]
    d = d.assign(
        _fallback=(d["source"] == "fallback").to_numpy(dtype=float),
        _invalid=(~d["valid"].astype(bool)).to_numpy(dtype=float),
    )
    cols = {
        "decisions": ("_fallback", "size"),
        "fallback_rate": ("_fallback", "mean"),
        "invalid_rate": ("_invalid", "mean"),
    }
    keys = group_keys(d, by)
    if not keys:
        n = len(d)
        return pd.DataFrame(
            {
                "decisions": [n],
                "fallback_rate": [d["_fallback"].mean() if n else np.nan],
                "invalid_rate": [d["_invalid"].mean() if n else np.nan],
            }
        )
    return d.groupby(keys, observed=True).agg(**cols).reset_index()
