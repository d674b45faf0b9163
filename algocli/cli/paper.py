"""``algo paper``: the run definition's strategies on live candles with a simulated broker."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.console import console, err_console
from algocli.cli.main import app


@app.command("paper")
def paper_command(
    config: Annotated[Path, typer.Argument(help="Run definition whose data.feed is dhan, upstox or sandbox.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Artifact and journal folder.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Set the old journal aside and start a new run.")] = False,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop by itself after this many seconds.")] = None,
    dashboard: Annotated[bool, typer.Option("--dashboard/--no-dashboard", help="Live Rich dashboard.")] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html at the end.")] = True,
) -> None:
    """Paper-trade CONFIG on live data. Ctrl-C stops, prints the summary and writes the artifacts."""
    from algocli.engine.paper import PaperEngine, live_feed

    started = time.perf_counter()
    cfg, plugins, ids = load_live_run(config, "paper")
    out_dir = cfg.output_dir(output)
    journal = out_dir / "journal.jsonl"
    if fresh and journal.exists():
        journal.rename(out_dir / f"journal.{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    engine = PaperEngine(
        plugins.instruments, interval=cfg.interval, initial_capital=cfg.initial_capital,
        fill_model=plugins.fill_model, cost_model=plugins.cost_model, journal_path=journal, name=cfg.name,
    )
    for sid, strategy, instruments in plugins.strategies:
        engine.add_strategy(strategy, instruments, sid)
    _attach_risk(engine, cfg, out_dir, fresh)
    if any(engine.restored.values()):
        r = engine.restored
        err_console.print(f"resuming from {journal}: {r['candles']} candles, {r['orders']} orders, {r['fills']} fills")
    feed = live_feed(plugins, ids)
    asyncio.run(_run(engine, feed, plugins.instruments, duration, dashboard))
    _finish(engine, plugins, cfg, config, out_dir, report, time.perf_counter() - started)


def load_live_run(config: Path, command: str):
    """The run definition of ``algo paper``/``algo live``: validated, its instruments named
    (``name_live_run``) and its plugins resolved.

    Returns:
        The renamed config, its plugins, and the name → broker id maps (None when no
        instrument was renamed).

    Raises:
        ConfigError: The YAML is invalid, a name is unknown, or the feed is not a live one.
    """
    from algocli.config.run import load_run_config
    from algocli.engine.assemble import resolve_plugins
    from algocli.errors import ConfigError

    names = name_live_run(load_run_config(config), config)
    cfg = names.config
    plugins = resolve_plugins(cfg, str(config))
    if not hasattr(plugins.feed_cls, "live"):
        raise ConfigError(f"{config}: data.feed: {cfg.data.feed!r} is not a live feed; "
                          f"`algo {command}` needs feed: dhan, upstox or sandbox")
    return cfg, plugins, (names.ids() if names.instruments else None)


def name_live_run(cfg, config: Path):
    """``instruments.naming.name_run`` for paper and live runs: names from the brokers' lists
    (a sandbox feed's own, from its URL), refreshed once a day; see the README."""
    from algocli.instruments.naming import name_run

    urls = None
    if cfg.data.feed == "sandbox":  # the sandbox serves its instrument list next to its feed
        base = str(cfg.data.plugin_params.get("url", "http://127.0.0.1:8765")).rstrip("/")
        urls = {"dhan": f"{base}/api-data/api-scrip-master.csv",
                "upstox": f"{base}/market-quote/instruments/exchange/complete.json.gz"}
    return name_run(cfg, str(config), urls=urls, quiet_cache=False,
                    warn=lambda line: err_console.print(f"warning: {line}", markup=False, highlight=False))


def _attach_risk(engine, cfg, out_dir: Path, fresh: bool) -> None:
    """Put the run's risk controller on the engine's order path (paper and live alike)."""
    if cfg.risk is None:
        return
    from algocli.risk import attach_risk, state_path_for

    risk = attach_risk(engine.core, cfg.risk, state_path=state_path_for(cfg.risk.state_file, out_dir))
    if fresh:
        risk.reset_day()


async def _run(engine, feed, instruments: list[str], duration: float | None, dashboard: bool,
               before_start=None, after_stop=None) -> None:
    """Connect, trade until stopped, disconnect. Live runs pass broker hooks around it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = [signal.SIGINT, signal.SIGTERM]
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    risk = engine.core.risk
    if risk is not None:  # the kill switch: kill -USR1 <pid> halts like `algo halt`
        loop.add_signal_handler(signal.SIGUSR1, lambda: risk.halt("SIGUSR1 received", source="signal"))
        handled.append(signal.SIGUSR1)
    try:
        if before_start is not None:
            await before_start()
        feed.on_tick(engine.on_tick)
        await feed.connect()
        await feed.subscribe(instruments)
        engine.start()
        try:
            await _loop(engine, feed, stop, duration, dashboard)
        finally:
            await feed.disconnect()
    finally:
        if after_stop is not None:
            await after_stop()
        for sig in handled:
            loop.remove_signal_handler(sig)


async def _loop(engine, feed, stop: asyncio.Event, duration: float | None, dashboard: bool) -> None:
    from rich.live import Live

    from algocli.cli.dashboard import TickRate, render

    rate = TickRate()
    deadline = None if duration is None else time.monotonic() + duration
    live = Live(console=console, refresh_per_second=4, transient=False) if dashboard else None
    if live is not None:
        live.start()
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.25)
            except asyncio.TimeoutError:
                pass
            if feed.error is not None:  # e.g. the token was rejected: stop, do not retry
                raise feed.error
            if engine.error is not None:  # a strategy raised inside a tick
                raise engine.error
            risk = engine.core.risk
            if risk is not None:  # `algo halt` writes the state file; SIGUSR1 halts directly
                risk.refresh()
                for line in risk.new_events():
                    err_console.print(f"risk: {line}", markup=False, highlight=False)
            engine.on_time(engine.exchange_now())
            if live is not None:
                live.update(render(engine, feed.status, rate.update(engine.stats.ticks)))
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        if live is not None:
            live.stop()


def _finish(engine, plugins, cfg, config: Path, out_dir: Path, report: bool, elapsed: float) -> None:
    from algocli.cli.backtest import _write_artifacts
    from algocli.cli.tables import metrics_table, strategy_table
    from algocli.engine.assemble import Assembled
    from algocli.engine.results import build_result

    engine.stop(engine.exchange_now())
    ts = engine.timeline()
    if not len(ts):
        err_console.print("no candle closed during the run; nothing to summarise (the journal is kept)")
        return
    engine.bars = engine.snapshot_bars()
    result = build_result(engine, ts)
    open_positions = sum(1 for p in engine.core.ledger.positions.values() if p.quantity)
    if open_positions:
        result.notes.append(f"{open_positions} position(s) are still open, valued at the last close; "
                            "run `algo paper` again with the same config to resume them")
    console.print(metrics_table(result))
    if len(result.strategies) > 1:
        console.print(strategy_table(result))
    for note in result.notes:
        console.print(f"[cyan]note:[/] {note}")
    assembled = Assembled(None, cfg, [], [], plugins.plugin_configs())
    paths = _write_artifacts(result, assembled, out_dir, str(config), report, elapsed)
    console.print(f"artifacts: [bold]{out_dir}[/] ({', '.join(p.name for p in paths)}, journal.jsonl)")
