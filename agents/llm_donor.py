"""An LLM donor in the donor game with cultural evolution (the prompts of protocols §1).

Two decisions, each a generator for the runtime's batching `Decider` (see `agents.llm`):

- `write_strategy`: at the start of its generation an agent reasons briefly and ends with
  one sentence starting "My strategy will be". Generation 1 writes from the rules alone;
  later newcomers also get the survivors' strategies with their scores and are asked to
  improve on that advice. Free text, no schema: the strategy is the sentence from the
  last "My strategy will be" to the end of that sentence. When the reply has no such
  sentence the last sentence of the reply is used and the strategy is recorded as
  invalid; an empty or failed reply gives `FALLBACK_STRATEGY` (invalid).
- `donate`: the donation prompt (generation and round numbers, own resources, own
  strategy, the recipient's resources and trace; never the number of rounds unless
  `reveal_rounds`). The answer is one JSON object constrained by a schema: brief
  reasoning first (a string of at most `reasoning_chars` characters), then the amount in
  ``[0, resources]``, plus a ``punish`` boolean when punishment is allowed. The reply is
  validated (0 <= amount <= resources), repaired once through `agents.llm.ask`, and
  otherwise the documented fallback applies: donate 0, recorded as invalid.

Agents are stateless policies (one per group); everything agent-specific is passed in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agents.chat import ChatReply, ChatRequest
from agents.llm import Advice, Ask, InvalidReply, ask, parse_json_object
from agents.prompts import Prompts
from games.donor import DonorAction, DonorObservation, DonorRules, TraceEntry
from games.protocol import Answer, Turn, object_schema

STRATEGY_PREFIX = "My strategy will be"
FALLBACK_STRATEGY = "My strategy will be to decide each donation as I see fit."

_PREFIX_RE = re.compile(r"my\s+strategy\s+will\s+be", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=[\s\"'*)\]]|$)|\n")


def fmt_units(x: float) -> str:
    """Resources as shown to agents: integers plainly, others with up to 2 decimals."""
    if math.isfinite(x) and abs(x - round(x)) < 1e-9:
        return str(int(round(x)))
    return f"{x:.2f}".rstrip("0").rstrip(".")


def extract_strategy(text: str) -> tuple[str, bool]:
    """The strategy sentence of a reply and whether it was found as asked.

    From the last "My strategy will be" (any case) to the end of that sentence (., ! or ?
    followed by a space or the end, or a line break). Without it: the last non-empty
    sentence of the reply, invalid. Empty reply: `FALLBACK_STRATEGY`, invalid.
    """
    clean = text.replace("**", "").strip()
    matches = list(_PREFIX_RE.finditer(clean))
    if matches:
        start = matches[-1].start()
        rest = clean[start:]
        end = _SENTENCE_END.search(rest, len(STRATEGY_PREFIX))
        sentence = rest[: end.end()] if end else rest
        sentence = " ".join(sentence.split()).strip()
        if len(sentence) > len(STRATEGY_PREFIX) + 1:
            if not sentence.startswith(STRATEGY_PREFIX):
                sentence = STRATEGY_PREFIX + sentence[len(matches[-1].group(0)) :]
            return sentence[:600], True
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", clean) if s.strip()]
    if sentences:
        return " ".join(sentences[-1].split())[:600], False
    return FALLBACK_STRATEGY, False


@dataclass(frozen=True)
class StrategyOutcome:
    """A written strategy: the sentence, whether it was extracted as asked, the raw reply."""

    text: str
    valid: bool
    reply: str


@dataclass(frozen=True)
class DonationOutcome:
    """A donation decision: amount (0 when invalid), punish flag, validity, reasoning."""

    amount: float
    punish: bool
    valid: bool
    reasoning: str | None = None


def donation_schema(resources: float, punishment: bool, reasoning_chars: int) -> dict[str, Any]:
    """JSON schema of the answer: reasoning (bounded) first, then amount, then punish."""
    props: dict[str, Any] = {
        "reasoning": {"type": "string", "maxLength": reasoning_chars},
        "amount": {"type": "number", "minimum": 0, "maximum": float(resources)},
    }
    if punishment:
        props["punish"] = {"type": "boolean"}
    return object_schema(props)


def donation_parser(resources: float, punishment: bool) -> Callable[[str], dict[str, Any]]:
    """Parser of the answer: amount a finite number in [0, resources]; punish a bool."""

    def parse(text: str) -> dict[str, Any]:
        obj = parse_json_object(text)
        amount = obj.get("amount")
        if isinstance(amount, str):
            try:
                amount = float(amount.strip())
            except ValueError:
                raise InvalidReply(f"amount={amount!r} is not a number") from None
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise InvalidReply("missing number field 'amount'")
        if not math.isfinite(amount) or not 0 <= amount <= resources + 1e-9:
            raise InvalidReply(f"amount={amount} is outside [0, {fmt_units(resources)}]")
        punish = obj.get("punish", False)
        if not isinstance(punish, bool):
            raise InvalidReply(f"punish={punish!r} is not true or false")
        if punish and not punishment:
            raise InvalidReply("punishment is not allowed in this game")
        reasoning = obj.get("reasoning")
        return {
            "amount": min(float(amount), float(resources)),
            "punish": punish,
            "reasoning": reasoning if isinstance(reasoning, str) else None,
        }

    return parse


class LLMDonor:
    """Builds the donor-game prompts and asks for strategies and donations."""

    def __init__(
        self,
        prompts: Prompts,
        rules: DonorRules,
        *,
        temperature: float = 0.8,
        strategy_max_tokens: int = 256,
        donation_max_tokens: int = 160,
        reasoning_chars: int = 300,
        survivors: float = 0.5,
        reveal_rounds: bool = False,
        persona: str | None = None,
    ) -> None:
        self.prompts = prompts
        self.rules = rules
        self.temperature = temperature
        self.strategy_max_tokens = strategy_max_tokens
        self.donation_max_tokens = donation_max_tokens
        self.reasoning_chars = reasoning_chars
        self.survivors = survivors
        self.reveal_rounds = reveal_rounds
        self.persona = persona
        self._system: str | None = None

    # -- prompts --------------------------------------------------------------
    def system_prompt(self) -> str:
        """The rules of the game (shared by every prompt, so it comes first)."""
        if self._system is None:  # fixed by the constructor's arguments: rendered once
            self._system = self._render_system()
        return self._system

    def _render_system(self) -> str:
        r = self.rules
        punish = (
            self.prompts.render("donor.punish_rules", fine=fmt_units(r.fine_per_unit))
            if r.punishment
            else ""
        )
        length = self.prompts.render("donor.length", rounds=r.rounds) if self.reveal_rounds else ""
        share = "half" if abs(self.survivors - 0.5) < 1e-9 else f"{self.survivors:.0%}"
        persona = self.prompts.render("persona", persona=self.persona) if self.persona else ""
        return self.prompts.render(
            "donor.system",
            persona=persona,
            endowment=fmt_units(r.endowment),
            multiplier=f"{r.multiplier:g}",
            length=length,
            punish=punish,
            survivors=share,
        )

    def strategy_prompt(self, name: str, advice: Sequence[Advice] | None, generation: int) -> str:
        """The strategy-writing question (with the survivors' advice after generation 1)."""
        advice_text = ""
        if advice:
            items = "\n".join(
                self.prompts.render(
                    "donor.advice_item", name=a.name, score=fmt_units(a.score), strategy=a.strategy
                )
                for a in advice
            )
            advice_text = self.prompts.render(
                "donor.strategy_advice", previous=generation - 1, items=items
            )
        return self.prompts.render(
            "donor.strategy", name=name, depth=self.rules.trace_depth, advice=advice_text
        )

    def trace_text(self, obs: DonorObservation, names: Sequence[str]) -> str:
        """The recipient's trace, most recent first, one line per entry."""
        if not obs.recipient_trace:
            return self.prompts.render("donor.trace_none", recipient=names[obs.recipient])
        return "\n".join(self._entry(e, names) for e in obs.recipient_trace)

    def _entry(self, e: TraceEntry, names: Sequence[str]) -> str:
        key = "donor.trace_punish" if e.punished else "donor.trace_give"
        return self.prompts.render(
            key,
            round=e.round,
            donor=names[e.donor],
            recipient=names[e.recipient],
            percent=f"{e.percent:.0f}",
        )

    def donation_prompt(
        self,
        obs: DonorObservation,
        *,
        name: str,
        strategy: str,
        generation: int,
        names: Sequence[str],
    ) -> str:
        """The donation question of protocols §1."""
        punish = ', "punish": <true or false>' if obs.punishment_allowed else ""
        answer = (
            f'{{"reasoning": "...", "amount": <number from 0 to '
            f"{fmt_units(obs.donor_resources)}>{punish}}}"
        )
        punish_q = self.prompts.render("donor.punish_question") if obs.punishment_allowed else ""
        return self.prompts.render(
            "donor.donate",
            name=name,
            strategy=strategy,
            generation=generation,
            round=obs.round,
            recipient=names[obs.recipient],
            recipient_resources=fmt_units(obs.recipient_resources),
            trace=self.trace_text(obs, names),
            resources=fmt_units(obs.donor_resources),
            punish_question=punish_q,
            reasoning_chars=self.reasoning_chars,
            answer_format=answer,
        )

    # -- decisions --------------------------------------------------------------
    def write_strategy(
        self,
        *,
        name: str,
        generation: int,
        advice: Sequence[Advice] | None,
        tags: dict[str, Any],
    ) -> Ask[StrategyOutcome]:
        """Ask for a strategy (free text, one call, no repair); see `extract_strategy`."""
        messages = [
            {"role": "system", "content": self.system_prompt()},
            {"role": "user", "content": self.strategy_prompt(name, advice, generation)},
        ]
        reply: ChatReply = yield ChatRequest(
            messages=messages,
            temperature=self.temperature,
            max_tokens=self.strategy_max_tokens,
            tags={**tags, "purpose": "strategy"},
        )
        if reply.error:
            reply.valid = False
            return StrategyOutcome(FALLBACK_STRATEGY, False, "")
        text, valid = extract_strategy(reply.text)
        reply.parsed = {"strategy": text}
        reply.valid = valid
        return StrategyOutcome(text, valid, reply.text)

    def donate(
        self,
        obs: DonorObservation,
        *,
        name: str,
        strategy: str,
        generation: int,
        names: Sequence[str],
        tags: dict[str, Any],
    ) -> Ask[DonationOutcome]:
        """Ask how much to give (or spend punishing); one repair; fallback: give 0, invalid."""
        resources = float(obs.donor_resources)
        punishment = bool(obs.punishment_allowed)
        messages = [
            {"role": "system", "content": self.system_prompt()},
            {
                "role": "user",
                "content": self.donation_prompt(
                    obs, name=name, strategy=strategy, generation=generation, names=names
                ),
            },
        ]
        request = ChatRequest(
            messages=messages,
            temperature=self.temperature,
            max_tokens=self.donation_max_tokens,
            json_schema=donation_schema(resources, punishment, self.reasoning_chars),
            tags={**tags, "purpose": "donate"},
        )
        asked = yield from ask(
            request, donation_parser(resources, punishment), self.prompts, "donation"
        )
        if not asked.valid:
            return DonationOutcome(0.0, False, False)
        v = asked.value
        return DonationOutcome(v["amount"], v["punish"], True, v["reasoning"])

    # -- the game protocol --------------------------------------------------------
    def answer(self, turn: Turn, me: Any, tags: dict[str, Any]) -> Ask[Answer]:
        """The protocol's LLM call for a donation turn; ``me`` is the acting agent (its
        prompt name, strategy text, 0-based generation and the roster of names)."""
        out = yield from self.donate(
            turn.observation,
            name=me.display,
            strategy=me.strategy,
            generation=me.generation + 1,
            names=me.roster,
            tags=tags,
        )
        if not out.valid:
            return Answer(None, False)
        return Answer(DonorAction(out.amount, out.punish), True, {"reasoning": out.reasoning})

    def state_strategy(
        self, me: Any, advice: Sequence[Advice] | None, tags: dict[str, Any]
    ) -> Ask[Answer]:
        """The strategy step's LLM call: the strategy text (invalid when not as asked)."""
        out = yield from self.write_strategy(
            name=me.display, generation=me.generation + 1, advice=advice, tags=tags
        )
        return Answer(out.text, out.valid)
