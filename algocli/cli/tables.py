"""Rich views as pure functions of a result, so they can be snapshot-tested."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Group
from rich.table import Table
from rich.text import Text

from algocli.analytics.result import RunResult
from algocli.analytics.stats import LABELS


def format_value(value: object) -> str:
    """Human-readable metric value."""
    if value is None or value is pd.NaT:
        return "—"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M") if (value.hour or value.minute) else value.strftime("%Y-%m-%d")
    if isinstance(value, pd.Timedelta):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.4g}" if abs(value) < 0.01 else f"{value:.2f}"
    return str(value)


def metrics_table(result: RunResult) -> Table:
    """The statistics of a run, labelled as backtesting.py labels them."""
    table = Table(title=f"{result.name}: results", title_justify="left")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in result.metrics.items():
        table.add_row(LABELS.get(key, key), format_value(value))
    return table


def strategy_table(result: RunResult) -> Table:
    """Final P&L, trades and win rate per strategy."""
    table = Table(title="per strategy", title_justify="left")
    for col in ("strategy", "class", "P&L [₹]", "trades", "win rate [%]"):
        table.add_column(col, justify="right" if col not in ("strategy", "class") else "left")
    trades = result.trades
    for sid, cls in result.strategies.items():
        own = trades[trades["strategy"] == sid] if len(trades) else trades
        n = len(own)
        win = float((own["pnl"] > 0).mean() * 100) if n else float("nan")
        table.add_row(sid, cls, format_value(float(result.strategy_pnl[sid][-1])), str(n), format_value(win))
    return table


def summary(result: RunResult) -> Group:
    """What a finished run prints: its statistics, the per-strategy table when there are
    several strategies, and its notes."""
    parts: list = [metrics_table(result)]
    if len(result.strategies) > 1:
        parts.append(strategy_table(result))
    parts.extend(Text.assemble(("note:", "cyan"), f" {note}") for note in result.notes)
    return Group(*parts)
