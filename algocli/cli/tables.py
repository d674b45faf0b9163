"""Rich views as pure functions of a result, so they can be snapshot-tested."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from rich.console import Group
from rich.table import Table
from rich.text import Text

from algocli.analytics.charges import ChargeSummary
from algocli.analytics.result import RunResult, strategy_rows
from algocli.analytics.stats import ANNUALISED, LABELS, short_sample_note
from algocli.analytics.timefmt import figure_text, timedelta_text
from algocli.domain.modes import RunMode

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
        return figure_text(value)
    return str(value)


def metrics_table(result: RunResult, mode: RunMode) -> Table:
    """The statistics of a run, labelled as backtesting.py labels them, under a title that names
    the run and its ``mode`` (``sma-hdfcbank: backtest results``).

    Annualised figures of a run shorter than ``SHORT_RUN_SESSIONS`` carry ``*`` and the
    table's caption says why. A run with charges by kind (``charges: dhan``...) shows its
    ``Charges [₹]`` total where a flat-commission run shows ``Commissions [₹]``, followed by gross
    and net P&L and the cost drag (``algocli.analytics.charges``).
    """
    note = short_sample_note(result.metrics)
    charges = result.charges
    table = Table(title=f"{result.name}: {mode.title.lower()} results", title_justify="left",
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


def summary(result: RunResult, mode: RunMode) -> Group:
    """What a finished run of ``mode`` prints: its statistics, the per-strategy table when there
    are several strategies, and its notes."""
    parts: list = [metrics_table(result, mode)]
    if len(result.strategies) > 1:
        parts.append(strategy_table(result))
    parts.extend(Text.assemble(("note:", "cyan"), f" {note}") for note in result.notes)
    return Group(*parts)


_GAP = 2  # between two columns of a figure table (collapsed padding, no rule)


def figure_table(heads: tuple[str, ...], rows: list[tuple[str, ...]], *, width: int, left: tuple[int, ...] = (),
                 wrap: tuple[int, ...] = (), **table: object) -> tuple[Table, bool]:
    """A table of figures whose numbers are never cut short at ``width`` columns.

    Rich fits a wide table to the terminal by cutting cells ("13.…"), so on a narrow terminal or
    in a CI log's 80 columns a figure would be lost. Here each column is as wide as its widest
    cell; when that is too wide the headers wrap after spaces and underscores, and the ``wrap``
    columns (labels) wrap their words.

    Args:
        heads: Column headers.
        rows: Cell texts.
        width: Columns available.
        left: Columns aligned left (the others are figures, aligned right).
        wrap: Label columns that may wrap onto several lines.
        **table: Passed to ``rich.table.Table`` (title, caption...).

    Returns:
        The table and whether it fits ``width`` (when it does not, Rich will crop it).
    """
    from rich import box

    cells = [max((len(r[k]) for r in rows), default=1) for k in range(len(heads))]
    lines = [[h] for h in heads]
    widths = [max(c, len(h)) for c, h in zip(cells, heads)]
    if sum(widths) + _GAP * (len(widths) - 1) > width:
        lines = [_wrapped(h, c) for h, c in zip(heads, cells)]
        widths = [max(c, *map(len, ls)) for c, ls in zip(cells, lines)]
        for k in wrap:  # as narrow as its longest word, then as wide as the room left allows
            words = [w for r in rows for w in r[k].split()] + [w for ls in lines[k] for w in ls.split()]
            narrow = max(map(len, words), default=1)
            room = width - _GAP * (len(widths) - 1) - sum(w for j, w in enumerate(widths) if j != k)
            widths[k] = max(narrow, min(widths[k], room))
    fits = sum(widths) + _GAP * (len(widths) - 1) <= width
    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True, title_justify="left",
                caption_justify="left", **table)
    for k, (head, fit) in enumerate(zip(lines, widths)):
        out.add_column("\n".join(head), justify="left" if k in left else "right", no_wrap=k not in wrap, width=fit)
    for row in rows:
        out.add_row(*row)
    return out, fits


def _wrapped(head: str, cell: int) -> list[str]:
    """``head`` on lines as wide as its column's cells (or its longest word), broken after spaces,
    underscores, dots and hyphens: "IS sharpe_ratio" -> "IS", "sharpe_", "ratio"; a swept
    "sma-hdfcbank.fast_period" -> "sma-", "hdfcbank.", "fast_", "period"."""
    words = re.findall(r"[^ _.-]*[_.-]|[^ _.-]+", head)
    fit, lines = max(cell, *map(len, words)), [""]
    for word in words:
        joined = lines[-1].endswith(("_", ".", "-"))
        if lines[-1] and len(lines[-1]) + len(word) + (not joined) > fit:
            lines.append(word)
        else:
            lines[-1] += word if not lines[-1] or joined else " " + word
    return lines
