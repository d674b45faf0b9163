"""``algo backtest``: run a YAML run definition on CSV candles and write the artifacts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.console import console, err_console, escape
from algocli.cli.main import app
from algocli.cli.params import folder


@app.command("backtest")
def backtest_command(
    config: Annotated[Path, typer.Argument(help="Run definition, e.g. configs/sma.yaml.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", parser=folder, help="Artifact folder (overrides output.dir).")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Backtest the strategies of CONFIG and write CSV and HTML artifacts."""
    from algocli.config.run import load_run_config
    from algocli.engine.assemble import assemble_backtest
    from algocli.persistence.output import check_output_dir, shown

    started = time.perf_counter()
    cfg = load_run_config(config)
    out_dir = check_output_dir(cfg.output_dir(output))  # before any work: a bad folder fails now, not at the end
    assembled = assemble_backtest(cfg, str(config), warn=lambda m: err_console.print(f"[yellow]warning:[/] {escape(m)}",
                                                                                          highlight=False, soft_wrap=True))
    bt = assembled.backtest
    result = _run_with_progress(bt, quiet)
    from algocli.cli.tables import summary
    from algocli.domain.modes import RunMode
    from algocli.persistence.artifacts import RunDescription, write_run_artifacts

    description = RunDescription(RunMode.BACKTEST, str(config), assembled.config.content_hash(),
                                 assembled.resolved(), assembled.data_files, assembled.warnings)
    from algocli.engine.heap import keep_heap

    keep_heap(bt.bar_count)  # after the run: its peak would hold on to more of the heap
    before = _inputs(out_dir)
    # the artifacts first: what the terminal shows can be lost (a closed pipe, a closed window)
    paths = write_run_artifacts(result, out_dir, description, report=report,
                                elapsed_s=time.perf_counter() - started)
    console.print(summary(result, RunMode.BACKTEST))
    console.print(f"artifacts: [bold]{escape(shown(out_dir))}[/] ({', '.join(p.name for p in paths)})")
    if before is not None and before != _inputs(out_dir) and (out_dir / "montecarlo").is_dir():
        console.print(f"[cyan]note:[/] {escape(shown(out_dir / 'montecarlo'))} resampled the earlier run in this folder; "
                      f"`algo montecarlo {escape(shown(out_dir))}` resamples this one", highlight=False)


def _inputs(out_dir: Path) -> tuple | None:
    """What the run in ``out_dir`` was made of (its run.json's config hash and data files), or None."""
    from algocli.persistence.artifacts import read_run_json

    written = read_run_json(out_dir)
    return (written.get("config_hash"), written.get("data_files")) if written else None


# A run shorter than this shows no progress bar: drawing one (a refresh thread, rich.progress)
# costs more than such a run and would only flash on screen.
PROGRESS_AFTER_S = 0.3


def _run_with_progress(bt, quiet: bool):
    """Run the backtest, with a progress bar on stderr once it has lasted ``PROGRESS_AFTER_S``."""
    if quiet:
        return bt.run()
    started = time.perf_counter()
    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            if time.perf_counter() - started < PROGRESS_AFTER_S:
                return
            bar = _progress_bar(total)
        bar[0].update(bar[1], completed=done, total=total)

    try:
        return bt.run(progress=update)
    finally:
        if bar is not None:
            bar[0].stop()


def _progress_bar(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]backtest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, transient=True)
    progress.start()
    return progress, progress.add_task("bars", total=total)
