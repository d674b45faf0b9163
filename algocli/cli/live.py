"""``algo live``: the run definition's strategies with real orders at Dhan or Upstox."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.console import console, err_console
from algocli.cli.main import app


@app.command("live")
def live_command(
    config: Annotated[Path, typer.Argument(help="Run definition with a live feed and broker: dhan or upstox.")],
    yes: Annotated[bool, typer.Option("--yes", help="Send orders without asking for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Run everything, but fill orders with the "
                                          "simulated broker.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Artifact and journal folder.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Set the old journal aside and start a new run.")] = False,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop by itself after this many seconds.")] = None,
    dashboard: Annotated[bool, typer.Option("--dashboard/--no-dashboard", help="Live Rich dashboard.")] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html at the end.")] = True,
) -> None:
    """Trade CONFIG live. Shows the account, strategies and limits, and asks before any order is sent."""
    from algocli.cli.paper import load_live_run
    from algocli.engine.paper import live_feed
    from algocli.errors import ConfigError, UsageError

    started = time.perf_counter()
    cfg, plugins, ids = load_live_run(config, "live")
    is_live_broker = getattr(plugins.broker_cls, "live_broker", False)
    if not dry_run and not is_live_broker:
        raise ConfigError(f"{config}: broker.name: {cfg.broker.name!r} is simulated; `algo live` needs dhan or "
                          "upstox (or use --dry-run, or `algo paper`)")
    console.print(_summary(cfg, plugins, dry_run))
    if not yes and not dry_run:
        if not sys.stdin.isatty():
            raise UsageError("live trading needs confirmation: pass --yes (or run it in a terminal to be asked)")
        if not typer.confirm("Send real orders with these settings?", default=False):
            raise typer.Abort()
    out_dir = cfg.output_dir(output)
    engine, broker = _build(cfg, plugins, out_dir, fresh, dry_run, instrument_ids=ids)
    feed = live_feed(plugins, ids)
    asyncio.run(_run(engine, broker, feed, plugins.instruments, duration, dashboard))
    from algocli.cli.paper import _finish

    _finish(engine, plugins, cfg, config, out_dir, report, time.perf_counter() - started)


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
        t.add_row("product / validity", f"{bc.product} / {bc.validity}"
                  + (f" (overrides: {dict(bc.products)})" if bc.products else ""))
    risk = getattr(cfg, "risk", None)
    limits = risk.model_dump(exclude_none=True) if risk is not None else {}
    t.add_row("risk limits", ", ".join(f"{k}={v}" for k, v in limits.items()) or "none (add a risk: section)")
    return t


def _build(cfg, plugins, out_dir: Path, fresh: bool, dry_run: bool, instrument_ids=None):
    """The engine and (unless ``dry_run``) the real broker; ``instrument_ids`` as for ``live_broker``."""
    from algocli.engine.live import build_live_engine, live_broker
    from algocli.engine.paper import PaperEngine

    journal = out_dir / "journal.jsonl"
    if fresh and journal.exists():
        journal.rename(out_dir / f"journal.{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    common = dict(interval=cfg.interval, initial_capital=cfg.initial_capital, journal_path=journal, name=cfg.name)
    if dry_run:
        engine = PaperEngine(plugins.instruments, fill_model=plugins.fill_model, cost_model=plugins.cost_model,
                             **common)
        broker = None
    else:
        bc = plugins.broker_cfg
        broker = live_broker(plugins, instrument_ids)
        engine = build_live_engine(plugins.instruments, broker=broker, run_id=cfg.name, products=dict(bc.products),
                                   default_product=bc.product, validity=bc.validity, **common)
    for sid, strategy, instruments in plugins.strategies:
        engine.add_strategy(strategy, instruments, sid)
    from algocli.cli.paper import _attach_risk

    _attach_risk(engine, cfg, out_dir, fresh)
    return engine, broker


async def _run(engine, broker, feed, instruments: list[str], duration: float | None, dashboard: bool) -> None:
    from algocli.cli.paper import _run as run_engine

    if broker is None:  # --dry-run: the simulated broker, exactly as `algo paper`
        await run_engine(engine, feed, instruments, duration, dashboard)
        return

    async def before_start() -> None:  # one path after a clean stop and after a crash
        if engine.restored["candles"]:
            err_console.print(f"resuming from {engine.journal_path}: {engine.restored['candles']} candles")
        await broker.connect()
        for note in await engine.router.reconcile(engine.journal_records, instruments):
            err_console.print(f"[cyan]reconciled:[/] {note}")

    async def after_stop() -> None:
        await engine.router.drain()
        await broker.disconnect()

    await run_engine(engine, feed, instruments, duration, dashboard, before_start, after_stop)
