"""Bollinger-band reversion with resting limit orders.

While flat it keeps a limit buy at the lower band; once long it keeps a limit sell at the
middle band. Each bar it moves the working order to the new band with ``modify_order``,
and it cancels a stale entry when the bands widen past ``max_band_width_pct``.
"""

from __future__ import annotations

import math

from pydantic import Field

from algocli import BaseStrategy, StrategyParams


class BollingerReversion(BaseStrategy):
    """Buy the lower Bollinger band with a limit order, take profit at the middle band."""

    class Params(StrategyParams):
        period: int = Field(20, ge=2, description="Bollinger look-back in bars")
        std: float = Field(2.0, gt=0, description="band width in standard deviations")
        quantity: int = Field(1, ge=1, description="units bought on each entry")
        max_band_width_pct: float = Field(20.0, gt=0, description="no entries when bands are wider than this % of price")

    def on_init(self) -> None:
        self._entry: dict[str, str] = {}
        self._exit: dict[str, str] = {}

    def on_candle(self, candle):
        inst = candle.instrument
        ctx = self.context
        upper, middle, lower = ctx.bollinger_bands(inst, self.params.period, self.params.std)
        if math.isnan(middle):
            return None
        pos = ctx.get_position(inst)
        if pos is None:
            self._cancel(self._exit, inst)
            self._work_entry(inst, lower, 100 * (upper - lower) / middle)
        else:
            self._cancel(self._entry, inst)
            self._work_exit(inst, middle, pos.quantity)
        return None

    def _work_entry(self, inst: str, lower: float, width_pct: float) -> None:
        price = _tick(lower)
        if width_pct > self.params.max_band_width_pct:
            self._cancel(self._entry, inst)
        elif inst in self._entry and self.context.modify_order(self._entry[inst], price=price):
            pass
        else:
            self._entry[inst] = self.context.buy(inst, self.params.quantity, limit_price=price, tag="bb-entry")

    def _work_exit(self, inst: str, middle: float, quantity: int) -> None:
        price = _tick(middle)
        if inst in self._exit and self.context.modify_order(self._exit[inst], price=price):
            return
        self._exit[inst] = self.context.sell(inst, quantity, limit_price=price, tag="bb-exit")

    def _cancel(self, orders: dict[str, str], inst: str) -> None:
        order_id = orders.pop(inst, None)
        if order_id is not None:
            self.context.cancel_order(order_id)


def _tick(price: float, tick: float = 0.05) -> float:
    """Round to the NSE cash-equity tick so the price is one an exchange would accept."""
    return round(round(price / tick) * tick, 2)
