"""The strategy context: indicators equal TA-Lib on the prefix up to t, no look-ahead, portfolio reads.

Every indicator expectation is TA-Lib called directly on ``column[: t + 1]``, the data a
trader could have had at the close of bar t, never on the whole series.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import talib

from algocli.broker.costs import PercentCommission
from algocli.broker.fill_models import NextOpen, SameClose
from algocli.data.history import History
from algocli.domain.models import Instrument
from algocli.engine.backtest import Backtest
from algocli.engine.core import EngineCore
from algocli.errors import StrategyError
from algocli.portfolio.ledger import Ledger
from algocli.strategy.context import StrategyContext
from helpers import DAY_NS, T0, Scripted, make_bars, random_bars

INST = "NSE_EQ:1"
N = 90
BARS = random_bars(N, seed=11)
CLOSE, HIGH, LOW, VOLUME = BARS.close, BARS.high, BARS.low, BARS.volume


def _every_bar(action, n: int = N) -> dict:
    return {i: action for i in range(n)}


def _run(script: dict, bars=BARS, fill_model=None, commission: float = 0.0, capital: float = 100_000.0,
         sid: str = "s"):
    bt = Backtest({bars.instrument: bars}, initial_capital=capital, fill_model=fill_model,
                  cost_model=PercentCommission(commission))
    strat = Scripted(script)
    bt.add_strategy(strat, [bars.instrument], sid)
    return bt.run(), strat


# --- indicators: context value at t == TA-Lib over the prefix ending at t -----------------

def _tup(x):
    return x if isinstance(x, tuple) else (x,)


# (id, call on the context, TA-Lib on the prefix [0, t]) -> one or several outputs
CASES = [
    ("sma10", lambda ctx: ctx.sma(INST, 10), lambda t: talib.SMA(CLOSE[: t + 1], 10)),
    ("sma5_high", lambda ctx: ctx.sma(INST, 5, field="high"), lambda t: talib.SMA(HIGH[: t + 1], 5)),
    ("ema12", lambda ctx: ctx.ema(INST, 12), lambda t: talib.EMA(CLOSE[: t + 1], 12)),
    ("rsi14", lambda ctx: ctx.rsi(INST, 14), lambda t: talib.RSI(CLOSE[: t + 1], 14)),
    ("macd", lambda ctx: ctx.macd(INST, 12, 26, 9), lambda t: talib.MACD(CLOSE[: t + 1], 12, 26, 9)),
    ("bbands", lambda ctx: ctx.bollinger_bands(INST, 20, 2.0),
     lambda t: talib.BBANDS(CLOSE[: t + 1], 20, 2.0, 2.0, 0)),
    ("atr14", lambda ctx: ctx.atr(INST, 14), lambda t: talib.ATR(HIGH[: t + 1], LOW[: t + 1], CLOSE[: t + 1], 14)),
    ("adx14", lambda ctx: ctx.indicator("ADX", INST, timeperiod=14),
     lambda t: talib.ADX(HIGH[: t + 1], LOW[: t + 1], CLOSE[: t + 1], 14)),
    ("stoch", lambda ctx: ctx.indicator("STOCH", INST, fastk_period=5, slowk_period=3, slowd_period=3),
     lambda t: talib.STOCH(HIGH[: t + 1], LOW[: t + 1], CLOSE[: t + 1], 5, 3, 0, 3, 0)),
    ("obv", lambda ctx: ctx.indicator("OBV", INST), lambda t: talib.OBV(CLOSE[: t + 1], VOLUME[: t + 1])),
    ("wma_high", lambda ctx: ctx.indicator("wma", INST, price="high", timeperiod=10),
     lambda t: talib.WMA(HIGH[: t + 1], 10)),
    ("mfi14", lambda ctx: ctx.indicator("MFI", INST, timeperiod=14),
     lambda t: talib.MFI(HIGH[: t + 1], LOW[: t + 1], CLOSE[: t + 1], VOLUME[: t + 1], 14)),
]


@pytest.fixture(scope="module")
def recorded():
    """One run whose strategy asks every indicator of CASES on every bar."""
    def record(ctx, candle):
        return {name: _tup(call(ctx)) for name, call, _ in CASES}

    _, strat = _run(_every_bar(record))
    assert strat.seen == list(range(N))
    return strat.results


@pytest.mark.parametrize(("name", "call", "expected"), CASES, ids=[c[0] for c in CASES])
def test_indicator_at_t_equals_talib_on_prefix(recorded, name, call, expected):
    got = np.array([recorded[t][name] for t in range(N)])  # shape (N, outputs)
    want = np.array([[out[-1] for out in _tup(expected(t))] for t in range(N)])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, equal_nan=True)
    # the comparison covers warm-up bars (NaN on both sides) and defined bars up to the last
    assert np.isfinite(got[-1]).all()
    if name != "obv":  # OBV has no look-back
        assert np.isnan(got[0]).all()


def test_indicator_values_do_not_change_when_future_bars_change():
    """Editing bars after t leaves every value read at t untouched."""
    t = 40
    changed = random_bars(N, seed=11)
    for col in (changed.open, changed.high, changed.low, changed.close):
        col[t + 1:] *= 1.5
    changed.volume[t + 1:] += 10_000

    def record(ctx, candle):
        return {name: _tup(call(ctx)) for name, call, _ in CASES}

    original = _run({t: record})[1].results[t]
    altered = _run({t: record}, bars=changed)[1].results[t]
    for name, *_ in CASES:
        np.testing.assert_array_equal(np.array(original[name]), np.array(altered[name]))


def test_indicator_returns_tuple_for_several_outputs_and_float_for_one():
    def probe(ctx, candle):
        return ctx.indicator("AROON", INST, timeperiod=14), ctx.indicator("CCI", INST, timeperiod=14)

    _, strat = _run({60: probe})
    aroon, cci = strat.results[60]
    down, up = talib.AROON(HIGH[:61], LOW[:61], 14)
    assert aroon == pytest.approx((down[-1], up[-1]))
    assert isinstance(cci, float)
    assert cci == pytest.approx(talib.CCI(HIGH[:61], LOW[:61], CLOSE[:61], 14)[-1])


# --- no look-ahead -------------------------------------------------------------------------

@pytest.mark.parametrize("periods", [1, 5, 30, 1000])
def test_get_historical_ends_at_current_bar(periods):
    def probe(ctx, candle):
        return ctx.get_historical(INST, periods), ctx.get_historical(INST, periods, field="high")

    _, strat = _run(_every_bar(probe))
    for t in (0, 1, 4, 5, 29, 30, N - 1):
        close, high = strat.results[t]
        assert len(close) == min(periods, t + 1)
        assert close[-1] == CLOSE[t] and high[-1] == HIGH[t]
        np.testing.assert_array_equal(close, CLOSE[max(0, t + 1 - periods): t + 1])
        np.testing.assert_array_equal(high, HIGH[max(0, t + 1 - periods): t + 1])


def test_get_candle_offsets():
    def probe(ctx, candle):
        now, prev, nxt = ctx.get_candle(INST, 0), ctx.get_candle(INST, -1), ctx.get_candle(INST, 1)
        first = ctx.get_candle(INST, -candle.index)
        before_first = ctx.get_candle(INST, -candle.index - 1)
        return now, prev, nxt, first, before_first

    _, strat = _run(_every_bar(probe))
    for t in range(N):
        now, prev, nxt, first, before_first = strat.results[t]
        assert now.index == t and now.close == CLOSE[t] and now.high == HIGH[t]
        assert now.ts == T0 + t * DAY_NS
        if t == 0:
            assert prev is None
        else:
            assert prev.index == t - 1 and prev.close == CLOSE[t - 1]
        assert nxt is None
        assert first.index == 0 and first.close == CLOSE[0]
        assert before_first is None


@pytest.mark.parametrize("periods", [-5, 2.5, True, "5"])
def test_get_historical_refuses_a_count_that_is_no_whole_number_of_bars(periods):
    def probe(ctx, candle):
        with pytest.raises(ValueError, match=f"get_historical periods must be a whole number of bars, 0 or more, "
                                             f"got {re.escape(repr(periods))}"):
            ctx.get_historical(INST, periods)
        return len(ctx.get_historical(INST, np.int64(3))), len(ctx.get_historical(INST, 0))

    _, strat = _run({20: probe})
    assert strat.results[20] == (3, 0)


def test_returned_arrays_are_read_only():
    def probe(ctx, candle):
        errors = []
        for arr in (ctx.get_historical(INST, 10), ctx.get_historical(INST, 10, field="volume"),
                    ctx.indicator_series("SMA", INST, 5, timeperiod=3)):
            before = arr.copy()
            with pytest.raises(ValueError, match="read-only"):
                arr[-1] = -1.0
            errors.append(np.array_equal(arr, before))
        return errors

    _, strat = _run({20: probe, 21: lambda ctx, c: (ctx.get_historical(INST, 2)[0],
                                                     ctx.indicator_series("SMA", INST, 2, timeperiod=3)[0])})
    assert strat.results[20] == [True, True, True]
    close_20, sma_20 = strat.results[21]
    assert close_20 == CLOSE[20]  # nothing was overwritten by the attempts at bar 20
    assert sma_20 == pytest.approx(CLOSE[18:21].mean())


class Peeker(Scripted):
    """Would buy today if tomorrow closes higher, if it could see tomorrow."""

    def __init__(self) -> None:
        super().__init__({})
        self.peeks: list = []

    def on_candle(self, candle):
        ctx = self.context
        tomorrow = ctx.get_candle(candle.instrument, 1)
        window = ctx.get_historical(candle.instrument, 10_000)
        self.peeks.append((tomorrow, len(window), window[-1]))
        if tomorrow is not None and tomorrow.close > candle.close:
            ctx.buy(candle.instrument, 1)
        return None


def test_strategy_trying_to_peek_gets_nothing_from_the_future():
    bt = Backtest({INST: BARS}, initial_capital=100_000.0)
    peeker = Peeker()
    bt.add_strategy(peeker, [INST], "peek")
    result = bt.run()
    assert [p[0] for p in peeker.peeks] == [None] * N
    assert [p[1] for p in peeker.peeks] == list(range(1, N + 1))
    assert [p[2] for p in peeker.peeks] == CLOSE.tolist()
    assert result.orders == [] and result.fills == []


# --- indicator_series ------------------------------------------------------------------

def test_indicator_series_is_the_last_values_up_to_t():
    def probe(ctx, candle):
        return (ctx.indicator_series("SMA", INST, 5, timeperiod=3),
                ctx.indicator_series("MACD", INST, 4, output=1, fastperiod=12, slowperiod=26, signalperiod=9),
                ctx.indicator_series("WMA", INST, 3, price="low", timeperiod=4))

    _, strat = _run(_every_bar(probe))
    for t in (0, 1, 2, 3, 4, 10, 33, 34, 35, N - 1):
        sma, signal, wma = strat.results[t]
        assert len(sma) == min(5, t + 1) and len(signal) == min(4, t + 1) and len(wma) == min(3, t + 1)
        np.testing.assert_allclose(sma, talib.SMA(CLOSE[: t + 1], 3)[-5:], equal_nan=True)
        np.testing.assert_allclose(signal, talib.MACD(CLOSE[: t + 1], 12, 26, 9)[1][-4:], equal_nan=True)
        np.testing.assert_allclose(wma, talib.WMA(LOW[: t + 1], 4)[-3:], equal_nan=True)
    # by hand: the 3-bar SMA at the last bar is the mean of the last three closes
    assert strat.results[N - 1][0][-1] == pytest.approx((CLOSE[-1] + CLOSE[-2] + CLOSE[-3]) / 3)
    assert strat.results[N - 1][0][-2] == pytest.approx((CLOSE[-2] + CLOSE[-3] + CLOSE[-4]) / 3)


# --- errors ---------------------------------------------------------------------------

def test_unknown_talib_function_fails_the_run_with_strategy_instrument_and_time():
    with pytest.raises(StrategyError) as info:
        _run({3: lambda ctx, c: ctx.indicator("NOT_A_TALIB_FN", INST, timeperiod=5)}, sid="my-strat")
    msg = str(info.value)
    assert "my-strat" in msg
    assert INST in msg
    assert "2024-01-05T00:00:00+05:30" in msg  # bar 3: T0 (2024-01-02 IST) + 3 days
    assert "NOT_A_TALIB_FN" in msg


def test_misspelled_indicator_parameter_fails_instead_of_using_the_default():
    # TA-Lib itself ignores an unknown keyword and runs SMA with its default period of 30
    with pytest.raises(StrategyError, match=r"SMA.*timperiod.*takes: timeperiod"):
        _run({40: lambda ctx, c: ctx.indicator("SMA", INST, timperiod=3)})


def test_price_on_a_function_without_a_price_input_fails():
    with pytest.raises(StrategyError, match="ATR.*price= does not apply"):
        _run({40: lambda ctx, c: ctx.indicator("ATR", INST, price="open", timeperiod=3)})


# --- portfolio reads --------------------------------------------------------------------

ROWS = [
    (100, 101, 99, 100),
    (102, 104, 101, 103),  # 1
    (103, 106, 100, 105),  # 2
    (104, 105, 95, 96),    # 3
    (90, 92, 88, 91),      # 4
    (92, 99, 91, 98),      # 5
]


def _snapshot(ctx, candle):
    pos = ctx.get_position(candle.instrument)
    return (None if pos is None else (pos.quantity, pos.average_price)), ctx.get_balance(), ctx.get_equity()


def test_position_balance_equity_after_same_close_fills():
    def trade(action, qty):
        def run(ctx, candle):
            getattr(ctx, action)(candle.instrument, qty)
            return _snapshot(ctx, candle)
        return run

    script = {0: _snapshot, 1: trade("buy", 10), 2: _snapshot, 3: trade("buy", 5), 4: trade("sell", 15),
              5: _snapshot}
    _, strat = _run(script, bars=make_bars(ROWS, INST), fill_model=SameClose(), commission=0.001)
    r = strat.results
    assert r[0] == (None, 100_000.0, 100_000.0)
    # bar 1: buy 10 at close 103, commission 0.1% of 1030 = 1.03
    cash1 = 100_000 - 1030 - 1.03
    assert r[1][0] == (10, 103.0)
    assert r[1][1] == pytest.approx(cash1) and r[1][2] == pytest.approx(cash1 + 10 * 103)
    # bar 2: nothing traded; equity marks the 10 shares at close 105
    assert r[2][0] == (10, 103.0)
    assert r[2][1] == pytest.approx(cash1) and r[2][2] == pytest.approx(cash1 + 10 * 105)
    # bar 3: buy 5 more at 96, commission 0.48; average (1030 + 480) / 15
    cash3 = cash1 - 480 - 0.48
    assert r[3][0][0] == 15 and r[3][0][1] == pytest.approx(1510 / 15)
    assert r[3][1] == pytest.approx(cash3) and r[3][2] == pytest.approx(cash3 + 15 * 96)
    # bar 4: sell all 15 at 91, commission 1.365 -> flat
    cash4 = cash3 + 15 * 91 - 1.365
    assert r[4][0] is None
    assert r[4][1] == pytest.approx(cash4) and r[4][2] == pytest.approx(cash4)
    assert r[5] == (None, pytest.approx(cash4), pytest.approx(cash4))
    assert cash4 == pytest.approx(100_000 + 10 * (91 - 103) + 5 * (91 - 96) - 1.03 - 0.48 - 1.365)


def test_position_is_none_while_order_is_pending_then_set_after_next_open_fill():
    def buy_and_look(ctx, candle):
        ctx.buy(candle.instrument, 10)
        return _snapshot(ctx, candle), len(ctx.get_open_orders(candle.instrument))

    def sell_short_and_look(ctx, candle):
        ctx.sell(candle.instrument, 25)
        return _snapshot(ctx, candle)

    script = {0: buy_and_look, 1: _snapshot, 2: sell_short_and_look, 3: _snapshot}
    _, strat = _run(script, bars=make_bars(ROWS, INST), fill_model=NextOpen())
    (pos0, cash0, eq0), open0 = strat.results[0]
    assert pos0 is None and cash0 == 100_000.0 and open0 == 1
    pos1, cash1, eq1 = strat.results[1]
    assert pos1 == (10, 102.0)  # filled at bar 1's open
    assert cash1 == 100_000 - 1020 and eq1 == pytest.approx(100_000 - 1020 + 10 * 103)
    pos3, cash3, eq3 = strat.results[3]
    assert pos3 == (-15, 104.0)  # sold 25 at bar 3's open: 10 close the long, 15 open a short
    assert cash3 == pytest.approx(100_000 - 1020 + 25 * 104)
    assert eq3 == pytest.approx(cash3 - 15 * 96)


# --- indicator warm-up and buy & hold ------------------------------------------------------

def test_sma20_warmup_moves_buy_and_hold_start_to_bar_19():
    result, _ = _run(_every_bar(lambda ctx, c: ctx.sma(INST, 20)))
    expected = CLOSE[-1] / CLOSE[19] - 1
    assert result.metrics["buy_and_hold_return_pct"] == pytest.approx(100 * expected)
    assert expected != pytest.approx(CLOSE[-1] / CLOSE[0] - 1)  # the start really matters here
    assert result.benchmark[:20] == pytest.approx([100_000.0] * 20)
    assert result.benchmark[-1] == pytest.approx(100_000.0 * CLOSE[-1] / CLOSE[19])


def test_without_indicators_buy_and_hold_starts_at_bar_0():
    result, _ = _run({})
    assert result.metrics["buy_and_hold_return_pct"] == pytest.approx(100 * (CLOSE[-1] / CLOSE[0] - 1))


def test_warmup_is_the_longest_indicator_of_one_strategy():
    def probe(ctx, candle):
        ctx.sma(INST, 5)
        ctx.macd(INST, 12, 26, 9)  # first MACD signal value: bar 25 + 8 = 33

    result, _ = _run(_every_bar(probe))
    assert result.metrics["buy_and_hold_return_pct"] == pytest.approx(100 * (CLOSE[-1] / CLOSE[33] - 1))


@pytest.mark.parametrize(("periods", "start"), [((20, 20), 19), ((20, 5), 4), ((5, 20), 4)])
def test_two_strategies_with_shared_indicators_each_get_their_warmup(periods, start):
    """Buy & hold starts at the earliest warm-up among the strategies trading the instrument.

    The second strategy asking the same indicator must still have its own warm-up recorded.
    """
    bt = Backtest({INST: BARS}, initial_capital=100_000.0)
    for k, p in enumerate(periods):
        bt.add_strategy(Scripted(_every_bar(lambda ctx, c, p=p: ctx.sma(INST, p))), [INST], f"s{k}")
    result = bt.run()
    assert [slot.context.warmup[INST] for slot in bt.core.slots] == [p - 1 for p in periods]
    assert result.metrics["buy_and_hold_return_pct"] == pytest.approx(100 * (CLOSE[-1] / CLOSE[start] - 1))


# --- live mode: the history grows -----------------------------------------------------------

def _live_context(history: History) -> StrategyContext:
    core = EngineCore({INST: history}, {INST: Instrument(INST)}, Ledger(100_000.0))
    return StrategyContext(core, "live")


def _append(h: History, i: int) -> None:
    h.append(int(BARS.ts[i]), BARS.open[i], BARS.high[i], BARS.low[i], BARS.close[i], BARS.volume[i])


@pytest.mark.parametrize("seed_bars", [0, 30])
def test_live_history_growth_recomputes_indicators(seed_bars):
    """Append bar by bar (from empty, or after bars loaded from a file): values track TA-Lib."""
    if seed_bars:
        h = History.from_bars(BARS.slice(0, seed_bars))
        h.cursor = seed_bars - 1
    else:
        h = History(INST, capacity=4)  # small capacity: appends must reallocate several times
    ctx = _live_context(h)
    start = seed_bars or 0
    for i in range(start, N):
        _append(h, i)
        assert h.cursor == i and h.length == i + 1
        c = CLOSE[: i + 1]
        assert ctx.sma(INST, 10) == pytest.approx(talib.SMA(c, 10)[-1], nan_ok=True)
        assert ctx.rsi(INST, 14) == pytest.approx(talib.RSI(c, 14)[-1], nan_ok=True)
        adx = ctx.indicator("ADX", INST, timeperiod=5)
        assert adx == pytest.approx(talib.ADX(HIGH[: i + 1], LOW[: i + 1], c, 5)[-1], nan_ok=True)
        np.testing.assert_array_equal(ctx.get_historical(INST, 3), c[-3:])
        assert ctx.get_candle(INST, 0).close == CLOSE[i] and ctx.get_candle(INST, 1) is None
    # the cached series covers the whole appended history, not the length at first use
    np.testing.assert_allclose(ctx.indicator_series("SMA", INST, N, timeperiod=10), talib.SMA(CLOSE, 10),
                               equal_nan=True)
    assert ctx.warmup[INST] == 14  # RSI(14) is the longest warm-up (SMA(10): bar 9, ADX(5): bar 9)
    assert not math.isnan(ctx.sma(INST, 10))


@pytest.mark.parametrize(("price", "day", "side", "expected"), [
    (1230.03, 0, "BUY", 1230.05),          # 2024-01: NSE cash ticks at 0.05
    (1230.03, 0, "SELL", 1230.00),
    (212.347, 200, "BUY", 212.35),         # 2024-07-20, below 250: 0.01 since 2024-06-10
    (1230.03, 500, "SELL", 1230.0),        # 2025-05-16: the 1,000-5,000 band ticks at 0.10
    (1230.03, 500, "BUY", 1230.1),
    (1230.10, 500, "BUY", 1230.1),         # already on the tick: unchanged
])
def test_round_to_tick_rounds_against_the_trader_on_the_tick_of_the_bar_date(price, day, side, expected):
    bars = make_bars([(100.0, 101.0, 99.0, 100.0)] * (day + 1), inst="NSE:INFY")
    seen = {}
    _run({day: lambda ctx, c: seen.setdefault("p", ctx.round_to_tick("NSE:INFY", price, side))}, bars=bars)
    assert seen["p"] == expected


def test_round_to_tick_names_the_run_instruments_for_an_unknown_one():
    seen = {}

    def ask(ctx, c):
        with pytest.raises(KeyError, match="NSE_EQ:1"):
            ctx.round_to_tick("NSE:NOPE", 10.0, "BUY")
        seen["ok"] = True

    _run({0: ask})
    assert seen == {"ok": True}


@pytest.mark.parametrize("name,hint", [
    ("get_postion", "did you mean `get_position`?"),
    ("history", "did you mean `get_historical`?"),  # no close spelling, but a shared word
    ("zzzq", "it has atr, basket, bollinger_bands, buy,"),
])
def test_a_missing_context_attribute_names_what_was_meant(name, hint):
    ctx = StrategyContext(EngineCore({}, {}, Ledger(100_000.0)), "s")
    with pytest.raises(AttributeError) as err:
        getattr(ctx, name)
    assert str(err.value).startswith(f"the strategy context has no `{name}`; {hint}")
    assert not hasattr(ctx, "_nothing") and hasattr(ctx, "sma")  # private lookups stay plain


def test_a_strategy_calling_a_missing_context_method_is_told_the_near_miss():
    with pytest.raises(StrategyError, match=r"raised AttributeError on .*the strategy context has no `get_postion`; "
                                            r"did you mean `get_position`\?"):
        _run({0: lambda ctx, candle: ctx.get_postion(INST)})
