"""The context records which TA-Lib series each strategy read, once per series, for the report to draw."""

from __future__ import annotations


import numpy as np
import pytest
import talib

from algocli.data.history import History
from algocli.domain.models import Instrument
from algocli.engine.backtest import Backtest
from algocli.engine.core import EngineCore
from algocli.errors import StrategyError
from algocli.portfolio.ledger import Ledger
from algocli.strategy.context import IndicatorRead, StrategyContext
from helpers import Scripted, random_bars

INST = "NSE_EQ:1"
N = 120
BARS = random_bars(N, seed=5)


def _every_bar(action) -> dict:
    return {i: action for i in range(N)}


def _backtest(*scripts: dict) -> Backtest:
    bt = Backtest({INST: BARS}, initial_capital=100_000.0)
    for k, script in enumerate(scripts):
        bt.add_strategy(Scripted(script), [INST], f"s{k}")
    return bt


def test_each_series_read_is_recorded_once_with_its_call_and_whole_array():
    def read(ctx, candle):
        ctx.sma(INST, 10)
        ctx.sma(INST, 10)  # the same series again
        ctx.sma(INST, 5, field="high")
        ctx.bollinger_bands(INST, 20, 2.0)
        ctx.rsi(INST, 14)
        ctx.indicator_series("EMA", INST, 5, timeperiod=8)

    bt = _backtest(_every_bar(read))
    result = bt.run()
    reads = result.indicators
    assert all(isinstance(r, IndicatorRead) and r.strategy == "s0" and r.instrument == INST for r in reads)
    assert [(r.name, r.params, r.price) for r in reads] == [
        ("SMA", {"timeperiod": 10}, "close"), ("SMA", {"timeperiod": 5}, "high"),
        ("BBANDS", {"timeperiod": 20, "nbdevup": 2.0, "nbdevdn": 2.0, "matype": 0}, None),
        ("RSI", {"timeperiod": 14}, None), ("EMA", {"timeperiod": 8}, None)]
    by_name = {(r.name, r.price): r for r in reads}
    np.testing.assert_array_equal(by_name["SMA", "close"].outputs["real"], talib.SMA(BARS.close, 10))
    np.testing.assert_array_equal(by_name["SMA", "high"].outputs["real"], talib.SMA(BARS.high, 5))
    bands = by_name["BBANDS", None]
    assert list(bands.outputs) == ["upperband", "middleband", "lowerband"]
    np.testing.assert_array_equal(bands.outputs["lowerband"], talib.BBANDS(BARS.close, 20, 2.0, 2.0, 0)[2])
    assert bands.styles["upperband"].startswith("Values represent an upper") and bands.group == "Overlap Studies"
    assert by_name["RSI", None].group == "Momentum Indicators"


def test_two_strategies_each_record_what_they_read_and_nothing_else():
    bt = _backtest(_every_bar(lambda ctx, c: ctx.sma(INST, 10)), _every_bar(lambda ctx, c: ctx.rsi(INST, 7)))
    reads = bt.run().indicators
    assert [(r.strategy, r.name, r.params) for r in reads] == [("s0", "SMA", {"timeperiod": 10}),
                                                               ("s1", "RSI", {"timeperiod": 7})]
    assert not _backtest({}).run().indicators  # reading nothing records nothing


def test_recording_is_not_paid_per_bar():
    """The record is written on a cache miss only: a cached read never touches it."""
    bt = _backtest(_every_bar(lambda ctx, c: ctx.sma(INST, 10)))
    bt.run()
    ctx = bt.core.slots[0].context
    ctx._read.clear()
    for _ in range(1_000):
        ctx.sma(INST, 10)
    assert ctx._read == {} and ctx.indicators_read() == []


def test_a_growing_history_hands_over_the_series_over_every_bar():
    """Paper and live append bars: the series handed over covers the whole history at the end."""
    history = History(INST, capacity=8)
    ctx = StrategyContext(EngineCore({INST: history}, {INST: Instrument(INST)}, Ledger(100_000.0)), "live")
    for i in range(N):
        history.append(int(BARS.ts[i]), BARS.open[i], BARS.high[i], BARS.low[i], BARS.close[i], BARS.volume[i])
        ctx.sma(INST, 10)
    (read,) = ctx.indicators_read()
    assert len(read.outputs["real"]) == N
    np.testing.assert_allclose(read.outputs["real"], talib.SMA(BARS.close, 10), equal_nan=True)
    assert len(ctx._read) == 1


def test_a_failed_read_records_nothing():
    bt = _backtest({0: lambda ctx, c: ctx.indicator("SMA", INST, timeperiod=0)})
    with pytest.raises(StrategyError, match="SMA"):
        bt.run()
    assert bt.core.slots[0].context._read == {}
