"""``DhanDataFeed``: live ticks from Dhan's market feed v2 (implements ``DataFeed``).

Dhan allows 5000 instruments per socket and 5 sockets per user. Instruments are packed
onto sockets in subscription order; a new socket is opened when the current ones are
full, and asking for more than ``max_connections * max_instruments`` raises
``ConfigError`` before anything is sent. Each socket reconnects on its own and replays
its own subscription (see ``algocli.adapters.dhan.websocket``); a fatal login error on
any socket (the token is per user) stops them all and is kept in ``error``.

Callbacks run on the event loop, in arrival order. ``on_tick`` callbacks receive
``Tick`` objects; a callback that raises is logged and the feed carries on. The other
packets are passed to ``on_event`` callbacks (``PrevClose``, ``OpenInterest``,
``MarketStatus``); the previous close is also kept in ``prev_close``. This feed emits no
candles itself: the engine's candle aggregator builds them from the ticks, so ``on_candle``
callbacks are stored for the protocol's sake and not called.

Instruments are Dhan ids (``NSE_EQ:1333``) or names given an id in ``instrument_ids``
(``{"NSE:RELIANCE": "NSE_EQ:2885"}``). Dhan only ever sees ids; every tick, event, previous
close and historical candle carries the name the instrument was mapped from.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from algocli.adapters.dhan.parsing import (
    MODES, DhanDecoder, PrevClose, ServerDisconnect, instrument_id_maps, split_instrument,
)
from algocli.adapters.dhan.websocket import DhanFeedSocket
from algocli.adapters.dhan.settings import DhanSettings
from algocli.data.feed import candles_from_ticks, FeedStatus
from algocli.data.reconnect import Backoff, ReplayPace, Watchdog, nse_session_start
from algocli.domain.models import Tick
from algocli.errors import BrokerError, ConfigError

_log = logging.getLogger(__name__)

MAX_CONNECTIONS = 5
MAX_INSTRUMENTS_PER_CONNECTION = 5000


class DhanDataFeed:
    """Live ticks for ``SEGMENT:SECURITY_ID`` instruments (``NSE_EQ:1333``) from Dhan.

    Args:
        settings_factory: Returns the current ``DhanSettings``; called before every
            connection attempt so a renewed token is picked up without a restart.
        mode: ``ticker`` (price and time), ``quote`` (+ quantity, day volume, OI) or
            ``full`` (+ best bid/ask and OI).
        silence_s: Seconds without data during market hours before a socket is reopened.
        clock: Epoch seconds for the watchdog's market-hours test (tests pass a fake).
        session_start: When the current market session began (None while closed).
        backoff_base, backoff_cap, stable_s: Reconnect delays (see ``Backoff``).
        rng: Seeds every socket's jitter, for repeatable runs.
        connect_timeout: ``connect()`` gives up (``BrokerError``) after this long.
        open_timeout, ping_interval, ping_timeout, close_timeout: Socket timeouts.
        max_connections, max_instruments: Dhan's limits; lower them only in tests.
        watchdog_check_s: How often the watchdog looks (default ``silence_s / 4``, ≤ 5 s).
        name: Shown on the dashboard.
        instrument_ids: Our instrument name → Dhan ``SEGMENT:SECURITY_ID``
            (``{"NSE:RELIANCE": "NSE_EQ:2885"}``). Names in it are subscribed by their id,
            and what arrives for that id carries the name; other instruments must be
            Dhan ids already.

    Attributes:
        in_order: True for a replay in exchange-time order (``algo sandbox``; the sandbox feed sets
            it). Its watchdog then judges silence by the replay's clock, not the wall clock's market
            hours (``algocli.data.reconnect.ReplayPace``).

    Raises:
        ConfigError: An unknown ``mode``, or ``instrument_ids`` with a malformed Dhan id or
            two names for one Dhan id.
    """

    def __init__(self, settings_factory: Callable[[], DhanSettings] = DhanSettings, *, mode: str = "full",
                 silence_s: float = 60.0, clock: Callable[[], float] = time.time,
                 session_start: Callable[[float], float | None] = nse_session_start,
                 backoff_base: float = 0.5, backoff_cap: float = 30.0, stable_s: float = 60.0,
                 rng: random.Random | None = None, connect_timeout: float = 30.0, open_timeout: float = 10.0,
                 ping_interval: float | None = 20.0, ping_timeout: float | None = 20.0,
                 close_timeout: float = 2.0, max_connections: int = MAX_CONNECTIONS,
                 max_instruments: int = MAX_INSTRUMENTS_PER_CONNECTION, watchdog_check_s: float | None = None,
                 name: str = "dhan", instrument_ids: Mapping[str, str] | None = None) -> None:
        if mode not in MODES:
            raise ConfigError(f"Dhan feed mode {mode!r} is not one of {', '.join(MODES)}")
        try:
            self._ids, self._names = instrument_id_maps(instrument_ids)  # name → Dhan id, Dhan id → name
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.status = FeedStatus(name)
        self.mode = mode
        self.prev_close: dict[str, float] = {}
        self._code = MODES[mode]
        self._settings_factory = settings_factory
        self._silence_s = silence_s
        self._clock = clock
        self._session_start = session_start
        self.in_order = False
        self.replay = ReplayPace(clock)  # a replay's ticks (``in_order``), for its watchdog
        self._backoff = (backoff_base, backoff_cap, stable_s)
        self._rng = rng or random.Random()
        self._connect_timeout = connect_timeout
        self._socket_options = dict(open_timeout=open_timeout, ping_interval=ping_interval,
                                    ping_timeout=ping_timeout, close_timeout=close_timeout,
                                    check_s=watchdog_check_s)
        self.max_connections = max_connections
        self.max_instruments = max_instruments
        self._decoder = DhanDecoder(self._names)
        self._sockets: list[DhanFeedSocket] = []
        # Keyed by Dhan id, as the sockets are: a name and its id subscribe one instrument.
        self._where: dict[str, DhanFeedSocket] = {}  # Dhan id → its socket
        self._tick_callbacks: list[Callable[[Tick], None]] = []
        self._candle_callbacks: list[Callable[..., None]] = []
        self._event_callbacks: list[Callable[[object], None]] = []
        self._running = False
        self._error: Exception | None = None

    # --- DataFeed ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the sockets and wait until every one is up.

        Raises:
            FeedAuthError: Dhan rejected the token or client id (fatal; renew the token).
            BrokerError: Not connected within ``connect_timeout`` (the sockets are closed).
        """
        if self._error is not None:
            raise self._error
        if not self._sockets:
            self._sockets.append(self._new_socket())
        self._running = True
        for sock in self._sockets:
            sock.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        while True:
            if self._error is not None:
                await self.disconnect()
                raise self._error
            if all(sock.connected for sock in self._sockets):
                return
            if loop.time() >= deadline:
                why = self.status.last_error or "no answer"
                await self.disconnect()
                raise BrokerError(f"Dhan market feed not connected after {self._connect_timeout:g}s ({why}); "
                                  "check the network and DHAN_FEED_URL")
            await asyncio.sleep(0.01)

    async def disconnect(self) -> None:
        """Close every socket; subscriptions are kept for a later ``connect()``."""
        self._running = False
        sockets, self._sockets = self._sockets, []
        await asyncio.gather(*(sock.close() for sock in sockets), return_exceptions=True)
        # Keep the instruments: rebuild idle sockets holding them, unstarted.
        where, self._where = self._where, {}
        if where and self._error is None:
            await self._subscribe_ids(list(where))
        self.status.connected = False

    async def subscribe(self, instruments: list[str]) -> None:
        """Subscribe instruments in this feed's mode: names from ``instrument_ids`` or
        ``SEGMENT:SECURITY_ID`` ids.

        Raises:
            ConfigError: An instrument that is neither mapped nor a well-formed Dhan id, or
                more instruments than Dhan allows per user (``max_connections * max_instruments``).
            FeedAuthError: The feed already stopped on a rejected login.
        """
        ids = self._ids
        dhan_ids = []
        for inst in instruments:
            dhan_id = ids.get(inst, inst)
            try:
                split_instrument(dhan_id)
            except ValueError as exc:
                hint = "; or give it a Dhan id in instrument_ids" if ids else ""
                raise ConfigError(f"{exc}{hint}") from None
            dhan_ids.append(dhan_id)
        await self._subscribe_ids(dhan_ids)

    async def _subscribe_ids(self, instruments: list[str]) -> None:
        """Subscribe well-formed Dhan ids (``subscribe`` after translating names)."""
        if self._error is not None:
            raise self._error
        new: list[str] = []
        seen = set(self._where)
        for inst in instruments:
            if inst not in seen:
                seen.add(inst)
                new.append(inst)
        if not new:
            return
        capacity = self.max_connections * self.max_instruments
        if len(self._where) + len(new) > capacity:
            raise ConfigError(
                f"{len(self._where) + len(new)} instruments requested, but Dhan streams at most "
                f"{self.max_instruments} per connection on {self.max_connections} connections ({capacity} per "
                "user); subscribe to fewer instruments")
        plan: list[tuple[DhanFeedSocket, list[str]]] = []
        pending = new
        for sock in self._sockets:
            free = self.max_instruments - len(sock.subscriptions)
            if free > 0 and pending:
                plan.append((sock, pending[:free]))
                pending = pending[free:]
        while pending:
            sock = self._new_socket()
            self._sockets.append(sock)
            plan.append((sock, pending[:self.max_instruments]))
            pending = pending[self.max_instruments:]
        for sock, items in plan:
            for inst in items:
                self._where[inst] = sock
            await sock.subscribe(items, self._code)
            if self._running:
                sock.start()
        self._update_connected()

    async def unsubscribe(self, instruments: list[str]) -> None:
        groups: dict[int, tuple[DhanFeedSocket, list[str]]] = {}
        for inst in instruments:
            inst = self._ids.get(inst, inst)
            sock = self._where.pop(inst, None)
            if sock is not None:
                groups.setdefault(id(sock), (sock, []))[1].append(inst)
        for sock, items in groups.values():
            await sock.unsubscribe(items)

    def on_tick(self, callback: Callable[[Tick], None]) -> None:
        self._tick_callbacks.append(callback)

    def on_candle(self, callback: Callable[..., None], interval: str = "1m") -> None:
        """Receive closed candles of ``interval`` built from this feed's ticks."""
        self._candle_callbacks.append(callback)
        self._tick_callbacks.append(candles_from_ticks(callback, interval))

    def on_event(self, callback: Callable[[object], None]) -> None:
        """Receive ``PrevClose``, ``OpenInterest`` and ``MarketStatus`` packets."""
        self._event_callbacks.append(callback)

    async def get_historical(self, instrument: str, start: datetime, end: datetime, interval: str):
        """Candles of ``instrument`` from Dhan's REST API (``/charts/historical`` for ``1d``,
        ``/charts/intraday`` in 90-day requests for ``1m``/``5m``/``15m``/``25m``/``1h``).

        ``instrument`` is a name from ``instrument_ids`` or a Dhan id; the bars carry it as given.

        ``start`` and ``end`` are inclusive: a ``date`` covers its whole IST day and a naive
        ``datetime`` is IST. The settings are read afresh, so a renewed token is used.

        Returns:
            ``algocli.data.history.Bars``: sorted by bar start (int64 UTC ns), float64
            OHLCV columns, ``oi`` for derivative segments.

        Raises:
            ConfigError: Bad instrument (derivatives need ``algocli.adapters.dhan.http.historical``
                with ``instrument_type``), interval or range.
            FeedAuthError: The token is empty or refused; renew ``DHAN_ACCESS_TOKEN``.
            BrokerError: Dhan rejected the request or kept failing.
        """
        import aiohttp

        from algocli.adapters.dhan.http import historical

        dhan_id = self._ids.get(instrument, instrument)
        async with aiohttp.ClientSession() as session:
            bars = await historical(session, self._settings_factory, dhan_id, start, end, interval)
        return bars if dhan_id == instrument else replace(bars, instrument=instrument)

    # --- inspection ------------------------------------------------------------------------

    @property
    def error(self) -> Exception | None:
        """The fatal error that stopped the feed, if any."""
        return self._error

    @property
    def instruments(self) -> list[str]:
        """Subscribed instruments, by the name their ticks carry."""
        names = self._names
        return [names.get(inst, inst) for inst in self._where]

    @property
    def connections(self) -> list[DhanFeedSocket]:
        return list(self._sockets)

    # --- internals -------------------------------------------------------------------------

    def _new_socket(self) -> DhanFeedSocket:
        base, cap, stable = self._backoff
        return DhanFeedSocket(
            f"{self.status.name}#{len(self._sockets)}", settings_factory=self._settings_factory,
            on_message=self._on_message, status=self.status, on_state=self._update_connected,
            on_fatal=self._on_fatal,
            backoff=Backoff(base, cap, stable_s=stable, rng=random.Random(self._rng.getrandbits(64))),
            watchdog=Watchdog(self._silence_s, clock=self._clock, session_start=self._silence_counts_from,
                              tolerance=self._silence_tolerated),
            **self._socket_options)

    def _silence_counts_from(self, now: float) -> float | None:
        """The watchdog's ``session_start``: the replay's clock for a replay, else the market hours'."""
        return self.replay.session_start(now) if self.in_order else self._session_start(now)

    def _silence_tolerated(self) -> float:
        """The watchdog's ``tolerance``: a replay's own pace (0 for a live feed)."""
        return self.replay.tolerance() if self.in_order else 0.0

    def _on_message(self, msg: bytes, received_ns: int) -> ServerDisconnect | None:
        decoder = self._decoder
        before = decoder.malformed
        items = decoder.decode(msg, received_ns)
        if decoder.malformed != before:
            self.status.malformed += decoder.malformed - before
            _log.debug("Dhan feed: skipped %d malformed packet(s)", decoder.malformed - before)
        stop = None
        status = self.status
        for item in items:
            if item.__class__ is Tick:
                status.ticks += 1
                if self.in_order:
                    self.replay.tick(item.ts)
                status.last_tick_monotonic = received_ns / 1e9
                for callback in self._tick_callbacks:
                    try:
                        callback(item)
                    except Exception:
                        _log.exception("Dhan feed: an on_tick callback raised; the feed continues")
            elif item.__class__ is ServerDisconnect:
                stop = item
            else:
                if item.__class__ is PrevClose:
                    self.prev_close[item.instrument] = item.prev_close
                for callback in self._event_callbacks:
                    try:
                        callback(item)
                    except Exception:
                        _log.exception("Dhan feed: an on_event callback raised; the feed continues")
        return stop

    def _on_fatal(self, exc: Exception) -> None:
        if self._error is None:
            self._error = exc
            self.status.last_error = str(exc)
        for sock in self._sockets:
            if sock.error is None:
                sock.stop_now()

    def _update_connected(self) -> None:
        started = [sock for sock in self._sockets if sock.running or sock.connected]
        self.status.connected = bool(started) and all(sock.connected for sock in started)


def download_source(session, settings: DhanSettings, limiter, today, options: dict):
    """Dhan's ``algo download-data`` source (``HistorySource``; named in ``spec.SPEC``).

    Args:
        session: The run's ``aiohttp.ClientSession``.
        settings: ``DhanSettings``.
        limiter: Awaited before every attempt, retries included.
        today: Today's IST date.
        options: ``DhanRest`` options (``retries``, ``backoff``, ``timeout``, ``pace``).
    """
    from datetime import timedelta

    from algocli.adapters.dhan.http import HISTORICAL_PATH, MAX_INTRADAY_DAYS, DhanApiError, DhanRest, historical
    from algocli.data.download import HistorySource, NoData, repeats, split_range
    from algocli.domain.models import IST_OFFSET_NS, Interval

    class Client(DhanRest):
        """Waits for the run's limiter before each attempt; counts repeated bar starts per answer."""

        duplicates = 0

        async def post(self, path: str, body: dict) -> object:
            payload = await self.request("POST", path, body, limiter=limiter)
            data = payload.get("data") if isinstance(payload, dict) and "timestamp" not in payload else payload
            stamps = data.get("timestamp") if isinstance(data, dict) else None
            if isinstance(stamps, list):
                daily = path == HISTORICAL_PATH  # stamped at IST or UTC midnight: compare IST dates
                keys = [(int(s) + IST_OFFSET_NS // 10**9) // 86_400 if daily else s for s in stamps]
                self.duplicates += repeats(keys)
            return payload

    class Dhan(HistorySource):
        name = "dhan"

        def pieces(self, interval, start, end):
            if interval is Interval.DAY_1:
                return [(start, end)]  # /charts/historical has no documented span limit
            return split_range(start, end, lambda d: d + timedelta(days=MAX_INTRADAY_DAYS))

        async def fetch(self, inst, interval, start, end):
            try:
                return await historical(None, None, inst.dhan_id, start, end, interval, rest=self.client,
                                        instrument_type=inst.dhan_instrument or None)
            except DhanApiError as exc:
                if exc.code == "DH-907":  # "no data": a quiet stretch, unless nothing ever comes
                    raise NoData(str(exc)) from None
                raise

    return Dhan(Client(session, settings, **options), today)
