"""A self-contained interactive HTML report for one run.

``write_report`` renders a :class:`~algocli.analytics.result.RunResult` into a single
HTML page with plotly.js embedded inline, so the page works offline. The page holds the
statistics table (annualised figures of a short run marked), a per-strategy table when
several strategies ran, the charges by kind with gross and net P&L and the cost drag when the
run has charges by kind (``algocli.analytics.charges`` defines them; a flat-commission run shows
its ``Commissions`` total in the statistics only), and one chart per ``div``: equity vs buy & hold (plus each
strategy's P&L when there are several), drawdown, candlesticks with volume, indicators
and trade markers per instrument, daily or monthly returns and the distribution of trade
returns (``algocli.analytics.figures``).

The page is written without importing plotly's Python package: the figures are plain
dicts of Plotly's JSON schema, numeric arrays travel as base64 typed arrays (plotly.js
decodes ``{"dtype": "f8", "bdata": ...}``), and the plotly.js bundle and the
``plotly_white`` template are read from the installed package's files. Each figure sits
in a ``<script type="application/json">`` the browser parses with ``JSON.parse``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import numbers
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from algocli.analytics.charges import CHARGE_LABELS
from algocli.analytics.figures import build_figures
from algocli.analytics.plotdata import ns_to_ist
from algocli.analytics.result import strategy_rows
from algocli.analytics.stats import ANNUALISED, LABELS, short_sample_note
from algocli.analytics.timefmt import figure_text, timedelta_ns, timedelta_text
from algocli.domain.candle import IST
from algocli.domain.modes import RunMode

if TYPE_CHECKING:
    from algocli.analytics.result import RunResult

_MISSING = "—"
_MARK = "*"
_PLOT_CONFIG = {"responsive": True, "displaylogo": False}
_TEMPLATE = "plotly_white"


# --------------------------------------------------------------------------- numbers


def format_metric(value: object) -> str:
    """Render one statistic for the table.

    Args:
        value: A number, timedelta, timestamp, string or None.

    Returns:
        Text: thousands separators and 2 decimals for ordinary floats, 4 significant
        digits for small ones, ``"—"`` for NaN/None/NaT, timedeltas as pandas text,
        timestamps in IST (the date alone at midnight, as daily bars are stamped).
    """
    if value is None or type(value).__name__ == "NaTType":
        return _MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, np.timedelta64):
        return _MISSING if np.isnat(value) else timedelta_text(int(value.astype("timedelta64[ns]").astype(np.int64)))
    if isinstance(value, timedelta):
        return timedelta_text(timedelta_ns(value))
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return _MISSING
        value = value.astype("datetime64[us]").item()  # naive: taken as IST
    if isinstance(value, datetime):
        ts = value.astimezone(IST) if value.tzinfo is not None else value
        return ts.strftime("%Y-%m-%d %H:%M" if (ts.hour or ts.minute) else "%Y-%m-%d")
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return figure_text(float(value))
    return str(value)


def _metric_label(name: str) -> str:
    """The statistics module's label (``Sharpe Ratio``), else ``max_dd_pct`` → ``Max dd %``."""
    if name in LABELS:
        return LABELS[name]
    words = ["%" if w == "pct" else w for w in str(name).split("_") if w]
    text = " ".join(words) or str(name)
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- tables


def _stats_table_html(metrics: dict[str, object], itemised: bool = False) -> str:
    """The statistics; with ``itemised`` charges (``charges: dhan``...) the commissions row is their
    total, labelled ``Charges [₹]`` as the terminal labels it (the charges section itemises it)."""
    if not metrics:
        return '<p class="note">No statistics were computed for this run.</p>'
    note = short_sample_note(metrics)
    rows = []
    for k, v in metrics.items():
        text = format_metric(v)
        marked = note is not None and k in ANNUALISED and text != _MISSING
        cell = html.escape(text) + (f' <sup class="mark">{_MARK}</sup>' if marked else "")
        attrs = f' data-key="{html.escape(str(k))}"' + (' class="short-sample"' if marked else "")
        label = "Charges [₹]" if itemised and k == "commissions" else _metric_label(k)
        rows.append(f"<tr{attrs}><th>{html.escape(label)}</th><td>{cell}</td></tr>")
    footnote = f'<p class="note short-sample-note">{_MARK} {html.escape(note)}</p>' if note else ""
    return (f'<table class="stats"><thead><tr><th>Statistic</th><th>Value</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>{footnote}')


def _strategy_table_html(result: RunResult) -> str:
    """The terminal's per-strategy table, for a run of several strategies."""
    if len(result.strategies) < 2:
        return ""
    head = "".join(f"<th>{c}</th>" for c in ("Strategy", "Class", "P&amp;L [₹]", "Trades", "Win rate [%]"))
    body = "".join(
        f'<tr data-strategy="{html.escape(sid)}"><th>{html.escape(sid)}</th><th>{html.escape(cls)}</th>'
        f"<td>{format_metric(pnl)}</td><td>{n:,}</td><td>{format_metric(win)}</td></tr>"
        for sid, cls, pnl, n, win in strategy_rows(result))
    return (f'<h2>Per strategy</h2><table class="stats strategies"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _charges_html(result: RunResult) -> str:
    """The charges by kind, gross against net P&L and the cost drag; "" for a run without them."""
    charges = result.charges
    if charges is None:
        return ""
    kinds = "".join(f'<tr data-key="{k}"><th>{CHARGE_LABELS[k]}</th><td>{format_metric(v)}</td></tr>'
                    for k, v in charges.by_kind.items())
    drag = _MISSING if math.isnan(charges.drag_pct) else f"{charges.drag_pct:.2f}%"
    pnl = (f'<tr data-key="gross_pnl"><th>Gross P&amp;L (before charges)</th><td>{format_metric(charges.gross_pnl)}</td></tr>'
           f'<tr data-key="charges_total"><th>Charges</th><td>{format_metric(-charges.total)}</td></tr>'
           f'<tr data-key="net_pnl"><th>Net P&amp;L (after charges)</th><td>{format_metric(charges.net_pnl)}</td></tr>'
           f'<tr data-key="cost_drag"><th>Cost drag [₹]</th><td>{format_metric(charges.total)}</td></tr>'
           f'<tr data-key="cost_drag_pct"><th>Cost drag [% of gross profit]</th><td>{drag}</td></tr>')
    estimated = (f'<p class="note">{charges.estimated_fills:,} live fill(s) carry estimated charges (the cost '
                 "model's, not the contract note's).</p>" if charges.estimated_fills else "")
    return ('<section class="charges"><h2>Charges</h2><div class="pair">'
            '<table class="stats charges-by-kind"><thead><tr><th>Charge</th><th>₹</th></tr></thead>'
            f'<tbody>{kinds}</tbody><tfoot><tr data-key="total"><th>Total</th><td>{format_metric(charges.total)}'
            '</td></tr></tfoot></table><table class="stats gross-net"><thead><tr><th>P&amp;L</th><th>₹</th></tr>'
            f'</thead><tbody>{pnl}</tbody></table></div>'
            '<p class="note">Gross P&amp;L is net P&amp;L plus every charge paid; the cost drag is the charges, '
            "and their share of the gross profit (undefined when the run lost money before charges; 100% or "
            f"more means the charges ate the whole gross profit).</p>{estimated}</section>")


def _legs_html(result: RunResult) -> str:
    """The futures and options legs: paid and received (premium, or a future's contract value),
    charges and expiry settlement."""
    from algocli.analytics.derivatives import derivative_legs

    legs = derivative_legs(result)
    if not legs:
        return ""
    cols = ("Contract", "Expiry", "Tags", "Bought", "Sold", "Paid [₹]", "Received [₹]",
            "Settled at expiry", "Settlement price", "Settlement [₹]", "Charges [₹]", "Net P&amp;L [₹]")
    head = "".join(f"<th>{c}</th>" for c in cols)

    def cells(leg) -> str:
        values = (leg.expiry, leg.tags or _MISSING, f"{leg.bought:,}", f"{leg.sold:,}", format_metric(leg.premium_paid),
                  format_metric(leg.premium_received), f"{leg.settled_qty:,}" if leg.settled_qty else _MISSING,
                  _MISSING if leg.settlement_price is None else format_metric(leg.settlement_price),
                  format_metric(leg.settlement_value), format_metric(leg.charges),
                  "open" if leg.net_pnl is None else format_metric(leg.net_pnl))
        return "".join(f"<td>{html.escape(v)}</td>" for v in values)

    body = "".join(f'<tr data-contract="{html.escape(leg.instrument)}"><th>{html.escape(leg.instrument)}</th>'
                   f"{cells(leg)}</tr>" for leg in legs)
    return ('<section class="legs"><h2>Futures and options legs</h2>'
            f'<table class="stats legs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            '<p class="note">Paid and received are the strategies\' own buys and sells, price × units: an '
            "option's premium, a future's contract value. "
            "a position open at expiry is settled by the engine (tag <code>expiry</code>): an option at its "
            "intrinsic value against the underlying's close on the expiry day (zero when worthless), a future at "
            "that day's close. Charges include the settlement's (STT on an exercised long option). Net P&amp;L = "
            "received − paid + settlement − charges.</p></section>")


def _notes_html(notes: list[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f'<ul class="notes">{items}</ul>'


_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f5f6f8;color:#222}
header{background:#1f2937;color:#fff;padding:18px 32px}header h1{margin:0 0 6px;font-size:22px}
header p{margin:2px 0;font-size:13px;color:#d1d5db}main{max-width:1400px;margin:0 auto;padding:16px 24px}
section{background:#fff;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.08);margin:16px 0;padding:12px 16px}
h2{font-size:16px;margin:4px 0 10px}table.stats{border-collapse:collapse;font-size:13px;min-width:420px}
table.stats th,table.stats td{padding:4px 14px;border-bottom:1px solid #eee;text-align:left}
table.stats td{text-align:right;font-variant-numeric:tabular-nums}table.stats thead th{background:#f3f4f6}
table.strategies{margin-top:4px}tr.short-sample td{color:#92400e}sup.mark{color:#b45309;font-weight:bold}
.note{color:#6b7280;font-size:13px}.pair{display:flex;gap:24px;flex-wrap:wrap}.short-sample-note{color:#92400e}ul.notes{font-size:13px;margin:6px 0 0}
table.legs td,table.wide td{white-space:nowrap}
"""


def _header_html(result: RunResult, mode: RunMode) -> str:
    name = html.escape(result.name)
    lines = []
    ts = result.ts
    if len(ts):
        ist = ns_to_ist(ts)
        daily = bool((ist.astype("datetime64[D]") == ist).all())  # daily bars are stamped at midnight
        fmt = "%Y-%m-%d" if daily else "%Y-%m-%d %H:%M"
        first, last = (t.strftime(fmt) for t in ist[[0, -1]].astype("datetime64[us]").tolist())
        lines.append(f"{first} → {last}{'' if daily else ' IST'} · {len(ts):,} bars")
    from algocli.analytics.derivatives import shown_instruments

    shown, untraded = shown_instruments(result)
    names = [result.instruments[i].display_name if i in result.instruments else i for i in shown]
    if names:
        more = f" (and {untraded:,} option contracts loaded but not traded)" if untraded else ""
        lines.append("Instruments: " + ", ".join(html.escape(n) for n in names) + more)
    if result.strategies:
        lines.append("Strategies: " + ", ".join(f"{html.escape(k)} ({html.escape(v)})" for k, v in result.strategies.items()))
    final = f" · final equity {format_metric(float(result.equity[-1]))}" if len(result.equity) else ""
    lines.append(f"Initial capital {format_metric(float(result.initial_capital))}{final}")
    body = "".join(f"<p>{line}</p>" for line in lines)
    return f"<header><h1>{mode.title} report — {name}</h1>{body}</header>"


# --------------------------------------------------------------------------- encoding


def _encode(value: object) -> object:
    """JSON for what ``json`` cannot encode: numeric arrays as plotly.js typed arrays."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fiub":
            kind = "f8" if value.dtype.kind == "f" else "i4"
            data = np.ascontiguousarray(value, dtype="<f8" if kind == "f8" else "<i4")
            return {"dtype": kind, "bdata": base64.b64encode(data.tobytes()).decode("ascii")}
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot put {type(value).__name__} into a figure")


def figure_json(figure: dict) -> str:
    """A figure dict as JSON that is safe inside a ``<script>`` element.

    Args:
        figure: ``{"data": [...], "layout": {...}}`` with numpy arrays anywhere.

    Returns:
        Strict JSON (no NaN: gaps in arrays travel as NaN inside the typed arrays).
    """
    text = json.dumps(figure, default=_encode, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return text.replace("</", "<\\/")  # never close the script element early


@lru_cache(maxsize=None)
def _plotly_file(relative: str) -> bytes:
    """A file of the installed plotly package, found without importing it (that costs 0.1 s+)."""
    from importlib.util import find_spec

    spec = find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("plotly is not installed; install it to write report.html (pip install plotly)")
    return (Path(next(iter(spec.submodule_search_locations))) / "package_data" / relative).read_bytes()


def _div_id(index: int, key: str) -> str:
    return f"chart-{index}-" + re.sub(r"[^A-Za-z0-9_-]+", "-", key).strip("-")


def _chart_html(index: int, key: str, figure: dict) -> str:
    div = _div_id(index, key)
    height = figure.get("layout", {}).get("height", 450)
    return (
        f'<section class="chart" data-key="{html.escape(key)}">'
        f'<div id="{div}" class="plotly-graph-div" style="height:{int(height)}px;width:100%"></div>'
        f'<script type="application/json" id="{div}-figure">{figure_json(figure)}</script>'
        f'<script>(function(){{var f=JSON.parse(document.getElementById("{div}-figure").textContent);'
        f'f.layout.template=ALGO_TEMPLATE;Plotly.newPlot("{div}",f.data,f.layout,ALGO_CONFIG);}})();</script>'
        "</section>"
    )


def _page(result: RunResult, mode: RunMode, holidays: Iterable[date] | None) -> bytes:
    mode = RunMode(mode)
    parts = [f"<section><h2>Statistics</h2>{_stats_table_html(result.metrics, result.charges is not None)}{_notes_html(result.notes)}"
             f"{_strategy_table_html(result)}</section>", _charges_html(result), _legs_html(result)]
    return html_page(f"{mode.title} report — {result.name}", _header_html(result, mode), parts,
                     build_figures(result, holidays))


def html_page(title: str, header: str, parts: Iterable[str], figures: Iterable[tuple[str, dict]]) -> bytes:
    """A self-contained page: plotly.js inline, the sections, then one chart per figure.

    Args:
        title: The page title (plain text).
        header: The ``<header>`` element's HTML.
        parts: HTML sections placed before the charts.
        figures: ``(key, figure)`` pairs, each figure a Plotly JSON dict (numpy arrays allowed).

    Returns:
        The page's UTF-8 bytes.
    """
    parts = [*parts, *(_chart_html(i, key, fig) for i, (key, fig) in enumerate(figures))]
    template = _plotly_file(f"templates/{_TEMPLATE}.json").decode("utf-8").replace("</", "<\\/")
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};</script>'
        '<script type="text/javascript">'
    )
    tail = (
        f"</script><script>var ALGO_TEMPLATE={template};var ALGO_CONFIG={json.dumps(_PLOT_CONFIG)};</script></head>\n"
        f"<body>{header}<main>{''.join(parts)}</main></body></html>\n"
    )
    return b"".join((head.encode("utf-8"), _plotly_file("plotly.min.js"), tail.encode("utf-8")))


def render_html(result: RunResult, *, mode: RunMode, holidays: Iterable[date] | None = None) -> str:
    """Render the whole report page as one HTML string with plotly.js inline.

    Args:
        result: The finished run.
        mode: How the run traded; the page's title and heading name it
            (``Backtest report``, ``Paper trading report``, ``Live trading (dry run) report``...).
        holidays: Trading holidays (IST dates) the time axes skip; None takes every
            weekday without a bar for one (see ``figures.build_figures``).

    Returns:
        A complete, self-contained HTML document.
    """
    return _page(result, mode, holidays).decode("utf-8")


def write_report(result: RunResult, path: Path, *, mode: RunMode, holidays: Iterable[date] | None = None) -> Path:
    """Write the report page atomically (temp file in the same directory, then rename).

    Args:
        result: The finished run.
        path: Where the HTML goes; parent directories are created.
        mode: How the run traded (see ``render_html``).
        holidays: Trading holidays to skip on time axes (see ``render_html``).

    Returns:
        ``path``.
    """
    from algocli.persistence.artifacts import atomic_write_bytes

    return atomic_write_bytes(Path(path), _page(result, mode, holidays))


def run_holidays(result: RunResult) -> list[date] | None:
    """NSE trading holidays over the years of ``result``'s timeline, for ``write_report(holidays=...)``.

    Args:
        result: The finished run.

    Returns:
        The holidays of the run's covered years (``algocli.market.calendar``), or None when the
        calendar covers none of them (the axes then infer holidays from the data; the calendar
        says once that the year is not covered).
    """
    ts = result.ts
    if not len(ts):
        return None
    from algocli.market.calendar import default_calendar

    calendar = default_calendar()
    first, last = ns_to_ist(np.array([ts.min(), ts.max()])).astype("datetime64[D]").tolist()
    years = range(first.year, last.year + 1)
    if not any(year in calendar.covered_years for year in years):
        return None
    return [day for year in years for day in calendar.holidays(year)]
