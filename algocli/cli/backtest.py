"""``algo backtest``: run a YAML run definition on CSV candles and write the artifacts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.console import console, err_console
from algocli.cli.main import app


@app.command("backtest")
def backtest_command(
    config: Annotated[Path, typer.Argument(help="Run definition, e.g. configs/sma.yaml.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Artifact folder (overrides output.dir).")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Backtest the strategies of CONFIG and write CSV and HTML artifacts."""
    from algocli.config.run import load_run_config
    from algocli.engine.assemble import assemble_backtest

    started = time.perf_counter()
    cfg = load_run_config(config)
    out_dir = cfg.output_dir(output)
    assembled = assemble_backtest(cfg, str(config), warn=lambda m: err_console.print(f"[yellow]warning:[/] {m}"))
    bt = assembled.backtest
    result = _run_with_progress(bt, quiet)
    from algocli.cli.tables import metrics_table, strategy_table

    console.print(metrics_table(result))
    if len(result.strategies) > 1:
        console.print(strategy_table(result))
    for note in result.notes:
        console.print(f"[cyan]note:[/] {note}")
    paths = _write_artifacts(result, assembled, out_dir, str(config), report, time.perf_counter() - started)
    console.print(f"artifacts: [bold]{out_dir}[/] ({', '.join(p.name for p in paths)})")


def _run_with_progress(bt, quiet: bool):
    if quiet:
        return bt.run()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]backtest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("bars", total=bt.bar_count)
        return bt.run(progress=lambda done, total: progress.update(task, completed=done, total=total))


def _write_artifacts(result, assembled, out_dir: Path, config_path: str, report: bool, elapsed: float) -> list[Path]:
    import yaml

    from algocli.persistence import artifacts as a
    from algocli.persistence.background import BackgroundTask

    def _second_core() -> None:  # the slowest file, plus hashing the input data
        a.write_equity(result, out_dir / "equity_curve.csv")
        a.write_metadata(
            out_dir / "run.json", config_hash=assembled.config.content_hash(), config_path=config_path,
            data_files=assembled.data_files, bars=len(result.index), elapsed_s=elapsed,
            notes=result.notes + assembled.warnings)

    background = BackgroundTask(_second_core, "equity_curve.csv and run.json")
    paths = [
        a.write_trades(result, out_dir / "trades.csv"),
        a.write_orders(result, out_dir / "orders.csv"),
        a.write_fills(result, out_dir / "fills.csv"),
        out_dir / "equity_curve.csv",
        a.write_results(result, out_dir / "results.csv"),
        a.atomic_write_text(out_dir / "config.resolved.yaml", yaml.safe_dump(assembled.resolved(), sort_keys=False)),
    ]
    if report:
        from algocli.analytics.report import write_report

        paths.append(write_report(result, out_dir / "report.html"))
    background.wait()
    paths.append(out_dir / "run.json")
    return paths
