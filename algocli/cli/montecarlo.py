"""``algo montecarlo``: resample a finished run and report the spread of its outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.console import console, escape
from algocli.cli.main import app
from algocli.cli.params import folder


@app.command("montecarlo")
def montecarlo_command(
    run: Annotated[Path, typer.Argument(help="A finished run's folder, e.g. output/sma-hdfcbank.")],
    n: Annotated[int, typer.Option("--n", help="Simulations.")] = 10_000,
    method: Annotated[str, typer.Option("--method", help="trades (reshuffle closed trades), bootstrap "
                                        "(bar returns i.i.d.) or block (bar returns in blocks).")] = "trades",
    replace: Annotated[bool, typer.Option("--replace", help="trades: draw trades with replacement instead "
                                          "of reshuffling them.")] = False,
    trade_returns: Annotated[str, typer.Option("--trade-returns", help="trades: equity (P&L over the equity "
                                               "before the trade) or position (return_pct).")] = "equity",
    block_size: Annotated[float | None, typer.Option("--block-size", help="block: mean (stationary) or fixed "
                                                     "(circular: whole) block length in bars; estimated, and "
                                                     "rounded up to whole bars, when omitted.")] = None,
    block_kind: Annotated[str, typer.Option("--block-kind", help="block: stationary or circular.")] = "stationary",
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Seed; the same seed gives the same files.")
                    ] = None,
    ruin: Annotated[float, typer.Option("--ruin", help="Loss below the starting equity that counts as "
                                        "ruin, as a fraction.")] = 0.3,
    out: Annotated[Path | None, typer.Option("--out", parser=folder, help="Output folder (default RUN/montecarlo).")] = None,
) -> None:
    """Resample RUN's trade or bar returns; report return, drawdown, Sharpe and ruin odds.

    Writes montecarlo.csv (one row per simulation) and montecarlo.html (histograms).
    """
    from algocli.persistence.output import OUT_FIX, check_output_dir, shown
    from algocli.research import montecarlo as mc
    from algocli.research.montecarlo_outputs import write_outputs

    data = mc.load_run(run)
    # before any work: a folder that cannot be written fails now, not after the simulations
    out_dir = check_output_dir(out if out is not None else Path(run) / "montecarlo", fix=OUT_FIX)
    sims = mc.simulate(data, n, method=method, seed=seed, ruin=ruin, replace=replace, block_size=block_size,
                       block_kind=block_kind, trade_returns=trade_returns)
    paths = write_outputs(sims, data, out_dir)
    console.print(_table(sims, data))
    console.print(f"artifacts: [bold]{escape(shown(out_dir))}[/] ({', '.join(p.name for p in paths)})")


def _table(sims, data):
    from algocli.analytics.report import format_metric
    from algocli.cli.tables import figure_table
    from algocli.research.montecarlo import PERCENTILES
    from algocli.research.montecarlo_outputs import LABELS, describe, run_column_note, same_everywhere

    columns = ("mean", *(f"p{p}" for p in PERCENTILES))
    rows = [(LABELS[name], *(format_metric(row[c]) for c in columns), format_metric(sims.actual[name]))
            for name, row in sims.summary().items()]
    note = "\n".join(n for n in (same_everywhere(sims), run_column_note(sims)) if n)
    table, _ = figure_table(("Statistic", "mean", *(f"{p} %" for p in PERCENTILES), "run"), rows,
                            width=console.width, left=(0,), wrap=(0,), title=describe(sims, data),
                            caption=f"probability of ruin ({sims.ruin:.0%} below the start): "
                                    f"{sims.ruin_probability:.2%}" + (f"\n{note}" if note else ""))
    return table
