"""Strategies the option-chain tests load by ``module:Class`` (in process and in ``algo paper`` children)."""

from __future__ import annotations

from pydantic import Field

from algocli import BaseStrategy, StrategyParams

UNDER = "NSE:NIFTY 50"


class ReadChains(BaseStrategy):
    """Reads the chain and its PCR on every candle of the underlying and keeps what it read.

    ``seen`` holds ``(ctx.now, chain, whole-chain PCR, windowed PCR)`` per candle; in paper the reads
    are what pcr.csv records.
    """

    class Params(StrategyParams):
        window: int = Field(5, ge=0)
        max_age: float = Field(0.0, ge=0)
        chain: bool = True

    def on_init(self):
        self.seen = []

    def on_candle(self, candle):
        ctx, p = self.context, self.params
        chain = ctx.option_chain(UNDER, "current", max_age=p.max_age) if p.chain else None
        whole = ctx.pcr(UNDER, "current", max_age=p.max_age)
        part = ctx.pcr(UNDER, "current", window=p.window, max_age=p.max_age)
        self.seen.append((ctx.now, chain, whole, part))
        return None
