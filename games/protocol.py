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
from collections.abc import Hashable, Sequence
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
    "number_pattern",
    "number_schema",
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


#: Integer ranges with at most this many values are enumerated in the schema (``enum``);
#: larger ranges, and every non-integer range, are bounded by a digit pattern.
ENUM_LIMIT = 256


def number_schema(
    low: float, high: float, *, integer: bool = False, decimals: int = 2
) -> dict[str, Any]:
    """JSON schema of one number in ``[low, high]`` that every grammar engine bounds.

    Grammar engines disagree on ``minimum``/``maximum``: llama.cpp's JSON-schema grammar
    (in-process and in llama-cpp-python's server) ignores them, xgrammar (vLLM) honours
    them. ``enum`` and a string ``pattern`` are bounded by all of them, so the range is
    written with those:

    * an integer range of at most :data:`ENUM_LIMIT` values: ``{"type": "integer",
      "enum": [low, ..., high]}``, the reply a JSON integer;
    * any other range: ``{"type": "string", "pattern": ...}``, the reply a numeric string
      such as ``"12.5"`` (:func:`number_pattern`: the multiples of ``10**-decimals`` in
      the range, 0 decimals for integers, plus ``low`` and ``high`` themselves).

    ``minimum`` and ``maximum`` are kept beside them for readers of the schema (JSON
    Schema applies them to numbers only, so they never contradict a string reply).
    A reply in either form is read by ``agents.llm.spec_parser`` (numeric strings are
    accepted for numbers) and checked by the spec as before.

    Bounds too large for exact decimals (``number_pattern``) keep the plain
    ``minimum``/``maximum`` schema.

    Raises:
        ValueError: when the range is empty (or, for integers, holds no whole number).
    """
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"number_schema needs finite low <= high, got [{low}, {high}]")
    bounds: dict[str, Any] = {"minimum": low, "maximum": high}
    if integer:
        first, last = math.ceil(low), math.floor(high)
        if first > last:
            raise ValueError(f"no whole number in [{low:g}, {high:g}]")
        if last - first < ENUM_LIMIT:
            return {"type": "integer", **bounds, "enum": list(range(first, last + 1))}
        low, high, decimals = first, last, 0
    try:
        pattern = number_pattern(low, high, decimals)
    except ValueError:  # astronomically large bounds: only engines that read the bounds
        return {"type": "integer" if integer else "number", **bounds}
    return {"type": "string", **bounds, "pattern": pattern}


def number_pattern(low: float, high: float, decimals: int = 2) -> str:
    """A regular expression (``^...$``) whose matches are exactly the decimal numbers in
    ``[low, high]`` with at most ``decimals`` decimals, plus ``low`` and ``high`` written
    as Python writes them when they have more.

    Integer parts have no leading zeros ("0.5", never "00.5"), a decimal point is followed
    by 1..``decimals`` digits, negatives start with "-". Each match parses (``float``) to
    a value in ``[low, high]``. Only regex features that llama.cpp's pattern grammar
    supports are used (groups, ``|``, ``[0-9]``, ``{n}``, ``?``; the decimal point as
    ``[.]``, since llama-cpp-python's converter turns ``\\.`` into an escape that its
    grammar parser rejects), so every engine reads it alike.

    Raises:
        ValueError: when no such number lies in the range, or the bounds are too large
        (``|bound| * 10**decimals >= 2**52``) for floats to tell the grid's values apart.
    """
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"number_pattern needs finite low <= high, got [{low}, {high}]")
    scale = 10**decimals
    if max(abs(low), abs(high)) * scale >= 2**52:
        raise ValueError(f"[{low:g}, {high:g}] is too large for {decimals} exact decimals")
    # The grid k / scale from first to last: estimated, then corrected so that each
    # written value, parsed back, lies in the range (float products may be off by one).
    first, last = math.ceil(low * scale), math.floor(high * scale)
    while float(_grid_text(first, decimals)) < low:
        first += 1
    while float(_grid_text(first - 1, decimals)) >= low:
        first -= 1
    while float(_grid_text(last, decimals)) > high:
        last -= 1
    while float(_grid_text(last + 1, decimals)) <= high:
        last += 1
    alts: list[str] = []
    if first <= min(last, -1):  # negative part: "-" then the magnitudes
        alts.append("-" + _group(_scaled(max(-last, 1), -first, decimals)))
    if max(first, 0) <= last:
        alts.extend(_scaled(max(first, 0), last, decimals))
    for edge in dict.fromkeys((low, high)):  # an edge off the grid (13.335) is legal too
        text = repr(float(edge))
        if "e" not in text and "n" not in text and not _on_grid(text, decimals):
            alts.append(text.replace(".", "[.]"))
    if not alts:
        raise ValueError(f"no number with {decimals} decimals in [{low:g}, {high:g}]")
    return "^" + _group(alts) + "$"


def _grid_text(k: int, decimals: int) -> str:
    """k / 10**decimals written with ``decimals`` decimals."""
    sign, k = ("-", -k) if k < 0 else ("", k)
    if decimals == 0:
        return f"{sign}{k}"
    whole, frac = divmod(k, 10**decimals)
    return f"{sign}{whole}.{frac:0{decimals}d}"


def _on_grid(text: str, decimals: int) -> bool:
    """Whether a number written as ``text`` has at most ``decimals`` decimals."""
    frac = text.partition(".")[2].rstrip("0")
    return len(frac) <= decimals


def _group(alts: Sequence[str]) -> str:
    return alts[0] if len(alts) == 1 else "(" + "|".join(alts) + ")"


def _digit(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"[{lo}-{hi}]"


def _any_digits(n: int) -> str:
    return "" if n == 0 else "[0-9]" if n == 1 else f"[0-9]{{{n}}}"


def _fixed(lo: str, hi: str) -> list[str]:
    """Alternatives matching the digit strings of len(lo) == len(hi) from lo to hi."""
    if lo == hi:
        return [lo]
    if len(lo) == 1:
        return [_digit(int(lo), int(hi))]
    if lo[0] == hi[0]:
        return [lo[0] + _group(_fixed(lo[1:], hi[1:]))]
    rest = len(lo) - 1
    out: list[str] = []
    start, end = int(lo[0]), int(hi[0])
    if lo[1:] != "0" * rest:
        out.append(lo[0] + _group(_fixed(lo[1:], "9" * rest)))
        start += 1
    tail = None
    if hi[1:] != "9" * rest:
        tail = hi[0] + _group(_fixed("0" * rest, hi[1:]))
        end -= 1
    if start <= end:
        out.append(_digit(start, end) + _any_digits(rest))
    if tail is not None:
        out.append(tail)
    return out


def _integers(a: int, b: int) -> list[str]:
    """Alternatives matching the integers a..b (0 <= a <= b) written without leading zeros."""
    out: list[str] = []
    for width in range(len(str(a)), len(str(b)) + 1):
        lo = max(a, 10 ** (width - 1) if width > 1 else 0)
        hi = min(b, 10**width - 1)
        if lo <= hi:
            out.extend(_fixed(str(lo), str(hi)))
    return out


def _fractions(lo: int, hi: int, decimals: int) -> list[str]:
    """Alternatives matching 1..decimals fraction digits whose value, padded with zeros to
    ``decimals`` digits, lies in lo..hi."""
    out: list[str] = []
    for width in range(1, decimals + 1):
        step = 10 ** (decimals - width)
        a, b = -(-lo // step), hi // step
        if a <= b:
            out.extend(_fixed(str(a).zfill(width), str(b).zfill(width)))
    return out


def _scaled(a: int, b: int, decimals: int) -> list[str]:
    """Alternatives matching k / 10**decimals for the integers k in a..b (0 <= a <= b)."""
    if decimals == 0:
        return _integers(a, b)
    scale = 10**decimals
    (ia, fa), (ib, fb) = divmod(a, scale), divmod(b, scale)

    def piece(i_lo: int, i_hi: int, f_lo: int, f_hi: int) -> str:
        whole = _group(_integers(i_lo, i_hi))
        frac = "[.]" + _group(_fractions(f_lo, f_hi, decimals))
        return whole + (f"({frac})?" if f_lo == 0 else frac)

    if ia == ib:
        return [piece(ia, ia, fa, fb)]
    out: list[str] = []
    full_lo, full_hi = ia, ib
    if fa > 0:
        out.append(piece(ia, ia, fa, scale - 1))
        full_lo += 1
    if fb < scale - 1:
        full_hi -= 1
    if full_lo <= full_hi:
        out.append(piece(full_lo, full_hi, 0, scale - 1))
    if fb < scale - 1:
        out.append(piece(ib, ib, 0, fb))
    return out


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

    The JSON schema bounds the reply by construction (:func:`number_schema`: the legal
    integers enumerated, or a digit pattern of the numbers with at most ``decimals``
    decimals), so a grammar-constrained backend cannot decode a number out of range;
    :meth:`check` accepts any value in range (a scripted policy's 0.125 included);
    :meth:`legalize` clamps a scripted policy's out-of-range value and reports the change.
    """

    low: float
    high: float
    integer: bool = False
    field: str = "amount"
    decimals: int = 2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"Number needs finite low <= high, got [{self.low}, {self.high}]")

    def json_schema(self) -> dict[str, Any]:
        return self._object(
            number_schema(self.low, self.high, integer=self.integer, decimals=self.decimals)
        )

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

    def subgames(self) -> dict[Hashable, Game] | None:
        """The game split into independent instances, or None (the default): instances
        that interact, or a game that draws randomness after setup.

        Each value is a sub-game, built from this game's current state and sharing no
        mutable state with it, whose every step gives exactly the turns (agent, partner,
        purpose, observation, spec, fallback; in order) that this game gives at the same
        step to the turns whose :meth:`instance_key` is the key, and whose ``apply``
        takes their actions alone. Neither this game nor a sub-game may draw from the
        ``rng`` during play (the loop checks it), so an instance's results depend on its
        own actions only: the loop may advance each instance at its own pace (out-of-order
        stepping against server backends) and still record what lockstep records.
        """
        return None

    def instance_key(self, turn: Turn) -> Hashable:
        """Which of :meth:`subgames` a turn belongs to (default: ``turn.instance``)."""
        return turn.instance

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
