"""``algo paper``: the run definition's strategies on live candles with a simulated broker.

The session itself (event loop, signals, shutdown) is ``algocli.engine.runtime``; this
module parses the arguments, wires the dashboard in and prints the outcome.
"""

from __future__ import annotations

import math
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
    duration: Annotated[float | None, typer.Option("--duration", help="Stop by itself after this many seconds "
                                                                          "(0: connect, then stop).")] = None,
    dashboard: Annotated[bool, typer.Option("--dashboard/--no-dashboard", help="Live Rich dashboard.")] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html at the end.")] = True,
) -> None:
    """Paper-trade CONFIG on live data. Ctrl-C stops, prints the summary and writes the artifacts."""
    from algocli.cli.session import run_and_report, warn
    from algocli.domain.modes import RunMode
    from algocli.engine.runtime import load_live_run, open_session

    check_duration(duration)
    started = time.perf_counter()
    session = open_session(load_live_run(config, "paper", warn=warn), RunMode.PAPER, output=output, fresh=fresh)
    run_and_report(session, duration=duration, dashboard=dashboard, report=report, started=started)


def check_duration(duration: float | None) -> None:
    """Refuse a ``--duration`` that is negative or not a number, before anything is loaded.

    0 is kept: the run connects (and a live run reconciles with its broker), then stops at once,
    which checks the feed and the credentials without trading.

    Raises:
        UsageError: The value is negative, NaN or infinite.
    """
    if duration is None or (math.isfinite(duration) and duration >= 0):
        return
    from algocli.errors import UsageError

    raise UsageError(f"--duration {duration:g} is not a number of seconds, 0 or more; give how long to run "
                     "(0 connects and stops at once), or leave it out to run until Ctrl-C")
