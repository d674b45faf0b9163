"""Dhan order entry and account state: the ``Broker`` protocol over Dhan REST v2 and the order-update stream.

Order tracking (client ids, held early updates, duplicate and overfill handling, ambiguous
outcomes, the poll fallback) follows the rules every broker shares
(``algocli.adapters.tracking``); this module is Dhan's transport for them.

Order entry (https://dhanhq.co/docs/v2/orders/). ``place_order`` sends one ``POST /orders``
with ``correlationId`` = the request's client id, through the account's shared ORDER
limiter, and never retries it:

* an answer with an ``orderId`` → the ``BrokerOrder`` (status from ``orderStatus``);
* a definitive refusal (HTTP 4xx with Dhan's error body, other than 429) → a ``BrokerOrder``
  with status ``REJECTED``, an empty ``broker_order_id`` and Dhan's code and message as
  ``reason``; a request that fails the local checks is rejected the same way, unsent;
* a timeout, a dropped connection, HTTP 429 or 5xx, ``DH-904``/``DH-908``/``DH-909`` or an
  answer without an ``orderId`` → ``AmbiguousOutcome``. The order may exist: resolve it with
  ``find_order(client_id)`` (``GET /orders/external/{id}``, then a scan of ``GET /orders``).

``modify_order`` and ``cancel_order`` are ORDER calls without retries as well (ambiguous
failures raise ``AmbiguousOutcome``). A refused modification raises ``DhanApiError``; a refused
cancel returns the order's current state with the refusal as ``reason`` (a cancel that lost
the race against a fill reports ``FILLED``).

Reads (order book, trades, positions, funds) go through the account's shared ``other``
limiter and retry transient failures with a fresh ``Backoff`` each call; a refused token
raises ``FeedAuthError`` saying how to renew it. Settings are read again for every request
and every stream connection, so a renewed token is picked up without a restart.

**Trade ids.** A fill's ``trade_id`` is Dhan's ``exchangeTradeId`` from the trade book. The
order-update stream (https://dhanhq.co/docs/v2/order-update/) carries no trade id: an alert
says "order ``OrderNo`` has traded ``TradedQty`` in total", so the order's trades are read
from ``GET /trades/{OrderNo}``. A trade-book row without an ``exchangeTradeId`` gets the
deterministic id ``{orderId}-{cumulative tradedQuantity}`` (``trades_from_book``), the same
``(OrderNo, cumulative TradedQty)`` pair an alert describes, so the stream, the poll and a
later ``get_trades`` name one execution by the same id.

**Instrument names.** With ``instrument_ids`` (our name → Dhan ``SEGMENT:SECURITY_ID``) an
order for ``NSE:RELIANCE`` is sent as ``NSE_EQ``/``2885``, and every order, update, fill,
trade and position Dhan reports for that id carries ``NSE:RELIANCE``. Other instruments are
Dhan ids, sent and reported as they are.

The token is never logged; errors name Dhan's code and message only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from urllib.parse import quote

import aiohttp

from algocli.adapters.dhan.http import DhanApiError, DhanRest, DhanTransientError
from algocli.adapters.dhan.order_stream import (
    DhanOrderStream, as_float, as_int, dhan_order_status, ist_ns, order_from_alert, order_type_of, side_of,
)
from algocli.adapters.dhan.parsing import SEGMENTS, instrument_id_maps
from algocli.adapters.tracking import TrackingBroker, TrackingStats, Uncertain
from algocli.broker.protocol import (
    PRODUCTS, VALIDITIES, AmbiguousOutcome, BrokerOrder, BrokerTrade, OrderRequest,
)
from algocli.broker.ratelimit import limiter
from algocli.adapters.dhan.settings import DhanSettings
from algocli.data.feed import FeedAuthError
from algocli.data.reconnect import Backoff
from algocli.domain.models import OrderStatus, OrderType, Position
from algocli.errors import BrokerError, ConfigError

__all__ = ["MAX_CORRELATION_ID", "DhanBroker", "DhanBrokerStats", "order_from_book",
           "positions_from_book", "trades_from_book"]

_log = logging.getLogger(__name__)

MAX_CORRELATION_ID = 30
DhanBrokerStats = TrackingStats
_RENEW = ("generate a new access token on web.dhan.co (or renew it with GET /v2/RenewToken), set "
          "DHAN_ACCESS_TOKEN in the environment or .env and check DHAN_CLIENT_ID")


# --- Dhan REST shapes → ours ---------------------------------------------------------------------


def _instrument(entry: dict, names: Mapping[str, str] | None) -> str:
    dhan_id = f"{entry.get('exchangeSegment', '')}:{entry.get('securityId', '')}"
    return names.get(dhan_id, dhan_id) if names else dhan_id


def order_from_book(entry: dict, names: Mapping[str, str] | None = None) -> BrokerOrder:
    """One order-book object (``GET /orders``, ``/orders/{id}``, ``/orders/external/{id}``).

    ``names`` (Dhan ``SEGMENT:ID`` → our name) renames the instrument; here and in the other
    ``*_from_book`` functions an id not in it is kept as it is.
    """
    filled = as_int(entry.get("filledQty"))
    status = dhan_order_status(entry.get("orderStatus"), filled)
    order_type = order_type_of(entry.get("orderType"))
    price = as_float(entry.get("price"))
    reason = str(entry.get("omsErrorDescription") or "") if status == OrderStatus.REJECTED.value else ""
    return BrokerOrder(
        broker_order_id=str(entry.get("orderId") or ""),
        client_id=str(entry.get("correlationId") or "") or None,
        instrument=_instrument(entry, names),
        side=side_of(entry.get("transactionType")),
        quantity=as_int(entry.get("quantity")),
        order_type=order_type,
        limit_price=price if order_type is OrderType.LIMIT and price > 0 else None,
        status=status,
        filled_quantity=filled,
        average_price=as_float(entry.get("averageTradedPrice")),
        reason=reason,
        product=str(entry.get("productType") or "INTRADAY"),
        updated_ts=ist_ns(entry.get("updateTime") or entry.get("createTime")),
    )


def trades_from_book(entries: object, names: Mapping[str, str] | None = None) -> list[BrokerTrade]:
    """Trade-book objects as ``BrokerTrade``s keyed by ``exchangeTradeId``.

    A row without one gets ``{orderId}-{cumulative tradedQuantity}``: the order's traded
    quantity up to and including that row, counting rows in the book's order.
    """
    out = []
    cumulative: dict[str, int] = {}
    for entry in _as_list(entries):
        order_id = str(entry.get("orderId") or "")
        qty = as_int(entry.get("tradedQuantity"))
        cumulative[order_id] = cumulative.get(order_id, 0) + qty
        trade_id = str(entry.get("exchangeTradeId") or "").strip() or f"{order_id}-{cumulative[order_id]}"
        out.append(BrokerTrade(trade_id, order_id, _instrument(entry, names), side_of(entry.get("transactionType")),
                               qty, as_float(entry.get("tradedPrice")),
                               ist_ns(entry.get("exchangeTime") or entry.get("createTime"))))
    return out


def positions_from_book(entries: object, names: Mapping[str, str] | None = None) -> list[Position]:
    """``GET /positions`` rows as one ``Position`` per instrument (product types merged).

    ``quantity`` is ``netQty``, ``average_price`` ``costPrice``, ``realized_pnl``
    ``realizedProfit``; ``last_price`` is implied by ``unrealizedProfit`` (0 when flat).
    """
    merged: dict[str, Position] = {}
    for entry in _as_list(entries):
        inst = _instrument(entry, names)
        net, cost = as_int(entry.get("netQty")), as_float(entry.get("costPrice"))
        unrealised = as_float(entry.get("unrealizedProfit"))
        pos = merged.setdefault(inst, Position(inst))
        weight = abs(pos.quantity) + abs(net)
        if weight:
            pos.average_price = (pos.average_price * abs(pos.quantity) + cost * abs(net)) / weight
        pos.quantity += net
        pos.realized_pnl += as_float(entry.get("realizedProfit"))
        if net:
            pos.last_price = cost + unrealised / net
    return list(merged.values())


def _as_list(payload: object) -> list[dict]:
    if isinstance(payload, dict):
        return [payload]
    if isinstance(payload, list):
        return [e for e in payload if isinstance(e, dict)]
    return []


def _one(payload: object) -> dict | None:
    rows = _as_list(payload)
    return rows[0] if rows else None


class DhanBroker(TrackingBroker):
    """Dhan as a ``Broker``: order entry, account state, order updates and fills.

    Args:
        settings_factory: Returns ``DhanSettings`` (client id, token, ``api_base_url``,
            ``order_update_url``); called for every request and stream connection.
        poll_interval: Seconds between REST polls of working orders (the stream's fallback).
        timeout: Seconds per HTTP request; an order request that takes longer is ambiguous.
        read_retries: Extra attempts for reads after a transient failure.
        read_backoff: Makes the ``Backoff`` of one read (default 0.25 s doubling to 4 s).
        stream: Open the order-update stream (False: REST poll only).
        stream_backoff: Reconnection delays of the stream.
        instrument_ids: Our instrument name → Dhan ``SEGMENT:SECURITY_ID``
            (``{"NSE:RELIANCE": "NSE_EQ:2885"}``): orders for a name go to its id, and what
            Dhan reports for the id carries the name. Other instruments must be Dhan ids.

    Raises:
        ConfigError: ``instrument_ids`` has a malformed Dhan id or two names for one id.
    """

    name = "dhan"
    title = "Dhan"
    balance_field = "availabelBalance"  # GET /fundlimit, Dhan's spelling
    margin_field = "utilizedAmount"

    def __init__(self, settings_factory: Callable[[], DhanSettings] = DhanSettings, *, poll_interval: float = 2.0,
                 timeout: float = 10.0, read_retries: int = 3, read_backoff: Callable[[], Backoff] | None = None,
                 stream: bool = True, stream_backoff: Backoff | None = None,
                 instrument_ids: Mapping[str, str] | None = None) -> None:
        super().__init__(poll_interval=poll_interval)
        try:
            self._ids, self._names = instrument_id_maps(instrument_ids)  # name → Dhan id, Dhan id → name
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._settings_factory = settings_factory
        self.timeout = timeout
        self.read_retries = read_retries
        self._read_backoff = read_backoff or (lambda: Backoff(0.25, 4.0))
        self._use_stream = stream
        self._stream_backoff = stream_backoff
        self._session: aiohttp.ClientSession | None = None

    # --- transport ----------------------------------------------------------------------------------

    async def _open(self) -> None:
        self._settings()  # fail fast on missing credentials
        self._session = aiohttp.ClientSession()

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _stream(self, on_connect: Callable[[], None]) -> DhanOrderStream | None:
        if not self._use_stream:
            return None
        return DhanOrderStream(self._session, self._settings_factory,
                               lambda data: self._incoming(order_from_alert(data, self._names)),
                               on_connected=on_connect, backoff=self._stream_backoff)

    def _settings(self) -> DhanSettings:
        settings = self._settings_factory()
        if not settings.client_id or not settings.access_token.get_secret_value():
            raise FeedAuthError(f"DHAN_CLIENT_ID or DHAN_ACCESS_TOKEN is empty; {_RENEW}")
        return settings

    def _rest(self) -> tuple[DhanRest, str]:
        if self._session is None:
            raise BrokerError("DhanBroker is not connected; await connect() first")
        settings = self._settings()
        return DhanRest(self._session, settings, retries=self.read_retries, timeout=self.timeout,
                        pace=0), settings.client_id

    async def _read(self, path: str) -> object:
        rest, account = self._rest()
        return await rest.request("GET", path, limiter=limiter("dhan", account, "other"),
                                  backoff=self._read_backoff())

    async def _write(self, method: str, path: str, body: dict | None = None) -> object:
        rest, account = self._rest()
        if body is not None:
            body = {"dhanClientId": account, **body}
        return await rest.request(method, path, body, retry=False, limiter=limiter("dhan", account, "order"))

    async def _order_book(self) -> list[BrokerOrder]:
        return [order_from_book(r, self._names) for r in _as_list(await self._read("/orders"))]

    async def _order_trades(self, broker_order_id: str) -> list[BrokerTrade]:
        return trades_from_book(await self._read(f"/trades/{quote(broker_order_id, safe='')}"), self._names)

    async def _day_trades(self) -> list[BrokerTrade]:
        return trades_from_book(await self._read("/trades"), self._names)

    async def _read_order(self, broker_order_id: str) -> BrokerOrder:
        row = _one(await self._read(f"/orders/{quote(broker_order_id, safe='')}"))
        if row is None:
            raise BrokerError(f"Dhan has no order {broker_order_id}")
        return order_from_book(row, self._names)

    async def _lookup(self, client_id: str) -> BrokerOrder | None:
        """``GET /orders/external/{id}``, then a scan of the order book."""
        order = None
        try:
            row = _one(await self._read(f"/orders/external/{quote(client_id, safe='')}"))
            order = order_from_book(row, self._names) if row is not None else None
        except DhanApiError:
            pass  # not found that way: scan the order book
        if order is not None and order.client_id not in (None, client_id):
            order = None
        if order is None:
            matches = [o for o in await self._order_book() if o.client_id == client_id]
            if len(matches) > 1:
                _log.warning("Dhan has %d orders with correlationId %s: %s; returning the latest", len(matches),
                             client_id, ", ".join(m.broker_order_id for m in matches))
            order = matches[-1] if matches else None
        return order

    # --- order entry ---------------------------------------------------------------------------------

    async def _submit(self, request: OrderRequest) -> BrokerOrder:
        dhan_id = self._ids.get(request.instrument, request.instrument)
        problem = _check(request, dhan_id, mapped=bool(self._ids))
        if problem:
            return _rejected(request, problem)
        segment, _, security = dhan_id.partition(":")
        # Acknowledge under the name later updates and fills will carry, even when the request
        # named a mapped instrument by its Dhan id.
        instrument = self._names.get(dhan_id, request.instrument)
        body = {
            "correlationId": request.client_id, "transactionType": request.side.value,
            "exchangeSegment": segment, "productType": request.product, "orderType": request.order_type.value,
            "validity": request.validity, "securityId": security, "quantity": int(request.quantity),
            "disclosedQuantity": 0,
            "price": float(request.limit_price) if request.order_type is OrderType.LIMIT else 0.0,
            "triggerPrice": 0.0, "afterMarketOrder": False,
        }
        try:
            answer = await self._write("POST", "/orders", body)
        except DhanTransientError as exc:
            raise Uncertain(str(exc)) from None
        except DhanApiError as exc:
            return _rejected(request, str(exc))
        row = answer if isinstance(answer, dict) else None
        if row is None or not row.get("orderId"):
            raise Uncertain(f"Dhan answered the order without an orderId ({str(answer)[:120]})")
        order = BrokerOrder(str(row["orderId"]), request.client_id, instrument, request.side, int(request.quantity),
                            request.order_type, request.limit_price if request.order_type is OrderType.LIMIT
                            else None, dhan_order_status(row.get("orderStatus")), product=request.product)
        if order.status == OrderStatus.REJECTED.value:
            order.reason = await self._reject_reason(order.broker_order_id)
        return order

    async def _reject_reason(self, order_id: str) -> str:
        try:
            row = _one(await self._read(f"/orders/{order_id}"))
        except BrokerError:
            return "rejected by Dhan"
        return str((row or {}).get("omsErrorDescription") or "rejected by Dhan")

    async def cancel_order(self, broker_order_id: str) -> BrokerOrder:
        try:
            answer = await self._write("DELETE", f"/orders/{broker_order_id}")
        except DhanTransientError as exc:
            raise AmbiguousOutcome(f"cancel of {broker_order_id}: {exc}; the order updates or the poll will "
                                   "tell whether it was cancelled") from None
        except DhanApiError as exc:
            current = await self.get_order(broker_order_id)
            current.reason = f"cancel refused: {exc}"
            return current
        base = await self._base(broker_order_id)
        status = dhan_order_status((answer or {}).get("orderStatus") if isinstance(answer, dict) else None,
                                   base.filled_quantity)
        return await self._learn(replace(base, status=status, updated_ts=await self._updated(broker_order_id, base)),
                                 "read")

    async def modify_order(self, broker_order_id: str, quantity: int | None = None,
                           price: float | None = None) -> BrokerOrder:
        base = await self._base(broker_order_id)
        tracked = self._known(broker_order_id)
        new_qty = int(quantity) if quantity is not None else base.quantity
        new_price = float(price) if price is not None else (base.limit_price or 0.0)
        body = {"orderId": broker_order_id, "orderType": base.order_type.value, "legName": "",
                "quantity": new_qty, "price": new_price if base.order_type is OrderType.LIMIT else 0.0,
                "disclosedQuantity": 0, "triggerPrice": 0.0,
                "validity": tracked.validity if tracked is not None else "DAY"}
        try:
            answer = await self._write("PUT", f"/orders/{broker_order_id}", body)
        except DhanTransientError as exc:
            raise AmbiguousOutcome(f"modify of {broker_order_id}: {exc}; the order updates or the poll will "
                                   "tell whether it changed") from None
        status = dhan_order_status(answer.get("orderStatus") if isinstance(answer, dict) else None,
                                   base.filled_quantity)
        limit = new_price if base.order_type is OrderType.LIMIT else None
        return await self._learn(replace(base, quantity=new_qty, limit_price=limit, status=status), "read")

    async def _updated(self, broker_order_id: str, base: BrokerOrder) -> int:
        """When the broker last changed the order: the cancel's answer carries no time, and the order
        as we knew it carries its placement's."""
        try:
            return (await self.get_order(broker_order_id)).updated_ts or base.updated_ts
        except (DhanApiError, DhanTransientError):
            return base.updated_ts  # the cancel stands; only its time is unknown

    async def _base(self, broker_order_id: str) -> BrokerOrder:
        tracked = self._known(broker_order_id)
        return replace(tracked.order) if tracked is not None else await self.get_order(broker_order_id)

    # --- reads -----------------------------------------------------------------------------------------

    async def get_orders(self) -> list[BrokerOrder]:
        orders = await self._order_book()
        for order in orders:
            if self._known(order.broker_order_id) is not None:
                await self._apply(order, "read")
        return orders

    async def get_trades(self) -> list[BrokerTrade]:
        return await self._day_trades()

    async def get_positions(self) -> list[Position]:
        return positions_from_book(await self._read("/positions"), self._names)

    def _position_name(self, instrument: str) -> str:
        return self._names.get(self._ids.get(instrument, instrument), instrument)  # a name or a Dhan id

    async def _funds(self) -> dict:
        row = _one(await self._read("/fundlimit"))
        if row is None:
            raise BrokerError("Dhan's /fundlimit answer is not an object")
        return row


def _check(request: OrderRequest, dhan_id: str, mapped: bool = False) -> str:
    """Why Dhan would refuse ``request`` for ``dhan_id`` (checked before sending), or ``""``."""
    segment, sep, security = dhan_id.partition(":")
    if not sep or segment not in SEGMENTS or not security.isdigit():
        return (f"instrument {request.instrument!r} is not SEGMENT:SECURITY_ID with a Dhan segment "
                f"({', '.join(SEGMENTS)}) and a numeric security id"
                + (" and has no Dhan id in instrument_ids" if mapped else ""))
    if segment == "IDX_I":
        return "an index (IDX_I) cannot be traded"
    if not request.client_id or len(request.client_id) > MAX_CORRELATION_ID:
        return f"client id {request.client_id!r} must be 1 to {MAX_CORRELATION_ID} characters (Dhan's correlationId)"
    if request.quantity <= 0:
        return f"quantity must be positive, not {request.quantity}"
    if request.product not in PRODUCTS:
        return f"product {request.product!r} is not one of {', '.join(PRODUCTS)}"
    if request.validity not in VALIDITIES:
        return f"validity {request.validity!r} is not one of {', '.join(VALIDITIES)}"
    if request.order_type is OrderType.LIMIT and not (request.limit_price and request.limit_price > 0):
        return "a LIMIT order needs a positive limit price"
    return ""


def _rejected(request: OrderRequest, reason: str) -> BrokerOrder:
    return BrokerOrder("", request.client_id, request.instrument, request.side, int(request.quantity),
                       request.order_type, request.limit_price, OrderStatus.REJECTED.value, reason=reason,
                       product=request.product)
