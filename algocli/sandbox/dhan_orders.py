"""Dhan v2 order entry, portfolio and the live order-update stream, on the sandbox's ``Exchange``.

Routes (brokers.md A3, A4, A10), JSON shapes and field names as Dhan sends them:

* ``POST /v2/orders`` → ``{"orderId","orderStatus"}``. Numeric strings are coerced and ``""``
  counts as absent; ``correlationId`` (at most 30 characters) becomes the exchange order's
  client id. The sandbox does not de-duplicate ``correlationId`` (neither does Dhan).
* ``PUT /v2/orders/{id}`` (at most 25 modifications), ``DELETE /v2/orders/{id}`` (HTTP 202).
* ``GET /v2/orders``, ``/v2/orders/{id}``, ``/v2/orders/external/{correlationId}`` (one
  order-book object; the latest order with that id), ``/v2/trades`` (also ``/v2/trades/``, as
  the SDK asks), ``/v2/trades/{orderId}``, ``/v2/positions``, ``/v2/fundlimit``. Lists are
  bare arrays, single items bare objects, times IST ``YYYY-MM-DD HH:MM:SS``.
* The order-update WebSocket at ``/dhan/orders``: the client sends
  ``{"LoginReq":{"MsgCode":42,"ClientId":..,"Token":..},"UserType":"SELF"}`` first; then
  every order and trade event of that account arrives as ``{"Type":"order_alert","Data":{..}}``
  with Dhan's PascalCase fields. A refused login is closed with code 1008 (policy violation).

Exchange statuses map to Dhan's: PENDING → ``PENDING`` (``PART_TRADED`` once partly filled),
FILLED → ``TRADED``, CANCELLED → ``CANCELLED``, REJECTED → ``REJECTED``. A trade event becomes
an alert whose ``TradedQty`` is the order's cumulative traded quantity after that trade.

Every REST call needs an ``access-token`` the hub accepts (``hub.token_ok``), else HTTP 401
with a ``DH-901`` body. The account is the ``client-id`` header, else the body's
``dhanClientId``; with neither the request is refused (``DH-905``). Errors use Dhan's body
``{"errorType","errorCode","errorMessage"}``.

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

Counts go down by one each time the fault fires.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone

from aiohttp import WSCloseCode, WSMsgType, web

from algocli.adapters.dhan.parsing import SEGMENTS
from algocli.sandbox.exchange import Exchange, SimOrder, SimTrade
from algocli.sandbox.hub import TickHub

__all__ = ["DHAN_ORDERS_KEY", "DHAN_ORDER_STREAM_PATH", "FAULTS_PATH", "MAX_MODIFICATIONS", "DhanOrderFaults",
           "DhanOrdersSandbox", "OrderStreamSession", "add_routes"]

_log = logging.getLogger(__name__)

DHAN_ORDER_STREAM_PATH = "/dhan/orders"
FAULTS_PATH = "/sandbox/dhan/faults"
MAX_MODIFICATIONS = 25
MAX_CORRELATION_ID = 30
IST = timezone(timedelta(hours=5, minutes=30), "IST")

TRANSACTION_TYPES = ("BUY", "SELL")
PRODUCT_TYPES = ("CNC", "INTRADAY", "MARGIN", "MTF", "CO", "BO")
ORDER_TYPES = ("LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_MARKET")
VALIDITIES = ("DAY", "IOC")

# order-update codes (brokers.md A10)
_EXCHANGE_OF = {"NSE_EQ": ("NSE", "E"), "NSE_FNO": ("NSE", "D"), "NSE_CURRENCY": ("NSE", "C"),
                "BSE_EQ": ("BSE", "E"), "BSE_FNO": ("BSE", "D"), "BSE_CURRENCY": ("BSE", "C"),
                "MCX_COMM": ("MCX", "M"), "IDX_I": ("NSE", "I")}
_PRODUCT_CODE = {"CNC": "C", "INTRADAY": "I", "MARGIN": "M", "MTF": "F", "CO": "V", "BO": "B"}
_ORDER_TYPE_CODE = {"LIMIT": "LMT", "MARKET": "MKT", "STOP_LOSS": "SL", "STOP_LOSS_MARKET": "SLM"}


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
class OrderStreamSession:
    """One order-update socket, for tests and status output."""

    client_id: str = ""
    token: str = field(default="", repr=False)
    logged_in: bool = False
    rejected: str = ""
    sent: int = 0
    open: bool = True
    dropped: bool = False
    _queue: asyncio.Queue | None = field(default=None, repr=False)
    _transport: asyncio.BaseTransport | None = field(default=None, repr=False)


class _Refused(Exception):
    def __init__(self, status: int, error_type: str, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.code, self.message = status, error_type, code, message


def _error(status: int, error_type: str, code: str, message: str) -> web.Response:
    return web.json_response({"errorType": error_type, "errorCode": code, "errorMessage": message}, status=status)


def _bad_input(message: str) -> _Refused:
    return _Refused(400, "Input_Exception", "DH-905", message)


def _ist(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, IST).strftime("%Y-%m-%d %H:%M:%S")


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


def dhan_status(order: SimOrder) -> str:
    """The exchange's status as Dhan writes it."""
    if order.status == "FILLED":
        return "TRADED"
    if order.status == "PENDING":
        return "PART_TRADED" if order.filled_quantity else "PENDING"
    return order.status  # CANCELLED, REJECTED


@dataclass
class _Extras:
    """Request fields the exchange does not keep."""

    segment: str
    security_id: str
    order_type: str
    disclosed: int = 0
    trigger: float = 0.0
    amo: bool = False


class DhanOrdersSandbox:
    """The handlers and their state; one per application (``app[DHAN_ORDERS_KEY]``)."""

    def __init__(self, hub: TickHub, exchange: Exchange, *, login_timeout: float = 10.0,
                 heartbeat: float = 10.0) -> None:
        self.hub = hub
        self.exchange = exchange
        self.faults = DhanOrderFaults()
        self.login_timeout = login_timeout
        self.heartbeat = heartbeat
        self.sessions: list[OrderStreamSession] = []
        self.place_times: list[float] = []  # loop time at which each POST /v2/orders arrived
        self.requests: list[tuple[str, str]] = []  # (method, path) of every REST call
        self._extras: dict[str, _Extras] = {}
        self._closing = asyncio.Event()

    # --- plumbing ------------------------------------------------------------------------

    def _account(self, request: web.Request, body: dict | None = None) -> str:
        token = request.headers.get("access-token", "")
        if not token or not self.hub.token_ok(token):
            raise _Refused(401, "Invalid_Authentication", "DH-901",
                           "Client ID or user generated access token is invalid or expired.")
        account = request.headers.get("client-id") or (body or {}).get("dhanClientId") or ""
        if not str(account).strip():
            raise _bad_input("client-id header (or dhanClientId) is missing")
        return str(account).strip()

    async def _body(self, request: web.Request) -> dict:
        text = await request.text()
        try:
            body = json.loads(text) if text.strip() else {}
        except ValueError:
            raise _bad_input("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise _bad_input("the request body must be a JSON object")
        return body

    def _read_fault(self) -> web.Response | None:
        if self.faults.read_errors > 0:
            self.faults.read_errors -= 1
            return _error(500, "Internal_Server_Error", "DH-908", "sandbox fault: read_errors")
        return None

    def _order(self, account: str, order_id: str) -> SimOrder:
        order = self.exchange.account(account).orders.get(order_id)
        if order is None:
            raise _Refused(404, "Data_Error", "DH-907", f"no order {order_id} in this account")
        return order

    def _instrument(self, body: dict) -> tuple[str, str]:
        segment = _choice(body, "exchangeSegment", tuple(SEGMENTS))
        security = body.get("securityId")
        if _absent(security):
            raise _bad_input("securityId is missing")
        security = str(security).strip()
        if not security.isdigit():
            raise _bad_input(f"securityId {security!r} is not a Dhan security id")
        return segment, security

    # --- REST handlers ---------------------------------------------------------------------

    async def place(self, request: web.Request) -> web.Response:
        self.place_times.append(asyncio.get_running_loop().time())
        body = await self._body(request)
        account = self._account(request, body)
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
        correlation = body.get("correlationId")
        correlation = None if _absent(correlation) else str(correlation)
        if correlation is not None and len(correlation) > MAX_CORRELATION_ID:
            raise _bad_input(f"correlationId is longer than {MAX_CORRELATION_ID} characters")
        if self.faults.http_429 > 0:
            self.faults.http_429 -= 1
            return _error(429, "Rate_Limit", "DH-904", "Too many requests on server from single user "
                                                       "breaching rate limits.")
        if self.faults.reject_orders > 0:
            self.faults.reject_orders -= 1
            raise _Refused(400, "Order_Error", "DH-906", "Order rejected by the sandbox (fault reject_orders)")
        order = self.exchange.place(account, instrument=f"{segment}:{security}", side=side, quantity=quantity,
                                    order_type=order_type, price=price, product=product, validity=validity,
                                    client_id=correlation)
        self._extras[order.order_id] = _Extras(segment, security, order_type, disclosed, trigger,
                                               bool(body.get("afterMarketOrder") or False))
        answer = {"orderId": order.order_id, "orderStatus": dhan_status(order)}
        if self.faults.error_500_after_accept > 0:
            self.faults.error_500_after_accept -= 1
            return _error(500, "Internal_Server_Error", "DH-908", "sandbox fault: error_500_after_accept")
        if self.faults.timeout_after_accept > 0:
            self.faults.timeout_after_accept -= 1
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.faults.hang_seconds)
        return web.json_response(answer)

    async def modify(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        account = self._account(request, body)
        order = self._order(account, request.match_info["order_id"])
        if order.modifications >= MAX_MODIFICATIONS:
            raise _Refused(400, "Order_Error", "DH-906", f"an order can be modified at most {MAX_MODIFICATIONS} "
                                                         "times")
        order_type = body.get("orderType")
        if not _absent(order_type) and str(order_type).upper() != self._extras_of(order).order_type:
            raise _Refused(400, "Order_Error", "DH-906", "the sandbox cannot change an order's type")
        quantity = _number(body, "quantity", int)
        price = _number(body, "price", float)
        try:
            self.exchange.modify(account, order.order_id, quantity=quantity,
                                 price=price if order.order_type == "LIMIT" else None)
        except ValueError as exc:
            raise _Refused(400, "Order_Error", "DH-906", str(exc)) from None
        return web.json_response({"orderId": order.order_id, "orderStatus": dhan_status(order)})

    async def cancel(self, request: web.Request) -> web.Response:
        account = self._account(request)
        order = self._order(account, request.match_info["order_id"])
        try:
            self.exchange.cancel(account, order.order_id)
        except ValueError as exc:
            raise _Refused(400, "Order_Error", "DH-906", str(exc)) from None
        return web.json_response({"orderId": order.order_id, "orderStatus": dhan_status(order)}, status=202)

    async def orders(self, request: web.Request) -> web.Response:
        account = self._account(request)
        return web.json_response([self.book_entry(o) for o in self.exchange.account(account).orders.values()])

    async def order(self, request: web.Request) -> web.Response:
        account = self._account(request)
        return web.json_response(self.book_entry(self._order(account, request.match_info["order_id"])))

    async def by_correlation(self, request: web.Request) -> web.Response:
        account = self._account(request)
        wanted = request.match_info["correlation_id"]
        found = [o for o in self.exchange.account(account).orders.values() if o.client_id == wanted]
        if not found:
            raise _Refused(404, "Data_Error", "DH-907", f"no order with correlationId {wanted}")
        return web.json_response(self.book_entry(found[-1]))

    async def trades(self, request: web.Request) -> web.Response:
        account = self._account(request)
        acct = self.exchange.account(account)
        wanted = request.match_info.get("order_id")
        if wanted:
            self._order(account, wanted)
        return web.json_response([self.trade_entry(t) for t in acct.trades if not wanted or t.order_id == wanted])

    async def positions(self, request: web.Request) -> web.Response:
        account = self._account(request)
        acct = self.exchange.account(account)
        return web.json_response([self.position_entry(account, inst) for inst in acct.positions])

    async def fundlimit(self, request: web.Request) -> web.Response:
        account = self._account(request)
        acct = self.exchange.account(account)
        used = acct.used_margin(self.exchange.last)
        return web.json_response({
            "dhanClientId": account, "availabelBalance": round(acct.cash, 2), "sodLimit": round(acct.opening_cash, 2),
            "collateralAmount": 0.0, "receiveableAmount": 0.0, "utilizedAmount": round(used, 2),
            "blockedPayoutAmount": 0.0, "withdrawableBalance": round(max(0.0, acct.cash), 2),
        })

    # --- shapes ----------------------------------------------------------------------------

    def _extras_of(self, order: SimOrder) -> _Extras:
        extras = self._extras.get(order.order_id)
        if extras is None:  # placed on the exchange by another protocol
            segment, _, security = order.instrument.partition(":")
            extras = self._extras[order.order_id] = _Extras(segment, security, order.order_type)
        return extras

    def book_entry(self, order: SimOrder) -> dict:
        """One order-book object (brokers.md A3)."""
        x = self._extras_of(order)
        return {
            "dhanClientId": order.account, "orderId": order.order_id, "correlationId": order.client_id or "",
            "orderStatus": dhan_status(order), "transactionType": order.side, "exchangeSegment": x.segment,
            "productType": order.product, "orderType": x.order_type, "validity": order.validity,
            "tradingSymbol": x.security_id, "securityId": x.security_id, "quantity": order.quantity,
            "disclosedQuantity": x.disclosed, "price": order.price, "triggerPrice": x.trigger,
            "afterMarketOrder": x.amo, "boProfitValue": 0.0, "boStopLossValue": 0.0, "legName": "",
            "createTime": _ist(order.created_ns), "updateTime": _ist(order.updated_ns),
            "exchangeTime": _ist(order.updated_ns), "drvExpiryDate": "0001-01-01", "drvOptionType": None,
            "drvStrikePrice": 0.0, "omsErrorCode": "" if order.status != "REJECTED" else "REJECTED",
            "omsErrorDescription": order.reason if order.status == "REJECTED" else "", "algoId": "",
            "remainingQuantity": order.quantity - order.filled_quantity,
            "averageTradedPrice": round(order.average_price, 4), "filledQty": order.filled_quantity,
        }

    def trade_entry(self, trade: SimTrade) -> dict:
        """One trade-book object (brokers.md A3)."""
        order = self.exchange.account(trade.account).orders[trade.order_id]
        x = self._extras_of(order)
        when = _ist(trade.ts)
        return {
            "dhanClientId": trade.account, "orderId": trade.order_id, "exchangeOrderId": f"1100{trade.order_id}",
            "exchangeTradeId": trade.trade_id, "transactionType": trade.side, "exchangeSegment": x.segment,
            "productType": order.product, "orderType": x.order_type, "tradingSymbol": x.security_id,
            "securityId": x.security_id, "tradedQuantity": trade.quantity, "tradedPrice": trade.price,
            "createTime": when, "updateTime": when, "exchangeTime": when, "drvExpiryDate": "0001-01-01",
            "drvOptionType": None, "drvStrikePrice": 0.0,
        }

    def position_entry(self, account: str, instrument: str) -> dict:
        """One positions object (brokers.md A4), from the exchange's position and trades."""
        acct = self.exchange.account(account)
        net, avg, realised = acct.positions[instrument]
        segment, _, security = instrument.partition(":")
        buys = [t for t in acct.trades if t.instrument == instrument and t.side == "BUY"]
        sells = [t for t in acct.trades if t.instrument == instrument and t.side == "SELL"]
        buy_qty, sell_qty = sum(t.quantity for t in buys), sum(t.quantity for t in sells)
        buy_value, sell_value = sum(t.quantity * t.price for t in buys), sum(t.quantity * t.price for t in sells)
        last = self.exchange.last.get(instrument)
        ltp = last.ltp if last is not None else avg
        mine = buys + sells
        product = acct.orders[max(mine, key=lambda t: t.ts).order_id].product if mine else "INTRADAY"
        return {
            "dhanClientId": account, "tradingSymbol": security, "securityId": security,
            "positionType": "LONG" if net > 0 else ("SHORT" if net < 0 else "CLOSED"),
            "exchangeSegment": segment, "productType": product,
            "buyAvg": round(buy_value / buy_qty, 4) if buy_qty else 0.0, "buyQty": buy_qty,
            "costPrice": round(avg, 4), "sellAvg": round(sell_value / sell_qty, 4) if sell_qty else 0.0,
            "sellQty": sell_qty, "netQty": int(net), "realizedProfit": round(realised, 4),
            "unrealizedProfit": round(net * (ltp - avg), 4) if net else 0.0, "rbiReferenceRate": 1.0,
            "multiplier": 1, "carryForwardBuyQty": 0, "carryForwardSellQty": 0, "carryForwardBuyValue": 0.0,
            "carryForwardSellValue": 0.0, "dayBuyQty": buy_qty, "daySellQty": sell_qty,
            "dayBuyValue": round(buy_value, 4), "daySellValue": round(sell_value, 4),
            "drvExpiryDate": "0001-01-01", "drvOptionType": None, "drvStrikePrice": 0.0, "crossCurrency": False,
        }

    def alert(self, kind: str, payload: object) -> dict:
        """An exchange event as the order-update stream's ``Data`` (brokers.md A10)."""
        if kind == "trade":
            trade: SimTrade = payload  # type: ignore[assignment]
            order = self.exchange.account(trade.account).orders[trade.order_id]
            mine = [t for t in self.exchange.account(trade.account).trades if t.order_id == order.order_id]
            upto = mine[:mine.index(trade) + 1] if trade in mine else [*mine, trade]
            traded = sum(t.quantity for t in upto)
            avg = sum(t.quantity * t.price for t in upto) / traded
            status = "TRADED" if traded >= order.quantity else "PART_TRADED"
            last_price, when = trade.price, trade.ts
        else:
            order = payload  # type: ignore[assignment]
            traded, avg, status = order.filled_quantity, order.average_price, dhan_status(order)
            last_price, when = (order.average_price if traded else 0.0), order.updated_ns
        x = self._extras_of(order)
        exchange, segment = _EXCHANGE_OF.get(x.segment, (x.segment, "E"))
        return {
            "Exchange": exchange, "Segment": segment, "Source": "P", "SecurityId": x.security_id,
            "ClientId": order.account, "ExchOrderNo": f"1100{order.order_id}", "OrderNo": order.order_id,
            "Product": _PRODUCT_CODE.get(order.product, "I"), "TxnType": order.side[0],
            "OrderType": _ORDER_TYPE_CODE.get(x.order_type, "MKT"), "Validity": order.validity,
            "DiscQuantity": x.disclosed, "DiscQtyRem": x.disclosed, "RemainingQuantity": order.quantity - traded,
            "Quantity": order.quantity, "TradedQty": traded, "Price": order.price, "TriggerPrice": x.trigger,
            "TradedPrice": last_price, "AvgTradedPrice": round(avg, 4), "OrderDateTime": _ist(order.created_ns),
            "ExchOrderTime": _ist(order.created_ns), "LastUpdatedTime": _ist(when), "Status": status,
            "ReasonDescription": order.reason if status == "REJECTED" else "CONFIRMED", "Remarks": "",
            "MktType": "NL", "LegNo": 1, "OffMktFlag": "1" if x.amo else "0", "AlgoOrdNo": "",
            "Instrument": "EQUITY" if segment == "E" else "", "Symbol": x.security_id, "ProductName": order.product,
            "LotSize": 1, "StrikePrice": 0.0, "ExpiryDate": "", "OptType": "XX", "DisplayName": x.security_id,
            "Isin": "", "Series": "EQ" if segment == "E" else "", "TickSize": 0.05, "Multiplier": 1,
            "GoodTillDaysDate": "", "RefLtp": (self.exchange.last[order.instrument].ltp
                                               if order.instrument in self.exchange.last else 0.0),
            "AlgoId": "", "CorrelationId": order.client_id or "",
        }

    # --- the order-update stream -------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=self.heartbeat, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = OrderStreamSession(_transport=request.transport)
        self.sessions.append(session)
        unlisten = None
        pump = None
        try:
            account = await self._login(ws, session)
            if account is None:
                return ws
            session._queue = asyncio.Queue()
            unlisten = self.exchange.listen(account, lambda kind, payload: self._enqueue(session, kind, payload))
            session.logged_in = True
            pump = asyncio.get_running_loop().create_task(self._pump(ws, session))
            async for _msg in ws:  # the client has nothing more to say; read until it closes
                pass
        finally:
            session.open = False
            if unlisten is not None:
                unlisten()
            if pump is not None:
                pump.cancel()
                await asyncio.wait({pump})
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

    def _enqueue(self, session: OrderStreamSession, kind: str, payload: object) -> None:
        if session._queue is not None and session.open:
            session._queue.put_nowait({"Type": "order_alert", "Data": self.alert(kind, payload)})

    async def _pump(self, ws: web.WebSocketResponse, session: OrderStreamSession) -> None:
        queue = session._queue
        assert queue is not None
        while True:
            message = await queue.get()
            try:
                await ws.send_str(json.dumps(message))
            except (ConnectionError, RuntimeError):
                return
            session.sent += 1
            limit = self.faults.drop_order_stream
            if limit and session.sent >= limit:
                session.dropped, session.open = True, False
                if session._transport is not None:
                    session._transport.abort()
                return

    async def on_shutdown(self, app: web.Application) -> None:
        self._closing.set()
        for session in self.sessions:
            if session.open and session._transport is not None:
                session._transport.abort()

    # --- faults over HTTP ------------------------------------------------------------------------

    def faults_view(self) -> dict:
        return {**asdict(self.faults), "duplicate_fills": self.exchange.faults.duplicate_fills,
                "early_fills": self.exchange.faults.early_fills}

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults_view())

    async def set_faults(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        known = {f.name: f.type for f in fields(DhanOrderFaults)} | {"duplicate_fills": "bool",
                                                                     "early_fills": "bool"}
        unknown = sorted(set(body) - set(known))
        if unknown:
            raise _bad_input(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for name, value in body.items():
            kind = known[name]
            if kind == "bool":
                setattr(self.exchange.faults, name, bool(value))
            elif kind == "float":
                setattr(self.faults, name, float(_number(body, name, float, 0.0)))
            else:
                setattr(self.faults, name, int(_number(body, name, int, 0)))
        return web.json_response(self.faults_view())


def _guarded(state: DhanOrdersSandbox, handler, *, read: bool = False):
    async def wrapped(request: web.Request) -> web.StreamResponse:
        state.requests.append((request.method, request.path))
        if read:
            failure = state._read_fault()
            if failure is not None:
                return failure
        try:
            return await handler(request)
        except _Refused as exc:
            return _error(exc.status, exc.error_type, exc.code, exc.message)
    return wrapped


DHAN_ORDERS_KEY = web.AppKey("dhan_orders", DhanOrdersSandbox)


def add_routes(app: web.Application, hub: TickHub, exchange: Exchange) -> DhanOrdersSandbox:
    """Mount the Dhan order, portfolio and order-update routes; the state is ``app[DHAN_ORDERS_KEY]``."""
    state = DhanOrdersSandbox(hub, exchange)
    app[DHAN_ORDERS_KEY] = state
    app.on_shutdown.append(state.on_shutdown)
    r = app.router
    r.add_post("/v2/orders", _guarded(state, state.place))
    r.add_get("/v2/orders", _guarded(state, state.orders, read=True))
    r.add_get("/v2/orders/external/{correlation_id}", _guarded(state, state.by_correlation, read=True))
    r.add_get("/v2/orders/{order_id}", _guarded(state, state.order, read=True))
    r.add_put("/v2/orders/{order_id}", _guarded(state, state.modify))
    r.add_delete("/v2/orders/{order_id}", _guarded(state, state.cancel))
    r.add_get("/v2/trades", _guarded(state, state.trades, read=True))
    r.add_get("/v2/trades/", _guarded(state, state.trades, read=True))
    r.add_get("/v2/trades/{order_id}", _guarded(state, state.trades, read=True))
    r.add_get("/v2/positions", _guarded(state, state.positions, read=True))
    r.add_get("/v2/fundlimit", _guarded(state, state.fundlimit, read=True))
    r.add_get(DHAN_ORDER_STREAM_PATH, state.stream)
    r.add_get(FAULTS_PATH, state.get_faults)
    r.add_post(FAULTS_PATH, _guarded(state, state.set_faults))
    return state
