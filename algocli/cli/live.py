"""``algo live``: the run definition's strategies with real orders at Dhan or Upstox.

``--dry-run`` runs the same session with the simulated broker, in its own folder
(``<output>/dry-run/``): its journal, risk state and artifacts are never the live run's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.console import console
from algocli.cli.main import app
from algocli.cli.paper import check_duration
from algocli.cli.params import folder


@app.command("live")
def live_command(
    config: Annotated[Path, typer.Argument(help="Run definition with a live feed and a real broker (see `algo strategies`).")],
    yes: Annotated[bool, typer.Option("--yes", help="Send orders without asking for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Run everything, but fill orders with the "
                                          "simulated broker (journal and artifacts in <output>/dry-run/).")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", parser=folder, help="Artifact and journal folder.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Set the old journal aside and start a new run.")] = False,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop by itself after this many seconds "
                                                                          "(0: connect, then stop).")] = None,
    dashboard: Annotated[bool, typer.Option("--dashboard/--no-dashboard", help="Live Rich dashboard.")] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html at the end.")] = True,
) -> None:
    """Trade CONFIG live. Shows the account, strategies and limits, and asks before any order is sent."""
    from algocli.cli.session import run_and_report, warn
    from algocli.domain.modes import RunMode
    from algocli.engine.runtime import load_live_run, open_session
    from algocli.errors import ConfigError, UsageError
    from algocli.persistence.output import check_output_dir
    from algocli.registry import names_with

    check_duration(duration)
    started = time.perf_counter()
    run = load_live_run(config, "live", warn=warn, real_broker=not dry_run)
    cfg, plugins = run.config, run.plugins
    if not getattr(plugins.broker_cls, "live_broker", False):
        fix = ("; a dry run rehearses a live broker's run: paper-trade this one with `algo paper`" if dry_run else
               " (or use `algo paper`)")
        raise ConfigError(f"{config}: broker.name: {cfg.broker.name!r} is simulated; `algo live` needs one of "
                          f"{', '.join(names_with('broker', 'live_broker'))}{fix}")
    mode = RunMode.DRY_RUN if dry_run else RunMode.LIVE
    check_output_dir(mode.output_dir(cfg.output_dir(output)))  # before the question, not after it
    console.print(_summary(cfg, plugins, dry_run))
    if not yes and not dry_run:
        if not sys.stdin.isatty():
            raise UsageError("live trading needs confirmation: pass --yes (or run it in a terminal to be asked)")
        if not typer.confirm("Send real orders with these settings?", default=False):
            raise typer.Abort()
    session = open_session(run, mode, output=output, fresh=fresh)
    run_and_report(session, duration=duration, dashboard=dashboard, report=report, started=started)


def _summary(cfg, plugins, dry_run: bool):
    from rich.table import Table

    t = Table(title=f"{cfg.name}: {'DRY RUN (simulated fills)' if dry_run else 'LIVE TRADING'}", title_justify="left")
    t.add_column("setting")
    t.add_column("value")
    account = plugins.broker_cls.account() if hasattr(plugins.broker_cls, "account") else cfg.broker.name
    t.add_row("account", account)
    t.add_row("feed", cfg.data.feed)
    for sid, strategy, instruments in plugins.strategies:
        t.add_row(f"strategy {sid}", f"{type(strategy).__name__} on {', '.join(instruments)}")
    bc = plugins.broker_cfg
    if hasattr(bc, "product"):
        t.add_row("product / validity", f"{bc.product} / {getattr(bc, 'validity', 'DAY')}"
                  + (f" (overrides: {dict(bc.products)})" if bc.products else ""))
    risk = getattr(cfg, "risk", None)
    limits = risk.model_dump(exclude_none=True) if risk is not None else {}
    t.add_row("risk limits", ", ".join(f"{k}={v}" for k, v in limits.items()) or "none (add a risk: section)")
    return t
