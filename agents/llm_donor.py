"""An LLM donor in the donor game with cultural evolution (the prompts of protocols §1).

Two decisions, each a generator for the runtime's batching `Decider` (see `agents.llm`):

- `write_strategy`: at the start of its generation an agent reasons briefly and ends with
  one sentence starting "My strategy will be". Generation 1 writes from the rules alone;
  later newcomers also get the survivors' strategies (with their scores unless
  ``advice_scores=False``, the authors' code) and are asked to improve on that advice.
  Free text, no schema: the strategy is the sentence from the last "My strategy will be"
  to the end of that sentence (``strategy_from="last"``, the default: the paper's text
  asks for one such sentence at the end), or everything from the first "My strategy will
  be" to the end of the reply (``strategy_from="first"``, the authors' code). When the
  reply has no such phrase the last sentence of the reply is used and the strategy is
  recorded as invalid; an empty or failed reply gives `FALLBACK_STRATEGY` (invalid).
- `donate`: the donation prompt (generation and round numbers, own resources, own
  strategy, the recipient's resources and trace; never the number of rounds unless
  `reveal_rounds`). With ``reply_format="json"`` (the default; the paper's text names no
  format) the answer is one JSON object constrained by a schema: brief reasoning first (a
  string of at most `reasoning_chars` characters), then the amount in ``[0, resources]``,
  plus a ``punish`` boolean when punishment is allowed; the reply is validated
  (0 <= amount <= resources) and repaired once through `agents.llm.ask`. With
  ``reply_format="text"`` (the authors' code) the reply is free text, a "Justification:"
  then an "Answer:" line holding the units (with punishment "Donate, x" or "Punish, x"),
  read by `parse_text_donation` and repaired once with ``donor.repair_text``. Either way a
  reply that stays invalid gets the documented fallback: donate 0, recorded as invalid.

Agents are stateless policies (one per group); everything agent-specific is passed in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from agents.chat import ChatReply, ChatRequest
from agents.llm import Advice, Ask, Asked, InvalidReply, ask, parse_json_object
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


def extract_strategy(text: str, mode: Literal["last", "first"] = "last") -> tuple[str, bool]:
    """The strategy of a reply and whether it was found as asked.

    ``mode="last"`` (the default): from the last "My strategy will be" (any case) to the
    end of that sentence (., ! or ? followed by a space or the end, or a line break), at
    most 600 characters. ``mode="first"`` (the authors' code): everything from the first
    "My strategy will be" to the end of the reply, whitespace collapsed, not truncated
    (the reply's token budget bounds it). Both start the text with "My strategy will be".
    Without the phrase: the last non-empty sentence of the reply, invalid. Empty reply:
    `FALLBACK_STRATEGY`, invalid.
    """
    if mode not in ("last", "first"):
        raise ValueError(f"strategy mode must be 'last' or 'first', got {mode!r}")
    clean = text.replace("**", "").strip()
    matches = list(_PREFIX_RE.finditer(clean))
    if matches and mode == "first":
        found = matches[0]
        rest = " ".join(clean[found.end() :].split())
        if rest:
            return STRATEGY_PREFIX + ("" if rest[0] in ",.:;!?" else " ") + rest, True
    elif matches:
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
    """JSON schema of the answer: reasoning (bounded) first, then amount, then punish.

    The amount is bounded by construction (`games.protocol.number_schema`: a numeric
    string of up to 2 decimals from 0 to `resources`), so no backend decodes it out of range.
    """
    from games.protocol import number_schema

    props: dict[str, Any] = {
        "reasoning": {"type": "string", "maxLength": reasoning_chars},
        "amount": number_schema(0, float(resources)),
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


# "Answer:" as a label: at the start of a line or of a sentence, markup and "The", "My",
# "Your", "Final" allowed before it and "is" after it ("**Final answer:**", "The answer is: 5"); a
# mid-sentence "... this answer:" is prose, not the label.
_ANSWER_RE = re.compile(
    r"(?:^|(?<=[.!?;])[ \t]+)[ \t*_#>-]*(?:(?:the|my|your|final)[ \t]+)*answer(?:[ \t]+is)?"
    r"[ \t*_]*[:\uff1a]",
    re.IGNORECASE | re.MULTILINE,
)
# Numbers that name someone or something rather than units ("Agent 5", "round 3").
_NAMING_RE = re.compile(r"(?:agent|player|round|generation|game)\s*#?\s*$", re.IGNORECASE)
_JUSTIFICATION_RE = re.compile(r"\bjustification\b[\s*_]*[:\uff1a]", re.IGNORECASE)
_PLACEHOLDER_RE = re.compile(r"\[[^\]]*[A-Za-z][^\]]*\]")
_MARKUP = str.maketrans({c: " " for c in "*_`[]{}\"'"})
_VERB_RE = re.compile(
    r"\s*(donate|donation|donating|give|giving|gift|punish|punishment|punishing)\b\s*[,:;=-]?",
    re.IGNORECASE,
)
_NUMBER_RE = re.compile(
    r"(?<![\w.])([-+\u2212]?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\d,]\d)(\s*(?:%|percent\b))?",
    re.IGNORECASE,
)
_ALL_RE = re.compile(r"\b(?<!\bat\s)(all|everything|entire|whole)\b", re.IGNORECASE)
_NONE_RE = re.compile(r"\b(nothing|none|zero)\b", re.IGNORECASE)


def parse_text_donation(text: str, resources: float, punishment: bool) -> dict[str, Any]:
    """Read a free-text "Justification: ... Answer: x" donation reply (the authors' format).

    The answer is what follows the last "Answer:" label (any case, markdown stripped; the
    label starts a line or a sentence, "The answer is:", "Your answer:" and "Final answer:"
    count, a mid-sentence "this answer:" does not) on its line, or on the next non-empty
    line when that line is empty; an answer that repeats the format's bracketed placeholder ("[the
    number of units ...]") is invalid. In it: an optional verb ("Donate", "Give",
    "Punish", ... with an optional comma), then the units: the first number that is
    neither a percentage nor a name ("Agent 5", "round 3"; ``1,000`` and ``2.5`` read as
    numbers), else the first percentage, read as that share of the donor's ``resources``,
    else a word ("all", "everything" = ``resources``; "nothing", "none", "zero" = 0; both
    kinds: invalid). A bare number is a donation. The justification is the text between
    the last "Justification:" before the answer and the answer (else all the text before
    it), at most 1,000 characters.

    Raises:
        InvalidReply: no "Answer:", no amount in it, an amount outside ``[0, resources]``,
            or a punishment where punishment is not allowed.
    """
    answers = list(_ANSWER_RE.finditer(text))
    if not answers:
        raise InvalidReply('no "Answer:" line')
    last = answers[-1]
    lines = text[last.end() :].split("\n")
    raw = lines[0] if lines[0].translate(_MARKUP).strip() else ""
    if not raw:
        raw = next((ln for ln in lines[1:] if ln.translate(_MARKUP).strip()), "")
    if not raw:
        raise InvalidReply('nothing after "Answer:"')
    if _PLACEHOLDER_RE.search(raw):
        raise InvalidReply("the answer repeats the format's placeholder instead of a number")
    body = raw.translate(_MARKUP).strip()
    punish = False
    verb = _VERB_RE.match(body)
    if verb:
        punish = verb.group(1).lower().startswith("punish")
        body = body[verb.end() :]
    if punish and not punishment:
        raise InvalidReply("punishment is not allowed in this game")
    amount: float | None = None
    share: float | None = None
    for m in _NUMBER_RE.finditer(body):
        if _NAMING_RE.search(body[: m.start()]):
            continue
        sign = -1.0 if m.group(1) in ("-", "\u2212") else 1.0
        value = sign * float(m.group(2).replace(",", "") + (f".{m.group(3)}" if m.group(3) else ""))
        if m.group(4):
            share = value if share is None else share
            continue
        amount = value
        break
    if amount is None and share is not None:
        if not 0 <= share <= 100:
            raise InvalidReply(f"{share:g}% is outside 0..100%")
        amount = share / 100.0 * float(resources)
    if amount is None:
        every, none = bool(_ALL_RE.search(body)), bool(_NONE_RE.search(body))
        if every == none:  # neither word, or both: no amount to read
            raise InvalidReply(f'no number of units after "Answer:" ({body[:60]!r})')
        amount = float(resources) if every else 0.0
    if not math.isfinite(amount) or not 0 <= amount <= resources + 1e-9:
        raise InvalidReply(f"amount={amount:g} is outside [0, {fmt_units(resources)}]")
    before = text[: last.start()]
    labels = list(_JUSTIFICATION_RE.finditer(before))
    said = before[labels[-1].end() :] if labels else before
    reasoning = " ".join(said.replace("**", " ").split())[:1000]
    return {
        "amount": min(float(amount), float(resources)),
        "punish": punish,
        "reasoning": reasoning or None,
    }


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
        reply_format: Literal["json", "text"] = "json",
        advice_scores: bool = True,
        strategy_from: Literal["last", "first"] = "last",
    ) -> None:
        """``reply_format``, ``advice_scores`` and ``strategy_from`` choose between the paper's
        text (the defaults) and the authors' code; see the module docstring."""
        if reply_format not in ("json", "text"):
            raise ValueError(f"reply_format must be 'json' or 'text', got {reply_format!r}")
        if strategy_from not in ("last", "first"):
            raise ValueError(f"strategy_from must be 'last' or 'first', got {strategy_from!r}")
        self.reply_format = reply_format
        self.advice_scores = advice_scores
        self.strategy_from = strategy_from
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
            plain = "" if self.advice_scores else "_unscored"
            items = "\n".join(
                self.prompts.render(
                    f"donor.advice_item{plain}",
                    name=a.name,
                    score=fmt_units(a.score),
                    strategy=a.strategy,
                )
                for a in advice
            )
            advice_text = self.prompts.render(
                f"donor.strategy_advice{plain}", previous=generation - 1, items=items
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
        """The donation question of protocols §1 (in the scenario's reply format)."""
        common = {
            "name": name,
            "strategy": strategy,
            "generation": generation,
            "round": obs.round,
            "recipient": names[obs.recipient],
            "recipient_resources": fmt_units(obs.recipient_resources),
            "trace": self.trace_text(obs, names),
            "resources": fmt_units(obs.donor_resources),
        }
        if self.reply_format == "text":
            punish_q = (
                self.prompts.render("donor.punish_question_text") if obs.punishment_allowed else ""
            )
            return self.prompts.render(
                "donor.donate_text",
                **common,
                punish_question=punish_q,
                answer_format=self.text_answer_format(obs),
            )
        punish = ', "punish": <true or false>' if obs.punishment_allowed else ""
        answer = (
            f'{{"reasoning": "...", "amount": <number from 0 to '
            f"{fmt_units(obs.donor_resources)}>{punish}}}"
        )
        punish_q = self.prompts.render("donor.punish_question") if obs.punishment_allowed else ""
        return self.prompts.render(
            "donor.donate",
            **common,
            punish_question=punish_q,
            reasoning_chars=self.reasoning_chars,
            answer_format=answer,
        )

    def text_answer_format(self, obs: DonorObservation) -> str:
        """What the "Answer:" line of the free-text format holds (``donor.answer_text*``)."""
        key = "donor.answer_text_punish" if obs.punishment_allowed else "donor.answer_text"
        return self.prompts.render(key, resources=fmt_units(obs.donor_resources))

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
        text, valid = extract_strategy(reply.text, self.strategy_from)
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
        text = self.reply_format == "text"
        request = ChatRequest(
            messages=messages,
            temperature=self.temperature,
            max_tokens=self.donation_max_tokens,
            json_schema=(
                None if text else donation_schema(resources, punishment, self.reasoning_chars)
            ),
            tags={**tags, "purpose": "donate"},
        )
        if text:
            asked = yield from self._ask_text(
                request,
                lambda reply: parse_text_donation(reply, resources, punishment),
                self.text_answer_format(obs),
            )
        else:
            asked = yield from ask(
                request, donation_parser(resources, punishment), self.prompts, "donation"
            )
        if not asked.valid:
            return DonationOutcome(0.0, False, False)
        v = asked.value
        return DonationOutcome(v["amount"], v["punish"], True, v["reasoning"])

    def _ask_text(
        self, request: ChatRequest, parse: Callable[[str], Any], answer_format: str
    ) -> Ask[Asked]:
        """`agents.llm.ask` for the free-text format: ask, one repair (``donor.repair_text``,
        which restates the format rather than a schema), never raise."""

        def read(reply: ChatReply) -> str | None:
            if reply.error:
                reply.valid = False
                return reply.error
            try:
                reply.parsed = {"donation": parse(reply.text)}
                reply.valid = True
                return None
            except InvalidReply as exc:
                reply.valid = False
                return str(exc)

        reply = yield request
        problem = read(reply)
        if problem is None:
            return Asked(reply.parsed["donation"], True)
        if reply.error:  # the backend failed; a repair would fail the same way
            return Asked(None, False)
        repair = self.prompts.render(
            "donor.repair_text", problem=problem, answer_format=answer_format
        )
        messages = [
            *request.messages,
            {"role": "assistant", "content": reply.text},
            {"role": "user", "content": repair},
        ]
        tags = {**request.tags, "purpose": f"{request.tags.get('purpose', 'ask')}:repair"}
        second = yield replace(request, messages=messages, tags=tags)
        if read(second) is None:
            return Asked(second.parsed["donation"], True)
        return Asked(None, False)

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
