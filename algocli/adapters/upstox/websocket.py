"""The Upstox Market Data Feed V3 connection: authorize, connect, resubscribe, reconnect.

Every connection attempt starts from scratch: settings (and so the access token, which
Upstox rolls over daily) are read again, ``GET /v3/feed/market-data-feed/authorize``
returns a single-use ``authorized_redirect_uri``, and the socket opened on it gets the
full subscription again. Failures back off exponentially with jitter up to a cap. A 401
or 403 from authorize is fatal (``FeedAuthError``): a rejected token does not get better
by retrying. A socket that stays open but carries no data while the market is open is
closed and reopened (the stall watchdog); while the market is closed silence is normal
and only the heartbeat (ping/pong) decides whether the socket is alive.

The token is sent in one header of one request per attempt and never logged; neither is
the authorized URI, whose ``code`` is a credential too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp

from algocli.config.settings import UpstoxSettings
from algocli.data.feed import FeedAuthError, FeedStatus
from algocli.data.reconnect import Backoff, Watchdog

_log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/v3/feed/market-data-feed/authorize"
MODES = ("ltpc", "option_greeks", "full", "full_d30")
MODE_LIMITS = {"ltpc": 5000, "option_greeks": 3000, "full": 2000, "full_d30": 50}
_FATAL_HTTP = (401, 403)
_WS_TIMEOUT = getattr(aiohttp, "ClientWSTimeout", None)
_SECRETS = re.compile(r"((?:code|token)=|Bearer\s+)[^&\s'\"]+", re.IGNORECASE)


class FeedUnavailable(Exception):
    """A connection attempt failed in a way worth retrying (5xx, 429, a refused socket...)."""


class FeedStalled(Exception):
    """The socket stayed open but carried no data for too long while the market was open."""


def build_request(method: str, keys: list[str], mode: str | None = None) -> bytes:
    """A client request as Upstox wants it: UTF-8 JSON, to be sent as a BINARY frame."""
    data: dict = {"instrumentKeys": list(keys)}
    if mode is not None:
        data["mode"] = mode
    return json.dumps({"guid": uuid.uuid4().hex, "method": method, "data": data}).encode()


def error_summary(payload: object) -> str:
    """``UDAPI100050: Invalid token used to access API`` from an Upstox error envelope."""
    if isinstance(payload, dict):
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = first.get("errorCode") or first.get("error_code") or ""
            return f"{code}: {first.get('message', '')}".strip(": ")
    return ""


async def authorize(session: aiohttp.ClientSession, base_url: str, token: str, *,
                    timeout: float = 10.0) -> str:
    """Fetch a fresh single-use ``authorized_redirect_uri``.

    Raises:
        FeedAuthError: Upstox answered 401/403 (invalid or expired token).
        FeedUnavailable: Any other failure; worth retrying later.
    """
    url = base_url.rstrip("/") + AUTHORIZE_PATH
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        async with session.get(url, headers=headers, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            try:
                payload = await resp.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError):
                payload = None
            status = resp.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise FeedUnavailable(f"authorize request failed: {exc.__class__.__name__}: {exc}") from None
    detail = error_summary(payload)
    if status in _FATAL_HTTP:
        raise FeedAuthError(f"Upstox rejected the access token (HTTP {status}"
                            f"{', ' + detail if detail else ''}); log in again and set a fresh "
                            "UPSTOX_ACCESS_TOKEN")
    if status != 200:
        raise FeedUnavailable(f"authorize answered HTTP {status}{' ' + detail if detail else ''}")
    data = payload.get("data") if isinstance(payload, dict) else None
    uri = None
    if isinstance(data, dict):
        uri = data.get("authorized_redirect_uri") or data.get("authorizedRedirectUri")
    if not isinstance(uri, str) or not uri.startswith(("ws://", "wss://")):
        raise FeedUnavailable("authorize answered without a ws:// or wss:// authorized_redirect_uri")
    return uri


class FeedConnection:
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
        self.status = status
        self._on_open = on_open
        self._on_frame = on_frame
        self._settings_factory = settings_factory
        self.backoff = backoff or Backoff()
        self.watchdog = watchdog
        self.heartbeat = heartbeat
        self.request_timeout = request_timeout
        self.attempts = 0
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.ready = asyncio.Event()  # set while a subscribed socket is open
        self._stopping = False
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Connect, pump frames, reconnect; returns when stopped, raises ``FeedAuthError``."""
        async with aiohttp.ClientSession() as session:
            while not self._stopping:
                self.attempts += 1
                try:
                    await self._session(session)
                    if not self._stopping:
                        self.status.last_error = "the server closed the feed"
                except FeedAuthError as exc:
                    self.status.last_error = str(exc)
                    _log.error("Upstox feed stopped: %s", exc)
                    raise
                except (FeedStalled, FeedUnavailable, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    self.status.last_error = _describe(exc)
                finally:
                    if self.ws is not None:
                        self.backoff.disconnected()  # resets the delays if the socket had been stable
                    self.ws = None
                    self.ready.clear()
                    self.status.connected = False
                if self._stopping:
                    break
                delay = self.backoff.next_delay()
                self.status.reconnects += 1
                _log.warning("Upstox feed disconnected (%s); reconnecting in %.2fs",
                             self.status.last_error, delay)
                await self._sleep(delay)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _sleep(self, delay: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except asyncio.TimeoutError:
            pass

    async def _session(self, session: aiohttp.ClientSession) -> None:
        """One attempt: authorize, open, subscribe, read until the socket ends."""
        settings = self._settings_factory()
        token = settings.access_token.get_secret_value()
        if not token:
            raise FeedAuthError("UPSTOX_ACCESS_TOKEN is empty; log in to Upstox and set it")
        uri = await authorize(session, settings.api_base_url, token, timeout=self.request_timeout)
        ws_timeout = _WS_TIMEOUT(ws_receive=None, ws_close=2.0) if _WS_TIMEOUT else 2.0  # aiohttp < 3.11: float
        try:
            ws_cm = session.ws_connect(uri, heartbeat=self.heartbeat, timeout=ws_timeout, max_msg_size=64 * 2**20)
            ws = await asyncio.wait_for(ws_cm, self.request_timeout)
        except aiohttp.WSServerHandshakeError as exc:
            raise FeedUnavailable(f"feed socket refused: HTTP {exc.status}") from None
        async with ws:
            self.ws = ws
            self.backoff.connected()
            await self._on_open(ws)
            self.status.connected = True  # last_error stays: the dashboard shows why it last dropped
            self.ready.set()
            await self._pump(ws)

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.watchdog.touch()
        check = min(1.0, self.watchdog.silence_s / 4)
        while True:
            try:
                msg = await ws.receive(timeout=check)
            except asyncio.TimeoutError:
                if self.watchdog.expired():
                    raise FeedStalled(f"no data for {self.watchdog.silence():.1f}s while the market "
                                      "is open") from None
                continue
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.watchdog.touch()
                self._on_frame(msg.data, time.monotonic_ns())
            elif msg.type == aiohttp.WSMsgType.TEXT:
                self._on_frame(msg.data.encode(), time.monotonic_ns())  # not protobuf: counted as malformed
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return
            elif msg.type == aiohttp.WSMsgType.ERROR:
                raise FeedUnavailable(_describe(ws.exception() or msg.data))


def _describe(exc: object) -> str:
    """One line for status and logs, with any authorization code or token blanked."""
    text = _SECRETS.sub(r"\1***", str(exc))
    name = exc.__class__.__name__ if isinstance(exc, BaseException) else ""
    if isinstance(exc, FeedUnavailable):
        return text
    return f"{name}: {text}" if name and text else (name or text)
