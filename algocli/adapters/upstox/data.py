"""``UpstoxDataFeed``: live ticks from the Upstox Market Data Feed V3.

Instruments are our ``SEGMENT:ID`` ids. Each is sent to Upstox as an instrument key:
``config.instrument_keys[id]`` when given (``{"NSE_EQ:1333": "NSE_EQ|INE040A01034"}``),
otherwise ``SEGMENT|ID`` (``NSE_EQ:1333`` → ``NSE_EQ|1333``). Ticks come back under the
ids they were subscribed as.

Usage::

    feed = UpstoxDataFeed(UpstoxFeedConfig(mode="full"))
    feed.on_tick(print)
    await feed.subscribe(["NSE_EQ:1333"])
    await feed.connect()        # returns once subscribed; FeedAuthError on a bad token
    ...
    await feed.disconnect()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

import aiohttp

from algocli.adapters.upstox.parsing import FrameDecoder, to_instrument_key
from algocli.adapters.upstox.proto import INITIAL_FEED
from algocli.adapters.upstox.websocket import MODE_LIMITS, FeedConnection, build_request
from algocli.adapters.upstox.settings import UpstoxSettings
from algocli.adapters.upstox.plugins import UpstoxFeedConfig  # the data: model lives with the feed plugins
from algocli.data.feed import candles_from_ticks, FeedAuthError, FeedStatus
from algocli.data.reconnect import Backoff, ReplayPace, Watchdog, nse_session_start
from algocli.domain.models import Tick
from algocli.errors import BrokerError, ConfigError

_log = logging.getLogger(__name__)
_OPEN = "NORMAL_OPEN"


class UpstoxDataFeed:
    """A ``DataFeed`` over Upstox Market Data Feed V3.

    Args:
        config: Mode, key mapping and timing; defaults to ltpc mode.
        settings_factory: Called on every (re)connect for the current token and API base
            URL, so a token renewed in the environment or ``.env`` is picked up.
        clock: Epoch seconds, for the stall watchdog.
        session_start: ``now`` → epoch seconds when today's session opened, or None while
            closed. Consulted only for segments whose status Upstox has not reported in
            ``market_info``; defaults to the NSE equity session (09:15-15:30 IST).

    Attributes:
        in_order: True for a replay in exchange-time order (``algo sandbox``; the sandbox feed sets
            it). Its watchdog then judges silence by the replay's clock, not the market status or
            the wall clock's hours (``algocli.data.reconnect.ReplayPace``).
    """

    Config = UpstoxFeedConfig

    def __init__(self, config: UpstoxFeedConfig | None = None, *,
                 settings_factory: Callable[[], UpstoxSettings] = UpstoxSettings,
                 clock: Callable[[], float] = time.time,
                 session_start: Callable[[float], float | None] = nse_session_start) -> None:
        self.config = config or UpstoxFeedConfig()
        self.status = FeedStatus(name="upstox")
        self.market_status: dict[str, str] = {}  # segment → MarketStatus name, from market_info
        self._settings_factory = settings_factory
        self._clock = clock
        self._session_start = session_start
        self._status_at = 0.0  # clock() when market_info last arrived
        self.in_order = False
        self.replay = ReplayPace(clock)  # a replay's ticks (``in_order``), for its watchdog
        self._keys: dict[str, str] = {}  # our id → instrument key, in subscription order
        self._decoder = FrameDecoder({v: k for k, v in self.config.instrument_keys.items()})
        self._tick_callbacks: list[Callable[[Tick], None]] = []
        self._candle_callbacks: list[Callable[..., None]] = []
        self._last: dict[str, tuple] = {}  # instrument → identity of the last tick delivered
        self._conn: FeedConnection | None = None
        self._task: asyncio.Task | None = None

    # -- DataFeed -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Start the connection task; return once the subscription is sent.

        Raises:
            FeedAuthError: The token is missing or Upstox rejected it.
            BrokerError: No subscribed socket within ``connect_timeout`` (data.connect_timeout); it
                names UPSTOX_API_BASE_URL, where the authorize request goes.
        """
        if self._task is not None and not self._task.done():
            return
        cfg = self.config
        self._conn = FeedConnection(
            status=self.status, on_open=self._on_open, on_frame=self._on_frame,
            watchdog=Watchdog(cfg.stall_timeout, clock=self._clock, session_start=self.session_start,
                              tolerance=lambda: self.replay.tolerance() if self.in_order else 0.0),
            settings_factory=self._settings_factory,
            backoff=Backoff(cfg.backoff_initial, cfg.backoff_max), heartbeat=cfg.heartbeat)
        self._task = asyncio.create_task(self._conn.run(), name="upstox-feed")
        self._task.add_done_callback(_retrieve)  # a later fatal error is logged and kept in status
        ready = asyncio.create_task(self._conn.ready.wait())
        try:
            await asyncio.wait({ready, self._task}, timeout=cfg.connect_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self._task.done():
            exc = self._task.exception()
            self._task = None
            if exc is not None:
                raise exc
            return
        if not self._conn.ready.is_set():
            why = self.status.last_error or "no answer"
            await self.disconnect()
            raise BrokerError(f"Upstox market feed not connected after {cfg.connect_timeout:g}s ({why}); "
                              "check the network and UPSTOX_API_BASE_URL")

    async def disconnect(self) -> None:
        """Close the socket and stop reconnecting."""
        conn, task = self._conn, self._task
        self._task = None
        if conn is not None:
            conn.stop()
            ws = conn.ws
            if ws is not None and not ws.closed:
                try:
                    await asyncio.wait_for(ws.close(), 2.0)
                except (asyncio.TimeoutError, aiohttp.ClientError, OSError):
                    pass
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(task, 3.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()
            except FeedAuthError:
                pass
        self.status.connected = False

    @property
    def error(self) -> Exception | None:
        """The fatal error that stopped the feed, if any."""
        task = self._task
        if task is not None and task.done() and not task.cancelled():
            return task.exception()
        return None

    async def wait_closed(self) -> None:
        """Wait until the feed stops; raises ``FeedAuthError`` if the token was rejected."""
        if self._task is not None:
            await self._task

    async def subscribe(self, instruments: list[str]) -> None:
        """Add instruments; sent at once when connected, and again after every reconnect.

        Raises:
            ConfigError: More instruments than Upstox allows in the configured mode.
            ValueError: An instrument id that is not ``SEGMENT:ID`` and has no mapping.
        """
        new = {i: to_instrument_key(i, self.config.instrument_keys) for i in instruments if i not in self._keys}
        self._check_limit(len(self._keys) + len(new))
        self._keys.update(new)
        for instrument, key in new.items():
            self._decoder.key_map[key] = instrument
        if new:
            await self._send(build_request("sub", list(new.values()), self.config.mode))

    async def unsubscribe(self, instruments: list[str]) -> None:
        gone = [self._keys.pop(i) for i in instruments if i in self._keys]
        if gone:
            await self._send(build_request("unsub", gone))

    def on_tick(self, callback: Callable[[Tick], None]) -> None:
        self._tick_callbacks.append(callback)

    def on_candle(self, callback: Callable[..., None], interval: str = "1m") -> None:
        """Receive closed candles of ``interval`` built from this feed's ticks."""
        self._candle_callbacks.append(callback)
        self._tick_callbacks.append(candles_from_ticks(callback, interval))

    async def get_historical(self, instrument: str, start: datetime, end: datetime, interval: str):
        """Candles of ``instrument`` from Upstox's v3 historical-candle API (past days in
        calls within Upstox's span limits, today from the intraday endpoint).

        The instrument key comes from ``config.instrument_keys`` or the ``SEGMENT|ID`` rule.
        ``start`` and ``end`` are inclusive: a ``date`` covers its whole IST day and a naive
        ``datetime`` is IST. The settings are read afresh, so a renewed token is used.

        Returns:
            ``algocli.data.history.Bars``: sorted by bar start (int64 UTC ns), float64
            OHLCV columns, ``oi`` for derivative segments.

        Raises:
            ConfigError: Bad instrument, interval or range.
            FeedAuthError: Upstox refused the token; log in again.
            BrokerError: Upstox rejected the request or kept failing.
        """
        from algocli.adapters.upstox.http import historical

        async with aiohttp.ClientSession() as session:
            return await historical(session, self._settings_factory, instrument, start, end, interval,
                                    instrument_keys=self.config.instrument_keys)

    # -- internals --------------------------------------------------------------------------

    @property
    def subscriptions(self) -> dict[str, str]:
        """Our id → Upstox instrument key, for everything currently subscribed."""
        return dict(self._keys)

    def session_start(self, now: float) -> float | None:
        """When silence started to count as a fault (epoch seconds), or None while it is normal.

        A subscribed segment that ``market_info`` reports ``NORMAL_OPEN`` makes silence a
        fault; if every subscribed segment is reported and none is open, silence is normal;
        otherwise the session clock decides.
        """
        segments = {key.partition("|")[0] for key in self._keys.values()}
        if not segments:
            return None
        if self.in_order:  # a replay: its own clock, whatever the market status says
            return self.replay.session_start(now)
        known = [self.market_status.get(s) for s in segments]
        if _OPEN in known:
            return self._status_at
        if all(s is not None for s in known):
            return None
        return self._session_start(now)

    def _check_limit(self, count: int) -> None:
        limit = MODE_LIMITS[self.config.mode]
        if count > limit:
            hint = " or switch to mode ltpc (5000)" if self.config.mode != "ltpc" else ""
            raise ConfigError(f"Upstox allows at most {limit} instruments in {self.config.mode} mode on one "
                              f"connection; {count} requested. Subscribe fewer instruments{hint}")

    async def _send(self, request: bytes) -> None:
        ws = self._conn.ws if self._conn is not None else None
        if ws is None or ws.closed:
            return  # sent on the next (re)connect
        try:
            await ws.send_bytes(request)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            _log.warning("Upstox subscription request not sent (%s); it is resent on reconnect",
                         exc.__class__.__name__)

    async def _on_open(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        if self._keys:
            await ws.send_bytes(build_request("sub", list(self._keys.values()), self.config.mode))

    def _on_frame(self, frame: bytes, received_ns: int) -> None:
        ticks, market = self._decoder.decode(frame, received_ns)
        self.status.malformed = self._decoder.malformed
        if market:
            self.market_status.update(market)
            self._status_at = self._clock()
        if not ticks:
            return
        snapshot = self._decoder.last_type == INITIAL_FEED
        for tick in ticks:
            if tick.instrument not in self._keys:
                continue  # a late tick for something just unsubscribed
            ident = (tick.ts, tick.ltp, tick.ltq, tick.volume)
            if snapshot and self._last.get(tick.instrument) == ident:
                continue  # the snapshot after a reconnect repeats the last trade already delivered
            self._last[tick.instrument] = ident
            self.status.ticks += 1
            if self.in_order:
                self.replay.tick(tick.ts)
            for callback in self._tick_callbacks:
                try:
                    callback(tick)
                except Exception:  # a consumer's bug must not take the feed down
                    _log.exception("tick callback %r failed", callback)
        self.status.last_tick_monotonic = time.monotonic()


def _retrieve(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


def download_source(session, settings: UpstoxSettings, limiter, today, options: dict):
    """Upstox's ``algo download-data`` source (``HistorySource``; named in ``spec.SPEC``).

    Args:
        session: The run's ``aiohttp.ClientSession``.
        settings: ``UpstoxSettings``.
        limiter: The client's own limiter, awaited before every request.
        today: Today's IST date.
        options: ``UpstoxRest`` options (``retries``, ``backoff``, ``timeout``); Dhan's
            ``pace`` is dropped, the limiter paces Upstox.
    """
    from algocli.adapters.upstox.http import FIRST_DAY, UNITS, UpstoxRest, add_months, historical, span_months
    from algocli.data.download import HistorySource, repeats, split_range

    class Client(UpstoxRest):
        """Counts repeated bar starts per answer (the limiter is ``UpstoxRest``'s own)."""

        duplicates = 0

        async def get(self, path: str) -> object:
            data = await super().get(path)
            candles = data.get("candles") if isinstance(data, dict) else None
            if isinstance(candles, list):
                daily = "/days/" in path
                keys = []
                for candle in candles:
                    if isinstance(candle, (list, tuple)) and candle:
                        try:
                            moment = datetime.fromisoformat(str(candle[0]))
                        except ValueError:
                            continue  # the adapter names a malformed candle itself
                        keys.append(moment.date() if daily else moment.timestamp())
                self.duplicates += repeats(keys)
            return data

    class Upstox(HistorySource):
        name = "upstox"

        def pieces(self, interval, start, end):
            unit, step = UNITS[interval]
            months = span_months(unit, step)
            start = max(start, FIRST_DAY[unit])  # Upstox has nothing earlier: do not ask
            return split_range(start, end, lambda d: add_months(d, months))

        async def fetch(self, inst, interval, start, end):
            return await historical(None, None, inst.hrn, start, end, interval, rest=self.client,
                                    instrument_keys={inst.hrn: inst.upstox_key}, today=self.today)

    options = {k: v for k, v in options.items() if k != "pace"}
    return Upstox(Client(session, settings, limiter=limiter, **options), today)
