"""A sweep's artifacts: ``trials.csv``, ``heatmap.html``, ``best.yaml``, ``timings.csv``, ``optimize.json``.

``trials.csv`` holds only what the inputs decide (parameters and statistics, in trial
order), so the same sweep gives the same bytes on one worker, many, or a cluster; the
measured wall times, which differ from run to run, go to ``timings.csv`` and the
manifest. Every file is written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

from algocli.research.trials import Trial, TrialsResult


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def trials_count(result: TrialsResult) -> str:
    """``15 trials``, or ``9 of 15 trials`` for a sweep Ctrl-C stopped: its artifacts show a part."""
    n = len(result.trials)
    if result.interrupted and result.planned > n:
        return f"{n:,} of {result.planned:,} trials"
    return f"{n:,} trial{'' if n == 1 else 's'}"


def sweep_kind(result: TrialsResult, finish: bool = True) -> str:
    """``grid``, or ``grid, interrupted; run the same command to finish`` (``finish``: with the fix)."""
    if not result.interrupted:
        return result.method
    return f"{result.method}, interrupted" + ("; run the same command to finish" if finish else "")


def trials_csv(result: TrialsResult) -> str:
    """``trials.csv``: trial number, a column per parameter, the objective when it is a function,
    and a column per statistic under its ``results.csv`` name, formatted as there."""
    params = result.space.names
    stats = list(result.trials[0].stats) if result.trials else []
    extra = [result.objective.column] if result.objective.column else []
    rows = []
    for t in result.trials:
        score = [("" if t.score is None else repr(t.score))] if extra else []
        rows.append([t.number, *(t.params[p] for p in params), *score, *(t.stats.get(s, "") for s in stats)])
    return _csv_text(["trial", *params, *extra, *stats], rows)


def timings_csv(result: TrialsResult) -> str:
    """``timings.csv``: each trial's wall time in its worker (from the journal for earlier runs)."""
    return _csv_text(["trial", "key", "seconds", "cached"],
                     [[t.number, t.key, f"{t.seconds:.6f}", "yes" if t.cached else ""] for t in result.trials])


def best_yaml(result: TrialsResult, best: Trial, out_dir: Path) -> str:
    """The run definition with the best parameters, runnable as it is (``algo backtest best.yaml``).

    Relative paths become absolute, since the file lives in another folder than the original. Its
    output folder is ``out_dir/best``: running it must not replace the artifacts of the run it
    was tuned from (``output.dir``, whose ``optimize/`` the sweep's folder usually is).
    """
    import yaml

    from algocli.config.run import paths_beside
    from algocli.research.worker import with_params

    source = Path(result.source)
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    paths_beside(raw, source.parent)
    tuned = with_params(result.config, best.params, result.source)
    for entry, new in zip(raw["strategies"], tuned.strategies):
        entry["params"] = dict(new.params)
    raw["output"] = {**(raw.get("output") or {}), "dir": str(Path(out_dir).absolute() / "best")}
    shown = ", ".join(f"{k}={v}" for k, v in best.params.items())
    head = (f"# algo optimize {result.source}: best of {trials_count(result)} ({sweep_kind(result)}) by "
            f"{result.objective.text} = {best.score:.6g} at {shown}\n")
    return head + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def heatmap_figure(result: TrialsResult, x: str, y: str) -> dict:
    """The objective over two parameters (the best over any others), as a Plotly figure dict."""
    px = next(p for p in result.space.params if p.name == x)
    py = next(p for p in result.space.params if p.name == y)
    xs, ys = list(px.values), list(py.values)
    z: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    for t in result.trials:
        if t.score is None:
            continue
        i, j = ys.index(t.params[y]), xs.index(t.params[x])
        if z[i][j] is None or t.score > z[i][j]:
            z[i][j] = t.score
    label = result.objective.text
    return {
        "data": [{"type": "heatmap", "x": [str(v) for v in xs], "y": [str(v) for v in ys], "z": z,
                  "colorscale": "Viridis", "colorbar": {"title": {"text": label}},
                  "hovertemplate": f"{x}=%{{x}}<br>{y}=%{{y}}<br>{label}=%{{z:.4f}}<extra></extra>"}],
        "layout": {"title": {"text": f"{label} by {x} and {y}"}, "height": 600,
                   "xaxis": {"title": {"text": x}, "type": "category"},
                   "yaxis": {"title": {"text": y}, "type": "category"}},
    }


def line_figure(result: TrialsResult, x: str) -> dict:
    """The objective over the one swept parameter, as a Plotly figure dict (a sweep of one has no
    pair to draw a heatmap of)."""
    param = next(p for p in result.space.params if p.name == x)
    score = {t.params[x]: t.score for t in result.trials}
    xs = [v for v in param.values if v in score]
    label = result.objective.text
    return {
        "data": [{"type": "scatter", "mode": "lines+markers", "x": [str(v) for v in xs],
                  "y": [score[v] for v in xs], "name": label,
                  "hovertemplate": f"{x}=%{{x}}<br>{label}=%{{y:.4f}}<extra></extra>"}],
        "layout": {"title": {"text": f"{label} by {x}"}, "height": 450,
                   "xaxis": {"title": {"text": x}, "type": "category"}, "yaxis": {"title": {"text": label}}},
    }


def heatmap_page(result: TrialsResult) -> bytes:
    """A self-contained HTML page with one heatmap per pair of parameters, or the objective's line
    over the one parameter of a sweep of one (plotly.js inline), written without importing plotly's
    Python package, as ``analytics.report`` writes its page."""
    from algocli.analytics.report import _CSS, _PLOT_CONFIG, _TEMPLATE, _chart_html, _plotly_file

    names = result.space.names
    pairs = [(names[j], names[i]) for i in range(len(names)) for j in range(i + 1, len(names))]
    charts = "".join(_chart_html(k, f"{x}-{y}", heatmap_figure(result, x, y)) for k, (x, y) in enumerate(pairs))
    if len(names) == 1:
        charts = _chart_html(0, names[0], line_figure(result, names[0]))
    best = result.best
    summary = (f"<p>best {html.escape(result.objective.text)} = {best.score:.6g} at "
               f"{html.escape(', '.join(f'{k}={v}' for k, v in best.params.items()))}</p>") if best else ""
    title = f"Optimisation — {html.escape(result.config.name)}" + (" (partial)" if result.interrupted else "")
    template = _plotly_file(f"templates/{_TEMPLATE}.json").decode("utf-8").replace("</", "<\\/")
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style>"
        '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};</script>'
        '<script type="text/javascript">'
    )
    tail = (
        f"</script><script>var ALGO_TEMPLATE={template};var ALGO_CONFIG={json.dumps(_PLOT_CONFIG)};</script></head>\n"
        f"<body><header><h1>{title}</h1><p>{trials_count(result)} ({html.escape(sweep_kind(result))}), maximising "
        f"{html.escape(result.objective.text)}</p>{summary}</header><main>{charts}</main></body></html>\n"
    )
    return b"".join((head.encode("utf-8"), _plotly_file("plotly.min.js"), tail.encode("utf-8")))


def manifest(result: TrialsResult) -> dict:
    """``optimize.json``: what was searched, on which data, and what it cost."""
    best = result.best
    workers = sorted(result.workers.items())
    return {
        "config": result.source, "name": result.config.name, "data_sha256": result.data_hash,
        "method": result.method, "seed": result.seed, "maximize": result.objective.text,
        "params": {p.name: list(p.values) for p in result.space.params},
        "constraints": [c.text for c in result.space.constraints],
        "trials": len(result.trials), "planned": result.planned, "ran": result.ran, "refused": len(result.refused),
        "best": None if best is None else {"trial": best.number, "params": best.params, "score": best.score},
        "executor": result.executor, "batch_size": result.batch_size,
        "wall_seconds": round(result.wall_seconds, 3), "trial_seconds": round(result.busy_seconds, 3),
        "load_seconds": round(result.load_seconds, 3),
        "workers": [{"worker": w, "peak_rss_mb": round(m, 1)} for w, m in workers],
        "interrupted": result.interrupted,
    }


#: Every file ``write_outputs`` may write; an older sweep's file this one did not write (``best.yaml``
#: when no trial has a defined score) is removed.
ARTIFACTS = ("trials.csv", "timings.csv", "best.yaml", "heatmap.html", "optimize.json")


def write_outputs(result: TrialsResult, out_dir: Path) -> list[Path]:
    """Write every artifact of ``result`` into ``out_dir`` as one set; returns the published paths.

    The folder's ``trials.journal.jsonl`` is not an artifact: it is left alone.

    Raises:
        ArtifactError: A file could not be written; ``out_dir`` keeps its older set.
    """
    from algocli.persistence.output import OUT_FIX, publish_files

    out_dir = Path(out_dir)
    contents = {"trials.csv": trials_csv(result).encode(), "timings.csv": timings_csv(result).encode()}
    best = result.best
    if best is not None:
        contents["best.yaml"] = best_yaml(result, best, out_dir).encode()
    if result.trials:
        contents["heatmap.html"] = heatmap_page(result)
    contents["optimize.json"] = (json.dumps(manifest(result), indent=2) + "\n").encode()
    return publish_files(out_dir, ARTIFACTS, contents, fix=OUT_FIX)
