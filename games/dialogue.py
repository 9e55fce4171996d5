"""A multi-turn drift dialogue: a goal-holding test agent talks with a user simulator
while a goal-conditioned reference scores every turn (after Dongre et al. 2025, "Drift
No More? Context Equilibria in Multi-Turn LLM Interactions", arXiv 2510.07777).

Each of ``n`` dialogues has a *test* agent that holds a goal (a task and a persona, put
in its system prompt once, at the start), a *user* simulator and a *reference*. A turn
is two steps: the user simulator writes its message (step 'user'; skipped at turn 0
when the goal has an opening message), then the test agent replies and, in the same
step and so in the same backend batch, the reference answers the same history with the
goal restated (step 'reply'). Only the test agent's reply joins the history. The game
then records the turn's divergence ``D_t`` between the two (:func:`reply_divergence`):

* ``kl_topk``: when both replies carry top-k log-probabilities, the KL divergence
  KL(q_t || p_t) of the test agent's next-token distribution q from the reference's p,
  on the top-k support (:func:`topk_kl`), averaged over the leading positions at which
  both are conditioned on the same tokens;
* ``embedding``: otherwise, 1 - cosine similarity of the two replies' embeddings (an
  embedder injected by the runtime; its name is recorded).

Goal reminders at chosen turns put the goal back into the test agent's history before
that turn's user message. ``D_t`` per dialogue is the series that
``analysis.drift.fit_equilibrium`` reads (ΔD_t = a + b·D_t, D* = -a/b).

Pure apart from the injected embedder: no I/O, no backends; randomness is not needed
(the policies draw from the loop's generator).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from games.protocol import ActionSpec, Event, Game, IllegalAction, Position, Turn, object_schema

__all__ = [
    "DRIFT",
    "Goal",
    "DialogueGame",
    "DialogueObservation",
    "Utterance",
    "reply_divergence",
    "reply_kl",
    "topk_kl",
    "top_distribution",
]

#: The event kind of one turn's divergence.
DRIFT = "drift"
#: Decision purposes: the user simulator's message, the test agent's reply, the reference's.
USER, REPLY, REFERENCE = "user", "reply", "reference"

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Goal:
    """What the test agent is there for: its ``task`` and ``persona``; ``user`` tells
    the user simulator who it is; ``opening`` is the user's first message (empty: the
    user simulator writes it)."""

    task: str
    persona: str = ""
    user: str = ""
    opening: str = ""

    def to_dict(self) -> dict[str, str]:
        """The goal as plain data."""
        return {"task": self.task, "persona": self.persona, "user": self.user,
                "opening": self.opening}  # fmt: skip


@dataclass(frozen=True)
class DialogueObservation:
    """What one agent sees at one turn of one dialogue.

    ``history`` holds ``(role, text)`` pairs in order: 'user' (the simulator's
    messages), 'assistant' (the test agent's replies) and 'reminder' (a goal reminder
    shown to the test agent before the user message that follows it). ``role`` is the
    observer's part: 'user', 'test' or 'reference'. ``reminded`` says whether this
    turn's user message comes with a reminder; ``previous`` is the dialogue's D_{t-1}
    (None at the first turn or when it could not be measured).
    """

    dialogue: int
    turn: int
    turns: int
    role: str
    goal: Goal
    history: tuple[tuple[str, str], ...]
    reminded: bool
    previous: float | None


@dataclass(frozen=True)
class Utterance(ActionSpec):
    """A message of at most ``max_chars`` characters, optionally with the top-k
    log-probabilities of its tokens (``ChatReply.logprobs`` entries: ``{"token",
    "logprob", "top": {token: logprob}}``).

    The action is ``{"text": str, "logprobs": list | None}``; a bare string is read as
    text without log-probabilities. An LLM is asked for free text (the schema below is
    for readers; the policies send none).
    """

    max_chars: int = 600
    field: str = "text"

    def json_schema(self) -> dict[str, Any]:
        return object_schema({self.field: {"type": "string", "maxLength": self.max_chars}})

    def check(self, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            return {"text": value[: self.max_chars], "logprobs": None}
        if not isinstance(value, Mapping) or not isinstance(value.get("text"), str):
            raise IllegalAction(f"expected text or {{'text': ..., 'logprobs': ...}}, got {value!r}")
        lp = value.get("logprobs")
        if lp is not None and not isinstance(lp, list):
            raise IllegalAction(
                f"logprobs must be a list of token entries, got {type(lp).__name__}"
            )
        return {"text": value["text"][: self.max_chars], "logprobs": lp}


# -- the divergence ---------------------------------------------------------------------------
def top_distribution(entry: Mapping[str, Any]) -> dict[str, float]:
    """One position's top-k log-probabilities ``{token: logprob}``, the sampled token
    included (a backend may list it outside its top-k)."""
    top = {str(k): float(v) for k, v in (entry.get("top") or {}).items()}
    if entry.get("token") is not None and entry.get("logprob") is not None:
        top.setdefault(str(entry["token"]), float(entry["logprob"]))
    return top


def topk_kl(
    q: Mapping[str, float], p: Mapping[str, float], *, support: str = "union", floor: float = 1e-6
) -> float:
    """KL(q || p) in nats between two top-k log-probability dicts ``{token: logprob}``.

    Each backend returns only its k likeliest tokens, so both distributions are put on
    one support and renormalised there:

    * ``support='union'`` (the default): the union of the two top-k token sets. A token
      missing from one side's top-k gets probability ``floor`` on that side (the
      epsilon floor: it is unlikely there, but not impossible, so the KL stays finite).
      Both vectors are then renormalised to sum to 1 over the union.
    * ``support='shared'``: only the tokens in both top-k sets, each side renormalised
      over them (no floor needed). An empty intersection falls back to the union.

    Then KL = Σ_s q_s log(q_s / p_s) (``scipy.stats.entropy``, which does the
    renormalisation). Unlike ``analysis.drift.topk_kl`` (which keeps the leftover mass
    of each side in an extra bucket), the mass outside the two top-k lists is dropped:
    this is the renormalised top-k estimate, exact when the two distributions live on
    the listed tokens (the synthetic reference policies of ``agents.dialogue``).

    Raises:
        ValueError: an unknown ``support``, a floor outside (0, 1), or an empty side.
    """
    from scipy.stats import entropy

    if support not in ("union", "shared"):
        raise ValueError(f"support must be 'union' or 'shared', got {support!r}")
    if not 0 < floor < 1:
        raise ValueError(f"floor must lie in (0, 1), got {floor!r}")
    if not q or not p:
        raise ValueError("topk_kl needs two non-empty distributions")
    tokens = sorted(set(q) & set(p)) if support == "shared" else []
    if not tokens:
        tokens = sorted(set(q) | set(p))
    qv = np.array([math.exp(q[t]) if t in q else floor for t in tokens])
    pv = np.array([math.exp(p[t]) if t in p else floor for t in tokens])
    return float(entropy(np.maximum(qv, floor), np.maximum(pv, floor)))


def reply_kl(
    q: Sequence[Mapping[str, Any]],
    p: Sequence[Mapping[str, Any]],
    *,
    positions: int = 8,
    support: str = "union",
    floor: float = 1e-6,
) -> tuple[float, float, int]:
    """KL of two replies' per-token top-k log-probabilities, position by position.

    Position j compares the next-token distributions after the same history and the
    same first j generated tokens. Once the sampled tokens differ the two are
    conditioned on different texts, so the comparison stops after the first position
    whose sampled tokens differ (that position still counts: both were conditioned
    alike up to it), and after at most ``positions`` positions.

    Returns:
        (mean KL over the compared positions, KL at the first position, positions
        compared); (nan, nan, 0) when either side has no position.
    """
    kls: list[float] = []
    for qe, pe in zip(q[:positions], p[:positions], strict=False):
        kls.append(topk_kl(top_distribution(qe), top_distribution(pe), support=support,
                           floor=floor))  # fmt: skip
        if qe.get("token") != pe.get("token"):
            break
    if not kls:
        return math.nan, math.nan, 0
    return float(np.mean(kls)), kls[0], len(kls)


def reply_divergence(
    test: Mapping[str, Any],
    reference: Mapping[str, Any],
    *,
    measure: str = "auto",
    positions: int = 8,
    support: str = "union",
    floor: float = 1e-6,
) -> tuple[float | None, dict[str, Any]]:
    """The top-k KL of two replies when both carry log-probabilities (and ``measure``
    allows it), else None with ``{"measure": "embedding"}`` (the game embeds those in one
    batch). Returns (value, detail for the event's data)."""
    qa, pa = test.get("logprobs"), reference.get("logprobs")
    if measure != "embedding" and qa and pa:
        mean, first, n = reply_kl(qa, pa, positions=positions, support=support, floor=floor)
        if n:
            return mean, {"measure": "kl_topk", "kl_first": first, "positions": n}
    if measure == "kl":
        return None, {"measure": "none", "why": "no log-probabilities"}
    return None, {"measure": "embedding"}


# -- the game ---------------------------------------------------------------------------------
class DialogueGame(Game):
    """``len(goals)`` dialogues of ``turns`` turns, played side by side.

    ``test``, ``user`` and ``reference`` give each dialogue's slots; ``reminders`` the
    turns whose user message comes with a goal reminder, for the dialogues listed in
    ``reminded`` (all when None). ``embed`` turns texts into vectors (needed only when a
    turn has no log-probabilities); its ``name`` attribute (else ``embedder``) is recorded.
    """

    kind = "drift_dialogue"

    def __init__(
        self,
        goals: Sequence[Goal],
        *,
        test: Sequence[int],
        user: Sequence[int],
        reference: Sequence[int],
        turns: int = 20,
        reminders: Sequence[int] = (),
        reminded: Sequence[int] | None = None,
        measure: str = "auto",
        positions: int = 8,
        support: str = "union",
        floor: float = 1e-6,
        max_chars: int = 600,
        fallback: str = "...",
        embed: Embed | None = None,
        embedder: str = "",
    ) -> None:
        n = len(goals)
        if not (len(test) == len(user) == len(reference) == n) or n < 1:
            raise ValueError("every dialogue needs a goal, a test, a user and a reference slot")
        if turns < 1:
            raise ValueError(f"turns must be >= 1, got {turns}")
        if measure not in ("auto", "kl", "embedding"):
            raise ValueError(f"measure must be auto, kl or embedding, got {measure!r}")
        self.goals = list(goals)
        self.test, self.user, self.reference = list(test), list(user), list(reference)
        self.turns = turns
        self.reminders = frozenset(int(r) for r in reminders)
        self.reminded = frozenset(range(n) if reminded is None else reminded)
        self.measure, self.positions, self.support, self.floor = measure, positions, support, floor
        self.spec = Utterance(max_chars=max_chars)
        self.fallback = {"text": fallback, "logprobs": None}
        self.embed, self.embedder = embed, embedder
        # State (plain data): the turn, the phase, each dialogue's history and D_t series.
        self.turn = 0
        self.phase = USER
        self.history: list[list[list[str]]] = [[] for _ in range(n)]
        self.drift: list[list[float | None]] = [[] for _ in range(n)]
        self._start_turn()

    # -- helpers ---------------------------------------------------------------------------
    def _start_turn(self) -> None:
        """Open turn ``self.turn``: the reminder, then the opening message or a user step."""
        for i in range(len(self.goals)):
            if self.turn in self.reminders and i in self.reminded:
                self.history[i].append(["reminder", self.goals[i].task])
        if self.turn == 0 and all(g.opening for g in self.goals):
            for i, g in enumerate(self.goals):
                self.history[i].append([USER, g.opening])
            self.phase = REPLY
        else:
            self.phase = USER

    def _obs(self, i: int, role: str) -> DialogueObservation:
        prev = self.drift[i][-1] if self.drift[i] else None
        return DialogueObservation(
            dialogue=i, turn=self.turn, turns=self.turns, role=role, goal=self.goals[i],
            history=tuple((r, t) for r, t in self.history[i]),
            reminded=self.turn in self.reminders and i in self.reminded, previous=prev,
        )  # fmt: skip

    # -- the protocol ----------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.turn >= self.turns

    def pending(self, rng: np.random.Generator) -> list[Turn]:
        if self.done:
            return []
        out: list[Turn] = []
        for i in range(len(self.goals)):
            if self.phase == USER:
                out.append(Turn(self.user[i], self.test[i], USER, self._obs(i, "user"),
                                self.spec, self.fallback, instance=i))  # fmt: skip
            else:
                out.append(Turn(self.test[i], self.reference[i], REPLY, self._obs(i, "test"),
                                self.spec, self.fallback, instance=i))  # fmt: skip
                out.append(Turn(self.reference[i], self.test[i], REFERENCE,
                                self._obs(i, "reference"), self.spec, self.fallback,
                                instance=i))  # fmt: skip
        return out

    def apply(
        self, turns: Sequence[Turn], actions: Sequence[Any], rng: np.random.Generator
    ) -> list[Event]:
        actions = [self.spec.check(a) for a in actions]  # a bare string is text too
        if self.phase == USER:
            for turn, action in zip(turns, actions, strict=True):
                self.history[turn.instance].append([USER, action["text"]])
            self.phase = REPLY
            return []
        replies: dict[int, dict[str, Any]] = {}
        refs: dict[int, dict[str, Any]] = {}
        for turn, action in zip(turns, actions, strict=True):
            (replies if turn.purpose == REPLY else refs)[turn.instance] = action
        values: dict[int, float | None] = {}
        details: dict[int, dict[str, Any]] = {}
        for i in range(len(self.goals)):
            values[i], details[i] = reply_divergence(
                replies[i], refs[i], measure=self.measure, positions=self.positions,
                support=self.support, floor=self.floor,
            )  # fmt: skip
        self._embed_distances(replies, refs, values, details)
        events = []
        for i in range(len(self.goals)):
            self.history[i].append(["assistant", replies[i]["text"]])
            value = values[i]
            self.drift[i].append(value)
            data = {"dialogue": i, "turn": self.turn, **details[i],
                    "reminded": self.turn in self.reminders and i in self.reminded,
                    "condition": "reminders" if i in self.reminded and self.reminders
                    else "none"}  # fmt: skip
            events.append(Event(DRIFT, self.test[i], self.reference[i], details[i]["measure"],
                                value, data))  # fmt: skip
        self.turn += 1
        if not self.done:
            self._start_turn()
        return events

    def _embed_distances(
        self,
        replies: Mapping[int, Mapping[str, Any]],
        refs: Mapping[int, Mapping[str, Any]],
        values: dict[int, float | None],
        details: dict[int, dict[str, Any]],
    ) -> None:
        """1 - cos of the embeddings of test and reference replies, for every dialogue
        that needs it, in one embed call (one batch)."""
        need = [i for i, d in details.items() if d["measure"] == "embedding"]
        if not need:
            return
        if self.embed is None:
            for i in need:
                details[i] = {"measure": "none", "why": "no log-probabilities, no embedder"}
            return
        texts = [replies[i]["text"] for i in need] + [refs[i]["text"] for i in need]
        vecs = np.asarray(self.embed(texts), dtype=float)
        name = str(getattr(self.embed, "name", self.embedder))  # known once loaded
        a, b = vecs[: len(need)], vecs[len(need) :]
        for k, i in enumerate(need):
            na, nb = float(np.linalg.norm(a[k])), float(np.linalg.norm(b[k]))
            cos = float(a[k] @ b[k]) / (na * nb) if na > 0 and nb > 0 else 0.0
            values[i] = round(1.0 - cos, 12)  # rounded: identical across resumes
            details[i] = {"measure": "embedding", "embedder": name}

    def record(self, turn: Turn, action: Any) -> tuple[str | None, float | None, Any]:
        """A message is stored as its text, with the dialogue and the turn."""
        obs: DialogueObservation = turn.observation
        n_lp = len(action["logprobs"]) if action.get("logprobs") else 0
        return action["text"], None, {"dialogue": obs.dialogue, "turn": obs.turn,
                                      "logprob_positions": n_lp}  # fmt: skip

    def get_state(self) -> dict[str, Any]:
        return {"turn": self.turn, "phase": self.phase,
                "history": [[list(e) for e in h] for h in self.history],
                "drift": [list(d) for d in self.drift]}  # fmt: skip

    def set_state(self, state: dict[str, Any]) -> None:
        self.turn = int(state["turn"])
        self.phase = str(state["phase"])
        self.history = [[list(e) for e in h] for h in state["history"]]
        self.drift = [list(d) for d in state["drift"]]

    def position(self) -> Position:
        return Position(game=0, round_in_game=self.turn)

    def total_steps(self) -> int | None:
        opening = all(g.opening for g in self.goals)
        return 2 * self.turns - (1 if opening else 0)
