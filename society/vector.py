"""The vectorised scripted engine: every match of a repeated 2x2 game stepped at once.

A run qualifies when it is a repeated 2x2 game on fixed matches (round-robin or network
edges), one generation, every agent scripted with a strategy that is a first move plus
P(C | own last move, partner's last move) — tit for tat, win-stay lose-shift, generous
tit for tat, random, memory-one, always C / D, alternate, defect once — or one of the
two with a small finite state (grim trigger: whether the partner ever defected; tit for
two tats: the partner's last two moves). Then each step is a handful of numpy operations
over all matches, whatever their number, and the rows go to the same store as the generic
engine's (`society.engine`) through the same `RunStore.commit_round`.

The store is the generic engine's row for row, checkpoints included: random draws are
taken from the scenario's generator in the same order (a stochastic move draws one
uniform exactly when its probability is strictly between 0 and 1, seats in turn order;
then the noise flips, row players' then column players'), and numpy's bulk draws equal
the same number of single draws. So either engine can resume a run the other started.
``run.engine`` picks the engine: ``auto`` (this one when the run qualifies), ``generic``,
or ``vector`` (an error naming the reason when the run does not qualify).

Resume rebuilds the per-match state (last two moves, whether a D was ever played) from
the committed payoff events, as the generic engine rebuilds its histories.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from agents import strategies as st
from agents.prompts import Prompts
from games.repeated import MOVES, RepeatedGameRules, RepeatedKind
from society import checkpoint
from society.config import LLMGroup, ScriptedGroup
from society.engine import Engine, StepRecord
from society.errors import UserError
from society.matching import build_matcher
from society.network import build_network
from society.records import AgentRow, DecisionRow, EventRow, Source
from society.registry import Setup, game_kind

if TYPE_CHECKING:
    from society.scenario import Scenario
    from society.store import RunStore

_TABLE, _GRIM, _TF2T = 0, 1, 2  # how a program decides: its table, or a finite state
_MOVE, _PAYOFF = RepeatedKind.MOVE.value, RepeatedKind.PAYOFF.value
_SCRIPTED = Source.SCRIPTED.value
_CODES = np.array(MOVES, dtype=object)  # move index -> 'C' / 'D', at C speed


# -- strategies as programs ------------------------------------------------------------------
@dataclass(frozen=True)
class Program:
    """A scripted strategy as numbers: P(C) first, P(C | own last, partner's last), kind.

    ``table`` is indexed ``2 * own_last + partner_last`` (cc, cd, dc, dd) as in
    `agents.strategies.MemoryOne`; ``kind`` is _TABLE, _GRIM or _TF2T.
    """

    first: float
    table: tuple[float, float, float, float]
    kind: int = _TABLE


def _gtft(s: st.GenerousTitForTat, payoffs: Any) -> Program:
    g = s.generosity_for(payoffs)  # the game's generosity unless set: as `act` plays it
    return Program(1.0, (1.0, g, 1.0, g))


def _alternate(s: st.Alternate, payoffs: Any) -> Program:
    return Program(1.0 if s.start == st.C else 0.0, (0.0, 0.0, 1.0, 1.0))


def _memory_one(s: st.MemoryOne, payoffs: Any) -> Program:
    return Program(s.p_first, (s.p_cc, s.p_cd, s.p_dc, s.p_dd))


_ALL_C = Program(1.0, (1.0, 1.0, 1.0, 1.0))
_ALL_D = Program(0.0, (0.0, 0.0, 0.0, 0.0))
_TFT_TABLE = (1.0, 0.0, 1.0, 0.0)
#: Strategy class -> its program (given the instance and the player's own-view payoffs).
COMPILERS: dict[type[st.Strategy], Any] = {
    st.AlwaysCooperate: lambda s, p: _ALL_C,
    st.AlwaysA: lambda s, p: _ALL_C,
    st.AlwaysDefect: lambda s, p: _ALL_D,
    st.AlwaysB: lambda s, p: _ALL_D,
    st.TitForTat: lambda s, p: Program(1.0, _TFT_TABLE),
    st.SuspiciousTitForTat: lambda s, p: Program(0.0, _TFT_TABLE),
    st.WinStayLoseShift: lambda s, p: Program(1.0, (1.0, 0.0, 0.0, 1.0)),
    st.DefectOnce: lambda s, p: Program(0.0, (1.0, 1.0, 1.0, 1.0)),
    st.Random: lambda s, p: Program(s.p, (s.p,) * 4),
    st.GrimTrigger: lambda s, p: Program(1.0, _TFT_TABLE, _GRIM),
    st.TitForTwoTats: lambda s, p: Program(1.0, _TFT_TABLE, _TF2T),
    st.GenerousTitForTat: _gtft,
    st.Alternate: _alternate,
    st.AlternateB: _alternate,
    st.MemoryOne: _memory_one,
}


def compile_strategy(strategy: st.Strategy, payoffs: Any) -> Program | None:
    """The program of a strategy as one player of a game (own-view ``payoffs``), or None
    when it is not vectorisable (e.g. an ``axelrod:`` strategy)."""
    build = COMPILERS.get(type(strategy))
    return None if build is None else build(strategy, payoffs)


# -- qualification -----------------------------------------------------------------------------
def disqualified(scenario: Scenario) -> str | None:
    """Why the vectorised engine cannot play this scenario (None: it can)."""
    if scenario.game.kind != "repeated_2x2":
        return f"game.kind is {scenario.game.kind!r}, not repeated_2x2"
    cfg: Any = scenario.game
    if cfg.game_set is not None:
        return "game.game_set sweeps several stage games"
    if cfg.shuffle_options:
        return "game.shuffle_options is on"
    if scenario.evolution.generations != 1:
        return "evolution.generations is more than 1"
    if scenario.matching.kind == "random":
        return "matching.kind is random (pairs change every round)"
    for g in scenario.population.groups:
        if isinstance(g, LLMGroup):
            return f"population group {g.name!r} is an LLM group"
        name = g.strategy if isinstance(g.strategy, str) else str(g.strategy.get("name"))
        if name.startswith(st.AXELROD_PREFIX):  # refused unbuilt: importing axelrod is slow
            return f"population group {g.name!r} plays {name!r}, which is not vectorisable"
        try:
            strategy = st.make_strategy(g.strategy)
        except (ValueError, ImportError, TypeError):
            return f"population group {g.name!r} has a strategy the engine cannot parse"
        if type(strategy) not in COMPILERS:
            return f"population group {g.name!r} plays {strategy.name!r}, which is not vectorisable"
    return None


def chosen(scenario: Scenario) -> bool:
    """Whether ``run.engine`` sends this scenario to the vectorised engine.

    ``auto``: when it qualifies; ``vector``: always (a `UserError` naming the reason when it
    does not qualify); ``generic``: never.
    """
    run = getattr(scenario, "run", None)
    engine = getattr(run, "engine", "auto")
    if engine == "generic":
        return False
    why = disqualified(scenario)
    if engine == "vector" and why is not None:
        raise UserError(f"run.engine: vector needs a scripted repeated 2x2 run, but {why}")
    return why is None


# -- the engine --------------------------------------------------------------------------------
class VectorEngine:
    """All matches of a qualifying scenario as arrays; one `step` plays one round of each.

    Arrays are per *seat*: seat ``2k`` is match ``k``'s row player, ``2k + 1`` its column
    player, which is the generic engine's turn order.
    """

    def __init__(self, scenario: Scenario) -> None:
        why = disqualified(scenario)
        if why is not None:
            raise UserError(f"run.engine: vector needs a scripted repeated 2x2 run, but {why}")
        self.scenario = scenario
        self.kind = kind = game_kind(scenario.game.kind)
        groups = list(scenario.population.groups)
        self.groups = groups
        n = self.n = sum(g.count for g in groups)
        try:
            prompts = Prompts(scenario.prompts, defaults=kind.prompts)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        graph = build_network(scenario.network, n, scenario.seed)
        self.setup = Setup(scenario, scenario.game, n, prompts, graph)
        try:
            assert kind.check is not None
            kind.check(self.setup)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        rules: RepeatedGameRules = self.setup.cache["rules"][0]
        self.rules = rules
        self.specs: list[dict[str, Any]] = []
        strategies = []
        for g in groups:
            assert isinstance(g, ScriptedGroup)  # `disqualified` checked it
            try:
                s = st.make_strategy(g.strategy)
            except (ValueError, ImportError) as exc:
                raise UserError(f"population.groups.{g.name}.strategy: {exc}") from None
            strategies.append(s)
            self.specs.append(s.spec())
        matcher = build_matcher(scenario.matching, graph)
        pairs = np.array(matcher.pairs(0, np.random.default_rng(0)), dtype=np.int64)
        del graph, matcher
        self.setup.graph = None  # the arrays below are all that is needed from here on
        pairs = pairs.reshape(-1, 2)
        self.m = m = len(pairs)
        if m == 0:
            raise UserError("run.engine: vector needs at least one match (no pairs to play)")
        # Programs: distinct (strategy, side) compilations; per seat an index into them.
        views = (rules.game.payoffs, rules.game.for_player(1).payoffs)
        programs: list[Program] = []
        index: dict[Program, int] = {}
        group_of = np.repeat(np.arange(len(groups)), [g.count for g in groups])
        prog_of = np.empty((len(groups), 2), dtype=np.int64)
        for gi, s in enumerate(strategies):
            for side in (0, 1):
                prog = compile_strategy(s, views[side])
                assert prog is not None  # `disqualified` checked it
                prog_of[gi, side] = index.setdefault(prog, len(programs))
                if len(programs) < len(index):
                    programs.append(prog)
        seat_agent = pairs.reshape(-1)  # seat order: (i, j) of match 0, then match 1, ...
        seat_partner = pairs[:, ::-1].reshape(-1)
        seat_prog = prog_of[group_of[seat_agent], np.tile([0, 1], m)]
        self.first = np.array([p.first for p in programs])[seat_prog]
        tables = np.array([p.table for p in programs])  # (programs, 4)
        self.table_flat = tables.reshape(-1)
        self.seat_base = seat_prog * 4  # + state: the seat's entry in `table_flat`
        kinds = np.array([p.kind for p in programs])[seat_prog]
        self.grim = np.flatnonzero(kinds == _GRIM)
        self.tf2t = np.flatnonzero(kinds == _TF2T)
        self.deterministic = all(p.first in (0.0, 1.0) for p in programs) and bool(
            np.isin(tables, (0.0, 1.0)).all()
        )
        self.seat_agent, self.seat_partner = seat_agent, seat_partner
        self._agents_list = seat_agent.tolist()
        self._partners_list = seat_partner.tolist()
        pay = rules.game.as_matrix()  # [a, b, player]
        self.pay_row = pay[:, :, 0].reshape(-1)  # index 2a + b
        self.pay_col = pay[:, :, 1].reshape(-1)
        # -- state (checkpointed: rng, step; the rest rebuilt from the events) --
        self.rng = np.random.default_rng(scenario.seed)
        c = rules.continuation
        if c is None or c >= 1.0:
            self.lengths: np.ndarray | None = None
            self.total = rules.rounds
        else:  # one geometric draw per match, in match order: as `RepeatedGame._open`
            self.lengths = np.minimum(self.rng.geometric(1.0 - c, size=m), rules.rounds)
            self.total = int(self.lengths.max())
        self._pairs_list = pairs.tolist()
        self.step_no = 0
        self.last = np.zeros(2 * m, dtype=np.int8)  # each seat's own last played move
        self.prev = np.zeros(2 * m, dtype=np.int8)  # ... and the one before
        self.ever = np.zeros(2 * m, dtype=bool)  # whether the seat ever played D
        self._slots_saved = False
        self._restored = 0

    @property
    def done(self) -> bool:
        """Whether every match is over."""
        return self.step_no >= self.total

    def active(self, r: int) -> np.ndarray | None:
        """Seats still playing in round ``r`` (None: all of them)."""
        if self.lengths is None or r < int(self.lengths.min()):
            return None
        return np.flatnonzero(np.repeat(self.lengths > r, 2))

    def intended(self, seats: np.ndarray | None) -> np.ndarray:
        """This round's intended moves of the seats (all: None), drawing as strategies do."""
        r = self.step_no
        last = self.last if seats is None else self.last[seats]
        if r == 0:
            p = self.first if seats is None else self.first[seats]
        else:
            theirs = last.reshape(-1, 2)[:, ::-1].reshape(-1)  # the partner's last move
            base = self.seat_base if seats is None else self.seat_base[seats]
            p = self.table_flat[base + 2 * last + theirs]
            if len(self.grim) or len(self.tf2t):
                p = p.copy()
                ever = self.ever if seats is None else self.ever[seats]
                prev = self.prev if seats is None else self.prev[seats]
                their_ever = ever.reshape(-1, 2)[:, ::-1].reshape(-1)
                their_prev = prev.reshape(-1, 2)[:, ::-1].reshape(-1)
                for _kind, at, rule in (
                    (_GRIM, self.grim, their_ever),
                    (_TF2T, self.tf2t, (theirs & their_prev).astype(bool)),
                ):
                    if not len(at):
                        continue
                    where = at if seats is None else np.flatnonzero(np.isin(seats, at))
                    p[where] = np.where(rule[where], 0.0, 1.0)
        moves = (p < 1.0).astype(np.int8)  # p >= 1: C; p <= 0: D (no draw, as `_draw`)
        if not self.deterministic:
            need = np.flatnonzero((p > 0.0) & (p < 1.0))  # ascending: the turn order
            if len(need):
                u = self.rng.random(len(need))
                moves[need] = (u >= p[need]).astype(np.int8)
        return moves

    @property
    def total_steps(self) -> int:
        """Steps of the whole run (the longest match)."""
        return self.total

    def _advance(self, seats: np.ndarray | None, played: np.ndarray) -> None:
        """Record a round's played moves of the seats (all: None)."""
        if seats is None:
            self.prev, self.last = self.last, played
            self.ever |= played.astype(bool)
        else:
            self.prev[seats] = self.last[seats]
            self.last[seats] = played
            self.ever[seats] |= played.astype(bool)

    def step(self, decider: Any = None) -> StepRecord:
        """Play one round of every running match: the step's rows (the runner's call;
        ``decider`` is unused: no agent here asks an LLM)."""
        if self.done:
            raise RuntimeError("the run is over")
        r = self.step_no
        seats = self.active(r)
        moves = self.intended(seats)
        played = moves
        noise = self.rules.noise
        if noise:  # the same draws as `RepeatedGame.apply`: row players' flips, then columns'
            half = len(moves) // 2
            flips = np.empty(len(moves), dtype=bool)
            flips[0::2] = self.rng.random(half) < noise
            flips[1::2] = self.rng.random(half) < noise
            played = moves ^ flips.astype(np.int8)
        pair = played.reshape(-1, 2)
        cell = 2 * pair[:, 0] + pair[:, 1]
        payoff = np.empty(len(moves))
        payoff[0::2] = self.pay_row[cell]
        payoff[1::2] = self.pay_col[cell]
        self._advance(seats, played)
        if seats is None:
            agents, partners = self._agents_list, self._partners_list
        else:
            agents = self.seat_agent[seats].tolist()
            partners = self.seat_partner[seats].tolist()
        k = len(moves)
        rec = StepRecord(round=r, generation=0, game=0, round_in_game=r)
        if r == 0:
            rec.agents = cast("list[AgentRow]", self.agent_rows())
        # Rows as plain tuples zipped at C speed from columns (10^6 of them a step); the
        # store binds them as it binds the generic engine's named tuples.
        decisions = zip(
            repeat(r, k), repeat(0, k), agents, partners, repeat(_MOVE, k),
            _CODES[moves].tolist(), moves.tolist(), repeat(1, k), repeat(_SCRIPTED, k),
            repeat(None, k), repeat(None, k), strict=True,
        )  # fmt: skip
        events = zip(
            repeat(r, k), repeat(0, k), repeat(_PAYOFF, k), agents, partners,
            _CODES[played].tolist(), payoff.tolist(), repeat(None, k), strict=True,
        )  # fmt: skip
        rec.decisions = cast("list[DecisionRow]", list(decisions))
        rec.events = cast("list[EventRow]", list(events))
        self.step_no += 1
        return rec

    # -- rows and state ------------------------------------------------------------------
    def agent_rows(self) -> list[tuple]:
        """The `agents` rows of generation 0 (as `society.population.agent_row` writes)."""
        rows: list[tuple] = []
        aid = 0
        for g, spec in zip(self.groups, self.specs, strict=True):
            rest = {k: v for k, v in spec.items() if k != "name"}
            params = json.dumps(rest) if rest else None
            name = spec["name"]
            for k in range(g.count):
                rows.append(
                    (aid, f"{g.name}-{k}", g.name, g.kind, name, params, None, None, None, 0,
                     None, 0)
                )  # fmt: skip
                aid += 1
        return rows

    def _slots_text(self) -> str:
        """Checkpoint part 'slots', text for text as `checkpoint.encode` writes it."""
        enc = json.JSONEncoder(separators=(",", ":")).encode
        parts = []
        aid = 0
        for gi, (g, spec) in enumerate(zip(self.groups, self.specs, strict=True)):
            head = enc(g.name)[:-1]  # the quoted group name, closing quote left off
            tail = f',"generation":0,"parent_id":null,"spec":{enc(spec)},"strategy":null,'
            tail += '"valid":true,"advice":null,"born_round":0}'
            for k in range(g.count):
                parts.append(f'{{"agent_id":{aid},"group":{gi},"name":{head}-{k}"{tail}')
                aid += 1
        doc = enc({"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "state": {}})
        return doc[:-3] + '{"slots":[' + ",".join(parts) + "]}}"

    def checkpoint(self) -> dict[str, str]:
        """The checkpoint parts after this step, the generic engine's format."""
        lengths = None
        if self.lengths is not None:
            lengths = [
                [i, j, n] for (i, j), n in zip(self._pairs_list, self.lengths.tolist(), strict=True)
            ]
        state = {
            "rng": self.rng.bit_generator.state,
            "step": self.step_no,
            "generation": 0,
            "phase": "over" if self.done else "play",
            "next_id": self.n,
            "game": {"round": self.step_no, "lengths": lengths},
        }
        parts = {"state": checkpoint.encode(state)}
        if not self._slots_saved:
            parts["slots"] = self._slots_text()
            self._slots_saved = True
        return parts

    def restore_checkpoint(self, parts: dict[str, Any], where: str) -> None:
        """Take the random generator, the step and the match lengths from checkpoint parts
        (the generic engine's format; decoded safely, nothing executed)."""
        state = checkpoint.decode(parts["state"], where)
        if "slots" in parts:  # every part is checked (never unpickled), as the generic engine
            slots = checkpoint.decode(parts["slots"], where).get("slots")
            if not isinstance(slots, list) or len(slots) != self.n:
                raise UserError("checkpoint: does not fit this scenario's population")
        try:
            rng = state["rng"]
            steps = int(state["step"])
            lengths = state["game"]["lengths"]
            fits = int(state["generation"]) == 0 and int(state["next_id"]) == self.n
        except (TypeError, ValueError, KeyError) as exc:
            raise UserError(f"checkpoint: does not fit this scenario's game ({exc})") from None
        if not fits or not 0 <= steps <= self.total:
            raise UserError("checkpoint: does not fit this scenario's population")
        if lengths is not None:
            if len(lengths) != self.m:
                raise UserError("checkpoint: does not fit this scenario's matches")
            self.lengths = np.array([int(k) for _, _, k in lengths])
            self.total = int(self.lengths.max())
        try:
            self.rng.bit_generator.state = rng
        except (TypeError, ValueError, KeyError) as exc:
            raise UserError(f"checkpoint: does not fit this scenario's game ({exc})") from None
        self._restored = steps
        self._slots_saved = "slots" in parts

    def restore(self, store: RunStore) -> None:
        """After `restore_checkpoint`: the per-match state from the committed payoff events
        (the last two moves of every seat, whether it ever played D)."""
        steps = self._restored
        cur = store.conn.execute(
            "SELECT action FROM events WHERE kind = ? AND generation = 0 ORDER BY id", (_PAYOFF,)
        )
        for r in range(steps):
            seats = self.active(r)
            k = 2 * self.m if seats is None else len(seats)
            rows = cur.fetchmany(k)
            if len(rows) != k:
                raise UserError(f"{store.path}: the events of step {r} do not fit the checkpoint")
            played = np.array([a == "D" for (a,) in rows], dtype=np.int8)
            self._advance(seats, played)
        self.step_no = steps


# -- the runner's entry -------------------------------------------------------------------
def make_engine(scenario: Scenario) -> Engine:
    """The engine `society.runner` steps: this one when ``run.engine`` chooses it, else
    the generic `Engine`. Both offer what the runner calls (``step``, ``checkpoint``,
    ``restore_checkpoint``, ``restore``, ``done``, ``total_steps``, ``kind``, ``setup``)."""
    if chosen(scenario):
        return cast(Engine, VectorEngine(scenario))  # the runner's interface, duck-typed
    return Engine(scenario)
