"""The HTML report: thinning helpers, figures, the written page and how it renders in Chromium."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algocli.analytics.report import (
    CANDLE_CAP,
    LINE_POINT_CAP,
    TRADE_MARKER_CAP,
    aggregate_bars,
    build_figures,
    drawdown_pct,
    format_metric,
    largest_trades,
    minmax_indices,
    monthly_returns,
    write_report,
)
from algocli.analytics.result import TRADE_COLUMNS, RunResult
from algocli.data.history import Bars
from algocli.domain.candle import IST
from algocli.domain.models import IST_OFFSET_NS, Instrument
from algocli.domain.modes import RunMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from browser import ChromiumMissing, find_chromium, render_page  # noqa: E402

INSTRUMENTS = ("NSE_EQ:1333", "NSE_EQ:2885")
STRATEGIES = {"sma": "SmaCrossover", "rsi": "RsiMeanReversion"}


# --------------------------------------------------------------------------- builders


def daily_ts(n: int, start: str = "2023-01-02") -> np.ndarray:
    """UTC ns of ``n`` weekday bars starting 09:15 IST."""
    days = pd.bdate_range(start, periods=n)
    return days.as_unit("ns").asi8 + (9 * 60 + 15) * 60 * 10**9 - IST_OFFSET_NS


def minute_ts(n: int, start: str = "2015-01-01") -> np.ndarray:
    """UTC ns of ``n`` one-minute bars over 375-minute NSE sessions on weekdays."""
    per_day = 375
    days = pd.bdate_range(start, periods=-(-n // per_day)).as_unit("ns").asi8
    minutes = np.arange(per_day, dtype=np.int64) * 60 * 10**9
    ts = (days[:, None] + minutes[None, :]).ravel()[:n]
    return ts + (9 * 60 + 15) * 60 * 10**9 - IST_OFFSET_NS


def make_bars(instrument: str, ts: np.ndarray, seed: int, start_price: float = 1000.0) -> Bars:
    """A random-walk OHLCV series."""
    rng = np.random.default_rng(seed)
    n = len(ts)
    close = start_price * np.exp(np.cumsum(rng.normal(0, 0.01 if n < 10_000 else 0.0008, n)))
    open_ = np.r_[start_price, close[:-1]]
    spread = np.abs(rng.normal(0, 0.004, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.integers(1_000, 100_000, n).astype(np.float64)
    return Bars(instrument, ts, open_, high, low, close, volume)


def make_trades(bars: dict[str, Bars], n_trades: int, seed: int) -> pd.DataFrame:
    """Random long and short round trips over the given bars, with consistent P&L."""
    if n_trades == 0:
        return pd.DataFrame(columns=TRADE_COLUMNS)
    rng = np.random.default_rng(seed)
    rows = []
    names = list(bars)
    per = -(-n_trades // len(names))
    for k, inst in enumerate(names):
        b = bars[inst]
        count = min(per, n_trades - k * per)
        entry = np.sort(rng.integers(0, len(b) - 20, count))
        exit_ = entry + rng.integers(1, 20, count)
        size = rng.integers(1, 50, count) * np.where(np.arange(count) % 3 == 1, -1, 1)  # long and short
        ep, xp = b.close[entry], b.close[exit_]
        pnl = size * (xp - ep)
        times = lambda idx: pd.DatetimeIndex(b.ts[idx], tz="UTC").tz_convert(IST)  # noqa: E731
        rows.append(pd.DataFrame({
            "strategy": np.array(list(STRATEGIES))[rng.integers(0, len(STRATEGIES), count)],
            "instrument": inst, "side": np.where(size > 0, "LONG", "SHORT"), "size": size,
            "entry_time": times(entry), "exit_time": times(exit_), "entry_price": ep, "exit_price": xp,
            "pnl": pnl, "return_pct": np.sign(size) * (xp / ep - 1), "commission": 0.0,
            "duration": times(exit_) - times(entry), "entry_bar": entry, "exit_bar": exit_,
        }))
    return pd.concat(rows, ignore_index=True)[TRADE_COLUMNS]


def make_result(n_bars: int = 300, n_trades: int = 12, *, intraday: bool = False, instruments=INSTRUMENTS,
                strategies=STRATEGIES, seed: int = 7) -> RunResult:
    """A realistic RunResult built directly: shared timeline, equity, benchmark, P&L per strategy."""
    ts = minute_ts(n_bars) if intraday else daily_ts(n_bars)
    bars = {inst: make_bars(inst, ts, seed + i, 1000.0 * (i + 1)) for i, inst in enumerate(instruments)}
    capital = 1_000_000.0
    rng = np.random.default_rng(seed)
    pnl = {sid: np.cumsum(rng.normal(50, 2_000 if n_bars < 10_000 else 100, n_bars)) for sid in strategies}
    equity = capital + sum(pnl.values()) if pnl else np.full(n_bars, capital)
    first = next(iter(bars.values()))
    benchmark = capital * first.close / first.close[0]
    index = pd.DatetimeIndex(ts, tz="UTC").tz_convert(IST)
    metrics = {
        "start_date": index[0], "end_date": index[-1], "duration": index[-1] - index[0],
        "total_return_pct": float(equity[-1] / capital - 1) * 100, "sharpe_ratio": 1.2345,
        "sortino_ratio": float("nan"), "max_drawdown_pct": float(drawdown_pct(equity).min()),
        "max_drawdown_duration": pd.Timedelta(days=41, hours=3), "total_trades": n_trades,
        "profit_factor": float("inf"), "kelly_criterion": 0.01234, "final_equity": float(equity[-1]),
    }
    return RunResult(
        name="report-test", index=index, equity=equity, cash=equity.copy(), benchmark=benchmark,
        strategy_pnl=pnl, metrics=metrics, trades=make_trades(bars, n_trades, seed), orders=[], fills=[],
        bars=bars, instruments={i: Instrument(i) for i in instruments}, strategies=dict(strategies),
        initial_capital=capital, notes=["1 position closed at the last bar"],
    )


def expected_charts(result: RunResult) -> int:
    """Equity, drawdown, one candle chart per instrument, monthly returns, trade returns."""
    return 4 + len(result.bars)


def line_lengths(figures) -> dict[str, list[int]]:
    """Points per scatter line trace, by figure key."""
    return {key: [len(t.y) for t in fig.data if t.type in ("scatter", "scattergl") and t.mode == "lines"]
            for key, fig in figures}


@pytest.fixture(scope="module")
def chromium_ok() -> None:
    try:
        find_chromium()
    except ChromiumMissing as exc:
        pytest.fail(str(exc))


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("n,cap", [(10, 5000), (5001, 5000), (1_000_000, 5000), (12_345, 100), (50, 4)])
def test_minmax_indices_keeps_ends_and_extremes(n, cap):
    rng = np.random.default_rng(n)
    y = np.cumsum(rng.normal(size=n))
    y[n // 3] = y.max() + 50  # a lone spike
    y[2 * n // 3] = y.min() - 50  # a lone trough
    idx = minmax_indices(y, cap)
    assert len(idx) <= cap
    assert idx[0] == 0 and idx[-1] == n - 1
    assert np.all(np.diff(idx) > 0)
    assert y[idx].max() == y.max() and y[idx].min() == y.min()
    if n <= cap:
        assert len(idx) == n


def test_minmax_indices_ignores_nan_and_rejects_tiny_cap():
    y = np.r_[np.nan, np.linspace(0, 1, 10_000), np.nan, -5.0, np.full(100, np.nan)]
    idx = minmax_indices(y, 500)
    assert np.nanmin(y[idx]) == -5.0 and np.nanmax(y[idx]) == 1.0
    with pytest.raises(ValueError):
        minmax_indices(np.arange(100.0), 3)


def test_aggregate_bars_ohlcv():
    bars = make_bars("X", daily_ts(10_001), seed=1)
    agg = aggregate_bars(bars, 1_000)
    assert len(agg) <= 1_000
    size = -(-len(bars) // 1_000)
    assert agg.ts[1] == bars.ts[size] and agg.open[1] == bars.open[size]
    assert agg.high[1] == bars.high[size: 2 * size].max() and agg.low[1] == bars.low[size: 2 * size].min()
    assert agg.close[1] == bars.close[2 * size - 1] and agg.close[-1] == bars.close[-1]
    assert agg.volume.sum() == pytest.approx(bars.volume.sum())
    assert agg.high.max() == bars.high.max() and agg.low.min() == bars.low.min()
    assert aggregate_bars(bars, 20_000) is bars


def test_largest_trades_keeps_biggest_in_order():
    trades = pd.DataFrame({"pnl": [1.0, -10.0, 3.0, 9.0, -2.0], "k": range(5)})
    kept = largest_trades(trades, 3)
    assert list(kept["k"]) == [1, 2, 3]
    assert largest_trades(trades, 10) is trades


def test_format_metric():
    assert format_metric(float("nan")) == "—"
    assert format_metric(None) == "—"
    assert format_metric(pd.NaT) == "—"
    assert format_metric(1234567.891) == "1,234,567.89"
    assert format_metric(1.23456) == "1.23"
    assert format_metric(0.0123456) == "0.01235"
    assert format_metric(np.float64(-2.5)) == "-2.50"
    assert format_metric(42) == "42" and format_metric(np.int64(12_000)) == "12,000"
    assert format_metric(pd.Timedelta(days=3, hours=4)) == "3 days 04:00:00"
    assert format_metric(float("inf")) == "∞"
    assert format_metric(pd.Timestamp("2024-01-01 03:45", tz="UTC")) == "2024-01-01 09:15"
    assert format_metric("abc") == "abc"


def test_monthly_returns_first_month_against_capital():
    index = pd.date_range("2024-01-01 09:15", "2024-03-31 09:15", freq="D", tz=IST)
    equity = np.where(index.month == 1, 110.0, np.where(index.month == 2, 121.0, 108.9))
    table = monthly_returns(index, equity, 100.0)
    assert list(table.columns) == list(range(1, 13)) and list(table.index) == [2024]
    assert table.loc[2024, 1] == pytest.approx(10.0)
    assert table.loc[2024, 2] == pytest.approx(10.0)
    assert table.loc[2024, 3] == pytest.approx(-10.0)
    assert np.isnan(table.loc[2024, 4])


def test_drawdown_pct():
    dd = drawdown_pct(np.array([100.0, 120.0, 90.0, 130.0]))
    assert dd == pytest.approx([0.0, 0.0, -25.0, 0.0])


# --------------------------------------------------------------------------- figures and page


def test_build_figures_content():
    result = make_result()
    figures = build_figures(result)
    keys = [k for k, _ in figures]
    assert keys == ["equity", "drawdown", *(f"candles:{i}" for i in INSTRUMENTS), "monthly_returns", "trade_returns"]
    figs = dict(figures)
    equity_names = [t.name for t in figs["equity"].data]
    assert equity_names == ["Equity", "Buy & hold", "P&L sma", "P&L rsi"]
    assert figs["drawdown"].data[0].fill == "tozeroy"
    assert min(figs["drawdown"].data[0].y) == pytest.approx(drawdown_pct(result.equity).min())
    candles = figs[f"candles:{INSTRUMENTS[0]}"]
    types = [t.type for t in candles.data]
    assert types[:2] == ["candlestick", "bar"] and len(candles.data[0].x) == 300
    assert candles.data[1].yaxis == "y2" and "x2" in (candles.layout.xaxis.matches, candles.data[1].xaxis)
    markers = {t.name: t for t in candles.data if t.type == "scatter"}
    assert markers["Long entry"].marker.symbol == "triangle-up"
    assert markers["Short entry"].marker.symbol == "triangle-down"
    assert markers["Exit"].marker.symbol == "x"
    mine = result.trades[result.trades["instrument"] == INSTRUMENTS[0]]
    assert len(markers["Exit"].x) == len(mine)
    assert "P&L" in markers["Exit"].text[0] and "size" in markers["Exit"].text[0]
    first_entry = mine["entry_time"].iloc[0].tz_localize(None)
    assert pd.Timestamp(min(np.r_[markers["Long entry"].x, markers["Short entry"].x])) == first_entry
    assert "aggregated" not in candles.layout.title.text
    heat = figs["monthly_returns"].data[0]
    assert heat.type == "heatmap" and heat.zmid == 0 and len(heat.x) == 12
    hist = figs["trade_returns"].data[0]
    assert hist.type == "histogram"
    assert np.allclose(np.sort(hist.x), np.sort(result.trades["return_pct"].to_numpy() * 100))
    assert figs["trade_returns"].layout.xaxis.title.text == "Trade return (%)"


def test_candle_times_are_ist():
    result = make_result(n_bars=5, n_trades=0)
    candles = dict(build_figures(result))[f"candles:{INSTRUMENTS[0]}"]
    assert pd.Timestamp(candles.data[0].x[0]) == pd.Timestamp("2023-01-02 09:15")


def test_single_strategy_has_no_pnl_lines():
    result = make_result(strategies={"sma": "SmaCrossover"})
    assert [t.name for t in dict(build_figures(result))["equity"].data] == ["Equity", "Buy & hold"]


def test_zero_trades(tmp_path):
    result = make_result(n_trades=0)
    figs = dict(build_figures(result))
    assert len(figs["trade_returns"].data) == 0
    assert "No closed trades" in figs["trade_returns"].layout.annotations[0].text
    assert [t.type for t in figs[f"candles:{INSTRUMENTS[0]}"].data] == ["candlestick", "bar"]
    out = write_report(result, tmp_path / "r.html", mode=RunMode.BACKTEST)
    assert "No closed trades" in out.read_text(encoding="utf-8")


def test_write_report_is_self_contained_and_atomic(tmp_path):
    result = make_result()
    target = tmp_path / "nested" / "report.html"
    assert write_report(result, target, mode=RunMode.BACKTEST) == target
    text = target.read_text(encoding="utf-8")
    assert text.count("<title>Backtest report — report-test</title>") == 1
    assert re.search(r"<script[^>]*\bsrc=", text) is None  # nothing loaded from elsewhere
    assert text.count("Plotly.newPlot") == expected_charts(result)
    assert len(text) > 3_000_000  # plotly.js is inline
    assert "Sharpe" in text and "41 days 03:00:00" in text and "—" in text
    assert "1 position closed at the last bar" in text
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temp file left behind
    write_report(result, target, mode=RunMode.BACKTEST)  # overwrite in place
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_large_result_is_thinned(tmp_path):
    result = make_result(n_bars=200_000, n_trades=TRADE_MARKER_CAP + 1_000, intraday=True)
    figures = build_figures(result)
    for key, lengths in line_lengths(figures).items():
        assert all(n <= LINE_POINT_CAP for n in lengths), (key, lengths)
    figs = dict(figures)
    equity_line = figs["equity"].data[0]
    assert max(equity_line.y) == result.equity.max() and min(equity_line.y) == result.equity.min()
    assert min(figs["drawdown"].data[0].y) == pytest.approx(drawdown_pct(result.equity).min())
    markers = 0
    for inst in INSTRUMENTS:
        fig = figs[f"candles:{inst}"]
        assert len(fig.data[0].x) <= CANDLE_CAP
        assert "aggregated to" in fig.layout.title.text and "largest" in fig.layout.title.text
        markers += sum(len(t.x) for t in fig.data if t.name == "Exit")
    assert markers == TRADE_MARKER_CAP
    start = time.perf_counter()
    out = write_report(result, tmp_path / "big.html", mode=RunMode.BACKTEST)
    elapsed = time.perf_counter() - start
    size = out.stat().st_size
    assert size < 8_000_000, f"{size:,} bytes"
    assert elapsed < 5.0, f"{elapsed:.2f}s"


@pytest.mark.parametrize(("mode", "title"), [
    (RunMode.BACKTEST, "Backtest report"), (RunMode.PAPER, "Paper trading report"),
    (RunMode.DRY_RUN, "Live trading (dry run) report"), (RunMode.LIVE, "Live trading report")])
def test_the_page_names_the_runs_mode_in_its_title_and_heading(tmp_path, mode, title):
    result = make_result(n_bars=30, n_trades=2)
    text = write_report(result, tmp_path / "report.html", mode=mode).read_text(encoding="utf-8")
    assert text.count(f"<title>{title} — report-test</title>") == 1
    assert text.count(f"<h1>{title} — report-test</h1>") == 1
    for other in RunMode:
        if other is not mode:
            assert f">{other.title} report — " not in text, other


# --------------------------------------------------------------------------- browser


def test_report_renders_in_chromium(tmp_path, chromium_ok):
    result = make_result()
    page = write_report(result, tmp_path / "report.html", mode=RunMode.BACKTEST)
    summary = render_page(page)
    assert summary["errors"] == [], summary["errors"]
    assert summary["has_plotly"]
    assert summary["title"] == "Backtest report — report-test"
    charts = expected_charts(result)
    assert summary["plots"] == charts, summary
    assert summary["plots_rendered"] == charts, summary
    assert summary["main_svg"] >= charts
    assert all(n > 0 for n in summary["traces"]), summary["traces"]
    assert len(summary["tables"]) == 1 and "sharpe" in summary["tables"][0].lower()
    assert "—" in summary["tables"][0]


def test_report_without_trades_renders_in_chromium(tmp_path, chromium_ok):
    result = make_result(n_trades=0)
    summary = render_page(write_report(result, tmp_path / "report.html", mode=RunMode.BACKTEST))
    assert summary["errors"] == [], summary["errors"]
    assert summary["plots"] == summary["plots_rendered"] == expected_charts(result)


def test_empty_run_still_writes(tmp_path):
    result = make_result(n_bars=30, n_trades=0)
    empty = np.empty(0)
    result.index, result.equity, result.cash, result.benchmark = result.index[:0], empty, empty, empty
    result.strategy_pnl = {k: empty for k in result.strategy_pnl}
    result.bars = {k: b.slice(0, 0) for k, b in result.bars.items()}
    result.metrics = {}
    text = write_report(result, tmp_path / "empty.html", mode=RunMode.BACKTEST).read_text(encoding="utf-8")
    assert text.count("Plotly.newPlot") == expected_charts(result)
    assert "No statistics" in text
