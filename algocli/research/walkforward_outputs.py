"""A walk-forward's artifacts: ``windows.csv``, ``oos_equity.csv``, ``results.csv``, ``walkforward.json``,
``report.html``, published together (``persistence.output.ArtifactSet``).

The CSVs and the JSON hold only what the inputs decide (dates, parameters, statistics), so
the same walk-forward gives the same bytes on one worker, many, or a cluster.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from algocli.domain.models import CHARGE_FIELDS
from algocli.research.walkforward import WalkForward

ARTIFACTS = ("windows.csv", "oos_equity.csv", "results.csv", "walkforward.json", "report.html")


def _num(value: float | None, places: int = 4) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{places}f}"


def objective_column(wf: WalkForward) -> str:
    """The name of the objective's columns (``is_<name>``, ``oos_<name>``)."""
    return wf.objective.text if wf.objective.function is None else "objective"


def _figures_of(wf: WalkForward) -> list[str]:
    """The statistics each window reports IS and OOS: the objective, the return and the annualised return."""
    return list(dict.fromkeys([objective_column(wf), "total_return_pct", "annualized_return_pct"]))


def _side(wf: WalkForward, w, name: str, side: str) -> str:
    if name == "objective":
        score = (w.best.score if w.best is not None else None) if side == "is" else w.oos_score
        return _num(score, 6)
    stats = (w.best.stats if w.best is not None else {}) if side == "is" else w.oos_stats
    return stats.get(name, "")


def windows_csv(wf: WalkForward) -> str:
    """``windows.csv``: one row per window with its dates, bars, chosen parameters, the IS and OOS figures,
    its walk-forward efficiency, OOS trades and the stitched equity at its start and end."""
    params = wf.space.names
    figures = _figures_of(wf)
    header = ["window", "train_start", "train_end", "test_start", "test_end", "train_bars", "test_bars", "trials",
              *params, *(f"{side}_{name}" for name in figures for side in ("is", "oos")), "wfe", "oos_trades",
              "oos_start_equity", "oos_end_equity"]
    rows = []
    st = wf.stitched
    for w in wf.windows:
        win = w.window
        idx = np.flatnonzero(st.window == win.number)
        chosen = [w.best.params[p] if w.best is not None else "" for p in params]
        rows.append([win.number, win.train_start, win.train_end, win.test_start, win.test_end, w.train_bars,
                     w.test_bars, w.trials, *chosen,
                     *(_side(wf, w, name, side) for name in figures for side in ("is", "oos")),
                     _num(w.wfe), w.oos_stats.get("total_trades", "0"),
                     _num(float(st.equity[idx[0]]), 2), _num(float(st.equity[idx[-1]]), 2)])
    from algocli.research.outputs import _csv_text

    return _csv_text(header, rows)


def oos_equity_csv(wf: WalkForward) -> str:
    """``oos_equity.csv``: the stitched OOS equity and buy & hold at every bar, with the window it belongs to."""
    from algocli.persistence.artifacts import ist_strings

    st = wf.stitched
    lines = ["timestamp,window,equity,buy_and_hold"]
    lines += [f"{t},{k},{e:.2f},{b:.2f}" for t, k, e, b in zip(ist_strings(st.ts).tolist(), st.window.tolist(),
                                                                  _plain(st.equity), _plain(st.benchmark))]
    return "\n".join(lines) + "\n"


def _plain(values: np.ndarray) -> list[float]:
    """Values with those that print as ``-0.00`` set to 0.0."""
    values = np.asarray(values, dtype=float)
    return np.where((values > -0.005) & (values <= 0.0), 0.0, values).tolist()


def results_csv(wf: WalkForward) -> str:
    """``results.csv`` of the stitched curve, laid out as a backtest's (``metric,value``)."""
    from algocli.research.worker import stats_text

    return "metric,value\n" + "".join(f"{k},{v}\n" for k, v in stats_text(wf.stitched.stats).items())


def summary(wf: WalkForward) -> dict:
    """``walkforward.json``: the settings and the summary figures (no timings: the same inputs, the same bytes)."""
    def num(value):
        return None if value is None or not math.isfinite(value) else round(float(value), 6)

    pbo = wf.pbo
    return {
        "config": wf.source, "name": wf.config.name, "maximize": wf.objective.text,
        "params": {p.name: list(p.values) for p in wf.space.params},
        "constraints": [c.text for c in wf.space.constraints],
        "train": str(wf.train), "test": str(wf.test), "gap": str(wf.gap) if wf.gap else None,
        "anchored": wf.anchored, "warmup_bars": wf.warmup, "warmup_from": wf.warmup_source, "windows": len(wf.windows),
        "stitching": "returns compounded: each window's curve scaled to start at the previous one's end",
        "wfe": num(wf.wfe), "wfe_definition": "mean annualised OOS return / mean annualised IS return (Pardo)",
        "profitable_windows": wf.profitable,
        "oos_sharpe_ratio": num(_float(wf.stitched.stats.get("sharpe_ratio"))),
        "oos_sharpe_per_period": num(wf.sharpe_per_period), "oos_sharpe_t_stat": num(wf.t_stat),
        "oos_periods": wf.periods,
        "pbo": None if pbo is None else {"value": num(pbo.pbo), "splits": pbo.splits,
                                         "combinations": pbo.combinations, "periods": pbo.periods,
                                         "trials": pbo.trials, "duplicates": pbo.duplicates,
                                         "metric": "per-period Sharpe ratio"},
        "grid_trials": wf.grid_trials, "notes": wf.notes,
    }


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- report.html


def _dates(values) -> list[str]:
    return [v.isoformat() for v in values]


def _windows_figure(wf: WalkForward) -> dict:
    """Each window as two bars on its row: in sample, then out of sample."""
    traces = []
    for label, lo, hi, color in (("in sample", "train_start", "train_end", "#2563eb"),
                                 ("out of sample", "test_start", "test_end", "#f97316")):
        x, y = [], []
        for w in wf.windows:
            win = w.window
            x += [getattr(win, lo).isoformat(), getattr(win, hi).isoformat(), None]
            y += [win.number, win.number, None]
        traces.append({"type": "scatter", "mode": "lines", "name": label, "x": x, "y": y,
                       "line": {"color": color, "width": 10}, "hovertemplate": "%{x}<extra>" + label + "</extra>"})
    return {"data": traces, "layout": {"title": {"text": "Windows"}, "height": 180 + 28 * len(wf.windows),
                                       "xaxis": {"type": "date"},
                                       "yaxis": {"title": {"text": "window"}, "autorange": "reversed", "dtick": 1}}}


def _equity_figure(wf: WalkForward) -> dict:
    from algocli.analytics.stats import period_closes
    from algocli.persistence.artifacts import ist_strings

    st = wf.stitched
    keep = np.arange(len(st.ts)) if len(st.ts) <= 20_000 else period_closes(st.ts)[0]  # a day's last bar
    x = ist_strings(st.ts[keep]).tolist()
    shapes = [{"type": "line", "xref": "x", "yref": "paper", "x0": w.window.test_start.isoformat(),
               "x1": w.window.test_start.isoformat(), "y0": 0, "y1": 1, "line": {"color": "#9ca3af", "dash": "dot",
                                                                               "width": 1}} for w in wf.windows[1:]]
    return {"data": [{"type": "scatter", "mode": "lines", "name": "stitched OOS equity", "x": x,
                      "y": st.equity[keep], "line": {"color": "#16a34a"}},
                     {"type": "scatter", "mode": "lines", "name": "buy & hold", "x": x, "y": st.benchmark[keep],
                      "line": {"color": "#9ca3af"}}],
            "layout": {"title": {"text": "Stitched out-of-sample equity"}, "height": 450, "shapes": shapes,
                       "yaxis": {"title": {"text": "₹"}}}}


def _returns_figure(wf: WalkForward) -> dict:
    labels = [str(w.window.number) for w in wf.windows]
    bars = []
    for side, name, color in (("is", "in sample", "#2563eb"), ("oos", "out of sample", "#f97316")):
        values = np.array([math.nan if v is None else v for v in (w.annualized(side) for w in wf.windows)])
        bars.append({"type": "bar", "name": name, "x": labels, "y": values, "marker": {"color": color}})
    return {"data": bars, "layout": {"title": {"text": "Annualised return by window [%]"}, "height": 360,
                                     "barmode": "group", "xaxis": {"title": {"text": "window"}, "type": "category"}}}


def _pbo_figure(wf: WalkForward) -> dict:
    pbo = wf.pbo
    return {"data": [{"type": "histogram", "x": pbo.logits, "nbinsx": 40, "marker": {"color": "#7c3aed"},
                      "name": "logit"}],
            "layout": {"title": {"text": f"CSCV: logit of the in-sample best's out-of-sample rank "
                                         f"({pbo.combinations:,} combinations); PBO = share at or below 0"},
                       "height": 360, "xaxis": {"title": {"text": "λ"}}, "yaxis": {"title": {"text": "combinations"}},
                       "shapes": [{"type": "line", "xref": "x", "yref": "paper", "x0": 0, "x1": 0, "y0": 0, "y1": 1,
                                   "line": {"color": "#dc2626", "width": 1.5}}]}}


def _summary_html(wf: WalkForward) -> str:
    from algocli.analytics.report import format_metric

    s = summary(wf)
    pbo = wf.pbo
    items = [
        ("Walk-forward efficiency", format_metric(s["wfe"]), s["wfe_definition"]),
        ("Profitable OOS windows", f"{wf.profitable} of {len(wf.windows)}", ""),
        ("Stitched OOS Sharpe ratio", format_metric(s["oos_sharpe_ratio"]), "annualised, as results.csv"),
        ("Per-period Sharpe · t-statistic", f"{format_metric(s['oos_sharpe_per_period'])} · "
                                            f"{format_metric(s['oos_sharpe_t_stat'])}",
         f"SR × √n over n = {wf.periods} period returns"),
        ("Probability of backtest overfitting", "—" if pbo is None else f"{pbo.pbo:.1%}",
         "" if pbo is None else f"CSCV, {pbo.splits} blocks, {pbo.combinations:,} combinations, {pbo.trials} grid "
                                f"points{' with distinct returns' if pbo.duplicates else ''} over {pbo.periods} periods"),
    ]
    rows = "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td><td class=\"note\">{html.escape(c)}</td></tr>"
                   for a, b, c in items)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in wf.notes)
    return (f'<section><h2>Summary</h2><table class="stats"><tbody>{rows}</tbody></table>'
            f'{f"<ul class=notes>{notes}</ul>" if notes else ""}</section>')


def _windows_html(wf: WalkForward) -> str:
    rows = list(csv.reader(io.StringIO(windows_csv(wf))))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    # an undefined figure (a window without trades has no Sharpe ratio) reads as in the terminal's table
    body = "".join("<tr>" + "".join(f"<td>{'—' if c == 'nan' else html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows[1:])
    return (f'<section><h2>Windows</h2><div style="overflow-x:auto"><table class="stats wide"><thead><tr>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table></div></section>")


def page_bytes(wf: WalkForward) -> bytes:
    """``report.html``: summary, windows, the stitched statistics and the charts (plotly.js inline,
    written without importing plotly's Python package, as ``analytics.report`` writes its page)."""
    from algocli.analytics.report import _stats_table_html, html_page

    title = f"Walk-forward — {wf.config.name}"
    settings = (f"train {wf.train}, test {wf.test}{f', gap {wf.gap}' if wf.gap else ''}, "
                f"{'anchored' if wf.anchored else 'rolling'}, warm-up {wf.warmup} bars; {len(wf.windows)} windows; "
                f"maximising {wf.objective.text} over {wf.grid_trials} grid points")
    header = f"<header><h1>{html.escape(title)}</h1><p>{html.escape(settings)}</p></header>"
    parts = [_summary_html(wf), _windows_html(wf),
             f"<section><h2>Stitched out-of-sample statistics</h2>{_stats_table_html(_shown_stats(wf.stitched.stats))}"
             "</section>"]
    figures = [("windows", _windows_figure(wf)), ("equity", _equity_figure(wf)), ("returns", _returns_figure(wf))]
    if wf.pbo is not None:
        figures.append(("pbo", _pbo_figure(wf)))
    return html_page(title, header, parts, figures)


def _shown_stats(stats: dict) -> dict:
    """The statistics the page lists: a flat commission's charge rows only repeat ``Commissions``
    (each fill's rounded to paise, so they could differ from it by a paisa), and the backtest
    report leaves them out too; ``results.csv`` keeps them all."""
    if any(stats.get(f"charges_{kind}") for kind in CHARGE_FIELDS if kind != "brokerage"):
        return stats
    return {k: v for k, v in stats.items() if not k.startswith("charges_")}


def write_outputs(wf: WalkForward, out_dir: Path) -> list[Path]:
    """Write every artifact into ``out_dir`` as one set; returns the published paths.

    Raises:
        ArtifactError: A file could not be written; ``out_dir`` keeps its older set.
    """
    from algocli.persistence.output import OUT_FIX, publish_files

    return publish_files(out_dir, ARTIFACTS, {
        "windows.csv": windows_csv(wf).encode(), "oos_equity.csv": oos_equity_csv(wf).encode(),
        "results.csv": results_csv(wf).encode(),
        "walkforward.json": (json.dumps(summary(wf), indent=2, ensure_ascii=False) + "\n").encode(),
        "report.html": page_bytes(wf)}, fix=OUT_FIX)
