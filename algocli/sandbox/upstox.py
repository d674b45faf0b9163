"""The Upstox Market Data Feed V3, served locally from a ``TickHub``.

Routes (added to an ``aiohttp`` application by ``add_routes``):

* ``GET /v3/feed/market-data-feed/authorize``: checks the Bearer token with
  ``hub.token_ok`` and answers ``data.authorized_redirect_uri``, a ``ws://`` URL with a
  single-use ``code``; a rejected token gets 401 and Upstox's error envelope.
* ``GET /v3/feed/market-data-feed``: what the official SDK opens; answers 302 to a fresh
  authorized URI (websocket clients follow it).
* ``GET /upstox/feed?requestId=..&code=..``: the feed socket. The code works once. The
  server sends ``market_info`` first; each ``sub`` (JSON in a binary frame) gets an
  ``initial_feed`` snapshot from ``hub.last`` and then ``live_feed`` frames for every
  published tick of the subscribed keys, in each key's requested mode. The server pings.

Instrument keys ``SEGMENT|ID`` map to hub instruments ``SEGMENT:ID``; a real key from the
instrument list (``NSE_EQ|INE002A01018``, see ``algocli.sandbox.instruments.UpstoxKeys``)
names its sandbox instrument (``NSE_EQ:2885``) too. Each feed entry is keyed by the key the
client subscribed with; a client subscribed under both spellings gets both. ``hub.faults``
applies per connection, counting every frame sent: close after ``drop_every`` frames,
fall silent after ``silence_after``, replace every ``malformed_every``-th frame with bytes
that are not protobuf, and refuse all tokens.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from algocli.adapters.upstox import proto
from algocli.adapters.upstox.parsing import is_instrument_key
from algocli.domain.models import Tick
from algocli.sandbox.hub import TickHub
from algocli.sandbox.instruments import UPSTOX_KEYS, UpstoxKeys
from algocli.sandbox.keepalive import Keepalive

AUTHORIZE_PATH = "/v3/feed/market-data-feed/authorize"
REDIRECT_PATH = "/v3/feed/market-data-feed"
FEED_PATH = "/upstox/feed"
SEGMENTS = ("NSE_EQ", "NSE_FO", "NSE_INDEX", "BSE_EQ", "BSE_FO", "BSE_INDEX", "NCD_FO", "BCD_FO",
            "MCX_FO", "MCX_INDEX", "NSE_COM")
INDEX_SEGMENTS = frozenset({"NSE_INDEX", "BSE_INDEX", "MCX_INDEX"})
MODES = {"ltpc": 0, "full": 1, "option_greeks": 2, "full_d30": 3}  # request name → RequestMode
_MAX_BATCH = 200


def error_envelope(code: str, message: str) -> dict:
    """Upstox's error body, with both the camelCase and the snake_case field names."""
    return {"status": "error", "errors": [{
        "errorCode": code, "message": message, "propertyPath": None, "invalidValue": None,
        "error_code": code, "property_path": None, "invalid_value": None}]}


@dataclass
class UpstoxSandbox:
    """State of the Upstox routes, kept on the app as ``app[SANDBOX_KEY]`` for tests and tools.

    Attributes:
        segment_status: Segment → ``MarketStatus`` name sent in ``market_info``.
        tokens_seen: Bearer tokens presented to the HTTP routes, in order.
        issued_codes / used_codes: Authorization codes handed out / redeemed by a socket.
        requests: Every decoded client request, in order; ``text_requests`` counts the
            ones sent as TEXT frames (Upstox wants BINARY).
        connections: Feed sockets accepted so far.
        frames_sent / garbage_sent: Frames written to feed sockets / of them replaced by garbage.
        keys: Which sandbox instrument each instrument key names.
    """

    hub: TickHub
    segment_status: dict[str, str]
    ping_interval: float = 10.0
    keys: UpstoxKeys = field(default_factory=UpstoxKeys)
    tokens_seen: list[str | None] = field(default_factory=list)
    issued_codes: list[str] = field(default_factory=list)
    used_codes: list[str] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    text_requests: int = 0
    connections: int = 0
    frames_sent: int = 0
    garbage_sent: int = 0
    _pending: dict[str, str] = field(default_factory=dict)  # code → requestId

    def issue_uri(self, request: web.Request) -> str:
        """A fresh authorized feed URL with a single-use code."""
        code = secrets.token_urlsafe(18)
        request_id = uuid.uuid4().hex
        self._pending[code] = request_id
        self.issued_codes.append(code)
        scheme = "wss" if request.secure else "ws"
        return f"{scheme}://{request.host}{FEED_PATH}?requestId={request_id}&code={code}"

    def redeem(self, code: str | None) -> bool:
        if code is None or self._pending.pop(code, None) is None:
            return False
        self.used_codes.append(code)
        return True


SANDBOX_KEY = web.AppKey("upstox_sandbox", UpstoxSandbox)


def add_routes(app: web.Application, hub: TickHub, *, segment_status: dict[str, str] | None = None,
               ping_interval: float = 10.0, keys: UpstoxKeys | None = None) -> UpstoxSandbox:
    """Serve the Upstox market-data feed routes from ``hub`` on ``app``.

    Args:
        segment_status: ``market_info`` contents; default every segment ``NORMAL_OPEN``.
        ping_interval: Seconds between server pings on each feed socket.
        keys: Instrument-key aliases; default ``app[UPSTOX_KEYS]``, else the default rule only.
    """
    status = dict.fromkeys(SEGMENTS, "NORMAL_OPEN") if segment_status is None else dict(segment_status)
    for name in status.values():
        proto.MarketStatus.Value(name)  # fail early on a misspelt status
    if keys is None:
        keys = app.get(UPSTOX_KEYS) or UpstoxKeys()
    sandbox = UpstoxSandbox(hub, status, ping_interval, keys)
    app[SANDBOX_KEY] = sandbox

    async def authorize(request: web.Request) -> web.Response:
        denied = _check_token(sandbox, request)
        if denied is not None:
            return denied
        uri = sandbox.issue_uri(request)
        return web.json_response({"status": "success",
                                  "data": {"authorized_redirect_uri": uri, "authorizedRedirectUri": uri}})

    async def redirect(request: web.Request) -> web.Response:
        denied = _check_token(sandbox, request)
        if denied is not None:
            return denied
        raise web.HTTPFound(sandbox.issue_uri(request))

    async def feed(request: web.Request) -> web.StreamResponse:
        if not sandbox.redeem(request.query.get("code")):
            return web.json_response(error_envelope("UDAPI100057", "Invalid auth code"), status=401)
        ws = web.WebSocketResponse(heartbeat=None, autoping=False, max_msg_size=16 * 2**20)  # pings: Keepalive
        await ws.prepare(request)
        sandbox.connections += 1
        await _FeedSession(sandbox, hub, ws, request).run()
        return ws

    app.router.add_get(AUTHORIZE_PATH, authorize)
    app.router.add_get(REDIRECT_PATH, redirect)
    app.router.add_get(FEED_PATH, feed)
    return sandbox


def _check_token(sandbox: UpstoxSandbox, request: web.Request) -> web.Response | None:
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    sandbox.tokens_seen.append(token)
    if token and sandbox.hub.token_ok(token):
        return None
    return web.json_response(error_envelope("UDAPI100050", "Invalid token used to access API"), status=401)


@dataclass(slots=True)
class _Snapshot:
    """Marks where a ``sub`` happened in the tick stream; carries ``hub.last`` as it was then."""

    keys: list[str]
    ticks: dict[str, Tick]


class _Dropped(Exception):
    pass


class _FeedSession:
    """One feed socket: a reader for client requests and a writer for frames."""

    def __init__(self, sandbox: UpstoxSandbox, hub: TickHub, ws: web.WebSocketResponse,
                 request: web.Request) -> None:
        self.sandbox, self.hub, self.ws, self.request = sandbox, hub, ws, request
        self.modes: dict[str, str] = {}  # subscribed key → request mode
        self.keys_of: dict[str, dict[str, None]] = {}  # hub instrument → subscribed keys naming it, in order
        self.awaiting: set[str] = set()  # keys whose snapshot is still queued: older ticks are skipped
        self.queue: asyncio.Queue | None = None
        self.writer: asyncio.Task | None = None
        self.sent = 0
        self.silent = False
        self.vwap: dict[str, tuple[float, int]] = {}  # key → (Σ price·qty, Σ qty) since connect
        self.keepalive = Keepalive(ws, sandbox.ping_interval, 4 * sandbox.ping_interval)

    async def run(self) -> None:
        self.keepalive.start()
        try:
            await self.emit(_market_info(self.sandbox.segment_status))
            async for msg in self.ws:
                if await self.keepalive.handled(msg):
                    continue
                if msg.type in (web.WSMsgType.BINARY, web.WSMsgType.TEXT):
                    if msg.type == web.WSMsgType.TEXT:
                        self.sandbox.text_requests += 1
                    self.handle(msg.data)
                if self.writer is not None and self.writer.done():
                    break
        except (_Dropped, ConnectionError):
            pass
        finally:
            await self.keepalive.stop()
            if self.writer is not None:
                self.writer.cancel()
                await asyncio.gather(self.writer, return_exceptions=True)
            if self.queue is not None:
                self.hub.unregister(self.queue)

    def handle(self, data: str | bytes) -> None:
        try:
            req = json.loads(data)
            method = req["method"]
            keys = [k for k in req["data"]["instrumentKeys"] if is_instrument_key(k)]
            mode = req["data"].get("mode")
        except (ValueError, KeyError, TypeError):
            return  # not a request: ignored
        self.sandbox.requests.append(req)
        resolve = self.sandbox.keys.instrument
        if method == "unsub":
            for key in keys:
                if self.modes.pop(key, None) is not None:
                    self.keys_of.get(resolve(key), {}).pop(key, None)
            return
        if method not in ("sub", "change_mode") or mode not in MODES:
            return
        if method == "change_mode":
            keys = [k for k in keys if k in self.modes]
        for key in keys:
            self.modes[key] = mode
            self.keys_of.setdefault(resolve(key), {})[key] = None
        if self.queue is None:
            self.queue = self.hub.register()
            self.writer = asyncio.create_task(self.write())
        self.hub.note_subscription(resolve(k) for k in keys)
        self.awaiting.update(keys)
        last = self.hub.last
        snapshot = {k: last[i] for k in keys if (i := resolve(k)) in last}
        _force_put(self.queue, _Snapshot(keys, snapshot))

    async def write(self) -> None:
        try:
            while True:
                items = [await self.queue.get()]
                while len(items) < _MAX_BATCH and not self.queue.empty():
                    items.append(self.queue.get_nowait())
                for frame in self.frames(items):
                    await self.emit(frame)
        except (_Dropped, ConnectionError):
            pass

    def frames(self, items: list) -> list[bytes]:
        """Snapshots become initial_feed frames; runs of ticks become live_feed frames."""
        out: list[bytes] = []
        live = proto.FeedResponse(type=proto.LIVE_FEED)
        for item in items:
            if isinstance(item, _Snapshot):
                if live.feeds:
                    out.append(_finish(live))
                    live = proto.FeedResponse(type=proto.LIVE_FEED)
                snap = proto.FeedResponse(type=proto.INITIAL_FEED)
                for key, tick in item.ticks.items():
                    if key in self.modes:
                        self.encode(snap.feeds[key], key, tick)
                self.awaiting.difference_update(item.keys)
                out.append(_finish(snap))
                continue
            for key in self.keys_of.get(item.instrument, ()):  # every spelling the client subscribed with
                if key in self.awaiting:
                    continue
                if key in live.feeds:  # one entry per key and frame: keep every update
                    out.append(_finish(live))
                    live = proto.FeedResponse(type=proto.LIVE_FEED)
                self.encode(live.feeds[key], key, item)
        if live.feeds:
            out.append(_finish(live))
        return out

    def encode(self, feed, key: str, tick: Tick) -> None:
        mode = self.modes[key]
        if mode == "ltpc":
            _fill_ltpc(feed.ltpc, tick)
            return
        feed.requestMode = MODES[mode]
        if mode == "option_greeks":
            fl = feed.firstLevelWithGreeks
            _fill_ltpc(fl.ltpc, tick)
            _fill_quote(fl.firstDepth, tick)
            fl.vtt = tick.volume or 0
            fl.oi = float(tick.oi or 0)
            return
        if key.partition("|")[0] in INDEX_SEGMENTS:
            _fill_ltpc(feed.fullFeed.indexFF.ltpc, tick)
            return
        ff = feed.fullFeed.marketFF
        _fill_ltpc(ff.ltpc, tick)
        _fill_quote(ff.marketLevel.bidAskQuote.add(), tick)
        value, qty = self.vwap.get(key, (0.0, 0))
        value, qty = value + tick.ltp * tick.ltq, qty + tick.ltq
        self.vwap[key] = (value, qty)
        ff.atp = round(value / qty, 2) if qty else tick.ltp
        ff.vtt = tick.volume or 0
        ff.oi = float(tick.oi or 0)

    async def emit(self, frame: bytes) -> None:
        """Send one frame, applying the hub's faults."""
        faults = self.hub.faults
        if self.silent:
            return
        self.sent += 1
        garbage = bool(faults.malformed_every) and self.sent % faults.malformed_every == 0
        if garbage:
            frame = b"\x00\xff" + secrets.token_bytes(14)  # field number 0: never valid protobuf
        await self.ws.send_bytes(frame)
        self.keepalive.alive()
        self.sandbox.frames_sent += 1
        self.sandbox.garbage_sent += garbage
        if faults.silence_after and self.sent >= faults.silence_after:
            self.silent = True
        if faults.drop_every and self.sent >= faults.drop_every:
            transport = self.request.transport
            if transport is not None:
                transport.abort()  # like a network drop: no close frame
            raise _Dropped


def _fill_ltpc(ltpc, tick: Tick) -> None:
    ltpc.ltp = tick.ltp
    ltpc.ltt = tick.ts // 1_000_000
    ltpc.ltq = tick.ltq


def _fill_quote(quote, tick: Tick) -> None:
    if tick.bid is not None:
        quote.bidP, quote.bidQ = tick.bid, tick.bid_qty or 0
    if tick.ask is not None:
        quote.askP, quote.askQ = tick.ask, tick.ask_qty or 0


def _finish(msg) -> bytes:
    msg.currentTs = time.time_ns() // 1_000_000
    return msg.SerializeToString()


def _market_info(segment_status: dict[str, str]) -> bytes:
    msg = proto.FeedResponse(type=proto.MARKET_INFO)
    for segment, name in segment_status.items():
        msg.marketInfo.segmentStatus[segment] = proto.MarketStatus.Value(name)
    return _finish(msg)


def _force_put(queue: asyncio.Queue, item: object) -> None:
    if queue.full():
        queue.get_nowait()  # lose the oldest tick rather than the request
    queue.put_nowait(item)
