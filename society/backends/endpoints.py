"""A pool of OpenAI-compatible endpoints: least-outstanding choice, cool-down of failed ones.

The `openai` backend asks the pool for an endpoint before every attempt of a request:
the pool answers the endpoint with the fewest requests in flight among those that are up
(ties go to the one after the previous choice, so idle endpoints take turns). An endpoint
that fails (connection refused, timeout, a broken reply, 5xx or 429) is marked down for
`cooldown_s` seconds (at least the server's Retry-After); while others are up it gets no
new requests, and when every endpoint is down the one that comes back first is tried, so
a single-endpoint backend simply retries its server. A success marks it up again.

The pool is used from the backend's one event-loop thread only, so it needs no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Endpoint:
    """One server's state as seen by the client."""

    url: str
    style: str  # response_format in use: "json_schema" | "json_object" | "none"
    choice: bool  # whether choice requests carry their server-side constraint
    outstanding: int = 0
    down_until: float = 0.0
    served: int = 0  # replies received (HTTP 200 with a readable body)
    failures: int = 0  # failed attempts of any kind
    last_error: str = ""
    errors: dict[str, int] = field(default_factory=dict)  # failure kind -> count


class EndpointPool:
    """The endpoints of one backend and the rule that picks one per attempt."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        style: str,
        choice: bool,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("an endpoint pool needs at least one URL")
        self.endpoints = [Endpoint(u, style, choice) for u in urls]
        self.by_url = {e.url: e for e in self.endpoints}
        self.cooldown_s = float(cooldown_s)
        self._clock = clock
        self._turn = 0  # where the tie-break starts next

    def __len__(self) -> int:
        return len(self.endpoints)

    def pick(self, avoid: Collection[str] = ()) -> Endpoint:
        """The endpoint for the next attempt: up, not in `avoid` if possible, least busy.

        `avoid` holds the endpoints this request already failed on; they are taken only
        when nothing else is up.
        """
        now = self._clock()
        n = len(self.endpoints)
        order = [self.endpoints[(self._turn + k) % n] for k in range(n)]
        for pool in (
            [e for e in order if e.down_until <= now and e.url not in avoid],
            [e for e in order if e.down_until <= now],
        ):
            if pool:
                best = min(pool, key=lambda e: e.outstanding)  # first of the ties wins
                break
        else:  # every endpoint is cooling down: the one that comes back first
            best = min(order, key=lambda e: e.down_until)
        self._turn = (self.endpoints.index(best) + 1) % n
        return best

    def all_down(self, avoid: Collection[str] = ()) -> bool:
        """Whether no endpoint outside `avoid` is up right now."""
        now = self._clock()
        return not any(e.down_until <= now and e.url not in avoid for e in self.endpoints)

    def succeeded(self, e: Endpoint) -> None:
        """A reply came back: the endpoint is up."""
        e.served += 1
        e.down_until = 0.0

    def failed(self, e: Endpoint, kind: str, detail: str, *, down_s: float | None = None) -> None:
        """An attempt on `e` failed: count it and mark `e` down for the cool-down
        (or `down_s`, e.g. the server's Retry-After, when that is longer)."""
        e.failures += 1
        e.errors[kind] = e.errors.get(kind, 0) + 1
        e.last_error = detail
        wait = max(self.cooldown_s, down_s or 0.0)
        e.down_until = max(e.down_until, self._clock() + wait)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per endpoint: replies served, failed attempts by kind, requests in flight."""
        return {
            e.url: {
                "served": e.served,
                "failures": e.failures,
                "errors": dict(e.errors),
                "outstanding": e.outstanding,
            }
            for e in self.endpoints
        }


__all__ = ["Endpoint", "EndpointPool"]
