"""The simulated broker used by backtests and paper trading.

It matches market and limit orders against bars, charges costs, refuses what the account
cannot pay for, and books each fill in the ledger exactly once. Work happens per order
event: a bar with nothing pending costs one truthiness check in the engine.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Callable

from algocli.broker.basket import BasketLeg, basket_need, describe_leg
from algocli.broker.costs import (
    AccountConfig, CostContext, CostModel, PercentCommission, flat_charges, price_fill, replay_charges,
)
from algocli.broker.fill_models import FillModel
from algocli.broker.orderbook import OrderBook, check_modify, late_entry_refusal, order_refusal
from algocli.domain.models import (
    Fill, Instrument, Order, OrderSide, OrderStatus, OrderType, Signal, SignalAction,
)
from algocli.domain.session import decision_lag_ns, ist_date
from algocli.market.products import AUTO_SQUAREOFF_TAG, INTRADAY_PRODUCTS, ProductRules
from algocli.market.ticks import round_to_tick

if TYPE_CHECKING:
    from algocli.data.history import History
    from algocli.portfolio.ledger import Ledger

_EPS = 1e-9
# Enum members as module globals: attribute lookups on Enum classes are slow per event.
_BUY, _SELL = OrderSide.BUY, OrderSide.SELL
_MARKET, _LIMIT = OrderType.MARKET, OrderType.LIMIT
_PENDING, _OPEN = OrderStatus.PENDING, OrderStatus.OPEN
_HOLD = SignalAction.HOLD
#: Tags of the orders the broker places itself (``orders.csv`` marks those exits).
SQUAREOFF_TAG = AUTO_SQUAREOFF_TAG
EXPIRY_TAG = "expiry"


class SimulatedBrokerConfig(AccountConfig):
    """``broker:`` keys for ``name: simulated``: the live brokers' ``product`` and ``products``,
    and the charges: ``commission_rate`` (flat) or ``charges`` with ``rounding`` (Indian)."""


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
            cost model, the product rules (``order_refusal``) and the risk controller's
            square-off; ``default_product`` for the others (``INTRADAY``, as the live
            brokers' configs default to).
        rules: The product rules (``algocli.market.products.ProductRules``): INTRADAY square-off
            times and margin rates. None (runs that name no product and no charges): every
            position needs its whole value, as before, and nothing is squared off.

    Every order is checked as the exchange and broker would (``order_refusal``: lots, ticks,
    shorts by product) and REJECTED with the reason if it fails. A fill model that moves
    prices off the tick (slippage) has its prices rounded to the tick against the trader.
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
        rules: ProductRules | None = None,
    ) -> None:
        self.ledger = ledger
        self.rules = rules
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
        self._to_tick = getattr(fill_model, "off_tick", False)
        # Charges with per-day state (Indian charges' unsettled delivery quantity) are
        # rebuilt from the fills a resumed paper run restored before its first new fill.
        self._charges_state = getattr(cost_model, "book", None) is not None
        # A flat percent (the backtesting.py comparisons, the benchmark) needs no per-fill context.
        self._flat_rate = cost_model.rate if type(cost_model) is PercentCommission else None
        # Instruments that neither expire nor trade in lots: ``_refusal``'s fast path.
        self._plain = frozenset(i for i, m in self.instruments.items() if m.expiry is None and not m.is_derivative)
        self._charges_warm = not self._charges_state
        self._last_tick: dict[str, float] = {}  # paper: previous trade price per instrument
        self._resting: set[str] = set()  # paper: limit orders that have already seen a tick
        self._baskets: set[str] = set()  # legs of accepted baskets: their margin was checked together

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
        order = self.book.create(strategy_id, signal, ts, h.clock.cursor if h is not None else -1)
        if h is None:
            self._reject(order, ts, f"no data for {signal.instrument} in this run; add it to the strategy's instruments")
            return order
        reason = self._refusal(order, ts)
        if reason:
            self._reject(order, ts, reason)
        else:
            self._route(order, h, ts, timeline_bar)
        return order

    def _route(self, order: Order, h: History, ts: int, timeline_bar: int) -> None:
        """Put an accepted order to work, or fill it now if the fill model is immediate."""
        if order.order_type is _LIMIT:
            self.book.work(order, _OPEN)
        elif self.fill_model.immediate:
            i = h.clock.cursor
            price = self._market_price(order, h.open_mv[i], h.high_mv[i], h.low_mv[i], h.close_mv[i], ts)
            self.fill_at(order, price, ts, timeline_bar)
        else:
            self.book.work(order)

    def submit_basket(self, strategy_id: str, signals: list[Signal], ts: int, timeline_bar: int,
                      tag: str) -> list[Order]:
        """Place several legs all or none: each leg passes the exchange's and broker's checks, and the
        margin of all of them together (each leg's opening margin at its limit price or last close,
        plus its charges; no spread benefit) fits in the available margin. Otherwise every leg is
        REJECTED with the reason naming the failing leg.

        Margin is checked here, when the basket is placed, as a broker checks a basket; an accepted
        leg is not refused again for margin when it fills (so a basket is never left half filled by
        the price moving between placement and fill). Limit legs then fill on their own prices.

        Returns:
            The legs' orders, in order.
        """
        orders = [self.book.create(strategy_id, s, ts, self._cursor(s.instrument)) for s in signals]
        reason = self._basket_refusal(orders, ts)
        if reason:
            for order in orders:
                self._reject(order, ts, f"basket {tag}: {reason}; no leg was placed")
            return orders
        self._baskets.update(o.order_id for o in orders)
        for order in orders:
            self._route(order, self.histories[order.instrument], ts, timeline_bar)
        return orders

    def _cursor(self, instrument: str) -> int:
        h = self.histories.get(instrument)
        return h.cursor if h is not None else -1

    def _basket_refusal(self, orders: list[Order], ts: int) -> str:
        """Why a basket cannot be placed whole (naming the first failing leg), or ""."""
        legs = []
        for k, order in enumerate(orders, 1):
            inst = order.instrument
            leg = describe_leg(k, order)
            h = self.histories.get(inst)
            if h is None:
                return f"{leg}: no data for it in this run"
            reason = self._refusal(order, ts)
            if reason:
                return f"{leg}: {reason}"
            price = order.limit_price if order.limit_price is not None else (
                h.close_mv[h.cursor] if h.cursor >= 0 else self._last_tick.get(inst))  # paper: the last trade
            if price is None:
                return f"{leg}: no price yet to check its margin against; place it from its first bar on"
            legs.append(BasketLeg(inst, self.instruments.get(inst) or Instrument(inst),
                                  self.products.get(inst, self.default_product), order.side is _BUY, order.quantity,
                                  price, ts))
        available = self.available_margin()
        for k, need in enumerate(basket_need(legs, self.ledger.net, self.rules, self.cost_model), 1):
            if need > available + _EPS:
                return (f"insufficient margin for the whole basket: with {describe_leg(k, orders[k - 1])} it needs "
                        f"{need:,.2f} (margin and charges of legs 1-{k}); available margin {available:,.2f}")
        return ""

    def _refusal(self, order: Order, ts: int) -> str:
        """Why the exchange or broker would refuse ``order`` (lots, ticks, product), or ""."""
        inst = order.instrument
        if (order.limit_price is None and self.rules is None and inst in self._plain
                and (order.side is _BUY or self.products.get(inst, self.default_product) in INTRADAY_PRODUCTS)):
            return ""  # a market order in an equity, intraday or a buy: nothing to refuse (most orders)
        pos = self.ledger.position(order.strategy_id, inst)
        held = pos.quantity if pos is not None else 0
        model = self.instruments.get(inst) or Instrument(inst)
        if model.expiry is not None and ist_date(ts) > model.expiry:
            return f"{model.hrn} expired on {model.expiry.isoformat()}; trade a live contract (ctx.option picks one)"
        product = self.products.get(inst, self.default_product)
        buy = order.side is _BUY
        reason = order_refusal(model, product, buy, order.quantity, order.limit_price, held, ts)
        if reason or self.rules is None:
            return reason
        return late_entry_refusal(self.rules, model, product, buy, order.quantity, held, ts + self._bar_ns(inst))

    def _bar_ns(self, instrument: str) -> int:
        """``decision_lag_ns`` of the instrument's candles: its orders were decided at their close."""
        h = self.histories.get(instrument)
        return decision_lag_ns(h.interval if h is not None else None)

    def _market_price(self, order: Order, o: float, hi: float, lo: float, c: float, ts: int) -> float:
        """The fill model's price for a market order, on the tick against the trader if it moved off it."""
        buy = order.side is _BUY
        price = self.fill_model.market_price(buy, o, hi, lo, c)
        if self._to_tick:
            inst = order.instrument
            price = round_to_tick(self.instruments.get(inst) or Instrument(inst), price, buy, ist_date(ts))
        return price

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
        o, hi, lo, c = h.open_mv[i], h.high_mv[i], h.low_mv[i], h.close_mv[i]
        for order in self.pending[instrument][:]:
            status = order.status
            if order.created_bar >= i or order.created_ts >= ts or (status is not _PENDING and status is not _OPEN):
                continue  # submitted on this bar or at this instant, or cancelled by a fill callback meanwhile
            if order.order_type is _MARKET:
                price = (self._market_price(order, o, hi, lo, c, ts) if self._to_tick
                         else self.fill_model.market_price(order.side is _BUY, o, hi, lo, c))
            else:
                price = _limit_price(order.side is _BUY, order.limit_price, o, hi, lo)
                if price is None:
                    continue
            self.fill_at(order, price, ts, timeline_bar)

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
            if order.order_type is _MARKET:
                fill_price = self._market_price(order, price, price, price, price, ts)
            else:
                buy = order.side is _BUY
                o = prev if prev is not None and order.order_id in resting else price
                fill_price = _limit_price(buy, order.limit_price, o, max(o, price), min(o, price))
                if fill_price is None:
                    resting.add(order.order_id)
                    continue
            resting.discard(order.order_id)
            self.fill_at(order, fill_price, ts, timeline_bar)

    def fill_at(self, order: Order, price: float, ts: int, timeline_bar: int, fee=None) -> None:
        """Fill the whole remaining quantity at ``price``, or reject it if the account cannot pay.

        The fill carries its charges by kind (``price_fill``); their total is what the ledger
        deducts and what the funds check counts. With product rules the part that opens exposure
        needs its margin (``ProductRules.blocked``) out of the available margin, else its whole value.

        Args:
            fee: A ``Breakdown`` added to the fill's charges (the broker's square-off fee).
        """
        buy = order.side is _BUY
        qty = order.quantity - order.filled_quantity
        inst = order.instrument
        if not self._charges_warm:  # a resumed paper run: rebuild the day's charges state first
            self._charges_warm = True
            replay_charges(self.cost_model, (self._cost_context(f.instrument, f.side is _BUY, f.quantity, f.price, f.ts)
                                             for f in self.book.fills))
        closing, opening = self.ledger.opening_quantity(order.strategy_id, inst, qty if buy else -qty)
        saved = None
        if opening:
            need, available, what = self._margin_need(order, inst, buy, closing, opening, price)
            # A stateful cost model (Indian charges) books this fill in its day's state: keep a
            # copy to put back if the charges are what the account cannot pay. Charges stay far
            # below 5 % + Rs 1,000 of the order, so only an order that close to the edge needs one.
            if self._charges_state and need * 1.05 + 1000.0 > available:
                saved = copy.deepcopy(self.cost_model.book)
        flat = self._flat_rate
        if flat is not None:  # all of it brokerage (``flat_charges``): the tuple is made only for a fee
            total = qty * price * flat
            charges = None
        else:
            charges = price_fill(self.cost_model, self._cost_context(inst, buy, qty, price, ts))
            total = charges[0]
        if opening:
            need += total
            if need > available + _EPS and order.order_id not in self._baskets:
                if saved is not None:
                    self.cost_model.book = saved
                if what:
                    self._reject(order, ts, f"insufficient margin: needs {need:,.2f} = {what} + {total:,.2f} "
                                            f"charges; available margin {available:,.2f} (cash "
                                            f"{self.ledger.cash:,.2f})")
                else:
                    self._reject(order, ts, f"insufficient funds: needs {need:,.2f}, available {available:,.2f}")
                return
        if fee is not None and fee.total:
            charges = _with_fee(charges or flat_charges(total), fee)
            total = charges[0]
        kinds = (total,) if charges is None else charges[1:]  # a flat rate's is all brokerage, the rest 0
        # the simulator fills the whole remaining quantity, so one fill per order
        oid = order.order_id
        self.book.apply_fill(order, Fill(oid + "-F1", oid, order.strategy_id, inst, order.side, qty, price, total,
                                         ts, timeline_bar, *kinds))

    def _cost_context(self, inst: str, buy: bool, qty: int, price: float, ts: int) -> CostContext:
        return CostContext(self.instruments.get(inst) or Instrument(inst),
                           self.products.get(inst, self.default_product), buy, qty, price, ts)

    def _margin_need(self, order: Order, inst: str, buy: bool, closing: int, opening: int,
                     price: float, held: int | None = None) -> tuple[float, float, str]:
        """(what the opening part needs before charges, the margin available to it, how the need was
        worked out; "" without product rules, where it is the whole value). ``held``: the account's
        net position before the order (default: the ledger's)."""
        rules = self.rules
        if rules is None:
            return opening * price, self._margin_available(inst, price) + closing * price, ""
        model = self.instruments.get(inst) or Instrument(inst)
        product = self.products.get(inst, self.default_product)
        pct, basis, unit = rules.margin_basis(model, product, not buy, price)
        if held is None:
            held = self.ledger.net.get(inst, 0)
        released = rules.blocked(model, product, held, price) - rules.blocked(
            model, product, held + (closing if buy else -closing), price)
        need = opening * unit * pct / 100.0
        what = f"{pct:g}% of {opening * unit:,.2f} {basis} ({product} {model.hrn})"
        return need, self._margin_available(inst, price) + released, what

    def _margin_available(self, instrument: str, price: float) -> float:
        """Equity minus the margin open positions block (their whole value without product rules),
        valuing ``instrument`` at ``price`` and others at their close.

        Without product rules a long position adds its value to equity and blocks as much, so only
        shorts change the result: the check walks the ledger's shorts (none, for a long-only
        strategy), not every open position. Rules block a percentage, so there every position counts.
        """
        ledger = self.ledger
        equity = ledger.cash
        blocked = 0.0
        rules = self.rules
        net = ledger.net
        for inst in (ledger.shorts if rules is None else net):
            qty = net[inst]
            if not qty:
                continue
            if inst == instrument:
                last = price
            else:
                h = self.histories[inst]
                last = h.close_mv[h.cursor]
            equity += qty * last
            if rules is None:
                blocked += abs(qty) * last
            else:
                blocked += rules.blocked(self.instruments.get(inst) or Instrument(inst),
                                         self.products.get(inst, self.default_product), qty, last)
        return equity - blocked

    def available_margin(self) -> float:
        """Margin available now (equity minus what positions block), every instrument at its last close."""
        return self._margin_available("", 0.0)

    # --- the broker's own orders ---------------------------------------------------------

    def is_intraday(self, instrument: str) -> bool:
        """True when ``instrument`` trades under an INTRADAY (MIS) product."""
        return self.products.get(instrument, self.default_product).upper() in INTRADAY_PRODUCTS

    def square_off(self, instrument: str, price: float, ts: int, timeline_bar: int) -> int:
        """The broker's INTRADAY square-off of ``instrument``: cancel its working orders and close
        every strategy's position at ``price`` with the square-off fee, tagged ``auto-squareoff``.

        Returns:
            The number of positions closed.
        """
        model = self.instruments.get(instrument) or Instrument(instrument)
        fee_of = getattr(self.cost_model, "squareoff_fee", None)
        fee = fee_of(model, ts) if fee_of is not None else None
        return self._close_all(instrument, ts, SQUAREOFF_TAG, "cancelled by the broker's INTRADAY square-off",
                               lambda order: self.fill_at(order, price, ts, timeline_bar, fee))

    def settle_expiry(self, instrument: str, price: float, ts: int, timeline_bar: int) -> int:
        """Settle a future on its expiry day: cancel its working orders and close every position at
        ``price`` (the expiry day's close) with the charges of a fill, tagged ``expiry``.

        Brokers differ in public answers here; Zerodha's support says open futures "will be closed at
        the settlement price on expiry. Normal brokerage and charges apply"
        (https://tradingqna.com/t/brokerage-charged-if-f-o-contracts-held-till-expiry/47517), and a
        charged close is the cautious figure for a backtest."""
        return self._close_all(instrument, ts, EXPIRY_TAG, "the contract expired",
                               lambda order: self.fill_at(order, price, ts, timeline_bar, None))

    def settle_option(self, instrument: str, settlement: float, ts: int, timeline_bar: int) -> int:
        """Settle a cash-settled option at expiry: cancel its working orders and close every position
        at its intrinsic value against ``settlement`` (the underlying's close on the expiry day),
        tagged ``expiry``; an option out of the money closes at 0.

        The only charge is STT on exercise, paid by a holder of an option that expires in the money,
        on intrinsic value x the account's net long quantity (``_exercised``) at the rate of the expiry
        date (the cost model's ``exercise_stt``: 0.125 %, 0.15 % from 2026-04-01). No STT is due on an option that expires
        worthless, nor from a writer (https://cleartax.in/s/securities-transaction-tax-stt). Brokerage
        and exchange fees on exercise differ by broker and are not charged.

        Returns:
            The number of positions settled.
        """
        model = self.instruments.get(instrument) or Instrument(instrument)
        strike = model.strike or 0.0
        gap = settlement - strike if model.option_type == "CE" else strike - settlement
        intrinsic = round(max(0.0, gap), 2)
        stt_of = getattr(self.cost_model, "exercise_stt", None)
        exercised = self._exercised(instrument) if intrinsic > 0 and stt_of is not None else {}

        def book(order: Order) -> None:
            stt = 0.0
            units = exercised.get(order.strategy_id, 0)
            if order.side is _SELL and units:  # a holder's exercise
                stt = stt_of(model, units, intrinsic, ts)
            self.book.apply_fill(order, Fill(order.order_id + "-F1", order.order_id, order.strategy_id, instrument,
                                             order.side, order.quantity, intrinsic, stt, ts, timeline_bar, stt=stt))
        return self._close_all(instrument, ts, EXPIRY_TAG, "the contract expired", book)

    def _exercised(self, instrument: str) -> dict[str, int]:
        """The units of ``instrument`` each strategy's long position has exercised at expiry.

        The exchange nets one client's positions in a contract: strategies of one account that
        are long 75 and short 50 hold 25, and only those are exercised (and pay STT). The net is
        given to the long positions in strategy order, each up to its own quantity.
        """
        held = [(sid, pos.quantity) for (sid, inst), pos in sorted(self.ledger.positions.items())
                if inst == instrument and pos.quantity]
        left = sum(q for _, q in held)
        exercised = {}
        for sid, quantity in held:
            if quantity > 0 and left > 0:
                exercised[sid] = min(quantity, left)
                left -= exercised[sid]
        return exercised

    def _close_all(self, instrument: str, ts: int, tag: str, why: str, fill: Callable[[Order], None]) -> int:
        for order in self.book.open_orders(instrument=instrument):
            self.book.set_status(order, OrderStatus.CANCELLED, why, ts)
        n = 0
        h = self.histories[instrument]
        for (sid, inst), pos in sorted(self.ledger.positions.items()):
            if inst != instrument or not pos.quantity:
                continue
            side = SignalAction.SELL if pos.quantity > 0 else SignalAction.BUY
            order = self.book.create(sid, Signal(inst, side, abs(pos.quantity), _MARKET, tag=tag), ts, h.cursor)
            fill(order)
            n += 1
        return n

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
        check_modify(self.instruments.get(order.instrument) or Instrument(order.instrument), quantity, price,
                     order.updated_ts)
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


def _with_fee(charges: tuple[float, ...], fee) -> tuple[float, ...]:
    """``price_fill``'s tuple with a fee's brokerage and GST added (and its total)."""
    total, brokerage, stt, exchange, ipft, sebi, stamp, dp, gst = charges
    return (round(total + fee.total, 2), round(brokerage + fee.brokerage, 2), stt, exchange, ipft, sebi, stamp, dp,
            round(gst + fee.gst, 2))


def _limit_price(buy: bool, limit: float, o: float, hi: float, lo: float) -> float | None:
    """Fill price of a limit order on a bar, or None when the bar never reached the limit."""
    if buy:
        if o <= limit:
            return o  # gapped through: the open is better than the limit
        return limit if lo <= limit else None
    if o >= limit:
        return o
    return limit if hi >= limit else None
