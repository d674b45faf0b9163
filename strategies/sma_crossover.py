"""SMA crossover: buy when the fast average crosses above the slow one, sell on the cross back."""

from __future__ import annotations

from pydantic import Field, model_validator

from algocli import BaseStrategy, Signal, SignalAction, StrategyParams


class SmaCrossover(BaseStrategy):
    """Long-only moving-average crossover.

    Buys ``quantity`` when the fast SMA closes above the slow SMA having been at or below
    it on the previous bar, and sells the whole position on the opposite cross. The averages
    are indicator lines, and ``wake_on`` asks for ``on_candle`` only on the bars where they
    cross: the others cannot change what this strategy does, and a backtest skips them.
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
        ctx = self.context
        self._lines = {}  # instrument -> (fast SMA, slow SMA)
        for inst in self.instruments:
            fast = ctx.line("SMA", inst, timeperiod=self.params.fast_period)
            slow = ctx.line("SMA", inst, timeperiod=self.params.slow_period)
            self._lines[inst] = (fast, slow)
            ctx.wake_on(fast.crossing(slow))  # on_candle only on the bars where the averages cross

    def on_candle(self, candle):
        inst = candle.instrument
        fast, slow = self._lines[inst]
        cross = fast.cross(slow)  # 1 crossed above on this bar, -1 below (NaN during warm-up: 0)
        if cross > 0:
            pos = self.context.get_position(inst)
            if pos is None or pos.quantity <= 0:
                return Signal(inst, SignalAction.BUY, self.params.quantity)
        elif cross < 0:
            pos = self.context.get_position(inst)
            if pos is not None and pos.quantity > 0:
                return Signal(inst, SignalAction.SELL, pos.quantity)
        return None
