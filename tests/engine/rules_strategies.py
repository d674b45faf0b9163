"""A strategy the market-rules session tests load by ``module:Class`` from a run definition."""

from __future__ import annotations

from pydantic import Field

from algocli import BaseStrategy, StrategyParams


class OffTickThenRoundTrip(BaseStrategy):
    """On its first candle: a limit buy off the tick (the exchange would refuse it) and a market
    buy; on its fourth candle: a market sell of what it bought. With ``sell_when_held`` the sell
    waits (from the fourth candle on) until the whole buy is held, so no sell is sent while the
    buy's broker orders still are."""

    class Params(StrategyParams):
        quantity: int = Field(10, ge=1)
        sell_when_held: bool = False

    def on_candle(self, candle):
        ctx = self.context
        inst = candle.instrument
        if candle.index == 0:
            ctx.buy(inst, self.params.quantity,
                    limit_price=round(ctx.round_to_tick(inst, candle.close * 0.9, "BUY") + 0.03, 2))
            ctx.buy(inst, self.params.quantity)
        elif candle.index == 3 and not self.params.sell_when_held:
            ctx.sell(inst, self.params.quantity)
        elif candle.index >= 3 and self.params.sell_when_held and not getattr(self, "_sold", False):
            pos = ctx.get_position(inst)
            if pos is not None and pos.quantity == self.params.quantity:
                self._sold = True
                ctx.sell(inst, self.params.quantity)


class BasketOnce(BaseStrategy):
    """On candle ``at`` of its first instrument: one basket of ``legs`` (instrument, side, quantity), tagged ``tag``."""

    class Params(StrategyParams):
        legs: list[tuple[str, str, int]]
        tag: str = "pair"
        at: int = Field(1, ge=0)

    def on_candle(self, candle):
        if candle.instrument == self.instruments[0] and candle.index == self.params.at:
            self.context.basket(self.params.legs, tag=self.params.tag)


class RestingLimit(BaseStrategy):
    """On its first candle: a limit buy a tenth below the close, which rests; on each later candle
    it records the statuses of its working orders (``seen``)."""

    class Params(StrategyParams):
        quantity: int = Field(1, ge=1)

    seen: list[list[str]] = []  # class-level: the test reads it after the session

    def on_candle(self, candle):
        ctx = self.context
        if candle.index == 0:
            ctx.buy(candle.instrument, self.params.quantity,
                    limit_price=ctx.round_to_tick(candle.instrument, candle.close * 0.9, "BUY"))
        else:
            RestingLimit.seen.append([o.status.value for o in ctx.open_orders()])


class CancelLater(BaseStrategy):
    """On its first candle: a limit buy a tenth below the close, which rests; on candle ``at``: its cancel."""

    class Params(StrategyParams):
        at: int = Field(3, ge=1)

    def on_candle(self, candle):
        ctx = self.context
        if candle.index == 0:
            ctx.buy(candle.instrument, 1, limit_price=ctx.round_to_tick(candle.instrument, candle.close * 0.9, "BUY"))
        elif candle.index == self.params.at:
            for order in ctx.open_orders():
                ctx.cancel_order(order.order_id)


class EntryAt(BaseStrategy):
    """Buys ``quantity`` on each candle starting at one of ``times`` (IST ``HH:MM``)."""

    class Params(StrategyParams):
        times: list[str] = ["15:10", "15:19"]
        quantity: int = Field(1, ge=1)

    def on_candle(self, candle):
        if self.context.now.strftime("%H:%M") in self.params.times:
            self.context.buy(candle.instrument, self.params.quantity)
