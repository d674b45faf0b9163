"""Upstox order entry, portfolio, funds and the portfolio stream, on the sandbox's matching engine.

Routes (brokers.md B5, B6, B8), every one behind ``Authorization: Bearer <token>`` checked
with ``hub.token_ok`` (otherwise HTTP 401 with ``UDAPI100050``); the token names the
account on the shared ``Exchange``:

* ``POST /v2/order/place`` → ``data.order_id``; ``POST /v3/order/place`` →
  ``data.order_ids`` and ``metadata.latency``. Body fields as Upstox's: ``quantity``,
  ``product`` (``I`` is our INTRADAY, ``D`` CNC, or MARGIN on derivative segments, ``MTF``
  MARGIN), ``validity`` (``DAY``/``IOC``), ``price``, ``tag`` (our client id, at most 40
  characters), ``instrument_token`` (the instrument key, ``NSE_EQ|1333`` for the sandbox
  instrument ``NSE_EQ:1333``, or its real key from the instrument list,
  ``NSE_EQ|INE040A01034``), ``order_type``, ``transaction_type``. Order, trade, position
  and stream rows carry the key the order was placed with. A malformed field is
  HTTP 400; an order the engine refuses (funds, SL types) is accepted and then reported
  ``rejected`` with the reason in ``status_message``, as Upstox does.
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
  (B8 field names, ``update_type: "order"``): ``put order req received`` then ``open`` or
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
* ``duplicate_fills`` / ``early_fills`` (bool): forwarded to ``exchange.faults``. With
  duplicate fills every fill is reported twice on the stream and every trade is listed
  twice by the trade endpoints (same ``trade_id``). With early fills a fill is announced on
  the stream (``open`` with the filled quantity) before the order turns ``complete``, and a
  placement's HTTP answer waits (up to ``early_fill_hold_s``) until the order has filled
  and ``early_fill_lag_s`` more, so the fill overtakes the acknowledgement;
* ``drop_order_stream`` (bool): while on, a stream socket about to send an update is
  aborted (no close frame) and the update is lost; new sockets are still accepted.

The JSON shapes of orders, trades and positions, and the placement check, live in
``algocli.sandbox.upstox_rows``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, fields

from aiohttp import web

from algocli.sandbox.exchange import Exchange, SimOrder, SimTrade
from algocli.sandbox.hub import TickHub
from algocli.sandbox.instruments import UPSTOX_KEYS, UpstoxKeys
from algocli.sandbox.upstox_rows import (STATUS, default_key, order_json, parse_place, positions_json, trade_json,
                                         user_id)

__all__ = ["FAULTS_PATH", "ORDER_LIMITS", "STREAM_PATH", "UPSTOX_ORDERS", "UpstoxOrderFaults", "UpstoxOrders",
           "add_routes", "error_envelope"]

STREAM_AUTHORIZE_PATH = "/v2/feed/portfolio-stream-feed/authorize"
STREAM_REDIRECT_PATH = "/v2/feed/portfolio-stream-feed"
STREAM_PATH = "/upstox/order-updates/feed"
FAULTS_PATH = "/sandbox/faults/upstox"
ORDER_LIMITS = ((10, 1.0), (500, 60.0), (2000, 1800.0))  # published order-group limits (B9)


def error_envelope(code: str, message: str) -> dict:
    """Upstox's error body, with both the camelCase and the snake_case field names."""
    return {"status": "error", "errors": [{
        "errorCode": code, "message": message, "propertyPath": None, "invalidValue": None,
        "error_code": code, "property_path": None, "invalid_value": None}]}


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(error_envelope(code, message), status=status)


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


@dataclass
class UpstoxOrders:
    """State of the Upstox order routes, on the app as ``app[UPSTOX_ORDERS]``.

    Attributes:
        faults: The switches above.
        order_calls: Monotonic arrival times of order-group requests, per account.
        rate_limited: Order-group requests answered 429 by the limits (not by the fault).
        places: Placement requests that reached the engine.
        stream_connections / stream_drops: Stream sockets accepted / aborted by the fault.
        messages_sent: Updates written to stream sockets.
        history: Every recorded state of each order, by order id.
        keys: Which sandbox instrument each instrument key names.
        order_keys: The instrument key each order was placed with, by order id.
    """

    hub: TickHub
    exchange: Exchange
    keys: UpstoxKeys = field(default_factory=UpstoxKeys)
    faults: UpstoxOrderFaults = field(default_factory=UpstoxOrderFaults)
    limits: tuple[tuple[int, float], ...] = ORDER_LIMITS
    order_calls: dict[str, list[float]] = field(default_factory=dict)
    rate_limited: int = 0
    places: int = 0
    stream_connections: int = 0
    stream_drops: int = 0
    messages_sent: int = 0
    issued_codes: list[str] = field(default_factory=list)
    used_codes: list[str] = field(default_factory=list)
    history: dict[str, list[dict]] = field(default_factory=dict)
    order_keys: dict[str, str] = field(default_factory=dict)
    _placing: tuple[str, str] | None = None  # (account, key) while the engine accepts a placement
    _pending: dict[str, str] = field(default_factory=dict)  # code → account
    _streams: dict[str, set[asyncio.Queue]] = field(default_factory=dict)
    _watched: set[str] = field(default_factory=set)
    _last: dict[str, dict] = field(default_factory=dict)  # order id → latest update sent
    _trades_seen: set[str] = field(default_factory=set)
    _windows: dict[str, deque] = field(default_factory=dict)

    # --- faults ---------------------------------------------------------------------

    def fault_state(self) -> dict:
        out = {f.name: getattr(self.faults, f.name) for f in fields(self.faults)}
        out["duplicate_fills"] = self.exchange.faults.duplicate_fills
        out["early_fills"] = self.exchange.faults.early_fills
        return out

    def set_faults(self, changes: dict) -> None:
        """Apply ``{"name": value}`` switches, all or none.

        Raises:
            ValueError: An unknown name or a value of the wrong kind.
        """
        checked = []
        for name, value in changes.items():
            if name in ("duplicate_fills", "early_fills", "drop_order_stream"):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} takes true or false")
                target = self.faults if name == "drop_order_stream" else self.exchange.faults
            elif name in ("timeout_after_accept", "error_500_after_accept", "http_429"):
                value = int(value) if isinstance(value, bool) else value
                if not isinstance(value, int) or value < 0:
                    raise ValueError(f"{name} takes a count of requests (0 = off)")
                target = self.faults
            elif name in ("hang_s", "early_fill_hold_s", "early_fill_lag_s"):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 3600:
                    raise ValueError(f"{name} takes seconds")
                target, value = self.faults, float(value)
            else:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(self.fault_state()))}")
            checked.append((target, name, value))
        for target, name, value in checked:
            setattr(target, name, value)

    def _take(self, name: str) -> bool:
        left = getattr(self.faults, name)
        if left > 0:
            setattr(self.faults, name, left - 1)
            return True
        return False

    # --- rate limits ----------------------------------------------------------------

    def admit(self, account: str) -> bool:
        """Record an order-group call; False when it breaks a published limit."""
        now = time.monotonic()
        self.order_calls.setdefault(account, []).append(now)
        window = self._windows.setdefault(account, deque())
        longest = max(w for _, w in self.limits)
        while window and now - window[0] >= longest:
            window.popleft()
        for limit, span in self.limits:
            if sum(1 for t in window if now - t < span) >= limit:
                self.rate_limited += 1
                return False
        window.append(now)
        return True

    # --- instrument keys ------------------------------------------------------------

    def place(self, account: str, key: str, **order) -> SimOrder:
        """Place on the engine, remembering ``key`` for the order's rows."""
        self._placing = (account, key)  # the engine reports the new order before place() returns
        try:
            placed = self.exchange.place(account, **order)
        finally:
            self._placing = None
        self.order_keys.setdefault(placed.order_id, key)
        return placed

    def key_of(self, order: SimOrder) -> str:
        """The key ``order`` was placed with; the default spelling for orders placed elsewhere."""
        key = self.order_keys.get(order.order_id)
        if key is None and self._placing is not None and self._placing[0] == order.account:
            key = self.order_keys[order.order_id] = self._placing[1]
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

    # --- order updates --------------------------------------------------------------

    def watch(self, account: str) -> None:
        """Start recording the account's order states and streaming them (once per account)."""
        if account in self._watched:
            return
        self._watched.add(account)
        self.exchange.listen(account, lambda kind, payload: self._on_event(account, kind, payload))

    def _on_event(self, account: str, kind: str, payload: object) -> None:
        if kind == "order" and isinstance(payload, SimOrder):
            for status in self._transitions(payload):
                self._record(account, self.order_row(payload, account, status))
        elif kind == "trade" and isinstance(payload, SimTrade):
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
        previous = self._last.get(order.order_id)
        now = STATUS[order.status]
        if previous is None:
            return ["put order req received", now]
        if now == "open":
            return ["modified", "open"]
        if now == "cancelled" and not order.reason.startswith("IOC"):
            return ["cancel pending", "cancelled"]
        return [now]

    def _record(self, account: str, update: dict) -> None:
        self.history.setdefault(update["order_id"], []).append(update)
        self._last[update["order_id"]] = update
        self._push(account, update)

    def _push(self, account: str, entry: dict) -> None:
        uid = user_id(account)
        update = {"update_type": "order", "user_id": uid, "userId": uid, **entry,
                  "instrument_key": entry["instrument_token"]}
        for queue in list(self._streams.get(account, ())):
            queue.put_nowait(update)

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


UPSTOX_ORDERS = web.AppKey("upstox_orders", UpstoxOrders)


# --- responses ---------------------------------------------------------------------------


def _success(data: object, *, v3: bool = False, started: float | None = None) -> web.Response:
    body: dict = {"status": "success", "data": data}
    if v3:
        body["metadata"] = {"latency": int((time.monotonic() - (started or time.monotonic())) * 1000)}
    return web.json_response(body)


# --- routes ---------------------------------------------------------------------------------


def add_routes(app: web.Application, hub: TickHub, exchange: Exchange) -> UpstoxOrders:
    """Serve the Upstox order, portfolio, funds and portfolio-stream routes on ``app``."""
    state = UpstoxOrders(hub, exchange, app.get(UPSTOX_KEYS) or UpstoxKeys())
    app[UPSTOX_ORDERS] = state

    def account_of(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        if token and hub.token_ok(token):
            state.watch(token)
            return token
        return None

    def denied() -> web.Response:
        return _error(401, "UDAPI100050", "Invalid token used to access API")

    def not_found(order_id: str) -> web.Response:
        return _error(400, "UDAPI100010", f"Order not found: {order_id}")

    async def body_of(request: web.Request) -> dict | None:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    async def place(request: web.Request) -> web.Response:
        started = time.monotonic()
        v3 = request.path.startswith("/v3/")
        account = account_of(request)
        if account is None:
            return denied()
        if not state.admit(account) or state._take("http_429"):
            return _error(429, "UDAPI10005", "Too Many Request Sent")
        body = await body_of(request)
        if body is None:
            return _error(400, "UDAPI100038", "Invalid input: the body must be a JSON object")
        problem, order = parse_place(body, v3, state.keys)
        if problem:
            return _error(400, *problem)
        state.places += 1
        placed = state.place(account, body["instrument_token"], **order)
        if state._take("timeout_after_accept"):
            await asyncio.sleep(state.faults.hang_s)
        elif state._take("error_500_after_accept"):
            return _error(500, "UDAPI100500", "Something went wrong, please try again later")
        if exchange.faults.early_fills and placed.is_open:
            deadline = time.monotonic() + state.faults.early_fill_hold_s
            while placed.is_open and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if not placed.is_open:
                await asyncio.sleep(state.faults.early_fill_lag_s)
        if v3:
            return _success({"order_ids": [placed.order_id]}, v3=True, started=started)
        return _success({"order_id": placed.order_id})

    async def modify(request: web.Request) -> web.Response:
        started = time.monotonic()
        account = account_of(request)
        if account is None:
            return denied()
        if not state.admit(account):
            return _error(429, "UDAPI10005", "Too Many Request Sent")
        body = await body_of(request)
        if body is None or not isinstance(body.get("order_id"), str):
            return _error(400, "UDAPI100038", "Invalid input: order_id is required")
        order = exchange.account(account).orders.get(body["order_id"])
        if order is None:
            return not_found(body["order_id"])
        quantity, price = body.get("quantity"), body.get("price")
        if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int)):
            return _error(400, "UDAPI100038", "Invalid input: quantity must be a whole number")
        if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))):
            return _error(400, "UDAPI100038", "Invalid input: price must be a number")
        wanted_type = body.get("order_type", order.order_type)
        if wanted_type != order.order_type:
            return _error(400, "UDAPI100038", "Invalid input: the sandbox cannot change an order's type")
        if order.order_type == "MARKET" or not price:
            price = None
        try:
            exchange.modify(account, order.order_id, quantity=quantity, price=price)
        except ValueError as exc:
            return _error(400, "UDAPI100038", f"Invalid input: {exc}")
        return _success({"order_id": order.order_id}, v3=request.path.startswith("/v3/"), started=started)

    async def cancel(request: web.Request) -> web.Response:
        started = time.monotonic()
        account = account_of(request)
        if account is None:
            return denied()
        if not state.admit(account):
            return _error(429, "UDAPI10005", "Too Many Request Sent")
        order_id = request.query.get("order_id", "")
        try:
            exchange.cancel(account, order_id)
        except KeyError:
            return not_found(order_id)
        except ValueError as exc:
            return _error(400, "UDAPI100038", f"Invalid input: {exc}")
        return _success({"order_id": order_id}, v3=request.path.startswith("/v3/"), started=started)

    async def order_book(request: web.Request) -> web.Response:
        account = account_of(request)
        if account is None:
            return denied()
        return _success([state.order_row(o, account) for o in exchange.account(account).orders.values()])

    async def details(request: web.Request) -> web.Response:
        account = account_of(request)
        if account is None:
            return denied()
        order_id = request.query.get("order_id", "")
        order = exchange.account(account).orders.get(order_id)
        if order is None:
            return not_found(order_id)
        return _success(state.order_row(order, account))

    async def history(request: web.Request) -> web.Response:
        account = account_of(request)
        if account is None:
            return denied()
        order_id, tag = request.query.get("order_id"), request.query.get("tag")
        if not order_id and not tag:
            return _error(400, "UDAPI100038", "Invalid input: give order_id or tag")
        orders = [o for o in exchange.account(account).orders.values()
                  if (not order_id or o.order_id == order_id) and (not tag or o.client_id == tag)]
        if not orders:
            return not_found(order_id or tag)
        return _success([entry for o in orders for entry in state.entries(account, o)])

    def trade_rows(account: str, order_id: str | None = None) -> list[dict]:
        acct = exchange.account(account)
        rows = [state.trade_row(t, acct.orders[t.order_id]) for t in acct.trades
                if order_id is None or t.order_id == order_id]
        if exchange.faults.duplicate_fills:
            rows = [r for row in rows for r in (row, dict(row))]
        return rows

    async def trades_for_day(request: web.Request) -> web.Response:
        account = account_of(request)
        if account is None:
            return denied()
        return _success(trade_rows(account))

    async def order_trades(request: web.Request) -> web.Response:
        account = account_of(request)
        if account is None:
            return denied()
        order_id = request.query.get("order_id", "")
        if order_id not in exchange.account(account).orders:
            return not_found(order_id)
        return _success(trade_rows(account, order_id))

    async def positions(request: web.Request) -> web.Response:
        account = account_of(request)
        if account is None:
            return denied()
        return _success(positions_json(exchange, account, lambda i: state.position_key(account, i),
                                       state.keys.trading_symbol))

    async def funds(request: web.Request) -> web.Response:
        account = account_of(request)
        if account is None:
            return denied()
        acct = exchange.account(account)
        equity = {"used_margin": round(acct.used_margin(exchange.last), 2), "payin_amount": 0.0,
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

    async def authorize(request: web.Request) -> web.Response:
        account = account_of(request)
        if account is None:
            return denied()
        uri = state.issue_uri(request, account)
        return _success({"authorized_redirect_uri": uri, "authorizedRedirectUri": uri})

    async def redirect(request: web.Request) -> web.Response:
        account = account_of(request)
        if account is None:
            return denied()
        raise web.HTTPFound(state.issue_uri(request, account))

    async def stream(request: web.Request) -> web.StreamResponse:
        account = state.redeem(request.query.get("code"))
        if account is None:
            return _error(401, "UDAPI100057", "Invalid auth code")
        ws = web.WebSocketResponse(heartbeat=10.0)
        await ws.prepare(request)
        state.stream_connections += 1
        queue: asyncio.Queue = asyncio.Queue()
        state._streams.setdefault(account, set()).add(queue)
        writer = asyncio.create_task(_write(state, ws, queue, request))
        try:
            async for _ in ws:  # the client sends nothing that matters
                pass
        finally:
            state._streams.get(account, set()).discard(queue)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        return ws

    async def faults(request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await body_of(request)
            if body is None:
                return web.json_response({"status": "error", "message": "send a JSON object"}, status=400)
            try:
                state.set_faults(body)
            except ValueError as exc:
                return web.json_response({"status": "error", "message": str(exc)}, status=400)
        return web.json_response({"status": "success", "data": state.fault_state()})

    for version in ("v2", "v3"):
        app.router.add_post(f"/{version}/order/place", place)
        app.router.add_put(f"/{version}/order/modify", modify)
        app.router.add_delete(f"/{version}/order/cancel", cancel)
    app.router.add_get("/v2/order/retrieve-all", order_book)
    app.router.add_get("/v2/order/details", details)
    app.router.add_get("/v2/order/history", history)
    app.router.add_get("/v2/order/trades/get-trades-for-day", trades_for_day)
    app.router.add_get("/v2/order/trades", order_trades)
    app.router.add_get("/v2/portfolio/short-term-positions", positions)
    app.router.add_get("/v2/user/get-funds-and-margin", funds)
    app.router.add_get(STREAM_AUTHORIZE_PATH, authorize)
    app.router.add_get(STREAM_REDIRECT_PATH, redirect)
    app.router.add_get(STREAM_PATH, stream)
    app.router.add_get(FAULTS_PATH, faults)
    app.router.add_post(FAULTS_PATH, faults)
    return state


async def _write(state: UpstoxOrders, ws: web.WebSocketResponse, queue: asyncio.Queue,
                 request: web.Request) -> None:
    while True:
        update = await queue.get()
        if state.faults.drop_order_stream:
            state.stream_drops += 1
            if request.transport is not None:
                request.transport.abort()  # like a network drop: no close frame, the update is lost
            return
        try:
            await ws.send_str(json.dumps(update))
        except ConnectionError:
            return
        state.messages_sent += 1
