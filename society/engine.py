"""The one event loop: every game, every generation, one committed step at a time.

Each step the engine asks the game for its pending turns (all matches of a tournament,
all donors of a round), answers scripted turns at once, sends every LLM turn to its
backend through the `Decider` (one batch per backend), checks each action against its
turn's spec (an LLM reply still invalid after one repair gets the game's fallback),
hands the actions to the game and turns what happened into store rows.

Generations wrap any game that defines a fitness (as Axelrod's ``MoranProcess`` wraps
matches): when a generation's game is over, fitness is recorded, the evolution rule
(`society.evolution`) picks survivors and plans newcomers, and a fresh game starts.
Games whose plug-in asks for it begin each generation with a *strategy step*: new LLM
agents write their strategy text, scripted ones state theirs.

All randomness comes from one numpy Generator seeded by the scenario seed and held in
the state; the state is plain data (`get_state`), so a checkpoint is JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from operator import itemgetter, not_
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.llm import Advice
from agents.prompts import Prompts
from games.protocol import Answer, Event, Game, Turn
from society import checkpoint
from society.config import LLMGroup
from society.decide import Decider, Job
from society.errors import UserError
from society.evolution import Individual, make_evolution
from society.network import build_network
from society.out_of_order import Ahead, NeedsLockstep
from society.population import Member, Slot, agent_row, display_name, initial_slots
from society.records import AgentRow, DecisionRow, EventRow, LifeKind, Source
from society.registry import GameKind, Setup, game_kind

if TYPE_CHECKING:
    from society.scenario import Scenario
    from society.store import RunStore

# Plain text of the enums: rows go to SQLite at C speed only with exact str values.
_SCRIPTED, _LLM, _FALLBACK, _FORCED = (s.value for s in Source)
_STRATEGY, _FITNESS, _SURVIVOR = (k.value for k in LifeKind)
# Typed rows built at C speed from tuples of their fields.
_DECISION = partial(tuple.__new__, DecisionRow)
_EVENT = partial(tuple.__new__, EventRow)
# Turn.agent, .partner, .purpose, .spec and Event.data, read at C speed.
_AGENT, _PARTNER, _PURPOSE, _SPEC = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(4)
_DATA = itemgetter(5)
STATE_KEYS = ("rng", "step", "generation", "phase", "next_id", "slots", "game")


@dataclass
class StepRecord:
    """The rows one step produced."""

    round: int
    generation: int = 0
    game: int = 0
    round_in_game: int = 0
    decisions: list[DecisionRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    agents: list[AgentRow] = field(default_factory=list)


_JSON = json.JSONEncoder(separators=(",", ":")).encode  # built once: rows call it often


def _j(obj: Any) -> str | None:
    return None if obj is None else _JSON(obj)


class Engine:
    """A population playing one game (in generations), advanced one step at a time."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.kind: GameKind = game_kind(scenario.game.kind)
        kind = self.kind
        groups = list(scenario.population.groups)
        self.groups = groups
        n = sum(g.count for g in groups)
        try:
            prompts = Prompts(scenario.prompts, defaults=kind.prompts)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        graph = (
            build_network(scenario.network, n, scenario.seed) if "network" in kind.uses else None
        )
        self.setup = Setup(scenario, scenario.game, n, prompts, graph)
        try:
            if kind.check is not None:
                kind.check(self.setup)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        self.backends = [
            scenario.group_backend(g) if isinstance(g, LLMGroup) else None for g in groups
        ]
        self.llm = [kind.llm(self.setup, g) if isinstance(g, LLMGroup) else None for g in groups]
        self._scripted: dict[str, Any] = {}
        self.group_specs: list[dict[str, Any] | None] = []
        for g in groups:
            if isinstance(g, LLMGroup):
                self.group_specs.append(None)
                continue
            try:
                self.group_specs.append(self.scripted(g.strategy).spec())
            except (ValueError, ImportError) as exc:
                raise UserError(f"population.groups.{g.name}.strategy: {exc}") from None
        evo = scenario.evolution
        self.generations = evo.generations
        try:
            pool = [self.scripted(s).spec() for s in evo.mutation_pool]
        except (ValueError, ImportError) as exc:
            raise UserError(f"evolution.mutation_pool: {exc}") from None
        if evo.mutation > 0 and not pool:  # default: the scripted groups' policies, once each
            unique = {json.dumps(s, sort_keys=True): s for s in self.group_specs if s}
            pool = list(unique.values())
        try:
            self.evolution = make_evolution(
                selection=evo.selection, inheritance=evo.inheritance, survivors=evo.survivors,
                beta=evo.beta, mutation=evo.mutation, mutation_pool=pool,
            )  # fmt: skip
        except ValueError as exc:
            raise UserError(str(exc)) from None
        # Generations are recorded (fitness, survivors) when there is more than one, and
        # always for games with a strategy step (cultural evolution is their point).
        self.evolving = self.generations > 1 or kind.strategy_step
        # Out-of-order stepping (`run.stepping`): independent instances run ahead of the
        # committed step (`society.out_of_order`); None while none runs.
        self.out_of_order = scenario.run.stepping == "out_of_order"
        self._ahead: Ahead | None = None
        self._lockstep_game = False  # this game cannot run ahead: lockstep until its end
        # -- state (everything below is in get_state) --
        self.rng = np.random.default_rng(scenario.seed)
        self.step_no = 0
        self.generation = 0
        self.slots = initial_slots(groups)
        for s in self.slots:
            s.spec = self.group_specs[s.group]
        self.next_id = len(self.slots)
        self.phase = "strategy" if kind.strategy_step else "play"
        self.game: Game = kind.new_game(self.setup, self.rng)
        if self.evolving:
            self._check_evolvable()
        self._bind()

    def _check_evolvable(self) -> None:
        kind = self.kind
        if not kind.evolves or type(self.game).fitness is Game.fitness:
            raise UserError(f"evolution: the {kind.kind} game cannot evolve")
        if self.generations > 1 and not kind.strategy_step:
            llm = [g.name for g in self.groups if isinstance(g, LLMGroup)]
            if llm:
                raise UserError(
                    f"evolution: LLM group {llm[0]!r} cannot inherit in the {kind.kind} game "
                    "(its LLM agents write no strategy text); evolve scripted groups only"
                )

    # -- policies --------------------------------------------------------------------------
    def scripted(self, spec: Any) -> Any:
        """The (cached, stateless) scripted policy of a spec."""
        key = json.dumps(spec, sort_keys=True, default=str)
        if key not in self._scripted:
            self._scripted[key] = self.kind.scripted(spec)
        return self._scripted[key]

    def _bind(self) -> None:
        """Per slot: its policy and whether it is an LLM one (after any change of agents)."""
        self._policy = []
        self._is_llm = []
        for s in self.slots:
            llm = self.llm[s.group]
            self._is_llm.append(llm is not None)
            self._policy.append(llm if llm is not None else self.scripted(s.spec))
        # Scripted slots' act, bound once (LLM slots: None, never called on this path).
        self._act: list[Any] = [
            None if llm else p.act for p, llm in zip(self._policy, self._is_llm, strict=True)
        ]
        self._roster = [display_name(s.agent_id) for s in self.slots]
        self._ids = [s.agent_id for s in self.slots]
        self._births_at = max(s.born_round for s in self.slots)  # the step newcomers start
        self._any_llm = any(self._is_llm)
        self._identity = self._ids == list(range(len(self._ids)))
        self._slots_saved = False  # whether the checkpoint's 'slots' part is current

    def member(self, k: int) -> Member:
        """The agent in slot ``k`` as its LLM policy sees it."""
        s = self.slots[k]
        return Member(
            s.agent_id, k, s.name, self.groups[s.group], self.backends[s.group],
            display=self._roster[k], strategy=s.strategy, generation=s.generation,
            roster=self._roster,
        )  # fmt: skip

    # -- the loop's interface ----------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Whether the run is over."""
        return self.phase == "over"

    @property
    def total_steps(self) -> int | None:
        """Steps of the whole run when known in advance (progress bar)."""
        per_game = self.game.total_steps()
        if per_game is None:
            return None
        return self.generations * (per_game + (1 if self.kind.strategy_step else 0))

    def step(self, decider: Decider) -> StepRecord:
        """Play one step: a strategy step or a game step, then the generation's end if due."""
        if self.done:
            raise RuntimeError("the run is over")
        if self.phase == "strategy":
            rec = self._strategy_step(decider)
            self.phase = "play"
        else:
            rec = self._play_step(decider)
            if self.game.done:
                self._stop_ahead(decider)
                self._end_generation(rec)
        self.step_no += 1
        return rec

    # -- steps -----------------------------------------------------------------------------
    def _newborn_rows(self, rec: StepRecord, strategy_text: bool) -> None:
        g = self.generation
        for s in self.slots:
            if s.generation != g or s.born_round != rec.round:
                continue
            group = self.groups[s.group]
            if isinstance(group, LLMGroup):
                strategy = s.strategy if strategy_text else "llm"
            else:
                strategy = s.spec["name"] if s.spec else None
            rec.agents.append(agent_row(s, group, self.backends[s.group], strategy=strategy))

    def llm_job(self, turn: Turn, step: int) -> Job:
        """The job of an LLM slot's turn played at ``step`` (its tags fix its seeds)."""
        slot = turn[0]
        tags = {"agent": self._ids[slot], "round": step, "generation": self.generation}
        if turn.partner is not None:
            tags["partner"] = self._ids[turn.partner]
        me = self.member(slot)
        return Job.for_member(me, self._policy[slot].answer(turn, me, tags))

    def _start_ahead(self, decider: Decider) -> Ahead | None:
        """The running instances of this game, started at its first step (out-of-order)."""
        if self._ahead is None and self.out_of_order and self._any_llm and not self._lockstep_game:
            subs = self.game.subgames()
            if subs is None:
                self._lockstep_game = True
                return None
            try:
                self._ahead = Ahead(self, subs, self.step_no, decider)
            except NeedsLockstep:
                self._stop_ahead(decider, lockstep=True)
        return self._ahead

    def _stop_ahead(self, decider: Decider, *, lockstep: bool = False) -> None:
        if self._ahead is not None and decider.busy():
            decider.abandon()
        self._ahead = None
        self._lockstep_game = lockstep

    def _resolve(
        self, decider: Decider, jobs: list[tuple[int, Job]], turns: list[Turn], r: int
    ) -> list[tuple[int, Job]]:
        """Answer the step's LLM jobs: from the instances running ahead, else in lockstep."""
        ahead = self._ahead
        if ahead is not None:
            try:
                jobs = ahead.match(self.game, turns, jobs, r)
            except NeedsLockstep:
                self._stop_ahead(decider, lockstep=True)
            else:
                decider.commit([job for _, job in jobs], r)
                return jobs
        decider.run([job for _, job in jobs], r)
        return jobs

    def _play_step(self, decider: Decider) -> StepRecord:
        g, r = self.generation, self.step_no
        game, rng = self.game, self.rng
        ahead = self._start_ahead(decider)
        pos = game.position()
        rec = StepRecord(round=r, generation=g, game=pos.game, round_in_game=pos.round_in_game)
        if not self.kind.strategy_step and r == self._births_at:
            self._newborn_rows(rec, strategy_text=False)
        turns = game.pending(rng)
        n = len(turns)
        actions: list[Any] = [None] * n
        valid = [1] * n
        source = [_SCRIPTED] * n
        calls: list[int | None] = [None] * n
        extra: list[dict[str, Any] | None] = [None] * n
        jobs: list[tuple[int, Job]] = []
        policy, is_llm = self._policy, self._is_llm
        if not self._any_llm:  # a scripted population: one tight pass (the hot path)
            act = self._act  # bound once per binding: this runs for every scripted move
            acted = [act[t[0]](t, rng) for t in turns]
            if turns and len(set(map(id, map(_SPEC, turns)))) == 1:  # one spec: one pass
                actions, repaired = turns[0][4].legalize_all(acted)
            else:
                checked = [t[4].legalize(a) for t, a in zip(turns, acted, strict=True)]
                actions = [a for a, _ in checked]
                repaired = [c for _, c in checked]
            valid = list(map(int, map(not_, repaired)))
            turns_left: Sequence[Turn] = ()
        else:
            turns_left = turns
        for k, turn in enumerate(turns_left):
            slot, spec = turn[0], turn[4]  # (agent, spec): tuple indexing, the hot path
            if not is_llm[slot]:
                action, changed = spec.legalize(policy[slot].act(turn, rng))
                actions[k] = action
                if changed:
                    valid[k] = 0
            elif turn.forced:
                actions[k] = turn.fallback
                source[k] = _FORCED
            else:
                jobs.append((k, self.llm_job(turn, r)))
        if jobs:
            jobs = self._resolve(decider, jobs, turns, r)
            for k, job in jobs:
                answer: Answer = job.result
                calls[k] = job.last_call_id
                extra[k] = answer.data
                turn = turns[k]
                if answer.valid:
                    action, changed = turn.spec.legalize(answer.action)
                    actions[k] = action
                    if changed:
                        valid[k], source[k] = 0, _FALLBACK
                    else:
                        source[k] = _LLM
                else:
                    actions[k] = turn.fallback
                    valid[k], source[k] = 0, _FALLBACK
        elif ahead is not None and self._ahead is not None:
            ahead.wait_for(r)  # a step without LLM turns: the instances pass it too
        events = game.apply(turns, actions, rng)
        texts, values, datas = game.records(turns, actions)
        if jobs:  # what LLM policies add (e.g. a prediction, a reasoning) joins the data
            datas = list(datas)
            for k, _ in jobs:
                more = extra[k]
                if more:
                    datas[k] = {**(datas[k] or {}), **more}
        # Column by column, then rows at C speed (a tournament step has 10^5 decisions).
        rec.events.extend(self._event_rows(events, r, g))
        if not n:
            return rec
        slots, faced = list(map(_AGENT, turns)), list(map(_PARTNER, turns))
        purposes = list(map(_PURPOSE, turns))
        agents, partners = self._to_ids(slots), self._to_ids(faced)
        data_text = [None if d is None else _j(d) for d in datas] if any(datas) else datas
        rec.decisions = list(
            map(
                _DECISION,
                zip(
                    repeat(r, n),
                    repeat(g, n),
                    agents,
                    partners,
                    purposes,
                    texts,
                    values,
                    valid,
                    source,
                    calls,
                    data_text,
                    strict=True,
                ),  # fmt: skip
            )
        )
        return rec

    def _event_rows(self, events: Sequence[Event], r: int, g: int) -> list[EventRow]:
        if not events:
            return []
        if self._identity and list(map(_DATA, events)).count(None) == len(events):
            head = (r, g)  # an event's fields are a row's after (round, generation)
            return [_EVENT(head + e) for e in events]
        m = len(events)
        kinds, agents, partners, actions, values, datas = zip(*events, strict=True)
        return list(
            map(
                _EVENT,
                zip(
                    repeat(r, m),
                    repeat(g, m),
                    kinds,
                    self._to_ids(agents),
                    self._to_ids(partners),
                    actions,
                    values,
                    [None if d is None else _j(d) for d in datas] if any(datas) else datas,
                    strict=True,
                ),  # fmt: skip
            )
        )

    def _to_ids(self, slots: Sequence[int | None]) -> Sequence[int | None]:
        """Agent ids of slots (None stays None); slots are the ids until agents change."""
        if self._identity and None not in slots:
            return slots
        ids = self._ids
        return [None if k is None else ids[k] for k in slots]

    def _strategy_step(self, decider: Decider) -> StepRecord:
        """Every new agent states its strategy: LLM agents write it (one batch), scripted
        agents describe theirs; every living agent's strategy is recorded as an event."""
        g, r = self.generation, self.step_no
        pos = self.game.position()
        rec = StepRecord(round=r, generation=g, game=pos.game, round_in_game=-1)
        jobs: list[tuple[Slot, Job]] = []
        written: dict[int, tuple[str, int, str, int | None]] = {}  # agent: text, valid, src, call
        for k, slot in enumerate(self.slots):
            if slot.strategy is not None:
                continue  # survivors, and newcomers that copied a strategy
            policy = self.llm[slot.group]
            if policy is None:
                pol = self.scripted(slot.spec)
                text = pol.describe() if hasattr(pol, "describe") else pol.name
                slot.strategy, slot.valid = text, True
                written[slot.agent_id] = (text, 1, _SCRIPTED, None)
                continue
            advice = [Advice(name, text, score) for _, name, text, score in slot.advice or ()]
            tags = {"agent": slot.agent_id, "round": r, "generation": g}
            me = self.member(k)
            jobs.append((slot, Job.for_member(me, policy.state_strategy(me, advice or None, tags))))
        if jobs:
            decider.run([job for _, job in jobs], r)
            for slot, job in jobs:
                out: Answer = job.result
                slot.strategy, slot.valid = out.action, out.valid
                src = _LLM if out.valid else _FALLBACK
                written[slot.agent_id] = (out.action, int(out.valid), src, job.last_call_id)
        for slot in self.slots:
            aid = slot.agent_id
            if aid in written:
                text, ok, src, call_id = written[aid]
                rec.decisions.append(
                    DecisionRow(r, g, aid, None, _STRATEGY, text, None, ok, src, call_id, None)
                )
            data = {
                "born_generation": slot.generation,
                "parent_id": slot.parent_id,
                "group": self.groups[slot.group].name,
                "valid": bool(slot.valid),
                "new": slot.generation == g,
            }
            rec.events.append(EventRow(r, g, _STRATEGY, aid, None, slot.strategy, None, _j(data)))
            slot.advice = None
        self._newborn_rows(rec, strategy_text=True)
        self._slots_saved = False
        return rec

    # -- between generations -------------------------------------------------------------------
    def _end_generation(self, rec: StepRecord) -> None:
        g, r = self.generation, self.step_no
        last = g + 1 >= self.generations
        if not self.evolving:
            self.phase = "over"
            return
        fitness = self.game.fitness()
        population = []
        for k, s in enumerate(self.slots):
            value, detail = fitness.get(k, (0.0, None))
            group = self.groups[s.group].name
            rec.events.append(
                EventRow(
                    r, g, _FITNESS, s.agent_id, None, None, value,
                    _j({**(detail or {}), "group": group}),
                )
            )  # fmt: skip
            population.append(
                Individual(
                    slot=k, agent_id=s.agent_id, name=self._roster[k],
                    llm=self._is_llm[k], strategy=s.strategy or (s.spec or {}).get("name", ""),
                    spec=s.spec, fitness=value, valid=s.valid,
                )
            )  # fmt: skip
        outcome = self.evolution.next_generation(
            population, self.rng, default_spec=lambda k: self.group_specs[self.slots[k].group]
        )
        fit = {p.agent_id: p.fitness for p in population}
        by_id = {s.agent_id: s for s in self.slots}
        for rank, aid in enumerate(outcome.survivors):
            data = _j({"rank": rank, "group": self.groups[by_id[aid].group].name})
            rec.events.append(EventRow(r, g, _SURVIVOR, aid, None, None, fit[aid], data))
        if last:
            self.phase = "over"
            return
        for nc in outcome.newcomers:
            old = self.slots[nc.slot]
            aid = self.next_id
            self.next_id += 1
            slot = Slot(
                aid, old.group, f"{self.groups[old.group].name}-{aid}", generation=g + 1,
                parent_id=nc.parent_id, spec=self.group_specs[old.group],
                born_round=r + 1,
            )  # fmt: skip
            if self.llm[old.group] is None:
                if nc.spec is not None:
                    slot.spec = dict(nc.spec)
            elif nc.copy_text is not None:
                slot.strategy, slot.valid = nc.copy_text, nc.copy_valid
            elif nc.advice is not None:
                slot.advice = [[a.agent_id, a.name, a.strategy, a.fitness] for a in nc.advice]
            self.slots[nc.slot] = slot
        self.generation = g + 1
        self.game = self.kind.new_game(self.setup, self.rng)
        self.phase = "strategy" if self.kind.strategy_step else "play"
        self._bind()

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly from here, as plain data."""
        return {**self._state_but_slots(), "slots": [s.to_state() for s in self.slots]}

    def _state_but_slots(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "step": self.step_no,
            "generation": self.generation,
            "phase": self.phase,
            "next_id": self.next_id,
            "game": self.game.get_state(),
        }

    def checkpoint(self) -> dict[str, str]:
        """The checkpoint parts to write after this step (`society.checkpoint` texts).

        Part 'state' every step; part 'slots' only when the slots changed (strategy steps,
        a new generation, a restore): a large population is neither re-encoded nor
        rewritten every step.
        """
        parts = {"state": checkpoint.encode(self._state_but_slots())}
        if not self._slots_saved:
            parts["slots"] = checkpoint.encode({"slots": [s.to_state() for s in self.slots]})
            self._slots_saved = True
        return parts

    def restore_checkpoint(self, parts: dict[str, Any], where: str) -> None:
        """`set_state` from the checkpoint parts a store holds (decoded safely)."""
        state = checkpoint.decode(parts["state"], where)
        if "slots" in parts:
            state.update(checkpoint.decode(parts["slots"], where))
        self.set_state(state)

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state made by :meth:`get_state` (from a decoded checkpoint)."""
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise UserError(f"checkpoint: missing {missing[0]!r}; not a checkpoint of this game")
        try:
            self.rng.bit_generator.state = state["rng"]
            self.step_no = int(state["step"])
            self.generation = int(state["generation"])
            self.phase = str(state["phase"])
            self.next_id = int(state["next_id"])
            self.slots = [Slot(**s) for s in state["slots"]]
            self.game = self.kind.new_game(self.setup, np.random.default_rng(0))
            self.game.set_state(state["game"])
            self._ahead, self._lockstep_game = None, False
        except (TypeError, ValueError, KeyError) as exc:
            raise UserError(f"checkpoint: does not fit this scenario's game ({exc})") from None
        if self.phase not in ("strategy", "play", "over") or len(self.slots) != self.setup.n:
            raise UserError("checkpoint: does not fit this scenario's population")
        self._bind()

    def restore(self, store: RunStore) -> None:
        """After `set_state`: let the game rebuild what the committed events hold."""
        restore = getattr(self.game, "restore", None)
        if restore is None:
            return
        slot_of = {aid: k for k, aid in enumerate(self._ids)}
        rows = store.conn.execute(
            "SELECT round, kind, agent_id, partner_id, action, value FROM events"
            " WHERE generation = ? ORDER BY id",
            (self.generation,),
        ).fetchall()
        steps: dict[int, list[Event]] = {}
        for rnd, kind, a, b, action, value in rows:
            steps.setdefault(rnd, []).append(
                Event(kind, slot_of.get(a), slot_of.get(b), action, value)
            )
        restore(list(steps.values()))
