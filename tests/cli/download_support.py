"""The sandbox's historical routes on 127.0.0.1 for the ``download-data`` tests.

``HistoryServer`` runs the sandbox app (``algocli.sandbox.history.add_routes``) on a real
socket in a background thread with its own event loop, so the code under test can run its
own ``asyncio.run`` (as the CLI does). It serves the bundled data: ``NSE_EQ:2885``
(RELIANCE, 1-minute bars 10-14 June 2024) and ``NSE_EQ:1333``/``NSE_EQ:1594`` (HDFCBANK and
INFY, daily bars 2019-2024), with the Upstox ISIN keys of ``data/instruments.csv``.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from algocli.adapters.dhan.settings import DhanSettings
from algocli.adapters.upstox.settings import UpstoxSettings
from algocli.data.csv_feed import load_csv
from algocli.data.history import Bars
from algocli.errors import ConfigError
from algocli.instruments.model import Instrument
from algocli.instruments.table import read_instruments
from algocli.sandbox.history import HistorySandbox, add_routes
from algocli.sandbox.hub import TickHub

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-download-5d1e"
CLIENT_ID = "1100001234"
INSTRUMENTS = read_instruments(ROOT / "data" / "instruments.csv")
BUNDLED = {i: load_csv(ROOT / "data" / f"{i.replace(':', '_')}.csv", i)
           for i in ("NSE_EQ:2885", "NSE_EQ:1333", "NSE_EQ:1594")}


def table_resolver(text: str) -> Instrument:
    """Resolve HRNs and broker ids from data/instruments.csv, like the instrument master."""
    for inst in INSTRUMENTS:
        if text.strip().upper() in (i.upper() for i in inst.ids()):
            return inst
    raise ConfigError(f"instrument: {text!r} is not in data/instruments.csv")


class HistoryServer:
    """Serve historical candles on 127.0.0.1 until the ``with`` block ends.

    Attributes:
        state: The routes' state: ``requests`` log, ``fail_next``/``fail_always`` faults.
        port: The port listened on.
    """

    def __init__(self, bars: dict[str, Bars] | None = None, tokens: set[str] | None = None,
                 middlewares: tuple = ()) -> None:
        self.bars = BUNDLED if bars is None else bars
        self.tokens = {TOKEN} if tokens is None else tokens
        self.middlewares = middlewares
        self.state: HistorySandbox | None = None
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surface a start-up failure in the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application(middlewares=list(self.middlewares))
        self._mount(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def _mount(self, app: web.Application) -> None:
        """Add the routes served (subclasses add more)."""
        keys = {i.dhan_id: i.upstox_key for i in INSTRUMENTS if i.dhan_id and i.upstox_key}
        self.state = add_routes(app, self.bars, hub=TickHub(valid_tokens=set(self.tokens)), instrument_keys=keys)

    def __enter__(self) -> HistoryServer:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None or not self.port:
            raise RuntimeError(f"the history sandbox did not start: {self._error!r}")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def requests(self, route: str | None = None) -> list[dict]:
        """Logged requests, optionally only one route's (``dhan:intraday``, ``upstox:historical``, ...)."""
        return [body for name, body in list(self.state.requests) if route is None or name == route]

    def clear(self) -> None:
        self.state.requests.clear()

    def dhan(self, token: str = TOKEN) -> DhanSettings:
        return DhanSettings(client_id=CLIENT_ID, access_token=SecretStr(token),
                            api_base_url=f"http://127.0.0.1:{self.port}/v2")

    def upstox(self, token: str = TOKEN) -> UpstoxSettings:
        return UpstoxSettings(access_token=SecretStr(token), api_base_url=f"http://127.0.0.1:{self.port}")

    def settings(self, source: str, token: str = TOKEN):
        return self.dhan(token) if source == "dhan" else self.upstox(token)

    def env(self, source: str, token: str = TOKEN) -> dict[str, str]:
        """The environment the CLI reads its credentials and base URL from."""
        if source == "dhan":
            return {"DHAN_API_BASE_URL": f"http://127.0.0.1:{self.port}/v2", "DHAN_ACCESS_TOKEN": token,
                    "DHAN_CLIENT_ID": CLIENT_ID}
        return {"UPSTOX_API_BASE_URL": f"http://127.0.0.1:{self.port}", "UPSTOX_ACCESS_TOKEN": token}


# --- the command in a child process, for real signals ---------------------------------------

_CHILD = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
import algocli.instruments
from algocli.instruments.master import InstrumentMaster
from algocli.instruments.table import read_instruments

rows = read_instruments({listing!r})
algocli.instruments.open_master = lambda **kw: InstrumentMaster(rows, source="the test instrument list")
from algocli.cli.main import main

sys.exit(main(sys.argv[1:]))
"""


def start_cli(args: list[str], env: dict[str, str], cwd: Path, listing: Path = ROOT / "data" / "instruments.csv"):
    """``algo`` with ``args`` in a child process (``subprocess.Popen``, text pipes), its instrument
    master read from ``listing`` instead of the brokers' servers; ``env`` is added to this one's."""
    import os
    import subprocess
    import sys

    code = _CHILD.format(root=str(ROOT), tests=str(ROOT / "tests"), listing=str(listing))
    full = {**os.environ, **env, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def slow(seconds: float):
    """An aiohttp middleware that answers every request ``seconds`` late (a download to interrupt);
    its ``delay["seconds"]`` can be changed while it serves."""
    delay = {"seconds": seconds}

    @web.middleware
    async def middleware(request, handler):
        await asyncio.sleep(delay["seconds"])
        return await handler(request)

    middleware.delay = delay
    return middleware
