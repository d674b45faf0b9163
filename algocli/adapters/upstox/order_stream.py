"""The Upstox portfolio stream feed: order updates as they happen.

https://upstox.com/developer/api-documentation/v2/get-portfolio-stream-feed

Each connection attempt reads the settings again (the token rolls over daily), asks
``GET /v2/feed/portfolio-stream-feed/authorize?update_types=order`` for a single-use
``authorized_redirect_uri`` and opens it. A fresh code is fetched for every reconnect,
since a used one is refused. The server sends one JSON text message per status
transition of any order of the account; the client sends nothing. Messages whose
``update_type`` is ``order`` (or missing) and that carry an ``order_id`` are handed to
``on_update`` as dicts; anything else is counted and skipped.

The loop is the shared ``algocli.adapters.socket.ReconnectingSocket``: failures back off
with jitter and reconnect; a 401/403 from authorize is fatal: ``run`` raises
``FeedAuthError`` (log in again). Every successful (re)connect calls ``on_connect``, so the
owner can reconcile what it may have missed while disconnected.

The token and the authorized URI (its ``code`` is a credential) are never logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import aiohttp

from algocli.adapters.socket import ReconnectingSocket, SocketStatus
from algocli.adapters.upstox.websocket import FeedUnavailable, authorize, open_socket
from algocli.adapters.upstox.settings import UpstoxSettings
from algocli.data.feed import FeedAuthError
from algocli.data.reconnect import Backoff

__all__ = ["AUTHORIZE_PATH", "OrderStream", "StreamUnavailable"]

_log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/v2/feed/portfolio-stream-feed/authorize"
StreamUnavailable = FeedUnavailable  # a connection attempt failed in a way worth retrying


class OrderStream(ReconnectingSocket):
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
        status: ``SocketStatus`` (connected, connects, reconnects, messages, skipped,
            last_error), for status displays.
    """

    def __init__(self, session: aiohttp.ClientSession, *, on_update: Callable[[dict], None],
                 on_connect: Callable[[], None] | None = None,
                 settings_factory: Callable[[], UpstoxSettings] = UpstoxSettings,
                 backoff: Backoff | None = None, heartbeat: float = 20.0, request_timeout: float = 10.0) -> None:
        super().__init__("Upstox order stream", status=SocketStatus(), backoff=backoff or Backoff(0.5, 15.0),
                         on_connect=on_connect)
        self.session = session
        self._on_update = on_update
        self._settings_factory = settings_factory
        self.heartbeat = heartbeat
        self.request_timeout = request_timeout

    def _closed_reason(self) -> str:
        return "the server closed the order stream"

    async def _attempt(self) -> None:
        settings = self._settings_factory()
        token = settings.access_token.get_secret_value()
        if not token:
            raise FeedAuthError("UPSTOX_ACCESS_TOKEN is empty; log in to Upstox and set it in the environment or .env")
        self.secrets = (token,)
        uri = await authorize(self.session, settings.api_base_url, token, timeout=self.request_timeout,
                              path=f"{AUTHORIZE_PATH}?update_types=order", what="the order stream")
        ws = await open_socket(self.session, uri, heartbeat=self.heartbeat, timeout=self.request_timeout)
        async with ws:
            self._connected()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._handle(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self._handle(msg.data.decode("utf-8", "replace"))
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    raise StreamUnavailable(str(ws.exception() or "socket error"))

    def _handle(self, text: str) -> None:
        try:
            update = json.loads(text)
        except ValueError:
            self.status.skipped += 1
            return
        if (not isinstance(update, dict) or update.get("update_type", "order") != "order"
                or not update.get("order_id")):
            self.status.skipped += 1
            return
        self.status.messages += 1
        try:
            self._on_update(update)
        except Exception:  # the owner's bug must not take the stream down
            _log.exception("Upstox order-update callback failed")
