"""The simulated broker used by backtests and paper trading.

It matches market and limit orders against bars, charges costs, refuses what the account
cannot pay for, and books each fill in the ledger exactly once. Work happens per order
event: a bar with nothing pending costs one truthiness check in the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from pydantic import BaseModel, ConfigDict, Field

from algocli.broker.costs import CostContext, CostModel
from algocli.broker.fill_models import FillModel
from algocli.broker.orderbook import OrderBook
from algocli.domain.models import (
    Fill, Instrument, Order, OrderSide, OrderStatus, OrderType, Signal, SignalAction,
)

if TYPE_CHECKING:
    from algocli.data.history import History
    from algocli.portfolio.ledger import Ledger

_EPS = 1e-9
# Enum members as module globals: attribute lookups on Enum classes are slow per event.
_BUY, _SELL = OrderSide.BUY, OrderSide.SELL
_MARKET, _LIMIT = OrderType.MARKET, OrderType.LIMIT
_PENDING, _OPEN = OrderStatus.PENDING, OrderStatus.OPEN
_HOLD = SignalAction.HOLD


class SimulatedBrokerConfig(BaseModel):
    """``broker:`` keys for ``name: simulated``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    commission_rate: float = Field(0.0, ge=0, lt=0.1, description="fraction of traded value, each side")


class SimulatedBrokerPlugin:
    """Registry entry for the simulated broker."""

    Config = SimulatedBrokerConfig


class SimulatedBroker:
    """Order matching on bars (backtest) and on ticks (paper) for one account.

    Orders and fills live in an ``OrderBook`` (``self.book``); ``orders``, ``fills`` and
    ``pending`` are its lists. Implements ``algocli.broker.orderbook.OrderRouter``.

    Args:
        ledger: The account's cash and positions.
        histories: The run's price histories by instrument.
        fill_model: Prices market orders.
        cost_model: Prices each fill's charges.
        on_fill: Called with each fill after it is booked.
        instruments: Instrument models by name, for the cost model (a bare model by name
            where none is given).
        products: Product per instrument name (``CNC``, ``INTRADAY``, ...), read by the
            cost model and the risk controller's square-off; ``default_product`` for the
            others (``INTRADAY``, as the live brokers' configs default to).
    """

    def __init__(
        self,
        ledger: Ledger,
        histories: dict[str, History],
        fill_model: FillModel,
        cost_model: CostModel,
        on_fill: Callable[[Fill], None],
        instruments: dict[str, Instrument] | None = None,
        products: dict[str, str] | None = None,
        default_product: str = "INTRADAY",
    ) -> None:
        self.ledger = ledger
        self.histories = histories
        self.fill_model = fill_model
        self.cost_model = cost_model
        self.book = OrderBook(ledger, histories, on_fill)
        self.orders = self.book.orders
        self.fills = self.book.fills
        # Per-instrument lists of working orders; the engine holds references to them.
        self.pending = self.book.pending
        self.instruments = {inst: (instruments or {}).get(inst) or Instrument(inst) for inst in histories}
        self.products = products or {}
        self.default_product = default_product
        self._last_tick: dict[str, float] = {}  # paper: previous trade price per instrument
        self._resting: set[str] = set()  # paper: limit orders that have already seen a tick

    @property
    def journal(self):
        """Paper runs set a Journal: every order, fill and status change is written to disk
        before it takes effect. Backtests leave it None and pay nothing."""
        return self.book.journal

    @journal.setter
    def journal(self, journal) -> None:
        self.book.journal = journal

    # --- entry ---------------------------------------------------------------------

    def submit(self, strategy_id: str, signal: Signal, ts: int, timeline_bar: int) -> Order | None:
        """Accept a signal as an order; fill it now if the fill model is immediate."""
        if signal.action is _HOLD:
            return None
        h = self.histories.get(signal.instrument)
        order = self.book.create(strategy_id, signal, ts, h.cursor if h is not None else -1)
        if h is None:
            self._reject(order, ts, f"no data for {signal.instrument} in this run; add it to the strategy's instruments")
        elif order.order_type is _LIMIT:
            self.book.work(order, _OPEN)
        elif self.fill_model.immediate:
            i = h.cursor
            price = self.fill_model.market_price(
                order.side is _BUY, h.open_mv[i], h.high_mv[i], h.low_mv[i], h.close_mv[i])
            self.fill_at(order, price, ts, timeline_bar)
        else:
            self.book.work(order)
        return order

    def submit_at(self, strategy_id: str, signal: Signal, price: float, ts: int, timeline_bar: int) -> Order:
        """Create a market order and fill it at ``price`` now (end-of-data close-outs)."""
        h = self.histories.get(signal.instrument)
        order = self.book.create(strategy_id, signal, ts, h.cursor if h is not None else -1)
        self.fill_at(order, price, ts, timeline_bar)
        return order

    def deny(self, strategy_id: str, signal: Signal, ts: int, reason: str) -> Order:
        """Record an order refused before it reached the market (risk limits): REJECTED, journaled."""
        h = self.histories.get(signal.instrument)
        order = self.book.create(strategy_id, signal, ts, h.cursor if h is not None else -1)
        self._reject(order, ts, reason)
        return order

    # --- matching ------------------------------------------------------------------

    def on_bar(self, instrument: str, i: int, ts: int, timeline_bar: int) -> None:
        """Match the instrument's working orders against its bar ``i`` (backtests)."""
        h = self.histories[instrument]
        self._match(instrument, i, h.open_mv[i], h.high_mv[i], h.low_mv[i], h.close_mv[i], ts, timeline_bar)

    def on_tick(self, instrument: str, price: float, ts: int, timeline_bar: int) -> None:
        """Match working orders against a live trade price (paper trading).

        A market order fills at the tick (moved by the fill model's slippage). A limit
        order placed since the previous tick fills at the tick's price if that is already
        at or through the limit (it was marketable). One that was resting at the previous
        tick fills at its limit once the price trades through it: trades happened between
        the two ticks at every price in between. Orders placed on the last closed candle
        are eligible: the tick belongs to the bar that is still forming.
        """
        prev = self._last_tick.get(instrument)
        self._last_tick[instrument] = price
        working = self.pending[instrument]
        if not working:
            return
        i = self.histories[instrument].length
        resting = self._resting
        for order in working[:]:
            status = order.status
            if order.created_bar >= i or (status is not _PENDING and status is not _OPEN):
                continue
            buy = order.side is _BUY
            if order.order_type is _MARKET:
                fill_price = self.fill_model.market_price(buy, price, price, price, price)
            else:
                o = prev if prev is not None and order.order_id in resting else price
                fill_price = _limit_price(buy, order.limit_price, o, max(o, price), min(o, price))
                if fill_price is None:
                    resting.add(order.order_id)
                    continue
            resting.discard(order.order_id)
            self.fill_at(order, fill_price, ts, timeline_bar)

    def _match(self, instrument: str, i: int, o: float, hi: float, lo: float, c: float,
               ts: int, timeline_bar: int) -> None:
        working = self.pending[instrument]
        for order in working[:]:
            status = order.status
            if order.created_bar >= i or (status is not _PENDING and status is not _OPEN):
                continue  # submitted on this bar, or cancelled by a fill callback meanwhile
            buy = order.side is _BUY
            if order.order_type is _MARKET:
                price = self.fill_model.market_price(buy, o, hi, lo, c)
            else:
                price = _limit_price(buy, order.limit_price, o, hi, lo)
                if price is None:
                    continue
            self.fill_at(order, price, ts, timeline_bar)

    def fill_at(self, order: Order, price: float, ts: int, timeline_bar: int) -> None:
        """Fill the whole remaining quantity at ``price``, or reject it if the account cannot pay."""
        buy = order.side is _BUY
        qty = order.quantity - order.filled_quantity
        inst = order.instrument
        commission = self.cost_model.charges(CostContext(
            self.instruments.get(inst) or Instrument(inst), self.products.get(inst, self.default_product),
            buy, qty, price, ts))
        closing, opening = self.ledger.opening_quantity(order.strategy_id, inst, qty if buy else -qty)
        if opening:
            need = opening * price + commission
            available = self._margin_available(inst, price) + closing * price
            if need > available + _EPS:
                self._reject(order, ts, f"insufficient funds: needs {need:,.2f}, available {available:,.2f}")
                return
        # the simulator fills the whole remaining quantity, so one fill per order
        self.book.apply_fill(order, Fill(order.order_id + "-F1", order.order_id, order.strategy_id, inst,
                                         order.side, qty, price, commission, ts, timeline_bar))

    def _margin_available(self, instrument: str, price: float) -> float:
        """Equity minus gross exposure, valuing ``instrument`` at ``price`` and others at their close."""
        equity = self.ledger.cash
        exposure = 0.0
        for inst, qty in self.ledger.net.items():
            if not qty:
                continue
            if inst == instrument:
                last = price
            else:
                h = self.histories[inst]
                last = h.close_mv[h.cursor]
            equity += qty * last
            exposure += abs(qty) * last
        return equity - exposure

    def _reject(self, order: Order, ts: int, reason: str) -> None:
        self.book.set_status(order, OrderStatus.REJECTED, reason, ts)

    # --- management ----------------------------------------------------------------

    def cancel(self, order_id: str, strategy_id: str, ts: int | None = None, reason: str = "cancelled by strategy") -> bool:
        """Cancel a working order of ``strategy_id``; False if it is unknown or already final."""
        order = self.book.working(order_id, strategy_id)
        if order is None:
            return False
        self.book.set_status(order, OrderStatus.CANCELLED, reason, ts)
        return True

    def modify(self, order_id: str, strategy_id: str, quantity: int | None, price: float | None) -> bool:
        """Change a working order's quantity or limit price."""
        order = self.book.working(order_id, strategy_id)
        if order is None:
            return False
        if quantity is not None and quantity <= order.filled_quantity:
            raise ValueError(f"new quantity {quantity} must exceed the filled {order.filled_quantity}")
        if price is not None and (order.order_type is not OrderType.LIMIT or price <= 0):
            raise ValueError("only a LIMIT order's price can be modified, to a positive price")
        if price is not None:
            self._resting.discard(order_id)  # a moved limit meets the next price as if new
        self.book.modify(order, quantity, price)
        return True

    def open_orders(self, strategy_id: str | None = None, instrument: str | None = None) -> list[Order]:
        """Working orders, optionally of one strategy and/or one instrument."""
        return self.book.open_orders(strategy_id, instrument)

    def expire_all(self, ts: int, reason: str) -> int:
        """Expire every working order (end of a backtest); returns how many."""
        n = 0
        for working in self.pending.values():
            for order in working[:]:
                self.book.set_status(order, OrderStatus.EXPIRED, reason, ts)
                n += 1
        return n


def _limit_price(buy: bool, limit: float, o: float, hi: float, lo: float) -> float | None:
    """Fill price of a limit order on a bar, or None when the bar never reached the limit."""
    if buy:
        if o <= limit:
            return o  # gapped through: the open is better than the limit
        return limit if lo <= limit else None
    if o >= limit:
        return o
    return limit if hi >= limit else None
