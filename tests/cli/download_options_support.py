"""The sandbox's historical and option routes on 127.0.0.1 for the ``download-data --options`` tests.

``OptionsServer`` serves a folder laid out like ``data/options`` (its ``instruments.csv`` and
one CSV per instrument id): the bundled sample by default, or a folder a test crafted. The
Upstox keys come from the list, as ``algo sandbox`` maps them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from aiohttp import web

from algocli.data.history import Bars
from algocli.instruments.model import Instrument
from algocli.instruments.table import read_instruments
from algocli.sandbox import history, options
from algocli.sandbox.app import load_bars
from algocli.sandbox.hub import TickHub
from algocli.sandbox.replay import to_utc_ns
from cli.download_support import ROOT, HistoryServer

OPTIONS_DATA = ROOT / "data" / "options"


class OptionsServer(HistoryServer):
    """``HistoryServer`` with the option routes, over ``folder`` (default the bundled option sample).

    Args:
        folder: ``instruments.csv`` and one ``SEGMENT_ID.csv`` per instrument.
        now: The replay clock (naive = IST), or None: every bar is history.
    """

    def __init__(self, folder: Path = OPTIONS_DATA, now: datetime | None = None) -> None:
        self.folder = Path(folder)
        self.listed: list[Instrument] = read_instruments(self.folder / "instruments.csv")
        bars: dict[str, Bars] = load_bars(self.folder, prefer_intraday=False)
        super().__init__(bars)
        self.clock = None if now is None else to_utc_ns(now)
        self.box = None

    def resolve(self, text: str) -> Instrument:
        from algocli.errors import ConfigError

        for inst in self.listed:
            if text.strip().upper() in (i.upper() for i in inst.ids()):
                return inst
        raise ConfigError(f"instrument: {text!r} is not listed")

    def _mount(self, app: web.Application) -> None:
        keys = {i.dhan_id: i.upstox_key for i in self.listed if i.dhan_id and i.upstox_key}
        clock = self.clock
        self.state = history.add_routes(app, self.bars, hub=TickHub(valid_tokens=set(self.tokens)),
                                        instrument_keys=keys, now=(lambda: clock) if clock is not None else None)
        self.box = options.add_routes(app, self.listed)

    def option_requests(self, path: str) -> list[dict]:
        return [body for p, body in list(self.box.requests) if p == path or p.startswith(path)]
