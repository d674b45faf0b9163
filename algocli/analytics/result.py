"""What a finished run hands to the statistics, the report and the artifact writers.

The run keeps its timeline as UTC nanoseconds (``RunResult.ts``) and its round trips as
numpy columns (``RunResult.trade_columns``): the statistics, the tables, the CSVs and the
report read those, so a small run never imports pandas (a quarter of a second). ``index``
(a ``pd.DatetimeIndex``) and ``trades`` (a ``pd.DataFrame``) are built from them on first
access for callers who want frames; either may also be assigned a frame, which the
writers then read.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from algocli.domain.bars import Bars
from algocli.domain.models import Fill, Instrument, Order

if TYPE_CHECKING:
    import pandas as pd

    from algocli.analytics.charges import ChargeSummary
    from algocli.strategy.context import IndicatorRead

TRADE_COLUMNS = [
    "strategy", "instrument", "side", "size", "entry_time", "exit_time", "entry_price",
    "exit_price", "pnl", "return_pct", "commission", "duration", "entry_bar", "exit_bar",
]
#: Trade columns holding times (UTC nanoseconds in ``trade_columns``, IST timestamps in ``trades``).
TIME_COLUMNS = ("entry_time", "exit_time")


@dataclass
class RunResult:
    """Everything one backtest (or a stopped paper/live run) produced.

    Attributes:
        name: The run name from the YAML.
        index: The run's timeline: every bar start of every instrument, tz-aware IST. Given
            as UTC nanoseconds (int64) or a ``pd.DatetimeIndex``; read back as the index,
            built on first access. ``ts`` is the same timeline as nanoseconds.
        equity: Account equity at each bar's close (cash + positions at that close).
        cash: Account cash at each bar's close.
        benchmark: Buy & hold equity on the same timeline, scaled to the initial capital.
        strategy_pnl: Realised + unrealised P&L of each strategy at each bar.
        metrics: Ordered statistics keyed by PerformanceMetrics field names; times are
            ``datetime`` (IST) and ``timedelta``, undefined ones None (``stats``).
        trades: Round trips, one row per closed lot (columns: ``TRADE_COLUMNS``;
            ``size`` is signed, ``return_pct`` is a fraction like backtesting.py's ``ReturnPct``).
            Given as ``trade_columns`` (numpy arrays, times in UTC nanoseconds) or a DataFrame;
            read back as a DataFrame, built on first access.
        orders: Every order, including rejected and expired ones.
        fills: Every fill, in booking order.
        bars: The candles each instrument was run on (after resampling and date filters).
        instruments: Instrument metadata by id.
        strategies: Strategy id to class name.
        initial_capital: Starting cash.
        notes: Human-readable remarks for the summary (e.g. positions closed at the end).
        indicators: The TA-Lib series each strategy read, drawn on the report's price charts.
        available_margin: Equity less the margin the open positions block, at each bar's close,
            when product rules (margin instead of the whole value) were on; None otherwise.
    """

    name: str
    index: pd.DatetimeIndex
    equity: np.ndarray
    cash: np.ndarray
    benchmark: np.ndarray
    strategy_pnl: dict[str, np.ndarray]
    metrics: dict[str, object]
    trades: pd.DataFrame
    orders: list[Order]
    fills: list[Fill]
    bars: dict[str, Bars]
    instruments: dict[str, Instrument]
    strategies: dict[str, str]
    initial_capital: float
    notes: list[str] = field(default_factory=list)
    indicators: list[IndicatorRead] = field(default_factory=list)
    available_margin: np.ndarray | None = None

    @property
    def ts(self) -> np.ndarray:
        """The timeline as UTC nanoseconds (int64)."""
        raw = self._index_raw
        if isinstance(raw, np.ndarray):
            return raw
        return raw.as_unit("ns").asi8

    @functools.cached_property
    def charges(self) -> ChargeSummary | None:
        """``analytics.charges.charge_summary`` of the run, worked out once: the summary table, the
        report's charges section and its equity chart all read it, and it looks at every fill."""
        from algocli.analytics.charges import charge_summary

        return charge_summary(self)

    @property
    def trade_columns(self) -> dict[str, np.ndarray]:
        """The round trips as numpy columns (``TRADE_COLUMNS``; times and durations in nanoseconds)."""
        raw = self._trades_raw
        return raw if isinstance(raw, dict) else columns_of_frame(raw)


def _get_index(self: RunResult) -> pd.DatetimeIndex:
    raw = self._index_raw
    if isinstance(raw, np.ndarray):
        from algocli.domain.candle import IST
        import pandas as pd

        raw = self._index_raw = pd.DatetimeIndex(raw.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(IST)
    return raw


def _set_index(self: RunResult, value) -> None:
    self._index_raw = np.asarray(value, dtype=np.int64) if isinstance(value, (np.ndarray, list)) else value


def _get_trades(self: RunResult) -> pd.DataFrame:
    raw = self._trades_raw
    if isinstance(raw, dict):
        raw = self._trades_raw = frame_of_columns(raw)
    return raw


def _set_trades(self: RunResult, value) -> None:
    self._trades_raw = value


# Properties installed after the dataclass is made, so that the generated __init__, replace()
# and repr go through them while the fields keep their names and order.
RunResult.index = property(_get_index, _set_index)  # type: ignore[assignment]
RunResult.trades = property(_get_trades, _set_trades)  # type: ignore[assignment]


def empty_trade_columns() -> dict[str, np.ndarray]:
    """``trade_columns`` of a run without a closed trade."""
    kinds = {"strategy": object, "instrument": object, "side": object, "size": np.int64}
    return {c: np.empty(0, dtype=kinds.get(c, np.int64 if c.endswith(("time", "bar", "duration")) else float))
            for c in TRADE_COLUMNS}


def frame_of_columns(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """``trade_columns`` as the ``trades`` DataFrame: times tz-aware IST, durations timedeltas."""
    import pandas as pd

    from algocli.domain.candle import IST

    if not len(columns["size"]):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TRADE_COLUMNS})
    data = dict(columns)
    for name in TIME_COLUMNS:
        data[name] = pd.DatetimeIndex(columns[name].astype("datetime64[ns]")).tz_localize("UTC").tz_convert(IST)
    data["duration"] = pd.to_timedelta(columns["duration"], unit="ns")
    return pd.DataFrame(data, columns=TRADE_COLUMNS)


def columns_of_frame(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A ``trades`` DataFrame as ``trade_columns`` (the inverse of ``frame_of_columns``)."""
    import pandas as pd

    if not len(frame):
        return empty_trade_columns()
    out = {c: frame[c].to_numpy() for c in TRADE_COLUMNS if c in frame.columns}
    for name in TIME_COLUMNS:
        out[name] = pd.DatetimeIndex(frame[name]).as_unit("ns").asi8
    out["duration"] = pd.TimedeltaIndex(frame["duration"]).as_unit("ns").asi8
    return out


def strategy_rows(result: RunResult) -> list[tuple[str, str, float, int, float]]:
    """Per strategy: id, class, final P&L, closed trades and win rate in percent (NaN without trades).

    Args:
        result: The finished run.

    Returns:
        One row per strategy, in the run's order; the terminal and the report both show them.
    """
    trades = result.trade_columns
    strategy = trades["strategy"]
    pnl_all = np.asarray(trades["pnl"], dtype=float)
    rows = []
    for sid, cls in result.strategies.items():
        own = pnl_all[strategy == sid] if len(strategy) else pnl_all
        n = len(own)
        win = float((own > 0).mean() * 100) if n else float("nan")
        pnl = result.strategy_pnl.get(sid)
        rows.append((sid, cls, float(pnl[-1]) if pnl is not None and len(pnl) else float("nan"), n, win))
    return rows
