"""Order tracking for every live broker: one set of rules, whatever the broker's transport.

A broker adapter subclasses ``TrackingBroker`` and writes only its transport: how an order
is sent (``_submit``), read (``_read_order``), looked up by client id (``_lookup``), how the
order book and an order's trades are read, and which stream reports order updates. The
rules below are the same for every broker.

**Client ids.** Every order carries the request's client id (Dhan's ``correlationId``,
Upstox's ``tag``). ``place_order`` is idempotent per client id: a client id this broker
already knows returns the known order; one still being placed raises ``AmbiguousOutcome``;
one whose outcome was ambiguous is looked up first, and sent again only when the broker has
no order with it (so after an HTTP 429, where nothing was placed, the caller's explicit
re-place sends exactly one order).

**Ambiguous outcomes.** A placement that got no definitive answer (timeout, dropped
connection, HTTP 429 or 5xx, an acceptance without an order id) raises ``AmbiguousOutcome``
and is never resent here. Its client id is looked up in the order book on every poll; it is
given up (logged) after ``GIVE_UP_POLLS`` polls that did not find it, and at once when
``find_order`` says the broker has no such order.

**Updates.** Every change of a followed order (status, filled quantity, average price,
quantity, limit price, reason) goes to ``on_order_update`` once, however it was learned:
the stream, the poll, ``get_order``, ``find_order``, a modify or cancel answer. What
``place_order`` returned is known to its caller and is not repeated. Updates older than
what is known are dropped (a terminal order never goes back to working, a filled quantity
never shrinks, a stage never goes back), and counted as stale when they came on the stream.

**Fills, exactly once.** When an order reports more filled quantity than has been booked,
its trades are read and each new trade id goes to ``on_fill`` once for the life of the
broker. A trade id seen again with the same content is a duplicate (counted, dropped); with
another quantity or price, or a trade that would book more than the order's quantity (an
overfill), it is an error (logged, counted in ``conflicting_fills``, never delivered). Fills
go out before the update that reported them; if the trade book does not list them yet, the
update goes out first and the fills follow on a later poll. Trades already in the trade book
at ``connect()`` are never delivered (reconciliation reads them with ``get_trades()``), and
the working orders in the order book at ``connect()`` are followed from then on.

**Early updates.** While ``place_order`` for a client id is in flight, updates and fills of
the order carrying it are held and delivered in arrival order on the event-loop turn after
``place_order`` returns or raises, so the caller sees the acknowledgement first.

**Poll fallback.** Every ``poll_interval`` seconds, and right after each stream
(re)connection, if some followed order is working, owes fills, or an ambiguous client id is
unresolved, the order book is read and applied, and owed trades are read. A dropped stream or
a lost message still yields the update and the fill. A refused token stops neither the poll
nor the stream here: it is logged and kept in ``auth_error`` (a renewed token is picked up
by brokers that read their settings per request).

Callbacks that raise are logged; they never stop tracking or the other callbacks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace

import aiohttp

from algocli.broker.protocol import AmbiguousOutcome, BrokerOrder, BrokerTrade, CallbackSet, OrderRequest
from algocli.data.feed import FeedAuthError
from algocli.domain.models import OrderStatus, Position
from algocli.errors import BrokerError

__all__ = ["GIVE_UP_POLLS", "TERMINAL", "TrackingBroker", "TrackingStats", "Uncertain", "advances"]

_log = logging.getLogger(__name__)

GIVE_UP_POLLS = 60  # an ambiguous client id not found after this many polls (2 minutes at 2 s) is given up
TERMINAL = frozenset(s.value for s in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED,
                                       OrderStatus.EXPIRED))
_STAGE = {OrderStatus.PENDING.value: 0, OrderStatus.OPEN.value: 1, OrderStatus.PARTIALLY_FILLED.value: 2}
_READ_ERRORS = (BrokerError, aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError)


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


class Uncertain(Exception):
    """Raised by ``_submit``: the placement may or may not have reached the broker."""


def advances(old: BrokerOrder, new: BrokerOrder) -> bool:
    """True when ``new`` tells something ``old`` did not, and is not older than it."""
    if old.status in TERMINAL and new.status not in TERMINAL:
        return False
    if new.status not in TERMINAL and _STAGE.get(new.status, 1) < _STAGE.get(old.status, 1):
        return False
    if new.filled_quantity < old.filled_quantity:
        return False
    return _facts(_merge(old, new)) != _facts(old)


def _facts(order: BrokerOrder) -> tuple:
    return (order.status, order.filled_quantity, order.average_price, order.quantity, order.limit_price,
            order.reason)


def _merge(old: BrokerOrder, new: BrokerOrder) -> BrokerOrder:
    return replace(new, client_id=new.client_id or old.client_id, reason=new.reason or old.reason,
                   updated_ts=new.updated_ts or old.updated_ts)


@dataclass
class TrackingStats:
    """Counters for status output and tests."""

    placed: int = 0
    rejected: int = 0
    ambiguous: int = 0
    alerts: int = 0  # order updates received on the stream
    stale_alerts: int = 0  # stream updates repeated or older than what was known
    polls: int = 0
    fills: int = 0
    fills_by_source: dict[str, int] = field(default_factory=dict)  # stream / poll / read
    duplicate_fills: int = 0  # a trade id seen again with the same content (dropped)
    conflicting_fills: int = 0  # a trade id seen again with other content, or an overfill (dropped, logged)
    held: int = 0  # updates and fills held while their place_order was in flight
    given_up: int = 0  # ambiguous client ids no longer looked for


@dataclass
class _Tracked:
    """What the broker knows about one order."""

    order: BrokerOrder
    booked: int = 0  # quantity of fills delivered to on_fill (or in the trade book at connect)
    validity: str = "DAY"
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def working(self) -> bool:
        return self.order.status not in TERMINAL

    @property
    def owed(self) -> bool:
        return self.order.filled_quantity > self.booked


class TrackingBroker:
    """The ``Broker`` protocol's order tracking, on a transport written by a subclass.

    Args:
        poll_interval: Seconds between polls of the order book (the stream's fallback).

    Subclasses set ``name``/``title`` and write the ``_open``, ``_close``, ``_submit``,
    ``_read_order``, ``_lookup``, ``_order_book``, ``_order_trades``, ``_day_trades`` and
    ``_stream`` hooks; stream messages go to ``_incoming``.
    """

    name = ""
    title = ""
    balance_field = ""  # the key of ``_funds()`` holding the cash available to trade
    margin_field = ""  # the key of ``_funds()`` holding the margin in use

    def __init__(self, *, poll_interval: float = 2.0) -> None:
        self.poll_interval = poll_interval
        self.stats = TrackingStats()
        self.stream = None
        self.auth_error: FeedAuthError | None = None
        self._callbacks = CallbackSet()
        self._connected = False
        self._orders: dict[str, _Tracked] = {}
        self._by_client: dict[str, str] = {}
        self._inflight: set[str] = set()
        self._unresolved: dict[str, int] = {}  # client id → polls that did not find it
        self._seen: dict[str, BrokerTrade] = {}  # trade id → the trade, once booked (or there at connect)
        self._holding: dict[str, list[tuple[str, object]]] = {}
        self._hold_count: dict[str, int] = {}
        self._tasks: set[asyncio.Task] = set()
        self._inbox: asyncio.Queue | None = None
        self._wake: asyncio.Event | None = None

    # --- transport hooks ----------------------------------------------------------------------

    async def _open(self) -> None:
        """Check credentials and open the HTTP session."""
        raise NotImplementedError

    async def _close(self) -> None:
        """Close what ``_open`` opened."""
        raise NotImplementedError

    async def _submit(self, request: OrderRequest) -> BrokerOrder:
        """Send one placement: the accepted order, or ``REJECTED`` with an empty id; ``Uncertain``."""
        raise NotImplementedError

    async def _read_order(self, broker_order_id: str) -> BrokerOrder:
        raise NotImplementedError

    async def _lookup(self, client_id: str) -> BrokerOrder | None:
        """The order carrying ``client_id`` at the broker, or None."""
        raise NotImplementedError

    async def _order_book(self) -> list[BrokerOrder]:
        raise NotImplementedError

    async def _order_trades(self, broker_order_id: str) -> list[BrokerTrade]:
        raise NotImplementedError

    async def _day_trades(self) -> list[BrokerTrade]:
        raise NotImplementedError

    async def _funds(self) -> dict:
        """The account's funds, as the broker names them."""
        raise NotImplementedError

    async def get_positions(self) -> list[Position]:
        raise NotImplementedError

    def _stream(self, on_connect: Callable[[], None]):
        """The order-update stream (an object with ``run()`` and ``stop()``), or None."""
        return None

    # --- life cycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the session, note the trade book as already seen, follow working orders,
        start the stream and the poll.

        Raises:
            FeedAuthError: The credentials are empty or refused.
            BrokerError: The broker could not be reached.
        """
        if self._connected:
            return
        await self._open()
        try:
            for trade in await self._day_trades():
                self._seen.setdefault(trade.trade_id, trade)
            booked: dict[str, int] = {}
            for trade in self._seen.values():
                booked[trade.broker_order_id] = booked.get(trade.broker_order_id, 0) + trade.quantity
            for order in await self._order_book():
                if order.broker_order_id and order.status not in TERMINAL:
                    self._track(order).booked = booked.get(order.broker_order_id, 0)
        except BaseException:
            await self._close()
            raise
        self._connected = True
        self._inbox = asyncio.Queue()
        self._wake = asyncio.Event()
        self._spawn(self._process())
        self._spawn(self._poll_loop())
        self.stream = self._stream(self._wake.set)
        if self.stream is not None:
            self._spawn(self._run_stream(self.stream))

    async def disconnect(self) -> None:
        """Stop the stream, the poll and pending reads; close the session."""
        stop = getattr(self.stream, "stop", None)
        if stop is not None:
            stop()
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._connected:
            await self._close()
        self._connected = False

    def on_order_update(self, callback: Callable[[BrokerOrder], None]) -> None:
        self._callbacks.order_updates.append(callback)

    def on_fill(self, callback: Callable[[BrokerTrade], None]) -> None:
        self._callbacks.fills.append(callback)

    # --- orders ---------------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> BrokerOrder:
        """Send one order carrying ``request.client_id``; never resent here.

        Returns:
            The order as known (later states if the stream overtook the answer), or
            ``REJECTED`` with the reason when the broker or a local check refused it
            (``broker_order_id`` is then empty).

        Raises:
            AmbiguousOutcome: No definitive answer; look the order up with ``find_order``.
            FeedAuthError: The token was refused (nothing was placed).
        """
        cid = request.client_id
        known = self._by_client.get(cid)
        if known is not None and known in self._orders:
            return replace(self._orders[known].order)
        if cid in self._inflight:
            raise AmbiguousOutcome(f"a {self.title} order with client id {cid} is still being placed; wait for "
                                   "its answer or look it up with find_order")
        if cid in self._unresolved:
            found = await self.find_order(cid)
            if found is not None:
                return found
        self._inflight.add(cid)
        self._hold(cid)
        try:
            try:
                order = await self._submit(request)
            except Uncertain as exc:
                self.stats.ambiguous += 1
                self._unresolved[cid] = 0
                self._wake_poll()
                raise AmbiguousOutcome(f"{exc}; the order may have reached {self.title}: resolve it with "
                                       f"find_order({cid!r}); it is looked up by client id, never resent") from None
            if not order.broker_order_id:
                self.stats.rejected += 1
                return order
            self.stats.placed += 1
            return self._adopt(order, request.validity)
        finally:
            self._inflight.discard(cid)
            self._unhold(cid)

    async def get_order(self, broker_order_id: str) -> BrokerOrder:
        """The order's latest state; it is followed from then on."""
        return await self._learn(await self._read_order(broker_order_id), "read")

    async def find_order(self, client_id: str) -> BrokerOrder | None:
        """The order carrying ``client_id``, or None when the broker has none (then it is
        no longer looked for). A found order is followed from then on.

        Raises:
            AmbiguousOutcome: The lookup itself kept failing; try again later.
        """
        try:
            known = self._by_client.get(client_id)
            if known is not None:
                return await self.get_order(known)
            found = await self._lookup(client_id)
        except FeedAuthError:
            raise
        except BrokerError as exc:
            raise AmbiguousOutcome(f"looking up {client_id!r} failed: {exc}; the outcome is still unknown") from None
        if found is None:
            self._unresolved.pop(client_id, None)
            return None
        return await self._learn(found, "read")

    async def _learn(self, order: BrokerOrder, source: str) -> BrokerOrder:
        """Apply an order state a method read; return the most advanced state known."""
        await self._apply(order, source)
        tracked = self._orders.get(order.broker_order_id)
        return replace(tracked.order) if tracked is not None else order

    def _known(self, broker_order_id: str) -> _Tracked | None:
        return self._orders.get(broker_order_id)

    # --- account ----------------------------------------------------------------------------------

    def _position_name(self, instrument: str) -> str:
        """How ``get_positions`` names ``instrument`` (a broker id may stand for a name)."""
        return instrument

    async def get_position(self, instrument: str) -> Position | None:
        """The position in ``instrument``, or None when there is none."""
        wanted = self._position_name(instrument)
        for position in await self.get_positions():
            if position.instrument == wanted:
                return position
        return None

    async def get_balance(self) -> float:
        """The funds' ``balance_field``."""
        return _number((await self._funds()).get(self.balance_field))

    async def get_margin_used(self) -> float:
        """The funds' ``margin_field``."""
        return _number((await self._funds()).get(self.margin_field))

    # --- following orders ---------------------------------------------------------------------

    def _track(self, order: BrokerOrder) -> _Tracked:
        tracked = self._orders[order.broker_order_id] = _Tracked(replace(order))
        if order.client_id:
            self._by_client.setdefault(order.client_id, order.broker_order_id)
            self._unresolved.pop(order.client_id, None)
        return tracked

    def _adopt(self, order: BrokerOrder, validity: str | None = None) -> BrokerOrder:
        """Follow ``order`` (known to the caller now, not delivered); return the most advanced state."""
        tracked = self._orders.get(order.broker_order_id)
        if tracked is None:
            tracked = self._track(order)
        elif advances(tracked.order, order):
            tracked.order = _merge(tracked.order, order)
        if order.client_id:
            self._by_client.setdefault(order.client_id, order.broker_order_id)
            self._unresolved.pop(order.client_id, None)
        if validity:
            tracked.validity = validity
        if tracked.owed:
            self._spawn(self._settle(tracked, "read"))
        return replace(tracked.order, client_id=tracked.order.client_id or order.client_id)

    def _incoming(self, order: BrokerOrder | None) -> None:
        """An order update from the stream: applied in arrival order by ``_process``."""
        self.stats.alerts += 1
        if order is not None and self._inbox is not None:
            self._inbox.put_nowait(order)

    async def _process(self) -> None:
        assert self._inbox is not None
        while True:
            order = await self._inbox.get()
            try:
                await self._apply(order, "stream")
            except Exception:  # a bug in one update must not stop the others
                _log.exception("%s order update for %s not applied; the poll retries", self.title,
                               order.broker_order_id)
                self._wake_poll()

    async def _apply(self, order: BrokerOrder, source: str) -> None:
        """Merge one order state into what is known; deliver new fills, then the update."""
        if not order.broker_order_id:
            return
        tracked = self._orders.get(order.broker_order_id)
        fresh = tracked is None
        if fresh:
            tracked = self._track(order)
        async with tracked.lock:
            changed = fresh or advances(tracked.order, order)
            if changed and not fresh:
                tracked.order = _merge(tracked.order, order)
            elif not changed and source == "stream":
                self.stats.stale_alerts += 1
            if tracked.owed:
                await self._fetch_fills(tracked, source)
            if changed:
                self._emit("order", replace(tracked.order), tracked.order.client_id)

    async def _settle(self, tracked: _Tracked, source: str) -> None:
        async with tracked.lock:
            if tracked.owed:
                await self._fetch_fills(tracked, source)

    async def _fetch_fills(self, tracked: _Tracked, source: str) -> None:
        oid = tracked.order.broker_order_id
        try:
            trades = await self._order_trades(oid)
        except _READ_ERRORS as exc:
            _log.warning("%s trades of order %s not read (%s); the poll tries again", self.title, oid, exc)
            self._wake_poll()
            return
        for trade in trades:
            if trade.broker_order_id in ("", oid):
                self._book(replace(trade, broker_order_id=oid), tracked, source)

    def _book(self, trade: BrokerTrade, tracked: _Tracked, source: str) -> None:
        prior = self._seen.get(trade.trade_id)
        if prior is not None:
            if (prior.quantity, prior.price) != (trade.quantity, trade.price):
                self.stats.conflicting_fills += 1
                _log.error("%s trade %s of order %s came again as %d @ %s (booked: %d @ %s); the booked one stands",
                           self.title, trade.trade_id, trade.broker_order_id, trade.quantity, trade.price,
                           prior.quantity, prior.price)
            else:
                self.stats.duplicate_fills += 1
            return
        order = tracked.order
        if tracked.booked + trade.quantity > order.quantity:
            self.stats.conflicting_fills += 1
            _log.error("%s trade %s would overfill order %s (%d booked of %d, trade %d); not booked", self.title,
                       trade.trade_id, order.broker_order_id, tracked.booked, order.quantity, trade.quantity)
            return
        self._seen[trade.trade_id] = trade
        tracked.booked += trade.quantity
        self.stats.fills += 1
        self.stats.fills_by_source[source] = self.stats.fills_by_source.get(source, 0) + 1
        self._emit("fill", trade, order.client_id)

    # --- delivery, holding ----------------------------------------------------------------------

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
            except Exception:  # one broken consumer must not stop the others or tracking
                _log.exception("%s %s callback failed", self.title, "order-update" if kind == "order" else "fill")

    # --- the poll ---------------------------------------------------------------------------------

    def _wake_poll(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def needs_poll(self) -> bool:
        """True while some followed order is working or owes fills, or a client id is unresolved."""
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
            if not self.needs_poll():
                continue
            try:
                await self.poll()
            except FeedAuthError as exc:
                self.auth_error = exc
                _log.error("%s order poll failed: %s", self.title, exc)
            except _READ_ERRORS as exc:
                _log.warning("%s order poll failed (%s); trying again in %.1fs", self.title, exc, self.poll_interval)

    async def poll(self) -> None:
        """One pass: the order book applied to working, owing and unresolved orders, then owed trades."""
        self.stats.polls += 1
        for cid in list(self._unresolved):
            self._unresolved[cid] += 1
            if self._unresolved[cid] > GIVE_UP_POLLS:
                del self._unresolved[cid]
                self.stats.given_up += 1
                _log.warning("%s order %s did not appear within %d polls of an ambiguous answer; no longer looking "
                             "for it", self.title, cid, GIVE_UP_POLLS)
        for order in await self._order_book():
            tracked = self._orders.get(order.broker_order_id)
            if tracked is not None and (tracked.working or tracked.owed):
                await self._apply(order, "poll")
            elif tracked is None and order.client_id and order.client_id in self._unresolved:
                await self._apply(order, "poll")
        for tracked in list(self._orders.values()):
            if tracked.owed:
                await self._settle(tracked, "poll")

    # --- tasks ------------------------------------------------------------------------------------

    async def _run_stream(self, stream) -> None:
        try:
            await stream.run()
        except FeedAuthError as exc:
            self.auth_error = exc

    def _spawn(self, coro: Coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
