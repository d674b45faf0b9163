"""The sandbox's matching engine: accounts, orders, trades and positions on replayed prices.

Both brokers' REST and order-update protocols (``sandbox/dhan_orders.py``,
``sandbox/upstox_orders.py``) are thin translations over this one engine, so an order
placed through either protocol behaves the same way:

- a MARKET order fills on the next tick of its instrument, at the traded price;
- a LIMIT order fills on the first tick at or through its limit: at the tick's price if it
  was marketable on arrival, at the limit otherwise (the price traded through it);
- IOC orders that do not fill on the next tick are cancelled;
- a buy the account cannot pay for (cash < value) is REJECTED with a reason;
- an order above its instrument's freeze quantity (``freeze``, from the instrument list) is
  REJECTED, and a modification raising an order above it refused, as NSE's order entry does
  (https://dhanhq.co/docs/v2/orders/#order-slicing: larger orders must be sliced);
- a LIMIT order priced outside the day's operating range (±10 % of the base price) is
  REJECTED, and a modification to such a price refused (``algocli.sandbox.rules``);
- at each session's close, which the replay announces (``close_session``), every working order
  EXPIRES, and until the next session's first tick the market is closed: new orders are
  REJECTED unless they are after-market orders (``amo``), which wait for the open.

Every state change is pushed to the account's listeners (the order-update streams).
Faults for tests (duplicate fills, fills before the acknowledgement) are switches on the
engine; HTTP-level faults (timeouts, 500 after accept, 429) live in the protocol layers.

Accounts live in venues: each broker protocol opens its own (``exchange.venue("dhan")``),
so the same word used as a Dhan client id and as an Upstox token names two accounts with
their own orders, trades, positions and cash; prices and matching are shared. An account
id given to the engine directly (no venue) lives in the unnamed venue ``""``.

Order times follow the replay clock: an order is created and updated at the exchange
time of the latest tick the engine has seen, the time its trades carry too. Before the
first tick it is ``start_ns`` (the replay's first tick) when given, else the wall clock.

The brokers' INTRADAY auto square-off runs on that clock too (``algocli.sandbox.squareoff``):
the Dhan venue's INTRADAY positions are closed by the broker's own market orders at 15:20 IST,
the Upstox venue's at 15:15 (equity) / 15:20 (F&O), at the first tick at or after the time.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Callable

from algocli.domain.models import Tick
from algocli.sandbox.rules import CLOSED_REASON, OPERATING_RANGE, PriceBands, expired_reason
from algocli.sandbox.squareoff import AutoSquareOff, broker_rules

if TYPE_CHECKING:
    from algocli.market.products import ProductRules


@dataclass
class SimOrder:
    order_id: str
    account: str
    client_id: str | None
    instrument: str
    side: str  # BUY / SELL
    quantity: int
    order_type: str  # MARKET / LIMIT
    price: float
    product: str
    validity: str
    status: str = "PENDING"  # PENDING (working), FILLED, CANCELLED, REJECTED, EXPIRED (unfilled at the close)
    filled_quantity: int = 0
    average_price: float = 0.0
    reason: str = ""
    created_ns: int = 0
    updated_ns: int = 0
    modifications: int = 0
    seen_tick: bool = False
    venue: str = ""
    placed_by: str = ""  # "broker": the broker's own order (the INTRADAY auto square-off), not the account's
    amo: bool = False  # an after-market order: may be placed while the market is closed
    queued: bool = False  # an after-market order placed while closed, not yet released at an open

    @property
    def is_open(self) -> bool:
        return self.status == "PENDING"


@dataclass(frozen=True)
class SimTrade:
    trade_id: str
    order_id: str
    account: str
    instrument: str
    side: str
    quantity: int
    price: float
    ts: int
    venue: str = ""


@dataclass
class Account:
    account_id: str
    cash: float
    opening_cash: float
    positions: dict[str, list[float]] = field(default_factory=dict)  # instrument -> [net qty, avg price, realised]
    orders: dict[str, SimOrder] = field(default_factory=dict)
    trades: list[SimTrade] = field(default_factory=list)
    listeners: list[Callable[[str, object], None]] = field(default_factory=list)

    def traded(self, instrument: str) -> tuple[int, int, float, float]:
        """``(bought, sold, bought value, sold value)`` of the account's trades in ``instrument``."""
        buy_qty = sell_qty = 0
        buy_value = sell_value = 0.0
        for t in self.trades:
            if t.instrument != instrument:
                continue
            if t.side == "BUY":
                buy_qty, buy_value = buy_qty + t.quantity, buy_value + t.quantity * t.price
            else:
                sell_qty, sell_value = sell_qty + t.quantity, sell_value + t.quantity * t.price
        return buy_qty, sell_qty, buy_value, sell_value

    def used_margin(self, last: dict[str, Tick]) -> float:
        total = 0.0
        for inst, (qty, avg, _) in self.positions.items():
            px = last[inst].ltp if inst in last else avg
            total += abs(qty) * px
        return total


@dataclass
class ExchangeFaults:
    """Execution faults: repeat every fill event, announce fills before the acknowledgement, or
    reject the next ``reject_sells`` sell orders (accepted with an order id, then REJECTED with a
    reason, as a broker's risk check refuses a short it finds no margin for)."""

    duplicate_fills: bool = False
    early_fills: bool = False
    reject_sells: int = 0


class Exchange:
    """One matching engine for every account of the sandbox.

    Args:
        opening_cash: Cash of every new account.
        clock: Exchange time in UTC ns; default the replay clock (see the module docstring).
        start_ns: The replay clock before the first tick (default the wall clock).
        freeze: Instrument → the most units one order may carry; instruments not named take any.
        squareoff: Venue → the ``ProductRules`` whose times square its INTRADAY positions off;
            default Dhan's for ``dhan`` and Upstox's for ``upstox`` (``{}``: never).
        band: Half-width of the price band, a fraction of the base price (None: no band).
        unbanded: Instruments priced freely (options, whose exchange ranges are delta-based).

    Attributes:
        market_open: False from a session's close (``close_session``) to the next tick.
    """

    def __init__(self, *, opening_cash: float = 10_000_000.0, clock: Callable[[], int] | None = None,
                 start_ns: int | None = None, freeze: Mapping[str, int] | None = None,
                 squareoff: Mapping[str, ProductRules] | None = None, band: float | None = OPERATING_RANGE,
                 unbanded: Collection[str] = ()) -> None:
        self.opening_cash = opening_cash
        self.freeze = dict(freeze or {})
        self.last: dict[str, Tick] = {}
        self.faults = ExchangeFaults()
        self._clock = clock or self._replay_clock
        self._start_ns = start_ns
        self._now_ns: int | None = None  # exchange time of the latest tick
        self._venues: dict[str, dict[str, Account]] = {}
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._open: dict[str, list[SimOrder]] = {}  # instrument -> working orders
        self.squareoff = AutoSquareOff(self, broker_rules() if squareoff is None else squareoff)
        self.bands = PriceBands(band, unbanded)
        self.market_open = True  # until the replay announces a close

    def _replay_clock(self) -> int:
        if self._now_ns is not None:
            return self._now_ns
        return self._start_ns if self._start_ns is not None else time.time_ns()

    # --- accounts -------------------------------------------------------------------

    @property
    def accounts(self) -> dict[str, Account]:
        """Accounts of the unnamed venue (used by callers that name no venue)."""
        return self._venues.setdefault("", {})

    def venue(self, name: str) -> Venue:
        """The accounts of one broker protocol, on this engine's prices and matching."""
        return Venue(self, name)

    def account(self, account_id: str, venue: str = "") -> Account:
        accounts = self._venues.setdefault(venue, {})
        acct = accounts.get(account_id)
        if acct is None:
            acct = accounts[account_id] = Account(account_id, self.opening_cash, self.opening_cash)
        return acct

    def listen(self, account_id: str, callback: Callable[[str, object], None], venue: str = "") -> Callable[[], None]:
        """Receive ``("order", SimOrder)`` and ``("trade", SimTrade)`` events; returns an unsubscribe."""
        acct = self.account(account_id, venue)
        acct.listeners.append(callback)
        return lambda: acct.listeners.remove(callback) if callback in acct.listeners else None

    def _emit(self, acct: Account, kind: str, payload: object) -> None:
        for callback in list(acct.listeners):
            callback(kind, payload)

    def _owner(self, order: SimOrder) -> Account:
        return self.account(order.account, order.venue)

    # --- orders ---------------------------------------------------------------------

    def place(self, account_id: str, *, instrument: str, side: str, quantity: int, order_type: str,
              price: float = 0.0, product: str = "INTRADAY", validity: str = "DAY",
              client_id: str | None = None, venue: str = "", amo: bool = False) -> SimOrder:
        """Accept an order (or reject it with a reason); it matches from the next tick on.

        ``amo`` marks an after-market order: placed while the market is closed, it is queued for
        the next session's open instead of being rejected.
        """
        acct = self.account(account_id, venue)
        now = self._clock()
        order = SimOrder(f"{next(self._order_ids):012d}", account_id, client_id, instrument, side, int(quantity),
                         order_type, float(price or 0.0), product, validity, created_ns=now, updated_ns=now,
                         venue=venue, amo=amo, queued=amo and not self.market_open)
        acct.orders[order.order_id] = order
        problem = self._check(acct, order)
        if not problem and order.side == "SELL" and self.faults.reject_sells > 0:
            self.faults.reject_sells -= 1
            problem = "RMS: margin exceeds the available funds for this short (sandbox fault reject_sells)"
        if problem:
            order.status, order.reason = "REJECTED", problem
        else:
            self._open.setdefault(instrument, []).append(order)
        self._emit(acct, "order", order)
        return order

    def place_internal(self, account_id: str, *, venue: str, instrument: str, side: str, quantity: int,
                       product: str, reason: str) -> SimOrder:
        """The broker's own MARKET order for an account (no client id, no checks, no faults): it works
        from the next tick matched, the current one when placed from ``on_tick``."""
        acct = self.account(account_id, venue)
        now = self._clock()
        order = SimOrder(f"{next(self._order_ids):012d}", account_id, None, instrument, side, int(quantity), "MARKET",
                         0.0, product, "DAY", reason=reason, created_ns=now, updated_ns=now, venue=venue,
                         placed_by="broker")
        acct.orders[order.order_id] = order
        self._open.setdefault(instrument, []).append(order)
        self._emit(acct, "order", order)
        return order

    def _check(self, acct: Account, order: SimOrder) -> str:
        if order.quantity <= 0:
            return "quantity must be positive"
        if order.side not in ("BUY", "SELL"):
            return f"unknown transaction type {order.side!r}"
        if order.order_type not in ("MARKET", "LIMIT"):
            return f"order type {order.order_type!r} is not supported by the sandbox"
        if order.order_type == "LIMIT" and order.price <= 0:
            return "a LIMIT order needs a positive price"
        if not self.market_open and not order.amo:
            return CLOSED_REASON
        problem = self._above_freeze(order.instrument, order.quantity) or self._outside_band(order, order.price)
        if problem:
            return problem
        if order.side == "BUY":
            ref = order.price if order.order_type == "LIMIT" else (
                self.last[order.instrument].ltp if order.instrument in self.last else 0.0)
            if ref * order.quantity > acct.cash:
                return f"insufficient funds: needs {ref * order.quantity:,.2f}, available {acct.cash:,.2f}"
        return ""

    def modify(self, account_id: str, order_id: str, *, quantity: int | None = None,
               price: float | None = None, venue: str = "") -> SimOrder:
        order = self._working(account_id, order_id, venue)
        if quantity is not None:
            if quantity <= order.filled_quantity:
                raise ValueError("quantity must exceed the filled quantity")
            problem = self._above_freeze(order.instrument, int(quantity))
            if problem:
                raise ValueError(problem)
            order.quantity = int(quantity)
        if price is not None and order.order_type == "LIMIT":
            if price <= 0:
                raise ValueError("price must be positive")
            problem = self._outside_band(order, float(price))
            if problem:
                raise ValueError(problem)
            order.price = float(price)
            order.seen_tick = False
        order.modifications += 1
        order.updated_ns = self._clock()
        self._emit(self._owner(order), "order", order)
        return order

    def _outside_band(self, order: SimOrder, price: float) -> str:
        """Why ``price`` is refused for ``order`` ("" for a MARKET order or a price in the band)."""
        return self.bands.problem(order.instrument, price) if order.order_type == "LIMIT" else ""

    def _above_freeze(self, instrument: str, quantity: int) -> str:
        freeze = self.freeze.get(instrument)
        if freeze and quantity > freeze:
            return (f"quantity {quantity} is above the freeze quantity {freeze} of {instrument}; "
                    "slice the order into orders of at most the freeze quantity")
        return ""

    def cancel(self, account_id: str, order_id: str, venue: str = "") -> SimOrder:
        order = self._working(account_id, order_id, venue)
        self._close(order, "CANCELLED", "cancelled by the user")
        return order

    def _working(self, account_id: str, order_id: str, venue: str) -> SimOrder:
        order = self.account(account_id, venue).orders.get(order_id)
        if order is None:
            raise KeyError(order_id)
        if not order.is_open:
            raise ValueError(f"order {order_id} is {order.status}, not open")
        return order

    def _close(self, order: SimOrder, status: str, reason: str) -> None:
        order.status, order.reason = status, reason
        order.updated_ns = self._clock()
        working = self._open.get(order.instrument)
        if working and order in working:
            working.remove(order)
        self._emit(self._owner(order), "order", order)

    def find(self, account_id: str, client_id: str, venue: str = "") -> SimOrder | None:
        for order in self.account(account_id, venue).orders.values():
            if order.client_id == client_id:
                return order
        return None

    # --- matching -------------------------------------------------------------------

    def on_tick(self, tick: Tick) -> None:
        """Match the instrument's working orders against a replayed trade."""
        self.bands.on_tick(tick, self.last.get(tick.instrument))
        self.last[tick.instrument] = tick
        if self._now_ns is None or tick.ts > self._now_ns:
            self._now_ns = tick.ts
        if not self.market_open:
            self._open_market()
        self.squareoff.on_tick(tick.instrument, tick.ts)  # the brokers' INTRADAY square-off, before matching
        working = self._open.get(tick.instrument)
        if not working:
            return
        for order in list(working):
            price = self._fill_price(order, tick.ltp)
            if price is None:
                if order.validity == "IOC":
                    self._close(order, "CANCELLED", "IOC order not filled at once")
                else:
                    order.seen_tick = True
                continue
            self._fill(order, price, tick.ts)

    def close_session(self, ns: int) -> None:
        """The replay reached a session's close at ``ns`` (UTC ns): no trade comes before the next session.

        Every working order expires (EXPIRED, with the reason), as the exchange ends DAY validity
        at the close, and the market is closed until the next tick (see ``place``).
        """
        if self._now_ns is None or ns > self._now_ns:
            self._now_ns = ns
        self.market_open = False
        reason = expired_reason(ns)
        for working in list(self._open.values()):
            for order in list(working):
                self._close(order, "EXPIRED", reason)

    def _open_market(self) -> None:
        """The first trade after a close: the market is open, and queued after-market orders go to it."""
        self.market_open = True
        for working in self._open.values():
            for order in working:
                if order.queued:
                    order.queued = False
                    order.updated_ns = self._clock()
                    self._emit(self._owner(order), "order", order)  # released to the exchange ("open" at Upstox)

    @staticmethod
    def _fill_price(order: SimOrder, ltp: float) -> float | None:
        if order.order_type == "MARKET":
            return ltp
        buy = order.side == "BUY"
        if (buy and ltp <= order.price) or (not buy and ltp >= order.price):
            return order.price if order.seen_tick else ltp
        return None

    def _fill(self, order: SimOrder, price: float, ts: int) -> None:
        acct = self._owner(order)
        qty = order.quantity - order.filled_quantity
        trade = SimTrade(f"T{next(self._trade_ids):012d}", order.order_id, order.account, order.instrument,
                         order.side, qty, price, ts, order.venue)
        if self.faults.early_fills:
            self._emit(acct, "trade", trade)  # the fill event overtakes the order update
        self._book(acct, trade)
        order.average_price = (order.average_price * order.filled_quantity + price * qty) / (order.filled_quantity + qty)
        order.filled_quantity += qty
        self._close(order, "FILLED", order.reason if order.placed_by else "")
        if not self.faults.early_fills:
            self._emit(acct, "trade", trade)
        if self.faults.duplicate_fills:
            self._emit(acct, "trade", trade)

    @staticmethod
    def _book(acct: Account, trade: SimTrade) -> None:
        signed = trade.quantity if trade.side == "BUY" else -trade.quantity
        acct.cash -= signed * trade.price
        acct.trades.append(trade)
        pos = acct.positions.setdefault(trade.instrument, [0, 0.0, 0.0])
        qty, avg, realised = pos
        if qty == 0 or (qty > 0) == (signed > 0):
            new = qty + signed
            pos[1] = (avg * qty + trade.price * signed) / new if new else 0.0
            pos[0] = new
            return
        closing = min(abs(qty), abs(signed))
        pos[2] = realised + closing * (trade.price - avg) * (1 if qty > 0 else -1)
        new = qty + signed
        pos[0] = new
        if new == 0:
            pos[1] = 0.0
        elif (new > 0) != (qty > 0):  # reversed through zero
            pos[1] = trade.price


class Venue:
    """One broker protocol's accounts on a shared ``Exchange``: its own books, the same market.

    Offers the engine's account and order calls without the ``venue`` argument, and its
    shared ``faults``, ``last`` prices and ``opening_cash``.
    """

    def __init__(self, exchange: Exchange, name: str) -> None:
        self.exchange = exchange
        self.name = name

    @property
    def faults(self) -> ExchangeFaults:
        return self.exchange.faults

    @property
    def last(self) -> dict[str, Tick]:
        return self.exchange.last

    @property
    def opening_cash(self) -> float:
        return self.exchange.opening_cash

    def account(self, account_id: str) -> Account:
        return self.exchange.account(account_id, self.name)

    def listen(self, account_id: str, callback: Callable[[str, object], None]) -> Callable[[], None]:
        return self.exchange.listen(account_id, callback, self.name)

    def place(self, account_id: str, **order) -> SimOrder:
        """``Exchange.place`` in this venue."""
        return self.exchange.place(account_id, venue=self.name, **order)

    def modify(self, account_id: str, order_id: str, *, quantity: int | None = None,
               price: float | None = None) -> SimOrder:
        return self.exchange.modify(account_id, order_id, quantity=quantity, price=price, venue=self.name)

    def cancel(self, account_id: str, order_id: str) -> SimOrder:
        return self.exchange.cancel(account_id, order_id, self.name)

    def find(self, account_id: str, client_id: str) -> SimOrder | None:
        return self.exchange.find(account_id, client_id, self.name)
