"""Policies of the commons dilemma (after GovSim: Piatti et al. 2024, "Cooperate or
Collapse", NeurIPS 2024).

Scripted policies are small stateless classes on :class:`agents.params.Parameterised`;
each answers every phase of a month from the observation alone
(``games.commons.CommonsObservation``): an amount at the harvest, a one-line message in
the discussion, a one-line memory in the reflection (framing-neutral words: 'units').
They are the ground truth of the game's dynamics: a society of ``sustainable``
harvesters keeps the stock at its level for ever, ``greedy`` ones empty it in the first
month, ``fixed`` ones collapse it on a schedule computable by hand. Only ``random``
draws from the ``rng`` (one number per harvest). ``make_commons_policy`` builds one from
a spec.

:class:`LLMCommoner` is the LLM policy: the framing's rules (fishery, pasture,
pollution; templates ``commons.<framing>.*``), then per phase the month's facts, the
agent's memory and the question. A harvest is a JSON object ``{"amount": N}``
constrained by the turn's schema (one repair); a message or a memory is free text, cut
to the turn's length.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agents.chat import ChatReply, ChatRequest
from agents.llm import Ask, ask, spec_parser
from agents.params import Param, Parameterised, parse_spec
from agents.prompts import Prompts
from games.commons import CommonsObservation
from games.protocol import Answer, Text, Turn

__all__ = [
    "COMMONS_POLICIES",
    "FRAMINGS",
    "CommonsPolicy",
    "Fixed",
    "Greedy",
    "LLMCommoner",
    "RandomHarvest",
    "Sustainable",
    "commons_policy_names",
    "fmt_amount",
    "make_commons_policy",
]

FRAMINGS = ("fishery", "pasture", "pollution")


def fmt_amount(x: float | None) -> str:
    """An amount as agents read it: whole numbers without decimals, else 2 decimals."""
    if x is None:
        return "?"
    return f"{x:.0f}" if abs(x - round(x)) < 1e-9 else f"{x:.2f}"


@dataclass(frozen=True)
class AmountParam(Param):
    """A non-negative number parameter (an amount, a multiple of the share)."""

    kind: str = "amount"

    def __post_init__(self) -> None:  # not one of agents.params.KINDS
        pass

    def check(self, owner: str, name: str, value: Any) -> float:
        """``value`` as a float, or a ValueError naming owner and name."""
        number = isinstance(value, int | float | np.integer | np.floating)
        if isinstance(value, bool) or not number or not math.isfinite(value) or value < 0:
            raise ValueError(f"{owner}: parameter {name!r} must be a number >= 0, got {value!r}")
        return float(value)


def _whole(x: float, obs: CommonsObservation) -> float:
    """``x`` within [0, max_take], floored when harvests are whole numbers."""
    x = min(max(x, 0.0), obs.max_take)
    return float(math.floor(x + 1e-9)) if obs.rules.integer else x


class CommonsPolicy(Parameterised):
    """Base of scripted commons policies: ``harvest(obs, rng) -> amount``; a message and
    a memory line derived from the month's outcome."""

    classifier: ClassVar[dict[str, Any]] = {"stochastic": False, "memory_depth": 0}
    #: What the policy tells the others it will do (its discussion message ends with it).
    intent: ClassVar[str] = ""

    def harvest(self, obs: CommonsObservation, rng: np.random.Generator) -> float:
        """This month's ask."""
        raise NotImplementedError

    def message(self, obs: CommonsObservation) -> str:
        """The discussion message: its own take, the stock left, its intent."""
        mine = obs.taken[obs.slot] if obs.taken else None
        return (
            f"I took {fmt_amount(mine)} units; {fmt_amount(obs.next_stock)} units are "
            f"there for next month. {self.intent}"
        ).strip()

    def reflect(self, obs: CommonsObservation) -> str:
        """The new memory: the month's stock, total take, own take and next stock."""
        taken = [t for t in obs.taken or () if t is not None]
        mine = obs.taken[obs.slot] if obs.taken else None
        return (
            f"Month {obs.month}: the stock was {fmt_amount(obs.stock)}, I took "
            f"{fmt_amount(mine)}, we took {fmt_amount(sum(taken))} that I know of, the "
            f"stock is now {fmt_amount(obs.next_stock)}."
        )

    def act(self, turn: Turn, rng: np.random.Generator) -> Any:
        """The game protocol's scripted-policy call, by phase."""
        obs: CommonsObservation = turn.observation
        if obs.phase == "harvest":
            return self.harvest(obs, rng)
        return self.message(obs) if obs.phase == "discuss" else self.reflect(obs)

    def describe(self) -> str:
        """One sentence describing the policy."""
        return (type(self).__doc__ or self.name).strip().splitlines()[0]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"


class Sustainable(CommonsPolicy):
    """Take `factor` times the sustainable share of the regrowth (1: exactly its share)."""

    factor: float

    name = "sustainable"
    parameters = {"factor": AmountParam(1.0, doc="multiple of the sustainable share taken")}
    intent = "I will keep to my share of what grows back."

    def harvest(self, obs: CommonsObservation, rng: np.random.Generator) -> float:
        return _whole(self.factor * obs.share, obs)


class Greedy(CommonsPolicy):
    """Take as much as allowed: the whole stock."""

    name = "greedy"
    intent = "I will take as much as I can."

    def harvest(self, obs: CommonsObservation, rng: np.random.Generator) -> float:
        return obs.max_take


class Fixed(CommonsPolicy):
    """Take the same `amount` every month (or the whole stock when less is left)."""

    amount: float

    name = "fixed"
    parameters = {"amount": AmountParam(10.0, doc="amount asked every month")}
    intent = "I will take the same amount every month."

    def harvest(self, obs: CommonsObservation, rng: np.random.Generator) -> float:
        return _whole(self.amount, obs)


class RandomHarvest(CommonsPolicy):
    """Take an amount drawn uniformly from [0, the whole stock] (one draw per harvest)."""

    name = "random"
    classifier = {"stochastic": True, "memory_depth": 0}

    def harvest(self, obs: CommonsObservation, rng: np.random.Generator) -> float:
        if obs.rules.integer:
            return float(rng.integers(0, int(obs.max_take) + 1))
        return float(rng.uniform(0.0, obs.max_take))


COMMONS_POLICIES: dict[str, type[CommonsPolicy]] = {
    cls.name: cls for cls in (Sustainable, Greedy, Fixed, RandomHarvest)
}


def commons_policy_names() -> list[str]:
    """The registered scripted policies, sorted."""
    return sorted(COMMONS_POLICIES)


def make_commons_policy(spec: str | Mapping[str, Any] | CommonsPolicy) -> CommonsPolicy:
    """Build a scripted policy from a name, a ``{"name": ..., **params}`` mapping or an
    instance (returned as is).

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or bad parameters.
    """
    if isinstance(spec, CommonsPolicy):
        return spec
    name, params = parse_spec(spec, "commons policy")
    cls = COMMONS_POLICIES.get(name)
    if cls is None:
        raise ValueError(
            f"unknown commons policy {name!r}; valid names: {', '.join(commons_policy_names())}"
        )
    return cls(**params)


# -- the LLM policy ---------------------------------------------------------------------------
def clean_text(text: str, limit: int) -> str:
    """A free-text reply as one line: whitespace collapsed, surrounding quotes dropped,
    cut to ``limit`` characters."""
    line = " ".join(text.split()).strip().strip('"').strip()
    return line[:limit]


class LLMCommoner:
    """An LLM member of the commons (templates ``commons.*``; the framing chooses
    ``commons.<framing>.system`` / ``.unit`` / ``.stock``)."""

    def __init__(
        self,
        prompts: Prompts,
        *,
        framing: str = "fishery",
        temperature: float = 0.7,
        max_tokens: int = 64,
        text_max_tokens: int = 80,
        universalization: bool = False,
        persona: str | None = None,
    ) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"framing: expected one of {', '.join(FRAMINGS)}, got {framing!r}")
        self.prompts = prompts
        self.framing = framing
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.text_max_tokens = text_max_tokens
        self.universalization = universalization
        self.persona = persona

    def _render(self, key: str, **values: object) -> str:
        return self.prompts.render(f"commons.{self.framing}.{key}", **values)

    def unit(self) -> str:
        """The framing's unit ('tons of fish', ...)."""
        return self._render("unit")

    def system_prompt(self, obs: CommonsObservation, name: str) -> str:
        """The framing's rules with the game's numbers."""
        r = obs.rules
        persona = self.prompts.render("persona", persona=self.persona) if self.persona else ""
        return self._render(
            "system",
            persona=persona,
            name=name,
            n=obs.n,
            capacity=fmt_amount(r.capacity),
            growth=f"{r.growth:g}",
            threshold=fmt_amount(r.threshold),
            months=obs.months,
        )

    def history(self, obs: CommonsObservation) -> str:
        """One line per earlier month."""
        unit = self.unit()
        return "\n".join(
            self.prompts.render(
                "commons.history",
                month=m.month,
                stock=fmt_amount(m.stock),
                total=fmt_amount(m.total),
                mine=fmt_amount(m.mine),
                unit=unit,
                remaining=fmt_amount(m.remaining),
                next=fmt_amount(m.next_stock),
            )  # fmt: skip
            for m in obs.history
        )

    def report(self, obs: CommonsObservation, names: Sequence[str]) -> str:
        """This month's harvest: each take that is known, what remains and regrows."""
        unit = self.unit()
        lines = [
            self.prompts.render(
                "commons.take",
                name=names[k] if k != obs.slot else "You",
                taken=fmt_amount(t),
                unit=unit,
            )  # fmt: skip
            for k, t in enumerate(obs.taken or ())
            if t is not None
        ]
        lines.append(
            self.prompts.render(
                "commons.after",
                remaining=fmt_amount(obs.remaining),
                next=fmt_amount(obs.next_stock),
                unit=unit,
            )  # fmt: skip
        )
        return "\n".join(lines)

    def messages_text(self, obs: CommonsObservation, names: Sequence[str]) -> str:
        """The month's messages so far, one line each (empty messages left out)."""
        lines = [
            self.prompts.render("commons.said", name=names[s], text=t)
            for s, t in obs.messages
            if t.strip()
        ]
        return "\n".join(lines) if lines else self.prompts.render("commons.no_messages")

    def context(self, obs: CommonsObservation) -> str:
        """The memory and the earlier months (the part every phase shares)."""
        parts = []
        if obs.memory.strip():
            parts.append(self.prompts.render("commons.memory", memory=obs.memory))
        history = self.history(obs)
        if history:
            parts.append(history)
        return "\n".join(parts)

    def question(self, obs: CommonsObservation, names: Sequence[str]) -> str:
        """The phase's question."""
        unit = self.unit()
        stock = self._render("stock", stock=fmt_amount(obs.stock))
        if obs.phase == "harvest":
            hint = ""
            if self.universalization:
                hint = " " + self.prompts.render(
                    "commons.universalization", share=fmt_amount(obs.share), unit=unit
                )
            return self.prompts.render(
                "commons.harvest", month=obs.month, months=obs.months, stock=stock,
                unit=unit, max=fmt_amount(obs.max_take), hint=hint,
                number="a whole number" if obs.rules.integer else "a number",
            )  # fmt: skip
        key = "commons.discuss" if obs.phase == "discuss" else "commons.reflect"
        return self.prompts.render(
            key, month=obs.month, stock=stock, report=self.report(obs, names),
            messages=self.messages_text(obs, names), unit=unit,
        )  # fmt: skip

    def messages(
        self, obs: CommonsObservation, name: str, names: Sequence[str]
    ) -> list[dict[str, str]]:
        """The chat messages of one turn: the rules, then context and question."""
        context = self.context(obs)
        question = self.question(obs, names)
        user = f"{context}\n{question}" if context else question
        # The name comes after the rules (shared by all, first): the prefix cache keeps them.
        user = f"{self.prompts.render('commons.name', name=name)}\n{user}"
        return [
            {"role": "system", "content": self.system_prompt(obs, name)},
            {"role": "user", "content": user},
        ]

    def answer(self, turn: Turn, me: Any, tags: dict[str, Any]) -> Ask[Answer]:
        """The protocol's LLM call: an amount (constrained JSON, one repair) at a harvest,
        a free text otherwise (invalid when empty)."""
        obs: CommonsObservation = turn.observation
        name = me.display if me is not None else f"Agent {turn.agent}"
        names = me.roster if me is not None and me.roster else [f"Agent {k}" for k in range(obs.n)]
        messages = self.messages(obs, name, names)
        tags = {**tags, "purpose": turn.purpose}
        spec = turn.spec
        if isinstance(spec, Text):
            reply: ChatReply = yield ChatRequest(
                messages=messages, temperature=self.temperature,
                max_tokens=self.text_max_tokens, tags=tags,
            )  # fmt: skip
            if reply.error:
                reply.valid = False
                return Answer(None, False)
            text = clean_text(reply.text, spec.max_chars)
            reply.parsed = {spec.field: text}
            reply.valid = bool(text)
            return Answer(text if text else None, bool(text))
        request = ChatRequest(
            messages=messages, temperature=self.temperature, max_tokens=self.max_tokens,
            json_schema=spec.json_schema(), tags=tags,
        )  # fmt: skip
        asked = yield from ask(request, spec_parser(spec), self.prompts, spec.field)
        return Answer(asked.value, asked.valid)
