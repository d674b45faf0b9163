"""The report's charts as plain Plotly figure dicts (``{"data": [...], "layout": {...}}``).

Building the JSON structure directly, rather than through ``plotly.graph_objects``, keeps
the report free of plotly's Python package (its import and per-property validation cost
more than the rest of the report together); the page hands these dicts to plotly.js.
Arrays stay numpy arrays here and are encoded when the page is written.

Every chart with a time axis gets ``rangebreaks`` (``plotdata.time_breaks``), so nights,
weekends and holidays take no room. The candle chart of an instrument also draws what the
strategies read from it: price-scale indicators (moving averages, Bollinger bands) over the
candles, others (RSI, MACD...) each in a pane of its own, and marks the exits the engine made
by itself (``AUTO_EXITS``: the broker's MIS square-off, a future's settlement at expiry) apart
from the strategies' own. A run with charges by kind also gets the equity before charges beside
the equity, and a waterfall from gross to net P&L (``algocli.analytics.charges``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

import numpy as np

from algocli.analytics.charges import CHARGE_LABELS, ChargeSummary, cumulative_charges
from algocli.analytics.plotdata import (
    CANDLE_CAP, LINE_POINT_CAP, aggregate_bars, candle_buckets, candle_cap, column_to_ist, daily_grid, drawdown_pct,
    largest_trades, minmax_indices, monthly_grid, ns_to_ist, time_breaks, time_labels,
)
from algocli.analytics.stats import SHORT_RUN_SESSIONS, sessions_spanned
from algocli.broker.simulated import EXPIRY_TAG, SQUAREOFF_TAG

if TYPE_CHECKING:
    from algocli.analytics.result import RunResult
    from algocli.strategy.context import IndicatorRead

Figure = dict
#: Round trips by column: ``RunResult.trade_columns`` or rows of it (a DataFrame reads the same way).
Trades = dict

UP, DOWN = "#26a69a", "#ef5350"
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MAX_INDICATOR_PANES = 3
# TA-Lib groups whose values are prices, drawn over the candles; every other group gets a pane.
PRICE_SCALE_GROUPS = ("Overlap Studies", "Price Transform")
_PALETTE = ("#ff9800", "#3f51b5", "#9c27b0", "#795548", "#009688", "#e91e63", "#607d8b")
_BOUNDED = {"RSI": (30, 70), "MFI": (20, 80), "STOCH": (20, 80), "STOCHF": (20, 80), "STOCHRSI": (20, 80),
            "WILLR": (-80, -20)}
_PANE_GAP = 0.03
#: Order tags of exits the engine makes by itself → legend name, marker symbol and colour.
AUTO_EXITS = {SQUAREOFF_TAG: ("Auto square-off (MIS)", "square", "#ef6c00"),
              EXPIRY_TAG: ("Expiry settlement", "diamond", "#6a1b9a")}
# ColorBrewer's RdYlGn, spelled out: plotly.js knows only a few colour scales by name.
RED_YELLOW_GREEN = [[k / 10, c] for k, c in enumerate((
    "rgb(165,0,38)", "rgb(215,48,39)", "rgb(244,109,67)", "rgb(253,174,97)", "rgb(254,224,139)", "rgb(255,255,191)",
    "rgb(217,239,139)", "rgb(166,217,106)", "rgb(102,189,99)", "rgb(26,152,80)", "rgb(0,104,55)"))]


def _title(text: str) -> dict:
    return {"text": text}


def _line(x: np.ndarray, y: np.ndarray, name: str, **extra) -> dict:
    """A thinned SVG line trace (SVG renders everywhere, unlike WebGL)."""
    keep = minmax_indices(y)
    return {"type": "scatter", "mode": "lines", "name": name, "x": time_labels(x[keep]),
            "y": np.asarray(y, dtype=np.float64)[keep], **extra}


def _thinned_note(n: int) -> str:
    return f" <sup>(lines thinned to ≤{LINE_POINT_CAP:,} of {n:,} points, min/max kept)</sup>" if n > LINE_POINT_CAP else ""


def _stacked_domains(weights: list[float]) -> list[list[float]]:
    """Vertical domains, top first, for panes sharing one x axis."""
    room = 1.0 - _PANE_GAP * (len(weights) - 1)
    total = sum(weights)
    domains, top = [], 1.0
    for w in weights:
        bottom = max(0.0, top - room * w / total)
        domains.append([round(bottom, 4), round(top, 4)])
        top = bottom - _PANE_GAP
    domains[-1][0] = 0.0
    return domains


def _time_axis(breaks: list[dict], anchor: str = "y") -> dict:
    return {"type": "date", "rangebreaks": breaks, "anchor": anchor}


def equity_figure(result: RunResult, x: np.ndarray, breaks: list[dict], charges: ChargeSummary | None = None) -> Figure:
    """Equity vs buy & hold (and the equity before charges, when the run has them); with several
    strategies, each one's P&L in a pane below."""
    several = len(result.strategy_pnl) > 1
    data = [_line(x, result.equity, "Equity", line={"color": "#1f77b4", "width": 1.6}),
            _line(x, result.benchmark, "Buy & hold", line={"color": "#7f7f7f", "width": 1.2, "dash": "dot"})]
    if charges is not None:
        gross = np.asarray(result.equity, dtype=np.float64) + cumulative_charges(result)
        data.insert(1, _line(x, gross, "Equity before charges", line={"color": "#90caf9", "width": 1.2}))
    layout = {"title": _title(f"Equity vs buy & hold{_thinned_note(len(x))}"), "height": 620 if several else 450,
              "hovermode": "x unified", "legend": {"orientation": "h", "y": -0.12},
              "xaxis": _time_axis(breaks, "y2" if several else "y"), "yaxis": {"title": _title("Equity")}}
    if several:
        for sid, pnl in result.strategy_pnl.items():
            data.append(_line(x, pnl, f"P&L {sid}", line={"width": 1.2}, yaxis="y2"))
        top, bottom = _stacked_domains([0.65, 0.35])
        layout["yaxis"]["domain"] = top
        layout["yaxis2"] = {"domain": bottom, "title": _title("Strategy P&L")}
    return {"data": data, "layout": layout}


def drawdown_figure(result: RunResult, x: np.ndarray, breaks: list[dict]) -> Figure:
    """Percent below the running peak, filled to zero."""
    dd = drawdown_pct(result.equity)
    trace = _line(x, dd, "Drawdown", fill="tozeroy", line={"color": DOWN, "width": 1},
                  fillcolor="rgba(239,83,80,0.3)", hovertemplate="%{y:.2f}%<extra></extra>")
    worst = f" — max {np.nanmin(dd):.2f}%" if len(dd) else ""
    return {"data": [trace], "layout": {
        "title": _title(f"Drawdown (% below running peak){worst}{_thinned_note(len(x))}"), "height": 300,
        "showlegend": False, "xaxis": _time_axis(breaks),
        "yaxis": {"title": _title("Drawdown (%)"), "ticksuffix": "%"}}}


def _trade_hover(trades: Trades, price_col: str, label: str) -> list[str]:
    pnl = np.asarray(trades["pnl"], dtype=np.float64)
    names = {s: html.escape(str(s)) for s in set(trades["strategy"])}
    return [
        f"{label} {'long' if size > 0 else 'short'} · {names[strategy]}<br>"
        f"size {size:+,.10g} @ {price:,.2f}<br>P&L {p:,.2f}"
        for strategy, size, price, p in zip(trades["strategy"], np.asarray(trades["size"], dtype=np.float64).tolist(),
                                            np.asarray(trades[price_col], dtype=np.float64).tolist(), pnl.tolist())
    ]


def _rows(trades: Trades, mask: np.ndarray) -> Trades:
    return {name: np.asarray(column)[mask] for name, column in trades.items()}


def _trade_traces(trades: Trades) -> list[dict]:
    """Entry (triangle up/down) and exit (x) markers for one instrument's trades (closed round trips)."""
    size = np.asarray(trades["size"], dtype=np.float64)
    if not len(size):
        return []
    entry_x = time_labels(column_to_ist(trades["entry_time"]))
    template = "%{x|%Y-%m-%d %H:%M}<br>%{text}<extra></extra>"
    traces = []
    for mask, name, symbol, color in ((size > 0, "Long entry", "triangle-up", "#2e7d32"),
                                      (size < 0, "Short entry", "triangle-down", "#c62828")):
        if mask.any():
            sub = _rows(trades, mask)
            traces.append({
                "type": "scatter", "mode": "markers", "name": name, "x": entry_x[mask],
                "y": sub["entry_price"], "text": _trade_hover(sub, "entry_price", "Entry"),
                "marker": {"symbol": symbol, "size": 10, "color": color, "line": {"width": 0.5, "color": "#222"}},
                "hovertemplate": template})
    traces.append({
        "type": "scatter", "mode": "markers", "name": "Exit", "x": time_labels(column_to_ist(trades["exit_time"])),
        "y": np.asarray(trades["exit_price"], dtype=np.float64), "text": _trade_hover(trades, "exit_price", "Exit"),
        "marker": {"symbol": "x", "size": 8, "color": "#37474f"}, "hovertemplate": template})
    return traces


def auto_exit_fills(result: RunResult) -> dict[str, list]:
    """The fills of orders the engine made by itself, by the tag in ``AUTO_EXITS``."""
    tags = {o.order_id: o.tag for o in result.orders if o.tag in AUTO_EXITS}
    out: dict[str, list] = {}
    if not tags:
        return out
    for fill in result.fills:
        tag = tags.get(fill.order_id)
        if tag is not None:
            out.setdefault(tag, []).append(fill)
    return out


def _auto_exit_traces(fills_by_tag: dict[str, list]) -> list[dict]:
    """One marker trace per kind of automatic exit, drawn apart from the strategies' exits."""
    traces = []
    for tag, fills in fills_by_tag.items():
        name, symbol, color = AUTO_EXITS[tag]
        ts = np.fromiter((f.ts for f in fills), dtype=np.int64, count=len(fills))
        text = [f"{html.escape(name)} · {html.escape(f.strategy_id)}<br>{f.side.value} {f.quantity:,} @ {f.price:,.2f}"
                f"<br>charges {f.commission:,.2f}" for f in fills]
        traces.append({"type": "scatter", "mode": "markers", "name": name, "x": time_labels(ns_to_ist(ts)),
                       "y": np.fromiter((f.price for f in fills), dtype=np.float64, count=len(fills)), "text": text,
                       "meta": tag, "hovertemplate": "%{x|%Y-%m-%d %H:%M}<br>%{text}<extra></extra>",
                       "marker": {"symbol": symbol, "size": 13, "color": "rgba(0,0,0,0)",
                                  "line": {"width": 2.5, "color": color}}})
    return traces


def indicator_label(read: IndicatorRead) -> str:
    """``SMA(10)``, ``BBANDS(20, 2, 2, 0)``, ``SMA(5, high)``: the call as the strategy made it."""
    args = [f"{v:g}" if isinstance(v, float) else str(v) for v in read.params.values()]
    if read.price not in (None, "close"):
        args.append(str(read.price))
    return f"{read.name}({', '.join(args)})"


def _unique_reads(result: RunResult, instrument: str, length: int) -> list[IndicatorRead]:
    """The instrument's indicator series, one per distinct call, that cover its bars."""
    seen, reads = set(), []
    for read in result.indicators:
        key = (read.name, tuple(sorted(read.params.items())), read.price)
        if read.instrument != instrument or key in seen:
            continue
        if all(len(v) == length for v in read.outputs.values()):
            seen.add(key)
            reads.append(read)
    return reads


def _indicator_traces(read: IndicatorRead, x: np.ndarray, lasts: np.ndarray, yaxis: str, color: str) -> list[dict]:
    """One trace per output; a band's lower edge fills up to its upper edge."""
    label = indicator_label(read)
    names = list(read.outputs)
    upper = next((n for n in names if "upper" in read.styles[n].lower()), None)
    lower = next((n for n in names if "lower" in read.styles[n].lower()), None)
    if upper and lower:  # draw upper, then lower filled to it, then the rest
        names = [upper, lower] + [n for n in names if n not in (upper, lower)]
    traces = []
    for out in names:
        y = read.outputs[out][lasts]
        name = label if len(names) == 1 else f"{label} {out}"
        style = read.styles[out]
        common = {"name": name, "x": x, "y": y, "yaxis": yaxis, "legendgroup": label,
                  "hovertemplate": f"{html.escape(name)}: %{{y:,.2f}}<extra></extra>"}
        if style == "Histogram":
            traces.append({"type": "bar", "marker": {"color": color, "opacity": 0.5}, **common})
            continue
        line = {"color": color, "width": 1.2}
        if style == "Dashed Line" or (upper and lower and out not in (upper, lower)):
            line["dash"] = "dash"
        trace = {"type": "scatter", "mode": "lines", "line": line, "connectgaps": False, **common}
        if out == lower and upper:
            trace["fill"] = "tonexty"
            trace["fillcolor"] = "rgba(63,81,181,0.08)"
        traces.append(trace)
    return traces


def _pane_lines(read: IndicatorRead, yaxis: str) -> list[dict]:
    """Dotted guide lines of a bounded oscillator (RSI 30/70...)."""
    return [{"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": yaxis, "y0": level, "y1": level,
             "line": {"color": "#9e9e9e", "width": 1, "dash": "dot"}} for level in _BOUNDED.get(read.name, ())]


def instrument_figure(result: RunResult, instrument: str, shown: Trades, total: int,
                      holidays: Iterable[date] | None = None, auto_exits: dict[str, list] | None = None,
                      cap: int = CANDLE_CAP) -> Figure:
    """Candles (at most ``cap``), the indicators the strategies read, volume and trade markers of
    one instrument (``auto_exits``: its fills by ``AUTO_EXITS`` tag, marked apart)."""
    raw = result.bars[instrument]
    bars = aggregate_bars(raw, cap)
    _, lasts = candle_buckets(len(raw), cap)  # an aggregated candle shows its last bar's indicator values
    ist = ns_to_ist(bars.ts)
    x = time_labels(ist)
    reads = _unique_reads(result, instrument, len(raw))
    overlays = [r for r in reads if r.group in PRICE_SCALE_GROUPS]
    panes = [r for r in reads if r.group not in PRICE_SCALE_GROUPS]
    skipped = panes[MAX_INDICATOR_PANES:]
    panes = panes[:MAX_INDICATOR_PANES]
    rising = (bars.close >= bars.open).astype(np.int8)  # numeric colours encode compactly
    traded = bool(np.any(bars.volume))  # an index has no volume: no empty pane for it
    data = [
        {"type": "candlestick", "name": "Price", "x": x, "open": bars.open, "high": bars.high, "low": bars.low,
         "close": bars.close, "increasing": {"line": {"color": UP}}, "decreasing": {"line": {"color": DOWN}}},
    ]
    if traded:
        data.append({"type": "bar", "name": "Volume", "x": x, "y": bars.volume, "yaxis": "y2", "showlegend": False,
                     "marker": {"color": rising, "colorscale": [[0, DOWN], [1, UP]], "cmin": 0, "cmax": 1,
                                "line": {"width": 0}}})
    colors = iter(_PALETTE * 4)
    for read in overlays:
        data.extend(_indicator_traces(read, x, lasts, "y", next(colors)))
    data.extend(_trade_traces(shown))
    data.extend(_auto_exit_traces(auto_exits or {}))
    weights = [0.6] + [0.2] * len(panes) + ([0.15] if traded else [])
    domains = _stacked_domains(weights)
    bottom = "y2" if traded else f"y{len(panes) + 2}" if panes else "y"  # the x axis sits under the lowest pane
    layout = {"height": 640 + 170 * len(panes), "bargap": 0, "legend": {"orientation": "h", "y": -0.08},
              "margin": {"t": 80}, "shapes": [],
              "xaxis": {**_time_axis(time_breaks(ist, holidays), bottom), "rangeslider": {"visible": False}},
              "yaxis": {"domain": domains[0], "title": _title("Price")}}
    if traded:
        layout["yaxis2"] = {"domain": domains[-1], "title": _title("Volume")}
    for k, read in enumerate(panes, start=3):
        axis = f"y{k}"
        data.extend(_indicator_traces(read, x, lasts, axis, next(colors)))
        layout[f"yaxis{k}"] = {"domain": domains[k - 2], "title": _title(read.name)}
        if read.name in _BOUNDED:
            layout[f"yaxis{k}"]["range"] = [0, 100] if read.name != "WILLR" else [-100, 0]
        layout["shapes"].extend(_pane_lines(read, axis))
    meta = result.instruments.get(instrument)
    title = meta.display_name if meta is not None else instrument
    if len(bars) < len(raw):
        title += f" — aggregated to {len(bars):,} candles ({len(raw):,} bars, {-(-len(raw) // len(bars)):,} per candle)"
    if len(shown["size"]) < total:
        title += f"<br><sup>markers for the {len(shown['size']):,} largest of {total:,} trades by |P&L|</sup>"
    if skipped:
        title += f"<br><sup>not drawn: {', '.join(indicator_label(r) for r in skipped)}</sup>"
    layout["title"] = _title(title)
    return {"data": data, "layout": layout}


def _grid_figure(z: np.ndarray, x: list[str], y: list[str], title: str, hover: str, customdata=None) -> Figure:
    text = [["" if math.isnan(v) else f"{v:.1f}%" for v in row] for row in z]
    bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    trace = {"type": "heatmap", "z": [[None if math.isnan(v) else v for v in row] for row in z.tolist()],
             "x": x, "y": y, "text": text, "texttemplate": "%{text}", "colorscale": RED_YELLOW_GREEN, "zmid": 0,
             "zmin": -bound, "zmax": bound, "xgap": 2, "ygap": 2, "colorbar": {"title": {"text": "%"}},
             "hovertemplate": hover}
    if customdata is not None:
        trace["customdata"] = customdata
    return {"data": [trace], "layout": {
        "title": _title(title), "height": max(280, 160 + 32 * len(y)),
        "yaxis": {"type": "category", "autorange": "reversed"}, "xaxis": {"type": "category", "side": "top"}}}


def monthly_figure(result: RunResult) -> Figure:
    """Year × month grid of monthly returns."""
    z, years = monthly_grid(result.ts, result.equity, result.initial_capital)
    return _grid_figure(z, MONTHS, [str(y) for y in years],
                        "Monthly returns (%)", "%{x} %{y}: %{z:.2f}%<extra></extra>")


def daily_figure(result: RunResult, sessions: int) -> Figure:
    """Week × weekday grid of daily returns, for a run shorter than ``SHORT_RUN_SESSIONS``."""
    z, weeks = daily_grid(result.ts, result.equity, result.initial_capital)
    dates = [[str(w + np.timedelta64(d, "D")) for d in range(z.shape[1])] for w in weeks]
    rows = [f"week of {w.item():%d %b %Y}" for w in weeks]
    title = (f"Daily returns (%) — {sessions} session{'s' if sessions != 1 else ''}; "
             f"runs of {SHORT_RUN_SESSIONS}+ sessions get monthly returns")
    return _grid_figure(z, WEEKDAYS[: z.shape[1]], rows, title,
                        "%{customdata}: %{z:.2f}%<extra></extra>", customdata=dates)


def returns_grid_figure(result: RunResult) -> tuple[str, Figure]:
    """``("daily_returns", ...)`` for a short run, else ``("monthly_returns", ...)``."""
    ts = result.ts
    if len(ts):
        sessions = sessions_spanned(*(ns_to_ist(ts[[0, -1]]).astype("datetime64[D]").tolist()))
        if sessions < SHORT_RUN_SESSIONS:
            return "daily_returns", daily_figure(result, sessions)
    return "monthly_returns", monthly_figure(result)


def trade_returns_figure(trades: Trades) -> Figure:
    """Histogram of trade returns with a line at zero."""
    returns = np.asarray(trades["return_pct"], dtype=np.float64) * 100.0 if "return_pct" in trades else np.empty(0)
    returns = returns[np.isfinite(returns)]
    layout = {"height": 360, "showlegend": False, "xaxis": {"title": _title("Trade return (%)")},
              "yaxis": {"title": _title("Trades")}}
    if len(returns) == 0:
        layout["title"] = _title("Distribution of trade returns")
        layout["annotations"] = [{"text": "No closed trades in this run", "showarrow": False, "font": {"size": 16},
                                  "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}]
        return {"data": [], "layout": layout}
    win = float((returns > 0).mean() * 100.0)
    layout["title"] = _title(f"Distribution of trade returns — {len(returns):,} trades, mean {returns.mean():.2f}%, "
                             f"{win:.0f}% winners")
    layout["shapes"] = [{"type": "line", "x0": 0, "x1": 0, "xref": "x", "y0": 0, "y1": 1, "yref": "y domain",
                         "line": {"color": "#444", "width": 1, "dash": "dash"}}]
    trace = {"type": "histogram", "x": returns, "nbinsx": min(60, max(10, len(returns) // 5)), "name": "Trades",
             "marker": {"color": "#5c6bc0", "line": {"width": 0.5, "color": "#fff"}},
             "hovertemplate": "%{x}%: %{y} trades<extra></extra>"}
    return {"data": [trace], "layout": layout}


def charges_figure(charges: ChargeSummary) -> Figure:
    """A waterfall from gross P&L, down by each kind of charge, to net P&L."""
    kinds = [k for k, v in charges.by_kind.items() if v]
    drag = "" if math.isnan(charges.drag_pct) else f", {charges.drag_pct:.2f}% of gross profit"
    trace = {"type": "waterfall", "orientation": "v", "name": "P&L",
             "x": ["Gross P&L", *(CHARGE_LABELS[k] for k in kinds), "Net P&L"],
             "y": [charges.gross_pnl, *(-charges.by_kind[k] for k in kinds), charges.net_pnl],
             "measure": ["absolute", *(["relative"] * len(kinds)), "total"],
             "texttemplate": "%{y:,.2f}", "textposition": "outside", "connector": {"line": {"color": "#9e9e9e"}},
             "increasing": {"marker": {"color": UP}}, "decreasing": {"marker": {"color": DOWN}},
             "totals": {"marker": {"color": "#1f77b4"}}, "hovertemplate": "%{x}: ₹%{y:,.2f}<extra></extra>"}
    return {"data": [trace], "layout": {
        "title": _title(f"Gross vs net P&L — charges ₹{charges.total:,.2f}{drag}"), "height": 420,
        "showlegend": False, "xaxis": {"type": "category"}, "yaxis": {"title": _title("₹")}}}


def build_figures(result: RunResult, holidays: Iterable[date] | None = None) -> list[tuple[str, Figure]]:
    """Build every chart of the report, thinned for display.

    Args:
        result: The finished run.
        holidays: Trading holidays (IST dates) to hide on time axes, e.g. from a trading
            calendar; None hides every weekday without a bar (``plotdata.time_breaks``).

    Returns:
        ``(key, figure)`` pairs in page order: ``"equity"``, ``"drawdown"``, ``"charges"`` (only
        for a run with charges by kind), one ``"candles:<instrument>"`` per instrument (but
        untraded option contracts; they share ``CANDLE_BUDGET``), ``"daily_returns"`` (a run
        shorter than ``SHORT_RUN_SESSIONS``) or ``"monthly_returns"``, ``"trade_returns"``.
    """
    holidays = None if holidays is None else list(holidays)
    x = ns_to_ist(result.ts)
    breaks = time_breaks(x, holidays)
    charges = result.charges
    figures = [("equity", equity_figure(result, x, breaks, charges)), ("drawdown", drawdown_figure(result, x, breaks))]
    if charges is not None:
        figures.append(("charges", charges_figure(charges)))
    trades = result.trade_columns
    shown = largest_trades(trades)
    exits = auto_exit_fills(result)
    from algocli.analytics.derivatives import shown_instruments

    charted = shown_instruments(result)[0]
    cap = candle_cap(len(charted))
    for instrument in charted:
        mine = _rows(shown, shown["instrument"] == instrument)
        total = int((trades["instrument"] == instrument).sum())
        own = {tag: [f for f in fills if f.instrument == instrument] for tag, fills in exits.items()}
        figures.append((f"candles:{instrument}", instrument_figure(result, instrument, mine, total, holidays,
                                                                  {t: f for t, f in own.items() if f}, cap)))
    figures.append(returns_grid_figure(result))
    figures.append(("trade_returns", trade_returns_figure(trades)))
    return figures
