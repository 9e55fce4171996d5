"""Rules of a commons dilemma: a shared stock that agents harvest month by month.

After GovSim, Piatti et al. (2024), "Cooperate or Collapse: Emergence of Sustainable
Cooperation in a Society of LLM Agents" (NeurIPS 2024): ``n`` agents share a resource
(a lake of fish, a pasture, a river's capacity to absorb pollution). Each month has
phases, each one step of the loop:

1. **harvest** (private): every agent asks for an amount in ``[0, stock]`` (a bounded
   ``Number``). When the asks exceed the stock, the stock is shared in proportion to
   them. What remains regrows: it is multiplied by ``growth`` and capped at
   ``capacity``. If less than ``threshold`` remains after the harvest, the resource has
   collapsed for good and the game ends.
2. **discussion** (``discussion_rounds`` steps, possibly none): every agent writes one
   message to all (a ``Text`` turn); the messages of a step are shown to the others in
   the next phase (the next discussion round, the reflection).
3. **reflection** (optional): every agent rewrites its own memory text (a ``Text`` turn)
   from the month's report and messages; the memory is part of its later observations.

The *sustainable total* at stock ``h`` is the most that can be taken without the next
month's stock falling below ``h``: ``min(h (1 - 1/growth), h - threshold)`` (at least
0); the *sustainable share* is that over ``n``. With the defaults (capacity 100,
doubling, threshold 5, 5 agents) it is 50 in all, 10 each, at a full stock.

Pure: no I/O and no randomness (the rules draw nothing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np

from games.protocol import Event, Game, Number, Position, Text, Turn

__all__ = [
    "CommonsGame",
    "CommonsKind",
    "CommonsObservation",
    "CommonsRules",
    "MonthOutcome",
    "MonthSummary",
    "PHASES",
]

PHASES = ("harvest", "discuss", "reflect")


def _number(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float | np.integer | np.floating)
        and math.isfinite(value)
    )


class MonthOutcome(NamedTuple):
    """What one harvest did: the amounts taken per slot, what remained, whether the
    resource collapsed, and the stock the next month starts with (0 after a collapse)."""

    taken: tuple[float, ...]
    remaining: float
    collapsed: bool
    next_stock: float


@dataclass(frozen=True)
class CommonsRules:
    """The resource: its ``capacity``, regrowth factor ``growth`` (>= 1), collapse
    ``threshold`` (0 <= threshold < capacity), starting stock ``initial`` (None: the
    capacity) and ``max_harvest``, the most one agent may ask in a month (None: the whole
    stock; a quota). ``integer`` makes harvests whole numbers.

    Defaults are GovSim's fishery: a lake of 100 tons that doubles, gone below 5 tons.

    Raises:
        ValueError: a field out of range; each message starts with the field's name.
    """

    capacity: float = 100.0
    growth: float = 2.0
    threshold: float = 5.0
    initial: float | None = None
    integer: bool = True
    max_harvest: float | None = None

    def __post_init__(self) -> None:
        for name in ("capacity", "growth", "threshold"):
            if not _number(getattr(self, name)):
                raise ValueError(f"{name}: must be a finite number, got {getattr(self, name)!r}")
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.capacity <= 0:
            raise ValueError(f"capacity: must be > 0, got {self.capacity:g}")
        if self.growth < 1:
            raise ValueError(f"growth: must be >= 1 (1: no regrowth), got {self.growth:g}")
        if not 0 <= self.threshold < self.capacity:
            raise ValueError(
                f"threshold: must lie in [0, {self.capacity:g}) (below the capacity), "
                f"got {self.threshold:g}"
            )
        if self.initial is None:
            object.__setattr__(self, "initial", self.capacity)
        elif not _number(self.initial) or not self.threshold <= self.initial <= self.capacity:
            raise ValueError(
                f"initial: must lie in [{self.threshold:g}, {self.capacity:g}] (from the "
                f"collapse threshold to the capacity), got {self.initial!r}"
            )
        object.__setattr__(self, "initial", float(self.initial))  # type: ignore[arg-type]
        if not isinstance(self.integer, bool):
            raise ValueError(f"integer: must be true or false, got {self.integer!r}")
        if self.max_harvest is not None:
            if not _number(self.max_harvest) or self.max_harvest <= 0:
                raise ValueError(f"max_harvest: must be a number > 0, got {self.max_harvest!r}")
            object.__setattr__(self, "max_harvest", float(self.max_harvest))

    @property
    def start(self) -> float:
        """The stock of the first month."""
        assert self.initial is not None
        return self.initial

    def max_take(self, stock: float) -> float:
        """The most one agent may ask for at ``stock``: the whole stock, or
        ``max_harvest`` when less (floored when harvests are whole numbers)."""
        top = stock if self.max_harvest is None else min(stock, self.max_harvest)
        return float(math.floor(top + 1e-9)) if self.integer else float(top)

    def regrow(self, remaining: float) -> float:
        """The next month's stock from what remained after a harvest (no collapse)."""
        return min(self.capacity, remaining * self.growth)

    def sustainable_total(self, stock: float) -> float:
        """The most all agents together can take at ``stock`` without the next month's
        stock falling below it (nor the remainder below the threshold)."""
        return max(0.0, min(stock * (1.0 - 1.0 / self.growth), stock - self.threshold))

    def sustainable_share(self, stock: float, n: int) -> float:
        """One agent's share of :meth:`sustainable_total` among ``n``."""
        return self.sustainable_total(stock) / n

    def sustainable_max(self, months: int) -> float:
        """The gain of a society that takes the sustainable total every month from the
        starting stock (which then stays put): GovSim's reference for efficiency."""
        return months * self.sustainable_total(self.start)

    def settle(self, stock: float, asked: Sequence[float]) -> MonthOutcome:
        """One harvest: each agent gets what it asked when the stock suffices, else the
        stock is shared in proportion to the asks; the rest regrows unless it is below
        the threshold (collapse).

        Raises:
            ValueError: a negative or non-finite ask.
        """
        asks = [float(a) for a in asked]
        if any(not math.isfinite(a) or a < 0 for a in asks):
            raise ValueError(f"asks must be finite and >= 0, got {list(asked)!r}")
        total = sum(asks)
        if total <= stock:
            taken = tuple(asks)
            remaining = max(0.0, stock - total)
        else:
            taken = tuple(a * stock / total for a in asks)
            remaining = 0.0
        if remaining < self.threshold:
            return MonthOutcome(taken, remaining, True, 0.0)
        return MonthOutcome(taken, remaining, False, self.regrow(remaining))


class MonthSummary(NamedTuple):
    """A past month as an agent knows it (``month`` 1-based): the stock it started with,
    the total taken, the agent's own take, what remained and the next stock."""

    month: int
    stock: float
    total: float
    mine: float
    remaining: float
    next_stock: float


class CommonsObservation(NamedTuple):
    """One agent's view in one phase of month ``month`` (1-based) of ``months``.

    ``stock`` is the stock the month started with, ``max_take`` the most one may ask,
    ``share`` the sustainable share at that stock. ``memory`` is the agent's own memory
    text. ``history`` holds the earlier months. In the discussion and reflection phases,
    ``outcome`` is this month's harvest: ``taken`` per slot (None for another agent's
    take when harvests are not disclosed), ``remaining`` and ``next_stock``; ``messages``
    are this month's earlier messages as ``(slot, text)``, and ``discussion_round`` the
    round of discussion (1-based; 0 outside discussion).
    """

    phase: str
    month: int
    months: int
    n: int
    slot: int
    stock: float
    max_take: float
    share: float
    memory: str
    history: tuple[MonthSummary, ...]
    rules: CommonsRules
    taken: tuple[float | None, ...] | None = None
    remaining: float | None = None
    next_stock: float | None = None
    messages: tuple[tuple[int, str], ...] = ()
    discussion_round: int = 0


class CommonsKind(StrEnum):
    """Decision and event kinds of the commons, as recorded in the run store.

    Decisions: ``harvest`` (value: the amount asked), ``message`` (action: the text),
    ``reflect`` (action: the new memory text). Events: ``payoff`` (per agent and month,
    value: the amount taken, the agent's gain) and ``stock`` (one per month, value: the next month's stock;
    data: ``month`` (1-based), ``stock``, ``asked`` and ``taken`` in all, ``remaining``,
    ``share`` (the sustainable share), ``sustainable`` (the sustainable total),
    ``collapsed``).
    """

    HARVEST = "harvest"
    MESSAGE = "message"
    REFLECT = "reflect"
    PAYOFF = "payoff"
    STOCK = "stock"


_PURPOSE = {"harvest": CommonsKind.HARVEST, "discuss": CommonsKind.MESSAGE,
            "reflect": CommonsKind.REFLECT}  # fmt: skip


class CommonsGame(Game):
    """One commons shared by ``n`` agents for up to ``months`` months.

    A month is ``1 + discussion_rounds + reflection`` steps (harvest, discussion rounds,
    reflection); the game ends after the last month or at a collapse (right after that
    harvest). Every turn of a step has the same spec: ``Number(0, max_take)`` at a
    harvest (fallback ``fallback``, capped at ``max_take``), ``Text`` in the other
    phases (fallback: an empty message; the unchanged memory).

    The state is plain JSON data: month, phase, stock, memories, gains, the months played
    and this month's messages.
    """

    kind = "commons"

    def __init__(
        self,
        rules: CommonsRules,
        n: int,
        *,
        months: int = 12,
        discussion_rounds: int = 1,
        reflection: bool = True,
        disclose_harvests: bool = True,
        message_chars: int = 300,
        memory_chars: int = 500,
        fallback: float = 0.0,
        memory: str = "",
    ) -> None:
        checks = (("n", n, 1), ("months", months, 1), ("discussion_rounds", discussion_rounds, 0),
                  ("message_chars", message_chars, 1), ("memory_chars", memory_chars, 1))  # fmt: skip
        for name, value, low in checks:
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"{name}: must be an integer >= {low}, got {value!r}")
        if not _number(fallback) or fallback < 0:
            raise ValueError(f"fallback: must be a number >= 0, got {fallback!r}")
        self.rules = rules
        self.n = int(n)
        self.months = int(months)
        self.disclose = bool(disclose_harvests)
        self.fallback = float(fallback)
        self.phases: tuple[str, ...] = (
            "harvest",
            *(["discuss"] * int(discussion_rounds)),
            *(["reflect"] if reflection else []),
        )
        self.message_spec = Text(int(message_chars))
        self.memory_spec = Text(int(memory_chars))
        # -- state --
        self.month = 0  # 0-based month being played
        self.phase = 0  # index into self.phases
        self.stock = rules.start
        self.collapsed = False
        self.memory = [memory[: int(memory_chars)]] * self.n
        self.gains = [0.0] * self.n
        # One entry per month played: stock, asked and taken per slot, remaining, next.
        self.played: list[dict[str, Any]] = []
        self.messages: list[list[Any]] = []  # this month: [discussion round, slot, text]

    # -- protocol ------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.collapsed or self.month >= self.months

    def total_steps(self) -> int | None:
        """Steps when the resource never collapses (a collapse ends the game earlier)."""
        return self.months * len(self.phases)

    def position(self) -> Position:
        return Position(0, self.month)

    @property
    def phase_name(self) -> str:
        """The phase of the next step: 'harvest', 'discuss' or 'reflect'."""
        return self.phases[self.phase]

    def pending(self, rng: np.random.Generator) -> list[Turn]:
        phase = self.phase_name
        if phase == "harvest":
            top = self.rules.max_take(self.stock)
            spec: Any = Number(0.0, top, integer=self.rules.integer, field="amount")
            fallback: Any = min(self.fallback, top)
            if self.rules.integer:
                fallback = int(math.floor(fallback))
            return [
                Turn(k, None, CommonsKind.HARVEST, self.observation(k), spec, fallback)
                for k in range(self.n)
            ]
        purpose = _PURPOSE[phase]
        spec = self.message_spec if phase == "discuss" else self.memory_spec
        return [
            Turn(
                k,
                None,
                purpose,
                self.observation(k),
                spec,
                "" if phase == "discuss" else self.memory[k],
            )  # fmt: skip
            for k in range(self.n)
        ]

    def observation(self, slot: int) -> CommonsObservation:
        """What ``slot`` sees at the next step."""
        phase = self.phase_name
        rules, n = self.rules, self.n
        history = tuple(self._summary(k, m, slot) for k, m in enumerate(self.played))
        current: dict[str, Any] = {}
        stock = self.stock
        if phase != "harvest":
            m = self.played[-1]
            history = history[:-1]
            stock = m["stock"]
            current["taken"] = tuple(
                t if (self.disclose or k == slot) else None for k, t in enumerate(m["taken"])
            )
            current["remaining"] = m["remaining"]
            current["next_stock"] = m["next"]
            current["messages"] = tuple((int(s), str(t)) for _, s, t in self.messages)
            if phase == "discuss":
                current["discussion_round"] = self.phase  # harvest is phase 0
        return CommonsObservation(
            phase, self.month + 1, self.months, n, slot, stock, rules.max_take(stock),
            rules.sustainable_share(stock, n), self.memory[slot], history, rules, **current,
        )  # fmt: skip

    @staticmethod
    def _summary(k: int, m: dict[str, Any], slot: int) -> MonthSummary:
        return MonthSummary(k + 1, m["stock"], sum(m["taken"]), m["taken"][slot],
                            m["remaining"], m["next"])  # fmt: skip

    def apply(
        self, turns: Sequence[Turn], actions: Sequence[Any], rng: np.random.Generator
    ) -> list[Event]:
        if len(turns) != self.n:
            raise ValueError(f"expected {self.n} actions, got {len(turns)}")
        phase = self.phase_name
        events: list[Event] = []
        if phase == "harvest":
            events = self._harvest([float(a) for a in actions])
        elif phase == "discuss":
            for t, text in zip(turns, actions, strict=True):
                self.messages.append([self.phase, t.agent, str(text)])
        else:
            for t, text in zip(turns, actions, strict=True):
                self.memory[t.agent] = str(text)
        if not self.collapsed:
            self.phase += 1
            if self.phase >= len(self.phases):
                self.phase = 0
                self.month += 1
        return events

    def _harvest(self, asked: list[float]) -> list[Event]:
        rules, stock = self.rules, self.stock
        out = rules.settle(stock, asked)
        sustainable = rules.sustainable_total(stock)
        self.played.append(
            {"stock": stock, "asked": asked, "taken": list(out.taken),
             "remaining": out.remaining, "next": out.next_stock, "collapsed": out.collapsed}
        )  # fmt: skip
        self.messages = []
        events = []
        for k, t in enumerate(out.taken):
            self.gains[k] += t
            events.append(Event(CommonsKind.PAYOFF, k, None, None, t, None))
        data = {
            "month": self.month + 1,
            "stock": stock,
            "asked": sum(asked),
            "taken": sum(out.taken),
            "remaining": out.remaining,
            "share": sustainable / self.n,
            "sustainable": sustainable,
            "collapsed": out.collapsed,
        }
        events.append(Event(CommonsKind.STOCK, None, None, None, out.next_stock, data))
        self.stock = out.next_stock
        self.collapsed = out.collapsed
        return events

    def fitness(self) -> dict[int, tuple[float, dict[str, Any] | None]]:
        """Per slot: its total gain (detail: the months played)."""
        played = len(self.played)
        return {k: (g, {"total": g, "months": played}) for k, g in enumerate(self.gains)}

    def get_state(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "phase": self.phase,
            "stock": self.stock,
            "collapsed": self.collapsed,
            "memory": list(self.memory),
            "gains": list(self.gains),
            "played": [
                dict(m, asked=list(m["asked"]), taken=list(m["taken"])) for m in self.played
            ],  # fmt: skip
            "messages": [list(m) for m in self.messages],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        memory = [str(x) for x in state["memory"]]
        gains = [float(x) for x in state["gains"]]
        if len(memory) != self.n or len(gains) != self.n:
            raise ValueError(f"the state holds {len(memory)} agents, the game {self.n}")
        phase = int(state["phase"])
        if not 0 <= phase < len(self.phases):
            raise ValueError(f"phase {phase} is not one of this game's {len(self.phases)}")
        self.month = int(state["month"])
        self.phase = phase
        self.stock = float(state["stock"])
        self.collapsed = bool(state["collapsed"])
        self.memory = memory
        self.gains = gains
        self.played = [
            {"stock": float(m["stock"]), "asked": [float(x) for x in m["asked"]],
             "taken": [float(x) for x in m["taken"]], "remaining": float(m["remaining"]),
             "next": float(m["next"]), "collapsed": bool(m["collapsed"])}
            for m in state["played"]
        ]  # fmt: skip
        self.messages = [[int(r), int(s), str(t)] for r, s, t in state["messages"]]
