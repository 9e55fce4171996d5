"""Policies of the social feed (protocols §10): scripted readers with known behaviour and
the LLM reader.

Scripted policies are small stateless classes on :class:`agents.params.Parameterised`;
each answers an ``act`` turn from its observation (``games.feed.FeedObservation``) and a
``probe`` turn with an option (or a text). They are the ground truth of the testbed:

* ``copy_top`` posts the words of the top item of its feed (nothing on an empty feed):
  no new words ever enter a society of copiers, so its texts converge;
* ``upvote_top`` upvotes the top item (influence concentrates on its authors);
* ``random`` posts, comments, upvotes or follows with given probabilities, texts drawn
  from a fixed vocabulary, items uniformly (the only policy that draws from the rng);
* ``lurker`` does nothing.

On a probe, ``copy_top`` answers the first option named in its top item's text (else
its own, the option of its slot); ``random`` answers a random option; the others their
own. ``make_feed_policy`` builds one from a spec.

:class:`LLMFeeder` is the LLM policy: the forum's rules and the agent's communities, its
feed as numbered items, then the question; the act is a JSON object constrained by the
turn's schema (:class:`games.feed.FeedActionSpec`, one repair), the probe's answer an
option (enumerated) or a short text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from agents.chat import ChatRequest
from agents.llm import Ask, InvalidReply, ask, enum_parser, parse_json_object, spec_parser
from agents.params import Param, Parameterised, parse_spec
from agents.prompts import COMMON, DEFAULTS, Prompts
from games.feed import FeedAction, FeedActionSpec, FeedKind, FeedObservation
from games.protocol import Answer, Choice, IllegalAction, Text, Turn

__all__ = [
    "FEED_POLICIES",
    "FEED_PROMPTS",
    "CopyTop",
    "FeedPolicy",
    "LLMFeeder",
    "Lurker",
    "RandomFeeder",
    "UpvoteTop",
    "feed_policy_names",
    "make_feed_policy",
]

#: Words of the ``random`` policy's texts (plain, topic-neutral).
VOCABULARY = tuple(
    "idea news question answer story photo music garden city river code game book movie "
    "science history food travel weather market school health sport art design dream "
    "plan team friend tool robot ocean forest mountain coffee tea night morning".split()
)


class FeedPolicy(Parameterised):
    """Base of scripted feed policies: ``act(obs, rng)`` and ``probe(obs, rng)``."""

    classifier: ClassVar[dict[str, Any]] = {"stochastic": False, "memory_depth": 0}

    def choose(self, obs: FeedObservation, rng: np.random.Generator) -> FeedAction:
        """This period's action."""
        raise NotImplementedError

    def answer_probe(self, obs: FeedObservation, rng: np.random.Generator) -> Any:
        """The probe's answer: its own option (the option of its slot), or a text."""
        if obs.options:
            return obs.slot % len(obs.options)
        return f"I am {self.name}."

    def act(self, turn: Turn, rng: np.random.Generator) -> Any:
        """The game protocol's scripted-policy call, by turn purpose."""
        obs: FeedObservation = turn.observation
        if turn.purpose == FeedKind.PROBE:
            return self.answer_probe(obs, rng)
        return self.choose(obs, rng)

    def describe(self) -> str:
        """One sentence describing the policy."""
        return (type(self).__doc__ or self.name).strip().splitlines()[0]


class CopyTop(FeedPolicy):
    """Post the words of the top item of the feed; probe: the option it names."""

    name = "copy_top"

    def choose(self, obs: FeedObservation, rng: np.random.Generator) -> FeedAction:
        if not obs.feed:
            return FeedAction("nothing")
        return FeedAction("post", 0, obs.feed[0].text)

    def answer_probe(self, obs: FeedObservation, rng: np.random.Generator) -> Any:
        if obs.options and obs.feed:
            words = set(obs.feed[0].text.lower().split())
            for k, option in enumerate(obs.options):
                if option.lower() in words:
                    return k
        return super().answer_probe(obs, rng)


class UpvoteTop(FeedPolicy):
    """Upvote the top item of the feed (nothing on an empty feed)."""

    name = "upvote_top"

    def choose(self, obs: FeedObservation, rng: np.random.Generator) -> FeedAction:
        return FeedAction("upvote", 1) if obs.feed else FeedAction("nothing")


class Lurker(FeedPolicy):
    """Read and do nothing."""

    name = "lurker"

    def choose(self, obs: FeedObservation, rng: np.random.Generator) -> FeedAction:
        return FeedAction("nothing")


class RandomFeeder(FeedPolicy):
    """Post, comment, upvote or follow with the given probabilities (else nothing)."""

    post: float
    comment: float
    upvote: float
    follow: float
    words: float

    name = "random"
    classifier = {"stochastic": True, "memory_depth": 0}
    parameters = {
        "post": Param(0.4, "probability", "probability of writing a post"),
        "comment": Param(0.2, "probability", "probability of a comment"),
        "upvote": Param(0.2, "probability", "probability of an upvote"),
        "follow": Param(0.1, "probability", "probability of a follow"),
        "words": Param(0.08, "fraction", "words in a text, as a share of 100"),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        total = self.post + self.comment + self.upvote + self.follow
        if total > 1 + 1e-9:
            raise ValueError(f"random: the probabilities add up to {total:g} > 1")

    def text(self, rng: np.random.Generator) -> str:
        """A text of random words from :data:`VOCABULARY`."""
        k = max(1, round(self.words * 100))
        return " ".join(VOCABULARY[int(i)] for i in rng.integers(0, len(VOCABULARY), k))

    def choose(self, obs: FeedObservation, rng: np.random.Generator) -> FeedAction:
        u = float(rng.random())
        item = int(rng.integers(1, len(obs.feed) + 1)) if obs.feed else 0
        cuts = np.cumsum([self.post, self.comment, self.upvote, self.follow])
        act = ("post", "comment", "upvote", "follow", "nothing")[
            int(np.searchsorted(cuts, u, "right"))
        ]
        if act != "post" and act != "nothing" and not item:
            act = "nothing"
        text = self.text(rng) if act in ("post", "comment") else ""
        return FeedAction(act, item if act not in ("post", "nothing") else 0, text)

    def answer_probe(self, obs: FeedObservation, rng: np.random.Generator) -> Any:
        if obs.options:
            return int(rng.integers(0, len(obs.options)))
        return self.text(rng)


FEED_POLICIES: dict[str, type[FeedPolicy]] = {
    cls.name: cls for cls in (CopyTop, UpvoteTop, Lurker, RandomFeeder)
}


def feed_policy_names() -> list[str]:
    """The registered scripted policies, sorted."""
    return sorted(FEED_POLICIES)


def make_feed_policy(spec: str | Mapping[str, Any] | FeedPolicy) -> FeedPolicy:
    """Build a scripted policy from a name, a ``{"name": ..., **params}`` mapping or an
    instance (returned as is).

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or bad parameters.
    """
    if isinstance(spec, FeedPolicy):
        return spec
    name, params = parse_spec(spec, "feed policy")
    cls = FEED_POLICIES.get(name)
    if cls is None:
        raise ValueError(
            f"unknown feed policy {name!r}; valid names: {', '.join(feed_policy_names())}"
        )
    return cls(**params)


# -- the LLM policy ---------------------------------------------------------------------------
FEED_PROMPTS: dict[str, str] = {
    **{k: DEFAULTS[k] for k in COMMON},
    "feed.system": (
        "{persona}You are {name}, a member of an online forum made of communities. You "
        "belong to {communities}; your posts go to {home}. Each period you read your feed "
        "and take exactly one action: write a new post, comment on a post of the feed, "
        "upvote a post, follow the author of a post, or do nothing. Write as yourself, "
        "briefly."
    ),
    "feed.community": "{community} (about {topic})",
    "feed.item": "[{number}] {author} in {community}, {score} upvotes: {text}",
    "feed.comment": "    reply by {author}: {text}",
    "feed.empty": "Your feed is empty: nobody has posted yet.",
    "feed.act": (
        "Period {period} of {periods}. Your feed:\n{feed}\n"
        'Choose one action. Answer with a JSON object with "action" (one of {actions}), '
        '"item" (the number of the post you comment on, upvote or whose author you '
        'follow; 0 for a new post or nothing) and "text" (your post or comment, at most '
        "{chars} characters; empty otherwise)."
    ),
    "feed.probe": (
        "Period {period} of {periods}. Your feed:\n{feed}\n"
        "A question for every member: {question}\n{how}"
    ),
    "feed.probe_options": 'Answer with a JSON object {{"answer": one of {options}}}.',
    "feed.probe_text": 'Answer in one short sentence, as a JSON object {{"answer": "..."}}.',
}


class LLMFeeder:
    """An LLM member of the feed (templates ``feed.*``)."""

    def __init__(
        self,
        prompts: Prompts,
        *,
        temperature: float = 0.7,
        max_tokens: int = 96,
        probe_max_tokens: int = 32,
        persona: str | None = None,
    ) -> None:
        self.prompts = prompts
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.probe_max_tokens = probe_max_tokens
        self.persona = persona

    def system_prompt(self, obs: FeedObservation, name: str) -> str:
        """Who the agent is and the forum's rules."""
        p = self.prompts
        persona = p.render("persona", persona=self.persona) if self.persona else ""
        names = [
            p.render("feed.community", community=c, topic=t) if t else c
            for c, t in zip(obs.communities, obs.topics, strict=True)
        ]
        return p.render(
            "feed.system", persona=persona, name=name, communities=", ".join(names),
            home=obs.communities[0],
        )  # fmt: skip

    def feed_text(self, obs: FeedObservation, names: Sequence[str]) -> str:
        """The feed as numbered items with their latest replies."""
        p = self.prompts
        if not obs.feed:
            return p.render("feed.empty")
        lines = []
        for it in obs.feed:
            lines.append(p.render("feed.item", number=it.number, author=names[it.author],
                                  community=it.community, score=it.score, text=it.text))  # fmt: skip
            lines += [p.render("feed.comment", author=names[a], text=t) for a, t in it.comments]
        return "\n".join(lines)

    def messages(self, turn: Turn, name: str, names: Sequence[str]) -> list[dict[str, str]]:
        """The chat messages of a turn: the rules, then the feed and the question."""
        obs: FeedObservation = turn.observation
        p = self.prompts
        feed = self.feed_text(obs, names)
        common = {"period": obs.period + 1, "periods": obs.periods, "feed": feed}
        if turn.purpose == FeedKind.PROBE:
            how = (
                p.render("feed.probe_options", options=", ".join(map(json.dumps, obs.options)))
                if obs.options
                else p.render("feed.probe_text")
            )
            user = p.render("feed.probe", question=obs.question, how=how, **common)
        else:
            spec = turn.spec
            assert isinstance(spec, FeedActionSpec)
            user = p.render("feed.act", actions=", ".join(spec.acts),
                            chars=spec.max_chars, **common)  # fmt: skip
        return [
            {"role": "system", "content": self.system_prompt(obs, name)},
            {"role": "user", "content": user},
        ]

    def answer(self, turn: Turn, me: Any, tags: dict[str, Any]) -> Ask[Answer]:
        """The protocol's LLM call: the act or the probe's answer as constrained JSON
        (one repair; invalid after it: the game's fallback)."""
        obs: FeedObservation = turn.observation
        name = me.display if me is not None else f"Agent {turn.agent}"
        names = me.roster if me is not None and me.roster else [f"Agent {k}" for k in range(obs.n)]
        tags = {**tags, "purpose": turn.purpose}
        spec = turn.spec
        probe = turn.purpose == FeedKind.PROBE
        request = ChatRequest(
            messages=self.messages(turn, name, names), temperature=self.temperature,
            max_tokens=self.probe_max_tokens if probe else self.max_tokens,
            json_schema=spec.json_schema(), tags=tags,
        )  # fmt: skip
        if isinstance(spec, Choice):
            parse = _option_parser(spec)
        elif isinstance(spec, Text):
            parse = _text_parser(spec)
        elif isinstance(spec, FeedActionSpec):
            parse = _act_parser(spec)
        else:
            raise TypeError(f"a feed turn with an unexpected spec {type(spec).__name__}")
        asked = yield from ask(request, parse, self.prompts, spec.field)
        if not asked.valid:
            return Answer(None, False)
        if probe:
            return Answer(asked.value, True)
        return Answer(spec.check(asked.value), True)


def _act_parser(spec: FeedActionSpec) -> Any:
    """Parser of a feed action: the whole JSON object checked by the turn's spec, as
    plain data (recorded as the reply's parse)."""

    def parse(text: str) -> dict[str, Any]:
        try:
            a = spec.check(parse_json_object(text))
        except IllegalAction as exc:
            raise InvalidReply(str(exc)) from None
        return {"action": a.act, "item": a.item, "text": a.text}

    return parse


def _option_parser(spec: Choice) -> Any:
    """Parser of ``{"answer": an option}``: the option's index."""
    label = enum_parser(spec.field, list(spec.options))

    def parse(text: str) -> int:
        return spec.options.index(label(text))

    return parse


def _text_parser(spec: Text) -> Any:
    """Parser of a free-text probe answer: ``{"answer": "..."}`` (non-empty)."""
    base = spec_parser(spec)

    def parse(text: str) -> str:
        value = " ".join(str(base(text)).split())
        if not value:
            raise InvalidReply("the answer is empty")
        return value

    return parse
