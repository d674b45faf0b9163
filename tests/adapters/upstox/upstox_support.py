"""A real aiohttp server on 127.0.0.1 with the Upstox sandbox routes, and small async helpers."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from algocli.adapters.upstox.settings import UpstoxSettings
from algocli.domain.models import Tick
from algocli.sandbox.hub import TickHub
from algocli.sandbox.upstox import SANDBOX_KEY, UpstoxSandbox, add_routes

T0_MS = 1_767_325_500_123  # 2026-01-02 03:45:00.123 UTC = 09:15:00.123 IST


@dataclass
class Server:
    hub: TickHub
    sandbox: UpstoxSandbox
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def serve(hub: TickHub | None = None, *, middlewares=(), **route_options):
    """Run the sandbox routes on an ephemeral loopback port for the duration of the block."""
    hub = hub if hub is not None else TickHub()
    app = web.Application(middlewares=list(middlewares))
    add_routes(app, hub, **route_options)
    runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Server(hub, app[SANDBOX_KEY], port)
    finally:
        await runner.cleanup()


class TokenBox:
    """A settings factory whose token a test can change between connections."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token
        self.calls = 0

    def __call__(self) -> UpstoxSettings:
        self.calls += 1
        return UpstoxSettings(access_token=self.token, api_base_url=self.base_url)


async def until(condition, timeout: float = 3.0, what: str = "condition") -> None:
    """Poll ``condition()`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def tick(instrument: str, i: int, **extra) -> Tick:
    """A tick at T0 + i seconds (millisecond-exact) with a price that encodes ``i``."""
    return Tick(instrument, (T0_MS + i * 1000) * 1_000_000, 1500.0 + i * 0.05, 10 + i, **extra)


def failing_authorize(times: int, status: int = 503):
    """Middleware: the first ``times`` authorize calls answer ``status``; records call times."""
    calls: list[float] = []

    @web.middleware
    async def middleware(request, handler):
        if request.path.endswith("/authorize"):
            calls.append(time.monotonic())
            if len(calls) <= times:
                return web.json_response({"status": "error", "errors": [{"errorCode": "UDAPI100500",
                                          "message": "Something went wrong"}]}, status=status)
        return await handler(request)

    middleware.calls = calls
    return middleware
