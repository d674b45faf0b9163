"""The terminal side of a paper or live session, shared by ``algo paper`` and ``algo live``:
run it with the dashboard, then print the summary and write the artifacts."""

from __future__ import annotations

import time

from algocli.cli.console import console, err_console, escape


def warn(line: str) -> None:
    """Print a warning line on stderr, as is (instrument names carry brackets)."""
    err_console.print(f"warning: {line}", markup=False, highlight=False)


def run_and_report(session, *, duration: float | None, dashboard: bool, report: bool, started: float) -> None:
    """Run a paper or live session with the dashboard, then print its summary and write its artifacts.

    Args:
        session: From ``algocli.engine.runtime.open_session``.
        duration: Stop after this many seconds (None: at Ctrl-C).
        dashboard: Show the live dashboard.
        report: Write report.html.
        started: ``time.perf_counter()`` when the command started (for run.json).
    """
    import asyncio

    from algocli.cli.dashboard import Dashboard
    from algocli.cli.tables import summary
    from algocli.engine.runtime import finish_session, run_session, write_session_artifacts
    from algocli.persistence.output import shown

    view = Dashboard(session.mode, show=dashboard, console=console, err_console=err_console,
                     clear_command=session.halt_command(clear=True))
    asyncio.run(run_session(session, duration=duration, view=view))
    result = finish_session(session)
    if result is None:
        err_console.print("no candle closed during the run; nothing to summarise (the journal is kept)")
        return
    # the artifacts first: what the terminal shows can be lost (a closed pipe, a closed window)
    paths = write_session_artifacts(session, result, report=report, elapsed_s=time.perf_counter() - started)
    console.print(summary(result, session.mode))
    kept = [name for name in ("journal.jsonl", "pcr.csv") if (session.out_dir / name).exists()]  # appended during the run
    console.print(f"artifacts: [bold]{escape(shown(session.out_dir))}[/] ({', '.join([*(p.name for p in paths), *kept])})")
