"""Rate limiting shared by every strategy on one broker account.

One ``RateLimiter`` per (broker, account, API class) lives in a process-wide registry, so
all strategies and all code paths (orders, reads, history) draw from the same budget.
Each limiter holds several sliding windows (per second, per minute, ...) and waits until
every window has room. The defaults stay below the published limits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Callable

# (calls, seconds) windows, a little under each broker's published limits
DHAN_LIMITS = {
    "order": ((10, 1.0), (240, 60.0), (950, 3600.0)),     # published 25/s (10/s SEBI algo), 250/min, 1000/h
    "data": ((4, 1.0),),                                    # published 5/s
    "other": ((18, 1.0),),                                  # published 20/s
}
UPSTOX_LIMITS = {
    "order": ((9, 1.0), (480, 60.0), (1900, 1800.0)),      # published 10/s, 500/min, 2000/30 min
    "other": ((45, 1.0), (480, 60.0), (1900, 1800.0)),     # published 50/s, 500/min, 2000/30 min
}


class RateLimiter:
    """Sliding-window limiter over several windows; ``await acquire()`` before each call."""

    def __init__(self, windows: tuple[tuple[int, float], ...], *, clock: Callable[[], float] = time.monotonic,
                 sleep=asyncio.sleep) -> None:
        self.windows = windows
        self._clock = clock
        self._sleep = sleep
        self._calls: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.waited = 0.0

    def _delay(self, now: float) -> float:
        longest = max(w for _, w in self.windows)
        while self._calls and now - self._calls[0] >= longest:
            self._calls.popleft()
        delay = 0.0
        for limit, window in self.windows:
            inside = [t for t in self._calls if now - t < window]
            if len(inside) >= limit:
                delay = max(delay, window - (now - inside[-limit]))
        return delay

    async def acquire(self) -> None:
        """Wait until a call fits in every window, then record it."""
        async with self._lock:
            while True:
                now = self._clock()
                delay = self._delay(now)
                if delay <= 0:
                    self._calls.append(now)
                    return
                self.waited += delay
                await self._sleep(delay)


_REGISTRY: dict[tuple[str, str, str], RateLimiter] = {}


def limiter(broker: str, account: str, api_class: str) -> RateLimiter:
    """The shared limiter of one broker account and API class."""
    key = (broker, account, api_class)
    found = _REGISTRY.get(key)
    if found is None:
        table = DHAN_LIMITS if broker == "dhan" else UPSTOX_LIMITS
        found = _REGISTRY[key] = RateLimiter(table.get(api_class) or table["other"])
    return found
