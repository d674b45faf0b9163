"""Dhan market feed v2, served from the sandbox's ``TickHub`` (mounted at ``/dhan/feed``).

Speaks what the real ``wss://api-feed.dhan.co`` speaks, closely enough for the official
``dhanhq`` SDK and our ``DhanDataFeed``:

* Login is the query string ``?version=2&token=..&clientId=..&authType=2``. A bad login is
  answered the way Dhan answers it: the upgrade succeeds (HTTP 101), then one
  server-disconnect packet (code 50) arrives and the socket closes. Reason 810 for a
  missing client id, 808 for a token the hub refuses. (Reports against the SDK show
  ``101 Switching Protocols`` followed by a close, and the "Disconnected: Invalid Client
  ID" text the SDK prints for the 808 packet; no HTTP 401.)
* Requests are JSON text frames: 15/16 ticker, 17/18 quote, 21/22 full (subscribe /
  unsubscribe, at most 100 instruments per message; larger messages are ignored, as are
  instruments past 5000 on one socket), 12 disconnect (streaming stops; the socket is
  left for the client to close). Binary frames from the client (the SDK's 83-byte legacy
  header, sent right after code 12) are counted and ignored.
* On the first subscription of an instrument the socket gets one Prev Close packet, then
  every hub tick for it encoded per subscribed mode: Ticker; Quote plus an OI packet
  when the tick carries OI; Full with depth level 1 from the tick's bid/ask. One packet
  per WebSocket message, LTT as IST wall-clock written as UTC epoch seconds.
* A sixth socket for one client id disconnects that client's oldest with reason 805.
* The server pings every ``ping_interval`` seconds (Dhan: 10 s) and closes a socket that has shown
  no sign of life for four of them (Dhan: 40 s; ``algocli.sandbox.keepalive``).
* ``hub.faults``: ``drop_every`` aborts the TCP connection after that many packets on a
  socket; ``silence_after`` stops sending data (the socket stays open and answers pings);
  ``malformed_every`` replaces every Nth packet with one of four kinds of garbage;
  ``reject_tokens`` refuses every login.

Quote and Full fields a ``Tick`` does not carry are synthesised: ATP = LTP, day open /
high / low from the ticks seen, day close 0 (Dhan fills it only after the close).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from algocli.adapters.dhan.parsing import (
    BATCH_SIZE, REQUEST_DISCONNECT, SEGMENT_NAMES, SEGMENTS, SUBSCRIBE_CODES, UNSUBSCRIBE_CODES, DepthLevel,
    encode_disconnect, encode_full, encode_oi, encode_prev_close, encode_quote, encode_ticker, split_instrument,
    utc_ns_to_ltt,
)
from algocli.adapters.dhan.websocket import RedactTokenFilter
from algocli.domain.models import Tick
from algocli.sandbox.hub import TickHub
from algocli.sandbox.keepalive import Keepalive

_log = logging.getLogger(__name__)

DHAN_FEED_PATH = "/dhan/feed"
TICKER_MODE, QUOTE_MODE, FULL_MODE = 15, 17, 21
MAX_CONNECTIONS_PER_CLIENT = 5
MAX_INSTRUMENTS_PER_CONNECTION = 5000


@dataclass
class FeedSession:
    """What one client socket did: for tests, and for the sandbox's own status output."""

    client_id: str
    version: str
    token: str = field(repr=False)
    requests: list[dict] = field(default_factory=list)  # every JSON request, in order
    bad_requests: int = 0  # text frames that were not a valid request
    binary_frames: int = 0
    subscriptions: dict[str, set[int]] = field(default_factory=dict)  # instrument → subscribed modes
    sent: int = 0  # binary packets sent (garbage included)
    garbage: int = 0  # of which malformed on purpose
    open: bool = True
    rejected: int | None = None  # disconnect reason when the login was refused
    kicked: int | None = None  # disconnect reason sent later (805)
    dropped: bool = False  # closed by the drop_every fault
    disconnect_requested: bool = False  # the client sent RequestCode 12
    _ws: web.WebSocketResponse | None = field(default=None, repr=False)
    keepalive: Keepalive | None = field(default=None, repr=False)
    _transport: asyncio.BaseTransport | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def subscribed(self, code: int) -> list[str]:
        """Instruments currently subscribed in ``code`` (15, 17 or 21) mode."""
        return [inst for inst, modes in self.subscriptions.items() if code in modes]


def _garbage(n: int) -> bytes:
    """The n-th malformed packet: each kind is exactly one malformed packet to a framing decoder."""
    kind = n % 4
    if kind == 0:
        return b"\x04\x32\x00\x01\x01"  # shorter than a header
    if kind == 1:
        return struct.pack("<BHBII", 99, 12, 1, 1, 0)  # unknown response code
    if kind == 2:
        return struct.pack("<BHBIfI", 2, 40, 1, 1, 100.0, 0)  # length field larger than the message
    return struct.pack("<BHBIfI", 2, 16, 1, 1, math.nan, 0)  # NaN price


class DhanFeedSandbox:
    """The market-feed endpoint; one instance per app, shared by all its sockets.

    Args:
        hub: Source of ticks, valid tokens and fault settings.
        ping_interval: Seconds between server pings.
        prev_close: Instrument → the price to send in its Prev Close packet. Defaults to
            the hub's last published price for it (0 before any).
        max_sessions: How many socket records ``sessions`` keeps.
    """

    def __init__(self, hub: TickHub, *, ping_interval: float = 10.0,
                 prev_close: Callable[[str], float | None] | None = None, max_sessions: int = 1000) -> None:
        self.hub = hub
        self.ping_interval = ping_interval
        self.max_sessions = max_sessions
        self.sessions: list[FeedSession] = []  # newest last; old closed ones are forgotten
        self._prev_close = prev_close or self._last_price
        self._ids: dict[str, tuple[int, int] | None] = {}
        self._day: dict[str, list[float]] = {}  # instrument → [open, high, low]

    # --- the handler ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        ws = web.WebSocketResponse(heartbeat=None, autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = FeedSession(client_id=query.get("clientId", ""), version=query.get("version", ""),
                              token=query.get("token", ""), _ws=ws, _transport=request.transport)
        self.sessions.append(session)
        if len(self.sessions) > self.max_sessions:  # forget the oldest closed sockets
            closed = [s for s in self.sessions[:-self.max_sessions] if not s.open]
            self.sessions = [s for s in self.sessions if s not in closed]
        reason = 810 if not session.client_id else (808 if not self.hub.token_ok(session.token) else None)
        if reason is not None:
            session.rejected = reason
            with suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(encode_disconnect(reason))
            await ws.close()
            session.open = False
            return ws
        await self._limit_connections(session)
        queue = self.hub.register()
        session.keepalive = Keepalive(ws, self.ping_interval, 4 * self.ping_interval).start()  # Dhan: 10 s, 40 s
        pump = asyncio.get_running_loop().create_task(self._pump(session, queue))
        try:
            async for msg in ws:
                if await session.keepalive.handled(msg):
                    continue
                if msg.type == WSMsgType.TEXT:
                    if not await self._on_request(session, msg.data):
                        break
                elif msg.type == WSMsgType.BINARY:
                    session.binary_frames += 1
        finally:
            session.open = False
            self.hub.unregister(queue)
            await session.keepalive.stop()
            pump.cancel()
            await asyncio.wait({pump})
            if not ws.closed:
                await ws.close()
        return ws

    async def _limit_connections(self, session: FeedSession) -> None:
        live = [s for s in self.sessions
                if s is not session and s.open and s.rejected is None and s.client_id == session.client_id]
        while len(live) >= MAX_CONNECTIONS_PER_CLIENT:
            oldest = live.pop(0)
            oldest.kicked = 805
            await self._send(oldest, encode_disconnect(805), data=False)
            if oldest._ws is not None:
                await oldest._ws.close()

    async def _on_request(self, session: FeedSession, text: str) -> bool:
        """Apply one JSON request; False once the socket is gone."""
        try:
            req = json.loads(text)
        except ValueError:
            session.bad_requests += 1
            return True
        if not isinstance(req, dict):
            session.bad_requests += 1
            return True
        session.requests.append(req)
        code = req.get("RequestCode")
        if code == REQUEST_DISCONNECT:
            # Stop streaming but keep reading until the client closes: the SDK follows this
            # request with an 83-byte binary frame, which must not meet a closed socket.
            session.subscriptions.clear()
            session.disconnect_requested = True
            return True
        if session.disconnect_requested or (code not in SUBSCRIBE_CODES and code not in UNSUBSCRIBE_CODES):
            return True  # depth (23/24) and v1 codes are not served here
        entries = req.get("InstrumentList")
        if not isinstance(entries, list) or len(entries) > BATCH_SIZE:
            session.bad_requests += 1
            _log.warning("Dhan sandbox: ignored request %s: InstrumentList must be a list of at most %d",
                         code, BATCH_SIZE)
            return True
        instruments = [inst for inst in map(_instrument, entries) if inst is not None]
        if code in UNSUBSCRIBE_CODES:
            for inst in instruments:
                modes = session.subscriptions.get(inst)
                if modes is not None:
                    modes.discard(code - 1)
                    if not modes:
                        del session.subscriptions[inst]
            return True
        self.hub.note_subscription(instruments)
        for inst in instruments:
            modes = session.subscriptions.get(inst)
            if modes is not None:
                modes.add(code)
                continue
            if len(session.subscriptions) >= MAX_INSTRUMENTS_PER_CONNECTION:
                continue
            session.subscriptions[inst] = {code}
            ids = self._split(inst)
            if ids is not None:
                price = self._prev_close(inst) or 0.0
                if not await self._send(session, encode_prev_close(ids[0], ids[1], price)):
                    return False
        return True

    # --- sending -------------------------------------------------------------------------

    async def _pump(self, session: FeedSession, queue: asyncio.Queue) -> None:
        subs = session.subscriptions
        while True:
            tick = await queue.get()
            modes = subs.get(tick.instrument)
            if not modes:
                continue
            for packet in self._packets(tick, modes):
                if not await self._send(session, packet):
                    return

    async def _send(self, session: FeedSession, packet: bytes, *, data: bool = True) -> bool:
        """Send one packet through the fault filters; False once the socket is gone."""
        ws = session._ws
        if ws is None or ws.closed:
            return False
        faults = self.hub.faults
        if data:
            if faults.silence_after and session.sent >= faults.silence_after:
                return True
            session.sent += 1
            if faults.malformed_every and session.sent % faults.malformed_every == 0:
                session.garbage += 1
                packet = _garbage(session.garbage)
        try:
            async with session._lock:
                await ws.send_bytes(packet)
        except (ConnectionError, RuntimeError):
            return False
        if session.keepalive is not None:
            session.keepalive.alive()
        if data and faults.drop_every and session.sent >= faults.drop_every:
            session.dropped = True
            if session._transport is not None:
                session._transport.abort()
            return False
        return True

    def _packets(self, tick: Tick, modes: set[int]) -> list[bytes]:
        ids = self._split(tick.instrument)
        if ids is None or not tick.ltp > 0:
            return []
        seg, sid = ids
        ltp = tick.ltp
        day = self._day.get(tick.instrument)
        if day is None:
            day = self._day[tick.instrument] = [ltp, ltp, ltp]
        else:
            day[1] = max(day[1], ltp)
            day[2] = min(day[2], ltp)
        ltt = utc_ns_to_ltt(tick.ts)
        volume = tick.volume or 0
        out: list[bytes] = []
        for mode in sorted(modes):
            if mode == TICKER_MODE:
                out.append(encode_ticker(seg, sid, ltp, ltt))
            elif mode == QUOTE_MODE:
                out.append(encode_quote(seg, sid, ltp, tick.ltq, ltt, atp=ltp, volume=volume,
                                        total_sell_qty=tick.ask_qty or 0, total_buy_qty=tick.bid_qty or 0,
                                        day_open=day[0], day_high=day[1], day_low=day[2]))
                if tick.oi is not None:
                    out.append(encode_oi(seg, sid, tick.oi))
            elif mode == FULL_MODE:
                level = DepthLevel(tick.bid_qty or 0, tick.ask_qty or 0, 1 if tick.bid else 0,
                                   1 if tick.ask else 0, tick.bid or 0.0, tick.ask or 0.0)
                out.append(encode_full(seg, sid, ltp, tick.ltq, ltt, atp=ltp, volume=volume,
                                       total_sell_qty=tick.ask_qty or 0, total_buy_qty=tick.bid_qty or 0,
                                       oi=tick.oi or 0, oi_day_high=tick.oi or 0, oi_day_low=tick.oi or 0,
                                       day_open=day[0], day_high=day[1], day_low=day[2], depth=(level,)))
        return out

    # --- helpers -------------------------------------------------------------------------

    def _split(self, instrument: str) -> tuple[int, int] | None:
        try:
            return self._ids[instrument]
        except KeyError:
            try:
                ids: tuple[int, int] | None = split_instrument(instrument)
            except ValueError:
                ids = None  # not a Dhan instrument id (an Upstox key, say): never sent here
            self._ids[instrument] = ids
            return ids

    def _last_price(self, instrument: str) -> float | None:
        tick = self.hub.last.get(instrument)
        return tick.ltp if tick is not None else None


def _instrument(entry: object) -> str | None:
    """``{"ExchangeSegment": "NSE_EQ", "SecurityId": "1333"}`` → ``NSE_EQ:1333`` (None if invalid)."""
    if not isinstance(entry, dict):
        return None
    segment, ident = entry.get("ExchangeSegment"), entry.get("SecurityId")
    if isinstance(segment, int) and not isinstance(segment, bool):
        segment = SEGMENT_NAMES.get(segment)
    if segment not in SEGMENTS:
        return None
    if isinstance(ident, int) and not isinstance(ident, bool):
        ident = str(ident)
    if not isinstance(ident, str) or not ident.strip().isdigit():
        return None
    return f"{segment}:{int(ident)}"


DHAN_FEED_KEY = web.AppKey("dhan_feed", DhanFeedSandbox)


def add_routes(app: web.Application, hub: TickHub) -> None:
    """Mount the Dhan market feed at ``/dhan/feed``; the handler is ``app[DHAN_FEED_KEY]``.

    Logins travel in the query string, which aiohttp's access log prints; a filter on
    ``aiohttp.access`` redacts ``token=`` and ``clientId=`` values.
    """
    access_log = logging.getLogger("aiohttp.access")
    if not any(isinstance(f, RedactTokenFilter) for f in access_log.filters):
        access_log.addFilter(RedactTokenFilter())
    sandbox = DhanFeedSandbox(hub)
    app[DHAN_FEED_KEY] = sandbox
    app.router.add_get(DHAN_FEED_PATH, sandbox.handle)
