"""A Monte Carlo run's artifacts and their words: ``montecarlo.csv``, ``montecarlo.html``, and the
one-line description the table and the page share (``research.montecarlo`` simulates)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from algocli.research.montecarlo import PERCENTILES, STATISTICS, RunData, Simulations

LABELS = {"total_return_pct": "Return [%]", "max_drawdown_pct": "Max. Drawdown [%]", "sharpe_ratio": "Sharpe Ratio"}


def csv_text(sims: Simulations) -> str:
    """``montecarlo.csv``: one row per simulation, numbers to six places (the same seed, the same bytes)."""
    lines = ["simulation," + ",".join(STATISTICS) + ",ruined"]
    columns = [sims.values[k] for k in STATISTICS]
    for i, row in enumerate(zip(*(c.tolist() for c in columns), sims.ruined.tolist()), start=1):
        *numbers, ruined = row
        lines.append(f"{i}," + ",".join("" if math.isnan(v) else f"{v:.6f}" for v in numbers) + f",{int(ruined)}")
    return "\n".join(lines) + "\n"


def describe(sims: Simulations, run: RunData) -> str:
    """One line naming the method, its settings and the seed (for the table and the page)."""
    what = {"trades": f"trade returns on {'equity' if sims.trade_returns == 'equity' else 'position value'}, "
                      f"{'drawn with replacement' if sims.replace else 'reshuffled'}",
            "bootstrap": "bar returns drawn i.i.d.",
            "block": _blocks(sims)}[sims.method]
    return (f"{sims.count:,} simulations of {run.folder.name} ({run.mode}), {sims.method}: {what}; "
            f"seed {sims.seed}; ruin = equity {sims.ruin:.0%} below the start")


def _blocks(sims: Simulations) -> str:
    """The block kind and the length used; an estimated one says it was rounded up from what."""
    if not sims.block_size:
        return ""
    size = (f"{sims.block_size:g} bars each" if sims.block_kind == "circular" else f"mean {sims.block_size:g} bars")
    if sims.block_estimate is not None:
        size += f": Politis and White's estimate {sims.block_estimate:.2f}" + (
            ", rounded up" if sims.block_estimate != sims.block_size else "")
    return f"bar returns in {sims.block_kind} blocks ({size})"


def constant(values: np.ndarray) -> bool:
    """Whether every simulation gave the same figure (up to float rounding): reshuffling trades never
    changes their compounded return, nor the mean and spread a Sharpe ratio of trade returns uses."""
    values = values[np.isfinite(values)]
    return len(values) > 0 and float(np.ptp(values)) <= 1e-9 * max(1.0, float(np.max(np.abs(values))))


def _figures(sims: Simulations) -> list[tuple[str, dict]]:
    figures = []
    for name in STATISTICS:
        values = sims.values[name]
        values = values[np.isfinite(values)]
        if not len(values) or constant(values):  # one bar of rounding noise would only mislead
            continue
        marks = [(f"p{p}", float(q), "#6b7280") for p, q in zip(PERCENTILES[::2], np.percentile(values, PERCENTILES[::2]))]
        if math.isfinite(sims.actual[name]):
            marks.append(("run", sims.actual[name], "#dc2626"))
        shapes = [{"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
                   "line": {"color": color, "dash": "dot" if key != "run" else "solid", "width": 1.5}}
                  for key, x, color in marks]
        notes = [{"x": x, "y": 1, "xref": "x", "yref": "paper", "text": key, "showarrow": False, "yanchor": "bottom",
                  "font": {"color": color, "size": 11}} for key, x, color in marks]
        figures.append((name, {"data": [{"type": "histogram", "x": values, "nbinsx": 60, "name": LABELS[name],
                                         "marker": {"color": "#2563eb"}}],
                               "layout": {"title": {"text": f"{LABELS[name]}: {len(values):,} simulations"},
                                          "height": 360, "bargap": 0.02, "shapes": shapes, "annotations": notes,
                                          "xaxis": {"title": {"text": LABELS[name]}},
                                          "yaxis": {"title": {"text": "simulations"}}}}))
    return figures


def same_everywhere(sims: Simulations) -> str:
    """A sentence naming the statistics every simulation gave alike (no histogram is drawn for them),
    or ``""``."""
    same = [LABELS[name] for name in STATISTICS if constant(sims.values[name])]
    if not same:
        return ""
    why = (" (reshuffling changes the order of the trades, not the trades: --replace draws them with replacement)"
           if sims.method == "trades" and not sims.replace else "")
    return f"{' and '.join(same)}: the same in every simulation{why}."


def run_column_note(sims: Simulations) -> str:
    """What the ``run`` column measures, when it is not ``results.csv``'s figure: ``trades``
    resamples a curve of one point per closed trade, and so the run's column is measured on it."""
    if sims.method != "trades":
        return ""
    return ("run: the run's own trades in their order, measured as the simulations are, on the equity after each "
            "closed trade; results.csv measures every bar, so its drawdown and Sharpe differ.")


def _run_note_html(sims: Simulations) -> str:
    import html

    note = run_column_note(sims)
    return f'<p class="note" data-key="run">{html.escape(note)}</p>' if note else ""


def _summary_html(sims: Simulations) -> str:
    import html

    from algocli.analytics.report import format_metric

    cols = ["mean", *(f"p{p}" for p in PERCENTILES)]
    head = "".join(f"<th>{c}</th>" for c in ("Statistic", "mean", *(f"{p} %" for p in PERCENTILES), "run"))
    rows = "".join(
        f'<tr data-key="{name}"><th>{html.escape(LABELS[name])}</th>'
        + "".join(f"<td>{format_metric(row[c])}</td>" for c in cols)
        + f"<td>{format_metric(sims.actual[name])}</td></tr>"
        for name, row in sims.summary().items())
    return (f'<section><h2>Distribution</h2><table class="stats"><thead><tr>{head}</tr></thead><tbody>{rows}'
            f'</tbody></table>{_run_note_html(sims)}<p class="note" data-key="ruin">Probability of ruin (equity {sims.ruin:.0%} below the '
            f"start at any point): <b>{sims.ruin_probability:.2%}</b></p>"
            + (f'<p class="note" data-key="constant">{html.escape(note)}</p>' if (note := same_everywhere(sims)) else "")
            + "</section>")


def page_bytes(sims: Simulations, run: RunData) -> bytes:
    """``montecarlo.html``: the summary table and a histogram of each statistic."""
    import html

    from algocli.analytics.report import html_page

    title = f"Monte Carlo — {run.folder.name}"
    header = (f"<header><h1>{html.escape(title)}</h1>"
              f"<p>{html.escape(describe(sims, run))}</p></header>")
    return html_page(title, header, [_summary_html(sims)], _figures(sims))


#: The files ``write_outputs`` writes.
ARTIFACTS = ("montecarlo.csv", "montecarlo.html")


def write_outputs(sims: Simulations, run: RunData, out_dir: Path) -> list[Path]:
    """Write ``montecarlo.csv`` and ``montecarlo.html`` into ``out_dir`` as one set.

    Args:
        sims: The simulations.
        run: The run they resample.
        out_dir: The folder (created when missing).

    Returns:
        The paths written.

    Raises:
        ArtifactError: A file could not be written; ``out_dir`` keeps its older set.
    """
    from algocli.persistence.output import OUT_FIX, publish_files

    return publish_files(out_dir, ARTIFACTS, {"montecarlo.csv": csv_text(sims).encode("utf-8"),
                                              "montecarlo.html": page_bytes(sims, run)}, fix=OUT_FIX)
