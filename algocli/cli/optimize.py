"""``algo optimize``: sweep a run definition's strategy parameters and keep the best."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.console import console, err_console, escape
from algocli.cli.main import app
from algocli.cli.params import folder


@app.command("optimize")
def optimize_command(
    config: Annotated[Path, typer.Argument(help="Run definition, e.g. configs/sma.yaml.")],
    param: Annotated[list[str], typer.Option(
        "--param", "-p", help="name=start:stop:step (start:stop: step 1) or name=a,b,c "
                              "(a strategy parameter; <strategy id>.name when several have it).")],
    constraint: Annotated[list[str] | None, typer.Option(
        "--constraint", "-c", help="Expression over params, e.g. \"fast_period < slow_period\".")] = None,
    maximize: Annotated[str, typer.Option("--maximize", "-m", help="A results.csv statistic or "
                                          "package.module:function of the statistics (returning a number, "
                                          "None where undefined).")] = "sharpe_ratio",
    method: Annotated[str, typer.Option("--method", help="grid, random or bayes (Optuna TPE).")] = "grid",
    trials: Annotated[int | None, typer.Option("--trials", "-n", min=1,
                                               help="Points for random and bayes (default 100).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-w", min=1,
                                                help="Local worker processes (default: CPU count).")] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Dask scheduler, e.g. tcp://HOST:8786.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", parser=folder, help="Output folder (default "
                                             "<output dir>/optimize).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random and bayes proposals.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run CONFIG's backtest over a grid of strategy parameters and write trials.csv, best.yaml and a heatmap.

    Finished trials are journalled in the output folder: the same command again (after
    Ctrl-C, or with more points) runs only what is missing.
    """
    from algocli.config.run import load_run_config
    from algocli.persistence.output import OUT_FIX, check_output_dir, shown
    from algocli.research import Space, run_trials
    from algocli.research.executors import make_executor
    from algocli.research.outputs import trials_count, write_outputs

    space = Space.parse(param, constraint or [])
    cfg = load_run_config(config)
    out_dir = check_output_dir(out or cfg.output_dir() / "optimize",
                               fix=OUT_FIX if out else "pass --out or change output.dir")
    executor = make_executor(workers, cluster)
    try:
        with _progress(quiet, maximize) as on_progress:
            result = run_trials(config, space, maximize=maximize, method=method, trials=trials, seed=seed,
                                executor=executor, out_dir=out_dir, progress=on_progress)
    finally:
        executor.close()
    if not result.trials:
        err_console.print("interrupted before any trial finished")
        raise typer.Exit(130)
    paths = write_outputs(result, out_dir)
    console.print(_summary(result, trials))
    console.print(f"artifacts: [bold]{escape(shown(out_dir))}[/] ({', '.join(p.name for p in paths)})")
    if result.interrupted:
        err_console.print(f"interrupted: {trials_count(result)} kept; run the same command to finish")
        raise typer.Exit(130)


def _summary(result, requested: int | None) -> str:
    from algocli.research.outputs import sweep_kind, trials_count
    from algocli.research.search import DEFAULT_TRIALS

    best = result.best
    cached = sum(t.cached for t in result.trials)
    memory = max(result.workers.values(), default=0.0)
    lines = [f"{trials_count(result)} ({sweep_kind(result, finish=False)}; {result.ran} run now, {cached} from the "
             f"journal) on {result.executor} in {result.wall_seconds:.1f} s"]
    wanted = (requested or DEFAULT_TRIALS) if result.method != "grid" else 0
    if len(result.trials) < wanted and not result.interrupted:
        # bayes too stops short only once every admissible point ran (``search.BayesSearch``)
        lines.append(f"--trials {wanted}: the space holds only {_count(len(result.trials), 'point')} the "
                     "constraints and the strategies accept, and every one ran")
    if result.refused:
        lines.append(f"{_count(len(result.refused), 'point')} refused by the strategy's own checks (first: "
                     f"{result.refused[0][1]})")
    if result.workers:
        kept = "whose trials were kept" if result.interrupted else "that ran trials"
        lines.append(f"peak memory per worker: {memory:.0f} MiB (of the {_count(len(result.workers), 'worker')} "
                     f"{kept})")
    if best is None:
        lines.append(f"no trial has a defined {result.objective.text} (no trades?)")
    else:
        shown = ", ".join(f"{k}={v}" for k, v in best.params.items())
        lines.append(f"best {result.objective.text} = [bold]{best.score:.4f}[/] at {shown} (trial {best.number})")
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


class _progress:
    """A Rich progress bar with the best score so far and an ETA; a no-op when quiet or when stderr
    is not a terminal (cron, CI, a pipe: a bar there is only noise before the summary)."""

    def __init__(self, quiet: bool, objective: str) -> None:
        self.quiet, self.objective = quiet, objective
        self._bar = None

    def __enter__(self):
        if self.quiet or not err_console.is_terminal:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("[bold]optimize"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[best]}"),
                             console=err_console, transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task("trials", total=None, best="")
        return self._update

    def _update(self, done: int, total: int, best) -> None:
        text = "" if best is None else (f"best {self.objective} {best.score:.4f} at "
                                        + ", ".join(f"{k}={v}" for k, v in best.params.items()))
        self._bar.update(self._task, completed=done, total=total, best=text)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
