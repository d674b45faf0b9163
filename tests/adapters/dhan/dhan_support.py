"""Shared pieces for the Dhan feed tests: a real sandbox server on 127.0.0.1, settings, waits.

``tests`` is on the pytest ``pythonpath``, so this module is ``adapters.dhan.dhan_support``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone

from aiohttp import web
from pydantic import SecretStr

from algocli.adapters.dhan.settings import DhanSettings
from algocli.domain.models import Tick
from algocli.sandbox.dhan import DHAN_FEED_KEY, DhanFeedSandbox, add_routes
from algocli.sandbox.hub import TickHub

IST = timezone(timedelta(hours=5, minutes=30))
# Wednesday 4 March 2026, 11:00 IST: inside the NSE session.
MARKET_T0 = datetime(2026, 3, 4, 11, 0, tzinfo=IST).timestamp()
CLIENT_ID = "1100001234"


def market_clock():
    """An epoch-seconds clock that runs in real time from a weekday 11:00 IST."""
    t0 = time.monotonic()
    return lambda: MARKET_T0 + (time.monotonic() - t0)


def closed_clock():
    """An epoch-seconds clock that runs in real time from a Sunday noon IST (market closed)."""
    sunday = datetime(2026, 3, 8, 12, 0, tzinfo=IST).timestamp()
    t0 = time.monotonic()
    return lambda: sunday + (time.monotonic() - t0)


def tick(instrument: str, ltp: float, *, ts_s: int = 1_772_602_200, volume: int = 1000, ltq: int = 5,
         bid: float | None = None, ask: float | None = None, oi: int | None = None) -> Tick:
    """A hub tick; ``ts_s`` defaults to 2026-03-04 05:30:00 UTC = 11:00:00 IST."""
    return Tick(instrument, ts_s * 1_000_000_000, ltp, ltq, volume, bid, ask,
                10 if bid else None, 20 if ask else None, oi)


class Credentials:
    """Mutable token and client id; ``factory`` builds fresh ``DhanSettings`` on each call."""

    def __init__(self, url: str, token: str = "tok-A", client_id: str = CLIENT_ID) -> None:
        self.url, self.token, self.client_id = url, token, client_id
        self.calls = 0

    def factory(self) -> DhanSettings:
        self.calls += 1
        return DhanSettings(client_id=self.client_id, access_token=SecretStr(self.token), feed_url=self.url)


class SandboxServer:
    """The sandbox's Dhan feed on a random 127.0.0.1 port, in the running event loop."""

    def __init__(self, hub: TickHub | None = None, **app_routes) -> None:
        self.hub = hub or TickHub()
        self.app = web.Application()
        add_routes(self.app, self.hub)
        for path, handler in app_routes.items():
            self.app.router.add_get(path, handler)
        self.runner = web.AppRunner(self.app)

    @property
    def sandbox(self) -> DhanFeedSandbox:
        return self.app[DHAN_FEED_KEY]

    async def __aenter__(self) -> SandboxServer:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        self.base = f"ws://127.0.0.1:{self.port}"
        self.url = f"{self.base}/dhan/feed"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


class ThreadedSandbox:
    """The same server in its own thread and event loop (for the blocking official SDK)."""

    def __init__(self, hub: TickHub | None = None) -> None:
        self.hub = hub or TickHub()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = SandboxServer(self.hub)
        self.loop.run_until_complete(self.server.__aenter__())
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.server.__aexit__(None, None, None))
        self.loop.close()

    def __enter__(self) -> ThreadedSandbox:
        self._thread.start()
        assert self._ready.wait(5), "sandbox thread did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def call(self, fn, *args) -> None:
        """Run ``fn(*args)`` on the server's loop (the hub is not thread-safe)."""
        done = threading.Event()

        def wrapper():
            try:
                fn(*args)
            finally:
                done.set()

        self.loop.call_soon_threadsafe(wrapper)
        assert done.wait(5)


async def wait_until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 10 ms; fail the test if it stays false for ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def run(coro, timeout: float = 15.0):
    """Run a test coroutine with a hard time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
