"""Policies of the traveler's dilemma (Basu 1994; Capra, Goeree, Gomez & Holt 1999).

Scripted policies are small stateless classes on :class:`agents.params.Parameterised`:
each derives its claim from the observation alone (``games.travelers.TravelersObservation``:
the match's past claims and the rules), so one instance serves any number of agents.
Deterministic policies never touch the ``rng``; ``random`` draws exactly one integer per
claim. ``make_travelers_policy`` builds one from a spec (a name or a mapping).

:class:`LLMTraveler` is the LLM policy: the rules with every payoff case, the match so
far, and the question; the reply is a JSON object ``{"claim": N}`` constrained by the
turn's schema, parsed with one repair (``agents.llm.ask``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agents.chat import ChatRequest
from agents.llm import Ask, ask, spec_parser
from agents.params import Param, Parameterised, parse_spec
from agents.prompts import Prompts
from games.protocol import Answer, Turn
from games.travelers import TravelersObservation

__all__ = [
    "TRAVELERS_POLICIES",
    "AlwaysMax",
    "AlwaysMin",
    "BestResponse",
    "LLMTraveler",
    "RandomClaim",
    "TravelersPolicy",
    "make_travelers_policy",
    "travelers_policy_names",
]


@dataclass(frozen=True)
class ClaimParam(Param):
    """A claim-valued parameter: a whole number, or None for the rules' ``high``.

    Its range depends on the game's rules, which a policy does not know when it is
    built: a claim outside ``[low, high]`` is clamped by the turn's spec at play time
    (and the decision recorded as invalid).
    """

    kind: str = "claim"

    def __post_init__(self) -> None:  # not one of agents.params.KINDS
        pass

    def check(self, owner: str, name: str, value: Any) -> int | None:
        """``value`` as an int (or None), or a ValueError naming owner and name."""
        if value is None:
            return None
        whole = isinstance(value, int | np.integer) or (
            isinstance(value, float | np.floating) and float(value).is_integer()
        )
        if isinstance(value, bool) or not whole:
            raise ValueError(
                f"{owner}: parameter {name!r} must be a whole-number claim or null "
                f"(the game's high claim), got {value!r}"
            )
        return int(value)


class TravelersPolicy(Parameterised):
    """Base of scripted traveler's-dilemma policies: ``claim(obs, rng) -> int``."""

    classifier: ClassVar[dict[str, Any]] = {"stochastic": False, "memory_depth": 0}

    def claim(self, obs: TravelersObservation, rng: np.random.Generator) -> int:
        """This round's claim."""
        raise NotImplementedError

    def act(self, turn: Turn, rng: np.random.Generator) -> int:
        """The game protocol's scripted-policy call: this round's claim in a match."""
        return self.claim(turn.observation, rng)

    def describe(self) -> str:
        """One sentence describing the policy."""
        return (type(self).__doc__ or self.name).strip().splitlines()[0]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"


class AlwaysMax(TravelersPolicy):
    """Always claim the highest amount allowed (the cooperative claim)."""

    name = "always_max"

    def claim(self, obs: TravelersObservation, rng: np.random.Generator) -> int:
        return obs.rules.high


class AlwaysMin(TravelersPolicy):
    """Always claim the lowest amount allowed (the Nash equilibrium claim)."""

    name = "always_min"

    def claim(self, obs: TravelersObservation, rng: np.random.Generator) -> int:
        return obs.rules.low


class BestResponse(TravelersPolicy):
    """Claim one below the partner's last claim (at least low); `first` in round one."""

    first: int | None

    name = "best_response"
    classifier = {"stochastic": False, "memory_depth": 1}
    parameters = {"first": ClaimParam(None, doc="first-round claim (null: the high claim)")}

    def claim(self, obs: TravelersObservation, rng: np.random.Generator) -> int:
        if not obs.their_claims:
            return obs.rules.high if self.first is None else self.first
        return max(obs.rules.low, obs.their_claims[-1] - 1)


class RandomClaim(TravelersPolicy):
    """Claim a whole number drawn uniformly from [low, high] (one draw per claim)."""

    name = "random"
    classifier = {"stochastic": True, "memory_depth": 0}

    def claim(self, obs: TravelersObservation, rng: np.random.Generator) -> int:
        return int(rng.integers(obs.rules.low, obs.rules.high + 1))


TRAVELERS_POLICIES: dict[str, type[TravelersPolicy]] = {
    cls.name: cls for cls in (AlwaysMax, AlwaysMin, BestResponse, RandomClaim)
}


def travelers_policy_names() -> list[str]:
    """The registered scripted policies, sorted."""
    return sorted(TRAVELERS_POLICIES)


def make_travelers_policy(spec: str | Mapping[str, Any] | TravelersPolicy) -> TravelersPolicy:
    """Build a scripted policy from a name, a ``{"name": ..., **params}`` mapping or an
    instance (returned as is).

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or bad parameters.
    """
    if isinstance(spec, TravelersPolicy):
        return spec
    name, params = parse_spec(spec, "travelers' dilemma policy")
    cls = TRAVELERS_POLICIES.get(name)
    if cls is None:
        raise ValueError(
            f"unknown travelers' dilemma policy {name!r}; valid names: "
            f"{', '.join(travelers_policy_names())}"
        )
    return cls(**params)


# -- the LLM policy ---------------------------------------------------------------------------
def _points(x: float) -> str:
    return f"{x:g}"


class LLMTraveler:
    """An LLM player of the repeated traveler's dilemma (templates ``travelers.*``)."""

    def __init__(
        self,
        prompts: Prompts,
        *,
        temperature: float = 0.7,
        max_tokens: int = 64,
        persona: str | None = None,
    ) -> None:
        self.prompts = prompts
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.persona = persona

    def system_prompt(self, obs: TravelersObservation) -> str:
        """The rules: the claim range, the payoff rule with R, and the match length."""
        r = obs.rules
        length = self.prompts.render("travelers.length", rounds=obs.rounds) if obs.rounds else ""
        persona = self.prompts.render("persona", persona=self.persona) if self.persona else ""
        return self.prompts.render(
            "travelers.system",
            persona=persona,
            low=r.low,
            high=r.high,
            reward=_points(r.reward),
            length=length,
        )

    def history(self, obs: TravelersObservation) -> str:
        """One line per past round of the match."""
        return "\n".join(
            self.prompts.render(
                "travelers.history",
                round=k + 1,
                mine=mine,
                theirs=theirs,
                my_points=_points(points),
            )
            for k, (mine, theirs, points) in enumerate(
                zip(obs.my_claims, obs.their_claims, obs.my_payoffs, strict=True)
            )
        )

    def messages(self, obs: TravelersObservation) -> list[dict[str, str]]:
        """The chat messages of one claim: the rules, then the history and the question."""
        history = self.history(obs)
        question = self.prompts.render(
            "travelers.question", round=obs.round, low=obs.rules.low, high=obs.rules.high
        )
        user = f"{history}\n{question}" if history else question
        return [
            {"role": "system", "content": self.system_prompt(obs)},
            {"role": "user", "content": user},
        ]

    def answer(self, turn: Turn, me: Any, tags: dict[str, Any]) -> Ask[Answer]:
        """The protocol's LLM call for a claim turn: ``Answer(claim, valid)``."""
        obs: TravelersObservation = turn.observation
        field = turn.spec.field
        request = ChatRequest(
            messages=self.messages(obs),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            json_schema=turn.spec.json_schema(),
            tags={**tags, "purpose": turn.purpose},
        )
        asked = yield from ask(request, spec_parser(turn.spec), self.prompts, field)
        return Answer(asked.value, asked.valid)
