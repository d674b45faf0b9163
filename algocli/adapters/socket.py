"""The reconnecting socket every stream loop runs on: backoff, watchdog, resubscribe, fatal stops.

Each broker stream (a market feed, an order-update stream) subclasses ``ReconnectingSocket``
and writes one connection attempt, ``_attempt()``: read the settings again (tokens roll
over daily), open the socket, call ``_connected()`` once it is open and subscribed (that is
where a stream sends its whole subscription again, on every connection), and read until the
socket ends. The loop around it is the same for every stream:

* a connection that ends or fails (``Dropped``, a socket or HTTP error, a timeout, an
  unexpected exception, which is also logged) is opened again after a jittered, capped
  exponential ``Backoff``; a connection that had been stable resets the delays;
* a refused login (``FeedAuthError``) or a bad setting (``ConfigError``) is fatal: it is
  recorded in ``fatal`` and ``status.last_error`` and the loop stops (raising it when
  ``raise_fatal``), since retrying cannot help;
* with a ``Watchdog``, a socket that stays open but carries no data while the market is
  open is closed (``_close_stalled``) and reopened;
* ``stop()`` ends the loop at once, also during a backoff sleep.

``status`` is updated in place (``connected``, ``reconnects``, ``last_error``, and
``connects`` when it has one). ``last_error`` keeps why the socket last dropped, also once
it is connected again; every text kept or logged is passed through ``redact`` with the
stream's secrets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from algocli.adapters.rest import redact
from algocli.data.feed import FeedAuthError
from algocli.data.reconnect import Backoff, Watchdog
from algocli.errors import ConfigError

__all__ = ["Dropped", "ReconnectingSocket", "SocketStatus", "describe"]

_log = logging.getLogger(__name__)
FATAL = (FeedAuthError, ConfigError)
_RETRYABLE = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class Dropped(Exception):
    """A connection ended or failed in a way worth another attempt; the text says why."""


def describe(exc: object) -> str:
    """``ClassName: text`` for an exception (just the text of a ``Dropped``)."""
    text = str(exc)
    if isinstance(exc, Dropped) or not isinstance(exc, BaseException):
        return text
    name = exc.__class__.__name__
    return f"{name}: {text}" if text else name


@dataclass
class SocketStatus:
    """What a stream has done, for status output and tests."""

    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    messages: int = 0
    skipped: int = 0  # frames that were not a message of the stream
    last_error: str = ""
    fatal: BaseException | None = None


class ReconnectingSocket:
    """Keeps one stream socket open until stopped or refused.

    Args:
        name: Used in log lines (``Dhan order updates``, ``Upstox feed``).
        status: Updated in place; a ``SocketStatus`` by default.
        backoff: Delays between attempts.
        watchdog: Declares an open but silent socket dead (market hours only); None: never.
        check_s: How often the watchdog is consulted (default ``silence_s / 4``, 0.05 to 5 s).
        on_connect: Called after every successful (re)connection (reconcile what was missed).
        on_state: Called whenever ``status.connected`` changes.
        secrets: Values never to appear in ``last_error`` or a log line.
    """

    raise_fatal = True

    def __init__(self, name: str, *, status=None, backoff: Backoff | None = None, watchdog: Watchdog | None = None,
                 check_s: float | None = None, on_connect: Callable[[], None] | None = None,
                 on_state: Callable[[], None] | None = None, secrets: tuple[str, ...] = ()) -> None:
        self.name = name
        self.status = status if status is not None else SocketStatus()
        self.backoff = backoff or Backoff(0.5, 30.0)
        self.watchdog = watchdog
        self.check_s = check_s if check_s is not None else (
            max(0.05, min(5.0, watchdog.silence_s / 4)) if watchdog is not None else 1.0)
        self.attempts = 0
        self.fatal: BaseException | None = None
        self.secrets = secrets
        self._on_connect = on_connect
        self._on_state = on_state
        self._stopping = False
        self._up = False
        self._stalled = False
        self._wake = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self.status.connected

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """End the loop (at once, also during a backoff sleep)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Connect, read, reconnect; returns once stopped or refused.

        Raises:
            FeedAuthError, ConfigError: Fatal, when ``raise_fatal`` (else kept in ``fatal``).
        """
        while not self._stopping:
            self.attempts += 1
            self._stalled = False
            try:
                await self._attempt()
                reason = "" if self._stopping else self._closed_reason()
            except FATAL as exc:
                self._stop_fatal(exc)
                if self.raise_fatal:
                    raise
                return
            except Dropped as exc:
                reason = str(exc)
            except _RETRYABLE as exc:
                reason = describe(exc)
            except Exception as exc:  # a bug must not end the stream silently: log it, retry
                _log.error("%s: unexpected error", self.name, exc_info=True)
                reason = f"unexpected error ({exc.__class__.__name__})"
            finally:
                self._disconnected()
            if self._stopping:
                break
            if self._stalled and self.watchdog is not None:
                reason = f"no data for {self.watchdog.silence_s:g}s during market hours although the socket was open"
            reason = redact(self._explain(reason), *self.secrets)
            self.status.last_error = reason
            self.status.reconnects += 1
            delay = self.backoff.next_delay()
            _log.warning("%s disconnected (%s); reconnecting in %.2fs", self.name, reason, delay)
            await self._sleep(delay)

    # --- for subclasses -------------------------------------------------------------------------

    async def _attempt(self) -> None:
        """One connection: open, ``_connected()``, read until it ends (raise ``Dropped`` & co)."""
        raise NotImplementedError

    def _closed_reason(self) -> str:
        """Why an attempt that returned normally ended."""
        return "the server closed the connection"

    def _explain(self, reason: str) -> str:
        """A chance to add advice to the reason of a drop."""
        return reason

    def _connected(self) -> None:
        """The socket is open (and subscribed): count it, start timing it, tell the owner."""
        self._up = True
        self.backoff.connected()
        if self.watchdog is not None:
            self.watchdog.touch()
        if hasattr(self.status, "connects"):
            self.status.connects += 1
        self._set_connected(True)
        if self._on_connect is not None:
            try:
                self._on_connect()
            except Exception:  # the owner's bug must not take the socket down
                _log.exception("%s: on_connect callback failed", self.name)

    def _set_connected(self, value: bool) -> None:
        if self.status.connected != value:
            self.status.connected = value
            if self._on_state is not None:
                self._on_state()

    def _stop_fatal(self, exc: BaseException) -> None:
        self.fatal = exc
        self._stopping = True
        self.status.last_error = redact(str(exc), *self.secrets)
        if hasattr(self.status, "fatal"):
            self.status.fatal = exc
        _log.error("%s stopped: %s", self.name, self.status.last_error)
        self._on_fatal(exc)

    def _on_fatal(self, exc: BaseException) -> None:
        """Called once with a fatal error, before the loop stops."""

    async def _watch(self, close: Callable[[], object]) -> None:
        """Run beside a session: close the socket when the watchdog says it went silent."""
        if self.watchdog is None:
            return
        while True:
            await asyncio.sleep(self.check_s)
            if self._watching() and self.watchdog.expired():
                self._stalled = True
                await close()
                return

    def _watching(self) -> bool:
        """False while silence is expected (nothing subscribed)."""
        return True

    # --- internals --------------------------------------------------------------------------------

    def _disconnected(self) -> None:
        if self._up:
            self._up = False
            self.backoff.disconnected()  # resets the delays if the socket had been stable
        self._set_connected(False)

    async def _sleep(self, delay: float) -> None:
        if self._stopping:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except asyncio.TimeoutError:
            pass
