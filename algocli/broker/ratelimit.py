"""Rate limiting shared by every strategy on one broker account.

One ``RateLimiter`` per (broker, account, API class) lives in a process-wide registry, so
all strategies and all code paths (orders, reads, history) draw from the same budget.
Each limiter holds several sliding windows (per second, per minute, ...) and waits until
every window has room. The windows come from the broker's registered ``BrokerSpec``
(``algocli.broker_specs``), a little under its published limits; a broker that is not
registered is an error, never another broker's limits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Callable

from algocli.broker.spec import broker_spec


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
    """The shared limiter of one broker account and API class.

    Args:
        broker: A registered broker's name.
        account: The account's key (a client id, a hash of a token; never a secret).
        api_class: ``order``, ``data``, ``other``...; a class the broker does not list
            shares the ``other`` windows (with a limiter of its own).

    Raises:
        ConfigError: ``broker`` is not registered in ``algocli.broker_specs``.
    """
    key = (broker, account, api_class)
    found = _REGISTRY.get(key)
    if found is None:
        found = _REGISTRY[key] = RateLimiter(broker_spec(broker).windows(api_class))
    return found
