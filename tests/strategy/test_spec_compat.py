"""Strategies written as the specification writes them: its spellings work, and what it forbids
(a changed Signal, a string that is no action) never reaches the book as something else."""

from __future__ import annotations

from datetime import datetime

import pytest

from algocli import BaseStrategy, Signal, SignalAction
from algocli.broker.fill_models import NextOpen
from algocli.domain.instrument import Instrument
from algocli.domain.models import OrderSide, OrderStatus
from algocli.engine.backtest import Backtest
from algocli.errors import StrategyError
from helpers import Scripted, make_bars

NAME, DHAN_ID = "NSE:HDFCBANK", "NSE_EQ:1333"
ROWS = [(100.0, 101.0, 99.0, 100.0 + k) for k in range(8)]


def _run(strategy: BaseStrategy):
    bt = Backtest({NAME: make_bars(ROWS, inst=NAME)}, initial_capital=100_000, fill_model=NextOpen(),
                  instruments={NAME: Instrument(NAME, dhan_id=DHAN_ID)})
    bt.add_strategy(strategy, [NAME], "s")
    return bt.run()


class Returns(BaseStrategy):
    """On bar 1, returns what ``make()`` builds."""

    def __init__(self, make) -> None:
        super().__init__()
        self.make = make

    def on_candle(self, candle):
        return self.make(candle) if candle.index == 1 else None


@pytest.mark.parametrize("action, side", [("BUY", OrderSide.BUY), ("buy", OrderSide.BUY), ("SELL", OrderSide.SELL)])
def test_an_action_written_as_text_trades_that_side(action, side):
    # the specification's Signal is a pydantic model: "BUY" is SignalAction.BUY, never a SELL
    result = _run(Returns(lambda c: Signal(c.instrument, action, 3)))
    assert result.orders[0].side is side and result.orders[0].quantity == 3


def test_an_action_that_is_no_action_names_the_choices():
    with pytest.raises(StrategyError, match="Signal action must be one of SignalAction.BUY, SignalAction.SELL, "
                                            "SignalAction.HOLD, got 'BYU'"):
        _run(Returns(lambda c: Signal(c.instrument, "BYU", 3)))


def test_a_signal_changed_after_it_was_made_is_checked_again():
    def mutated(candle):
        signal = Signal(candle.instrument, SignalAction.BUY, 1)
        signal.quantity = -5  # the specification makes Signals immutable
        return signal

    with pytest.raises(StrategyError, match="quantity must be a positive whole number, got -5"):
        _run(Returns(mutated))


def test_a_list_with_something_else_than_signals_is_named():
    with pytest.raises(StrategyError, match=r"submitted a str \('x'\) as a signal"):
        _run(Returns(lambda c: ["x"]))


def test_a_broker_id_in_strategy_code_is_the_runs_instrument():
    def trade(ctx, candle):
        assert list(ctx.get_historical(DHAN_ID, 2)) == [100.0, 101.0]
        return ctx.submit_order(Signal(DHAN_ID, SignalAction.BUY, 2))

    strategy = Scripted({1: trade, 3: lambda ctx, c: ctx.get_position(DHAN_ID).quantity})
    result = _run(strategy)
    assert [(o.instrument, o.status) for o in result.orders[:1]] == [(NAME, OrderStatus.FILLED)]
    assert strategy.results[3] == 2


def test_the_specifications_names_of_params_fill_time_and_position_price():
    seen = {}

    class Spec(BaseStrategy):
        def __init__(self, quantity: int = 4) -> None:
            super().__init__(quantity=quantity)

        def on_candle(self, candle):
            if candle.index == 1:
                seen["params"] = (self.params["quantity"], self.params.get("missing", "default"),
                                  "quantity" in self.params, dict(self.params))
                return Signal(candle.instrument, SignalAction.BUY, self.params["quantity"])
            if candle.index == 3:
                seen["price"] = self.context.get_position(candle.instrument).current_price
            return None

        def on_order_fill(self, fill):
            seen["when"] = fill.timestamp

    _run(Spec())
    assert seen["params"] == (4, "default", True, {"quantity": 4})
    assert seen["price"] == ROWS[3][3]  # the position is marked at the current close
    assert isinstance(seen["when"], datetime) and seen["when"].utcoffset().total_seconds() == 5.5 * 3600


@pytest.mark.parametrize("quantity", [2.5, 0, -1, True])
def test_modify_order_refuses_a_quantity_that_is_no_positive_whole_number(quantity):
    def modify(ctx, candle):
        order_id = ctx.buy(candle.instrument, 5, limit_price=50.0)
        with pytest.raises(ValueError, match="modify_order quantity must be a positive whole number"):
            ctx.modify_order(order_id, quantity=quantity)
        return ctx.get_open_orders(candle.instrument)[0].quantity

    strategy = Scripted({1: modify})
    _run(strategy)
    assert strategy.results[1] == 5
