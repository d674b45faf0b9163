"""Stateless strategies the warm-up tests load by ``module:Class``: what they do on a bar depends
only on that bar and the history before it, never on which earlier bars they were called on."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from algocli import BaseStrategy, Signal, SignalAction, StrategyParams


class TrendAfter(BaseStrategy):
    """Long while SMA(fast) is above SMA(slow), flat otherwise (``fast: 1`` is the close itself);
    from ``after`` on only (an IST date; None: from the first bar)."""

    class Params(StrategyParams):
        fast: int = Field(1, ge=1)
        slow: int = Field(5, ge=2)
        after: dt.date | None = None
        quantity: int = Field(10, ge=1)

    def on_candle(self, candle):
        after = self.params.after
        if after is not None and candle.timestamp.date() < after:
            return None
        ctx, inst = self.context, candle.instrument
        fast, slow = ctx.sma(inst, self.params.fast), ctx.sma(inst, self.params.slow)
        pos = ctx.get_position(inst)
        if fast > slow and pos is None:
            return Signal(inst, SignalAction.BUY, self.params.quantity)
        if fast < slow and pos is not None:
            return Signal(inst, SignalAction.SELL, pos.quantity)
        return None


class Weekdays(BaseStrategy):
    """No indicator: buys on Mondays when flat and sells on Thursdays when long."""

    class Params(StrategyParams):
        quantity: int = Field(10, ge=1)

    def on_candle(self, candle):
        day = candle.timestamp.weekday()
        inst = candle.instrument
        pos = self.context.get_position(inst)
        if day == 0 and pos is None:
            return Signal(inst, SignalAction.BUY, self.params.quantity)
        if day == 3 and pos is not None:
            return Signal(inst, SignalAction.SELL, pos.quantity)
        return None
