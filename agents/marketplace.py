"""Policies of the two-sided marketplace (Magentic Marketplace: Bansal et al., arXiv
2510.25779): scripted baselines for customers and businesses, and the LLM policy that
plays either side.

Scripted customers (``role = "customer"``) answer a ``shop`` turn from the customer's view
(``games.marketplace.CustomerView``); scripted businesses (``role = "business"``) answer a
``reply`` turn from ``BusinessView``. All are stateless: everything they need is in the
view (the trajectory, the conversation), so one instance serves any number of agents.

* ``optimal_customer``: the oracle baseline. It writes to its best business at list
  prices (the optimum of ``games.marketplace.optimal_choice``), pays the first proposal
  that business sends, and ends.
* ``first_proposal_customer``: searches once, writes to every business on the first page
  in rank order (one per step), then pays the first proposal to arrive, whatever it holds.
* ``honest_business``: proposes the requested items it carries at its list prices (total =
  their sum), noting its amenities; asked about nothing it knows, it lists its menu.
* ``manipulative_business``: proposes every item the customer names (also ones it does not
  carry) at ``markup`` times its prices, with a persuasive pitch (``pitch``: one of the
  manipulation kinds of ``games/marketplace/data/manipulations.yaml``).

:class:`LLMMarketplace` is the LLM policy of both sides (templates ``marketplace.*``): a
customer sees its request, its whole trajectory (or the last ``history`` steps) and its
step budget, and answers one JSON action; a business sees its menu, amenities and the
conversation, and answers a text or an order proposal. Replies are constrained by the
turn's schema and parsed with one repair (``agents.llm.ask``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agents.chat import ChatRequest
from agents.llm import Ask, InvalidReply, ask, parse_json_object
from agents.params import Param, Parameterised, parse_spec
from agents.prompts import Prompts
from games.marketplace.data import manipulation_text, manipulations
from games.marketplace.game import (
    BusinessAction,
    BusinessView,
    CustomerAction,
    CustomerView,
    MarketKind,
    ProposalItem,
)
from games.protocol import ActionSpec, Answer, IllegalAction, Turn

__all__ = [
    "MARKETPLACE_POLICIES",
    "FirstProposalCustomer",
    "HonestBusiness",
    "LLMMarketplace",
    "ManipulativeBusiness",
    "MarketPolicy",
    "OptimalCustomer",
    "make_marketplace_policy",
    "marketplace_policy_names",
    "order_text",
]


@dataclass(frozen=True)
class NumberParam(Param):
    """A number in ``[low, high]`` (a parameter kind of this module)."""

    kind: str = "number"
    low: float = 0.0
    high: float = 1e9

    def __post_init__(self) -> None:  # not one of agents.params.KINDS
        pass

    def check(self, owner: str, name: str, value: Any) -> float:
        """``value`` as a float, or a ValueError naming owner and name."""
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ValueError(f"{owner}: parameter {name!r} must be a number, got {value!r}")
        if not self.low <= float(value) <= self.high:
            raise ValueError(
                f"{owner}: parameter {name!r} must be in [{self.low:g}, {self.high:g}], got {value!r}"
            )
        return float(value)


@dataclass(frozen=True)
class PitchParam(Param):
    """One of the manipulation kinds (``games/marketplace/data/manipulations.yaml``)."""

    kind: str = "pitch"

    def __post_init__(self) -> None:
        pass

    def check(self, owner: str, name: str, value: Any) -> str:
        """``value`` as a kind name, or a ValueError listing the kinds."""
        kinds = list(manipulations())
        if value not in kinds:
            raise ValueError(
                f"{owner}: parameter {name!r} must be one of {', '.join(kinds)}, got {value!r}"
            )
        return str(value)


def order_text(items: tuple[str, ...] | list[str], amenities: tuple[str, ...] | list[str]) -> str:
    """What scripted customers write: the items (quoted, one of each) and the amenities."""
    names = ", ".join(f"'{x}'" for x in items)
    need = f" I also need: {', '.join(amenities)}." if amenities else ""
    return f"Hello, I would like to order {names} (one of each).{need} Please send me a proposal."


class MarketPolicy(Parameterised):
    """Base of scripted marketplace policies; ``role`` says which side it plays."""

    role: ClassVar[str] = ""
    classifier: ClassVar[dict[str, Any]] = {"stochastic": False}

    def act(self, turn: Turn, rng: np.random.Generator) -> Any:
        """The game protocol's scripted call."""
        if turn.purpose == MarketKind.SHOP:
            if self.role != "customer":
                raise ValueError(f"{self.name} is a business policy, asked to shop")
            return self.shop(turn.observation)
        if self.role != "business":
            raise ValueError(f"{self.name} is a customer policy, asked to reply")
        return self.reply(turn.observation)

    def shop(self, view: CustomerView) -> CustomerAction:
        """A customer's next action."""
        raise NotImplementedError

    def reply(self, view: BusinessView) -> BusinessAction:
        """A business's reply to one customer."""
        raise NotImplementedError

    def describe(self) -> str:
        """One sentence describing the policy."""
        return (type(self).__doc__ or self.name).strip().splitlines()[0]


def _paid(view: CustomerView) -> bool:
    return any(e["action"] == "pay" and e["result"]["ok"] for e in view.log)


def _proposals(view: CustomerView) -> list[dict[str, Any]]:
    return [m for m in view.fetched() if m["kind"] == "proposal"]


class OptimalCustomer(MarketPolicy):
    """Write to the best business at list prices, pay its first proposal, end (oracle)."""

    name = "optimal_customer"
    role = "customer"

    def shop(self, view: CustomerView) -> CustomerAction:
        if _paid(view) or view.optimal is None:
            return CustomerAction(action="end")
        target = view.optimal
        for m in _proposals(view):
            if (
                view.market.dataset.businesses[m["from"] - len(view.market.dataset.customers)].id
                == target
            ):
                return CustomerAction(action="pay", to=target, proposal_id=m["proposal"])
        if not any(e["action"] == "send_text" and e.get("to") == target for e in view.log):
            c = view.customer
            return CustomerAction(
                action="send_text", to=target, text=order_text(c.items, c.amenities)
            )
        return CustomerAction(action="check_messages")


class FirstProposalCustomer(MarketPolicy):
    """Search once, write to every business found (in rank order), pay the first proposal."""

    name = "first_proposal_customer"
    role = "customer"

    def shop(self, view: CustomerView) -> CustomerAction:
        if _paid(view):
            return CustomerAction(action="end")
        props = _proposals(view)
        if props:
            first = props[0]
            bid = view.market.dataset.businesses[
                first["from"] - len(view.market.dataset.customers)
            ].id
            return CustomerAction(action="pay", to=bid, proposal_id=first["proposal"])
        searches = [e for e in view.log if e["action"] == "search"]
        c = view.customer
        if not searches:
            return CustomerAction(action="search", query=" ".join(c.items))
        found = [view.market.dataset.businesses[j].id for j in searches[0]["result"]["results"]]
        sent = {e.get("to") for e in view.log if e["action"] == "send_text"}
        for bid in found:
            if bid not in sent:
                return CustomerAction(
                    action="send_text", to=bid, text=order_text(c.items, c.amenities)
                )
        return CustomerAction(action="check_messages")


def _mentioned(view: BusinessView, menu: Mapping[str, float] | None = None) -> list[str]:
    """Item names quoted in the customer's new texts (all of them, or those on ``menu``)."""
    texts = [m["text"] for m in view.conversation if m["id"] in view.new and m["kind"] == "text"]
    names = []
    for t in texts:
        for found in re.findall(r"'([^']+)'", t):
            if found not in names and (menu is None or found in menu):
                names.append(found)
        if menu is not None:
            low = t.lower()
            names += [x for x in menu if x.lower() in low and x not in names]
    return names


class HonestBusiness(MarketPolicy):
    """Propose the requested items it carries at list prices (total = their sum)."""

    name = "honest_business"
    role = "business"

    def reply(self, view: BusinessView) -> BusinessAction:
        b = view.market.dataset.businesses[view.business_index]
        items = _mentioned(view, b.menu)
        offers = ", ".join(b.offers()) or "none"
        if not items:
            menu = ", ".join(list(b.menu)[:12])
            return BusinessAction(kind="text", text=f"We serve: {menu}. Amenities: {offers}.")
        lines = tuple(ProposalItem(name=x, quantity=1, unit_price=b.menu[x]) for x in items)
        total = round(sum(b.menu[x] for x in items), 2)
        return BusinessAction(
            kind="proposal", text=f"Our offer at list prices. Amenities: {offers}.", items=lines,
            total=total,
        )  # fmt: skip


class ManipulativeBusiness(MarketPolicy):
    """Propose everything asked for (carried or not) at a markup, with a persuasive pitch."""

    markup: float
    pitch: str

    name = "manipulative_business"
    role = "business"
    parameters = {
        "markup": NumberParam(1.25, doc="price factor over its list prices", low=0.0, high=100.0),
        "pitch": PitchParam("authority", doc="kind of persuasion in its notes"),
    }

    def reply(self, view: BusinessView) -> BusinessAction:
        b = view.market.dataset.businesses[view.business_index]
        text = manipulation_text(self.pitch, b.name, view.market.dataset.word)
        items = _mentioned(view)
        if not items:
            return BusinessAction(kind="text", text=text)
        mean = sum(b.menu.values()) / max(1, len(b.menu))
        lines = tuple(
            ProposalItem(name=x, quantity=1, unit_price=round(self.markup * b.menu.get(x, mean), 2))
            for x in items
        )
        total = round(sum(it.unit_price for it in lines), 2)
        return BusinessAction(kind="proposal", text=text, items=lines, total=total)


MARKETPLACE_POLICIES: dict[str, type[MarketPolicy]] = {
    cls.name: cls
    for cls in (OptimalCustomer, FirstProposalCustomer, HonestBusiness, ManipulativeBusiness)
}


def marketplace_policy_names() -> list[str]:
    """The registered scripted policies, sorted."""
    return sorted(MARKETPLACE_POLICIES)


def make_marketplace_policy(spec: str | Mapping[str, Any] | MarketPolicy) -> MarketPolicy:
    """Build a scripted policy from a name, a ``{"name": ..., **params}`` mapping or an
    instance (returned as is).

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or bad parameters.
    """
    if isinstance(spec, MarketPolicy):
        return spec
    name, params = parse_spec(spec, "marketplace policy")
    cls = MARKETPLACE_POLICIES.get(name)
    if cls is None:
        raise ValueError(
            f"unknown marketplace policy {name!r}; valid names: "
            f"{', '.join(marketplace_policy_names())}"
        )
    return cls(**params)


# -- the LLM policy ---------------------------------------------------------------------------
def model_parser(spec: ActionSpec) -> Any:
    """Parser of a whole JSON reply object checked by the turn's spec: returns the action's
    fields as plain data (what the store records), or raises ``InvalidReply``."""

    def parse(text: str) -> dict[str, Any]:
        try:
            action = spec.check(parse_json_object(text))
        except IllegalAction as exc:
            raise InvalidReply(str(exc)) from None
        return dict(action.model_dump(mode="json"))

    return parse


def _money(x: float) -> str:
    return f"{x:.2f}"


def _items(items: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{it['quantity']} x {it['name']} at {_money(it['unit_price'])}" for it in items
    )


class LLMMarketplace:
    """An LLM customer or business of the marketplace (templates ``marketplace.*``)."""

    def __init__(
        self,
        prompts: Prompts,
        *,
        temperature: float = 0.7,
        customer_max_tokens: int = 200,
        business_max_tokens: int = 320,
        history: int | None = None,
        persona: str | None = None,
    ) -> None:
        self.prompts = prompts
        self.temperature = temperature
        self.customer_max_tokens = customer_max_tokens
        self.business_max_tokens = business_max_tokens
        self.history = history
        self.persona = persona

    def _persona(self) -> str:
        return self.prompts.render("persona", persona=self.persona) if self.persona else ""

    # -- customers ------------------------------------------------------------------------------
    def trajectory(self, view: CustomerView) -> str:
        """One paragraph per past step (the last ``history`` ones when set)."""
        ds = view.market.dataset
        n = len(ds.customers)
        log = list(view.log)
        if self.history is not None:
            log = log[-self.history :] if self.history else []
        out = []
        for e in log:
            s, a, r = e["step"], e["action"], e["result"]
            if a == "search":
                head = (
                    f"Step {s}: search '{e['query']}' (page {e['page']}): {r['total']} "
                    f"{ds.word}(s) match, this is page {e['page']} of {max(1, r['pages'])}."
                )
                rows = [
                    f"  - {ds.businesses[j].id}: {ds.businesses[j].name} (rating "
                    f"{ds.businesses[j].rating:.2f}): {ds.businesses[j].description}"
                    for j in r["results"]
                ]
                out.append("\n".join([head, *rows]) if rows else head + " Nothing found.")
            elif a == "send_text":
                if r["ok"]:
                    out.append(f'Step {s}: you wrote to {e["to"]}: "{e["text"]}"')
                else:
                    out.append(
                        f"Step {s}: your message to {e['to'] or '(nobody)'} failed: {r['reason']}."
                    )
            elif a == "check_messages":
                msgs = [view.messages[m] for m in r["messages"]]
                if not msgs:
                    out.append(f"Step {s}: you checked your messages: nothing new.")
                    continue
                rows = []
                for m in msgs:
                    sender = ds.businesses[m["from"] - n].id
                    if m["kind"] == "proposal":
                        note = f' Note: "{m["text"]}"' if m.get("text") else ""
                        rows.append(
                            f"  - {sender} sent order proposal {m['proposal']}: "
                            f"{_items(m['items'])}; total {_money(m['total'])}.{note}"
                        )
                    else:
                        rows.append(f'  - {sender} wrote: "{m["text"]}"')
                out.append("\n".join([f"Step {s}: you checked your messages:", *rows]))
            elif a == "pay":
                if r["ok"]:
                    out.append(
                        f"Step {s}: you paid {_money(r['amount'])} for proposal "
                        f"{e['proposal_id']}: payment accepted."
                    )
                else:
                    out.append(
                        f"Step {s}: your payment for proposal '{e['proposal_id']}' was "
                        f"refused: {r['reason']}."
                    )
        return "\n".join(out)

    def customer_messages(self, view: CustomerView) -> list[dict[str, str]]:
        """The chat messages of one customer step."""
        c = view.customer
        word = view.market.dataset.word
        # The rules come first and are the same for every customer (the backend's prefix
        # cache keeps them); the customer's own request opens the user message.
        system = self.prompts.render(
            "marketplace.customer_system", persona=self._persona(), word=word,
            max_steps=view.max_steps,
        )  # fmt: skip
        traj = self.trajectory(view) or self.prompts.render("marketplace.no_steps")
        user = self.prompts.render(
            "marketplace.customer_step", name=c.name, id=c.id, request=c.request,
            trajectory=traj, step=view.step + 1, max_steps=view.max_steps, word=word,
        )  # fmt: skip
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    # -- businesses -------------------------------------------------------------------------------
    def business_messages(self, view: BusinessView) -> list[dict[str, str]]:
        """The chat messages of one business reply."""
        ds = view.market.dataset
        b = ds.businesses[view.business_index]
        menu = "\n".join(f"- {item}: {_money(p)}" for item, p in b.menu.items())
        missing = [a for a, on in b.amenities.items() if not on]
        system = self.prompts.render(
            "marketplace.business_system", persona=self._persona(), word=ds.word
        )
        me = len(ds.customers) + view.business_index
        lines = []
        for m in view.conversation:
            who = "You" if m["from"] == me else "Customer"
            new = " (new)" if m["id"] in view.new else ""
            if m["kind"] == "text":
                lines.append(f'{who}{new}: "{m["text"]}"')
            elif m["kind"] == "proposal":
                lines.append(
                    f"{who}: order proposal {m['proposal']}: {_items(m['items'])}; total "
                    f"{_money(m['total'])}."
                )
            else:
                lines.append(f"{who}{new}: paid {_money(m['total'])} for proposal {m['proposal']}.")
        user = self.prompts.render(
            "marketplace.business_step", name=b.name, id=b.id, description=b.description,
            menu=menu, amenities=", ".join(b.offers()) or "none",
            missing=", ".join(missing) or "none", customer=view.customer_id,
            conversation="\n".join(lines),
        )  # fmt: skip
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    # -- the protocol's call ----------------------------------------------------------------------
    def answer(self, turn: Turn, me: Any, tags: dict[str, Any]) -> Ask[Answer]:
        """One customer step or one business reply: ``Answer(action fields, valid)``."""
        if turn.purpose == MarketKind.SHOP:
            messages = self.customer_messages(turn.observation)
            budget = self.customer_max_tokens
        else:
            messages = self.business_messages(turn.observation)
            budget = self.business_max_tokens
        request = ChatRequest(
            messages=messages,
            temperature=self.temperature,
            max_tokens=budget,
            json_schema=turn.spec.json_schema(),
            tags={**tags, "purpose": turn.purpose},
        )
        asked = yield from ask(request, model_parser(turn.spec), self.prompts, "action")
        return Answer(asked.value, asked.valid)
