"""Rich views as pure functions of a result, so they can be snapshot-tested."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from rich.console import Group
from rich.table import Table
from rich.text import Text

from algocli.analytics.charges import ChargeSummary
from algocli.analytics.result import RunResult, strategy_rows
from algocli.analytics.stats import ANNUALISED, LABELS, short_sample_note
from algocli.analytics.timefmt import timedelta_text

SHORT_SAMPLE_MARK = "*"


def format_value(value: object) -> str:
    """Human-readable metric value."""
    if value is None or type(value).__name__ == "NaTType":
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") if (value.hour or value.minute) else value.strftime("%Y-%m-%d")
    if isinstance(value, timedelta):
        return timedelta_text(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.4g}" if abs(value) < 0.01 else f"{value:.2f}"
    return str(value)


def metrics_table(result: RunResult) -> Table:
    """The statistics of a run, labelled as backtesting.py labels them.

    Annualised figures of a run shorter than ``SHORT_RUN_SESSIONS`` carry ``*`` and the
    table's caption says why. A run with charges by kind (``charges: dhan``...) shows its
    ``Charges [₹]`` total where a flat-commission run shows ``Commissions [₹]``, followed by gross
    and net P&L and the cost drag (``algocli.analytics.charges``).
    """
    note = short_sample_note(result.metrics)
    charges = result.charges
    table = Table(title=f"{result.name}: results", title_justify="left",
                  caption=f"{SHORT_SAMPLE_MARK} {note}" if note else None, caption_justify="left")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in result.metrics.items():
        text = format_value(value)
        if note and key in ANNUALISED and text != "—":
            text = f"{text} {SHORT_SAMPLE_MARK}"
        if key == "commissions" and charges is not None:
            for label, value in charge_rows(charges):
                table.add_row(label, value)
            continue
        table.add_row(LABELS.get(key, key), text)
    return table


def charge_rows(charges: ChargeSummary) -> list[tuple[str, str]]:
    """The terminal's rows for a run with charges: the total, gross and net P&L, the cost drag."""
    estimated = " (estimated)" if charges.estimated_fills else ""
    drag = "—" if math.isnan(charges.drag_pct) else f"{charges.drag_pct:.2f}% of gross profit"
    return [(f"Charges [₹]{estimated}", f"{charges.total:,.2f}"), ("Gross P&L [₹]", f"{charges.gross_pnl:,.2f}"),
            ("Net P&L [₹]", f"{charges.net_pnl:,.2f}"), ("Cost drag", drag)]


def strategy_table(result: RunResult) -> Table:
    """Final P&L, trades and win rate per strategy."""
    table = Table(title="per strategy", title_justify="left")
    for col in ("strategy", "class", "P&L [₹]", "trades", "win rate [%]"):
        table.add_column(col, justify="right" if col not in ("strategy", "class") else "left")
    for sid, cls, pnl, n, win in strategy_rows(result):
        table.add_row(sid, cls, format_value(pnl), str(n), format_value(win))
    return table


def summary(result: RunResult) -> Group:
    """What a finished run prints: its statistics, the per-strategy table when there are
    several strategies, and its notes."""
    parts: list = [metrics_table(result)]
    if len(result.strategies) > 1:
        parts.append(strategy_table(result))
    parts.extend(Text.assemble(("note:", "cyan"), f" {note}") for note in result.notes)
    return Group(*parts)
