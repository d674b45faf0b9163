"""Dhan order entry and account state: the ``Broker`` protocol over Dhan REST v2 and the order-update stream.

Order entry (brokers.md A3; anchors B4). ``place_order`` sends one ``POST /orders`` with
``correlationId`` = the request's client id, through the account's shared ORDER limiter, and
never retries it:

* an answer with an ``orderId`` → the ``BrokerOrder`` (status from ``orderStatus``);
* a definitive refusal (HTTP 4xx with Dhan's error body, other than 429) → a ``BrokerOrder``
  with status ``REJECTED``, an empty ``broker_order_id`` and Dhan's code and message as
  ``reason``; a request that fails the local checks is rejected the same way, unsent;
* a timeout, a dropped connection, HTTP 429 or 5xx, ``DH-904``/``DH-908``/``DH-909`` or an
  answer without an ``orderId`` → ``AmbiguousOutcome``. The order may exist: resolve it with
  ``find_order(client_id)`` (``GET /orders/external/{id}``, then a scan of ``GET /orders``);
  never send it again blindly. Meanwhile the REST poll watches for that client id too.

``modify_order`` and ``cancel_order`` are ORDER calls without retries as well (ambiguous
failures raise ``AmbiguousOutcome``). A refused modification raises ``DhanApiError``; a refused
cancel returns the order's current state with the refusal as ``reason`` (a cancel that lost
the race against a fill reports ``FILLED``).

Reads (order book, trades, positions, funds) go through the account's shared ``other``
limiter and retry transient failures with a fresh ``Backoff`` each call; a refused token
raises ``FeedAuthError`` saying how to renew it. Settings are read again for every request
and every stream connection, so a renewed token is picked up without a restart.

Order updates and fills. ``on_order_update`` callbacks get every change of an order the
broker follows (status, filled quantity, quantity or price), from the order-update stream
(``order_stream.py``) or from the REST poll; repeated and stale updates are dropped (a
terminal order never goes back to working, a filled quantity never shrinks). What a method
returned to the caller counts as known: the state that ``place_order``, ``modify_order`` or
``cancel_order`` returned is not repeated as an update.

**Trade ids.** A fill's ``trade_id`` is Dhan's ``exchangeTradeId`` from the trade book. The
order-update stream carries no trade id: an alert says "order ``OrderNo`` has traded
``TradedQty`` in total". The broker reconciles the two by quantity: when an alert's cumulative
``TradedQty`` is above the quantity already booked for that order, it reads
``GET /trades/{OrderNo}`` and books each ``exchangeTradeId`` it has not seen. The stream, the
poll and a later ``get_trades`` therefore name one execution by the same id, and a restart
that reconciles from the trade book finds the ids it journaled. A trade-book row without an
``exchangeTradeId`` gets the deterministic id ``{orderId}-{cumulative tradedQuantity}`` (the
order's traded quantity up to and including that row; ``trades_from_book``), the same
``(OrderNo, cumulative TradedQty)`` pair an alert describes. Until the trade book shows a
fill, the order stays on the poll list; its order update (``FILLED``, filled quantity,
average price) is delivered at once.

**Exactly once.** ``on_fill`` is called once per trade id for the life of the ``DhanBroker``
(a seen-set), whatever the order of acknowledgements, duplicate alerts and early fills. A
trade id seen again with a different quantity or price is logged as an error and dropped
(``stats.conflicting_trades``). Trades already in the trade book at ``connect()`` are not
replayed to ``on_fill``: read them with ``get_trades()`` when reconciling.

**Early fills.** While ``place_order`` for a client id is in flight, updates and fills of the
order with that ``correlationId`` are held, and delivered in arrival order on the event-loop
turn after ``place_order`` returns or raises, so the caller sees the acknowledgement (or the
``AmbiguousOutcome``) first. After an ``AmbiguousOutcome`` they are delivered as they come:
each update carries the client id, and a fill comes after an update of its order (or after
the ``find_order``/``get_order`` answer that returned the order).

**Poll fallback.** Every ``poll_interval`` seconds (and right after each stream
(re)connection), if some followed order is still working, has traded quantity not yet
booked, or an ambiguous client id is unresolved, the broker reads ``GET /orders`` and the
trade book of orders with unbooked quantity. A dropped stream or a lost alert still yields
the update and the fill.

**Instrument names.** With ``instrument_ids`` (our name → Dhan ``SEGMENT:SECURITY_ID``) an
order for ``NSE:RELIANCE`` is sent as ``NSE_EQ``/``2885``, and every order, update, fill,
trade and position Dhan reports for that id carries ``NSE:RELIANCE``. Other instruments are
Dhan ids, sent and reported as they are.

The token is never logged; errors name Dhan's code and message only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import quote

import aiohttp

from algocli.adapters.dhan.http import DhanApiError, DhanRest, DhanTransientError
from algocli.adapters.dhan.order_stream import (
    DhanOrderStream, as_float, as_int, dhan_order_status, ist_ns, order_from_alert, order_type_of, side_of,
)
from algocli.adapters.dhan.parsing import SEGMENTS, instrument_id_maps
from algocli.broker.protocol import (
    PRODUCTS, VALIDITIES, AmbiguousOutcome, BrokerOrder, BrokerTrade, CallbackSet, OrderRequest,
)
from algocli.broker.ratelimit import limiter
from algocli.config.settings import DhanSettings
from algocli.data.feed import FeedAuthError
from algocli.data.reconnect import Backoff
from algocli.domain.models import OrderStatus, OrderType, Position
from algocli.errors import BrokerError, ConfigError

__all__ = ["MAX_CORRELATION_ID", "DhanBroker", "DhanBrokerStats", "order_from_book",
           "positions_from_book", "trades_from_book"]

_log = logging.getLogger(__name__)

MAX_CORRELATION_ID = 30
_RENEW = ("generate a new access token on web.dhan.co (or renew it with GET /v2/RenewToken), set "
          "DHAN_ACCESS_TOKEN in the environment or .env and check DHAN_CLIENT_ID")
_TERMINAL = frozenset(s.value for s in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED,
                                        OrderStatus.EXPIRED))
_RANK = {OrderStatus.PENDING.value: 0, OrderStatus.OPEN.value: 1, OrderStatus.PARTIALLY_FILLED.value: 2}


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


def _advances(old: BrokerOrder, new: BrokerOrder) -> bool:
    """True when ``new`` tells something ``old`` did not, and is not older than it."""
    if old.status in _TERMINAL and new.status not in _TERMINAL:
        return False
    if new.status not in _TERMINAL and _RANK.get(new.status, 1) < _RANK.get(old.status, 1):
        return False
    if new.filled_quantity < old.filled_quantity:
        return False
    return ((new.status, new.filled_quantity, new.quantity, new.limit_price)
            != (old.status, old.filled_quantity, old.quantity, old.limit_price))


def _merge(old: BrokerOrder, new: BrokerOrder) -> BrokerOrder:
    return replace(new, client_id=new.client_id or old.client_id, reason=new.reason or old.reason,
                   updated_ts=new.updated_ts or old.updated_ts)


@dataclass
class DhanBrokerStats:
    """Counters for status output and tests."""

    placed: int = 0
    rejected: int = 0
    ambiguous: int = 0
    alerts: int = 0
    stale_alerts: int = 0  # repeated or older than what was known
    polls: int = 0
    fills: int = 0
    fills_by_source: dict[str, int] = field(default_factory=dict)  # stream / poll / lookup
    conflicting_trades: int = 0
    held: int = 0  # updates and fills held while their place_order was in flight


@dataclass
class _Tracked:
    order: BrokerOrder
    validity: str = "DAY"


class DhanBroker:
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

    def __init__(self, settings_factory: Callable[[], DhanSettings] = DhanSettings, *, poll_interval: float = 2.0,
                 timeout: float = 10.0, read_retries: int = 3, read_backoff: Callable[[], Backoff] | None = None,
                 stream: bool = True, stream_backoff: Backoff | None = None,
                 instrument_ids: Mapping[str, str] | None = None) -> None:
        try:
            self._ids, self._names = instrument_id_maps(instrument_ids)  # name → Dhan id, Dhan id → name
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._settings_factory = settings_factory
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.read_retries = read_retries
        self._read_backoff = read_backoff or (lambda: Backoff(0.25, 4.0))
        self._use_stream = stream
        self._stream_backoff = stream_backoff
        self.stats = DhanBrokerStats()
        self.stream: DhanOrderStream | None = None
        self._callbacks = CallbackSet()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()
        self._wake: asyncio.Event | None = None
        self._tracked: dict[str, _Tracked] = {}
        self._seen: dict[str, BrokerTrade] = {}  # trade id → the trade, once booked (or there at connect)
        self._booked: dict[str, int] = {}  # broker order id → quantity booked
        self._watch: set[str] = set()  # client ids in flight or ambiguous, not yet found
        self._holding: dict[str, list[tuple[str, object]]] = {}
        self._hold_count: dict[str, int] = {}
        self._fetching: set[str] = set()
        self._again: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    # --- life cycle -------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the HTTP session, note the trade book as already seen, start the stream and poll."""
        if self._session is not None:
            return
        self._settings()  # fail fast on missing credentials
        self._session = aiohttp.ClientSession()
        try:
            for trade in trades_from_book(await self._read("/trades"), self._names):
                self._mark_seen(trade)
        except BaseException:
            await self._session.close()
            self._session = None
            raise
        self._wake = asyncio.Event()
        if self._use_stream:
            self.stream = DhanOrderStream(self._session, self._settings_factory, self._on_alert,
                                          on_connected=self._wake.set, backoff=self._stream_backoff)
            self._spawn(self.stream.run())
        self._spawn(self._poll_loop())

    async def disconnect(self) -> None:
        """Stop the stream, the poll and pending trade reads; close the session."""
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.stream = None

    def on_order_update(self, callback: Callable[[BrokerOrder], None]) -> None:
        self._callbacks.order_updates.append(callback)

    def on_fill(self, callback: Callable[[BrokerTrade], None]) -> None:
        self._callbacks.fills.append(callback)

    # --- requests ----------------------------------------------------------------------------------

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

    # --- order entry ---------------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> BrokerOrder:
        dhan_id = self._ids.get(request.instrument, request.instrument)
        problem = _check(request, dhan_id, mapped=bool(self._ids))
        if problem:
            self.stats.rejected += 1
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
        cid = request.client_id
        self._hold(cid)
        self._watch.add(cid)
        try:
            try:
                answer = await self._write("POST", "/orders", body)
            except DhanTransientError as exc:
                self.stats.ambiguous += 1
                self._wake_poll()
                raise AmbiguousOutcome(f"{exc}; the order may have reached Dhan: resolve it with "
                                       f"find_order({cid!r}) and do not send it again") from None
            except DhanApiError as exc:
                self._watch.discard(cid)
                self.stats.rejected += 1
                return _rejected(request, str(exc))
            except BrokerError:  # a refused token, or not connected: nothing was sent or placed
                self._watch.discard(cid)
                raise
            row = answer if isinstance(answer, dict) else None
            if row is None or not row.get("orderId"):
                self.stats.ambiguous += 1
                raise AmbiguousOutcome(f"Dhan answered the order without an orderId ({str(answer)[:120]}); "
                                       f"resolve it with find_order({cid!r})")
            self.stats.placed += 1
            order = BrokerOrder(str(row["orderId"]), cid, instrument, request.side, int(request.quantity),
                                request.order_type, request.limit_price if request.order_type is OrderType.LIMIT
                                else None, dhan_order_status(row.get("orderStatus")), product=request.product)
            if order.status == OrderStatus.REJECTED.value:
                order.reason = await self._reject_reason(order.broker_order_id)
            return self._adopt(order, request.validity)
        finally:
            self._unhold(cid)

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
        base = await self._known(broker_order_id)
        status = dhan_order_status((answer or {}).get("orderStatus") if isinstance(answer, dict) else None,
                                   base.filled_quantity)
        return self._adopt(replace(base, status=status))

    async def modify_order(self, broker_order_id: str, quantity: int | None = None,
                           price: float | None = None) -> BrokerOrder:
        base = await self._known(broker_order_id)
        tracked = self._tracked.get(broker_order_id)
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
        return self._adopt(replace(base, quantity=new_qty, limit_price=limit, status=status))

    async def _known(self, broker_order_id: str) -> BrokerOrder:
        tracked = self._tracked.get(broker_order_id)
        return replace(tracked.order) if tracked is not None else await self.get_order(broker_order_id)

    # --- reads -----------------------------------------------------------------------------------------

    async def get_order(self, broker_order_id: str) -> BrokerOrder:
        row = _one(await self._read(f"/orders/{quote(broker_order_id, safe='')}"))
        if row is None:
            raise BrokerError(f"Dhan has no order {broker_order_id}")
        return self._adopt(order_from_book(row, self._names))

    async def find_order(self, client_id: str) -> BrokerOrder | None:
        """The order placed with ``correlationId`` = ``client_id``, or None if Dhan has none.

        Raises:
            AmbiguousOutcome: The lookup itself kept failing; try again later.
        """
        try:
            order = None
            try:
                row = _one(await self._read(f"/orders/external/{quote(client_id, safe='')}"))
                order = order_from_book(row, self._names) if row is not None else None
            except DhanApiError:
                pass  # not found that way: scan the order book
            if order is not None and order.client_id not in (None, client_id):
                order = None
            if order is None:
                matches = [order_from_book(r, self._names) for r in _as_list(await self._read("/orders"))
                           if str(r.get("correlationId") or "") == client_id]
                if len(matches) > 1:
                    _log.warning("Dhan has %d orders with correlationId %s: %s; returning the latest", len(matches),
                                 client_id, ", ".join(m.broker_order_id for m in matches))
                order = matches[-1] if matches else None
        except DhanTransientError as exc:
            raise AmbiguousOutcome(f"looking up {client_id!r} failed: {exc}; the outcome is still unknown") from None
        if order is None:
            self._watch.discard(client_id)
            return None
        return self._adopt(order)

    async def get_orders(self) -> list[BrokerOrder]:
        orders = [order_from_book(r, self._names) for r in _as_list(await self._read("/orders"))]
        for order in orders:
            if order.broker_order_id in self._tracked or (order.client_id and order.client_id in self._watch):
                self._adopt(order)
        return orders

    async def get_trades(self) -> list[BrokerTrade]:
        return trades_from_book(await self._read("/trades"), self._names)

    async def get_positions(self) -> list[Position]:
        return positions_from_book(await self._read("/positions"), self._names)

    async def get_position(self, instrument: str) -> Position | None:
        """The position in ``instrument`` (a name or a Dhan id), or None when there is none."""
        wanted = self._names.get(self._ids.get(instrument, instrument), instrument)  # as positions name it
        for position in await self.get_positions():
            if position.instrument == wanted:
                return position
        return None

    async def _funds(self) -> dict:
        row = _one(await self._read("/fundlimit"))
        if row is None:
            raise BrokerError("Dhan's /fundlimit answer is not an object")
        return row

    async def get_balance(self) -> float:
        """``availabelBalance`` (Dhan's spelling) of ``GET /fundlimit``."""
        return as_float((await self._funds()).get("availabelBalance"))

    async def get_margin_used(self) -> float:
        """``utilizedAmount`` of ``GET /fundlimit``."""
        return as_float((await self._funds()).get("utilizedAmount"))

    # --- following orders --------------------------------------------------------------------------------

    def _adopt(self, order: BrokerOrder, validity: str | None = None) -> BrokerOrder:
        """Follow ``order`` (known to the caller now); return the most advanced state known."""
        oid = order.broker_order_id
        if order.client_id:
            self._watch.discard(order.client_id)
        tracked = self._tracked.get(oid)
        if tracked is None:
            tracked = self._tracked[oid] = _Tracked(replace(order))
        elif _advances(tracked.order, order):
            tracked.order = _merge(tracked.order, order)
        if validity:
            tracked.validity = validity
        if tracked.order.filled_quantity > self._booked.get(oid, 0):
            self._want_trades(oid, "lookup")
        return replace(tracked.order, client_id=tracked.order.client_id or order.client_id)

    def _observe(self, order: BrokerOrder, source: str) -> None:
        """A state report from the stream or the poll: deliver what is new, fetch new trades."""
        oid = order.broker_order_id
        if not oid:
            return
        if order.client_id:
            self._watch.discard(order.client_id)
        tracked = self._tracked.get(oid)
        if tracked is None:
            tracked = self._tracked[oid] = _Tracked(replace(order))
            changed = True
        else:
            changed = _advances(tracked.order, order)
            if changed:
                tracked.order = _merge(tracked.order, order)
        if changed:
            self._emit("order", replace(tracked.order), tracked.order.client_id)
        elif source == "stream":
            self.stats.stale_alerts += 1
        if source == "stream" and tracked.order.filled_quantity > self._booked.get(oid, 0):
            self._want_trades(oid, source)

    def _on_alert(self, data: dict) -> None:
        self.stats.alerts += 1
        self._observe(order_from_alert(data, self._names), "stream")

    def _want_trades(self, oid: str, source: str) -> None:
        if oid in self._fetching:
            self._again.add(oid)
            return
        self._fetching.add(oid)
        self._spawn(self._trades_task(oid, source))

    async def _trades_task(self, oid: str, source: str) -> None:
        try:
            while True:
                self._again.discard(oid)
                try:
                    await self._sync_trades(oid, source)
                except BrokerError as exc:
                    _log.warning("Dhan trades of order %s: %s (the poll will try again)", oid, exc)
                    return
                except Exception:
                    _log.exception("Dhan trades of order %s could not be read (the poll will try again)", oid)
                    return
                if oid not in self._again:
                    return
        finally:
            self._fetching.discard(oid)

    async def _sync_trades(self, oid: str, source: str) -> None:
        lock = self._locks.setdefault(oid, asyncio.Lock())
        async with lock:
            for trade in trades_from_book(await self._read(f"/trades/{quote(oid, safe='')}"), self._names):
                if trade.broker_order_id in ("", oid):
                    self._book(replace(trade, broker_order_id=oid), source)

    def _mark_seen(self, trade: BrokerTrade) -> bool:
        first = self._seen.get(trade.trade_id)
        if first is None:
            self._seen[trade.trade_id] = trade
            self._booked[trade.broker_order_id] = self._booked.get(trade.broker_order_id, 0) + trade.quantity
            return True
        if (first.quantity, first.price) != (trade.quantity, trade.price):
            self.stats.conflicting_trades += 1
            _log.error("Dhan trade %s of order %s came again as %d @ %s (first %d @ %s); the first is kept",
                       trade.trade_id, trade.broker_order_id, trade.quantity, trade.price, first.quantity,
                       first.price)
        return False

    def _book(self, trade: BrokerTrade, source: str) -> None:
        if not self._mark_seen(trade):
            return
        self.stats.fills += 1
        self.stats.fills_by_source[source] = self.stats.fills_by_source.get(source, 0) + 1
        tracked = self._tracked.get(trade.broker_order_id)
        self._emit("fill", trade, tracked.order.client_id if tracked is not None else None)

    # --- delivery, holding ---------------------------------------------------------------------------------

    def _hold(self, cid: str) -> None:
        self._holding.setdefault(cid, [])
        self._hold_count[cid] = self._hold_count.get(cid, 0) + 1

    def _unhold(self, cid: str) -> None:
        left = self._hold_count.get(cid, 1) - 1
        if left > 0:
            self._hold_count[cid] = left
            return
        self._hold_count.pop(cid, None)
        asyncio.get_running_loop().call_soon(self._release, cid)

    def _release(self, cid: str) -> None:
        if self._hold_count.get(cid):
            return  # placed again meanwhile: keep holding
        for kind, item in self._holding.pop(cid, []):
            self._dispatch(kind, item)

    def _emit(self, kind: str, item: object, cid: str | None) -> None:
        held = self._holding.get(cid) if cid else None
        if held is not None:
            self.stats.held += 1
            held.append((kind, item))
        else:
            self._dispatch(kind, item)

    def _dispatch(self, kind: str, item: object) -> None:
        callbacks = self._callbacks.order_updates if kind == "order" else self._callbacks.fills
        for callback in list(callbacks):
            try:
                callback(item)
            except Exception:  # one broken consumer must not stop the others or the stream
                _log.exception("Dhan %s callback failed", "order-update" if kind == "order" else "fill")

    # --- the poll -------------------------------------------------------------------------------------------

    def _wake_poll(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def needs_poll(self) -> bool:
        """True while some followed order is working or has traded quantity not yet booked."""
        if self._watch:
            return True
        return any(t.order.status not in _TERMINAL or t.order.filled_quantity > self._booked.get(oid, 0)
                   for oid, t in self._tracked.items())

    async def _poll_loop(self) -> None:
        assert self._wake is not None
        while True:
            try:
                async with asyncio.timeout(self.poll_interval):  # not wait_for: on 3.11 it can swallow
                    await self._wake.wait()  # disconnect()'s cancel when the wake-up lands in the same turn
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if not self.needs_poll():
                continue
            try:
                await self.poll()
            except BrokerError as exc:  # FeedAuthError included
                _log.warning("Dhan order poll failed: %s", exc)
            except Exception:
                _log.exception("Dhan order poll failed")

    async def poll(self) -> None:
        """One REST pass: order book states of followed orders, then unbooked trades."""
        self.stats.polls += 1
        for row in _as_list(await self._read("/orders")):
            order = order_from_book(row, self._names)
            if order.broker_order_id in self._tracked or (order.client_id and order.client_id in self._watch):
                self._observe(order, "poll")
        for oid, tracked in list(self._tracked.items()):
            if tracked.order.filled_quantity > self._booked.get(oid, 0):
                await self._sync_trades(oid, "poll")

    def _spawn(self, coro: Coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


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
