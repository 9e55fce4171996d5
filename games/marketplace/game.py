"""The two-sided agentic marketplace as a game of the protocol (Magentic Marketplace:
Bansal et al., arXiv 2510.25779, and its published code).

Customers (slots ``0..N-1``) shop for a request through typed actions: ``search`` (query
and page; the market fixes the mode and the limit, its search bandwidth), ``send_text``
to a business, ``check_messages`` (fetch what arrived), ``pay`` a proposal (by id; the
price is the proposal's total) and ``end``. Businesses (slots ``N..N+M-1``) answer each
customer that wrote to them with one reply: a text, or an order proposal (items with
quantities and unit prices, and a total they choose).

Time runs in steps. In each step every customer still shopping decides, and every
business with unanswered text messages decides once per such customer, all on the state
at the start of the step (so a reply sent in step t is fetched in step t+1 or later).
Messages are carried between steps in inboxes. A customer stops when it ends or has used
its step budget (``max_steps``, 100 in the paper); a market is over when every customer
has stopped. Several markets (variants: bandwidths, manipulations, ...) may be played one
after another by the same agents; each starts afresh.

A payment that references no proposal, a proposal sent to another customer or by another
business, or one already paid, is recorded as an ``invalid_payment`` event with its
reason; nothing is paid. The market writes everything analysis needs as events (the
customers' requests and the optimum, the businesses' menus and amenities, searches,
messages, proposals, payments), so utilities and welfare are computed from the store.

State is plain data (``get_state``/``set_state``); randomness: none (the rules draw
nothing).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from games.marketplace.data import Customer, Dataset, optimal_choice
from games.marketplace.search import Constraints, search
from games.protocol import Event, Game, Position, Structured, Turn, object_schema

__all__ = [
    "CUSTOMER_ACTIONS",
    "BusinessAction",
    "BusinessView",
    "CustomerAction",
    "CustomerView",
    "MarketGame",
    "MarketKind",
    "MarketRules",
    "MarketSetup",
    "MarketSpec",
    "ProposalItem",
]

CUSTOMER_ACTIONS = ("search", "send_text", "check_messages", "pay", "end")


class MarketKind(StrEnum):
    """Decision and event kinds of the marketplace, as recorded in the run store."""

    SHOP = "shop"  # a customer's decision
    REPLY = "reply"  # a business's decision
    MARKET = "market"  # a market opens (data: its settings and optimal welfare)
    CUSTOMER = "customer"  # a customer's request (data: values, amenities, the optimum)
    BUSINESS = "business"  # a business's listing (data: menu, amenities, rating, ...)
    SEARCH = "search"
    MESSAGE = "message"
    INVALID_MESSAGE = "invalid_message"
    PROPOSAL = "proposal"
    PAYMENT = "payment"
    INVALID_PAYMENT = "invalid_payment"
    FETCH = "fetch"
    END = "end"


# -- actions ---------------------------------------------------------------------------------
class CustomerAction(BaseModel):
    """One step of a customer: which action, and the fields it uses (others stay empty).

    ``amenities`` and ``items`` are the constraints of a ``filtered`` search (scripted
    policies only; the LLM's schema leaves them out).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["search", "send_text", "check_messages", "pay", "end"]
    query: str = ""
    page: int = 1  # pages below 1 read as page 1
    to: str = ""
    text: str = ""
    proposal_id: str = ""
    amenities: tuple[str, ...] = ()
    items: tuple[str, ...] = ()


class ProposalItem(BaseModel):
    """One line of an order proposal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    quantity: int = Field(1, ge=1)
    unit_price: float = Field(ge=0)


class BusinessAction(BaseModel):
    """A business's reply: a text, or an order proposal (items and the total it asks);
    ``text`` goes with a proposal as its note. An empty text is not sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["text", "proposal"]
    text: str = ""
    items: tuple[ProposalItem, ...] = ()
    total: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _proposal_has_items(self) -> BusinessAction:
        if self.kind == "proposal" and not self.items:
            raise ValueError("a proposal needs at least one item")
        return self


@dataclass(frozen=True)
class MarketSpec(Structured):
    """A pydantic action whose JSON schema is narrowed per turn (``schema_json``): the
    ids a customer knows, the items on a business's menu. The check is the model's."""

    schema_json: str = "{}"

    def json_schema(self) -> dict[str, Any]:
        return dict(json.loads(self.schema_json))


@dataclass(frozen=True)
class MarketRules:
    """Limits of one market: each customer's step budget, result pages a search may ask
    for, and the lengths of texts and queries (bounds in the LLMs' schemas)."""

    max_steps: int = 100
    max_pages: int = 10
    text_chars: int = 160
    query_chars: int = 60
    max_items: int = 5

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_pages", "text_chars", "query_chars", "max_items"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class MarketSetup:
    """One market of a run: its label, data, search mode and bandwidth, and extra
    JSON-ready settings recorded with it (a manipulation, ratings, ...)."""

    label: str
    dataset: Dataset
    search_mode: str = "lexical"
    search_bandwidth: int = 10
    info: dict[str, Any] = field(default_factory=dict)


# -- what agents see ----------------------------------------------------------------------------
class CustomerView(NamedTuple):
    """A customer's view before its step: its request, its trajectory (one entry per past
    step: the action and what came of it), its step count and budget, and the market for
    reading businesses and messages. ``optimal`` is the id of its best business at list
    prices: for the scripted oracle only (LLM prompts never show it)."""

    customer_index: int
    customer: Customer
    step: int
    max_steps: int
    log: Sequence[dict[str, Any]]
    market: MarketSetup
    messages: Sequence[dict[str, Any]]
    known: tuple[str, ...]
    proposals: tuple[str, ...]
    optimal: str | None

    def fetched(self) -> list[dict[str, Any]]:
        """Every message this customer has fetched, in arrival order."""
        return [self.messages[m] for e in self.log if e["action"] == "check_messages"
                for m in e["result"]["messages"]]  # fmt: skip


class BusinessView(NamedTuple):
    """A business's view of one customer: its listing, the whole conversation with that
    customer (messages both ways, oldest first) and which of them are new."""

    business_index: int
    business_id: str
    customer_id: str
    market: MarketSetup
    conversation: tuple[dict[str, Any], ...]
    new: tuple[int, ...]


# -- the game ---------------------------------------------------------------------------------
def _customer_schema(rules: MarketRules, known: Sequence[str], proposals: Sequence[str]) -> str:
    props = {
        "action": {"type": "string", "enum": list(CUSTOMER_ACTIONS)},
        "query": {"type": "string", "maxLength": rules.query_chars},
        "page": {"type": "integer", "minimum": 1, "maximum": rules.max_pages},
        "to": {"type": "string", "enum": ["", *known]},
        "text": {"type": "string", "maxLength": rules.text_chars},
        "proposal_id": {"type": "string", "enum": ["", *proposals]},
    }
    return json.dumps(object_schema(props), separators=(",", ":"))


def _business_schema(rules: MarketRules, menu: Sequence[str]) -> str:
    item = object_schema(
        {
            "name": {"type": "string", "enum": list(menu)},
            "quantity": {"type": "integer", "minimum": 1, "maximum": 20},
            "unit_price": {"type": "number", "minimum": 0},
        }
    )
    props = {
        "kind": {"type": "string", "enum": ["text", "proposal"]},
        "text": {"type": "string", "maxLength": rules.text_chars},
        "items": {"type": "array", "items": item, "maxItems": rules.max_items},
        "total": {"type": "number", "minimum": 0},
    }
    return json.dumps(object_schema(props), separators=(",", ":"))


CHECK = CustomerAction(action="check_messages")
SILENT = BusinessAction(kind="text", text="")


class MarketGame(Game):
    """The markets of a run, played one after another (see the module docstring).

    ``markets`` are the market setups (all with the same numbers of customers and
    businesses); each is played ``repeats`` times in a row. Slots: customers first, then
    businesses. ``embedder`` serves the ``embedding`` search mode.
    """

    kind = "marketplace"

    def __init__(
        self,
        markets: Sequence[MarketSetup],
        rules: MarketRules,
        *,
        repeats: int = 1,
        embedder: Any = None,
    ) -> None:
        if not markets:
            raise ValueError("markets: at least one market is needed")
        n, m = len(markets[0].dataset.customers), len(markets[0].dataset.businesses)
        for k, mk in enumerate(markets):
            if (len(mk.dataset.customers), len(mk.dataset.businesses)) != (n, m):
                raise ValueError(
                    f"markets.{k}: every market needs {n} customers and {m} businesses"
                )
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"repeats: must be an integer >= 1, got {repeats!r}")
        self.markets = list(markets)
        self.rules = rules
        self.repeats = repeats
        self.embedder = embedder
        self.n, self.m = n, m
        self._optimal = [[optimal_choice(mk.dataset, i) for i in range(n)] for mk in self.markets]
        self.next_proposal = 1
        self._start(0)

    # -- market lifecycle ---------------------------------------------------------------------
    def _start(self, k: int) -> None:
        self.k = k  # index over markets x repeats
        self.step = 0
        self.opened = False
        self.messages: list[dict[str, Any]] = []
        self.steps = [0] * self.n
        self.finished = [False] * self.n
        self.logs: list[list[dict[str, Any]]] = [[] for _ in range(self.n)]
        self.inbox: list[list[int]] = [[] for _ in range(self.n)]
        self.known: list[list[str]] = [[] for _ in range(self.n)]
        self.pending_in: list[dict[int, list[int]]] = [{} for _ in range(self.m)]
        self.proposals: dict[str, dict[str, Any]] = {}
        self.arrivals = [0] * self.n
        self._turns: list[Turn] = []

    @property
    def market(self) -> MarketSetup:
        """The market being played."""
        return self.markets[self.k // self.repeats]

    @property
    def done(self) -> bool:
        return self.k >= len(self.markets) * self.repeats

    def position(self) -> Position:
        return Position(self.k, self.step)

    # -- turns ----------------------------------------------------------------------------------
    def pending(self, rng: np.random.Generator) -> list[Turn]:
        mk, rules = self.market, self.rules
        ds = mk.dataset
        ids = [b.id for b in ds.businesses]
        turns: list[Turn] = []
        best = [None if j is None else ids[j] for j, _ in self._optimal[self.k // self.repeats]]
        for i in range(self.n):
            if self.finished[i]:
                continue
            known = tuple(self.known[i])
            props = tuple(p for p, v in self.proposals.items() if v["customer"] == i and v["seen"])
            view = CustomerView(
                i, ds.customers[i], self.steps[i], rules.max_steps, self.logs[i], mk,
                self.messages, known, props, best[i],
            )  # fmt: skip
            spec = MarketSpec(CustomerAction, schema_json=_customer_schema(rules, known, props))
            turns.append(Turn(i, None, MarketKind.SHOP, view, spec, CHECK, self.k))
        # Businesses answer customers in the order their unanswered texts arrived.
        asks: list[tuple[int, int, int, tuple[int, ...]]] = []
        for j in range(self.m):
            for i, mids in self.pending_in[j].items():
                if any(self.messages[x]["kind"] == "text" for x in mids):
                    asks.append((min(mids), j, i, tuple(mids)))
        asks.sort()
        for _, j, i, asked in asks:
            b = ds.businesses[j]
            convo = tuple(
                msg for msg in self.messages
                if {msg["from"], msg["to"]} == {i, self.n + j}
            )  # fmt: skip
            view_b = BusinessView(j, b.id, ds.customers[i].id, mk, convo, asked)
            spec = MarketSpec(BusinessAction, schema_json=_business_schema(rules, list(b.menu)))
            turns.append(Turn(self.n + j, i, MarketKind.REPLY, view_b, spec, SILENT, self.k))
        self._turns = turns
        return turns

    def record(self, turn: Turn, action: Any) -> tuple[str | None, float | None, Any]:
        """A customer's step as its action name; a reply as 'text'/'proposal' (value: the
        total); data: the action's fields."""
        if isinstance(action, CustomerAction):
            data = action.model_dump(mode="json", exclude_defaults=True)
            return action.action, None, data
        assert isinstance(action, BusinessAction)
        data = action.model_dump(mode="json", exclude_defaults=True)
        return action.kind, (action.total if action.kind == "proposal" else None), data

    # -- applying a step ----------------------------------------------------------------------------
    def apply(
        self, turns: Sequence[Turn], actions: Sequence[Any], rng: np.random.Generator
    ) -> list[Event]:
        events: list[Event] = []
        if not self.opened:
            events.extend(self._open_events())
            self.opened = True
        for turn, action in zip(turns, actions, strict=True):
            if turn.purpose == MarketKind.SHOP:
                events.extend(self._customer(turn.agent, action))
            else:
                events.extend(self._business(turn, action))
        self.step += 1
        self._turns = []
        if all(self.finished):
            self._start(self.k + 1)
        return events

    def _open_events(self) -> list[Event]:
        mk = self.market
        ds = mk.dataset
        opt = self._optimal[self.k // self.repeats]
        welfare = round(sum(u for _, u in opt), 2)
        info = {
            "market": self.k, "label": mk.label, "variant": self.k // self.repeats,
            "repeat": self.k % self.repeats, "domain": ds.domain, "customers": self.n,
            "businesses": self.m, "search_mode": mk.search_mode,
            "search_bandwidth": mk.search_bandwidth, "max_steps": self.rules.max_steps,
            "optimal_welfare": welfare, **mk.info,
        }  # fmt: skip
        out = [Event(MarketKind.MARKET, None, None, mk.label, welfare, info)]
        for i, c in enumerate(ds.customers):
            j, u = opt[i]
            out.append(
                Event(
                    MarketKind.CUSTOMER, i, None if j is None else self.n + j, c.id, u,
                    {"id": c.id, "name": c.name, "values": c.values,
                     "amenities": list(c.amenities), "optimal": None if j is None else ds.businesses[j].id},
                )
            )  # fmt: skip
        for j, b in enumerate(ds.businesses):
            out.append(
                Event(
                    MarketKind.BUSINESS, self.n + j, None, b.id, b.rating,
                    {"id": b.id, "name": b.name, "description": b.description,
                     "menu": b.menu, "amenities": list(b.offers())},
                )
            )  # fmt: skip
        return out

    def _send(self, sender: int, receiver: int, kind: str, **payload: Any) -> int:
        mid = len(self.messages)
        self.messages.append(
            {"id": mid, "step": self.step, "from": sender, "to": receiver, "kind": kind, **payload}
        )
        return mid

    def _customer(self, i: int, a: CustomerAction) -> list[Event]:
        mk, ds = self.market, self.market.dataset
        ev: list[Event] = []
        step = self.steps[i] + 1
        entry: dict[str, Any] = {"step": step, "action": a.action}
        rules = self.rules
        if len(a.text) > rules.text_chars or len(a.query) > rules.query_chars:
            a = a.model_copy(update={"text": a.text[: rules.text_chars],
                                     "query": a.query[: rules.query_chars]})  # fmt: skip
        if a.action == "search":
            limits = Constraints(None, tuple(a.amenities), tuple(a.items))
            res = search(
                ds.businesses, a.query or ds.customers[i].request, mk.search_mode,
                limit=mk.search_bandwidth, page=a.page,
                constraints=limits if (a.amenities or a.items) else None,
                wanted=ds.customers[i].items, embedder=self.embedder,
            )  # fmt: skip
            found = [ds.businesses[j].id for j in res.businesses]
            for bid in found:
                if bid not in self.known[i]:
                    self.known[i].append(bid)
            entry.update(query=a.query, page=res.page)
            entry["result"] = {
                "results": list(res.businesses),
                "total": res.total,
                "pages": res.pages,
            }
            ev.append(Event(MarketKind.SEARCH, i, None, a.query, float(len(found)),
                            {"page": res.page, "results": found, "total": res.total}))  # fmt: skip
        elif a.action == "send_text":
            j = self._business_index(a.to)
            entry.update(to=a.to, text=a.text)
            if j is None or not a.text.strip():
                reason = "empty message" if j is not None else f"no business with id {a.to!r}"
                entry["result"] = {"ok": False, "reason": reason}
                ev.append(Event(MarketKind.INVALID_MESSAGE, i, None if j is None else self.n + j,
                                a.to, None, {"reason": reason}))  # fmt: skip
            else:
                mid = self._send(i, self.n + j, "text", text=a.text)
                self.pending_in[j].setdefault(i, []).append(mid)
                entry["result"] = {"ok": True, "message": mid}
                ev.append(Event(MarketKind.MESSAGE, i, self.n + j, "text", None,
                                {"id": mid, "text": a.text}))  # fmt: skip
        elif a.action == "check_messages":
            got, self.inbox[i] = self.inbox[i], []
            for mid in got:
                pid = self.messages[mid].get("proposal")
                if pid is not None:
                    self.proposals[pid]["seen"] = True
            entry["result"] = {"messages": got}
            ev.append(Event(MarketKind.FETCH, i, None, None, float(len(got)), None))
        elif a.action == "pay":
            entry.update(to=a.to, proposal_id=a.proposal_id)
            ev.append(self._pay(i, a, entry))
        else:  # end
            self.finished[i] = True
            ev.append(Event(MarketKind.END, i, None, "end", float(step), None))
        if a.action != "end":
            self.logs[i].append(entry)
        self.steps[i] = step
        if not self.finished[i] and step >= self.rules.max_steps:
            self.finished[i] = True
            ev.append(Event(MarketKind.END, i, None, "budget", float(step), None))
        return ev

    def _business_index(self, bid: str) -> int | None:
        for j, b in enumerate(self.market.dataset.businesses):
            if b.id == bid:
                return j
        return None

    def _pay(self, i: int, a: CustomerAction, entry: dict[str, Any]) -> Event:
        p = self.proposals.get(a.proposal_id)
        to = self._business_index(a.to) if a.to else None
        reason = None
        if p is None:
            reason = f"no proposal with id {a.proposal_id!r}"
        elif p["customer"] != i:
            reason = "the proposal was sent to another customer"
        elif a.to and to != p["business"]:
            reason = f"proposal {a.proposal_id} is not from {a.to}"
        elif p["paid"]:
            reason = f"proposal {a.proposal_id} is already paid"
        payee = None if p is None else self.n + p["business"]
        if reason is not None:
            entry["result"] = {"ok": False, "reason": reason}
            partner = payee if p is not None else (None if to is None else self.n + to)
            return Event(MarketKind.INVALID_PAYMENT, i, partner, a.proposal_id, None,
                         {"reason": reason, "to": a.to})  # fmt: skip
        assert p is not None and payee is not None
        p["paid"] = True
        mid = self._send(i, payee, "payment", proposal=a.proposal_id, total=p["total"])
        self.pending_in[p["business"]].setdefault(i, []).append(mid)
        entry["result"] = {"ok": True, "amount": p["total"]}
        return Event(MarketKind.PAYMENT, i, payee, a.proposal_id, p["total"],
                     {"proposal": a.proposal_id, "items": p["items"], "total": p["total"]})  # fmt: skip

    def _business(self, turn: Turn, a: BusinessAction) -> list[Event]:
        view: BusinessView = turn.observation
        j, i = view.business_index, int(turn.partner or 0)
        left = [x for x in self.pending_in[j].get(i, []) if x not in view.new]
        if left:
            self.pending_in[j][i] = left
        else:
            self.pending_in[j].pop(i, None)
        me = self.n + j
        if len(a.text) > self.rules.text_chars:
            a = a.model_copy(update={"text": a.text[: self.rules.text_chars]})
        if a.kind == "text":
            if not a.text.strip():
                return []
            mid = self._send(me, i, "text", text=a.text)
            self.inbox[i].append(mid)
            return [Event(MarketKind.MESSAGE, me, i, "text", None, {"id": mid, "text": a.text})]
        pid = f"P{self.next_proposal}"
        self.next_proposal += 1
        items = [it.model_dump(mode="json") for it in a.items]
        total = round(float(a.total), 2)
        self.arrivals[i] += 1
        self.proposals[pid] = {"business": j, "customer": i, "total": total, "items": items,
                               "paid": False, "seen": False}  # fmt: skip
        mid = self._send(me, i, "proposal", proposal=pid, items=items, total=total, text=a.text)
        self.inbox[i].append(mid)
        data = {"id": pid, "message": mid, "items": items, "total": total, "text": a.text,
                "arrival": self.arrivals[i]}  # fmt: skip
        return [Event(MarketKind.PROPOSAL, me, i, pid, total, data)]

    # -- state ------------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "k": self.k, "step": self.step, "opened": self.opened,
            "next_proposal": self.next_proposal, "messages": self.messages,
            "steps": self.steps, "done": self.finished, "logs": self.logs, "inbox": self.inbox,
            "known": self.known,
            "pending_in": [[[i, mids] for i, mids in p.items()] for p in self.pending_in],
            "proposals": self.proposals, "arrivals": self.arrivals,
        }  # fmt: skip

    def set_state(self, state: dict[str, Any]) -> None:
        self._start(int(state["k"]))
        self.step = int(state["step"])
        self.opened = bool(state["opened"])
        self.next_proposal = int(state["next_proposal"])
        self.messages = list(state["messages"])
        self.steps = [int(x) for x in state["steps"]]
        self.finished = [bool(x) for x in state["done"]]
        self.logs = [list(x) for x in state["logs"]]
        self.inbox = [[int(m) for m in x] for x in state["inbox"]]
        self.known = [[str(b) for b in x] for x in state["known"]]
        self.pending_in = [{int(i): [int(m) for m in mids] for i, mids in p}
                           for p in state["pending_in"]]  # fmt: skip
        self.proposals = {str(k): dict(v) for k, v in state["proposals"].items()}
        self.arrivals = [int(x) for x in state["arrivals"]]
        if len(self.steps) != self.n or len(self.pending_in) != self.m:
            raise ValueError("the checkpoint's market has other numbers of agents")
