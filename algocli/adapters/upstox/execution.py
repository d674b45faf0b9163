"""Upstox order entry and account state: the ``Broker`` for live trading on Upstox.

Order tracking (client ids, held early updates, duplicate and overfill handling, ambiguous
outcomes, the poll fallback) follows the rules every broker shares
(``algocli.adapters.tracking``); this module is Upstox's transport for them.

Wire protocol (https://upstox.com/developer/api-documentation/orders):

* place, modify and cancel use v3 (``POST /v3/order/place``, ``PUT /v3/order/modify``,
  ``DELETE /v3/order/cancel``) on ``order_base_url`` (the api-hft host); everything else
  (order book, details, history, trades, positions, funds, the stream's authorize) uses
  v2 on ``api_base_url``.
* the client id goes to Upstox as the order's ``tag`` and is how an order is found again
  (order history by tag, then the order book).

Outcomes of a placement: a success envelope gives the order id; a definitive refusal (HTTP
4xx other than 401/403/429) comes back as a ``REJECTED`` ``BrokerOrder`` carrying Upstox's
code and message; a timeout, a dropped connection, HTTP 429 or 5xx raise ``AmbiguousOutcome``
and the request is **never sent again** by this class.

Every order-group request (place, modify, cancel) first waits on the shared limiter
``limiter("upstox", account, "order")``, and consecutive ones leave this broker at least
``ORDER_SPACING_S`` apart: the limiter counts when a request leaves, Upstox when it
arrives, and a burst whose first requests open new connections arrives bunched up (the
next second's requests, on warm connections, overtake the window); spacing them keeps the
arrivals inside Upstox's per-second window too. Reads use ``"other"`` and are retried with
backoff on transient failures (``UpstoxRest``). HTTP 401/403 anywhere is ``FeedAuthError``: log in
again and set a fresh ``UPSTOX_ACCESS_TOKEN``. ``account`` is a hash of the token; the
token itself is never logged.

Order updates come from the portfolio stream (``order_stream.OrderStream``, a fresh
authorize code on every reconnect); an order's trades from
``GET /v2/order/trades?order_id=``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import quote

import aiohttp

from algocli.adapters.tracking import TrackingBroker, Uncertain
from algocli.adapters.upstox.http import IST, UpstoxApiError, UpstoxRest, UpstoxUncertain
from algocli.adapters.upstox.order_stream import OrderStream
from algocli.adapters.upstox.parsing import from_instrument_key, to_instrument_key
from algocli.broker.protocol import AmbiguousOutcome, BrokerOrder, BrokerTrade, OrderRequest
from algocli.broker.ratelimit import limiter
from algocli.adapters.upstox.settings import UpstoxSettings
from algocli.data.feed import FeedAuthError
from algocli.data.reconnect import Backoff
from algocli.domain.models import OrderSide, OrderStatus, OrderType, Position
from algocli.errors import BrokerError

__all__ = ["ORDER_SPACING_S", "STATUS_MAP", "UpstoxBroker", "account_key"]

_log = logging.getLogger(__name__)

PLACE_PATH = "/v3/order/place"
MODIFY_PATH = "/v3/order/modify"
CANCEL_PATH = "/v3/order/cancel"
BOOK_PATH = "/v2/order/retrieve-all"
DETAILS_PATH = "/v2/order/details"
HISTORY_PATH = "/v2/order/history"
TRADES_PATH = "/v2/order/trades"
DAY_TRADES_PATH = "/v2/order/trades/get-trades-for-day"
POSITIONS_PATH = "/v2/portfolio/short-term-positions"
FUNDS_PATH = "/v2/user/get-funds-and-margin"
ORDER_SPACING_S = 0.1  # 1 / Upstox's published 10 order requests a second
MAX_TAG = 40
DERIVATIVE_SEGMENTS = frozenset({"NSE_FO", "BSE_FO", "NCD_FO", "BCD_FO", "MCX_FO", "NSE_COM"})

_PENDING, _OPEN, _PARTIAL = OrderStatus.PENDING.value, OrderStatus.OPEN.value, OrderStatus.PARTIALLY_FILLED.value
_FILLED, _CANCELLED, _REJECTED = OrderStatus.FILLED.value, OrderStatus.CANCELLED.value, OrderStatus.REJECTED.value

# Upstox status (lower case, with spaces) → our OrderStatus value
# (https://upstox.com/developer/api-documentation/appendix#order-status)
STATUS_MAP = {
    "put order req received": _PENDING, "validation pending": _PENDING, "open pending": _PENDING,
    "after market order req received": _PENDING, "modify after market order req received": _PENDING,
    "open": _OPEN, "trigger pending": _OPEN, "modify validation pending": _OPEN, "modify pending": _OPEN,
    "modified": _OPEN, "not modified": _OPEN, "cancel pending": _OPEN, "not cancelled": _OPEN,
    "complete": _FILLED, "rejected": _REJECTED, "cancelled": _CANCELLED, "cancelled after market order": _CANCELLED,
}
_PRODUCT_OUT = {"INTRADAY": "I", "CNC": "D", "MARGIN": "D"}


def account_key(token: str) -> str:
    """The rate-limit account of a token: a short hash, so the token never becomes a label."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _ts_ns(text: object) -> int:
    """``YYYY-MM-DD HH:MM:SS`` (IST) → UTC ns; 0 when missing or unreadable."""
    if not isinstance(text, str) or not text:
        return 0
    try:
        moment = datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)
    except ValueError:
        return 0
    return int(moment.timestamp()) * 1_000_000_000


def _num(value: object, default: float = 0.0) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


class _OrderGate:
    """The order group's gate: spacing between requests, then the shared limiter."""

    def __init__(self, shared, spacing: float) -> None:
        self.shared = shared
        self.spacing = spacing
        self._lock = asyncio.Lock()
        self._last = -float("inf")

    async def acquire(self) -> None:
        async with self._lock:
            wait = self._last + self.spacing - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.shared.acquire()
            self._last = time.monotonic()


class UpstoxBroker(TrackingBroker):
    """``Broker`` on Upstox's REST API and portfolio stream.

    Args:
        settings_factory: Returns ``UpstoxSettings`` (token, ``api_base_url``,
            ``order_base_url``); called by ``connect()`` and by each stream reconnect.
        instrument_ids: Our instrument name → Upstox instrument key; ids not in it use
            ``SEGMENT:ID`` → ``SEGMENT|ID``. ``instrument_keys`` is the same map under
            its older name.
        poll_interval: Seconds between order-book polls while orders are working.
        timeout: Seconds per HTTP request (an order request past it is ambiguous).
        stream: Open the portfolio stream (False: the poll alone reports updates).
        retries: Extra attempts for reads after transient failures.
        backoff: Delays between stream reconnects.
    """

    name = "upstox"
    title = "Upstox"
    balance_field = "available_margin"  # the equity section of GET /v2/user/get-funds-and-margin
    margin_field = "used_margin"

    def __init__(self, settings_factory: Callable[[], UpstoxSettings] = UpstoxSettings, *,
                 instrument_ids: Mapping[str, str] | None = None, instrument_keys: Mapping[str, str] | None = None,
                 poll_interval: float = 2.0, timeout: float = 10.0, stream: bool = True, retries: int = 3,
                 backoff: Backoff | None = None) -> None:
        if poll_interval <= 0 or timeout <= 0:
            raise ValueError("poll_interval and timeout must be positive")
        super().__init__(poll_interval=poll_interval)
        self._settings_factory = settings_factory
        self._keys = dict(instrument_ids or instrument_keys or {})
        self._ids = {v: k for k, v in self._keys.items()}
        self.timeout = timeout
        self.use_stream = stream
        self.retries = retries
        self._backoff = backoff
        self.account = ""
        self._session: aiohttp.ClientSession | None = None
        self._rest: UpstoxRest | None = None
        self._order_base = ""
        self._order_limiter = None

    # --- transport ---------------------------------------------------------------------------

    async def _open(self) -> None:
        settings = self._settings_factory()
        token = settings.access_token.get_secret_value()
        if not token:
            raise FeedAuthError("UPSTOX_ACCESS_TOKEN is empty; log in to Upstox and set it in the environment or .env")
        self.account = account_key(token)
        self._order_base = settings.order_base_url.rstrip("/")
        self._order_limiter = _OrderGate(limiter("upstox", self.account, "order"), ORDER_SPACING_S)
        self._session = aiohttp.ClientSession()
        self._rest = UpstoxRest(self._session, settings, retries=self.retries, timeout=self.timeout,
                                backoff=Backoff(0.25, 4.0), limiter=limiter("upstox", self.account, "other"))

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._rest = None

    def _stream(self, on_connect: Callable[[], None]) -> OrderStream | None:
        if not self.use_stream:
            return None
        return OrderStream(self._session, on_update=lambda row: self._incoming(self._order(row)),
                           on_connect=on_connect, settings_factory=self._settings_factory, backoff=self._backoff,
                           request_timeout=self.timeout)

    def _require(self) -> UpstoxRest:
        if self._rest is None:
            raise BrokerError("the Upstox broker is not connected; call connect() first")
        return self._rest

    async def _rows(self, path: str) -> list:
        rows = await self._require().get(path)
        return rows if isinstance(rows, list) else []

    async def _order_book(self) -> list[BrokerOrder]:
        return [o for o in map(self._order, await self._rows(BOOK_PATH)) if o is not None]

    async def _order_trades(self, broker_order_id: str) -> list[BrokerTrade]:
        rows = await self._rows(f"{TRADES_PATH}?order_id={quote(broker_order_id, safe='')}")
        return [t for t in map(self._trade, rows) if t is not None]

    async def _day_trades(self) -> list[BrokerTrade]:
        return [t for t in map(self._trade, await self._rows(DAY_TRADES_PATH)) if t is not None]

    async def _read_order(self, broker_order_id: str) -> BrokerOrder:
        """``GET /v2/order/details``."""
        order = self._order(await self._details(broker_order_id))
        if order is None:
            raise BrokerError(f"Upstox sent an unreadable order for {broker_order_id}")
        return order

    async def _details(self, broker_order_id: str) -> dict:
        row = await self._require().get(f"{DETAILS_PATH}?order_id={quote(broker_order_id, safe='')}")
        if not isinstance(row, dict):
            raise BrokerError(f"Upstox sent no details for order {broker_order_id}")
        return row

    async def _lookup(self, client_id: str) -> BrokerOrder | None:
        """Order history by tag, then the order book; the latest state of the last match."""
        try:
            rows = await self._rows(f"{HISTORY_PATH}?tag={quote(client_id, safe='')}")
        except UpstoxApiError:  # UDAPI100010: no order with that tag
            rows = []
        matches = [r for r in rows if isinstance(r, dict) and r.get("tag") == client_id]
        if not matches:
            matches = [r for r in await self._rows(BOOK_PATH) if isinstance(r, dict) and r.get("tag") == client_id]
        if not matches:
            return None
        order_id = str(matches[-1].get("order_id") or "")
        return self._order([r for r in matches if str(r.get("order_id")) == order_id][-1])

    # --- orders ----------------------------------------------------------------------------

    async def _submit(self, request: OrderRequest) -> BrokerOrder:
        rest = self._require()
        body, problem = self._place_body(request)
        if problem:
            return self._rejected(request, problem)
        try:
            data = await rest.send("POST", PLACE_PATH, body, base_url=self._order_base, limiter=self._order_limiter)
        except UpstoxUncertain as exc:
            raise Uncertain(str(exc)) from None
        except UpstoxApiError as exc:
            return self._rejected(request, str(exc))
        ids = data.get("order_ids") if isinstance(data, dict) else None
        order_id = str(ids[0]) if isinstance(ids, list) and ids else (
            str(data["order_id"]) if isinstance(data, dict) and data.get("order_id") else "")
        if not order_id:
            raise Uncertain(f"Upstox accepted order {request.client_id} without an order id")
        return BrokerOrder(order_id, request.client_id, request.instrument, OrderSide(request.side), request.quantity,
                           OrderType(request.order_type), request.limit_price, _PENDING, product=request.product,
                           updated_ts=time.time_ns())

    def _place_body(self, request: OrderRequest) -> tuple[dict, str]:
        if request.quantity <= 0:
            return {}, "quantity must be positive"
        if not request.client_id or len(request.client_id) > MAX_TAG:
            return {}, f"client id must be 1 to {MAX_TAG} characters (Upstox's tag)"
        try:
            key = to_instrument_key(request.instrument, self._keys)
        except ValueError as exc:
            return {}, str(exc)
        product = _PRODUCT_OUT.get(request.product)
        if product is None:
            return {}, f"product {request.product!r} is not one of {', '.join(_PRODUCT_OUT)}"
        if request.validity not in ("DAY", "IOC"):
            return {}, f"validity {request.validity!r} is not DAY or IOC"
        order_type = OrderType(request.order_type)
        price = 0.0
        if order_type is OrderType.LIMIT:
            if request.limit_price is None or not request.limit_price > 0:
                return {}, "a LIMIT order needs a positive limit_price"
            price = float(request.limit_price)
        return {"quantity": int(request.quantity), "product": product, "validity": request.validity,
                "price": price, "tag": request.client_id, "instrument_token": key,
                "order_type": order_type.value, "transaction_type": OrderSide(request.side).value,
                "disclosed_quantity": 0, "trigger_price": 0, "is_amo": False, "slice": False}, ""

    @staticmethod
    def _rejected(request: OrderRequest, reason: str) -> BrokerOrder:
        return BrokerOrder("", request.client_id, request.instrument, OrderSide(request.side), request.quantity,
                           OrderType(request.order_type), request.limit_price, _REJECTED, reason=reason,
                           product=request.product, updated_ts=time.time_ns())

    async def cancel_order(self, broker_order_id: str) -> BrokerOrder:
        """Cancel a working order and return its state afterwards.

        Raises:
            AmbiguousOutcome: No definitive answer; read the order with ``get_order``.
            UpstoxApiError: Upstox refused (unknown order, already complete, ...).
        """
        await self._order_call("DELETE", f"{CANCEL_PATH}?order_id={quote(broker_order_id, safe='')}", None,
                               broker_order_id)
        return await self.get_order(broker_order_id)

    async def modify_order(self, broker_order_id: str, quantity: int | None = None,
                           price: float | None = None) -> BrokerOrder:
        """Change a working order's quantity and/or limit price; returns its state afterwards.

        Raises:
            AmbiguousOutcome: No definitive answer; read the order with ``get_order``.
            UpstoxApiError: Upstox refused the change.
        """
        row = await self._details(broker_order_id)
        body = {"order_id": broker_order_id,
                "quantity": int(quantity) if quantity is not None else int(_num(row.get("quantity"))),
                "validity": row.get("validity") or "DAY",
                "price": float(price) if price is not None else _num(row.get("price")),
                "order_type": row.get("order_type") or "LIMIT",
                "disclosed_quantity": 0, "trigger_price": _num(row.get("trigger_price"))}
        await self._order_call("PUT", MODIFY_PATH, body, broker_order_id)
        return await self.get_order(broker_order_id)

    async def _order_call(self, method: str, path: str, body: dict | None, broker_order_id: str) -> None:
        try:
            await self._require().send(method, path, body, base_url=self._order_base, limiter=self._order_limiter)
        except UpstoxUncertain as exc:
            self._wake_poll()
            raise AmbiguousOutcome(f"{exc}; read order {broker_order_id} before acting again") from None

    # --- reads -----------------------------------------------------------------------------

    async def get_orders(self) -> list[BrokerOrder]:
        return await self._order_book()

    async def get_trades(self) -> list[BrokerTrade]:
        """Today's trades, one per ``trade_id``."""
        out: dict[str, BrokerTrade] = {}
        for trade in await self._day_trades():
            out.setdefault(trade.trade_id, trade)
        return list(out.values())

    async def get_positions(self) -> list[Position]:
        """Net positions per instrument (products added together), from short-term positions."""
        merged: dict[str, list[dict]] = {}
        for row in await self._rows(POSITIONS_PATH):
            if isinstance(row, dict) and row.get("instrument_token"):
                merged.setdefault(self._instrument(str(row["instrument_token"])), []).append(row)
        out = []
        for instrument, group in merged.items():
            qty = sum(int(_num(r.get("quantity"))) for r in group)
            same_side = [r for r in group if qty and int(_num(r.get("quantity"))) * qty > 0]
            weight = sum(abs(int(_num(r.get("quantity")))) for r in same_side)
            avg = (sum(abs(int(_num(r.get("quantity")))) * _num(r.get("average_price")) for r in same_side) / weight
                   if weight else 0.0)
            out.append(Position(instrument, qty, avg, sum(_num(r.get("realised")) for r in group),
                                _num(group[-1].get("last_price"))))
        return out

    async def _funds(self) -> dict:
        data = await self._require().get(f"{FUNDS_PATH}?segment=SEC")
        equity = data.get("equity") if isinstance(data, dict) else None
        if not isinstance(equity, dict):
            raise BrokerError("Upstox funds answer has no equity section")
        return equity

    # --- parsing --------------------------------------------------------------------------

    def _instrument(self, key: str) -> str:
        return self._ids.get(key) or from_instrument_key(key)

    def _product(self, code: object, key: str) -> str:
        if code == "I":
            return "INTRADAY"
        if code == "D":
            return "MARGIN" if key.partition("|")[0] in DERIVATIVE_SEGMENTS else "CNC"
        if code == "MTF":
            return "MARGIN"
        return str(code or "")

    def _order(self, row: object) -> BrokerOrder | None:
        """An Upstox order row (book, details, history or stream) as a ``BrokerOrder``; None if unusable."""
        if not isinstance(row, dict) or not row.get("order_id"):
            return None
        try:
            raw_status = str(row.get("status") or "").strip().lower()
            status = STATUS_MAP.get(raw_status)
            if status is None:
                _log.warning("Upstox order %s has an unknown status %r; treated as working", row["order_id"],
                             raw_status)
                status = _OPEN
            filled = int(_num(row.get("filled_quantity")))
            if status == _OPEN and filled > 0:
                status = _PARTIAL
            kind = str(row.get("order_type") or "MARKET").upper()
            order_type = OrderType.MARKET if kind in ("MARKET", "SL-M") else OrderType.LIMIT
            key = str(row.get("instrument_token") or row.get("instrument_key") or "")
            tag = row.get("tag")
            return BrokerOrder(
                str(row["order_id"]), str(tag) if tag else None, self._instrument(key),
                OrderSide(str(row.get("transaction_type")).upper()), int(_num(row.get("quantity"))), order_type,
                _num(row.get("price")) if order_type is OrderType.LIMIT else None, status, filled,
                _num(row.get("average_price")), str(row.get("status_message") or ""),
                self._product(row.get("product"), key),
                _ts_ns(row.get("exchange_timestamp")) or _ts_ns(row.get("order_timestamp")))
        except (ValueError, TypeError) as exc:
            _log.warning("skipping an unreadable Upstox order row for %s: %s", row.get("order_id"), exc)
            return None

    def _trade(self, row: object) -> BrokerTrade | None:
        if not isinstance(row, dict) or not row.get("trade_id") or not row.get("order_id"):
            return None
        try:
            return BrokerTrade(str(row["trade_id"]), str(row["order_id"]),
                               self._instrument(str(row.get("instrument_token") or "")),
                               OrderSide(str(row.get("transaction_type")).upper()), int(_num(row.get("quantity"))),
                               _num(row.get("average_price")),
                               _ts_ns(row.get("exchange_timestamp")) or _ts_ns(row.get("order_timestamp")))
        except (ValueError, TypeError) as exc:
            _log.warning("skipping an unreadable Upstox trade row %s: %s", row.get("trade_id"), exc)
            return None
