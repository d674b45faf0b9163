"""Indicator lines and ``wake_on``: values by bars-ago, crossings, and the bars that call on_candle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import talib

from algocli import BaseStrategy, OrderType, Signal, SignalAction
from algocli.data.history import History
from algocli.domain.models import Instrument
from algocli.engine.backtest import Backtest
from algocli.engine.core import EngineCore
from algocli.portfolio.ledger import Ledger
from algocli.strategy.context import StrategyContext
from helpers import DAY_NS, T0, random_bars

INST = "NSE_EQ:1"
OTHER = "NSE_EQ:2"
N = 400
BARS = random_bars(N, seed=11)


def _crossings(fast: np.ndarray, slow: np.ndarray) -> list[int]:
    """Bars where ``fast`` crosses ``slow`` either way, worked out one bar at a time in plain Python."""
    out = []
    for i in range(1, len(fast)):
        f0, f1, s0, s1 = fast[i], fast[i - 1], slow[i], slow[i - 1]
        if any(math.isnan(x) for x in (f0, f1, s0, s1)):
            continue
        if (f0 > s0 and f1 <= s1) or (f0 < s0 and f1 >= s1):
            out.append(i)
    return out


class Reader(BaseStrategy):
    """Records, per bar it is called on, its lines' values now and one bar ago and their cross."""

    def __init__(self, wake: bool = True, level: float | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.wake, self.level = wake, level
        self.seen: list[tuple[str, int, float, float, int]] = []

    def on_init(self) -> None:
        ctx = self.context
        self.lines = {}
        for inst in self.instruments:
            fast = ctx.line("SMA", inst, timeperiod=5)
            slow = self.level if self.level is not None else ctx.line("SMA", inst, timeperiod=12)
            self.lines[inst] = (fast, slow)
            if self.wake:
                ctx.wake_on(fast.crossing(slow))

    def on_candle(self, candle):
        fast, slow = self.lines[candle.instrument]
        self.seen.append((candle.instrument, candle.index, fast[0], fast[-1], fast.cross(slow)))


def _run(bars: dict, *strategies: BaseStrategy) -> Backtest:
    bt = Backtest(bars, initial_capital=100_000.0)
    for k, s in enumerate(strategies):
        bt.add_strategy(s, list(bars), f"s{k}")
    bt.run()
    return bt


def test_a_line_reads_talib_now_and_bars_ago_and_never_ahead():
    s = Reader(wake=False)
    _run({INST: BARS}, s)
    sma5 = talib.SMA(BARS.close, 5)
    assert [i for _, i, *_ in s.seen] == list(range(N))
    for _, i, now, before, _ in s.seen:
        np.testing.assert_equal(now, sma5[i])
        np.testing.assert_equal(before, sma5[i - 1] if i >= 1 else math.nan)
    fast = s.lines[INST][0]
    with pytest.raises(IndexError, match="ahead of the current one"):
        fast[1]
    assert math.isnan(fast[-N - 5])  # before the first bar


def test_cross_and_the_bars_wake_on_calls_agree_with_a_bar_by_bar_count():
    expected = _crossings(talib.SMA(BARS.close, 5), talib.SMA(BARS.close, 12))
    assert len(expected) > 10
    every = Reader(wake=False)
    _run({INST: BARS}, every)
    assert [i for _, i, _, _, c in every.seen if c] == expected
    woken = Reader(wake=True)
    _run({INST: BARS}, woken)  # one strategy on one instrument: the loop skips the other bars itself
    assert [i for _, i, *_ in woken.seen] == expected
    assert all(c != 0 for *_, c in woken.seen)


def test_a_level_crossing_wakes_on_the_bars_the_line_crosses_it():
    level = float(np.nanmedian(talib.SMA(BARS.close, 5)))
    s = Reader(wake=True, level=level)
    _run({INST: BARS}, s)
    sma5 = talib.SMA(BARS.close, 5)
    assert [i for _, i, *_ in s.seen] == _crossings(sma5, np.full(N, level))


def test_beside_another_strategy_or_on_several_instruments_the_same_bars_wake():
    expected = _crossings(talib.SMA(BARS.close, 5), talib.SMA(BARS.close, 12))
    woken, every = Reader(wake=True), Reader(wake=False)
    _run({INST: BARS}, woken, every)  # two subscribers: each strategy's on_candle is gated on its own
    assert [i for _, i, *_ in woken.seen] == expected
    assert len(every.seen) == N
    # two instruments whose bars interleave (the second starts half a day later)
    other = random_bars(N // 2, seed=12, inst=OTHER)
    other = type(other)(OTHER, other.ts + DAY_NS // 2, other.open, other.high, other.low, other.close, other.volume)
    both = Reader(wake=True)
    _run({INST: BARS, OTHER: other}, both)
    assert [i for inst, i, *_ in both.seen if inst == INST] == expected
    assert [i for inst, i, *_ in both.seen if inst == OTHER] == _crossings(talib.SMA(other.close, 5),
                                                                            talib.SMA(other.close, 12))


class Crossover(BaseStrategy):
    """Buys on the cross above, sells on the cross below: with or without ``wake_on``."""

    def __init__(self, wake: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        self.wake = wake

    def on_init(self) -> None:
        ctx = self.context
        self.fast, self.slow = ctx.line("SMA", INST, timeperiod=5), ctx.line("SMA", INST, timeperiod=12)
        if self.wake:
            ctx.wake_on(self.fast.crossing(self.slow))

    def on_candle(self, candle):
        cross = self.fast.cross(self.slow)
        pos = self.context.get_position(INST)
        held = pos.quantity if pos is not None else 0
        if cross > 0 and held <= 0:
            return Signal(INST, SignalAction.BUY, 10)
        if cross < 0 and held > 0:
            return Signal(INST, SignalAction.SELL, held)
        return None


def test_waking_only_on_crossings_changes_no_order_fill_or_figure():
    runs = [_run({INST: BARS}, Crossover(wake)) for wake in (False, True)]
    orders = [[(o.side, o.quantity, o.created_bar, o.average_price) for o in bt.core.broker.orders] for bt in runs]
    assert len(orders[0]) > 10 and orders[0] == orders[1]
    np.testing.assert_array_equal(runs[0]._equity, runs[1]._equity)


def test_in_a_run_of_several_instruments_only_the_woken_bars_call_and_trading_is_unchanged():
    # INST read by a woken strategy, OTHER (interleaved) by one called on every bar, a third by none
    other = random_bars(N // 2, seed=12, inst=OTHER)
    other = type(other)(OTHER, other.ts + DAY_NS // 2, other.open, other.high, other.low, other.close, other.volume)
    bars = {INST: BARS, OTHER: other, "NSE_EQ:3": random_bars(N, seed=13, inst="NSE_EQ:3")}
    woken, every = Reader(wake=True), Reader(wake=False)
    bt = Backtest(bars, initial_capital=100_000.0)
    bt.add_strategy(woken, [INST], "w")
    bt.add_strategy(every, [OTHER], "e")
    bt.run()
    assert [i for _, i, *_ in woken.seen] == _crossings(talib.SMA(BARS.close, 5), talib.SMA(BARS.close, 12))
    assert [(inst, i) for inst, i, *_ in every.seen] == [(OTHER, i) for i in range(N // 2)]
    runs = []
    for wake in (False, True):
        bt = Backtest(bars, initial_capital=100_000.0)
        bt.add_strategy(Crossover(wake), [INST], "c")
        bt.add_strategy(Reader(wake=False), [OTHER], "r")
        bt.run()
        runs.append(bt)
    orders = [[(o.side, o.quantity, o.created_bar, o.average_price) for o in bt.core.broker.orders] for bt in runs]
    assert len(orders[0]) > 10 and orders[0] == orders[1]
    np.testing.assert_array_equal(runs[0]._equity, runs[1]._equity)


class LimitCrossover(Crossover):
    """On a cross, a limit order 0.4 % through the close that may rest for bars; the other bars it
    ignores itself when it is not woken only on crossings."""

    def on_candle(self, candle):
        cross = self.fast.cross(self.slow)
        if not cross or self.context.open_orders(INST):
            return None
        pos = self.context.get_position(INST)
        held = pos.quantity if pos is not None else 0
        if cross > 0 and held <= 0:
            price = self.context.round_to_tick(INST, candle.close * 0.996, SignalAction.BUY)
            return Signal(INST, SignalAction.BUY, 10, OrderType.LIMIT, limit_price=price)
        if cross < 0 and held > 0:
            price = self.context.round_to_tick(INST, candle.close * 1.004, SignalAction.SELL)
            return Signal(INST, SignalAction.SELL, held, OrderType.LIMIT, limit_price=price)
        return None


def test_resting_orders_fill_on_the_same_bars_between_wakes():
    runs = [_run({INST: BARS}, LimitCrossover(wake)) for wake in (False, True)]
    orders = [[(o.side, o.status, o.created_bar, o.updated_ts, o.average_price) for o in bt.core.broker.orders]
              for bt in runs]
    filled = [o for o in runs[0].core.broker.orders if o.filled_quantity]
    assert len(filled) > 5 and any(o.updated_ts - o.created_ts > 2 * DAY_NS for o in filled)  # some rested
    assert orders[0] == orders[1]


def test_wake_on_belongs_in_on_init():
    class Late(BaseStrategy):
        def on_candle(self, candle):
            line = self.context.line("SMA", INST, timeperiod=3)
            self.context.wake_on(line.crossing(10.0))

    bt = Backtest({INST: BARS}, initial_capital=1e5)
    bt.add_strategy(Late(), [INST])
    with pytest.raises(Exception, match="wake_on belongs in on_init"):
        bt.run()


def test_a_misspelt_line_is_refused_when_asked_for():
    other = random_bars(50, seed=2, inst=OTHER)
    core = EngineCore({INST: History.from_bars(BARS), OTHER: History.from_bars(other)},
                      {INST: Instrument(INST), OTHER: Instrument(OTHER)}, Ledger(1e5))
    ctx = StrategyContext(core, "s")
    with pytest.raises(ValueError, match="unknown parameter"):
        ctx.line("SMA", INST, period=5)
    with pytest.raises(KeyError, match="no data for 'NSE_EQ:9'"):
        ctx.line("SMA", "NSE_EQ:9", timeperiod=5)
    fast = ctx.line("SMA", INST, timeperiod=5)
    with pytest.raises(ValueError, match="different instruments"):
        fast.crossing(ctx.line("SMA", OTHER, timeperiod=5))


def test_a_line_follows_a_growing_history_as_paper_and_live_append_bars():
    h = History(INST, capacity=16)  # grows past its capacity on the way
    core = EngineCore({INST: h}, {INST: Instrument(INST)}, Ledger(1e5))
    ctx = StrategyContext(core, "s")
    fast, slow = ctx.line("SMA", INST, timeperiod=5), ctx.line("SMA", INST, timeperiod=12)
    crossing = fast.crossing(slow)
    sma5, sma12 = talib.SMA(BARS.close, 5), talib.SMA(BARS.close, 12)
    expected = set(_crossings(sma5, sma12))
    for i in range(60):
        h.append(T0 + i * DAY_NS, BARS.open[i], BARS.high[i], BARS.low[i], BARS.close[i], BARS.volume[i])
        np.testing.assert_equal(fast[0], sma5[i])
        np.testing.assert_equal(slow[-1], sma12[i - 1] if i else math.nan)
        assert crossing.holds() == (i in expected)
