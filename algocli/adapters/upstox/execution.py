"""Upstox order entry, order tracking and fills: the ``Broker`` for live trading on Upstox.

Wire protocol (brokers.md B1, B5, B6, B8):

* place, modify and cancel use v3 (``POST /v3/order/place``, ``PUT /v3/order/modify``,
  ``DELETE /v3/order/cancel``) on ``order_base_url`` (the api-hft host); everything else
  (order book, details, history, trades, positions, funds, the stream's authorize) uses
  v2 on ``api_base_url``.
* the client id goes to Upstox as the order's ``tag`` and is how an order is found again.

Outcomes of a placement (anchors B4): a success envelope gives the order id; a definitive
refusal (HTTP 4xx other than 401/403/429) comes back as a ``REJECTED`` ``BrokerOrder``
carrying Upstox's code and message; a timeout, a dropped connection, HTTP 429 or 5xx
raise ``AmbiguousOutcome`` and the request is **never sent again** by this class. The
client id is then looked up by tag (order history, then the order book) on every poll
until the order shows up or ``UNRESOLVED_GIVE_UP_S`` passes, and ``find_order`` does the
same on demand. ``place_order`` is idempotent per client id within one broker: a client
id it already knows returns the known order, and one whose outcome was ambiguous is looked
up first and only sent again when Upstox has no order with that tag (after a 429 nothing
was placed, so the engine's explicit re-place sends exactly one order).

Every order-group request (place, modify, cancel) first waits on the shared limiter
``limiter("upstox", account, "order")``, and consecutive ones leave this broker at least
``ORDER_SPACING_S`` apart: the limiter counts when a request leaves, Upstox when it
arrives, and a burst whose first requests open new connections arrives bunched up (the
next second's requests, on warm connections, overtake the window); spacing them keeps the
arrivals inside Upstox's per-second window too. Reads use ``"other"`` and are retried with
backoff on transient failures (``UpstoxRest``). HTTP 401/403 anywhere is ``FeedAuthError``: log in
again and set a fresh ``UPSTOX_ACCESS_TOKEN``. ``account`` is a hash of the token; the
token itself is never logged.

Order updates and fills (anchors B9):

* the portfolio stream (``order_stream.OrderStream``, a fresh authorize code on every
  reconnect, jittered backoff) delivers one message per status transition;
* a REST poll every ``poll_interval`` seconds reads the order book while any order is
  working, owes fills or is unresolved, and right after every stream (re)connect, so an
  update lost with a dropped stream still arrives;
* when an order reports more filled quantity than has been booked, its trades are read
  from ``GET /v2/order/trades?order_id=`` and each new ``trade_id`` goes to ``on_fill``
  exactly once, whatever the order or repetition of updates. A repeated trade id with a
  different quantity or price, or a trade that would overfill the order, is logged as an
  error, counted in ``conflicting_fills`` and not delivered. Fills are delivered before
  the order update that reported them; if the trades are not listed yet, the update goes
  out first and the fills follow on a later poll.
* order updates go to ``on_order_update`` whenever an order's status, quantities, prices or
  reason change; updates older than what is known (a lower stage, less filled) are ignored.

Trades that existed before ``connect()`` are not delivered to ``on_fill`` (reconciliation
reads them with ``get_trades()``); working orders found at connect are tracked from there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

import aiohttp

from algocli.adapters.upstox.http import IST, UpstoxApiError, UpstoxRest, UpstoxUncertain
from algocli.adapters.upstox.order_stream import OrderStream
from algocli.adapters.upstox.parsing import from_instrument_key, to_instrument_key
from algocli.broker.protocol import AmbiguousOutcome, BrokerOrder, BrokerTrade, CallbackSet, OrderRequest
from algocli.broker.ratelimit import limiter
from algocli.config.settings import UpstoxSettings
from algocli.data.feed import FeedAuthError
from algocli.data.reconnect import Backoff
from algocli.domain.models import OrderSide, OrderStatus, OrderType, Position
from algocli.errors import BrokerError

__all__ = ["ORDER_SPACING_S", "STATUS_MAP", "UNRESOLVED_GIVE_UP_S", "UpstoxBroker", "account_key"]

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
UNRESOLVED_GIVE_UP_S = 120.0
ORDER_SPACING_S = 0.1  # 1 / Upstox's published 10 order requests a second
MAX_TAG = 40
DERIVATIVE_SEGMENTS = frozenset({"NSE_FO", "BSE_FO", "NCD_FO", "BCD_FO", "MCX_FO", "NSE_COM"})

_PENDING, _OPEN, _PARTIAL = OrderStatus.PENDING.value, OrderStatus.OPEN.value, OrderStatus.PARTIALLY_FILLED.value
_FILLED, _CANCELLED, _REJECTED = OrderStatus.FILLED.value, OrderStatus.CANCELLED.value, OrderStatus.REJECTED.value

# Upstox status (lower case, with spaces) → our OrderStatus value (brokers.md B5)
STATUS_MAP = {
    "put order req received": _PENDING, "validation pending": _PENDING, "open pending": _PENDING,
    "after market order req received": _PENDING, "modify after market order req received": _PENDING,
    "open": _OPEN, "trigger pending": _OPEN, "modify validation pending": _OPEN, "modify pending": _OPEN,
    "modified": _OPEN, "not modified": _OPEN, "cancel pending": _OPEN, "not cancelled": _OPEN,
    "complete": _FILLED, "rejected": _REJECTED, "cancelled": _CANCELLED, "cancelled after market order": _CANCELLED,
}
_RANK = {_PENDING: 0, _OPEN: 1, _PARTIAL: 1, _FILLED: 2, _CANCELLED: 2, _REJECTED: 2}
_TERMINAL = frozenset({_FILLED, _CANCELLED, _REJECTED})
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


@dataclass
class _Tracked:
    """What this broker knows about one Upstox order."""

    order: BrokerOrder
    booked: int = 0  # quantity of fills delivered to on_fill (or known before connect)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def working(self) -> bool:
        return self.order.status not in _TERMINAL

    @property
    def owed(self) -> bool:
        return self.order.filled_quantity > self.booked


class UpstoxBroker:
    """``Broker`` on Upstox's REST API and portfolio stream.

    Args:
        settings_factory: Returns ``UpstoxSettings`` (token, ``api_base_url``,
            ``order_base_url``); called by ``connect()`` and by each stream reconnect.
        instrument_keys: Our instrument id → Upstox instrument key; ids not in it use
            ``SEGMENT:ID`` → ``SEGMENT|ID``.
        poll_interval: Seconds between order-book polls while orders are working.
        timeout: Seconds per HTTP request (an order request past it is ambiguous).
        stream: Open the portfolio stream (False: the poll alone reports updates).
        retries: Extra attempts for reads after transient failures.
        backoff: Delays between stream reconnects.
    """

    name = "upstox"

    def __init__(self, settings_factory: Callable[[], UpstoxSettings] = UpstoxSettings, *,
                 instrument_keys: Mapping[str, str] | None = None, poll_interval: float = 2.0,
                 timeout: float = 10.0, stream: bool = True, retries: int = 3,
                 backoff: Backoff | None = None) -> None:
        if poll_interval <= 0 or timeout <= 0:
            raise ValueError("poll_interval and timeout must be positive")
        self._settings_factory = settings_factory
        self._keys = dict(instrument_keys or {})
        self._ids = {v: k for k, v in self._keys.items()}
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.use_stream = stream
        self.retries = retries
        self._backoff = backoff
        self.callbacks = CallbackSet()
        self.stream: OrderStream | None = None
        self.account = ""
        self.auth_error: FeedAuthError | None = None
        self.fills_delivered = 0
        self.duplicate_fills = 0  # repeated trade ids with the same content (dropped)
        self.conflicting_fills = 0  # repeated trade ids with other content, or overfills (dropped, logged)
        self.polls = 0
        self._session: aiohttp.ClientSession | None = None
        self._rest: UpstoxRest | None = None
        self._order_base = ""
        self._order_limiter = None
        self._orders: dict[str, _Tracked] = {}
        self._by_client: dict[str, str] = {}
        self._inflight: set[str] = set()
        self._unresolved: dict[str, float] = {}  # client id → monotonic time its outcome became unknown
        self._trades: dict[str, BrokerTrade] = {}
        self._inbox: asyncio.Queue | None = None
        self._tasks: list[asyncio.Task] = []
        self._wake: asyncio.Event | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Check the token, learn today's orders and trades, start the stream and the poll.

        Raises:
            FeedAuthError: The token is empty or refused.
            BrokerError: Upstox could not be reached.
        """
        if self._session is not None:
            return
        settings = self._settings_factory()
        token = settings.access_token.get_secret_value()
        if not token:
            raise FeedAuthError("UPSTOX_ACCESS_TOKEN is empty; log in to Upstox and set it in the environment or .env")
        self.account = account_key(token)
        self._order_base = settings.order_base_url.rstrip("/")
        self._order_limiter = _OrderGate(limiter("upstox", self.account, "order"), ORDER_SPACING_S)
        session = aiohttp.ClientSession()
        self._rest = UpstoxRest(session, settings, retries=self.retries, timeout=self.timeout,
                                backoff=Backoff(0.25, 4.0), limiter=limiter("upstox", self.account, "other"))
        try:
            book = await self._rest.get(BOOK_PATH)
            trades = await self._rest.get(DAY_TRADES_PATH)
        except BaseException:
            await session.close()
            self._rest = None
            raise
        self._session = session
        for row in trades if isinstance(trades, list) else []:
            trade = self._trade(row)
            if trade is not None:
                self._trades.setdefault(trade.trade_id, trade)
        for row in book if isinstance(book, list) else []:
            order = self._order(row)
            if order is not None:
                self._orders[order.broker_order_id] = _Tracked(order, booked=order.filled_quantity)
                if order.client_id:
                    self._by_client[order.client_id] = order.broker_order_id
        self._inbox = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks = [asyncio.create_task(self._process(), name="upstox-order-updates"),
                       asyncio.create_task(self._poll_loop(), name="upstox-order-poll")]
        if self.use_stream:
            self.stream = OrderStream(session, on_update=self._inbox.put_nowait, on_connect=self._wake.set,
                                      settings_factory=self._settings_factory, backoff=self._backoff,
                                      request_timeout=self.timeout)
            self._tasks.append(asyncio.create_task(self._run_stream(self.stream), name="upstox-order-stream"))

    async def disconnect(self) -> None:
        """Stop the stream and the poll and close the HTTP session."""
        if self.stream is not None:
            self.stream.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._rest = None

    def on_order_update(self, callback: Callable[[BrokerOrder], None]) -> None:
        self.callbacks.order_updates.append(callback)

    def on_fill(self, callback: Callable[[BrokerTrade], None]) -> None:
        self.callbacks.fills.append(callback)

    # --- orders ---------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> BrokerOrder:
        """Send one order tagged with ``request.client_id``; never resent here.

        Returns:
            The order as known (``PENDING`` right after acceptance; later states if the
            stream overtook the answer), or ``REJECTED`` with the reason when Upstox or a
            local check refused it (``broker_order_id`` is then empty).

        Raises:
            AmbiguousOutcome: No definitive answer; look the order up with ``find_order``.
            FeedAuthError: The token was refused (nothing was placed).
        """
        rest = self._require()
        cid = request.client_id
        known = self._by_client.get(cid)
        if known is not None and known in self._orders:
            return dataclasses.replace(self._orders[known].order)
        if cid in self._inflight:
            raise AmbiguousOutcome(f"an Upstox order with client id {cid} is still being placed; "
                                   "wait for its answer or look it up with find_order")
        if cid in self._unresolved:
            found = await self.find_order(cid)
            if found is not None:
                return found
        body, problem = self._place_body(request)
        if problem:
            return self._rejected(request, problem)
        self._inflight.add(cid)
        try:
            data = await rest.send("POST", PLACE_PATH, body, base_url=self._order_base, limiter=self._order_limiter)
        except UpstoxUncertain as exc:
            self._unresolved[cid] = time.monotonic()
            self._wake.set()
            raise AmbiguousOutcome(f"{exc}; order {cid} may exist: it is looked up by tag, never resent") from None
        except UpstoxApiError as exc:
            self._unresolved.pop(cid, None)
            return self._rejected(request, str(exc))
        finally:
            self._inflight.discard(cid)
        ids = data.get("order_ids") if isinstance(data, dict) else None
        order_id = str(ids[0]) if isinstance(ids, list) and ids else (
            str(data["order_id"]) if isinstance(data, dict) and data.get("order_id") else "")
        if not order_id:
            self._unresolved[cid] = time.monotonic()
            self._wake.set()
            raise AmbiguousOutcome(f"Upstox accepted order {cid} without an order id; it is looked up by tag")
        self._unresolved.pop(cid, None)
        tracked = self._orders.get(order_id)
        if tracked is None:
            order = BrokerOrder(order_id, cid, request.instrument, OrderSide(request.side), request.quantity,
                                OrderType(request.order_type), request.limit_price, _PENDING,
                                product=request.product, updated_ts=time.time_ns())
            tracked = self._orders[order_id] = _Tracked(order)
        self._by_client[cid] = order_id
        return dataclasses.replace(tracked.order)

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
        rest = self._require()
        try:
            await rest.send("DELETE", f"{CANCEL_PATH}?order_id={quote(broker_order_id, safe='')}",
                            base_url=self._order_base, limiter=self._order_limiter)
        except UpstoxUncertain as exc:
            self._wake.set()
            raise AmbiguousOutcome(f"{exc}; read order {broker_order_id} before acting again") from None
        return await self.get_order(broker_order_id)

    async def modify_order(self, broker_order_id: str, quantity: int | None = None,
                           price: float | None = None) -> BrokerOrder:
        """Change a working order's quantity and/or limit price; returns its state afterwards.

        Raises:
            AmbiguousOutcome: No definitive answer; read the order with ``get_order``.
            UpstoxApiError: Upstox refused the change.
        """
        rest = self._require()
        row = await self._details(broker_order_id)
        body = {"order_id": broker_order_id,
                "quantity": int(quantity) if quantity is not None else int(_num(row.get("quantity"))),
                "validity": row.get("validity") or "DAY",
                "price": float(price) if price is not None else _num(row.get("price")),
                "order_type": row.get("order_type") or "LIMIT",
                "disclosed_quantity": 0, "trigger_price": _num(row.get("trigger_price"))}
        try:
            await rest.send("PUT", MODIFY_PATH, body, base_url=self._order_base, limiter=self._order_limiter)
        except UpstoxUncertain as exc:
            self._wake.set()
            raise AmbiguousOutcome(f"{exc}; read order {broker_order_id} before acting again") from None
        return await self.get_order(broker_order_id)

    async def get_order(self, broker_order_id: str) -> BrokerOrder:
        """The order's latest state (``GET /v2/order/details``); tracked orders are updated too."""
        row = await self._details(broker_order_id)
        if broker_order_id in self._orders:
            await self._apply(row)
            return dataclasses.replace(self._orders[broker_order_id].order)
        order = self._order(row)
        if order is None:
            raise BrokerError(f"Upstox sent an unreadable order for {broker_order_id}")
        return order

    async def _details(self, broker_order_id: str) -> dict:
        row = await self._require().get(f"{DETAILS_PATH}?order_id={quote(broker_order_id, safe='')}")
        if not isinstance(row, dict):
            raise BrokerError(f"Upstox sent no details for order {broker_order_id}")
        return row

    async def find_order(self, client_id: str) -> BrokerOrder | None:
        """The order tagged ``client_id`` (order history by tag, then the order book), or None.

        A found order is tracked from then on (updates and fills are delivered).
        """
        rest = self._require()
        known = self._by_client.get(client_id)
        if known is not None:
            return await self.get_order(known)
        try:
            rows = await rest.get(f"{HISTORY_PATH}?tag={quote(client_id, safe='')}")
        except UpstoxApiError:  # UDAPI100010: no order with that tag
            rows = None
        matches = [r for r in rows if isinstance(r, dict) and r.get("tag") == client_id] if isinstance(
            rows, list) else []
        if not matches:
            book = await rest.get(BOOK_PATH)
            matches = [r for r in book if isinstance(r, dict) and r.get("tag") == client_id] if isinstance(
                book, list) else []
        if not matches:
            return None
        order_id = str(matches[-1].get("order_id") or "")
        latest = [r for r in matches if str(r.get("order_id")) == order_id][-1]
        await self._apply(latest)
        tracked = self._orders.get(order_id)
        return dataclasses.replace(tracked.order) if tracked is not None else self._order(latest)

    async def get_orders(self) -> list[BrokerOrder]:
        rows = await self._require().get(BOOK_PATH)
        return [o for o in (self._order(r) for r in (rows if isinstance(rows, list) else [])) if o is not None]

    async def get_trades(self) -> list[BrokerTrade]:
        """Today's trades, one per ``trade_id``."""
        rows = await self._require().get(DAY_TRADES_PATH)
        out: dict[str, BrokerTrade] = {}
        for row in rows if isinstance(rows, list) else []:
            trade = self._trade(row)
            if trade is not None:
                out.setdefault(trade.trade_id, trade)
        return list(out.values())

    # --- account --------------------------------------------------------------------------

    async def get_positions(self) -> list[Position]:
        """Net positions per instrument (products added together), from short-term positions."""
        rows = await self._require().get(POSITIONS_PATH)
        merged: dict[str, list[dict]] = {}
        for row in rows if isinstance(rows, list) else []:
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

    async def get_position(self, instrument: str) -> Position | None:
        for position in await self.get_positions():
            if position.instrument == instrument:
                return position
        return None

    async def _funds(self) -> dict:
        data = await self._require().get(f"{FUNDS_PATH}?segment=SEC")
        equity = data.get("equity") if isinstance(data, dict) else None
        if not isinstance(equity, dict):
            raise BrokerError("Upstox funds answer has no equity section")
        return equity

    async def get_balance(self) -> float:
        """Equity ``available_margin``."""
        return _num((await self._funds()).get("available_margin"))

    async def get_margin_used(self) -> float:
        """Equity ``used_margin``."""
        return _num((await self._funds()).get("used_margin"))

    # --- tracking -------------------------------------------------------------------------

    def _require(self) -> UpstoxRest:
        if self._rest is None:
            raise BrokerError("the Upstox broker is not connected; call connect() first")
        return self._rest

    async def _run_stream(self, stream: OrderStream) -> None:
        try:
            await stream.run()
        except FeedAuthError as exc:
            self.auth_error = exc

    async def _process(self) -> None:
        """Apply stream updates one at a time, in arrival order."""
        assert self._inbox is not None
        while True:
            row = await self._inbox.get()
            try:
                await self._apply(row)
            except FeedAuthError as exc:
                self.auth_error = exc
                _log.error("Upstox order update not applied: %s", exc)
            except (BrokerError, aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError) as exc:
                _log.warning("Upstox order update for %s not applied yet (%s); the poll retries",
                             row.get("order_id"), exc)
                self._wake.set()

    def _needs_poll(self) -> bool:
        return bool(self._unresolved) or any(t.working or t.owed for t in self._orders.values())

    async def _poll_loop(self) -> None:
        assert self._wake is not None
        while True:
            try:
                async with asyncio.timeout(self.poll_interval):  # not wait_for: on 3.11 it can swallow
                    await self._wake.wait()  # disconnect()'s cancel when the wake-up lands in the same turn
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if not self._needs_poll():
                continue
            try:
                await self.reconcile()
            except FeedAuthError as exc:
                self.auth_error = exc
                _log.error("Upstox order poll stopped: %s", exc)
                return
            except (BrokerError, aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError) as exc:
                _log.warning("Upstox order poll failed (%s); trying again in %.1fs", exc, self.poll_interval)

    async def reconcile(self) -> None:
        """Read the order book once and apply it to working, owing and unresolved orders."""
        rows = await self._require().get(BOOK_PATH)
        self.polls += 1
        now = time.monotonic()
        for cid, since in list(self._unresolved.items()):
            if now - since > UNRESOLVED_GIVE_UP_S:
                self._unresolved.pop(cid, None)
                _log.warning("Upstox order %s did not appear within %.0fs of an ambiguous answer; "
                             "no longer looking for it", cid, UNRESOLVED_GIVE_UP_S)
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict):
                continue
            tracked = self._orders.get(str(row.get("order_id") or ""))
            if tracked is not None:
                if tracked.working or tracked.owed:
                    await self._apply(row)
            elif row.get("tag") and row["tag"] in self._unresolved:
                await self._apply(row)

    async def _apply(self, row: dict) -> None:
        """Merge one order row (stream, poll or read) into what is known; deliver new fills, then the update."""
        new = self._order(row)
        if new is None:
            return
        order_id = new.broker_order_id
        tracked = self._orders.get(order_id)
        fresh = tracked is None
        if fresh:
            tracked = self._orders[order_id] = _Tracked(new)
            if new.client_id:
                self._by_client.setdefault(new.client_id, order_id)
                self._unresolved.pop(new.client_id, None)
        async with tracked.lock:
            changed = fresh
            if not fresh:
                old = tracked.order
                if _RANK[new.status] < _RANK[old.status] or new.filled_quantity < old.filled_quantity:
                    return  # older than what is known
                if new.client_id is None:
                    new.client_id = old.client_id
                changed = (new.status, new.filled_quantity, new.average_price, new.quantity, new.limit_price,
                           new.reason) != (old.status, old.filled_quantity, old.average_price, old.quantity,
                                           old.limit_price, old.reason)
                if changed:
                    tracked.order = new
            if tracked.owed:
                await self._collect_fills(tracked)
            if changed:
                self._emit(dataclasses.replace(tracked.order))

    async def _collect_fills(self, tracked: _Tracked) -> None:
        order = tracked.order
        rows = await self._require().get(f"{TRADES_PATH}?order_id={quote(order.broker_order_id, safe='')}")
        for row in rows if isinstance(rows, list) else []:
            trade = self._trade(row)
            if trade is None or trade.broker_order_id != order.broker_order_id:
                continue
            prior = self._trades.get(trade.trade_id)
            if prior is not None:
                if (prior.quantity, prior.price) != (trade.quantity, trade.price):
                    self.conflicting_fills += 1
                    _log.error("Upstox trade %s of order %s came again with quantity %d at %.4f (booked: %d at "
                               "%.4f); the booked one stands", trade.trade_id, order.broker_order_id,
                               trade.quantity, trade.price, prior.quantity, prior.price)
                else:
                    self.duplicate_fills += 1
                continue
            if tracked.booked + trade.quantity > order.quantity:
                self.conflicting_fills += 1
                _log.error("Upstox trade %s would overfill order %s (%d booked of %d, trade %d); not booked",
                           trade.trade_id, order.broker_order_id, tracked.booked, order.quantity, trade.quantity)
                continue
            self._trades[trade.trade_id] = trade
            tracked.booked += trade.quantity
            self.fills_delivered += 1
            try:
                self.callbacks.fill(trade)
            except Exception:  # a callback's bug must not stop order tracking; the fill stays booked once
                _log.exception("on_fill callback failed for Upstox trade %s", trade.trade_id)

    def _emit(self, order: BrokerOrder) -> None:
        try:
            self.callbacks.order(order)
        except Exception:
            _log.exception("on_order_update callback failed for Upstox order %s", order.broker_order_id)

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
