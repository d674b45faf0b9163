"""A self-contained interactive HTML report for one run.

``write_report`` renders a :class:`~algocli.analytics.result.RunResult` into a single
HTML page with plotly.js embedded inline, so the page works offline. The page holds
the statistics table and one chart per ``div``: equity vs buy & hold (plus each
strategy's P&L when there are several), drawdown, candlesticks with volume and trade
markers per instrument, monthly returns and the distribution of trade returns.

Big runs are thinned before plotting so the page stays small and opens fast: line
traces keep each bucket's minimum and maximum (``minmax_indices``), candles are
aggregated into equal-count OHLCV buckets (``aggregate_bars``) and only the trades with
the largest absolute P&L get markers. Every chart says when it shows a reduced view.
Plotly is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import html
import math
import numbers
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from algocli.domain.bars import Bars
from algocli.domain.candle import IST
from algocli.domain.models import IST_OFFSET_NS
from algocli.domain.modes import RunMode

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from algocli.analytics.result import RunResult

LINE_POINT_CAP = 5_000
CANDLE_CAP = 2_000
TRADE_MARKER_CAP = 5_000

_MISSING = "—"
_UP, _DOWN = "#26a69a", "#ef5350"
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_PLOT_CONFIG = {"responsive": True, "displaylogo": False}
_TEMPLATE = "plotly_white"



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
    return np.unique(np.concatenate(([0], pairs, [n - 1])))


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
    n = len(bars)
    if n <= cap:
        return bars
    size = -(-n // cap)
    starts = np.arange(0, n, size)
    lasts = np.append(starts[1:], n) - 1
    return Bars(
        bars.instrument,
        bars.ts[starts],
        bars.open[starts],
        np.fmax.reduceat(bars.high, starts),
        np.fmin.reduceat(bars.low, starts),
        bars.close[lasts],
        np.add.reduceat(np.nan_to_num(bars.volume), starts),
    )


def largest_trades(trades: pd.DataFrame, cap: int = TRADE_MARKER_CAP) -> pd.DataFrame:
    """Keep the ``cap`` trades with the largest absolute P&L, in their original order.

    Args:
        trades: Round trips with a ``pnl`` column.
        cap: Maximum number of rows to keep.

    Returns:
        ``trades`` itself when it already fits, else the selected rows.
    """
    if len(trades) <= cap:
        return trades
    magnitude = np.abs(trades["pnl"].to_numpy(dtype=np.float64))
    keep = np.sort(np.argsort(-magnitude, kind="stable")[:cap])
    return trades.iloc[keep]


def _ns_to_ist(ts: np.ndarray) -> np.ndarray:
    """UTC nanoseconds to naive IST ``datetime64[ns]`` (what the charts display)."""
    return (np.asarray(ts, dtype=np.int64) + IST_OFFSET_NS).view("datetime64[ns]")


def _labels(x: np.ndarray) -> np.ndarray:
    """Datetimes as compact ISO strings (to the second) for the page's JSON."""
    return np.datetime_as_string(np.asarray(x, dtype="datetime64[s]"), unit="s")


def _index_to_ist(index: pd.DatetimeIndex) -> np.ndarray:
    """A DatetimeIndex to naive IST ``datetime64[ns]``; naive input is taken as IST."""
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert(IST).tz_localize(None)
    return idx.as_unit("ns").to_numpy()


def _column_to_ist(column: pd.Series) -> np.ndarray:
    """A column of timestamps to naive IST ``datetime64[ns]``; naive input is taken as IST."""
    return _index_to_ist(pd.DatetimeIndex(pd.to_datetime(column)))


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


def monthly_returns(index: pd.DatetimeIndex, equity: np.ndarray, initial_capital: float) -> pd.DataFrame:
    """Month-by-month returns in percent as a year × month grid.

    Equity is sampled at each month's last bar (IST calendar); the first month is
    measured against the initial capital.

    Args:
        index: The run's timeline.
        equity: Equity at each bar of ``index``.
        initial_capital: Starting cash.

    Returns:
        DataFrame indexed by year with columns 1..12; months without bars are NaN.
    """
    if len(index) == 0:
        return pd.DataFrame(columns=range(1, 13), dtype=np.float64)
    series = pd.Series(np.asarray(equity, dtype=np.float64), index=pd.DatetimeIndex(_index_to_ist(index)))
    month_end = series.resample("ME").last().dropna()
    previous = month_end.shift(1)
    previous.iloc[0] = initial_capital
    pct = (month_end / previous - 1.0) * 100.0
    grid = pd.DataFrame({"year": pct.index.year, "month": pct.index.month, "pct": pct.to_numpy()})
    table = grid.pivot(index="year", columns="month", values="pct")
    return table.reindex(columns=range(1, 13))



def format_metric(value: object) -> str:
    """Render one statistic for the table.

    Args:
        value: A number, timedelta, timestamp, string or None.

    Returns:
        Text: thousands separators and 2 decimals for ordinary floats, 4 significant
        digits for small ones, ``"—"`` for NaN/None/NaT, timedeltas as pandas text.
    """
    if value is None or value is pd.NaT:
        return _MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (timedelta, np.timedelta64)):
        td = pd.Timedelta(value)
        return _MISSING if td is pd.NaT else str(td)
    if isinstance(value, (datetime, np.datetime64)):
        ts = pd.Timestamp(value)
        if ts is pd.NaT:
            return _MISSING
        ts = ts.tz_convert(IST) if ts.tzinfo is not None else ts
        return ts.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return _format_float(float(value))
    return str(value)


def _format_float(x: float) -> str:
    if math.isnan(x):
        return _MISSING
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0 or abs(x) >= 1:
        return f"{x:,.2f}"
    return f"{x:.4g}"


def _metric_label(name: str) -> str:
    """The statistics module's label (``Sharpe Ratio``), else ``max_dd_pct`` → ``Max dd %``."""
    try:
        from algocli.analytics.stats import LABELS
    except ImportError:  # pragma: no cover - stats is optional for rendering
        LABELS = {}
    if name in LABELS:
        return LABELS[name]
    words = ["%" if w == "pct" else w for w in str(name).split("_") if w]
    text = " ".join(words) or str(name)
    return text[:1].upper() + text[1:]


def _stats_table_html(metrics: dict[str, object]) -> str:
    if not metrics:
        return '<p class="note">No statistics were computed for this run.</p>'
    rows = "".join(
        f'<tr data-key="{html.escape(str(k))}"><th>{html.escape(_metric_label(k))}</th>'
        f"<td>{html.escape(format_metric(v))}</td></tr>"
        for k, v in metrics.items()
    )
    return f'<table class="stats"><thead><tr><th>Statistic</th><th>Value</th></tr></thead><tbody>{rows}</tbody></table>'



def _line(go, x: np.ndarray, y: np.ndarray, name: str, **kwargs) -> go.Scatter:
    """A thinned SVG line trace (SVG renders everywhere, unlike WebGL)."""
    keep = minmax_indices(y)
    return go.Scatter(x=_labels(x[keep]), y=np.asarray(y, dtype=np.float64)[keep], name=name, mode="lines", **kwargs)


def _thinned_note(n: int) -> str:
    return f" <sup>(lines thinned to ≤{LINE_POINT_CAP:,} of {n:,} points, min/max kept)</sup>" if n > LINE_POINT_CAP else ""


def _equity_figure(go, result: RunResult, x: np.ndarray) -> go.Figure:
    from plotly.subplots import make_subplots

    several = len(result.strategy_pnl) > 1
    rows = 2 if several else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.65, 0.35] if several else [1.0])
    fig.add_trace(_line(go, x, result.equity, "Equity", line={"color": "#1f77b4", "width": 1.6}), row=1, col=1)
    fig.add_trace(_line(go, x, result.benchmark, "Buy & hold", line={"color": "#7f7f7f", "width": 1.2, "dash": "dot"}),
                  row=1, col=1)
    if several:
        for sid, pnl in result.strategy_pnl.items():
            fig.add_trace(_line(go, x, pnl, f"P&L {sid}", line={"width": 1.2}), row=2, col=1)
        fig.update_yaxes(title_text="Strategy P&L", row=2, col=1)
    fig.update_yaxes(title_text="Equity", row=1, col=1)
    fig.update_layout(title=f"Equity vs buy & hold{_thinned_note(len(x))}", height=620 if several else 450,
                      template=_TEMPLATE, hovermode="x unified", legend={"orientation": "h", "y": -0.12})
    return fig


def _drawdown_figure(go, result: RunResult, x: np.ndarray) -> go.Figure:
    dd = drawdown_pct(result.equity)
    trace = _line(go, x, dd, "Drawdown", fill="tozeroy", line={"color": _DOWN, "width": 1},
                  fillcolor="rgba(239,83,80,0.3)", hovertemplate="%{y:.2f}%<extra></extra>")
    worst = f" — max {np.nanmin(dd):.2f}%" if len(dd) else ""
    fig = go.Figure(trace)
    fig.update_layout(title=f"Drawdown (% below running peak){worst}{_thinned_note(len(x))}", height=300,
                      template=_TEMPLATE, yaxis={"title": "Drawdown (%)", "ticksuffix": "%"}, showlegend=False)
    return fig


def _trade_hover(trades: pd.DataFrame, price_col: str, label: str) -> list[str]:
    pnl = trades["pnl"].to_numpy(dtype=np.float64)
    return [
        f"{label} {'long' if size > 0 else 'short'} · {html.escape(str(strategy))}<br>"
        f"size {size:+,.10g} @ {price:,.2f}<br>P&L {p:,.2f}"
        for strategy, size, price, p in zip(trades["strategy"], trades["size"].to_numpy(dtype=np.float64),
                                            trades[price_col].to_numpy(dtype=np.float64), pnl)
    ]


def _trade_traces(go, trades: pd.DataFrame) -> list:
    """Entry (triangle up/down) and exit (x) markers for one instrument's trades."""
    if trades.empty:
        return []
    size = trades["size"].to_numpy(dtype=np.float64)
    entry_x = _labels(_column_to_ist(trades["entry_time"]))
    template = "%{x|%Y-%m-%d %H:%M}<br>%{text}<extra></extra>"
    traces = []
    for mask, name, symbol, color in ((size > 0, "Long entry", "triangle-up", "#2e7d32"),
                                      (size < 0, "Short entry", "triangle-down", "#c62828")):
        if mask.any():
            sub = trades[mask]
            traces.append(go.Scatter(
                x=entry_x[mask], y=sub["entry_price"].to_numpy(dtype=np.float64), mode="markers", name=name,
                marker={"symbol": symbol, "size": 10, "color": color, "line": {"width": 0.5, "color": "#222"}},
                text=_trade_hover(sub, "entry_price", "Entry"), hovertemplate=template))
    exited = trades[trades["exit_time"].notna()]
    if not exited.empty:
        traces.append(go.Scatter(
            x=_labels(_column_to_ist(exited["exit_time"])), y=exited["exit_price"].to_numpy(dtype=np.float64),
            mode="markers", name="Exit", marker={"symbol": "x", "size": 8, "color": "#37474f"},
            text=_trade_hover(exited, "exit_price", "Exit"), hovertemplate=template))
    return traces


def _instrument_figure(go, result: RunResult, instrument: str, shown: pd.DataFrame, total: int) -> go.Figure:
    from plotly.subplots import make_subplots

    raw = result.bars[instrument]
    bars = aggregate_bars(raw)
    x = _labels(_ns_to_ist(bars.ts))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.03, row_heights=[0.78, 0.22])
    fig.add_trace(go.Candlestick(x=x, open=bars.open, high=bars.high, low=bars.low, close=bars.close, name="Price",
                                 increasing_line_color=_UP, decreasing_line_color=_DOWN), row=1, col=1)
    rising = (bars.close >= bars.open).astype(np.int8)  # numeric colours validate and encode fast
    fig.add_trace(go.Bar(x=x, y=bars.volume, name="Volume", showlegend=False, marker={
        "color": rising, "colorscale": [[0, _DOWN], [1, _UP]], "cmin": 0, "cmax": 1, "line": {"width": 0}}),
        row=2, col=1)
    for trace in _trade_traces(go, shown):
        fig.add_trace(trace, row=1, col=1)
    meta = result.instruments.get(instrument)
    title = meta.display_name if meta is not None else instrument
    if len(bars) < len(raw):
        title += f" — aggregated to {len(bars):,} candles ({len(raw):,} bars, {-(-len(raw) // len(bars)):,} per candle)"
    if len(shown) < total:
        title += f"<br><sup>markers for the {len(shown):,} largest of {total:,} trades by |P&L|</sup>"
    fig.update_layout(title=title, height=640, template=_TEMPLATE, bargap=0,
                      legend={"orientation": "h", "y": -0.08}, margin={"t": 80})
    fig.update_xaxes(rangeslider_visible=False)
    fig.update_yaxes(title_text="Price", row=1, col=1)
    fig.update_yaxes(title_text="Volume", row=2, col=1)
    return fig


def _monthly_figure(go, result: RunResult) -> go.Figure:
    table = monthly_returns(result.index, result.equity, result.initial_capital)
    z = table.to_numpy(dtype=np.float64)
    text = [["" if math.isnan(v) else f"{v:.1f}%" for v in row] for row in z]
    years = [str(y) for y in table.index]
    bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(go.Heatmap(
        z=z, x=_MONTHS, y=years, text=text, texttemplate="%{text}", colorscale="RdYlGn", zmid=0,
        zmin=-bound, zmax=bound, xgap=2, ygap=2, colorbar={"title": {"text": "%"}},
        hovertemplate="%{x} %{y}: %{z:.2f}%<extra></extra>"))
    fig.update_layout(title="Monthly returns (%)", height=max(280, 160 + 32 * len(years)), template=_TEMPLATE,
                      yaxis={"type": "category", "autorange": "reversed"}, xaxis={"type": "category", "side": "top"})
    return fig


def _returns_figure(go, trades: pd.DataFrame) -> go.Figure:
    returns = trades["return_pct"].to_numpy(dtype=np.float64) * 100.0 if "return_pct" in trades else np.empty(0)
    returns = returns[np.isfinite(returns)]
    fig = go.Figure()
    layout = {"height": 360, "template": _TEMPLATE, "showlegend": False,
              "xaxis": {"title": {"text": "Trade return (%)"}}, "yaxis": {"title": {"text": "Trades"}}}
    if len(returns) == 0:
        fig.add_annotation(text="No closed trades in this run", showarrow=False, font={"size": 16},
                           xref="paper", yref="paper", x=0.5, y=0.5)
        fig.update_layout(title="Distribution of trade returns", **layout)
        return fig
    fig.add_trace(go.Histogram(x=returns, nbinsx=min(60, max(10, len(returns) // 5)), name="Trades",
                               marker={"color": "#5c6bc0", "line": {"width": 0.5, "color": "#fff"}},
                               hovertemplate="%{x}%: %{y} trades<extra></extra>"))
    fig.add_vline(x=0, line={"color": "#444", "width": 1, "dash": "dash"})
    win = float((returns > 0).mean() * 100.0)
    fig.update_layout(title=f"Distribution of trade returns — {len(returns):,} trades, mean {returns.mean():.2f}%, "
                            f"{win:.0f}% winners", **layout)
    return fig


def build_figures(result: RunResult) -> list[tuple[str, go.Figure]]:
    """Build every chart of the report, thinned for display.

    Args:
        result: The finished run.

    Returns:
        ``(key, figure)`` pairs in page order: ``"equity"``, ``"drawdown"``, one
        ``"candles:<instrument>"`` per instrument, ``"monthly_returns"``, ``"trade_returns"``.
    """
    import plotly.graph_objects as go

    x = _index_to_ist(result.index)
    figures = [("equity", _equity_figure(go, result, x)), ("drawdown", _drawdown_figure(go, result, x))]
    trades = result.trades if result.trades is not None else pd.DataFrame()
    shown = largest_trades(trades) if not trades.empty else trades
    for instrument in result.bars:
        if trades.empty:
            mine, total = trades, 0
        else:
            mine = shown[shown["instrument"] == instrument]
            total = int((trades["instrument"] == instrument).sum())
        figures.append((f"candles:{instrument}", _instrument_figure(go, result, instrument, mine, total)))
    figures.append(("monthly_returns", _monthly_figure(go, result)))
    figures.append(("trade_returns", _returns_figure(go, trades)))
    return figures



_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f5f6f8;color:#222}
header{background:#1f2937;color:#fff;padding:18px 32px}header h1{margin:0 0 6px;font-size:22px}
header p{margin:2px 0;font-size:13px;color:#d1d5db}main{max-width:1400px;margin:0 auto;padding:16px 24px}
section{background:#fff;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.08);margin:16px 0;padding:12px 16px}
h2{font-size:16px;margin:4px 0 10px}table.stats{border-collapse:collapse;font-size:13px;min-width:420px}
table.stats th,table.stats td{padding:4px 14px;border-bottom:1px solid #eee;text-align:left}
table.stats td{text-align:right;font-variant-numeric:tabular-nums}table.stats thead th{background:#f3f4f6}
.note{color:#6b7280;font-size:13px}ul.notes{font-size:13px;margin:6px 0 0}
"""


def _header_html(result: RunResult, mode: RunMode) -> str:
    name = html.escape(result.name)
    lines = []
    if len(result.index):
        first, last = (pd.Timestamp(t) for t in _index_to_ist(result.index)[[0, -1]])
        lines.append(f"{first:%Y-%m-%d %H:%M} → {last:%Y-%m-%d %H:%M} IST · {len(result.index):,} bars")
    names = [result.instruments[i].display_name if i in result.instruments else i for i in result.bars]
    if names:
        lines.append("Instruments: " + ", ".join(html.escape(n) for n in names))
    if result.strategies:
        lines.append("Strategies: " + ", ".join(f"{html.escape(k)} ({html.escape(v)})" for k, v in result.strategies.items()))
    final = f" · final equity {format_metric(float(result.equity[-1]))}" if len(result.equity) else ""
    lines.append(f"Initial capital {format_metric(float(result.initial_capital))}{final}")
    body = "".join(f"<p>{line}</p>" for line in lines)
    return f"<header><h1>{mode.title} report — {name}</h1>{body}</header>"


def _notes_html(notes: list[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f'<ul class="notes">{items}</ul>'


def _div_id(index: int, key: str) -> str:
    return f"chart-{index}-" + re.sub(r"[^A-Za-z0-9_-]+", "-", key).strip("-")


def render_html(result: RunResult, *, mode: RunMode) -> str:
    """Render the whole report page as one HTML string with plotly.js inline.

    Args:
        result: The finished run.
        mode: How the run traded; the page's title and heading name it
            (``Backtest report``, ``Paper trading report``, ``Live trading (dry run) report``...).

    Returns:
        A complete, self-contained HTML document.
    """
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    mode = RunMode(mode)
    parts = [f'<section><h2>Statistics</h2>{_stats_table_html(result.metrics)}{_notes_html(result.notes)}</section>']
    for i, (key, fig) in enumerate(build_figures(result)):
        fragment = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=_div_id(i, key),
                               config=_PLOT_CONFIG, validate=False)
        parts.append(f'<section class="chart" data-key="{html.escape(key)}">{fragment}</section>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{mode.title} report — {html.escape(result.name)}</title><style>{_CSS}</style>"
        '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};</script>'
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n'
        f"<body>{_header_html(result, mode)}<main>{''.join(parts)}</main></body></html>\n"
    )


def write_report(result: RunResult, path: Path, *, mode: RunMode) -> Path:
    """Write the report page atomically (temp file in the same directory, then rename).

    Args:
        result: The finished run.
        path: Where the HTML goes; parent directories are created.
        mode: How the run traded (see ``render_html``).

    Returns:
        ``path``.
    """
    from algocli.persistence.artifacts import atomic_write_text

    return atomic_write_text(Path(path), render_html(result, mode=mode))
