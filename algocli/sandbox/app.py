"""The sandbox web server: the Dhan and Upstox protocol routes, ``/health``, and the replay.

``build_app`` mounts each broker's routes from ``algocli.sandbox.dhan`` and
``algocli.sandbox.upstox`` (each module exposes ``add_routes(app, hub)``). A broker whose
module or ``add_routes`` is missing is skipped with a warning, so the server still runs
with the other one. ``serve`` loads the CSV candles, listens, and replays them as ticks.

The data folder may also hold ``instruments.csv`` (the project's instrument list, not
candles): the brokers' instrument files are built from it (``algocli.sandbox.instruments``),
and its Upstox keys (``NSE_EQ|INE002A01018``) name the same instruments as the default
``NSE_EQ|2885`` spelling on every Upstox route.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiohttp import web

from algocli.data.csv_feed import file_stem, infer_interval_minutes, load_csv
from algocli.data.history import Bars
from algocli.errors import DataError, UsageError
from algocli.instruments.model import Instrument
from algocli.sandbox.exchange import Exchange
from algocli.sandbox.hub import Faults, TickHub
from algocli.sandbox.instruments import (INSTRUMENTS_FILE, UPSTOX_KEYS, UpstoxKeys, freeze_limits, load_instruments,
                                        option_ids)
from algocli.sandbox.instruments import add_routes as add_instrument_routes
from algocli.sandbox.replay import IST, Replayer

__all__ = ["HUB", "PROTOCOLS", "REPLAYER", "Listening", "available_protocols", "build_app", "instrument_for",
           "ist_text", "load_bars", "serve"]

_log = logging.getLogger(__name__)

HUB = web.AppKey("hub", TickHub)
EXCHANGE = web.AppKey("exchange", Exchange)
REPLAYER = web.AppKey("replayer", Replayer)
PROTOCOLS = web.AppKey("protocols", list)


def build_app(hub: TickHub, *, dhan: bool = True, upstox: bool = True,
              replayer: Replayer | None = None, instruments: Sequence[Instrument] = (),
              instruments_modified: float | None = None,
              history: Mapping[str, Bars] | None = None) -> web.Application:
    """The sandbox application.

    Args:
        hub: Tick fan-out shared by every protocol session.
        dhan: Mount the Dhan routes (``algocli.sandbox.dhan.add_routes``).
        upstox: Mount the Upstox routes (``algocli.sandbox.upstox.add_routes``).
        replayer: Reported by ``/health`` (instruments, ticks published); optional.
        instruments: The instrument list behind the brokers' instrument files and the
            Upstox key aliases; empty serves empty files and the default keys only.
        instruments_modified: ``Last-Modified`` of the instrument files (epoch seconds).
        history: Candles the historical routes serve up to the replay clock (default the
            replayed ones).

    Returns:
        An application with ``GET /health`` and the mounted protocols; ``app[PROTOCOLS]``
        lists the ones mounted.
    """
    app = web.Application()
    app[HUB] = hub
    keys = app[UPSTOX_KEYS] = UpstoxKeys.of(instruments)  # before the Upstox modules mount: they read it
    if replayer is not None:
        app[REPLAYER] = replayer
    # order times follow the replay clock: before the first tick, the replay's first tick
    exchange = app[EXCHANGE] = Exchange(start_ns=replayer.first_ns if replayer is not None else None,
                                        freeze=freeze_limits(instruments),  # the list's freeze quantities
                                        unbanded=option_ids(instruments))
    hub.add_listener(exchange.on_tick)
    hub.add_close_listener(exchange.close_session)  # the replay's session closes expire orders
    mounted = []
    for name, wanted in (("dhan", dhan), ("upstox", upstox)):
        if wanted and _mount(app, hub, name):
            mounted.append(name)
            # order entry, portfolio and order-update streams: own accounts, the same matching engine; not
            # without the protocol they are part of (its authentication and error envelopes)
            _mount_orders(app, hub, exchange, f"{name}_orders")
    app[PROTOCOLS] = mounted
    importlib.import_module("algocli.sandbox.history").add_routes(app, replayer, dhan=dhan, upstox=upstox,
                                                                  instrument_keys=keys.by_instrument(),
                                                                  history=history)
    add_instrument_routes(app, instruments, dhan=dhan, upstox=upstox, modified=instruments_modified)
    # option chains and expiries, from the historical routes' bars and replay clock
    importlib.import_module("algocli.sandbox.options").add_routes(app, instruments, dhan=dhan, upstox=upstox)
    app.router.add_get("/health", _health)
    return app


def available_protocols() -> tuple[str, ...]:
    """The broker protocols this installation can serve (their modules exist), without serving them."""
    from importlib.util import find_spec

    return tuple(name for name in ("dhan", "upstox") if find_spec(f"algocli.sandbox.{name}") is not None)


def _mount_orders(app: web.Application, hub: TickHub, exchange: Exchange, module: str) -> None:
    try:
        mod = importlib.import_module(f"algocli.sandbox.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"algocli.sandbox.{module}":
            raise
        return
    mod.add_routes(app, hub, exchange)


def _mount(app: web.Application, hub: TickHub, name: str) -> bool:
    module_name = f"algocli.sandbox.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the module exists but something it imports does not: a real error
        _log.warning("%s is not available; the sandbox runs without the %s protocol", module_name, name)
        return False
    add_routes = getattr(module, "add_routes", None)
    if not callable(add_routes):
        _log.warning("%s has no add_routes(app, hub); the sandbox runs without the %s protocol",
                     module_name, name)
        return False
    add_routes(app, hub)
    return True


async def _health(request: web.Request) -> web.Response:
    app = request.app
    hub = app[HUB]
    replayer = app.get(REPLAYER)
    body = {
        "status": "ok",
        "protocols": app[PROTOCOLS],
        "instruments": replayer.instruments if replayer is not None else sorted(hub.last),
        "ticks_published": replayer.published if replayer is not None else None,
        "ticks_total": replayer.total if replayer is not None else None,
        "replay_done": replayer.done if replayer is not None else None,
        "speed": replayer.speed if replayer is not None else None,
        "exchange_time_ns": replayer.exchange_ns if replayer is not None else None,
        "clients": len(getattr(hub, "_queues", ())),
    }
    return web.json_response(body)


def instrument_for(path: Path) -> str:
    """``NSE_EQ_1333.csv`` -> ``NSE_EQ:1333`` (the last ``_`` stands for the ``:``)."""
    stem = Path(path).stem
    segment, sep, security = stem.rpartition("_")
    if not sep or not segment or not security:
        raise DataError(path, "file name is not SEGMENT_ID.csv (e.g. NSE_EQ_1333.csv for NSE_EQ:1333); "
                              "rename it or name the instruments to replay")
    return f"{segment}:{security}"


def load_bars(data_dir: Path, instruments: list[str] | None = None,
              warn: Callable[[str], None] | None = None, *, prefer_intraday: bool = True) -> dict[str, Bars]:
    """Load the candles to replay.

    Args:
        data_dir: Folder of ``SEGMENT_ID.csv`` files (``NSE_EQ:1333`` is ``NSE_EQ_1333.csv``);
            its ``instruments.csv`` is the instrument list, not candles, and is skipped.
        instruments: Ids to load; None loads every ``*.csv`` in the folder.
        warn: Receives one line per safe repair made while loading.
        prefer_intraday: With ``instruments`` None, leave daily files out when intraday ones
            exist (for the replay); False keeps every file (for the historical routes).

    Raises:
        DataError: The folder or a file is missing or invalid, or there is nothing to load.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, "is not a folder; pass --data with the folder of SEGMENT_ID.csv files")
    if instruments is None:
        files = sorted(f for f in data_dir.glob("*.csv") if f.name != INSTRUMENTS_FILE)
        if not files:
            raise DataError(data_dir, "holds no *.csv files; add NSE_EQ_1333.csv-style candle files")
        pairs = [(instrument_for(f), f) for f in files]
    else:
        pairs = [_data_file(data_dir, i) for i in instruments]
    out: dict[str, Bars] = {}
    for instrument, path in pairs:
        if not path.is_file():
            raise DataError(path, f"no data file for {instrument}; expected {path.name} in {data_dir}")
        out[instrument] = load_csv(path, instrument, warn=warn)
    if instruments is None and prefer_intraday:
        out = _prefer_intraday(out, warn)
    return out


def _data_file(data_dir: Path, instrument: str) -> tuple[str, Path]:
    """The id and candle file of ``instrument``: a broker id's own file (``NSE_EQ:1333`` is
    ``NSE_EQ_1333.csv``), or for a name (``NSE:HDFCBANK``) the file of one of its ids that the
    folder's ``instruments.csv`` lists.

    Raises:
        ConfigError: A name the list does not hold (with its near miss).
    """
    own = data_dir / f"{file_stem(instrument)}.csv"
    listed = [] if own.is_file() else load_instruments(data_dir)[0]
    if not listed:
        return instrument, own
    from algocli.instruments.master import InstrumentMaster

    inst = InstrumentMaster(listed, source=str(data_dir / INSTRUMENTS_FILE)).resolve(instrument, field="--instrument")
    files = [(ident, data_dir / f"{file_stem(ident)}.csv") for ident in inst.ids() if ident != inst.hrn]
    return next(((i, p) for i, p in files if p.is_file()), files[0] if files else (instrument, own))


def _prefer_intraday(bars: dict[str, Bars], warn: Callable[[str], None] | None) -> dict[str, Bars]:
    """Leave daily files out of a whole-folder replay that also has intraday files.

    Daily and minute files usually cover different years; replaying both from the earliest
    bar would spend the session on years of daily bars before the first minute bar.
    """
    intraday = {i: b for i, b in bars.items() if (infer_interval_minutes(b.ts) or 375) < 375}
    if not intraday or len(intraday) == len(bars):
        return bars
    skipped = sorted(set(bars) - set(intraday))
    if warn is not None:
        warn(f"replaying the intraday files only; daily files left out: {', '.join(skipped)} "
             "(name them with --instrument to replay them)")
    return intraday


@dataclass(frozen=True, slots=True)
class Listening:
    """What ``serve`` reports once the server accepts connections."""

    host: str
    port: int
    protocols: tuple[str, ...]
    instruments: tuple[str, ...]
    ticks_total: int
    first_ns: int | None = None  # exchange time of the first tick, UTC ns


async def serve(data_dir: Path, instruments: list[str] | None = None, *, host: str = "127.0.0.1",
                port: int = 8765, speed: float = 60.0, start: datetime | None = None,
                faults: Faults | None = None, tokens: list[str] | tuple[str, ...] = (),
                on_ready: Callable[[Listening], None] | None = None, dhan: bool = True,
                upstox: bool = True, warn: Callable[[str], None] | None = None,
                wait_for_client: bool = False) -> None:
    """Load candles, listen on ``host:port`` and replay them as ticks until cancelled.

    The server keeps running after the replay has published its last tick; cancel the
    task (Ctrl-C in ``algo sandbox``) to stop it.

    Args:
        data_dir: Folder of candle CSV files, and optionally ``instruments.csv`` (the list
            behind the brokers' instrument files; without it they are empty).
        instruments: Ids to replay; None replays every ``*.csv`` in ``data_dir``.
        host, port: Where to listen; port 0 picks a free port (reported to ``on_ready``).
        speed: Exchange seconds per wall second; 0 = as fast as possible.
        start: Replay bars from this moment on (naive = IST).
        faults: Fault injection for the protocol sessions.
        tokens: Access tokens to accept; empty accepts any token.
        on_ready: Called once the server is listening.
        dhan, upstox: Which protocols to mount.
        warn: Receives data-loading warnings.
        wait_for_client: Hold the replay until the first client subscribes, so that client
            sees every tick from the first bar (tests comparing paper with backtest need it).

    Raises:
        DataError: The candles or ``instruments.csv`` cannot be loaded, or no bar starts at
            or after ``start``.
        UsageError: The address cannot be bound.
    """
    # History is every file (up to the replay clock, so bars before --start can be downloaded);
    # the replay leaves daily files out when intraday ones exist.
    history = load_bars(Path(data_dir), instruments, warn=warn, prefer_intraday=False)
    bars = history if instruments is not None else _prefer_intraday(history, warn)
    listed, listed_at = load_instruments(Path(data_dir))
    hub = TickHub(faults=faults or Faults(), valid_tokens=set(tokens))
    replayer = Replayer(bars, hub, speed=speed, start=start)
    if replayer.total == 0 and start is not None:
        last = max(int(b.ts[-1]) for b in bars.values())
        raise DataError(data_dir, f"no bars at or after {start:%Y-%m-%d %H:%M}; the data ends at "
                                  f"{ist_text(last)} IST. Pick an earlier --start")
    app = build_app(hub, dhan=dhan, upstox=upstox, replayer=replayer, instruments=listed,
                    instruments_modified=listed_at, history=history)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                             "pick another --port (or stop whatever holds it)") from None
        bound = runner.addresses[0][1] if runner.addresses else port
        if on_ready is not None:
            on_ready(Listening(host, bound, tuple(app[PROTOCOLS]), tuple(replayer.instruments), replayer.total,
                               replayer.first_ns))
        if wait_for_client:
            await hub.first_subscription.wait()
        await replayer.run()
        _log.info("replay finished: %d ticks published", replayer.published)
        await asyncio.Event().wait()  # keep serving until cancelled
    finally:
        await runner.cleanup()


def ist_text(ns: int) -> str:
    """``YYYY-MM-DD HH:MM`` of UTC nanoseconds, in IST."""
    return datetime.fromtimestamp(ns / 1e9, IST).strftime("%Y-%m-%d %H:%M")
