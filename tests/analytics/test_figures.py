"""The report's charts as Plotly figure dicts: content, thinning, time gaps, returns grids and indicators."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from algocli.analytics.figures import build_figures
from algocli.analytics.plotdata import CANDLE_CAP, LINE_POINT_CAP, TRADE_MARKER_CAP, drawdown_pct, ns_to_ist
from algocli.engine.backtest import Backtest
from analytics.report_support import (
    INSTRUMENTS, NO_HOLIDAYS, daily_ts, line_lengths, make_bars, make_result, read_of, with_charges,
)
from strategies.bollinger_reversion import BollingerReversion
from strategies.sma_crossover import SmaCrossover

TIME_AXIS_KEYS = ("equity", "drawdown", *(f"candles:{i}" for i in INSTRUMENTS))


def test_build_figures_content():
    result = make_result()
    figures = build_figures(result)
    keys = [k for k, _ in figures]
    assert keys == ["equity", "drawdown", *(f"candles:{i}" for i in INSTRUMENTS), "monthly_returns", "trade_returns"]
    figs = dict(figures)
    assert [t["name"] for t in figs["equity"]["data"]] == ["Equity", "Buy & hold", "P&L sma", "P&L rsi"]
    assert [t.get("yaxis", "y") for t in figs["equity"]["data"]] == ["y", "y", "y2", "y2"]
    assert figs["drawdown"]["data"][0]["fill"] == "tozeroy"
    assert min(figs["drawdown"]["data"][0]["y"]) == pytest.approx(drawdown_pct(result.equity).min())
    candles = figs[f"candles:{INSTRUMENTS[0]}"]
    types = [t["type"] for t in candles["data"]]
    assert types[:2] == ["candlestick", "bar"] and len(candles["data"][0]["x"]) == 300
    volume = candles["data"][1]
    assert volume["yaxis"] == "y2" and "xaxis" not in volume  # its own pane under the shared time axis
    assert candles["layout"]["yaxis2"]["domain"][1] < candles["layout"]["yaxis"]["domain"][0]
    markers = {t["name"]: t for t in candles["data"] if t["type"] == "scatter"}
    assert markers["Long entry"]["marker"]["symbol"] == "triangle-up"
    assert markers["Short entry"]["marker"]["symbol"] == "triangle-down"
    assert markers["Exit"]["marker"]["symbol"] == "x"
    mine = result.trades[result.trades["instrument"] == INSTRUMENTS[0]]
    assert len(markers["Exit"]["x"]) == len(mine)
    assert "P&L" in markers["Exit"]["text"][0] and "size" in markers["Exit"]["text"][0]
    first_entry = mine["entry_time"].iloc[0].tz_localize(None)
    assert pd.Timestamp(min(np.r_[markers["Long entry"]["x"], markers["Short entry"]["x"]])) == first_entry
    assert "aggregated" not in candles["layout"]["title"]["text"]
    heat = figs["monthly_returns"]["data"][0]
    assert heat["type"] == "heatmap" and heat["zmid"] == 0 and len(heat["x"]) == 12
    hist = figs["trade_returns"]["data"][0]
    assert hist["type"] == "histogram"
    assert np.allclose(np.sort(hist["x"]), np.sort(result.trades["return_pct"].to_numpy() * 100))
    assert figs["trade_returns"]["layout"]["xaxis"]["title"]["text"] == "Trade return (%)"


def test_candle_times_are_ist():
    result = make_result(n_bars=5, n_trades=0)
    candles = dict(build_figures(result))[f"candles:{INSTRUMENTS[0]}"]
    assert pd.Timestamp(candles["data"][0]["x"][0]) == pd.Timestamp("2023-01-02 09:15")


def test_single_strategy_has_no_pnl_lines():
    result = make_result(strategies={"sma": "SmaCrossover"})
    figure = dict(build_figures(result))["equity"]
    assert [t["name"] for t in figure["data"]] == ["Equity", "Buy & hold"] and "yaxis2" not in figure["layout"]


def test_zero_trades():
    figs = dict(build_figures(make_result(n_trades=0)))
    assert figs["trade_returns"]["data"] == []
    assert "No closed trades" in figs["trade_returns"]["layout"]["annotations"][0]["text"]
    assert [t["type"] for t in figs[f"candles:{INSTRUMENTS[0]}"]["data"]] == ["candlestick", "bar"]


def test_an_instrument_without_volume_gets_no_volume_pane():
    """An index (NIFTY 50, the underlying of an options run) has no volume: no empty pane below it."""
    result = make_result(n_trades=0)
    traded, index = INSTRUMENTS[0], INSTRUMENTS[1]
    bars = result.bars[index]
    result.bars[index] = type(bars)(bars.instrument, bars.ts, bars.open, bars.high, bars.low, bars.close,
                                    np.zeros(len(bars.ts)), bars.oi)
    figs = dict(build_figures(result))
    assert [t["type"] for t in figs[f"candles:{index}"]["data"]] == ["candlestick"]
    layout = figs[f"candles:{index}"]["layout"]
    assert "yaxis2" not in layout and layout["xaxis"]["anchor"] == "y" and layout["yaxis"]["domain"] == [0.0, 1.0]
    assert [t["type"] for t in figs[f"candles:{traded}"]["data"]] == ["candlestick", "bar"]  # the other keeps it


def test_large_result_is_thinned():
    result = make_result(n_bars=200_000, n_trades=TRADE_MARKER_CAP + 1_000, intraday=True)
    figures = build_figures(result)
    for key, lengths in line_lengths(figures).items():
        assert all(n <= LINE_POINT_CAP for n in lengths), (key, lengths)
    figs = dict(figures)
    equity_line = figs["equity"]["data"][0]
    assert max(equity_line["y"]) == result.equity.max() and min(equity_line["y"]) == result.equity.min()
    assert min(figs["drawdown"]["data"][0]["y"]) == pytest.approx(drawdown_pct(result.equity).min())
    markers = 0
    for inst in INSTRUMENTS:
        fig = figs[f"candles:{inst}"]
        assert len(fig["data"][0]["x"]) <= CANDLE_CAP
        assert "aggregated to" in fig["layout"]["title"]["text"] and "largest" in fig["layout"]["title"]["text"]
        markers += sum(len(t["x"]) for t in fig["data"] if t["name"] == "Exit")
    assert markers == TRADE_MARKER_CAP


# --------------------------------------------------------------------------- closed market


@pytest.mark.parametrize("intraday", [False, True])
def test_every_time_axis_skips_weekends_and_intraday_ones_the_nights(intraday):
    result = make_result(n_bars=375 * 12 if intraday else 300, intraday=intraday)
    figs = dict(build_figures(result))
    for key in TIME_AXIS_KEYS:
        breaks = figs[key]["layout"]["xaxis"]["rangebreaks"]
        assert {"bounds": ["sat", "mon"]} in breaks, key
        assert ({"pattern": "hour", "bounds": [15.5, 9.25]} in breaks) == intraday, key


def test_holidays_from_a_calendar_reach_every_time_axis():
    result = make_result(n_bars=40, n_trades=4)  # weekdays from Mon 2 Jan 2023, no gaps
    assert not any("values" in b for b in dict(build_figures(result))["equity"]["layout"]["xaxis"]["rangebreaks"])
    keep = result.index.normalize() != pd.Timestamp("2023-01-26", tz=result.index.tz)  # Republic Day
    result.index, result.equity, result.benchmark = result.index[keep], result.equity[keep], result.benchmark[keep]
    result.strategy_pnl = {k: v[keep] for k, v in result.strategy_pnl.items()}
    for key, fig in build_figures(result, holidays=[pd.Timestamp("2023-01-26").date()]):
        if key in ("equity", "drawdown"):
            assert {"values": ["2023-01-26"], "dvalue": 86_400_000} in fig["layout"]["xaxis"]["rangebreaks"]


# --------------------------------------------------------------------------- returns grid


def test_a_short_run_gets_daily_returns():
    result = make_result(n_bars=4, n_trades=0)
    figures = build_figures(result)
    assert "monthly_returns" not in dict(figures)
    heat = dict(figures)["daily_returns"]["data"][0]
    assert heat["x"] == ["Mon", "Tue", "Wed", "Thu", "Fri"] and len(heat["y"]) == 1
    filled = [v for row in heat["z"] for v in row if v is not None]
    assert len(filled) == 4
    assert filled[0] == pytest.approx((result.equity[0] / result.initial_capital - 1) * 100)
    assert filled[-1] == pytest.approx((result.equity[3] / result.equity[2] - 1) * 100)
    assert heat["customdata"][0][:4] == ["2023-01-02", "2023-01-03", "2023-01-04", "2023-01-05"]


@pytest.mark.parametrize(("n_bars", "key"), [(62, "daily_returns"), (63, "monthly_returns")])
def test_the_daily_grid_stops_at_63_sessions(n_bars, key):
    result = make_result(n_bars=n_bars, n_trades=2, start=NO_HOLIDAYS)  # a bar a session: 62 or 63 of them
    assert [k for k, _ in build_figures(result)][-2] == key


# --------------------------------------------------------------------------- indicators


def test_price_scale_indicators_overlay_the_candles_and_others_get_panes():
    result = make_result(n_bars=300, n_trades=6)
    bars = result.bars[INSTRUMENTS[0]]
    result.indicators = [
        read_of(bars, "SMA", "Overlap Studies", timeperiod=10),
        read_of(bars, "SMA", "Overlap Studies", strategy="rsi", timeperiod=10),  # the same series: drawn once
        read_of(bars, "BBANDS", "Overlap Studies", timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0),
        read_of(bars, "RSI", "Momentum Indicators", timeperiod=14),
        read_of(result.bars[INSTRUMENTS[1]], "SMA", "Overlap Studies", timeperiod=30),
    ]
    figs = dict(build_figures(result))
    fig = figs[f"candles:{INSTRUMENTS[0]}"]
    traces = {t["name"]: t for t in fig["data"]}
    assert [t["name"] for t in fig["data"]].count("SMA(10)") == 1
    np.testing.assert_array_equal(traces["SMA(10)"]["y"], talib.SMA(bars.close, 10))
    assert traces["SMA(10)"]["yaxis"] == "y"
    band = [n for n in traces if n.startswith("BBANDS(20, 2, 2, 0)")]
    assert band == ["BBANDS(20, 2, 2, 0) upperband", "BBANDS(20, 2, 2, 0) lowerband", "BBANDS(20, 2, 2, 0) middleband"]
    assert traces["BBANDS(20, 2, 2, 0) lowerband"]["fill"] == "tonexty"
    rsi = traces["RSI(14)"]
    assert rsi["yaxis"] == "y3" and fig["layout"]["yaxis3"]["range"] == [0, 100]
    np.testing.assert_array_equal(rsi["y"], talib.RSI(bars.close, 14))
    assert sorted(s["y0"] for s in fig["layout"]["shapes"] if s["yref"] == "y3") == [30, 70]
    price, rsi_pane, volume = (fig["layout"][a]["domain"] for a in ("yaxis", "yaxis3", "yaxis2"))
    assert volume[1] < rsi_pane[0] and rsi_pane[1] < price[0]
    other = {t["name"] for t in figs[f"candles:{INSTRUMENTS[1]}"]["data"]}
    assert "SMA(30)" in other and "SMA(10)" not in other and "RSI(14)" not in other


def test_indicators_follow_aggregated_candles():
    result = make_result(n_bars=CANDLE_CAP * 3, n_trades=0, intraday=True)
    bars = result.bars[INSTRUMENTS[0]]
    result.indicators = [read_of(bars, "EMA", "Overlap Studies", timeperiod=50)]
    fig = dict(build_figures(result))[f"candles:{INSTRUMENTS[0]}"]
    ema = next(t for t in fig["data"] if t["name"] == "EMA(50)")
    assert len(ema["y"]) == len(fig["data"][0]["x"]) == CANDLE_CAP
    np.testing.assert_array_equal(ema["y"], talib.EMA(bars.close, 50)[2::3])  # each candle's last bar


@pytest.mark.parametrize(("strategy", "names"), [
    (SmaCrossover(fast_period=10, slow_period=20, quantity=5), ["SMA(10)", "SMA(20)"]),
    (BollingerReversion(period=20, std=2.0, quantity=5),
     ["BBANDS(20, 2, 2, 0) upperband", "BBANDS(20, 2, 2, 0) lowerband", "BBANDS(20, 2, 2, 0) middleband"]),
])
def test_a_backtest_draws_the_indicators_its_strategy_read(strategy, names):
    bars = make_bars("NSE:HDFCBANK", daily_ts(250), seed=3)
    bt = Backtest({bars.instrument: bars}, initial_capital=1_000_000.0)
    bt.add_strategy(strategy, [bars.instrument], "s")
    result = bt.run()
    fig = dict(build_figures(result))["candles:NSE:HDFCBANK"]
    drawn = [t["name"] for t in fig["data"] if t["name"] not in ("Price", "Volume", "Long entry", "Exit")]
    assert drawn == names
    first = next(t for t in fig["data"] if t["name"] == names[0])
    assert len(first["y"]) == len(bars) and np.isnan(first["y"][0]) and not np.isnan(first["y"][-1])


def test_a_run_with_charges_gets_gross_equity_and_a_gross_to_net_waterfall():
    result = with_charges(make_result(n_bars=60, n_trades=2))
    figures = dict(build_figures(result))
    assert list(figures)[:3] == ["equity", "drawdown", "charges"]
    names = [t["name"] for t in figures["equity"]["data"]]
    assert names[:3] == ["Equity", "Equity before charges", "Buy & hold"]
    gross = figures["equity"]["data"][1]["y"]
    assert gross[-1] == pytest.approx(result.equity[-1] + 60.24)
    fall = figures["charges"]["data"][0]
    assert fall["type"] == "waterfall"
    assert fall["x"] == ["Gross P&L", "Brokerage", "STT / CTT", "Exchange transaction charge", "Stamp duty", "GST",
                         "Net P&L"]
    assert fall["y"][1:-1] == [-40.0, -2.5, -2.1, -0.45, -15.19]
    assert fall["measure"][0] == "absolute" and fall["measure"][-1] == "total"
    assert fall["y"][0] - 60.24 == pytest.approx(fall["y"][-1])


def test_a_flat_commission_run_keeps_its_charts():
    result = make_result(n_bars=60, n_trades=2)
    assert "charges" not in dict(build_figures(result))


@pytest.mark.parametrize("tag, name, symbol", [("auto-squareoff", "Auto square-off (MIS)", "square"),
                                               ("expiry", "Expiry settlement", "diamond")])
def test_exits_the_engine_made_are_marked_apart_on_the_price_chart(tag, name, symbol):
    result = with_charges(make_result(n_bars=60, n_trades=2), tag=tag)
    candles = dict(build_figures(result))[f"candles:{INSTRUMENTS[0]}"]
    marked = [t for t in candles["data"] if t.get("meta") == tag]
    assert len(marked) == 1 and marked[0]["name"] == name and marked[0]["marker"]["symbol"] == symbol
    assert list(marked[0]["y"]) == [1010.0] and marked[0]["x"][0] == str(ns_to_ist(result.ts[[20]])[0])[:19]
    other = dict(build_figures(result))[f"candles:{INSTRUMENTS[1]}"]
    assert not [t for t in other["data"] if t.get("meta") == tag]  # only on the instrument it closed


def test_a_strategys_own_exit_is_not_marked_as_automatic():
    result = with_charges(make_result(n_bars=60, n_trades=2), tag="my-stop")
    candles = dict(build_figures(result))[f"candles:{INSTRUMENTS[0]}"]
    assert not [t for t in candles["data"] if t.get("meta")]


@pytest.mark.parametrize("n, per_chart", [(1, 2_000), (5, 2_000), (8, 1_250), (20, 500), (40, 500)])
def test_many_instruments_share_the_candle_budget(n, per_chart):
    """Worked by hand from CANDLE_CAP 2,000, CANDLE_BUDGET 10,000 and CANDLE_FLOOR 500: each of
    ``n`` charts gets 10,000 // n candles, between the two."""
    names = tuple(f"NSE_EQ:{3000 + k}" for k in range(n))
    result = make_result(n_bars=10_000, n_trades=0, intraday=True, instruments=names)
    figs = dict(build_figures(result))
    for name in names:
        candles = figs[f"candles:{name}"]["data"][0]
        assert len(candles["x"]) == per_chart, name
        # equal-count buckets of the 10,000 bars: the first candle opens at bar 0, the last closes at the last bar
        bars = result.bars[name]
        size = 10_000 // per_chart
        assert candles["open"][0] == bars.open[0] and candles["close"][-1] == bars.close[-1]
        assert candles["high"][0] == bars.high[:size].max()
