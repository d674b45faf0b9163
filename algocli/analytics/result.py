"""What a finished run hands to the statistics, the report and the artifact writers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from algocli.domain.bars import Bars
from algocli.domain.models import Fill, Instrument, Order

TRADE_COLUMNS = [
    "strategy", "instrument", "side", "size", "entry_time", "exit_time", "entry_price",
    "exit_price", "pnl", "return_pct", "commission", "duration", "entry_bar", "exit_bar",
]


@dataclass
class RunResult:
    """Everything one backtest (or a stopped paper/live run) produced.

    Attributes:
        name: The run name from the YAML.
        index: The run's timeline: every bar start of every instrument, tz-aware IST.
        equity: Account equity at each bar's close (cash + positions at that close).
        cash: Account cash at each bar's close.
        benchmark: Buy & hold equity on the same timeline, scaled to the initial capital.
        strategy_pnl: Realised + unrealised P&L of each strategy at each bar.
        metrics: Ordered statistics keyed by PerformanceMetrics field names.
        trades: Round trips, one row per closed lot (columns: ``TRADE_COLUMNS``;
            ``size`` is signed, ``return_pct`` is a fraction like backtesting.py's ``ReturnPct``).
        orders: Every order, including rejected and expired ones.
        fills: Every fill, in booking order.
        bars: The candles each instrument was run on (after resampling and date filters).
        instruments: Instrument metadata by id.
        strategies: Strategy id to class name.
        initial_capital: Starting cash.
        notes: Human-readable remarks for the summary (e.g. positions closed at the end).
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
