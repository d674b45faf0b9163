"""One Dhan market feed v2 socket: log in, (re)subscribe, receive, reconnect.

Each attempt reads the settings again (Dhan tokens roll over daily, so a token is never
cached between attempts) and opens ``{feed_url}?version=2&token=..&clientId=..&authType=2``.
On every (re)connection the socket's whole subscription is sent again, 100 instruments
per message. A dropped socket is reopened after a jittered, capped exponential backoff
(``algocli.data.reconnect.Backoff``); a socket that stays open but carries no data during
market hours is closed and reopened (``Watchdog``).

Fatal, with no retry: the server's disconnect packet with reason 806-810 (data plan,
expired or invalid token, invalid client id), an HTTP 401/403 on the upgrade, an empty
token or client id, or a feed URL that is not ``ws://``/``wss://``. Reason 805 (too many
connections) and everything else are retried.

The token and the client id live only in the URL handed to ``websockets``. That library's
debug log line for the request path goes through a logger that redacts ``token=`` and
``clientId=`` (the client id is half of the login, and names the account), and every error
text kept in ``FeedStatus.last_error`` or raised is redacted of both.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from algocli.adapters.dhan.parsing import REQUEST_DISCONNECT, ServerDisconnect, subscription_messages
from algocli.adapters.rest import REDACTED, redact
from algocli.adapters.socket import Dropped, ReconnectingSocket, SocketStatus, describe
from algocli.adapters.dhan.settings import DhanSettings
from algocli.data.feed import FeedAuthError, FeedStatus
from algocli.data.reconnect import Backoff, Watchdog
from algocli.errors import ConfigError

_log = logging.getLogger(__name__)
_FATAL_HTTP = (401, 403)
_EMPTY_SESSIONS_HINT = 3  # quick closes in a row before the error suggests checking the login
# Keepalive under a backlog: the server's ping (and the pong to ours) sits behind the ticks sent before
# it. The socket is read ahead of the handler, up to _MAX_QUEUE messages (about 6 MB of packets), and the
# handler yields to the event loop every _YIELD_EVERY messages, so control frames are answered when they
# arrive rather than after the backlog ahead of them has been handled (which a replay at --speed 0, or a
# slow strategy, can make longer than the server's patience).
_MAX_QUEUE = 1 << 16
_YIELD_EVERY = 256


_CLIENT_ID = re.compile(r"(clientId=)[^&\s'\"]+", re.IGNORECASE)


def redact_login(text: str) -> str:
    """``text`` with the feed URL's ``token=`` and ``clientId=`` values (and bearer tokens) blanked."""
    return _CLIENT_ID.sub(r"\1" + REDACTED, redact(text))


class RedactTokenFilter(logging.Filter):
    """Rewrites log records whose text holds ``token=...`` or ``clientId=...`` (attach it to a logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix
            return True
        lowered = message.lower()
        if "token=" in lowered or "clientid=" in lowered:
            record.msg, record.args = redact_login(message), ()
        return True


# websockets logs "> GET /?version=2&token=... HTTP/1.1" at DEBUG; it logs through this one.
_wire_log = logging.getLogger("algocli.adapters.dhan.wire")
_wire_log.addFilter(RedactTokenFilter())


def build_feed_url(base: str, token: str, client_id: str) -> str:
    """The market-feed v2 URL with query-string authentication."""
    sep = "&" if "?" in base else "?"
    return (f"{base}{sep}version=2&token={quote(token, safe='')}"
            f"&clientId={quote(client_id, safe='')}&authType=2")


class DhanFeedSocket(ReconnectingSocket):
    """Keeps one market-feed socket open until closed or the login is rejected.

    Args:
        name: Label used in logs (``dhan#0``).
        settings_factory: Called on every attempt for the current token, client id and URL.
        on_message: Called with each binary message and its ``time.monotonic_ns()`` arrival
            time; returns the ``ServerDisconnect`` the message held, if any.
        status: The feed's status; this socket adds its reconnects and sets ``last_error``.
        on_state: Called whenever ``connected`` changes.
        on_fatal: Called once with the fatal error before the socket stops.
        backoff: Delay policy between attempts.
        watchdog: Data-silence detector (market hours only).
        open_timeout, ping_interval, ping_timeout, close_timeout: passed to ``websockets``.
        check_s: How often the watchdog is consulted.
    """

    raise_fatal = False  # the feed learns it through on_fatal and stops its other sockets

    def __init__(self, name: str, *, settings_factory: Callable[[], DhanSettings],
                 on_message: Callable[[bytes, int], ServerDisconnect | None], status: FeedStatus,
                 on_state: Callable[[], None], on_fatal: Callable[[Exception], None],
                 backoff: Backoff, watchdog: Watchdog, open_timeout: float = 10.0,
                 ping_interval: float | None = 20.0, ping_timeout: float | None = 20.0,
                 close_timeout: float = 2.0, check_s: float | None = None) -> None:
        super().__init__(f"Dhan feed {name}", status=SocketStatus(), backoff=backoff, watchdog=watchdog,
                         check_s=check_s, on_state=on_state)
        self.subscriptions: dict[str, int] = {}  # instrument → subscribe request code
        self._settings_factory = settings_factory
        self._on_message = on_message
        self._feed_status = status
        self._on_feed_fatal = on_fatal
        self._connect_options = dict(open_timeout=open_timeout, ping_interval=ping_interval,
                                     ping_timeout=ping_timeout, close_timeout=close_timeout)
        self._close_timeout = close_timeout
        self._ws: ClientConnection | None = None
        self._ready = False  # subscriptions replayed on the current socket
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._empty_sessions = 0

    @property
    def error(self) -> Exception | None:
        """The fatal error that stopped this socket, if any."""
        return self.fatal

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (idempotent)."""
        if self._task is None and not self.stopping:
            self._task = asyncio.get_running_loop().create_task(self.run(), name=f"{self.name}-feed")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        """Say goodbye to the server, close the socket and stop reconnecting."""
        self.stop()
        ws = self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.send(json.dumps({"RequestCode": REQUEST_DISCONNECT})),
                                       self._close_timeout)
            except Exception:  # already gone; closing is all that is left
                pass
            await ws.close()
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=self._close_timeout + 1.0)
            if not done:  # stuck opening a socket (open_timeout): do not wait for it
                task.cancel()
                await asyncio.wait({task})

    def stop_now(self) -> None:
        """Stop without waiting (used when another socket hit a fatal error)."""
        self.stop()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # --- subscriptions -------------------------------------------------------------------

    async def subscribe(self, instruments: list[str], code: int) -> None:
        """Record the instruments; send them now if the socket is up (else on connect)."""
        async with self._lock:
            new = [inst for inst in instruments if self.subscriptions.get(inst) != code]
            for inst in new:
                self.subscriptions[inst] = code
            if new and self._ready:
                await self._send(subscription_messages(code, new))

    async def unsubscribe(self, instruments: list[str]) -> None:
        async with self._lock:
            by_code: dict[int, list[str]] = {}
            for inst in instruments:
                code = self.subscriptions.pop(inst, None)
                if code is not None:
                    by_code.setdefault(code, []).append(inst)
            if self._ready:
                for code, items in by_code.items():
                    await self._send(subscription_messages(code + 1, items))

    async def _send(self, messages: list[str]) -> None:
        ws = self._ws
        if ws is None:
            return
        try:
            for message in messages:
                await ws.send(message)
        except ConnectionClosed:
            pass  # the socket is going; the next connection replays everything

    async def _replay(self, ws: ClientConnection) -> None:
        by_code: dict[int, list[str]] = {}
        for inst, code in self.subscriptions.items():
            by_code.setdefault(code, []).append(inst)
        for code, items in by_code.items():
            for message in subscription_messages(code, items):
                await ws.send(message)

    # --- one connection ---------------------------------------------------------------------

    def _explain(self, reason: str) -> str:
        self._feed_status.reconnects += 1
        if self._empty_sessions >= _EMPTY_SESSIONS_HINT:
            reason += ("; the server keeps closing the socket right after login: check "
                       "DHAN_ACCESS_TOKEN, DHAN_CLIENT_ID and the Data API plan")
        self._feed_status.last_error = redact(reason, *self.secrets)
        return reason

    def _on_fatal(self, exc: BaseException) -> None:
        self._feed_status.last_error = str(exc)
        self._on_feed_fatal(exc)

    def _watching(self) -> bool:
        return bool(self.subscriptions)

    async def _attempt(self) -> None:
        try:
            settings = self._settings_factory()
            token = settings.access_token.get_secret_value()
            client_id, base = settings.client_id, settings.feed_url
        except Exception as exc:  # a half-edited .env: worth another try
            raise Dropped(f"cannot read the Dhan settings ({exc.__class__.__name__})") from None
        if not token:
            raise FeedAuthError("DHAN_ACCESS_TOKEN is empty; generate an access token on web.dhan.co and set it")
        if not client_id:
            raise FeedAuthError("DHAN_CLIENT_ID is empty; set it to your Dhan client id")
        self.secrets = (token, client_id)
        try:
            ws = await connect(build_feed_url(base, token, client_id), compression=None, max_queue=_MAX_QUEUE,
                               logger=_wire_log, **self._connect_options)
        except InvalidStatus as exc:
            code = exc.response.status_code
            if code in _FATAL_HTTP:
                raise FeedAuthError(f"Dhan refused the market feed login (HTTP {code}); generate a new access "
                                    "token, set DHAN_ACCESS_TOKEN and check DHAN_CLIENT_ID") from None
            raise Dropped(f"the feed refused the connection: HTTP {code}") from None
        except InvalidURI:
            raise ConfigError(f"DHAN_FEED_URL {redact_login(redact(base, token, client_id))!r} is not a ws:// or "
                              "wss:// URL") from None
        except (OSError, asyncio.TimeoutError, WebSocketException) as exc:
            raise Dropped(redact(f"cannot connect: {describe(exc)}", token, client_id)) from None
        await self._session(ws)

    async def _session(self, ws: ClientConnection) -> None:
        self._ws = ws
        watch = asyncio.get_running_loop().create_task(self._watch(lambda: ws.close(code=1001, reason="no data")))
        messages = 0
        try:
            async with self._lock:
                try:
                    await self._replay(ws)
                except ConnectionClosed:
                    pass  # still read what arrived first: a refused login is a packet, then a close
                self._ready = True
            self._connected()
            on_message, touch, now_ns = self._on_message, self.watchdog.touch, time.monotonic_ns
            async for msg in ws:
                if msg.__class__ is str:
                    continue  # the v2 feed only sends binary packets
                messages += 1
                if not messages % _YIELD_EVERY:
                    await asyncio.sleep(0)  # let the socket read on (and answer pings) during a backlog
                touch()
                stop = on_message(msg, now_ns())
                if stop is not None:
                    if stop.fatal:
                        advice = ("subscribe to Dhan's Data APIs for this account" if stop.reason == 806 else
                                  "generate a new access token, set DHAN_ACCESS_TOKEN and check DHAN_CLIENT_ID")
                        raise FeedAuthError(f"Dhan closed the market feed: {stop.message} (code {stop.reason}); "
                                            f"{advice}")
                    raise Dropped(f"the server disconnected: {stop.message} (code {stop.reason})")
        except ConnectionClosed as exc:
            raise Dropped(redact(f"connection lost ({describe(exc)})", *self.secrets)) from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise Dropped(redact(f"connection failed ({describe(exc)})", *self.secrets)) from None
        finally:
            self._ready = False
            self._ws = None
            watch.cancel()
            self._empty_sessions = 0 if messages else self._empty_sessions + 1
            await ws.close()
