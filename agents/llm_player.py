"""An LLM player of repeated 2x2 games, after Akata et al., "Playing repeated games with
Large Language Models" (2023, arXiv 2305.16867).

The prompt states the rules with every payoff, then the match's history, then asks for
this round's choice. The protocol options of the authors' published code sit beside the
defaults:

* ``prompt_format``: ``"system_user"`` (rules as the system message, history and
  question as the user message; the default) or ``"single_message"`` (rules, history and
  question in one user message, as the authors prompted);
* ``answer``: ``"json"`` (a JSON object ``{"choice": label}``, schema-constrained; the
  default) or ``"label"`` (the question ends in "A: Option" and the reply is the option's
  label alone, constrained by the backend to the labels: the paper's one-token answer);
* ``shuffle``: what the shown option order (``RepeatedObservation.order``, shuffled per
  round by the game's ``shuffle_options``) reorders: ``"options"`` (the rules and the
  question; the default) or ``"question"`` (only the final question, the rules keep
  their fixed order, as in the authors' code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agents.chat import ChatRequest
from agents.llm import Ask, Asked, ask, choice_parser, enum_parser, enum_schema
from agents.prompts import Prompts
from games.observation import RepeatedObservation
from games.protocol import Answer, Turn


def _points(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class MoveOutcome:
    """An LLM player's decision: the option index (None if invalid) and its prediction."""

    move: int | None
    valid: bool
    prediction: int | None = None


class LLMPlayer:
    """Builds the rules + history prompt, asks for a choice, optionally predicts first."""

    def __init__(
        self,
        prompts: Prompts,
        *,
        temperature: float = 0.7,
        max_tokens: int = 64,
        persona: str | None = None,
        memory: int | None = None,
        predict_first: bool = False,
        prompt_format: Literal["system_user", "single_message"] = "system_user",
        answer: Literal["json", "label"] = "json",
        shuffle: Literal["options", "question"] = "options",
    ) -> None:
        for name, value, allowed in (
            ("prompt_format", prompt_format, ("system_user", "single_message")),
            ("answer", answer, ("json", "label")),
            ("shuffle", shuffle, ("options", "question")),
        ):
            if value not in allowed:
                raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
        self.prompts = prompts
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.persona = persona
        self.memory = memory
        self.predict_first = predict_first
        self.prompt_format = prompt_format
        self.answer_mode = answer
        self.shuffle = shuffle

    def rules_order(self, obs: RepeatedObservation) -> tuple[int, int]:
        """The order the rules list the options in: the shown order, or the fixed one
        when only the question is shuffled."""
        return (0, 1) if self.shuffle == "question" else obs.order

    def system_prompt(self, obs: RepeatedObservation) -> str:
        """The rules with every payoff, options listed in the rules' order."""
        labels = obs.labels
        order = self.rules_order(obs)
        first, second = (labels[i] for i in order)
        rules = "\n".join(
            self.prompts.render(
                "repeated.rule",
                mine=labels[a],
                theirs=labels[b],
                my_points=_points(obs.payoff(a, b)[0]),
                their_points=_points(obs.payoff(a, b)[1]),
            )
            for a in order
            for b in order
        )
        length = self.prompts.render("repeated.length", rounds=obs.rounds) if obs.rounds else ""
        persona = self.prompts.render("persona", persona=self.persona) if self.persona else ""
        return self.prompts.render(
            "repeated.system",
            persona=persona,
            first=first,
            second=second,
            length=length,
            rules=rules,
        )

    def history(self, obs: RepeatedObservation) -> str:
        """One line per past round (the last `memory` rounds when a window is set)."""
        n = len(obs.my_moves)
        start = max(0, n - self.memory) if self.memory else 0
        lines = []
        for i in range(start, n):
            mine, theirs = obs.my_moves[i], obs.their_moves[i]
            my_points, their_points = obs.payoff(mine, theirs)
            lines.append(
                self.prompts.render(
                    "repeated.history",
                    round=i + 1,
                    mine=obs.labels[mine],
                    theirs=obs.labels[theirs],
                    my_points=_points(my_points),
                    their_points=_points(their_points),
                )
            )
        return "\n".join(lines)

    def decide(self, obs: RepeatedObservation, tags: dict) -> Ask[MoveOutcome]:
        """Ask for this round's choice (after a prediction when `predict_first`)."""
        labels = list(obs.labels)
        first, second = (obs.labels[i] for i in obs.order)
        shown = [first, second]
        label = self.answer_mode == "label"
        suffix = "_label" if label else ""
        history = self.history(obs)
        prefix = f"{history}\n" if history else ""

        def opening(question: str) -> list[dict[str, str]]:
            rules = self.system_prompt(obs)
            if self.prompt_format == "single_message":
                return [{"role": "user", "content": f"{rules}\n{prefix}{question}"}]
            return [
                {"role": "system", "content": rules},
                {"role": "user", "content": prefix + question},
            ]

        prediction = None
        messages = None
        if self.predict_first:
            question = self.prompts.render(
                f"repeated.predict{suffix}", round=obs.round, first=first, second=second
            )
            first_messages = opening(question)
            asked = yield from self._ask(
                first_messages, "prediction", shown, labels, tags, "predict"
            )
            if asked.valid:
                prediction = labels.index(asked.value)
                follow = self.prompts.render(
                    f"repeated.after_predict{suffix}",
                    prediction=asked.value,
                    round=obs.round,
                    first=first,
                    second=second,
                )
                said = asked.value if label else f'{{"prediction": "{asked.value}"}}'
                messages = [
                    *first_messages,
                    {"role": "assistant", "content": said},
                    {"role": "user", "content": follow},
                ]
        if messages is None:  # no prediction asked, or it was invalid: ask directly
            question = self.prompts.render(
                f"repeated.question{suffix}", round=obs.round, first=first, second=second
            )
            messages = opening(question)
        asked = yield from self._ask(messages, "choice", shown, labels, tags, "move")
        move = labels.index(asked.value) if asked.valid else None
        return MoveOutcome(move, asked.valid, prediction)

    def answer(self, turn: Turn, me: Any, tags: dict[str, Any]) -> Ask[Answer]:
        """The protocol's LLM call for a move turn; a prediction asked first is kept as
        the decision's data (its option index)."""
        out = yield from self.decide(turn.observation, tags)
        data = None if out.prediction is None else {"prediction": out.prediction}
        return Answer(out.move, out.valid, data)

    def _ask(
        self,
        messages: list,
        field: str,
        shown: list[str],
        labels: list[str],
        tags: dict,
        purpose: str,
    ) -> Ask[Asked]:
        if self.answer_mode == "label":
            return (
                yield from ask(
                    self._request(messages, field, shown, tags, purpose),
                    choice_parser(labels),
                    self.prompts,
                    field,
                    repair="repeated.repair_label",
                )
            )
        return (
            yield from ask(
                self._request(messages, field, shown, tags, purpose),
                enum_parser(field, labels),
                self.prompts,
                field,
            )
        )

    def _request(
        self, messages: list, field: str, shown: list[str], tags: dict, purpose: str
    ) -> ChatRequest:
        if self.answer_mode == "label":  # the bare label, constrained by the backend
            return ChatRequest(
                messages=messages,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                choice=tuple(shown),
                tags={**tags, "purpose": purpose},
            )
        return ChatRequest(
            messages=messages,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            json_schema=enum_schema(field, shown),
            tags={**tags, "purpose": purpose},
        )
