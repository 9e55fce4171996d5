"""Out-of-order stepping: independent instances of a game, each at its own pace.

A game that declares independent instances (`Game.subgames`: the matches of a
tournament, the items of a testbed) is played twice over, in a sense. The *instances*
(sub-games) run ahead: each sends its next turns' requests as soon as its previous round
is applied, so against a server a match waits only for its own replies, never for the
slowest match. The *game* itself still steps in lockstep, one committed step at a time:
when every instance has finished step r, the engine plays step r of the game with the
LLM answers the instances already have (scripted turns answered as in lockstep, from
the run's generator), so the store, the checkpoints and resume are exactly lockstep's.

What makes this exact: an instance's turns depend on its own history only, its LLM
requests carry the seed lockstep derives (round, agent, partner, purpose), and nothing
in an instance draws randomness. The last is checked: the sub-games run with a probe
generator that must stay untouched. A scripted policy that draws (a random strategy)
cannot run ahead; the engine then finishes the game in lockstep.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from games.protocol import Answer, Game, Turn
from society.decide import Decider, Job

if TYPE_CHECKING:
    from society.engine import Engine


class NeedsLockstep(Exception):
    """An instance cannot run ahead (a scripted policy in it draws randomness)."""


@dataclass
class _Round:
    """One instance's open round: its turns, their actions, its LLM jobs."""

    step: int
    turns: list[Turn]
    actions: list[Any]
    jobs: list[Job] = field(default_factory=list)
    left: int = 0


class Ahead:
    """The instances of one game running ahead of its committed steps."""

    def __init__(self, engine: Engine, subs: dict[Hashable, Game], start: int, decider: Decider):
        self.engine = engine
        self.decider = decider
        self.subs = subs
        self.next_step = dict.fromkeys(subs, start)  # the step each instance plays next
        self.open: dict[Hashable, _Round] = {}
        self.ready: dict[int, dict[Hashable, list[Job]]] = {}  # step -> key -> LLM jobs
        self.probe = np.random.default_rng(0)
        self._probe_state = self.probe.bit_generator.state
        for key in subs:
            self._begin(key)

    # -- the instances ----------------------------------------------------------------------
    def _untouched(self, what: str) -> None:
        if self.probe.bit_generator.state != self._probe_state:
            self.probe.bit_generator.state = self._probe_state
            raise NeedsLockstep(what)

    def _begin(self, key: Hashable) -> None:
        """Open the instance's next rounds until one waits for an LLM (or it is over)."""
        eng, sub = self.engine, self.subs[key]
        while not sub.done:
            step = self.next_step[key]
            turns = sub.pending(self.probe)
            self._untouched(f"{type(sub).__name__}.pending")
            rnd = _Round(step, turns, [None] * len(turns))
            self.open[key] = rnd
            for i, turn in enumerate(turns):
                slot = turn.agent
                if not eng._is_llm[slot]:
                    action, _ = turn.spec.legalize(eng._policy[slot].act(turn, self.probe))
                    self._untouched(f"scripted policy {eng._policy[slot].name!r}")
                    rnd.actions[i] = action
                elif turn.forced:
                    rnd.actions[i] = turn.fallback
                else:
                    job = eng.llm_job(turn, step)
                    job.owner = (key, i, turn)
                    rnd.jobs.append(job)
                    if self.decider.start(job, step):
                        self._answer(rnd, job)
                    else:
                        rnd.left += 1
            if rnd.left:
                return
            self._close(key, rnd)

    def _answer(self, rnd: _Round, job: Job) -> None:
        _, i, _ = job.owner
        turn, answer = rnd.turns[i], job.result
        assert isinstance(answer, Answer)
        rnd.actions[i] = turn.spec.legalize(answer.action)[0] if answer.valid else turn.fallback

    def _close(self, key: Hashable, rnd: _Round) -> None:
        sub = self.subs[key]
        sub.apply(rnd.turns, rnd.actions, self.probe)
        self._untouched(f"{type(sub).__name__}.apply")
        self.ready.setdefault(rnd.step, {})[key] = rnd.jobs
        self.next_step[key] = rnd.step + 1
        del self.open[key]

    def _finished(self, job: Job) -> None:
        key, _, _ = job.owner
        rnd = self.open[key]
        self._answer(rnd, job)
        rnd.left -= 1
        if rnd.left == 0:
            self._close(key, rnd)
            self._begin(key)

    # -- the committed game's view -----------------------------------------------------------
    def wait_for(self, step: int) -> dict[Hashable, list[Job]]:
        """Pump replies until every instance has played ``step``; its LLM jobs by key."""
        subs, nxt = self.subs, self.next_step
        while any(nxt[k] <= step and not subs[k].done for k in subs):
            if not self.decider.busy():
                raise RuntimeError(f"out-of-order stepping: step {step} waits for nothing")
            for job in self.decider.poll():
                self._finished(job)
        return self.ready.pop(step, {})

    def match(
        self, game: Game, turns: list[Turn], jobs: list[tuple[int, Job]], step: int
    ) -> list[tuple[int, Job]]:
        """The instances' finished jobs in place of the step's own (same turns, in order)."""
        done = self.wait_for(step)
        taken = dict.fromkeys(done, 0)
        out = []
        for k, job in jobs:
            turn = turns[k]
            key = game.instance_key(turn)
            got = done.get(key, [])
            n = taken.get(key, 0)
            if n >= len(got):
                raise RuntimeError(f"out-of-order stepping: instance {key!r} lacks turn {k}")
            mine = got[n]
            taken[key] = n + 1
            sub_turn: Turn = mine.owner[2]
            if (mine.agent_id, sub_turn.partner, sub_turn.purpose) != (
                job.agent_id,
                turn.partner,
                turn.purpose,
            ):
                raise RuntimeError(
                    f"out-of-order stepping: instance {key!r} of {type(game).__name__} "
                    f"played another turn than the game at step {step}"
                )
            out.append((k, mine))
        extra = [key for key, got in done.items() if len(got) != taken.get(key, 0)]
        if extra:
            raise RuntimeError(f"out-of-order stepping: instance {extra[0]!r} has extra turns")
        return out
