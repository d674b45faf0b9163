"""Dhan v2 order entry, portfolio and the live order-update stream, on the sandbox's ``Exchange``.

Routes, JSON shapes and field names as Dhan sends them (https://dhanhq.co/docs/v2/orders/,
https://dhanhq.co/docs/v2/portfolio/, https://dhanhq.co/docs/v2/funds/,
https://dhanhq.co/docs/v2/order-update/):

* ``POST /v2/orders`` → ``{"orderId","orderStatus"}``. Numeric strings are coerced and ``""``
  counts as absent; ``correlationId`` (at most 30 characters) becomes the exchange order's
  client id. The sandbox does not de-duplicate ``correlationId`` (neither does Dhan).
* ``PUT /v2/orders/{id}`` (at most 25 modifications), ``DELETE /v2/orders/{id}`` (HTTP 202).
* What the exchange refuses (``algocli.sandbox.rules``) is accepted with an ``orderId`` and
  ``orderStatus`` ``REJECTED``, the reason in ``omsErrorDescription``, as the funds check is: a
  LIMIT price outside the day's operating range, or any order while the market is closed
  unless ``afterMarketOrder`` is true (the sandbox releases it at the next open, whatever its
  ``amoTime``). At the session's close every working order turns ``EXPIRED`` (Dhan's status
  when validity runs out: its order-status list on https://dhanhq.co/docs/v2/orders/), the reason in
  ``omsErrorDescription`` too.
* ``GET /v2/orders``, ``/v2/orders/{id}``, ``/v2/orders/external/{correlationId}`` (one
  order-book object; the latest order with that id), ``/v2/trades`` (also ``/v2/trades/``, as
  the SDK asks), ``/v2/trades/{orderId}``, ``/v2/positions``, ``/v2/fundlimit``. Lists are
  bare arrays, single items bare objects, times IST ``YYYY-MM-DD HH:MM:SS``.
* The order-update WebSocket at ``/dhan/orders``: the client sends
  ``{"LoginReq":{"MsgCode":42,"ClientId":..,"Token":..},"UserType":"SELF"}`` first; then
  every order and trade event of that account arrives as ``{"Type":"order_alert","Data":{..}}``
  with Dhan's PascalCase fields. A refused login is closed with code 1008 (policy violation).

The JSON shapes (and how exchange statuses map to Dhan's) live in ``algocli.sandbox.dhan_rows``;
the auth guard, fault counters and stream fan-out in ``algocli.sandbox.orders_base``.

Every REST call needs an ``access-token`` the hub accepts (``hub.token_ok``), else HTTP 401
with a ``DH-901`` body. The account is the ``client-id`` header, else the body's
``dhanClientId``; with neither the request is refused (``DH-905``). Accounts are the Dhan
venue's of the exchange: a client id here and the same word as an Upstox token are two
accounts. Errors use Dhan's body ``{"errorType","errorCode","errorMessage"}``.

Fault injection (``DhanOrderFaults``, at ``app[DHAN_ORDERS_KEY].faults``, or over HTTP with
``POST /sandbox/dhan/faults`` and a JSON object of the fields to set; ``GET`` shows them):

* ``timeout_after_accept`` (count): the next N placements are accepted by the exchange, then
  answered only after ``hang_seconds`` (default 30 s: longer than any client timeout).
* ``error_500_after_accept`` (count): the next N placements are accepted, then answered with
  HTTP 500 ``DH-908``.
* ``http_429`` (count): the next N placements are answered HTTP 429 ``DH-904`` without placing.
* ``reject_orders`` (count): the next N placements are refused with HTTP 400 ``DH-906``
  without placing (a definitive rejection, as Dhan's order checks give).
* ``read_errors`` (count): the next N GET requests are answered HTTP 500 ``DH-908``.
* ``drop_order_stream`` (N): every order-update socket is aborted after it has sent N messages
  (0 = never); the event that would have been message N+1 is lost with it.
* ``duplicate_fills``, ``early_fills`` (bool): forwarded to ``exchange.faults`` (every trade
  event sent twice; the trade event sent before the order's TRADED update).
* ``reject_sells`` (count): forwarded to ``exchange.faults``: the next N sell orders get an
  order id and are then REJECTED by the exchange (``orderStatus`` REJECTED, the reason in
  ``omsErrorDescription``).

Counts go down by one each time the fault fires; numbers may be sent as numeric strings.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, WSMsgType, web

from algocli.adapters.dhan.parsing import SEGMENTS
from algocli.sandbox.dhan_rows import Extras, alert, book_entry, dhan_status, position_entry, trade_entry
from algocli.sandbox.exchange import Exchange, SimOrder, SimTrade
from algocli.sandbox.hub import TickHub
from algocli.sandbox.orders_base import OrderServer, Refused, StreamSession

__all__ = ["DHAN_ORDERS_KEY", "DHAN_ORDER_STREAM_PATH", "FAULTS_PATH", "MAX_MODIFICATIONS", "DhanOrderFaults",
           "DhanOrdersSandbox", "OrderStreamSession", "add_routes", "dhan_status"]

DHAN_ORDER_STREAM_PATH = "/dhan/orders"
FAULTS_PATH = "/sandbox/dhan/faults"
MAX_MODIFICATIONS = 25
MAX_CORRELATION_ID = 30

TRANSACTION_TYPES = ("BUY", "SELL")
PRODUCT_TYPES = ("CNC", "INTRADAY", "MARGIN", "MTF", "CO", "BO")
ORDER_TYPES = ("LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_MARKET")
VALIDITIES = ("DAY", "IOC")


@dataclass
class DhanOrderFaults:
    """HTTP- and stream-level faults of the Dhan order routes (see the module docstring)."""

    timeout_after_accept: int = 0
    hang_seconds: float = 30.0
    error_500_after_accept: int = 0
    http_429: int = 0
    reject_orders: int = 0
    read_errors: int = 0
    drop_order_stream: int = 0


@dataclass
class OrderStreamSession(StreamSession):
    """One order-update socket and its login."""

    client_id: str = ""
    token: str = field(default="", repr=False)
    logged_in: bool = False
    rejected: str = ""


def _bad_input(message: str) -> Refused:
    return Refused(400, "DH-905", message, "Input_Exception")


def _order_error(message: str) -> Refused:
    return Refused(400, "DH-906", message, "Order_Error")


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _number(body: dict, key: str, kind: type, default=None):
    """``body[key]`` as ``kind`` (numeric strings coerced, ``""`` = absent)."""
    value = body.get(key)
    if _absent(value):
        return default
    if isinstance(value, bool):
        raise _bad_input(f"{key} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _bad_input(f"{key} must be a number, not {value!r}") from None
    if kind is int:
        if number != int(number):
            raise _bad_input(f"{key} must be a whole number, not {value!r}")
        return int(number)
    return number


def _flag(body: dict, key: str) -> bool:
    """``body[key]`` as a boolean: true/false, or their text (Dhan's samples send strings); absent is false."""
    value = body.get(key)
    if _absent(value):
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise _bad_input(f"{key} must be true or false, not {value!r}")
    return text == "true"


def _choice(body: dict, key: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    value = body.get(key)
    if _absent(value):
        if default is None:
            raise _bad_input(f"{key} is missing")
        return default
    text = str(value).strip().upper()
    if text not in allowed:
        raise _bad_input(f"{key} {value!r} is not one of {', '.join(allowed)}")
    return text


class DhanOrdersSandbox(OrderServer):
    """The handlers and their state; one per application (``app[DHAN_ORDERS_KEY]``).

    Attributes:
        place_times: Loop time at which each ``POST /v2/orders`` arrived.
        sessions: Every order-update socket (``OrderStreamSession``), refused logins included.
    """

    VENUE = "dhan"

    def __init__(self, hub: TickHub, exchange: Exchange, *, login_timeout: float = 10.0,
                 heartbeat: float = 10.0) -> None:
        super().__init__(hub, exchange, DhanOrderFaults(), heartbeat=heartbeat)
        self.login_timeout = login_timeout
        self.place_times: list[float] = []
        self._extras: dict[str, Extras] = {}

    # --- the wire: accounts, errors, bodies ------------------------------------------------

    async def authenticate(self, request: web.Request) -> str:
        body = await self._body(request) if request.method in ("POST", "PUT") else {}
        token = request.headers.get("access-token", "")
        if not token or not self.hub.token_ok(token):
            raise Refused(401, "DH-901", "Client ID or user generated access token is invalid or expired.",
                          "Invalid_Authentication")
        account = request.headers.get("client-id") or body.get("dhanClientId") or ""
        if not str(account).strip():
            raise _bad_input("client-id header (or dhanClientId) is missing")
        return str(account).strip()

    def error_response(self, refused: Refused) -> web.Response:
        return web.json_response({"errorType": refused.kind, "errorCode": refused.code,
                                  "errorMessage": refused.message}, status=refused.status)

    def server_error(self, reason: str) -> Refused:
        return Refused(500, "DH-908", f"sandbox fault: {reason}", "Internal_Server_Error")

    async def _body(self, request: web.Request) -> dict:
        body = await self.json_object(request, blank={})
        if body is None:
            raise _bad_input("the request body is not a JSON object")
        return body

    def _order(self, account: str, order_id: str) -> SimOrder:
        order = self.exchange.account(account).orders.get(order_id)
        if order is None:
            raise Refused(404, "DH-907", f"no order {order_id} in this account", "Data_Error")
        return order

    @staticmethod
    def _instrument(body: dict) -> tuple[str, str]:
        segment = _choice(body, "exchangeSegment", tuple(SEGMENTS))
        security = body.get("securityId")
        if _absent(security):
            raise _bad_input("securityId is missing")
        security = str(security).strip()
        if not security.isdigit():
            raise _bad_input(f"securityId {security!r} is not a Dhan security id")
        return segment, security

    # --- REST handlers ---------------------------------------------------------------------

    async def place(self, request: web.Request, account: str) -> web.Response:
        body = await self._body(request)
        segment, security = self._instrument(body)
        side = _choice(body, "transactionType", TRANSACTION_TYPES)
        product = _choice(body, "productType", PRODUCT_TYPES)
        order_type = _choice(body, "orderType", ORDER_TYPES)
        validity = _choice(body, "validity", VALIDITIES, "DAY")
        quantity = _number(body, "quantity", int)
        if quantity is None:
            raise _bad_input("quantity is missing")
        price = _number(body, "price", float, 0.0)
        trigger = _number(body, "triggerPrice", float, 0.0)
        disclosed = _number(body, "disclosedQuantity", int, 0)
        amo = _flag(body, "afterMarketOrder")
        correlation = body.get("correlationId")
        correlation = None if _absent(correlation) else str(correlation)
        if correlation is not None and len(correlation) > MAX_CORRELATION_ID:
            raise _bad_input(f"correlationId is longer than {MAX_CORRELATION_ID} characters")
        if self.take("http_429"):
            raise Refused(429, "DH-904", "Too many requests on server from single user breaching rate limits.",
                          "Rate_Limit")
        if self.take("reject_orders"):
            raise _order_error("Order rejected by the sandbox (fault reject_orders)")
        order = self.exchange.place(account, instrument=f"{segment}:{security}", side=side, quantity=quantity,
                                    order_type=order_type, price=price, product=product, validity=validity,
                                    client_id=correlation, amo=amo)
        self._extras[order.order_id] = Extras(segment, security, order_type, disclosed, trigger, amo)
        answer = {"orderId": order.order_id, "orderStatus": dhan_status(order)}
        await self.after_accept(self.faults.hang_seconds)
        return web.json_response(answer)

    async def modify(self, request: web.Request, account: str) -> web.Response:
        body = await self._body(request)
        order = self._order(account, request.match_info["order_id"])
        if order.modifications >= MAX_MODIFICATIONS:
            raise _order_error(f"an order can be modified at most {MAX_MODIFICATIONS} times")
        order_type = body.get("orderType")
        if not _absent(order_type) and str(order_type).upper() != self._extras_of(order).order_type:
            raise _order_error("the sandbox cannot change an order's type")
        quantity = _number(body, "quantity", int)
        price = _number(body, "price", float)
        try:
            self.exchange.modify(account, order.order_id, quantity=quantity,
                                 price=price if order.order_type == "LIMIT" else None)
        except ValueError as exc:
            raise _order_error(str(exc)) from None
        return web.json_response({"orderId": order.order_id, "orderStatus": dhan_status(order)})

    async def cancel(self, request: web.Request, account: str) -> web.Response:
        order = self._order(account, request.match_info["order_id"])
        try:
            self.exchange.cancel(account, order.order_id)
        except ValueError as exc:
            raise _order_error(str(exc)) from None
        return web.json_response({"orderId": order.order_id, "orderStatus": dhan_status(order)}, status=202)

    async def orders(self, request: web.Request, account: str) -> web.Response:
        return web.json_response([self.book_entry(o) for o in self.exchange.account(account).orders.values()])

    async def order(self, request: web.Request, account: str) -> web.Response:
        return web.json_response(self.book_entry(self._order(account, request.match_info["order_id"])))

    async def by_correlation(self, request: web.Request, account: str) -> web.Response:
        wanted = request.match_info["correlation_id"]
        found = [o for o in self.exchange.account(account).orders.values() if o.client_id == wanted]
        if not found:
            raise Refused(404, "DH-907", f"no order with correlationId {wanted}", "Data_Error")
        return web.json_response(self.book_entry(found[-1]))

    async def trades(self, request: web.Request, account: str) -> web.Response:
        acct = self.exchange.account(account)
        wanted = request.match_info.get("order_id")
        if wanted:
            self._order(account, wanted)
        return web.json_response([self.trade_entry(t) for t in acct.trades if not wanted or t.order_id == wanted])

    async def positions(self, request: web.Request, account: str) -> web.Response:
        acct = self.exchange.account(account)
        return web.json_response([position_entry(acct, i, self.exchange.last.get(i)) for i in acct.positions])

    async def fundlimit(self, request: web.Request, account: str) -> web.Response:
        acct = self.exchange.account(account)
        used = acct.used_margin(self.exchange.last)
        return web.json_response({
            "dhanClientId": account, "availabelBalance": round(acct.cash, 2), "sodLimit": round(acct.opening_cash, 2),
            "collateralAmount": 0.0, "receiveableAmount": 0.0, "utilizedAmount": round(used, 2),
            "blockedPayoutAmount": 0.0, "withdrawableBalance": round(max(0.0, acct.cash), 2),
        })

    # --- shapes ----------------------------------------------------------------------------

    def _extras_of(self, order: SimOrder) -> Extras:
        extras = self._extras.get(order.order_id)
        if extras is None:  # placed on the engine directly, not over these routes
            extras = self._extras[order.order_id] = Extras.of(order)
        return extras

    def book_entry(self, order: SimOrder) -> dict:
        """One order-book object (``dhan_rows.book_entry``)."""
        return book_entry(order, self._extras_of(order))

    def trade_entry(self, trade: SimTrade) -> dict:
        """One trade-book object (``dhan_rows.trade_entry``)."""
        order = self.exchange.account(trade.account).orders[trade.order_id]
        return trade_entry(trade, order, self._extras_of(order))

    # --- the order-update stream -------------------------------------------------------------

    def on_event(self, account: str, kind: str, payload: object) -> None:
        if not self.listening(account):
            return
        acct = self.exchange.account(account)
        order = acct.orders[payload.order_id]  # type: ignore[attr-defined]
        last = self.exchange.last.get(order.instrument)
        data = alert(kind, payload, acct, self._extras_of(order), last.ltp if last is not None else 0.0)
        self.fan_out(account, {"Type": "order_alert", "Data": data})

    def drop_after_send(self, session: StreamSession) -> bool:
        limit = self.faults.drop_order_stream
        return bool(limit) and session.sent >= limit

    async def stream(self, request: web.Request) -> web.StreamResponse:
        ws = self.socket()
        await ws.prepare(request)
        session = self.accept(request, OrderStreamSession())
        try:
            account = await self._login(ws, session)
            if account is not None:
                session.account, session.logged_in = account, True
                await self.serve_stream(ws, session)
        finally:
            session.open = False
            if not ws.closed:
                await ws.close()
        return ws

    async def _login(self, ws: web.WebSocketResponse, session: OrderStreamSession) -> str | None:
        try:
            msg = await ws.receive(timeout=self.login_timeout)
        except asyncio.TimeoutError:
            msg = None
        reason = "no login message"
        if msg is not None and msg.type == WSMsgType.TEXT:
            try:
                login = json.loads(msg.data)
                req = login["LoginReq"]
                session.client_id, session.token = str(req.get("ClientId") or ""), str(req.get("Token") or "")
                if str(req.get("MsgCode")) != "42":
                    reason = "MsgCode must be 42"
                elif str(login.get("UserType", "SELF")).upper() != "SELF":
                    reason = "only UserType SELF is served"
                elif not session.client_id:
                    reason = "ClientId is missing"
                elif not session.token or not self.hub.token_ok(session.token):
                    reason = "authentication failed"
                else:
                    return session.client_id
            except (ValueError, KeyError, TypeError, AttributeError):
                reason = "the login message is not a LoginReq"
        session.rejected = reason
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason.encode())
        return None

    def faults_refused(self, message: str) -> web.Response:
        return self.error_response(_bad_input(message))


def _timed(state: DhanOrdersSandbox, handler):
    """``handler`` noting in ``state.place_times`` when each request arrived (pacing tests read it)."""
    async def timed(request: web.Request) -> web.StreamResponse:
        state.place_times.append(asyncio.get_running_loop().time())
        return await handler(request)
    return timed


DHAN_ORDERS_KEY = web.AppKey("dhan_orders", DhanOrdersSandbox)


def add_routes(app: web.Application, hub: TickHub, exchange: Exchange) -> DhanOrdersSandbox:
    """Mount the Dhan order, portfolio and order-update routes; the state is ``app[DHAN_ORDERS_KEY]``."""
    state = DhanOrdersSandbox(hub, exchange)
    app[DHAN_ORDERS_KEY] = state
    app.on_shutdown.append(state.on_shutdown)
    guard, r = state.guard, app.router
    r.add_post("/v2/orders", _timed(state, guard(state.place)))
    r.add_get("/v2/orders", guard(state.orders, read=True))
    r.add_get("/v2/orders/external/{correlation_id}", guard(state.by_correlation, read=True))
    r.add_get("/v2/orders/{order_id}", guard(state.order, read=True))
    r.add_put("/v2/orders/{order_id}", guard(state.modify))
    r.add_delete("/v2/orders/{order_id}", guard(state.cancel))
    for path in ("/v2/trades", "/v2/trades/", "/v2/trades/{order_id}"):
        r.add_get(path, guard(state.trades, read=True))
    r.add_get("/v2/positions", guard(state.positions, read=True))
    r.add_get("/v2/fundlimit", guard(state.fundlimit, read=True))
    r.add_get(DHAN_ORDER_STREAM_PATH, state.stream)
    r.add_get(FAULTS_PATH, state.faults_route)
    r.add_post(FAULTS_PATH, guard(state.faults_route, auth=False))
    return state
