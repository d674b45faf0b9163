"""``algo walkforward``: optimise in rolling (or anchored) windows and trade each winner out of sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.console import console, err_console, escape
from algocli.cli.main import app
from algocli.cli.params import folder


@app.command("walkforward")
def walkforward_command(
    config: Annotated[Path, typer.Argument(help="Run definition, e.g. configs/sma.yaml.")],
    param: Annotated[list[str], typer.Option(
        "--param", "-p", help="name=start:stop:step (start:stop: step 1) or name=a,b,c "
                              "(a strategy parameter; <strategy id>.name when several have it).")],
    train: Annotated[str, typer.Option("--train", help="In-sample length: <n>D, <n>W, <n>M or <n>Y, e.g. 12M.")],
    test: Annotated[str, typer.Option("--test", help="Out-of-sample length (and step), e.g. 3M.")],
    constraint: Annotated[list[str] | None, typer.Option(
        "--constraint", "-c", help="Expression over params, e.g. \"fast_period < slow_period\".")] = None,
    maximize: Annotated[str, typer.Option("--maximize", "-m", help="A results.csv statistic or "
                                          "package.module:function of the statistics (returning a number, "
                                          "None where undefined).")] = "sharpe_ratio",
    anchored: Annotated[bool, typer.Option("--anchored", help="Every in-sample window starts at the first "
                                           "bar (default: rolling windows of --train).")] = False,
    gap: Annotated[str | None, typer.Option("--gap", help="Left out between each in-sample and out-of-sample "
                                            "window, e.g. 5D.")] = None,
    warmup: Annotated[int | None, typer.Option(
        "--warmup", help="Bars before each window that feed the indicators but never trade (default: "
        "the run definition's data.warmup, else the largest integer in the grid; 0: none).")] = None,
    splits: Annotated[int | None, typer.Option("--cscv-splits", help="Blocks for the probability of backtest "
                                               "overfitting (even; default 16, fewer on short data, and none, "
                                               "with a note, where even 2 do not fit).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-w", min=1,
                                                help="Local worker processes (default: CPU count).")] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Dask scheduler, e.g. tcp://HOST:8786.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", parser=folder, help="Output folder (default "
                                             "output/walkforward-<name>).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Walk-forward CONFIG: optimise in each training window, run the winner on the next test window.

    Writes windows.csv, oos_equity.csv (the test windows stitched, returns compounded),
    results.csv (their statistics), walkforward.json and report.html; reports the
    walk-forward efficiency, the stitched Sharpe ratio's t-statistic and the probability of
    backtest overfitting (CSCV) over the grid. Each window starts with --warmup bars before it
    that only feed the indicators, so its first bar trades as it would have live. Finished
    trials are journalled in the output folder: the same command again runs only what is missing.
    """
    from algocli.config.run import load_run_config
    from algocli.persistence.output import OUT_FIX, check_output_dir, shown
    from algocli.research import Space
    from algocli.research.executors import make_executor
    from algocli.research.objective import Objective
    from algocli.research.walkforward import parse_span, run_walkforward
    from algocli.research.walkforward_outputs import write_outputs

    spans = parse_span(train, "--train"), parse_span(test, "--test"), gap and parse_span(gap, "--gap", zero=True)
    space = Space.parse(param, constraint or [])
    Objective(maximize)
    cfg = load_run_config(config)
    out_dir = check_output_dir(out or Path("output") / f"walkforward-{cfg.name}", fix=OUT_FIX)
    executor = None
    try:
        with _Progress(quiet) as on_progress:
            executor = make_executor(workers, cluster)
            wf = run_walkforward(config, space, train=spans[0], test=spans[1], gap=spans[2], anchored=anchored,
                                 maximize=maximize, executor=executor, out_dir=out_dir, splits=splits,
                                 progress=on_progress, warmup=warmup)
    except KeyboardInterrupt:
        err_console.print("interrupted: finished trials are journalled; run the same command to continue")
        raise typer.Exit(130) from None
    finally:
        if executor is not None:
            executor.close()
    paths = write_outputs(wf, out_dir)
    console.print(_table(wf))
    for note in wf.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    console.print(f"artifacts: [bold]{escape(shown(out_dir))}[/] ({', '.join(p.name for p in paths)})")


def _table(wf):
    """The windows as a table as wide as the console whose figures are never cut short: on a narrow
    terminal or a CI log's 80 columns the headers wrap, and then the test windows show their first
    day only."""
    from algocli.analytics.report import format_metric
    from algocli.cli.tables import figure_table
    from algocli.research.walkforward_outputs import objective_column, summary

    name = objective_column(wf)
    figures = []
    for w in wf.windows:
        chosen = [str(w.best.params[p]) if w.best is not None else "cash" for p in wf.space.names]
        is_stats = w.best.stats if w.best is not None else {}
        figures.append((*chosen, format_metric(w.best.score if w.best is not None else None),
                        format_metric(w.oos_score), _pct(is_stats.get("total_return_pct")),
                        _pct(w.oos_stats.get("total_return_pct")), format_metric(w.wfe)))
    heads = (*wf.space.names, f"IS {name}", f"OOS {name}", "IS return %", "OOS return %", "WFE")
    title = (f"walk-forward of {wf.config.name}: {len(wf.windows)} windows (train {wf.train}, test {wf.test}"
             f"{f', gap {wf.gap}' if wf.gap else ''}, {'anchored' if wf.anchored else 'rolling'}, warm-up "
             f"{wf.warmup} bars from {wf.warmup_source})")
    for window_head, window in (("test window", lambda win: f"{win.test_start} → {win.test_end}"),
                                ("test from", lambda win: str(win.test_start))):
        rows = [(str(w.window.number), window(w.window), *f) for w, f in zip(wf.windows, figures)]
        table, fits = figure_table(("#", window_head, *heads), rows, width=console.width, left=(1,),
                                   title=title)
        if fits:
            break
    s = summary(wf)
    pbo = "—" if wf.pbo is None else f"{wf.pbo.pbo:.1%} ({wf.pbo.splits} blocks, {wf.pbo.combinations:,} combinations)"
    table.caption = (f"stitched OOS: return {format_metric(wf.stitched.stats['total_return_pct'])} %, Sharpe "
                     f"{format_metric(s['oos_sharpe_ratio'])} (per period {format_metric(s['oos_sharpe_per_period'])}, "
                     f"t = {format_metric(s['oos_sharpe_t_stat'])}, n = {wf.periods}), max drawdown "
                     f"{format_metric(wf.stitched.stats['max_drawdown_pct'])} %\n"
                     f"walk-forward efficiency {format_metric(s['wfe'])} (mean annualised OOS / IS return); "
                     f"{wf.profitable} of {len(wf.windows)} windows profitable; PBO {pbo}")
    table.caption_justify = "left"
    return table


def _pct(value) -> str:
    """A return in percent to two decimals (trial statistics arrive as results.csv's text)."""
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "—"


class _Progress:
    """A Rich progress bar of the trials of the current stage; a no-op when quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._bar = None

    def __enter__(self):
        if self.quiet:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("[bold]walkforward[/] {task.fields[stage]}"), BarColumn(),
                             MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task("trials", total=None, stage="")
        return self._update

    def _update(self, stage: str, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total, stage=stage)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
