"""The sandbox's option routes over the bundled option sample, on a free port, at a fixed clock."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from aiohttp import web

from algocli.sandbox import history, options
from algocli.sandbox.app import load_bars
from algocli.sandbox.instruments import load_instruments
from algocli.sandbox.replay import to_utc_ns

ROOT = Path(__file__).resolve().parents[2]
OPTIONS_DATA = ROOT / "data" / "options"
EXPIRY = "2024-06-27"


@asynccontextmanager
async def option_routes(now: datetime, tokens: frozenset[str] = frozenset(), min_interval: float = 3.0):
    """Serve the option routes of ``data/options`` with the replay clock stopped at ``now`` (naive = IST).

    Yields ``(base_url, OptionsSandbox)``.
    """
    app = web.Application()
    clock = to_utc_ns(now)
    state = history.add_routes(app, load_bars(OPTIONS_DATA, prefer_intraday=False), now=lambda: clock)
    if tokens:
        state.token_ok = lambda token: token in tokens  # the hub's --token rule, without a hub
    listed, _ = load_instruments(OPTIONS_DATA)
    box = options.add_routes(app, listed)
    box.min_interval = min_interval
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", box
    finally:
        await runner.cleanup()
