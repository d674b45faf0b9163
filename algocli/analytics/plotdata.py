"""The numbers behind the report's charts: thinning, returns grids and the closed-market gaps.

Big runs are thinned before plotting so the page stays small and opens fast: line traces
keep each bucket's minimum and maximum (``minmax_indices``), candles are aggregated into
equal-count OHLCV buckets (``aggregate_bars``) and only the trades with the largest absolute
P&L get markers (``largest_trades``).

Time axes skip the hours the market is shut (``time_breaks``): nights outside the NSE
session, weekends, and holidays (from a trading calendar when one is given, else every
weekday without a bar), so a line never slopes across hours in which nothing traded.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from typing import TYPE_CHECKING

import numpy as np

from algocli.domain.arrays import setdiff, union, unique
from algocli.domain.bars import Bars
from algocli.domain.candle import IST
from algocli.domain.models import IST_OFFSET_NS
from algocli.domain.session import DAY_NS, SESSION_CLOSE_NS, SESSION_OPEN_NS

if TYPE_CHECKING:
    import pandas as pd

LINE_POINT_CAP = 5_000
CANDLE_CAP = 2_000
#: Candles of all instruments' charts together: a report of many instruments shares them out
#: (``candle_cap``), so it stays about the weight of five charts, not one full chart each (50
#: instruments made a 24 MB page that took 0.3 s to write and long to open).
CANDLE_BUDGET = 10_000
#: The fewest candles an instrument's chart is given, however many instruments share the budget.
CANDLE_FLOOR = 500
TRADE_MARKER_CAP = 5_000

_HOUR_NS = 3_600_000_000_000
_THURSDAY = 3  # 1970-01-01, day 0 of the epoch, was a Thursday


def minmax_indices(y: np.ndarray, cap: int = LINE_POINT_CAP) -> np.ndarray:
    """Pick at most ``cap`` indices of ``y`` that keep its visible shape.

    The interior is cut into equal-count buckets; each bucket contributes the index of
    its minimum and of its maximum, in time order. The first and last points are always
    kept, so the global minimum and maximum (drawdown troughs, equity peaks) survive.

    Args:
        y: The series to thin. NaNs never win a bucket unless the bucket is all NaN.
        cap: Maximum number of indices to return (at least 4).

    Returns:
        Sorted unique int64 indices into ``y``; ``arange(len(y))`` when it already fits.

    Raises:
        ValueError: If ``cap`` is below 4.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    if cap < 4:
        raise ValueError(f"cap must be at least 4, got {cap}")
    buckets = (cap - 2) // 2
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)
    starts, stops = edges[:-1], edges[1:]
    width = int((stops - starts).max())
    offsets = np.minimum(starts[:, None] + np.arange(width), stops[:, None] - 1)
    values = y[offsets]
    nan = np.isnan(values)
    rows = np.arange(buckets)
    lows = offsets[rows, np.where(nan, np.inf, values).argmin(axis=1)]
    highs = offsets[rows, np.where(nan, -np.inf, values).argmax(axis=1)]
    pairs = np.sort(np.stack([lows, highs], axis=1), axis=1).ravel()
    return unique(np.concatenate(([0], pairs, [n - 1])))


def candle_cap(instruments: int) -> int:
    """Candles per chart when ``instruments`` charts share ``CANDLE_BUDGET``: ``CANDLE_CAP`` for up
    to five, fewer for more, never under ``CANDLE_FLOOR``."""
    return max(CANDLE_FLOOR, min(CANDLE_CAP, CANDLE_BUDGET // max(1, instruments)))


def candle_buckets(n: int, cap: int = CANDLE_CAP) -> tuple[np.ndarray, np.ndarray]:
    """First and last bar of each of the at most ``cap`` equal-count candles ``n`` bars merge into.

    Args:
        n: Number of bars.
        cap: Maximum number of candles.

    Returns:
        ``(starts, lasts)`` as int64 index arrays (one bucket per bar when ``n <= cap``).
    """
    size = max(1, -(-n // cap))
    starts = np.arange(0, n, size, dtype=np.int64)
    return starts, np.append(starts[1:], n).astype(np.int64) - 1


def aggregate_bars(bars: Bars, cap: int = CANDLE_CAP) -> Bars:
    """Merge consecutive bars into at most ``cap`` candles of equal bar count.

    Each candle takes the first open, highest high, lowest low, last close and summed
    volume of its bucket, and the start time of its first bar.

    Args:
        bars: The instrument's candles.
        cap: Maximum number of candles to return.

    Returns:
        ``bars`` itself when it already fits, else a new, shorter ``Bars``.
    """
    if len(bars) <= cap:
        return bars
    starts, lasts = candle_buckets(len(bars), cap)
    return Bars(
        bars.instrument,
        bars.ts[starts],
        bars.open[starts],
        np.fmax.reduceat(bars.high, starts),
        np.fmin.reduceat(bars.low, starts),
        bars.close[lasts],
        np.add.reduceat(np.nan_to_num(bars.volume), starts),
    )


def largest_trades(trades, cap: int = TRADE_MARKER_CAP):
    """Keep the ``cap`` trades with the largest absolute P&L, in their original order.

    Args:
        trades: Round trips with a ``pnl`` column: a DataFrame or ``RunResult.trade_columns``.
        cap: Maximum number of rows to keep.

    Returns:
        ``trades`` itself when it already fits, else the selected rows (of the same kind).
    """
    pnl = np.asarray(trades["pnl"], dtype=np.float64)
    if len(pnl) <= cap:
        return trades
    keep = np.sort(np.argsort(-np.abs(pnl), kind="stable")[:cap])
    if isinstance(trades, dict):
        return {name: np.asarray(column)[keep] for name, column in trades.items()}
    return trades.iloc[keep]


def drawdown_pct(equity: np.ndarray) -> np.ndarray:
    """Percent below the running peak of ``equity`` (0 at a new high, negative below).

    Args:
        equity: Account equity per bar.

    Returns:
        Drawdown in percent, same length as ``equity``.
    """
    equity = np.asarray(equity, dtype=np.float64)
    if len(equity) == 0:
        return equity
    peak = np.fmax.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, (equity / peak - 1.0) * 100.0, 0.0)


# --------------------------------------------------------------------------- time


def ns_to_ist(ts: np.ndarray) -> np.ndarray:
    """UTC nanoseconds to naive IST ``datetime64[ns]`` (what the charts display)."""
    return (np.asarray(ts, dtype=np.int64) + IST_OFFSET_NS).view("datetime64[ns]")


def index_to_ist(index) -> np.ndarray:
    """A timeline to naive IST ``datetime64[ns]``: int64 UTC nanoseconds (``RunResult.ts``), or a
    DatetimeIndex (naive input is taken as IST)."""
    if isinstance(index, np.ndarray) and index.dtype == np.int64:
        return ns_to_ist(index)
    import pandas as pd

    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert(IST).tz_localize(None)
    return idx.as_unit("ns").to_numpy()


def column_to_ist(column) -> np.ndarray:
    """A column of timestamps to naive IST ``datetime64[ns]``: int64 UTC nanoseconds, or
    timestamps pandas reads (naive input is taken as IST)."""
    if isinstance(column, np.ndarray) and column.dtype == np.int64:
        return ns_to_ist(column)
    import pandas as pd

    return index_to_ist(pd.DatetimeIndex(pd.to_datetime(column)))


def time_labels(x: np.ndarray) -> np.ndarray:
    """Naive IST datetimes as ISO strings: dates alone when every time is midnight (daily bars)."""
    x = np.asarray(x, dtype="datetime64[ns]")
    days = x.astype("datetime64[D]")
    if np.array_equal(days, x):
        return np.datetime_as_string(days)
    return np.datetime_as_string(x.astype("datetime64[s]"), unit="s")


def time_breaks(x: np.ndarray, holidays: Iterable[date] | None = None) -> list[dict]:
    """Plotly ``rangebreaks`` that hide the time the market was shut, for an axis showing ``x``.

    Hidden: weekends (unless a bar falls on one: a special session), the night from 15:30
    to 09:15 IST (when every bar is an intraday bar inside the NSE session), and the
    holidays between the first and the last bar. Without a holiday list every weekday
    without a bar is taken for one; with a list (from a trading calendar) only its days
    are hidden, so a gap in the data stays visible. A day that holds a bar is never hidden.

    Args:
        x: Naive IST ``datetime64`` values of the bars (the axis' data).
        holidays: Trading holidays (IST dates), or None to infer them from the data.

    Returns:
        The ``xaxis.rangebreaks`` list (empty for an empty axis).
    """
    local = np.asarray(x, dtype="datetime64[ns]").view(np.int64)
    if not len(local):
        return []
    day = local // DAY_NS
    time_of_day = local - day * DAY_NS
    days = unique(day)
    breaks: list[dict] = []
    weekend_session = bool(((days + _THURSDAY) % 7 >= 5).any())
    if not weekend_session:
        breaks.append({"bounds": ["sat", "mon"]})
    in_session = (time_of_day >= SESSION_OPEN_NS) & (time_of_day < SESSION_CLOSE_NS)
    nights = bool(in_session.all() and (time_of_day != time_of_day[0]).any())
    if nights:
        breaks.append({"pattern": "hour", "bounds": [SESSION_CLOSE_NS / _HOUR_NS, SESSION_OPEN_NS / _HOUR_NS]})
    if holidays is None:
        shut = np.arange(days[0], days[-1] + 1)
        shut = shut[(shut + _THURSDAY) % 7 < 5]
    else:
        shut = np.array([np.datetime64(d, "D").astype(np.int64) for d in holidays], dtype=np.int64)
        shut = shut[(shut >= days[0]) & (shut <= days[-1])]
    if weekend_session:  # a weekend with a bar rules out hiding every weekend: list the shut ones
        span = np.arange(days[0], days[-1] + 1)
        shut = union(shut, span[(span + _THURSDAY) % 7 >= 5])
    shut = setdiff(shut, days)
    if len(shut) and nights:
        # Plotly draws overlapping breaks wrongly (a week of bars piled onto the next): with the
        # nights already hidden, a shut day hides only its session, 09:15 to 15:30.
        starts = (shut * DAY_NS + SESSION_OPEN_NS).astype("datetime64[ns]")
        breaks.append({"values": np.datetime_as_string(starts, unit="s").tolist(),
                       "dvalue": (SESSION_CLOSE_NS - SESSION_OPEN_NS) // 1_000_000})
    elif len(shut):
        breaks.append({"values": np.datetime_as_string(shut.astype("datetime64[D]")).tolist(),
                       "dvalue": DAY_NS // 1_000_000})
    return breaks


# --------------------------------------------------------------------------- returns


def _period_returns(index, equity: np.ndarray, initial_capital: float,
                    unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Percent change of equity sampled at each period's last bar; the first against the capital.

    Returns:
        The periods (``datetime64[unit]``, IST calendar) and their returns in percent.
    """
    period = index_to_ist(index).astype(f"datetime64[{unit}]")
    last = np.flatnonzero(np.r_[period[1:] != period[:-1], True])  # the timeline is sorted
    closing = np.asarray(equity, dtype=np.float64)[last]
    with np.errstate(divide="ignore", invalid="ignore"):
        return period[last], (closing / np.r_[initial_capital, closing[:-1]] - 1.0) * 100.0


def _grid(rows: np.ndarray, columns: np.ndarray, values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``values`` placed at (row key, column number); cells without a value are NaN.

    Returns:
        The grid (rows × ``width``) and the sorted row keys.
    """
    keys, row = unique(rows, return_inverse=True)
    z = np.full((len(keys), width), np.nan)
    z[row, columns] = values
    return z, keys


def monthly_grid(index, equity: np.ndarray, initial_capital: float) -> tuple[np.ndarray, list[int]]:
    """``monthly_returns`` as plain arrays: the year × 12 grid and its years.

    Args:
        index: The run's timeline (``RunResult.ts`` or a DatetimeIndex).
        equity: Equity at each bar of ``index``.
        initial_capital: Starting cash.

    Returns:
        The grid of percent returns (NaN where a month has no bars) and the year of each row.
    """
    if len(index) == 0:
        return np.empty((0, 12)), []
    months, pct = _period_returns(index, equity, initial_capital, "M")
    number = months.astype(np.int64)  # months since 1970-01
    z, years = _grid(number // 12, number % 12, pct, 12)
    return z, [int(y) + 1970 for y in years]


def daily_grid(index, equity: np.ndarray, initial_capital: float) -> tuple[np.ndarray, np.ndarray]:
    """``daily_returns`` as plain arrays: the week × weekday grid and each week's Monday.

    Args:
        index: The run's timeline (``RunResult.ts`` or a DatetimeIndex).
        equity: Equity at each bar of ``index``.
        initial_capital: Starting cash.

    Returns:
        The grid of percent returns (5 columns, 7 when a bar falls on a weekend) and the
        Mondays (``datetime64[D]``).
    """
    if len(index) == 0:
        return np.empty((0, 5)), np.empty(0, dtype="datetime64[D]")
    days, pct = _period_returns(index, equity, initial_capital, "D")
    weekday = (days.astype(np.int64) + _THURSDAY) % 7
    mondays = days - weekday.astype("timedelta64[D]")
    return _grid(mondays, weekday, pct, 7 if (weekday >= 5).any() else 5)


def monthly_returns(index, equity: np.ndarray, initial_capital: float) -> pd.DataFrame:
    """Month-by-month returns in percent as a year × month grid (``monthly_grid`` as a DataFrame).

    Equity is sampled at each month's last bar (IST calendar); the first month is
    measured against the initial capital.

    Args:
        index: The run's timeline.
        equity: Equity at each bar of ``index``.
        initial_capital: Starting cash.

    Returns:
        DataFrame indexed by year with columns 1..12; months without bars are NaN.
    """
    import pandas as pd

    z, years = monthly_grid(index, equity, initial_capital)
    return pd.DataFrame(z, index=years, columns=range(1, 13), dtype=np.float64)


def daily_returns(index, equity: np.ndarray, initial_capital: float) -> pd.DataFrame:
    """Day-by-day returns in percent as a week × weekday grid, for runs too short for months
    (``daily_grid`` as a DataFrame).

    Equity is sampled at each IST day's last bar; the first day is measured against the
    initial capital.

    Args:
        index: The run's timeline.
        equity: Equity at each bar of ``index``.
        initial_capital: Starting cash.

    Returns:
        DataFrame indexed by each week's Monday (a Timestamp) with columns 0..4
        (Monday..Friday, plus 5 and 6 when a bar falls on a weekend); days without bars are NaN.
    """
    import pandas as pd

    z, mondays = daily_grid(index, equity, initial_capital)
    return pd.DataFrame(z, index=pd.DatetimeIndex(mondays), columns=range(z.shape[1]), dtype=np.float64)
