"""Rules of a social feed: communities, follows, posts, comments and upvotes by period.

After the Moltbook case study (protocols §10, arXiv 2602.14299): agents in a Reddit-like
network. Each *period* (one step of the loop) every agent reads its feed and takes one
typed action (:class:`FeedActionSpec`): write a ``post`` (to its home community), a
``comment`` on a feed item, an ``upvote`` of a feed item, ``follow`` a feed item's
author, or ``nothing``. Every ``probe_every`` periods each agent also answers a probe
question (the same for all, for consensus), in the same step.

The feed of an agent is built from *sources*: each community it belongs to and each
agent it follows. A source keeps its posts in a :class:`RankIndex` (a heap ordered by the
ranking key, stale entries dropped lazily), so reading its best ``per_source`` posts costs
O(per_source · log P) whatever the number of posts P, and a source read once a period is
cached for every reader. The candidates are merged, the agent's own posts dropped, and
the best ``feed_size`` kept: the ranking is never quadratic in the number of posts.

Rankings (keys are fixed per post until it is upvoted, so an index stays valid):

* ``recent``: the period of creation (newer first);
* ``top``: the number of upvotes;
* ``hot``: ``log10(1 + upvotes) + period / hot_decay``, Reddit's form: an age of
  ``hot_decay`` periods costs as much as a factor 10 in upvotes.

Ties go to the newer post (the larger id). Actions of one period are simultaneous: all
feeds are read at the period's start; new posts get ids in slot order. A repeated upvote
of the same post or a follow of someone already followed changes nothing (recorded as
without effect). Pure: randomness only where the plug-in builds the initial memberships
and seeds, from the loop's generator.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np

from games.protocol import (
    ActionSpec,
    Choice,
    Event,
    Game,
    IllegalAction,
    Position,
    Text,
    Turn,
    object_schema,
)

__all__ = [
    "ACTS",
    "RANKINGS",
    "FeedAction",
    "FeedActionSpec",
    "FeedGame",
    "FeedItem",
    "FeedKind",
    "FeedObservation",
    "RankIndex",
]

ACTS = ("post", "comment", "upvote", "follow", "nothing")
#: Acts that name a feed item.
TARGETED = frozenset({"comment", "upvote", "follow"})
RANKINGS = ("recent", "top", "hot")


class FeedKind(StrEnum):
    """Decision and event kinds of the feed, as recorded in the run store.

    Decisions: ``act`` (action: the act's name; value and data ``item``: the 1-based
    number of the item in the feed, 0 for none; data also ``post`` (the id of the
    item's post, or None), ``text``, ``effect`` (False for a repeated upvote or
    follow)) and ``probe`` (action: the answer). Events: ``post`` (agent: the author; value: the new post's id; data:
    ``post``, ``community``, ``text``, ``period``, ``seed``), ``comment`` (agent → the
    post's author; data: ``post`` (the comment's id), ``parent``, ``text``, ``period``),
    ``upvote`` (agent → the post's author; data: ``post``, ``period``), ``follow``
    (agent → the followee; data: ``period``), each edge with value 1; ``period`` (one per
    period; value: posts so far; data: counts of each act).
    """

    ACT = "act"
    PROBE = "probe"
    POST = "post"
    COMMENT = "comment"
    UPVOTE = "upvote"
    FOLLOW = "follow"
    PERIOD = "period"


class FeedAction(NamedTuple):
    """One agent's action: ``act`` (one of :data:`ACTS`), ``item`` (1-based number of
    the feed item it concerns, 0 for none) and ``text`` (of a post or comment)."""

    act: str
    item: int = 0
    text: str = ""


NOTHING = FeedAction("nothing", 0, "")


@dataclass(frozen=True)
class FeedActionSpec(ActionSpec):
    """The action of a feed of ``items`` items: a JSON object ``{"action", "item",
    "text"}`` whose act and item are enumerated in the schema (an empty feed allows only
    ``post`` and ``nothing``), the text bounded by ``max_chars``."""

    items: int
    max_chars: int = 280
    field: str = "action"

    @property
    def acts(self) -> tuple[str, ...]:
        """The acts this feed allows."""
        return ACTS if self.items else ("post", "nothing")

    def json_schema(self) -> dict[str, Any]:
        return object_schema(
            {
                "action": {"type": "string", "enum": list(self.acts)},
                "item": {"type": "integer", "enum": list(range(self.items + 1))},
                "text": {"type": "string", "maxLength": self.max_chars},
            }
        )

    def check(self, value: Any) -> FeedAction:
        act: Any
        item: Any
        text: Any
        if isinstance(value, FeedAction):
            act, item, text = value
        elif isinstance(value, dict):
            act, item, text = value.get("action"), value.get("item", 0), value.get("text", "")
        else:
            raise IllegalAction(f"expected a feed action, got {type(value).__name__}")
        if act not in self.acts:
            raise IllegalAction(f"action {act!r} is not one of {list(self.acts)}")
        if isinstance(item, bool) or not isinstance(item, int | np.integer):
            raise IllegalAction(f"item must be a whole number, got {item!r}")
        if not 0 <= int(item) <= self.items:
            raise IllegalAction(f"item {item} is not in 0..{self.items}")
        if act in TARGETED and int(item) == 0:
            raise IllegalAction(f"{act} needs an item of the feed (1..{self.items})")
        if not isinstance(text, str):
            raise IllegalAction(f"text must be a string, got {type(text).__name__}")
        text = " ".join(text.split())[: self.max_chars]
        if act in ("post", "comment") and not text:
            raise IllegalAction(f"a {act} needs a non-empty text")
        if act in ("post", "nothing"):
            item = 0
        if act not in ("post", "comment"):
            text = ""
        return FeedAction(str(act), int(item), text)

    def legalize(self, value: Any) -> tuple[FeedAction, bool]:
        """A scripted policy's illegal action becomes ``nothing`` (reported as changed)."""
        try:
            return self.check(value), False
        except IllegalAction:
            return NOTHING, True


class FeedItem(NamedTuple):
    """A post as a reader sees it: its ``number`` in the feed (1-based), its ``post``
    id, ``author`` (slot), ``community`` (name), ``text``, ``score`` (upvotes),
    ``period`` of creation and the latest ``comments`` as ``(author slot, text)``."""

    number: int
    post: int
    author: int
    community: str
    text: str
    score: int
    period: int
    comments: tuple[tuple[int, str], ...]


class FeedObservation(NamedTuple):
    """One agent's view at the start of period ``period`` (0-based) of ``periods``: its
    ``communities`` (names; the first is its home, where it posts) and their
    ``topics``, whom it ``follows`` (slots), its ``karma`` (upvotes received), its
    ``feed`` and, on a probe turn, the probe ``question`` and its ``options`` (empty:
    a free-text answer)."""

    period: int
    periods: int
    slot: int
    n: int
    communities: tuple[str, ...]
    topics: tuple[str, ...]
    follows: tuple[int, ...]
    karma: int
    feed: tuple[FeedItem, ...]
    question: str = ""
    options: tuple[str, ...] = ()


class RankIndex:
    """A source's posts by ranking key, best first: a heap with lazy deletion.

    ``push`` records a post's (new) key; the old entry stays in the heap and is dropped
    when it surfaces. ``top(k)`` pops the ``k`` best live entries and pushes them back:
    O((k + stale) log n). ``ops`` counts heap operations (for the scaling tests).
    """

    __slots__ = ("heap", "key", "ops")

    def __init__(self) -> None:
        self.heap: list[tuple[float, int]] = []
        self.key: dict[int, float] = {}
        self.ops = 0

    def push(self, post: int, key: float) -> None:
        """Insert ``post`` with ``key``, or move it to its new key."""
        if self.key.get(post) == key:
            return
        self.key[post] = key
        heapq.heappush(self.heap, (-key, -post))
        self.ops += 1

    def top(self, k: int) -> list[int]:
        """The ``k`` best posts (larger key first, then the larger id)."""
        heap, key = self.heap, self.key
        out: list[int] = []
        live: list[tuple[float, int]] = []
        while heap and len(out) < k:
            entry = heapq.heappop(heap)
            self.ops += 1
            post = -entry[1]
            if key.get(post) != -entry[0]:
                continue  # stale: the post was re-keyed since
            out.append(post)
            live.append(entry)
        for entry in live:
            heapq.heappush(heap, entry)
        self.ops += len(live)
        return out

    def __len__(self) -> int:
        return len(self.key)


class FeedGame(Game):
    """A social feed of ``n`` agents over ``periods`` periods.

    ``communities`` are the community names and ``topics`` their topics;
    ``members[slot]`` the communities of each agent (indices; the first is its home),
    ``follows[slot]`` whom it follows at the start, ``seeds`` the posts that exist
    before the first period as ``(community, author slot, text)``. The feed holds at most
    ``feed_size`` items, at most ``per_source`` from each community or followee, ranked
    by ``ranking`` (see the module docstring); ``comments_shown`` latest comments go
    with each item. ``probe_every`` > 0 asks ``question`` (with ``options``, or free
    text) in periods 0, k, 2k, ... and the last.

    The state is plain JSON data (the posts, votes, memberships, follows, the period);
    the indexes are rebuilt from it.
    """

    kind = "social_feed"

    def __init__(
        self,
        n: int,
        *,
        periods: int,
        communities: Sequence[str],
        topics: Sequence[str],
        members: Sequence[Sequence[int]],
        follows: Sequence[Sequence[int]],
        seeds: Sequence[tuple[int, int, str]] = (),
        ranking: str = "hot",
        feed_size: int = 10,
        per_source: int = 5,
        hot_decay: float = 2.0,
        comments_shown: int = 2,
        text_chars: int = 280,
        probe_every: int = 0,
        question: str = "",
        options: Sequence[str] = (),
        probe_chars: int = 200,
    ) -> None:
        for name, value, low in (("n", n, 1), ("periods", periods, 1), ("feed_size", feed_size, 1),
                                 ("per_source", per_source, 1), ("comments_shown", comments_shown, 0),
                                 ("text_chars", text_chars, 1), ("probe_every", probe_every, 0)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"{name}: must be an integer >= {low}, got {value!r}")
        if ranking not in RANKINGS:
            raise ValueError(f"ranking: expected one of {', '.join(RANKINGS)}, got {ranking!r}")
        if not math.isfinite(hot_decay) or hot_decay <= 0:
            raise ValueError(f"hot_decay: must be a number > 0, got {hot_decay!r}")
        if not communities or len(topics) != len(communities):
            raise ValueError("communities: need at least one, each with a topic")
        if len(members) != n or len(follows) != n:
            raise ValueError(f"members and follows: need one entry per agent ({n})")
        if any(not m for m in members):
            raise ValueError("members: every agent needs at least one community")
        if probe_every and not question:
            raise ValueError("probe.question: a probe needs a question")
        self.n = int(n)
        self.periods = int(periods)
        self.communities = tuple(str(c) for c in communities)
        self.topics = tuple(str(t) for t in topics)
        self.members = [tuple(int(c) for c in m) for m in members]
        self.ranking = ranking
        self.feed_size = int(feed_size)
        self.per_source = int(per_source)
        self.hot_decay = float(hot_decay)
        self.comments_shown = int(comments_shown)
        self.text_chars = int(text_chars)
        self.probe_every = int(probe_every)
        self.question = str(question)
        self.options = tuple(str(o) for o in options)
        self.probe_spec: ActionSpec = (
            Choice(self.options, field="answer")
            if self.options
            else Text(int(probe_chars), field="answer")
        )
        self._specs: dict[int, FeedActionSpec] = {}
        # -- state: items (posts and comments share one id space) --
        self.period = 0
        self.author: list[int] = []
        self.community: list[int] = []  # -1 for a comment
        self.created: list[int] = []  # period of creation (-1: a seed)
        self.text: list[str] = []
        self.parent: list[int] = []  # -1 for a post
        self.score: list[int] = []
        self.voters: list[set[int]] = []
        self.comments: dict[int, list[int]] = {}
        self.follows = [set(int(f) for f in fs) - {k} for k, fs in enumerate(follows)]
        self.karma = [0] * self.n
        self.seeds_logged = False
        self._effects: list[bool | None] = []  # the last apply's, for records()
        self._reset_indexes()
        for c, author, text in seeds:
            self._add(int(author), int(c), -1, -1, str(text)[: self.text_chars])

    # -- indexes ---------------------------------------------------------------------------
    def _reset_indexes(self) -> None:
        self.by_community = [RankIndex() for _ in self.communities]
        self.by_author: dict[int, RankIndex] = {}
        self._cache: dict[tuple[str, int], list[int]] = {}

    @property
    def ops(self) -> int:
        """Heap operations of every index so far (the ranking's cost)."""
        return sum(i.ops for i in self.by_community) + sum(i.ops for i in self.by_author.values())

    def rank_key(self, post: int) -> float:
        """The post's ranking key (larger ranks higher)."""
        if self.ranking == "recent":
            return float(self.created[post])
        if self.ranking == "top":
            return float(self.score[post])
        return math.log10(1 + self.score[post]) + self.created[post] / self.hot_decay

    def _index(self, post: int) -> None:
        key = self.rank_key(post)
        self.by_community[self.community[post]].push(post, key)
        author = self.author[post]
        idx = self.by_author.get(author)
        if idx is None:
            idx = self.by_author[author] = RankIndex()
        idx.push(post, key)

    def _add(self, author: int, community: int, parent: int, period: int, text: str) -> int:
        pid = len(self.author)
        self.author.append(author)
        self.community.append(community)
        self.created.append(period)
        self.text.append(text)
        self.parent.append(parent)
        self.score.append(0)
        self.voters.append(set())
        if parent < 0:
            self._index(pid)
        else:
            self.comments.setdefault(parent, []).append(pid)
        return pid

    def _source(self, kind: str, key: int) -> list[int]:
        """The best ``per_source`` posts of a community ('c') or an author ('a'), read
        once per period."""
        hit = self._cache.get((kind, key))
        if hit is None:
            idx = self.by_community[key] if kind == "c" else self.by_author.get(key)
            hit = idx.top(self.per_source) if idx is not None else []
            self._cache[(kind, key)] = hit
        return hit

    def feed(self, slot: int) -> list[int]:
        """The post ids of ``slot``'s feed, best first (own posts left out)."""
        seen: set[int] = set()
        cands: list[int] = []
        for c in self.members[slot]:
            cands.extend(self._source("c", c))
        for f in sorted(self.follows[slot]):
            cands.extend(self._source("a", f))
        author = self.author
        for p in cands:
            if p not in seen and author[p] != slot:
                seen.add(p)
        key = self.rank_key
        return sorted(seen, key=lambda p: (key(p), p), reverse=True)[: self.feed_size]

    # -- protocol ------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.period >= self.periods

    def total_steps(self) -> int | None:
        return self.periods

    def position(self) -> Position:
        return Position(0, self.period)

    def probing(self) -> bool:
        """Whether this period asks the probe question (0, k, 2k, ... and the last)."""
        k = self.probe_every
        return bool(k) and (self.period % k == 0 or self.period == self.periods - 1)

    def spec(self, items: int) -> FeedActionSpec:
        """The (cached) action spec of a feed of ``items`` items."""
        spec = self._specs.get(items)
        if spec is None:
            spec = self._specs[items] = FeedActionSpec(items, self.text_chars)
        return spec

    def items(self, slot: int) -> tuple[FeedItem, ...]:
        """``slot``'s feed as it reads it."""
        out = []
        shown = self.comments_shown
        for k, p in enumerate(self.feed(slot), start=1):
            latest = self.comments.get(p, [])[-shown:] if shown else []
            out.append(
                FeedItem(
                    k, p, self.author[p], self.communities[self.community[p]], self.text[p],
                    self.score[p], self.created[p],
                    tuple((self.author[c], self.text[c]) for c in latest),
                )
            )  # fmt: skip
        return tuple(out)

    def observation(self, slot: int, probe: bool = False) -> FeedObservation:
        """What ``slot`` sees at the start of this period (with the probe on a probe turn)."""
        return FeedObservation(
            self.period, self.periods, slot, self.n,
            tuple(self.communities[c] for c in self.members[slot]),
            tuple(self.topics[c] for c in self.members[slot]),
            tuple(sorted(self.follows[slot])), self.karma[slot], self.items(slot),
            self.question if probe else "", self.options if probe else (),
        )  # fmt: skip

    def pending(self, rng: np.random.Generator) -> list[Turn]:
        turns = []
        probes = []
        probing = self.probing()
        for k in range(self.n):
            obs = self.observation(k)
            turns.append(Turn(k, None, FeedKind.ACT, obs, self.spec(len(obs.feed)), NOTHING))
            if probing:
                fallback = 0 if self.options else ""
                probes.append(
                    Turn(k, None, FeedKind.PROBE, obs._replace(question=self.question,
                         options=self.options), self.probe_spec, fallback)
                )  # fmt: skip
        return turns + probes

    def apply(
        self, turns: Sequence[Turn], actions: Sequence[Any], rng: np.random.Generator
    ) -> list[Event]:
        events: list[Event] = []
        t = self.period
        if not self.seeds_logged:
            for p in range(len(self.author)):
                data = {"post": p, "community": self.communities[self.community[p]],
                        "text": self.text[p], "period": -1, "seed": True}  # fmt: skip
                events.append(Event(FeedKind.POST, self.author[p], None, None, float(p), data))
            self.seeds_logged = True
        counts = dict.fromkeys(ACTS, 0)
        counts["without_effect"] = 0
        self._effects = []
        for turn, action in zip(turns, actions, strict=True):
            if turn.purpose != FeedKind.ACT:
                self._effects.append(None)
                continue
            a: FeedAction = action
            slot = turn.agent
            counts[a.act] += 1
            target = turn.observation.feed[a.item - 1].post if a.item else -1
            effect = True
            if a.act == "post":
                home = self.members[slot][0]
                pid = self._add(slot, home, -1, t, a.text)
                data = {"post": pid, "community": self.communities[home], "text": a.text,
                        "period": t, "seed": False}  # fmt: skip
                events.append(Event(FeedKind.POST, slot, None, None, float(pid), data))
            elif a.act == "comment":
                author = self.author[target]
                cid = self._add(slot, -1, target, t, a.text)
                data = {"post": cid, "parent": target, "text": a.text, "period": t}
                events.append(Event(FeedKind.COMMENT, slot, author, None, 1.0, data))
            elif a.act == "upvote":
                author = self.author[target]
                if slot in self.voters[target]:
                    effect = False
                else:
                    self.voters[target].add(slot)
                    self.score[target] += 1
                    self.karma[author] += 1
                    self._index(target)
                    events.append(Event(FeedKind.UPVOTE, slot, author, None, 1.0,
                                        {"post": target, "period": t}))  # fmt: skip
            elif a.act == "follow":
                author = self.author[target]
                if author in self.follows[slot]:
                    effect = False
                else:
                    self.follows[slot].add(author)
                    events.append(Event(FeedKind.FOLLOW, slot, author, None, 1.0, {"period": t}))
            if not effect:
                counts["without_effect"] += 1
            self._effects.append(effect)
        posts = sum(1 for p in self.parent if p < 0)
        events.append(Event(FeedKind.PERIOD, None, None, None, float(posts),
                            {"period": t, **counts}))  # fmt: skip
        self._cache = {}
        self.period += 1
        return events

    def records(
        self, turns: Sequence[Turn], actions: Sequence[Any]
    ) -> tuple[Sequence[str | None], Sequence[float | None], Sequence[Any]]:
        """Acts: the act's name, the item number, and the item's post, the text and
        whether it had an effect as data; probes: the answer (by the spec's kind)."""
        texts: list[str | None] = []
        values: list[float | None] = []
        datas: list[Any] = []
        effects = self._effects if len(self._effects) == len(turns) else [None] * len(turns)
        for turn, action, effect in zip(turns, actions, effects, strict=True):
            if turn.purpose == FeedKind.ACT:
                a: FeedAction = action
                post = turn.observation.feed[a.item - 1].post if a.item else None
                texts.append(a.act)
                values.append(float(a.item))
                datas.append({"item": a.item, "post": post, "text": a.text or None,
                              "effect": effect})  # fmt: skip
            else:
                text, value, data = self.record(turn, action)
                texts.append(text)
                values.append(value)
                datas.append(data)
        return texts, values, datas

    def get_state(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "author": list(self.author),
            "community": list(self.community),
            "created": list(self.created),
            "text": list(self.text),
            "parent": list(self.parent),
            "score": list(self.score),
            "voters": [sorted(v) for v in self.voters],
            "members": [list(m) for m in self.members],
            "follows": [sorted(f) for f in self.follows],
            "karma": list(self.karma),
            "seeds_logged": self.seeds_logged,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        follows = [set(int(x) for x in f) for f in state["follows"]]
        karma = [int(x) for x in state["karma"]]
        # Memberships were drawn from the run's generator: the state, not the scenario, holds them.
        members = [tuple(int(c) for c in m) for m in state["members"]]
        if len(follows) != self.n or len(karma) != self.n or len(members) != self.n:
            raise ValueError(f"the state holds {len(follows)} agents, the game {self.n}")
        if any(not m or not all(0 <= c < len(self.communities) for c in m) for m in members):
            raise ValueError("the state's memberships do not fit the communities")
        columns = ("author", "community", "created", "text", "parent", "score", "voters")
        sizes = {len(state[c]) for c in columns}
        if len(sizes) != 1:
            raise ValueError("the state's item columns differ in length")
        self.period = int(state["period"])
        self.members = members
        self.follows = follows
        self.karma = karma
        self.seeds_logged = bool(state["seeds_logged"])
        self.author, self.community, self.created, self.text = [], [], [], []
        self.parent, self.score, self.voters = [], [], []
        self.comments = {}
        self._reset_indexes()
        for a, c, t, x, p, s, v in zip(*(state[c] for c in columns), strict=True):
            pid = self._add(int(a), int(c), int(p), int(t), str(x))
            self.score[pid] = int(s)
            self.voters[pid] = {int(u) for u in v}
            if p < 0 and s:
                self._index(pid)
