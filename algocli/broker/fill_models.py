"""How the simulated broker prices a market order.

A signal raised on bar t never fills on information it could not have had:

- ``next_open`` (default): at bar t+1's open.
- ``same_close``: at bar t's close, the price the strategy just saw. Optimistic; use it
  for daily strategies that trade in the closing auction.
- ``vwap``: at bar t+1's typical price ``(high + low + close) / 3``. With OHLCV only, the
  bar's true volume-weighted price is unknown; the typical price is the usual proxy. It is
  rounded to the tick against the trader, as ``slippage`` is: a market order trades at a price
  of the book, and a fill the files show on a tick explains its P&L.
- ``slippage``: at bar t+1's open, moved against the trader by ``slippage_pct``
  (a buy pays ``open * (1 + slippage_pct)``, a sell gets ``open * (1 - slippage_pct)``),
  then rounded to the instrument's tick against the trader (a buy up, a sell down), since
  no trade happens between ticks.

Limit orders do not use the fill model: they rest from the bar after submission and fill
at the limit when the bar trades through it, or at the open when the bar gaps past it.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from algocli.domain.strict import NumbersModel


class FillModelConfig(NumbersModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlippageConfig(FillModelConfig):
    slippage_pct: float = Field(0.001, ge=0, lt=0.5, description="adverse move as a fraction, 0.001 = 0.1%")


class FillModel:
    """Base fill model. ``immediate`` models fill on the signal bar itself."""

    Config: type[FillModelConfig] = FillModelConfig
    immediate = False
    #: True when ``market_price`` can leave the tick: the broker rounds it onto the tick
    #: against the trader (``algocli.market.ticks.round_to_tick``), once per fill.
    off_tick = False

    def __init__(self, config: FillModelConfig | None = None) -> None:
        self.config = config or self.Config()

    def market_price(self, buy: bool, o: float, h: float, l: float, c: float) -> float:
        """The price a market order gets on the bar it fills on."""
        return o


class NextOpen(FillModel):
    """Fill at the next bar's open."""


class SameClose(FillModel):
    """Fill at the signal bar's close."""

    immediate = True

    def market_price(self, buy: bool, o: float, h: float, l: float, c: float) -> float:
        return c


class Vwap(FillModel):
    """Fill at the next bar's typical price, the OHLCV proxy for its VWAP, on the tick."""

    off_tick = True

    def market_price(self, buy: bool, o: float, h: float, l: float, c: float) -> float:
        return (h + l + c) / 3.0


class Slippage(FillModel):
    """Fill at the next bar's open, moved against the trader by ``slippage_pct``."""

    Config = SlippageConfig
    off_tick = True

    def __init__(self, config: SlippageConfig | None = None) -> None:
        super().__init__(config)
        self._up = 1.0 + self.config.slippage_pct
        self._down = 1.0 - self.config.slippage_pct

    def market_price(self, buy: bool, o: float, h: float, l: float, c: float) -> float:
        return o * (self._up if buy else self._down)
