"""``algo paper``: the run definition's strategies on live candles with a simulated broker.

The session itself (event loop, signals, shutdown) is ``algocli.engine.runtime``; this
module parses the arguments, wires the dashboard in and prints the outcome.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.main import app
from algocli.cli.params import folder


@app.command("paper")
def paper_command(
    config: Annotated[Path, typer.Argument(help="Run definition with a live data.feed (a broker's, or sandbox).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", parser=folder, help="Artifact and journal folder.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Set the old journal aside and start a new run.")] = False,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop by itself after this many seconds.")] = None,
    dashboard: Annotated[bool, typer.Option("--dashboard/--no-dashboard", help="Live Rich dashboard.")] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html at the end.")] = True,
) -> None:
    """Paper-trade CONFIG on live data. Ctrl-C stops, prints the summary and writes the artifacts."""
    from algocli.cli.session import run_and_report, warn
    from algocli.domain.modes import RunMode
    from algocli.engine.runtime import load_live_run, open_session

    started = time.perf_counter()
    session = open_session(load_live_run(config, "paper", warn=warn), RunMode.PAPER, output=output, fresh=fresh)
    run_and_report(session, duration=duration, dashboard=dashboard, report=report, started=started)
