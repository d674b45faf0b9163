"""One account's orders and fills, and the protocol the engine routes orders through.

``OrderBook`` is the only code that creates an order, applies a fill, changes an order's
status, modifies it, or rebuilds all of that from a journal. The simulated broker
(backtest and paper) and the live router (a real broker) both keep their orders in one,
so an order restored after a restart is the same object, with the same quantity, prices,
times and charges, whichever mode wrote the journal.

``OrderRouter`` is the interface the engine (``EngineCore``, the strategy context, the
risk controller) uses: whatever sits behind it matches or sends the orders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from algocli.domain.models import (
    IST_OFFSET_NS, Fill, Order, OrderSide, OrderStatus, OrderType, Signal, SignalAction,
)
from algocli.domain.session import DAY_NS, MINUTE_NS, ist_date
from algocli.market.ticks import check_price, check_quantity

if TYPE_CHECKING:
    from algocli.domain.instrument import Instrument
    from algocli.persistence.journal import Journal
    from algocli.portfolio.ledger import Ledger

_BUY, _SELL = OrderSide.BUY, OrderSide.SELL
_SIGNAL_BUY = SignalAction.BUY
_PENDING, _OPEN, _FILLED, _PARTIAL = (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.FILLED,
                                      OrderStatus.PARTIALLY_FILLED)
_LIMIT = OrderType.LIMIT


#: Products that may sell short: the broker squares them off the same day (Dhan ``INTRADAY``,
#: Upstox ``I``; ``MIS``/``CO``/``BO`` are the same product under other brokers' names).
INTRADAY_PRODUCTS = frozenset({"INTRADAY", "MIS", "I", "CO", "BO"})


def late_entry_refusal(rules, instrument: Instrument, product: str, buy: bool, quantity: int, held: int,
                       decided_ns: int) -> str:
    """Why the broker refuses an order that opens or adds to an INTRADAY position after its
    square-off time (``rules``: ``ProductRules``; ``decided_ns``: when the order was decided, a
    candle's close), or "". After the square-off the brokers take only orders that reduce one.
    """
    minute = rules.squareoff_minute(instrument, product)
    adds = (held >= 0) if buy else (held <= 0)
    if minute is None or not (adds or quantity > abs(held)):
        return ""
    if (decided_ns + IST_OFFSET_NS) % DAY_NS < minute * MINUTE_NS:
        return ""
    return (f"{product} order that opens a position in {instrument.hrn} after the {minute // 60:02d}:"
            f"{minute % 60:02d} IST square-off ({rules.broker}); the broker takes only orders that reduce one until "
            "the next session; use product CNC/MARGIN to carry a position, or trade before it")


def order_refusal(instrument: Instrument, product: str | None, buy: bool, quantity: int,
                  limit_price: float | None, held: int, ts: int) -> str:
    """Why the exchange or the broker would refuse an order, or "" when it would take it.

    Checked in every mode before an order works (backtest, paper) or is sent (live), so a
    refused order is REJECTED with this reason in ``orders.csv``:

    - an F&O quantity must be a whole number of lots (the reason names the lot size);
    - a limit price must be on the tick for the instrument, price and date (the reason names
      the tick and the nearest valid prices; ``ctx.round_to_tick`` helps);
    - an equity short needs an intraday product: a CNC sell beyond the holdings is refused,
      since equity shorts cannot be carried overnight;
    - an F&O short needs a margin product (``MARGIN`` to carry it, or ``INTRADAY`` for the
      day), never ``CNC``, which is delivery. Both rules as brokers state them:
      https://support.zerodha.com/category/trading-and-markets/corporate-actions/general/articles/short-sell-shares-in-eq-and-f-o-segments

    Args:
        instrument: The instrument's model (kind, lot and tick).
        product: The order's product (``CNC``, ``INTRADAY``, ``MARGIN``...); None: intraday.
        buy: True for a buy.
        quantity: The order's units.
        limit_price: A limit order's price; None for a market order.
        held: The strategy's position in the instrument before the order (negative: short).
        ts: The order's time (UTC ns); its IST date picks the tick table.

    Returns:
        The reason, or "".
    """
    if instrument.is_derivative:  # equity takes any (positive: ``Signal`` checked it) quantity
        reason = check_quantity(instrument, quantity)
        if reason:
            return reason
    if limit_price is not None:
        reason = check_price(instrument, limit_price, ist_date(ts))
        if reason:
            return reason
    if buy or quantity <= held or product is None or product in INTRADAY_PRODUCTS:
        return ""  # the common cases first: this runs for every order
    product = product.upper()
    short = quantity - max(held, 0)
    if instrument.kind == "EQ" and product not in INTRADAY_PRODUCTS:
        return (f"{product} sell of {quantity} {instrument.hrn} with {max(held, 0)} held would sell {short} short; "
                "an equity short needs product INTRADAY (set broker.product or broker.products)")
    if instrument.is_derivative and product == "CNC":
        return (f"CNC sell of {quantity} {instrument.hrn} with {max(held, 0)} held would sell {short} short; "
                "an F&O short needs product MARGIN (or INTRADAY); set broker.product or broker.products")
    return ""


def check_modify(instrument: Instrument, quantity: int | None, price: float | None, ts: int) -> None:
    """Refuse a modification the exchange would refuse: a quantity off the lot, a price off the tick.

    Raises:
        ValueError: The reason, with the lot or the tick.
    """
    reason = (check_quantity(instrument, quantity) if quantity is not None else "") or (
        check_price(instrument, price, ist_date(ts)) if price is not None else "")
    if reason:
        raise ValueError(f"modify refused: {reason}")


@runtime_checkable
class OrderRouter(Protocol):
    """What the engine needs from whatever executes its orders.

    Implemented by ``algocli.broker.simulated.SimulatedBroker`` and
    ``algocli.engine.live.LiveRouter``. ``orders``, ``fills`` and ``pending`` are the
    router's ``OrderBook`` lists, read by the engine, the results and the dashboard.
    """

    orders: list[Order]
    fills: list[Fill]
    pending: dict[str, list[Order]]

    def submit(self, strategy_id: str, signal: Signal, ts: int, timeline_bar: int) -> Order | None:
        """Accept a strategy's signal as an order (None for HOLD)."""

    def deny(self, strategy_id: str, signal: Signal, ts: int, reason: str) -> Order:
        """Record an order refused before it reached the market: REJECTED with ``reason``."""

    def cancel(self, order_id: str, strategy_id: str, ts: int | None = None,
               reason: str = "cancelled by strategy") -> bool:
        """Cancel a working order of ``strategy_id``; False if unknown or already final."""

    def modify(self, order_id: str, strategy_id: str, quantity: int | None, price: float | None) -> bool:
        """Change a working order's quantity or limit price; False if unknown or final."""

    def open_orders(self, strategy_id: str | None = None, instrument: str | None = None) -> list[Order]:
        """Working orders, optionally of one strategy and/or one instrument."""

    def on_tick(self, instrument: str, price: float, ts: int, timeline_bar: int) -> None:
        """A live trade price (paper matches against it; live ignores it)."""


class OrderBook:
    """Orders and fills of one account, journaled before they take effect.

    Args:
        ledger: The account's cash and positions; every fill is booked here once.
        instruments: The run's instruments; each gets a list of working orders.
        on_fill: Called with each new fill after it is booked (not during a replay).
        journal: Where orders, fills, status changes and modifications are written
            (fsync) before they take effect; None in backtests.
    """

    __slots__ = ("ledger", "orders", "fills", "_by_id", "_indexed", "pending", "journal", "_seq", "_on_fill")

    def __init__(self, ledger: Ledger, instruments: Iterable[str], on_fill: Callable[[Fill], None],
                 journal: Journal | None = None) -> None:
        self.ledger = ledger
        self.orders: list[Order] = []
        self.fills: list[Fill] = []
        self._by_id: dict[str, Order] = {}  # ``by_id`` of the first ``_indexed`` orders
        self._indexed = 0
        # Per-instrument lists of working orders; drivers hold references to these lists.
        self.pending: dict[str, list[Order]] = {inst: [] for inst in instruments}
        self.journal = journal
        self._seq: dict[str, int] = {}
        self._on_fill = on_fill

    # --- creating --------------------------------------------------------------------

    def create(self, strategy_id: str, signal: Signal, ts: int, bar: int) -> Order:
        """A new PENDING order for ``signal`` (id ``<strategy>-<seq>``), journaled and registered (not yet working)."""
        seq = self._seq.get(strategy_id, 0) + 1
        self._seq[strategy_id] = seq
        order_id = strategy_id + "-" + str(seq).zfill(6)  # as f"{seq:06d}", in half the time
        order = Order(order_id, strategy_id, signal.instrument,
                      _BUY if signal.action is _SIGNAL_BUY else _SELL, signal.quantity, signal.order_type,
                      signal.limit_price, _PENDING, ts, bar, ts, tag=signal.tag)
        if self.journal is not None:
            self.journal.order(order)
        self.orders.append(order)
        return order

    @property
    def by_id(self) -> dict[str, Order]:
        """Every order by id. Indexed when asked for (``orders`` only grows): a backtest that never
        looks an order up by id spends nothing on it per order."""
        index, orders = self._by_id, self.orders
        if self._indexed < len(orders):
            index.update((o.order_id, o) for o in orders[self._indexed:])
            self._indexed = len(orders)
        return index

    def work(self, order: Order, status: OrderStatus = _PENDING) -> None:
        """Put ``order`` among its instrument's working orders with ``status``."""
        order.status = status
        working = self.pending.get(order.instrument)
        if working is not None:
            working.append(order)

    # --- changing ----------------------------------------------------------------------

    def apply_fill(self, order: Order, fill: Fill) -> None:
        """Journal, book and apply one fill of ``order``, then tell the strategies."""
        if self.journal is not None:
            self.journal.fill(fill)
        self._book(order, fill)
        self._on_fill(fill)

    def set_status(self, order: Order, status: OrderStatus, reason: str = "", ts: int | None = None) -> None:
        """Change ``order``'s status (journaled); a final status takes it off the working list."""
        order.status = status
        order.reason = reason
        if ts is not None:
            order.updated_ts = ts
        if self.journal is not None:
            self.journal.status(order)
        if status.is_terminal:
            self.unpend(order)

    def modify(self, order: Order, quantity: int | None, price: float | None) -> None:
        """Apply a new quantity and/or limit price to ``order`` (journaled)."""
        if quantity is not None:
            order.quantity = quantity
        if price is not None:
            order.limit_price = price
        if self.journal is not None:
            self.journal.modify(order)

    def unpend(self, order: Order) -> None:
        """Take ``order`` off its instrument's working list (by identity), if it is there."""
        working = self.pending.get(order.instrument)
        if working:
            for k, o in enumerate(working):
                if o is order:
                    del working[k]
                    return

    # --- reading -----------------------------------------------------------------------

    def open_orders(self, strategy_id: str | None = None, instrument: str | None = None) -> list[Order]:
        """Working orders, optionally of one strategy and/or one instrument."""
        if instrument is not None:
            lists = [self.pending.get(instrument, ())]
        else:
            lists = self.pending.values()
        return [o for lst in lists for o in lst if strategy_id is None or o.strategy_id == strategy_id]

    def working(self, order_id: str, strategy_id: str) -> Order | None:
        """``strategy_id``'s order ``order_id`` if it can still change, else None."""
        order = self.by_id.get(order_id)
        if order is None or order.strategy_id != strategy_id or order.status.is_terminal:
            return None
        return order

    # --- recovery ----------------------------------------------------------------------

    def replay(self, records: Iterable[dict]) -> dict[str, int]:
        """Rebuild orders, fills, statuses and modifications from journal records.

        Nothing is journaled again and no strategy is told. Each fill is booked once, even
        if the journal holds it twice. A restored order keeps its quantity and price as last
        modified, its fill and status times, and its charges. A fill keeps its bar, also one
        the journal never closed (the process died inside it): the resumed run forms that
        candle, or the result books the fill at its last bar (``algocli.engine.results``).

        Args:
            records: Journal records (dicts with a ``k`` kind); other kinds are ignored.

        Returns:
            Counts of restored ``orders`` and ``fills``.
        """
        counts = {"orders": 0, "fills": 0}
        for rec in records:
            by_id = self.by_id  # with the orders restored so far
            kind = rec.get("k")
            if kind == "order":
                self._restore_order(rec)
                counts["orders"] += 1
            elif kind == "fill":
                if rec["fill_id"] in self.ledger.booked:
                    continue
                fields = {k: v for k, v in rec.items() if k != "k"}
                fill = Fill(**{**fields, "side": OrderSide(rec["side"])})
                order = by_id.get(fill.order_id)
                if order is None:
                    self.ledger.book(fill)
                    self.fills.append(fill)
                else:
                    self._book(order, fill)
                counts["fills"] += 1
            elif kind == "status":
                order = by_id.get(rec["order_id"])
                if order is not None:
                    order.status = OrderStatus(rec["status"])
                    order.reason = rec["reason"]
                    order.updated_ts = rec.get("ts") or order.updated_ts
                    if order.status.is_terminal:
                        self.unpend(order)
            elif kind == "modify":
                order = by_id.get(rec["order_id"])
                if order is not None:
                    order.quantity = rec["quantity"]
                    order.limit_price = rec["limit_price"]
                    if order.status is _FILLED and order.filled_quantity < order.quantity:
                        self.work(order, _PARTIAL)  # raised after its first fills: it works again
        return counts

    def _restore_order(self, rec: dict) -> None:
        order = Order(rec["order_id"], rec["strategy_id"], rec["instrument"], OrderSide(rec["side"]),
                      rec["quantity"], OrderType(rec["order_type"]), rec["limit_price"], _PENDING,
                      rec["created_ts"], rec["created_bar"], rec["created_ts"], tag=rec.get("tag"))
        sid, _, seq = order.order_id.rpartition("-")
        self._seq[sid] = max(self._seq.get(sid, 0), int(seq))
        self.orders.append(order)
        self.work(order, _OPEN if order.order_type is _LIMIT else _PENDING)

    # --- internals ---------------------------------------------------------------------

    def _book(self, order: Order, fill: Fill) -> None:
        self.ledger.book(fill)
        self.fills.append(fill)
        filled = order.filled_quantity
        qty = fill.quantity
        total = filled + qty
        order.average_price = (order.average_price * filled + fill.price * qty) / total
        order.filled_quantity = total
        order.commission += fill.commission
        order.updated_ts = fill.ts
        if total >= order.quantity:
            order.status = _FILLED
            self.unpend(order)
        else:
            order.status = _PARTIAL
