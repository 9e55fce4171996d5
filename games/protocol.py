"""The game protocol: the one contract between the event loop and every game.

Modelled on Concordia's engine ↔ game-master split: each step the loop asks the game
which turns are pending (who acts, with whom, for what, what they observe, and the typed
action they may take), gets an action for every turn (scripted policies at once, LLM
policies batched per backend), and hands the actions back; the game applies them and
returns typed events. The game says when it is done and saves/restores its state as
plain data (JSON-ready), so a checkpoint never needs pickle.

Everything here is pure: no I/O, no backends, no store. Randomness comes from the
``numpy.random.Generator`` the loop passes in, so a seed fixes a run.

Players are addressed by *slot*: the index of the agent in the population (0..n-1).
The loop maps slots to the agent ids of the run store (which change across generations).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np
from pydantic import BaseModel, ValidationError

__all__ = [
    "ActionSpec",
    "Answer",
    "Choice",
    "Event",
    "Game",
    "IllegalAction",
    "LLMPolicy",
    "Number",
    "ScriptedPolicy",
    "Structured",
    "Text",
    "Turn",
    "object_schema",
]


class IllegalAction(ValueError):
    """An action that the turn's spec does not allow."""


# -- action specs ------------------------------------------------------------------------
def object_schema(properties: dict[str, Any]) -> dict[str, Any]:
    """JSON schema of an object with exactly these properties, all required, in order."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


class ActionSpec(ABC):
    """What a turn may answer: its JSON schema (for constrained decoding) and its check."""

    #: Name of the JSON field that carries the action in an LLM's reply.
    field: str

    @abstractmethod
    def json_schema(self) -> dict[str, Any]:
        """JSON schema of the reply object (one field, :attr:`field`)."""

    @abstractmethod
    def check(self, value: Any) -> Any:
        """The value as the game's action, or raise :class:`IllegalAction`."""

    def legalize(self, value: Any) -> tuple[Any, bool]:
        """(a legal action, whether ``value`` had to change): the default refuses to repair."""
        return self.check(value), False

    def legalize_all(self, values: Sequence[Any]) -> tuple[list[Any], list[bool]]:
        """:meth:`legalize` of many values at once (a spec may check them in one pass)."""
        pairs = [self.legalize(v) for v in values]
        return [a for a, _ in pairs], [changed for _, changed in pairs]

    def _object(self, prop: dict[str, Any]) -> dict[str, Any]:
        return object_schema({self.field: prop})


@dataclass(frozen=True)
class Choice(ActionSpec):
    """One of ``options`` (labels shown to the agent); the action is the option's index."""

    options: tuple[str, ...]
    field: str = "choice"

    def __post_init__(self) -> None:
        if len(self.options) < 1 or len(set(self.options)) != len(self.options):
            raise ValueError(f"Choice needs distinct options, got {self.options!r}")

    def json_schema(self) -> dict[str, Any]:
        return self._object({"type": "string", "enum": list(self.options)})

    def legalize(self, value: Any) -> tuple[int, bool]:
        if type(value) is int and 0 <= value < len(self.options):  # the common case, fast
            return value, False
        return self.check(value), False

    def legalize_all(self, values: Sequence[Any]) -> tuple[list[Any], list[bool]]:
        # All plain ints in range (what scripted policies return): checked at C speed.
        if values and set(map(type, values)) == {int}:
            if min(values) >= 0 and max(values) < len(self.options):
                return list(values), [False] * len(values)
        return super().legalize_all(values)

    def check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise IllegalAction(f"expected an option index, got {value!r}")
        if not 0 <= int(value) < len(self.options):
            raise IllegalAction(f"option index {value} out of range 0..{len(self.options) - 1}")
        return int(value)


@dataclass(frozen=True)
class Number(ActionSpec):
    """A number in ``[low, high]``; ``integer`` restricts it to whole numbers.

    The bounds go into the JSON schema (``minimum``/``maximum``) so that backends that
    honour them constrain the reply itself; :meth:`legalize` clamps a scripted policy's
    out-of-range value and reports the change.
    """

    low: float
    high: float
    integer: bool = False
    field: str = "amount"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"Number needs finite low <= high, got [{self.low}, {self.high}]")

    def json_schema(self) -> dict[str, Any]:
        kind = "integer" if self.integer else "number"
        return self._object({"type": kind, "minimum": self.low, "maximum": self.high})

    def check(self, value: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise IllegalAction(f"expected a number, got {value!r}")
        x = float(value)
        if not math.isfinite(x) or not self.low <= x <= self.high:
            raise IllegalAction(f"{value!r} is outside [{self.low:g}, {self.high:g}]")
        if self.integer:
            if x != int(x):
                raise IllegalAction(f"{value!r} is not a whole number")
            return int(x)
        return x

    def legalize(self, value: Any) -> tuple[float | int, bool]:
        try:
            return self.check(value), False
        except IllegalAction:
            x = float(value) if not isinstance(value, bool) else math.nan
            x = self.low if not math.isfinite(x) else min(max(x, self.low), self.high)
            return (int(round(x)) if self.integer else x), True


@dataclass(frozen=True)
class Text(ActionSpec):
    """Free text of at most ``max_chars`` characters (no schema: the reply is the text)."""

    max_chars: int = 2000
    field: str = "text"

    def json_schema(self) -> dict[str, Any]:
        return self._object({"type": "string", "maxLength": self.max_chars})

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise IllegalAction(f"expected text, got {type(value).__name__}")
        return value[: self.max_chars]


@dataclass(frozen=True)
class Structured(ActionSpec):
    """An action given by a pydantic model; its JSON schema constrains the reply."""

    model: type[BaseModel]
    field: str = "action"

    def json_schema(self) -> dict[str, Any]:
        return self.model.model_json_schema()

    def check(self, value: Any) -> BaseModel:
        if isinstance(value, self.model):
            return value
        try:
            return self.model.model_validate(value)
        except ValidationError as exc:
            raise IllegalAction(str(exc).splitlines()[0]) from None


# -- turns, answers, events ---------------------------------------------------------------
class Turn(NamedTuple):
    """One pending decision: ``agent`` (a slot) acts, possibly facing ``partner``.

    ``purpose`` is the decision's kind as recorded in the store ('move', 'donate',
    'claim', ...). ``observation`` is the game's typed view for this agent. ``fallback``
    is recorded when an LLM's reply stays invalid. A ``forced`` turn has one legal
    action: LLM policies are not asked (recorded as source 'forced'); scripted
    policies still answer (their own random streams stay the same).
    ``instance`` names the game instance (e.g. the match) the turn belongs to.

    A named tuple: a large tournament makes millions of turns, and a game may build
    them at C speed with ``Turn._make``.
    """

    agent: int
    partner: int | None
    purpose: str
    observation: Any
    spec: ActionSpec
    fallback: Any
    instance: int = 0
    forced: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """An LLM policy's answer to a turn: the action (None when invalid) and extra data."""

    action: Any
    valid: bool
    data: dict[str, Any] | None = None


class Event(NamedTuple):
    """Something the game did: a payoff, a donation, a claim settled, a resource level.

    ``agent`` and ``partner`` are slots; ``data`` is JSON-ready detail (or None).
    """

    kind: str
    agent: int | None
    partner: int | None = None
    action: str | None = None
    value: float | None = None
    data: dict[str, Any] | None = None


# -- policies -------------------------------------------------------------------------------
class ScriptedPolicy(Protocol):
    """A scripted policy answers a turn at once, from the observation and the seeded rng."""

    name: str

    def act(self, turn: Turn, rng: np.random.Generator) -> Any:
        """The action for this turn (checked against ``turn.spec`` by the loop)."""
        ...

    def spec(self) -> dict[str, Any]:
        """The policy as plain data: ``{"name": ..., **params}`` (stored, and copied by
        evolution)."""
        ...


class LLMPolicy(Protocol):
    """An LLM policy answers a turn through a generator of chat requests (batched by the
    loop); see ``agents.llm``."""

    def decide(self, turn: Turn, me: Any, tags: dict[str, Any]) -> Any:
        """A generator yielding ``ChatRequest``s and returning an :class:`Answer`."""
        ...


# -- the game -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Position:
    """Where a step lies in the game, for the store's ``rounds`` row."""

    game: int = 0
    round_in_game: int = 0


class Game(ABC):
    """A game master: pending turns in, events out; state as plain data.

    Subclasses set :attr:`kind` and implement the abstract methods. ``pending`` is called
    once per step and ``apply`` once with one action per pending turn, in order; both may
    draw from ``rng`` (the loop's generator, checkpointed with the run).
    """

    kind: ClassVar[str] = ""

    @property
    @abstractmethod
    def done(self) -> bool:
        """Whether the game is over."""

    @abstractmethod
    def pending(self, rng: np.random.Generator) -> list[Turn]:
        """The turns to answer this step (may be empty for a step with no decisions)."""

    @abstractmethod
    def apply(
        self, turns: Sequence[Turn], actions: Sequence[Any], rng: np.random.Generator
    ) -> list[Event]:
        """Apply one action per turn (same order as ``pending`` gave) and say what happened."""

    @abstractmethod
    def get_state(self) -> dict[str, Any]:
        """The game's state as plain JSON-ready data."""

    @abstractmethod
    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state made by :meth:`get_state`."""

    def position(self) -> Position:
        """Where the *next* step lies (game number and round within it)."""
        return Position()

    def total_steps(self) -> int | None:
        """Steps of the whole game when known in advance (for the progress bar)."""
        return None

    def fitness(self) -> dict[int, tuple[float, dict[str, Any] | None]]:
        """Per slot, its fitness when the game is over and optional detail (for evolution)."""
        raise NotImplementedError(f"{type(self).__name__} defines no fitness; it cannot evolve")

    def records(
        self, turns: Sequence[Turn], actions: Sequence[Any]
    ) -> tuple[Sequence[str | None], Sequence[float | None], Sequence[Any]]:
        """How a step's decisions are stored, as columns: action texts, values, data.

        The default applies :meth:`record` to each; a game with many decisions a step may
        compute the columns at once.
        """
        rows = [self.record(t, a) for t, a in zip(turns, actions, strict=True)]
        if not rows:
            return [], [], []
        texts, values, data = zip(*rows, strict=True)
        return texts, values, data

    def record(self, turn: Turn, action: Any) -> tuple[str | None, float | None, Any]:
        """How a decision is stored: (action text, value, data). Default by the spec kind."""
        spec = turn.spec
        if isinstance(spec, Choice):
            return spec.options[action], float(action), None
        if isinstance(spec, Number):
            return None, float(action), None
        if isinstance(spec, Text):
            return action, None, None
        if isinstance(action, BaseModel):
            return None, None, action.model_dump(mode="json")
        return None, None, action
