"""Any strategy of the `axelrod` library behind the stateless ``Strategy.move`` contract.

``AxelrodStrategy("Tit For Tat")`` (or ``"TitForTat"``, or the class itself) plays like the
Axelrod player of that name. Axelrod players are stateful objects that play one match at a
time, so the adapter keeps a small LRU cache of (player, opponent proxy) pairs keyed by
``id(my)`` (the runtime keeps one history list per player per match and appends to it).
Before reusing an entry the adapter checks that the cached histories are a prefix of
``my``/``their`` and feeds it the rounds it has not seen; on any mismatch or miss it builds a
fresh player and replays both histories through it (calling ``strategy`` then
``update_history`` for every past round, as ``axelrod.Match`` does). Correctness never
depends on the cache: after unpickling a checkpoint, or when the runtime passes copies of the
histories, the moves are the same (only slower: a replay is O(rounds)).

The opponent is a proxy ``axelrod.Player`` whose history mirrors ``their``/``my``; Axelrod
strategies only read ``opponent.history`` (and its counters). Players that inspect or
manipulate their opponent (``inspects_source``, ``manipulates_source``,
``manipulates_state``) need a real Axelrod opponent and are refused.

Randomness (stochastic players only): for every live move the adapter draws exactly one
``rng.random()`` and reseeds the player's generator from it before calling ``strategy``, so a
move depends only on the histories and the ``rng`` the runtime passes, whatever the state of
the cache, and resumed runs match uninterrupted ones. During a replay the player is
reseeded with the round index; players whose internal state depends on their own past random
draws (rather than on the histories) are therefore only approximately restored after a cache
miss. Deterministic players never touch ``rng``. Asking twice for the same round of the same
match returns the cached decision without drawing again.

Match attributes: Axelrod players may use the match length and the game
(``makes_use_of``). Pass ``match_length`` (rounds; default unknown, as Axelrod's -1) and
``game`` ``(R, S, T, P)`` (default Axelrod's ``(3, 0, 5, 1)``) to give them the values of the
simulated game. Any other keyword goes to the Axelrod player's constructor.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.strategies import AXELROD_PREFIX, CLASSIFIER_KEYS, Strategy

try:
    import axelrod as axl
except ImportError as exc:  # pragma: no cover - exercised only without axelrod
    raise ImportError(
        "the axelrod adapter needs the axelrod library: pip install 'society[axelrod]'"
    ) from exc

__all__ = ["AxelrodStrategy", "axelrod_player_class"]

_ACTIONS = (axl.Action.C, axl.Action.D)
_REFUSED = ("inspects_source", "manipulates_source", "manipulates_state")
_INDEX: dict[str, type[axl.Player]] | None = None


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def axelrod_player_class(name: str | type[axl.Player]) -> type[axl.Player]:
    """The Axelrod player class for a player name (``"Tit For Tat"``) or class name
    (``"TitForTat"``); case, spaces and punctuation are ignored."""
    global _INDEX
    if isinstance(name, type):
        if not issubclass(name, axl.Player):
            raise ValueError(f"{name!r} is not an axelrod.Player subclass")
        return name
    if _INDEX is None:
        index: dict[str, type[axl.Player]] = {}
        for cls in axl.all_strategies:
            index.setdefault(_norm(cls.name), cls)
            index.setdefault(_norm(cls.__name__), cls)
        _INDEX = index
    cls = _INDEX.get(_norm(name))
    if cls is None:
        import difflib

        close = difflib.get_close_matches(
            name, [c.name for c in axl.all_strategies] + [c.__name__ for c in axl.all_strategies]
        )
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown axelrod strategy {name!r}{hint} "
            f"(valid: the .name or class name of any player in axelrod.all_strategies)"
        )
    return cls


class _Opponent(axl.Player):
    """Stands in for the partner: only its history (their moves, my moves) is real."""

    name = "society partner"

    def strategy(self, opponent: axl.Player) -> axl.Action:  # pragma: no cover
        raise RuntimeError("the partner proxy of the axelrod adapter cannot move")


class _Entry:
    """A player, its opponent proxy and the rounds they have seen.

    Invariant: ``decided`` is the action the player's ``strategy`` returned for round
    ``len(seen_my)`` (so its internal state has advanced into that round), or None.
    """

    __slots__ = ("player", "proxy", "seen_my", "seen_their", "decided")

    def __init__(self, player: axl.Player, proxy: axl.Player) -> None:
        self.player = player
        self.proxy = proxy
        self.seen_my: list[int] = []
        self.seen_their: list[int] = []
        self.decided: axl.Action | None = None


class AxelrodStrategy(Strategy):
    """An Axelrod library player as a stateless ``Strategy`` (see the module docstring)."""

    #: entries kept per adapter instance (one per concurrent match); least recently used go
    cache_size = 4096

    def __init__(
        self,
        player: str | type[axl.Player],
        *,
        match_length: int | None = None,
        game: Sequence[float] | None = None,
        **player_params: Any,
    ) -> None:
        cls = axelrod_player_class(player)
        if match_length is not None and (
            isinstance(match_length, bool)
            or not isinstance(match_length, int | np.integer)
            or match_length < 1
        ):
            raise ValueError(
                f"axelrod:{cls.name}: parameter 'match_length' must be a positive int or "
                f"None, got {match_length!r}"
            )
        if game is not None:
            try:
                game = tuple(float(x) for x in game)
            except (TypeError, ValueError):
                game = ()
            if len(game) != 4:
                raise ValueError(
                    f"axelrod:{cls.name}: parameter 'game' must be four payoffs (R, S, T, P) "
                    f"or None, got {game!r}"
                )
        try:
            cls.init_params(**player_params)
        except TypeError as exc:
            raise ValueError(f"axelrod:{cls.name}: bad player parameters: {exc}") from exc
        try:
            prototype = cls(**player_params)
        except Exception as exc:
            raise ValueError(
                f"axelrod:{cls.name}: cannot build the player with {player_params!r}: {exc}"
            ) from exc
        classifier = {key: axl.Classifiers[key](prototype) for key in CLASSIFIER_KEYS}
        refused = [key for key in _REFUSED if classifier[key]]
        if refused:
            raise ValueError(
                f"axelrod:{cls.name} is not supported: it {', '.join(refused)} of its "
                f"opponent, which needs a real axelrod opponent"
            )
        self.player_class = cls
        self.name = AXELROD_PREFIX + cls.name  # type: ignore[misc]
        self.classifier = classifier  # type: ignore[misc]
        self.match_length = match_length
        self.game = game
        self.player_params = dict(player_params)
        self._stochastic = bool(classifier["stochastic"])
        self._game = axl.Game(*game) if game is not None else None
        self._cache: dict[int, _Entry] = {}

    # -- Strategy API ------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.match_length is not None:
            out["match_length"] = self.match_length
        if self.game is not None:
            out["game"] = list(self.game)
        out.update(self.player_params)
        return out

    def move(self, my: Sequence[int], their: Sequence[int], rng: np.random.Generator) -> int:
        n = len(my)
        if len(their) != n:
            raise ValueError(f"histories differ in length: {n} (my) vs {len(their)} (their)")
        cache = self._cache
        key = id(my)
        entry = cache.pop(key, None)
        if entry is None or not self._sync(entry, my, their, n):
            entry = self._build(my, their, n)
        cache[key] = entry  # most recently used last
        if entry.decided is None:
            if self._stochastic:
                entry.player._random.seed(int(rng.random() * 4294967296.0))
            entry.decided = entry.player.strategy(entry.proxy)
        return entry.decided.value

    # -- cache -------------------------------------------------------------------------------

    def _new_entry(self) -> _Entry:
        player = self.player_class(**self.player_params)
        proxy = _Opponent()
        length = -1 if self.match_length is None else int(self.match_length)
        for p in (player, proxy):
            p.set_match_attributes(length=length, game=self._game, noise=0)
        if self._stochastic:
            player.set_seed(0)  # creates player._random; reseeded before every strategy call
        return _Entry(player, proxy)

    def _build(self, my: Sequence[int], their: Sequence[int], n: int) -> _Entry:
        cache = self._cache
        while len(cache) >= self.cache_size:
            del cache[next(iter(cache))]
        entry = self._new_entry()
        self._advance(entry, my, their, n)
        return entry

    def _sync(self, entry: _Entry, my: Sequence[int], their: Sequence[int], n: int) -> bool:
        k = len(entry.seen_my)
        if n < k:
            return False
        if k and not (
            all(map(operator.eq, entry.seen_my, my))
            and all(map(operator.eq, entry.seen_their, their))
        ):
            return False
        if n > k:
            self._advance(entry, my, their, n)
        return True

    def _advance(self, entry: _Entry, my: Sequence[int], their: Sequence[int], n: int) -> None:
        """Feed rounds ``len(entry.seen_my) .. n-1`` to the entry (replaying decisions)."""
        player, proxy = entry.player, entry.proxy
        seen_my, seen_their = entry.seen_my, entry.seen_their
        for i in range(len(seen_my), n):
            if entry.decided is None:
                if self._stochastic:
                    player._random.seed(i)
                player.strategy(proxy)
            a, b = int(my[i]), int(their[i])
            if a not in (0, 1) or b not in (0, 1):
                raise ValueError(f"round {i}: moves must be 0 or 1, got {a!r} and {b!r}")
            play, coplay = _ACTIONS[a], _ACTIONS[b]
            player.update_history(play, coplay)
            proxy.update_history(coplay, play)
            seen_my.append(a)
            seen_their.append(b)
            entry.decided = None

    # -- pickling ----------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = {}  # ids are meaningless in another process; rebuilt on demand
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
