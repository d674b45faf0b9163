"""The Upstox Market Data Feed V3 connection: authorize, connect, resubscribe, reconnect.

https://upstox.com/developer/api-documentation/v3/get-market-data-feed. Every connection
attempt starts from scratch: settings (and so the access token, which Upstox rolls over
daily) are read again, ``GET /v3/feed/market-data-feed/authorize`` returns a single-use
``authorized_redirect_uri``, and the socket opened on it gets the full subscription again.
The loop around the attempts (backoff, the stall watchdog, fatal stops) is the shared
``algocli.adapters.socket.ReconnectingSocket``: a 401 or 403 from authorize is fatal
(``FeedAuthError``), and a socket that stays open but carries no data while the market is
open is closed and reopened; while the market is closed silence is normal and only the
heartbeat (ping/pong) decides whether the socket is alive.

The token is sent in one header of one request per attempt and never logged; neither is
the authorized URI, whose ``code`` is a credential too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp

from algocli.adapters.rest import redact
from algocli.adapters.socket import Dropped, ReconnectingSocket, describe
from algocli.adapters.upstox.http import error_summary
from algocli.adapters.upstox.settings import UpstoxSettings
from algocli.data.feed import FeedAuthError, FeedStatus
from algocli.data.reconnect import Backoff, Watchdog

_log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/v3/feed/market-data-feed/authorize"
MODES = ("ltpc", "option_greeks", "full", "full_d30")
MODE_LIMITS = {"ltpc": 5000, "option_greeks": 3000, "full": 2000, "full_d30": 50}
_FATAL_HTTP = (401, 403)
_WS_TIMEOUT = getattr(aiohttp, "ClientWSTimeout", None)


class FeedUnavailable(Dropped):
    """A connection attempt failed in a way worth retrying (5xx, 429, a refused socket...)."""


def build_request(method: str, keys: list[str], mode: str | None = None) -> bytes:
    """A client request as Upstox wants it: UTF-8 JSON, to be sent as a BINARY frame."""
    data: dict = {"instrumentKeys": list(keys)}
    if mode is not None:
        data["mode"] = mode
    return json.dumps({"guid": uuid.uuid4().hex, "method": method, "data": data}).encode()


async def authorize(session: aiohttp.ClientSession, base_url: str, token: str, *, timeout: float = 10.0,
                    path: str = AUTHORIZE_PATH, what: str = "the market feed") -> str:
    """Fetch a fresh single-use ``authorized_redirect_uri`` (the feed's or, with ``path``, the
    portfolio stream's).

    Raises:
        FeedAuthError: Upstox answered 401/403 (invalid or expired token).
        FeedUnavailable: Any other failure; worth retrying later.
    """
    url = base_url.rstrip("/") + path
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "Api-Version": "2.0"}
    try:
        async with session.get(url, headers=headers, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            try:
                payload = await resp.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError):
                payload = None
            status = resp.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise FeedUnavailable(redact(f"authorize request failed: {describe(exc)}", token)) from None
    detail = error_summary(payload)
    if status in _FATAL_HTTP:
        raise FeedAuthError(f"Upstox rejected the access token for {what} (HTTP {status}"
                            f"{', ' + detail if detail else ''}); log in to Upstox again and set a fresh "
                            "UPSTOX_ACCESS_TOKEN in the environment or .env")
    if status != 200:
        raise FeedUnavailable(f"authorize answered HTTP {status}{', ' + detail if detail else ''}")
    data = payload.get("data") if isinstance(payload, dict) else None
    uri = None
    if isinstance(data, dict):
        uri = data.get("authorized_redirect_uri") or data.get("authorizedRedirectUri")
    if not isinstance(uri, str) or not uri.startswith(("ws://", "wss://")):
        raise FeedUnavailable("authorize answered without a ws:// or wss:// authorized_redirect_uri")
    return uri


async def open_socket(session: aiohttp.ClientSession, uri: str, *, heartbeat: float,
                      timeout: float) -> aiohttp.ClientWebSocketResponse:
    """Open an authorized URI (its ``code`` never appears in an error)."""
    ws_timeout = _WS_TIMEOUT(ws_receive=None, ws_close=2.0) if _WS_TIMEOUT else 2.0  # aiohttp < 3.11: float
    try:
        return await asyncio.wait_for(session.ws_connect(uri, heartbeat=heartbeat, timeout=ws_timeout,
                                                         max_msg_size=64 * 2**20), timeout)
    except aiohttp.WSServerHandshakeError as exc:
        raise FeedUnavailable(f"socket refused: HTTP {exc.status}") from None


class FeedConnection(ReconnectingSocket):
    """Keeps one market-data socket open until stopped or the token is rejected.

    Args:
        status: Updated in place (connected, reconnects, last_error).
        on_open: Awaited with each new socket, before any frame is read; sends the
            subscription. An exception here counts as a failed attempt.
        on_frame: Called with each binary frame and its monotonic arrival time (ns).
        watchdog: Decides when silence means a dead feed (it knows the market hours).
        settings_factory: Called on every attempt for the current token and base URL.
        backoff: Delay policy between attempts.
        heartbeat: Seconds between client pings; no pong within half of it drops the socket.
    """

    def __init__(self, *, status: FeedStatus,
                 on_open: Callable[[aiohttp.ClientWebSocketResponse], Awaitable[None]],
                 on_frame: Callable[[bytes, int], None],
                 watchdog: Watchdog,
                 settings_factory: Callable[[], UpstoxSettings] = UpstoxSettings,
                 backoff: Backoff | None = None,
                 heartbeat: float = 20.0,
                 request_timeout: float = 10.0) -> None:
        super().__init__("Upstox feed", status=status, backoff=backoff or Backoff(), watchdog=watchdog,
                         check_s=min(1.0, watchdog.silence_s / 4))
        self._on_open = on_open
        self._on_frame = on_frame
        self._settings_factory = settings_factory
        self.heartbeat = heartbeat
        self.request_timeout = request_timeout
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.ready = asyncio.Event()  # set while a subscribed socket is open
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Connect, pump frames, reconnect; returns when stopped, raises ``FeedAuthError``."""
        async with aiohttp.ClientSession() as session:
            self._session = session
            await super().run()

    def _closed_reason(self) -> str:
        return "the server closed the feed"

    async def _attempt(self) -> None:
        """One attempt: authorize, open, subscribe, read until the socket ends."""
        settings = self._settings_factory()
        token = settings.access_token.get_secret_value()
        if not token:
            raise FeedAuthError("UPSTOX_ACCESS_TOKEN is empty; log in to Upstox and set it")
        self.secrets = (token,)
        uri = await authorize(self._session, settings.api_base_url, token, timeout=self.request_timeout)
        ws = await open_socket(self._session, uri, heartbeat=self.heartbeat, timeout=self.request_timeout)
        watch = None
        try:
            async with ws:
                self.ws = ws
                await self._on_open(ws)
                self._connected()
                self.ready.set()
                watch = asyncio.get_running_loop().create_task(self._watch(ws.close))
                await self._pump(ws)
        finally:
            if watch is not None:
                watch.cancel()
            self.ws = None
            self.ready.clear()

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        touch, on_frame, now_ns = self.watchdog.touch, self._on_frame, time.monotonic_ns
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                touch()
                on_frame(msg.data, now_ns())
            elif msg.type == aiohttp.WSMsgType.TEXT:
                on_frame(msg.data.encode(), now_ns())  # not protobuf: counted as malformed
            elif msg.type == aiohttp.WSMsgType.ERROR:
                raise FeedUnavailable(redact(describe(ws.exception() or msg.data)))
