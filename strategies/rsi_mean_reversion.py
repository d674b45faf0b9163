"""RSI mean reversion: buy when RSI is oversold, sell when it is overbought."""

from __future__ import annotations

from pydantic import Field, model_validator

from algocli import BaseStrategy, Signal, SignalAction, StrategyParams


class RsiMeanReversion(BaseStrategy):
    """Long-only RSI reversion.

    Buys ``quantity`` when RSI falls below ``oversold`` while flat, and sells the whole
    position when RSI rises above ``overbought``.
    """

    class Params(StrategyParams):
        period: int = Field(14, ge=2, description="RSI look-back in bars")
        oversold: float = Field(30.0, gt=0, lt=100, description="buy below this RSI")
        overbought: float = Field(70.0, gt=0, lt=100, description="sell above this RSI")
        quantity: int = Field(1, ge=1, description="units bought on each entry")

        @model_validator(mode="after")
        def _ordered(self):
            if self.oversold >= self.overbought:
                raise ValueError("oversold must be below overbought")
            return self

    def on_candle(self, candle):
        inst = candle.instrument
        rsi = self.context.rsi(inst, self.params.period)
        pos = self.context.get_position(inst)
        if rsi < self.params.oversold and pos is None:
            return Signal(inst, SignalAction.BUY, self.params.quantity)
        if rsi > self.params.overbought and pos is not None and pos.quantity > 0:
            return Signal(inst, SignalAction.SELL, pos.quantity)
        return None
