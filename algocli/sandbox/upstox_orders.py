"""Upstox order entry, portfolio, funds and the portfolio stream, on the sandbox's matching engine.

Routes (https://upstox.com/developer/api-documentation/orders,
https://upstox.com/developer/api-documentation/get-positions,
https://upstox.com/developer/api-documentation/get-portfolio-stream-feed), every one behind ``Authorization: Bearer <token>`` checked
with ``hub.token_ok`` (otherwise HTTP 401 with ``UDAPI100050``); the token names the
account in the Upstox venue of the shared ``Exchange`` (the same word as a Dhan client id
is another account):

* ``POST /v2/order/place`` → ``data.order_id``; ``POST /v3/order/place`` →
  ``data.order_ids`` and ``metadata.latency``. Body fields as Upstox's: ``quantity``,
  ``product`` (``I`` is our INTRADAY, ``D`` CNC, or MARGIN on derivative segments, ``MTF``
  MARGIN), ``validity`` (``DAY``/``IOC``), ``price``, ``tag`` (our client id, at most 40
  characters), ``instrument_token`` (the instrument key, ``NSE_EQ|1333`` for the sandbox
  instrument ``NSE_EQ:1333``, or its real key from the instrument list,
  ``NSE_EQ|INE040A01034``), ``order_type``, ``transaction_type``. Order, trade, position
  and stream rows carry the key the order was placed with. A malformed field is
  HTTP 400; an order the engine refuses (funds, SL types, a LIMIT price outside the day's
  operating range, any order while the market is closed unless ``is_amo`` is true) is
  accepted and then reported ``rejected`` with the reason in ``status_message``, as Upstox
  does. An after-market order placed while closed is ``after market order req received``
  until the next open, then ``open``. At the session's close every working order is
  reported ``cancelled``, the reason (its validity ran out) in ``status_message``.
* ``PUT /v2|v3/order/modify`` (``order_id``, ``quantity``, ``price``; the order type cannot
  change here) and ``DELETE /v2|v3/order/cancel?order_id=`` → ``data.order_id``.
* ``GET /v2/order/retrieve-all`` (the order book), ``/v2/order/details?order_id=`` (latest
  state), ``/v2/order/history?order_id=&tag=`` (every recorded state, oldest first),
  ``/v2/order/trades/get-trades-for-day``, ``/v2/order/trades?order_id=``. An unknown order
  (or a tag with no order) is HTTP 400 ``UDAPI100010`` "Order not found".
* ``GET /v2/portfolio/short-term-positions`` and ``GET /v2/user/get-funds-and-margin``
  (``equity.available_margin`` is the account's cash, ``used_margin`` the value of its open
  positions at the last price).
* ``GET /v2/feed/portfolio-stream-feed/authorize`` → a single-use
  ``data.authorized_redirect_uri`` (``ws://host/upstox/order-updates/feed?requestId=&code=``);
  ``GET /v2/feed/portfolio-stream-feed`` (what the official SDK opens) answers 302 to a fresh
  one. The socket sends one JSON text message per status transition of the account's orders
  (the stream page's field names, ``update_type: "order"``): ``put order req received`` then ``open`` or
  ``rejected`` on placement, ``modified`` then ``open`` on a modify, ``cancel pending`` then
  ``cancelled`` on a cancel (an unfilled IOC goes straight to ``cancelled``), ``complete``
  on the fill. Orders fill whole, so ``filled_quantity`` jumps from 0 to ``quantity``.

The order group (place, modify, cancel) is limited per account as Upstox publishes it:
10 a second, 500 a minute, 2000 in 30 minutes; past that the answer is HTTP 429
``UDAPI10005`` and nothing is done.

**Faults** (tests switch them at run time). ``app[UPSTOX_ORDERS].faults`` is an
``UpstoxOrderFaults``; the same switches take JSON at ``POST /sandbox/faults/upstox``
(no auth; the answer and ``GET`` on that path show the current values), for example
``{"timeout_after_accept": 1, "hang_s": 3}`` or ``{"duplicate_fills": true}``:

* ``timeout_after_accept`` (count): the next N placements reach the engine, then the answer
  is held ``hang_s`` seconds (the client times out not knowing the order exists);
* ``error_500_after_accept`` (count): the next N placements reach the engine, then answer
  HTTP 500 ``UDAPI100500``;
* ``http_429`` (count): the next N placements answer HTTP 429 ``UDAPI10005`` and place
  nothing;
* ``reject_sells`` (count): forwarded to ``exchange.faults``: the next N sell orders are
  accepted (an ``order_id``) and then reported ``rejected`` with the reason;
* ``duplicate_fills`` / ``early_fills`` (bool): forwarded to ``exchange.faults``. With
  duplicate fills every fill is reported twice on the stream and every trade is listed
  twice by the trade endpoints (same ``trade_id``). With early fills a fill is announced on
  the stream (``open`` with the filled quantity) before the order turns ``complete``, and a
  placement's HTTP answer waits (up to ``early_fill_hold_s``) until the order has filled
  and ``early_fill_lag_s`` more, so the fill overtakes the acknowledgement;
* ``drop_order_stream`` (bool): while on, a stream socket about to send an update is
  aborted (no close frame) and the update is lost; new sockets are still accepted.

The JSON shapes of orders, trades and positions, and the placement check, live in
``algocli.sandbox.upstox_rows``; the auth guard, fault counters and stream fan-out in
``algocli.sandbox.orders_base``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from algocli.sandbox.exchange import Exchange, SimOrder, SimTrade
from algocli.sandbox.hub import TickHub
from algocli.sandbox.instruments import UPSTOX_KEYS, UpstoxKeys
from algocli.sandbox.orders_base import OrderServer, Refused, StreamSession
from algocli.sandbox.upstox import error_envelope
from algocli.sandbox.upstox_rows import (AMO_MODIFIED, AMO_WAITING, default_key, order_json, parse_place,
                                         positions_json, trade_json, upstox_status, user_id)

__all__ = ["FAULTS_PATH", "ORDER_LIMITS", "STREAM_PATH", "UPSTOX_ORDERS", "UpstoxOrderFaults", "UpstoxOrders",
           "add_routes", "error_envelope"]

STREAM_AUTHORIZE_PATH = "/v2/feed/portfolio-stream-feed/authorize"
STREAM_REDIRECT_PATH = "/v2/feed/portfolio-stream-feed"
STREAM_PATH = "/upstox/order-updates/feed"
FAULTS_PATH = "/sandbox/faults/upstox"
# https://upstox.com/developer/api-documentation/rate-limiting (the order group)
ORDER_LIMITS = ((10, 1.0), (500, 60.0), (2000, 1800.0))


def _invalid(message: str) -> Refused:
    return Refused(400, "UDAPI100038", f"Invalid input: {message}")


def _not_found(order_id: str) -> Refused:
    return Refused(400, "UDAPI100010", f"Order not found: {order_id}")


@dataclass
class UpstoxOrderFaults:
    """Fault switches of the Upstox order routes; see the module docstring."""

    timeout_after_accept: int = 0
    error_500_after_accept: int = 0
    http_429: int = 0
    drop_order_stream: bool = False
    hang_s: float = 30.0
    early_fill_hold_s: float = 2.0
    early_fill_lag_s: float = 0.3


class UpstoxOrders(OrderServer):
    """State and handlers of the Upstox order routes, on the app as ``app[UPSTOX_ORDERS]``.

    Attributes:
        faults: The switches above.
        order_calls: Monotonic arrival times of order-group requests, per account.
        rate_limited: Order-group requests answered 429 by the limits (not by the fault).
        places: Placement requests that reached the engine.
        issued_codes / used_codes: Stream authorization codes handed out / redeemed.
        history: Every recorded state of each order, by order id.
        keys: Which sandbox instrument each instrument key names.
        order_keys: The instrument key each order was placed with, by order id.
    """

    VENUE = "upstox"

    def __init__(self, hub: TickHub, exchange: Exchange, keys: UpstoxKeys | None = None, *,
                 limits: tuple[tuple[int, float], ...] = ORDER_LIMITS) -> None:
        super().__init__(hub, exchange, UpstoxOrderFaults())
        self.keys = keys or UpstoxKeys()
        self.limits = limits
        self.order_calls: dict[str, list[float]] = {}
        self.rate_limited = 0
        self.places = 0
        self.issued_codes: list[str] = []
        self.used_codes: list[str] = []
        self.history: dict[str, list[dict]] = {}
        self.order_keys: dict[str, str] = {}
        self._placing: tuple[str, str] | None = None  # (account, key) while the engine accepts a placement
        self._pending: dict[str, str] = {}  # code → account
        self._last: dict[str, dict] = {}  # order id → latest update sent
        self._trades_seen: set[str] = set()
        self._windows: dict[str, deque] = {}

    # --- the wire: accounts, errors, limits -----------------------------------------------

    async def authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        if not token or not self.hub.token_ok(token):
            raise Refused(401, "UDAPI100050", "Invalid token used to access API")
        self.watch(token)  # order states are recorded (for the history route) from the first call on
        return token

    def error_response(self, refused: Refused) -> web.Response:
        return web.json_response(error_envelope(refused.code, refused.message), status=refused.status)

    def server_error(self, reason: str) -> Refused:
        return Refused(500, "UDAPI100500", "Something went wrong, please try again later")

    def faults_answer(self, state: dict) -> web.Response:
        return web.json_response({"status": "success", "data": state})

    def faults_refused(self, message: str) -> web.Response:
        return web.json_response({"status": "error", "message": message}, status=400)

    def admit(self, account: str) -> None:
        """Record an order-group call.

        Raises:
            Refused: HTTP 429, the call breaks a published limit.
        """
        now = time.monotonic()
        self.order_calls.setdefault(account, []).append(now)
        window = self._windows.setdefault(account, deque())
        longest = max(w for _, w in self.limits)
        while window and now - window[0] >= longest:
            window.popleft()
        for limit, span in self.limits:
            if sum(1 for t in window if now - t < span) >= limit:
                self.rate_limited += 1
                raise Refused(429, "UDAPI10005", "Too Many Request Sent")
        window.append(now)

    # --- instrument keys ------------------------------------------------------------

    def place_order(self, account: str, key: str, **order) -> SimOrder:
        """Place on the engine, remembering ``key`` for the order's rows."""
        self._placing = (account, key)  # the engine reports the new order before place() returns
        try:
            placed = self.exchange.place(account, **order)
        finally:
            self._placing = None
        self.order_keys.setdefault(placed.order_id, key)
        return placed

    def key_of(self, order: SimOrder) -> str:
        """The key ``order`` was placed with; for the broker's own order, its position's key; the default
        spelling for other orders placed on the engine directly."""
        key = self.order_keys.get(order.order_id)
        if key is None and self._placing is not None and self._placing[0] == order.account:
            key = self.order_keys[order.order_id] = self._placing[1]
        if key is None and order.placed_by:  # the broker's own order (auto square-off): the position's key
            key = self.order_keys[order.order_id] = self.position_key(order.account, order.instrument)
        return key or default_key(order.instrument)

    def position_key(self, account: str, instrument: str) -> str:
        """The key of the latest order on ``instrument`` (a position has no key of its own)."""
        for order in reversed(self.exchange.account(account).orders.values()):
            if order.instrument == instrument and order.order_id in self.order_keys:
                return self.order_keys[order.order_id]
        return default_key(instrument)

    def order_row(self, order: SimOrder, account: str, status: str | None = None) -> dict:
        key = self.key_of(order)
        return order_json(order, account, status, key=key, symbol=self.keys.trading_symbol(key))

    def trade_row(self, trade: SimTrade, order: SimOrder) -> dict:
        key = self.key_of(order)
        return trade_json(trade, order, key=key, symbol=self.keys.trading_symbol(key))

    def _order(self, account: str, order_id: str) -> SimOrder:
        order = self.exchange.account(account).orders.get(order_id)
        if order is None:
            raise _not_found(order_id)
        return order

    # --- order updates --------------------------------------------------------------

    def on_event(self, account: str, kind: str, payload: object) -> None:
        if isinstance(payload, SimOrder):
            for status in self._transitions(payload):
                self._record(account, self.order_row(payload, account, status))
        elif isinstance(payload, SimTrade):
            order = self.exchange.account(account).orders.get(payload.order_id)
            if order is None:
                return
            if payload.trade_id in self._trades_seen:  # the same fill again: report it again
                last = self._last.get(order.order_id)
                if last is not None:
                    self._push(account, last)
                return
            self._trades_seen.add(payload.trade_id)
            if order.is_open:  # announced before the order shows it: a fill report ahead of "complete"
                update = self.order_row(order, account, "open")
                filled = order.filled_quantity + payload.quantity
                update.update(filled_quantity=filled, pending_quantity=max(0, order.quantity - filled),
                              average_price=payload.price)
                self._push(account, update)

    def _transitions(self, order: SimOrder) -> list[str]:
        """The statuses an exchange event of ``order`` is reported as, in order."""
        previous = self._last.get(order.order_id)
        now = upstox_status(order)
        if previous is None:
            return ["put order req received", now]
        if now == "open" and previous["status"] in (AMO_WAITING, AMO_MODIFIED):
            return ["open"]  # an after-market order released at the open
        if now == "open":
            return ["modified", "open"]
        if now == "cancelled" and order.status == "CANCELLED" and not order.reason.startswith("IOC"):
            return ["cancel pending", "cancelled"]
        return [now]  # an expired order goes straight to cancelled, as an unfilled IOC does

    def _record(self, account: str, update: dict) -> None:
        self.history.setdefault(update["order_id"], []).append(update)
        self._last[update["order_id"]] = update
        self._push(account, update)

    def _push(self, account: str, entry: dict) -> None:
        uid = user_id(account)
        self.fan_out(account, {"update_type": "order", "user_id": uid, "userId": uid, **entry,
                               "instrument_key": entry["instrument_token"]})

    def drop_before_send(self, session: StreamSession) -> bool:
        return self.faults.drop_order_stream

    def entries(self, account: str, order: SimOrder) -> list[dict]:
        """Recorded states of ``order`` (its current state when none was recorded)."""
        return list(self.history.get(order.order_id) or [self.order_row(order, account)])

    # --- stream codes ---------------------------------------------------------------

    def issue_uri(self, request: web.Request, account: str) -> str:
        code = secrets.token_urlsafe(18)
        self._pending[code] = account
        self.issued_codes.append(code)
        scheme = "wss" if request.secure else "ws"
        query = f"requestId={uuid.uuid4().hex}&code={code}"
        if "update_types" in request.query:
            query += "&update_types=" + request.query["update_types"].replace(",", "%2C")
        return f"{scheme}://{request.host}{STREAM_PATH}?{query}"

    def redeem(self, code: str | None) -> str | None:
        account = self._pending.pop(code, None) if code else None
        if account is not None:
            self.used_codes.append(code)
        return account

    # --- REST handlers ----------------------------------------------------------------

    async def place(self, request: web.Request, account: str) -> web.Response:
        started = time.monotonic()
        v3 = request.path.startswith("/v3/")
        self.admit(account)
        if self.take("http_429"):
            raise Refused(429, "UDAPI10005", "Too Many Request Sent")
        body = await self.json_object(request)
        if body is None:
            raise _invalid("the body must be a JSON object")
        problem, order = parse_place(body, v3, self.keys)
        if problem:
            raise Refused(400, *problem)
        self.places += 1
        placed = self.place_order(account, body["instrument_token"], **order)
        await self.after_accept(self.faults.hang_s)
        if self.exchange.faults.early_fills and placed.is_open:
            deadline = time.monotonic() + self.faults.early_fill_hold_s
            while placed.is_open and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if not placed.is_open:
                await asyncio.sleep(self.faults.early_fill_lag_s)
        if v3:
            return _success({"order_ids": [placed.order_id]}, v3=True, started=started)
        return _success({"order_id": placed.order_id})

    async def modify(self, request: web.Request, account: str) -> web.Response:
        started = time.monotonic()
        self.admit(account)
        body = await self.json_object(request)
        if body is None or not isinstance(body.get("order_id"), str):
            raise _invalid("order_id is required")
        order = self._order(account, body["order_id"])
        quantity, price = body.get("quantity"), body.get("price")
        if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int)):
            raise _invalid("quantity must be a whole number")
        if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))):
            raise _invalid("price must be a number")
        if body.get("order_type", order.order_type) != order.order_type:
            raise _invalid("the sandbox cannot change an order's type")
        if order.order_type == "MARKET" or not price:
            price = None
        try:
            self.exchange.modify(account, order.order_id, quantity=quantity, price=price)
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        return _success({"order_id": order.order_id}, v3=request.path.startswith("/v3/"), started=started)

    async def cancel(self, request: web.Request, account: str) -> web.Response:
        started = time.monotonic()
        self.admit(account)
        order_id = request.query.get("order_id", "")
        try:
            self.exchange.cancel(account, order_id)
        except KeyError:
            raise _not_found(order_id) from None
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        return _success({"order_id": order_id}, v3=request.path.startswith("/v3/"), started=started)

    async def order_book(self, request: web.Request, account: str) -> web.Response:
        return _success([self.order_row(o, account) for o in self.exchange.account(account).orders.values()])

    async def details(self, request: web.Request, account: str) -> web.Response:
        return _success(self.order_row(self._order(account, request.query.get("order_id", "")), account))

    async def order_history(self, request: web.Request, account: str) -> web.Response:
        order_id, tag = request.query.get("order_id"), request.query.get("tag")
        if not order_id and not tag:
            raise _invalid("give order_id or tag")
        orders = [o for o in self.exchange.account(account).orders.values()
                  if (not order_id or o.order_id == order_id) and (not tag or o.client_id == tag)]
        if not orders:
            raise _not_found(order_id or tag)
        return _success([entry for o in orders for entry in self.entries(account, o)])

    def _trade_rows(self, account: str, order_id: str | None = None) -> list[dict]:
        acct = self.exchange.account(account)
        rows = [self.trade_row(t, acct.orders[t.order_id]) for t in acct.trades
                if order_id is None or t.order_id == order_id]
        if self.exchange.faults.duplicate_fills:
            rows = [r for row in rows for r in (row, dict(row))]
        return rows

    async def trades_for_day(self, request: web.Request, account: str) -> web.Response:
        return _success(self._trade_rows(account))

    async def order_trades(self, request: web.Request, account: str) -> web.Response:
        order_id = request.query.get("order_id", "")
        return _success(self._trade_rows(account, self._order(account, order_id).order_id))

    async def positions(self, request: web.Request, account: str) -> web.Response:
        return _success(positions_json(self.exchange, account, lambda i: self.position_key(account, i),
                                       self.keys.trading_symbol))

    async def funds(self, request: web.Request, account: str) -> web.Response:
        acct = self.exchange.account(account)
        equity = {"used_margin": round(acct.used_margin(self.exchange.last), 2), "payin_amount": 0.0,
                  "span_margin": 0.0, "adhoc_margin": 0.0, "notional_cash": 0.0,
                  "available_margin": round(acct.cash, 2), "exposure_margin": 0.0}
        commodity = dict.fromkeys(equity, 0.0)
        segment = request.query.get("segment")
        data = {"equity": equity, "commodity": commodity}
        if segment == "SEC":
            data = {"equity": equity}
        elif segment == "COM":
            data = {"commodity": commodity}
        return _success(data)

    async def authorize(self, request: web.Request, account: str) -> web.Response:
        uri = self.issue_uri(request, account)
        return _success({"authorized_redirect_uri": uri, "authorizedRedirectUri": uri})

    async def redirect(self, request: web.Request, account: str) -> web.Response:
        raise web.HTTPFound(self.issue_uri(request, account))

    async def stream(self, request: web.Request) -> web.StreamResponse:
        account = self.redeem(request.query.get("code"))
        if account is None:
            return self.error_response(Refused(401, "UDAPI100057", "Invalid auth code"))
        ws = self.socket()
        await ws.prepare(request)
        await self.serve_stream(ws, self.accept(request, StreamSession(account)))
        return ws


UPSTOX_ORDERS = web.AppKey("upstox_orders", UpstoxOrders)


def _success(data: object, *, v3: bool = False, started: float | None = None) -> web.Response:
    body: dict = {"status": "success", "data": data}
    if v3:
        body["metadata"] = {"latency": int((time.monotonic() - (started or time.monotonic())) * 1000)}
    return web.json_response(body)


def add_routes(app: web.Application, hub: TickHub, exchange: Exchange) -> UpstoxOrders:
    """Serve the Upstox order, portfolio, funds and portfolio-stream routes on ``app``."""
    state = UpstoxOrders(hub, exchange, app.get(UPSTOX_KEYS) or UpstoxKeys())
    app[UPSTOX_ORDERS] = state
    app.on_shutdown.append(state.on_shutdown)
    guard, r = state.guard, app.router
    for version in ("v2", "v3"):
        r.add_post(f"/{version}/order/place", guard(state.place))
        r.add_put(f"/{version}/order/modify", guard(state.modify))
        r.add_delete(f"/{version}/order/cancel", guard(state.cancel))
    r.add_get("/v2/order/retrieve-all", guard(state.order_book))
    r.add_get("/v2/order/details", guard(state.details))
    r.add_get("/v2/order/history", guard(state.order_history))
    r.add_get("/v2/order/trades/get-trades-for-day", guard(state.trades_for_day))
    r.add_get("/v2/order/trades", guard(state.order_trades))
    r.add_get("/v2/portfolio/short-term-positions", guard(state.positions))
    r.add_get("/v2/user/get-funds-and-margin", guard(state.funds))
    r.add_get(STREAM_AUTHORIZE_PATH, guard(state.authorize))
    r.add_get(STREAM_REDIRECT_PATH, guard(state.redirect))
    r.add_get(STREAM_PATH, state.stream)
    r.add_get(FAULTS_PATH, guard(state.faults_route, auth=False))
    r.add_post(FAULTS_PATH, guard(state.faults_route, auth=False))
    return state
