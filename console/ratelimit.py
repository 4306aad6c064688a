"""Per-key request limits of the REST API: a sliding one-minute window per key, in this
process (each console process enforces the limit on its own share; run one console process
per key budget, or put the limit in front of the proxy, when you scale out)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """`hit(key, limit)` → 0 when allowed, else the seconds until the next request may go."""

    def __init__(self, window_s: float = 60.0, now: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._now = now
        self._hits: dict[object, deque[float]] = {}

    def hit(self, key: object, limit: int) -> int:
        now = self._now()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= limit:
            return max(1, int(hits[0] + self.window_s - now) + 1)
        hits.append(now)
        return 0
