"""Bollinger-band reversion with resting limit orders.

While flat it keeps a limit buy at the lower band; once long it keeps a limit sell at the
middle band. Each bar it moves the working order to the new band with ``modify_order``,
and it cancels a stale entry when the bands widen past ``max_band_width_pct``.

It keeps no memory of its own orders: each bar it reads its working orders and position
from the context, so after a paper or live run restarts it moves or cancels the order it
placed before the restart instead of placing a second one beside it.
"""

from __future__ import annotations

import math

from pydantic import Field

from algocli import BaseStrategy, OrderSide, StrategyParams


class BollingerReversion(BaseStrategy):
    """Buy the lower Bollinger band with a limit order, take profit at the middle band."""

    class Params(StrategyParams):
        period: int = Field(20, ge=2, description="Bollinger look-back in bars")
        std: float = Field(2.0, gt=0, description="band width in standard deviations")
        quantity: int = Field(1, ge=1, description="units bought on each entry")
        max_band_width_pct: float = Field(20.0, gt=0, description="no entries when bands are wider than this % of price")

    def on_candle(self, candle):
        inst = candle.instrument
        ctx = self.context
        upper, middle, lower = ctx.bollinger_bands(inst, self.params.period, self.params.std)
        if math.isnan(middle):
            return None
        pos = ctx.get_position(inst)
        working = ctx.open_orders(inst)
        entries = [o for o in working if o.side is OrderSide.BUY]
        exits = [o for o in working if o.side is OrderSide.SELL]
        if pos is None or pos.quantity <= 0:
            self._cancel(exits)
            self._work(entries, OrderSide.BUY, inst, _tick(lower), self.params.quantity,
                       allowed=100 * (upper - lower) / middle <= self.params.max_band_width_pct)
        else:
            self._cancel(entries)
            self._work(exits, OrderSide.SELL, inst, _tick(middle), pos.quantity)
        return None

    def _work(self, orders, side: OrderSide, inst: str, price: float, quantity: int, allowed: bool = True) -> None:
        """Keep exactly one working order on ``side`` at ``price`` for ``quantity`` (none if not allowed)."""
        ctx = self.context
        if not allowed:
            self._cancel(orders)
            return
        keep, extra = (orders[0], orders[1:]) if orders else (None, [])
        self._cancel(extra)
        if keep is not None:
            quantity_change = quantity if keep.quantity != quantity and quantity > keep.filled_quantity else None
            if keep.limit_price == price and quantity_change is None:
                return
            if ctx.modify_order(keep.order_id, quantity=quantity_change, price=price):
                return
        if side is OrderSide.BUY:
            ctx.buy(inst, quantity, limit_price=price, tag="bb-entry")
        else:
            ctx.sell(inst, quantity, limit_price=price, tag="bb-exit")

    def _cancel(self, orders) -> None:
        for order in orders:
            self.context.cancel_order(order.order_id)


def _tick(price: float, tick: float = 0.05) -> float:
    """Round to the NSE cash-equity tick so the price is one an exchange would accept."""
    return round(round(price / tick) * tick, 2)
