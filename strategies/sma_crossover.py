"""SMA crossover: buy when the fast average crosses above the slow one, sell on the cross back."""

from __future__ import annotations

from pydantic import Field, model_validator

from algocli import BaseStrategy, Signal, SignalAction, StrategyParams


class SmaCrossover(BaseStrategy):
    """Long-only moving-average crossover.

    Buys ``quantity`` when the fast SMA closes above the slow SMA having been at or below
    it on the previous bar, and sells the whole position on the opposite cross.
    """

    class Params(StrategyParams):
        fast_period: int = Field(10, ge=1, description="bars in the fast average")
        slow_period: int = Field(20, ge=2, description="bars in the slow average")
        quantity: int = Field(1, ge=1, description="units bought on each entry")

        @model_validator(mode="after")
        def _fast_below_slow(self):
            if self.fast_period >= self.slow_period:
                raise ValueError("fast_period must be smaller than slow_period")
            return self

    def on_init(self) -> None:
        self._prev: dict[str, list[float]] = {}  # instrument -> [fast, slow] on the previous bar
        self._fast = self.params.fast_period
        self._slow = self.params.slow_period

    def on_candle(self, candle):
        inst = candle.instrument
        ctx = self.context
        fast = ctx.sma(inst, self._fast)
        slow = ctx.sma(inst, self._slow)
        prev = self._prev.get(inst)
        if prev is None:
            self._prev[inst] = [fast, slow]
            return None
        pf, ps = prev  # NaN during warm-up: every comparison below is False
        prev[0] = fast
        prev[1] = slow
        if pf <= ps and fast > slow:
            pos = ctx.get_position(inst)
            if pos is None or pos.quantity <= 0:
                return Signal(inst, SignalAction.BUY, self.params.quantity)
        elif pf >= ps and fast < slow:
            pos = ctx.get_position(inst)
            if pos is not None and pos.quantity > 0:
                return Signal(inst, SignalAction.SELL, pos.quantity)
        return None
