"""What the sandbox's broker order servers share: the auth guard, fault switches, order-update fan-out.

``algocli.sandbox.dhan_orders`` and ``algocli.sandbox.upstox_orders`` each subclass
``OrderServer`` and keep only their broker's wire format: how a request names its account
(``authenticate``), how an error body looks (``error_response``), the JSON of orders,
trades and positions, and what an exchange event becomes on the order-update stream
(``on_event``). This base gives them:

* **The auth guard** (``guard``): every REST call is logged in ``requests``, answered with
  the broker's 500 when a ``read_errors`` fault is due (reads only), authenticated, and any
  ``Refused`` raised on the way becomes the broker's error response.
* **Their own accounts**: each server works on its venue of the shared ``Exchange``
  (``exchange.venue(VENUE)``), so a Dhan client id and an Upstox token never share books.
* **Fault switches**: counts that go down by one each time they fire (``take``), the
  accepted-then-failed placement faults (``after_accept``), and ``GET``/``POST`` of the
  switches as JSON (``faults_route``), all or none, the engine's ``duplicate_fills``,
  ``early_fills`` and ``reject_sells`` among them.
* **Order-update fan-out**: one exchange listener per account (``watch``); ``fan_out``
  queues a message for every open socket of that account and one task per socket writes
  them, aborting the socket (no close frame) when the broker's drop fault says so.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from aiohttp import web

from algocli.sandbox.exchange import Exchange, Venue
from algocli.sandbox.hub import TickHub

__all__ = ["ENGINE_FAULTS", "OrderServer", "Refused", "StreamSession"]

ENGINE_FAULTS = ("duplicate_fills", "early_fills", "reject_sells")  # switches of the matching engine, shared by every venue
_MAX_SECONDS = 3600.0


class Refused(Exception):
    """A request answered with an error; the broker's ``error_response`` writes the body.

    Args:
        status: HTTP status.
        code: The broker's error code (``DH-905``, ``UDAPI100038``).
        message: Human-readable reason.
        kind: The broker's error class, where it has one (Dhan's ``errorType``).
    """

    def __init__(self, status: int, code: str, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind


@dataclass
class StreamSession:
    """One order-update socket, for tests and status output.

    Attributes:
        account: The account whose events it carries (empty until known).
        sent: Messages written to it.
        open: False once it closed or was dropped.
        dropped: Aborted by the drop fault.
    """

    account: str = ""
    sent: int = 0
    open: bool = True
    dropped: bool = False
    queue: asyncio.Queue | None = field(default=None, repr=False)
    transport: asyncio.BaseTransport | None = field(default=None, repr=False)


Handler = Callable[..., Awaitable[web.StreamResponse]]


class OrderServer:
    """Shared state and plumbing of one broker's order routes (see the module docstring).

    Args:
        hub: Token rule (``hub.token_ok``).
        exchange: The shared matching engine; the server works on its venue ``VENUE``.
        faults: The broker's fault switches (a dataclass of counts, seconds and flags).
        heartbeat: WebSocket ping interval of the order-update sockets, seconds.

    Attributes:
        exchange: This broker's ``Venue`` of the engine.
        requests: ``(method, path)`` of every guarded request.
        sessions: Every order-update socket accepted, oldest first.
        stream_connections / stream_drops / messages_sent: Socket counters.
    """

    VENUE: ClassVar[str] = ""

    def __init__(self, hub: TickHub, exchange: Exchange, faults: Any, *, heartbeat: float = 10.0) -> None:
        self.hub = hub
        self.exchange: Venue = exchange.venue(self.VENUE)
        self.faults = faults
        self.heartbeat = heartbeat
        self.requests: list[tuple[str, str]] = []
        self.sessions: list[StreamSession] = []
        self.stream_connections = 0
        self.stream_drops = 0
        self.messages_sent = 0
        self._live: dict[str, list[StreamSession]] = {}  # account -> open sockets
        self._watched: set[str] = set()
        self._closing = asyncio.Event()

    # --- what each broker writes ---------------------------------------------------------

    async def authenticate(self, request: web.Request) -> str:
        """The account a request acts for.

        Raises:
            Refused: The credentials are missing or not accepted.
        """
        raise NotImplementedError

    def error_response(self, refused: Refused) -> web.Response:
        """The broker's error body for ``refused``."""
        raise NotImplementedError

    def server_error(self, reason: str) -> Refused:
        """The broker's HTTP 500, for a fault named ``reason``."""
        raise NotImplementedError

    def on_event(self, account: str, kind: str, payload: object) -> None:
        """An exchange event of a watched account (``("order", SimOrder)`` or ``("trade", SimTrade)``)."""

    def drop_before_send(self, session: StreamSession) -> bool:
        """True to abort ``session`` instead of sending its next message."""
        return False

    def drop_after_send(self, session: StreamSession) -> bool:
        """True to abort ``session`` right after a message was sent."""
        return False

    def faults_answer(self, state: dict) -> web.Response:
        """The answer of the fault route, showing ``state``."""
        return web.json_response(state)

    def faults_refused(self, message: str) -> web.Response:
        """The fault route's answer to switches it cannot apply."""
        return self.error_response(Refused(400, "", message))

    # --- the auth guard ----------------------------------------------------------------------

    def guard(self, handler: Handler, *, read: bool = False, auth: bool = True) -> Handler:
        """``handler(request, account)`` (or ``handler(request)`` with ``auth=False``) behind the guard."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            self.requests.append((request.method, request.path))
            try:
                if read and self.take("read_errors"):
                    raise self.server_error("read_errors")
                if not auth:
                    return await handler(request)
                return await handler(request, await self.authenticate(request))
            except Refused as refused:
                return self.error_response(refused)
        return guarded

    @staticmethod
    async def json_object(request: web.Request, *, blank: dict | None = None) -> dict | None:
        """The request body as a JSON object; None when it is not one, ``blank`` when it is empty."""
        try:
            text = await request.text()
            if not text.strip():
                return blank
            body = json.loads(text)
        except ValueError:  # UnicodeDecodeError included
            return None
        return body if isinstance(body, dict) else None

    # --- fault switches ------------------------------------------------------------------------

    def take(self, name: str) -> bool:
        """Fire the counted fault ``name`` if any are left (and count it down)."""
        left = getattr(self.faults, name, 0)
        if left > 0:
            setattr(self.faults, name, left - 1)
            return True
        return False

    async def after_accept(self, hang_s: float) -> None:
        """The faults of a placement the engine has taken: answer 500, or hold the answer ``hang_s``.

        Raises:
            Refused: ``error_500_after_accept`` fired.
        """
        if self.take("error_500_after_accept"):
            raise self.server_error("error_500_after_accept")
        if self.take("timeout_after_accept"):
            with suppress(asyncio.TimeoutError):  # the shutdown ends the hold early
                await asyncio.wait_for(self._closing.wait(), hang_s)

    def fault_state(self) -> dict:
        """Every switch and its value, the engine's included."""
        state = {f.name: getattr(self.faults, f.name) for f in fields(self.faults)}
        return state | {name: getattr(self.exchange.faults, name) for name in ENGINE_FAULTS}

    def set_faults(self, changes: dict) -> None:
        """Apply ``{"name": value}`` switches, all or none.

        Numbers may be given as numeric strings. Counts are whole and not negative,
        seconds between 0 and an hour, flags true or false.

        Raises:
            ValueError: An unknown name or a value of the wrong kind.
        """
        current = self.fault_state()
        unknown = sorted(set(changes) - set(current))
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(sorted(current))}")
        checked = [(name, _coerce(name, value, current[name])) for name, value in changes.items()]
        for name, value in checked:
            setattr(self.exchange.faults if name in ENGINE_FAULTS else self.faults, name, value)

    async def faults_route(self, request: web.Request) -> web.Response:
        """``GET`` shows the switches; ``POST`` sets those in its JSON object first."""
        if request.method == "POST":
            body = await self.json_object(request, blank={})
            try:
                if body is None:
                    raise ValueError("send a JSON object of fault switches")
                self.set_faults(body)
            except ValueError as exc:
                return self.faults_refused(str(exc))
        return self.faults_answer(self.fault_state())

    # --- order-update fan-out --------------------------------------------------------------------

    def watch(self, account: str) -> None:
        """Start receiving the account's exchange events in ``on_event`` (once per account)."""
        if account not in self._watched:
            self._watched.add(account)
            self.exchange.listen(account, lambda kind, payload: self.on_event(account, kind, payload))

    def listening(self, account: str) -> bool:
        """True while the account has an open order-update socket."""
        return bool(self._live.get(account))

    def fan_out(self, account: str, message: dict) -> None:
        """Queue ``message`` for every open order-update socket of ``account``."""
        for session in self._live.get(account, ()):
            if session.open and session.queue is not None:
                session.queue.put_nowait(message)

    def socket(self) -> web.WebSocketResponse:
        return web.WebSocketResponse(heartbeat=self.heartbeat, max_msg_size=1 << 20)

    def accept(self, request: web.Request, session: StreamSession) -> StreamSession:
        """Count a newly accepted socket (before any login) and keep it in ``sessions``."""
        session.transport = request.transport
        self.sessions.append(session)
        self.stream_connections += 1
        return session

    async def serve_stream(self, ws: web.WebSocketResponse, session: StreamSession) -> None:
        """Send ``session.account``'s updates to ``ws`` until the client closes it."""
        session.queue = asyncio.Queue()
        self.watch(session.account)
        self._live.setdefault(session.account, []).append(session)
        writer = asyncio.get_running_loop().create_task(self._write(ws, session))
        try:
            async for _msg in ws:  # the client has nothing more to say; read until it closes
                pass
        finally:
            session.open = False
            self._live[session.account].remove(session)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _write(self, ws: web.WebSocketResponse, session: StreamSession) -> None:
        queue = session.queue
        assert queue is not None
        while True:
            message = await queue.get()
            if self.drop_before_send(session):
                self._drop(session)
                return
            try:
                await ws.send_str(json.dumps(message))
            except (ConnectionError, RuntimeError):
                return
            session.sent += 1
            self.messages_sent += 1
            if self.drop_after_send(session):
                self._drop(session)
                return

    def _drop(self, session: StreamSession) -> None:
        session.dropped, session.open = True, False
        self.stream_drops += 1
        if session.transport is not None:
            session.transport.abort()  # like a network drop: no close frame, queued updates are lost

    async def on_shutdown(self, app: web.Application) -> None:
        """End held answers and abort the open sockets, so the server stops at once."""
        self._closing.set()
        for session in self.sessions:
            if session.open and session.transport is not None:
                session.transport.abort()


def _coerce(name: str, value: object, current: object) -> object:
    """``value`` as the kind of the switch's ``current`` value (see ``OrderServer.set_faults``)."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} takes true or false")
        return value
    if isinstance(current, int) and isinstance(value, bool):
        return int(value)  # true = one
    try:
        number = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else math.nan
    except ValueError:
        number = math.nan
    if isinstance(current, int):
        if not (math.isfinite(number) and number >= 0 and number == int(number)):
            raise ValueError(f"{name} takes a count (0 = off)")
        return int(number)
    if not 0 <= number < _MAX_SECONDS:
        raise ValueError(f"{name} takes seconds (0 to {_MAX_SECONDS:g})")
    return number
