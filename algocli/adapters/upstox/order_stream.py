"""The Upstox portfolio stream feed: order updates as they happen (brokers.md B8).

Each connection attempt reads the settings again (the token rolls over daily), asks
``GET /v2/feed/portfolio-stream-feed/authorize?update_types=order`` for a single-use
``authorized_redirect_uri`` and opens it. A fresh code is fetched for every reconnect,
since a used one is refused. The server sends one JSON text message per status
transition of any order of the account; the client sends nothing. Messages whose
``update_type`` is ``order`` (or missing) and that carry an ``order_id`` are handed to
``on_update`` as dicts; anything else is counted and skipped.

Failures back off with jitter (``Backoff``) and reconnect. A 401/403 from authorize is
fatal: ``run`` raises ``FeedAuthError`` (log in again). Every successful (re)connect calls
``on_connect``, so the owner can reconcile what it may have missed while disconnected.

The token and the authorized URI (its ``code`` is a credential) are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from urllib.parse import quote

import aiohttp

from algocli.adapters.upstox.http import error_summary
from algocli.config.settings import UpstoxSettings
from algocli.data.feed import FeedAuthError
from algocli.data.reconnect import Backoff

__all__ = ["AUTHORIZE_PATH", "OrderStream", "StreamUnavailable", "authorize"]

_log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/v2/feed/portfolio-stream-feed/authorize"
_SECRETS = re.compile(r"((?:code|token)=|Bearer\s+)[^&\s'\"]+", re.IGNORECASE)
_WS_TIMEOUT = getattr(aiohttp, "ClientWSTimeout", None)


class StreamUnavailable(Exception):
    """A connection attempt failed in a way worth retrying."""


def _redact(text: str) -> str:
    return _SECRETS.sub(r"\1***", text)


async def authorize(session: aiohttp.ClientSession, base_url: str, token: str, *,
                    update_types: tuple[str, ...] = ("order",), timeout: float = 10.0) -> str:
    """A fresh single-use ``authorized_redirect_uri`` for the portfolio stream.

    Raises:
        FeedAuthError: HTTP 401/403 (the token is invalid or expired).
        StreamUnavailable: Any other failure; worth retrying.
    """
    url = f"{base_url.rstrip('/')}{AUTHORIZE_PATH}?update_types={quote(','.join(update_types), safe='')}"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "Api-Version": "2.0"}
    try:
        async with session.get(url, headers=headers, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            status = resp.status
            try:
                payload = await resp.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError):
                payload = None
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise StreamUnavailable(f"authorize failed: {exc.__class__.__name__}: {_redact(str(exc))}") from None
    detail = error_summary(payload)
    if status in (401, 403):
        raise FeedAuthError(f"Upstox refused the access token for the order stream (HTTP {status}"
                            f"{', ' + detail if detail else ''}); log in to Upstox again and set a fresh "
                            "UPSTOX_ACCESS_TOKEN in the environment or .env")
    if status != 200:
        raise StreamUnavailable(f"authorize answered HTTP {status}{', ' + detail if detail else ''}")
    data = payload.get("data") if isinstance(payload, dict) else None
    uri = (data.get("authorized_redirect_uri") or data.get("authorizedRedirectUri")) if isinstance(data, dict) else None
    if not isinstance(uri, str) or not uri.startswith(("ws://", "wss://")):
        raise StreamUnavailable("authorize answered without a ws:// or wss:// authorized_redirect_uri")
    return uri


class OrderStream:
    """Keeps one portfolio-stream socket open until stopped or the token is refused.

    Args:
        session: The aiohttp session to connect on (not closed here).
        on_update: Called with each order update (a dict, Upstox's field names).
        on_connect: Called after each successful (re)connect.
        settings_factory: Called on every attempt for the current token and base URL.
        backoff: Delays between attempts; default 0.5 s doubling to 15 s, with jitter.
        heartbeat: Seconds between client pings; a missing pong drops the socket.
        request_timeout: Seconds for authorize and for the socket handshake.

    Attributes:
        connected, connects, reconnects, messages, skipped, last_error: For status displays.
    """

    def __init__(self, session: aiohttp.ClientSession, *, on_update: Callable[[dict], None],
                 on_connect: Callable[[], None] | None = None,
                 settings_factory: Callable[[], UpstoxSettings] = UpstoxSettings,
                 backoff: Backoff | None = None, heartbeat: float = 20.0, request_timeout: float = 10.0) -> None:
        self.session = session
        self._on_update = on_update
        self._on_connect = on_connect
        self._settings_factory = settings_factory
        self.backoff = backoff or Backoff(0.5, 15.0)
        self.heartbeat = heartbeat
        self.request_timeout = request_timeout
        self.connected = False
        self.connects = 0
        self.reconnects = 0
        self.messages = 0
        self.skipped = 0
        self.last_error = ""
        self.ready = asyncio.Event()  # set while a socket is open
        self._stopping = False
        self._opened = False
        self._wake = asyncio.Event()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Connect, read, reconnect; returns once stopped, raises ``FeedAuthError``."""
        while not self._stopping:
            self._opened = False
            try:
                await self._attempt()
                if not self._stopping:
                    self.last_error = "the server closed the order stream"
            except FeedAuthError as exc:
                self.last_error = str(exc)
                _log.error("Upstox order stream stopped: %s", exc)
                raise
            except (StreamUnavailable, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                self.last_error = _redact(f"{exc.__class__.__name__}: {exc}")
            finally:
                if self._opened:
                    self.backoff.disconnected()  # resets the delays if the socket had been stable
                self.connected = False
                self.ready.clear()
            if self._stopping:
                break
            delay = self.backoff.next_delay()
            self.reconnects += 1
            _log.warning("Upstox order stream disconnected (%s); reconnecting in %.2fs", self.last_error, delay)
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _attempt(self) -> None:
        settings = self._settings_factory()
        token = settings.access_token.get_secret_value()
        if not token:
            raise FeedAuthError("UPSTOX_ACCESS_TOKEN is empty; log in to Upstox and set it in the environment or .env")
        uri = await authorize(self.session, settings.api_base_url, token, timeout=self.request_timeout)
        timeout = _WS_TIMEOUT(ws_receive=None, ws_close=2.0) if _WS_TIMEOUT else 2.0
        try:
            ws = await asyncio.wait_for(self.session.ws_connect(uri, heartbeat=self.heartbeat, timeout=timeout),
                                        self.request_timeout)
        except aiohttp.WSServerHandshakeError as exc:
            raise StreamUnavailable(f"order stream socket refused: HTTP {exc.status}") from None
        async with ws:
            self._opened = True
            self.connected = True
            self.connects += 1
            self.backoff.connected()
            self.ready.set()
            if self._on_connect is not None:
                self._on_connect()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._handle(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self._handle(msg.data.decode("utf-8", "replace"))
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    raise StreamUnavailable(_redact(str(ws.exception() or "socket error")))

    def _handle(self, text: str) -> None:
        try:
            update = json.loads(text)
        except ValueError:
            self.skipped += 1
            return
        if (not isinstance(update, dict) or update.get("update_type", "order") != "order"
                or not update.get("order_id")):
            self.skipped += 1
            return
        self.messages += 1
        self._on_update(update)
