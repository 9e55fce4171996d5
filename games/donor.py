"""Pure rules of one iterated donor game (protocols §1; Vallinder & Hughes, arXiv 2412.10270).

This module is the game master for a *single* game among ``n`` agents: it builds the
pairing schedule, holds everyone's resources, applies the donors' actions of a round and
records what happened, and builds the recipients' traces from that record. It knows
nothing of generations, evolution, prompts or models: the runtime plays two games per
generation, asks agents for their decisions and handles everything else.

Everything here is deterministic given the ``numpy.random.Generator`` passed in, and a
``DonorGame`` holds only plain attributes, so it pickles for checkpoints (``state_dict`` /
``from_state`` give a JSON-friendly form as well).

Rounds in ``DonorEvent``, ``TraceEntry`` and ``DonorObservation`` are 1-based (what an
agent is shown); ``DonorGame.round`` is the 0-based index of the next round to play.
Percentages are in 0..100.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any, Literal

import numpy as np

from games.protocol import ActionSpec, Event, Game, IllegalAction, Position, Turn, object_schema

__all__ = [
    "DonorAction",
    "DonorEvent",
    "DonorGame",
    "DonorObservation",
    "DonorRules",
    "InvalidAction",
    "TraceEntry",
    "clamp_action",
    "make_schedule",
    "max_rounds",
    "reverse_schedule",
    "validate_action",
]

# Floating-point slack when a donor gives "everything": an amount this close above its
# holdings is treated as exactly its holdings rather than as an invalid action.
_EPS = 1e-9


def _is_real(x: object) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


@dataclass(frozen=True)
class DonorRules:
    """Parameters of one donor game; every default is the paper's (protocols §1).

    Attributes:
        endowment: units each agent holds at the start of a game.
        multiplier: the recipient receives ``multiplier * x`` when a donor gives ``x``
            (ablations in the paper: 1.5 and 3).
        rounds: rounds per game (agents are not told this number; prompts must not show it).
        trace_depth: how many entries of the recipient's trace a donor sees (ablations 1, 2).
        punishment: whether donors may punish instead of giving (costly punishment variant).
        punishment_cost: units the donor spends per "unit of punishment".
        punishment_fine: units removed from the recipient per ``punishment_cost`` spent; a
            donor spending ``x`` removes ``punishment_fine / punishment_cost * x`` (paper 1:2).
        no_repeat: which pairs may not repeat within a game, see below.
        schedule: which pairing schedule is played: ``"text"`` (the paper's text, the
            default) or ``"code"`` (the authors' published notebook), see below.

    Two schedules (protocols §1). ``schedule="text"`` follows the paper's text (Vallinder
    & Hughes, arXiv 2412.10270, section 3): a fresh random pairing every round, roles
    alternating, no partner met twice (as read below). ``schedule="code"`` follows the
    authors' published notebook: the population is split into two halves at random, and
    every pair from opposite halves meets twice per game, once in each direction, ``n/2``
    rounds apart; within the first ``n/2`` rounds the donating half alternates, and round
    ``r + n/2`` replays round ``r``'s pairs reversed, so with 12 agents the same half
    donates in rounds 6 and 7. A generation's second game replays the first game's pairs
    reversed (``DonorPlay``). With everyone giving everything the mean final resources of
    a game are 30,720 under the text's schedule and 15,360 under the code's (round 7's
    donors gave everything in round 6 and hold nothing). The code's schedule never repeats
    an ordered pair within a game, so it satisfies ``no_repeat="ordered"`` (``rounds <= n``;
    fewer rounds play its first ``rounds`` rounds); it repeats every unordered pair, so
    ``no_repeat="unordered"`` with it is an error.

    Pairing of the text's schedule (unverified): the protocol says each round the ``n``
    agents form ``n/2`` donor→recipient pairs, whoever was a donor in round r is a
    recipient in round r+1, and nobody meets the same partner twice. Role alternation
    alone splits the population into two fixed halves that donate in alternate rounds, so
    every partner comes from the other half: an agent has only ``n/2`` possible partners,
    and with 12 agents and 12 rounds never meeting the same *unordered* partner twice is
    impossible. Hence the default,
    ``no_repeat="ordered"``: no ordered (donor, recipient) pair repeats within a game, which
    is feasible while ``rounds <= n``. With ``no_repeat="unordered"`` unordered pairs never
    repeat, which needs ``rounds <= n/2``; ``make_schedule`` raises ``ValueError`` otherwise.
    In ordered mode the schedule also avoids, where it can, a recipient giving straight
    back to its donor in the next round (the most direct form of reciprocity).
    """

    endowment: float = 10
    multiplier: float = 2.0
    rounds: int = 12
    trace_depth: int = 3
    punishment: bool = False
    punishment_cost: float = 1.0
    punishment_fine: float = 2.0
    no_repeat: Literal["ordered", "unordered"] = "ordered"
    schedule: Literal["text", "code"] = "text"

    def __post_init__(self) -> None:
        def real(name: str, *, positive: bool = False) -> None:
            v = getattr(self, name)
            if not _is_real(v) or not math.isfinite(v):
                raise ValueError(f"DonorRules.{name} must be a finite number, got {v!r}")
            if v < 0 or (positive and v == 0):
                bound = "> 0" if positive else ">= 0"
                raise ValueError(f"DonorRules.{name} must be {bound}, got {v!r}")

        real("endowment")
        real("multiplier")
        real("punishment_cost", positive=True)
        real("punishment_fine")
        if not _is_int(self.rounds) or self.rounds < 1:
            raise ValueError(f"DonorRules.rounds must be an integer >= 1, got {self.rounds!r}")
        if not _is_int(self.trace_depth) or self.trace_depth < 0:
            raise ValueError(
                f"DonorRules.trace_depth must be an integer >= 0, got {self.trace_depth!r}"
            )
        if not isinstance(self.punishment, bool):
            raise ValueError(f"DonorRules.punishment must be a bool, got {self.punishment!r}")
        if self.no_repeat not in ("ordered", "unordered"):
            raise ValueError(
                f"DonorRules.no_repeat must be 'ordered' or 'unordered', got {self.no_repeat!r}"
            )
        if self.schedule not in ("text", "code"):
            raise ValueError(f"DonorRules.schedule must be 'text' or 'code', got {self.schedule!r}")
        if self.schedule == "code" and self.no_repeat == "unordered":
            raise ValueError(
                "DonorRules.no_repeat='unordered' is impossible with schedule='code': the "
                "code's schedule meets every opposite-half pair twice per game, once each way"
            )

    @property
    def fine_per_unit(self) -> float:
        """Units removed from a punished recipient per unit the donor spends."""
        return self.punishment_fine / self.punishment_cost


def max_rounds(n: int, no_repeat: Literal["ordered", "unordered"]) -> int:
    """The most rounds a schedule for ``n`` agents can have under ``no_repeat``.

    Each agent's partners all lie in the other half (``n/2`` agents). Ordered pairs: an
    agent donates in every other round, to a different partner each time, so
    ``ceil(rounds/2) <= n/2``, i.e. ``rounds <= n``. Unordered pairs: it meets a different
    partner every round, so ``rounds <= n/2``.
    """
    return n if no_repeat == "ordered" else n // 2


def _perfect_matching(adj: list[list[int]], order: Sequence[int], m: int) -> list[int] | None:
    """A perfect matching left→right of a bipartite graph, or None when there is none.

    Greedy pass in the given (random) order, then augmenting paths by BFS for whoever is
    left unmatched (Kuhn's algorithm), so it finds a matching whenever one exists.
    """
    match_l = [-1] * m
    match_r = [-1] * m
    for i in order:
        for j in adj[i]:
            if match_r[j] < 0:
                match_l[i], match_r[j] = j, i
                break
    for i in order:
        if match_l[i] >= 0:
            continue
        # BFS over alternating paths from i; parent_r[j] = left vertex that reached j.
        parent_r = [-1] * m
        queue = deque([i])
        seen_l = {i}
        free_j = -1
        while queue and free_j < 0:
            u = queue.popleft()
            for j in adj[u]:
                if parent_r[j] >= 0:
                    continue
                parent_r[j] = u
                if match_r[j] < 0:
                    free_j = j
                    break
                w = match_r[j]
                if w not in seen_l:
                    seen_l.add(w)
                    queue.append(w)
        if free_j < 0:
            return None
        j = free_j
        while j >= 0:  # flip the path back to i
            u = parent_r[j]
            prev_j = match_l[u]
            match_l[u], match_r[j] = j, u
            j = prev_j if u != i else -1
    return match_l


def make_schedule(
    n: int, rules: DonorRules, rng: np.random.Generator
) -> list[list[tuple[int, int]]]:
    """The pairing of every round: ``schedule[r]`` lists round r's (donor, recipient) pairs.

    ``rules.schedule`` picks the construction: the text's (below) or the code's
    (``_code_schedule``; see ``DonorRules``). Both: ``n`` even, every agent in exactly one
    pair per round, no ordered pair twice, pairs within a round sorted by donor.

    The text's schedule guarantees: ``n`` is even; every agent is in exactly one pair per
    round; round r+1's donors are exactly round r's recipients; no pair repeats as
    ``rules.no_repeat`` says (see ``DonorRules``). Pairs within a round are sorted by donor.

    Construction: a random split into the two halves, then round by round a random
    perfect matching between the halves among the pairs still allowed. The allowed pairs
    form a regular bipartite graph after any number of earlier rounds, which always has a
    perfect matching (Hall), so no round can get stuck while ``rounds <= max_rounds``. The
    soft "no immediate give-back" preference is dropped for a round only when it leaves no
    perfect matching. Deterministic given ``rng``.

    Raises:
        ValueError: ``n`` odd or < 2, or more rounds than ``max_rounds(n, no_repeat)``.
    """
    if not _is_int(n) or n < 2 or n % 2:
        raise ValueError(f"donor game needs an even number of agents >= 2, got n={n!r}")
    n = int(n)
    limit = max_rounds(n, rules.no_repeat)
    if rules.rounds > limit:
        why = (
            "each agent donates every other round and may give to each of the n/2 agents "
            "of the other half at most once"
            if rules.no_repeat == "ordered"
            else "roles alternate, so each agent's partners all come from the other half "
            "(n/2 agents) and an unordered pair may meet only once"
        )
        raise ValueError(
            f"no_repeat={rules.no_repeat!r} with n={n} allows at most {limit} rounds "
            f"(got rounds={rules.rounds}): {why}"
        )
    if rules.schedule == "code":
        return _code_schedule(n, rules.rounds, rng)
    m = n // 2
    perm = rng.permutation(n)
    halves = (perm[:m].tolist(), perm[m:].tolist())  # halves[0] donates in rounds 0, 2, ...
    # Used edges (i, j) of K_{m,m}, i in halves[0], j in halves[1]: one set per donor side
    # for ordered pairs (direction matters), one shared set for unordered pairs.
    used: tuple[set[tuple[int, int]], ...] = (
        (set(), set()) if rules.no_repeat == "ordered" else (set(),) * 2
    )
    prev: set[tuple[int, int]] = set()
    schedule: list[list[tuple[int, int]]] = []
    for r in range(rules.rounds):
        side = r % 2
        pri = np.argsort(rng.random((m, m)), axis=1).tolist()  # random order of candidates
        order = rng.permutation(m).tolist()
        taken = used[side]
        match = None
        if prev:
            adj = [
                [j for j in pri[i] if (i, j) not in taken and (i, j) not in prev] for i in range(m)
            ]
            match = _perfect_matching(adj, order, m)
        if match is None:
            adj = [[j for j in pri[i] if (i, j) not in taken] for i in range(m)]
            match = _perfect_matching(adj, order, m)
        if match is None:  # cannot happen while rounds <= limit (regular bipartite graph)
            raise RuntimeError("donor schedule construction failed")  # pragma: no cover
        edges = [(i, match[i]) for i in range(m)]
        taken.update(edges)
        # Reversing a pair is the same K_{m,m} edge, so the next round avoids these edges.
        prev = set(edges) if rules.no_repeat == "ordered" else set()
        if side == 0:
            pairs = [(halves[0][i], halves[1][j]) for i, j in edges]
        else:
            pairs = [(halves[1][j], halves[0][i]) for i, j in edges]
        schedule.append(sorted(pairs))
    return schedule


def _code_schedule(n: int, rounds: int, rng: np.random.Generator) -> list[list[tuple[int, int]]]:
    """The published notebook's schedule (protocols §1), first ``rounds`` rounds of it.

    A random split into halves A and B (``m = n/2`` each) and a random order of the ``m``
    cyclic shifts: round ``k < m`` pairs ``A[i]`` with ``B[(i + shift[k]) % m]``, A donating
    when ``k`` is even and B when odd, so the first ``m`` rounds meet every opposite-half
    pair once (a 1-factorisation of K_{m,m}); round ``m + k`` is round ``k`` with every pair
    reversed. The construction is ours from the protocol's description (halves, every
    opposite-half pair twice per game, once each way, ``m`` rounds apart, the same half
    donating in rounds ``m`` and ``m + 1`` when ``m`` is even). Deterministic given ``rng``.
    """
    m = n // 2
    perm = rng.permutation(n)
    a, b = perm[:m].tolist(), perm[m:].tolist()
    shifts = rng.permutation(m).tolist()
    first: list[list[tuple[int, int]]] = []
    for k, s in enumerate(shifts):
        pairs = [(a[i], b[(i + s) % m]) for i in range(m)]
        if k % 2:
            pairs = [(r, d) for d, r in pairs]
        first.append(sorted(pairs))
    return (first + reverse_schedule(first))[:rounds]


def reverse_schedule(
    schedule: Sequence[Sequence[tuple[int, int]]],
) -> list[list[tuple[int, int]]]:
    """The same rounds with every pair reversed (donor and recipient swap), sorted by donor.

    The code's schedule plays a generation's second game as the first game reversed.
    """
    return [sorted((int(r), int(d)) for d, r in rnd) for rnd in schedule]


def _check_schedule(
    n: int, rules: DonorRules, schedule: Sequence[Sequence[tuple[int, int]]]
) -> list[list[tuple[int, int]]]:
    if len(schedule) != rules.rounds:
        raise ValueError(f"schedule has {len(schedule)} rounds, rules.rounds is {rules.rounds}")
    out = []
    for r, pairs in enumerate(schedule):
        rnd = [(int(d), int(c)) for d, c in pairs]
        if sorted(a for p in rnd for a in p) != list(range(n)):
            raise ValueError(f"schedule round {r}: every agent 0..{n - 1} must be in one pair")
        out.append(rnd)
    return out


class InvalidAction(ValueError):
    """A donor's action breaks the rules (negative, more than held, forbidden punishment)."""


@dataclass(frozen=True)
class DonorAction:
    """What a donor does: give ``amount`` units, or with ``punish`` spend them punishing.

    Not validated on construction, so that a bad reply can still be represented and then
    passed to ``validate_action`` (raises) or ``clamp_action`` (repairs).
    """

    amount: float
    punish: bool = False


def validate_action(action: DonorAction, resources: float, rules: DonorRules) -> DonorAction:
    """Return ``action`` if legal for a donor holding ``resources``; raise otherwise.

    Legal: a finite amount in ``[0, resources]`` (an amount within 1e-9 above the holdings
    is taken as exactly the holdings, so "give everything" survives float round-off), and
    ``punish`` only when ``rules.punishment``. Never clamps: the runtime decides the
    fallback, e.g. with ``clamp_action``.

    Raises:
        InvalidAction: with a message saying what was wrong.
    """
    amount = action.amount
    if not _is_real(amount) or not math.isfinite(amount):
        raise InvalidAction(f"donation must be a finite number, got {amount!r}")
    if amount < 0:
        raise InvalidAction(f"donation must not be negative, got {amount!r}")
    if amount > resources + _EPS:
        raise InvalidAction(f"donation {amount!r} exceeds the donor's resources {resources!r}")
    if not isinstance(action.punish, bool):
        raise InvalidAction(f"punish must be a bool, got {action.punish!r}")
    if action.punish and not rules.punishment:
        raise InvalidAction("punishment is not allowed in this game")
    amount = min(float(amount), float(resources))
    return action if amount == action.amount else replace(action, amount=amount)


def clamp_action(
    action: DonorAction, resources: float, rules: DonorRules
) -> tuple[DonorAction, bool]:
    """Repair ``action`` into a legal one; return it with whether anything was changed.

    Negative or NaN amounts become 0, amounts above the holdings become the holdings
    (+inf included). A punishment where punishment is not allowed becomes a donation of 0
    rather than a donation of the same amount, since turning an intended harm into a gift
    would invert the agent's choice.
    """
    try:
        return validate_action(action, resources, rules), False
    except InvalidAction:
        pass
    punish = bool(action.punish) if isinstance(action.punish, bool | np.bool_) else False
    amount = action.amount
    if punish and not rules.punishment:
        return DonorAction(0.0, False), True
    if not _is_real(amount) or math.isnan(amount) or amount < 0:
        amount = 0.0
    amount = min(float(amount), float(resources))
    return DonorAction(amount, punish), True


@dataclass(frozen=True)
class TraceEntry:
    """One donor turn in a recipient's trace: ``donor`` gave (or punished) ``recipient``."""

    donor: int
    recipient: int
    round: int  # 1-based
    amount: float
    percent: float  # of what the donor held before giving, 0..100
    punished: bool


@dataclass(frozen=True)
class DonorEvent:
    """What happened in one donor→recipient pair of a round (round is 1-based).

    ``percent`` is ``amount`` as a percentage of the donor's holdings before giving (0 when
    it held nothing); ``fine`` is what a punishment actually removed from the recipient.
    """

    round: int
    donor: int
    recipient: int
    amount: float
    percent: float
    punished: bool
    fine: float
    donor_before: float
    donor_after: float
    recipient_before: float
    recipient_after: float

    def trace_entry(self) -> TraceEntry:
        """This event as a trace entry."""
        return TraceEntry(
            self.donor, self.recipient, self.round, self.amount, self.percent, self.punished
        )


@dataclass(frozen=True)
class DonorObservation:
    """What one donor is asked to decide on (round is 1-based, for display).

    ``recipient_trace[0]`` is the recipient's own last donor turn, ``[1]`` what that
    turn's recipient did in its previous donor turn, and so on. ``rules`` is there for
    prompting (multiplier, punishment ratio); prompts must not reveal ``rules.rounds``.
    """

    round: int
    donor: int
    recipient: int
    donor_resources: float
    recipient_resources: float
    recipient_trace: tuple[TraceEntry, ...]
    punishment_allowed: bool
    rules: DonorRules

    @property
    def multiplier(self) -> float:
        return self.rules.multiplier


class DonorGame:
    """The state of one donor game among ``n`` agents (indices ``0..n-1``).

    Play: ``pending()`` gives one observation per donor of the current round; ``apply`` takes
    the donors' actions in the same order and returns the round's events. All attributes
    are plain data, so the game pickles.
    """

    def __init__(
        self,
        n: int,
        rules: DonorRules,
        rng: np.random.Generator | None = None,
        *,
        schedule: Sequence[Sequence[tuple[int, int]]] | None = None,
    ) -> None:
        """Build the schedule from ``rng`` and give every agent ``rules.endowment``.

        ``schedule`` replaces the random construction (tests, replays, custom designs);
        it must have ``rules.rounds`` rounds with every agent in exactly one pair each,
        but is not checked for role alternation or repeats.
        """
        self.rules = rules
        if schedule is None:
            if rng is None:
                raise ValueError("DonorGame needs an rng or an explicit schedule")
            self.schedule = make_schedule(n, rules, rng)
        else:
            self.schedule = _check_schedule(n, rules, schedule)
        self.n = int(n)
        self.round = 0
        self.resources: list[float] = [float(rules.endowment)] * self.n
        self.history: list[DonorEvent] = []
        # Per agent, indices into history of its donor turns, in round order.
        self._given: list[list[int]] = [[] for _ in range(self.n)]

    @property
    def done(self) -> bool:
        """True once every round has been played."""
        return self.round >= self.rules.rounds

    def pairs(self) -> list[tuple[int, int]]:
        """The current round's (donor, recipient) pairs."""
        if self.done:
            raise RuntimeError("the donor game is over")
        return list(self.schedule[self.round])

    def trace(
        self, agent: int, depth: int | None = None, before_round: int | None = None
    ) -> list[TraceEntry]:
        """``agent``'s trace from the recorded history, most recent first.

        Entry 0 is ``agent``'s last donor turn before ``before_round`` (1-based; default:
        the next round to play); entry k+1 is the last donor turn of entry k's recipient
        before entry k's round. Stops at ``depth`` entries (default ``rules.trace_depth``)
        or earlier when someone in the chain has no earlier donor turn.
        """
        if depth is None:
            depth = self.rules.trace_depth
        before = self.round + 1 if before_round is None else before_round
        out: list[TraceEntry] = []
        who = agent
        while len(out) < depth:
            # The agent's turns are in round order: take the last one before `before`.
            last = next(
                (t for t in reversed(self._given[who]) if self.history[t].round < before), None
            )
            if last is None:
                break
            ev = self.history[last]
            out.append(ev.trace_entry())
            who, before = ev.recipient, ev.round
        return out

    def pending(self) -> list[DonorObservation]:
        """One observation per donor of the current round, in ``pairs()`` order."""
        rnd = self.round + 1
        return [
            DonorObservation(
                round=rnd,
                donor=d,
                recipient=r,
                donor_resources=self.resources[d],
                recipient_resources=self.resources[r],
                recipient_trace=tuple(self.trace(r)),
                punishment_allowed=self.rules.punishment,
                rules=self.rules,
            )
            for d, r in self.pairs()
        ]

    def apply(self, actions: Sequence[DonorAction]) -> list[DonorEvent]:
        """Apply all donors' actions of the round at once and advance to the next round.

        ``actions[k]`` belongs to ``pairs()[k]``. A gift of ``x`` costs the donor ``x`` and
        gives the recipient ``multiplier * x``; a punishment of ``x`` costs the donor ``x``
        and removes ``fine_per_unit * x`` from the recipient, floored at 0 (``fine`` records
        what was actually removed). Every action is validated before any is applied, so an
        invalid one leaves the game unchanged.

        Raises:
            InvalidAction: an action is illegal (see ``validate_action``).
            ValueError: wrong number of actions. RuntimeError: the game is over.
        """
        pairs = self.pairs()
        if len(actions) != len(pairs):
            raise ValueError(f"expected {len(pairs)} actions (one per donor), got {len(actions)}")
        checked = []
        for (d, _), a in zip(pairs, actions, strict=True):
            try:
                checked.append(validate_action(a, self.resources[d], self.rules))
            except InvalidAction as e:
                raise InvalidAction(f"round {self.round + 1}, donor {d}: {e}") from None
        rnd = self.round + 1
        before = list(self.resources)  # simultaneous: everything computed from before
        after = list(before)
        events = []
        for (d, r), a in zip(pairs, checked, strict=True):
            x = a.amount
            after[d] -= x
            fine = 0.0
            if a.punish:
                fine = min(before[r], self.rules.fine_per_unit * x)
                after[r] -= fine
            else:
                after[r] += self.rules.multiplier * x
            after[d] = max(after[d], 0.0)  # float round-off when giving everything
            after[r] = max(after[r], 0.0)
            pct = 100.0 * x / before[d] if before[d] > 0 else 0.0
            events.append(
                DonorEvent(
                    rnd, d, r, x, pct, a.punish, fine, before[d], after[d], before[r], after[r]
                )
            )
        self.resources = after
        for ev in events:
            self._given[ev.donor].append(len(self.history))
            self.history.append(ev)
        self.round += 1
        return events

    def state_dict(self) -> dict[str, Any]:
        """A JSON-friendly snapshot from which ``from_state`` rebuilds the same game."""
        return {
            "n": self.n,
            "rules": asdict(self.rules),
            "schedule": [[list(p) for p in rnd] for rnd in self.schedule],
            "round": self.round,
            "resources": list(self.resources),
            "history": [asdict(e) for e in self.history],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DonorGame:
        """Rebuild a game saved with ``state_dict``."""
        game = cls.__new__(cls)
        game.rules = DonorRules(**state["rules"])
        game.n = int(state["n"])
        game.schedule = [[(int(d), int(r)) for d, r in rnd] for rnd in state["schedule"]]
        game.round = int(state["round"])
        game.resources = [float(x) for x in state["resources"]]
        game.history = [DonorEvent(**e) for e in state["history"]]
        game._given = [[] for _ in range(game.n)]
        for k, ev in enumerate(game.history):
            game._given[ev.donor].append(k)
        return game


# -- the game protocol ------------------------------------------------------------------
class DonorKind(StrEnum):
    """Decision and event kinds of the donor game, as recorded in the run store."""

    DONATE = "donate"
    DONATION = "donation"
    PUNISHMENT = "punishment"
    RESOURCES = "resources"


@dataclass(frozen=True)
class DonationSpec(ActionSpec):
    """A donor's action: an amount in ``[0, resources]``, and ``punish`` when allowed."""

    resources: float
    rules: DonorRules
    field: str = "amount"

    def json_schema(self) -> dict[str, Any]:
        """The amount bounded by construction (``number_schema``: a digit pattern of the
        amounts from 0 to ``resources`` with up to 2 decimals, and ``resources`` itself)."""
        from games.protocol import number_schema

        props: dict[str, Any] = {"amount": number_schema(0, float(self.resources))}
        if self.rules.punishment:
            props["punish"] = {"type": "boolean"}
        return object_schema(props)

    def check(self, value: Any) -> DonorAction:
        if not isinstance(value, DonorAction):
            raise IllegalAction(f"expected a DonorAction, got {value!r}")
        try:
            return validate_action(value, self.resources, self.rules)
        except InvalidAction as exc:
            raise IllegalAction(str(exc)) from None

    def legalize(self, value: Any) -> tuple[DonorAction, bool]:
        if not isinstance(value, DonorAction):
            return DonorAction(0.0), True
        return clamp_action(value, self.resources, self.rules)


class DonorPlay(Game):
    """The donor games of one generation: ``games`` games of ``rules.rounds`` rounds each
    among the same ``n`` agents, resources and traces reset between games.

    Each step is one round of the current game: every donor of the round has a turn.
    Under the text's schedule every game draws a fresh schedule; under the code's
    (``rules.schedule == "code"``) the first game draws one and every later game replays
    it, reversed in the odd-numbered games (the second game is the first reversed, as in
    the authors' notebook).

    Options where the paper's text and the authors' code differ (protocols §1):

    - ``ask_when_empty``: a donor holding nothing can only give 0, so by default its turn
      is ``forced`` (the LLM is not asked); the code asks it anyway (``True``).
    - ``fitness``: ``"mean"`` (the text and the default: final resources averaged over the
      games), ``"last_game"`` (final resources of the last game only) or
      ``"twice_last_game"`` (the code's figure: 2 x the final resources of game 2, i.e.
      of the last game; a bug the authors' notebook has). Rank-based selection sees the
      same order under the last two; the scores shown to newcomers differ.
    """

    kind = "donor"

    FITNESS = ("mean", "last_game", "twice_last_game")

    def __init__(
        self,
        n: int,
        rules: DonorRules,
        games: int = 2,
        *,
        ask_when_empty: bool = False,
        fitness: Literal["mean", "last_game", "twice_last_game"] = "mean",
    ) -> None:
        if fitness not in self.FITNESS:
            raise ValueError(f"DonorPlay.fitness must be one of {self.FITNESS}, got {fitness!r}")
        self.n = n
        self.rules = rules
        self.games = games
        self.ask_when_empty = ask_when_empty
        self.fitness_rule = fitness
        self.game_no = 0
        self.game: DonorGame | None = None
        self.finals: list[list[float]] = []
        # The code's schedule: the first game's pairing, replayed (reversed) by later games.
        self.first_schedule: list[list[tuple[int, int]]] | None = None

    @property
    def done(self) -> bool:
        return self.game_no >= self.games

    def total_steps(self) -> int:
        return self.games * self.rules.rounds

    def position(self) -> Position:
        return Position(self.game_no, 0 if self.game is None else self.game.round)

    def pending(self, rng: np.random.Generator) -> list[Turn]:
        if self.game is None:
            replay = None
            if self.rules.schedule == "code" and self.first_schedule is not None:
                first = self.first_schedule
                replay = reverse_schedule(first) if self.game_no % 2 else first
            self.game = DonorGame(self.n, self.rules, rng, schedule=replay)
            if self.rules.schedule == "code" and self.first_schedule is None:
                self.first_schedule = self.game.schedule
        zero = DonorAction(0.0)
        turns = []
        for obs in self.game.pending():
            empty = obs.donor_resources <= 0
            spec = DonationSpec(obs.donor_resources, self.rules)
            turns.append(
                Turn(
                    obs.donor, obs.recipient, DonorKind.DONATE.value, obs, spec, zero,
                    self.game_no, forced=empty and not self.ask_when_empty,
                )
            )  # fmt: skip
        return turns

    def apply(
        self, turns: Sequence[Turn], actions: Sequence[Any], rng: np.random.Generator
    ) -> list[Event]:
        game = self.game
        assert game is not None, "pending() comes before apply()"
        rig = game.round
        out: list[Event] = []
        for ev in game.apply(actions):
            data: dict[str, Any] = {
                "percent": ev.percent,
                "donor_before": ev.donor_before,
                "donor_after": ev.donor_after,
                "recipient_before": ev.recipient_before,
                "recipient_after": ev.recipient_after,
                "game": self.game_no,
                "round_in_game": rig,
            }
            if ev.punished:
                data["fine"] = ev.fine
                kind = DonorKind.PUNISHMENT.value
            else:
                data["received"] = ev.recipient_after - ev.recipient_before
                kind = DonorKind.DONATION.value
            out.append(Event(kind, ev.donor, ev.recipient, None, ev.amount, data))
        where = {"game": self.game_no, "round_in_game": rig}
        for k, level in enumerate(game.resources):
            out.append(Event(DonorKind.RESOURCES.value, k, None, None, level, where))
        if game.done:
            self.finals.append(list(game.resources))
            self.game = None
            self.game_no += 1
        return out

    def record(self, turn: Turn, action: Any) -> tuple[str | None, float | None, Any]:
        have = turn.observation.donor_resources
        data: dict[str, Any] = {
            "amount": action.amount,
            "percent": 100.0 * action.amount / have if have > 0 else 0.0,
        }
        if self.rules.punishment:
            data["punish"] = action.punish
        return ("punish" if action.punish else "give"), action.amount, data

    def fitness(self) -> dict[int, tuple[float, dict[str, Any] | None]]:
        finals = np.array(self.finals)  # games x slots
        scale = 2.0 if self.fitness_rule == "twice_last_game" else 1.0
        return {
            k: (
                float(
                    finals[:, k].mean() if self.fitness_rule == "mean" else scale * finals[-1, k]
                ),
                {"finals": finals[:, k].tolist()},
            )
            for k in range(self.n)
        }

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "game_no": self.game_no,
            "game": None if self.game is None else self.game.state_dict(),
            "finals": self.finals,
        }
        if self.first_schedule is not None:
            state["first_schedule"] = [[list(p) for p in rnd] for rnd in self.first_schedule]
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        self.game_no = int(state["game_no"])
        self.game = None if state["game"] is None else DonorGame.from_state(state["game"])
        self.finals = [list(map(float, f)) for f in state["finals"]]
        first = state.get("first_schedule")
        self.first_schedule = (
            None if first is None else [[(int(d), int(r)) for d, r in rnd] for rnd in first]
        )
