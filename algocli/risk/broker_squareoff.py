"""The broker's own INTRADAY square-off, booked by a live run as the run's fills.

Dhan and Upstox close every INTRADAY position still open at their square-off time with market
orders of their own, and charge a fee for each (Dhan: 15:20 IST for NSE/BSE cash and derivatives,
https://knowledge.dhan.co/support/solutions/articles/82000832236; Upstox: 15:15 equity, 15:20
F&O, https://help.upstox.com/support/solutions/articles/248671). ``LiveRouter``
(``algocli.engine.live``) books only its own orders, the ones carrying its client ids, so without
this the fills of such an order were never booked: a running run kept showing the position the
broker had closed, and a resumed one refused to trade (the broker flat, the journal long).

An order that is not the run's is taken for the broker's square-off when it carries no client id
(the broker's orders have no ``correlationId`` / ``tag``), its product is an intraday one, its
instrument is one the run trades INTRADAY, it was placed at or after the square-off time of the
instrument's segment that day (the earlier of the broker's shipped time and the run's
``broker.squareoff``), and it closes a position the run's strategies hold. Its trades are then
booked once each, under the key the run's own fills use (``T:<trade id>``), so a restart that
reads the trade book again books nothing twice. A trade is split over the strategies that hold the
position (in id order); each part is a MARKET order tagged ``auto-squareoff`` (as the simulated
broker tags its own square-off), FILLED, with the cost model's estimated charges and, on the
order's first part, the broker's square-off fee when the model has one. What the trade closes
beyond the run's positions (the account's own) is left to the reconciliation to report.

An order that does not match (a square-off the broker advanced on a volatile day, a manual close
from the broker's app) stays someone else's, as before: a resumed run reports the difference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from algocli.domain.models import Fill, IST_OFFSET_NS, OrderSide, OrderType, Signal, SignalAction
from algocli.domain.session import DAY_NS, MINUTE_NS
from algocli.market.products import AUTO_SQUAREOFF_TAG, INTRADAY_PRODUCTS, ProductRules

if TYPE_CHECKING:
    from algocli.broker.protocol import BrokerOrder, BrokerTrade
    from algocli.engine.live import LiveRouter

__all__ = ["BrokerSquareOffs"]


class BrokerSquareOffs:
    """Recognises the broker's square-off orders among the orders that are not the router's, and
    books their trades (see the module docstring).

    Args:
        router: The live router whose books they go into.

    Attributes:
        orders: Broker order id → the square-off order, as last reported.
    """

    def __init__(self, router: LiveRouter) -> None:
        self.router = router
        self.orders: dict[str, BrokerOrder] = {}
        self._fee_paid: set[str] = set()

    def knows(self, broker_order_id: str) -> bool:
        """True for a broker order taken for the broker's square-off."""
        return broker_order_id in self.orders

    def order(self, update: BrokerOrder) -> None:
        """An update of an order that is not the router's: keep it if it is the broker's square-off,
        and book the trades of it that arrived first (held by the router)."""
        oid = update.broker_order_id
        if oid in self.orders:
            self.orders[oid] = update
            return
        if not self._is_squareoff(update):
            return
        self.orders[oid] = update
        for trade in self.router._held.pop(oid, []):
            self.router.on_broker_fill(trade)

    def fill(self, trade: BrokerTrade) -> bool:
        """Book ``trade`` if its order is the broker's square-off; False if it is not one."""
        order = self.orders.get(trade.broker_order_id)
        if order is None:
            return False
        self._book(order, trade)
        return True

    # --- recognising ------------------------------------------------------------------------------

    def _is_squareoff(self, update: BrokerOrder) -> bool:
        router = self.router
        inst = update.instrument
        if update.client_id or inst not in router.histories:
            return False
        if (update.product or "").upper() not in INTRADAY_PRODUCTS:
            return False
        if router.products.get(inst, router.default_product).upper() not in INTRADAY_PRODUCTS:
            return False
        if update.status in ("CANCELLED", "REJECTED", "EXPIRED") and not update.filled_quantity:
            return False
        minute = self._minute(inst)
        if minute is None or not update.updated_ts or (update.updated_ts + IST_OFFSET_NS) % DAY_NS < minute * MINUTE_NS:
            return False
        held = self._holders(inst, update.side is OrderSide.BUY)
        return bool(held)

    def _minute(self, inst: str) -> int | None:
        """The earliest square-off minute that applies: the broker's shipped time or the run's own."""
        router = self.router
        model = router._instrument(inst)
        name = getattr(router.broker, "name", None) or getattr(router.rules, "broker", None) or "dhan"
        minutes = [ProductRules.build(name).squareoff_minute(model, "INTRADAY")]
        if router.rules is not None:
            minutes.append(router.rules.squareoff_minute(model, "INTRADAY"))
        known = [m for m in minutes if m is not None]
        return min(known) if known else None

    def _holders(self, inst: str, closing_buy: bool) -> list[tuple[str, int]]:
        """(strategy, quantity) of the positions in ``inst`` a buy (or a sell) closes, by strategy id."""
        return [(sid, pos.quantity) for (sid, i), pos in sorted(self.router.ledger.positions.items())
                if i == inst and pos.quantity and (pos.quantity < 0) == closing_buy]

    # --- booking ----------------------------------------------------------------------------------

    def _book(self, order: BrokerOrder, trade: BrokerTrade) -> None:
        from algocli.broker.costs import CostContext, price_fill  # risk sits below broker: not at import time

        router = self.router
        base = f"T:{trade.trade_id}"
        if base in router.ledger.booked:
            return
        inst, buy = trade.instrument, trade.side is OrderSide.BUY
        action = SignalAction.BUY if buy else SignalAction.SELL
        h = router.histories.get(inst)
        model = router._instrument(inst)
        fee_of = getattr(router.cost_model, "squareoff_fee", None)
        left, parts = trade.quantity, []
        for k, (sid, held) in enumerate(self._holders(inst, buy)):
            take = min(left, abs(held))
            if take <= 0:
                break
            ours = router.book.create(sid, Signal(inst, action, take, OrderType.MARKET, tag=AUTO_SQUAREOFF_TAG),
                                      trade.ts, h.cursor if h is not None else -1)
            charges = price_fill(router.cost_model, CostContext(model, "INTRADAY", buy, take, trade.price, trade.ts))
            if fee_of is not None and order.broker_order_id not in self._fee_paid:
                self._fee_paid.add(order.broker_order_id)
                charges = _with_fee(charges, fee_of(model, trade.ts))
            fill = Fill(base if k == 0 else f"{base}/{k + 1}", ours.order_id, sid, inst, ours.side, take, trade.price,
                        charges[0], trade.ts, router._timeline_bar(), *charges[1:], estimated=True)
            router.book.apply_fill(ours, fill)
            router.journal.status(ours)
            left -= take
            parts.append(f"{sid} {take}")
        if parts and router.events is not None:
            from algocli.domain.candle import ns_to_ist

            router.events.append(
                f"the broker squared off {inst} (its INTRADAY auto square-off, order {order.broker_order_id}): "
                f"{action.value} {trade.quantity - left} @ {trade.price:g} at {ns_to_ist(trade.ts):%Y-%m-%d %H:%M} "
                f"IST booked for {', '.join(parts)} (tag {AUTO_SQUAREOFF_TAG})")


def _with_fee(charges: tuple[float, ...], fee) -> tuple[float, ...]:
    """``price_fill``'s tuple with a fee's brokerage and GST added (and its total)."""
    total, brokerage, stt, exchange, ipft, sebi, stamp, dp, gst = charges
    return (round(total + fee.total, 2), round(brokerage + fee.brokerage, 2), stt, exchange, ipft, sebi, stamp, dp,
            round(gst + fee.gst, 2))
