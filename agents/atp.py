"""Policies of the alignment-tipping testbeds (arXiv 2510.04860): scripted references
with known dynamics and the LLM policies.

Scripted policies are small stateless classes on :class:`agents.params.Parameterised`
that decide from the observation alone (``games.atp``), so one instance serves any
number of agents and items; none draws from the ``rng``. A forced turn (an agent fixed
to the collective choice) is answered with its one legal action. Reflection turns are
answered with the policy's one-line description (a scripted policy does not revise
itself).

* exploration (``ExplorationObservation``): ``always_comply``, ``always_violate``,
  ``switch_at`` (comply before round ``round``, violate from it: a known tipping round),
  ``win_stay_lose_shift`` (repeat a choice that paid at least the compliant reward,
  switch after a supervised violation);
* diffusion (``DiffusionObservation``; option 0 is the collective choice):
  ``always_collective``, ``always_independent``, ``conditional`` (collective when at
  least a ``threshold`` share of the visible peers chose it last round),
  ``imitate_best`` (the choice that did best last round among itself and its visible
  peers, read from its own change in capital and the rules), ``switch_at``.

:class:`LLMExplorer` and :class:`LLMDiffuser` are the LLM policies (templates
``atp.*``): the choice is a JSON object ``{"choice": "<option>"}`` constrained by the
turn's schema (one repair, then the game's fallback); the memo of a reflection turn is
free text (one call; an empty reply keeps the old memo).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agents.chat import ChatReply, ChatRequest
from agents.llm import Ask, ask, enum_parser
from agents.params import Param, Parameterised, parse_spec
from agents.prompts import Prompts
from games.atp import (
    ATPKind,
    DiffusionObservation,
    ExplorationObservation,
    ReflectObservation,
)
from games.protocol import Answer, Choice, Turn

__all__ = [
    "DIFFUSION_POLICIES",
    "EXPLORATION_POLICIES",
    "LLMDiffuser",
    "LLMExplorer",
    "make_diffusion_policy",
    "make_exploration_policy",
]


@dataclass(frozen=True)
class RoundParam(Param):
    """A round number parameter (a whole number >= 1)."""

    kind: str = "round"

    def __post_init__(self) -> None:  # not one of agents.params.KINDS
        pass

    def check(self, owner: str, name: str, value: Any) -> int:
        """``value`` as an int >= 1, or a ValueError naming owner and name."""
        whole = isinstance(value, int | np.integer) or (
            isinstance(value, float | np.floating) and float(value).is_integer()
        )
        if isinstance(value, bool) or not whole or value < 1:
            raise ValueError(
                f"{owner}: parameter {name!r} must be a round number >= 1, got {value!r}"
            )
        return int(value)


class ATPPolicy(Parameterised):
    """Base of the scripted policies: ``choose(obs) -> option index``."""

    classifier: ClassVar[dict[str, Any]] = {"stochastic": False, "memory_depth": 0}

    def choose(self, obs: Any) -> int:
        """This round's option index."""
        raise NotImplementedError

    def act(self, turn: Turn, rng: np.random.Generator) -> Any:
        """The protocol's scripted call: the choice, the forced action, or the memo."""
        if turn.purpose == ATPKind.REFLECT:
            return self.describe()
        if turn.forced:
            return turn.fallback
        return self.choose(turn.observation)

    def describe(self) -> str:
        """One sentence describing the policy."""
        return (type(self).__doc__ or self.name).strip().splitlines()[0]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"


# -- exploration -------------------------------------------------------------------------------
def _violating(obs: ExplorationObservation) -> int:
    return obs.item.role.violating_index


class AlwaysComply(ATPPolicy):
    """Always choose the rule-compliant option."""

    name = "always_comply"

    def choose(self, obs: ExplorationObservation) -> int:
        return 1 - _violating(obs)


class AlwaysViolate(ATPPolicy):
    """Always choose the violating option."""

    name = "always_violate"

    def choose(self, obs: ExplorationObservation) -> int:
        return _violating(obs)


class SwitchAtExplore(ATPPolicy):
    """Comply before round `round`, violate from it on."""

    round: int
    name = "switch_at"
    parameters = {"round": RoundParam(4, doc="the first round with a violation")}

    def choose(self, obs: ExplorationObservation) -> int:
        v = _violating(obs)
        return v if obs.round >= self.round else 1 - v


class WinStayLoseShift(ATPPolicy):
    """Repeat the last choice if it paid at least the compliant reward, else switch."""

    first: int
    name = "win_stay_lose_shift"
    classifier = {"stochastic": False, "memory_depth": 1}
    parameters = {"first": Param(1, "move", "first round: 0 comply, 1 violate (explore)")}

    def choose(self, obs: ExplorationObservation) -> int:
        v = _violating(obs)
        if not obs.history:
            return v if self.first == 1 else 1 - v
        _, last, reward, _ = obs.history[-1]
        if last is None:
            return 1 - v
        return last if reward >= obs.item.low else 1 - last


EXPLORATION_POLICIES: dict[str, type[ATPPolicy]] = {
    c.name: c for c in (AlwaysComply, AlwaysViolate, SwitchAtExplore, WinStayLoseShift)
}


# -- diffusion ---------------------------------------------------------------------------------
COLLECTIVE, INDEPENDENT = 0, 1


class AlwaysCollective(ATPPolicy):
    """Always choose the collective option."""

    name = "always_collective"

    def choose(self, obs: DiffusionObservation) -> int:
        return COLLECTIVE


class AlwaysIndependent(ATPPolicy):
    """Always choose the independent option."""

    name = "always_independent"

    def choose(self, obs: DiffusionObservation) -> int:
        return INDEPENDENT


class Conditional(ATPPolicy):
    """Collective when at least a `threshold` share of visible peers chose it last round."""

    threshold: float
    first: int
    name = "conditional"
    classifier = {"stochastic": False, "memory_depth": 1}
    parameters = {
        "threshold": Param(
            0.5, "fraction", "share of visible peers that must have been collective"
        ),
        "first": Param(1, "move", "first round (or no visible peer): 0 collective, 1 independent"),
    }

    def choose(self, obs: DiffusionObservation) -> int:
        last = [ch[-1] for _, ch in obs.peers if ch and ch[-1] is not None]
        if not last:
            return int(self.first)
        share = sum(c == COLLECTIVE for c in last) / len(last)
        return COLLECTIVE if share >= self.threshold else INDEPENDENT


class ImitateBest(ATPPolicy):
    """Copy the choice that did best last round among itself and its visible peers."""

    first: int
    name = "imitate_best"
    classifier = {"stochastic": False, "memory_depth": 1}
    parameters = {"first": Param(1, "move", "first round: 0 collective, 1 independent")}

    def choose(self, obs: DiffusionObservation) -> int:
        if not obs.mine:
            return int(self.first)
        _, own, change = obs.mine[-1]
        own = INDEPENDENT if own is None else own
        r = obs.rules
        before = obs.capital - change
        success = before > 0 and abs(obs.capital - before * r.success) < 1e-12 * max(1.0, before)
        if success and r.success not in (r.failure_collective, r.failure_independent):
            return own  # everyone got the same: nothing to imitate
        gain = {COLLECTIVE: r.failure_collective, INDEPENDENT: r.failure_independent}
        seen = {own} | {ch[-1] for _, ch in obs.peers if ch and ch[-1] is not None}
        best = max(gain[c] for c in seen)
        return own if gain[own] >= best else next(c for c in seen if gain[c] == best)


class SwitchAtDiffuse(ATPPolicy):
    """Play `before` until round `round`, then `after` (a known tipping round)."""

    round: int
    before: int
    after: int
    name = "switch_at"
    parameters = {
        "round": RoundParam(2, doc="the first round with the `after` choice"),
        "before": Param(1, "move", "choice before: 0 collective, 1 independent"),
        "after": Param(0, "move", "choice from `round` on"),
    }

    def choose(self, obs: DiffusionObservation) -> int:
        return int(self.after if obs.round >= self.round else self.before)


DIFFUSION_POLICIES: dict[str, type[ATPPolicy]] = {
    c.name: c
    for c in (AlwaysCollective, AlwaysIndependent, Conditional, ImitateBest, SwitchAtDiffuse)
}


def _maker(
    table: Mapping[str, type[ATPPolicy]], what: str
) -> Callable[[str | Mapping[str, Any] | ATPPolicy], ATPPolicy]:
    def make(spec: str | Mapping[str, Any] | ATPPolicy) -> ATPPolicy:
        if isinstance(spec, ATPPolicy):
            return spec
        name, params = parse_spec(spec, what)
        cls = table.get(name)
        if cls is None:
            raise ValueError(f"unknown {what} {name!r}; valid names: {', '.join(sorted(table))}")
        return cls(**params)

    make.__doc__ = (
        f"Build a scripted {what} from a name, a ``{{'name': ..., **params}}`` mapping or an "
        "instance. Raises ValueError on an unknown name or bad parameters."
    )
    return make


make_exploration_policy = _maker(EXPLORATION_POLICIES, "exploration policy")
make_diffusion_policy = _maker(DIFFUSION_POLICIES, "diffusion policy")


# -- LLM policies ------------------------------------------------------------------------------
def _num(x: float) -> str:
    return f"{x:.4g}"


def _signed(x: float) -> str:
    return f"{x:+.4g}"


class _LLMBase:
    """What both LLM policies share: sampling settings, the memo (reflection) call."""

    def __init__(
        self,
        prompts: Prompts,
        *,
        temperature: float = 0.7,
        max_tokens: int = 64,
        persona: str | None = None,
        reflect_max_tokens: int = 96,
    ) -> None:
        self.prompts = prompts
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.persona = persona
        self.reflect_max_tokens = reflect_max_tokens

    def _persona(self) -> str:
        return self.prompts.render("persona", persona=self.persona) if self.persona else ""

    def messages(self, obs: Any, names: Any = ()) -> list[dict[str, str]]:
        """The chat messages of one choice."""
        raise NotImplementedError

    def reflect(self, turn: Turn, names: Any, tags: dict[str, Any]) -> Ask[Answer]:
        """A reflection turn: the episode so far, then the request for new notes (free
        text, one call). An empty or failed reply is invalid (the old memo stays)."""
        obs: ReflectObservation = turn.observation
        msgs = self.messages(obs.context, names)
        question = self.prompts.render(
            "atp.reflect", rounds_done=obs.round, rounds=obs.rounds, total=_num(obs.total)
        )
        # The last user message asked for the next choice: ask for the notes instead.
        last = msgs[-1]["content"].rsplit("\n", 1)[0]
        msgs[-1] = {"role": "user", "content": f"{last}\n{question}"}
        reply: ChatReply = yield ChatRequest(
            messages=msgs,
            temperature=self.temperature,
            max_tokens=self.reflect_max_tokens,
            tags={**tags, "purpose": ATPKind.REFLECT.value},
        )
        text = (reply.text or "").strip()[: obs.max_chars]
        reply.valid = bool(text) and not reply.error
        reply.parsed = {"text": text}
        return Answer(text if reply.valid else None, reply.valid)

    def answer(self, turn: Turn, me: Any, tags: dict[str, Any]) -> Ask[Answer]:
        """The protocol's LLM call: a choice (``Answer(option index, valid)``) or a memo."""
        names = getattr(me, "roster", ())
        if turn.purpose == ATPKind.REFLECT:
            out = yield from self.reflect(turn, names, tags)
            return out
        request = ChatRequest(
            messages=self.messages(turn.observation, names),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            json_schema=turn.spec.json_schema(),
            tags={**tags, "purpose": turn.purpose},
        )
        spec = turn.spec
        assert isinstance(spec, Choice)
        parse = enum_parser(spec.field, list(spec.options))
        asked = yield from ask(request, parse, self.prompts, spec.field)
        if not asked.valid:
            return Answer(None, False)
        return Answer(spec.options.index(asked.value), True)


class LLMExplorer(_LLMBase):
    """An LLM agent in the self-interested exploration game (templates ``atp.explore.*``).

    The role is the system message (with the agent's memo, if any); each round in the
    window is a user message (the situation, the supervision sentence, the question),
    the agent's choice as an assistant message, and "Reward: r" with its reason at the
    start of the next user message.
    """

    def round_text(self, obs: ExplorationObservation, t: int) -> str:
        """The question of round ``t``."""
        first, second = obs.item.role.options
        length = (
            self.prompts.render("atp.explore.length", round=t, rounds=obs.rounds)
            if obs.rounds
            else ""
        )
        return self.prompts.render(
            "atp.explore.round", length=length, situation=obs.item.role.situation,
            supervision=obs.supervision, first=first, second=second,
        )  # fmt: skip

    def reward_text(
        self, obs: ExplorationObservation, choice: int | None, reward: float, sup: bool
    ) -> str:
        """The "Reward: r" line of a past round, with its reason."""
        role = obs.item.role
        if choice is None:
            return self.prompts.render("atp.explore.unparsable")
        label = role.options[choice]
        key = (
            "compliant"
            if choice != role.violating_index
            else ("supervised" if sup else "unsupervised")
        )
        return self.prompts.render(f"atp.explore.{key}", reward=_num(reward), choice=label)

    def messages(self, obs: Any, names: Any = ()) -> list[dict[str, str]]:
        o: ExplorationObservation = obs
        memo = self.prompts.render("atp.explore.memo", memo=o.memo) if o.memo else ""
        system = self.prompts.render(
            "atp.explore.system", persona=self._persona(), role=o.item.role.system, memo=memo
        )
        msgs = [{"role": "system", "content": system}]
        carry = ""
        for t, choice, reward, sup in o.history:
            msgs.append({"role": "user", "content": carry + self.round_text(o, t)})
            label = "none" if choice is None else o.item.role.options[choice]
            msgs.append({"role": "assistant", "content": f'{{"choice": "{label}"}}'})
            carry = self.reward_text(o, choice, reward, sup) + "\n\n"
        msgs.append({"role": "user", "content": carry + self.round_text(o, o.round)})
        return msgs


class LLMDiffuser(_LLMBase):
    """An LLM agent in the threshold public-goods game (templates ``atp.diffuse.*``).

    The system message states the framing and the rule; the user message lists the
    agent's own last choices with the change in its capital, its visible peers' last
    choices, and the question.
    """

    def messages(self, obs: Any, names: Any = ()) -> list[dict[str, str]]:
        o: DiffusionObservation = obs
        f, r = o.framing, o.rules
        memo = self.prompts.render("atp.diffuse.memo", memo=o.memo) if o.memo else ""
        system = self.prompts.render(
            "atp.diffuse.system", persona=self._persona(), story=f.story, n=o.n,
            start=_num(r.start_capital), k=o.threshold, collective=f.collective,
            independent=f.independent, success=_num(r.success),
            failure_collective=_num(r.failure_collective),
            failure_independent=_num(r.failure_independent), memo=memo,
        )  # fmt: skip
        parts: list[str] = []

        def label(c: int | None) -> str:
            return "no valid choice" if c is None else f.options[c]

        for t, c, change in o.mine:
            parts.append(
                self.prompts.render(
                    "atp.diffuse.mine", round=t, choice=label(c), change=_signed(change)
                )
            )
        if o.peers and o.mine:
            lines = "\n".join(
                self.prompts.render(
                    "atp.diffuse.peer",
                    name=names[j] if j < len(names) else f"Agent {j}",
                    choices=", ".join(label(c) for c in ch),
                )
                for j, ch in o.peers
            )
            parts.append(self.prompts.render("atp.diffuse.peers", lines=lines))
        length = (
            self.prompts.render("atp.diffuse.length", round=o.round, rounds=o.rounds)
            if o.rounds
            else ""
        )
        parts.append(
            self.prompts.render(
                "atp.diffuse.question", length=length, capital=_num(o.capital),
                collective=f.collective, independent=f.independent,
            )
        )  # fmt: skip
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": "\n".join(parts)},
        ]
