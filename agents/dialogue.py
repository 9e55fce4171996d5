"""Policies of the drift dialogue (after Dongre et al. 2025, "Drift No More? Context
Equilibria in Multi-Turn LLM Interactions", arXiv 2510.07777).

Scripted policies are the ground truth of the testbed:

* ``scripted_user``: a user simulator that asks about the task, and with probability
  ``off_topic`` about something else (one draw per turn from the loop's generator);
* ``goal_reference``: a reference whose next-token distribution is the fixed
  :data:`REFERENCE_DIST` at every turn;
* ``synthetic_drift``: a test agent whose divergence from that reference follows a known
  process, D_t = D_{t-1} + (1 - exp(-1/tau))·(D* - D_{t-1}) - relief·[reminder at t]
  + noise·ε_t (ε standard normal), clipped to [0, :data:`MAX_DRIFT`]. Without reminders
  its equilibrium is ``d_star`` (the noise-free path is D* (1 - exp(-t/tau)) from D_0 =
  0); each reminder lowers D by ``relief``, which lowers the fitted D*. It builds its
  distribution q_t = (1 - λ)·p + λ·(a point mass on the reference's rarest token) with λ
  solved (``scipy.optimize.brentq``) so that KL(q_t || p) = D_t exactly on the shared
  support, so the game's top-k KL measures exactly the process.

:class:`LLMDialogue` is the LLM policy of every role: the test agent (the goal in its
system prompt, reminders prepended to the user message that follows them), the
reference (the same messages with the goal restated before the last user message) and
the user simulator (the conversation seen from the other side). Replies are free text;
the test agent and the reference ask for ``top_k`` log-probabilities per token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agents.chat import ChatReply, ChatRequest
from agents.llm import Ask
from agents.params import Param, Parameterised, parse_spec
from agents.prompts import COMMON, DEFAULTS, Prompts
from games.dialogue import DialogueObservation
from games.protocol import Answer, Turn

__all__ = [
    "DIALOGUE_POLICIES",
    "DIALOGUE_PROMPTS",
    "GoalReference",
    "LLMDialogue",
    "MAX_DRIFT",
    "REFERENCE_DIST",
    "ScriptedUser",
    "SyntheticDrift",
    "make_dialogue_policy",
    "mixture_for_kl",
]

#: Templates of the dialogue (``dialogue.*``), written for this project.
DIALOGUE_PROMPTS: dict[str, str] = {
    "dialogue.system": (
        "{persona}Your task in this conversation: {task} Stay with this task and this "
        "persona for the whole conversation. Answer in a few sentences."
    ),
    "dialogue.persona": "You are {persona}. ",
    "dialogue.reminder": "(Reminder of your task: {task} Keep to it and to your persona.)",
    "dialogue.restate": "(Your task: {task} You are {persona}. Keep to them.)",
    "dialogue.user_system": (
        "You play a user who talks with an assistant. {user} Write only the user's next "
        "message, one or two sentences, nothing else."
    ),
    "dialogue.user_start": "Write your first message to the assistant.",
}

#: The scripted reference's next-token distribution (probabilities; the rarest token
#: bounds the divergence a mixture can reach).
REFERENCE_DIST: dict[str, float] = {"the": 0.5, "a": 0.25, "to": 0.15, "of": 0.0999, "zq": 0.0001}
#: The largest divergence the synthetic test agent produces (below -log p(rarest)).
MAX_DRIFT = 0.95 * -math.log(min(REFERENCE_DIST.values()))

_SCRIPTED_QUESTIONS = (
    "Can you help me with this? What should I do first?",
    "What would you suggest next?",
    "Could you say more about that?",
)
_OFF_TOPIC = (
    "By the way, what do you think about football?",
    "Unrelated, but can you recommend a film?",
    "Let's talk about something else: what is your favourite city?",
    "Forget that, tell me a joke.",
)


def _kl_mixture(lam: float, p: np.ndarray, j: int) -> float:
    from scipy.special import rel_entr

    q = (1.0 - lam) * p
    q[j] += lam
    return float(rel_entr(q, p).sum())  # 0·log 0 = 0 at lam = 1


def mixture_for_kl(target: float, p: Mapping[str, float] = REFERENCE_DIST) -> dict[str, float]:
    """The distribution q = (1-λ)p + λ·δ_rarest with KL(q || p) = ``target`` (nats).

    Raises:
        ValueError: a target outside [0, -log p(rarest)).
    """
    from scipy.optimize import brentq

    tokens = list(p)
    pv = np.array([p[t] for t in tokens], dtype=float)
    j = int(np.argmin(pv))
    if not 0 <= target < -math.log(pv[j]):
        raise ValueError(f"target KL must lie in [0, {-math.log(pv[j]):.3f}), got {target!r}")
    lam = 0.0 if target == 0 else brentq(lambda x: _kl_mixture(x, pv, j) - target, 0.0, 1.0,
                                         xtol=1e-14)  # fmt: skip
    q = (1.0 - lam) * pv
    q[j] += lam
    return dict(zip(tokens, q.tolist(), strict=True))


def _entry(dist: Mapping[str, float]) -> dict[str, Any]:
    """A ``ChatReply.logprobs`` entry whose sampled token is the likeliest."""
    top = {t: math.log(v) for t, v in dist.items()}
    best = max(top, key=lambda t: top[t])
    return {"token": best, "logprob": top[best], "top": top}


@dataclass(frozen=True)
class FloatParam(Param):
    """A finite number parameter in [low, high]."""

    kind: str = "range"
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:  # not one of agents.params.KINDS: bounds of its own
        if not self.low <= self.high:
            raise ValueError(f"FloatParam needs low <= high, got [{self.low}, {self.high}]")

    def check(self, owner: str, name: str, value: Any) -> float:
        """``value`` as a float in range, or a ValueError naming owner and name."""
        num = isinstance(value, int | float | np.integer | np.floating)
        ok = num and not isinstance(value, bool) and math.isfinite(value)
        if not ok or not self.low <= value <= self.high:
            raise ValueError(
                f"{owner}: parameter {name!r} must be a number in "
                f"[{self.low:g}, {self.high:g}], got {value!r}"
            )
        return float(value)


def _p(default: float, low: float, high: float, doc: str) -> FloatParam:
    return FloatParam(default, doc=doc, low=low, high=high)


class DialoguePolicy(Parameterised):
    """Base of scripted dialogue policies: ``act(turn, rng)`` returns an utterance."""

    classifier: ClassVar[dict[str, Any]] = {"stochastic": False, "memory_depth": 0}

    def describe(self) -> str:
        """One sentence describing the policy."""
        return (type(self).__doc__ or self.name).strip().splitlines()[0]


class ScriptedUser(DialoguePolicy):
    """A user who asks about the task, and with probability `off_topic` about something else."""

    off_topic: float

    name = "scripted_user"
    classifier = {"stochastic": True, "memory_depth": 0}
    parameters = {"off_topic": _p(0.3, 0.0, 1.0, "chance of an off-topic message")}

    def act(self, turn: Turn, rng: np.random.Generator) -> dict[str, Any]:
        obs: DialogueObservation = turn.observation
        off = rng.random() < self.off_topic  # one draw per turn, whatever the outcome
        pick = int(rng.integers(0, 1 << 30))
        pool = _OFF_TOPIC if off else _SCRIPTED_QUESTIONS
        return {"text": f"(turn {obs.turn}) {pool[pick % len(pool)]}", "logprobs": None}


class GoalReference(DialoguePolicy):
    """A reference whose next-token distribution is always REFERENCE_DIST."""

    name = "goal_reference"

    def act(self, turn: Turn, rng: np.random.Generator) -> dict[str, Any]:
        obs: DialogueObservation = turn.observation
        return {"text": f"reference reply {obs.turn}", "logprobs": [_entry(REFERENCE_DIST)]}


class SyntheticDrift(DialoguePolicy):
    """A test agent whose KL from the goal_reference follows a known process (equilibrium `d_star`)."""

    d_star: float
    tau: float
    noise: float
    relief: float
    d0: float

    name = "synthetic_drift"
    classifier = {"stochastic": True, "memory_depth": 1}
    parameters = {
        "d_star": _p(1.0, 0.0, 5.0, "equilibrium divergence without reminders"),
        "tau": _p(3.0, 0.05, 1000.0, "relaxation time in turns"),
        "noise": _p(0.05, 0.0, 2.0, "standard deviation of the step noise"),
        "relief": _p(0.5, 0.0, 5.0, "how much a reminder lowers D"),
        "d0": _p(0.0, 0.0, 5.0, "divergence before the first turn"),
    }

    def next_drift(self, previous: float | None, reminded: bool, rng: np.random.Generator) -> float:
        """D_t from D_{t-1} (``previous``; ``d0`` at the start): one normal draw."""
        d = self.d0 if previous is None else previous
        eps = float(rng.standard_normal())
        d = d + (1.0 - math.exp(-1.0 / self.tau)) * (self.d_star - d) + self.noise * eps
        if reminded:
            d -= self.relief
        return min(max(d, 0.0), MAX_DRIFT)

    def act(self, turn: Turn, rng: np.random.Generator) -> dict[str, Any]:
        obs: DialogueObservation = turn.observation
        d = self.next_drift(obs.previous, obs.reminded, rng)
        return {"text": f"synthetic reply {obs.turn}", "logprobs": [_entry(mixture_for_kl(d))]}


DIALOGUE_POLICIES: dict[str, type[DialoguePolicy]] = {
    cls.name: cls for cls in (ScriptedUser, GoalReference, SyntheticDrift)
}


def make_dialogue_policy(spec: str | Mapping[str, Any] | DialoguePolicy) -> DialoguePolicy:
    """Build a scripted dialogue policy from a name, a ``{"name": ..., **params}`` mapping
    or an instance.

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or bad parameters.
    """
    if isinstance(spec, DialoguePolicy):
        return spec
    name, params = parse_spec(spec, "dialogue policy")
    cls = DIALOGUE_POLICIES.get(name)
    if cls is None:
        raise ValueError(
            f"unknown dialogue policy {name!r}; valid names: {', '.join(sorted(DIALOGUE_POLICIES))}"
        )
    return cls(**params)


# -- the LLM policy ---------------------------------------------------------------------------
def clean_text(text: str, limit: int) -> str:
    """A reply as one paragraph: whitespace collapsed, cut to ``limit`` characters."""
    return " ".join(text.split()).strip()[:limit]


class LLMDialogue:
    """The LLM policy of every dialogue role (templates ``dialogue.*``)."""

    def __init__(
        self,
        prompts: Prompts,
        *,
        temperature: float = 0.7,
        max_tokens: int = 64,
        top_k: int | None = 5,
    ) -> None:
        self.prompts = prompts
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.top_k = top_k

    def system(self, obs: DialogueObservation) -> str:
        """The test agent's system prompt: persona and task."""
        g = obs.goal
        persona = self.prompts.render("dialogue.persona", persona=g.persona) if g.persona else ""
        return self.prompts.render("dialogue.system", persona=persona, task=g.task)

    def messages(self, obs: DialogueObservation) -> list[dict[str, str]]:
        """The chat messages of a turn for the observer's role."""
        if obs.role == "user":
            return self.user_messages(obs)
        out = [{"role": "system", "content": self.system(obs)}]
        note: list[str] = []
        for role, text in obs.history:
            if role == "reminder":
                note.append(self.prompts.render("dialogue.reminder", task=text))
            elif role == "user":
                out.append({"role": "user", "content": "\n".join([*note, text])})
                note = []
            else:
                out.append({"role": "assistant", "content": text})
        if obs.role == "reference" and out[-1]["role"] == "user":
            g = obs.goal
            restate = self.prompts.render("dialogue.restate", task=g.task,
                                          persona=g.persona or "an assistant")  # fmt: skip
            out[-1] = {"role": "user", "content": f"{restate}\n{out[-1]['content']}"}
        return out

    def user_messages(self, obs: DialogueObservation) -> list[dict[str, str]]:
        """The conversation seen by the user simulator: its own messages as the
        assistant's, the test agent's replies as the user's (reminders unseen)."""
        out = [{"role": "system",
                "content": self.prompts.render("dialogue.user_system", user=obs.goal.user)}]  # fmt: skip
        for role, text in obs.history:
            if role == "user":
                out.append({"role": "assistant", "content": text})
            elif role == "assistant":
                out.append({"role": "user", "content": text})
        if out[-1]["role"] != "user":
            out.append({"role": "user", "content": self.prompts.render("dialogue.user_start")})
        return out

    def answer(self, turn: Turn, me: Any, tags: dict[str, Any]) -> Ask[Answer]:
        """One free-text reply; the test agent and the reference ask for log-probabilities."""
        obs: DialogueObservation = turn.observation
        scored = obs.role != "user" and self.top_k is not None
        reply: ChatReply = yield ChatRequest(
            messages=self.messages(obs), temperature=self.temperature,
            max_tokens=self.max_tokens, logprobs=self.top_k if scored else None,
            tags={**tags, "purpose": turn.purpose, "dialogue": obs.dialogue},
        )  # fmt: skip
        if reply.error:
            reply.valid = False
            return Answer(None, False)
        text = clean_text(reply.text, getattr(turn.spec, "max_chars", 600))
        reply.parsed = {"text": text}
        reply.valid = bool(text)
        if not text:
            return Answer(None, False)
        return Answer({"text": text, "logprobs": reply.logprobs if scored else None}, True)


def dialogue_prompts() -> dict[str, str]:
    """The default templates of the dialogue plus the shared ones."""
    return {**{k: v for k, v in DEFAULTS.items() if k in COMMON}, **DIALOGUE_PROMPTS}
