"""Strategies the resume tests load by ``module:Class`` in ``algo`` child processes."""

from __future__ import annotations

from pydantic import Field

from algocli import BaseStrategy, StrategyParams


class RaiseAndChase(BaseStrategy):
    """Rests a buy far below the market, raises its quantity, then chases the market.

    On the first candle it buys ``quantity`` at 90 % of the close; on the second it raises
    the order to ``raised`` units (still far away); from the fourth on it moves the price
    alone to just above the close, where the next ticks fill it. What it knows of its
    order it reads from the context.
    """

    class Params(StrategyParams):
        quantity: int = Field(10, ge=1)
        raised: int = Field(20, ge=2)

    def on_candle(self, candle):
        ctx = self.context
        inst = candle.instrument
        working = ctx.open_orders(inst)
        if candle.index == 0 and not working:
            ctx.buy(inst, self.params.quantity, limit_price=_tick(candle.close * 0.9))
        elif candle.index == 1 and working:
            ctx.modify_order(working[0].order_id, quantity=self.params.raised, price=_tick(candle.close * 0.91))
        elif candle.index >= 3 and working and working[0].limit_price < candle.close * 0.95:
            ctx.modify_order(working[0].order_id, price=_tick(candle.close * 1.002))
        return None


def _tick(price: float) -> float:
    return round(round(price / 0.05) * 0.05, 2)
