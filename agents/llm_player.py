"""An LLM player of repeated 2x2 games (the prompt of protocols §2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.chat import ChatRequest
from agents.llm import Ask, Asked, ask, enum_parser, enum_schema
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
    ) -> None:
        self.prompts = prompts
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.persona = persona
        self.memory = memory
        self.predict_first = predict_first

    def system_prompt(self, obs: RepeatedObservation) -> str:
        """The rules with every payoff, options listed in the shown order."""
        labels = obs.labels
        first, second = (labels[i] for i in obs.order)
        rules = "\n".join(
            self.prompts.render(
                "repeated.rule",
                mine=labels[a],
                theirs=labels[b],
                my_points=_points(obs.payoff(a, b)[0]),
                their_points=_points(obs.payoff(a, b)[1]),
            )
            for a in obs.order
            for b in obs.order
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
        system = {"role": "system", "content": self.system_prompt(obs)}
        history = self.history(obs)
        prefix = f"{history}\n" if history else ""
        prediction = None
        messages = None
        if self.predict_first:
            question = self.prompts.render(
                "repeated.predict", round=obs.round, first=first, second=second
            )
            first_messages = [system, {"role": "user", "content": prefix + question}]
            asked = yield from self._ask(
                first_messages, "prediction", shown, labels, tags, "predict"
            )
            if asked.valid:
                prediction = labels.index(asked.value)
                follow = self.prompts.render(
                    "repeated.after_predict",
                    prediction=asked.value,
                    round=obs.round,
                    first=first,
                    second=second,
                )
                messages = [
                    *first_messages,
                    {"role": "assistant", "content": f'{{"prediction": "{asked.value}"}}'},
                    {"role": "user", "content": follow},
                ]
        if messages is None:  # no prediction asked, or it was invalid: ask directly
            question = self.prompts.render(
                "repeated.question", round=obs.round, first=first, second=second
            )
            messages = [system, {"role": "user", "content": prefix + question}]
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
        return ChatRequest(
            messages=messages,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            json_schema=enum_schema(field, shown),
            tags={**tags, "purpose": purpose},
        )
