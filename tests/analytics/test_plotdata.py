"""The numbers behind the charts: thinning, returns grids and the closed-market gaps on time axes."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from algocli.analytics.plotdata import (
    aggregate_bars,
    candle_buckets,
    daily_returns,
    drawdown_pct,
    largest_trades,
    minmax_indices,
    monthly_returns,
    time_breaks,
    time_labels,
)
from algocli.domain.candle import IST
from analytics.report_support import daily_ts, make_bars, minute_ts


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
    starts, lasts = candle_buckets(len(bars), 1_000)
    assert np.array_equal(bars.ts[starts], agg.ts) and np.array_equal(bars.close[lasts], agg.close)


def test_largest_trades_keeps_biggest_in_order():
    trades = pd.DataFrame({"pnl": [1.0, -10.0, 3.0, 9.0, -2.0], "k": range(5)})
    kept = largest_trades(trades, 3)
    assert list(kept["k"]) == [1, 2, 3]
    assert largest_trades(trades, 10) is trades


def test_drawdown_pct():
    dd = drawdown_pct(np.array([100.0, 120.0, 90.0, 130.0]))
    assert dd == pytest.approx([0.0, 0.0, -25.0, 0.0])


def test_monthly_returns_first_month_against_capital():
    index = pd.date_range("2024-01-01 09:15", "2024-03-31 09:15", freq="D", tz=IST)
    equity = np.where(index.month == 1, 110.0, np.where(index.month == 2, 121.0, 108.9))
    table = monthly_returns(index, equity, 100.0)
    assert list(table.columns) == list(range(1, 13)) and list(table.index) == [2024]
    assert table.loc[2024, 1] == pytest.approx(10.0)
    assert table.loc[2024, 2] == pytest.approx(10.0)
    assert table.loc[2024, 3] == pytest.approx(-10.0)
    assert np.isnan(table.loc[2024, 4])


def test_daily_returns_grid_by_week_and_weekday():
    """Tue 2024-12-24 .. Tue 2024-12-31, two 25-minute bars a day: each day's last bar counts."""
    days = pd.bdate_range("2024-12-24", "2024-12-31")
    index = pd.DatetimeIndex([d + pd.Timedelta(t) for d in days for t in ("09:15:00", "15:05:00")]).tz_localize(IST)
    day_end = np.array([101.0, 99.96, 104.958, 104.958, 110.2059, 110.2059])
    equity = np.column_stack([np.full(6, 1.0e9), day_end]).ravel()  # the first bar of a day never counts
    table = daily_returns(index, equity, 100.0)
    assert list(table.columns) == [0, 1, 2, 3, 4]
    assert [f"{w:%Y-%m-%d}" for w in table.index] == ["2024-12-23", "2024-12-30"]
    assert np.isnan(table.iloc[0, 0])  # Monday 23 Dec is before the run
    assert table.iloc[0, 1] == pytest.approx(1.0)  # Tue: 101 against the capital of 100
    assert table.iloc[0, 2] == pytest.approx(99.96 / 101 * 100 - 100)
    assert table.iloc[0, 3] == pytest.approx(5.0)
    assert table.iloc[0, 4] == pytest.approx(0.0)
    assert table.iloc[1, 0] == pytest.approx(5.0)
    assert table.iloc[1, 1] == pytest.approx(0.0) and np.isnan(table.iloc[1, 2])


def test_time_labels_are_dates_for_daily_bars_and_times_for_intraday():
    days = np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]")
    assert time_labels(days).tolist() == ["2024-01-01", "2024-01-02"]
    assert time_labels(days + np.timedelta64(555, "m")).tolist() == ["2024-01-01T09:15:00", "2024-01-02T09:15:00"]


def _ist(ts_utc_ns: np.ndarray) -> np.ndarray:
    from algocli.analytics.plotdata import ns_to_ist

    return ns_to_ist(ts_utc_ns)


def test_intraday_axis_skips_nights_weekends_and_days_without_bars():
    ts = minute_ts(375 * 10, start="2024-01-22")  # ten weekdays from Mon 22 Jan 2024
    x = _ist(ts)
    republic_day = np.datetime64("2024-01-26")
    x = x[x.astype("datetime64[D]") != republic_day]  # a holiday: no bars that Friday
    breaks = time_breaks(x)
    assert {"bounds": ["sat", "mon"]} in breaks
    assert {"pattern": "hour", "bounds": [15.5, 9.25]} in breaks
    values = next(b for b in breaks if "values" in b)
    # only the holiday's session, 09:15-15:30: a whole-day break would overlap the night breaks,
    # and Plotly then piles a week of bars onto the next (seen in a browser on the futures sample)
    assert values == {"values": ["2024-01-26T09:15:00"], "dvalue": 375 * 60_000}


def test_daily_axis_has_no_night_break_and_hides_weekdays_without_bars():
    x = pd.bdate_range("2024-03-04", "2024-03-29").to_numpy()  # daily bars at IST midnight
    x = x[(x != np.datetime64("2024-03-08")) & (x != np.datetime64("2024-03-13"))]
    breaks = time_breaks(x)
    assert not any(b.get("pattern") == "hour" for b in breaks)
    assert {"bounds": ["sat", "mon"]} in breaks
    assert next(b for b in breaks if "values" in b)["values"] == ["2024-03-08", "2024-03-13"]


def test_a_holiday_list_hides_its_days_only_and_never_a_day_with_bars():
    """With a calendar, 8 March (Mahashivratri) is hidden, 13 March (data gap) stays visible."""
    x = pd.bdate_range("2024-03-04", "2024-03-28").to_numpy()
    x = x[(x != np.datetime64("2024-03-08")) & (x != np.datetime64("2024-03-13"))]
    holidays = [date(2024, 3, 8), date(2024, 3, 25), date(2024, 4, 11)]  # 25 March has bars here; April is off-axis
    assert next(b for b in time_breaks(x, holidays) if "values" in b)["values"] == ["2024-03-08"]
    assert not any("values" in b for b in time_breaks(x, []))


def test_axis_keeps_weekend_and_out_of_session_bars():
    """A special Saturday session and bars outside 09:15-15:30 are never hidden."""
    x = np.array(["2024-02-02T09:15", "2024-02-02T10:15", "2024-02-03T09:15", "2024-02-05T16:00"],
                 dtype="datetime64[ns]")
    breaks = time_breaks(x)
    assert {"bounds": ["sat", "mon"]} not in breaks
    assert not any(b.get("pattern") == "hour" for b in breaks)
    assert time_breaks(x[:0]) == []
