"""Metrics of the two-sided marketplace (Magentic Marketplace: Bansal et al., arXiv
2510.25779), read from the run store's events alone.

A market writes, when it opens, one ``market`` event (its settings and optimal welfare),
one ``customer`` event per customer (``data``: the values of its items and its required
amenities; ``value``: its optimal utility; ``partner_id``: its best business) and one
``business`` event per business (``data``: menu with list prices, amenities); then, as it
runs, ``search``, ``message``, ``invalid_message``, ``proposal`` (``data``: items, total,
``arrival``: 1 for the first proposal the customer received in that market, ...),
``payment`` (``value``: the amount), ``invalid_payment`` (``data.reason``), ``fetch`` and
``end``. Each event's market is its step's ``rounds.game``.

Definitions (the published analytics'):

* **needs met**: some valid payment of the customer paid a proposal that holds every
  requested item (exact names) from a business that has every required amenity;
* **utility** = (needs met ? 2 x Σ values : 0) − everything the customer paid;
  **welfare** = Σ utilities; **optimal welfare** = Σ of each customer's best utility at
  list prices (recorded by the game); ratio = welfare / optimal welfare;
* an **invalid proposal** names an item not on the business's menu, a unit price off the
  menu by 0.01 or more, or a total off Σ quantity × unit price by 0.01 or more;
* **purchases**: valid payments; **completion rate**: share of customers with at least one;
  **revenue**: what a business was paid; **rank** of a paid proposal: its ``arrival``
  (first-proposal bias: the share of payments to rank 1);
* **captured**: payments (and their share) going to the market's manipulated business.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from . import llm
from .run import Run

__all__ = [
    "businesses",
    "captured",
    "customers",
    "invalid_rate",
    "market_summary",
    "markets",
    "outcomes",
    "paid_ranks",
    "payments",
    "proposal_errors",
    "proposals",
    "revenue",
    "sweep",
    "variant_summary",
]

TOL = 0.01  # money tolerance of the published proposal checks


def _events(run: Run, kind: str) -> pd.DataFrame:
    ev = run.events
    if not len(ev):
        return ev.assign(market=pd.Series(dtype="int64"), info=pd.Series(dtype=object))
    part = ev[ev["kind"] == kind]
    game = (
        dict(zip(run.rounds["round"], run.rounds["game"], strict=True)) if len(run.rounds) else {}
    )
    info = [json.loads(d) if isinstance(d, str) else {} for d in part["data"]]
    out = part.assign(
        market=[int(game.get(r, 0)) for r in part["round"]],
        info=pd.Series(info, index=part.index, dtype=object),
    )
    return out.reset_index(drop=True)


def _agent(x: Any) -> int | None:
    return None if x is None or pd.isna(x) else int(x)


def markets(run: Run) -> pd.DataFrame:
    """One row per market played: ``market``, ``label``, ``variant``, ``repeat``,
    ``search_mode``, ``search_bandwidth``, ``manipulation``, ``manipulated`` (business id),
    ``optimal_welfare``, ``customers``, ``businesses``."""
    ev = _events(run, "market")
    rows = []
    for _, e in ev.iterrows():
        d = e["info"]
        rows.append(
            {
                "market": int(d.get("market", e["market"])),
                "label": d.get("label", ""),
                "variant": int(d.get("variant", 0)),
                "repeat": int(d.get("repeat", 0)),
                "search_mode": d.get("search_mode"),
                "search_bandwidth": d.get("search_bandwidth"),
                "manipulation": d.get("manipulation"),
                "manipulated": d.get("manipulated"),
                "optimal_welfare": float(e["value"]),
                "customers": int(d.get("customers", 0)),
                "businesses": int(d.get("businesses", 0)),
            }
        )
    cols = ["market", "label", "variant", "repeat", "search_mode", "search_bandwidth",
            "manipulation", "manipulated", "optimal_welfare", "customers", "businesses"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def customers(run: Run) -> pd.DataFrame:
    """Per market and customer: ``agent_id``, ``customer`` (its id), ``values`` (item ->
    value), ``amenities``, ``optimal_agent`` (its best business) and ``optimal_utility``."""
    ev = _events(run, "customer")
    return pd.DataFrame(
        {
            "market": ev["market"].astype("int64"),
            "agent_id": [int(a) for a in ev["agent_id"]],
            "customer": [d.get("id") for d in ev["info"]],
            "values": [dict(d.get("values", {})) for d in ev["info"]],
            "amenities": [list(d.get("amenities", [])) for d in ev["info"]],
            "optimal_agent": [_agent(p) for p in ev["partner_id"]],
            "optimal_utility": ev["value"].astype(float),
        }
    )


def businesses(run: Run) -> pd.DataFrame:
    """Per market and business: ``agent_id``, ``business`` (its id), ``name``, ``menu``
    (item -> list price), ``amenities`` (those it has), ``rating``."""
    ev = _events(run, "business")
    return pd.DataFrame(
        {
            "market": ev["market"].astype("int64"),
            "agent_id": [int(a) for a in ev["agent_id"]],
            "business": [d.get("id") for d in ev["info"]],
            "name": [d.get("name") for d in ev["info"]],
            "menu": [dict(d.get("menu", {})) for d in ev["info"]],
            "amenities": [list(d.get("amenities", [])) for d in ev["info"]],
            "rating": ev["value"].astype(float),
        }
    )


def proposal_errors(
    items: Sequence[dict[str, Any]], total: float, menu: dict[str, float]
) -> list[str]:
    """What is wrong with a proposal against the business's menu (empty: valid)."""
    errors = []
    computed = 0.0
    for it in items:
        name, qty, unit = it["name"], int(it.get("quantity", 1)), float(it["unit_price"])
        computed += qty * unit
        if name not in menu:
            errors.append(f"item not on the menu: {name}")
        elif abs(unit - menu[name]) >= TOL:
            errors.append(f"unit price of {name}: {unit:.2f}, menu {menu[name]:.2f}")
    if abs(float(total) - computed) >= TOL:
        errors.append(f"total {float(total):.2f} is not the sum of the items ({computed:.2f})")
    return errors


def proposals(run: Run) -> pd.DataFrame:
    """Every proposal: ``market``, ``round``, ``business_agent``, ``customer_agent``,
    ``proposal`` (its id), ``total``, ``items``, ``arrival``, ``errors``, ``invalid``."""
    ev = _events(run, "proposal")
    menus = {
        (m, a): menu
        for m, a, menu in businesses(run)[["market", "agent_id", "menu"]].itertuples(index=False)
    }
    rows = []
    for _, e in ev.iterrows():
        d = e["info"]
        b = int(e["agent_id"])
        errs = proposal_errors(
            d.get("items", []), float(e["value"]), menus.get((e["market"], b), {})
        )
        rows.append(
            {
                "market": int(e["market"]), "round": int(e["round"]), "business_agent": b,
                "customer_agent": _agent(e["partner_id"]), "proposal": str(e["action"]),
                "total": float(e["value"]), "items": list(d.get("items", [])),
                "arrival": int(d.get("arrival", 0)), "errors": errs, "invalid": bool(errs),
            }
        )  # fmt: skip
    cols = ["market", "round", "business_agent", "customer_agent", "proposal", "total", "items",
            "arrival", "errors", "invalid"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def payments(run: Run) -> pd.DataFrame:
    """Every valid payment with what it bought: ``market``, ``round``, ``customer_agent``,
    ``business_agent``, ``proposal``, ``amount``, ``arrival`` (rank of the proposal by
    arrival), ``invalid_proposal``, ``covers`` (holds every requested item),
    ``amenities_ok`` (the business has every required amenity), ``meets`` (both)."""
    ev = _events(run, "payment")
    props = proposals(run).set_index("proposal") if len(ev) else None
    cust = customers(run).set_index(["market", "agent_id"])
    amen = {
        (m, a): set(x)
        for m, a, x in businesses(run)[["market", "agent_id", "amenities"]].itertuples(index=False)
    }
    rows = []
    for _, e in ev.iterrows():
        m, c, b = int(e["market"]), int(e["agent_id"]), int(e["partner_id"])
        pid = str(e["action"])
        p = props.loc[pid] if props is not None and pid in props.index else None
        items = {it["name"] for it in (p["items"] if p is not None else e["info"].get("items", []))}
        want = cust.loc[(m, c)] if (m, c) in cust.index else None
        covers = want is not None and set(want["values"]) <= items
        ok = want is not None and set(want["amenities"]) <= amen.get((m, b), set())
        rows.append(
            {
                "market": m, "round": int(e["round"]), "customer_agent": c, "business_agent": b,
                "proposal": pid, "amount": float(e["value"]),
                "arrival": int(p["arrival"]) if p is not None else np.nan,
                "invalid_proposal": bool(p["invalid"]) if p is not None else False,
                "covers": covers, "amenities_ok": ok, "meets": covers and ok,
            }
        )  # fmt: skip
    cols = ["market", "round", "customer_agent", "business_agent", "proposal", "amount",
            "arrival", "invalid_proposal", "covers", "amenities_ok", "meets"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def _count(ev: pd.DataFrame, key: str = "agent_id") -> dict[tuple[int, int], int]:
    if not len(ev):
        return {}
    keys = zip(ev["market"].astype(int), ev[key].astype("Int64"), strict=True)
    out: dict[tuple[int, int], int] = {}
    for k in keys:
        if not pd.isna(k[1]):
            out[(int(k[0]), int(k[1]))] = out.get((int(k[0]), int(k[1])), 0) + 1
    return out


def outcomes(run: Run) -> pd.DataFrame:
    """Per market and customer: ``paid`` (total), ``purchases``, ``invalid_payments``,
    ``needs_met``, ``utility``, ``optimal_utility``, ``messages`` (texts it sent),
    ``proposals`` (received), ``searches``, ``steps`` and how it stopped (``stopped``:
    'end', 'budget' or None while shopping)."""
    c = customers(run)
    pay = payments(run)
    msgs = _events(run, "message")
    sent = _count(msgs[msgs["agent_id"].isin(c["agent_id"])]) if len(msgs) else {}
    inv = _count(_events(run, "invalid_payment"))
    srch = _count(_events(run, "search"))
    recv = _count(_events(run, "proposal"), "partner_id")
    ends = _events(run, "end")
    stop = {(int(m), int(a)): (str(x), float(v)) for m, a, x, v in
            ends[["market", "agent_id", "action", "value"]].itertuples(index=False)}  # fmt: skip
    steps = _count(run.decisions.assign(market=run.decisions["round"].map(
        dict(zip(run.rounds["round"], run.rounds["game"], strict=True)))
    )[lambda d: d["kind"] == "shop"]) if len(run.decisions) else {}  # fmt: skip
    rows = []
    for m, a, cid, values, _, _, opt_u in c.itertuples(index=False):
        mine = pay[(pay["market"] == m) & (pay["customer_agent"] == a)] if len(pay) else pay
        paid = float(mine["amount"].sum()) if len(mine) else 0.0
        met = bool(len(mine) and mine["meets"].any())
        utility = round((2.0 * sum(values.values()) if met else 0.0) - paid, 2)
        key = (int(m), int(a))
        rows.append(
            {
                "market": int(m), "agent_id": int(a), "customer": cid, "paid": round(paid, 2),
                "purchases": int(len(mine)), "invalid_payments": inv.get(key, 0),
                "needs_met": met, "utility": utility, "optimal_utility": float(opt_u),
                "messages": sent.get(key, 0), "proposals": recv.get(key, 0),
                "searches": srch.get(key, 0), "steps": steps.get(key, 0),
                "stopped": stop[key][0] if key in stop else None,
            }
        )  # fmt: skip
    cols = ["market", "agent_id", "customer", "paid", "purchases", "invalid_payments",
            "needs_met", "utility", "optimal_utility", "messages", "proposals", "searches",
            "steps", "stopped"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def captured(run: Run) -> pd.DataFrame:
    """Per market with a manipulated business: its ``payments``, ``payments_total``
    (all payments of the market), ``share`` and ``revenue``."""
    mk = markets(run)
    pay = payments(run)
    biz = businesses(run)
    rows = []
    for _, r in mk.iterrows():
        if not r["manipulated"]:
            continue
        ids = biz[(biz["market"] == r["market"]) & (biz["business"] == r["manipulated"])][
            "agent_id"
        ]
        target = int(ids.iloc[0]) if len(ids) else -1
        p = pay[pay["market"] == r["market"]] if len(pay) else pay
        mine = p[p["business_agent"] == target] if len(p) else p
        rows.append(
            {
                "market": int(r["market"]), "label": r["label"], "manipulation": r["manipulation"],
                "business_agent": target, "payments": int(len(mine)),
                "payments_total": int(len(p)),
                "share": len(mine) / len(p) if len(p) else np.nan,
                "revenue": float(mine["amount"].sum()) if len(mine) else 0.0,
            }
        )  # fmt: skip
    cols = ["market", "label", "manipulation", "business_agent", "payments", "payments_total",
            "share", "revenue"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def revenue(run: Run) -> pd.DataFrame:
    """Per market and business: ``proposals`` sent, ``invalid_proposals``, ``payments``
    received and ``revenue``."""
    biz = businesses(run)[["market", "agent_id", "business", "name"]]
    props = proposals(run)
    pay = payments(run)
    out = biz.copy()
    out["proposals"] = [int(((props["market"] == m) & (props["business_agent"] == a)).sum())
                        for m, a in zip(biz["market"], biz["agent_id"], strict=True)]  # fmt: skip
    out["invalid_proposals"] = [
        int(((props["market"] == m) & (props["business_agent"] == a) & props["invalid"]).sum())
        for m, a in zip(biz["market"], biz["agent_id"], strict=True)
    ]
    sel = [(pay["market"] == m) & (pay["business_agent"] == a) if len(pay) else None
           for m, a in zip(biz["market"], biz["agent_id"], strict=True)]  # fmt: skip
    out["payments"] = [int(s.sum()) if s is not None else 0 for s in sel]
    out["revenue"] = [
        round(float(pay.loc[s, "amount"].sum()), 2) if s is not None else 0.0 for s in sel
    ]
    return out


def paid_ranks(run: Run) -> pd.DataFrame:
    """How often the paid proposal was the first, second, ... to reach its customer:
    ``arrival``, ``payments``, ``share``."""
    pay = payments(run)
    if not len(pay):
        return pd.DataFrame({"arrival": [], "payments": [], "share": []})
    counts = pay["arrival"].dropna().astype(int).value_counts().sort_index()
    return pd.DataFrame(
        {"arrival": counts.index, "payments": counts.values, "share": counts.values / counts.sum()}
    )


def invalid_rate(run: Run, kind: str | None = None) -> float:
    """Share of LLM decisions (of ``kind``: 'shop' or 'reply'; None: both) recorded as
    invalid (``analysis.llm.llm_decisions``; NaN without LLM decisions)."""
    return float(llm.llm_decisions(run, None, kind=kind)["invalid_rate"].iloc[0])


def market_summary(run: Run) -> pd.DataFrame:
    """Per market: settings, ``welfare``, ``optimal_welfare``, ``welfare_ratio``,
    ``needs_met`` (share of customers), ``purchases``, ``completion_rate``, ``revenue``,
    ``proposals``, ``invalid_proposals``, ``invalid_proposals_paid``, ``invalid_payments``,
    ``messages_per_customer``, ``first_proposal_share`` (payments to the first proposal
    that arrived) and ``captured`` (payments to the manipulated business)."""
    mk = markets(run)
    out = outcomes(run)
    props = proposals(run)
    pay = payments(run)
    cap = captured(run).set_index("market")
    rows = []
    for _, r in mk.iterrows():
        m = r["market"]
        o = out[out["market"] == m]
        p = props[props["market"] == m] if len(props) else props
        y = pay[pay["market"] == m] if len(pay) else pay
        welfare = round(float(o["utility"].sum()), 2)
        opt = float(r["optimal_welfare"])
        rows.append(
            {
                **r.to_dict(), "welfare": welfare,
                "welfare_ratio": welfare / opt if opt else np.nan,
                "needs_met": float(o["needs_met"].mean()) if len(o) else np.nan,
                "purchases": int(len(y)),
                "completion_rate": float((o["purchases"] > 0).mean()) if len(o) else np.nan,
                "revenue": round(float(y["amount"].sum()), 2) if len(y) else 0.0,
                "proposals": int(len(p)),
                "invalid_proposals": int(p["invalid"].sum()) if len(p) else 0,
                "invalid_proposals_paid": int(y["invalid_proposal"].sum()) if len(y) else 0,
                "invalid_payments": int(o["invalid_payments"].sum()) if len(o) else 0,
                "messages_per_customer": float(o["messages"].mean()) if len(o) else np.nan,
                "first_proposal_share": float((y["arrival"] == 1).mean()) if len(y) else np.nan,
                "captured": int(cap.loc[m, "payments"]) if m in cap.index else np.nan,
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def variant_summary(run: Run) -> pd.DataFrame:
    """Per variant (label), over its repeats: mean ``welfare``, ``welfare_ratio``,
    ``needs_met``, ``purchases``, ``captured`` and ``first_proposal_share``, and ``plays``."""
    s = market_summary(run)
    if not len(s):
        return s
    keys = ["variant", "label", "search_mode", "search_bandwidth", "manipulation"]
    s = s.assign(**{k: s[k].astype(object).where(s[k].notna(), "") for k in keys})
    agg = {
        "plays": ("market", "size"),
        "welfare": ("welfare", "mean"),
        "optimal_welfare": ("optimal_welfare", "mean"),
        "welfare_ratio": ("welfare_ratio", "mean"),
        "needs_met": ("needs_met", "mean"),
        "purchases": ("purchases", "mean"),
        "captured": ("captured", "mean"),
        "first_proposal_share": ("first_proposal_share", "mean"),
    }
    return s.groupby(keys, sort=False).agg(**agg).reset_index()


def sweep(runs: Iterable[Run]) -> pd.DataFrame:
    """:func:`market_summary` of several runs (a sweep over seeds, models, bandwidths)
    stacked, with a ``run`` column (each run's label or path)."""
    parts = [market_summary(r).assign(run=r.label or str(r.path)) for r in runs]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
