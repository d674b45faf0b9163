"""A multi-instrument run's instants: instruments with a bar at every instant (aligned) or not (merged)."""

from __future__ import annotations

import numpy as np
import pytest

from algocli import BaseStrategy, OrderType, Signal, SignalAction
from algocli.data.history import Bars
from algocli.engine.backtest import Backtest
from algocli.engine.timeline import Timeline, woken_events
from helpers import random_bars

INSTS = ["NSE_EQ:11", "NSE_EQ:12", "NSE_EQ:13", "NSE_EQ:14"]
N = 300
CAPITAL = 10_000_000.0  # no order is ever short of funds, in the run of all or of one


def _bars() -> dict[str, Bars]:
    return {inst: random_bars(N, seed=20 + k, inst=inst) for k, inst in enumerate(INSTS)}


def _without(b: Bars, i: int) -> Bars:
    return Bars(b.instrument, *(np.delete(col, i) for col in (b.ts, b.open, b.high, b.low, b.close, b.volume)))


def test_the_same_instants_make_an_aligned_timeline_and_one_missing_bar_a_merged_one():
    bars = _bars()
    tl = Timeline(bars)
    assert tl.aligned and tl.n_events == 4 * N and tl.bar_counts == [N] * 4
    assert tl.last_bar == dict.fromkeys(INSTS, N - 1)
    assert not hasattr(tl, "ev_slot")  # the merged events of every bar are not built
    gap = {**bars, INSTS[1]: _without(bars[INSTS[1]], 7)}
    merged = Timeline(gap)
    assert not merged.aligned and merged.n_events == 4 * N - 1 and len(merged.group_bounds) == N + 1
    assert merged.last_bar[INSTS[1]] == N - 1 and merged.bar_counts[1] == N - 1


@pytest.mark.parametrize("gap", [False, True], ids=["aligned", "merged"])
def test_woken_events_list_each_instants_woken_instruments_in_slot_order(gap):
    rng = np.random.default_rng(5)
    bars = _bars()
    if gap:
        bars[INSTS[1]] = _without(bars[INSTS[1]], 7)
    tl = Timeline(bars)
    counts = [len(b.ts) for b in bars.values()]
    wakes = [rng.random(counts[0]) < 0.3, True, False, rng.random(counts[3]) < 0.1]
    calls, call_from = woken_events(tl, wakes)
    # by hand: at instant g, the instruments with a bar there whose mask (or flag) holds for that bar
    expected = []
    for g, t in enumerate(tl.ts):
        row = []
        for k, b in enumerate(bars.values()):
            i = int(np.searchsorted(b.ts, t))
            if i < len(b.ts) and b.ts[i] == t and (wakes[k] if isinstance(wakes[k], bool) else wakes[k][i]):
                row.append((k, i))
        expected.append(row)
    if tl.aligned:  # a call is a slot, its bar the instant's own
        got = [[(k, g) for k in calls[call_from[g]:call_from[g + 1]]] for g in range(len(tl.ts))]
    else:  # a call is an event of the merged timeline
        got = [[(int(tl.ev_slot[e]), tl.ev_idx[e]) for e in calls[call_from[g]:call_from[g + 1]]]
               for g in range(len(tl.ts))]
    assert got == expected
    assert sum(map(len, expected)) > N  # the masks woke a fair share of the bars


class WokenCross(BaseStrategy):
    """Market orders on SMA(5/12) crossings, ``on_candle`` woken only there; records its fills."""

    def __init__(self, inst: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inst, self.fills = inst, []

    def on_init(self) -> None:
        ctx = self.context
        self.fast, self.slow = ctx.line("SMA", self.inst, timeperiod=5), ctx.line("SMA", self.inst, timeperiod=12)
        ctx.wake_on(self.fast.crossing(self.slow))

    def on_candle(self, candle):
        cross = self.fast.cross(self.slow)
        pos = self.context.get_position(self.inst)
        held = pos.quantity if pos is not None else 0
        if cross > 0 and held <= 0:
            return Signal(self.inst, SignalAction.BUY, 10)
        if cross < 0 and held > 0:
            return Signal(self.inst, SignalAction.SELL, held)
        return None

    def on_order_fill(self, fill) -> None:
        self.fills.append((fill.bar, fill.price, self.context.get_balance()))


class RestingLimits(BaseStrategy):
    """Called on every bar: a limit order 1 % through the close that may rest for bars, then the other way."""

    def __init__(self, inst: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inst = inst

    def on_candle(self, candle):
        ctx = self.context
        if ctx.open_orders(self.inst):
            return None
        pos = ctx.get_position(self.inst)
        if pos is None:
            price = ctx.round_to_tick(self.inst, candle.close * 0.99, SignalAction.BUY)
            return Signal(self.inst, SignalAction.BUY, 5, OrderType.LIMIT, limit_price=price)
        price = ctx.round_to_tick(self.inst, candle.close * 1.01, SignalAction.SELL)
        return Signal(self.inst, SignalAction.SELL, pos.quantity, OrderType.LIMIT, limit_price=price)


def _strategies() -> list[tuple[str, str, BaseStrategy]]:
    # INSTS[2] is loaded but read by no strategy
    return [("w0", INSTS[0], WokenCross(INSTS[0])), ("l1", INSTS[1], RestingLimits(INSTS[1])),
            ("w3", INSTS[3], WokenCross(INSTS[3]))]


def _orders(bt: Backtest, sid: str) -> list[tuple]:
    return [(o.side, o.quantity, o.order_type, o.limit_price, o.status, o.created_bar, o.updated_ts, o.average_price)
            for o in bt.core.broker.orders if o.strategy_id == sid]


def test_an_aligned_run_trades_each_instrument_as_a_run_of_that_instrument_alone():
    bars = _bars()
    together = Backtest(bars, initial_capital=CAPITAL)
    strategies = _strategies()
    for sid, inst, strategy in strategies:
        together.add_strategy(strategy, [inst], sid)
    result = together.run()
    assert together._timeline.aligned
    for (sid, inst, strategy), (_, _, alone_strategy) in zip(strategies, _strategies()):
        alone = Backtest({inst: bars[inst]}, initial_capital=CAPITAL)
        alone.add_strategy(alone_strategy, [inst], sid)
        alone_result = alone.run()
        orders = _orders(together, sid)
        assert len(orders) > 10 and orders == _orders(alone, sid)
        assert [(f.bar, f.price, f.quantity) for f in result.fills if f.strategy_id == sid] == [
            (f.bar, f.price, f.quantity) for f in alone_result.fills]
        np.testing.assert_allclose(result.strategy_pnl[sid], alone_result.equity - CAPITAL, rtol=0, atol=1e-6)
        if isinstance(strategy, WokenCross):  # a fill's callback ran at the same bar and price
            assert [f[:2] for f in strategy.fills] == [f[:2] for f in alone_strategy.fills]
    assert any(o.updated_ts - o.created_ts > 86_400 * 10**9 for o in together.core.broker.orders
               if o.strategy_id == "l1")  # some limits rested across instants


def test_an_aligned_run_where_every_instrument_wakes_on_every_bar_trades_each_as_alone():
    # no wake_on anywhere: each instant calls every instrument's strategy, in slot order
    bars = _bars()
    together = Backtest(bars, initial_capital=CAPITAL)
    for k, inst in enumerate(INSTS):
        together.add_strategy(RestingLimits(inst), [inst], f"r{k}")
    together.run()
    assert together._timeline.aligned
    for k, inst in enumerate(INSTS):
        alone = Backtest({inst: bars[inst]}, initial_capital=CAPITAL)
        alone.add_strategy(RestingLimits(inst), [inst], f"r{k}")
        alone.run()
        orders = _orders(together, f"r{k}")
        assert len(orders) > 2 and orders == _orders(alone, f"r{k}")
    placed = [(o.created_bar, o.instrument) for o in together.core.broker.orders]
    assert placed == sorted(placed, key=lambda p: (p[0], INSTS.index(p[1])))  # an instant's in slot order


def test_an_error_on_an_aligned_timeline_names_the_strategy_instrument_and_bar():
    class Fails(BaseStrategy):
        def on_candle(self, candle):
            if candle.index == 42:
                raise ZeroDivisionError("boom")

    bt = Backtest(_bars(), initial_capital=CAPITAL)
    bt.add_strategy(Fails(), [INSTS[2]], "fails")
    with pytest.raises(Exception, match=r"fails.*boom") as err:
        bt.run()
    from algocli.domain.candle import ns_to_ist

    when = ns_to_ist(int(_bars()[INSTS[2]].ts[42])).isoformat()
    assert INSTS[2] in str(err.value) and when in str(err.value)


class HedgeOnFill(BaseStrategy):
    """Buys A on its 50th candle; each fill of A records where both instruments stand and buys B."""

    def __init__(self, a: str, b: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.a, self.b, self.seen = a, b, []

    def on_candle(self, candle):
        if candle.instrument == self.a and candle.index == 50:
            return Signal(self.a, SignalAction.BUY, 10)
        return None

    def on_order_fill(self, fill) -> None:
        ctx = self.context
        self.seen.append((fill.instrument, fill.ts, ctx.get_candle(self.a).ts, ctx.get_candle(self.b).ts))
        if fill.instrument == self.a:
            ctx.buy(self.b, 5)


@pytest.mark.parametrize("gap", [False, True], ids=["aligned", "merged"])
@pytest.mark.parametrize("b_first", [False, True], ids=["A-then-B", "B-then-A"])
def test_a_fill_sees_every_instrument_at_its_last_close_whatever_their_order(gap, b_first):
    """Working orders match against the bars that open at an instant while every instrument still
    shows its last closed bar: a fill's callback reads closed bars only (the bar that opened has not
    closed), and an order it places waits for its instrument's next bar, in whichever order the
    instruments were loaded. Before, an instrument loaded before the filled one already showed the
    bar that had just opened (its close, not yet known), and one loaded after it the previous bar,
    where an order from the callback then filled at the same instant."""
    bars = _bars()
    a, b, other = INSTS[0], INSTS[1], INSTS[2]
    if gap:
        bars[other] = _without(bars[other], 100)  # a third instrument's missing bar: a merged timeline
    loaded = {k: bars[k] for k in ([b, a, other] if b_first else [a, b, other])}
    bt = Backtest(loaded, initial_capital=CAPITAL)
    strategy = HedgeOnFill(a, b)
    bt.add_strategy(strategy, [a, b], "hedge")
    bt.run()
    assert bt._timeline.aligned is not gap
    ts = bars[a].ts  # a and b share every instant
    fill_a, fill_b = strategy.seen[:2]  # (the run closes both positions at its end)
    assert fill_a[0] == a and fill_a[1] == ts[51]  # the order of candle 50 fills at the next open
    assert fill_a[2:] == (ts[50], ts[50])  # both instruments at their last close
    assert fill_b[0] == b and fill_b[1] == ts[52]  # the callback's order: at B's next bar, not the same instant
    assert fill_b[2:] == (ts[51], ts[51])


@pytest.mark.parametrize("woken", [False, True], ids=["every-bar", "wake_on"])
def test_one_instrument_fill_sees_its_last_close_too(woken):
    """The single-instrument loops keep the same order: a fill at bar 11's open reads bar 10 as the
    current candle, and an order its callback places fills at bar 12, with or without ``wake_on``."""

    class Once(BaseStrategy):
        def __init__(self) -> None:
            super().__init__()
            self.seen = []

        def on_init(self) -> None:
            if woken:  # woken on bar 10 only: the loop then steps bar by bar while orders work
                line = self.context.line("SMA", INSTS[0], timeperiod=1)
                self.context.wake_on(line.crossing(float(_bars()[INSTS[0]].close[9:11].mean())))

        def on_candle(self, candle):
            if candle.index == 10 and not self.seen:
                return Signal(INSTS[0], SignalAction.BUY, 10)
            return None

        def on_order_fill(self, fill) -> None:
            self.seen.append((fill.ts, self.context.get_candle(INSTS[0]).ts))
            if len(self.seen) == 1:
                self.context.buy(INSTS[0], 5)

    bars = {INSTS[0]: _bars()[INSTS[0]]}
    bt = Backtest(bars, initial_capital=CAPITAL)
    strategy = Once()
    bt.add_strategy(strategy, [INSTS[0]], "once")
    bt.run()
    ts = bars[INSTS[0]].ts
    assert strategy.seen[:2] == [(ts[11], ts[10]), (ts[12], ts[11])]


class WokenLimits(BaseStrategy):
    """Woken only where SMA(5/12) cross: a buy limit 2 % under the close on a cross up, a sell limit
    2 % over it on a cross down (replacing a working one); the limits rest across the instants where
    nothing wakes. Records each fill's bar and whether the strategy woke there."""

    def __init__(self, inst: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inst, self.woke, self.fill_bars = inst, set(), []

    def on_init(self) -> None:
        ctx = self.context
        self.fast, self.slow = ctx.line("SMA", self.inst, timeperiod=5), ctx.line("SMA", self.inst, timeperiod=12)
        ctx.wake_on(self.fast.crossing(self.slow))

    def on_candle(self, candle):
        ctx, inst = self.context, self.inst
        self.woke.add(candle.index)
        for order in ctx.open_orders(inst):
            ctx.cancel_order(order.order_id)
        pos = ctx.get_position(inst)
        held = pos.quantity if pos is not None else 0
        if self.fast.cross(self.slow) > 0:
            price = ctx.round_to_tick(inst, candle.close * 0.98, SignalAction.BUY)
            return Signal(inst, SignalAction.BUY, 10, OrderType.LIMIT, limit_price=price)
        if held > 0:
            price = ctx.round_to_tick(inst, candle.close * 1.02, SignalAction.SELL)
            return Signal(inst, SignalAction.SELL, held, OrderType.LIMIT, limit_price=price)
        return None

    def on_order_fill(self, fill) -> None:
        self.fill_bars.append(fill.bar)


def test_an_aligned_run_matches_resting_orders_between_the_instants_that_wake():
    """The aligned loop skips the instants where no strategy wakes and no order works; an order
    resting there still fills at the first bar it can, exactly as the instrument's run alone fills it."""
    bars = _bars()
    together = Backtest(bars, initial_capital=CAPITAL)
    pairs = [(WokenLimits(INSTS[0]), WokenLimits(INSTS[0])), (WokenCross(INSTS[3]), WokenCross(INSTS[3]))]
    for k, (strategy, _) in enumerate(pairs):
        together.add_strategy(strategy, [strategy.inst], f"s{k}")
    result = together.run()
    assert together._timeline.aligned
    for k, (strategy, alone_strategy) in enumerate(pairs):
        alone = Backtest({strategy.inst: bars[strategy.inst]}, initial_capital=CAPITAL)
        alone.add_strategy(alone_strategy, [strategy.inst], f"s{k}")
        alone_result = alone.run()
        assert _orders(together, f"s{k}") == _orders(alone, f"s{k}")
        assert [(f.bar, f.price, f.quantity) for f in result.fills if f.strategy_id == f"s{k}"] == [
            (f.bar, f.price, f.quantity) for f in alone_result.fills]
    limits = pairs[0][0]
    quiet = [b for b in limits.fill_bars if b not in limits.woke and b - 1 not in limits.woke]
    assert len(limits.fill_bars) > 4 and quiet  # some limits filled after resting through quiet instants
