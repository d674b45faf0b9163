"""Strategies the square-off tests load by ``module:Class`` from a run definition."""

from __future__ import annotations

from pydantic import Field

from algocli import BaseStrategy, StrategyParams


class BuyOnce(BaseStrategy):
    """Buys ``quantity`` on the first candle of its history and holds it (a resumed run never buys again)."""

    class Params(StrategyParams):
        quantity: int = Field(10, ge=1)

    def on_candle(self, candle):
        if candle.index == 0:
            self.context.buy(candle.instrument, self.params.quantity)
