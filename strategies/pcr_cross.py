"""Index candle crossover confirmed by the option chain's put-call ratio, traded through ATM options.

In the spirit of ProTrade's ``CombinedSignalEngine``: a price signal on the index (the fast
average of its closes crossing the slow one) is acted on only when the chain's positioning
agrees with it, and it is traded with the index's at-the-money option rather than the index.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from algocli import BaseStrategy, StrategyParams


class PcrCross(BaseStrategy):
    """Trade the ATM option on a crossover of the underlying that PCR confirms.

    Signal, on each closed candle of the underlying (the strategy's one instrument):

    * **bullish**: the fast SMA of closes crosses above the slow one and the OI PCR of the
      chosen expiry (over ``pcr_window`` strikes each side of ATM) is at least
      ``bullish_pcr``: put writers outnumber call writers, the support reading;
    * **bearish**: the fast SMA crosses below the slow one and the OI PCR is at most
      ``bearish_pcr``.

    Trade: flat, it buys ``lots`` lots of the ATM call (bullish) or put (bearish) of
    ``expiry``, the lot size being that contract's; with ``write`` it sells the ATM put
    (bullish) or call (bearish) instead, collecting the premium. A position is closed on the
    opposite cross, or when the option's close moves ``stop_pct`` percent against the entry
    price (down for a bought option, up for a written one; checked on candle closes, so it fills
    at the next price, not at the stop). A position still open at expiry settles in cash at
    intrinsic value (the engine does that; a written option that expires worthless costs 0).
    """

    class Params(StrategyParams):
        fast_period: int = Field(5, ge=1, description="candles in the fast average of the underlying's closes")
        slow_period: int = Field(25, ge=2, description="candles in the slow average")
        bullish_pcr: float = Field(1.0, ge=0, description="OI PCR at or above which a bullish cross is taken")
        bearish_pcr: float = Field(1.0, ge=0, description="OI PCR at or below which a bearish cross is taken")
        pcr_window: int | None = Field(10, ge=0, description="strikes each side of ATM in the PCR; none: the whole chain")
        expiry: str = Field("current", description="expiry code of the options traded (current, next, a date)")
        lots: int = Field(1, ge=1, description="lots bought on each entry")
        stop_pct: float = Field(30.0, gt=0, lt=100, description="percent move against the entry premium that exits")
        write: bool = Field(False, description="sell options (put on bullish, call on bearish) instead of buying")

        @model_validator(mode="after")
        def _fast_below_slow(self):
            if self.fast_period >= self.slow_period:
                raise ValueError("fast_period must be smaller than slow_period")
            return self

    def on_init(self) -> None:
        p, ctx = self.params, self.context
        self._averages = {inst: (ctx.line("SMA", inst, timeperiod=p.fast_period),
                                 ctx.line("SMA", inst, timeperiod=p.slow_period)) for inst in self.instruments}
        self._held: str | None = None  # the option held (or written), by name
        self._bullish = False  # the signal the position was opened on
        self._entry = 0.0

    def on_candle(self, candle):
        ctx, p = self.context, self.params
        under = candle.instrument
        fast, slow = self._averages[under]
        if self._held is not None and ctx.get_position(self._held) is None:
            self._held = None  # settled at expiry
        if self._held is not None and self._stopped():
            return self._exit("stop")
        cross = fast.cross(slow)  # 0 while warming up; every candle is read, for the stop
        up, down = cross > 0, cross < 0
        if self._held is not None:
            if (self._bullish and down) or (not self._bullish and up):
                return self._exit("reverse")
            return None
        if not (up or down):
            return None
        figures = ctx.pcr(under, expiry=p.expiry, window=p.pcr_window)  # None: no chain yet
        ratio = None if figures is None else figures.oi_pcr
        if ratio is None or (up and ratio < p.bullish_pcr) or (down and ratio > p.bearish_pcr):
            return None
        right = ("PE" if up else "CE") if p.write else ("CE" if up else "PE")
        pick = ctx.option(under, expiry=p.expiry, strike="ATM", right=right)
        self._held, self._bullish, self._entry = pick.name, up, 0.0
        (ctx.sell if p.write else ctx.buy)(pick.name, p.lots * pick.lot_size, tag="entry")
        return None

    def on_order_fill(self, fill) -> None:
        if fill.instrument == self._held and self._entry == 0.0:
            self._entry = fill.price

    def _stopped(self) -> bool:
        last = self.context.get_candle(self._held)
        if not self._entry or last is None:
            return False
        move = self.params.stop_pct / 100
        if self.params.write:
            return last.close >= self._entry * (1 + move)
        return last.close <= self._entry * (1 - move)

    def _exit(self, why: str) -> None:
        held, self._held = self._held, None
        self.context.close_position(held, tag=why)
